//! Small system-register, barrier and cache-maintenance helpers. System registers go through
//! `aarch64-cpu` where it has them; CTR_EL0 and the DC/IC instructions it does not offer are
//! `asm!` here.
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CurrentEL, Readable, Writeable, CNTHCTL_EL2, CNTKCTL_EL1, MPIDR_EL1};
use core::arch::asm;

/// Aff3..Aff0 of MPIDR_EL1 (what identifies a CPU).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// This CPU's affinity (MPIDR_EL1 Aff3..Aff0).
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFFINITY_MASK
}

/// FEAT_RNG: 64 random bits from RNDR, or None when the CPU has no RNDR
/// (ID_AA64ISAR0_EL1.RNDR = 0) or RNDR reports that it has none now (PSTATE.Z set).
pub fn rndr() -> Option<u64> {
    let isar0: u64;
    // SAFETY: reading an ID register has no side effects (not in aarch64-cpu).
    unsafe { asm!("mrs {}, id_aa64isar0_el1", out(reg) isar0, options(nomem, nostack)) };
    if (isar0 >> 60) & 0xf == 0 {
        return None;
    }
    let v: u64;
    let ok: u64;
    // SAFETY: RNDR exists (checked above); it only writes the register and the flags, which
    // the block does not declare preserved.
    unsafe {
        asm!(
            "mrs {v}, s3_3_c2_c4_0",
            "cset {ok}, ne",
            v = out(reg) v,
            ok = out(reg) ok,
            options(nomem, nostack)
        )
    };
    (ok != 0).then_some(v)
}

fn dcache_line() -> usize {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects (not in aarch64-cpu).
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans `[start, start+len)` to the point of coherency.
pub fn clean_dcache_range(start: usize, len: usize) {
    for a in dcache_lines(start, len) {
        // SAFETY: cache maintenance by VA on mapped memory.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack)) };
    }
    dsb();
}

/// Cleans and invalidates `[start, start+len)` to the point of coherency.
pub fn clean_inval_dcache_range(start: usize, len: usize) {
    for a in dcache_lines(start, len) {
        // SAFETY: cache maintenance by VA on mapped memory.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack)) };
    }
    dsb();
}

/// The addresses of the data-cache lines that `[start, start+len)` touches.
fn dcache_lines(start: usize, len: usize) -> impl Iterator<Item = usize> {
    let line = dcache_line();
    let end = start.saturating_add(len);
    (start & !(line - 1)..end).step_by(line)
}

/// `DSB SY`: every earlier memory access (and cache maintenance) completes first.
pub fn dsb() {
    barrier::dsb(barrier::SY);
}

/// `DSB SY; SEV`: what was written is visible before the other CPUs wake.
pub fn sev() {
    dsb();
    aarch64_cpu::asm::sev();
}

/// Invalidates this CPU's whole instruction cache and synchronises (after writing code).
pub fn ic_iallu() {
    // SAFETY: cache maintenance (not in aarch64-cpu).
    unsafe { asm!("ic iallu", options(nostack)) };
    dsb();
    barrier::isb(barrier::SY);
}

/// Waits for an event (SEV from a pen CPU, or the timer event stream).
pub fn wait_event() {
    aarch64_cpu::asm::wfe();
}

/// Turns on the generic timer's event stream (one event every 2^15
/// counter ticks, ~0.5 ms at 62.5 MHz), so WFE-based waits always wake to
/// check their timeouts. The handoff resets CNTHCTL_EL2; Linux programs
/// CNTKCTL_EL1 itself.
pub fn enable_event_stream() {
    // EVNTEN (bit 2), EVNTI = 14 (bits 7:4), EL1PCTEN|EL1PCEN kept at EL2. (aarch64-cpu's
    // CNTHCTL_EL2 has no EVNTEN/EVNTI fields: raw values.)
    if current_el() == 2 {
        CNTHCTL_EL2.set(3 | (1 << 2) | (14 << 4));
    } else {
        CNTKCTL_EL1.write(CNTKCTL_EL1::EVNTEN::Enable + CNTKCTL_EL1::EVNTI.val(14));
    }
    barrier::isb(barrier::SY);
}

/// Stops this CPU for good: interrupts masked, WFE for ever. Never jumps anywhere.
pub fn stop() -> ! {
    loop {
        // SAFETY: masks interrupts and waits; no memory effects.
        unsafe { asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}
