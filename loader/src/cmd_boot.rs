//! booti and fdt. booti validates everything and claims every range it will
//! write (kernel, initrd, DT) before a single byte moves; if anything fails,
//! the claims are released and nothing has been written outside ranges the
//! loader had just claimed as free. Then it leaves through the one handoff.

use crate::arch::{handoff, timer};
use crate::platform::Sh;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use loader::dtfix::{self, ChosenFixups};
use loader::gzip;
use loader::image::{ImageHeader, PlacementPolicy};
use loader::memmap::{ClaimId, MemMap, Owner, Prefer};
use shell::{parse_hex, CmdError, CmdResult, Platform};

const MIB2: u64 = 2 << 20;
const GIB: u64 = 1 << 30;

fn msg(s: impl Into<String>) -> CmdError {
    CmdError::Msg(s.into())
}

/// Claims made during one booti attempt; released unless committed.
struct Claims<'a> {
    map: &'a mut MemMap,
    ids: Vec<ClaimId>,
}

impl Claims<'_> {
    fn claim(&mut self, start: u64, size: u64, owner: Owner) -> Result<ClaimId, CmdError> {
        let id = self
            .map
            .claim(start, size, owner)
            .map_err(|e| msg(format!("booti: {e}")))?;
        self.ids.push(id);
        Ok(id)
    }
    fn release(&mut self, id: ClaimId) {
        let _ = self.map.release(id);
        self.ids.retain(|&i| i != id);
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            let _ = self.map.release(id);
        }
    }
}

/// Length of the file at `addr`, when the last load put it there.
fn loaded_len(sh: &Sh, addr: u64) -> Option<u64> {
    if sh.env.get("fileaddr").and_then(parse_hex) == Some(addr) {
        sh.env.get("filesize").and_then(parse_hex)
    } else {
        None
    }
}

fn read_mem(sh: &Sh, addr: u64, len: u64) -> Result<Vec<u8>, CmdError> {
    sh.platform
        .mem_check(addr, len, false)
        .map_err(|e| msg(format!("booti: {e}")))?;
    let mut v = Vec::new();
    v.try_reserve_exact(len as usize)
        .map_err(|_| msg("booti: out of loader heap"))?;
    v.resize(len as usize, 0);
    sh.platform.mem_read(addr, &mut v);
    Ok(v)
}

/// Reads a DTB's totalsize at `addr` and returns the blob.
fn read_dtb(sh: &Sh, addr: u64) -> Result<Vec<u8>, CmdError> {
    if !addr.is_multiple_of(8) {
        return Err(msg(format!(
            "device tree at {addr:#x} is not 8-byte aligned"
        )));
    }
    let head = read_mem(sh, addr, 40)?;
    let total =
        loader::dt::fdt_totalsize(&head).map_err(|e| msg(format!("fdt at {addr:#x}: {e}")))?;
    if total > dtfix::MAX_DTB * 4 {
        return Err(msg(format!(
            "fdt at {addr:#x}: totalsize {total:#x} is implausible"
        )));
    }
    read_mem(sh, addr, total as u64)
}

struct Kernel {
    hdr: ImageHeader,
    /// The gzip member in RAM (addr, len) and what its header/trailer say.
    gz: Option<(u64, u64, gzip::GzInfo)>,
    file_len: u64,
}

/// A read-only view of RAM that `mem_check` accepted.
fn ram(sh: &Sh, addr: u64, len: u64) -> Result<&'static [u8], CmdError> {
    sh.platform
        .mem_check(addr, len, false)
        .map_err(|e| msg(format!("booti: {e}")))?;
    // SAFETY: mapped memory (checked); callers claim it before anything else writes there.
    Ok(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len as usize) })
}

fn read_kernel(sh: &Sh, kaddr: u64) -> Result<Kernel, CmdError> {
    let head = read_mem(sh, kaddr, 64)?;
    if gzip::is_gzip(&head) {
        let len = loaded_len(sh, kaddr).ok_or_else(|| {
            msg("booti: gzip'd Image: its size is unknown; load it with `load` (sets filesize) right before booti")
        })?;
        let data = ram(sh, kaddr, len)?;
        let info = gzip::parse(data).map_err(|e| msg(format!("booti: Image.gz: {e}")))?;
        let mut h = [0u8; 64];
        let n = gzip::inflate_prefix(data, &info, &mut h)
            .map_err(|e| msg(format!("booti: Image.gz: {e}")))?;
        if n < 64 {
            return Err(msg("booti: Image.gz inflates to less than an Image header"));
        }
        let hdr = ImageHeader::parse(&h).map_err(|e| msg(format!("booti: Image.gz: {e}")))?;
        let file_len = info.isize as u64;
        Ok(Kernel {
            hdr,
            gz: Some((kaddr, len, info)),
            file_len,
        })
    } else {
        let hdr = ImageHeader::parse(&head).map_err(|e| msg(format!("booti: {e}")))?;
        let file_len = loaded_len(sh, kaddr)
            .unwrap_or(hdr.image_size)
            .min(hdr.image_size.max(64));
        Ok(Kernel {
            hdr,
            gz: None,
            file_len,
        })
    }
}

/// booti <kernel_addr> [<initrd_addr>[:<size>] | -] [<fdt_addr>]
pub fn cmd_booti(sh: &mut Sh, args: &[String]) -> CmdResult {
    if !(2..=4).contains(&args.len()) {
        return Err(CmdError::Usage);
    }
    let kaddr =
        parse_hex(&args[1]).ok_or_else(|| msg(format!("bad kernel address '{}'", args[1])))?;
    let initrd = match args.get(2).map(String::as_str) {
        None | Some("-") => None,
        Some(s) => {
            let (a, l) = s
                .split_once(':')
                .ok_or_else(|| msg("booti: initrd must be given as <addr>:<size>"))?;
            let a = parse_hex(a).ok_or_else(|| msg(format!("bad initrd address '{a}'")))?;
            let l = parse_hex(l).ok_or_else(|| msg(format!("bad initrd size '{l}'")))?;
            if l == 0 {
                return Err(msg("booti: initrd size is 0"));
            }
            Some((a, l))
        }
    };
    let fdt_in = match args.get(3) {
        Some(f) => Some(parse_hex(f).ok_or_else(|| msg(format!("bad fdt address '{f}'")))?),
        None => None,
    };

    // 1. Parse everything untrusted.
    let k = read_kernel(sh, kaddr)?;
    if k.hdr.image_size < k.file_len {
        return Err(msg(format!(
            "booti: {}Image header image_size {:#x} is smaller than the Image ({:#x} bytes)",
            if k.gz.is_some() { "Image.gz: " } else { "" },
            k.hdr.image_size,
            k.file_len
        )));
    }
    let dtb = match fdt_in {
        Some(a) => read_dtb(sh, a)?,
        None => match sh.platform.st.dtb {
            Some((a, _)) => read_dtb(sh, a)?,
            None => {
                return Err(msg(
                    "booti: no device tree: the loader got none; pass <fdt_addr>",
                ))
            }
        },
    };
    let (mut tree, info) = dtfix::load(&dtb).map_err(|e| msg(format!("booti: fdt: {e}")))?;
    if let Some((a, l)) = initrd {
        sh.platform
            .mem_check(a, l, false)
            .map_err(|e| msg(format!("booti: initrd: {e}")))?;
    }
    let bootargs = sh.env.get("bootargs").map(|s| s.to_string());
    dtfix::apply_chosen(
        &mut tree,
        &ChosenFixups {
            bootargs,
            initrd: initrd.map(|(a, l)| (a, a + l)),
        },
    );
    // CPUs: through our pen (spin-table) or handed back to firmware (psci).
    let method = sh.env.get("cpu_method").unwrap_or("spin-table").to_string();
    if method == "spin-table" && sh.platform.st.smp.is_none() && sh.platform.st.smp_error.is_none()
    {
        crate::platform::gather_now(sh);
    }
    if method == "spin-table" {
        crate::platform::recall_now(sh).map_err(|e| msg(format!("booti: CPUs: {e}")))?;
    }
    let mut psci_handback = None;
    let mut pen_clean = None;
    if let Some(smp) = &sh.platform.st.smp {
        let paths: Vec<String> = info.cpus.iter().map(|c| c.path.clone()).collect();
        let unusable = smp.unusable_paths();
        let remove: Vec<String> = paths
            .iter()
            .filter(|p| unusable.contains(p))
            .cloned()
            .collect();
        let existing: Vec<loader::dt::Region> = info.memreserve.clone();
        let pen_r = crate::smp::pen_region(&smp.header);
        let (m, reserve) = match method.as_str() {
            "spin-table" => {
                let release: Vec<(String, u64)> = smp
                    .cpus
                    .iter()
                    .filter_map(|c| c.slot.map(|a| (c.path.clone(), a)))
                    .collect();
                pen_clean = Some((pen_r.base, pen_r.size));
                (
                    dtfix::CpuMethod::SpinTable {
                        release,
                        park: smp.header.park_addr(),
                    },
                    loader::pen::memreserve_list(&existing, &smp.dropped, pen_r),
                )
            }
            "psci" => {
                let c = sh.platform.st.usable_psci().ok_or_else(|| {
                    msg("booti: cpu_method=psci needs firmware PSCI reachable from this EL")
                })?;
                psci_handback = Some(c);
                let keep: Vec<loader::dt::Region> = existing
                    .iter()
                    .filter(|r| !smp.dropped.contains(r) && **r != pen_r)
                    .copied()
                    .collect();
                (dtfix::CpuMethod::Psci, keep)
            }
            other => {
                return Err(msg(format!(
                    "booti: cpu_method '{other}' must be spin-table or psci"
                )))
            }
        };
        let reserve: Vec<(u64, u64)> = reserve.iter().map(|r| (r.base, r.size)).collect();
        dtfix::apply_cpus(&mut tree, &paths, &m, &remove, &reserve)
            .map_err(|e| msg(format!("booti: {e}")))?;
    }
    let boot_cpuid = (crate::arch::cpu::mpidr() & 0xffff_ffff) as u32;
    let dt_out = dtfix::store(&tree, boot_cpuid).map_err(|e| msg(format!("booti: {e}")))?;
    let _ = info;
    let fdt_dest = sh
        .env
        .get("fdt_addr_r")
        .and_then(parse_hex)
        .ok_or_else(|| msg("booti: ${fdt_addr_r} is not set"))?;
    if fdt_dest % 8 != 0 {
        return Err(msg(format!(
            "booti: fdt_addr_r {fdt_dest:#x} is not 8-byte aligned"
        )));
    }
    let kernel_addr_r = sh.env.get("kernel_addr_r").and_then(parse_hex);

    // 2. Claim every range that will be written, before writing any.
    let st = &mut *sh.platform.st;
    let mut c = Claims {
        map: &mut st.map,
        ids: Vec::new(),
    };
    let smp_slot = &mut st.smp;
    let hdr = &k.hdr;
    let footprint = hdr.text_offset + hdr.image_size;
    let mut src_claim = None;
    let mut in_place = false;
    let base = if k.gz.is_none() {
        match hdr.placement(c.map, kaddr, k.file_len) {
            Ok(p) if !p.needs_move => {
                in_place = true;
                p.base
            }
            _ => {
                src_claim = Some(c.claim(kaddr, k.file_len, Owner::Load("kernel file".into()))?);
                lowest_free(c.map, hdr, footprint)?
            }
        }
    } else {
        let gz_len = k.gz.as_ref().map_or(0, |g| g.1);
        src_claim = Some(c.claim(kaddr, gz_len, Owner::Load("Image.gz".into()))?);
        // Prefer kernel_addr_r for "anywhere" kernels, so the Image runs where
        // an uncompressed one would; else the lowest free 2 MiB slot.
        let pref = kernel_addr_r.filter(|a| {
            hdr.placement_policy() == PlacementPolicy::Anywhere
                && a % MIB2 == 0
                && c.map
                    .check(*a + hdr.text_offset, hdr.image_size, &Owner::Kernel)
                    .is_ok()
        });
        match pref {
            Some(a) => a,
            None => lowest_free(c.map, hdr, footprint)?,
        }
    };
    let entry = base + hdr.text_offset;
    c.claim(entry, hdr.image_size, Owner::Kernel)?;
    if let Some((a, l)) = initrd {
        c.claim(a, l, Owner::Initrd)?;
        let lo = a.min(base) & !(GIB - 1);
        let hi = (a + l).max(entry + hdr.image_size);
        if hi - lo > 32 * GIB {
            return Err(msg("booti: initrd and kernel do not fit in one 1 GiB-aligned 32 GiB window (booting.rst)"));
        }
    }
    c.claim(fdt_dest, dt_out.len() as u64, Owner::Fdt)?;

    // cpu_method=psci: the pen CPUs go back to firmware now (before any
    // byte moves, so a CPU that refuses to turn off fails the boot cleanly).
    if let Some(cd) = psci_handback {
        if let Some(smp) = smp_slot.as_mut() {
            smp.hand_back_to_firmware(cd)
                .map_err(|e| msg(format!("booti: {e}")))?;
        }
    }

    // 3. Write: kernel (move or inflate), then the DT.
    let t0 = timer::ticks();
    if let Some((gz_addr, gz_len, gzinfo)) = &k.gz {
        // SAFETY: the source is claimed as "Image.gz" and mapped (checked in read_kernel).
        let data = unsafe {
            core::slice::from_raw_parts(*gz_addr as usize as *const u8, *gz_len as usize)
        };
        // SAFETY: [entry, entry+isize) lies inside the kernel claim (image_size ≥ isize).
        let dst = unsafe {
            core::slice::from_raw_parts_mut(entry as usize as *mut u8, gzinfo.isize as usize)
        };
        gzip::inflate_into(data, gzinfo, dst).map_err(|e| msg(format!("booti: Image.gz: {e}")))?;
        crate::boot::mark_span("inflate", t0, timer::ticks(), gzinfo.isize as u64);
    } else if !in_place {
        // SAFETY: source is mapped RAM (checked), destination is our claim; they don't overlap.
        unsafe {
            core::ptr::copy(
                kaddr as usize as *const u8,
                entry as usize as *mut u8,
                k.file_len as usize,
            )
        };
        crate::boot::mark_span("kernel move", t0, timer::ticks(), k.file_len);
    }
    if let Some(id) = src_claim {
        c.release(id);
    }
    // SAFETY: fdt_dest..+len is claimed for the DT.
    unsafe {
        core::ptr::copy_nonoverlapping(dt_out.as_ptr(), fdt_dest as usize as *mut u8, dt_out.len())
    };
    // Committed: the claims now describe what the kernel owns.
    c.ids.clear();
    drop(c);

    let mut o = format!(
        "## Booting arm64 Image at {entry:#x} ({} bytes{}, image_size {:#x})\n",
        k.file_len,
        if k.gz.is_some() {
            ", inflated from Image.gz"
        } else if in_place {
            ", in place"
        } else {
            ", moved"
        },
        hdr.image_size
    );
    if let Some((a, l)) = initrd {
        o.push_str(&format!("## initrd at {a:#x}..{:#x}\n", a + l));
    }
    o.push_str(&format!(
        "## Device tree at {fdt_dest:#x} ({} bytes)\n\nStarting kernel ...\n\n",
        dt_out.len()
    ));
    sh.print(&o);
    crate::boot::mark("handoff");
    let now = timer::ticks();
    let since = sh.platform.st.us_since_entry(now);
    sh.print(&format!(
        "## loader entry -> handoff: {since} us (counter {:#x} -> {now:#x} at {} Hz); heap high water {} bytes\n",
        sh.platform.st.entry_ticks,
        timer::freq(),
        crate::arch::heap::stats().high_water
    ));
    let mut clean: Vec<(u64, u64)> = Vec::new();
    clean.push((entry, hdr.image_size));
    clean.push((fdt_dest, dt_out.len() as u64));
    if let Some(r) = initrd {
        clean.push(r);
    }
    // CPUs sleeping in the pen wake on timer interrupts through the distributor, and from
    // now on every wake period (an OS releases without a kick).
    let keep_distributor = pen_clean.is_some();
    if keep_distributor {
        if let Some(smp) = &sh.platform.st.smp {
            smp.hold(false, &sh.platform.st.wake);
        }
    }
    if let Some(p) = pen_clean {
        clean.push(p);
    }
    // SAFETY: the kernel, DT and initrd are in place and claimed; nothing
    // writes to them after this point.
    unsafe { handoff::handoff(entry, fdt_dest, &clean, keep_distributor) }
}

fn lowest_free(map: &MemMap, _hdr: &ImageHeader, footprint: u64) -> Result<u64, CmdError> {
    map.find_free(footprint, MIB2, None, Prefer::Low)
        .ok_or_else(|| {
            msg(format!(
                "booti: no free 2 MiB-aligned room for the kernel's {footprint:#x}-byte footprint"
            ))
        })
}

/// fdt addr [addr] | print [path] | set <path> <prop> [value] | rm <path> [prop] | resize [extra]
pub fn cmd_fdt(sh: &mut Sh, args: &[String]) -> CmdResult {
    let sub = args.get(1).map(String::as_str).ok_or(CmdError::Usage)?;
    if sub == "addr" {
        match args.get(2) {
            None => {
                let a = sh.platform.st.fdt_work.or(sh.platform.st.dtb.map(|d| d.0));
                match a {
                    Some(a) => sh.print(&format!("The working fdt is at {a:#x}\n")),
                    None => sh.print("No working fdt\n"),
                }
                return Ok(());
            }
            Some(a) => {
                let a = parse_hex(a).ok_or_else(|| msg(format!("bad address '{a}'")))?;
                let blob = read_dtb(sh, a)?;
                dtfix::load(&blob).map_err(|e| msg(format!("fdt: {e}")))?;
                sh.platform.st.fdt_work = Some(a);
                return Ok(());
            }
        }
    }
    let addr = sh
        .platform
        .st
        .fdt_work
        .or(sh.platform.st.dtb.map(|d| d.0))
        .ok_or_else(|| msg("fdt: no working fdt (use fdt addr <addr>)"))?;
    let blob = read_dtb(sh, addr)?;
    let old_len = blob.len() as u64;
    let (mut tree, _) = dtfix::load(&blob).map_err(|e| msg(format!("fdt: {e}")))?;
    let mut extra = 0u64;
    match (sub, &args[2..]) {
        ("print", rest) if rest.len() <= 1 => {
            let path = rest.first().map_or("/", String::as_str);
            let s = dtfix::print(&tree, path).map_err(|e| msg(format!("fdt: {e}")))?;
            sh.print(&s);
            return Ok(());
        }
        ("set", [path, prop, value @ ..]) => {
            let v: Vec<&str> = value.iter().map(String::as_str).collect();
            let bytes = dtfix::parse_value(&v).map_err(|e| msg(format!("fdt: {e}")))?;
            dtfix::set_property(&mut tree, path, prop, bytes)
                .map_err(|e| msg(format!("fdt: {e}")))?;
        }
        ("rm", [path]) => {
            dtfix::remove(&mut tree, path, None).map_err(|e| msg(format!("fdt: {e}")))?
        }
        ("rm", [path, prop]) => {
            dtfix::remove(&mut tree, path, Some(prop)).map_err(|e| msg(format!("fdt: {e}")))?
        }
        ("resize", rest) if rest.len() <= 1 => {
            extra = match rest.first() {
                Some(n) => parse_hex(n).ok_or_else(|| msg(format!("bad size '{n}'")))?,
                None => 0x1000,
            };
        }
        _ => return Err(CmdError::Usage),
    }
    let cpuid = u32::from_be_bytes([blob[28], blob[29], blob[30], blob[31]]);
    let mut out = dtfix::store(&tree, cpuid).map_err(|e| msg(format!("fdt: {e}")))?;
    if extra > 0 {
        let total = (out.len() as u64)
            .saturating_add(extra)
            .min(dtfix::MAX_DTB as u64);
        out.resize(total as usize, 0);
        out[4..8].copy_from_slice(&(total as u32).to_be_bytes());
    }
    // The new blob must fit where the old one was: in the loader-given DT's
    // own claim, or in unclaimed RAM.
    let new_len = out.len() as u64;
    let st = &*sh.platform.st;
    let own = st
        .map
        .claim_at(addr)
        .filter(|c| c.owner == Owner::IncomingDt || c.owner == Owner::Fdt)
        .map(|c| c.end);
    let fits = match own {
        Some(end) => addr + new_len <= end,
        None => sh.platform.mem_check(addr, new_len, true).is_ok(),
    };
    if !fits {
        return Err(msg(format!(
            "fdt: the edited tree ({new_len} bytes, was {old_len}) does not fit at {addr:#x}"
        )));
    }
    // SAFETY: checked above: our DT's claim or free RAM.
    unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), addr as usize as *mut u8, out.len()) };
    Ok(())
}
