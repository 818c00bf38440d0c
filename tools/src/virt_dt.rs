//! QEMU virt device trees with edits, and the in-memory payload chain that
//! `tests/tests/pen.rs` checks and `cargo xtask bench` times: QEMU puts
//! pristine copies of payload.bin and loader.bin into RAM (`-device loader`),
//! and the first loader's DT carries a `/config/environment` node whose
//! `bootcmd` boots the payload with loader.bin as its initrd and, with
//! `fdt set` on the DT it hands on, flips `pen_addr` for the next loader every
//! other cycle (docs/chain.md).
use std::path::{Path, PathBuf};
use std::process::Command;

/// QEMU's own DT for `-M <machine> -cpu <cpu> -smp <smp> -m <mem>`
/// (`dumpdtb`), decompiled, passed through `edit` (DTS in, DTS out) and
/// compiled into `dir/<name>.dtb`. Needs `dtc`.
pub fn edited_virt_dtb(
    dir: &Path,
    name: &str,
    machine: &str,
    cpu: &str,
    smp: u32,
    mem: &str,
    edit: impl FnOnce(String) -> String,
) -> Result<PathBuf, String> {
    let raw = dir.join(format!("{name}-qemu.dtb"));
    let out = Command::new("qemu-system-aarch64")
        .arg("-M")
        .arg(format!("{machine},dumpdtb={}", raw.display()))
        .args([
            "-cpu",
            cpu,
            "-smp",
            &smp.to_string(),
            "-m",
            mem,
            "-display",
            "none",
        ])
        .output()
        .map_err(|e| format!("qemu-system-aarch64: {e}"))?;
    if !out.status.success() {
        return Err(format!("dumpdtb: {out:?}"));
    }
    let dts = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&raw)
        .output()
        .map_err(|e| format!("dtc (apt-get install device-tree-compiler): {e}"))?;
    if !dts.status.success() {
        return Err(format!("dtc: {dts:?}"));
    }
    let src = edit(String::from_utf8_lossy(&dts.stdout).into_owned());
    let dts_path = dir.join(format!("{name}.dts"));
    std::fs::write(&dts_path, src).map_err(|e| format!("{}: {e}", dts_path.display()))?;
    let dtb = dir.join(format!("{name}.dtb"));
    let out = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&dtb)
        .arg(&dts_path)
        .output()
        .map_err(|e| format!("dtc: {e}"))?;
    if !out.status.success() {
        return Err(format!("dtc: {out:?}"));
    }
    Ok(dtb)
}

/// DTS text: `node` (a whole `name { ... };` block) added as the last child of the root.
pub fn dts_add_root_child(dts: &str, node: &str) -> String {
    match dts.trim_end().rfind("};") {
        Some(end) => format!("{}{node}\n{}", &dts[..end], &dts[end..]),
        None => format!("{dts}\n/ {{\n{node}\n}};\n"),
    }
}

/// A DTS string literal for `s` (quotes and backslashes escaped).
pub fn dts_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `config { environment { ... }; };` node setting `vars`.
pub fn config_environment_node(vars: &[(String, String)]) -> String {
    let body: String = vars
        .iter()
        .map(|(k, v)| format!("\t\t{k} = {};\n", dts_string(v)))
        .collect();
    format!("\tconfig {{\n\t\tenvironment {{\n{body}\t\t}};\n\t}};\n")
}

/// Where the in-memory chain keeps its pristine images, and the two pen places.
pub struct MemoryChain {
    /// payload.bin (deliberately not 2 MiB aligned: booti copies it to its run place).
    pub payload_at: u64,
    /// loader.bin, booted as the payload's initrd.
    pub loader_at: u64,
    /// `pen_addr` alternates between these every other cycle.
    pub places: [u64; 2],
}

pub const MEMORY_CHAIN: MemoryChain = MemoryChain {
    payload_at: 0x7c01_0000,
    loader_at: 0x7c80_0000,
    places: [0x7ff0_0000, 0x7fe0_0000],
};

impl MemoryChain {
    /// The `/config/environment` variables: autoboot at once, `pen_gather`,
    /// the payload's bootargs (`payload.rounds=<rounds>`), and the bootcmd that
    /// flips `pen_addr` for the next loader every other cycle and boots.
    pub fn env(&self, loader_len: u64, pen_gather: &str, rounds: u32) -> Vec<(String, String)> {
        let set = |var: &str, v: &str| format!("fdt set /config/environment {var} {v}");
        let [a, b] = self.places;
        let step = format!(
            "if test ${{pen_phase}} = 0; then {}; else {}; \
             if test ${{pen_addr}} = {a:x}; then {}; else {}; fi; fi; \
             booti ${{payload_at}} ${{next_loader_at}}:${{next_loader_size}}",
            set("pen_phase", "1"),
            set("pen_phase", "0"),
            set("pen_addr", &format!("{b:x}")),
            set("pen_addr", &format!("{a:x}")),
        );
        [
            ("bootdelay", "0".to_string()),
            ("pen_gather", pen_gather.to_string()),
            (
                "bootargs",
                format!("payload.next=loader payload.rounds={rounds}"),
            ),
            ("pen_phase", "0".into()),
            ("pen_addr", format!("{a:x}")),
            ("payload_at", format!("{:x}", self.payload_at)),
            ("next_loader_at", format!("{:x}", self.loader_at)),
            ("next_loader_size", format!("{loader_len:x}")),
            ("bootcmd", step),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `-device loader` arguments placing the pristine images.
    pub fn qemu_args(&self, payload: &Path, loader: &Path) -> Vec<String> {
        let mut a = Vec::new();
        for (file, at) in [(payload, self.payload_at), (loader, self.loader_at)] {
            a.push("-device".to_string());
            a.push(format!(
                "loader,file={},addr={at:#x},force-raw=on",
                file.display()
            ));
        }
        a
    }

    /// The pen place cycle `n` asks for (0: the first loader, then A A B B A A ...).
    pub fn pen_for_cycle(&self, n: usize) -> u64 {
        self.places[(n / 2) % 2]
    }
}

/// What a loader's `## loader entry -> handoff:` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handoff {
    pub us: u64,
    pub entry_counter: u64,
    pub freq: u64,
    pub heap_high_water: u64,
}

impl Handoff {
    /// Guest milliseconds from the loader's entry to `counter` (read from the same CNTPCT,
    /// e.g. the payload's entry stamp).
    pub fn ms_until(&self, counter: u64) -> f64 {
        counter.saturating_sub(self.entry_counter) as f64 * 1000.0 / self.freq.max(1) as f64
    }
}

/// Parses the text after `## loader entry -> handoff: `:
/// `N us (counter 0xA -> 0xB at F Hz); heap high water H bytes`.
pub fn parse_handoff(line: &str) -> Option<Handoff> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let num = |s: &str| {
        s.strip_prefix("0x")
            .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
    };
    Some(Handoff {
        us: num(w.first()?)?,
        entry_counter: num(w.get(3)?)?,
        freq: num(w.get(7)?)?,
        heap_high_water: num(w.get(12)?)?,
    })
}

/// The payload's entry counter from its start line (`... counter=0xC`).
pub fn parse_payload_counter(start_line: &str) -> Option<u64> {
    start_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("counter=0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoff_and_counter_lines() {
        let h = parse_handoff(
            "1234 us (counter 0x144cd -> 0x92c1be at 62500000 Hz); heap high water 233096 bytes",
        )
        .unwrap();
        assert_eq!(
            h,
            Handoff {
                us: 1234,
                entry_counter: 0x144cd,
                freq: 62_500_000,
                heap_high_water: 233_096
            }
        );
        assert_eq!(h.ms_until(0x144cd + 62_500), 1.0);
        assert!(parse_handoff("1234 us").is_none());
        assert_eq!(
            parse_payload_counter("2 dtb=0x4c200000 counter=0x93b997"),
            Some(0x93b997)
        );
        assert_eq!(parse_payload_counter("2 dtb=0x4c200000"), None);
    }

    #[test]
    fn dts_edits() {
        let d = "/dts-v1/;\n\n/ {\n\tmodel = \"x\";\n};\n";
        let e = dts_add_root_child(d, "\tfoo {\n\t};\n");
        assert!(e.ends_with("\tfoo {\n\t};\n\n};\n"), "{e}");
        assert_eq!(dts_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        let env = MEMORY_CHAIN.env(0x1000, "boot", 10);
        let node = config_environment_node(&env);
        assert!(node.contains("pen_gather = \"boot\";"), "{node}");
        assert!(node.contains("next_loader_size = \"1000\";"), "{node}");
        assert_eq!(MEMORY_CHAIN.pen_for_cycle(0), MEMORY_CHAIN.pen_for_cycle(1));
        assert_ne!(MEMORY_CHAIN.pen_for_cycle(1), MEMORY_CHAIN.pen_for_cycle(2));
    }
}
