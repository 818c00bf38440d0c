//! The read side: directory scanning, path resolution, listing and the
//! fast file read path (contiguous runs read straight into the caller's
//! buffer).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::dir::{split_path, DirLoc, Entry, LfnBuilder, ATTR_LFN, ATTR_VOLUME};
use super::volume::{FatVolume, RunWalker};
use super::{le16, le32, DirEntry, FatType, FsError, MAX_DIR_BYTES};
use crate::block::{read_bytes, BlockDevice};

impl<D: BlockDevice + ?Sized> FatVolume<'_, D> {
    pub(super) fn dir_cluster_limit(&self) -> u64 {
        MAX_DIR_BYTES
            .div_ceil(u64::from(self.g.cluster_size))
            .min(u64::from(self.g.cluster_count))
    }

    pub(super) fn root(&self) -> DirLoc {
        match self.g.fat_type {
            FatType::Fat32 => DirLoc::Chain(self.g.root_cluster),
            _ => DirLoc::Root,
        }
    }

    pub(super) fn dir_of(&self, e: &Entry) -> DirLoc {
        if e.cluster == 0 {
            self.root()
        } else {
            DirLoc::Chain(e.cluster)
        }
    }

    /// Visit the raw 32-byte records of a directory in order, until `visit`
    /// returns true or the directory's clusters (or the fixed FAT12/16 root
    /// region) end. The end-of-directory marker is the visitor's business.
    pub(super) fn for_each_raw(
        &mut self,
        dir: DirLoc,
        mut visit: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), FsError> {
        let chunk = match dir {
            DirLoc::Root => 8192usize.min(self.g.root_bytes as usize),
            DirLoc::Chain(_) => self.g.cluster_size as usize,
        };
        let mut buf = vec![0u8; chunk.max(32)];
        let mut walker = match dir {
            DirLoc::Chain(c) => Some(RunWalker::new(c, self.dir_cluster_limit())),
            DirLoc::Root => None,
        };
        let mut root_pos = 0u64;
        loop {
            let n = match walker.as_mut() {
                Some(w) => {
                    let Some((c, _)) = w.next_run(self, 1)? else {
                        return Ok(());
                    };
                    read_bytes(self.dev, self.g.cluster_offset(c), &mut buf[..chunk])?;
                    chunk
                }
                None => {
                    if root_pos >= self.g.root_bytes {
                        return Ok(());
                    }
                    let n = ((self.g.root_bytes - root_pos) as usize).min(chunk);
                    read_bytes(self.dev, self.g.root_start + root_pos, &mut buf[..n])?;
                    root_pos += n as u64;
                    n
                }
            };
            if buf[..n].chunks_exact(32).any(&mut visit) {
                return Ok(());
            }
        }
    }

    /// Iterate over the entries of a directory (long names assembled;
    /// deleted entries and volume labels skipped) until `visit` returns true
    /// or the end-of-directory marker is reached.
    pub(super) fn scan_dir(
        &mut self,
        dir: DirLoc,
        mut visit: impl FnMut(Entry) -> bool,
    ) -> Result<(), FsError> {
        let fat32 = self.g.fat_type == FatType::Fat32;
        let mut lfn = LfnBuilder::new();
        self.for_each_raw(dir, |raw| {
            if raw[0] == 0 {
                return true;
            }
            let attr = raw[11];
            let deleted = raw[0] == 0xE5;
            if attr & ATTR_LFN == ATTR_LFN {
                if deleted {
                    lfn.clear();
                } else {
                    lfn.process(raw);
                }
                return false;
            }
            if deleted || attr & ATTR_VOLUME != 0 {
                lfn.clear();
                return false;
            }
            let mut sfn = [0u8; 11];
            sfn.copy_from_slice(&raw[..11]);
            let hi = if fat32 { u32::from(le16(raw, 20)) } else { 0 };
            visit(Entry {
                lfn: core::mem::replace(&mut lfn, LfnBuilder::new()).finish(&sfn),
                sfn,
                nt_flags: raw[12],
                attr,
                cluster: (hi << 16) | u32::from(le16(raw, 26)),
                size: le32(raw, 28),
            })
        })
    }

    pub(super) fn find_in(&mut self, dir: DirLoc, name: &str) -> Result<Option<Entry>, FsError> {
        let mut found = None;
        self.scan_dir(dir, |e| {
            if e.matches(name) {
                found = Some(e);
                true
            } else {
                false
            }
        })?;
        Ok(found)
    }

    /// Resolve the directory holding `comps` (all must be directories).
    pub(super) fn resolve_dir(&mut self, comps: &[&str], path: &str) -> Result<DirLoc, FsError> {
        let mut dir = self.root();
        for c in comps {
            match self.find_in(dir, c)? {
                Some(e) if e.is_dir() => dir = self.dir_of(&e),
                Some(_) => return Err(FsError::NotADirectory(String::from(path))),
                None => return Err(FsError::NotFound(String::from(path))),
            }
        }
        Ok(dir)
    }

    /// Resolve a path to `None` (the root) or its directory entry.
    pub(super) fn resolve(&mut self, path: &str) -> Result<Option<Entry>, FsError> {
        let comps = split_path(path)?;
        let Some((last, parents)) = comps.split_last() else {
            return Ok(None);
        };
        let dir = self.resolve_dir(parents, path)?;
        match self.find_in(dir, last)? {
            Some(e) => Ok(Some(e)),
            None => Err(FsError::NotFound(String::from(path))),
        }
    }

    /// List a directory (without `.` and `..`).
    pub fn ls(&mut self, path: &str) -> Result<Vec<DirEntry>, FsError> {
        let dir = match self.resolve(path)? {
            None => self.root(),
            Some(e) if e.is_dir() => self.dir_of(&e),
            Some(_) => return Err(FsError::NotADirectory(String::from(path))),
        };
        let mut out = Vec::new();
        self.scan_dir(dir, |e| {
            if !e.is_dot() {
                out.push(e.to_public());
            }
            false
        })?;
        Ok(out)
    }

    /// Whether `path` names an existing file or directory.
    pub fn exists(&mut self, path: &str) -> Result<bool, FsError> {
        match self.resolve(path) {
            Ok(_) => Ok(true),
            Err(FsError::NotFound(_)) | Err(FsError::NotADirectory(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Size of a file in bytes.
    pub fn size(&mut self, path: &str) -> Result<u64, FsError> {
        match self.resolve(path)? {
            Some(e) if !e.is_dir() => Ok(u64::from(e.size)),
            _ => Err(FsError::IsADirectory(String::from(path))),
        }
    }

    /// Read from `path` at byte offset `pos` into `dst`; returns the number of
    /// bytes read (`min(dst.len(), size - pos)`).
    pub fn read(&mut self, path: &str, dst: &mut [u8], pos: u64) -> Result<usize, FsError> {
        let e = match self.resolve(path)? {
            Some(e) if !e.is_dir() => e,
            _ => return Err(FsError::IsADirectory(String::from(path))),
        };
        self.read_entry(&e, dst, pos)
    }

    pub(super) fn read_entry(
        &mut self,
        e: &Entry,
        dst: &mut [u8],
        pos: u64,
    ) -> Result<usize, FsError> {
        let size = u64::from(e.size);
        if pos > size {
            return Err(FsError::PosBeyondEof { pos, size });
        }
        let want = (size - pos).min(dst.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let cs = u64::from(self.g.cluster_size);
        if size.div_ceil(cs) > u64::from(self.g.cluster_count) {
            return Err(FsError::Corrupt("file larger than the volume"));
        }
        if e.cluster == 0 {
            return Err(FsError::Corrupt("non-empty file without clusters"));
        }
        let mut w = RunWalker::new(e.cluster, u64::from(self.g.cluster_count));
        // Skip whole clusters before `pos`.
        let mut skip = pos / cs;
        while skip > 0 {
            match w.next_run(self, skip)? {
                Some((_, len)) => skip -= u64::from(len),
                None => return Err(FsError::Corrupt("cluster chain shorter than the file")),
            }
        }
        let mut in_cluster = pos % cs;
        let mut done = 0usize;
        while done < want {
            let left = (want - done) as u64;
            let clusters_needed = (in_cluster + left).div_ceil(cs);
            let Some((start, len)) = w.next_run(self, clusters_needed)? else {
                return Err(FsError::Corrupt("cluster chain shorter than the file"));
            };
            let run_bytes = u64::from(len) * cs - in_cluster;
            let n = run_bytes.min(left) as usize;
            let off = self.g.cluster_offset(start) + in_cluster;
            read_bytes(self.dev, off, &mut dst[done..done + n])?;
            done += n;
            in_cluster = 0;
        }
        Ok(done)
    }

    /// Physical extents of a file: `(byte offset in the volume, length)`, one
    /// per run of contiguous clusters (diagnostics; shows fragmentation).
    pub fn extents(&mut self, path: &str) -> Result<Vec<(u64, u64)>, FsError> {
        let e = match self.resolve(path)? {
            Some(e) if !e.is_dir() => e,
            _ => return Err(FsError::IsADirectory(String::from(path))),
        };
        let mut out = Vec::new();
        if e.size == 0 || e.cluster == 0 {
            return Ok(out);
        }
        let cs = u64::from(self.g.cluster_size);
        let mut left = u64::from(e.size);
        let mut w = RunWalker::new(e.cluster, u64::from(self.g.cluster_count));
        while left > 0 {
            let Some((start, len)) = w.next_run(self, left.div_ceil(cs))? else {
                return Err(FsError::Corrupt("cluster chain shorter than the file"));
            };
            let n = (u64::from(len) * cs).min(left);
            out.push((self.g.cluster_offset(start), n));
            left -= n;
        }
        Ok(out)
    }
}
