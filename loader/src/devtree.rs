//! The DT part: the device tree the loader was given — where it lies, its
//! typed description, or why there is none — and the working fdt of the
//! `fdt` command.

use crate::arch::exceptions;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use loader::dt::{self, DtInfo, EnableMethod, Prop64};

/// Largest incoming DTB we accept (booting.rst: the DTB must not exceed 2 MiB;
/// we are lenient up to 8 MiB for trees that carry padding).
const MAX_DTB: usize = 8 << 20;

pub struct Dt {
    /// `(address, totalsize)` of the blob at x0, when it parsed.
    blob: Option<(u64, usize)>,
    info: Option<DtInfo>,
    /// Why there is no DT.
    error: Option<String>,
    /// `fdt addr` target (None: the DT the loader was given).
    work: Option<u64>,
    /// The blob `kaslrseed` wrote a seed into (booti keeps that seed).
    seeded: Option<u64>,
}

impl Dt {
    /// Probes x0 and parses the untrusted blob there into a typed description.
    pub fn from_x0(x0: u64) -> Self {
        let mut dt = Self {
            blob: None,
            info: None,
            error: None,
            work: None,
            seeded: None,
        };
        match probe(x0) {
            Ok((addr, total)) => {
                // SAFETY: probe read the first and last word of this range.
                let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, total) };
                match dt::parse(bytes) {
                    Ok(i) => {
                        dt.blob = Some((addr, total));
                        dt.info = Some(i);
                    }
                    Err(e) => dt.error = Some(format!("{e}")),
                }
            }
            Err(e) => dt.error = Some(e),
        }
        dt
    }

    pub const fn info(&self) -> Option<&DtInfo> {
        self.info.as_ref()
    }

    /// `(address, totalsize)` of the DT the loader was given.
    pub const fn blob(&self) -> Option<(u64, usize)> {
        self.blob
    }

    pub fn blob_addr(&self) -> Option<u64> {
        self.blob.map(|b| b.0)
    }

    /// Why the loader has no DT.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The root `compatible` list (empty without a DT).
    pub fn compatible(&self) -> Vec<&str> {
        self.info
            .iter()
            .flat_map(|i| i.compatible.iter().map(String::as_str))
            .collect()
    }

    /// The `fdt` command's working tree: the one `fdt addr` chose, else the loader's.
    pub fn working(&self) -> Option<u64> {
        self.work.or(self.blob_addr())
    }

    pub fn set_working(&mut self, addr: u64) {
        self.work = Some(addr);
    }

    /// `kaslrseed` wrote /chosen/kaslr-seed into the blob at `addr`.
    pub fn set_seeded(&mut self, addr: u64) {
        self.seeded = Some(addr);
    }

    /// Did `kaslrseed` seed the blob at `addr`?
    pub fn seeded(&self, addr: u64) -> bool {
        self.seeded == Some(addr)
    }

    /// The properties of `/config/environment` (U-Boot's ENV_IMPORT_FDT).
    pub fn config_env(&self) -> &[(String, String)] {
        self.info.as_ref().map_or(&[], |i| i.config_env.as_slice())
    }

    /// Whether the DT says secondaries wait on a spin-table (a predecessor's pen after a
    /// kexec, or foreign spin-table firmware): they are spinning now.
    pub fn cpus_spinning(&self) -> bool {
        self.info.as_ref().is_some_and(|d| {
            d.cpus.iter().any(|c| {
                c.enable_method == Some(EnableMethod::SpinTable)
                    && matches!(c.release_addr, Prop64::Value(_))
            })
        })
    }
}

/// Looks at x0: returns the DTB's (address, totalsize) if a plausible header
/// is there, or a one-line reason.
fn probe(dtb: u64) -> Result<(u64, usize), String> {
    if dtb == 0 {
        return Err("x0 is 0".into());
    }
    if !dtb.is_multiple_of(8) {
        return Err(format!("x0 {dtb:#x} is not 8-byte aligned"));
    }
    let read_be = |a: u64| exceptions::probe_read_u32(a as usize).map(u32::from_be);
    let magic = read_be(dtb).ok_or_else(|| format!("nothing readable at x0 {dtb:#x}"))?;
    if magic != 0xd00d_feed {
        return Err(format!("bad magic {magic:#010x} at x0 {dtb:#x}"));
    }
    let total = read_be(dtb + 4).ok_or("header unreadable")? as usize;
    if !(40..=MAX_DTB).contains(&total) {
        return Err(format!("implausible totalsize {total:#x}"));
    }
    // The whole blob must be readable before we hand a slice of it to the parser.
    let last = (dtb + total as u64 - 4) & !3;
    read_be(last).ok_or_else(|| format!("totalsize {total:#x} runs past readable memory"))?;
    Ok((dtb, total))
}
