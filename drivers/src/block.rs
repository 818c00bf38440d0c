//! Block devices: the [`BlockDevice`] trait, a RAM-backed [`MemDisk`] and a
//! bounds-checked [`PartitionDevice`] view.
//!
//! Requests are multi-block: `buf.len()` must be a non-zero multiple of
//! [`BlockDevice::block_size`]. A driver receives large runs in one call and can
//! transfer them straight into the caller's buffer (the FAT fast path relies on
//! this); a driver with a per-request limit splits internally.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// Errors from a block device. `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockError {
    /// The request touches blocks at or beyond `limit` (the device or partition size).
    OutOfRange {
        /// First block of the request.
        lba: u64,
        /// Number of blocks requested.
        count: u64,
        /// Number of blocks on the device / in the partition.
        limit: u64,
    },
    /// The buffer length is zero or not a multiple of the block size.
    BadLength {
        /// Buffer length in bytes.
        len: usize,
        /// Device block size in bytes.
        block_size: usize,
    },
    /// The device refuses writes.
    ReadOnly,
    /// The device reported an error (driver-specific text).
    Device(&'static str),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::OutOfRange { lba, count, limit } => write!(
                f,
                "block I/O out of range: {count} block(s) at LBA {lba}, device has {limit}"
            ),
            BlockError::BadLength { len, block_size } => write!(
                f,
                "block I/O length {len} is not a non-zero multiple of the block size {block_size}"
            ),
            BlockError::ReadOnly => write!(f, "block device is read-only"),
            BlockError::Device(msg) => write!(f, "block device error: {msg}"),
        }
    }
}

/// A random-access block device (virtio-blk, RAM disk, partition view, ...).
pub trait BlockDevice {
    /// Logical block size in bytes (a power of two, normally 512).
    fn block_size(&self) -> usize;
    /// Number of blocks on the device.
    fn num_blocks(&self) -> u64;
    /// Read `buf.len() / block_size()` blocks starting at `lba` into `buf`.
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Write `buf.len() / block_size()` blocks starting at `lba`.
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError>;
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn block_size(&self) -> usize {
        (**self).block_size()
    }
    fn num_blocks(&self) -> u64 {
        (**self).num_blocks()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        (**self).read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        (**self).write_blocks(lba, buf)
    }
}

/// Validate a request against a device of `limit` blocks of `block_size` bytes.
/// Returns the number of blocks the request covers.
pub fn check_request(
    lba: u64,
    len: usize,
    block_size: usize,
    limit: u64,
) -> Result<u64, BlockError> {
    if len == 0 || block_size == 0 || !len.is_multiple_of(block_size) {
        return Err(BlockError::BadLength { len, block_size });
    }
    let count = (len / block_size) as u64;
    match lba.checked_add(count) {
        Some(end) if end <= limit => Ok(count),
        _ => Err(BlockError::OutOfRange { lba, count, limit }),
    }
}

/// A RAM-backed disk for tests and RAM-disk boot. Counts requests.
#[derive(Clone)]
pub struct MemDisk {
    data: Vec<u8>,
    block_size: usize,
    read_only: bool,
    fail_lba: Option<u64>,
    /// Number of `read_blocks` calls served.
    pub read_requests: u64,
    /// Number of blocks read.
    pub blocks_read: u64,
    /// Number of `write_blocks` calls served.
    pub write_requests: u64,
    /// Number of blocks written.
    pub blocks_written: u64,
}

impl MemDisk {
    /// A disk over `data` with 512-byte blocks. A trailing partial block is
    /// not addressable (like a truncated image).
    pub fn new(data: Vec<u8>) -> Self {
        Self::with_block_size(data, 512)
    }

    /// A zero-filled disk of `blocks` 512-byte blocks.
    pub fn zeroed(blocks: usize) -> Self {
        Self::new(vec![0; blocks * 512])
    }

    /// A disk with a custom block size (must be a non-zero power of two).
    pub fn with_block_size(data: Vec<u8>, block_size: usize) -> Self {
        let block_size = if block_size.is_power_of_two() {
            block_size
        } else {
            512
        };
        Self {
            data,
            block_size,
            read_only: false,
            fail_lba: None,
            read_requests: 0,
            blocks_read: 0,
            write_requests: 0,
            blocks_written: 0,
        }
    }

    /// Make writes fail with [`BlockError::ReadOnly`].
    pub fn set_read_only(&mut self, ro: bool) {
        self.read_only = ro;
    }

    /// Make any request touching `lba` fail with a device error (fault injection).
    pub fn set_fail_lba(&mut self, lba: Option<u64>) {
        self.fail_lba = lba;
    }

    /// Reset the request counters.
    pub fn reset_counters(&mut self) {
        self.read_requests = 0;
        self.blocks_read = 0;
        self.write_requests = 0;
        self.blocks_written = 0;
    }

    /// The backing bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Mutable backing bytes (to corrupt images in tests).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Consume the disk, returning the backing bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.data
    }

    fn fails(&self, lba: u64, count: u64) -> bool {
        matches!(self.fail_lba, Some(f) if f >= lba && f - lba < count)
    }
}

impl BlockDevice for MemDisk {
    fn block_size(&self) -> usize {
        self.block_size
    }

    fn num_blocks(&self) -> u64 {
        (self.data.len() / self.block_size) as u64
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let count = check_request(lba, buf.len(), self.block_size, self.num_blocks())?;
        if self.fails(lba, count) {
            return Err(BlockError::Device("injected read failure"));
        }
        // In range by check_request, so these conversions cannot truncate.
        let start = lba as usize * self.block_size;
        buf.copy_from_slice(&self.data[start..start + buf.len()]);
        self.read_requests += 1;
        self.blocks_read += count;
        Ok(())
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let count = check_request(lba, buf.len(), self.block_size, self.num_blocks())?;
        if self.fails(lba, count) {
            return Err(BlockError::Device("injected write failure"));
        }
        let start = lba as usize * self.block_size;
        self.data[start..start + buf.len()].copy_from_slice(buf);
        self.write_requests += 1;
        self.blocks_written += count;
        Ok(())
    }
}

/// A window of `num_blocks` blocks starting at `start_lba` of an underlying
/// device (a partition). LBAs are relative to the window; requests reaching
/// past its end fail with [`BlockError::OutOfRange`].
pub struct PartitionDevice<D: BlockDevice> {
    dev: D,
    start: u64,
    blocks: u64,
}

impl<D: BlockDevice> PartitionDevice<D> {
    /// A view of `blocks` blocks at `start` of `dev`. The window is clipped to
    /// the device so that it can never address blocks the device lacks.
    pub fn new(dev: D, start: u64, blocks: u64) -> Self {
        let total = dev.num_blocks();
        let start_c = start.min(total);
        let blocks = blocks.min(total - start_c);
        Self {
            dev,
            start: start_c,
            blocks,
        }
    }

    /// First block of the window on the underlying device.
    pub fn start_lba(&self) -> u64 {
        self.start
    }

    /// The underlying device.
    pub fn inner(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Consume the view, returning the underlying device.
    pub fn into_inner(self) -> D {
        self.dev
    }
}

impl<D: BlockDevice> BlockDevice for PartitionDevice<D> {
    fn block_size(&self) -> usize {
        self.dev.block_size()
    }

    fn num_blocks(&self) -> u64 {
        self.blocks
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), self.block_size(), self.blocks)?;
        self.dev.read_blocks(self.start + lba, buf)
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        check_request(lba, buf.len(), self.block_size(), self.blocks)?;
        self.dev.write_blocks(self.start + lba, buf)
    }
}

/// Read `dst.len()` bytes at byte offset `offset` of `dev`, whatever the
/// alignment: the block-aligned middle goes straight into `dst` in a single
/// request, unaligned head and tail through a one-block bounce buffer.
pub fn read_bytes<D: BlockDevice + ?Sized>(
    dev: &mut D,
    offset: u64,
    dst: &mut [u8],
) -> Result<(), BlockError> {
    let bs = dev.block_size();
    if bs == 0 {
        return Err(BlockError::BadLength {
            len: dst.len(),
            block_size: bs,
        });
    }
    let bs64 = bs as u64;
    let mut done = 0usize;
    let mut pos = offset;
    let mut bounce: Vec<u8> = Vec::new();
    while done < dst.len() {
        let in_block = (pos % bs64) as usize;
        let remaining = dst.len() - done;
        if in_block == 0 && remaining >= bs {
            let n = remaining - remaining % bs;
            dev.read_blocks(pos / bs64, &mut dst[done..done + n])?;
            done += n;
            pos += n as u64;
        } else {
            if bounce.is_empty() {
                bounce = vec![0; bs];
            }
            dev.read_blocks(pos / bs64, &mut bounce)?;
            let n = (bs - in_block).min(remaining);
            dst[done..done + n].copy_from_slice(&bounce[in_block..in_block + n]);
            done += n;
            pos += n as u64;
        }
    }
    Ok(())
}

/// Write `src` at byte offset `offset` of `dev` (read-modify-write for
/// unaligned head and tail, one request for the aligned middle).
pub fn write_bytes<D: BlockDevice + ?Sized>(
    dev: &mut D,
    offset: u64,
    src: &[u8],
) -> Result<(), BlockError> {
    let bs = dev.block_size();
    if bs == 0 {
        return Err(BlockError::BadLength {
            len: src.len(),
            block_size: bs,
        });
    }
    let bs64 = bs as u64;
    let mut done = 0usize;
    let mut pos = offset;
    let mut bounce: Vec<u8> = Vec::new();
    while done < src.len() {
        let in_block = (pos % bs64) as usize;
        let remaining = src.len() - done;
        if in_block == 0 && remaining >= bs {
            let n = remaining - remaining % bs;
            dev.write_blocks(pos / bs64, &src[done..done + n])?;
            done += n;
            pos += n as u64;
        } else {
            if bounce.is_empty() {
                bounce = vec![0; bs];
            }
            dev.read_blocks(pos / bs64, &mut bounce)?;
            let n = (bs - in_block).min(remaining);
            bounce[in_block..in_block + n].copy_from_slice(&src[done..done + n]);
            dev.write_blocks(pos / bs64, &bounce)?;
            done += n;
            pos += n as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memdisk_roundtrip_and_counters() {
        let mut d = MemDisk::zeroed(8);
        d.write_blocks(2, &[7u8; 1024]).unwrap();
        let mut buf = [0u8; 1536];
        d.read_blocks(1, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 0));
        assert!(buf[512..].iter().all(|&b| b == 7));
        assert_eq!((d.read_requests, d.blocks_read), (1, 3));
        assert_eq!((d.write_requests, d.blocks_written), (1, 2));
    }

    #[test]
    fn memdisk_rejects_bad_requests() {
        let mut d = MemDisk::zeroed(4);
        let mut buf = [0u8; 512];
        assert!(matches!(
            d.read_blocks(4, &mut buf),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            d.read_blocks(u64::MAX, &mut buf),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            d.read_blocks(0, &mut buf[..100]),
            Err(BlockError::BadLength { .. })
        ));
        assert!(matches!(
            d.read_blocks(0, &mut []),
            Err(BlockError::BadLength { .. })
        ));
        d.set_read_only(true);
        assert_eq!(d.write_blocks(0, &buf), Err(BlockError::ReadOnly));
        d.set_fail_lba(Some(2));
        let mut big = [0u8; 2048];
        assert!(matches!(
            d.read_blocks(0, &mut big),
            Err(BlockError::Device(_))
        ));
    }

    #[test]
    fn truncated_memdisk_ignores_partial_block() {
        let d = MemDisk::new(vec![0; 1000]);
        assert_eq!(d.num_blocks(), 1);
    }

    #[test]
    fn partition_view_offsets_and_bounds() {
        let mut data = vec![0u8; 16 * 512];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i / 512) as u8;
        }
        let mut d = MemDisk::new(data);
        let mut p = PartitionDevice::new(&mut d, 4, 8);
        assert_eq!(p.num_blocks(), 8);
        let mut buf = [0u8; 1024];
        p.read_blocks(6, &mut buf).unwrap();
        assert_eq!((buf[0], buf[512]), (10, 11));
        assert!(matches!(
            p.read_blocks(7, &mut buf),
            Err(BlockError::OutOfRange { .. })
        ));
        assert!(matches!(
            p.write_blocks(8, &buf[..512]),
            Err(BlockError::OutOfRange { .. })
        ));
        // A window that claims more than the device has is clipped.
        let p2 = PartitionDevice::new(&mut d, 12, 100);
        assert_eq!(p2.num_blocks(), 4);
        let p3 = PartitionDevice::new(&mut d, 100, 100);
        assert_eq!(p3.num_blocks(), 0);
    }

    #[test]
    fn byte_helpers_handle_alignment() {
        let mut d = MemDisk::zeroed(8);
        let src: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        write_bytes(&mut d, 300, &src).unwrap();
        let mut back = vec![0u8; 1500];
        read_bytes(&mut d, 300, &mut back).unwrap();
        assert_eq!(back, src);
        assert!(d.data()[..300].iter().all(|&b| b == 0));
        assert!(d.data()[1800..].iter().all(|&b| b == 0));
        let mut tail = [0u8; 10];
        assert!(read_bytes(&mut d, 8 * 512 - 5, &mut tail).is_err());
    }
}
