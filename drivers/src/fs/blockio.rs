//! [`BlockIo`]: the byte-stream adapter between a [`BlockDevice`] and
//! `fatfs`'s `Read`/`Write`/`Seek`, which makes one `fatfs` operation a
//! transaction (see [`BlockIo`]).

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::order::{self, Change, FatArea};
use super::FsError;
use crate::block::{BlockDevice, BlockError};

/// I/O errors of the [`BlockIo`] adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoError {
    /// The block device failed.
    Block(BlockError),
    /// Read past the end of the device.
    UnexpectedEof,
    /// Write past the end of the device.
    WriteZero,
    /// Seek outside the device.
    BadSeek,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::Block(e) => write!(f, "{e}"),
            IoError::UnexpectedEof => write!(f, "unexpected end of device"),
            IoError::WriteZero => write!(f, "write past the end of the device"),
            IoError::BadSeek => write!(f, "seek outside the device"),
        }
    }
}

impl fatfs::IoError for IoError {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        IoError::UnexpectedEof
    }
    fn new_write_zero_error() -> Self {
        IoError::WriteZero
    }
}

impl From<BlockError> for IoError {
    fn from(e: BlockError) -> Self {
        IoError::Block(e)
    }
}

/// One cached block. `orig` is set while the block has changes not yet on
/// the device: the block's content before the first of them.
struct CacheLine {
    data: Vec<u8>,
    orig: Option<Vec<u8>>,
    used: u64,
}

impl CacheLine {
    fn pending(&self) -> bool {
        self.orig.as_ref().is_some_and(|o| *o != self.data)
    }
}

/// Byte-stream adapter from a [`BlockDevice`] to `fatfs`'s `Read`/`Write`/
/// `Seek` that turns one `fatfs` operation into a transaction.
///
/// Partial-block writes — the FAT entries, directory entries, FSInfo and
/// boot-sector flags `fatfs` updates, and the tail of a file's data — stay
/// in a cache of single blocks and reach the device only at
/// [`BlockIo::commit`]; until then a failed operation is undone by
/// [`BlockIo::discard`] (or by dropping the adapter). Block-aligned
/// transfers of whole blocks — file data, zeroed new directory clusters —
/// go straight to the device: they only fill clusters the pending FAT
/// changes allocate. Clean blocks are cached too (at most 16, least recently
/// used evicted); blocks with pending changes are kept until commit.
///
/// Told where the FAT is ([`BlockIo::with_fat`], what the write path does),
/// the commit writes the blocks in an order that a power cut cannot turn
/// into a broken chain (see `order.rs`); otherwise in block order.
pub struct BlockIo<'d, D: BlockDevice + ?Sized> {
    dev: &'d mut D,
    fat: Option<FatArea>,
    bs: usize,
    size: u64,
    pos: u64,
    lines: BTreeMap<u64, CacheLine>,
    tick: u64,
}

/// Clean blocks kept in the cache.
const CACHE_LINES: usize = 16;

impl<'d, D: BlockDevice + ?Sized> BlockIo<'d, D> {
    /// Wrap `dev`; position 0.
    pub fn new(dev: &'d mut D) -> Self {
        let bs = dev.block_size().max(1);
        let size = dev.num_blocks().saturating_mul(bs as u64);
        Self {
            dev,
            fat: None,
            bs,
            size,
            pos: 0,
            lines: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The same adapter, told where the FAT is (for the commit order).
    pub(super) fn with_fat(dev: &'d mut D, fat: FatArea) -> Self {
        let mut io = Self::new(dev);
        io.fat = Some(fat);
        io
    }

    /// Write the pending blocks to the device: with the FAT known, in the
    /// power-cut-safe order of `order.rs` (a FAT block may be written up to
    /// three times), else in block order. If a write fails, the blocks
    /// already written get their old content back: the error is then
    /// [`FsError::Io`] and the device holds what it held before the
    /// transaction; if putting one of them back fails too,
    /// [`FsError::IoPartial`]. (The block whose write failed is rewritten
    /// with its old content as well, in case the device applied part of it,
    /// but a device that reported the write as failed is taken not to have
    /// applied it.)
    pub fn commit(&mut self) -> Result<(), FsError> {
        let writes = self.plan()?;
        let mut written: Vec<u64> = Vec::new();
        for (lba, data) in &writes {
            if let Err(e) = self.dev.write_blocks(*lba, data) {
                let _ = self.restore(*lba);
                // Every block is tried, whatever happened to the others.
                let mut restored = true;
                for &l in written.iter().rev() {
                    restored &= self.restore(l).is_ok();
                }
                return Err(if restored {
                    FsError::Io(e)
                } else {
                    FsError::IoPartial(e)
                });
            }
            if !written.contains(lba) {
                written.push(*lba);
            }
        }
        for l in self.lines.values_mut() {
            l.orig = None;
        }
        Ok(())
    }

    /// The commit's writes, in order.
    fn plan(&mut self) -> Result<Vec<(u64, Vec<u8>)>, FsError> {
        let pending: Vec<u64> = self
            .lines
            .iter()
            .filter(|(_, l)| l.pending())
            .map(|(&lba, _)| lba)
            .collect();
        let mut extra: Vec<(u64, Vec<u8>)> = Vec::new();
        if let Some(a) = &self.fat {
            for lba in order::neighbours(a, self.bs, &pending) {
                let data = match self.lines.get(&lba) {
                    Some(l) => l.data.clone(),
                    None => {
                        let mut d = vec![0; self.bs];
                        self.dev.read_blocks(lba, &mut d)?;
                        d
                    }
                };
                extra.push((lba, data));
            }
        }
        let mut blocks: BTreeMap<u64, Change<'_>> = BTreeMap::new();
        for &lba in &pending {
            let l = &self.lines[&lba];
            let old = l.orig.as_deref().unwrap_or(&l.data);
            blocks.insert(lba, Change { old, new: &l.data });
        }
        for (lba, d) in &extra {
            blocks.insert(*lba, Change { old: d, new: d });
        }
        Ok(order::plan(self.fat.as_ref(), self.bs, &blocks, &pending))
    }

    /// Put the content from before the transaction back into block `lba`.
    fn restore(&mut self, lba: u64) -> Result<(), BlockError> {
        match self.lines.get(&lba).and_then(|l| l.orig.as_ref()) {
            Some(orig) => self.dev.write_blocks(lba, orig),
            None => Ok(()),
        }
    }

    /// Drop the pending changes (the device keeps its old metadata).
    pub fn discard(&mut self) {
        self.lines.clear();
    }

    /// The cached copy of block `lba`, read from the device on a miss (after
    /// evicting the least recently used clean block if the cache is full).
    fn line(&mut self, lba: u64) -> Result<&mut CacheLine, BlockError> {
        self.tick += 1;
        let loaded = if self.lines.contains_key(&lba) {
            None
        } else {
            self.evict_clean();
            let mut data = vec![0; self.bs];
            self.dev.read_blocks(lba, &mut data)?;
            Some(data)
        };
        let l = self.lines.entry(lba).or_insert_with(|| CacheLine {
            data: loaded.unwrap_or_default(),
            orig: None,
            used: 0,
        });
        l.used = self.tick;
        Ok(l)
    }

    fn evict_clean(&mut self) {
        let clean = self.lines.values().filter(|l| l.orig.is_none());
        if clean.count() < CACHE_LINES {
            return;
        }
        let oldest = self
            .lines
            .iter()
            .filter(|(_, l)| l.orig.is_none())
            .min_by_key(|(_, l)| l.used)
            .map(|(&lba, _)| lba);
        if let Some(lba) = oldest {
            self.lines.remove(&lba);
        }
    }
}

impl<D: BlockDevice + ?Sized> fatfs::IoBase for BlockIo<'_, D> {
    type Error = IoError;
}

impl<D: BlockDevice + ?Sized> fatfs::Read for BlockIo<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        let bs = self.bs;
        let lba = self.pos / bs as u64;
        let in_block = (self.pos % bs as u64) as usize;
        let done = if in_block == 0 && n >= bs {
            let m = n - n % bs;
            self.dev.read_blocks(lba, &mut buf[..m])?;
            // Blocks with pending changes are newer than the device.
            let end = lba + (m / bs) as u64;
            for (&l, line) in self.lines.range(lba..end) {
                if line.orig.is_some() {
                    let o = (l - lba) as usize * bs;
                    buf[o..o + bs].copy_from_slice(&line.data);
                }
            }
            m
        } else {
            let m = (bs - in_block).min(n);
            let l = self.line(lba)?;
            buf[..m].copy_from_slice(&l.data[in_block..in_block + m]);
            m
        };
        self.pos += done as u64;
        Ok(done)
    }
}

impl<D: BlockDevice + ?Sized> fatfs::Write for BlockIo<'_, D> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        let bs = self.bs;
        let lba = self.pos / bs as u64;
        let in_block = (self.pos % bs as u64) as usize;
        let done = if in_block == 0 && n >= bs {
            let m = n - n % bs;
            self.dev.write_blocks(lba, &buf[..m])?;
            // Keep cached copies equal to what the device (or, for blocks
            // with pending changes, the commit) will hold.
            let end = lba + (m / bs) as u64;
            for (&l, line) in self.lines.range_mut(lba..end) {
                let o = (l - lba) as usize * bs;
                line.data.copy_from_slice(&buf[o..o + bs]);
            }
            m
        } else {
            let m = (bs - in_block).min(n);
            let l = self.line(lba)?;
            if l.orig.is_none() {
                l.orig = Some(l.data.clone());
            }
            l.data[in_block..in_block + m].copy_from_slice(&buf[..m]);
            m
        };
        self.pos += done as u64;
        Ok(done)
    }

    /// Nothing to do: pending blocks wait for [`BlockIo::commit`].
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

impl<D: BlockDevice + ?Sized> fatfs::Seek for BlockIo<'_, D> {
    fn seek(&mut self, pos: fatfs::SeekFrom) -> Result<u64, IoError> {
        let new = match pos {
            fatfs::SeekFrom::Start(x) => Some(x),
            fatfs::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            fatfs::SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.size => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(IoError::BadSeek),
        }
    }
}

/// `fatfs` storage borrowing a [`BlockIo`], so the transaction can be
/// committed or discarded after `fatfs` has unmounted.
pub(super) struct IoRef<'a, 'd, D: BlockDevice + ?Sized>(pub(super) &'a mut BlockIo<'d, D>);

impl<D: BlockDevice + ?Sized> fatfs::IoBase for IoRef<'_, '_, D> {
    type Error = IoError;
}
impl<D: BlockDevice + ?Sized> fatfs::Read for IoRef<'_, '_, D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        fatfs::Read::read(self.0, buf)
    }
}
impl<D: BlockDevice + ?Sized> fatfs::Write for IoRef<'_, '_, D> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        fatfs::Write::write(self.0, buf)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        fatfs::Write::flush(self.0)
    }
}
impl<D: BlockDevice + ?Sized> fatfs::Seek for IoRef<'_, '_, D> {
    fn seek(&mut self, pos: fatfs::SeekFrom) -> Result<u64, IoError> {
        fatfs::Seek::seek(self.0, pos)
    }
}
