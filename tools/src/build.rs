//! Building the bare-metal images: `cargo build` for aarch64-unknown-none, ELF → flat binary
//! ([`crate::elf`]), and a check of the arm64 Image header of the result.
use std::path::PathBuf;

use crate::cmd;

/// The target every bare-metal image is built for.
pub const TARGET: &str = "aarch64-unknown-none";

/// One bare-metal image: a package's binary, built with `features`, written to target/`out`.
struct Spec<'a> {
    package: &'a str,
    bin: &'a str,
    features: &'a [&'a str],
    out: &'a str,
}

/// Builds target/loader.bin.
pub fn loader() -> Result<PathBuf, String> {
    flat(&Spec {
        package: "parkboot-loader",
        bin: "parkboot",
        features: &[],
        out: "loader.bin",
    })
}

/// The test build with U-Boot's `exception` command (loader feature `cmd-exception`):
/// target/loader-exception.bin, for the panic and exception-report tests. Never shipped.
pub fn loader_exception() -> Result<PathBuf, String> {
    flat(&Spec {
        package: "parkboot-loader",
        bin: "parkboot",
        features: &["cmd-exception"],
        out: "loader-exception.bin",
    })
}

/// Builds the bare-metal test payload (tests/payload) into target/payload.bin, an arm64 Image
/// the loader boots with `booti`.
pub fn payload() -> Result<PathBuf, String> {
    flat(&Spec {
        package: "parkboot-payload",
        bin: "payload",
        features: &[],
        out: "payload.bin",
    })
}

/// Where cargo writes (default: <root>/target).
fn cargo_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"))
}

fn flat(spec: &Spec) -> Result<PathBuf, String> {
    let mut c = cmd::cargo();
    c.args(["build", "--quiet", "-p", spec.package, "--bin", spec.bin])
        .args(["--target", TARGET, "--release"]);
    if !spec.features.is_empty() {
        c.args(["--features", &spec.features.join(",")]);
    }
    cmd::run(&mut c)?;
    let elf_path = cargo_target_dir()
        .join(TARGET)
        .join("release")
        .join(spec.bin);
    let elf = std::fs::read(&elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let bin = crate::elf::to_flat_binary(&elf)?;
    let image_size = check_image_header(&bin).map_err(|e| format!("{}: {e}", spec.out))?;
    let out = crate::root().join("target").join(spec.out);
    std::fs::write(&out, &bin).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "xtask: wrote {} ({} bytes = {} KiB; image_size {} KiB in place)",
        out.display(),
        bin.len(),
        bin.len() / 1024,
        image_size / 1024
    );
    Ok(out)
}

/// A built image must be a valid arm64 Image whose image_size covers the file, with the flags
/// the loader and payload set (little-endian, 4 KiB pages, anywhere in memory). Returns
/// image_size.
pub fn check_image_header(bin: &[u8]) -> Result<u64, String> {
    let le64 = |o: usize| {
        bin.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bin.get(56..60) != Some(b"ARM\x64") {
        return Err("no arm64 Image header magic".into());
    }
    let (Some(image_size), Some(flags)) = (le64(16), le64(24)) else {
        return Err("truncated Image header".into());
    };
    if image_size < bin.len() as u64 {
        return Err(format!("image_size {image_size} < file size {}", bin.len()));
    }
    if flags != 0xa {
        return Err(format!("unexpected Image flags {flags:#x}"));
    }
    Ok(image_size)
}

#[cfg(test)]
mod tests {
    use super::check_image_header;

    fn header(image_size: u64, flags: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[16..24].copy_from_slice(&image_size.to_le_bytes());
        b[24..32].copy_from_slice(&flags.to_le_bytes());
        b[56..60].copy_from_slice(b"ARM\x64");
        b
    }

    #[test]
    fn image_headers_are_checked() {
        assert_eq!(check_image_header(&header(4096, 0xa, 100)), Ok(4096));
        assert_eq!(
            check_image_header(&header(64, 0xa, 100)),
            Err("image_size 64 < file size 100".into())
        );
        assert_eq!(
            check_image_header(&header(4096, 0x2, 100)),
            Err("unexpected Image flags 0x2".into())
        );
        assert!(check_image_header(&[0u8; 63]).is_err());
    }
}
