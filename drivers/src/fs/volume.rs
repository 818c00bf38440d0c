//! Mounting a volume and walking its FAT: the FAT window cache, entry
//! decoding and the bounded, cycle-checked cluster-run walker.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::dir::Entry;
use super::geometry::Geometry;
use super::{le16, le32, FatType, FsError, FAT_WINDOW};
use crate::block::{read_bytes, BlockDevice};

/// Result of a chain walk step.
pub(super) enum Link {
    Next(u32),
    End,
}

/// Walks a cluster chain and yields runs of physically contiguous clusters.
/// Bounded by `limit` clusters, with Brent's cycle detection so that loops in
/// the FAT are reported early.
pub(super) struct RunWalker {
    /// Next run starts at this cluster.
    at: Option<u32>,
    /// Next run starts at FAT[after] (not read yet).
    after: Option<u32>,
    visited: u64,
    limit: u64,
    saved: u32,
    power: u64,
    lam: u64,
}

impl RunWalker {
    pub(super) fn new(first: u32, limit: u64) -> Self {
        Self {
            at: Some(first),
            after: None,
            visited: 0,
            limit,
            saved: 0,
            power: 1,
            lam: 0,
        }
    }

    /// Next run of at most `max` clusters: `(first_cluster, count)`.
    pub(super) fn next_run<D: BlockDevice + ?Sized>(
        &mut self,
        vol: &mut FatVolume<'_, D>,
        max: u64,
    ) -> Result<Option<(u32, u32)>, FsError> {
        if let Some(prev) = self.after.take() {
            self.at = match vol.next_cluster(prev)? {
                Link::Next(n) => Some(n),
                Link::End => None,
            };
        }
        let Some(start) = self.at.take() else {
            return Ok(None);
        };
        if !vol.g.valid_cluster(start) {
            return Err(FsError::Corrupt("cluster number out of range"));
        }
        let mut len: u32 = 1;
        self.tick(start)?;
        let mut cur = start;
        loop {
            if u64::from(len) >= max {
                self.after = Some(cur);
                break;
            }
            // Fast scan of consecutive links inside the FAT window.
            let k = vol.contiguous_links(cur, max - u64::from(len))?;
            if k > 0 {
                self.count(u64::from(k))?;
                cur += k;
                len += k;
                continue;
            }
            match vol.next_cluster(cur)? {
                Link::Next(n) if n == cur.wrapping_add(1) => {
                    self.count(1)?;
                    cur = n;
                    len += 1;
                }
                Link::Next(n) => {
                    self.at = Some(n);
                    break;
                }
                Link::End => break,
            }
        }
        Ok(Some((start, len)))
    }

    /// Count clusters inside a run (strictly increasing: cannot close a loop).
    fn count(&mut self, n: u64) -> Result<(), FsError> {
        self.visited += n;
        if self.visited > self.limit {
            return Err(FsError::Corrupt("cluster chain too long"));
        }
        Ok(())
    }

    /// Count the first cluster of a run and run Brent's cycle detection on
    /// the sequence of run starts (a loop in the chain makes it periodic).
    fn tick(&mut self, cluster: u32) -> Result<(), FsError> {
        self.count(1)?;
        if self.visited > 1 && cluster == self.saved {
            return Err(FsError::Corrupt("loop in a cluster chain"));
        }
        self.lam += 1;
        if self.lam == self.power {
            self.saved = cluster;
            self.power *= 2;
            self.lam = 0;
        }
        Ok(())
    }
}

/// A mounted (read-side) FAT volume on a block device or partition view.
pub struct FatVolume<'d, D: BlockDevice + ?Sized> {
    pub(super) dev: &'d mut D,
    pub(super) g: Geometry,
    fat_win: Vec<u8>,
    fat_win_off: u64,
    fat_win_len: usize,
}

impl<'d, D: BlockDevice + ?Sized> FatVolume<'d, D> {
    /// Read and validate the boot sector.
    pub fn mount(dev: &'d mut D) -> Result<Self, FsError> {
        let bs = dev.block_size();
        if bs == 0 || !bs.is_power_of_two() || bs > 4096 {
            return Err(FsError::Unsupported("device block size"));
        }
        if dev.num_blocks() == 0 {
            return Err(FsError::NotFat("empty device"));
        }
        let mut sector = vec![0u8; 512.max(bs)];
        read_bytes(dev, 0, &mut sector)?;
        let g = Geometry::parse(&sector)?;
        Ok(Self {
            dev,
            g,
            fat_win: Vec::new(),
            fat_win_off: u64::MAX,
            fat_win_len: 0,
        })
    }

    /// FAT variant of this volume.
    pub fn fat_type(&self) -> FatType {
        self.g.fat_type
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u32 {
        self.g.cluster_size
    }

    /// Number of data clusters.
    pub fn cluster_count(&self) -> u32 {
        self.g.cluster_count
    }

    /// Volume label from the boot sector (trailing spaces removed).
    pub fn label(&self) -> String {
        let len = self
            .g
            .label
            .iter()
            .rposition(|&c| c != b' ')
            .map_or(0, |p| p + 1);
        self.g.label[..len]
            .iter()
            .map(|&c| Entry::decode_oem(c))
            .collect()
    }

    /// Make the FAT window cover byte `off` of the FAT; returns the index of
    /// `off` inside the window.
    pub(super) fn fat_window(&mut self, off: u64) -> Result<usize, FsError> {
        if off >= self.g.fat_bytes {
            return Err(FsError::Corrupt("FAT entry outside the FAT"));
        }
        if off < self.fat_win_off || off - self.fat_win_off >= self.fat_win_len as u64 {
            let win = off - off % FAT_WINDOW as u64;
            let len = (self.g.fat_bytes - win).min(FAT_WINDOW as u64) as usize;
            if self.fat_win.len() < FAT_WINDOW {
                self.fat_win = vec![0; FAT_WINDOW];
            }
            self.fat_win_off = u64::MAX;
            self.fat_win_len = 0;
            read_bytes(self.dev, self.g.fat_start + win, &mut self.fat_win[..len])?;
            self.fat_win_off = win;
            self.fat_win_len = len;
        }
        Ok((off - self.fat_win_off) as usize)
    }

    /// `N` FAT bytes at `off` (little-endian value), across window edges.
    pub(super) fn fat_le<const N: usize>(&mut self, off: u64) -> Result<u32, FsError> {
        let i = self.fat_window(off)?;
        if let Some(b) = self.fat_win[..self.fat_win_len].get(i..i + N) {
            return Ok(b.iter().rev().fold(0u32, |v, &x| (v << 8) | u32::from(x)));
        }
        let mut v = 0u32;
        for k in 0..N as u64 {
            let i = self.fat_window(off + k)?;
            v |= u32::from(self.fat_win[i]) << (8 * k);
        }
        Ok(v)
    }

    pub(super) fn fat_raw(&mut self, cluster: u32) -> Result<u32, FsError> {
        let c = u64::from(cluster);
        Ok(match self.g.fat_type {
            FatType::Fat12 => {
                let v = self.fat_le::<2>(c + c / 2)?;
                if cluster & 1 == 1 {
                    v >> 4
                } else {
                    v & 0xFFF
                }
            }
            FatType::Fat16 => self.fat_le::<2>(c * 2)?,
            FatType::Fat32 => self.fat_le::<4>(c * 4)? & 0x0FFF_FFFF,
        })
    }

    /// Number (at most `max`) of consecutive links `c -> c+1 -> ...` starting
    /// at `cluster` that can be verified inside the current FAT window
    /// (FAT16/32 only; 0 means "use the slow path").
    pub(super) fn contiguous_links(&mut self, cluster: u32, max: u64) -> Result<u32, FsError> {
        let esz: u64 = match self.g.fat_type {
            FatType::Fat12 => return Ok(0),
            FatType::Fat16 => 2,
            FatType::Fat32 => 4,
        };
        let start = self.fat_window(u64::from(cluster) * esz)?;
        let last_valid = u64::from(self.g.cluster_count) + 1;
        let entries = self.fat_win[start..self.fat_win_len].chunks_exact(esz as usize);
        let mut n = 0u32;
        for (c, e) in (u64::from(cluster)..).zip(entries) {
            if u64::from(n) >= max {
                break;
            }
            let v = if esz == 2 {
                u64::from(le16(e, 0))
            } else {
                u64::from(le32(e, 0) & 0x0FFF_FFFF)
            };
            if v != c + 1 || v > last_valid {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    pub(super) fn next_cluster(&mut self, cluster: u32) -> Result<Link, FsError> {
        let v = self.fat_raw(cluster)?;
        let (bad, eoc) = match self.g.fat_type {
            FatType::Fat12 => (0xFF7, 0xFF8),
            FatType::Fat16 => (0xFFF7, 0xFFF8),
            FatType::Fat32 => (0x0FFF_FFF7, 0x0FFF_FFF8),
        };
        if v >= eoc {
            Ok(Link::End)
        } else if v == 0 {
            Err(FsError::Corrupt("free cluster inside a cluster chain"))
        } else if v == bad {
            Err(FsError::Corrupt("bad cluster inside a cluster chain"))
        } else if self.g.valid_cluster(v) {
            Ok(Link::Next(v))
        } else {
            Err(FsError::Corrupt("cluster chain points outside the volume"))
        }
    }

    /// Walk a whole chain (bounded by `limit` clusters); returns its length.
    pub(super) fn chain_len(&mut self, first: u32, limit: u64) -> Result<u64, FsError> {
        let mut w = RunWalker::new(first, limit);
        let mut n = 0u64;
        while let Some((_, len)) = w.next_run(self, u64::MAX)? {
            n += u64::from(len);
        }
        Ok(n)
    }
}
