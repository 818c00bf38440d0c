//! `cargo xtask`: the project's runner.
//!
//!   cargo xtask build            build target/loader.bin (release, flat arm64 Image)
//!   cargo xtask build --exception  the test build with the `exception` command:
//!                                target/loader-exception.bin (never shipped)
//!   cargo xtask run [-- QEMU…]   build, make the demo disk, boot QEMU into the loader
//!   cargo xtask test             everything CI runs: host tests, QEMU tests
//!   cargo xtask qemu-deps        check for the host tools the QEMU tests need
use xtask::{disk, elf, kernel};
mod bench;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {st}"))
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds the loader ELF and converts it into target/loader.bin.
pub fn build() -> Result<PathBuf, String> {
    build_variant(&[], "loader.bin")
}

/// The test build with U-Boot's `exception` command (loader feature
/// `cmd-exception`): target/loader-exception.bin, for the panic and
/// exception-report tests. Never shipped.
pub fn build_exception_variant() -> Result<PathBuf, String> {
    build_variant(&["cmd-exception"], "loader-exception.bin")
}

fn build_variant(features: &[&str], name: &str) -> Result<PathBuf, String> {
    let mut c = cargo();
    c.args([
        "build",
        "--quiet",
        "-p",
        "parkboot-loader",
        "--bin",
        "parkboot",
        "--target",
        "aarch64-unknown-none",
        "--release",
    ]);
    if !features.is_empty() {
        c.args(["--features", &features.join(",")]);
    }
    run(&mut c)?;
    // Cargo writes where CARGO_TARGET_DIR says (default: <root>/target).
    let cargo_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let elf_path = cargo_target.join("aarch64-unknown-none/release/parkboot");
    let elf = std::fs::read(&elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let bin = elf::to_flat_binary(&elf)?;
    check_image_header(&bin)?;
    let out = root().join("target").join(name);
    std::fs::write(&out, &bin).map_err(|e| format!("{}: {e}", out.display()))?;
    let image_size = u64::from_le_bytes(bin[16..24].try_into().unwrap());
    eprintln!(
        "xtask: wrote {} ({} bytes = {} KiB; image_size {} KiB in place)",
        out.display(),
        bin.len(),
        bin.len() / 1024,
        image_size / 1024
    );
    Ok(out)
}

/// The built image must be a valid arm64 Image whose image_size covers the file.
fn check_image_header(bin: &[u8]) -> Result<(), String> {
    if bin.len() < 64 || &bin[56..60] != b"ARM\x64" {
        return Err("loader.bin has no arm64 Image header magic".into());
    }
    let image_size = u64::from_le_bytes(bin[16..24].try_into().unwrap());
    let flags = u64::from_le_bytes(bin[24..32].try_into().unwrap());
    if image_size < bin.len() as u64 {
        return Err(format!("image_size {image_size} < file size {}", bin.len()));
    }
    if flags != 0xa {
        return Err(format!("unexpected Image flags {flags:#x}"));
    }
    Ok(())
}

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .filter(|a| *a != "--")
        .cloned()
        .collect();
    let res = match cmd {
        "build" if rest.iter().any(|a| a == "--exception") => build_exception_variant().map(|_| ()),
        "build" => build().map(|_| ()),
        "payload" => {
            xtask::payload::build_payload().map(|p| eprintln!("xtask: wrote {}", p.display()))
        }
        "run" => build().and_then(|l| {
            let img = disk::demo_disk(disk::DEMO_BOOT_CMD)?;
            let mut args = disk::qemu_disk_args(&img, "demo");
            args.extend(rest.iter().cloned());
            eprintln!("xtask: booting QEMU (exit: `poweroff` at the prompt, or Ctrl-A X)");
            run(&mut qemu_cmd(&l, &args))
        }),
        "test" => test(&rest),
        "kernel" => kernel::cli(&rest),
        "disk" => disk::cli(&rest),
        "fuzz" => fuzz::cli(&rest),
        "bench" => bench::cli(&rest),
        _ => {
            eprintln!("usage: cargo xtask <build|run|test|bench|kernel|disk|payload|fuzz>");
            exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("xtask: error: {e}");
        exit(1);
    }
}

fn test(rest: &[String]) -> Result<(), String> {
    // The variant first, so that the ELF left in the target dir (for
    // addr2line on a backtrace) is loader.bin's.
    let exception_loader = build_exception_variant()?;
    let loader = build()?;
    xtask::payload::build_payload()?;
    // The kernel tests boot Debian's stock arm64 kernel: fetch it first.
    kernel::ensure_kernel()?;
    let mut c = cargo();
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
