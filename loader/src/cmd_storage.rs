//! Storage commands in U-Boot syntax: virtio, part, ls, load/fatload, size,
//! fatwrite, saveenv, source, bootscript. Every command checks its target
//! memory range against the memory map before a byte is written.

use crate::arch::timer;
use crate::memory::Memory;
use crate::platform::Sh;
use crate::stages;
use crate::storage::Disk;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use drivers::block::BlockDevice;
use drivers::{fs, part};
use loader::devspec::{parse_dev_part, script_text, DevPart};
use loader::envstore;
use loader::plan::load::{self as loadplan, LoadArgs};
use shell::{parse_hex, CmdError, CmdResult};

/// Where `bootscript` looks, in order.
pub const SCRIPTS: &[&str] = &["/boot.cmd", "/boot/boot.cmd", "/boot.scr", "/boot/boot.scr"];

fn print_notes(sh: &mut Sh, notes: Vec<String>) {
    for n in notes {
        sh.print(&format!("virtio: {n}\n"));
    }
}

/// Scans for disks once (and again on `virtio scan`).
pub fn ensure_scanned(sh: &mut Sh) {
    let notes = sh.platform.ensure_disks();
    print_notes(sh, notes);
}

fn disk<'a>(sh: &'a mut Sh, iface: &str, dev: usize) -> Result<&'a mut Disk, CmdError> {
    if iface != "virtio" {
        return Err(CmdError::Msg(format!(
            "unknown interface '{iface}' (only 'virtio')"
        )));
    }
    ensure_scanned(sh);
    let n = sh.platform.disks.len();
    sh.platform
        .disks
        .get_mut(dev)
        .ok_or_else(|| CmdError::Msg(format!("no virtio device {dev} ({n} found)")))
}

/// Disk `dev` and the memory part together: a read straight from the disk into memory.
fn disk_and_mem<'a>(
    sh: &'a mut Sh,
    iface: &str,
    dev: usize,
) -> Result<(&'a mut Disk, &'a mut Memory), CmdError> {
    disk(sh, iface, dev)?;
    let m = &mut sh.platform;
    let d = m
        .disks
        .get_mut(dev)
        .ok_or_else(|| CmdError::Msg(format!("no virtio device {dev}")))?;
    Ok((d, &mut m.mem))
}

/// Resolves `<dev>[:<part>]` to (disk, partition number to open).
fn resolve(sh: &mut Sh, iface: &str, spec: &str) -> Result<(usize, u32), CmdError> {
    let DevPart { dev, part: p } = parse_dev_part(spec).map_err(CmdError::Msg)?;
    let d = disk(sh, iface, dev)?;
    let p = match p {
        // U-Boot: partition 1 of a disk without a table is the whole disk.
        Some(1) if whole_disk_is_fat(d) => 0,
        Some(p) => p,
        None => default_part(d)?,
    };
    Ok((dev, p))
}

/// Reads all of a small file (at most `max` bytes) into the heap: configuration files,
/// overlays.
pub fn read_small(sh: &mut Sh, spec: &str, path: &str, max: u64) -> Result<Vec<u8>, String> {
    let r = with_fs(sh, "virtio", spec, |d| {
        let n = fs::size(d, path).map_err(|e| format!("{e}"))?;
        if n > max {
            return Err(format!("{path} is too large ({n} bytes, at most {max})"));
        }
        let mut buf = alloc::vec![0u8; n as usize];
        fs::read(d, path, &mut buf, 0).map_err(|e| format!("{e}"))?;
        Ok(buf)
    });
    r.map_err(|e| match e {
        CmdError::Msg(m) => m,
        _ => String::from("read failed"),
    })
}

/// The partitions of disk `dev` as the distro scan needs them (a disk without a table: one,
/// number 0); empty when the disk has neither.
pub fn part_facts(sh: &mut Sh, dev: usize) -> Vec<loader::distro::PartFacts> {
    ensure_scanned(sh);
    let Some(d) = sh.platform.disks.get_mut(dev) else {
        return Vec::new();
    };
    if whole_disk_is_fat(d) {
        return alloc::vec![loader::distro::PartFacts {
            index: 0,
            bootable: false,
            extended: false,
        }];
    }
    part::read_table(d).map_or_else(
        |_| Vec::new(),
        |t| {
            t.partitions
                .iter()
                .map(|p| loader::distro::PartFacts {
                    index: p.index,
                    bootable: p.bootable,
                    extended: p.is_extended(),
                })
                .collect()
        },
    )
}

/// The partition table of `iface` disk `dev`.
pub fn table(sh: &mut Sh, iface: &str, dev: usize) -> Result<part::PartitionTable, CmdError> {
    let d = disk(sh, iface, dev)?;
    part::read_table(d).map_err(|e| CmdError::Msg(format!("{e}")))
}

/// No partition given: the whole disk if it holds a FAT filesystem,
/// otherwise the default partition of its table (first bootable, else first).
fn default_part(d: &mut Disk) -> Result<u32, CmdError> {
    if whole_disk_is_fat(d) {
        return Ok(0);
    }
    let t = part::read_table(d).map_err(|e| CmdError::Msg(format!("{e}")))?;
    t.default_partition()
        .map(|p| p.index)
        .ok_or_else(|| CmdError::Msg("no partition with a filesystem".into()))
}

fn with_fs<T>(
    sh: &mut Sh,
    iface: &str,
    spec: &str,
    f: impl FnOnce(&mut dyn BlockDevice) -> Result<T, String>,
) -> Result<T, CmdError> {
    let (dev, p) = resolve(sh, iface, spec)?;
    let d = disk(sh, iface, dev)?;
    let mut view = part::open(d, p).map_err(|e| CmdError::Msg(format!("{e}")))?;
    f(&mut view).map_err(CmdError::Msg)
}

pub fn cmd_virtio(sh: &mut Sh, args: &[String]) -> CmdResult {
    match args.get(1).map(String::as_str) {
        Some("scan") if args.len() == 2 => {
            let notes = sh.platform.rescan_disks();
            print_notes(sh, notes);
            let n = sh.platform.disks.len();
            sh.print(&format!("{n} virtio block device(s)\n"));
            Ok(())
        }
        Some("info") if args.len() == 2 => {
            ensure_scanned(sh);
            let mut o = String::new();
            for (i, d) in sh.platform.disks.iter().enumerate() {
                let bytes = d.capacity_bytes();
                o.push_str(&format!(
                    "Device {i}: {} {}, {} blocks of 512 = {}.{} MiB\n",
                    d.location,
                    if d.readonly {
                        "read-only"
                    } else {
                        "read-write"
                    },
                    d.num_blocks(),
                    bytes >> 20,
                    ((bytes & 0xfffff) * 10) >> 20
                ));
            }
            if o.is_empty() {
                o.push_str("no virtio block devices\n");
            }
            sh.print(&o);
            Ok(())
        }
        Some("read") if args.len() == 5 => {
            let addr = parse_hex(&args[2])
                .ok_or_else(|| CmdError::Msg(format!("bad address '{}'", args[2])))?;
            let blk = parse_hex(&args[3])
                .ok_or_else(|| CmdError::Msg(format!("bad block '{}'", args[3])))?;
            let cnt = parse_hex(&args[4])
                .ok_or_else(|| CmdError::Msg(format!("bad count '{}'", args[4])))?;
            let len = cnt
                .checked_mul(512)
                .ok_or_else(|| CmdError::Msg("block count too large".into()))?;
            sh.platform
                .mem
                .check(addr, len, true)
                .map_err(|e| CmdError::Msg(format!("virtio read: {e}")))?;
            let dev = sh.env.get("virtio_dev").and_then(parse_hex).unwrap_or(0) as usize;
            let (d, mem) = disk_and_mem(sh, "virtio", dev)?;
            let t0 = timer::ticks();
            mem.fill(addr, len, |dst| d.read_blocks(blk, dst))
                .and_then(|r| r.map_err(|e| format!("{e}")))
                .map_err(|e| CmdError::Msg(format!("virtio read: {e}")))?;
            let t1 = timer::ticks();
            stages::mark_span("virtio read", t0, t1, len);
            sh.print(&format!(
                "virtio read: {cnt} blocks ({})\n",
                rate(len, t1 - t0)
            ));
            Ok(())
        }
        _ => Err(CmdError::Usage),
    }
}

/// Whether the disk holds a FAT filesystem itself (no partition table).
fn whole_disk_is_fat(d: &mut Disk) -> bool {
    let mut sector = alloc::vec![0u8; 512];
    d.read_blocks(0, &mut sector).is_ok() && fs::probe(&sector)
}

/// Duration in ms and rate as "X.YY MiB/s" for `bytes` moved in `ticks`.
fn ms_and_rate(bytes: u64, ticks: u64) -> (u64, String) {
    let us = timer::ticks_to_us(ticks).max(1);
    let kib_s = (bytes as u128 * 1_000_000 / us as u128 / 1024) as u64;
    (
        us / 1000,
        format!("{}.{:02} MiB/s", kib_s / 1024, (kib_s % 1024) * 100 / 1024),
    )
}

/// "N bytes in M ms, X MiB/s" (virtio read).
fn rate(bytes: u64, ticks: u64) -> String {
    let (ms, r) = ms_and_rate(bytes, ticks);
    format!("{bytes} bytes in {ms} ms, {r}")
}

pub fn cmd_ls(sh: &mut Sh, args: &[String]) -> CmdResult {
    let (iface, spec, path) = match args {
        [_, i, s] => (i, s, "/"),
        [_, i, s, p] => (i, s, p.as_str()),
        _ => return Err(CmdError::Usage),
    };
    let entries = with_fs(sh, iface, spec, |d| {
        fs::ls(d, path).map_err(|e| format!("{e}"))
    })?;
    let s = fs::format_ls(&entries);
    sh.print(&s);
    Ok(())
}

pub fn cmd_size(sh: &mut Sh, args: &[String]) -> CmdResult {
    let [_, iface, spec, path] = args else {
        return Err(CmdError::Usage);
    };
    let n = with_fs(sh, iface, spec, |d| {
        fs::size(d, path).map_err(|e| format!("{e}"))
    })?;
    let _ = sh.env.set("filesize", &format!("{n:x}"));
    Ok(())
}

pub fn cmd_load(sh: &mut Sh, args: &[String]) -> CmdResult {
    let a = LoadArgs::parse(args)?;
    let (dev, p) = resolve(sh, a.iface, a.spec)?;
    // Size first, then plan (the whole target range checked), then read.
    let fsize = {
        let d = disk(sh, a.iface, dev)?;
        let mut view = part::open(d, p).map_err(|e| CmdError::Msg(format!("{e}")))?;
        fs::size(&mut view, a.path).map_err(|e| CmdError::Msg(format!("{e}")))?
    };
    let mem = &sh.platform.mem;
    let r = loadplan::file_read(&a, fsize, |addr, len| mem.check(addr, len, true))
        .map_err(CmdError::Msg)?;
    let t0 = timer::ticks();
    let n = if r.len == 0 {
        0
    } else {
        let (d, mem) = disk_and_mem(sh, a.iface, dev)?;
        let mut view = part::open(d, p).map_err(|e| CmdError::Msg(format!("{e}")))?;
        mem.fill(r.addr, r.len, |dst| fs::read(&mut view, a.path, dst, r.pos))
            .and_then(|n| n.map_err(|e| format!("{e}")))
            .map_err(CmdError::Msg)?
    };
    let t1 = timer::ticks();
    stages::mark_span("load", t0, t1, n as u64);
    let (ms, rate) = ms_and_rate(n as u64, t1 - t0);
    sh.print(&format!("{n} bytes read in {ms} ms ({rate})\n"));
    let _ = sh.env.set("filesize", &format!("{n:x}"));
    let _ = sh.env.set("fileaddr", &format!("{:x}", r.addr));
    sh.platform.mem.record_load(r.addr, n as u64);
    Ok(())
}

pub fn cmd_fatwrite(sh: &mut Sh, args: &[String]) -> CmdResult {
    let [_, iface, spec, addr, path, bytes] = args else {
        return Err(CmdError::Usage);
    };
    let addr = parse_hex(addr).ok_or_else(|| CmdError::Msg(format!("bad address '{addr}'")))?;
    let len = parse_hex(bytes).ok_or_else(|| CmdError::Msg(format!("bad byte count '{bytes}'")))?;
    let mem = &sh.platform.mem;
    mem.check(addr, len, false)
        .map_err(|e| CmdError::Msg(format!("fatwrite: {e}")))?;
    let mut data = Vec::new();
    data.try_reserve_exact(len as usize).map_err(|_| {
        CmdError::Msg(format!(
            "fatwrite: {len:#x} bytes do not fit in the loader heap"
        ))
    })?;
    data.resize(len as usize, 0);
    mem.read(addr, &mut data);
    with_fs(sh, iface, spec, |d| {
        fs::write(d, path, &data).map_err(|e| format!("{e}"))
    })?;
    sh.print(&format!("{len} bytes written to {path}\n"));
    Ok(())
}

/// `saveenv`: the next of the two env copies on disk 0's filesystem
/// (`loader::envstore`: U-Boot's redundant environment, CRC-checked, the
/// newest copy never touched).
pub fn cmd_saveenv(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    let env = sh.env.clone();
    let saved = with_fs(sh, "virtio", "0", |d| {
        envstore::save(d, &env).map_err(|e| format!("saveenv: {e}"))
    })?;
    sh.print(&format!(
        "Saving Environment to FAT... OK ({} on virtio 0, save {})\n",
        saved.path, saved.seq
    ));
    Ok(())
}

/// Reads the saved env, if disk 0 has one: the newest usable copy's
/// variables go into the env. Returns the lines to print (where it came
/// from; every copy that was ignored, and why).
pub fn load_saved_env(sh: &mut Sh) -> Vec<String> {
    ensure_scanned(sh);
    if sh.platform.disks.is_empty() {
        return Vec::new();
    }
    let loaded = match with_fs(sh, "virtio", "0", |d| Ok(envstore::load(d, "virtio 0"))) {
        Ok(l) => l,
        Err(CmdError::Msg(m)) if m.contains("no partition") => return Vec::new(),
        Err(CmdError::Msg(m)) => return alloc::vec![format!("env: {m}")],
        Err(_) => return Vec::new(),
    };
    if let Some(env) = &loaded.env {
        for (k, v) in env.iter() {
            let _ = sh.env.set(k, v);
        }
    }
    loaded.notes.iter().map(|n| format!("env: {n}")).collect()
}

pub fn cmd_source(sh: &mut Sh, args: &[String]) -> CmdResult {
    let addr = loadplan::script_addr(args, sh.env.get("scriptaddr"))?;
    let mem = &sh.platform.mem;
    let loaded = loadplan::loaded_len(sh.env.get("fileaddr"), sh.env.get("filesize"), addr);
    let (addr, len) = loadplan::script_range(addr, loaded, |a, n| mem.check(a, n, false))
        .map_err(CmdError::Msg)?;
    let mut buf = alloc::vec![0u8; len as usize];
    mem.read(addr, &mut buf);
    let text = script_text(&buf)
        .map_err(|e| CmdError::Msg(format!("source: {e}")))?
        .to_string();
    sh.print(&format!("## Executing script at {addr:08x}\n"));
    sh.run_nested(&text)
}

/// Scans every disk's filesystem for a boot script and runs the first found.
pub fn cmd_bootscript(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    ensure_scanned(sh);
    let scriptaddr = sh
        .env
        .get("scriptaddr")
        .and_then(parse_hex)
        .ok_or_else(|| CmdError::Msg("bootscript: ${scriptaddr} is not set".into()))?;
    for dev in 0..sh.platform.disks.len() {
        let parts: Vec<u32> = {
            let Some(d) = sh.platform.disks.get_mut(dev) else {
                continue;
            };
            if whole_disk_is_fat(d) {
                alloc::vec![0]
            } else {
                match part::read_table(d) {
                    Ok(t) => t.partitions.iter().map(|p| p.index).collect(),
                    Err(_) => Vec::new(),
                }
            }
        };
        for p in parts {
            for path in SCRIPTS {
                let spec = format!("{dev}:{p}");
                let found = with_fs(sh, "virtio", &spec, |d| {
                    fs::exists(d, path).map_err(|e| format!("{e}"))
                });
                if found != Ok(true) {
                    continue;
                }
                sh.print(&format!("Found {path} on virtio {spec}\n"));
                let _ = sh.env.set("devtype", "virtio");
                let _ = sh.env.set("devnum", &format!("{dev}"));
                let _ = sh.env.set("distro_bootpart", &format!("{p}"));
                let load: Vec<String> = ["load", "virtio", &spec, &format!("{scriptaddr:x}"), path]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                cmd_load(sh, &load)?;
                return cmd_source(sh, &["source".to_string(), format!("{scriptaddr:x}")]);
            }
        }
    }
    Err(CmdError::Msg(
        "bootscript: no boot.cmd or boot.scr on any disk".into(),
    ))
}
