//! Bootstage: named timestamps of the loader's stages (generic-timer ticks)
//! and U-Boot-style reporting ("Timer summary in microseconds").
//! Fixed capacity so marks can be taken before the heap exists.

use alloc::string::String;
use core::fmt::Write;

pub const CAPACITY: usize = 64;

#[derive(Clone, Copy)]
pub struct Mark {
    pub name: &'static str,
    pub ticks: u64,
    /// Optional detail: bytes moved by this stage (loads).
    pub bytes: u64,
    /// For spans (loads): how long the work itself took, in ticks.
    pub span: u64,
}

pub struct Bootstage {
    marks: [Mark; CAPACITY],
    len: usize,
    dropped: usize,
}

impl Default for Bootstage {
    fn default() -> Self {
        Self::new()
    }
}

impl Bootstage {
    pub const fn new() -> Self {
        Bootstage {
            marks: [Mark {
                name: "",
                ticks: 0,
                bytes: 0,
                span: 0,
            }; CAPACITY],
            len: 0,
            dropped: 0,
        }
    }

    pub fn mark(&mut self, name: &'static str, ticks: u64) {
        self.mark_bytes(name, ticks, 0);
    }

    pub fn mark_bytes(&mut self, name: &'static str, ticks: u64, bytes: u64) {
        self.mark_span(name, ticks, ticks, bytes);
    }

    /// A stage that did work from `start` to `end` (ticks), e.g. a load of
    /// `bytes`; the report gives its own duration and rate.
    pub fn mark_span(&mut self, name: &'static str, start: u64, end: u64, bytes: u64) {
        let span = end.saturating_sub(start);
        match self.marks.get_mut(self.len) {
            Some(m) => {
                *m = Mark {
                    name,
                    ticks: end,
                    bytes,
                    span,
                };
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }

    pub fn marks(&self) -> &[Mark] {
        &self.marks[..self.len]
    }

    /// Microseconds of the mark named `name` since the first mark.
    pub fn us_of(&self, name: &str, freq: u64) -> Option<u64> {
        let first = self.marks().first()?.ticks;
        let m = self.marks().iter().find(|m| m.name == name)?;
        Some(ticks_to_us(m.ticks.saturating_sub(first), freq))
    }

    /// The report: one line per mark with time since the first mark and
    /// the delta to the previous one, in microseconds.
    pub fn report(&self, freq: u64) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Timer summary in microseconds ({} records):", self.len);
        let _ = writeln!(o, "{:>11}{:>11}  Stage", "Mark", "Elapsed");
        let Some(first) = self.marks().first().map(|m| m.ticks) else {
            return o;
        };
        let mut prev = first;
        for m in self.marks() {
            let at = ticks_to_us(m.ticks.saturating_sub(first), freq);
            let d = ticks_to_us(m.ticks.saturating_sub(prev), freq);
            let _ = write!(o, "{at:>11}{d:>11}  {}", m.name);
            if m.bytes != 0 && d != 0 {
                let mibs = (m.bytes as u128 * 1_000_000 / d as u128) as u64;
                let _ = write!(
                    o,
                    " ({} bytes, {}.{:02} MiB/s)",
                    m.bytes,
                    mibs >> 20,
                    ((mibs & 0xfffff) * 100) >> 20
                );
            }
            o.push('\n');
            prev = m.ticks;
        }
        if self.dropped != 0 {
            let _ = writeln!(o, "({} records dropped)", self.dropped);
        }
        o
    }
}

pub fn ticks_to_us(t: u64, freq: u64) -> u64 {
    if freq == 0 {
        return 0;
    }
    (t as u128 * 1_000_000 / freq as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_deltas_and_rates() {
        let mut b = Bootstage::new();
        b.mark("entry", 1000);
        b.mark("mmu", 1000 + 62_500);
        b.mark_bytes("load", 1000 + 62_500 + 625_000, 10 << 20);
        let r = b.report(62_500_000);
        assert!(r.contains("          0          0  entry"), "{r}");
        assert!(r.contains("       1000       1000  mmu"), "{r}");
        assert!(
            r.contains("      11000      10000  load (10485760 bytes, 1000.00 MiB/s)"),
            "{r}"
        );
        assert_eq!(b.us_of("mmu", 62_500_000), Some(1000));
    }

    #[test]
    fn capacity_is_bounded() {
        let mut b = Bootstage::new();
        for i in 0..100 {
            b.mark("x", i);
        }
        assert_eq!(b.marks().len(), CAPACITY);
        assert!(b.report(1).contains("36 records dropped"));
    }
}
