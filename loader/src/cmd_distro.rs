//! Distribution boot flows: `distroboot` (U-Boot's `distro_bootcmd` scan over
//! every disk and partition), `sysboot` (extlinux.conf), the label boot that
//! `pxe boot` shares ([`boot_menu`] with any [`BootFiles`]), `part uuid` /
//! `part list`, and `unzip`. The decisions — scan order, partitions, what a
//! label loads, menu answers — are `loader::distro` and `loader::bootconf`
//! (host-tested); this file performs them with the disks and memory, every
//! load checked against the memory map by `load` before a byte is written.

use crate::arch::timer;
use crate::cmd_boot::{self, read_dtb};
use crate::cmd_fdt;
use crate::cmd_storage as cs;
use crate::platform::Sh;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use drivers::part::{self, PartKind, Scheme};
use loader::bootconf::{self, BootMenu, Label};
use loader::devspec::parse_dev_part;
use loader::distro::{self, BootEnv, Candidate, LabelBoot, MenuAnswer};
use loader::gzip;
use loader::plan::fdt as fdtplan;
use loader::uimage;
use shell::{parse_hex, CmdError, CmdResult};

fn msg(s: impl Into<String>) -> CmdError {
    CmdError::Msg(s.into())
}

/// Largest configuration file or overlay read.
const MAX_SMALL_FILE: u64 = 1 << 20;

/// Where a label's files come from: a disk partition (`sysboot`, `distroboot`) or the
/// network (`pxe boot`).
pub trait BootFiles {
    /// Loads `path` at `addr` (the memory map checked first, as `load` does); its length.
    fn load(&mut self, sh: &mut Sh, path: &str, addr: u64) -> Result<u64, String>;
    /// Reads a small file (a configuration, an overlay) into the loader's heap.
    fn read(&mut self, sh: &mut Sh, path: &str) -> Result<Vec<u8>, String>;
}

/// Files on virtio disk partition `spec` (`<dev>:<part>`).
pub struct DiskFiles {
    pub spec: String,
}

impl BootFiles for DiskFiles {
    fn load(&mut self, sh: &mut Sh, path: &str, addr: u64) -> Result<u64, String> {
        let args: Vec<String> = ["load", "virtio", &self.spec, &format!("{addr:x}"), path]
            .iter()
            .map(|s| s.to_string())
            .collect();
        cs::cmd_load(sh, &args).map_err(|e| match e {
            CmdError::Msg(m) => m,
            _ => format!("cannot load {path}"),
        })?;
        Ok(sh.env.get("filesize").and_then(parse_hex).unwrap_or(0))
    }

    fn read(&mut self, sh: &mut Sh, path: &str) -> Result<Vec<u8>, String> {
        cs::read_small(sh, &self.spec, path, MAX_SMALL_FILE)
    }
}

/// A variable as a script sees it: a local, else the env.
fn var(sh: &Sh, name: &str) -> Option<String> {
    sh.var(name).map(String::from)
}

fn addr_var(sh: &Sh, name: &str) -> Result<u64, String> {
    var(sh, name)
        .as_deref()
        .and_then(parse_hex)
        .ok_or_else(|| format!("${{{name}}} is not set"))
}

/// Shows the menu and reads a choice: a label number and Enter; Enter alone or no key within
/// the timeout takes the default (a timeout of 0 waits for ever).
fn ask(sh: &mut Sh, menu: &BootMenu) -> Option<usize> {
    sh.print(&menu.menu_text());
    loop {
        sh.print("Enter choice: ");
        let line = read_choice(sh, menu.timeout_secs());
        sh.print("\n");
        match distro::menu_answer(menu, line.as_deref()) {
            MenuAnswer::Label(i) => return Some(i),
            MenuAnswer::Default => return None,
            MenuAnswer::Invalid => sh.print("Invalid choice\n"),
        }
    }
}

/// A line of digits typed at the menu, or None when `secs` passed without a key.
fn read_choice(sh: &mut Sh, secs: u64) -> Option<String> {
    let deadline = (secs > 0).then(|| timer::now_us() + secs * 1_000_000);
    let mut line = String::new();
    loop {
        if let Some(k) = sh.poll_key() {
            match k {
                b'\r' | b'\n' => return Some(line),
                8 | 0x7f if line.pop().is_some() => sh.print("\x08 \x08"),
                c if c.is_ascii_digit() && line.len() < 8 => {
                    line.push(char::from(c));
                    sh.print(&line[line.len() - 1..]);
                }
                _ => {}
            }
            continue;
        }
        if line.is_empty() && deadline.is_some_and(|d| timer::now_us() >= d) {
            return None;
        }
        sh.platform.console.idle();
    }
}

/// Boots a parsed configuration: the menu when it asks for one, then the chosen label and,
/// when that fails, the others in U-Boot's order. `bootdir` is the configuration's directory;
/// `allow_abs`: absolute paths stand for themselves (`sysboot`), else they are joined to it
/// (`pxe`). Returns only when no label booted.
pub fn boot_menu(
    sh: &mut Sh,
    files: &mut dyn BootFiles,
    menu: &BootMenu,
    bootdir: &str,
    allow_abs: bool,
    force_menu: bool,
) -> CmdResult {
    if menu.labels.is_empty() {
        return Err(msg("no labels in the configuration"));
    }
    let chosen = if menu.shows_menu() || force_menu {
        ask(sh, menu)
    } else {
        None
    };
    for i in distro::try_order(menu, chosen) {
        let Some(label) = menu.labels.get(i) else {
            continue;
        };
        sh.print(&format!("{}:\t{}\n", i + 1, label.display_name()));
        if let Err(e) = boot_label(sh, files, label, bootdir, allow_abs) {
            sh.print(&format!("{e}\n"));
        }
    }
    Err(msg("no label of the configuration booted"))
}

/// Loads what one label names and boots it; returns only on failure (one line).
fn boot_label(
    sh: &mut Sh,
    files: &mut dyn BootFiles,
    label: &Label,
    bootdir: &str,
    allow_abs: bool,
) -> Result<(), String> {
    let env = BootEnv {
        fdtfile: var(sh, "fdtfile"),
        soc: var(sh, "soc"),
        board: var(sh, "board"),
    };
    let lb = {
        let get = |n: &str| sh.var(n).map(String::from);
        distro::label_boot(label, bootdir, allow_abs, &env, &get)?
    };
    let kaddr = addr_var(sh, "kernel_addr_r")?;
    let rd = addr_var(sh, "ramdisk_addr_r")?;
    let mut rd_len = 0u64;
    for p in &lb.initrds {
        sh.print(&format!("Retrieving file: {p}\n"));
        let at = rd
            .checked_add(rd_len)
            .ok_or("initrds overflow the address space")?;
        rd_len += files.load(sh, p, at)?;
    }
    sh.print(&format!("Retrieving file: {}\n", lb.kernel));
    files.load(sh, &lb.kernel, kaddr)?;
    if let Some(a) = &lb.bootargs {
        sh.env.set("bootargs", a).map_err(|e| format!("{e}"))?;
        sh.print(&format!("append: {a}\n"));
    }
    let fdt = label_fdt(sh, files, &lb)?;
    let kernel = format!("{kaddr:x}");
    let initrd = if rd_len > 0 {
        format!("{rd:x}:{rd_len:x}")
    } else {
        "-".to_string()
    };
    let mut args: Vec<String> = alloc::vec![String::new(), kernel, initrd];
    if let Some(f) = fdt {
        args.push(format!("{f:x}"));
    }
    let head = sh.platform.mem.read_vec(kaddr, 4).unwrap_or_default();
    let r = if uimage::is_legacy(&head) {
        args[0] = "bootm".into();
        cmd_boot::cmd_bootm(sh, &args)
    } else {
        args[0] = "booti".into();
        cmd_boot::cmd_booti(sh, &args)
    };
    r.map_err(|e| match e {
        CmdError::Msg(m) => m,
        CmdError::Usage => "booti: usage".into(),
        CmdError::Failed => "booti failed".into(),
    })
}

/// The DT a label boots with: its `fdt`/`fdtdir` file at `${fdt_addr_r}`, else (when overlays
/// or a seed must be added) a copy of the loader's own DT there, else None (booti uses the
/// loader's own); then its overlays (one that fails is skipped, the DT left as it was) and
/// `kaslrseed`.
fn label_fdt(
    sh: &mut Sh,
    files: &mut dyn BootFiles,
    lb: &LabelBoot,
) -> Result<Option<u64>, String> {
    let mut fdt = None;
    if let Some((path, required)) = &lb.fdt {
        let at = addr_var(sh, "fdt_addr_r")?;
        sh.print(&format!("Retrieving file: {path}\n"));
        match files.load(sh, path, at) {
            Ok(_) => fdt = Some(at),
            Err(e) if *required => return Err(format!("{path}: {e}")),
            Err(e) => sh.print(&format!(
                "Skipping fdtdir {} for failure retrieving dts ({e})\n",
                bootconf::dir_of(path)
            )),
        }
    }
    if fdt.is_none() && (!lb.overlays.is_empty() || lb.kaslrseed) {
        fdt = Some(copy_own_dt(sh)?);
    }
    let Some(at) = fdt else {
        return Ok(None);
    };
    for p in &lb.overlays {
        sh.print(&format!("Retrieving file: {p}\n"));
        let applied = files.read(sh, p).and_then(|ovl| {
            let blob = read_dtb(sh, "fdt", at).map_err(err_text)?;
            let out = fdtplan::apply(&blob, at, &ovl)?;
            cmd_fdt::store_at(sh, at, blob.len() as u64, &out).map_err(err_text)
        });
        if let Err(e) = applied {
            sh.print(&format!("Failed to apply overlay {p}, skipping: {e}\n"));
        }
    }
    if lb.kaslrseed {
        if let Err(e) = cmd_fdt::seed_dt(sh, at) {
            sh.print(&format!("{}\n", err_text(e)));
        }
    }
    Ok(Some(at))
}

fn err_text(e: CmdError) -> String {
    match e {
        CmdError::Msg(m) => m,
        CmdError::Usage => "usage".into(),
        CmdError::Failed => "failed".into(),
    }
}

/// The loader's own DT copied to `${fdt_addr_r}` (so overlays never touch the original).
fn copy_own_dt(sh: &mut Sh) -> Result<u64, String> {
    let at = addr_var(sh, "fdt_addr_r")?;
    let own =
        sh.platform.dt.blob_addr().ok_or(
            "no device tree to add overlays to: the loader got none and the label names none",
        )?;
    let blob = read_dtb(sh, "fdt", own).map_err(err_text)?;
    sh.platform
        .mem
        .check(at, blob.len() as u64, true)
        .map_err(|e| format!("fdt_addr_r: {e}"))?;
    crate::exec::write_dt(at, &blob);
    Ok(at)
}

/// Parses the configuration `path` read from `files` (includes resolved against its
/// directory). The error is one line: `file:line: reason`.
fn parse_conf(sh: &mut Sh, files: &mut dyn BootFiles, path: &str) -> Result<BootMenu, String> {
    sh.print(&format!("Retrieving file: {path}\n"));
    let text = files.read(sh, path)?;
    let dir = bootconf::dir_of(path).to_string();
    let mut include = |inc: &str| -> Result<Vec<u8>, String> {
        let full = bootconf::resolve(&dir, inc, true)?;
        files.read(sh, &full)
    };
    let (menu, notes) = bootconf::parse(path, &text, &mut include).map_err(|e| e.to_string())?;
    for n in notes {
        sh.print(&format!("{}\n", n.0));
    }
    Ok(menu)
}

/// `sysboot` on one disk partition: parse `path`, then [`boot_menu`].
fn sysboot_disk(sh: &mut Sh, spec: &str, path: &str, force_menu: bool) -> CmdResult {
    let mut files = DiskFiles {
        spec: spec.to_string(),
    };
    let menu = parse_conf(sh, &mut files, path).map_err(msg)?;
    let dir = bootconf::dir_of(path).to_string();
    boot_menu(sh, &mut files, &menu, &dir, true, force_menu)
}

/// sysboot [-p] <iface> <dev[:part]> <any|fat> [addr] [filename]
pub fn cmd_sysboot(sh: &mut Sh, args: &[String]) -> CmdResult {
    let force_menu = args.get(1).is_some_and(|a| a == "-p");
    let a: Vec<&str> = args
        .iter()
        .skip(if force_menu { 2 } else { 1 })
        .map(String::as_str)
        .collect();
    let (iface, spec, fstype, rest) = match a.as_slice() {
        [i, s, f, rest @ ..] if rest.len() <= 2 => (*i, *s, *f, rest),
        _ => return Err(CmdError::Usage),
    };
    if iface != "virtio" {
        return Err(msg(format!(
            "sysboot: unknown interface '{iface}' (only 'virtio')"
        )));
    }
    if !matches!(fstype, "any" | "fat") {
        return Err(msg(format!(
            "sysboot: only FAT filesystems are read ('{fstype}' asked); use 'any' or 'fat'"
        )));
    }
    if let Some(addr) = rest.first() {
        parse_hex(addr).ok_or_else(|| msg(format!("bad address '{addr}'")))?;
    }
    let file = match rest.get(1) {
        Some(f) => {
            let _ = sh.env.set("bootfile", f);
            (*f).to_string()
        }
        None => {
            var(sh, "bootfile").ok_or_else(|| msg("sysboot: no filename and no ${bootfile}"))?
        }
    };
    parse_dev_part(spec).map_err(CmdError::Msg)?;
    sysboot_disk(sh, spec, &file, force_menu)
}

/// distroboot: U-Boot's `distro_bootcmd` over every virtio disk — on each partition to scan
/// (`part list -bootable`, else all), for `/` then `/boot/`: extlinux/extlinux.conf
/// (`sysboot`), then boot.scr.uimg, boot.scr, boot.cmd (`source`), with `devtype`, `devnum`,
/// `distro_bootpart`, `prefix` and `script` set. A failed candidate is reported and the scan
/// goes on; returns only when nothing booted (a script that returns is not an error).
pub fn cmd_distroboot(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    cs::ensure_scanned(sh);
    let scriptaddr = addr_var(sh, "scriptaddr").map_err(|e| msg(format!("distroboot: {e}")))?;
    let mut found_any = false;
    for dev in 0..sh.platform.disks.len() {
        let parts = distro::partitions_to_scan(&cs::part_facts(sh, dev));
        for p in parts {
            let spec = format!("{dev}:{p}");
            sh.print(&format!("Scanning virtio {spec}...\n"));
            for c in distro::candidates() {
                if sh.platform.file_exists("virtio", &spec, c.path()) != Ok(true) {
                    continue;
                }
                found_any = true;
                for (k, v) in distro::distro_vars("virtio", dev, p, &c) {
                    let _ = sh.env.set(k, &v);
                }
                let r = match &c {
                    Candidate::Extlinux { path, .. } => {
                        sh.print(&format!("Found {path}\n"));
                        sysboot_disk(sh, &spec, path, false)
                    }
                    Candidate::Script { path, .. } => {
                        sh.print(&format!("Found U-Boot script {path}\n"));
                        run_script(sh, &spec, path, scriptaddr)
                    }
                };
                if let Err(CmdError::Msg(m)) = &r {
                    sh.print(&format!("{m}\n"));
                }
                match c {
                    Candidate::Extlinux { .. } => sh.print("EXTLINUX FAILED: continuing...\n"),
                    Candidate::Script { .. } => sh.print("SCRIPT FAILED: continuing...\n"),
                }
            }
        }
    }
    if found_any {
        Err(msg("distroboot: nothing booted"))
    } else {
        Err(msg(
            "distroboot: no extlinux/extlinux.conf or boot script (boot.scr.uimg, boot.scr, boot.cmd) in / or /boot/ on any disk",
        ))
    }
}

/// `boot_a_script`: load the script to `${scriptaddr}` and `source` it.
fn run_script(sh: &mut Sh, spec: &str, path: &str, scriptaddr: u64) -> CmdResult {
    let mut files = DiskFiles {
        spec: spec.to_string(),
    };
    files.load(sh, path, scriptaddr).map_err(msg)?;
    cs::cmd_source(sh, &["source".to_string(), format!("{scriptaddr:x}")])
}

/// part uuid <iface> <dev>:<part> [var] | part list <iface> <dev> [-bootable] [var]
pub fn cmd_part(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        [_, "uuid", iface, spec] => part_uuid(sh, iface, spec, None),
        [_, "uuid", iface, spec, v] => part_uuid(sh, iface, spec, Some(v)),
        [_, "list", iface, dev] => part_list(sh, iface, dev, false, None),
        [_, "list", iface, dev, "-bootable", v] => part_list(sh, iface, dev, true, Some(v)),
        [_, "list", iface, dev, v] if !v.starts_with('-') => {
            part_list(sh, iface, dev, false, Some(v))
        }
        _ => Err(CmdError::Usage),
    }
}

fn dev_number(dev: &str) -> Result<usize, CmdError> {
    usize::from_str_radix(dev.trim_start_matches("0x"), 16)
        .map_err(|_| msg(format!("bad device number '{dev}'")))
}

fn part_list(sh: &mut Sh, iface: &str, dev: &str, bootable: bool, v: Option<&str>) -> CmdResult {
    let n = dev_number(dev)?;
    let t = cs::table(sh, iface, n)?;
    match v {
        None => {
            let s = part::format_table(&t, &format!("VirtIO device {n}"));
            sh.print(&s);
        }
        Some(v) => {
            let list: Vec<String> = t
                .partitions
                .iter()
                .filter(|p| t.scheme != Scheme::WholeDisk && !p.is_extended())
                .filter(|p| !bootable || p.bootable)
                .map(|p| format!("{:x}", p.index))
                .collect();
            if list.is_empty() {
                sh.env.remove(v);
            } else {
                sh.env
                    .set(v, &list.join(" "))
                    .map_err(|e| msg(format!("part: {e}")))?;
            }
        }
    }
    Ok(())
}

fn part_uuid(sh: &mut Sh, iface: &str, spec: &str, v: Option<&str>) -> CmdResult {
    let dp = parse_dev_part(spec).map_err(CmdError::Msg)?;
    let t = cs::table(sh, iface, dp.dev)?;
    let index = dp.part.unwrap_or(1);
    let p = t
        .get(index)
        .filter(|_| t.scheme != Scheme::WholeDisk)
        .ok_or_else(|| msg(format!("** Invalid partition {index} **")))?;
    let uuid = match (&t.scheme, &p.kind) {
        (Scheme::Mbr { disk_signature }, _) => format!("{disk_signature:08x}-{:02x}", p.index),
        (_, PartKind::Gpt { part_guid, .. }) => format!("{part_guid}"),
        _ => return Err(msg(format!("** Invalid partition {index} **"))),
    };
    match v {
        Some(v) => sh.env.set(v, &uuid).map_err(|e| msg(format!("part: {e}"))),
        None => {
            sh.print(&format!("{uuid}\n"));
            Ok(())
        }
    }
}

/// Largest source or destination `unzip` considers when no size says otherwise.
const UNZIP_MAX: u64 = 1 << 30;

/// unzip <srcaddr> <dstaddr> [dstsize]: a gzip member at `srcaddr` (its length from the load
/// that put it there, else it ends itself) inflated to `dstaddr`; CRC and size checked;
/// `filesize` set.
pub fn cmd_unzip(sh: &mut Sh, args: &[String]) -> CmdResult {
    let (src, dst, size) = match args {
        [_, s, d] => (s, d, None),
        [_, s, d, n] => (s, d, Some(n)),
        _ => return Err(CmdError::Usage),
    };
    let num = |s: &str, what: &str| parse_hex(s).ok_or_else(|| msg(format!("bad {what} '{s}'")));
    let src = num(src, "source address")?;
    let dst = num(dst, "destination address")?;
    let size = size.map(|s| num(s, "size")).transpose()?;
    let mem = &sh.platform.mem;
    // The source: as long as the load that put it there, else what is readable (never
    // reaching the destination); the stream ends itself.
    let src_len = match mem.loaded_at(src) {
        Some(n) => n,
        None => {
            let cap = if dst > src {
                (dst - src).min(UNZIP_MAX)
            } else {
                UNZIP_MAX
            };
            largest(cap, |n| mem.check(src, n, false).is_ok())
                .ok_or_else(|| msg(format!("unzip: {src:#x} is not readable")))?
        }
    };
    if dst < src.saturating_add(src_len)
        && src < dst.saturating_add(size.unwrap_or(1))
        && dst >= src
    {
        return Err(msg("unzip: the destination overlaps the source"));
    }
    // Room: what was asked, else as much free RAM as there is (not reaching the source).
    let cap = if dst < src {
        (src - dst).min(UNZIP_MAX)
    } else {
        UNZIP_MAX
    };
    let room = match size {
        Some(n) => {
            mem.check(dst, n, true)
                .map_err(|e| msg(format!("unzip: {e}")))?;
            n
        }
        None => largest(cap, |n| mem.check(dst, n, true).is_ok())
            .ok_or_else(|| msg(format!("unzip: no free RAM at {dst:#x}")))?,
    };
    let data = mem
        .view(src, src_len)
        .map_err(|e| msg(format!("unzip: {e}")))?;
    if !gzip::is_gzip(data) {
        return Err(msg("Error: Bad gzipped data"));
    }
    let r = sh
        .platform
        .mem
        .fill(dst, room, |out| gzip::inflate_stream(data, out))
        .map_err(|e| msg(format!("unzip: {e}")))?;
    let (_, n) = r.map_err(|e| msg(format!("unzip: {e}")))?;
    sh.print(&format!("Uncompressed size: {n} = 0x{n:X}\n"));
    let _ = sh.env.set("filesize", &format!("{n:x}"));
    sh.platform.mem.record_load(dst, n as u64);
    Ok(())
}

/// The largest length up to `max`, halving, for which `ok` holds (down to 4 KiB).
fn largest(max: u64, ok: impl Fn(u64) -> bool) -> Option<u64> {
    let mut n = max;
    while n >= 0x1000 {
        if ok(n) {
            return Some(n);
        }
        n /= 2;
    }
    None
}
