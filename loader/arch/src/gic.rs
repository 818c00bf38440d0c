//! The boot CPU's side of sleeping: the GIC distributor enable the pen's timer wake-ups need,
//! and the boot CPU's own idle sleep (the prompt, `sleep`, the autoboot countdown), with the same
//! wake methods as the pen (`loader::wake`, docs/protocol.md §3.3): WFIT where the CPU has it,
//! else WFI woken by its own generic timer through the GIC, else a plain spin.
//! The console's receive interrupt also wakes the boot CPU, so it can sleep a whole hold
//! period at the prompt and still answer a key at once. [`kick`] wakes the pen's CPUs after a
//! release (SGI 15). Everything it sets up on the boot CPU is undone by [`quiesce`] before the
//! handoff.
//!
//! Only the boot CPU runs this (secondaries run nothing but the pen), so the state is a plain
//! static without a lock.

use crate::gic_regs::*;
use crate::wait::{WaitMethod, WakeGic, WakePlan, WAKE_PMR, WAKE_SGI};
use aarch64_cpu::registers::{Readable, ID_AA64PFR0_EL1};
use core::arch::asm;
use core::cell::UnsafeCell;

const GICD_CTLR_RWP: u32 = 1 << 31;
/// v3 (and Linux's value): ARE_NS | EnableGrp1A | EnableGrp1 (DS=1: ARE | Grp1 | Grp0).
const GICD_CTLR_V3_ON: u32 = (1 << 4) | (1 << 1) | 1;
const GICR_SGI: usize = GICR_SGI_OFFSET;
const POLL_LIMIT: u32 = GIC_POLL_LIMIT;
const UART_IMSC: usize = 0x38;
/// PL011 receive and receive-timeout interrupts.
const UART_RX_IRQS: u32 = (1 << 4) | (1 << 6);

/// The console's receive interrupt, routed to the boot CPU, and what it replaced.
#[derive(Clone, Copy)]
struct UartWake {
    base: usize,
    intid: u32,
    imsc: u32,
    enabled: bool,
    priority: u8,
    group: bool,
    /// v2: ITARGETSR byte; v3: IROUTER.
    route: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kick {
    V2 { gicd: usize },
    V3,
}

#[derive(Clone, Copy)]
struct Sleeper {
    method: WaitMethod,
    period: u64,
    uart: Option<UartWake>,
    kick: Option<Kick>,
    el: u8,
    intid: u32,
    gicd: usize,
    /// v2: GICC; v3: this CPU's SGI frame.
    cpu_if: usize,
    saved_igroupr0: u32,
    /// GICD_CTLR as found at start (restored by `quiesce` when nothing needs it enabled).
    gicd_ctlr_at_entry: Option<u32>,
}

struct Cell(UnsafeCell<Option<Sleeper>>);
// SAFETY: only the boot CPU runs Rust (module doc).
unsafe impl Sync for Cell {}
static SLEEPER: Cell = Cell(UnsafeCell::new(None));

fn get() -> Option<Sleeper> {
    // SAFETY: single CPU; no reference is held across calls.
    unsafe { *SLEEPER.0.get() }
}

fn set(s: Option<Sleeper>) {
    // SAFETY: as in `get`.
    unsafe { *SLEEPER.0.get() = s }
}

fn rd32(addr: usize) -> u32 {
    // SAFETY: callers pass registers of the GIC the DT describes, mapped as device memory.
    unsafe { (addr as *const u32).read_volatile() }
}

fn wr32(addr: usize, v: u32) {
    // SAFETY: as in `rd32`.
    unsafe { (addr as *mut u32).write_volatile(v) }
}

fn wr8(addr: usize, v: u8) {
    // SAFETY: as in `rd32`; priority registers are byte-accessible.
    unsafe { (addr as *mut u8).write_volatile(v) }
}

fn rd8(addr: usize) -> u8 {
    // SAFETY: as in `rd32`; priority and target registers are byte-accessible.
    unsafe { (addr as *const u8).read_volatile() }
}

fn rd64(addr: usize) -> u64 {
    // SAFETY: as in `rd32`; GICR_TYPER and GICD_IROUTER are 64-bit accessible.
    unsafe { (addr as *const u64).read_volatile() }
}

fn wr64(addr: usize, v: u64) {
    // SAFETY: as in `rd32`.
    unsafe { (addr as *mut u64).write_volatile(v) }
}

fn bit_reg(base: usize, intid: u32) -> (usize, u32) {
    (base + 4 * (intid as usize / 32), 1 << (intid % 32))
}

fn poll_clear(addr: usize, bit: u32) -> bool {
    for _ in 0..POLL_LIMIT {
        if rd32(addr) & bit == 0 {
            return true;
        }
    }
    false
}

/// ID_AA64ISAR2_EL1.WFxT ≥ 2: WFET and WFIT implemented.
pub fn has_wfxt() -> bool {
    let v: u64;
    // SAFETY: ID register read (RAZ where ID_AA64ISAR2_EL1 is not implemented).
    unsafe { asm!("mrs {}, s3_0_c0_c6_2", out(reg) v, options(nomem, nostack)) };
    v & 0xf >= 2
}

/// ID_AA64PFR0_EL1.GIC ≠ 0: a GICv3 system-register CPU interface.
pub fn has_gic_sysregs() -> bool {
    // (aarch64-cpu's ID_AA64PFR0_EL1 names no GIC field.)
    (ID_AA64PFR0_EL1.get() >> 24) & 0xf != 0
}

/// Turns the distributor on (group enables; on v3 also affinity routing) if it is off, so
/// that the pen's timer interrupts reach their CPUs. Returns GICD_CTLR as it was.
fn enable_distributor(gic: &WakeGic) -> Option<u32> {
    match gic {
        WakeGic::None => None,
        WakeGic::V2 { gicd, .. } => {
            let d = *gicd as usize;
            let was = rd32(d + GICD_CTLR);
            if was & 3 == 0 {
                wr32(d + GICD_CTLR, was | 1);
            }
            Some(was)
        }
        WakeGic::V3 { gicd, .. } => {
            let d = *gicd as usize;
            let was = rd32(d + GICD_CTLR);
            if was & GICD_CTLR_V3_ON != GICD_CTLR_V3_ON {
                if was & (1 << 4) == 0 {
                    // ARE may only change while the groups are disabled (as Linux does it).
                    wr32(d + GICD_CTLR, 0);
                    poll_clear(d + GICD_CTLR, GICD_CTLR_RWP);
                }
                wr32(d + GICD_CTLR, GICD_CTLR_V3_ON);
                poll_clear(d + GICD_CTLR, GICD_CTLR_RWP);
            }
            Some(was)
        }
    }
}

/// The redistributor (RD_base) of the CPU with `mpidr`, found by GICR_TYPER affinity in the
/// redistributor `regions` (base, size).
pub fn find_redistributor(regions: &[(u64, u64)], mpidr: u64) -> Option<usize> {
    let aff = (mpidr & 0xff_ffff) | (((mpidr >> 32) & 0xff) << 24);
    for &(base, size) in regions {
        let end = base.checked_add(size)?;
        let mut rd = base;
        while rd.checked_add(GICR_FRAME)? <= end {
            let typer = rd64(rd as usize + GICR_TYPER);
            if typer >> 32 == aff {
                return Some(rd as usize);
            }
            if typer & (1 << 4) != 0 {
                break;
            }
            rd += GICR_FRAME;
            if typer & (1 << 1) != 0 {
                rd += GICR_FRAME;
            }
        }
    }
    None
}

/// Sets up the distributor for the pen and the boot CPU's own idle sleep from `cfg` (the same
/// wake block the pen gets); `uart` is the console (base, INTID) whose receive interrupt also
/// wakes the boot CPU. Returns how the boot CPU will idle.
pub fn init(cfg: &impl WakePlan, el: u8, mpidr: u64, uart: Option<(usize, u32)>) -> WaitMethod {
    let gic = cfg.gic();
    let gicd_ctlr_at_entry = enable_distributor(gic);
    let mut s = Sleeper {
        method: cfg.method(el, has_wfxt(), has_gic_sysregs()),
        period: cfg.period_ticks(),
        uart: None,
        kick: None,
        el,
        intid: cfg.timer_intid(el),
        gicd: match gic {
            WakeGic::V2 { gicd, .. } | WakeGic::V3 { gicd, .. } => *gicd as usize,
            WakeGic::None => 0,
        },
        cpu_if: 0,
        saved_igroupr0: 0,
        gicd_ctlr_at_entry,
    };
    let bit = 1u32.checked_shl(s.intid).unwrap_or(0);
    match (gic, s.method) {
        (WakeGic::V2 { gicc, .. }, WaitMethod::GicV2Timer) => {
            s.cpu_if = *gicc as usize;
            wr8(s.gicd + GICD_IPRIORITYR + s.intid as usize, 0);
            wr32(s.gicd + GICD_ISENABLER, bit);
            wr32(s.cpu_if + GICC_PMR, WAKE_PMR);
            wr32(s.cpu_if + GICC_CTLR, 1);
            s.kick = Some(Kick::V2 { gicd: s.gicd });
        }
        (WakeGic::V3 { gicr, .. }, WaitMethod::GicV3Timer) => {
            match find_redistributor(gicr, mpidr) {
                Some(rd) if wake_redistributor(rd) && enable_sre(el) => {
                    s.cpu_if = rd + GICR_SGI;
                    s.saved_igroupr0 = rd32(s.cpu_if + GICR_IGROUPR0);
                    wr32(s.cpu_if + GICR_IGROUPR0, s.saved_igroupr0 | bit);
                    wr8(s.cpu_if + GICR_IPRIORITYR + s.intid as usize, 0);
                    wr32(s.cpu_if + GICR_ISENABLER0, bit);
                    // SAFETY: GICv3 CPU interface registers of this CPU (SRE enabled above).
                    unsafe {
                        asm!("msr s3_0_c4_c6_0, {}", in(reg) u64::from(WAKE_PMR), options(nostack));
                        asm!("msr s3_0_c12_c12_7, {}", "isb", in(reg) 1u64, options(nostack));
                    }
                    s.kick = Some(Kick::V3);
                }
                _ => s.method = WaitMethod::Wfe,
            }
        }
        (_, WaitMethod::Wfit) => {}
        _ => s.method = WaitMethod::Wfe,
    }
    if matches!(s.method, WaitMethod::GicV2Timer | WaitMethod::GicV3Timer) {
        if let Some((base, intid)) = uart.filter(|&(b, i)| b != 0 && (32..1020).contains(&i)) {
            s.uart = Some(route_uart(&s, base, intid, mpidr));
            // A key wakes the CPU at once: it may sleep the whole hold period.
            s.period = s.period.max(cfg.hold_ticks());
        }
    }
    set(Some(s));
    s.method
}

/// Routes the console's receive interrupt to this CPU (priority 0, enabled) and unmasks it in
/// the PL011; returns what it changed, for `quiesce`.
fn route_uart(s: &Sleeper, base: usize, intid: u32, mpidr: u64) -> UartWake {
    let (en_reg, bit) = bit_reg(s.gicd + GICD_ISENABLER, intid);
    let (grp_reg, _) = bit_reg(s.gicd + GICD_IGROUPR, intid);
    let prio = s.gicd + GICD_IPRIORITYR + intid as usize;
    let w = UartWake {
        base,
        intid,
        imsc: rd32(base + UART_IMSC),
        enabled: rd32(en_reg) & bit != 0,
        priority: rd8(prio),
        group: rd32(grp_reg) & bit != 0,
        route: match s.method {
            WaitMethod::GicV3Timer => rd64(s.gicd + GICD_IROUTER + 8 * intid as usize),
            _ => u64::from(rd8(s.gicd + GICD_ITARGETSR + intid as usize)),
        },
    };
    if s.method == WaitMethod::GicV3Timer {
        let aff = (mpidr & 0xff_ffff) | (((mpidr >> 32) & 0xff) << 32);
        wr64(s.gicd + GICD_IROUTER + 8 * intid as usize, aff);
        wr32(grp_reg, rd32(grp_reg) | bit);
    } else {
        // A banked read of ITARGETSR0 gives this CPU's own interface bit.
        let me = rd8(s.gicd + GICD_ITARGETSR);
        wr8(s.gicd + GICD_ITARGETSR + intid as usize, me);
    }
    wr8(prio, 0);
    wr32(en_reg, bit);
    wr32(base + UART_IMSC, w.imsc | UART_RX_IRQS);
    w
}

/// Puts back what `route_uart` changed.
fn unroute_uart(s: &Sleeper, w: &UartWake) {
    wr32(w.base + UART_IMSC, w.imsc);
    let (en, bit) = bit_reg(s.gicd + GICD_ICENABLER, w.intid);
    if !w.enabled {
        wr32(en, bit);
    }
    wr8(s.gicd + GICD_IPRIORITYR + w.intid as usize, w.priority);
    let (grp, _) = bit_reg(s.gicd + GICD_IGROUPR, w.intid);
    if s.method == WaitMethod::GicV3Timer {
        wr64(s.gicd + GICD_IROUTER + 8 * w.intid as usize, w.route);
        let g = rd32(grp);
        wr32(grp, if w.group { g | bit } else { g & !bit });
        poll_clear(s.gicd + GICD_CTLR, GICD_CTLR_RWP);
    } else {
        wr8(s.gicd + GICD_ITARGETSR + w.intid as usize, w.route as u8);
    }
}

/// Wakes the given CPUs (MPIDR, GICv2 CPU interface bit from their pen state record) if they
/// sleep on the GIC, with SGI 15 — after the pen's hold period changed (docs/protocol.md
/// §3.3). Only CPUs held in the pen may be kicked: a kick that lands on a CPU that has left
/// would stay pending into whatever runs there next. Without a GIC wake-up set up, nothing to
/// do (the pen then waits with WFE or WFIT and needs no kick).
pub fn kick_cpus(targets: &[(u64, u8)]) {
    match get().and_then(|s| s.kick) {
        Some(Kick::V2 { gicd }) => {
            let mask = targets.iter().fold(0u32, |m, &(_, t)| m | u32::from(t));
            if mask != 0 {
                // TargetListFilter 0b00: the CPUs in CPUTargetList.
                wr32(gicd + GICD_SGIR, (mask << 16) | WAKE_SGI);
            }
        }
        Some(Kick::V3) => {
            for &(mpidr, _) in targets {
                let aff0 = mpidr & 0xff;
                if aff0 >= 16 {
                    continue; // would need the range selector; it wakes at its hold period
                }
                let v = (((mpidr >> 32) & 0xff) << 48)
                    | (((mpidr >> 16) & 0xff) << 32)
                    | (((mpidr >> 8) & 0xff) << 16)
                    | (u64::from(WAKE_SGI) << 24)
                    | (1 << aff0);
                // SAFETY: ICC_SGI1R_EL1 (SRE was enabled by `init`); generates one SGI.
                unsafe {
                    asm!("dsb sy", "msr s3_0_c12_c11_5, {}", "isb", in(reg) v, options(nostack))
                };
            }
        }
        None => {}
    }
}

fn wake_redistributor(rd: usize) -> bool {
    let w = rd32(rd + GICR_WAKER);
    wr32(rd + GICR_WAKER, w & !2);
    poll_clear(rd + GICR_WAKER, 1 << 2)
}

fn enable_sre(el: u8) -> bool {
    let v: u64;
    // SAFETY: ICC_SRE_ELx of our own EL; booting.rst guarantees EL2 lets EL1 set SRE.
    unsafe {
        if el == 2 {
            asm!("mrs {v}, s3_4_c12_c9_5", "orr {v}, {v}, #1", "orr {v}, {v}, #8", "msr s3_4_c12_c9_5, {v}", "isb",
                 "mrs {v}, s3_4_c12_c9_5", v = out(reg) v, options(nostack));
        } else {
            asm!("mrs {v}, s3_0_c12_c12_5", "orr {v}, {v}, #1", "msr s3_0_c12_c12_5, {v}", "isb",
                 "mrs {v}, s3_0_c12_c12_5", v = out(reg) v, options(nostack));
        }
    }
    v & 1 != 0
}

/// How the boot CPU idles (set by [`init`]).
pub fn idle_method() -> WaitMethod {
    get().map_or(WaitMethod::Unknown, |s| s.method)
}

/// Sleeps once: until the next wake period or any enabled interrupt. Where the boot CPU cannot
/// sleep, returns at once (callers poll in a loop anyway).
pub fn idle_once() {
    let Some(s) = get() else {
        core::hint::spin_loop();
        return;
    };
    // SAFETY: timer registers of our own EL and wait hints; interrupts stay masked in DAIF
    // (a pending interrupt only ends the WFI, it is never taken).
    unsafe {
        match s.method {
            WaitMethod::Wfit => {
                let now: u64;
                asm!("isb", "mrs {}, cntvct_el0", out(reg) now, options(nomem, nostack));
                asm!(".inst 0xd5031020", in("x0") now.wrapping_add(s.period), options(nostack));
            }
            WaitMethod::GicV2Timer | WaitMethod::GicV3Timer => {
                if rd32(s.gicd + GICD_CTLR) & 3 == 0 {
                    core::hint::spin_loop();
                    return;
                }
                if s.el == 2 {
                    asm!("isb", "mrs {t}, cntpct_el0", "add {t}, {t}, {p}", "msr cnthp_cval_el2, {t}",
                         "mov {t}, #1", "msr cnthp_ctl_el2, {t}", "isb", "dsb sy", "wfi",
                         t = out(reg) _, p = in(reg) s.period, options(nostack));
                } else {
                    asm!("isb", "mrs {t}, cntvct_el0", "add {t}, {t}, {p}", "msr cntv_cval_el0, {t}",
                         "mov {t}, #1", "msr cntv_ctl_el0, {t}", "isb", "dsb sy", "wfi",
                         t = out(reg) _, p = in(reg) s.period, options(nostack));
                }
            }
            _ => core::hint::spin_loop(),
        }
    }
}

/// Undoes the boot CPU's idle set-up before a handoff: its timer off, the timer interrupt
/// disabled and not pending, priority mask and group enable back to reset. The distributor
/// stays enabled when CPUs wait in a pen that wakes on it (`keep_distributor`); otherwise it
/// gets back the value it had at start.
pub fn quiesce(keep_distributor: bool) {
    let Some(s) = get() else {
        return;
    };
    set(None);
    if let Some(w) = &s.uart {
        unroute_uart(&s, w);
    }
    let bit = 1u32.checked_shl(s.intid).unwrap_or(0);
    // SAFETY: timer and GIC CPU interface registers of this CPU, as set up by `init`.
    unsafe {
        match s.method {
            WaitMethod::GicV2Timer => {
                timer_off(s.el);
                wr32(s.cpu_if + GICC_CTLR, 0);
                wr32(s.cpu_if + GICC_PMR, 0);
                wr32(s.gicd + GICD_ICENABLER, bit);
                wr32(s.gicd + GICD_ICPENDR, bit);
            }
            WaitMethod::GicV3Timer => {
                timer_off(s.el);
                asm!(
                    "msr s3_0_c12_c12_7, xzr",
                    "msr s3_0_c4_c6_0, xzr",
                    "isb",
                    options(nostack)
                );
                wr32(s.cpu_if + GICR_ICENABLER0, bit);
                wr32(s.cpu_if + GICR_ICPENDR0, bit);
                wr32(s.cpu_if + GICR_IGROUPR0, s.saved_igroupr0);
                poll_clear(s.cpu_if - GICR_SGI + GICR_CTLR, 1 << 3);
            }
            _ => {}
        }
    }
    if !keep_distributor {
        if let Some(was) = s.gicd_ctlr_at_entry {
            if s.gicd != 0 {
                wr32(s.gicd + GICD_CTLR, was);
                poll_clear(s.gicd + GICD_CTLR, GICD_CTLR_RWP);
            }
        }
    }
}

unsafe fn timer_off(el: u8) {
    // SAFETY: the timer of our own EL.
    unsafe {
        if el == 2 {
            asm!("msr cnthp_ctl_el2, xzr", "isb", options(nostack));
        } else {
            asm!("msr cntv_ctl_el0, xzr", "isb", options(nostack));
        }
    }
}
