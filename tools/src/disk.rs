//! `cargo xtask disk`: FAT disk images for the QEMU tests and `cargo xtask run`.
//!
//! Images are made with host tools only (no loop devices, no mounts): `sfdisk` (apt: fdisk) writes
//! the partition table, `mkfs.fat --offset` (dosfstools) the file system, `mmd`/`mcopy -i img@@offset`
//! (mtools) the files.
//!
//!   cargo xtask disk                       build/disks/demo.img (MBR, FAT32: Image, Image.gz,
//!                                          initramfs.cpio.gz, boot.cmd = DEMO_BOOT_CMD)
//!   cargo xtask disk --boot-cmd FILE       the same with FILE as /boot.cmd
//!   cargo xtask disk --out IMG [--table mbr|gpt|none] [--fat 12|16|32] [--size MIB] [--label L]
//!                    [HOSTFILE[=/DEST]]... any other image

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// /boot.cmd of the demo disk (placeholder; the lead owns the real script).
pub const DEMO_BOOT_CMD: &str = "\
# parkboot demo: boot Debian's stock arm64 kernel with a small initramfs.
echo boot.cmd: loading /Image and /initramfs.cpio.gz from virtio ${devnum}:${distro_bootpart}
load virtio ${devnum}:${distro_bootpart} ${kernel_addr_r} /Image
load virtio ${devnum}:${distro_bootpart} ${ramdisk_addr_r} /initramfs.cpio.gz
if test -z \"${bootargs}\"; then setenv bootargs 'console=ttyAMA0 earlycon'; fi
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize}
";

const MIB: u64 = 1024 * 1024;
/// Timestamp of every file and directory (2024-01-01): images are reproducible byte for byte.
const FILE_TIME: &str = "1704067200";
const SECTOR: u64 = 512;
/// First partition at 1 MiB, as every partitioning tool does by default.
const PART_START: u64 = 2048;

/// The partition table around the one FAT file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// MBR with one partition (type 0x01 / 0x0e / 0x0c for FAT12 / 16 / 32) from 1 MiB to the end.
    Mbr,
    /// GPT with one "Microsoft basic data" partition from 1 MiB to 1 MiB before the end.
    Gpt,
    /// No table: the FAT file system starts at sector 0 ("superfloppy").
    None,
}

/// Where a file's bytes come from.
#[derive(Clone, Debug)]
pub enum Source {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

/// What [`make_fat_disk`] builds.
#[derive(Clone, Debug)]
pub struct DiskSpec {
    pub table: Table,
    /// 12, 16 or 32.
    pub fat: u8,
    /// Size of the whole image.
    pub size_mib: u64,
    /// (path inside the file system, e.g. "/boot/Image"; parent directories are created, contents).
    pub files: Vec<(String, Source)>,
    /// Volume label (≤ 11 characters); None: "PARKBOOT".
    pub label: Option<String>,
}

impl Default for DiskSpec {
    fn default() -> Self {
        DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 64,
            files: Vec::new(),
            label: None,
        }
    }
}

/// Where the file system went.
#[derive(Clone, Copy, Debug)]
pub struct DiskInfo {
    /// Byte offset of the FAT file system in the image (0 for [`Table::None`]).
    pub fs_offset: u64,
    /// Byte size of the FAT file system.
    #[allow(dead_code)]
    pub fs_size: u64,
}

/// QEMU arguments that attach `img` as a virtio-blk device on virtio-mmio (raw, writable;
/// `id` names the drive, e.g. "disk0").
pub fn qemu_disk_args(img: &Path, id: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=none,format=raw,file={},id={id}", img.display()),
        "-device".into(),
        format!("virtio-blk-device,drive={id}"),
    ]
}

/// Looks a host tool up in $PATH and the sbin directories; the error names the apt package.
pub fn find_tool(tool: &str, package: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for d in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        dirs.push(PathBuf::from(d));
    }
    dirs.iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "`{tool}` not found: install the apt package {package} (apt-get install {package})"
            )
        })
}

/// Builds a disk image at `path` (replaced atomically) as `spec` says.
pub fn make_fat_disk(path: &Path, spec: &DiskSpec) -> Result<DiskInfo, String> {
    let mkfs = find_tool("mkfs.fat", "dosfstools")?;
    let mmd = find_tool("mmd", "mtools")?;
    let mcopy = find_tool("mcopy", "mtools")?;
    let sfdisk = if spec.table != Table::None {
        Some(find_tool("sfdisk", "fdisk")?)
    } else {
        None
    };
    if ![12, 16, 32].contains(&spec.fat) {
        return Err(format!("FAT{} is not a FAT type (12, 16 or 32)", spec.fat));
    }
    if spec.size_mib < 2 {
        return Err(format!("{} MiB is too small for a disk", spec.size_mib));
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    let tmp = path.with_extension("img.tmp");
    let scratch = path.with_extension("files.tmp");
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir_all(&scratch);
    let res = make_into(&tmp, &scratch, spec, &mkfs, &mmd, &mcopy, sfdisk.as_deref());
    let _ = std::fs::remove_dir_all(&scratch);
    match res {
        Ok(info) => {
            std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(info)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn make_into(
    img: &Path,
    scratch: &Path,
    spec: &DiskSpec,
    mkfs: &Path,
    mmd: &Path,
    mcopy: &Path,
    sfdisk: Option<&Path>,
) -> Result<DiskInfo, String> {
    let total = spec.size_mib * MIB / SECTOR;
    let f = std::fs::File::create(img).map_err(|e| format!("{}: {e}", img.display()))?;
    f.set_len(spec.size_mib * MIB)
        .map_err(|e| format!("{}: {e}", img.display()))?;
    drop(f);

    // Partition table (fixed disk/partition ids: images are reproducible).
    let (start, sectors) = match spec.table {
        Table::None => (0, total),
        Table::Mbr => (PART_START, total - PART_START),
        // Leave the last MiB for the backup GPT (33 sectors) and alignment.
        Table::Gpt => (PART_START, total - PART_START - 2048),
    };
    if let Some(sfdisk) = sfdisk {
        let script = match spec.table {
            Table::Mbr => {
                let ty = match spec.fat {
                    12 => "01",
                    16 => "0e",
                    _ => "0c",
                };
                format!("label: dos\nlabel-id: 0x7061726b\nstart={start}, size={sectors}, type={ty}, bootable\n")
            }
            Table::Gpt => format!(
                "label: gpt\nlabel-id: 7061726b-626f-6f74-8000-000000000001\n\
                 start={start}, size={sectors}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, \
                 uuid=7061726b-626f-6f74-8000-000000000002, name=\"parkboot\"\n"
            ),
            Table::None => unreachable!(),
        };
        let mut c = Command::new(sfdisk);
        c.args([
            "--quiet",
            "--no-reread",
            "--no-tell-kernel",
            "--wipe",
            "never",
        ])
        .arg(img);
        run_with_stdin(&mut c, script.as_bytes())?;
    }

    // File system.
    let label = spec.label.clone().unwrap_or_else(|| "PARKBOOT".into());
    let mut c = Command::new(mkfs);
    c.args([
        "-F",
        &spec.fat.to_string(),
        "--invariant",
        "--mbr=n",
        "-n",
        &label,
    ]);
    if start != 0 {
        c.arg(format!("--offset={start}"))
            .args(["-h", &start.to_string()]);
    }
    c.arg(img).arg((sectors / 2).to_string());
    let o = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if !o.status.success() {
        return Err(format!(
            "{c:?} failed ({}) for a {} KiB FAT{}: {}",
            o.status,
            sectors / 2,
            spec.fat,
            said.trim()
        ));
    }
    // mkfs.fat only warns; mtools, Linux and fatfs then take it for FAT16 or reject it.
    if said.contains("less then suggested minimum") || said.contains("less than suggested minimum")
    {
        return Err(format!(
            "a {} KiB file system is too small for FAT{} (FAT32 needs ≥ 65525 clusters: ≥ 33 MiB): {}",
            sectors / 2,
            spec.fat,
            said.trim()
        ));
    }

    // Files.
    let at = format!("{}@@{}", img.display(), start * SECTOR);
    let mut made_dirs = std::collections::BTreeSet::new();
    for (i, (dest, src)) in spec.files.iter().enumerate() {
        let dest = dest.trim_start_matches('/');
        if dest.is_empty() {
            return Err("empty destination path".into());
        }
        // Parent directories, outermost first.
        let mut parent = String::new();
        let comps: Vec<&str> = dest.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            parent = if parent.is_empty() {
                c.to_string()
            } else {
                format!("{parent}/{c}")
            };
            if made_dirs.insert(parent.clone()) {
                let mut m = Command::new(mmd);
                m.env("MTOOLS_SKIP_CHECK", "1")
                    .env("SOURCE_DATE_EPOCH", FILE_TIME)
                    .arg("-i")
                    .arg(&at)
                    .arg(format!("::/{parent}"));
                crate::cmd::output(&mut m)?;
            }
        }
        let host = match src {
            Source::Host(p) => p.clone(),
            Source::Bytes(b) => {
                std::fs::create_dir_all(scratch)
                    .map_err(|e| format!("mkdir {}: {e}", scratch.display()))?;
                let p = scratch.join(format!("f{i}"));
                std::fs::write(&p, b).map_err(|e| format!("{}: {e}", p.display()))?;
                p
            }
        };
        if !host.is_file() {
            return Err(format!("{}: no such file (for /{dest})", host.display()));
        }
        let mut m = Command::new(mcopy);
        m.env("MTOOLS_SKIP_CHECK", "1")
            .env("SOURCE_DATE_EPOCH", FILE_TIME)
            .args(["-D", "o", "-i"])
            .arg(&at)
            .arg(&host)
            .arg(format!("::/{dest}"));
        crate::cmd::output(&mut m)?;
    }
    Ok(DiskInfo {
        fs_offset: start * SECTOR,
        fs_size: sectors * SECTOR,
    })
}

/// Builds build/disks/demo.img (unless up to date) from the kernel artifacts and `boot_cmd`.
pub fn demo_disk(boot_cmd: &str) -> Result<PathBuf, String> {
    let k = super::kernel::ensure_kernel()?;
    let t = Instant::now();
    let out = crate::root().join("build/disks/demo.img");
    let stamp = out.with_extension("img.boot.cmd");
    let inputs = [&k.image, &k.image_gz, &k.initramfs];
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = match mtime(&out) {
        Some(o) => inputs
            .iter()
            .all(|i| mtime(i).map(|t| t <= o).unwrap_or(false)),
        None => false,
    };
    if fresh && std::fs::read_to_string(&stamp).ok().as_deref() == Some(boot_cmd) {
        eprintln!("xtask: disk: {} is up to date", out.display());
        return Ok(out);
    }
    let payload: u64 = inputs
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>()
        + boot_cmd.len() as u64;
    // FAT32 overhead is small; keep ~25% + 8 MiB free, in 16 MiB steps, at least 64 MiB.
    let size_mib = ((payload + payload / 4) / MIB + 8).div_ceil(16).max(4) * 16;
    let spec = DiskSpec {
        table: Table::Mbr,
        fat: 32,
        size_mib,
        files: vec![
            ("/Image".into(), Source::Host(k.image.clone())),
            ("/Image.gz".into(), Source::Host(k.image_gz.clone())),
            (
                "/initramfs.cpio.gz".into(),
                Source::Host(k.initramfs.clone()),
            ),
            (
                "/boot.cmd".into(),
                Source::Bytes(boot_cmd.as_bytes().to_vec()),
            ),
        ],
        label: Some("PARKBOOT".into()),
    };
    let info = make_fat_disk(&out, &spec)?;
    std::fs::write(&stamp, boot_cmd).map_err(|e| format!("{}: {e}", stamp.display()))?;
    eprintln!(
        "xtask: disk: wrote {} ({size_mib} MiB, MBR, FAT32 at byte {}, {:.1} MiB of files) in {:.1} s",
        out.display(),
        info.fs_offset,
        payload as f64 / MIB as f64,
        t.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// `cargo xtask disk ...` (see the module docs).
pub fn cli(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask disk [--boot-cmd FILE] | --out IMG [--table mbr|gpt|none] \
                 [--fat 12|16|32] [--size MIB] [--label L] [HOSTFILE[=/DEST]]...";
    let mut boot_cmd: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut spec = DiskSpec::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("disk: {what} needs a value; {usage}"))
        };
        match a.as_str() {
            "--boot-cmd" => boot_cmd = Some(val("--boot-cmd")?.into()),
            "--out" | "-o" => out = Some(val("--out")?.into()),
            "--table" => {
                spec.table = match val("--table")?.as_str() {
                    "mbr" => Table::Mbr,
                    "gpt" => Table::Gpt,
                    "none" => Table::None,
                    t => return Err(format!("disk: unknown table {t:?}; {usage}")),
                }
            }
            "--fat" => {
                spec.fat = val("--fat")?
                    .parse()
                    .map_err(|_| format!("disk: bad --fat; {usage}"))?
            }
            "--size" => {
                spec.size_mib = val("--size")?
                    .parse()
                    .map_err(|_| format!("disk: bad --size; {usage}"))?
            }
            "--label" => spec.label = Some(val("--label")?),
            f if !f.starts_with('-') => {
                let (host, dest) = match f.split_once('=') {
                    Some((h, d)) => (h.to_string(), d.to_string()),
                    None => {
                        let name = Path::new(f)
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        (f.to_string(), format!("/{name}"))
                    }
                };
                spec.files.push((dest, Source::Host(host.into())));
            }
            _ => return Err(format!("disk: unknown argument {a:?}; {usage}")),
        }
    }
    match out {
        None => {
            if !spec.files.is_empty() {
                return Err(format!("disk: files given without --out; {usage}"));
            }
            let text = match boot_cmd {
                Some(p) => {
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => DEMO_BOOT_CMD.to_string(),
            };
            demo_disk(&text).map(|_| ())
        }
        Some(out) => {
            if let Some(p) = boot_cmd {
                spec.files.push(("/boot.cmd".into(), Source::Host(p)));
            }
            let t = Instant::now();
            let info = make_fat_disk(&out, &spec)?;
            eprintln!(
                "xtask: disk: wrote {} ({} MiB, {:?}, FAT{} at byte {}, {} files) in {:.1} s",
                out.display(),
                spec.size_mib,
                spec.table,
                spec.fat,
                info.fs_offset,
                spec.files.len(),
                t.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input)
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let o = child
        .wait_with_output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}
