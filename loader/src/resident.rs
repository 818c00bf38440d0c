//! parkboot as the platform's PSCI firmware (docs/psci.md): the resident part, started at EL3
//! from reset (`el3.S` copied the image from flash into secure RAM and continues here on the
//! primary CPU). [`main`] sets the machine up for the non-secure world and enters the normal
//! loader there; [`parkboot_smc`] answers every PSCI call after that. What they decide is in
//! the host-tested `loader::psci`; the CPU side is `arch::el3` and `el3.S`.

use crate::arch::{cpu, el3, heap, timer};
use crate::footprint::Footprint;
use crate::println;
use crate::smp;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use loader::dt::{self, GicVersion, Region};
use loader::pen::{self, CacheOps, Pen, PenCode, PenLayout, SlotStatus};
use loader::psci::resident::{self, Layout, PowerGpio, SecureInfo};
use loader::psci::{self, Action, Call, Caller, CpuState, CpuTable};
use loader::wake::WakeConfig;

/// How long a secondary may take from reset to the resident pen. Generous: on QEMU (TCG)
/// every CPU still in the reset hold spins (WFE does not sleep there), so with 8 CPUs on a
/// busy 2-core host the last one can take seconds; the wait ends as soon as all are in.
const ARRIVAL_TIMEOUT_US: u64 = 10_000_000;
/// Most RAM banks and secure regions kept for the SMC handler's checks.
const MAX_REGIONS: usize = 16;

/// What the SMC handler needs, written once by [`main`] before any CPU runs non-secure code.
struct Resident {
    pen_base: u64,
    pen_size: u64,
    pen_park: u64,
    nr: usize,
    boot: usize,
    target_el: u8,
    ns_ram: [Region; MAX_REGIONS],
    nr_ram: usize,
    secure: [Region; MAX_REGIONS],
    nr_secure: usize,
    poweroff: Option<PowerGpio>,
    restart: Option<PowerGpio>,
}

struct Once(UnsafeCell<Option<Resident>>);
// SAFETY: written once by the primary before any other CPU can read it; read-only after.
unsafe impl Sync for Once {}
static RESIDENT: Once = Once(UnsafeCell::new(None));

fn resident_state() -> Option<&'static Resident> {
    // SAFETY: see `Once`.
    unsafe { (*RESIDENT.0.get()).as_ref() }
}

/// Cache maintenance at EL3 with the MMU off: nothing is cached (secure RAM is never mapped
/// by the non-secure world), so only the event matters.
struct El3Ops;
impl CacheOps for El3Ops {
    fn clean(&mut self, _: u64, _: u64) {}
    fn clean_invalidate(&mut self, _: u64, _: u64) {}
    fn send_event(&mut self) {
        cpu::sev();
    }
}

/// Stops with one line: the resident part cannot go on.
fn halt(why: &str) -> ! {
    println!("parkboot (EL3): {why}; halted");
    crate::arch::exceptions::halt("the resident PSCI part could not start")
}

/// The DT the platform put at `addr` (QEMU: the start of RAM), at most 2 MiB.
fn platform_dt(addr: u64) -> Result<&'static [u8], String> {
    // SAFETY: 40 bytes at the board's DT address (RAM; MMU off, read only).
    let head = unsafe { core::slice::from_raw_parts(addr as usize as *const u8, 40) };
    let total = dt::fdt_totalsize(head).map_err(|e| format!("DT at {addr:#x}: {e}"))?;
    if total > 2 << 20 {
        return Err(format!(
            "DT at {addr:#x}: totalsize {total:#x} is over 2 MiB"
        ));
    }
    // SAFETY: `total` bytes of DT (checked above).
    Ok(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, total) })
}

/// The primary CPU at EL3, in its resident copy: sets up the pen, the GIC, the secondaries,
/// the non-secure DT and the non-secure loader, then enters it.
pub fn main(entry_ticks: u64) -> ! {
    let board: &boards::Board = boards::DEFAULT_BOARD;
    crate::console::Console::early(board);
    let fp = Footprint::from_linker();
    let (lo, hi) = fp.heap();
    // SAFETY: the resident copy's own heap, used by nothing else.
    unsafe { heap::init(lo as usize, hi as usize) };
    println!();
    println!(
        "{} (EL3): resident PSCI part at {:#x}",
        crate::firmware::version(),
        fp.base()
    );
    let Some(b) = board.el3 else {
        halt("this board has no EL3 description")
    };
    let blob = platform_dt(b.dtb).unwrap_or_else(|e| halt(&e));
    let info = dt::parse(blob).unwrap_or_else(|e| halt(&format!("DT: {e}")));
    let secure = SecureInfo::parse(blob).unwrap_or_else(|e| halt(&e));
    let boot_mpidr = cpu::mpidr();
    let cpus: Vec<(u64, String)> = info
        .cpus
        .iter()
        .filter(|c| c.status.is_enabled())
        .map(|c| (c.mpidr, c.path.clone()))
        .collect();
    let Some(boot) = cpus.iter().position(|c| c.0 == boot_mpidr) else {
        halt(&format!("the boot CPU {boot_mpidr:#x} has no cpu node"))
    };
    let (code, entry_off, park_off) = smp::code(&WakeConfig::wfe_only());
    let pl =
        PenLayout::new(cpus.len(), code.len(), 3).unwrap_or_else(|e| halt(&format!("pen: {e}")));
    let ram: Vec<Region> = info.memory.clone();
    let layout = Layout::plan(
        &b,
        cpus.len(),
        fp.size(),
        pl.total_size,
        fp.size(),
        blob.len() as u64,
        &ram,
        &secure,
    )
    .unwrap_or_else(|e| halt(&e));
    gic_secure_init(&info);
    // The resident pen (entry_el 3), in secure RAM.
    let mpidrs: Vec<u64> = cpus.iter().map(|c| c.0).collect();
    // SAFETY: the pen's place in secure RAM (checked by the layout), used by nothing else.
    let region = unsafe {
        core::slice::from_raw_parts_mut(
            layout.pen.base as usize as *mut u8,
            layout.pen.size as usize,
        )
    };
    let header = pl
        .build(
            region,
            layout.pen.base,
            &PenCode {
                bytes: &code,
                entry: entry_off,
                park: park_off,
            },
            &mpidrs,
        )
        .unwrap_or_else(|e| halt(&format!("pen: {e}")));
    // SAFETY: the pen code was just written; make it visible to instruction fetch.
    unsafe { core::arch::asm!("dsb sy", "ic iallu", "dsb sy", "isb", options(nostack)) };
    let target_el = if el3::has_el2() { 2 } else { 1 };
    for (i, (m, _)) in cpus.iter().enumerate() {
        el3::set_cpu(
            i,
            el3::El3Cpu {
                mpidr: *m,
                stack_top: layout.stack_top(i),
                index: i as u64,
                ns_el: u64::from(target_el),
                ..el3::El3Cpu::default()
            },
        );
    }
    el3::set_nr_cpus(cpus.len());
    let arrived = gather(&layout, &cpus, boot, header.entry_addr());
    let mut on = Vec::new();
    let mut failed = Vec::new();
    for (i, (m, path)) in cpus.iter().enumerate() {
        if i == boot || arrived.contains(&i) {
            on.push(path.clone());
        } else {
            println!("parkboot (EL3): CPU {m:#x} ({path}) did not reach the pen: status \"fail\"");
            failed.push(path.clone());
        }
    }
    let mut r = Resident {
        pen_base: header.phys_base,
        pen_size: header.total_size,
        pen_park: header.park_addr(),
        nr: cpus.len(),
        boot,
        target_el,
        ns_ram: [Region::default(); MAX_REGIONS],
        nr_ram: ram.len().min(MAX_REGIONS),
        secure: [Region::default(); MAX_REGIONS],
        nr_secure: 0,
        poweroff: secure.poweroff,
        restart: secure.restart,
    };
    for (d, s) in r.ns_ram.iter_mut().zip(&ram) {
        *d = *s;
    }
    let mut all_secure = secure.regions.clone();
    all_secure.push(Region::new(b.secure_ram.0, b.secure_ram.1));
    all_secure.push(Region::new(b.flash.0, b.flash.1));
    r.nr_secure = all_secure.len().min(MAX_REGIONS);
    for (d, s) in r.secure.iter_mut().zip(&all_secure) {
        *d = *s;
    }
    // SAFETY: the only write, before any CPU runs non-secure code.
    unsafe { *RESIDENT.0.get() = Some(r) };

    // The non-secure world: its DT (PSCI over SMC), its loader.
    let dt_out = resident::ns_dt(blob, &on, &failed).unwrap_or_else(|e| halt(&e));
    if b.dtb + dt_out.len() as u64 > layout.ns_loader {
        halt("the DT for the non-secure world does not fit below its loader");
    }
    // SAFETY: the DT's place in RAM (QEMU's, below the non-secure loader, checked above).
    unsafe {
        core::ptr::copy_nonoverlapping(dt_out.as_ptr(), b.dtb as usize as *mut u8, dt_out.len())
    };
    copy_words(b.flash.0, layout.ns_loader, fp.file_size());
    let us = timer::ticks_to_us(timer::ticks().wrapping_sub(entry_ticks));
    println!(
        "parkboot (EL3): PSCI 1.1 over SMC; {} of {} CPUs in the resident pen at {:#x} ({} bytes) after {us} us; non-secure loader at {:#x} (EL{target_el})",
        on.len(),
        cpus.len(),
        header.phys_base,
        header.total_size,
        layout.ns_loader
    );
    el3::set_entry(boot, layout.ns_loader, b.dtb, target_el);
    crate::arch::uart::flush();
    // SAFETY: the boot CPU's record, its stack in secure RAM, the loader copied and the DT
    // written: entering the non-secure loader like a previous stage would.
    unsafe { el3::enter_ns(boot) }
}

/// Copies `len` bytes (rounded up to 8) with 64-bit accesses (MMU off: Device memory).
fn copy_words(src: u64, dst: u64, len: u64) {
    for off in (0..len.div_ceil(8)).map(|i| i * 8) {
        // SAFETY: the image in flash and the non-secure loader's place in RAM (the layout
        // checked it), both 8-byte aligned.
        unsafe {
            let v = core::ptr::read_volatile((src + off) as usize as *const u64);
            core::ptr::write_volatile((dst + off) as usize as *mut u64, v);
        }
    }
    cpu::dsb();
}

/// The GIC's security set-up that only EL3 can do (the non-secure world then uses it as
/// without EL3), and what el3.S needs for each CPU's part.
fn gic_secure_init(info: &dt::DtInfo) {
    let Some(g) = &info.gic else {
        return;
    };
    let Some(gicd) = g.distributor().map(|r| r.base) else {
        return;
    };
    match g.version {
        GicVersion::V2 => {
            el3::gic_secure_init_v2(gicd);
            let gicc = g.cpu_interface().map_or(0, |r| r.base);
            el3::set_gic(el3::El3Gic {
                version: 2,
                gicd,
                gicc,
            });
        }
        GicVersion::V3 => {
            let regions: Vec<(u64, u64)> = g
                .redistributors()
                .iter()
                .map(|r| (r.base, r.size))
                .collect();
            el3::gic_secure_init_v3(gicd, &regions);
            el3::set_gic(el3::El3Gic {
                version: 3,
                gicd,
                gicc: 0,
            });
        }
    }
}

/// Brings the secondaries from the reset hold into the resident pen: each hold word that
/// says HOLD gets the pen's entry (again whenever it says HOLD again: a CPU may arrive after
/// the first write); returns the indices of the CPUs seen WAITING in the pen within [`ARRIVAL_TIMEOUT_US`].
fn gather(layout: &Layout, cpus: &[(u64, String)], boot: usize, entry: u64) -> Vec<usize> {
    let mut ops = El3Ops;
    let start = timer::now_us();
    let mut arrived: Vec<usize> = Vec::new();
    loop {
        // SAFETY: the resident pen, just built.
        let mem = unsafe {
            core::slice::from_raw_parts_mut(
                layout.pen.base as usize as *mut u8,
                layout.pen.size as usize,
            )
        };
        let Ok(mut p) = Pen::open(mem, layout.pen.base, &mut ops) else {
            return arrived;
        };
        let mut pending = 0;
        for (i, (m, _)) in cpus.iter().enumerate() {
            if i == boot || arrived.contains(&i) {
                continue;
            }
            if p.status(&mut ops, *m) == Ok(SlotStatus::Waiting) {
                arrived.push(i);
                continue;
            }
            pending += 1;
            if let Some(h) = resident::hold_index(*m) {
                if el3::hold_read(layout.hold.base, h) == resident::HOLD_WAITING {
                    el3::hold_write(layout.hold.base, h, entry);
                }
            }
        }
        if pending == 0 || timer::now_us() - start > ARRIVAL_TIMEOUT_US {
            return arrived;
        }
    }
}

/// The resident pen, opened for one SMC (under the lock).
fn open_pen<'a>(r: &Resident, ops: &mut El3Ops) -> Option<Pen<'a>> {
    // SAFETY: the resident pen in secure RAM; every SMC handler opens it under the lock.
    let mem = unsafe {
        core::slice::from_raw_parts_mut(r.pen_base as usize as *mut u8, r.pen_size as usize)
    };
    Pen::open(mem, r.pen_base, ops).ok()
}

/// The CPUs as the pen and the records show them.
struct PenCpus<'a, 'p> {
    r: &'a Resident,
    pen: core::cell::RefCell<&'a mut Pen<'p>>,
}

impl CpuTable for PenCpus<'_, '_> {
    fn len(&self) -> usize {
        self.r.nr
    }
    fn index_of(&self, mpidr: u64) -> Option<usize> {
        self.pen
            .borrow()
            .slot_index(mpidr)
            .filter(|&i| i < self.r.nr)
    }
    fn state(&self, i: usize) -> CpuState {
        let m = el3::cpu(i).mpidr;
        let mut ops = El3Ops;
        let mut p = self.pen.borrow_mut();
        let status = p.status(&mut ops, m);
        let word = p.release_word(&mut ops, m);
        match (status, word) {
            (Ok(s), Ok(0)) if s.is_held() => CpuState::Off,
            (Ok(s), Ok(_)) if s.is_held() => CpuState::OnPending,
            (Ok(SlotStatus::Released), _) => CpuState::On,
            (Ok(SlotStatus::Empty), _) if i == self.r.boot => CpuState::On,
            _ => CpuState::Stuck,
        }
    }
    fn leaving(&self, i: usize) -> bool {
        el3::cpu(i).leaving != 0
    }
}

/// Every SMC from the non-secure world (el3.S `el3_sync_lower`): `frame` holds x0..x18, x29,
/// x30 of the caller; x0 is replaced by the result.
///
/// # Safety
/// Called by el3.S only, with `frame` on this CPU's EL3 stack.
#[no_mangle]
pub unsafe extern "C" fn parkboot_smc(frame: *mut [u64; 22], _spsr: u64) {
    // SAFETY: el3.S passes the frame it just saved on this CPU's stack.
    let x = unsafe { &mut *frame };
    let Some(r) = resident_state() else {
        x[0] = i64::from(psci::NOT_SUPPORTED) as u64;
        return;
    };
    let call = psci::decode(x[0], x[1], x[2], x[3]);
    let me = el3::current_index().min(r.nr.saturating_sub(1));
    let caller = Caller {
        index: me,
        el: r.target_el,
        ns_ram: &r.ns_ram[..r.nr_ram],
        secure: &r.secure[..r.nr_secure],
    };
    let needs_cpus = matches!(
        call,
        Call::CpuOn { .. } | Call::CpuOff | Call::AffinityInfo { .. }
    );
    if !needs_cpus {
        let action = psci::handle(call, &caller, &NoCpus);
        x[0] = finish(r, action, me);
        return;
    }
    el3::lock(me, r.nr);
    let mut ops = El3Ops;
    let Some(mut pen) = open_pen(r, &mut ops) else {
        el3::unlock(me);
        x[0] = i64::from(psci::INTERNAL_FAILURE) as u64;
        return;
    };
    // The view borrows the pen only for the decision; the action below uses it again.
    let action = {
        let view = PenCpus {
            r,
            pen: core::cell::RefCell::new(&mut pen),
        };
        psci::handle(call, &caller, &view)
    };
    let result = match action {
        Action::TurnOn {
            index,
            entry,
            context,
            el,
        } => {
            el3::set_entry(index, entry, context, el);
            match pen.release(&mut ops, el3::cpu(index).mpidr, el3::cpu_on_entry()) {
                Ok(()) => i64::from(psci::SUCCESS),
                Err(_) => i64::from(psci::INTERNAL_FAILURE),
            }
        }
        Action::TurnOff => {
            el3::set_leaving(me, true);
            let _ = pen.clear_release(&mut ops, el3::cpu(me).mpidr);
            el3::unlock(me);
            // SAFETY: the resident pen's park entry; this CPU's release word is 0.
            unsafe { el3::park(r.pen_park) }
        }
        Action::Return(v) => v,
        other => {
            el3::unlock(me);
            x[0] = finish(r, other, me);
            return;
        }
    };
    el3::unlock(me);
    x[0] = result as u64;
}

/// Carries out an action that needs no CPU state; the value for x0.
fn finish(r: &Resident, action: Action, _me: usize) -> u64 {
    let v = match action {
        Action::Return(v) => v,
        Action::Standby => {
            el3::standby();
            i64::from(psci::SUCCESS)
        }
        Action::SystemOff | Action::SystemReset => {
            let gpio = if action == Action::SystemOff {
                r.poweroff
            } else {
                r.restart
            };
            match gpio {
                Some(g) => el3::gpio_power(&g.writes()),
                // Nothing to switch the power with: the call fails (SYSTEM_OFF and
                // SYSTEM_RESET have no error code; INTERNAL_FAILURE says what happened).
                None => i64::from(psci::INTERNAL_FAILURE),
            }
        }
        Action::TurnOn { .. } | Action::TurnOff => i64::from(psci::INTERNAL_FAILURE),
    };
    v as u64
}

/// The calls that look at no CPU.
struct NoCpus;
impl CpuTable for NoCpus {
    fn len(&self) -> usize {
        0
    }
    fn index_of(&self, _: u64) -> Option<usize> {
        None
    }
    fn state(&self, _: usize) -> CpuState {
        CpuState::Stuck
    }
    fn leaving(&self, _: usize) -> bool {
        false
    }
}

/// For the report of `bdinfo`-like diagnostics: the resident pen's base (0: none).
#[allow(dead_code)]
pub fn pen_base() -> u64 {
    resident_state().map_or(0, |r| r.pen_base)
}

const _: () = assert!(pen::MPIDR_MASK == cpu::MPIDR_AFFINITY_MASK);
