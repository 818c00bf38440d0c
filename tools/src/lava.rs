//! `cargo xtask lava`: a real LAVA job on QEMU running parkboot (docs/lava.md).
//!
//! 1. LAVA's own device-type templates (`base.jinja2`, `base-uboot.jinja2` of Debian bookworm's
//!    lava-server 2023.01) into target/lava/device-types, taken out of the package with
//!    `apt-get download` + `dpkg-deb -x` (lava-server itself, a Django site, is not installed);
//! 2. the board: target/lava/board with tools/lava/board.py and `qemu.args` (QEMU virt, 4 CPUs,
//!    1 GiB, EL2, loader.bin, virtio-net on a sealed user-mode network whose TFTP server serves
//!    LAVA's TFTP directory), and QEMU's DTB for it;
//! 3. the device configuration: tools/lava/devices/qemu-parkboot.jinja2 (which extends
//!    tools/lava/device-types/parkboot.jinja2, which extends LAVA's base-uboot.jinja2) rendered
//!    by tools/lava/render.py;
//! 4. `lava-run` with that device, tools/lava/dispatcher.yaml and the job
//!    tools/lava/jobs/qemu-parkboot-ramdisk.yaml (file paths filled in); its log is passed
//!    through and kept in target/lava/out, and LAVA's results are summed up at the end;
//! 5. the board is powered off whatever happened.
//!
//! The QEMU tests use step 1 too (tests/tests/lava.rs renders the device type).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmd;

/// LAVA's templates this project extends.
pub const TEMPLATES: &[&str] = &["base.jinja2", "base-uboot.jinja2"];
/// Where they are in the lava-server package.
const PKG_DIR: &str = "usr/share/lava-server/device-types";

/// target/lava.
pub fn dir() -> PathBuf {
    crate::root().join("target/lava")
}

/// tools/lava.
pub fn tools_dir() -> PathBuf {
    crate::root().join("tools/lava")
}

/// The directory holding LAVA's templates (whether or not they are there yet).
pub fn templates_dir() -> PathBuf {
    dir().join("device-types")
}

/// Debian's python3 (with python3-jinja2 and python3-yaml), else `python3` from PATH.
pub fn python() -> PathBuf {
    let deb = Path::new("/usr/bin/python3");
    if deb.exists() {
        deb.to_path_buf()
    } else {
        PathBuf::from("python3")
    }
}

/// Makes sure LAVA's templates are in [`templates_dir`]: taken out of Debian's lava-server
/// package when they are not.
pub fn ensure_templates() -> Result<PathBuf, String> {
    // One extraction at a time (the tests call this from parallel threads).
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|p| p.into_inner());
    let t = templates_dir();
    if TEMPLATES.iter().all(|f| t.join(f).exists()) {
        return Ok(t);
    }
    let debs = dir().join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!("xtask: lava: LAVA's device-type templates from Debian's lava-server package");
    let download = || {
        cmd::output(
            Command::new("apt-get")
                .args(["download", "lava-server"])
                .current_dir(&debs),
        )
    };
    if let Err(e) = download() {
        // A machine whose package lists were cleaned (a CI image): fetch them once, as root.
        let is_root = cmd::output(Command::new("id").arg("-u")).is_ok_and(|o| o.trim() == "0");
        if !is_root {
            return Err(format!(
                "{e}\n(apt-get download needs the package lists: apt-get update, as root)"
            ));
        }
        eprintln!("xtask: lava: apt-get update -q (no package lists for apt-get download)");
        cmd::output(Command::new("apt-get").args(["update", "-q"]))?;
        download()?;
    }
    let deb = std::fs::read_dir(&debs)
        .map_err(|e| format!("{}: {e}", debs.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("lava-server_") && n.ends_with(".deb"))
        })
        .max()
        .ok_or("apt-get download lava-server left no .deb")?;
    let x = dir().join("lava-server");
    let _ = std::fs::remove_dir_all(&x);
    cmd::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x))?;
    std::fs::create_dir_all(&t).map_err(|e| format!("{}: {e}", t.display()))?;
    for f in TEMPLATES {
        let from = x.join(PKG_DIR).join(f);
        std::fs::copy(&from, t.join(f)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let _ = std::fs::remove_dir_all(&x);
    Ok(t)
}

/// The device configuration lava-run takes: `device` rendered with LAVA's templates, its
/// BOARD_DIR set to `board`.
pub fn render_device(device: &Path, board: &Path) -> Result<String, String> {
    let t = ensure_templates()?;
    cmd::output(
        Command::new(python())
            .arg(tools_dir().join("render.py"))
            .arg(&t)
            .arg(device)
            .arg("--board-dir")
            .arg(board),
    )
}

/// QEMU's arguments for the board (the console and QMP sockets are board.py's).
fn qemu_args(loader: &Path, tftp_root: &Path) -> Vec<String> {
    let mut a = vec!["qemu-system-aarch64".to_string()];
    a.extend(
        [
            "-M",
            "virt,virtualization=on",
            "-cpu",
            "cortex-a57",
            "-smp",
            "4",
            "-m",
            "1G",
            "-no-reboot",
            "-nic",
            "none",
            "-device",
            "virtio-net-device,netdev=n0",
            "-netdev",
        ]
        .map(String::from),
    );
    a.push(format!(
        "user,id=n0,restrict=on,tftp={}",
        tftp_root.display()
    ));
    a.push("-kernel".into());
    a.push(loader.display().to_string());
    a
}

/// LAVA's TFTP directory: `TFTP_DIRECTORY` of /etc/default/tftpd-hpa, which its tftp deploy
/// reads too.
fn tftp_root() -> Result<PathBuf, String> {
    let f = "/etc/default/tftpd-hpa";
    let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: {e} (tftpd-hpa)"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("TFTP_DIRECTORY="))
        .map(|v| PathBuf::from(v.trim_matches('"')))
        .next()
        .ok_or_else(|| format!("{f}: no TFTP_DIRECTORY"))
}

/// UDP sockets bound to port 69 on an address other than the loopback, from the text of
/// /proc/net/udp or /proc/net/udp6 (`sl local_address:port …`, hex; IPv4 in host order).
pub fn tftp_beyond_loopback(proc_net_udp: &str) -> Vec<String> {
    proc_net_udp
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| {
            let (addr, port) = local.split_once(':')?;
            (u16::from_str_radix(port, 16).ok()? == 69).then_some(addr)
        })
        .filter(|addr| match addr.len() {
            // 127.0.0.0/8: the first byte in memory is the last in the little-endian word.
            8 => !addr.ends_with("7F"),
            // ::1
            _ => *addr != "00000000000000000000000001000000",
        })
        .map(|a| format!("{a}:69"))
        .collect()
}

/// A note when a TFTP daemon on this machine serves beyond the loopback: the job does not use
/// it (QEMU's own TFTP server serves LAVA's TFTP directory to the board), but LAVA's deploy
/// puts the job's files where it serves them.
fn check_tftpd() {
    let mut wide = Vec::new();
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        wide.extend(tftp_beyond_loopback(
            &std::fs::read_to_string(f).unwrap_or_default(),
        ));
    }
    if !wide.is_empty() {
        eprintln!(
            "xtask: lava: note: a TFTP server listens beyond the loopback ({}); the job does not \
             use it, but it serves LAVA's TFTP directory: set TFTP_ADDRESS=\"127.0.0.1:69\" in \
             /etc/default/tftpd-hpa (cargo xtask setup lava does so for a new install)",
            wide.join(", ")
        );
    }
}

/// `cargo xtask lava`.
pub fn run(loader: &Path) -> Result<(), String> {
    let is_root = cmd::output(Command::new("id").arg("-u")).is_ok_and(|o| o.trim() == "0");
    if !is_root {
        return Err(
            "lava: lava-run must run as root (it checks; its TFTP and temporary \
                    directories are system directories)"
                .into(),
        );
    }
    let k = crate::kernel::artifacts();
    let board = dir().join("board");
    let out = dir().join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&board).map_err(|e| format!("{}: {e}", board.display()))?;
    std::fs::copy(tools_dir().join("board.py"), board.join("board.py"))
        .map_err(|e| format!("board.py: {e}"))?;
    // A board left running by an interrupted run would be reset with its old arguments.
    power_off(&board);
    let tftp = tftp_root()?;
    check_tftpd();
    std::fs::create_dir_all(&tftp).map_err(|e| format!("{}: {e}", tftp.display()))?;
    std::fs::write(
        board.join("qemu.args"),
        qemu_args(loader, &tftp).join("\n") + "\n",
    )
    .map_err(|e| format!("qemu.args: {e}"))?;
    let dtb = crate::virt_dt::edited_virt_dtb(
        &board,
        "virt",
        "virt,virtualization=on",
        "cortex-a57",
        4,
        "1G",
        |s| s,
    )?;
    let device = render_device(&tools_dir().join("devices/qemu-parkboot.jinja2"), &board)?;
    let device_yaml = dir().join("device.yaml");
    std::fs::write(&device_yaml, device).map_err(|e| format!("device.yaml: {e}"))?;
    let job = std::fs::read_to_string(tools_dir().join("jobs/qemu-parkboot-ramdisk.yaml"))
        .map_err(|e| format!("job: {e}"))?
        .replace("file://KERNEL", &format!("file://{}", k.image.display()))
        .replace(
            "file://RAMDISK",
            &format!("file://{}", k.initramfs.display()),
        )
        .replace("file://DTB", &format!("file://{}", dtb.display()));
    let job_yaml = dir().join("job.yaml");
    std::fs::write(&job_yaml, job).map_err(|e| format!("job.yaml: {e}"))?;
    let r = lava_run(&device_yaml, &job_yaml, &out);
    power_off(&board);
    r
}

/// board.py off: QEMU quits (or is killed) if it runs.
fn power_off(board: &Path) {
    let _ = Command::new(python())
        .arg(board.join("board.py"))
        .arg("off")
        .arg(board)
        .status();
}

/// Runs lava-run, passing its log through to stdout (and into `out`/lava-run.log); LAVA's
/// results at the end, and its verdict.
fn lava_run(device: &Path, job: &Path, out: &Path) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut c = Command::new("lava-run");
    c.args(["--job-id", "1", "--output-dir"])
        .arg(out)
        .arg("--device")
        .arg(device)
        .arg("--dispatcher")
        .arg(tools_dir().join("dispatcher.yaml"))
        .arg(job)
        .stderr(Stdio::piped());
    eprintln!("xtask: {c:?}");
    let t0 = std::time::Instant::now();
    let mut child = c.spawn().map_err(|e| format!("lava-run: {e}"))?;
    let mut log = String::new();
    // lava-run logs one JSON object per line on stderr.
    if let Some(o) = child.stderr.take() {
        for line in BufReader::new(o).lines().map_while(Result::ok) {
            println!("{line}");
            log.push_str(&line);
            log.push('\n');
        }
    }
    let st = child.wait().map_err(|e| format!("lava-run: {e}"))?;
    let _ = std::fs::write(out.join("lava-run.log"), &log);
    let results = results(&log);
    println!("\nLAVA results ({} s):", t0.elapsed().as_secs());
    for r in &results {
        println!("  {r}");
    }
    let verdict = std::fs::read_to_string(out.join("result.yaml")).unwrap_or_default();
    let pass = passed(&results, &verdict, st.success());
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.ends_with(": pass") && !r.ends_with(": skip"))
        .map(String::as_str)
        .collect();
    println!(
        "LAVA: {} (job {}; failed cases: {}; lava-run {st})",
        if pass { "pass" } else { "fail" },
        verdict.replace('\n', " ").trim(),
        if failed.is_empty() {
            "none".to_string()
        } else {
            failed.join(", ")
        }
    );
    if pass {
        Ok(())
    } else {
        Err(format!("lava: the job failed; log in {}", out.display()))
    }
}

/// The run passed: lava-run exited 0, LAVA's job result (result.yaml) is `pass`, and so is
/// every result case of the log — a test case that fails leaves LAVA's job result at `pass`
/// (the job ran to its end), so the cases are checked too; `skip` counts as not failed.
pub fn passed(results: &[String], job_result: &str, exit_ok: bool) -> bool {
    exit_ok
        && job_result.lines().any(|l| l.trim() == "result: pass")
        && results.iter().any(|r| r == "lava/job: pass")
        && results
            .iter()
            .all(|r| r.ends_with(": pass") || r.ends_with(": skip"))
}

/// LAVA's `results` log lines as `definition/case: result`. lava-run writes one JSON object
/// per line (`{"dt": …, "lvl": "results", "msg": {"case": …, "definition": …, "result": …}}`).
pub fn results(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("\"lvl\": \"results\""))
        .filter_map(|l| {
            let field = |k: &str| {
                let key = format!("\"{k}\": \"");
                let i = l.find(&key)? + key.len();
                let rest = &l[i..];
                Some(rest[..rest.find('"')?].to_string())
            };
            Some(format!(
                "{}/{}: {}",
                field("definition")?,
                field("case")?,
                field("result")?
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_test_case_fails_the_run_though_the_job_passed() {
        let job = "case: job\ndefinition: lava\nresult: pass\n";
        let mut r = vec![
            "lava/validate: pass".to_string(),
            "0_parkboot-linux/every-cpu-online: pass".to_string(),
            "lava/job: pass".to_string(),
        ];
        assert!(super::passed(&r, job, true));
        assert!(!super::passed(&r, job, false));
        assert!(!super::passed(&r, "case: job\nresult: fail\n", true));
        r[1] = "0_parkboot-linux/every-cpu-online: fail".into();
        assert!(!super::passed(&r, job, true));
        assert!(!super::passed(&[], job, true));
    }

    #[test]
    fn tftp_sockets_beyond_the_loopback_are_found() {
        let udp =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   1: 00000000:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000     0
   2: 0100007F:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000     0
   3: 0F02000A:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0
";
        assert_eq!(super::tftp_beyond_loopback(udp), ["00000000:69"]);
        let udp6 = "  sl  local_address                         remote_address
   0: 00000000000000000000000001000000:0045 00000000000000000000000000000000:0000 07
   1: 00000000000000000000000000000000:0045 00000000000000000000000000000000:0000 07
";
        assert_eq!(
            super::tftp_beyond_loopback(udp6),
            ["00000000000000000000000000000000:69"]
        );
    }

    #[test]
    fn results_are_read_from_lava_run_log_lines() {
        let log = r#"{"dt": "2026-12-05T15:32:51.249656", "lvl": "input", "msg": "booti 0x48200000\n"}
{"dt": "2026-12-05T15:32:51.362520", "lvl": "results", "msg": {"case": "auto-login-action", "definition": "lava", "duration": "2.18", "extra": {"fail": "x"}, "level": "2.4.3", "namespace": "common", "result": "pass"}}
{"dt": "2026-12-05T15:32:52.1", "lvl": "results", "msg": {"case": "every-cpu-online", "definition": "0_parkboot-linux", "result": "pass"}}
"#;
        assert_eq!(
            super::results(log),
            [
                "lava/auto-login-action: pass",
                "0_parkboot-linux/every-cpu-online: pass"
            ]
        );
    }
}
