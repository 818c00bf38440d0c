//! The arm64 Image out of the kernel package, and its gzip twin.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{file_name, mkdir};

pub(super) fn extract_vmlinuz(deb: &Path, image: &Path) -> Result<(), String> {
    let tmp = image.with_extension("unpack");
    let _ = std::fs::remove_dir_all(&tmp);
    mkdir(&tmp)?;
    // Only ./boot/ is needed: stream the data tarball into tar instead of unpacking the modules.
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    let st = Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(&tmp)
        .args(["--wildcards", "./boot/vmlinuz-*"])
        .stdin(dpkg.stdout.take().unwrap())
        .status()
        .map_err(|e| format!("tar: {e}"))?;
    let st2 = dpkg.wait().map_err(|e| format!("dpkg-deb: {e}"))?;
    if !st.success() || !st2.success() {
        return Err(format!(
            "extracting /boot/vmlinuz-* from {} failed (tar {st}, dpkg-deb {st2})",
            deb.display()
        ));
    }
    let vmlinuz = std::fs::read_dir(tmp.join("boot"))
        .map_err(|e| format!("{}: {e}", tmp.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| file_name(p).starts_with("vmlinuz-"))
        .ok_or_else(|| format!("no /boot/vmlinuz-* in {}", deb.display()))?;
    std::fs::copy(&vmlinuz, image).map_err(|e| format!("copy to {}: {e}", image.display()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

pub(super) fn check_arm64_image(image: &Path) -> Result<(), String> {
    let mut hdr = [0u8; 64];
    let mut f = std::fs::File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    std::io::Read::read_exact(&mut f, &mut hdr).map_err(|e| format!("{}: {e}", image.display()))?;
    if &hdr[56..60] != b"ARM\x64" {
        return Err(format!(
            "{} is not an uncompressed arm64 Image (no ARM\\x64 magic)",
            image.display()
        ));
    }
    Ok(())
}

pub(super) fn gzip_file(src: &Path, dst: &Path) -> Result<(), String> {
    let tmp = dst.with_extension("gz.tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let st = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(src)
        .stdout(f)
        .status()
        .map_err(|e| format!("gzip (apt package gzip): {e}"))?;
    if !st.success() {
        return Err(format!("gzip -9 {} failed: {st}", src.display()));
    }
    std::fs::rename(&tmp, dst).map_err(|e| format!("{}: {e}", dst.display()))
}
