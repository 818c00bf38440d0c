//! U-Boot's download progress output: the `#` marks, `print_size` and the
//! summary lines, so that a log of parkboot reads like one of U-Boot
//! (net/tftp.c `show_block_marker` / `tftp_complete`, lib/display_options.c
//! `print_size`, net/net.c "Bytes transferred").

use alloc::format;
use alloc::string::String;

/// Marks printed for a whole file whose size is known (U-Boot: 50).
const HASHES_WITH_SIZE: u64 = 50;
/// Marks per line when the size is unknown (U-Boot's HASHES_PER_LINE).
const HASHES_PER_LINE: u64 = 65;

/// U-Boot's `print_size(size, suffix)`: "512 Bytes", "1.5 KiB", "12.3 MiB"
/// — binary units, one decimal rounded to nearest, no decimal when it is 0.
pub fn format_size(size: u64, suffix: &str) -> String {
    const NAMES: [char; 6] = ['E', 'P', 'T', 'G', 'M', 'K'];
    let mut d = 10 * NAMES.len() as u32;
    for (i, c) in NAMES.iter().enumerate() {
        if size >> d != 0 {
            return scaled(size, d, i, *c, &NAMES, suffix);
        }
        d -= 10;
    }
    format!("{size} Bytes{suffix}")
}

fn scaled(size: u64, d: u32, i: usize, c: char, names: &[char], suffix: &str) -> String {
    let mut n = size >> d;
    let f = size & ((1u64 << d) - 1);
    let mut m = 0u64;
    let mut c = c;
    if f != 0 {
        m = ((10u128 * f as u128 + (1u128 << (d - 1))) >> d) as u64;
        if m >= 10 {
            m -= 10;
            n += 1;
            if n == 1024 && i > 0 {
                n = 1;
                m = 0;
                c = names[i - 1];
            }
        }
    }
    if m != 0 {
        format!("{n}.{m} {c}iB{suffix}")
    } else {
        format!("{n} {c}iB{suffix}")
    }
}

/// The hash-mark progress of one download.
///
/// With a known total size (TFTP `tsize`, HTTP `Content-Length`) the file is
/// 50 marks wide, as in U-Boot; without one, a mark every ten units (TFTP
/// blocks, or [`Progress::UNIT_BYTES`]-byte steps for HTTP) and a new,
/// tab-indented line every 65 marks.
#[derive(Debug, Clone)]
pub struct Progress {
    total: Option<u64>,
    printed: u64,
    units: u64,
}

impl Progress {
    /// Bytes that count as one "block" for a stream without blocks (HTTP).
    pub const UNIT_BYTES: u64 = 1468;

    /// The first output of a download: `Loading: *\b` (U-Boot's spinner
    /// start, erased by the first mark).
    pub const START: &'static str = "Loading: *\x08";

    /// A progress for a download of `total` bytes, if known.
    pub fn new(total: Option<u64>) -> Progress {
        Progress {
            total: total.filter(|&t| t > 0),
            printed: 0,
            units: 0,
        }
    }

    /// The total size, once known (e.g. after the TFTP OACK).
    pub fn set_total(&mut self, total: Option<u64>) {
        self.total = total.filter(|&t| t > 0);
    }

    /// Marks to print after unit number `unit` (1-based, in order) was
    /// received, `pos` being the end of what has been received counted in
    /// whole units (U-Boot counts the last block as a whole one).
    pub fn advance(&mut self, unit: u64, pos: u64) -> String {
        let mut out = String::new();
        self.units = unit;
        match self.total {
            Some(total) => {
                let pos = pos.min(total);
                let want = (pos as u128 * HASHES_WITH_SIZE as u128 / total as u128) as u64;
                while self.printed < want {
                    out.push('#');
                    self.printed += 1;
                }
            }
            None => {
                let p = unit.saturating_sub(1);
                if p.is_multiple_of(10) {
                    out.push('#');
                } else if (p + 1).is_multiple_of(10 * HASHES_PER_LINE) {
                    out.push_str("\n\t ");
                }
            }
        }
        out
    }

    /// Marks for a byte stream: called with the total received so far.
    pub fn advance_bytes(&mut self, received: u64) -> String {
        let mut out = String::new();
        match self.total {
            Some(_) => out.push_str(&self.advance(self.units + 1, received)),
            None => {
                let units = received / Self::UNIT_BYTES;
                while self.units < units {
                    let next = self.units + 1;
                    out.push_str(&self.advance(next, 0));
                }
            }
        }
        out
    }

    /// The end of a successful download (U-Boot's `tftp_complete`): the
    /// remaining marks and the size when the total was known, the rate on a
    /// new line lined up under the marks (when any time passed), then
    /// `done`. `elapsed_ms` is the wall time of the transfer.
    pub fn finish(&mut self, bytes: u64, elapsed_ms: u64) -> String {
        let mut out = String::new();
        if let Some(total) = self.total {
            while self.printed < HASHES_WITH_SIZE - 1 {
                out.push('#');
                self.printed += 1;
            }
            out.push_str("  ");
            out.push_str(&format_size(total, ""));
        }
        // U-Boot divides first: bytes per ms, then times 1000.
        if let Some(per_ms) = bytes.checked_div(elapsed_ms) {
            out.push_str("\n\t ");
            out.push_str(&format_size(per_ms.saturating_mul(1000), "/s"));
        }
        out.push_str("\ndone\n");
        out
    }
}

/// net/net.c's line after every successful download.
pub fn bytes_transferred(bytes: u64) -> String {
    format!("Bytes transferred = {bytes} ({bytes:x} hex)\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_size_matches_u_boot() {
        assert_eq!(format_size(0, ""), "0 Bytes");
        assert_eq!(format_size(1023, ""), "1023 Bytes");
        assert_eq!(format_size(1024, ""), "1 KiB");
        assert_eq!(format_size(1536, ""), "1.5 KiB");
        // 1.04 KiB rounds to 1 KiB with no decimal.
        assert_eq!(format_size(1065, ""), "1 KiB");
        // 1023.96 KiB rounds up into the next unit.
        assert_eq!(format_size(1024 * 1024 - 40, ""), "1 MiB");
        assert_eq!(format_size(12_345_678, "/s"), "11.8 MiB/s");
        assert_eq!(format_size(3 << 30, ""), "3 GiB");
    }

    #[test]
    fn fifty_marks_for_a_known_size() {
        let mut p = Progress::new(Some(10 * 1468));
        let mut s = String::new();
        for b in 1..=10u64 {
            s.push_str(&p.advance(b, b * 1468));
        }
        assert_eq!(s, "#".repeat(50));
        assert_eq!(p.finish(10 * 1468, 0), "  14.3 KiB\ndone\n");
    }

    #[test]
    fn finish_fills_to_49_and_prints_the_rate() {
        let mut p = Progress::new(Some(1000));
        let s = p.advance(1, 512);
        assert_eq!(s, "#".repeat(25));
        // 1000 bytes in 2 ms: 500 bytes/ms -> 500000 B/s.
        assert_eq!(
            p.finish(1000, 2),
            format!("{}  1000 Bytes\n\t 488.3 KiB/s\ndone\n", "#".repeat(24))
        );
    }

    #[test]
    fn a_mark_every_ten_blocks_without_a_size() {
        let mut p = Progress::new(None);
        let mut s = String::new();
        for b in 1..=650u64 {
            s.push_str(&p.advance(b, 0));
        }
        assert_eq!(s, format!("{}\n\t ", "#".repeat(65)));
        assert_eq!(p.advance(651, 0), "#");
    }

    #[test]
    fn byte_streams_count_units() {
        let mut p = Progress::new(None);
        assert_eq!(p.advance_bytes(1467), "");
        assert_eq!(p.advance_bytes(1468), "#");
        assert_eq!(p.advance_bytes(11 * 1468), "#");
        let mut q = Progress::new(Some(100));
        assert_eq!(q.advance_bytes(50), "#".repeat(25));
        assert_eq!(q.advance_bytes(100), "#".repeat(25));
    }

    #[test]
    fn summary_line() {
        assert_eq!(
            bytes_transferred(12_345_678),
            "Bytes transferred = 12345678 (bc614e hex)\n"
        );
    }
}
