//! virtio-blk disks through virtio-drivers, over both transports QEMU users
//! meet: virtio-mmio slots and virtio-pci functions behind an ECAM host
//! bridge, both found in the DT. Disks are numbered in a stable order: mmio
//! slots in DT order (QEMU fills the last slot first, so the first
//! `-device virtio-blk-device` is the highest slot), then PCI functions by
//! bus/device/function.
//!
//! Reads go straight into the caller's buffer (identity-mapped, so the
//! buffer's address is its DMA address): no bounce copy. Requests are split
//! at `MAX_REQUEST` bytes.

use crate::arch::timer;
use crate::stages;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use drivers::block::{BlockDevice, BlockError};
use loader::dt::DtInfo;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

const MAX_REQUEST: usize = 4 << 20;

pub struct LoaderHal;

// SAFETY: identity mapping: physical == virtual; DMA memory comes from the
// heap, is page aligned and zeroed; virtio devices here are cache-coherent
// (virtual machines), so share/unshare need no cache maintenance.
unsafe impl Hal for LoaderHal {
    fn dma_alloc(pages: usize, _dir: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout =
            Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap_or(Layout::new::<u8>());
        // SAFETY: non-zero size layout.
        let p = unsafe { alloc_zeroed(layout) };
        match NonNull::new(p) {
            Some(nn) => (p as usize as PhysAddr, nn),
            None => crate::arch::exceptions::halt("out of heap for virtio DMA"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        if let Ok(layout) = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE) {
            // SAFETY: allocated by dma_alloc with this layout.
            unsafe { dealloc(vaddr.as_ptr(), layout) };
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _dir: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _dir: BufferDirection) {}
}

enum Blk {
    Mmio(VirtIOBlk<LoaderHal, MmioTransport<'static>>),
    Pci(VirtIOBlk<LoaderHal, PciTransport>),
    /// Given up: a request went unanswered, so the device was reset (dropped).
    Lost,
}

/// How long one request of `len` bytes may take before the device is taken to be gone: 10 s,
/// plus 1 s per 256 KiB (a slow or throttled disk at 256 KiB/s still gets through). QEMU
/// answers a 4 MiB request in milliseconds; this only turns a device that never answers
/// (reset under the driver, wedged) into an error instead of a wait without end.
fn request_timeout_us(len: usize) -> u64 {
    10_000_000 + (len as u64 >> 18) * 1_000_000
}

const LOST: BlockError = BlockError::Device(
    "virtio-blk: the device did not answer in time and was reset (`virtio scan` finds it again)",
);

/// One read or write through virtio-drivers' non-blocking calls, waited for with a deadline.
/// `Err(None)`: the deadline passed and the request is still the device's.
fn request<T: Transport>(
    b: &mut VirtIOBlk<LoaderHal, T>,
    lba: u64,
    mut buf: Buf<'_>,
) -> Result<(), Option<BlockError>> {
    let mut req = BlkReq::default();
    let mut resp = BlkResp::default();
    let reading = matches!(buf, Buf::Read(_));
    let timeout = request_timeout_us(match &buf {
        Buf::Read(d) => d.len(),
        Buf::Write(d) => d.len(),
    });
    let failed = || {
        Some(BlockError::Device(if reading {
            "virtio-blk read failed"
        } else {
            "virtio-blk write failed"
        }))
    };
    // SAFETY: `req`, the buffer and `resp` stay borrowed by this function until the device
    // has answered (then `complete_*` takes them back) or, on a timeout, until the caller
    // has reset the device (it drops the driver before `request`'s frame is reused: see
    // `Disk::io`).
    let token = match &mut buf {
        Buf::Read(d) => unsafe { b.read_blocks_nb(lba as usize, &mut req, d, &mut resp) },
        Buf::Write(d) => unsafe { b.write_blocks_nb(lba as usize, &mut req, d, &mut resp) },
    }
    .map_err(|_| failed())?;
    let start = timer::now_us();
    while b.peek_used() != Some(token) {
        if timer::now_us().wrapping_sub(start) > timeout {
            return Err(None);
        }
        core::hint::spin_loop();
    }
    // SAFETY: the same buffers as the `_nb` call above, and the device is done with them.
    let done = match &mut buf {
        Buf::Read(d) => unsafe { b.complete_read_blocks(token, &req, d, &mut resp) },
        Buf::Write(d) => unsafe { b.complete_write_blocks(token, &req, d, &mut resp) },
    };
    done.map_err(|_| failed())
}

enum Buf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

pub struct Disk {
    /// Where it was found, e.g. "virtio-mmio@0xa003e00" or "pci 00:02.0".
    pub location: String,
    blk: Blk,
    blocks: u64,
    pub readonly: bool,
    /// Bytes read since discovery (statistics for `virtio info`).
    pub bytes_read: u64,
}

impl Disk {
    pub fn capacity_bytes(&self) -> u64 {
        self.blocks * 512
    }

    /// One request; a device that does not answer in time is reset (its driver dropped, which
    /// stops it from touching the buffers) and the disk is given up.
    fn io(&mut self, lba: u64, buf: Buf<'_>) -> Result<(), BlockError> {
        let r = match &mut self.blk {
            Blk::Mmio(b) => request(b, lba, buf),
            Blk::Pci(b) => request(b, lba, buf),
            Blk::Lost => return Err(LOST),
        };
        match r {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(e),
            Err(None) => {
                // Dropping the driver resets the device (status 0): it stops using the
                // request, buffer and response before they go out of scope.
                self.blk = Blk::Lost;
                Err(LOST)
            }
        }
    }
}

impl BlockDevice for Disk {
    fn block_size(&self) -> usize {
        512
    }

    fn num_blocks(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check(lba, buf.len(), self.blocks)?;
        let mut done = 0usize;
        while done < buf.len() {
            let n = (buf.len() - done).min(MAX_REQUEST);
            let at = lba + (done / 512) as u64;
            let part = &mut buf[done..done + n];
            self.io(at, Buf::Read(part))?;
            done += n;
        }
        self.bytes_read += buf.len() as u64;
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.readonly {
            return Err(BlockError::ReadOnly);
        }
        check(lba, buf.len(), self.blocks)?;
        let mut done = 0usize;
        while done < buf.len() {
            let n = (buf.len() - done).min(MAX_REQUEST);
            let at = lba + (done / 512) as u64;
            self.io(at, Buf::Write(&buf[done..done + n]))?;
            done += n;
        }
        Ok(())
    }
}

/// The request must be whole, non-empty blocks inside the device (the
/// driver asserts on these; we refuse them first).
fn check(lba: u64, len: usize, limit: u64) -> Result<(), BlockError> {
    if len == 0 || !len.is_multiple_of(512) {
        return Err(BlockError::BadLength {
            len,
            block_size: 512,
        });
    }
    let count = (len / 512) as u64;
    if lba.checked_add(count).is_none_or(|end| end > limit) {
        return Err(BlockError::OutOfRange { lba, count, limit });
    }
    Ok(())
}

/// The disks part: the virtio-blk disks found, scanned once at start (the saved env lives on
/// disk 0) and again on `virtio scan`.
pub struct Disks {
    list: Vec<Disk>,
    scanned: bool,
}

impl Disks {
    pub const fn new() -> Self {
        Self {
            list: Vec::new(),
            scanned: false,
        }
    }

    pub const fn scanned(&self) -> bool {
        self.scanned
    }

    /// Drops the disks found so far and scans the DT's virtio devices; returns the problems
    /// met (one line each).
    pub fn rescan(&mut self, dt: Option<&DtInfo>) -> Vec<String> {
        self.list.clear();
        let t0 = timer::ticks();
        let mut notes = Vec::new();
        if let Some(dt) = dt {
            self.list = scan(dt, &mut notes);
        }
        self.scanned = true;
        stages::mark_span("virtio scan", t0, timer::ticks(), 0);
        notes
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Disk> {
        self.list.iter()
    }

    pub fn get_mut(&mut self, n: usize) -> Option<&mut Disk> {
        self.list.get_mut(n)
    }
}

/// Finds every virtio-blk device the DT describes. Problems with one device
/// are reported in `notes` and do not stop the scan.
fn scan(dt: &DtInfo, notes: &mut Vec<String>) -> Vec<Disk> {
    let mut disks = Vec::new();
    for (r, t) in crate::virtio::mmio_of_kind(dt, DeviceType::Block) {
        let base = r.base;
        match VirtIOBlk::<LoaderHal, _>::new(t) {
            Ok(b) => {
                let blocks = b.capacity();
                let readonly = b.readonly();
                disks.push(Disk {
                    location: format!("virtio-mmio@{base:#x}"),
                    blk: Blk::Mmio(b),
                    blocks,
                    readonly,
                    bytes_read: 0,
                });
            }
            Err(e) => notes.push(format!("virtio-mmio@{base:#x}: {e:?}")),
        }
    }
    for host in &dt.pci_hosts {
        scan_pci(host, &mut disks, notes);
    }
    disks
}

fn scan_pci(host: &loader::dt::PciHost, disks: &mut Vec<Disk>, notes: &mut Vec<String>) {
    let Some((mut root, functions)) = crate::virtio::find(host, DeviceType::Block, notes) else {
        return;
    };
    for df in functions {
        let loc = crate::virtio::location(df);
        let t = match PciTransport::new::<LoaderHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                notes.push(format!("{loc}: {e:?}"));
                continue;
            }
        };
        match VirtIOBlk::<LoaderHal, _>::new(t) {
            Ok(b) => {
                let blocks = b.capacity();
                let readonly = b.readonly();
                disks.push(Disk {
                    location: loc,
                    blk: Blk::Pci(b),
                    blocks,
                    readonly,
                    bytes_read: 0,
                });
            }
            Err(e) => notes.push(format!("{loc}: {e:?}")),
        }
    }
}
