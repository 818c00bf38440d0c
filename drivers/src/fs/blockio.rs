//! [`BlockIo`]: the byte-stream adapter between a [`BlockDevice`] and
//! `fatfs`'s `Read`/`Write`/`Seek`.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

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

struct CacheLine {
    lba: u64,
    data: Vec<u8>,
    dirty: bool,
    used: u64,
}

/// Byte-stream adapter from a [`BlockDevice`] to `fatfs`'s `Read`/`Write`/
/// `Seek`, with a small write-back cache of single blocks for the many small
/// FAT and directory accesses `fatfs` makes. Block-aligned transfers of whole
/// blocks bypass the cache. Call [`BlockIo::flush_cache`] when done (`fatfs`'s
/// `flush` also writes the cache back).
pub struct BlockIo<'d, D: BlockDevice + ?Sized> {
    dev: &'d mut D,
    bs: usize,
    size: u64,
    pos: u64,
    lines: Vec<CacheLine>,
    tick: u64,
}

const CACHE_LINES: usize = 16;

impl<'d, D: BlockDevice + ?Sized> BlockIo<'d, D> {
    /// Wrap `dev`; position 0.
    pub fn new(dev: &'d mut D) -> Self {
        let bs = dev.block_size().max(1);
        let size = dev.num_blocks().saturating_mul(bs as u64);
        Self {
            dev,
            bs,
            size,
            pos: 0,
            lines: Vec::new(),
            tick: 0,
        }
    }

    /// Write all dirty cache lines back to the device.
    pub fn flush_cache(&mut self) -> Result<(), BlockError> {
        for l in self.lines.iter_mut() {
            if l.dirty {
                self.dev.write_blocks(l.lba, &l.data)?;
                l.dirty = false;
            }
        }
        Ok(())
    }

    fn line(&mut self, lba: u64, load: bool) -> Result<usize, BlockError> {
        self.tick += 1;
        if let Some(i) = self.lines.iter().position(|l| l.lba == lba) {
            self.lines[i].used = self.tick;
            return Ok(i);
        }
        let i = if self.lines.len() < CACHE_LINES {
            self.lines.push(CacheLine {
                lba: u64::MAX,
                data: vec![0; self.bs],
                dirty: false,
                used: 0,
            });
            self.lines.len() - 1
        } else {
            let i = self
                .lines
                .iter()
                .enumerate()
                .min_by_key(|(_, l)| l.used)
                .map_or(0, |(i, _)| i);
            let l = &mut self.lines[i];
            if l.dirty {
                self.dev.write_blocks(l.lba, &l.data)?;
                l.dirty = false;
            }
            i
        };
        let l = &mut self.lines[i];
        l.lba = u64::MAX;
        if load {
            self.dev.read_blocks(lba, &mut l.data)?;
        }
        l.lba = lba;
        l.used = self.tick;
        Ok(i)
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
            // Cached copies may be newer than the device.
            let end = lba + (m / bs) as u64;
            for l in self
                .lines
                .iter()
                .filter(|l| l.lba >= lba && l.lba < end && l.dirty)
            {
                let o = (l.lba - lba) as usize * bs;
                buf[o..o + bs].copy_from_slice(&l.data);
            }
            m
        } else {
            let i = self.line(lba, true)?;
            let m = (bs - in_block).min(n);
            buf[..m].copy_from_slice(&self.lines[i].data[in_block..in_block + m]);
            m
        };
        self.pos += done as u64;
        Ok(done)
    }
}

impl<D: BlockDevice + ?Sized> fatfs::Write for BlockIo<'_, D> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.size {
            return Ok(0);
        }
        let n = (self.size - self.pos).min(buf.len() as u64) as usize;
        let bs = self.bs;
        let lba = self.pos / bs as u64;
        let in_block = (self.pos % bs as u64) as usize;
        let done = if in_block == 0 && n >= bs {
            let m = n - n % bs;
            self.dev.write_blocks(lba, &buf[..m])?;
            let end = lba + (m / bs) as u64;
            for l in self
                .lines
                .iter_mut()
                .filter(|l| l.lba >= lba && l.lba < end)
            {
                let o = (l.lba - lba) as usize * bs;
                l.data.copy_from_slice(&buf[o..o + bs]);
                l.dirty = false;
            }
            m
        } else {
            let i = self.line(lba, true)?;
            let m = (bs - in_block).min(n);
            let l = &mut self.lines[i];
            l.data[in_block..in_block + m].copy_from_slice(&buf[..m]);
            l.dirty = true;
            m
        };
        self.pos += done as u64;
        Ok(done)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        Ok(self.flush_cache()?)
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

/// `fatfs` storage borrowing a [`BlockIo`], so the cache can be flushed after
/// `fatfs` has unmounted.
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
