//! The memory part: the memory map (RAM banks and the claims on them), the
//! default load addresses, and checked access to memory for the shell's
//! commands. Every range the loader uses or hands on is claimed here; a write
//! that overlaps a claim is refused before a byte moves.

use crate::arch::mmu;
use crate::devtree::Dt;
use crate::footprint::Footprint;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use boards::Board;
use loader::dt::Region;
use loader::memmap::{LoadAddrs, MemMap, Owner};

/// How many recent loads [`Memory`] remembers.
const LOAD_RECORDS: usize = 16;

pub struct Memory {
    map: MemMap,
    /// `(addr, len)` of recent file loads, newest last: a gzip'd kernel loaded before its
    /// initrd still has a known length when `booti` runs (U-Boot's order).
    loads: Vec<(u64, u64)>,
    load: Option<LoadAddrs>,
    /// Regions the MMU could not map.
    map_errors: usize,
}

/// RAM as the DT describes it (or the board's fallback), always including the loader's own
/// footprint: what is identity-mapped as Normal memory and what the map's banks are.
pub fn ram_ranges(dt: &Dt, board: &Board, fp: &Footprint) -> Vec<(u64, u64)> {
    let own = (fp.base(), fp.size());
    let mut ram: Vec<(u64, u64)> = match dt.info() {
        Some(i) if !i.memory.is_empty() => i.memory.iter().map(|r| (r.base, r.size)).collect(),
        _ => board.quirks.fallback_ram.into_iter().collect(),
    };
    if !ram
        .iter()
        .any(|&(b, s)| b <= own.0 && own.0 + own.1 <= b.saturating_add(s))
    {
        ram.push(own);
    }
    ram
}

impl Memory {
    /// The map over `ram` with the loader's own claims, the incoming DT's, and the DT's
    /// `/memreserve/` and `/reserved-memory` ranges; plus the one-line warnings for claims
    /// that could not be made.
    pub fn build(
        ram: &[(u64, u64)],
        fp: &Footprint,
        dt: &Dt,
        map_errors: usize,
    ) -> (Self, Vec<String>) {
        let banks: Vec<Region> = ram
            .iter()
            .map(|&(base, size)| Region { base, size })
            .collect();
        let mut map = MemMap::new(&banks);
        let mut warn = Vec::new();
        for (start, size, owner) in fp.claims() {
            if size == 0 {
                continue;
            }
            if let Err(e) = map.claim(start, size, owner) {
                warn.push(format!("{e}"));
            }
        }
        if let Some((addr, total)) = dt.blob() {
            if let Err(e) = map.claim(addr, total as u64, Owner::IncomingDt) {
                warn.push(format!("{e}"));
            }
        }
        if let Some(i) = dt.info() {
            for (n, r) in i.memreserve.iter().enumerate() {
                map.reserve(r.base, r.size, &Owner::MemReserve(n));
            }
            for r in &i.reserved_memory {
                map.reserve(
                    r.region.base,
                    r.region.size,
                    &Owner::ReservedMemory(r.name.clone()),
                );
            }
        }
        let load = map.default_load_addresses();
        (
            Self {
                map,
                loads: Vec::new(),
                load,
                map_errors,
            },
            warn,
        )
    }

    pub const fn map(&self) -> &MemMap {
        &self.map
    }

    pub fn map_mut(&mut self) -> &mut MemMap {
        &mut self.map
    }

    pub const fn map_errors(&self) -> usize {
        self.map_errors
    }

    /// The env variables of the default load addresses.
    pub fn load_env(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(l) = &self.load {
            v.push(("kernel_addr_r", format!("{:#x}", l.kernel_addr_r)));
            v.push(("fdt_addr_r", format!("{:#x}", l.fdt_addr_r)));
            v.push(("scriptaddr", format!("{:#x}", l.scriptaddr)));
            v.push(("pxefile_addr_r", format!("{:#x}", l.pxefile_addr_r)));
            v.push(("kernel_comp_addr_r", format!("{:#x}", l.kernel_comp_addr_r)));
            v.push(("kernel_comp_size", format!("{:#x}", l.kernel_comp_size)));
            v.push(("ramdisk_addr_r", format!("{:#x}", l.ramdisk_addr_r)));
            v.push(("loadaddr", format!("{:#x}", l.kernel_addr_r)));
        }
        v
    }

    /// Records that a load put `len` bytes at `addr`; older records it overlaps are dropped.
    pub fn record_load(&mut self, addr: u64, len: u64) {
        let end = addr.saturating_add(len);
        self.loads
            .retain(|&(a, n)| a.saturating_add(n) <= addr || end <= a);
        if self.loads.len() == LOAD_RECORDS {
            self.loads.remove(0);
        }
        self.loads.push((addr, len));
    }

    /// The length of the file the last load at exactly `addr` put there, if nothing loaded
    /// over it since.
    pub fn loaded_at(&self, addr: u64) -> Option<u64> {
        self.loads
            .iter()
            .rev()
            .find(|&&(a, _)| a == addr)
            .map(|&(_, n)| n)
    }

    /// May `len` bytes at `addr` be read (or, with `write`, written) by a command? Reads need
    /// mapped RAM or a device the DT names; writes to RAM must also overlap no claim (the
    /// loader itself, the DT, reservations, the pen).
    pub fn check(&self, addr: u64, len: u64, write: bool) -> Result<(), String> {
        let Some(end) = addr.checked_add(len) else {
            return Err(format!(
                "range {addr:#x} + {len:#x} overflows the address space"
            ));
        };
        if len == 0 {
            return Ok(());
        }
        let Some(is_ram) = mmu::mapped_kind(addr, len) else {
            return Err(format!(
                "{addr:#x}..{end:#x} is not RAM or a device named in the DT"
            ));
        };
        if write && is_ram {
            self.map
                .check(addr, len, &Owner::Other("write".to_string()))
                .map_err(|e| format!("refused: {e}"))?;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `addr` ([`Memory::check`] accepted the range).
    pub fn read(&self, addr: u64, buf: &mut [u8]) {
        let ram = mmu::mapped_kind(addr, buf.len() as u64) == Some(true);
        // SAFETY: check accepted the range: it is mapped RAM or device memory.
        unsafe { copy_in(addr as usize, buf, ram) }
    }

    /// Writes `data` at `addr` ([`Memory::check`] accepted the range for writing).
    pub fn write(&mut self, addr: u64, data: &[u8]) {
        let ram = mmu::mapped_kind(addr, data.len() as u64) == Some(true);
        // SAFETY: check accepted the range and it overlaps no claim.
        unsafe { copy_out(addr as usize, data, ram) }
    }

    /// Lets `fill` write `len` bytes at `addr` in place (a disk read straight into memory),
    /// after the write check.
    pub fn fill<R>(
        &mut self,
        addr: u64,
        len: u64,
        fill: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, String> {
        self.check(addr, len, true)?;
        // SAFETY: checked for writing: mapped, and in RAM overlapping no claim; `&mut self`
        // keeps every other checked access out while the view lives.
        Ok(fill(unsafe { ram_mut(addr, len) }))
    }

    /// Reads `len` bytes at `addr` into a new buffer, after the read check.
    pub fn read_vec(&self, addr: u64, len: u64) -> Result<Vec<u8>, String> {
        self.check(addr, len, false)?;
        let mut v = Vec::new();
        v.try_reserve_exact(len as usize)
            .map_err(|_| String::from("out of loader heap"))?;
        v.resize(len as usize, 0);
        self.read(addr, &mut v);
        Ok(v)
    }

    /// A read-only view of `len` bytes at `addr`, after the read check (no copy: for large
    /// files such as a kernel).
    pub fn view(&self, addr: u64, len: u64) -> Result<&'static [u8], String> {
        self.check(addr, len, false)?;
        // SAFETY: mapped memory (checked); the loader writes there only through claims.
        Ok(unsafe { ram(addr, len) })
    }
}

/// A view of memory at `addr`.
///
/// # Safety
/// `[addr, addr + len)` must be mapped, and not written while the view lives.
pub unsafe fn ram(addr: u64, len: u64) -> &'static [u8] {
    unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len as usize) }
}

/// A mutable view of RAM at `addr`.
///
/// # Safety
/// `[addr, addr + len)` must be mapped RAM that the caller owns: claimed by it, or accepted by
/// [`Memory::check`] for writing (free RAM), and used through no other view meanwhile.
pub unsafe fn ram_mut(addr: u64, len: u64) -> &'static mut [u8] {
    unsafe { core::slice::from_raw_parts_mut(addr as usize as *mut u8, len as usize) }
}

/// Device registers are accessed with one access of the natural width when
/// the request is 1/2/4/8 aligned bytes (md.l on a register reads it once).
unsafe fn copy_in(addr: usize, buf: &mut [u8], ram: bool) {
    unsafe {
        if ram {
            core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len());
            return;
        }
        match buf.len() {
            8 if addr.is_multiple_of(8) => {
                buf.copy_from_slice(&(addr as *const u64).read_volatile().to_le_bytes())
            }
            4 if addr.is_multiple_of(4) => {
                buf.copy_from_slice(&(addr as *const u32).read_volatile().to_le_bytes())
            }
            2 if addr.is_multiple_of(2) => {
                buf.copy_from_slice(&(addr as *const u16).read_volatile().to_le_bytes())
            }
            _ => {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = ((addr + i) as *const u8).read_volatile();
                }
            }
        }
    }
}

unsafe fn copy_out(addr: usize, data: &[u8], ram: bool) {
    unsafe {
        if ram {
            core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len());
            return;
        }
        match data.len() {
            8 if addr.is_multiple_of(8) => (addr as *mut u64)
                .write_volatile(u64::from_le_bytes(data.try_into().unwrap_or([0; 8]))),
            4 if addr.is_multiple_of(4) => (addr as *mut u32)
                .write_volatile(u32::from_le_bytes(data.try_into().unwrap_or([0; 4]))),
            2 if addr.is_multiple_of(2) => (addr as *mut u16)
                .write_volatile(u16::from_le_bytes(data.try_into().unwrap_or([0; 2]))),
            _ => {
                for (i, b) in data.iter().enumerate() {
                    ((addr + i) as *mut u8).write_volatile(*b);
                }
            }
        }
    }
}
