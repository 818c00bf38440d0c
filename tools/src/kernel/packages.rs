//! Which Debian arm64 packages the kernel artifacts are made from: the cloud kernel, busybox,
//! kexec-tools and its libraries; resolved with apt-cache and fetched with `apt-get download`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{file_name, write};
use crate::cmd::{output as capture, run as run_loud};

/// Runtime packages of kexec-tools on bookworm, used when `apt-cache depends` gives nothing.
pub(super) const KEXEC_LIBS_FALLBACK: &[&str] = &[
    "libc6",
    "libgcc-s1",
    "zlib1g",
    "liblzma5",
    "libxenmisc4.17",
    "libxencall1",
    "libxendevicemodel1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxenhypfs1",
    "libxenstore4",
    "libxentoolcore1",
    "libxentoollog1",
    "libyajl2",
    "libuuid1",
    "libext2fs2",
    "libfdt1",
    "libcom-err2",
    "libzstd1",
];

pub(super) const KERNEL_PKG_REGEX: &str = "^linux-image-.*-cloud-arm64-unsigned$";

pub(super) struct Pkgs {
    pub(super) kernel: PathBuf,
    pub(super) initramfs: Vec<PathBuf>,
}

pub(super) fn packages(kdir: &Path, debs: &Path, refresh: bool) -> Result<(Pkgs, String), String> {
    let list = kdir.join("packages.txt");
    if !refresh {
        if let Some(p) = read_package_list(&list, debs) {
            return Ok((
                p,
                format!("cached set from {} (--refresh re-resolves)", list.display()),
            ));
        }
    }
    ensure_arm64_apt()?;

    // The kernel: highest-versioned cloud arm64 unsigned image.
    let kernel_pkg = find_kernel_package()?;
    // busybox + kexec-tools + the libraries kexec needs.
    let mut names: BTreeSet<String> =
        ["busybox-static".to_string(), "kexec-tools".to_string()].into();
    let libs = kexec_libraries();
    let (libs, how) = if libs.is_empty() {
        (
            KEXEC_LIBS_FALLBACK.iter().map(|s| s.to_string()).collect(),
            "built-in list",
        )
    } else {
        (libs, "apt-cache depends")
    };
    eprintln!(
        "xtask: kernel:   kexec-tools libraries ({how}): {}",
        libs.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    names.extend(libs);

    let mut all = vec![kernel_pkg.clone()];
    all.extend(names.iter().cloned());
    let files = download(&all, debs)?;
    let kernel = files[0].clone();
    let initramfs: Vec<PathBuf> = files[1..].to_vec();

    let mut text = format!("kernel {}\n", file_name(&kernel));
    for f in &initramfs {
        text.push_str(&format!("initramfs {}\n", file_name(f)));
    }
    write(&list, text.as_bytes())?;
    Ok((
        Pkgs { kernel, initramfs },
        format!(
            "{kernel_pkg} + {} packages for the initramfs",
            files.len() - 1
        ),
    ))
}

pub(super) fn read_package_list(list: &Path, debs: &Path) -> Option<Pkgs> {
    let text = std::fs::read_to_string(list).ok()?;
    let mut kernel = None;
    let mut initramfs = Vec::new();
    for l in text.lines() {
        let (kind, name) = l.split_once(' ')?;
        let p = debs.join(name);
        if !p.is_file() {
            return None;
        }
        match kind {
            "kernel" => kernel = Some(p),
            "initramfs" => initramfs.push(p),
            _ => return None,
        }
    }
    let has = |prefix: &str| initramfs.iter().any(|p| file_name(p).starts_with(prefix));
    if !has("busybox-static_") || !has("kexec-tools_") || !has("libc6_") {
        return None;
    }
    Some(Pkgs {
        kernel: kernel?,
        initramfs,
    })
}

/// Makes apt able to fetch arm64 packages: dpkg's arm64 architecture through the first-minute
/// code (`xtask::setup`, as root; otherwise it names the command), then `apt-get update` if apt
/// has no arm64 package lists yet.
pub(super) fn ensure_arm64_apt() -> Result<(), String> {
    crate::setup::ensure(
        &mut crate::setup::RealHost { fetching: true },
        &crate::setup::toolchain()?,
        crate::setup::Purpose::Kernel,
    )?;
    let known = || {
        Command::new("apt-get")
            .args(["download", "--print-uris", "-q", "busybox-static:arm64"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !known() {
        eprintln!("xtask: kernel:   apt has no arm64 package lists yet: running apt-get update");
        run_loud(Command::new("apt-get").args(["update", "-q"]))?;
        if !known() {
            return Err(
                "apt knows no busybox-static:arm64 after apt-get update (check /etc/apt/sources)"
                    .into(),
            );
        }
    }
    Ok(())
}

/// The kernel package: $PARKBOOT_KERNEL_PKG if set; else the unsigned twin of what Debian's
/// `linux-image-cloud-arm64` metapackage currently depends on (the distribution's kernel, 6.1 on
/// bookworm); else the highest-versioned `linux-image-*-cloud-arm64-unsigned` apt knows.
pub(super) fn find_kernel_package() -> Result<String, String> {
    let out =
        capture(Command::new("apt-cache").args(["search", "--names-only", KERNEL_PKG_REGEX]))?;
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    if let Ok(p) = std::env::var("PARKBOOT_KERNEL_PKG") {
        let p = p.trim_end_matches(":arm64").to_string();
        eprintln!("xtask: kernel:   kernel package from $PARKBOOT_KERNEL_PKG: {p}");
        return Ok(p);
    }
    let meta =
        capture(Command::new("apt-cache").args(["depends", "linux-image-cloud-arm64:arm64"]))
            .unwrap_or_default();
    for l in meta.lines() {
        if let Some(dep) = l.trim().strip_prefix("Depends: ") {
            let unsigned = format!("{}-unsigned", dep.trim_end_matches(":arm64"));
            if names.contains(&unsigned) {
                eprintln!("xtask: kernel:   linux-image-cloud-arm64 -> {dep}: using {unsigned}");
                return Ok(unsigned);
            }
        }
    }
    if names.is_empty() {
        return Err(format!(
            "apt-cache search --names-only '{KERNEL_PKG_REGEX}' found no kernel package"
        ));
    }
    names.sort_by(|a, b| version_key(a).cmp(&version_key(b)).then(a.cmp(b)));
    let p = names.pop().unwrap();
    eprintln!(
        "xtask: kernel:   no linux-image-cloud-arm64 metapackage: using the highest version, {p}"
    );
    Ok(p)
}

/// "linux-image-6.1.0-31-cloud-arm64-unsigned" -> [6, 1, 0, 31].
pub(super) fn version_key(name: &str) -> Vec<u64> {
    name.trim_start_matches("linux-image-")
        .split(|c: char| !c.is_ascii_digit())
        .take_while(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Library packages kexec-tools:arm64 needs at run time: the closure of its plain
/// `Depends:`/`PreDepends:` on arm64 `lib*` packages (alternatives and virtual packages such as
/// debconf-2.0 are not followed). Empty if apt cannot tell.
pub(super) fn kexec_libraries() -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut level = vec!["kexec-tools".to_string()];
    while !level.is_empty() {
        let args: Vec<String> = level.iter().map(|n| format!("{n}:arm64")).collect();
        let Ok(out) = capture(
            Command::new("apt-cache")
                .args([
                    "depends",
                    "--no-recommends",
                    "--no-suggests",
                    "--no-conflicts",
                    "--no-breaks",
                ])
                .args(["--no-replaces", "--no-enhances"])
                .args(&args),
        ) else {
            return BTreeSet::new();
        };
        let mut next = Vec::new();
        for l in out.lines() {
            let Some(dep) = l
                .strip_prefix("  Depends: ")
                .or_else(|| l.strip_prefix("  PreDepends: "))
            else {
                continue;
            };
            let Some(name) = dep.trim().strip_suffix(":arm64") else {
                continue;
            };
            if (name.starts_with("lib") || name.starts_with("zlib"))
                && seen.insert(name.to_string())
            {
                next.push(name.to_string());
            }
        }
        level = next;
    }
    seen
}

/// `apt-get download`s whatever of `names` (arm64) is not in `dir` yet; returns the .deb paths.
pub(super) fn download(names: &[String], dir: &Path) -> Result<Vec<PathBuf>, String> {
    let qualified: Vec<String> = names.iter().map(|n| format!("{n}:arm64")).collect();
    let uris = capture(
        Command::new("apt-get")
            .args(["download", "--print-uris", "-q"])
            .args(&qualified),
    )?;
    // Lines: 'URL' file_version_arch.deb SIZE SHA256:...
    let mut files = Vec::new();
    for l in uris.lines().filter(|l| l.starts_with('\'')) {
        let f = l
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| format!("odd apt-get output: {l}"))?;
        files.push(f.to_string());
    }
    if files.len() != names.len() {
        return Err(format!(
            "apt-get download --print-uris gave {} files for {} packages:\n{uris}",
            files.len(),
            names.len()
        ));
    }
    // apt prints them in its own order: match them up by "<name>_" (':' of epochs is "%3a").
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (n, q) in names.iter().zip(&qualified) {
        let f = files
            .iter()
            .find(|f| f.starts_with(&format!("{n}_")))
            .ok_or_else(|| {
                format!("apt-get download --print-uris gave no file for {q}:\n{uris}")
            })?;
        let p = dir.join(f);
        if !p.is_file() {
            missing.push(q.clone());
        }
        out.push(p);
    }
    if missing.is_empty() {
        eprintln!(
            "xtask: kernel:   all {} .debs already in {}",
            out.len(),
            dir.display()
        );
    } else {
        eprintln!(
            "xtask: kernel:   downloading {} packages into {}",
            missing.len(),
            dir.display()
        );
        let mut c = Command::new("apt-get");
        // Sandbox user root: the _apt user may not be able to write into the work tree.
        c.args(["download", "-q", "-o", "APT::Sandbox::User=root"])
            .args(&missing)
            .current_dir(dir);
        run_loud(&mut c)?;
    }
    for p in &out {
        if !p.is_file() {
            return Err(format!("{} missing after apt-get download", p.display()));
        }
    }
    Ok(out)
}
