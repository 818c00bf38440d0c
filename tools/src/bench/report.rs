//! target/bench/latest.md: the set-up, a table per section, the goals and the notes.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use xtask::root;

use super::prepare::Ctx;
use super::results::*;
use super::runs::Extra;
use super::{Loader, UBOOT_BIN};

/// Load average and how many other QEMUs run on the host (the bench's numbers depend on both).
pub(super) fn host_state() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    let mut qemus = 0;
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
                if c.starts_with("qemu-system") {
                    qemus += 1;
                }
            }
        }
    }
    format!("load average {load}, {qemus} other QEMU process(es)")
}

pub(super) fn git_desc() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .current_dir(root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = out(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{rev} + uncommitted changes")
    } else {
        rev
    }
}

pub(super) fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(super) fn render(
    ctx: &Ctx,
    r: &Results,
    x: &Extra,
    runs: usize,
    uboot_version: &str,
    parkboot_version: &str,
    took: Duration,
) -> String {
    let mut o = String::new();
    let qemu = Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(o, "# parkboot vs U-Boot: boot benchmark\n");
    let _ = writeln!(
        o,
        "- date: {}; {runs} rounds, interleaved U-Boot/parkboot; took {:.0} s",
        now_utc(),
        took.as_secs_f64()
    );
    let lsize = std::fs::metadata(&ctx.loader).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(
        o,
        "- parkboot: `{parkboot_version}` (loader.bin {lsize} bytes), git {}; U-Boot: `{uboot_version}` ({UBOOT_BIN})",
        git_desc()
    );
    let _ = writeln!(
        o,
        "- {qemu}, TCG on {ncpu} host CPU(s): `-M virt,virtualization=on -cpu cortex-a57 -smp 4 -m 1G -nic none`{}",
        if ctx.opts.prealloc { " `-mem-prealloc`" } else { "" }
    );
    let _ = writeln!(
        o,
        "- parkboot `pen_gather`: {}, `cpu_method`: {} (typed, autoboot and raw sessions)",
        ctx.opts
            .pen_gather
            .as_deref()
            .unwrap_or("start (the loader's default)"),
        ctx.opts
            .cpu_method
            .as_deref()
            .unwrap_or("spin-table (the loader's default)")
    );
    let _ = writeln!(
        o,
        "- host before: {}; after: {}",
        x.host_before, x.host_after
    );
    let _ = writeln!(
        o,
        "- disk: FAT32 on MBR over virtio-mmio (`-device virtio-blk-device`): /Image {} bytes, /initramfs.cpio.gz {} bytes; raw read = {} blocks\n",
        ctx.image_size, ctx.initrd_size, ctx.raw_blocks
    );
    let _ = writeln!(o, "Times in ms, rates in MiB/s; min / median / max over the runs; ratio = parkboot median / U-Boot median.");
    for (section, rows) in &r.sections {
        let _ = writeln!(o, "\n## {section}\n");
        let _ = writeln!(
            o,
            "| metric | unit | U-Boot min | med | max | parkboot min | med | max | ratio |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (label, unit) in rows {
            let cell = |l: Loader| match r.get(section, label, l) {
                Some(v) => {
                    let (a, m, b) = stats(v);
                    format!("{} | {} | {}", num(a), num(m), num(b))
                }
                None => "– | – | –".into(),
            };
            let ratio = match (
                r.median(section, label, Loader::Parkboot),
                r.median(section, label, Loader::UBoot),
            ) {
                (Some(p), Some(u)) if u != 0.0 => format!("{:.2}", p / u),
                _ => "–".into(),
            };
            let _ = writeln!(
                o,
                "| {label} | {unit} | {} | {} | {ratio} |",
                cell(Loader::UBoot),
                cell(Loader::Parkboot)
            );
        }
    }

    let _ = writeln!(o, "\n## Goals (medians)\n");
    let goal = |o: &mut String, what: &str, ok: bool, detail: String| {
        let _ = writeln!(
            o,
            "- {} {what}: {detail}",
            if ok { "MET" } else { "MISSED" }
        );
    };
    for (sec, label, name) in [
        (
            S_TYPED,
            "total: start + loads + booti → kernel",
            "typed, sum of stages",
        ),
        (
            S_AUTO,
            "total: guest start → kernel line",
            "autoboot, wall clock",
        ),
        (
            S_SMP1_AUTO,
            "total: guest start → kernel line",
            "autoboot, -smp 1: diagnostic only",
        ),
    ] {
        if let (Some(p), Some(u)) = (
            r.median(sec, label, Loader::Parkboot),
            r.median(sec, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("total ≤ 0.5 × U-Boot ({name})"),
                p <= 0.5 * u,
                format!(
                    "parkboot {:.0} ms vs U-Boot {:.0} ms = {:.2}×; target {:.0} ms{}",
                    p,
                    u,
                    p / u,
                    0.5 * u,
                    if p > 0.5 * u {
                        format!(", missed by {:.0} ms", p - 0.5 * u)
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
    for (sec, label, name) in [
        (
            S_TYPED,
            "load /Image, loader-reported rate",
            "cold RAM, typed",
        ),
        (
            S_AUTO,
            "load /Image, loader-reported rate",
            "cold RAM, autoboot",
        ),
        (S_RAW, "load /Image warm, loader-reported rate", "warm RAM"),
        (
            S_SMP1,
            "load /Image warm, loader-reported rate",
            "warm RAM, -smp 1: diagnostic only",
        ),
    ] {
        if let (Some(p), Some(u)) = (
            r.median(sec, label, Loader::Parkboot),
            r.median(sec, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("FAT load ≥ 2 × U-Boot's MiB/s ({name}, as each loader reports it)"),
                p >= 2.0 * u,
                format!("parkboot {p:.0} vs U-Boot {u:.0} MiB/s = {:.2}×", p / u),
            );
        }
    }
    for (label, name) in [
        (
            "tftp /Image, loader-reported rate",
            "as each loader reports it",
        ),
        ("tftp /Image, host-measured rate", "host-measured"),
    ] {
        if let (Some(p), Some(u)) = (
            r.median(S_TFTP, label, Loader::Parkboot),
            r.median(S_TFTP, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("TFTP ≥ 2 × U-Boot's MiB/s ({name}, QEMU's built-in server)"),
                p >= 2.0 * u,
                format!("parkboot {p:.1} vs U-Boot {u:.1} MiB/s = {:.2}×", p / u),
            );
        }
    }
    for (_, label, _, _) in IDLE_MACHINES {
        if let (Some(p), Some(u)) = (
            r.median(S_IDLE, label, Loader::Parkboot),
            r.median(S_IDLE, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("host CPU at idle ≤ 0.25 × U-Boot's ({label})"),
                p <= 0.25 * u,
                format!(
                    "parkboot {p:.1} % vs U-Boot {u:.1} % = {:.2}×",
                    p / u.max(0.01)
                ),
            );
        }
    }
    for (label, name) in [
        (
            "… of which `Starting kernel ...` → kernel line",
            "`Starting kernel ...` → Linux's first line",
        ),
        (
            "kernel line → /init ready (not in total)",
            "Linux's first line → /init",
        ),
    ] {
        if let (Some(p), Some(u)) = (
            r.median(S_AUTO, label, Loader::Parkboot),
            r.median(S_AUTO, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("{name} no slower than after U-Boot (autoboot)"),
                p <= u,
                format!("parkboot {p:.0} ms vs U-Boot {u:.0} ms = {:.2}×", p / u),
            );
        }
    }
    let pk = Loader::Parkboot;
    for (fat, raw, name) in [
        (
            (S_TYPED, "load /Image, host-measured rate"),
            (S_RAW, "virtio read cold, host-measured rate"),
            "cold RAM, host-measured",
        ),
        (
            (S_RAW, "load /Image warm, host-measured rate"),
            (S_RAW, "virtio read warm, host-measured rate"),
            "warm RAM, host-measured",
        ),
        (
            (S_RAW, "load /Image warm, loader-reported rate"),
            (S_RAW, "virtio read warm, loader-reported rate"),
            "warm RAM, loader-reported",
        ),
        (
            (S_SMP1, "load /Image warm, host-measured rate"),
            (S_SMP1, "virtio read warm, host-measured rate"),
            "warm RAM, host-measured, -smp 1: diagnostic only",
        ),
    ] {
        if let (Some(f), Some(w)) = (r.median(fat.0, fat.1, pk), r.median(raw.0, raw.1, pk)) {
            goal(
                &mut o,
                &format!("parkboot FAT load ≥ 90 % of its raw read ({name})"),
                f >= 0.9 * w,
                format!("{f:.0} vs {w:.0} MiB/s = {:.0} %", 100.0 * f / w),
            );
        }
    }

    let _ = writeln!(o, "\n## Notes\n");
    let pk = Loader::Parkboot;
    if let Some(only) = &ctx.opts.only {
        let _ = writeln!(o, "- sessions run: {} (`--only`)", only.join(", "));
    }
    if ctx.opts.runs("typed")
        && r.get(
            S_PARK,
            "CPU gather into the pen at start (banner `after N us`)",
            pk,
        )
        .is_none()
    {
        let _ = writeln!(
            o,
            "- CPU gather: not yet implemented (no `CPUs: … in pen` line at start)"
        );
    }
    if ctx.opts.runs("chain")
        && r.get(
            S_CHAIN,
            "one cycle: booti (typed) → next loader's autoboot line",
            pk,
        )
        .is_none()
    {
        let _ = writeln!(
            o,
            "- kexec chain cycle: not measured (no cycle completed; see the notes below)"
        );
    }
    for n in &x.notes {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "- parkboot commands (`help`): {}",
        ctx.commands.join(" ")
    );
    if let Some(b) = &x.bootstage {
        let _ = writeln!(
            o,
            "\n## parkboot `bootstage` (typed run 1, after both loads)\n\n```\n{}\n```",
            b.trim_end()
        );
    }
    o
}
