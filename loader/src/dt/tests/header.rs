//! The FDT header and whole-blob errors.

use super::*;

// ---- header ----

#[test]
fn totalsize_of_header() {
    assert_eq!(fdt_totalsize(VIRT_EL2), Ok(VIRT_EL2.len()));
    assert_eq!(fdt_totalsize(&VIRT_EL2[..40]), Ok(VIRT_EL2.len()));
    assert_eq!(
        fdt_totalsize(&VIRT_EL2[..39]),
        Err(DtError::HeaderTooShort { len: 39 })
    );
    let mut bad = VIRT_EL2[..40].to_vec();
    bad[0] = 0;
    assert_eq!(
        fdt_totalsize(&bad),
        Err(DtError::BadMagic { found: 0x000d_feed })
    );
    let mut small = VIRT_EL2[..40].to_vec();
    small[4..8].copy_from_slice(&39u32.to_be_bytes());
    assert_eq!(
        fdt_totalsize(&small),
        Err(DtError::TotalSizeTooSmall { totalsize: 39 })
    );
}

#[test]
fn errors_display_one_line() {
    let errs = [
        DtError::HeaderTooShort { len: 3 },
        DtError::BadMagic { found: 0x1234 },
        DtError::TotalSizeTooSmall { totalsize: 3 },
        DtError::Truncated {
            totalsize: 100,
            available: 50,
        },
        parse(&{
            let mut v = VIRT_EL1.to_vec();
            let off = u32::from_be_bytes(v[8..12].try_into().unwrap()) as usize;
            v[off + 3] = 0x7; // bad first token
            v
        })
        .unwrap_err(),
        DtError::TooDeep { limit: MAX_DEPTH },
        DtError::NameTooLong {
            len: 200,
            limit: MAX_NODE_NAME,
        },
    ];
    for e in errs {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
    }
    assert_eq!(
        DtError::BadMagic { found: 0x1234 }.to_string(),
        "bad device tree magic 0x00001234 (expected 0xd00dfeed)"
    );
    assert_eq!(
        DtError::Truncated {
            totalsize: 100,
            available: 50
        }
        .to_string(),
        "device tree totalsize 100 exceeds the 50 bytes available"
    );
}

#[test]
fn truncated_and_longer_buffers() {
    assert_eq!(
        parse(&VIRT_EL2[..VIRT_EL2.len() - 1]),
        Err(DtError::Truncated {
            totalsize: VIRT_EL2.len(),
            available: VIRT_EL2.len() - 1
        })
    );
    let mut longer = VIRT_EL2.to_vec();
    longer.extend_from_slice(&[0xff; 100]);
    let info = parse(&longer).unwrap();
    assert_eq!(info.totalsize, VIRT_EL2.len());
    assert_eq!(parse(&[]), Err(DtError::HeaderTooShort { len: 0 }));
}

#[test]
fn qemu_padded_layout() {
    // QEMU passes totalsize = 1 MiB with zero padding after the strings block.
    let mut v = VIRT_EL2.to_vec();
    v.resize(1 << 20, 0);
    v[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
    let info = parse(&v).unwrap();
    assert_eq!(info.totalsize, 1 << 20);
    assert_eq!(info.cpus.len(), 4);
}
