//! `cargo xtask`: the project's runner.
//!
//!   cargo xtask build            build target/loader.bin (release, flat arm64 Image)
//!   cargo xtask build --exception  the test build with the `exception` command:
//!                                target/loader-exception.bin (never shipped)
//!   cargo xtask run [-- QEMU…]   build, make the demo disk, boot QEMU into the loader
//!   cargo xtask test             everything CI runs: host tests, QEMU tests
//!   cargo xtask lava             a real LAVA job (lava-run) on QEMU running parkboot
//!   cargo xtask bench|kernel|disk|payload|fuzz   see their modules
//!   cargo xtask setup [COMMAND]  only install what COMMAND (default: test) needs
//!
//! Every command first makes the machine ready for itself (`xtask::setup`): the Rust target and
//! components rust-toolchain.toml names, the Debian packages it runs, dpkg's arm64 architecture
//! for the test kernel.
mod bench;
mod fuzz;

use std::path::Path;
use std::process::{exit, Command};

use xtask::setup::{self, Purpose};
use xtask::{build, cmd, disk, kernel, lava};

fn qemu_cmd(loader: &Path, extra: &[String]) -> Command {
    let mut c = Command::new("qemu-system-aarch64");
    c.args([
        "-M",
        "virt,virtualization=on",
        "-cpu",
        "cortex-a57",
        "-smp",
        "4",
        "-m",
        "1G",
        "-nographic",
        "-kernel",
    ]);
    c.arg(loader);
    c.args(extra);
    c
}

const USAGE: &str =
    "usage: cargo xtask <build|run|test|bench|lava|kernel|disk|payload|fuzz|setup [COMMAND]>";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| *a != "--")
        .cloned()
        .collect();
    if let Err(e) = dispatch(cmd, &rest) {
        eprintln!("xtask: error: {e}");
        exit(1);
    }
}

fn dispatch(cmd: &str, rest: &[String]) -> Result<(), String> {
    if cmd == "setup" {
        let what = rest.first().map(String::as_str).unwrap_or("test");
        let p = Purpose::parse(what).ok_or(format!("setup: unknown command {what:?}; {USAGE}"))?;
        return setup::ensure_real(p);
    }
    // `fuzz` checks for cargo-fuzz itself (docs/robustness.md).
    if let Some(p) = Purpose::parse(cmd) {
        setup::ensure_real(p)?;
    }
    match cmd {
        "build" if rest.iter().any(|a| a == "--exception") => build::loader_exception().map(|_| ()),
        "build" => build::loader().map(|_| ()),
        "payload" => build::payload().map(|_| ()),
        "run" => build::loader().and_then(|l| {
            let img = disk::demo_disk(disk::DEMO_BOOT_CMD)?;
            let mut args = disk::qemu_disk_args(&img, "demo");
            args.extend(rest.iter().cloned());
            eprintln!("xtask: booting QEMU (exit: `poweroff` at the prompt, or Ctrl-A X)");
            cmd::run(&mut qemu_cmd(&l, &args))
        }),
        "test" => test(rest),
        "kernel" => kernel::cli(rest),
        "disk" => disk::cli(rest),
        "fuzz" => fuzz::cli(rest),
        "bench" => bench::cli(rest),
        "lava" => build::loader().and_then(|l| {
            kernel::ensure_kernel()?;
            lava::run(&l)
        }),
        _ => {
            eprintln!("{USAGE}");
            exit(2);
        }
    }
}

fn test(rest: &[String]) -> Result<(), String> {
    // The variant first, so that the ELF left in the target dir (for
    // addr2line on a backtrace) is loader.bin's.
    let exception_loader = build::loader_exception()?;
    let loader = build::loader()?;
    build::payload()?;
    // The kernel tests boot Debian's stock arm64 kernel: fetch it first; the LAVA test renders
    // the device type with LAVA's own templates.
    kernel::ensure_kernel()?;
    lava::ensure_templates()?;
    let mut c = cmd::cargo();
    c.args(["test", "--workspace", "--release"])
        .env("PARKBOOT_LOADER", &loader)
        .env("PARKBOOT_LOADER_EXCEPTION", &exception_loader)
        .args(["--", "--test-threads=2"])
        .args(rest)
        .stdout(std::process::Stdio::piped());
    eprintln!("xtask: {c:?}");
    let mut child = c.spawn().map_err(|e| format!("cargo test: {e}"))?;
    // Pass the output through and total the per-binary results, so the run
    // ends with one plain line that counts every test.
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(r) = line.strip_prefix("test result: ") {
                let num = |key: &str| -> u64 {
                    r.split(';')
                        .find_map(|p| p.trim().strip_suffix(key))
                        .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
                        .unwrap_or(0)
                };
                passed += num(" passed");
                failed += num(" failed");
                ignored += num(" ignored");
            }
        }
    }
    let st = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    println!("summary: {passed} passed, {failed} failed, {ignored} skipped");
    if st.success() {
        Ok(())
    } else {
        Err(format!("cargo test failed: {st}"))
    }
}
