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
    let t = templates_dir();
    if TEMPLATES.iter().all(|f| t.join(f).exists()) {
        return Ok(t);
    }
    let debs = dir().join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!("xtask: lava: LAVA's device-type templates from Debian's lava-server package");
    cmd::output(
        Command::new("apt-get")
            .args(["download", "lava-server"])
            .current_dir(&debs),
    )
    .map_err(|e| format!("{e}\n(apt-get download needs the package lists: apt-get update)"))?;
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
    let tftp = tftp_root()?;
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
    let _ = Command::new(python())
        .arg(board.join("board.py"))
        .arg("off")
        .arg(&board)
        .status();
    r
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
    let pass = verdict.contains("result: pass") && st.success();
    println!(
        "LAVA job: {} ({}, exit {st})",
        if pass { "pass" } else { "fail" },
        verdict.replace('\n', " ").trim()
    );
    if pass {
        Ok(())
    } else {
        Err(format!("lava: the job failed; log in {}", out.display()))
    }
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
