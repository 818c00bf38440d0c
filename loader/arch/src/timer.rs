//! Generic timer: the only clock (bootstage, sleep, timeouts, release latencies).
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};

/// The physical counter, after an ISB (so it is not read ahead of earlier instructions).
pub fn ticks() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// The counter frequency (CNTFRQ_EL0; QEMU virt's 62.5 MHz if firmware left it 0).
pub fn freq() -> u64 {
    let v = CNTFRQ_EL0.get();
    if v == 0 {
        62_500_000
    } else {
        v
    }
}

pub fn ticks_to_us(t: u64) -> u64 {
    ((u128::from(t) * 1_000_000) / u128::from(freq())) as u64
}

pub fn now_us() -> u64 {
    ticks_to_us(ticks())
}
