//! Secondary CPUs: gather every DT CPU into a fresh pen (PSCI CPU_ON, or
//! taking them over from an older pen / a foreign spin-table), report them,
//! and, at boot, either describe the pen in the DT (spin-table, the default)
//! or hand the CPUs back to firmware (cpu_method=psci).
//! Layout, validation and planning are in the host-tested `loader::pen`.

use crate::arch::{cpu, gic, mmu, psci, timer};
use crate::stages;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use loader::dt::{DtInfo, Region};
use loader::memmap::{MemMap, Owner, Prefer};
use loader::pen::{self, CacheOps, CpuAction, Pen, PenCode, PenHeader, PenLayout, SlotStatus};
use loader::plan::booti::PenFacts;
use loader::wake::WakeConfig;

/// How long one CPU may take to arrive in the pen.
const ARRIVAL_TIMEOUT_US: u64 = 1_000_000;

extern "C" {
    static pen_code_start: u8;
    static pen_code_end: u8;
    static pen_entry: u8;
    static pen_park: u8;
    static pen_wake_block: u8;
}

pub struct ArchCache;

impl CacheOps for ArchCache {
    fn clean(&mut self, addr: u64, len: u64) {
        cpu::clean_dcache_range(addr as usize, len as usize);
    }
    fn clean_invalidate(&mut self, addr: u64, len: u64) {
        cpu::clean_inval_dcache_range(addr as usize, len as usize);
    }
    fn send_event(&mut self) {
        // SAFETY: barrier + event, no memory effects beyond ordering.
        unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum CpuState {
    Boot,
    InPen,
    /// Handed back to firmware (cpu_method=psci).
    Off,
    /// Expected but did not arrive / was refused: left out of the DT.
    Missing(String),
    /// Held by something we cannot prove we own: never touched.
    Lost(String),
}

impl core::fmt::Display for CpuState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Boot => f.write_str("boot"),
            Self::InPen => f.write_str("parked"),
            Self::Off => f.write_str("off"),
            Self::Missing(why) => write!(f, "missing: {why}"),
            Self::Lost(why) => write!(f, "lost: {why}"),
        }
    }
}

struct CpuEntry {
    mpidr: u64,
    path: String,
    how: String,
    state: CpuState,
    arrival_us: Option<u64>,
    /// This CPU's release word in our pen (its cpu-release-addr).
    slot: Option<u64>,
    /// Something was done that can bring it into our pen (CPU_ON accepted, a release written
    /// into an old pen or a foreign spin-table): even if it never showed up, it may still.
    sent: bool,
}

pub struct Smp {
    header: PenHeader,
    cpus: Vec<CpuEntry>,
    gather_us: u64,
    /// Old pen regions dropped (their /memreserve/ entries go).
    dropped: Vec<Region>,
    /// Old pen regions kept (something may still run there).
    kept: Vec<Region>,
    notes: Vec<String>,
    /// The pen CPUs wait in firmware (PSCI CPU_OFF) until booti recalls them.
    resting: bool,
    /// Why our own pen may hold a CPU that is not ours to hand over (strays, CPUs stuck or
    /// missing in it): then it stays reserved even when the CPUs go to firmware
    /// (docs/protocol.md §6). Updated by [`Smp::refresh`].
    occupied: Vec<String>,
}

/// Offset of the wake block in the pen code.
fn wake_block_offset() -> u64 {
    // SAFETY: assembler symbols inside the pen code of our image.
    unsafe {
        (&pen_wake_block as *const u8 as u64).wrapping_sub(&pen_code_start as *const u8 as u64)
    }
}

/// The pen code as it is copied into a pen: `pen_code_start..pen_code_end` with the wake
/// block (how waiting CPUs sleep on this machine) filled in; and the offsets of `pen_entry`
/// and `pen_park` in it. The hold period is 0 in it — as a loader leaves a pen for the next
/// stage, so this is also the form an adoptable pen's code is compared with; [`Smp::hold`] sets
/// it once the CPUs are in.
pub fn code(wake: &WakeConfig) -> (Vec<u8>, u32, u32) {
    let mut wake = wake.clone();
    wake.hold_ticks = 0;
    let wake = &wake;
    // SAFETY: linker/assembler symbols delimiting the pen code in our image.
    let (bytes, en, pk, wb) = unsafe {
        let s = &pen_code_start as *const u8 as usize;
        let e = &pen_code_end as *const u8 as usize;
        let en = &pen_entry as *const u8 as usize;
        let pk = &pen_park as *const u8 as usize;
        let wb = &pen_wake_block as *const u8 as usize;
        (
            core::slice::from_raw_parts(s as *const u8, e - s),
            en - s,
            pk - s,
            wb - s,
        )
    };
    let mut v = bytes.to_vec();
    let block = wake.to_bytes();
    if let Some(dst) = v.get_mut(wb..wb + block.len()) {
        dst.copy_from_slice(&block);
    }
    (v, en as u32, pk as u32)
}

/// Mutable view of mapped RAM.
///
/// # Safety
/// The range must be mapped RAM that the caller owns (claimed) or has
/// validated as a pen it may write per the protocol.
unsafe fn ram_mut(addr: u64, len: u64) -> &'static mut [u8] {
    unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut u8, len as usize) }
}

fn read_ram(addr: u64, len: usize) -> Option<Vec<u8>> {
    if mmu::mapped_kind(addr, len as u64) != Some(true) {
        return None;
    }
    cpu::clean_inval_dcache_range(addr as usize, len);
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    // SAFETY: mapped RAM (checked); read-only copy.
    v.extend_from_slice(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len) });
    Some(v)
}

/// What gathering and recalling CPUs need from the rest of the machine.
pub struct Ctx<'a> {
    pub dt: Option<&'a DtInfo>,
    /// The pen is claimed here; old pens' /memreserve/ claims are released.
    pub map: &'a mut MemMap,
    /// How waiting CPUs sleep (the pen's wake block).
    pub wake: &'a WakeConfig,
    /// Firmware PSCI, if the loader can call it.
    pub psci: Option<psci::Conduit>,
}

/// Builds the pen and brings every CPU the DT lists into it. Problems are
/// reported per CPU; the boot continues with whoever arrived.
fn gather(st: Ctx<'_>, pen_addr: Option<u64>) -> Result<Smp, String> {
    let t0 = timer::ticks();
    let dt = st.dt.ok_or("no device tree: no CPUs to gather")?;
    let el = cpu::current_el();
    let conduit = st.psci;
    let (code_bytes, _, _) = code(st.wake);
    let me = cpu::mpidr();
    let plan = pen::plan_reclaim(
        dt,
        &pen::ReclaimEnv {
            current_mpidr: me,
            current_el: el,
            psci: conduit.is_some(),
            our_code: Some(&code_bytes),
        },
        read_ram,
    );
    let mut mpidrs = plan.new_pen_cpus();
    if !mpidrs.contains(&(me & pen::MPIDR_MASK)) {
        mpidrs.insert(0, me & pen::MPIDR_MASK);
    }
    if let Some(r) = try_adopt(st.map, &plan, &mpidrs, el, conduit, pen_addr, t0) {
        return r;
    }
    let base = match pen_addr {
        Some(a) => a,
        None => {
            let size = PenLayout::new(mpidrs.len(), code_bytes.len(), el)
                .map_err(|e| format!("pen layout: {e}"))?
                .total_size;
            let first = st.map.banks().first().copied().ok_or("no RAM")?;
            st.map
                .find_free(
                    size,
                    pen::PEN_ALIGN,
                    Some(first.base + first.size),
                    Prefer::High,
                )
                .ok_or("no free RAM for the pen")?
        }
    };
    let header = build_pen(st.map, st.wake, base, &mpidrs, plan.next_generation)?;
    let size = header.total_size;
    let mut ops = ArchCache;
    let mut cpus = Vec::new();
    let mut notes = Vec::new();
    let entry = header.entry_addr();
    // CPUs firmware says are ON though no pen or OS accounts for them (CPU_ON refused as
    // ALREADY_ON / ON_PENDING): an old pen where they have no slot may be where they run.
    let mut maybe_inside: Vec<u64> = Vec::new();
    for c in &plan.cpus {
        let mut e = CpuEntry {
            mpidr: c.mpidr,
            path: c.path.clone(),
            how: c.action.to_string(),
            state: CpuState::InPen,
            arrival_us: None,
            slot: mpidrs
                .iter()
                .position(|&m| m == c.mpidr & pen::MPIDR_MASK)
                .and_then(|i| header.slot_release_addr(i)),
            sent: true,
        };
        match &c.action {
            CpuAction::Boot => e.state = CpuState::Boot,
            CpuAction::Lost { reason } => e.state = CpuState::Lost(reason.to_string()),
            CpuAction::PsciCpuOn => match conduit {
                Some(cd) => {
                    // context id: the slot address (docs/protocol.md §3.1; the pen ignores it)
                    if let Err(err) = psci::cpu_on(cd, c.mpidr, entry, e.slot.unwrap_or(0)) {
                        if psci::means_on(err) {
                            maybe_inside.push(c.mpidr);
                        }
                        e.state = CpuState::Missing(format!("PSCI CPU_ON: {err}"));
                        e.sent = false;
                    }
                }
                None => {
                    e.state = CpuState::Missing("no usable PSCI".into());
                    e.sent = false;
                }
            },
            CpuAction::TakeOverFromPen {
                old_pen_base,
                status,
                ..
            } => {
                let old = plan
                    .old_pens
                    .iter()
                    .find(|p| p.header.phys_base == *old_pen_base);
                let r = old
                    .ok_or_else(|| "old pen vanished".to_string())
                    .and_then(|p| {
                        // SAFETY: a validated parkboot pen inside a /memreserve/; the
                        // protocol lets a loader write its mailboxes.
                        let mem = unsafe { ram_mut(p.header.phys_base, p.header.total_size) };
                        let mut old = Pen::open(mem, p.header.phys_base, &mut ops)
                            .map_err(|e| e.to_string())?;
                        if *status == SlotStatus::Unarmed {
                            old.rearm(&mut ops, c.mpidr).map_err(|e| e.to_string())?;
                            let t = timer::now_us();
                            while !matches!(old.status(&mut ops, c.mpidr), Ok(s) if s.is_held()) {
                                cpu::wait_event();
                                if timer::now_us() - t > ARRIVAL_TIMEOUT_US {
                                    return Err("did not re-arm in the old pen".into());
                                }
                            }
                        }
                        old.release(&mut ops, c.mpidr, entry)
                            .map_err(|e| e.to_string())
                    });
                if let Err(err) = r {
                    e.state = CpuState::Missing(format!("take-over: {err}"));
                    e.sent = false;
                }
            }
            CpuAction::SpinTableForeign { release_addr } => {
                if mmu::mapped_kind(*release_addr, 8) == Some(true) && release_addr % 8 == 0 {
                    // SAFETY: an aligned release word inside a /memreserve/ (planner checked).
                    unsafe { (*release_addr as usize as *mut u64).write_volatile(entry) };
                    ops.clean(*release_addr, 8);
                    ops.send_event();
                } else {
                    e.state =
                        CpuState::Missing(format!("release address {release_addr:#x} not in RAM"));
                    e.sent = false;
                }
            }
        }
        cpus.push(e);
    }
    // Wait for everyone at once: they come up in parallel.
    // SAFETY: our claimed pen region.
    let mut pen_view = Pen::open(unsafe { ram_mut(base, size) }, base, &mut ops)
        .map_err(|e| format!("pen: {e}"))?;
    await_arrivals(
        &mut pen_view,
        &mut ops,
        &mut cpus,
        |st| st == SlotStatus::Waiting,
        &format!("did not arrive within {} ms", ARRIVAL_TIMEOUT_US / 1000),
    );
    // Old pens whose CPUs all moved are dropped; others stay reserved.
    let moved: Vec<u64> = cpus
        .iter()
        .filter(|e| e.state == CpuState::InPen && e.how.starts_with("take over from parkboot"))
        .map(|e| e.mpidr)
        .collect();
    let dropped = plan.droppable(&moved, &maybe_inside);
    let kept: Vec<Region> = plan
        .old_pens
        .iter()
        .map(|p| p.reserve)
        .filter(|r| !dropped.contains(r))
        .collect();
    for r in &dropped {
        let ids: Vec<_> = st
            .map
            .claims()
            .filter(|c| {
                matches!(c.owner, Owner::MemReserve(_))
                    && c.start >= r.base
                    && c.end <= r.base + r.size
            })
            .map(|c| c.id)
            .collect();
        for id in ids {
            let _ = st.map.release(id);
        }
    }
    for p in plan
        .old_pens
        .iter()
        .filter(|p| !dropped.contains(&p.reserve))
    {
        let mut why = p.kept_because();
        why.extend(
            maybe_inside
                .iter()
                .map(|m| format!("CPU {m:#x} is ON (PSCI) and not accounted for")),
        );
        if !why.is_empty() {
            notes.push(format!(
                "old pen {:#x}+{:#x} kept reserved: {}",
                p.reserve.base,
                p.reserve.size,
                why.join(", ")
            ));
        }
    }
    for b in &plan.bad_pens {
        notes.push(format!(
            "reserved region {:#x}+{:#x} is not a valid pen ({}); left alone",
            b.reserve.base, b.reserve.size, b.error
        ));
    }
    let gather_us = timer::ticks_to_us(timer::ticks() - t0);
    stages::mark_span("CPUs gathered", t0, timer::ticks(), 0);
    let header = *pen_view.header();
    Ok(Smp {
        header,
        cpus,
        gather_us,
        dropped,
        kept,
        notes,
        resting: false,
        occupied: Vec::new(),
    })
}

/// Claims `[base, base + pen size)` and builds a fresh pen there with a slot
/// for each of `mpidrs` (all EMPTY, release words 0), cleaned to PoC and made
/// visible to instruction fetch.
fn build_pen(
    map: &mut MemMap,
    wake: &WakeConfig,
    base: u64,
    mpidrs: &[u64],
    generation: u64,
) -> Result<PenHeader, String> {
    let (code_bytes, entry_off, park_off) = code(wake);
    let layout = PenLayout::new(mpidrs.len(), code_bytes.len(), cpu::current_el())
        .map_err(|e| format!("pen layout: {e}"))?
        .with_generation(generation);
    if !base.is_multiple_of(pen::PEN_ALIGN) {
        return Err(format!("pen_addr {base:#x} is not 4 KiB aligned"));
    }
    let size = layout.total_size;
    let claim = map
        .claim(base, size, Owner::Pen)
        .map_err(|e| format!("pen: {e}"))?;
    // SAFETY: just claimed for the pen.
    let region = unsafe { ram_mut(base, size) };
    let code = PenCode {
        bytes: &code_bytes,
        entry: entry_off,
        park: park_off,
    };
    let header = match layout.build(region, base, &code, mpidrs) {
        Ok(h) => h,
        Err(e) => {
            let _ = map.release(claim);
            return Err(format!("pen build: {e}"));
        }
    };
    ArchCache.clean_invalidate(base, size);
    // SAFETY: the pen code was just written; make it visible to instruction fetch.
    unsafe { core::arch::asm!("ic ialluis", "dsb ish", "isb", options(nostack)) };
    Ok(header)
}

/// Adopts the predecessor's pen in place when it is ours (same code), at
/// our EL, has a slot for every CPU we need, no CPU of it is still out (a
/// kernel kept it), and `pen_addr` does not ask for another place. Then the
/// DT's /memreserve/ table stays exactly as it was.
#[allow(clippy::too_many_arguments)]
fn try_adopt(
    map: &mut MemMap,
    plan: &pen::ReclaimPlan,
    mpidrs: &[u64],
    el: u8,
    conduit: Option<psci::Conduit>,
    pen_addr: Option<u64>,
    t0: u64,
) -> Option<Result<Smp, String>> {
    let [old] = plan.old_pens.as_slice() else {
        return None;
    };
    let h = &old.header;
    let fits = old.same_code
        && old.blockers.is_empty()
        && h.entry_el == u32::from(el)
        && pen_addr.is_none_or(|a| a == h.phys_base)
        && mpidrs
            .iter()
            .all(|m| old.slots.iter().any(|s| s.mpidr == *m));
    if !fits {
        return None;
    }
    let base = h.phys_base;
    let size = h.total_size;
    // Its /memreserve/ claim becomes our pen claim, in one step: if the pen claim is refused
    // the reservation stays (a live pen is never left unprotected).
    let ids: Vec<_> = map
        .claims()
        .filter(|c| {
            matches!(c.owner, Owner::MemReserve(_)) && c.start >= base && c.end <= base + size
        })
        .map(|c| c.id)
        .collect();
    if let Err(e) = map.replace(&ids, base, size, Owner::Pen) {
        return Some(Err(format!("pen: {e}")));
    }
    let mut ops = ArchCache;
    // SAFETY: a validated parkboot pen of our own code, now claimed as ours.
    let mut p = match Pen::open(unsafe { ram_mut(base, size) }, base, &mut ops) {
        Ok(p) => p,
        Err(e) => return Some(Err(format!("pen: {e}"))),
    };
    if let Err(e) = p.adopt(&mut ops) {
        return Some(Err(format!("pen: {e}")));
    }
    let entry = p.header().entry_addr();
    let mut cpus = Vec::new();
    for c in &plan.cpus {
        let mut e = CpuEntry {
            mpidr: c.mpidr,
            path: c.path.clone(),
            how: String::from("adopted in place"),
            state: CpuState::InPen,
            arrival_us: None,
            slot: p.slot_addr(c.mpidr),
            sent: true,
        };
        match &c.action {
            CpuAction::Boot => e.state = CpuState::Boot,
            CpuAction::Lost { reason } => e.state = CpuState::Lost(reason.to_string()),
            CpuAction::TakeOverFromPen { status, .. } => {
                if *status == SlotStatus::Unarmed {
                    if let Err(err) = p.rearm(&mut ops, c.mpidr) {
                        e.state = CpuState::Missing(format!("re-arm: {err}"));
                    }
                }
            }
            CpuAction::PsciCpuOn => {
                e.how = String::from("PSCI CPU_ON");
                match conduit {
                    Some(cd) => {
                        if let Err(err) = psci::cpu_on(cd, c.mpidr, entry, e.slot.unwrap_or(0)) {
                            e.state = CpuState::Missing(format!("PSCI CPU_ON: {err}"));
                            e.sent = false;
                        }
                    }
                    None => {
                        e.state = CpuState::Missing("no usable PSCI".into());
                        e.sent = false;
                    }
                }
            }
            CpuAction::SpinTableForeign { .. } => {
                e.state = CpuState::Missing("foreign spin-table while adopting".into());
                e.sent = false;
            }
        }
        cpus.push(e);
    }
    await_arrivals(
        &mut p,
        &mut ops,
        &mut cpus,
        SlotStatus::is_held,
        "not held in the adopted pen",
    );
    let header = *p.header();
    let gather_us = timer::ticks_to_us(timer::ticks() - t0);
    stages::mark_span("CPUs gathered", t0, timer::ticks(), 0);
    Some(Ok(Smp {
        header,
        cpus,
        gather_us,
        dropped: Vec::new(),
        kept: Vec::new(),
        notes: Vec::new(),
        resting: false,
        occupied: Vec::new(),
    }))
}

/// Waits (WFE, woken by the pen's SEV or the timer event stream) until every
/// CPU expected in the pen shows a status `arrived` accepts; a CPU the pen
/// REFUSED (wrong EL) or that is still out after the timeout is marked
/// missing. All CPUs are waited for at once: they come up in parallel.
fn await_arrivals(
    pen: &mut Pen<'_>,
    ops: &mut ArchCache,
    cpus: &mut [CpuEntry],
    arrived: impl Fn(SlotStatus) -> bool,
    timeout_reason: &str,
) {
    let start = timer::now_us();
    loop {
        let mut pending = 0;
        for e in cpus
            .iter_mut()
            .filter(|e| e.state == CpuState::InPen && e.arrival_us.is_none())
        {
            match pen.status(ops, e.mpidr) {
                Ok(st) if arrived(st) => e.arrival_us = Some(timer::now_us() - start),
                Ok(SlotStatus::Refused) => {
                    e.state = CpuState::Missing("arrived at the wrong EL (refused)".into())
                }
                Ok(SlotStatus::Faulted) => {
                    let why = pen
                        .state(ops, e.mpidr)
                        .ok()
                        .and_then(|s| s.fault())
                        .map_or_else(|| "faulted".into(), |f| format!("stuck after an {f}"));
                    e.state = CpuState::Missing(why);
                }
                _ => pending += 1,
            }
        }
        if pending == 0 {
            return;
        }
        if timer::now_us() - start > ARRIVAL_TIMEOUT_US {
            for e in cpus
                .iter_mut()
                .filter(|e| e.state == CpuState::InPen && e.arrival_us.is_none())
            {
                e.state = CpuState::Missing(timeout_reason.into());
            }
            return;
        }
        cpu::wait_event();
    }
}

impl Smp {
    pub fn summary(&self) -> String {
        let inpen = self
            .cpus
            .iter()
            .filter(|c| c.state == CpuState::InPen)
            .count();
        let bad = self
            .cpus
            .iter()
            .filter(|c| matches!(c.state, CpuState::Missing(_) | CpuState::Lost(_)))
            .count();
        let mut s = if self.resting {
            let off = self
                .cpus
                .iter()
                .filter(|c| c.state == CpuState::Off)
                .count();
            format!(
                "CPUs: {} in DT, {off} resting in firmware until booti (pen_gather=boot), pen at {:#x} ({} bytes)",
                self.cpus.len(),
                self.header.phys_base,
                self.header.total_size,
            )
        } else {
            let mut s = format!(
                "CPUs: {} in DT, {inpen} in pen at {:#x} ({} bytes) after {} us",
                self.cpus.len(),
                self.header.phys_base,
                self.header.total_size,
                self.gather_us
            );
            s.push_str(&self.waits());
            s
        };
        if bad > 0 {
            s.push_str(&format!(", {bad} missing or lost"));
        }
        s
    }

    /// How the CPUs in the pen wait, as their state records say: `", waiting with wfi+gicv2"`
    /// (or a list when they differ); empty when none is in the pen.
    fn waits(&self) -> String {
        let base = self.header.phys_base;
        let mut ops = ArchCache;
        // SAFETY: our own claimed pen; only state records are read.
        let Ok(mut p) = Pen::open(
            unsafe { ram_mut(base, self.header.total_size) },
            base,
            &mut ops,
        ) else {
            return String::new();
        };
        let mut seen: Vec<(loader::wake::WaitMethod, usize)> = Vec::new();
        for c in self.cpus.iter().filter(|c| c.state == CpuState::InPen) {
            let Ok(st) = p.state(&mut ops, c.mpidr) else {
                continue;
            };
            match seen.iter_mut().find(|(m, _)| *m == st.wait) {
                Some((_, n)) => *n += 1,
                None => seen.push((st.wait, 1)),
            }
        }
        match seen.as_slice() {
            [] => String::new(),
            [(m, _)] => format!(", waiting with {m}"),
            many => {
                let parts: Vec<String> = many.iter().map(|(m, n)| format!("{n} {m}")).collect();
                format!(", waiting with {}", parts.join(", "))
            }
        }
    }

    /// What a gather prints: the summary, then a line for each CPU missing or lost, each stray
    /// in our pen and each old pen kept reserved.
    pub fn gather_report(&self) -> String {
        let mut o = format!("{}\n", self.summary());
        for c in self
            .cpus
            .iter()
            .filter(|c| matches!(c.state, CpuState::Missing(_) | CpuState::Lost(_)))
        {
            o.push_str(&format!("CPU {:#x} ({}): {}\n", c.mpidr, c.path, c.state));
        }
        for st in self.strays() {
            o.push_str(&format!("CPU {:#x}: stray in the pen: {st}\n", st.mpidr));
        }
        for n in self.notes.iter().filter(|n| n.starts_with("old pen ")) {
            o.push_str(&format!("CPUs: {n}\n"));
        }
        o
    }

    /// Our pen, opened on its claimed region.
    fn open_pen<'a>(&self, ops: &mut ArchCache) -> Result<Pen<'a>, String> {
        let base = self.header.phys_base;
        // SAFETY: our own claimed pen; callers access it per docs/protocol.md §4.
        Pen::open(unsafe { ram_mut(base, self.header.total_size) }, base, ops)
            .map_err(|e| format!("pen: {e}"))
    }

    /// The stray records of our pen (CPUs that reached it without a slot).
    fn strays(&self) -> Vec<pen::StrayRecord> {
        let mut ops = ArchCache;
        self.open_pen(&mut ops)
            .map(|mut p| p.strays(&mut ops))
            .unwrap_or_default()
    }

    /// Brings the CPU table up to date with the pen before the machine is handed on: a CPU
    /// that was sent to the pen but missed the gather and has arrived since is in the pen
    /// now (and is handed over like the others); then records what may still be in our pen
    /// without being ours to hand over — strays, CPUs stuck in it (REFUSED, FAULTED) or sent
    /// to it and never seen, unless firmware reports them OFF — which keeps the pen reserved
    /// whatever the CPUs' method (#17 items 1 and 2). Returns a line per late arrival.
    pub fn refresh(&mut self, psci: Option<psci::Conduit>) -> Vec<String> {
        let mut ops = ArchCache;
        let mut lines = Vec::new();
        let mut occupied = Vec::new();
        let Ok(mut p) = self.open_pen(&mut ops) else {
            self.occupied = Vec::from([String::from("the pen does not validate")]);
            return lines;
        };
        for c in self
            .cpus
            .iter_mut()
            .filter(|c| c.sent && matches!(c.state, CpuState::Missing(_)))
        {
            let st = p.state(&mut ops, c.mpidr).ok();
            let word = p.release_word(&mut ops, c.mpidr).ok();
            match st.map(|s| s.status) {
                Some(s) if s.is_held() && word == Some(0) => {
                    lines.push(format!(
                        "CPU {:#x} ({}) arrived late: in the pen now",
                        c.mpidr, c.path
                    ));
                    c.state = CpuState::InPen;
                }
                Some(s) if s.in_pen() => {
                    occupied.push(format!("CPU {:#x} is {s} in it", c.mpidr));
                }
                _ if psci.is_some_and(|cd| psci::is_off(cd, c.mpidr)) => {
                    c.sent = false; // firmware has it: it cannot come any more
                }
                _ => occupied.push(format!("CPU {:#x} may still arrive", c.mpidr)),
            }
        }
        for st in p.strays(&mut ops) {
            occupied.push(format!("stray CPU {:#x} has no slot", st.mpidr));
        }
        self.occupied = occupied;
        lines
    }

    pub fn report(&self) -> String {
        let mut o = String::new();
        o.push_str(&format!("{}\n", self.summary()));
        o.push_str(
            "  MPIDR       state     slot (cpu-release-addr)  arrived   waits with  wakes   how\n",
        );
        let base = self.header.phys_base;
        let mut ops = ArchCache;
        // SAFETY: our own claimed pen; only state records are read.
        let mut live = Pen::open(
            unsafe { ram_mut(base, self.header.total_size) },
            base,
            &mut ops,
        )
        .ok();
        for c in &self.cpus {
            let rec = live
                .as_mut()
                .filter(|_| c.state == CpuState::InPen)
                .and_then(|p| p.state(&mut ops, c.mpidr).ok());
            let (wait, wakes) = rec
                .map(|r| (r.wait.to_string(), r.wakes.to_string()))
                .unwrap_or_else(|| ("-".into(), "-".into()));
            let slot = c
                .slot
                .map(|a| format!("{a:#x}"))
                .unwrap_or_else(|| "-".into());
            let (state, why) = match &c.state {
                CpuState::Boot => ("boot", String::new()),
                CpuState::InPen => ("parked", String::new()),
                CpuState::Off => ("off", String::new()),
                CpuState::Missing(w) => ("missing", format!(": {w}")),
                CpuState::Lost(w) => ("lost", format!(": {w}")),
            };
            let arr = c
                .arrival_us
                .map(|u| format!("{u} us"))
                .unwrap_or_else(|| "-".into());
            o.push_str(&format!(
                "  {:#010x}  {state:<8}  {slot:<23}  {arr:<8}  {wait:<10}  {wakes:<6}  {}{why}\n",
                c.mpidr, c.how
            ));
        }
        o.push_str(&format!("  cpu-park-addr {:#x}\n", self.header.park_addr()));
        for st in self.strays() {
            o.push_str(&format!("  stray {:#010x}: {st}\n", st.mpidr));
        }
        if !self.occupied.is_empty() {
            o.push_str(&format!(
                "  note: the pen stays reserved: {}\n",
                self.occupied.join(", ")
            ));
        }
        for k in &self.kept {
            o.push_str(&format!(
                "  note: old pen {:#x}+{:#x} kept reserved (a CPU of it is not back)\n",
                k.base, k.size
            ));
        }
        for n in &self.notes {
            o.push_str(&format!("  note: {n}\n"));
        }
        o
    }

    pub fn unusable_paths(&self) -> Vec<String> {
        self.cpus
            .iter()
            .filter(|c| !matches!(c.state, CpuState::Boot | CpuState::InPen | CpuState::Off))
            .map(|c| c.path.clone())
            .collect()
    }

    /// cpu_method=psci: release every pen CPU into CPU_OFF and wait until firmware reports it
    /// OFF (so nothing of ours still runs anywhere). Each CPU's state follows what happened to
    /// it: OFF once firmware says so; still in the pen if its release was refused; lost if it
    /// was released and never turned off. Any of the last two fails the hand-back.
    pub fn hand_back_to_firmware(&mut self, conduit: psci::Conduit) -> Result<(), String> {
        self.end_hold();
        let mut ops = ArchCache;
        let mut p = self.open_pen(&mut ops)?;
        let stub = psci::cpu_off_stub(conduit);
        let mut first_err: Option<String> = None;
        let mut leaving: Vec<u64> = Vec::new();
        for c in self.cpus.iter().filter(|c| c.state == CpuState::InPen) {
            match p.release(&mut ops, c.mpidr, stub) {
                Ok(()) => leaving.push(c.mpidr),
                Err(e) => {
                    first_err.get_or_insert(format!("CPU {:#x}: {e}", c.mpidr));
                }
            }
        }
        let start = timer::now_us();
        for c in self.cpus.iter_mut().filter(|c| leaving.contains(&c.mpidr)) {
            loop {
                if psci::is_off(conduit, c.mpidr) {
                    c.state = CpuState::Off;
                    break;
                }
                if timer::now_us() - start > ARRIVAL_TIMEOUT_US {
                    c.state = CpuState::Lost("released to PSCI CPU_OFF, never reported OFF".into());
                    first_err.get_or_insert(format!("CPU {:#x} did not turn off", c.mpidr));
                    break;
                }
                cpu::wait_event();
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Whether some CPU waits in firmware (rested, or handed back by a boot that failed
    /// after it): a spin-table boot must recall it first.
    fn any_off(&self) -> bool {
        self.cpus.iter().any(|c| c.state == CpuState::Off)
    }

    /// `pen_gather=boot`: the CPUs just taken over from a predecessor's pen
    /// wait in firmware (PSCI CPU_OFF) instead of in the pen while the loader
    /// runs — under QEMU TCG a vCPU in the pen's WFE loop spins a host thread;
    /// on hardware it saves power. [`Smp::recall`] brings them back.
    pub fn rest_in_firmware(&mut self, conduit: psci::Conduit) -> Result<(), String> {
        self.hand_back_to_firmware(conduit)?;
        self.resting = true;
        Ok(())
    }

    /// Brings CPUs waiting in firmware (resting, or handed back by a boot that failed later)
    /// back with PSCI CPU_ON into the pen at `target`: the current pen (each CPU arrives
    /// UNARMED, because its release word still holds the CPU_OFF stub; it is re-armed, then
    /// WAITING), or a new pen built there, after which the current one is dropped unless
    /// something may still be in it (firmware reported every CPU of ours OFF, but strays or
    /// stuck CPUs stay).
    pub fn recall(
        &mut self,
        st: Ctx<'_>,
        conduit: psci::Conduit,
        target: u64,
    ) -> Result<(), String> {
        let t0 = timer::ticks();
        let old = self.header;
        let mut ops = ArchCache;
        if target != old.phys_base && !self.refresh(Some(conduit)).is_empty() {
            return Err("a CPU arrived in the pen late; booti again".into());
        }
        if target != old.phys_base && !self.occupied.is_empty() {
            return Err(format!(
                "pen_addr {target:#x}: the pen at {:#x} cannot move: {}",
                old.phys_base,
                self.occupied.join(", ")
            ));
        }
        if target != old.phys_base {
            let mpidrs: Vec<u64> = self
                .cpus
                .iter()
                .filter(|c| matches!(c.state, CpuState::Boot | CpuState::Off))
                .map(|c| c.mpidr & pen::MPIDR_MASK)
                .collect();
            self.header = build_pen(
                st.map,
                st.wake,
                target,
                &mpidrs,
                old.generation.wrapping_add(1),
            )?;
            let id = st
                .map
                .claims()
                .find(|c| c.owner == Owner::Pen && c.start == old.phys_base)
                .map(|c| c.id);
            if let Some(id) = id {
                let _ = st.map.release(id);
            }
            let r = pen_region(&old);
            let in_dt = st.dt.is_some_and(|d| d.memreserve.contains(&r));
            if in_dt && !self.dropped.contains(&r) {
                self.dropped.push(r);
            }
        }
        let base = self.header.phys_base;
        let entry = self.header.entry_addr();
        // The pen is opened (validated) before any CPU is woken: an error
        // here leaves every resting CPU resting, and a later recall can
        // still send CPU_ON.
        // SAFETY: our own claimed pen.
        let mut p = Pen::open(
            unsafe { ram_mut(base, self.header.total_size) },
            base,
            &mut ops,
        )
        .map_err(|e| format!("pen: {e}"))?;
        for c in self.cpus.iter_mut() {
            if c.state == CpuState::Off {
                c.arrival_us = None;
                c.state = CpuState::InPen;
                c.how = String::from("PSCI CPU_ON back from firmware");
                c.slot = p.slot_addr(c.mpidr);
                if let Err(e) = psci::cpu_on(conduit, c.mpidr, entry, c.slot.unwrap_or(0)) {
                    c.state = CpuState::Missing(format!("PSCI CPU_ON: {e}"));
                    c.sent = false;
                }
            }
        }
        await_arrivals(
            &mut p,
            &mut ops,
            &mut self.cpus,
            |s| s == SlotStatus::Waiting || s == SlotStatus::Unarmed,
            "did not come back from firmware",
        );
        let mut rearmed = false;
        for c in self.cpus.iter_mut().filter(|c| c.state == CpuState::InPen) {
            if p.status(&mut ops, c.mpidr) == Ok(SlotStatus::Unarmed) {
                if let Err(e) = p.rearm(&mut ops, c.mpidr) {
                    c.state = CpuState::Missing(format!("re-arm: {e}"));
                }
                c.arrival_us = None;
                rearmed = true;
            }
        }
        if rearmed {
            await_arrivals(
                &mut p,
                &mut ops,
                &mut self.cpus,
                |s| s == SlotStatus::Waiting,
                "did not re-arm",
            );
        }
        for c in self.cpus.iter_mut() {
            c.slot = p.slot_addr(c.mpidr);
        }
        self.resting = false;
        self.gather_us = timer::ticks_to_us(timer::ticks() - t0);
        stages::mark_span("CPUs recalled", t0, timer::ticks(), 0);
        Ok(())
    }
}

/// Writes the hold period into the wake block of our pen at `base` (code identical to ours)
/// and kicks the CPUs held in it (`held`: MPIDRs) so that each sees it now rather than after
/// its current sleep. Only CPUs held with their release word 0 are kicked (a kick must never
/// outlive a CPU's stay in the pen, docs/protocol.md §3.3).
fn set_hold(base: u64, total: u64, ticks: u64, held: &[u64]) {
    let at = base
        + u64::from(pen::CODE_OFFSET)
        + wake_block_offset()
        + loader::wake::off::HOLD_PERIOD as u64;
    // SAFETY: an aligned word of the wake block inside our own claimed pen; loaders own the
    // code area (docs/protocol.md §4), pen CPUs only read it.
    unsafe { (at as usize as *mut u64).write_volatile(ticks) };
    ArchCache.clean(at, 8);
    let mut ops = ArchCache;
    // SAFETY: our own claimed pen; state records and release words are only read.
    let Ok(mut p) = Pen::open(unsafe { ram_mut(base, total) }, base, &mut ops) else {
        return;
    };
    let targets: Vec<(u64, u8)> = held
        .iter()
        .filter_map(|&m| {
            let st = p.state(&mut ops, m).ok()?;
            let idle = st.status.is_held() && p.release_word(&mut ops, m).ok()? == 0;
            idle.then_some((m, st.gic_target))
        })
        .collect();
    gic::kick_cpus(&targets);
}

impl Smp {
    fn held_mpidrs(&self) -> Vec<u64> {
        self.cpus
            .iter()
            .filter(|c| c.state == CpuState::InPen)
            .map(|c| c.mpidr)
            .collect()
    }

    /// While the loader runs, the pen's CPUs may sleep the long hold period (`ticks`, the
    /// wake block's `hold_ticks`); before any release that sends a CPU out of the pen, and
    /// before the machine is handed on, the hold ends (`ticks` 0) so that a release — with no
    /// kick, as a stock OS writes it — is seen within the short wake period.
    fn set_hold(&self, ticks: u64) {
        set_hold(
            self.header.phys_base,
            self.header.total_size,
            ticks,
            &self.held_mpidrs(),
        );
    }

    /// Before the machine is handed on (or CPUs are released out of the pen).
    pub fn end_hold(&self) {
        self.set_hold(0);
    }
}

impl Smp {
    /// The pen as booti's planner needs it for the kernel's DT.
    pub fn pen_facts(&self) -> PenFacts {
        PenFacts {
            region: pen_region(&self.header),
            park: self.header.park_addr(),
            release: self
                .cpus
                .iter()
                .filter_map(|c| c.slot.map(|a| (c.path.clone(), a)))
                .collect(),
            unusable: self.unusable_paths(),
            dropped: self.dropped.clone(),
            occupied: !self.occupied.is_empty(),
        }
    }
}

/// The CPUs part: the pen and its CPUs once gathered, or why they were not.
pub struct Cpus {
    smp: Option<Smp>,
    error: Option<String>,
}

impl Cpus {
    pub const fn new() -> Self {
        Self {
            smp: None,
            error: None,
        }
    }

    /// Whether a gather was tried (it may have failed).
    pub const fn attempted(&self) -> bool {
        self.smp.is_some() || self.error.is_some()
    }

    /// Gathers the CPUs into a pen (at `pen_addr` if given) and keeps the result; returns the
    /// pen, or why there is none (kept too).
    pub fn gather(&mut self, st: Ctx<'_>, pen_addr: Option<u64>) -> Result<&Smp, String> {
        let hold = st.wake.hold_ticks;
        match gather(st, pen_addr) {
            Ok(s) => {
                // Ours now, with the CPUs in: they may sleep the hold period.
                s.set_hold(hold);
                Ok(self.smp.insert(s))
            }
            Err(e) => {
                self.error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// `cpus`: the table, or why there is none.
    pub fn report(&self) -> String {
        match (&self.smp, &self.error) {
            (Some(s), _) => s.report(),
            (None, Some(e)) => format!("CPUs not gathered: {e}\n"),
            (None, None) => "CPUs not gathered\n".to_string(),
        }
    }

    /// Lets the pen's CPUs wait in firmware; returns the line to print (None: no pen).
    pub fn rest_in_firmware(&mut self, conduit: psci::Conduit) -> Option<String> {
        let smp = self.smp.as_mut()?;
        Some(match smp.rest_in_firmware(conduit) {
            Ok(()) => smp.summary(),
            Err(e) => format!("CPUs: cannot rest in firmware: {e}"),
        })
    }

    /// Recalls CPUs waiting in firmware into the pen (at `target` if given, else where it
    /// is); returns the summary to print, or None when none wait there.
    pub fn recall(&mut self, st: Ctx<'_>, target: Option<u64>) -> Result<Option<String>, String> {
        let Some(smp) = self.smp.as_mut().filter(|s| s.any_off()) else {
            return Ok(None);
        };
        let target = target.unwrap_or(smp.header.phys_base);
        match st.psci {
            Some(cd) => smp.recall(st, cd, target).map(|()| Some(smp.summary())),
            None => Err("no usable PSCI".into()),
        }
    }

    /// cpu_method=psci at booti: every pen CPU goes back to firmware.
    pub fn hand_back_to_firmware(&mut self, conduit: psci::Conduit) -> Result<(), String> {
        match self.smp.as_mut() {
            Some(smp) => smp.hand_back_to_firmware(conduit),
            None => Ok(()),
        }
    }

    /// Before booti plans: late arrivals join, and what keeps the pen reserved is recorded
    /// (see [`Smp::refresh`]); returns a line per late arrival.
    pub fn refresh(&mut self, psci: Option<psci::Conduit>) -> Vec<String> {
        self.smp
            .as_mut()
            .map(|s| s.refresh(psci))
            .unwrap_or_default()
    }

    /// Before the handoff: the pen's CPUs go back to the short wake period.
    pub fn end_hold(&self) {
        if let Some(smp) = &self.smp {
            smp.end_hold();
        }
    }

    /// The pen as booti's planner needs it (None: not gathered).
    pub fn pen_facts(&self) -> Option<PenFacts> {
        self.smp.as_ref().map(Smp::pen_facts)
    }
}

/// The pen claim's region, for the DT's /memreserve/.
pub fn pen_region(h: &PenHeader) -> Region {
    Region {
        base: h.phys_base,
        size: h.total_size,
    }
}
