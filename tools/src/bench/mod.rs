//! `cargo xtask bench`: parkboot against U-Boot, on the same QEMU and the same disk.
//!
//! ```text
//! cargo xtask bench [--runs N] [--no-build] [--no-prealloc] [--pen-gather start|boot]
//!                   [--cpu-method spin-table|psci] [--only SESSION,...]
//!   --runs N      rounds (default 5); each round runs every session once per loader,
//!                 interleaved: U-Boot, parkboot, U-Boot, parkboot, ...
//!   --no-build    use the existing target/loader.bin instead of building it first
//!   --no-prealloc leave out -mem-prealloc: guest RAM is then faulted in on the host at first
//!                 touch, which on some hosts costs more than the loaders' own work (see
//!                 docs/performance.md); by default QEMU preallocates and the clock starts at
//!                 the QMP `cont` that lets the paused guest run
//!   --pen-gather  parkboot's `pen_gather` for the typed, autoboot and raw sessions (default:
//!                 the loader's own default, `start`); `boot` keeps the secondaries in firmware
//!                 until booti, so under TCG they do not spin while the loader works
//!   --cpu-method  parkboot's `cpu_method` for those sessions (default `spin-table`); `psci`
//!                 hands the secondaries back to firmware at booti, as U-Boot leaves them
//!   --only        only these sessions (typed, autoboot, firmware, raw, raw-smp1, autoboot-smp1, tftp,
//!                 idle, memchain, chain), e.g. `--only tftp`
//! ```
//!
//! Both loaders run on `-M virt,virtualization=on -cpu cortex-a57 -smp 4 -m 1G` (TCG, `-nic none`,
//! `-mem-prealloc`; started paused, all times count from the QMP `cont`) with one FAT32/MBR disk on virtio-mmio holding the stock Debian Image, the test
//! initramfs, /boot.cmd (parkboot), /boot.scr (U-Boot, the same commands via mkimage) and
//! /loader.bin. Every serial chunk is timestamped on the host as it arrives (reader thread on
//! QEMU's stdout pipe); a pattern's time is the arrival of the chunk that completed it.
//!
//! Sessions per round and loader (see docs/performance.md for the method and the analysis):
//! * typed: stop the countdown with a key as soon as "Hit any key" appears, then type
//!   `load … /Image`, `load … /initramfs.cpio.gz`, `setenv bootargs …; booti …`; the stages are
//!   measured from the moment a command is written to the moment its result line arrives, so
//!   neither countdown nor typing is in the total (= start→autoboot line + loads + booti→kernel);
//! * autoboot: bootdelay=0 in both (parkboot: /parkboot.env on the disk; U-Boot: its default
//!   environment with bootdelay=0 in the env flash bank, made with mkenvimage), each loader's
//!   default bootcmd finds the script; wall clock start→kernel line, then until /init is ready;
//! * raw: `virtio read` of the Image's blocks into fresh RAM (cold), again (warm), then a FAT
//!   load of /Image over the same, now warm, RAM; for parkboot also a loader → loader hop
//!   (`booti` of /loader.bin);
//! * firmware: each loader as the machine's firmware from reset (`-bios`; parkboot on
//!   `secure=on`, starting at EL3 with its resident PSCI part, docs/psci.md; U-Boot on the
//!   non-secure machine), autoboot as above: reset → autoboot line and reset → kernel line;
//! * raw and autoboot again with `-smp 1` (diagnostic: no secondary CPUs, so no pen);
//! * tftp: each loader on a sealed user-mode network (`restrict=on`, QEMU's built-in DHCP and
//!   TFTP servers, virtio-net mmio), `dhcp` then `tftp ${kernel_addr_r} Image` twice: typed →
//!   `Bytes transferred` line, and the rate the loader prints (U-Boot's `\t N MiB/s` line);
//! * idle: each loader at its prompt for 10 s with nothing typed, the QEMU process's CPU time
//!   from /proc (-smp 4, -smp 8, and -smp 4 with gic-version=3);
//! * parkboot only: one kexec chain cycle (loader → Linux → `kexec -l /loader.bin` → loader);
//! * parkboot only: the in-memory payload chain (docs/chain.md), 10 cycles per mode
//!   (`pen_gather=start` and `boot`): loader entry → payload entry in guest time.
//!
//! The CPU gather time comes from parkboot's start-up line (`CPUs: … in pen … after N us`);
//! rows for what the loader does not offer say "not yet implemented".
//!
//! Writes target/bench/latest.md (and prints it); session transcripts with arrival times go to
//! target/bench/logs/.

mod options;
mod parse;
mod prepare;
mod report;
mod results;
mod runs;
mod session;

use std::time::{Duration, Instant};

use options::parse_opts;
use prepare::{make_uboot_env, prepare, probe_parkboot};
use report::{host_state, render};
use results::Results;
use results::IDLE_MACHINES;
use runs::{
    run_auto, run_chain, run_firmware, run_idle, run_memchain, run_raw, run_tftp, run_typed, Extra,
};

pub(super) const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

pub(super) const BOOTARGS: &str = "console=ttyAMA0 earlycon parkboot.poweroff=1";

pub(super) const AUTOBOOT: &str = "Hit any key to stop autoboot";

pub(super) const KERNEL_LINE: &str = "Booting Linux on physical CPU";

/// Both loaders print this right before jumping to the kernel.
pub(super) const STARTING: &str = "Starting kernel ...";

pub(super) const INIT_READY: &str = "PARKBOOT-INIT: ready";

/// Longest wait for anything a loader prints.
pub(super) const WAIT: Duration = Duration::from_secs(60);

/// Longest wait for the kernel to reach /init under TCG.
pub(super) const WAIT_INIT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Loader {
    UBoot,
    Parkboot,
}

impl Loader {
    pub(super) fn name(self) -> &'static str {
        match self {
            Loader::UBoot => "U-Boot",
            Loader::Parkboot => "parkboot",
        }
    }
    pub(super) fn tag(self) -> &'static str {
        match self {
            Loader::UBoot => "uboot",
            Loader::Parkboot => "parkboot",
        }
    }
}

/// `cargo xtask bench ...`
pub fn cli(args: &[String]) -> Result<(), String> {
    bench(args).map_err(|e| format!("bench: {e}"))
}

pub(super) fn bench(args: &[String]) -> Result<(), String> {
    let opts = parse_opts(args)?;
    let runs = opts.runs;
    let mut ctx = prepare(opts)?;
    let t_all = Instant::now();
    eprintln!("xtask: bench: warm-up and U-Boot environment (bootdelay=0) ...");
    let uboot_version = make_uboot_env(&ctx)?;
    let parkboot_version = probe_parkboot(&mut ctx)?;
    let mut r = Results::default();
    let mut x = Extra {
        bootstage: None,
        notes: Vec::new(),
        host_before: host_state(),
        host_after: String::new(),
    };
    for run in 1..=runs {
        for mode in [
            "typed",
            "autoboot",
            "firmware",
            "raw",
            "raw-smp1",
            "autoboot-smp1",
            "tftp",
        ] {
            if !ctx.opts.runs(mode) {
                continue;
            }
            for l in [Loader::UBoot, Loader::Parkboot] {
                eprintln!("xtask: bench: round {run}/{runs}: {mode} {}", l.name());
                match mode {
                    "typed" => run_typed(&ctx, l, run, &mut r, &mut x)?,
                    "autoboot" => run_auto(&ctx, l, run, &mut r, 4)?,
                    "firmware" => run_firmware(&ctx, l, run, &mut r)?,
                    "autoboot-smp1" => run_auto(&ctx, l, run, &mut r, 1)?,
                    "raw" => run_raw(&ctx, l, run, &mut r, 4)?,
                    "tftp" => run_tftp(&ctx, l, run, &mut r)?,
                    _ => run_raw(&ctx, l, run, &mut r, 1)?,
                }
            }
        }
        for m in IDLE_MACHINES.iter().filter(|_| ctx.opts.runs("idle")) {
            for l in [Loader::UBoot, Loader::Parkboot] {
                eprintln!("xtask: bench: round {run}/{runs}: {} {}", m.0, l.name());
                run_idle(&ctx, l, run, &mut r, *m)?;
            }
        }
        for (gather, dtb) in ctx
            .memchain_dtbs
            .iter()
            .filter(|_| ctx.opts.runs("memchain"))
        {
            eprintln!(
                "xtask: bench: round {run}/{runs}: in-memory payload chain, pen_gather={gather}"
            );
            if let Some(n) = run_memchain(&ctx, run, gather, dtb, &mut r)? {
                eprintln!("xtask: bench: note: {n}");
                x.notes.push(n);
            }
        }
        if ctx.opts.runs("chain") {
            eprintln!("xtask: bench: round {run}/{runs}: kexec chain cycle parkboot");
            if let Some(n) = run_chain(&ctx, run, &mut r)? {
                eprintln!("xtask: bench: note: {n}");
                x.notes.push(n);
            }
        }
    }
    x.host_after = host_state();
    let report = render(
        &ctx,
        &r,
        &x,
        runs,
        &uboot_version,
        &parkboot_version,
        t_all.elapsed(),
    );
    let _ = std::fs::remove_file(ctx.dir.join("qmp.sock"));
    let out = ctx.dir.join("latest.md");
    std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{report}");
    eprintln!(
        "xtask: bench: wrote {} (transcripts in {})",
        out.display(),
        ctx.logs.display()
    );
    Ok(())
}
