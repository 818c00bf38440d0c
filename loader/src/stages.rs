//! Boot timing: the bootstage marks behind `bootstage report` (one static
//! record, as U-Boot's), and when the loader was entered and ready.

use crate::arch::timer;
use loader::bootstage::Bootstage;

static mut STAGES: Bootstage = Bootstage::new();

/// Records a bootstage mark now.
pub fn mark(name: &'static str) {
    mark_at(name, timer::ticks(), 0);
}

/// Records a span `[start, end)` (counter ticks) that moved `bytes`.
pub fn mark_span(name: &'static str, start: u64, end: u64, bytes: u64) {
    // SAFETY: only the boot CPU runs Rust.
    unsafe { (*core::ptr::addr_of_mut!(STAGES)).mark_span(name, start, end, bytes) }
}

/// Records a mark at `ticks`.
pub fn mark_at(name: &'static str, ticks: u64, bytes: u64) {
    // SAFETY: only the boot CPU runs Rust.
    unsafe { (*core::ptr::addr_of_mut!(STAGES)).mark_bytes(name, ticks, bytes) }
}

/// The `bootstage report` text.
pub fn report() -> alloc::string::String {
    // SAFETY: only the boot CPU runs Rust; no mark is taken while this is read.
    let stages = unsafe { &*core::ptr::addr_of!(STAGES) };
    stages.report(timer::freq())
}

/// When the loader was entered and when its prompt was ready (counter ticks).
pub struct Timing {
    entry: u64,
    ready: u64,
}

impl Timing {
    pub const fn new(entry_ticks: u64) -> Self {
        Self {
            entry: entry_ticks,
            ready: 0,
        }
    }

    pub const fn entry_ticks(&self) -> u64 {
        self.entry
    }

    pub fn us_since_entry(&self, ticks: u64) -> u64 {
        timer::ticks_to_us(ticks.saturating_sub(self.entry))
    }

    /// The prompt is ready now: marks "shell ready"; returns the µs since entry.
    pub fn set_ready(&mut self) -> u64 {
        self.ready = timer::ticks();
        mark_at("shell ready", self.ready, 0);
        self.ready_us()
    }

    /// µs from entry to the prompt.
    pub fn ready_us(&self) -> u64 {
        self.us_since_entry(self.ready)
    }
}
