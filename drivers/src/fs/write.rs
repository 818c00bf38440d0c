//! The write side (`write`, `mkdir`): the reader's pre-checks, then
//! `fatfs` on a [`BlockIo`].

use alloc::string::String;

use super::blockio::{BlockIo, IoError, IoRef};
use super::dir::{split_path, DirLoc};
use super::volume::FatVolume;
use super::{le32, FatType, FsError, MAX_NAME_LEN};
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

/// Preconditions for handing the volume to `fatfs` for a modification of
/// `comps` (parent directories must exist). Returns the clusters held by an
/// existing file of that name (freed when it is replaced).
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

pub(super) enum Op<'a> {
    Write(&'a str, &'a [u8]),
    Mkdir(&'a str),
}

pub(super) fn with_fatfs<D: BlockDevice + ?Sized>(
    dev: &mut D,
    path: &str,
    op: Op<'_>,
) -> Result<(), FsError> {
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
