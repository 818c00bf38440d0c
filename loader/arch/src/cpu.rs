//! Small system-register and cache-maintenance helpers.
use core::arch::asm;

pub fn current_el() -> u8 {
    let v: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) v, options(nomem, nostack)) };
    ((v >> 2) & 3) as u8
}

pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack)) };
    v & 0xff_00ff_ffff
}

fn dcache_line() -> usize {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans `[start, start+len)` to the point of coherency.
pub fn clean_dcache_range(start: usize, len: usize) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    let end = start.saturating_add(len);
    while a < end {
        // SAFETY: cache maintenance by VA on mapped memory.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// Cleans and invalidates `[start, start+len)` to the point of coherency.
pub fn clean_inval_dcache_range(start: usize, len: usize) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    let end = start.saturating_add(len);
    while a < end {
        // SAFETY: cache maintenance by VA on mapped memory.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// `DSB SY`: every earlier memory access (and cache maintenance) completes first.
pub fn dsb() {
    // SAFETY: barrier only.
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// `DSB SY; SEV`: what was written is visible before the other CPUs wake.
pub fn sev() {
    // SAFETY: barrier and event.
    unsafe { asm!("dsb sy", "sev", options(nostack)) };
}

/// Invalidates this CPU's whole instruction cache and synchronises (after writing code).
pub fn ic_iallu() {
    // SAFETY: cache maintenance.
    unsafe { asm!("ic iallu", "dsb sy", "isb", options(nostack)) };
}

/// Waits for an event (SEV from a pen CPU, or the timer event stream).
pub fn wait_event() {
    // SAFETY: a hint; no memory effects.
    unsafe { asm!("wfe", options(nomem, nostack)) };
}

/// Turns on the generic timer's event stream (one event every 2^15
/// counter ticks, ~0.5 ms at 62.5 MHz), so WFE-based waits always wake to
/// check their timeouts. The handoff resets CNTHCTL_EL2; Linux programs
/// CNTKCTL_EL1 itself.
pub fn enable_event_stream() {
    // EVNTEN (bit 2), EVNTI = 14 (bits 7:4), EL1PCTEN|EL1PCEN kept at EL2.
    // SAFETY: timer control registers of our own EL.
    unsafe {
        if current_el() == 2 {
            asm!("msr cnthctl_el2, {}", "isb", in(reg) (3u64 | (1 << 2) | (14 << 4)), options(nostack));
        } else {
            asm!("msr cntkctl_el1, {}", "isb", in(reg) ((1u64 << 2) | (14 << 4)), options(nostack));
        }
    }
}

/// Stops this CPU for good: interrupts masked, WFE for ever. Never jumps anywhere.
pub fn stop() -> ! {
    loop {
        // SAFETY: masks interrupts and waits; no memory effects.
        unsafe { asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}
