//! The sessions of one round: typed, autoboot, raw, the kexec chain and the in-memory chain.

use std::path::Path;
use std::time::Duration;

use xtask::{kernel, virt_dt};

use super::parse::{
    parse_boot_time, parse_gather, parse_load_line, parse_parkboot_raw, parse_ready,
    parse_tftp_rate, parse_transferred,
};
use super::prepare::Ctx;
use super::results::*;
use super::session::{between, to_prompt, Session};
use super::{Loader, AUTOBOOT, BOOTARGS, INIT_READY, KERNEL_LINE, STARTING, WAIT, WAIT_INIT};

/// How long the idle sessions watch the QEMU process at the prompt.
pub(super) const IDLE_WATCH: Duration = Duration::from_secs(10);

/// Stops the countdown, waits a second at the prompt (the loader's start-up work is over), then
/// measures the CPU time the QEMU process uses during [`IDLE_WATCH`] while nothing is typed:
/// U-Boot polls its UART; parkboot's boot CPU and its parked secondaries sleep
/// (docs/protocol.md §3.3).
pub(super) fn run_idle(
    ctx: &Ctx,
    l: Loader,
    run: usize,
    r: &mut Results,
    machine: (&str, &str, u32, bool),
) -> Result<(), String> {
    let (mode, label, smp, gic3) = machine;
    let mut s = ctx.session_machine(l, mode, run, &ctx.disk_typed, false, smp, gic3)?;
    to_prompt(&mut s)?;
    std::thread::sleep(Duration::from_secs(1));
    let c0 = s.cpu_time()?;
    let t0 = std::time::Instant::now();
    std::thread::sleep(IDLE_WATCH);
    let c1 = s.cpu_time()?;
    let wall = t0.elapsed().as_secs_f64();
    // Still alive and answering: the measurement was of an idle prompt, not a dead QEMU.
    s.cmd("echo idle")?;
    let pct = 100.0 * (c1.saturating_sub(c0)).as_secs_f64() / wall;
    r.add(S_IDLE, label, "%", l, pct);
    Ok(())
}

/// Cycles per in-memory chain session, and the payload's release/park rounds per cycle.
pub(super) const MEMCHAIN_CYCLES: usize = 10;

/// Loads `path` at `${var}` by typing the command; returns (host ms, reported MiB/s, bytes).
pub(super) fn typed_load(
    s: &mut Session,
    var: &str,
    path: &str,
) -> Result<(f64, f64, u64), String> {
    let t = s.line(&format!("load virtio 0 ${{{var}}} {path}"))?;
    let (t_done, line) = s.wait_line(" bytes read in ", "\n=> ", WAIT)?;
    let (bytes, _, rate) =
        parse_load_line(&line).ok_or_else(|| s.fail(&format!("cannot parse {line:?}")))?;
    s.wait("=> ", WAIT)?;
    Ok((between(t, t_done), rate, bytes))
}

pub(super) struct Extra {
    pub(super) bootstage: Option<String>,
    pub(super) notes: Vec<String>,
    pub(super) host_before: String,
    pub(super) host_after: String,
}

pub(super) fn run_typed(
    ctx: &Ctx,
    l: Loader,
    run: usize,
    r: &mut Results,
    x: &mut Extra,
) -> Result<(), String> {
    let mut s = ctx.session(l, "typed", run, &ctx.disk_typed, false)?;
    let (start, key, banner) = to_prompt(&mut s)?;
    if let Some(g) = parse_gather(&banner) {
        r.add(
            S_PARK,
            "CPU gather into the pen at start (banner `after N us`)",
            "ms",
            l,
            g,
        );
    }
    if l == Loader::Parkboot {
        let bd = s.cmd("bdinfo")?;
        let bt = parse_boot_time(&bd).ok_or_else(|| s.fail("no `boot time` line in bdinfo"))?;
        r.add(
            S_PARK,
            "entry → prompt (bdinfo `boot time`, loader clock)",
            "ms",
            l,
            bt,
        );
    }
    let (img_ms, img_rate, img_bytes) = typed_load(&mut s, "kernel_addr_r", "/Image")?;
    if img_bytes != ctx.image_size {
        return Err(s.fail(&format!(
            "/Image: {img_bytes} bytes read, expected {}",
            ctx.image_size
        )));
    }
    let (rd_ms, rd_rate, _) = typed_load(&mut s, "ramdisk_addr_r", "/initramfs.cpio.gz")?;
    if l == Loader::Parkboot && x.bootstage.is_none() {
        x.bootstage = Some(s.cmd("bootstage")?);
    }
    let t_b = s.line(&format!(
        "setenv bootargs '{BOOTARGS}'; booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}"
    ))?;
    let (k, t_sk, text) = s.wait_any(&[STARTING, "\n=> "], WAIT)?;
    if k != 0 {
        return Err(s.fail(&format!("booti returned to the prompt: {:?}", text.trim())));
    }
    let (t_k, _) = s.wait(KERNEL_LINE, WAIT)?;
    let booti = between(t_b, t_k);
    let setup = s.setup_ms;
    drop(s);
    let mib = |bytes: u64, ms: f64| bytes as f64 / 1048576.0 / (ms / 1000.0);
    r.add(
        S_TYPED,
        "QEMU set-up: spawn → guest start (not in total)",
        "ms",
        l,
        setup,
    );
    r.add(S_TYPED, "guest start → autoboot line", "ms", l, start);
    r.add(S_TYPED, "key → prompt (not in total)", "ms", l, key);
    r.add(
        S_TYPED,
        "load /Image (typed → result line)",
        "ms",
        l,
        img_ms,
    );
    r.add(
        S_TYPED,
        "load /Image, host-measured rate",
        "MiB/s",
        l,
        mib(ctx.image_size, img_ms),
    );
    r.add(
        S_TYPED,
        "load /Image, loader-reported rate",
        "MiB/s",
        l,
        img_rate,
    );
    r.add(
        S_TYPED,
        "load /initramfs.cpio.gz (typed → result line)",
        "ms",
        l,
        rd_ms,
    );
    r.add(
        S_TYPED,
        "load /initramfs.cpio.gz, loader-reported rate",
        "MiB/s",
        l,
        rd_rate,
    );
    r.add(S_TYPED, "booti (typed) → kernel line", "ms", l, booti);
    r.add(
        S_TYPED,
        "… of which booti (typed) → `Starting kernel ...`",
        "ms",
        l,
        between(t_b, t_sk),
    );
    r.add(
        S_TYPED,
        "… of which `Starting kernel ...` → kernel line",
        "ms",
        l,
        between(t_sk, t_k),
    );
    r.add(
        S_TYPED,
        "total: start + loads + booti → kernel",
        "ms",
        l,
        start + img_ms + rd_ms + booti,
    );
    Ok(())
}

/// Both loaders started from reset as the machine's firmware (`-bios`), autoboot with
/// bootdelay=0 into the kernel: reset → autoboot line (≈ the prompt) and reset → kernel line.
pub(super) fn run_firmware(
    ctx: &Ctx,
    l: Loader,
    run: usize,
    r: &mut Results,
) -> Result<(), String> {
    let mut s = ctx.session_firmware(l, run, &ctx.disk_auto)?;
    let (t_ab, _) = s.wait(AUTOBOOT, WAIT)?;
    s.wait(STARTING, WAIT)?;
    let (t_k, _) = s.wait(KERNEL_LINE, WAIT)?;
    r.add(
        S_FIRMWARE,
        "reset → autoboot line",
        "ms",
        l,
        s.ms_since_start(t_ab),
    );
    r.add(
        S_FIRMWARE,
        "reset → kernel line",
        "ms",
        l,
        s.ms_since_start(t_k),
    );
    Ok(())
}

/// `smp` 4: the reference session (until /init is ready); 1: the diagnostic one (until the
/// kernel line).
pub(super) fn run_auto(
    ctx: &Ctx,
    l: Loader,
    run: usize,
    r: &mut Results,
    smp: u32,
) -> Result<(), String> {
    let (mode, sec) = if smp == 4 {
        ("autoboot", S_AUTO)
    } else {
        ("autoboot-smp1", S_SMP1_AUTO)
    };
    let mut s = ctx.session_smp(l, mode, run, &ctx.disk_auto, true, smp)?;
    let (t_ab, _) = s.wait(AUTOBOOT, WAIT)?;
    let (_, rest) = s.wait("\n", WAIT)?;
    let first = rest
        .trim_start_matches(':')
        .split_whitespace()
        .next()
        .unwrap_or("");
    if first != "0" {
        return Err(s.fail(&format!(
            "countdown starts at {first:?}, not 0: the bootdelay=0 environment was not used"
        )));
    }
    // Load lines are told apart by their size (the script's own load prints one too).
    let mut t_img = None;
    let mut t_rd = None;
    let mut img_rate = 0.0;
    while t_img.is_none() || t_rd.is_none() {
        let (t, line) = s.wait_line(" bytes read in ", "\n=> ", WAIT)?;
        let (bytes, _, rate) =
            parse_load_line(&line).ok_or_else(|| s.fail(&format!("cannot parse {line:?}")))?;
        if bytes == ctx.image_size {
            t_img = Some(t);
            img_rate = rate;
        } else if bytes == ctx.initrd_size {
            t_rd = Some(t);
        }
    }
    let (t_img, t_rd) = (t_img.unwrap(), t_rd.unwrap());
    let (t_sk, _) = s.wait(STARTING, WAIT)?;
    let (t_k, _) = s.wait(KERNEL_LINE, WAIT)?;
    let total = s.ms_since_start(t_k);
    let start = s.ms_since_start(t_ab);
    r.add(sec, "guest start → autoboot line", "ms", l, start);
    r.add(
        sec,
        "autoboot line → /Image loaded (find script, load)",
        "ms",
        l,
        between(t_ab, t_img),
    );
    r.add(
        sec,
        "/Image loaded → initramfs loaded",
        "ms",
        l,
        between(t_img, t_rd),
    );
    r.add(
        sec,
        "initramfs loaded → kernel line (booti)",
        "ms",
        l,
        between(t_rd, t_k),
    );
    r.add(
        sec,
        "… of which `Starting kernel ...` → kernel line",
        "ms",
        l,
        between(t_sk, t_k),
    );
    r.add(sec, "total: guest start → kernel line", "ms", l, total);
    r.add(
        sec,
        "load /Image, loader-reported rate",
        "MiB/s",
        l,
        img_rate,
    );
    if smp == 4 {
        let (t_init, _) = s.wait(INIT_READY, WAIT_INIT)?;
        // /init powers off (parkboot.poweroff=1); not timed, a check that the boot was whole.
        if !s.wait_exit(Duration::from_secs(30)) {
            eprintln!(
                "xtask: bench: note: {} autoboot run {run}: QEMU did not power off within 30 s",
                l.name()
            );
        }
        r.add(
            sec,
            "kernel line → /init ready (not in total)",
            "ms",
            l,
            between(t_k, t_init),
        );
    }
    Ok(())
}

/// Types a `virtio read` of the Image's blocks at `${kernel_addr_r}`; returns (host ms,
/// parkboot's reported MiB/s).
pub(super) fn typed_raw(
    ctx: &Ctx,
    s: &mut Session,
    l: Loader,
) -> Result<(f64, Option<f64>), String> {
    let t = s.line(&format!(
        "virtio read ${{kernel_addr_r}} 0 {:x}",
        ctx.raw_blocks
    ))?;
    match l {
        Loader::UBoot => {
            // "virtio read: device 0 block # 0, count N ... N blocks read: OK"
            let (t_done, line) = s.wait_line(" blocks read: ", "\n=> ", WAIT)?;
            if !line.ends_with("OK") {
                return Err(s.fail(&format!("virtio read failed: {line:?}")));
            }
            s.wait("=> ", WAIT)?;
            Ok((between(t, t_done), None))
        }
        Loader::Parkboot => {
            let (t_done, line) = s.wait_line("virtio read: ", "\n=> ", WAIT)?;
            let rate = parse_parkboot_raw(&line)
                .ok_or_else(|| s.fail(&format!("cannot parse {line:?}")))?;
            s.wait("=> ", WAIT)?;
            Ok((between(t, t_done), Some(rate)))
        }
    }
}

/// `smp` 4: the reference session (with the chain and `cpus` extras); 1: the diagnostic
/// session without secondary CPUs.
pub(super) fn run_raw(
    ctx: &Ctx,
    l: Loader,
    run: usize,
    r: &mut Results,
    smp: u32,
) -> Result<(), String> {
    let (mode, sec) = if smp == 4 {
        ("raw", S_RAW)
    } else {
        ("raw-smp1", S_SMP1)
    };
    let mut s = ctx.session_smp(l, mode, run, &ctx.disk_typed, false, smp)?;
    let (start, _, _) = to_prompt(&mut s)?;
    if l == Loader::UBoot {
        // Select the device outside the timed commands (parkboot's default is ${virtio_dev}=0).
        let o = s.cmd("virtio dev 0")?;
        if !o.contains("is now current device") {
            return Err(s.fail(&format!("`virtio dev 0`: {o:?}")));
        }
    }
    let (cold, cold_rep) = typed_raw(ctx, &mut s, l)?;
    let (warm, warm_rep) = typed_raw(ctx, &mut s, l)?;
    let (fat_ms, fat_rate, _) = typed_load(&mut s, "kernel_addr_r", "/Image")?;
    let mib = |ms: f64| ctx.image_size as f64 / 1048576.0 / (ms / 1000.0);
    if smp != 4 {
        r.add(sec, "guest start → autoboot line", "ms", l, start);
    }
    r.add(sec, "virtio read cold (typed → result line)", "ms", l, cold);
    r.add(
        sec,
        "virtio read cold, host-measured rate",
        "MiB/s",
        l,
        mib(cold),
    );
    r.add(sec, "virtio read warm (typed → result line)", "ms", l, warm);
    r.add(
        sec,
        "virtio read warm, host-measured rate",
        "MiB/s",
        l,
        mib(warm),
    );
    r.add(
        sec,
        "load /Image warm (typed → result line)",
        "ms",
        l,
        fat_ms,
    );
    r.add(
        sec,
        "load /Image warm, host-measured rate",
        "MiB/s",
        l,
        mib(fat_ms),
    );
    r.add(
        sec,
        "load /Image warm, loader-reported rate",
        "MiB/s",
        l,
        fat_rate,
    );
    if let (Some(c), Some(w)) = (cold_rep, warm_rep) {
        r.add(sec, "virtio read cold, loader-reported rate", "MiB/s", l, c);
        r.add(sec, "virtio read warm, loader-reported rate", "MiB/s", l, w);
    }
    if l == Loader::Parkboot && smp == 4 {
        // A loader → loader hop without Linux: booti of loader.bin; until the next countdown.
        s.cmd("load virtio 0 ${kernel_addr_r} /loader.bin")?;
        let t = s.line("booti ${kernel_addr_r} - ${fdtcontroladdr}")?;
        let (k, t_ab, text) = s.wait_any(&[AUTOBOOT, "\n=> "], WAIT)?;
        if k != 0 {
            return Err(s.fail(&format!("booti of loader.bin returned: {:?}", text.trim())));
        }
        r.add(
            S_PARK,
            "booti /loader.bin (warm RAM) → next loader's autoboot line",
            "ms",
            l,
            between(t, t_ab),
        );
        if let Some(ready) = parse_ready(&text) {
            r.add(S_PARK, "that loader's own entry → ready", "ms", l, ready);
        }
    }
    Ok(())
}

/// One cycle of the kexec chain (parkboot only): loader → booti Linux (cpu_method=psci, so the
/// kernel can kexec with every CPU) → /init shell → `kexec -l /loader.bin` → next loader.
/// A failure is a finding, not a bench error: returned as a note.
pub(super) fn run_chain(ctx: &Ctx, run: usize, r: &mut Results) -> Result<Option<String>, String> {
    let l = Loader::Parkboot;
    let mut s = ctx.session(l, "chain", run, &ctx.disk_chain, false)?;
    to_prompt(&mut s)?;
    s.cmd("setenv cpu_method psci")?;
    s.cmd("setenv bootargs 'console=ttyAMA0 earlycon'")?;
    typed_load(&mut s, "ramdisk_addr_r", "/initramfs.cpio.gz")?;
    s.cmd("setenv rdsize ${filesize}")?;
    typed_load(&mut s, "kernel_addr_r", "/Image")?;
    let t_b = s.line("booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}")?;
    let (k, _, text) = s.wait_any(&[KERNEL_LINE, "\n=> "], WAIT)?;
    if k != 0 {
        return Ok(Some(format!(
            "chain run {run}: booti returned: {:?} ({})",
            text.trim(),
            s.log.display()
        )));
    }
    s.wait(INIT_READY, WAIT_INIT)?;
    let (t_sh, _) = s.wait(kernel::SHELL_PROMPT, WAIT)?;
    let t_k = s.line("kexec -l /loader.bin --dtb=/sys/firmware/fdt && kexec -e")?;
    let (k, t_next, text) = s.wait_any(&[AUTOBOOT, kernel::SHELL_PROMPT], WAIT)?;
    if k != 0 {
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.contains("kexec -l"))
            .unwrap_or("")
            .trim()
            .to_string();
        return Ok(Some(format!(
            "chain run {run}: kexec did not reach the next loader: {why:?} ({})",
            s.log.display()
        )));
    }
    r.add(
        S_CHAIN,
        "booti (typed) → Linux shell prompt",
        "ms",
        l,
        between(t_b, t_sh),
    );
    r.add(
        S_CHAIN,
        "kexec -l + kexec -e (typed) → next loader's autoboot line",
        "ms",
        l,
        between(t_k, t_next),
    );
    r.add(
        S_CHAIN,
        "one cycle: booti (typed) → next loader's autoboot line",
        "ms",
        l,
        between(t_b, t_next),
    );
    if let Some(ready) = parse_ready(&text) {
        r.add(S_CHAIN, "next loader's own entry → ready", "ms", l, ready);
    }
    if let Some(g) = parse_gather(&text) {
        r.add(
            S_CHAIN,
            "next loader's CPU gather (banner `after N us`)",
            "ms",
            l,
            g,
        );
    }
    Ok(None)
}

/// `MEMCHAIN_CYCLES` cycles of the in-memory chain with `pen_gather=<gather>`: every
/// cycle's loader entry → payload entry from the loader's handoff line and the payload's
/// start line (same counter), in guest ms.
pub(super) fn run_memchain(
    ctx: &Ctx,
    run: usize,
    gather: &str,
    dtb: &Path,
    r: &mut Results,
) -> Result<Option<String>, String> {
    let l = Loader::Parkboot;
    let mut args = ctx.machine_args(4);
    args.extend(["-kernel".to_string(), ctx.loader.display().to_string()]);
    args.extend(["-dtb".to_string(), dtb.display().to_string()]);
    args.extend(virt_dt::MEMORY_CHAIN.qemu_args(&ctx.payload, &ctx.loader));
    let name = format!("parkboot memchain-{gather} run {run}");
    let log = ctx.logs.join(format!("memchain-{gather}-{run}.log"));
    let mut s = Session::spawn(&name, &args, log, &ctx.dir.join("qmp.sock"))?;
    let label = format!("one cycle, pen_gather={gather}");
    for n in 0..MEMCHAIN_CYCLES {
        s.wait("## loader entry -> handoff: ", WAIT)?;
        let (_, line) = s.wait("\n", WAIT)?;
        let Some(h) = virt_dt::parse_handoff(&line) else {
            return Ok(Some(format!(
                "memchain {gather} run {run} cycle {n}: handoff line {line:?}"
            )));
        };
        s.wait("PAYLOAD: start el=", WAIT)?;
        let (_, start) = s.wait("\n", WAIT)?;
        let Some(c) = virt_dt::parse_payload_counter(&start) else {
            return Ok(Some(format!(
                "memchain {gather} run {run} cycle {n}: payload line {start:?}"
            )));
        };
        r.add(S_MEMCHAIN, &label, "ms", l, h.ms_until(c));
        let (k, _, text) = s.wait_any(
            &["PAYLOAD: entering loader at ", "PAYLOAD: VERDICT FAIL"],
            WAIT,
        )?;
        if k != 0 {
            return Ok(Some(format!(
                "memchain {gather} run {run} cycle {n}: payload failed: {}",
                text.lines().last().unwrap_or("").trim()
            )));
        }
    }
    Ok(None)
}

/// Downloads per TFTP session.
pub(super) const TFTP_DOWNLOADS: usize = 2;

/// The TFTP session: the loader on a sealed user-mode network whose built-in TFTP server serves
/// a directory holding only /Image; `setenv autoload no; dhcp`, then [`TFTP_DOWNLOADS`] times
/// `tftp ${kernel_addr_r} Image`, each measured from the typed command to its `Bytes
/// transferred` line, with the rate the loader prints and the CPU time QEMU used meanwhile.
pub(super) fn run_tftp(ctx: &Ctx, l: Loader, run: usize, r: &mut Results) -> Result<(), String> {
    let mut args = ctx.machine_args(4);
    match l {
        Loader::UBoot => args.extend(["-bios".to_string(), super::UBOOT_BIN.to_string()]),
        Loader::Parkboot => args.extend(["-kernel".to_string(), ctx.loader.display().to_string()]),
    }
    args.extend([
        "-netdev".to_string(),
        format!("user,id=n0,restrict=on,tftp={}", ctx.tftp_dir.display()),
        "-device".to_string(),
        "virtio-net-device,netdev=n0".to_string(),
    ]);
    let name = format!("{} tftp run {run}", l.name());
    let log = ctx.logs.join(format!("tftp-{}-{run}.log", l.tag()));
    let mut s = Session::spawn(&name, &args, log, &ctx.dir.join("qmp.sock"))?;
    to_prompt(&mut s)?;
    s.cmd("setenv autoload no")?;
    let out = s.cmd("dhcp")?;
    if !out.contains("DHCP client bound to address") {
        return Err(s.fail(&format!("dhcp: {out:?}")));
    }
    for _ in 0..TFTP_DOWNLOADS {
        let c0 = s.cpu_time()?;
        let t = s.line("tftp ${kernel_addr_r} Image")?;
        let (k, t_done, text) = s.wait_any(&["Bytes transferred = ", "\n=> "], WAIT)?;
        if k != 0 {
            return Err(s.fail(&format!("tftp failed: {:?}", text.trim())));
        }
        let (_, rest) = s.wait("\n", WAIT)?;
        let cpu = s.cpu_time()?.saturating_sub(c0);
        let bytes = parse_transferred(&format!("Bytes transferred = {rest}"));
        if bytes != Some(ctx.image_size) {
            return Err(s.fail(&format!(
                "tftp: {bytes:?} bytes transferred, expected {}",
                ctx.image_size
            )));
        }
        let rate = parse_tftp_rate(&text).ok_or_else(|| s.fail("no rate line after the marks"))?;
        s.wait("=> ", WAIT)?;
        let ms = between(t, t_done);
        r.add(
            S_TFTP,
            "tftp /Image (typed → `Bytes transferred` line)",
            "ms",
            l,
            ms,
        );
        r.add(
            S_TFTP,
            "tftp /Image, host-measured rate",
            "MiB/s",
            l,
            ctx.image_size as f64 / 1048576.0 / (ms / 1000.0),
        );
        r.add(
            S_TFTP,
            "tftp /Image, loader-reported rate",
            "MiB/s",
            l,
            rate,
        );
        // Less exposed to a busy host than the wall clock: what the transfer cost QEMU.
        r.add(
            S_TFTP,
            "tftp /Image, QEMU process CPU time (user + system, all threads)",
            "ms",
            l,
            cpu.as_secs_f64() * 1000.0,
        );
    }
    Ok(())
}
