//! `loader::gzip` (Image.gz for `booti`): header + trailer parse, prefix
//! inflation (to read the Image header before placing it) and whole-member
//! inflation into an exactly-sized buffer with length and CRC checks; then
//! the Image header of the result, as booti does.
//!
//! Properties: no panic, no hang; `inflate_prefix` never reports more bytes
//! than the buffer; a member that inflates successfully is byte-identical to
//! what an independent decoder (miniz_oxide's `decompress_to_vec`) produces
//! from the same stream; a buffer of the wrong size is refused before
//! anything is inflated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::gzip;
use loader::image::ImageHeader;

/// Output buffers are capped (the loader claims ISIZE bytes of RAM first).
const MAX_OUT: u32 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    fuzz_common::big_allocs_use_mmap();
    let _ = gzip::is_gzip(data);
    let info = match gzip::parse(data) {
        Ok(i) => i,
        Err(e) => {
            assert!(!format!("{e}").contains('\n'));
            return;
        }
    };
    assert!(info.data_offset + 8 <= data.len());

    let mut head = [0u8; 64];
    match gzip::inflate_prefix(data, &info, &mut head) {
        Ok(n) => {
            assert!(n <= head.len());
            let _ = ImageHeader::parse(&head[..n]);
        }
        Err(e) => assert!(!format!("{e}").contains('\n')),
    }

    if info.isize > MAX_OUT {
        return;
    }
    // Wrong size: refused up front.
    let mut wrong = vec![0u8; info.isize as usize + 1];
    assert!(matches!(
        gzip::inflate_into(data, &info, &mut wrong),
        Err(gzip::GzError::OutputTooSmall { .. })
    ));
    // (Sampled: scanning megabytes every run would dominate the run time.)
    let edge = wrong.len().min(4096);
    assert!(
        wrong[..edge].iter().all(|&b| b == 0)
            && wrong[wrong.len() - edge..].iter().all(|&b| b == 0),
        "refused inflate wrote to the buffer"
    );

    let mut out = vec![0u8; info.isize as usize];
    if gzip::inflate_into(data, &info, &mut out).is_ok() {
        let stream = &data[info.data_offset..data.len() - 8];
        let reference =
            miniz_oxide::inflate::decompress_to_vec_with_limit(stream, MAX_OUT as usize);
        match reference {
            Ok(v) => assert!(
                v == out,
                "inflate_into result differs from the reference decoder"
            ),
            Err(e) => panic!("inflate_into accepted a stream the reference rejects: {e:?}"),
        }
        let _ = ImageHeader::parse(&out);
    }
});
