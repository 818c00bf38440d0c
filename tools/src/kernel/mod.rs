//! `cargo xtask kernel`: the real-Linux test artifacts, from Debian's arm64 packages.
//!
//! Outputs (under `build/`, gitignored):
//!   build/kernel/Image               the stock Debian cloud arm64 kernel (uncompressed arm64 Image)
//!   build/kernel/Image.gz            gzip -9 of it
//!   build/kernel/initramfs.cpio.gz   busybox + kexec-tools (+ its libraries) + the /init below
//!   build/kernel/packages.txt        the .deb files the outputs were made from
//!   build/debs/*.deb                 downloaded packages (kept; `--refresh` re-resolves versions)
//!
//! Nothing is redone when its outputs exist and are newer than its inputs. Without `--refresh`
//! a complete `packages.txt` whose .debs are all present is reused without asking apt at all, so
//! a restored `build/` works offline.
//!
//! The /init prints `PARKBOOT-INIT: <key>=<value>` lines (see [`INIT_SCRIPT`]) and then runs an
//! interactive busybox shell on the console whose prompt is [`SHELL_PROMPT`].
//!
//! Modules: `packages` (which .debs, from apt), `image` (the Image out of the kernel package),
//! `initramfs` (the archive: programs, their libraries, /init = kernel/init.sh), `cpio`.

mod cpio;
mod image;
mod initramfs;
mod packages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

pub use cpio::{write_cpio_newc, CpioEntry};
pub use initramfs::INIT_SCRIPT;

use image::{check_arm64_image, extract_vmlinuz, gzip_file};
use initramfs::{build_initramfs, initramfs_stamp};
use packages::{packages, read_package_list};

/// The prompt of the shell /init leaves on the console.
pub const SHELL_PROMPT: &str = "initramfs# ";

/// Where the artifacts live.
pub struct Artifacts {
    pub image: PathBuf,
    pub image_gz: PathBuf,
    pub initramfs: PathBuf,
}

/// Paths of the artifacts (whether or not they have been built).
pub fn artifacts() -> Artifacts {
    let d = crate::root().join("build/kernel");
    Artifacts {
        image: d.join("Image"),
        image_gz: d.join("Image.gz"),
        initramfs: d.join("initramfs.cpio.gz"),
    }
}

/// `cargo xtask kernel [--refresh]`.
pub fn cli(args: &[String]) -> Result<(), String> {
    let mut refresh = false;
    for a in args {
        match a.as_str() {
            "--refresh" => refresh = true,
            _ => {
                return Err(format!(
                    "kernel: unknown argument {a:?} (usage: cargo xtask kernel [--refresh])"
                ))
            }
        }
    }
    let a = build_kernel(refresh)?;
    for p in [&a.image, &a.image_gz, &a.initramfs] {
        let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "xtask: kernel: {} ({} bytes, {:.1} MiB)",
            p.display(),
            len,
            len as f64 / 1048576.0
        );
    }
    Ok(())
}

/// Whether build/kernel/packages.txt names a complete set of .debs that are all in build/debs:
/// then the kernel is (re)built without asking apt anything (no arm64 architecture needed).
pub fn package_set_cached() -> bool {
    let root = crate::root();
    read_package_list(
        &root.join("build/kernel/packages.txt"),
        &root.join("build/debs"),
    )
    .is_some()
}

/// Makes sure Image, Image.gz and initramfs.cpio.gz exist and are up to date (cached packages
/// are reused; see the module docs). Callable from other subcommands.
pub fn ensure_kernel() -> Result<Artifacts, String> {
    build_kernel(false)
}

/// As [`ensure_kernel`]; `refresh` re-resolves package versions with apt.
pub fn build_kernel(refresh: bool) -> Result<Artifacts, String> {
    let t0 = Instant::now();
    let root = crate::root();
    let kdir = root.join("build/kernel");
    let debs = root.join("build/debs");
    mkdir(&kdir)?;
    mkdir(&debs)?;
    let out = artifacts();

    let pkgs = step("packages", || packages(&kdir, &debs, refresh))?;

    step0("Image", || {
        if newer_than(&out.image, &[&pkgs.kernel]) {
            return Ok(format!("up to date ({})", file_name(&out.image)));
        }
        extract_vmlinuz(&pkgs.kernel, &out.image)?;
        check_arm64_image(&out.image)?;
        Ok(format!("extracted from {}", file_name(&pkgs.kernel)))
    })?;

    step0("Image.gz", || {
        if newer_than(&out.image_gz, &[&out.image]) {
            return Ok("up to date".into());
        }
        gzip_file(&out.image, &out.image_gz)?;
        Ok(format!("gzip -9 {}", size_str(&out.image_gz)))
    })?;

    step0("initramfs", || {
        let stamp = kdir.join("initramfs.stamp");
        let want = initramfs_stamp(&pkgs.initramfs);
        let inputs: Vec<&Path> = pkgs.initramfs.iter().map(PathBuf::as_path).collect();
        if newer_than(&out.initramfs, &inputs)
            && std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str())
        {
            return Ok("up to date".into());
        }
        let staging = kdir.join("initramfs-root");
        let n = build_initramfs(&pkgs.initramfs, &staging, &out.initramfs)?;
        write(&stamp, want.as_bytes())?;
        Ok(format!("{n} entries, {}", size_str(&out.initramfs)))
    })?;

    eprintln!("xtask: kernel: done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(out)
}

/// The test initramfs with extra files appended as a second (uncompressed)
/// cpio archive — the kernel unpacks concatenated archives in order. Used to
/// carry loader.bin (and payloads) into Linux for kexec chain tests.
pub fn initramfs_with(extra: &[(&str, Vec<u8>)], out: &Path) -> Result<(), String> {
    let a = ensure_kernel()?;
    let mut bytes =
        std::fs::read(&a.initramfs).map_err(|e| format!("{}: {e}", a.initramfs.display()))?;
    let mut entries = BTreeMap::new();
    for (name, data) in extra {
        entries.insert(
            name.trim_start_matches('/').to_string(),
            CpioEntry::File {
                mode: 0o644,
                data: data.clone(),
            },
        );
    }
    let mut cpio = Vec::new();
    write_cpio_newc(&entries, &mut cpio).map_err(|e| format!("cpio: {e}"))?;
    // Pad the first archive to 4 bytes before appending.
    while bytes.len() % 4 != 0 {
        bytes.push(0);
    }
    bytes.extend_from_slice(&cpio);
    std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))
}

fn step<T>(what: &str, f: impl FnOnce() -> Result<(T, String), String>) -> Result<T, String>
where
    T: Sized,
{
    let t = Instant::now();
    eprintln!("xtask: kernel: {what} ...");
    let (v, msg) = f().map_err(|e| format!("kernel: {what}: {e}"))?;
    eprintln!(
        "xtask: kernel: {what}: {msg} ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    Ok(v)
}

/// [`step`] for work that yields only a message.
fn step0(what: &str, f: impl FnOnce() -> Result<String, String>) -> Result<(), String> {
    step(what, || f().map(|m| ((), m)))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// `out` exists and is at least as new as every input.
fn newer_than(out: &Path, inputs: &[&Path]) -> bool {
    let Some(o) = mtime(out) else { return false };
    inputs
        .iter()
        .all(|i| mtime(i).map(|t| t <= o).unwrap_or(false))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn size_str(p: &Path) -> String {
    let n = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    format!("{n} bytes ({:.1} MiB)", n as f64 / 1048576.0)
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

fn write(p: &Path, data: &[u8]) -> Result<(), String> {
    std::fs::write(p, data).map_err(|e| format!("{}: {e}", p.display()))
}
