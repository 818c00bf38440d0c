//! Performs accepted plans (`loader::plan`) on the machine: booti's claims,
//! the CPUs' hand-back, its writes in order and the one handoff; the
//! write-back of an `fdt` edit. Nothing here decides a placement.

use crate::arch::{handoff, heap, timer};
use crate::machine::Machine;
use crate::memory;
use crate::platform::Sh;
use crate::stages;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use loader::gzip;
use loader::memmap::{ClaimId, MemMap};
use loader::plan::booti::{BootPlan, CpuHandoff, PlannedClaim, Refusal, Write};
use shell::{CmdError, CmdResult};

/// The claims of one plan; released unless committed.
struct Claims<'a> {
    map: &'a mut MemMap,
    /// Each claim, and whether it stays once the writes are done.
    ids: Vec<(ClaimId, bool)>,
}

impl<'a> Claims<'a> {
    /// Makes every planned claim, in order, or none.
    fn make(map: &'a mut MemMap, planned: &[PlannedClaim]) -> Result<Self, String> {
        let mut c = Self {
            map,
            ids: Vec::new(),
        };
        for p in planned {
            let id = c
                .map
                .claim(p.start, p.size, p.owner.clone())
                .map_err(|e| format!("booti: {e}"))?;
            c.ids.push((id, p.keep));
        }
        Ok(c)
    }

    /// The writes are done: the claims on sources are released, the rest now describe what
    /// the kernel owns.
    fn commit(mut self) {
        for (id, keep) in core::mem::take(&mut self.ids) {
            if !keep {
                let _ = self.map.release(id);
            }
        }
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        for (id, _) in self.ids.drain(..) {
            let _ = self.map.release(id);
        }
    }
}

/// Performs one write of a boot plan.
fn perform(w: &Write, dt: &[u8]) -> Result<(), String> {
    let t0 = timer::ticks();
    match *w {
        Write::Inflate {
            src,
            src_len,
            dst,
            info,
        } => {
            // SAFETY: the source is claimed for the inflate and was read through a checked
            // view when the plan was made; nothing writes it meanwhile.
            let data = unsafe { memory::ram(src, src_len) };
            // SAFETY: [dst, dst + isize) lies inside the kernel claim (image_size >= isize),
            // which does not overlap the source claim.
            let out = unsafe { memory::ram_mut(dst, u64::from(info.isize)) };
            gzip::inflate_into(data, &info, out).map_err(|e| format!("booti: Image.gz: {e}"))?;
            stages::mark_span("inflate", t0, timer::ticks(), u64::from(info.isize));
        }
        Write::Move { src, dst, len } => {
            // SAFETY: both ranges are claimed (so inside RAM banks, which the MMU maps): the
            // source for the move, the destination for the kernel; `copy` allows overlap.
            unsafe {
                core::ptr::copy(
                    src as usize as *const u8,
                    dst as usize as *mut u8,
                    len as usize,
                )
            };
            stages::mark_span("kernel move", t0, timer::ticks(), len);
        }
        Write::Dt { dst, len } => {
            if len != dt.len() as u64 {
                return Err(format!(
                    "booti: the DT is {} bytes, its claim {len}",
                    dt.len()
                ));
            }
            // SAFETY: [dst, dst + len) is claimed for the DT.
            unsafe { memory::ram_mut(dst, len) }.copy_from_slice(dt);
        }
    }
    Ok(())
}

/// Claims, writes, hands the CPUs back to firmware (cpu_method=psci) and commits; on any
/// error the claims are released and nothing was written outside ranges that were free.
/// The hand-back comes after the last write because a write can still fail (an Image.gz's
/// CRC is known only once it is inflated): a boot that fails leaves the CPUs in the pen
/// (#17 item 3). A CPU that does not turn off fails the boot too; every CPU's state then
/// says where it is, so a retry hands back or recalls exactly the right ones.
fn place(m: &mut Machine, plan: &BootPlan) -> Result<(), String> {
    let Machine { mem, cpus, fw, .. } = m;
    let conduit = match plan.cpus {
        CpuHandoff::Psci => Some(
            fw.usable_psci()
                .ok_or_else(|| Refusal::PsciUnreachable.to_string())?,
        ),
        _ => None,
    };
    let claims = Claims::make(mem.map_mut(), &plan.claims)?;
    for w in &plan.writes {
        perform(w, &plan.dt)?;
    }
    if let Some(conduit) = conduit {
        cpus.hand_back_to_firmware(conduit)
            .map_err(|e| format!("booti: {e}"))?;
    }
    claims.commit();
    Ok(())
}

/// Performs a boot plan and leaves through the one handoff; returns only if it fails.
pub fn boot(sh: &mut Sh, plan: BootPlan) -> CmdResult {
    place(&mut sh.platform, &plan).map_err(CmdError::Msg)?;
    sh.print(&plan.banner());
    stages::mark("handoff");
    let now = timer::ticks();
    let since = sh.platform.timing.us_since_entry(now);
    sh.print(&format!(
        "## loader entry -> handoff: {since} us (counter {:#x} -> {now:#x} at {} Hz); heap high water {} bytes\n",
        sh.platform.timing.entry_ticks(),
        timer::freq(),
        heap::stats().high_water
    ));
    // CPUs sleeping in the pen wake on timer interrupts through the distributor, and from
    // now on every wake period (an OS releases without a kick).
    let keep_distributor = matches!(plan.cpus, CpuHandoff::SpinTable { .. });
    if keep_distributor {
        sh.platform.cpus.end_hold();
    }
    // SAFETY: the kernel, DT and initrd are in place and claimed; nothing
    // writes to them after this point.
    unsafe { handoff::handoff(plan.entry, plan.fdt, &plan.clean_ranges(), keep_distributor) }
}

/// Writes an edited DT back at `addr`, where `plan::fdt::place_edit` accepted it: inside the
/// DT's own claim, or a range the memory check let a command write.
pub fn write_dt(addr: u64, blob: &[u8]) {
    // SAFETY: accepted as above: the loader's own DT or free, mapped memory.
    unsafe { memory::ram_mut(addr, blob.len() as u64) }.copy_from_slice(blob);
}
