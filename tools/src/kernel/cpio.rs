//! newc ("070701") cpio archives, as the kernel unpacks for an initramfs, written with the
//! `cpio` crate: every member owned by root, mtime 0 and inode numbers in order, so the same
//! entries always give the same bytes.

use std::collections::BTreeMap;
use std::io::Write;

use cpio::newc::Builder;

/// One archive member.
#[derive(Clone, Debug)]
pub enum CpioEntry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    /// Character device node.
    Char {
        mode: u32,
        major: u32,
        minor: u32,
    },
}

impl CpioEntry {
    /// (st_mode with the file type, link count, contents, (rdev major, minor)).
    fn header(&self) -> (u32, u32, &[u8], (u32, u32)) {
        match self {
            CpioEntry::Dir { mode } => (0o040000 | (mode & 0o7777), 2, &[], (0, 0)),
            CpioEntry::File { mode, data } => (0o100000 | (mode & 0o7777), 1, data, (0, 0)),
            CpioEntry::Symlink { target } => (0o120777, 1, target.as_bytes(), (0, 0)),
            CpioEntry::Char { mode, major, minor } => {
                (0o020000 | (mode & 0o7777), 1, &[], (*major, *minor))
            }
        }
    }
}

/// Writes a newc archive of `entries` (paths without leading '/'; a BTreeMap puts every
/// directory before its contents), with the trailer.
pub fn write_cpio_newc(
    entries: &BTreeMap<String, CpioEntry>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut ino = 1u32;
    let mut emit = |b: Builder, data: &[u8]| -> std::io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| std::io::Error::other("cpio member over 4 GiB"))?;
        let mut w = b.ino(ino).write(&mut *out, size);
        ino += 1;
        w.write_all(data)?;
        w.finish().map(|_| ())
    };
    for (name, e) in entries {
        let (mode, nlink, data, (major, minor)) = e.header();
        let b = Builder::new(name)
            .mode(mode)
            .nlink(nlink)
            .rdev_major(major)
            .rdev_minor(minor);
        emit(b, data)?;
    }
    emit(Builder::new("TRAILER!!!").nlink(1), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_trailer_are_laid_out_as_newc() {
        let mut e = BTreeMap::new();
        e.insert("dev".to_string(), CpioEntry::Dir { mode: 0o755 });
        e.insert(
            "dev/console".to_string(),
            CpioEntry::Char {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        );
        e.insert(
            "init".to_string(),
            CpioEntry::File {
                mode: 0o755,
                data: b"#!/bin/sh\n".to_vec(),
            },
        );
        let mut out = Vec::new();
        write_cpio_newc(&e, &mut out).unwrap();
        // 110-byte headers (ino, mode, uid, gid, nlink, mtime, size, dev, rdev, name size,
        // check), names NUL-terminated and padded to 4, data padded to 4.
        let want = "07070100000001000041ed00000000000000000000000200000000000000000000000000000000\
                    00000000000000000000000400000000dev\0\0\0\
                    07070100000002000021800000000000000000000000010000000000000000000000000000000\
                    000000005000000010000000c00000000dev/console\0\0\0\
                    07070100000003000081ed000000000000000000000001000000000000000a00000000000000\
                    0000000000000000000000000500000000init\0\0#!/bin/sh\n\0\0\
                    07070100000004000000000000000000000000000000010000000000000000000000000000000\
                    000000000000000000000000b00000000TRAILER!!!\0\0\0\0";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}
