//! `loader::image::ImageHeader::parse` + `placement` (the `booti` path).
//!
//! Input: 64 header bytes, then a memory map description (banks and claims),
//! then `loaded_at` and `file_len`. Properties: no panic; an accepted
//! placement is 2 MiB aligned, its footprint `[entry, end)` covers
//! `image_size` bytes, is free RAM, and can really be claimed for the kernel.
#![no_main]

use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;
use loader::dt::Region;
use loader::image::{ImageHeader, PlacementPolicy, IMAGE_ALIGN, IMAGE_HEADER_LEN};
use loader::memmap::{MemMap, Owner};

fuzz_target!(|data: &[u8]| {
    let hdr_len = data.len().min(IMAGE_HEADER_LEN);
    let (hdr, rest) = data.split_at(hdr_len);
    let h = match ImageHeader::parse(hdr) {
        Ok(h) => h,
        Err(e) => {
            assert!(!format!("{e}").contains('\n'));
            return;
        }
    };
    let _ = format!("{h}");
    let _ = (h.page_size(), h.is_efi_stub());

    let mut b = Bytes::new(rest);
    let nbanks = (b.u8() % 4) as usize;
    let mut banks = Vec::new();
    for _ in 0..nbanks {
        banks.push(Region::new(b.addr(), b.addr()));
    }
    if banks.is_empty() {
        banks.push(Region::new(0x4000_0000, 1 << 30));
    }
    let mut map = MemMap::new(&banks);
    let nclaims = (b.u8() % 6) as usize;
    for i in 0..nclaims {
        let _ = map.claim(b.addr(), b.addr(), Owner::Other(format!("c{i}")));
    }
    let loaded_at = b.addr();
    let file_len = b.addr();

    match h.placement(&map, loaded_at, file_len) {
        Ok(p) => {
            assert_eq!(p.base % IMAGE_ALIGN, 0, "base not 2 MiB aligned: {p:?}");
            assert_eq!(Some(p.entry), p.base.checked_add(h.text_offset));
            assert_eq!(Some(p.end), p.entry.checked_add(h.image_size));
            assert!(h.image_size >= file_len);
            assert_eq!(p.needs_move, p.entry != loaded_at);
            if h.placement_policy() == PlacementPolicy::Anywhere {
                assert!(p.base >= loaded_at.saturating_sub(h.text_offset));
            }
            map.claim(p.entry, h.image_size, Owner::Kernel)
                .unwrap_or_else(|e| panic!("placement {p:?} accepted but claim fails: {e}"));
        }
        Err(e) => assert!(!format!("{e}").contains('\n')),
    }
});
