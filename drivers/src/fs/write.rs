//! The write side (`write`, `mkdir`): the reader's pre-checks, then
//! `fatfs` on a [`BlockIo`].

use alloc::string::String;

use super::blockio::{BlockIo, IoError, IoRef};
use super::dir::{split_path, DirLoc};
use super::order::FatArea;
use super::volume::FatVolume;
use super::{le32, FatType, FsError, MAX_DIR_BYTES, MAX_NAME_LEN};
use crate::block::{read_bytes, write_bytes, BlockDevice};

pub(super) fn map_fatfs(e: fatfs::Error<IoError>, path: &str) -> FsError {
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
        fatfs::Error::NotEnoughSpace => FsError::Fatfs("out of free clusters"),
        fatfs::Error::InvalidFileNameLength | fatfs::Error::UnsupportedFileNameCharacter => {
            FsError::InvalidName(String::from(path.rsplit('/').next().unwrap_or(path)))
        }
        _ => FsError::Fatfs("unknown error"),
    }
}

/// Names `fatfs` can create. Also rejects a non-ASCII first character:
/// `fatfs` 0.4.1-preview.2 slices `name[1..]` when generating the short name
/// and would panic on a multi-byte first character.
pub(super) fn check_new_name(name: &str) -> Result<(), FsError> {
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

/// What a write or mkdir does to the entry its path names.
enum Target {
    /// A new entry in the parent directory.
    New,
    /// An existing file, whose `held` clusters are freed when it is replaced.
    Replace { held: u64 },
    /// mkdir of an existing directory: nothing to do.
    ExistingDir,
}

/// Preconditions for handing the volume to `fatfs` for a modification of
/// `comps` (parent directories must exist) that stores `new_bytes` bytes.
/// Returns whether the path already exists.
pub(super) fn prepare_write<D: BlockDevice + ?Sized>(
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
    let (exists, held, growth) = match check_target(&mut vol, parent, last, path, want_dir)? {
        Target::ExistingDir => return Ok(true),
        Target::Replace { held } => (true, held, 0),
        Target::New => (
            false,
            0,
            dir_growth(&mut vol, parent, new_entry_slots(last))?,
        ),
    };
    let free = vol.free_clusters()?;
    let cs = u64::from(vol.g.cluster_size);
    check_space(new_bytes.div_ceil(cs) + growth, u64::from(free) + held, cs)?;
    if vol.g.fat_type == FatType::Fat32 {
        repair_fsinfo_free_count(&mut vol, free)?;
    }
    Ok(exists)
}

/// Look up `last` in `parent` and check that `fatfs` may create or replace
/// it.
fn check_target<D: BlockDevice + ?Sized>(
    vol: &mut FatVolume<'_, D>,
    parent: DirLoc,
    last: &str,
    path: &str,
    want_dir: bool,
) -> Result<Target, FsError> {
    let existing = vol.find_in(parent, last)?;
    // fatfs regenerates names on overwrite too and panics on a multi-byte
    // first character (fuzz: regressions/fat/overwrite-lfn-non-ascii-first-char):
    // refuse such a name, typed or stored, before fatfs sees it.
    let stored_non_ascii_first = existing
        .as_ref()
        .and_then(|e| e.lfn.first())
        .is_some_and(|&c| c >= 0x80);
    if !last.is_char_boundary(1) || stored_non_ascii_first {
        return Err(FsError::InvalidName(String::from(last)));
    }
    match existing {
        Some(e) if e.is_dir() && !want_dir => Err(FsError::IsADirectory(String::from(path))),
        Some(e) if !e.is_dir() && want_dir => Err(FsError::NotADirectory(String::from(path))),
        Some(_) if want_dir => Ok(Target::ExistingDir),
        Some(e) if e.cluster != 0 => {
            if !vol.g.valid_cluster(e.cluster) {
                return Err(FsError::Corrupt("cluster number out of range"));
            }
            let held = vol.chain_len(e.cluster, u64::from(vol.g.cluster_count))?;
            Ok(Target::Replace { held })
        }
        Some(_) => Ok(Target::Replace { held: 0 }),
        None => {
            check_new_name(last)?;
            Ok(Target::New)
        }
    }
}

/// Directory slots `fatfs` writes for a new entry named `name`: it always
/// writes long-name slots (13 UTF-16 units each), then the short-name slot.
fn new_entry_slots(name: &str) -> u64 {
    name.encode_utf16().count().div_ceil(13) as u64 + 1
}

/// Clusters `parent` must grow by to take `slots` new consecutive slots
/// where `fatfs` will put them. The fixed FAT12/16 root cannot grow, and no
/// directory may pass 65536 entries (the reader's limit).
fn dir_growth<D: BlockDevice + ?Sized>(
    vol: &mut FatVolume<'_, D>,
    parent: DirLoc,
    slots: u64,
) -> Result<u64, FsError> {
    let cs = u64::from(vol.g.cluster_size);
    // fatfs scans (and may extend) the parent: its whole chain must be sane.
    let (size, limit) = match parent {
        DirLoc::Root => (vol.g.root_bytes, "the FAT12/16 root directory"),
        DirLoc::Chain(c) => {
            let limit = vol.dir_cluster_limit();
            let size = vol.chain_len(c, limit)? * cs;
            (size, "a directory (65536 entries at most)")
        }
    };
    let end = (vol.new_entry_slot(parent, slots)? + slots) * 32;
    if end <= size {
        return Ok(0);
    }
    if parent == DirLoc::Root || end > MAX_DIR_BYTES {
        return Err(FsError::DirectoryFull {
            entries: slots,
            limit,
        });
    }
    Ok((end - size).div_ceil(cs))
}

/// Refuse a modification that needs more than `available` clusters.
fn check_space(needed: u64, available: u64, cluster_size: u64) -> Result<(), FsError> {
    if needed > available {
        return Err(FsError::NoSpace {
            needed: needed * cluster_size,
            available: available * cluster_size,
        });
    }
    Ok(())
}

/// fatfs keeps the FAT32 FSInfo free count and subtracts one per allocation
/// without checking: a count lower than reality would underflow. Make it
/// exact (what fsck would do) before fatfs reads it.
fn repair_fsinfo_free_count<D: BlockDevice + ?Sized>(
    vol: &mut FatVolume<'_, D>,
    free: u32,
) -> Result<(), FsError> {
    let off = u64::from(vol.g.fs_info_sector) * u64::from(vol.g.bytes_per_sector);
    let mut s = [0u8; 512];
    read_bytes(vol.dev, off, &mut s)?;
    if le32(&s, 0) != 0x4161_5252 || le32(&s, 484) != 0x6141_7272 || le32(&s, 508) != 0xAA55_0000 {
        return Err(FsError::Corrupt("bad FAT32 FSInfo sector signature"));
    }
    let cur = le32(&s, 488);
    if cur != 0xFFFF_FFFF && cur != free {
        write_bytes(vol.dev, off + 488, &free.to_le_bytes())?;
    }
    Ok(())
}

pub(super) enum Op<'a> {
    Write(&'a str, &'a [u8]),
    Mkdir(&'a str),
}

/// Run `op` through `fatfs` as one transaction: its FAT and directory
/// updates reach the device only if the whole operation succeeded, in an
/// order a power cut cannot turn into a broken chain (`order.rs`), and a
/// failed commit puts the old blocks back (see [`BlockIo`]).
pub(super) fn with_fatfs<D: BlockDevice + ?Sized>(
    dev: &mut D,
    path: &str,
    op: Op<'_>,
) -> Result<(), FsError> {
    let area = FatArea::of(&FatVolume::mount(dev)?.g);
    let mut io = BlockIo::with_fat(dev, area);
    match run_fatfs(&mut io, op) {
        Ok(()) => io.commit(),
        Err(e) => {
            io.discard();
            Err(map_fatfs(e, path))
        }
    }
}

fn run_fatfs<D: BlockDevice + ?Sized>(
    io: &mut BlockIo<'_, D>,
    op: Op<'_>,
) -> Result<(), fatfs::Error<IoError>> {
    let fs = fatfs::FileSystem::new(IoRef(io), fatfs::FsOptions::new())?;
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
    r?;
    fs.unmount()
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

/// Replace the contents of the existing file at `path` with `data`, which
/// must be exactly as long as the file, by writing into the file's own
/// clusters in file order: no FAT, directory or FSInfo block changes, so an
/// interrupted overwrite can only leave this file's data part old and part
/// new (the saved environment's copies detect that with their CRC). A file
/// of another size is `SizeMismatch` and nothing is written.
pub fn overwrite<D: BlockDevice + ?Sized>(
    dev: &mut D,
    path: &str,
    data: &[u8],
) -> Result<(), FsError> {
    let extents = {
        let mut vol = FatVolume::mount(dev)?;
        let size = vol.size(path)?;
        if size != data.len() as u64 {
            return Err(FsError::SizeMismatch {
                size,
                len: data.len() as u64,
            });
        }
        vol.extents(path)?
    };
    let mut done = 0usize;
    for (off, len) in extents {
        let end = done.saturating_add(len as usize).min(data.len());
        write_bytes(dev, off, &data[done..end])?;
        done = end;
    }
    Ok(())
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
            "../../../tests/fuzz/regressions/fat/overwrite-lfn-non-ascii-first-char.img.gz"
        );
        let img = miniz_oxide::inflate::decompress_to_vec(&gz[10..gz.len() - 8]).unwrap();
        let mut d = crate::block::MemDisk::new(img);
        let r = write(&mut d, "/été long name.txt", b"x");
        assert!(matches!(r, Err(FsError::InvalidName(_))), "{r:?}");
    }

    #[test]
    fn new_name_rules() {
        assert!(check_new_name("boot.scr").is_ok());
        assert!(check_new_name("A long name (1).txt").is_ok());
        assert!(check_new_name("éa").is_err());
        assert!(check_new_name("a*b").is_err());
        assert!(check_new_name("").is_err());
    }
}
