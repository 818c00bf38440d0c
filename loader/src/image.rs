//! The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst).
//!
//! ```text
//! off  field          notes
//!   0  code0 (u32)    first instructions (an EFI-stub kernel starts with "MZ")
//!   4  code1 (u32)
//!   8  text_offset    image goes at a 2 MiB-aligned base + text_offset
//!  16  image_size     whole memory footprint incl. BSS; 0 = pre-3.17 kernel
//!  24  flags          bit0 big-endian, bits1-2 page size, bit3 placement
//!  32  res2, res3, res4 (u64)
//!  56  magic (u32)    0x644d5241 "ARM\x64"
//!  60  res5 (u32)     offset of the PE header (EFI stub), else 0
//! ```
//! All fields are little-endian.

use core::fmt;

use crate::memmap::{MemError, MemMap, Owner, Prefer};

/// `"ARM\x64"` at offset 56.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;
/// Size of the header.
pub const IMAGE_HEADER_LEN: usize = 64;
/// Kernel base alignment.
pub const IMAGE_ALIGN: u64 = 2 << 20;
/// `text_offset` assumed for a header with `image_size == 0` (pre-3.17 kernels).
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// Footprint assumed for a header with `image_size == 0`.
pub const LEGACY_IMAGE_SIZE: u64 = 16 << 20;

/// Page size the kernel was built for (flags bits 1-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    Unspecified,
    K4,
    K16,
    K64,
}

/// Physical placement (flags bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementPolicy {
    /// 0: the 2 MiB-aligned base should be as close as possible to the base of DRAM (memory below
    /// it is not usable by the kernel).
    NearDramBase,
    /// 1: anywhere in physical memory.
    Anywhere,
}

/// Why an Image header or placement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    TooShort {
        len: usize,
    },
    BadMagic {
        found: u32,
    },
    BigEndian,
    /// The header's footprint does not cover the file.
    ImageSizeTooSmall {
        image_size: u64,
        file_len: u64,
    },
    /// Placement arithmetic overflowed.
    Overflow {
        addr: u64,
    },
    /// No free 2 MiB-aligned RAM for a kernel that must sit near the DRAM base.
    NoRoom {
        footprint: u64,
    },
    /// The placement is not free RAM.
    Memory(MemError),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "Image header needs {IMAGE_HEADER_LEN} bytes, only {len} available"
            ),
            Self::BadMagic { found } => write!(
                f,
                "not an arm64 Image: magic {found:#010x} at offset 56, expected {IMAGE_MAGIC:#010x}"
            ),
            Self::BigEndian => f.write_str("big-endian Image not supported"),
            Self::ImageSizeTooSmall {
                image_size,
                file_len,
            } => write!(
                f,
                "Image header image_size {image_size:#x} is smaller than the file ({file_len:#x} bytes)"
            ),
            Self::Overflow { addr } => {
                write!(f, "Image placement at {addr:#x} overflows the address space")
            }
            Self::NoRoom { footprint } => write!(
                f,
                "no free 2 MiB-aligned RAM for the kernel's {footprint:#x}-byte footprint"
            ),
            Self::Memory(e) => write!(f, "kernel placement: {e}"),
        }
    }
}

/// A parsed Image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub code0: u32,
    pub code1: u32,
    /// Effective text offset (0x80000 for a legacy header).
    pub text_offset: u64,
    /// Effective footprint from the start of the image (16 MiB for a legacy header).
    pub image_size: u64,
    pub flags: u64,
    /// `res5`: PE header offset for an EFI-stub kernel, else 0.
    pub pe_offset: u32,
    /// The header had `image_size == 0` (pre-3.17 kernel); the two fields above are the defaults.
    pub legacy: bool,
}

/// Where to put the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePlacement {
    /// 2 MiB-aligned base.
    pub base: u64,
    /// `base + text_offset`: where the Image's first byte goes and where to jump.
    pub entry: u64,
    /// `entry + image_size` (exclusive): the footprint to claim is `[entry, end)`.
    pub end: u64,
    /// The file at `loaded_at` must be moved to `entry` (use an overlapping-safe copy).
    pub needs_move: bool,
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = off.checked_add(4).and_then(|e| b.get(off..e)) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = off.checked_add(8).and_then(|e| b.get(off..e)) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl ImageHeader {
    /// Parses the first 64 bytes of `bytes`.
    ///
    /// # Errors
    /// [`ImageError::TooShort`], [`ImageError::BadMagic`], [`ImageError::BigEndian`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        let Some(h) = bytes.get(..IMAGE_HEADER_LEN) else {
            return Err(ImageError::TooShort { len: bytes.len() });
        };
        let magic = le32(h, 56);
        if magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let raw_size = le64(h, 16);
        let flags = le64(h, 24);
        let legacy = raw_size == 0;
        if !legacy && flags & 1 != 0 {
            return Err(ImageError::BigEndian);
        }
        let (text_offset, image_size) = if legacy {
            (LEGACY_TEXT_OFFSET, LEGACY_IMAGE_SIZE)
        } else {
            (le64(h, 8), raw_size)
        };
        Ok(Self {
            code0: le32(h, 0),
            code1: le32(h, 4),
            text_offset,
            image_size,
            // Pre-3.17 headers have no flags: treat as all-zero (LE, unspecified, near base).
            flags: if legacy { 0 } else { flags },
            pe_offset: le32(h, 60),
            legacy,
        })
    }

    #[must_use]
    pub const fn page_size(&self) -> PageSize {
        match (self.flags >> 1) & 3 {
            1 => PageSize::K4,
            2 => PageSize::K16,
            3 => PageSize::K64,
            _ => PageSize::Unspecified,
        }
    }

    #[must_use]
    pub const fn placement_policy(&self) -> PlacementPolicy {
        if self.flags & 8 != 0 {
            PlacementPolicy::Anywhere
        } else {
            PlacementPolicy::NearDramBase
        }
    }

    /// An EFI-stub kernel ("MZ" at offset 0 and a PE header offset).
    #[must_use]
    pub const fn is_efi_stub(&self) -> bool {
        self.code0 & 0xffff == 0x5a4d && self.pe_offset != 0
    }

    /// Decides where the kernel runs, for a file of `file_len` bytes currently at `loaded_at`.
    ///
    /// * `image_size` must be at least `file_len` (the footprint must cover the file).
    /// * [`PlacementPolicy::Anywhere`]: like U-Boot's booti, the base is `loaded_at - text_offset`
    ///   rounded up to 2 MiB, so a file loaded at a 2 MiB boundary (text_offset 0) runs in place.
    /// * [`PlacementPolicy::NearDramBase`]: the lowest 2 MiB-aligned base whose footprint is free.
    ///
    /// The footprint `[entry, end)` must be free RAM in `map` (nothing is claimed here; the caller
    /// claims it as [`Owner::Kernel`] once it commits, after releasing any claim on the loaded
    /// file itself).
    ///
    /// # Errors
    /// [`ImageError::ImageSizeTooSmall`], [`ImageError::Overflow`], [`ImageError::NoRoom`],
    /// [`ImageError::Memory`].
    pub fn placement(
        &self,
        map: &MemMap,
        loaded_at: u64,
        file_len: u64,
    ) -> Result<ImagePlacement, ImageError> {
        if self.image_size < file_len {
            return Err(ImageError::ImageSizeTooSmall {
                image_size: self.image_size,
                file_len,
            });
        }
        let overflow = ImageError::Overflow { addr: loaded_at };
        let base = match self.placement_policy() {
            PlacementPolicy::Anywhere => {
                let b = loaded_at.saturating_sub(self.text_offset);
                b.checked_add(IMAGE_ALIGN - 1).ok_or(overflow.clone())? & !(IMAGE_ALIGN - 1)
            }
            PlacementPolicy::NearDramBase => {
                let footprint = self
                    .text_offset
                    .checked_add(self.image_size)
                    .ok_or(overflow.clone())?;
                map.find_free(footprint, IMAGE_ALIGN, None, Prefer::Low)
                    .ok_or(ImageError::NoRoom { footprint })?
            }
        };
        let entry = base.checked_add(self.text_offset).ok_or(overflow.clone())?;
        let end = entry.checked_add(self.image_size).ok_or(overflow)?;
        map.check(entry, self.image_size, &Owner::Kernel)
            .map_err(ImageError::Memory)?;
        Ok(ImagePlacement {
            base,
            entry,
            end,
            needs_move: entry != loaded_at,
        })
    }
}

impl fmt::Display for ImageHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arm64 Image: text_offset {:#x}, image_size {:#x}{}, page size {}, {}{}",
            self.text_offset,
            self.image_size,
            if self.legacy { " (legacy header)" } else { "" },
            match self.page_size() {
                PageSize::Unspecified => "unspecified",
                PageSize::K4 => "4K",
                PageSize::K16 => "16K",
                PageSize::K64 => "64K",
            },
            match self.placement_policy() {
                PlacementPolicy::Anywhere => "placed anywhere",
                PlacementPolicy::NearDramBase => "placed near DRAM base",
            },
            if self.is_efi_stub() { ", EFI stub" } else { "" }
        )
    }
}

/// Most sections a PE/COFF file may have.
const PE_MAX_SECTIONS: usize = 96;

/// For an EFI-stub Image (`pe_offset` from its header): where the raw data
/// of its last PE/COFF section ends, i.e. how long the Image file is — if
/// `image` holds a well-formed PE header and section table there. A raw
/// Image carries its file length nowhere else; this tells a truncated one
/// (Linux's arm64 Image ends exactly with its `.data` section).
#[must_use]
pub fn pe_sections_end(image: &[u8], pe_offset: u32) -> Option<u64> {
    let pe = usize::try_from(pe_offset).ok()?;
    let at = |o: usize, n: usize| image.get(pe.checked_add(o)?..pe.checked_add(o)?.checked_add(n)?);
    if at(0, 4)? != b"PE\0\0" {
        return None;
    }
    let u16_at = |o: usize| at(o, 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let u32_at = |o: usize| at(o, 4).map(|b| u64::from(le32(b, 0)));
    let sections = u16_at(6)?;
    if sections == 0 || sections > PE_MAX_SECTIONS {
        return None;
    }
    let table = 24usize.checked_add(u16_at(20)?)?;
    (0..sections)
        .map(|i| {
            let s = table.checked_add(i * 40)?;
            Some(u32_at(s + 20)? + u32_at(s + 16)?)
        })
        .try_fold(0u64, |end, e| Some(end.max(e?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::Region;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    /// The first 64 bytes of Debian's 6.1 cloud arm64 Image (EFI stub, 4K pages, anywhere).
    const DEBIAN_6_1: [u8; 64] = [
        0x4d, 0x5a, 0x40, 0xfa, 0x46, 0x63, 0x4e, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0xab, 0x01, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0x52, 0x4d, 0x64, 0x40, 0, 0, 0,
    ];
    const DEBIAN_FILE_LEN: u64 = 27_302_400;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[56..60].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        h
    }

    fn map_1g() -> MemMap {
        let mut m = MemMap::new(&[Region::new(0x4000_0000, 1 << 30)]);
        m.claim(0x4020_0000, 0x130_0000, Owner::LoaderImage)
            .unwrap();
        m.claim(0x4800_0000, 0x10_0000, Owner::IncomingDt).unwrap();
        m
    }

    #[test]
    fn debian_header() {
        let h = ImageHeader::parse(&DEBIAN_6_1).unwrap();
        assert_eq!(h.text_offset, 0);
        assert_eq!(h.image_size, 0x01ab_0000);
        assert!(!h.legacy);
        assert_eq!(h.page_size(), PageSize::K4);
        assert_eq!(h.placement_policy(), PlacementPolicy::Anywhere);
        assert!(h.is_efi_stub());
        assert_eq!(h.pe_offset, 0x40);
        assert_eq!(
            h.to_string(),
            "arm64 Image: text_offset 0x0, image_size 0x1ab0000, page size 4K, placed anywhere, EFI stub"
        );
        let p = h
            .placement(&map_1g(), 0x4820_0000, DEBIAN_FILE_LEN)
            .unwrap();
        assert_eq!(
            p,
            ImagePlacement {
                base: 0x4820_0000,
                entry: 0x4820_0000,
                end: 0x4820_0000 + 0x01ab_0000,
                needs_move: false
            }
        );
    }

    #[test]
    fn flags_decode() {
        for (flags, ps, pp) in [
            (0u64, PageSize::Unspecified, PlacementPolicy::NearDramBase),
            (2, PageSize::K4, PlacementPolicy::NearDramBase),
            (4, PageSize::K16, PlacementPolicy::NearDramBase),
            (6 | 8, PageSize::K64, PlacementPolicy::Anywhere),
        ] {
            let h = ImageHeader::parse(&header(0, 0x100_0000, flags)).unwrap();
            assert_eq!((h.page_size(), h.placement_policy()), (ps, pp));
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(
            ImageHeader::parse(&DEBIAN_6_1[..63]),
            Err(ImageError::TooShort { len: 63 })
        );
        let mut bad = DEBIAN_6_1;
        bad[59] = 0;
        assert_eq!(
            ImageHeader::parse(&bad),
            Err(ImageError::BadMagic { found: 0x004d_5241 })
        );
        assert_eq!(
            ImageHeader::parse(&header(0, 0x100_0000, 1 | 8)),
            Err(ImageError::BigEndian)
        );
        assert_eq!(
            ImageError::BigEndian.to_string(),
            "big-endian Image not supported"
        );
        assert_eq!(
            ImageError::BadMagic { found: 0 }.to_string(),
            "not an arm64 Image: magic 0x00000000 at offset 56, expected 0x644d5241"
        );
        assert_eq!(
            ImageError::TooShort { len: 3 }.to_string(),
            "Image header needs 64 bytes, only 3 available"
        );
    }

    #[test]
    fn legacy_header() {
        let h = ImageHeader::parse(&header(0x1234, 0, 0)).unwrap();
        assert!(h.legacy);
        assert_eq!(h.text_offset, LEGACY_TEXT_OFFSET);
        assert_eq!(h.image_size, LEGACY_IMAGE_SIZE);
        assert_eq!(h.placement_policy(), PlacementPolicy::NearDramBase);
        // near DRAM base: the lowest 2 MiB-aligned hole for 0x80000 + 16 MiB is after the loader
        let p = h.placement(&map_1g(), 0x4820_0000, 0x80_0000).unwrap();
        assert_eq!(p.base, 0x4160_0000);
        assert_eq!(p.entry, 0x4168_0000);
        assert_eq!(p.end, 0x4168_0000 + (16 << 20));
        assert!(p.needs_move);
        assert!(h.to_string().contains("(legacy header)"));
    }

    #[test]
    fn placement_rules() {
        let m = map_1g();
        let h = ImageHeader::parse(&header(0x8_0000, 0x200_0000, 8)).unwrap();
        // loaded at a 2 MiB boundary: base rounds up, entry is base + text_offset
        let p = h.placement(&m, 0x4820_0000, 0x100_0000).unwrap();
        assert_eq!(
            (p.base, p.entry, p.needs_move),
            (0x4820_0000, 0x4828_0000, true)
        );
        // loaded exactly at base + text_offset: in place
        let p = h.placement(&m, 0x4828_0000, 0x100_0000).unwrap();
        assert_eq!((p.entry, p.needs_move), (0x4828_0000, false));
        // file larger than the footprint
        assert_eq!(
            h.placement(&m, 0x4820_0000, 0x200_0001)
                .unwrap_err()
                .to_string(),
            "Image header image_size 0x2000000 is smaller than the file (0x2000001 bytes)"
        );
        // footprint over the incoming DT
        let e = h.placement(&m, 0x47e8_0000, 0x100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel placement: 0x47e80000..0x49e80000 (kernel) overlaps 0x48000000..0x48100000 (incoming DT)"
        );
        // outside RAM / overflow
        assert!(matches!(
            h.placement(&m, 0x10_0000, 0x100),
            Err(ImageError::Memory(MemError::OutsideRam { .. }))
        ));
        assert!(matches!(
            h.placement(&m, u64::MAX - 0x1000, 0x100),
            Err(ImageError::Overflow { .. })
        ));
        // near-DRAM-base kernel with no room
        let nd = ImageHeader::parse(&header(0, 0x8000_0000, 0)).unwrap();
        assert_eq!(
            nd.placement(&m, 0x4820_0000, 0x100),
            Err(ImageError::NoRoom {
                footprint: 0x8000_0000
            })
        );
        let huge = ImageHeader::parse(&header(u64::MAX, 0x10, 0)).unwrap();
        assert!(matches!(
            huge.placement(&m, 0, 0),
            Err(ImageError::Overflow { .. })
        ));
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let m = map_1g();
        let (mut parsed, mut placed) = (0, 0);
        for i in 0..20_000 {
            let len = (next() % 80) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 64 && i % 2 == 0 {
                b[56..60].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
                if i % 4 == 0 {
                    // small, plausible sizes so that placement gets past the arithmetic
                    b[8..16].copy_from_slice(&(next() % 0x40_0000).to_le_bytes());
                    b[16..24].copy_from_slice(&(next() % 0x400_0000).to_le_bytes());
                }
            }
            if let Ok(h) = ImageHeader::parse(&b) {
                parsed += 1;
                let _ = h.to_string();
                let at = if i % 3 == 0 {
                    next()
                } else {
                    0x4000_0000 + next() % (1 << 30)
                };
                match h.placement(&m, at, next() % 0x800_0000) {
                    Ok(p) => {
                        placed += 1;
                        assert!(p.entry >= p.base && p.end > p.entry);
                        assert!(m.check(p.entry, p.end - p.entry, &Owner::Kernel).is_ok());
                    }
                    Err(e) => assert!(!e.to_string().contains('\n')),
                }
            }
        }
        assert!(parsed > 500 && placed > 50, "{parsed} {placed}");
    }
}
