//! Storage commands in U-Boot syntax: virtio, part, ls, load/fatload, size,
//! fatwrite, saveenv, source, bootscript. Every command checks its target
//! memory range against the memory map before a byte is written.

use crate::arch::timer;
use crate::platform::Sh;
use crate::storage::{self, Disk};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use drivers::block::BlockDevice;
use drivers::{fs, part};
use loader::devspec::{parse_dev_part, script_text, DevPart};
use shell::{parse_hex, CmdError, CmdResult, Platform};

/// File the env is saved to, on the boot partition of disk 0.
pub const ENV_FILE: &str = "/parkboot.env";
/// Where `bootscript` looks, in order.
pub const SCRIPTS: &[&str] = &["/boot.cmd", "/boot/boot.cmd", "/boot.scr", "/boot/boot.scr"];

/// Scans for disks once (and again on `virtio scan`).
pub fn ensure_scanned(sh: &mut Sh) {
    if sh.platform.st.disks_scanned {
        return;
    }
    rescan(sh);
}

fn rescan(sh: &mut Sh) {
    let t0 = timer::ticks();
    let mut notes = Vec::new();
    let disks = match &sh.platform.st.dt {
        Some(dt) => storage::scan(dt, &mut notes),
        None => Vec::new(),
    };
    sh.platform.st.disks = disks;
    sh.platform.st.disks_scanned = true;
    crate::boot::mark_span("virtio scan", t0, timer::ticks(), 0);
    for n in notes {
        sh.print(&format!("virtio: {n}\n"));
    }
}

fn disk<'a>(sh: &'a mut Sh, iface: &str, dev: usize) -> Result<&'a mut Disk, CmdError> {
    if iface != "virtio" {
        return Err(CmdError::Msg(format!(
            "unknown interface '{iface}' (only 'virtio')"
        )));
    }
    ensure_scanned(sh);
    let n = sh.platform.st.disks.len();
    sh.platform
        .st
        .disks
        .get_mut(dev)
        .ok_or_else(|| CmdError::Msg(format!("no virtio device {dev} ({n} found)")))
}

/// Resolves `<dev>[:<part>]` to (disk, partition number to open).
fn resolve(sh: &mut Sh, iface: &str, spec: &str) -> Result<(usize, u32), CmdError> {
    let DevPart { dev, part: p } = parse_dev_part(spec).map_err(CmdError::Msg)?;
    let d = disk(sh, iface, dev)?;
    let p = match p {
        Some(p) => p,
        None => default_part(d)?,
    };
    Ok((dev, p))
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
            sh.platform.st.disks.clear();
            rescan(sh);
            let n = sh.platform.st.disks.len();
            sh.print(&format!("{n} virtio block device(s)\n"));
            Ok(())
        }
        Some("info") if args.len() == 2 => {
            ensure_scanned(sh);
            let mut o = String::new();
            for (i, d) in sh.platform.st.disks.iter().enumerate() {
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
                .mem_check(addr, len, true)
                .map_err(|e| CmdError::Msg(format!("virtio read: {e}")))?;
            let dev = sh.env.get("virtio_dev").and_then(parse_hex).unwrap_or(0) as usize;
            let d = disk(sh, "virtio", dev)?;
            let t0 = timer::ticks();
            // SAFETY: mem_check accepted [addr, addr+len): mapped RAM, no claim.
            let dst =
                unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut u8, len as usize) };
            d.read_blocks(blk, dst)
                .map_err(|e| CmdError::Msg(format!("virtio read: {e}")))?;
            let t1 = timer::ticks();
            crate::boot::mark_span("virtio read", t0, t1, len);
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

pub fn cmd_part(sh: &mut Sh, args: &[String]) -> CmdResult {
    let [_, sub, iface, dev] = args else {
        return Err(CmdError::Usage);
    };
    if sub != "list" {
        return Err(CmdError::Usage);
    }
    let n = usize::from_str_radix(dev.trim_start_matches("0x"), 16)
        .map_err(|_| CmdError::Msg(format!("bad device number '{dev}'")))?;
    let d = disk(sh, iface, n)?;
    let t = part::read_table(d).map_err(|e| CmdError::Msg(format!("{e}")))?;
    let s = part::format_table(&t, &format!("virtio device {n}"));
    sh.print(&s);
    Ok(())
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
    if !(5..=7).contains(&args.len()) {
        return Err(CmdError::Usage);
    }
    let (iface, spec, path) = (&args[1], &args[2], &args[4]);
    let addr =
        parse_hex(&args[3]).ok_or_else(|| CmdError::Msg(format!("bad address '{}'", args[3])))?;
    let want = match args.get(5) {
        Some(b) => {
            Some(parse_hex(b).ok_or_else(|| CmdError::Msg(format!("bad byte count '{b}'")))?)
        }
        None => None,
    };
    let pos = match args.get(6) {
        Some(p) => parse_hex(p).ok_or_else(|| CmdError::Msg(format!("bad position '{p}'")))?,
        None => 0,
    };
    let (dev, p) = resolve(sh, iface, spec)?;
    // Size first, then check the whole target range, then read.
    let fsize = {
        let d = disk(sh, iface, dev)?;
        let mut view = part::open(d, p).map_err(|e| CmdError::Msg(format!("{e}")))?;
        fs::size(&mut view, path).map_err(|e| CmdError::Msg(format!("{e}")))?
    };
    if pos > fsize {
        return Err(CmdError::Msg(format!(
            "position {pos:#x} is beyond the end of {path} ({fsize:#x} bytes)"
        )));
    }
    let avail = fsize - pos;
    let len = match want {
        Some(0) | None => avail,
        Some(w) => w.min(avail),
    };
    sh.platform
        .mem_check(addr, len, true)
        .map_err(|e| CmdError::Msg(format!("load: {e}")))?;
    let t0 = timer::ticks();
    let n = if len == 0 {
        0
    } else {
        let d = disk(sh, iface, dev)?;
        let mut view = part::open(d, p).map_err(|e| CmdError::Msg(format!("{e}")))?;
        // SAFETY: mem_check accepted [addr, addr+len): mapped RAM, no claim.
        let dst =
            unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut u8, len as usize) };
        fs::read(&mut view, path, dst, pos).map_err(|e| CmdError::Msg(format!("{e}")))?
    };
    let t1 = timer::ticks();
    crate::boot::mark_span("load", t0, t1, n as u64);
    let (ms, r) = ms_and_rate(n as u64, t1 - t0);
    sh.print(&format!("{n} bytes read in {ms} ms ({r})\n"));
    let _ = sh.env.set("filesize", &format!("{n:x}"));
    let _ = sh.env.set("fileaddr", &format!("{addr:x}"));
    Ok(())
}

pub fn cmd_fatwrite(sh: &mut Sh, args: &[String]) -> CmdResult {
    let [_, iface, spec, addr, path, bytes] = args else {
        return Err(CmdError::Usage);
    };
    let addr = parse_hex(addr).ok_or_else(|| CmdError::Msg(format!("bad address '{addr}'")))?;
    let len = parse_hex(bytes).ok_or_else(|| CmdError::Msg(format!("bad byte count '{bytes}'")))?;
    sh.platform
        .mem_check(addr, len, false)
        .map_err(|e| CmdError::Msg(format!("fatwrite: {e}")))?;
    let mut data = Vec::new();
    data.try_reserve_exact(len as usize).map_err(|_| {
        CmdError::Msg(format!(
            "fatwrite: {len:#x} bytes do not fit in the loader heap"
        ))
    })?;
    data.resize(len as usize, 0);
    sh.platform.mem_read(addr, &mut data);
    with_fs(sh, iface, spec, |d| {
        fs::write(d, path, &data).map_err(|e| format!("{e}"))
    })?;
    sh.print(&format!("{len} bytes written to {path}\n"));
    Ok(())
}

/// The disk/partition holding the env file: disk 0's filesystem.
pub fn cmd_saveenv(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    let text = sh.env.to_text();
    with_fs(sh, "virtio", "0", |d| {
        fs::write(d, ENV_FILE, text.as_bytes()).map_err(|e| format!("{e}"))
    })?;
    sh.print(&format!(
        "Saving Environment to FAT... OK ({ENV_FILE} on virtio 0)\n"
    ));
    Ok(())
}

/// Reads the saved env, if disk 0 has one. Returns what happened, for the console.
pub fn load_saved_env(sh: &mut Sh) -> Option<String> {
    ensure_scanned(sh);
    if sh.platform.st.disks.is_empty() {
        return None;
    }
    let text = with_fs(sh, "virtio", "0", |d| {
        let n = fs::size(d, ENV_FILE).map_err(|e| format!("{e}"))?;
        if n > 64 * 1024 {
            return Err(format!("{ENV_FILE} is too large ({n} bytes)"));
        }
        let mut buf = alloc::vec![0u8; n as usize];
        fs::read(d, ENV_FILE, &mut buf, 0).map_err(|e| format!("{e}"))?;
        String::from_utf8(buf).map_err(|_| format!("{ENV_FILE} is not text"))
    });
    match text {
        Ok(t) => match shell::Env::from_text(&t) {
            Ok(env) => {
                let mut n = 0;
                for (k, v) in env.iter() {
                    let _ = sh.env.set(k, v);
                    n += 1;
                }
                Some(format!("env: {n} variable(s) from {ENV_FILE} on virtio 0"))
            }
            Err(e) => Some(format!("env: {ENV_FILE} ignored: {e}")),
        },
        Err(CmdError::Msg(m)) if m.contains("not found") || m.contains("no partition") => None,
        Err(CmdError::Msg(m)) => Some(format!("env: {m}")),
        Err(_) => None,
    }
}

pub fn cmd_source(sh: &mut Sh, args: &[String]) -> CmdResult {
    let addr = match args {
        [_] => sh
            .env
            .get("scriptaddr")
            .and_then(parse_hex)
            .ok_or_else(|| CmdError::Msg("source: no address and no ${scriptaddr}".into()))?,
        [_, a] => parse_hex(a).ok_or_else(|| CmdError::Msg(format!("bad address '{a}'")))?,
        _ => return Err(CmdError::Usage),
    };
    // Plain text ends at ${filesize} when the script was just loaded there,
    // else at the first NUL within 1 MiB.
    let mut len = 1 << 20;
    if sh.env.get("fileaddr").and_then(parse_hex) == Some(addr) {
        if let Some(n) = sh.env.get("filesize").and_then(parse_hex) {
            len = n.clamp(1, 1 << 20);
        }
    }
    // Shrink to what is mapped (a script near the end of RAM).
    while len > 64 && sh.platform.mem_check(addr, len, false).is_err() {
        len /= 2;
    }
    sh.platform
        .mem_check(addr, len, false)
        .map_err(|e| CmdError::Msg(format!("source: {e}")))?;
    let mut buf = alloc::vec![0u8; len as usize];
    sh.platform.mem_read(addr, &mut buf);
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
    for dev in 0..sh.platform.st.disks.len() {
        let parts: Vec<u32> = {
            let d = &mut sh.platform.st.disks[dev];
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
