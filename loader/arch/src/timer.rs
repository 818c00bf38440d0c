//! Generic timer: the loader's only clock (bootstage, sleep, timeouts).
use core::arch::asm;

pub fn ticks() -> u64 {
    let v: u64;
    // SAFETY: reading the physical counter has no side effects.
    unsafe { asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

pub fn freq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    if v == 0 {
        62_500_000
    } else {
        v
    }
}

pub fn ticks_to_us(t: u64) -> u64 {
    ((t as u128 * 1_000_000) / freq() as u128) as u64
}

pub fn now_us() -> u64 {
    ticks_to_us(ticks())
}
