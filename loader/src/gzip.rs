//! gzip (RFC 1952) for Image.gz: the header is parsed and the trailer read
//! BEFORE anything is inflated, so the output size comes from the file
//! (ISIZE), never from a guess. Inflation goes straight into a destination
//! slice of exactly that size; CRC32 and ISIZE are checked afterwards.

use core::fmt;
use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GzError {
    NotGzip,
    Truncated,
    Method(u8),
    ReservedFlags(u8),
    HeaderCrc,
    Corrupt(&'static str),
    SizeMismatch { expected: u32, got: u64 },
    Crc { stored: u32, computed: u32 },
    OutputTooSmall { need: u64, have: u64 },
    TrailingOutput,
}

impl fmt::Display for GzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotGzip => f.write_str("not gzip data"),
            Self::Truncated => f.write_str("gzip data truncated"),
            Self::Method(m) => write!(f, "gzip compression method {m} is not deflate"),
            Self::ReservedFlags(x) => write!(f, "gzip header has reserved flags {x:#x}"),
            Self::HeaderCrc => f.write_str("gzip header CRC mismatch"),
            Self::Corrupt(why) => write!(f, "corrupt deflate data ({why})"),
            Self::SizeMismatch { expected, got } => {
                write!(
                    f,
                    "gzip trailer says {expected} bytes, stream inflates to {got}"
                )
            }
            Self::Crc { stored, computed } => {
                write!(
                    f,
                    "gzip CRC32 mismatch: trailer {stored:08x}, data {computed:08x}"
                )
            }
            Self::OutputTooSmall { need, have } => {
                write!(f, "gzip output needs {need} bytes, destination has {have}")
            }
            Self::TrailingOutput => f.write_str("deflate stream continues past the trailer's size"),
        }
    }
}

/// What the header and trailer say, before inflating anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzInfo {
    /// Offset of the deflate stream.
    pub data_offset: usize,
    /// Uncompressed size (ISIZE, mod 2^32).
    pub isize: u32,
    pub crc32: u32,
}

pub fn is_gzip(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0x1f && b[1] == 0x8b
}

/// The length of the gzip header at the start of `b` (where the deflate stream starts).
pub fn header_len(b: &[u8]) -> Result<usize, GzError> {
    if !is_gzip(b) {
        return Err(GzError::NotGzip);
    }
    if b.len() < 18 {
        return Err(GzError::Truncated);
    }
    if b[2] != 8 {
        return Err(GzError::Method(b[2]));
    }
    let flg = b[3];
    if flg & 0xe0 != 0 {
        return Err(GzError::ReservedFlags(flg));
    }
    let mut off = 10usize;
    if flg & 0x04 != 0 {
        let xlen = u16::from_le_bytes([
            *b.get(off).ok_or(GzError::Truncated)?,
            *b.get(off + 1).ok_or(GzError::Truncated)?,
        ]);
        off = off
            .checked_add(2 + xlen as usize)
            .ok_or(GzError::Truncated)?;
    }
    for bit in [0x08u8, 0x10] {
        if flg & bit != 0 {
            let rest = b.get(off..).ok_or(GzError::Truncated)?;
            let z = rest
                .iter()
                .position(|&c| c == 0)
                .ok_or(GzError::Truncated)?;
            off += z + 1;
        }
    }
    if flg & 0x02 != 0 {
        let hdr = b.get(..off).ok_or(GzError::Truncated)?;
        let want = u16::from_le_bytes([
            *b.get(off).ok_or(GzError::Truncated)?,
            *b.get(off + 1).ok_or(GzError::Truncated)?,
        ]);
        if (crc32fast::hash(hdr) & 0xffff) as u16 != want {
            return Err(GzError::HeaderCrc);
        }
        off += 2;
    }
    Ok(off)
}

/// Parses the header of a gzip member occupying exactly `b` (the trailer is
/// the last 8 bytes).
pub fn parse(b: &[u8]) -> Result<GzInfo, GzError> {
    let off = header_len(b)?;
    if off.checked_add(8).is_none_or(|e| e > b.len()) {
        return Err(GzError::Truncated);
    }
    let t = &b[b.len() - 8..];
    Ok(GzInfo {
        data_offset: off,
        crc32: u32::from_le_bytes([t[0], t[1], t[2], t[3]]),
        isize: u32::from_le_bytes([t[4], t[5], t[6], t[7]]),
    })
}

fn map_status(s: TINFLStatus) -> GzError {
    match s {
        TINFLStatus::FailedCannotMakeProgress => GzError::Truncated,
        TINFLStatus::BadParam => GzError::Corrupt("bad parameter"),
        TINFLStatus::Adler32Mismatch => GzError::Corrupt("adler32"),
        _ => GzError::Corrupt("invalid deflate stream"),
    }
}

/// Inflates the first `out.len()` bytes only (e.g. to read an Image header
/// before choosing where the whole Image goes). Returns the bytes produced.
pub fn inflate_prefix(b: &[u8], info: &GzInfo, out: &mut [u8]) -> Result<usize, GzError> {
    let data = &b[info.data_offset..b.len() - 8];
    let mut r = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (st, _, n) = decompress(&mut r, data, out, 0, flags);
    match st {
        TINFLStatus::Done | TINFLStatus::HasMoreOutput => Ok(n),
        s => Err(map_status(s)),
    }
}

/// Inflates the whole member into `out`, which must be exactly ISIZE bytes
/// (the caller sized and claimed it from the trailer), then checks the
/// stream's length and CRC32 against the trailer.
pub fn inflate_into(b: &[u8], info: &GzInfo, out: &mut [u8]) -> Result<(), GzError> {
    if out.len() as u64 != info.isize as u64 {
        return Err(GzError::OutputTooSmall {
            need: info.isize as u64,
            have: out.len() as u64,
        });
    }
    let data = &b[info.data_offset..b.len() - 8];
    let mut r = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (st, _, n) = decompress(&mut r, data, out, 0, flags);
    match st {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => return Err(GzError::TrailingOutput),
        s => return Err(map_status(s)),
    }
    if n as u64 != info.isize as u64 {
        return Err(GzError::SizeMismatch {
            expected: info.isize,
            got: n as u64,
        });
    }
    let c = crc32fast::hash(&out[..n]);
    if c != info.crc32 {
        return Err(GzError::Crc {
            stored: info.crc32,
            computed: c,
        });
    }
    Ok(())
}

/// A gzip member at the start of `b` whose length is not known (`unzip`): inflated into
/// `out` until the deflate stream ends itself, then checked against the trailer that follows
/// it. Returns `(member length, bytes produced)`.
pub fn inflate_stream(b: &[u8], out: &mut [u8]) -> Result<(usize, usize), GzError> {
    let off = header_len(b)?;
    let data = b.get(off..).ok_or(GzError::Truncated)?;
    let mut r = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (st, used, n) = decompress(&mut r, data, out, 0, flags);
    match st {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => {
            return Err(GzError::OutputTooSmall {
                need: out.len() as u64 + 1,
                have: out.len() as u64,
            })
        }
        s => return Err(map_status(s)),
    }
    let t = data.get(used..used + 8).ok_or(GzError::Truncated)?;
    let crc32 = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
    if u64::from(isize) != (n as u64 & 0xffff_ffff) {
        return Err(GzError::SizeMismatch {
            expected: isize,
            got: n as u64,
        });
    }
    let c = crc32fast::hash(&out[..n]);
    if c != crc32 {
        return Err(GzError::Crc {
            stored: crc32,
            computed: c,
        });
    }
    Ok((off + used + 8, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// gzip of b"hello hello hello hello\n" made by `gzip -n`.
    fn sample() -> (Vec<u8>, Vec<u8>) {
        let plain = b"hello hello hello hello\n".repeat(100);
        let deflated = miniz_oxide::deflate::compress_to_vec(&plain, 6);
        let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        gz.extend_from_slice(&deflated);
        gz.extend_from_slice(&crc32fast::hash(&plain).to_le_bytes());
        gz.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        (gz, plain)
    }

    #[test]
    fn a_member_of_unknown_length_ends_itself() {
        let (mut gz, plain) = sample();
        let member = gz.len();
        gz.extend_from_slice(b"whatever follows in memory");
        let mut out = vec![0u8; plain.len() + 100];
        assert_eq!(inflate_stream(&gz, &mut out), Ok((member, plain.len())));
        assert_eq!(&out[..plain.len()], &plain[..]);
        // Too little room; a corrupt trailer; not gzip.
        let mut small = vec![0u8; 10];
        assert!(matches!(
            inflate_stream(&gz, &mut small),
            Err(GzError::OutputTooSmall { .. })
        ));
        let mut bad = gz.clone();
        bad[member - 8] ^= 1;
        assert!(matches!(
            inflate_stream(&bad, &mut out),
            Err(GzError::Crc { .. })
        ));
        assert_eq!(inflate_stream(b"nope", &mut out), Err(GzError::NotGzip));
        assert_eq!(
            inflate_stream(&gz[..member - 3], &mut out),
            Err(GzError::Truncated)
        );
    }

    #[test]
    fn roundtrip_and_prefix() {
        let (gz, plain) = sample();
        let info = parse(&gz).unwrap();
        assert_eq!(info.isize as usize, plain.len());
        let mut head = [0u8; 64];
        assert_eq!(inflate_prefix(&gz, &info, &mut head), Ok(64));
        assert_eq!(&head[..], &plain[..64]);
        let mut out = vec![0u8; plain.len()];
        inflate_into(&gz, &info, &mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn errors() {
        let (gz, plain) = sample();
        let info = parse(&gz).unwrap();
        let mut out = vec![0u8; plain.len() - 1];
        assert!(matches!(
            inflate_into(&gz, &info, &mut out),
            Err(GzError::OutputTooSmall { .. })
        ));
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 8] ^= 1;
        let bi = parse(&bad).unwrap();
        let mut out = vec![0u8; plain.len()];
        assert!(matches!(
            inflate_into(&bad, &bi, &mut out),
            Err(GzError::Crc { .. })
        ));
        // Truncated stream: the trailer now sits inside the data.
        let cut = &gz[..gz.len() / 2];
        if let Ok(ci) = parse(cut) {
            let mut out = vec![0u8; ci.isize as usize % (1 << 20)];
            assert!(inflate_into(cut, &ci, &mut out).is_err());
        }
        assert_eq!(parse(b"\x1f\x8b\x07"), Err(GzError::Truncated));
        assert_eq!(parse(b"not gzip at all, no"), Err(GzError::NotGzip));
        let mut m = gz.clone();
        m[2] = 7;
        assert_eq!(parse(&m), Err(GzError::Method(7)));
    }

    #[test]
    fn random_mutations_never_panic() {
        let (gz, _) = sample();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut m = gz.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len();
                m[i] = (x >> 32) as u8;
            }
            let cut = (x >> 40) as usize % (m.len() + 1);
            let m = &m[..cut.max(1)];
            if let Ok(info) = parse(m) {
                let mut head = [0u8; 64];
                let _ = inflate_prefix(m, &info, &mut head);
                let mut out = vec![0u8; (info.isize as usize).min(1 << 16)];
                let _ = inflate_into(m, &info, &mut out);
            }
        }
    }
}
