//! Legacy mkimage images (`loader::uimage`): `booti` with a `uInitrd` (with
//! or without `:size`), `bootm` of a kernel `uImage`; and `unzip`'s gzip
//! member of unknown length (`gzip::inflate_stream`).
//!
//! Input: byte 0 selects the `:size` given to `resolve_initrd` (none, the
//! input's length, or a short one); the rest is the image at 0x4800_0000.
//! Properties: no panic, no hang; every error is one line; an accepted initrd
//! lies inside the image's data, after its 64-byte header, and its data CRC
//! matches the header; an inflated stream reports a member no longer than
//! its input and no more output than the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::plan::booti::{resolve_initrd, InitrdArg};
use loader::{gzip, uimage};

const AT: u64 = 0x4800_0000;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, img)) = data.split_first() else {
        return;
    };
    if let Ok(h) = uimage::Header::parse(img) {
        let _ = h.expect_kernel();
        let _ = h.expect_ramdisk();
        if let Err(e) = h.check_data(&img[64..]) {
            assert!(!e.to_string().contains('\n'));
        }
    }
    let size = match sel % 3 {
        0 => None,
        1 => Some(img.len() as u64).filter(|&n| n > 0),
        _ => Some(u64::from(sel)).filter(|&n| n > 0),
    };
    let head = &img[..img.len().min(64)];
    let view = |a: u64, n: u64| -> Result<&[u8], String> {
        let off = usize::try_from(a.checked_sub(AT).ok_or("below")?).map_err(|_| "far")?;
        let n = usize::try_from(n).map_err(|_| "long")?;
        img.get(off..off.checked_add(n).ok_or("wrap")?)
            .ok_or_else(|| "not readable".to_string())
    };
    match resolve_initrd(InitrdArg { addr: AT, size }, head, view) {
        Ok((start, len)) => {
            if uimage::is_legacy(head) {
                assert_eq!(start, AT + 64);
                let d = &img[64..64 + len as usize];
                let h = uimage::Header::parse(head).unwrap();
                assert_eq!(crc32fast::hash(d), h.data_crc);
            } else {
                assert_eq!((start, Some(len)), (AT, size));
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
    let mut out = vec![0u8; 1 << 16];
    match gzip::inflate_stream(img, &mut out) {
        Ok((member, n)) => assert!(member <= img.len() && n <= out.len()),
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
