//! Directory entries: the 32-byte records, VFAT long-name assembly, name
//! matching with `fatfs`'s semantics, and path splitting.

use alloc::string::String;
use alloc::vec::Vec;

use super::{le16, DirEntry, FsError, MAX_NAME_LEN, MAX_PATH_LEN};

/// Where a directory's entries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DirLoc {
    /// FAT12/16 fixed root region.
    Root,
    /// A cluster chain.
    Chain(u32),
}

/// A parsed directory entry (internal).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) lfn: Vec<u16>,
    pub(super) sfn: [u8; 11],
    pub(super) nt_flags: u8,
    pub(super) attr: u8,
    pub(super) cluster: u32,
    pub(super) size: u32,
}

pub(super) const ATTR_VOLUME: u8 = 0x08;
pub(super) const ATTR_DIR: u8 = 0x10;
pub(super) const ATTR_LFN: u8 = 0x0F;

impl Entry {
    pub(super) fn is_dir(&self) -> bool {
        self.attr & ATTR_DIR != 0
    }

    pub(super) fn is_dot(&self) -> bool {
        &self.sfn == b".          " || &self.sfn == b"..         "
    }

    /// Short name as `fatfs` decodes it: "NAME.EXT", 0x05 -> 0xE5.
    pub(super) fn short_name_bytes(raw: &[u8; 11]) -> ([u8; 12], usize) {
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

    pub(super) fn decode_oem(b: u8) -> char {
        if b <= 0x7F {
            char::from(b)
        } else {
            '\u{FFFD}'
        }
    }

    pub(super) fn display_name(&self) -> String {
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
    pub(super) fn matches(&self, name: &str) -> bool {
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

    pub(super) fn to_public(&self) -> DirEntry {
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

pub(super) fn lfn_checksum(sfn: &[u8; 11]) -> u8 {
    sfn.iter()
        .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b))
}

/// VFAT long-name assembly, mirroring `fatfs`'s rules so that both agree on
/// which entry a name refers to.
pub(super) struct LfnBuilder {
    buf: Vec<u16>,
    chksum: u8,
    index: u8,
}

impl LfnBuilder {
    pub(super) fn new() -> Self {
        Self {
            buf: Vec::new(),
            chksum: 0,
            index: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.index = 0;
    }

    pub(super) fn process(&mut self, raw: &[u8]) {
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

    pub(super) fn finish(mut self, sfn: &[u8; 11]) -> Vec<u16> {
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
pub(super) fn split_path(path: &str) -> Result<Vec<&str>, FsError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn split_path_normalises() {
        assert_eq!(split_path("/a//b/./c/../d/").unwrap(), ["a", "b", "d"]);
        assert!(split_path("/").unwrap().is_empty());
        assert!(split_path("/../..").unwrap().is_empty());
        let long = "x".repeat(256);
        assert_eq!(split_path(&long), Err(FsError::PathTooLong));
        let very_long = "a/".repeat(600);
        assert_eq!(split_path(&very_long), Err(FsError::PathTooLong));
    }

    #[test]
    pub(super) fn lfn_checksum_matches_reference() {
        // Reference value computed with the spec's algorithm for "README  TXT".
        let mut s = 0u8;
        for &b in b"README  TXT" {
            s = (if s & 1 != 0 { 0x80 } else { 0 }) + (s >> 1);
            s = s.wrapping_add(b);
        }
        assert_eq!(lfn_checksum(b"README  TXT"), s);
    }
}
