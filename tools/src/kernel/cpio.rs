//! newc ("070701") cpio archives, as the kernel unpacks for an initramfs.

use std::collections::BTreeMap;
use std::io::Write;

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

/// Writes a newc ("070701") cpio archive of `entries` (paths without leading '/'; a BTreeMap
/// puts every directory before its contents), all owned by root, with a trailer.
pub fn write_cpio_newc(
    entries: &BTreeMap<String, CpioEntry>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut ino = 1u32;
    let mut pos = 0usize;
    let mut emit = |out: &mut dyn Write,
                    name: &str,
                    mode: u32,
                    nlink: u32,
                    data: &[u8],
                    rdev: (u32, u32)|
     -> std::io::Result<()> {
        let hdr = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed for reproducible archives
            data.len(),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() + 1,
            0, // check
        );
        ino += 1;
        out.write_all(hdr.as_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&[0])?;
        pos += hdr.len() + name.len() + 1;
        let pad = (4 - pos % 4) % 4;
        out.write_all(&[0u8; 3][..pad])?;
        pos += pad;
        out.write_all(data)?;
        pos += data.len();
        let pad = (4 - pos % 4) % 4;
        out.write_all(&[0u8; 3][..pad])?;
        pos += pad;
        Ok(())
    };
    for (name, e) in entries {
        match e {
            CpioEntry::Dir { mode } => emit(out, name, 0o040000 | (mode & 0o7777), 2, &[], (0, 0))?,
            CpioEntry::File { mode, data } => {
                emit(out, name, 0o100000 | (mode & 0o7777), 1, data, (0, 0))?
            }
            CpioEntry::Symlink { target } => {
                emit(out, name, 0o120777, 1, target.as_bytes(), (0, 0))?
            }
            CpioEntry::Char { mode, major, minor } => emit(
                out,
                name,
                0o020000 | (mode & 0o7777),
                1,
                &[],
                (*major, *minor),
            )?,
        }
    }
    emit(out, "TRAILER!!!", 0, 1, &[], (0, 0))?;
    Ok(())
}
