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
//!   on top of [`BlockIo`], a `fatfs` I/O adapter that makes each operation a
//!   transaction (metadata reaches the disk only when the operation succeeded;
//!   a failed commit is undone). Before `fatfs` touches the volume, the reader
//!   validates the BPB, the parent directory's cluster chain and the target's
//!   chain, checks the free space `fatfs` will need (including a directory
//!   that must grow for a new name), and repairs the FAT32 FSInfo free count:
//!   these are the inputs that can make `fatfs` panic, loop or fail midway
//!   (see `docs/storage.md`).
//!
//! Files: `geometry` (boot sector), `dir` (entries, long names, paths),
//! `volume` (mount, FAT access, chain walker), `read` (directories, file
//! reads), `free` (free clusters, where a new entry goes), `blockio` (the
//! `fatfs` adapter), `write` (pre-checks and the `fatfs` operations).
//!
//! Paths are `/`-separated, relative to the volume root (a leading `/` is
//! optional), matched ASCII-case-insensitively against long and short names.
//! `.` and `..` components are resolved lexically.

mod blockio;
mod dir;
mod free;
mod geometry;
mod order;
mod read;
mod volume;
mod write;

pub use blockio::{BlockIo, IoError};
pub use geometry::probe;
pub use volume::FatVolume;
pub use write::{mkdir, overwrite, write};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::block::{BlockDevice, BlockError};

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
    /// The directory cannot take the `entries` slots a new name needs
    /// (`limit` says which limit was hit).
    DirectoryFull {
        /// Directory slots the new entry needs (long-name slots + 1).
        entries: u64,
        /// The directory that cannot grow.
        limit: &'static str,
    },
    /// A device write failed while the new directory and FAT sectors were
    /// being written, and so did putting the old ones back: the volume may
    /// hold part of the change.
    IoPartial(BlockError),
    /// An in-place overwrite must keep the file's size.
    SizeMismatch {
        /// The file's size.
        size: u64,
        /// The length of the new contents.
        len: u64,
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
            FsError::DirectoryFull { entries, limit } => {
                write!(
                    f,
                    "directory full: no room for {entries} more entries in {limit}"
                )
            }
            FsError::IoPartial(e) => write!(
                f,
                "I/O error: {e}; the volume may be inconsistent: check it with fsck.fat"
            ),
            FsError::SizeMismatch { size, len } => write!(
                f,
                "cannot overwrite a {size}-byte file in place with {len} bytes"
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

/// Little-endian u16 at `o` (caller guarantees the bounds).
fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
/// Little-endian u32 at `o` (caller guarantees the bounds).
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
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

#[cfg(test)]
mod tests {
    use super::*;

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
            FsError::IoPartial(BlockError::Device("x")),
            FsError::DirectoryFull {
                entries: 2,
                limit: "the FAT12/16 root directory",
            },
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
