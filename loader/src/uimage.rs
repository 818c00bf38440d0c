//! U-Boot's legacy image format (mkimage `-A arm64 -T ramdisk|kernel`,
//! include/image.h): a 64-byte big-endian header before the data. Parsed and
//! checked here — magic, header CRC, type, architecture, compression, the
//! data CRC — before `booti` hands a `uInitrd` on or `bootm` boots a
//! `uImage`. Pure and host-tested.

use alloc::string::String;
use core::fmt;

/// `IH_MAGIC`.
pub const MAGIC: u32 = 0x2705_1956;
/// Length of the header.
pub const HEADER_LEN: u64 = 64;

/// `IH_TYPE_*` that parkboot knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Kernel,
    Ramdisk,
    Script,
    Other(u8),
}

impl ImageType {
    const fn from_byte(b: u8) -> Self {
        match b {
            2 => Self::Kernel,
            3 => Self::Ramdisk,
            6 => Self::Script,
            o => Self::Other(o),
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::Script => "script",
            Self::Other(_) => "other",
        }
    }
}

/// `IH_COMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Other(u8),
}

/// `IH_ARCH_ARM64`.
pub const ARCH_ARM64: u8 = 22;
/// `IH_OS_LINUX`.
pub const OS_LINUX: u8 = 5;

/// A checked header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Bytes of data after the header.
    pub size: u32,
    pub load: u32,
    pub entry: u32,
    pub data_crc: u32,
    pub os: u8,
    pub arch: u8,
    pub kind: ImageType,
    pub comp: Compression,
    /// `ih_name`, up to its NUL.
    pub name: String,
}

/// Why a legacy image is refused. `Display` is the one line after `<who>: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UImageError {
    Short(usize),
    BadMagic(u32),
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    DataCrc {
        stored: u32,
        computed: u32,
    },
    WrongType {
        want: &'static str,
        got: ImageType,
    },
    WrongArch(u8),
    Compression(u8),
    /// The data does not fit in what was given (`:size`, or what was loaded).
    Truncated {
        size: u32,
        have: u64,
    },
}

impl fmt::Display for UImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(n) => write!(f, "legacy image header needs 64 bytes, have {n}"),
            Self::BadMagic(m) => write!(f, "bad legacy image magic {m:08x} (want 27051956)"),
            Self::HeaderCrc { stored, computed } => write!(
                f,
                "legacy image: bad header checksum {stored:08x} (computed {computed:08x})"
            ),
            Self::DataCrc { stored, computed } => write!(
                f,
                "legacy image: bad data checksum {stored:08x} (computed {computed:08x})"
            ),
            Self::WrongType { want, got } => match got {
                ImageType::Other(t) => write!(f, "legacy image type {t} is not a {want}"),
                t => write!(f, "legacy image is a {}, not a {want}", t.name()),
            },
            Self::WrongArch(a) => write!(f, "legacy image architecture {a} is not arm64 (22)"),
            Self::Compression(c) => write!(
                f,
                "legacy image compression {c} is not supported (none or gzip)"
            ),
            Self::Truncated { size, have } => write!(
                f,
                "legacy image data is {size} bytes but only {have} follow the header"
            ),
        }
    }
}

fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Does `head` start with the legacy magic?
#[must_use]
pub fn is_legacy(head: &[u8]) -> bool {
    head.len() >= 4 && be32(head, 0) == MAGIC
}

impl Header {
    /// Parses and checks the header in `hdr` (at least 64 bytes): magic and header CRC.
    ///
    /// # Errors
    /// [`UImageError`].
    pub fn parse(hdr: &[u8]) -> Result<Self, UImageError> {
        let h = hdr
            .get(..HEADER_LEN as usize)
            .ok_or(UImageError::Short(hdr.len()))?;
        let magic = be32(h, 0);
        if magic != MAGIC {
            return Err(UImageError::BadMagic(magic));
        }
        let stored = be32(h, 4);
        let mut copy = [0u8; HEADER_LEN as usize];
        copy.copy_from_slice(h);
        copy[4..8].fill(0);
        let computed = crc32fast::hash(&copy);
        if stored != computed {
            return Err(UImageError::HeaderCrc { stored, computed });
        }
        let name_bytes = &h[32..64];
        let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(32);
        Ok(Self {
            size: be32(h, 12),
            load: be32(h, 16),
            entry: be32(h, 20),
            data_crc: be32(h, 24),
            os: h[28],
            arch: h[29],
            kind: ImageType::from_byte(h[30]),
            comp: match h[31] {
                0 => Compression::None,
                1 => Compression::Gzip,
                c => Compression::Other(c),
            },
            name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
        })
    }

    /// A ramdisk for arm64 (U-Boot also accepts a ramdisk marked for another arch only
    /// when it is `IH_ARCH_INVALID`-free; parkboot wants arm64), uncompressed (the kernel
    /// inflates its initramfs itself, so `-C gzip` data is handed on as it is, as U-Boot does).
    ///
    /// # Errors
    /// Not a ramdisk, or not arm64.
    pub fn expect_ramdisk(&self) -> Result<(), UImageError> {
        if self.kind != ImageType::Ramdisk {
            return Err(UImageError::WrongType {
                want: "ramdisk",
                got: self.kind,
            });
        }
        if self.arch != ARCH_ARM64 {
            return Err(UImageError::WrongArch(self.arch));
        }
        Ok(())
    }

    /// An arm64 kernel, uncompressed or gzip'd.
    ///
    /// # Errors
    /// Not a kernel, not arm64, or another compression.
    pub fn expect_kernel(&self) -> Result<(), UImageError> {
        if self.kind != ImageType::Kernel {
            return Err(UImageError::WrongType {
                want: "kernel",
                got: self.kind,
            });
        }
        if self.arch != ARCH_ARM64 {
            return Err(UImageError::WrongArch(self.arch));
        }
        match self.comp {
            Compression::None | Compression::Gzip => Ok(()),
            Compression::Other(c) => Err(UImageError::Compression(c)),
        }
    }

    /// Checks the data CRC over `data` (what follows the header; at least `size` bytes).
    ///
    /// # Errors
    /// Too little data, or a CRC mismatch.
    pub fn check_data(&self, data: &[u8]) -> Result<(), UImageError> {
        let d = data
            .get(..self.size as usize)
            .ok_or(UImageError::Truncated {
                size: self.size,
                have: data.len() as u64,
            })?;
        let computed = crc32fast::hash(d);
        if computed != self.data_crc {
            return Err(UImageError::DataCrc {
                stored: self.data_crc,
                computed,
            });
        }
        Ok(())
    }

    /// Where the data lies for an image whose header is at `addr`: `(addr + 64, size)`.
    #[must_use]
    pub const fn data_range(&self, addr: u64) -> (u64, u64) {
        (addr.wrapping_add(HEADER_LEN), self.size as u64)
    }
}

/// Builds a legacy image (for tests and tools): `mkimage -A arm64 -O linux -T <kind> -C none`.
#[must_use]
pub fn build(
    kind: u8,
    comp: u8,
    load: u32,
    entry: u32,
    name: &str,
    data: &[u8],
) -> alloc::vec::Vec<u8> {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    h[16..20].copy_from_slice(&load.to_be_bytes());
    h[20..24].copy_from_slice(&entry.to_be_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
    h[28] = OS_LINUX;
    h[29] = ARCH_ARM64;
    h[30] = kind;
    h[31] = comp;
    let n = name.len().min(31);
    h[32..32 + n].copy_from_slice(&name.as_bytes()[..n]);
    let hc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&hc.to_be_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn ramdisk_checks() {
        let img = build(3, 0, 0, 0, "uInitrd", b"0707010000");
        let h = Header::parse(&img).unwrap();
        assert_eq!(h.name, "uInitrd");
        assert_eq!(h.size, 10);
        h.expect_ramdisk().unwrap();
        h.check_data(&img[64..]).unwrap();
        assert_eq!(h.data_range(0x1000), (0x1040, 10));
        assert!(h.expect_kernel().is_err());
        // A flipped data byte: the data CRC says so.
        let mut bad = img.clone();
        bad[70] ^= 1;
        let e = Header::parse(&bad)
            .unwrap()
            .check_data(&bad[64..])
            .unwrap_err();
        assert!(matches!(e, UImageError::DataCrc { .. }), "{e}");
        // A flipped header byte: the header CRC.
        let mut bad = img.clone();
        bad[40] ^= 1;
        assert!(matches!(
            Header::parse(&bad),
            Err(UImageError::HeaderCrc { .. })
        ));
        // Truncated data.
        let e = h.check_data(&img[64..70]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "legacy image data is 10 bytes but only 6 follow the header"
        );
        assert_eq!(
            Header::parse(&img[..10]).unwrap_err().to_string(),
            "legacy image header needs 64 bytes, have 10"
        );
        assert!(matches!(
            Header::parse(&[0u8; 64]),
            Err(UImageError::BadMagic(0))
        ));
    }

    #[test]
    fn type_arch_and_compression() {
        let k = build(2, 1, 0x4008_0000, 0x4008_0000, "Linux", b"x");
        let h = Header::parse(&k).unwrap();
        h.expect_kernel().unwrap();
        assert_eq!(h.comp, Compression::Gzip);
        assert_eq!(
            h.expect_ramdisk().unwrap_err().to_string(),
            "legacy image is a kernel, not a ramdisk"
        );
        let mut arm = build(3, 0, 0, 0, "", b"x");
        arm[29] = 2;
        arm[4..8].fill(0);
        let hc = crc32fast::hash(&arm[..64]);
        arm[4..8].copy_from_slice(&hc.to_be_bytes());
        assert_eq!(
            Header::parse(&arm).unwrap().expect_ramdisk().unwrap_err(),
            UImageError::WrongArch(2)
        );
        let lz = build(2, 3, 0, 0, "", b"x");
        assert_eq!(
            Header::parse(&lz).unwrap().expect_kernel().unwrap_err(),
            UImageError::Compression(3)
        );
        let fw = build(5, 0, 0, 0, "", b"x");
        assert_eq!(
            Header::parse(&fw)
                .unwrap()
                .expect_kernel()
                .unwrap_err()
                .to_string(),
            "legacy image type 5 is not a kernel"
        );
    }
}
