//! The entropy part: hardware random numbers for `kaslrseed` and booti's
//! /chosen/rng-seed — the CPU's RNDR (FEAT_RNG) first, else a virtio-rng
//! device (virtio-mmio, found in the DT on first use). Never made up: with
//! neither, the answer is an error that says so.

use crate::arch::cpu;
use crate::storage::LoaderHal;
use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;
use loader::dt::DtInfo;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

/// Most requests to a virtio-rng device for one fill (it may answer short).
const MAX_REQUESTS: usize = 64;

pub struct Rng {
    virtio: Option<VirtIORng<LoaderHal, MmioTransport<'static>>>,
    probed: bool,
}

impl Rng {
    pub const fn new() -> Self {
        Self {
            virtio: None,
            probed: false,
        }
    }

    /// Fills `buf`; the source's name, or why there is no entropy.
    pub fn fill(&mut self, dt: Option<&DtInfo>, buf: &mut [u8]) -> Result<&'static str, String> {
        if fill_rndr(buf) {
            return Ok("RNDR");
        }
        if !self.probed {
            self.probed = true;
            self.virtio = dt.and_then(find_virtio_rng);
        }
        let Some(dev) = self.virtio.as_mut() else {
            return Err(
                "no entropy source: the CPU has no RNDR (FEAT_RNG) and there is no virtio-rng device"
                    .into(),
            );
        };
        let mut done = 0;
        for _ in 0..MAX_REQUESTS {
            if done == buf.len() {
                return Ok("virtio-rng");
            }
            let n = dev
                .request_entropy(&mut buf[done..])
                .map_err(|e| format!("virtio-rng: {e:?}"))?;
            done += n;
        }
        if done == buf.len() {
            Ok("virtio-rng")
        } else {
            Err(format!("virtio-rng gave {done} of {} bytes", buf.len()))
        }
    }
}

/// `buf` from RNDR, or false (no RNDR, or it failed) with `buf` unspecified.
fn fill_rndr(buf: &mut [u8]) -> bool {
    for chunk in buf.chunks_mut(8) {
        // RNDR may fail transiently: a few tries, as Linux does.
        let Some(v) = (0..10).find_map(|_| cpu::rndr()) else {
            return false;
        };
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    true
}

fn find_virtio_rng(dt: &DtInfo) -> Option<VirtIORng<LoaderHal, MmioTransport<'static>>> {
    for slot in &dt.virtio_mmio {
        let hdr = NonNull::new(slot.region.base as usize as *mut VirtIOHeader)?;
        // SAFETY: the slot's region is mapped as device memory from the DT; a slot that holds
        // a block device is skipped before any driver touches it.
        let Ok(t) = (unsafe { MmioTransport::new(hdr, slot.region.size as usize) }) else {
            continue;
        };
        if t.device_type() != DeviceType::EntropySource {
            continue;
        }
        if let Ok(r) = VirtIORng::<LoaderHal, _>::new(t) {
            return Some(r);
        }
    }
    None
}
