//! Reclaim planning: what to do with every CPU and old pen found at start-up
//! ([`plan_reclaim`] -> [`ReclaimPlan`]).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dt::{DtInfo, EnableMethod, Region};

use super::*;

/// Why a CPU cannot be brought into the new pen (it is never touched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// Its parkboot slot says RELEASED: an OS took it and never gave it back.
    Released,
    /// Its parkboot slot says REFUSED: it sits in the old pen at the wrong EL for good.
    Refused,
    /// Its parkboot slot says FAULTED: it took an exception and sits in the old pen for good.
    Faulted(Fault),
    /// Its parkboot slot is EMPTY (the CPU never arrived) and there is no PSCI to start it.
    NeverArrived,
    /// The old pen's CPUs run at another EL than this loader.
    ElMismatch { pen_el: u32, current_el: u8 },
    /// The release address is inside a parkboot pen but is not a slot's release word.
    NotASlot { addr: u64 },
    /// The release address is another CPU's slot.
    SlotOwnerMismatch { owner: u64 },
    /// The slot's state record names another MPIDR than the slot (corrupt).
    SlotCorrupt { seen: u64 },
    /// The slot's status is not a defined value.
    UnknownStatus(u64),
    /// The release address is inside a region that looks like a parkboot pen but does not
    /// validate (never written to).
    InvalidPen { base: u64, error: PenError },
    /// The release address is not inside any /memreserve/.
    NotReserved { addr: u64 },
    /// The release address (foreign pen) is not 8-byte aligned.
    Misaligned { addr: u64 },
    /// The /memreserve/ holding the release address could not be read (not RAM?).
    Unreadable { addr: u64 },
    /// `enable-method = "spin-table"` without a usable 64-bit `cpu-release-addr`.
    NoReleaseAddr,
    /// `enable-method = "psci"` but no usable PSCI.
    NoPsci,
    /// No `enable-method` and no PSCI.
    NoEnableMethod,
    /// An enable-method this loader does not know.
    UnknownMethod(String),
    /// The cpu node's status is not okay (and the CPU is not in a parkboot pen to move).
    Disabled,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Released => write!(f, "released to an OS that never parked it"),
            Self::Refused => write!(f, "held at the wrong EL in the old pen"),
            Self::Faulted(x) => write!(f, "stuck in the old pen after an {x}"),
            Self::NeverArrived => write!(f, "never arrived in the old pen and no PSCI"),
            Self::ElMismatch { pen_el, current_el } => write!(
                f,
                "old pen runs at EL{pen_el}, this loader at EL{current_el}"
            ),
            Self::NotASlot { addr } => {
                write!(f, "release address {addr:#x} is not a slot of the pen")
            }
            Self::SlotOwnerMismatch { owner } => {
                write!(f, "release address is the slot of MPIDR {owner:#x}")
            }
            Self::SlotCorrupt { seen } => {
                write!(f, "slot state names MPIDR {seen:#x} (corrupt)")
            }
            Self::UnknownStatus(v) => write!(f, "slot status {v:#x} is not defined"),
            Self::InvalidPen { base, error } => {
                write!(f, "pen at {base:#x} does not validate: {error}")
            }
            Self::NotReserved { addr } => {
                write!(f, "release address {addr:#x} is not in any /memreserve/")
            }
            Self::Misaligned { addr } => {
                write!(f, "release address {addr:#x} is not 8-byte aligned")
            }
            Self::Unreadable { addr } => {
                write!(f, "the /memreserve/ holding {addr:#x} cannot be read")
            }
            Self::NoReleaseAddr => write!(f, "spin-table without a 64-bit cpu-release-addr"),
            Self::NoPsci => write!(f, "enable-method psci but no usable PSCI"),
            Self::NoEnableMethod => write!(f, "no enable-method and no PSCI"),
            Self::UnknownMethod(m) => write!(f, "unknown enable-method \"{m}\""),
            Self::Disabled => write!(f, "cpu node is not enabled"),
        }
    }
}

/// What to do with one CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuAction {
    /// The CPU running the loader.
    Boot,
    /// Held in an older parkboot pen: write the new pen's `pen_entry` into `release_addr` with
    /// [`Pen::release`] on the old pen (after [`Pen::rearm`] if `status` is UNARMED), then wait
    /// for WAITING in the new pen.
    TakeOverFromPen {
        old_pen_base: u64,
        release_addr: u64,
        status: SlotStatus,
    },
    /// Start it with PSCI CPU_ON(mpidr, new pen's `pen_entry`, slot address).
    PsciCpuOn,
    /// Held by a foreign spin-table (U-Boot, boot-wrapper): write `pen_entry` into
    /// `release_addr` (one 64-bit store, clean, DSB, SEV). Several CPUs may share the address.
    SpinTableForeign { release_addr: u64 },
    /// Leave it alone.
    Lost { reason: LostReason },
}

impl fmt::Display for CpuAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boot => write!(f, "boot CPU"),
            Self::TakeOverFromPen {
                old_pen_base,
                release_addr,
                status,
            } => write!(
                f,
                "take over from parkboot pen {old_pen_base:#x} (slot {release_addr:#x}, {status})"
            ),
            Self::PsciCpuOn => write!(f, "PSCI CPU_ON"),
            Self::SpinTableForeign { release_addr } => {
                write!(f, "take over from foreign spin-table {release_addr:#x}")
            }
            Self::Lost { reason } => write!(f, "lost: {reason}"),
        }
    }
}

/// The plan for one DT CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPlan {
    pub mpidr: u64,
    pub path: String,
    /// The cpu node's status is okay.
    pub enabled: bool,
    pub action: CpuAction,
}

/// Why an old pen must stay reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocker {
    pub mpidr: u64,
    pub status: SlotStatus,
}

/// A valid parkboot pen found at the base of a /memreserve/ entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldPen {
    /// The /memreserve/ entry (starts at the pen base, covers at least the pen).
    pub reserve: Region,
    pub header: PenHeader,
    pub slots: Vec<SlotInfo>,
    /// MPIDRs planned `TakeOverFromPen` from this pen.
    pub to_move: Vec<u64>,
    /// Slots that keep the pen reserved: RELEASED (the CPU may still come back to this pen's
    /// park address), REFUSED, unknown, or held but not planned to move.
    pub blockers: Vec<Blocker>,
    /// Its code is byte-identical to ours (in-place adoption possible, see docs/protocol.md).
    pub same_code: bool,
    /// CPUs its stray records say arrived without a slot (docs/protocol.md §2.5): they are
    /// in the pen for good, so it is never dropped.
    pub strays: Vec<StrayRecord>,
}

impl OldPen {
    /// Whether the pen's /memreserve/ may be dropped once the CPUs in `moved` have been seen
    /// WAITING in the new pen. `maybe_inside` are CPUs firmware reports ON (PSCI
    /// AFFINITY_INFO, or a CPU_ON refused as ALREADY_ON / ON_PENDING) that no pen or OS
    /// accounts for: a pen where such a CPU has no slot, or an EMPTY one, may be where it
    /// runs (a stray of a pen without stray records), so it stays.
    #[must_use]
    pub fn droppable_after(&self, moved: &[u64], maybe_inside: &[u64]) -> bool {
        let may_hold = |m: &u64| {
            self.slots
                .iter()
                .find(|s| s.mpidr == *m & MPIDR_MASK)
                .is_none_or(|s| s.state.status == SlotStatus::Empty)
        };
        self.blockers.is_empty()
            && self.strays.is_empty()
            && self.to_move.iter().all(|m| moved.contains(m))
            && !maybe_inside.iter().any(may_hold)
    }

    /// Why the pen must stay reserved (empty when it may be dropped after its moves).
    #[must_use]
    pub fn kept_because(&self) -> Vec<String> {
        let mut why: Vec<String> = self
            .blockers
            .iter()
            .map(|b| format!("CPU {:#x} is {}", b.mpidr, b.status))
            .collect();
        why.extend(
            self.strays
                .iter()
                .map(|s| format!("stray CPU {:#x} has no slot", s.mpidr)),
        );
        why
    }
}

/// A /memreserve/ entry that starts with the parkboot magic but does not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPen {
    pub reserve: Region,
    pub error: PenError,
}

/// What the loader finds and must do to gather every CPU into its new pen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReclaimPlan {
    /// One entry per DT CPU, in DT order.
    pub cpus: Vec<CpuPlan>,
    pub old_pens: Vec<OldPen>,
    /// Never written, never dropped.
    pub bad_pens: Vec<BadPen>,
    /// /memreserve/ entries whose first bytes `read` refused: CPUs held there are not touched.
    pub unreadable: Vec<Region>,
    /// The current MPIDR is one of the DT CPUs.
    pub boot_cpu_in_dt: bool,
    /// Generation for the new pen: one more than the highest old pen's, or 1.
    pub next_generation: u64,
}

impl ReclaimPlan {
    /// The plan for `mpidr`.
    #[must_use]
    pub fn cpu(&self, mpidr: u64) -> Option<&CpuPlan> {
        let m = mpidr & MPIDR_MASK;
        self.cpus.iter().find(|c| c.mpidr == m)
    }

    /// MPIDRs that need a slot in the new pen: every CPU that is not lost, boot CPU included.
    #[must_use]
    pub fn new_pen_cpus(&self) -> Vec<u64> {
        self.cpus
            .iter()
            .filter(|c| !matches!(c.action, CpuAction::Lost { .. }))
            .map(|c| c.mpidr)
            .collect()
    }

    /// /memreserve/ entries of old pens that may be dropped once `moved` are in the new pen
    /// (`maybe_inside`: see [`OldPen::droppable_after`]).
    #[must_use]
    pub fn droppable(&self, moved: &[u64], maybe_inside: &[u64]) -> Vec<Region> {
        self.old_pens
            .iter()
            .filter(|p| p.droppable_after(moved, maybe_inside))
            .map(|p| p.reserve)
            .collect()
    }
}

impl fmt::Display for ReclaimPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cpus {
            writeln!(
                f,
                "cpu {:#x} {}{}: {}",
                c.mpidr,
                c.path,
                if c.enabled { "" } else { " (disabled)" },
                c.action
            )?;
        }
        for p in &self.old_pens {
            writeln!(
                f,
                "old pen {} gen {} EL{}: {} to move, {} blocking, {} stray{}",
                p.reserve,
                p.header.generation,
                p.header.entry_el,
                p.to_move.len(),
                p.blockers.len(),
                p.strays.len(),
                if p.same_code { ", same code" } else { "" }
            )?;
        }
        for b in &self.bad_pens {
            writeln!(f, "invalid pen {}: {}", b.reserve, b.error)?;
        }
        Ok(())
    }
}

/// What [`plan_reclaim`] needs to know about the running loader.
#[derive(Debug, Clone, Copy)]
pub struct ReclaimEnv<'a> {
    /// MPIDR of the CPU running the loader (masked here).
    pub current_mpidr: u64,
    /// EL the loader runs at (and every CPU must reach the kernel at).
    pub current_el: u8,
    /// PSCI CPU_ON is usable (a /psci node with a conduit callable from this EL).
    pub psci: bool,
    /// Our pen code, to tell whether an old pen runs identical code.
    pub our_code: Option<&'a [u8]>,
}

/// Plans how to gather every CPU of `dt` into a new pen.
///
/// `read(addr, len)` returns `len` bytes of physical memory at `addr` as seen at PoC (the caller
/// cleans+invalidates before reading), or `None` for memory that is not RAM or not readable.
/// It is called for the first [`HEADER_SIZE`] bytes of every /memreserve/ entry and for whole
/// pens (at most [`MAX_PEN_SIZE`]) whose header validated.
pub fn plan_reclaim(
    dt: &DtInfo,
    env: &ReclaimEnv<'_>,
    mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>,
) -> ReclaimPlan {
    let current = env.current_mpidr & MPIDR_MASK;
    let mut plan = ReclaimPlan {
        boot_cpu_in_dt: dt.cpus.iter().any(|c| c.mpidr == current),
        ..ReclaimPlan::default()
    };

    // 1. Find parkboot pens at the base of /memreserve/ entries.
    let mut seen: Vec<u64> = Vec::new();
    for r in &dt.memreserve {
        if seen.contains(&r.base) {
            continue;
        }
        seen.push(r.base);
        let Some(head) = read(r.base, HEADER_SIZE as usize) else {
            plan.unreadable.push(*r);
            continue;
        };
        if rd_u64(&head, hdr::MAGIC) != Some(PEN_MAGIC) {
            continue; // not ours: a foreign reservation
        }
        let bad = |error| BadPen { reserve: *r, error };
        let h = match PenHeader::parse(&head, r.base) {
            Ok(h) => h,
            Err(e) => {
                plan.bad_pens.push(bad(e));
                continue;
            }
        };
        if plan.old_pens.len() >= MAX_OLD_PENS {
            plan.bad_pens.push(bad(PenError::TooManyPens {
                limit: MAX_OLD_PENS,
            }));
            continue;
        }
        if h.total_size > r.size {
            plan.bad_pens.push(bad(PenError::BadLayout {
                what: "pen larger than its /memreserve/",
                value: h.total_size,
            }));
            continue;
        }
        let Some(full) = usize_of(h.total_size).and_then(|n| read(r.base, n)) else {
            plan.bad_pens.push(bad(PenError::TooShort {
                len: 0,
                need: h.total_size,
            }));
            continue;
        };
        let img = match PenImage::parse(&full, r.base) {
            Ok(img) if *img.header() == h => img,
            Ok(_) => {
                plan.bad_pens.push(bad(PenError::BadLayout {
                    what: "header changed while reading",
                    value: r.base,
                }));
                continue;
            }
            Err(e) => {
                plan.bad_pens.push(bad(e));
                continue;
            }
        };
        plan.old_pens.push(OldPen {
            reserve: *r,
            header: h,
            slots: img.slots().collect(),
            to_move: Vec::new(),
            blockers: Vec::new(),
            same_code: env.our_code.is_some_and(|c| c == img.code()),
            strays: img.strays().collect(),
        });
    }
    plan.next_generation = plan
        .old_pens
        .iter()
        .map(|p| p.header.generation)
        .max()
        .map_or(1, |g| g.saturating_add(1));

    // 2. One action per DT CPU.
    for cpu in &dt.cpus {
        let enabled = cpu.status.is_enabled();
        let mut action = if cpu.mpidr == current {
            CpuAction::Boot
        } else {
            cpu_action(cpu, &plan, env, &dt.memreserve)
        };
        if !enabled && !matches!(action, CpuAction::TakeOverFromPen { .. } | CpuAction::Boot) {
            action = CpuAction::Lost {
                reason: LostReason::Disabled,
            };
        }
        plan.cpus.push(CpuPlan {
            mpidr: cpu.mpidr,
            path: cpu.path.clone(),
            enabled,
            action,
        });
    }

    // 3. What keeps each old pen reserved.
    for i in 0..plan.old_pens.len() {
        let Some(pen) = plan.old_pens.get(i) else {
            break;
        };
        let base = pen.header.phys_base;
        let mut to_move = Vec::new();
        let mut blockers = Vec::new();
        for s in &pen.slots {
            if s.mpidr == current {
                continue; // that CPU is us
            }
            let moving = plan.cpus.iter().any(|c| {
                matches!(c.action, CpuAction::TakeOverFromPen { old_pen_base, release_addr, .. }
                    if old_pen_base == base && release_addr == s.release_addr)
            });
            match s.state.status {
                SlotStatus::Empty => {}
                SlotStatus::Waiting | SlotStatus::Parked | SlotStatus::Unarmed if moving => {
                    to_move.push(s.mpidr);
                }
                status => blockers.push(Blocker {
                    mpidr: s.mpidr,
                    status,
                }),
            }
        }
        if let Some(pen) = plan.old_pens.get_mut(i) {
            pen.to_move = to_move;
            pen.blockers = blockers;
        }
    }
    plan
}

fn cpu_action(
    cpu: &crate::dt::Cpu,
    plan: &ReclaimPlan,
    env: &ReclaimEnv<'_>,
    memreserve: &[Region],
) -> CpuAction {
    let lost = |reason| CpuAction::Lost { reason };
    match &cpu.enable_method {
        Some(EnableMethod::SpinTable) => {}
        Some(EnableMethod::Psci) => {
            return if env.psci {
                CpuAction::PsciCpuOn
            } else {
                lost(LostReason::NoPsci)
            };
        }
        None => {
            return if env.psci {
                CpuAction::PsciCpuOn
            } else {
                lost(LostReason::NoEnableMethod)
            };
        }
        Some(EnableMethod::Other(m)) => return lost(LostReason::UnknownMethod(m.clone())),
    }
    let Some(addr) = cpu.release_addr.value() else {
        return lost(LostReason::NoReleaseAddr);
    };
    // A parkboot pen?
    if let Some(pen) = plan
        .old_pens
        .iter()
        .find(|p| p.header.region().contains(addr))
    {
        let h = &pen.header;
        let Some(s) = h.slot_of_release_addr(addr).and_then(|i| pen.slots.get(i)) else {
            return lost(LostReason::NotASlot { addr });
        };
        if s.mpidr != cpu.mpidr {
            return lost(LostReason::SlotOwnerMismatch { owner: s.mpidr });
        }
        let st = s.state;
        if st.status != SlotStatus::Empty && st.mpidr_seen != s.mpidr {
            return lost(LostReason::SlotCorrupt {
                seen: st.mpidr_seen,
            });
        }
        return match st.status {
            SlotStatus::Waiting | SlotStatus::Parked | SlotStatus::Unarmed => {
                if h.entry_el != u32::from(env.current_el) {
                    lost(LostReason::ElMismatch {
                        pen_el: h.entry_el,
                        current_el: env.current_el,
                    })
                } else {
                    CpuAction::TakeOverFromPen {
                        old_pen_base: h.phys_base,
                        release_addr: addr,
                        status: st.status,
                    }
                }
            }
            SlotStatus::Released => lost(LostReason::Released),
            SlotStatus::Refused => lost(LostReason::Refused),
            SlotStatus::Faulted => st.fault().map_or(lost(LostReason::UnknownStatus(6)), |x| {
                lost(LostReason::Faulted(x))
            }),
            SlotStatus::Empty if env.psci => CpuAction::PsciCpuOn,
            SlotStatus::Empty => lost(LostReason::NeverArrived),
            SlotStatus::Unknown(v) => lost(LostReason::UnknownStatus(v)),
        };
    }
    // Inside something that claims to be a parkboot pen but does not validate: never write.
    if let Some(b) = plan.bad_pens.iter().find(|b| b.reserve.contains(addr)) {
        return lost(LostReason::InvalidPen {
            base: b.reserve.base,
            error: b.error.clone(),
        });
    }
    if plan.unreadable.iter().any(|r| r.contains(addr)) {
        return lost(LostReason::Unreadable { addr });
    }
    // A foreign spin-table inside a /memreserve/.
    let word_end = addr.checked_add(8);
    if memreserve
        .iter()
        .any(|r| r.contains(addr) && word_end.is_some_and(|e| e <= r.end()))
    {
        return if addr.is_multiple_of(8) {
            CpuAction::SpinTableForeign { release_addr: addr }
        } else {
            lost(LostReason::Misaligned { addr })
        };
    }
    lost(LostReason::NotReserved { addr })
}
