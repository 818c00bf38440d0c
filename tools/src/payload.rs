//! The bare-metal test payload (tests/payload): built for the QEMU pen tests
//! into `target/payload.bin`, an arm64 Image the loader boots with `booti`.
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where `build_payload` writes the flat binary.
pub fn payload_bin_path() -> PathBuf {
    root().join("target/payload.bin")
}

/// Builds `parkboot-payload` for aarch64-unknown-none (release) and converts the ELF into
/// `target/payload.bin`, checking its arm64 Image header.
pub fn build_payload() -> Result<PathBuf, String> {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "parkboot-payload",
        "--bin",
        "payload",
        "--target",
        "aarch64-unknown-none",
        "--release",
    ]);
    eprintln!("xtask: {c:?}");
    let st = c.status().map_err(|e| format!("{c:?}: {e}"))?;
    if !st.success() {
        return Err(format!("{c:?} failed: {st}"));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let elf_path = target_dir.join("aarch64-unknown-none/release/payload");
    let elf = std::fs::read(&elf_path).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let bin = crate::elf::to_flat_binary(&elf)?;
    check_header(&bin)?;
    let out = payload_bin_path();
    std::fs::write(&out, &bin).map_err(|e| format!("{}: {e}", out.display()))?;
    let image_size = u64::from_le_bytes(bin[16..24].try_into().unwrap());
    eprintln!(
        "xtask: wrote {} ({} bytes; image_size {} KiB in place)",
        out.display(),
        bin.len(),
        image_size / 1024
    );
    Ok(out)
}

fn check_header(bin: &[u8]) -> Result<(), String> {
    if bin.len() < 64 || &bin[56..60] != b"ARM\x64" {
        return Err("payload.bin has no arm64 Image header magic".into());
    }
    let image_size = u64::from_le_bytes(bin[16..24].try_into().unwrap());
    let flags = u64::from_le_bytes(bin[24..32].try_into().unwrap());
    if image_size < bin.len() as u64 {
        return Err(format!(
            "payload image_size {image_size} < file size {}",
            bin.len()
        ));
    }
    if flags != 0xa {
        return Err(format!("unexpected payload Image flags {flags:#x}"));
    }
    Ok(())
}
