//! Parsing of U-Boot device arguments (`virtio 0:1`) and the legacy
//! mkimage script image (boot.scr). Pure and host-tested.

use alloc::string::String;
use core::fmt;

/// `<dev>[:<part>]` as typed after the interface name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevPart {
    pub dev: usize,
    /// None: "the filesystem on this disk" (whole disk if it holds one,
    /// else the default partition). Some(0): the whole disk.
    pub part: Option<u32>,
}

pub fn parse_dev_part(s: &str) -> Result<DevPart, String> {
    let (d, p) = match s.split_once(':') {
        Some((d, p)) => (d, Some(p)),
        None => (s, None),
    };
    let dev = usize::from_str_radix(d.trim_start_matches("0x"), 16)
        .map_err(|_| alloc::format!("bad device number '{d}'"))?;
    let part = match p {
        None | Some("") | Some("auto") => None,
        Some(p) => Some(
            u32::from_str_radix(p.trim_start_matches("0x"), 16)
                .map_err(|_| alloc::format!("bad partition number '{p}'"))?,
        ),
    };
    Ok(DevPart { dev, part })
}

/// U-Boot legacy image header (include/image.h): 64 bytes, big-endian.
pub const LEGACY_MAGIC: u32 = 0x2705_1956;
const IH_TYPE_SCRIPT: u8 = 6;

#[derive(Debug, PartialEq, Eq)]
pub enum ScriptError {
    Truncated,
    HeaderCrc { stored: u32, computed: u32 },
    DataCrc { stored: u32, computed: u32 },
    NotAScript(u8),
    BadLengthTable,
    NotText,
    Empty,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("script image truncated"),
            Self::HeaderCrc { stored, computed } => {
                write!(
                    f,
                    "bad header checksum {stored:08x} (computed {computed:08x})"
                )
            }
            Self::DataCrc { stored, computed } => {
                write!(
                    f,
                    "bad data checksum {stored:08x} (computed {computed:08x})"
                )
            }
            Self::NotAScript(t) => write!(f, "legacy image type {t} is not a script"),
            Self::BadLengthTable => f.write_str("bad script length table"),
            Self::NotText => f.write_str("script is not text (binary data or invalid UTF-8)"),
            Self::Empty => f.write_str("empty script"),
        }
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Extracts the script text from `mem`: a legacy script image (checksums
/// verified) or plain text (up to the first NUL).
pub fn script_text(mem: &[u8]) -> Result<&str, ScriptError> {
    let text = if be32(mem, 0) == Some(LEGACY_MAGIC) {
        legacy_script(mem)?
    } else {
        let end = mem.iter().position(|&b| b == 0).unwrap_or(mem.len());
        &mem[..end]
    };
    let s = core::str::from_utf8(text).map_err(|_| ScriptError::NotText)?;
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ScriptError::NotText);
    }
    if s.trim().is_empty() {
        return Err(ScriptError::Empty);
    }
    Ok(s)
}

fn legacy_script(mem: &[u8]) -> Result<&[u8], ScriptError> {
    let hdr = mem.get(..64).ok_or(ScriptError::Truncated)?;
    let stored_hcrc = be32(hdr, 4).ok_or(ScriptError::Truncated)?;
    let mut h = [0u8; 64];
    h.copy_from_slice(hdr);
    h[4..8].fill(0);
    let hcrc = crc32fast::hash(&h);
    if hcrc != stored_hcrc {
        return Err(ScriptError::HeaderCrc {
            stored: stored_hcrc,
            computed: hcrc,
        });
    }
    let size = be32(hdr, 12).ok_or(ScriptError::Truncated)? as usize;
    let dcrc_stored = be32(hdr, 24).ok_or(ScriptError::Truncated)?;
    let typ = hdr[30];
    if typ != IH_TYPE_SCRIPT {
        return Err(ScriptError::NotAScript(typ));
    }
    let data = mem
        .get(64..64usize.checked_add(size).ok_or(ScriptError::Truncated)?)
        .ok_or(ScriptError::Truncated)?;
    let dcrc = crc32fast::hash(data);
    if dcrc != dcrc_stored {
        return Err(ScriptError::DataCrc {
            stored: dcrc_stored,
            computed: dcrc,
        });
    }
    // Multi-file layout: u32 BE lengths terminated by 0; the script is the first.
    let mut off = 0usize;
    let mut lens = alloc::vec::Vec::new();
    loop {
        let l = be32(data, off).ok_or(ScriptError::BadLengthTable)?;
        off += 4;
        if l == 0 {
            break;
        }
        lens.push(l as usize);
        if lens.len() > 64 {
            return Err(ScriptError::BadLengthTable);
        }
    }
    let first = *lens.first().ok_or(ScriptError::BadLengthTable)?;
    let end = off.checked_add(first).ok_or(ScriptError::BadLengthTable)?;
    data.get(off..end).ok_or(ScriptError::BadLengthTable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn mkimage(script: &[u8], typ: u8) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&(script.len() as u32).to_be_bytes());
        data.extend_from_slice(&0u32.to_be_bytes());
        data.extend_from_slice(script);
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&LEGACY_MAGIC.to_be_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
        h[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
        h[28] = 5; // linux
        h[29] = 22; // arm64
        h[30] = typ;
        let hc = crc32fast::hash(&h);
        h[4..8].copy_from_slice(&hc.to_be_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn dev_part() {
        assert_eq!(parse_dev_part("0"), Ok(DevPart { dev: 0, part: None }));
        assert_eq!(
            parse_dev_part("1:2"),
            Ok(DevPart {
                dev: 1,
                part: Some(2)
            })
        );
        assert_eq!(
            parse_dev_part("0:0"),
            Ok(DevPart {
                dev: 0,
                part: Some(0)
            })
        );
        assert_eq!(
            parse_dev_part("a:f"),
            Ok(DevPart {
                dev: 10,
                part: Some(15)
            })
        );
        assert!(parse_dev_part("x").is_err());
        assert!(parse_dev_part("0:zz").is_err());
        assert!(parse_dev_part("").is_err());
    }

    #[test]
    fn legacy_and_plain_scripts() {
        let img = mkimage(b"echo hi\n", 6);
        assert_eq!(script_text(&img), Ok("echo hi\n"));
        assert_eq!(script_text(b"echo plain\n\0garbage"), Ok("echo plain\n"));
        assert_eq!(
            script_text(&mkimage(b"echo\n", 2)),
            Err(ScriptError::NotAScript(2))
        );
        let mut bad = img.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            script_text(&bad),
            Err(ScriptError::DataCrc { .. })
        ));
        let mut badh = img.clone();
        badh[20] ^= 1;
        assert!(matches!(
            script_text(&badh),
            Err(ScriptError::HeaderCrc { .. })
        ));
        assert_eq!(script_text(&img[..70]), Err(ScriptError::Truncated));
        assert_eq!(script_text(b"\x7fELF\x01\x02"), Err(ScriptError::NotText));
        assert_eq!(script_text(b"\0"), Err(ScriptError::Empty));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for i in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            let mut v: Vec<u8> = (0..len).map(|j| (x >> (j % 56)) as u8).collect();
            if i % 3 == 0 && v.len() >= 4 {
                v[..4].copy_from_slice(&LEGACY_MAGIC.to_be_bytes());
            }
            let _ = script_text(&v);
            let _ = parse_dev_part(core::str::from_utf8(&v).unwrap_or("0"));
        }
    }
}
