//! The measurements: sections of rows, each a list of values per loader, and their statistics.

use std::collections::BTreeMap;

use super::Loader;

pub(super) const S_TYPED: &str =
    "Same commands, typed (countdown stopped by a key; total = sum of stages)";

pub(super) const S_AUTO: &str =
    "Autoboot, bootdelay=0, each loader's default bootcmd finds the script (wall clock)";

pub(super) const S_RAW: &str =
    "Raw device vs FAT (separate session; cold = first write to that RAM, warm = same RAM again)";

pub(super) const S_TFTP: &str = "TFTP download of /Image from QEMU's built-in server (virtio-net mmio, user-mode network with restrict=on; `setenv autoload no; dhcp`, then `tftp ${kernel_addr_r} Image` typed twice; the server grants blksize 1428 and no windowsize, so both loaders go in lock step)";

pub(super) const S_PARK: &str = "parkboot only";

pub(super) const S_IDLE: &str = "Idle at the prompt: host CPU used by the whole QEMU process over 10 s (user + system, % of one host CPU)";

/// The idle machines: (session name, row label, -smp, gic-version=3).
pub(super) const IDLE_MACHINES: [(&str, &str, u32, bool); 3] = [
    ("idle", "QEMU host CPU at the prompt, -smp 4", 4, false),
    ("idle-smp8", "QEMU host CPU at the prompt, -smp 8", 8, false),
    (
        "idle-gicv3",
        "QEMU host CPU at the prompt, -smp 4, gic-version=3",
        4,
        true,
    ),
];

pub(super) const S_CHAIN: &str =
    "parkboot kexec chain: loader → Linux → kexec loader.bin → loader (one cycle per round)";

pub(super) const S_MEMCHAIN: &str = "parkboot in-memory payload chain: loader entry → payload entry, guest time from both CNTPCT stamps (no disk; every cycle a fresh loader copy; pen moved every other cycle)";

pub(super) const S_FIRMWARE: &str = "As the machine's firmware from reset (-bios, autoboot with bootdelay=0; U-Boot on the non-secure machine, parkboot with secure=on at EL3 keeping its resident PSCI part; wall clock)";

pub(super) const S_SMP1_AUTO: &str = "Diagnostic: autoboot with -smp 1 (no secondary CPUs; until the kernel line; not a goal metric)";

pub(super) const S_SMP1: &str =
    "Diagnostic: the raw session with -smp 1 (no secondary CPUs; not a goal metric)";

#[derive(Default)]
pub(super) struct Results {
    /// Sections in order; each has rows (label, unit) in order.
    pub(super) sections: Vec<(String, Vec<(String, String)>)>,
    pub(super) values: BTreeMap<(String, String, Loader), Vec<f64>>,
}

impl Results {
    pub(super) fn add(&mut self, section: &str, label: &str, unit: &str, l: Loader, v: f64) {
        let si = match self.sections.iter().position(|s| s.0 == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.into(), Vec::new()));
                self.sections.len() - 1
            }
        };
        if !self.sections[si].1.iter().any(|r| r.0 == label) {
            self.sections[si].1.push((label.into(), unit.into()));
        }
        self.values
            .entry((section.into(), label.into(), l))
            .or_default()
            .push(v);
    }

    pub(super) fn get(&self, section: &str, label: &str, l: Loader) -> Option<&Vec<f64>> {
        self.values.get(&(section.into(), label.into(), l))
    }

    pub(super) fn median(&self, section: &str, label: &str, l: Loader) -> Option<f64> {
        self.get(section, label, l).map(|v| stats(v).1)
    }
}

/// (min, median, max).
pub(super) fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (s[0], med, s[n - 1])
}

pub(super) fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), (1.0, 2.5, 4.0));
    }
}
