//! FAT12/16/32 with long file names.
//!
//! * **Reading** (`ls`, `size`, `exists`, `read`) is done by this module's own
//!   reader ([`FatVolume`]): a fully validated BPB, FAT entries through a small
//!   window cache, directory parsing with VFAT long names, and a fast file read
//!   path that walks the cluster chain, merges physically contiguous clusters
//!   into runs and reads each run with one multi-block request straight into
//!   the caller's buffer. Every walk is bounded, so corrupted images give a
//!   typed [`FsError`], never a panic or a hang.
//! * **Writing** (`write`, `mkdir`) goes through `starry-fatfs` (crate `fatfs`)
//!   on top of [`BlockIo`], a `fatfs` I/O adapter with a small write-back sector
//!   cache. Before `fatfs` touches the volume, the reader validates the BPB,
//!   the parent directory's cluster chain and the target's chain, and repairs
//!   the FAT32 FSInfo free count: these are the inputs that can make `fatfs`
//!   panic or loop (see `docs/storage.md`).
//!
//! Paths are `/`-separated, relative to the volume root (a leading `/` is
//! optional), matched ASCII-case-insensitively against long and short names.
//! `.` and `..` components are resolved lexically.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::block::{read_bytes, write_bytes, BlockDevice, BlockError};

/// Maximum accepted path length in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Maximum length of one path component (VFAT limit, UTF-16 units).
pub const MAX_NAME_LEN: usize = 255;
/// Maximum directory size (the FAT specification's 65536 entries).
const MAX_DIR_BYTES: u64 = 65536 * 32;
const FAT_WINDOW: usize = 32 * 1024;

/// FAT errors. `Display` is a single human-readable line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    /// The block device failed.
    Io(BlockError),
    /// The boot sector does not describe a usable FAT volume.
    NotFat(&'static str),
    /// On-disk structures are inconsistent.
    Corrupt(&'static str),
    /// No such file or directory.
    NotFound(String),
    /// A path component that must be a directory is a file.
    NotADirectory(String),
    /// The operation needs a file but the path is a directory.
    IsADirectory(String),
    /// The path or one of its components is too long.
    PathTooLong,
    /// A file name that cannot be created on FAT.
    InvalidName(String),
    /// `pos` lies beyond the end of the file.
    PosBeyondEof {
        /// Requested offset.
        pos: u64,
        /// File size.
        size: u64,
    },
    /// FAT files are limited to 4 GiB - 1.
    FileTooLarge(u64),
    /// Not enough free clusters.
    NoSpace {
        /// Bytes needed (rounded to clusters).
        needed: u64,
        /// Bytes available (including the clusters of a file being replaced).
        available: u64,
    },
    /// The volume is valid but this operation is not supported on it.
    Unsupported(&'static str),
    /// An error reported by the `fatfs` write path.
    Fatfs(&'static str),
}

/// Displays a name or path from the disk or the user on one line: control
/// characters are replaced by `?`.
struct Clean<'a>(&'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        for c in self.0.chars() {
            f.write_char(if c.is_control() { '?' } else { c })?;
        }
        Ok(())
    }
}

/// `name` with control characters replaced by `?` (for printing names read
/// from a possibly corrupted disk).
pub fn printable(name: &str) -> String {
    alloc::format!("{}", Clean(name))
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsError::Io(e) => write!(f, "I/O error: {e}"),
            FsError::NotFat(why) => write!(f, "not a FAT filesystem: {why}"),
            FsError::Corrupt(why) => write!(f, "corrupted FAT filesystem: {why}"),
            FsError::NotFound(p) => write!(f, "** File not found {} **", Clean(p)),
            FsError::NotADirectory(p) => write!(f, "** Not a directory: {} **", Clean(p)),
            FsError::IsADirectory(p) => write!(f, "** {} is a directory **", Clean(p)),
            FsError::PathTooLong => write!(f, "path too long"),
            FsError::InvalidName(n) => write!(f, "invalid FAT file name: \"{}\"", Clean(n)),
            FsError::PosBeyondEof { pos, size } => {
                write!(
                    f,
                    "offset {pos} is beyond the end of the file ({size} bytes)"
                )
            }
            FsError::FileTooLarge(n) => {
                write!(f, "file too large for FAT: {n} bytes (max 4 GiB - 1)")
            }
            FsError::NoSpace { needed, available } => write!(
                f,
                "not enough free space: need {needed} bytes, {available} available"
            ),
            FsError::Unsupported(why) => write!(f, "unsupported: {why}"),
            FsError::Fatfs(why) => write!(f, "FAT write failed: {why}"),
        }
    }
}

impl From<BlockError> for FsError {
    fn from(e: BlockError) -> Self {
        FsError::Io(e)
    }
}

/// FAT variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatType {
    /// 12-bit FAT entries.
    Fat12,
    /// 16-bit FAT entries.
    Fat16,
    /// 32-bit (28 used) FAT entries.
    Fat32,
}

impl fmt::Display for FatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FatType::Fat12 => "FAT12",
            FatType::Fat16 => "FAT16",
            FatType::Fat32 => "FAT32",
        })
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Long name if present, else the short name (lower-cased as flagged).
    pub name: String,
    /// File size in bytes (0 for directories).
    pub size: u64,
    /// Whether this is a directory.
    pub is_dir: bool,
}

/// Validated volume geometry (all offsets in bytes from the volume start).
#[derive(Debug, Clone)]
struct Geometry {
    fat_type: FatType,
    bytes_per_sector: u32,
    cluster_size: u32,
    /// Byte offset of the FAT copy used for reading.
    fat_start: u64,
    fat_bytes: u64,
    root_start: u64,
    root_bytes: u64,
    root_cluster: u32,
    data_start: u64,
    cluster_count: u32,
    // Raw fields needed by the write-path checks.
    reserved_sectors: u32,
    sectors_per_fat: u32,
    fats: u32,
    fs_info_sector: u32,
    backup_boot_sector: u32,
    signature: bool,
    label: [u8; 11],
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Geometry {
    /// Parse and validate a boot sector (`bs` must hold at least 512 bytes).
    fn parse(bs: &[u8]) -> Result<Self, FsError> {
        if bs.len() < 512 {
            return Err(FsError::NotFat("boot sector too short"));
        }
        let bps = u32::from(le16(bs, 11));
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Err(FsError::NotFat("bad bytes per sector"));
        }
        let spc = u32::from(bs[13]);
        if spc == 0 || !spc.is_power_of_two() {
            return Err(FsError::NotFat("bad sectors per cluster"));
        }
        let reserved = u32::from(le16(bs, 14));
        if reserved == 0 {
            return Err(FsError::NotFat("no reserved sectors"));
        }
        let fats = u32::from(bs[16]);
        if fats == 0 || fats > 4 {
            return Err(FsError::NotFat("bad number of FATs"));
        }
        let root_entries = u32::from(le16(bs, 17));
        let ts16 = u32::from(le16(bs, 19));
        let spf16 = u32::from(le16(bs, 22));
        let ts32 = le32(bs, 32);
        let fat32_layout = spf16 == 0;
        let total_sectors = if ts16 != 0 { ts16 } else { ts32 };
        if total_sectors == 0 {
            return Err(FsError::NotFat("zero total sectors"));
        }
        if ts16 != 0 && ts32 != 0 && ts16 != ts32 {
            return Err(FsError::NotFat("conflicting total sector counts"));
        }
        let (spf, root_cluster, fs_info, backup, active_fat, label_off) = if fat32_layout {
            let spf32 = le32(bs, 36);
            if spf32 == 0 {
                return Err(FsError::NotFat("zero sectors per FAT"));
            }
            if le16(bs, 42) != 0 {
                return Err(FsError::NotFat("unsupported FAT32 version"));
            }
            if root_entries != 0 || ts16 != 0 {
                return Err(FsError::NotFat(
                    "FAT12/16 fields set in a FAT32 boot sector",
                ));
            }
            let ext_flags = le16(bs, 40);
            let active = if ext_flags & 0x80 != 0 {
                u32::from(ext_flags & 0x0F)
            } else {
                0
            };
            if active >= fats {
                return Err(FsError::NotFat("active FAT out of range"));
            }
            (
                spf32,
                le32(bs, 44),
                u32::from(le16(bs, 48)),
                u32::from(le16(bs, 50)),
                active,
                71,
            )
        } else {
            if root_entries == 0 {
                return Err(FsError::NotFat("empty root directory region"));
            }
            (spf16, 0, 0, 0, 0, 43)
        };
        let root_bytes = u64::from(root_entries) * 32;
        let root_sectors = root_bytes.div_ceil(u64::from(bps));
        let fat_sectors = u64::from(fats) * u64::from(spf);
        let first_data = u64::from(reserved) + fat_sectors + root_sectors;
        if first_data >= u64::from(total_sectors) {
            return Err(FsError::NotFat("no data region"));
        }
        let clusters = (u64::from(total_sectors) - first_data) / u64::from(spc);
        if clusters == 0 {
            return Err(FsError::NotFat("no clusters"));
        }
        // `clusters` < 2^32 because total_sectors is a u32.
        let cluster_count = clusters as u32;
        let fat_type = if cluster_count < 4085 {
            FatType::Fat12
        } else if cluster_count < 65525 {
            FatType::Fat16
        } else {
            FatType::Fat32
        };
        if (fat_type == FatType::Fat32) != fat32_layout {
            return Err(FsError::NotFat("cluster count does not match the FAT type"));
        }
        if cluster_count > 0x0FFF_FFF5 {
            return Err(FsError::NotFat("too many clusters"));
        }
        let bits: u64 = match fat_type {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
            FatType::Fat32 => 32,
        };
        let fat_bytes = u64::from(spf) * u64::from(bps);
        if fat_bytes * 8 / bits < u64::from(cluster_count) + 2 {
            return Err(FsError::NotFat("FAT too small for the cluster count"));
        }
        if fat_type == FatType::Fat32 && (root_cluster < 2 || root_cluster - 2 >= cluster_count) {
            return Err(FsError::NotFat("root directory cluster out of range"));
        }
        let mut label = [b' '; 11];
        if bs[label_off - 5] == 0x29 {
            label.copy_from_slice(&bs[label_off..label_off + 11]);
        }
        let bps64 = u64::from(bps);
        Ok(Self {
            fat_type,
            bytes_per_sector: bps,
            cluster_size: bps * spc,
            fat_start: (u64::from(reserved) + u64::from(active_fat) * u64::from(spf)) * bps64,
            fat_bytes,
            root_start: (u64::from(reserved) + fat_sectors) * bps64,
            root_bytes: root_sectors * bps64,
            root_cluster,
            data_start: first_data * bps64,
            cluster_count,
            reserved_sectors: reserved,
            sectors_per_fat: spf,
            fats,
            fs_info_sector: fs_info,
            backup_boot_sector: backup,
            signature: bs[510] == 0x55 && bs[511] == 0xAA,
            label,
        })
    }

    fn cluster_offset(&self, cluster: u32) -> u64 {
        self.data_start + u64::from(cluster - 2) * u64::from(self.cluster_size)
    }

    fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c - 2 < self.cluster_count
    }

    /// Extra constraints `fatfs` needs so that its own (unchecked, 32-bit)
    /// arithmetic cannot overflow and its validation agrees with ours.
    fn check_fatfs_compatible(&self) -> Result<(), FsError> {
        if !self.signature {
            return Err(FsError::Unsupported(
                "writing to a boot sector without the 0x55AA signature",
            ));
        }
        let fits = u64::from(self.sectors_per_fat)
            .checked_mul(u64::from(self.bytes_per_sector) * 8)
            .is_some_and(|v| v <= u64::from(u32::MAX));
        if !fits {
            return Err(FsError::Unsupported("FAT too large for write support"));
        }
        if u64::from(self.fats) * u64::from(self.sectors_per_fat) > u64::from(u32::MAX) {
            return Err(FsError::Unsupported("FAT too large for write support"));
        }
        if self.fat_type == FatType::Fat32
            && (self.fs_info_sector == 0
                || self.fs_info_sector >= self.reserved_sectors
                || self.backup_boot_sector >= self.reserved_sectors)
        {
            return Err(FsError::Unsupported("FAT32 without a valid FSInfo sector"));
        }
        Ok(())
    }
}

/// Cheap check whether a boot sector holds a plausible FAT BPB (used for
/// "superfloppy" detection by the partition code).
pub fn probe(boot_sector: &[u8]) -> bool {
    if boot_sector.len() < 512 {
        return false;
    }
    let jump_ok = matches!(boot_sector[0], 0xEB | 0xE9);
    let media = boot_sector[21];
    let media_ok = media == 0xF0 || media >= 0xF8;
    jump_ok && media_ok && Geometry::parse(boot_sector).is_ok()
}

/// Where a directory's entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirLoc {
    /// FAT12/16 fixed root region.
    Root,
    /// A cluster chain.
    Chain(u32),
}

/// A parsed directory entry (internal).
#[derive(Debug, Clone)]
struct Entry {
    lfn: Vec<u16>,
    sfn: [u8; 11],
    nt_flags: u8,
    attr: u8,
    cluster: u32,
    size: u32,
}

const ATTR_VOLUME: u8 = 0x08;
const ATTR_DIR: u8 = 0x10;
const ATTR_LFN: u8 = 0x0F;

impl Entry {
    fn is_dir(&self) -> bool {
        self.attr & ATTR_DIR != 0
    }

    fn is_dot(&self) -> bool {
        &self.sfn == b".          " || &self.sfn == b"..         "
    }

    /// Short name as `fatfs` decodes it: "NAME.EXT", 0x05 -> 0xE5.
    fn short_name_bytes(raw: &[u8; 11]) -> ([u8; 12], usize) {
        let name_len = raw[..8]
            .iter()
            .rposition(|&c| c != b' ')
            .map_or(0, |p| p + 1);
        let ext_len = raw[8..]
            .iter()
            .rposition(|&c| c != b' ')
            .map_or(0, |p| p + 1);
        let mut out = [b' '; 12];
        out[..name_len].copy_from_slice(&raw[..name_len]);
        let mut len = name_len;
        if ext_len > 0 {
            out[name_len] = b'.';
            out[name_len + 1..name_len + 1 + ext_len].copy_from_slice(&raw[8..8 + ext_len]);
            len += 1 + ext_len;
        }
        if out[0] == 0x05 {
            out[0] = 0xE5;
        }
        (out, len)
    }

    fn decode_oem(b: u8) -> char {
        if b <= 0x7F {
            char::from(b)
        } else {
            '\u{FFFD}'
        }
    }

    fn display_name(&self) -> String {
        if !self.lfn.is_empty() {
            return String::from_utf16_lossy(&self.lfn);
        }
        let mut raw = self.sfn;
        if self.nt_flags & 0x08 != 0 {
            raw[..8].make_ascii_lowercase();
        }
        if self.nt_flags & 0x10 != 0 {
            raw[8..].make_ascii_lowercase();
        }
        let (b, len) = Self::short_name_bytes(&raw);
        b[..len].iter().map(|&c| Self::decode_oem(c)).collect()
    }

    /// Name comparison with the same semantics as `fatfs` (ASCII
    /// case-insensitive against the long name, then the short name).
    fn matches(&self, name: &str) -> bool {
        if !self.lfn.is_empty() {
            let mut other = name.chars().map(|c| c.to_ascii_uppercase());
            let mut ok = true;
            for r in char::decode_utf16(self.lfn.iter().copied()) {
                match r {
                    Ok(c) if Some(c.to_ascii_uppercase()) == other.next() => {}
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && other.next().is_none() {
                return true;
            }
        }
        let (b, len) = Self::short_name_bytes(&self.sfn);
        b[..len]
            .iter()
            .map(|&c| Self::decode_oem(c).to_ascii_uppercase())
            .eq(name.chars().map(|c| c.to_ascii_uppercase()))
    }

    fn to_public(&self) -> DirEntry {
        DirEntry {
            name: self.display_name(),
            size: if self.is_dir() {
                0
            } else {
                u64::from(self.size)
            },
            is_dir: self.is_dir(),
        }
    }
}

fn lfn_checksum(sfn: &[u8; 11]) -> u8 {
    sfn.iter()
        .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b))
}

/// VFAT long-name assembly, mirroring `fatfs`'s rules so that both agree on
/// which entry a name refers to.
struct LfnBuilder {
    buf: Vec<u16>,
    chksum: u8,
    index: u8,
}

impl LfnBuilder {
    fn new() -> Self {
        Self {
            buf: Vec::new(),
            chksum: 0,
            index: 0,
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.index = 0;
    }

    fn process(&mut self, raw: &[u8]) {
        let order = raw[0];
        let is_last = order & 0x40 != 0;
        let index = order & 0x1F;
        if index == 0 || usize::from(index) > 20 {
            self.clear();
            return;
        }
        let chksum = raw[13];
        if is_last {
            self.index = index;
            self.chksum = chksum;
            self.buf.resize(usize::from(index) * 13, 0);
        } else if self.index == 0 || index != self.index - 1 || chksum != self.chksum {
            self.clear();
            return;
        } else {
            self.index -= 1;
        }
        let pos = 13 * usize::from(index - 1);
        let Some(dst) = self.buf.get_mut(pos..pos + 13) else {
            self.clear();
            return;
        };
        const OFFS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
        for (d, &o) in dst.iter_mut().zip(OFFS.iter()) {
            *d = le16(raw, o);
        }
    }

    fn finish(mut self, sfn: &[u8; 11]) -> Vec<u16> {
        if self.index == 0 {
            return Vec::new();
        }
        if lfn_checksum(sfn) != self.chksum || self.index != 1 {
            return Vec::new();
        }
        let len = self
            .buf
            .iter()
            .rposition(|&c| c != 0 && c != 0xFFFF)
            .map_or(0, |p| p + 1);
        self.buf.truncate(len);
        self.buf
    }
}

/// Split and normalise a path. Returns the components (no `.`/`..`/empty).
fn split_path(path: &str) -> Result<Vec<&str>, FsError> {
    if path.len() > MAX_PATH_LEN {
        return Err(FsError::PathTooLong);
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => {
                if c.encode_utf16().count() > MAX_NAME_LEN {
                    return Err(FsError::PathTooLong);
                }
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Result of a chain walk step.
enum Link {
    Next(u32),
    End,
}

/// Walks a cluster chain and yields runs of physically contiguous clusters.
/// Bounded by `limit` clusters, with Brent's cycle detection so that loops in
/// the FAT are reported early.
struct RunWalker {
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
    fn new(first: u32, limit: u64) -> Self {
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
    fn next_run<D: BlockDevice + ?Sized>(
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
    dev: &'d mut D,
    g: Geometry,
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
    fn fat_window(&mut self, off: u64) -> Result<usize, FsError> {
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
    fn fat_le<const N: usize>(&mut self, off: u64) -> Result<u32, FsError> {
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

    fn fat_raw(&mut self, cluster: u32) -> Result<u32, FsError> {
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
    fn contiguous_links(&mut self, cluster: u32, max: u64) -> Result<u32, FsError> {
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

    fn next_cluster(&mut self, cluster: u32) -> Result<Link, FsError> {
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
    fn chain_len(&mut self, first: u32, limit: u64) -> Result<u64, FsError> {
        let mut w = RunWalker::new(first, limit);
        let mut n = 0u64;
        while let Some((_, len)) = w.next_run(self, u64::MAX)? {
            n += u64::from(len);
        }
        Ok(n)
    }

    fn dir_cluster_limit(&self) -> u64 {
        MAX_DIR_BYTES
            .div_ceil(u64::from(self.g.cluster_size))
            .min(u64::from(self.g.cluster_count))
    }

    fn root(&self) -> DirLoc {
        match self.g.fat_type {
            FatType::Fat32 => DirLoc::Chain(self.g.root_cluster),
            _ => DirLoc::Root,
        }
    }

    fn dir_of(&self, e: &Entry) -> DirLoc {
        if e.cluster == 0 {
            self.root()
        } else {
            DirLoc::Chain(e.cluster)
        }
    }

    /// Iterate over the entries of a directory until `visit` returns true or
    /// the end-of-directory marker is reached.
    fn scan_dir(
        &mut self,
        dir: DirLoc,
        mut visit: impl FnMut(Entry) -> bool,
    ) -> Result<(), FsError> {
        let chunk = match dir {
            DirLoc::Root => 8192usize.min(self.g.root_bytes as usize),
            DirLoc::Chain(_) => self.g.cluster_size as usize,
        };
        let mut buf = vec![0u8; chunk.max(32)];
        let mut lfn = LfnBuilder::new();
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
            for raw in buf[..n].chunks_exact(32) {
                if raw[0] == 0 {
                    return Ok(());
                }
                let attr = raw[11];
                let deleted = raw[0] == 0xE5;
                if attr & ATTR_LFN == ATTR_LFN {
                    if deleted {
                        lfn.clear();
                    } else {
                        lfn.process(raw);
                    }
                    continue;
                }
                if deleted || attr & ATTR_VOLUME != 0 {
                    lfn.clear();
                    continue;
                }
                let mut sfn = [0u8; 11];
                sfn.copy_from_slice(&raw[..11]);
                let hi = if self.g.fat_type == FatType::Fat32 {
                    u32::from(le16(raw, 20))
                } else {
                    0
                };
                let e = Entry {
                    lfn: core::mem::replace(&mut lfn, LfnBuilder::new()).finish(&sfn),
                    sfn,
                    nt_flags: raw[12],
                    attr,
                    cluster: (hi << 16) | u32::from(le16(raw, 26)),
                    size: le32(raw, 28),
                };
                if visit(e) {
                    return Ok(());
                }
            }
        }
    }

    fn find_in(&mut self, dir: DirLoc, name: &str) -> Result<Option<Entry>, FsError> {
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
    fn resolve_dir(&mut self, comps: &[&str], path: &str) -> Result<DirLoc, FsError> {
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
    fn resolve(&mut self, path: &str) -> Result<Option<Entry>, FsError> {
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

    fn read_entry(&mut self, e: &Entry, dst: &mut [u8], pos: u64) -> Result<usize, FsError> {
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

    /// Count free clusters by scanning the whole FAT, in large reads (one
    /// FAT12 entry pair per 3 bytes, FAT16 2 bytes, FAT32 4 bytes).
    pub fn free_clusters(&mut self) -> Result<u32, FsError> {
        // A multiple of 3 (FAT12 pairs), 2 and 4, so no entry straddles two
        // reads.
        const CHUNK: usize = 48 * 1024;
        let total = u64::from(self.g.cluster_count) + 2;
        // mount checked that the FAT holds `total` entries.
        let fat_len = match self.g.fat_type {
            FatType::Fat12 => (total * 3).div_ceil(2),
            FatType::Fat16 => total * 2,
            FatType::Fat32 => total * 4,
        };
        let mut buf = vec![0u8; CHUNK];
        let mut free = 0u32;
        let mut off = 0u64;
        while off < fat_len {
            let n = (fat_len - off).min(CHUNK as u64) as usize;
            let b = &mut buf[..n];
            read_bytes(self.dev, self.g.fat_start + off, b)?;
            // Entries 0 and 1 are reserved; `total` ends the last chunk
            // (FAT12: the last byte may hold half of a nonexistent entry).
            free += match self.g.fat_type {
                FatType::Fat12 => {
                    let first = off / 3 * 2;
                    let values = b.chunks(3).flat_map(|g| {
                        let (b0, b1, b2) = (
                            u32::from(g[0]),
                            g.get(1).copied().map_or(0, u32::from),
                            g.get(2).copied().map_or(0, u32::from),
                        );
                        [b0 | (b1 & 0xF) << 8, b1 >> 4 | b2 << 4]
                    });
                    (first..total)
                        .zip(values)
                        .filter(|&(c, v)| c >= 2 && v == 0)
                        .count() as u32
                }
                FatType::Fat16 | FatType::Fat32 => {
                    let esz = if self.g.fat_type == FatType::Fat16 {
                        2
                    } else {
                        4
                    };
                    let first = off / esz;
                    let lo = (2u64.saturating_sub(first) * esz) as usize;
                    let hi = (total.min(first + n as u64 / esz) - first) * esz;
                    let entries = b.get(lo..hi as usize).unwrap_or(&[]);
                    if esz == 2 {
                        count_free_fat16(entries)
                    } else {
                        count_free_fat32(entries)
                    }
                }
            };
            off += n as u64;
        }
        Ok(free)
    }
}

/// Free (zero) FAT16 entries in `b` (whole entries), eight bytes at a time:
/// a lane's top bit of `(x & 0x7FFF) + 0x7FFF | x` is set exactly when the
/// lane is non-zero (no carry leaves a lane).
fn count_free_fat16(b: &[u8]) -> u32 {
    const LOW: u64 = 0x7FFF_7FFF_7FFF_7FFF;
    let words = b.chunks_exact(8);
    let tail = words
        .remainder()
        .chunks_exact(2)
        .filter(|e| le16(e, 0) == 0);
    let mut free = tail.count() as u32;
    for w in words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let nonzero = (((x & LOW) + LOW) | x) & !LOW;
        free += 4 - nonzero.count_ones();
    }
    free
}

/// Free FAT32 entries in `b` (whole entries; the top 4 bits of an entry are
/// reserved and ignored), two per 8 bytes, as in [`count_free_fat16`].
fn count_free_fat32(b: &[u8]) -> u32 {
    const MASK: u64 = 0x0FFF_FFFF_0FFF_FFFF;
    let words = b.chunks_exact(8);
    let tail = words.remainder().chunks_exact(4);
    let mut free = tail.filter(|e| le32(e, 0) & 0x0FFF_FFFF == 0).count() as u32;
    for w in words {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]) & MASK;
        let nonzero = (x + MASK) & 0x1000_0000_1000_0000;
        free += 2 - nonzero.count_ones();
    }
    free
}

// ---------------------------------------------------------------------------
// Convenience functions used by the loader's commands.

/// List the directory at `path` of the FAT volume on `dev`.
pub fn ls<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Result<Vec<DirEntry>, FsError> {
    FatVolume::mount(dev)?.ls(path)
}

/// Size in bytes of the file at `path`.
pub fn size<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Result<u64, FsError> {
    FatVolume::mount(dev)?.size(path)
}

/// Whether `path` exists (file or directory).
pub fn exists<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Result<bool, FsError> {
    FatVolume::mount(dev)?.exists(path)
}

/// Read the file at `path` from byte `pos` into `dst` (straight into `dst`,
/// contiguous cluster runs as single multi-block requests). Returns the number
/// of bytes read: `min(dst.len(), size - pos)`.
pub fn read<D: BlockDevice + ?Sized>(
    dev: &mut D,
    path: &str,
    dst: &mut [u8],
    pos: u64,
) -> Result<usize, FsError> {
    FatVolume::mount(dev)?.read(path, dst, pos)
}

/// Format a listing like U-Boot's `fatls`.
pub fn format_ls(entries: &[DirEntry]) -> String {
    use core::fmt::Write as _;
    let mut s = String::new();
    let (mut files, mut dirs) = (0usize, 0usize);
    for e in entries {
        if e.is_dir {
            dirs += 1;
            let _ = writeln!(s, "            {}/", Clean(&e.name));
        } else {
            files += 1;
            let _ = writeln!(s, " {:>9}   {}", e.size, Clean(&e.name));
        }
    }
    let _ = writeln!(s, "\n{files} file(s), {dirs} dir(s)");
    s
}

// ---------------------------------------------------------------------------
// Write path (fatfs).

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
struct IoRef<'a, 'd, D: BlockDevice + ?Sized>(&'a mut BlockIo<'d, D>);

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

fn map_fatfs(e: fatfs::Error<IoError>, path: &str) -> FsError {
    match e {
        fatfs::Error::Io(IoError::Block(b)) => FsError::Io(b),
        fatfs::Error::Io(_) | fatfs::Error::UnexpectedEof | fatfs::Error::WriteZero => {
            FsError::Corrupt("structure extends past the end of the device")
        }
        fatfs::Error::NotFound => FsError::NotFound(String::from(path)),
        fatfs::Error::AlreadyExists => FsError::Fatfs("file or directory already exists"),
        fatfs::Error::InvalidInput => FsError::Fatfs("invalid input (file/directory mismatch)"),
        fatfs::Error::DirectoryIsNotEmpty => FsError::Fatfs("directory is not empty"),
        fatfs::Error::CorruptedFileSystem => FsError::Corrupt("rejected by the FAT driver"),
        fatfs::Error::NotEnoughSpace => FsError::NoSpace {
            needed: 0,
            available: 0,
        },
        fatfs::Error::InvalidFileNameLength | fatfs::Error::UnsupportedFileNameCharacter => {
            FsError::InvalidName(String::from(path.rsplit('/').next().unwrap_or(path)))
        }
        _ => FsError::Fatfs("unknown error"),
    }
}

/// Names `fatfs` can create. Also rejects a non-ASCII first character:
/// `fatfs` 0.4.1-preview.2 slices `name[1..]` when generating the short name
/// and would panic on a multi-byte first character.
fn check_new_name(name: &str) -> Result<(), FsError> {
    let bad = || FsError::InvalidName(String::from(name));
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.is_char_boundary(1) {
        return Err(bad());
    }
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric()
            || ('\u{80}'..='\u{FFFF}').contains(&c)
            || "$%'-_@~`!(){}. +,;=[]^#&".contains(c);
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// Preconditions for handing the volume to `fatfs` for a modification of
/// `comps` (parent directories must exist). Returns the clusters held by an
/// existing file of that name (freed when it is replaced).
fn prepare_write<D: BlockDevice + ?Sized>(
    dev: &mut D,
    path: &str,
    comps: &[&str],
    want_dir: bool,
    new_bytes: u64,
) -> Result<bool, FsError> {
    let Some((last, parents)) = comps.split_last() else {
        return Err(FsError::IsADirectory(String::from(path)));
    };
    let mut vol = FatVolume::mount(dev)?;
    vol.g.check_fatfs_compatible()?;
    let parent = vol.resolve_dir(parents, path)?;
    // fatfs scans (and may extend) the parent: its whole chain must be sane.
    if let DirLoc::Chain(c) = parent {
        let limit = vol.dir_cluster_limit();
        vol.chain_len(c, limit)?;
    }
    let existing = vol.find_in(parent, last)?;
    // fatfs regenerates names on overwrite too and panics on a multi-byte
    // first character (fuzz: regressions/fat/overwrite-lfn-non-ascii-first-char):
    // refuse such a name, typed or stored, before fatfs sees it.
    let stored_non_ascii_first = existing
        .as_ref()
        .and_then(|e| e.lfn.first())
        .is_some_and(|&c| c >= 0x80);
    if !last.is_char_boundary(1) || stored_non_ascii_first {
        return Err(FsError::InvalidName(String::from(*last)));
    }
    let mut held = 0u64;
    match &existing {
        Some(e) if e.is_dir() && !want_dir => {
            return Err(FsError::IsADirectory(String::from(path)))
        }
        Some(e) if !e.is_dir() && want_dir => {
            return Err(FsError::NotADirectory(String::from(path)))
        }
        Some(_) if want_dir => return Ok(true),
        Some(e) if e.cluster != 0 => {
            if !vol.g.valid_cluster(e.cluster) {
                return Err(FsError::Corrupt("cluster number out of range"));
            }
            held = vol.chain_len(e.cluster, u64::from(vol.g.cluster_count))?;
        }
        Some(_) => {}
        None => check_new_name(last)?,
    }
    let free = vol.free_clusters()?;
    let cs = u64::from(vol.g.cluster_size);
    let needed = new_bytes.div_ceil(cs);
    if needed > u64::from(free) + held {
        return Err(FsError::NoSpace {
            needed: needed * cs,
            available: (u64::from(free) + held) * cs,
        });
    }
    if vol.g.fat_type == FatType::Fat32 {
        // fatfs keeps the FSInfo free count and subtracts one per allocation
        // without checking: a count lower than reality would underflow. Make
        // it exact (what fsck would do) before fatfs reads it.
        let off = u64::from(vol.g.fs_info_sector) * u64::from(vol.g.bytes_per_sector);
        let mut s = [0u8; 512];
        read_bytes(vol.dev, off, &mut s)?;
        if le32(&s, 0) != 0x4161_5252
            || le32(&s, 484) != 0x6141_7272
            || le32(&s, 508) != 0xAA55_0000
        {
            return Err(FsError::Corrupt("bad FAT32 FSInfo sector signature"));
        }
        let cur = le32(&s, 488);
        if cur != 0xFFFF_FFFF && cur != free {
            write_bytes(vol.dev, off + 488, &free.to_le_bytes())?;
        }
    }
    Ok(existing.is_some())
}

enum Op<'a> {
    Write(&'a str, &'a [u8]),
    Mkdir(&'a str),
}

fn with_fatfs<D: BlockDevice + ?Sized>(dev: &mut D, path: &str, op: Op<'_>) -> Result<(), FsError> {
    let mut io = BlockIo::new(dev);
    let result = match fatfs::FileSystem::new(IoRef(&mut io), fatfs::FsOptions::new()) {
        Ok(fs) => {
            let root = fs.root_dir();
            let r = match op {
                Op::Write(p, data) => root.create_file(p).and_then(|mut f| {
                    f.truncate()?;
                    fatfs::Write::write_all(&mut f, data)?;
                    fatfs::Write::flush(&mut f)
                }),
                Op::Mkdir(p) => root.create_dir(p).map(|_| ()),
            };
            drop(root);
            let u = fs.unmount();
            r.and(u)
        }
        Err(e) => Err(e),
    };
    let flushed = io.flush_cache();
    result.map_err(|e| map_fatfs(e, path))?;
    flushed?;
    Ok(())
}

/// Create or truncate the file at `path` and write `data` to it (the parent
/// directory must exist). Used by `fatwrite` and `saveenv`.
pub fn write<D: BlockDevice + ?Sized>(dev: &mut D, path: &str, data: &[u8]) -> Result<(), FsError> {
    if data.len() as u64 > u64::from(u32::MAX) {
        return Err(FsError::FileTooLarge(data.len() as u64));
    }
    let comps = split_path(path)?;
    prepare_write(dev, path, &comps, false, data.len() as u64)?;
    let joined = comps.join("/");
    with_fatfs(dev, path, Op::Write(&joined, data))
}

/// Create the directory `path` (its parent must exist; succeeds if it exists).
pub fn mkdir<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Result<(), FsError> {
    let comps = split_path(path)?;
    if prepare_write(dev, path, &comps, true, 1)? {
        return Ok(());
    }
    let joined = comps.join("/");
    with_fatfs(dev, path, Op::Mkdir(&joined))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz regression: overwriting a file whose long name starts with a
    /// multi-byte character must be an error, not a panic in fatfs.
    #[test]
    fn overwrite_of_non_ascii_first_char_name_is_refused() {
        let gz = include_bytes!(
            "../../tests/fuzz/regressions/fat/overwrite-lfn-non-ascii-first-char.img.gz"
        );
        let img = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        let mut d = crate::block::MemDisk::new(img);
        let r = write(&mut d, "/été long name.txt", b"x");
        assert!(matches!(r, Err(FsError::InvalidName(_))), "{r:?}");
    }

    /// The chunked scan of `free_clusters` agrees with reading every entry
    /// through `fat_raw`, for each FAT type, with the FAT scribbled over so
    /// that free and used entries sit at chunk and FAT12 pair edges.
    #[test]
    fn free_clusters_matches_per_entry_scan() {
        use crate::block::{BlockDevice, MemDisk, PartitionDevice};
        let fixtures: [&[u8]; 3] = [
            include_bytes!("../tests/fixtures/fat12_superfloppy.img.gz"),
            include_bytes!("../tests/fixtures/fat16_mbr.img.gz"),
            include_bytes!("../tests/fixtures/fat32_gpt.img.gz"),
        ];
        for (i, gz) in fixtures.into_iter().enumerate() {
            let img = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
            let mut disk = MemDisk::new(img);
            let (start, len) = match crate::part::read_table(&mut disk) {
                Ok(t) => {
                    let p = t.default_partition().unwrap();
                    (p.start_lba, p.num_blocks)
                }
                Err(_) => (0, disk.num_blocks()),
            };
            let mut seed = 0x9E37_79B9u32 + i as u32;
            for round in 0..4 {
                let mut dev = PartitionDevice::new(&mut disk, start, len);
                let mut vol = FatVolume::mount(&mut dev).unwrap();
                let total = vol.g.cluster_count + 2;
                let slow = (2..total).filter(|&c| vol.fat_raw(c).unwrap() == 0).count() as u32;
                assert_eq!(
                    vol.free_clusters().unwrap(),
                    slow,
                    "fixture {i} round {round}"
                );
                // Scribble: runs of zero and non-zero bytes across the FAT.
                let (fat_start, fat_bytes) = (vol.g.fat_start, vol.g.fat_bytes);
                drop(vol);
                let mut fat = vec![0u8; fat_bytes as usize];
                read_bytes(&mut dev, fat_start, &mut fat).unwrap();
                // Entry-aligned runs of one 32-bit pattern: zero, only a top
                // bit (FAT16: used; FAT32: reserved bits, so free), only a
                // low bit, or random.
                for _ in 0..64 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let at = (seed as usize % fat.len()) & !3;
                    let run = (seed >> 20) as usize % 97 + 1;
                    let v: u32 = match seed >> 29 {
                        0 | 1 => 0,
                        2 => 0x8000_8000,
                        3 => 0xF000_0000,
                        4 => 0x0000_0001,
                        5 => 0x0001_0000,
                        _ => seed.rotate_left(7),
                    };
                    let end = (at + run).min(fat.len());
                    for (k, byte) in fat[at..end].iter_mut().enumerate() {
                        *byte = v.to_le_bytes()[k % 4];
                    }
                }
                write_bytes(&mut dev, fat_start, &fat).unwrap();
            }
        }
    }

    #[test]
    fn split_path_normalises() {
        assert_eq!(split_path("/a//b/./c/../d/").unwrap(), ["a", "b", "d"]);
        assert!(split_path("/").unwrap().is_empty());
        assert!(split_path("/../..").unwrap().is_empty());
        let long = "x".repeat(256);
        assert_eq!(split_path(&long), Err(FsError::PathTooLong));
        let very_long = "a/".repeat(600);
        assert_eq!(split_path(&very_long), Err(FsError::PathTooLong));
    }

    #[test]
    fn lfn_checksum_matches_reference() {
        // Reference value computed with the spec's algorithm for "README  TXT".
        let mut s = 0u8;
        for &b in b"README  TXT" {
            s = (if s & 1 != 0 { 0x80 } else { 0 }) + (s >> 1);
            s = s.wrapping_add(b);
        }
        assert_eq!(lfn_checksum(b"README  TXT"), s);
    }

    #[test]
    fn new_name_rules() {
        assert!(check_new_name("boot.scr").is_ok());
        assert!(check_new_name("A long name (1).txt").is_ok());
        assert!(check_new_name("éa").is_err());
        assert!(check_new_name("a*b").is_err());
        assert!(check_new_name("").is_err());
    }

    #[test]
    fn errors_are_one_line() {
        let errs = [
            FsError::NotFound(String::from("/boot.cmd")),
            FsError::PathTooLong,
            FsError::Corrupt("x"),
            FsError::NoSpace {
                needed: 1,
                available: 0,
            },
            FsError::Io(BlockError::ReadOnly),
        ];
        for e in errs {
            let s = alloc::format!("{e}");
            assert!(!s.contains('\n') && !s.is_empty());
        }
        assert_eq!(
            alloc::format!("{}", FsError::NotFound(String::from("/boot.cmd"))),
            "** File not found /boot.cmd **"
        );
    }
}
