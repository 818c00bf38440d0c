//! The test initramfs: busybox, kexec-tools and the libraries they load (checked the way ld.so
//! looks them up), device nodes, and /init (kernel/init.sh).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cpio::{write_cpio_newc, CpioEntry};
use super::{file_name, mkdir};
use crate::elf::dynamic_info as elf_dynamic;

/// /init of the test initramfs. Machine-readable report first, then a shell on the console.
pub const INIT_SCRIPT: &str = include_str!("init.sh");

pub(super) fn initramfs_stamp(debs: &[PathBuf]) -> String {
    // The /init text and the package set; a change of either rebuilds the archive.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in INIT_SCRIPT.bytes().chain(CPIO_LAYOUT_VERSION.bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    let mut s = format!("init-fnv64 {h:016x}\n");
    for d in debs {
        s.push_str(&file_name(d));
        s.push('\n');
    }
    s
}

/// Bump when the archive layout code changes.
pub(super) const CPIO_LAYOUT_VERSION: &str = "layout-2";

/// Maps a path from a (pre-merged-/usr) package into the merged-/usr layout of the archive.
pub(super) fn merged_usr(rel: &str) -> String {
    for top in ["bin", "sbin", "lib", "lib64"] {
        if rel == top {
            return format!("usr/{top}");
        }
        if let Some(rest) = rel.strip_prefix(top).and_then(|r| r.strip_prefix('/')) {
            return format!("usr/{top}/{rest}");
        }
    }
    rel.to_string()
}

/// What of the unpacked packages goes into the archive: programs and shared libraries only.
pub(super) fn wanted(rel: &str) -> bool {
    let keep =
        rel.starts_with("usr/bin") || rel.starts_with("usr/sbin") || rel.starts_with("usr/lib");
    let drop = rel.starts_with("usr/lib/aarch64-linux-gnu/gconv")
        || rel.starts_with("usr/lib/aarch64-linux-gnu/audit")
        || rel.starts_with("usr/lib/systemd")
        || rel.starts_with("usr/lib/udev")
        || rel.starts_with("usr/lib/tmpfiles.d")
        || rel.starts_with("usr/lib/kexec-tools")
        || rel.ends_with(".a");
    keep && !drop
}

pub(super) fn build_initramfs(
    debs: &[PathBuf],
    staging: &Path,
    out: &Path,
) -> Result<usize, String> {
    let _ = std::fs::remove_dir_all(staging);
    mkdir(staging)?;
    for d in debs {
        let st = Command::new("dpkg-deb")
            .arg("-x")
            .arg(d)
            .arg(staging)
            .status()
            .map_err(|e| format!("dpkg-deb: {e}"))?;
        if !st.success() {
            return Err(format!("dpkg-deb -x {} failed: {st}", d.display()));
        }
    }

    let mut entries: BTreeMap<String, CpioEntry> = BTreeMap::new();
    collect(staging, staging, &mut entries)?;
    // Only the libraries the programs load (checked like ld.so would look them up).
    let used = check_dynamic_closure(&entries)?;
    let unused: Vec<String> = entries
        .keys()
        .filter(|n| n.starts_with("usr/lib/"))
        .filter(|n| !resolve(&entries, n).is_some_and(|p| used.contains(&p)))
        .cloned()
        .collect();
    for n in unused {
        entries.remove(&n);
    }
    // Every parent directory of every member.
    let names: Vec<String> = entries.keys().cloned().collect();
    for n in names {
        let mut p = n.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            entries
                .entry(parent.to_string())
                .or_insert(CpioEntry::Dir { mode: 0o755 });
            p = parent;
        }
    }
    for top in ["bin", "sbin", "lib"] {
        entries.insert(
            top.into(),
            CpioEntry::Symlink {
                target: format!("usr/{top}"),
            },
        );
    }
    for d in [
        "dev", "proc", "sys", "tmp", "run", "root", "etc", "mnt", "usr/bin", "usr/sbin",
    ] {
        entries
            .entry(d.into())
            .or_insert(CpioEntry::Dir { mode: 0o755 });
    }
    entries.insert("tmp".into(), CpioEntry::Dir { mode: 0o1777 });
    // The kernel opens /dev/console for /init before anything is mounted.
    entries.insert(
        "dev/console".into(),
        CpioEntry::Char {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    );
    entries.insert(
        "dev/null".into(),
        CpioEntry::Char {
            mode: 0o666,
            major: 1,
            minor: 3,
        },
    );
    entries.insert(
        "init".into(),
        CpioEntry::File {
            mode: 0o755,
            data: INIT_SCRIPT.as_bytes().to_vec(),
        },
    );
    entries.insert(
        "etc/passwd".into(),
        CpioEntry::File {
            mode: 0o644,
            data: b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
        },
    );
    entries.insert(
        "etc/group".into(),
        CpioEntry::File {
            mode: 0o644,
            data: b"root:x:0:\n".to_vec(),
        },
    );

    for must in ["usr/bin/busybox", "usr/lib/ld-linux-aarch64.so.1"] {
        if !entries.contains_key(must) {
            return Err(format!("initramfs would lack /{must}"));
        }
    }
    if !entries.contains_key("usr/sbin/kexec") && !entries.contains_key("usr/bin/kexec") {
        return Err(
            "initramfs would lack kexec (not in usr/sbin or usr/bin of kexec-tools)".into(),
        );
    }

    let tmp = out.with_extension("gz.tmp");
    let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut gz = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(f)
        .spawn()
        .map_err(|e| format!("gzip (apt package gzip): {e}"))?;
    {
        let mut w = std::io::BufWriter::new(gz.stdin.take().unwrap());
        write_cpio_newc(&entries, &mut w).map_err(|e| format!("writing cpio: {e}"))?;
        w.flush().map_err(|e| format!("writing cpio: {e}"))?;
    }
    let st = gz.wait().map_err(|e| format!("gzip: {e}"))?;
    if !st.success() {
        return Err(format!("gzip failed: {st}"));
    }
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))?;
    let _ = std::fs::remove_dir_all(staging);
    Ok(entries.len())
}

pub(super) fn collect(
    base: &Path,
    dir: &Path,
    entries: &mut BTreeMap<String, CpioEntry>,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
        let name = merged_usr(&rel);
        let md = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let ft = md.file_type();
        if ft.is_dir() {
            collect(base, &p, entries)?;
            continue;
        }
        if !wanted(&name) || entries.contains_key(&name) {
            continue;
        }
        let entry = if ft.is_symlink() {
            let t = std::fs::read_link(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            CpioEntry::Symlink {
                target: t.to_string_lossy().to_string(),
            }
        } else if ft.is_file() {
            let data = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            CpioEntry::File {
                mode: md.permissions().mode(),
                data,
            }
        } else {
            continue;
        };
        entries.insert(name, entry);
    }
    Ok(())
}

/// Every dynamically linked program in usr/bin and usr/sbin must find its interpreter and,
/// transitively, every DT_NEEDED library in the archive, the way ld.so would search for them.
/// Returns the files reached.
pub(super) fn check_dynamic_closure(
    entries: &BTreeMap<String, CpioEntry>,
) -> Result<BTreeSet<String>, String> {
    let mut todo: Vec<String> = entries
        .keys()
        .filter(|k| k.starts_with("usr/bin/") || k.starts_with("usr/sbin/"))
        .cloned()
        .collect();
    let mut done = BTreeSet::new();
    let mut problems = Vec::new();
    while let Some(name) = todo.pop() {
        let Some(path) = resolve(entries, &name) else {
            continue; // busybox applet links and the like, made at boot
        };
        if !done.insert(path.clone()) {
            continue;
        }
        let Some(CpioEntry::File { data, .. }) = entries.get(&path) else {
            continue;
        };
        let Some((interp, needed)) = elf_dynamic(data) else {
            continue;
        };
        if let Some(i) = interp {
            match resolve(entries, i.trim_start_matches('/')) {
                Some(p) => todo.push(p),
                None => problems.push(format!("/{name}: interpreter {i} missing")),
            }
        }
        for lib in needed {
            let found = ["usr/lib/aarch64-linux-gnu", "usr/lib", "usr/lib64"]
                .iter()
                .find_map(|d| resolve(entries, &format!("{d}/{lib}")));
            match found {
                Some(p) => todo.push(p),
                None => problems.push(format!("/{name}: needs {lib}, not in the initramfs")),
            }
        }
    }
    if problems.is_empty() {
        Ok(done)
    } else {
        Err(format!(
            "initramfs libraries incomplete:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// Follows symlinks (and the merged-/usr top-level links) to a regular file of the archive.
pub(super) fn resolve(entries: &BTreeMap<String, CpioEntry>, name: &str) -> Option<String> {
    let mut cur = merged_usr(name);
    for _ in 0..16 {
        match entries.get(&cur)? {
            CpioEntry::File { .. } => return Some(cur),
            CpioEntry::Symlink { target } => {
                let joined = if let Some(abs) = target.strip_prefix('/') {
                    abs.to_string()
                } else {
                    match cur.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target.clone(),
                    }
                };
                let mut parts: Vec<&str> = Vec::new();
                for c in joined.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            parts.pop();
                        }
                        c => parts.push(c),
                    }
                }
                cur = merged_usr(&parts.join("/"));
            }
            _ => return None,
        }
    }
    None
}
