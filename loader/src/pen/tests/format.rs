//! Layout, build, header parsing and error text.

use super::*;

#[test]
fn layout_small_fits_one_page() {
    let l = PenLayout::new(4, CODE_LEN, 2).unwrap();
    assert_eq!(l.code_offset, 0x80);
    assert_eq!(l.slot_offset, 0x300);
    assert_eq!(l.state_offset, 0x800);
    assert_eq!(l.total_size, 0x1000);
    assert_eq!(l.generation, 1);
    // the largest one-page pen
    let l = PenLayout::new(20, CODE_LEN, 2).unwrap();
    assert_eq!((l.state_offset, l.total_size), (0x800, 0x1000));
    let l = PenLayout::new(21, CODE_LEN, 2).unwrap();
    assert_eq!((l.state_offset, l.total_size), (0x1000, 0x2000));
}

#[test]
fn layout_rules_hold_for_every_size() {
    for n in [1usize, 2, 8, 31, 32, 33, 64, 255, 256, 512, 1000, 1024] {
        for c in [4usize, 0x280, 0x784, 0x1000, MAX_CODE_SIZE as usize] {
            let l = PenLayout::new(n, c, 1).unwrap();
            let array = n as u64 * 64;
            assert_eq!(l.slot_offset % 64, 0);
            assert!(u64::from(l.slot_offset) >= 0x80 + c as u64);
            assert_eq!(l.state_offset % CWG_MAX, 0);
            assert!(u64::from(l.state_offset) >= u64::from(l.slot_offset) + array);
            assert!(u64::from(l.state_offset) + array <= l.total_size);
            // room for the stray records after the states (docs/protocol.md §2.5)
            assert!(
                u64::from(l.state_offset) + array + u64::from(MIN_STRAYS * STRAY_SIZE)
                    <= l.total_size
            );
            assert_eq!(l.total_size % PEN_ALIGN, 0);
            assert!(l.total_size <= MAX_PEN_SIZE);
        }
    }
}

#[test]
fn layout_rejects_bad_input() {
    assert_eq!(
        PenLayout::new(0, 64, 2),
        Err(PenError::BadSlotCount { count: 0 })
    );
    assert_eq!(
        PenLayout::new(1025, 64, 2),
        Err(PenError::BadSlotCount { count: 1025 })
    );
    assert_eq!(PenLayout::new(1, 0, 2), Err(PenError::BadCode { len: 0 }));
    assert_eq!(PenLayout::new(1, 6, 2), Err(PenError::BadCode { len: 6 }));
    assert_eq!(
        PenLayout::new(1, 0x4004, 2),
        Err(PenError::BadCode { len: 0x4004 })
    );
    assert_eq!(
        PenLayout::new(1, 64, 4),
        Err(PenError::BadEntryEl { found: 4 })
    );
    assert_eq!(
        PenLayout::new(1, 64, 0),
        Err(PenError::BadEntryEl { found: 0 })
    );
    assert!(PenLayout::new(usize::MAX, 64, 1).is_err());
}

// ---- build / parse ----

#[test]
fn build_then_parse_round_trips() {
    let cpus = [0x0, 0x1, 0x100, 0xff_0000_0203];
    let (v, h) = built(BASE, &cpus, 2);
    assert_eq!(PenHeader::parse(&v, BASE), Ok(h));
    assert_eq!(rd_u64(&v, 0), Some(PEN_MAGIC));
    assert_eq!(&v[..8], b"PKBTPEN1");
    assert_eq!(h.entry_addr(), BASE + 0x80);
    assert_eq!(h.park_addr(), BASE + 0x88);
    assert_eq!(h.region(), Region::new(BASE, 0x1000));
    assert_eq!(&v[0x80..0x80 + CODE_LEN], &code_bytes()[..]);
    // everything outside header/code/mpidrs is zero (the region was 0xaa before)
    let img = PenImage::parse(&v, BASE).unwrap();
    for (i, s) in img.slots().enumerate() {
        assert_eq!(s.index, i);
        assert_eq!(s.mpidr, cpus[i]);
        assert_eq!(s.release, 0);
        assert_eq!(s.release_addr, BASE + 0x300 + 64 * i as u64);
        assert_eq!(s.state.status, SlotStatus::Empty);
        assert_eq!(s.state.mpidr_seen, 0);
    }
    assert!(v[0x80 + CODE_LEN..0x300].iter().all(|&b| b == 0));
    assert!(v[0x800..].iter().all(|&b| b == 0));
    assert_eq!(img.slot_addr(0x100), Some(BASE + 0x380));
    assert_eq!(img.slot_addr(0x2), None);
    assert_eq!(img.status(0xff_0000_0203), Some(SlotStatus::Empty));
    assert_eq!(img.code(), &code_bytes()[..]);
    assert_eq!(h.slot_of_release_addr(BASE + 0x380), Some(2));
    assert_eq!(h.slot_of_release_addr(BASE + 0x388), None);
    assert_eq!(h.slot_of_release_addr(BASE + 0x400), None);
    assert_eq!(h.slot_of_release_addr(BASE), None);
    assert_eq!(h.state_addr(1), Some(BASE + 0x840));
}

#[test]
fn build_rejects_bad_input() {
    let c = code_bytes();
    let l = PenLayout::new(2, c.len(), 2).unwrap();
    let mut v = vec![0u8; 0x1000];
    assert_eq!(
        l.build(&mut v, BASE, &code(&c), &[1]),
        Err(PenError::CpuCountMismatch { cpus: 1, slots: 2 })
    );
    assert_eq!(
        l.build(&mut v, BASE, &code(&c), &[1, 1]),
        Err(PenError::DuplicateMpidr { mpidr: 1 })
    );
    assert_eq!(
        l.build(&mut v, BASE, &code(&c), &[1, 1 << 24]),
        Err(PenError::BadMpidr { mpidr: 1 << 24 })
    );
    assert!(matches!(
        l.build(&mut v, BASE + 0x800, &code(&c), &[1, 2]),
        Err(PenError::BadLayout { .. })
    ));
    assert!(matches!(
        l.build(&mut v[..0xfff], BASE, &code(&c), &[1, 2]),
        Err(PenError::TooShort { .. })
    ));
    assert_eq!(
        l.build(&mut v, BASE, &code(&c[..8]), &[1, 2]),
        Err(PenError::BadCode { len: 8 })
    );
    let bad_entry = PenCode {
        bytes: &c,
        entry: CODE_LEN as u32,
        park: 8,
    };
    assert!(matches!(
        l.build(&mut v, BASE, &bad_entry, &[1, 2]),
        Err(PenError::BadLayout { .. })
    ));
    let bad_park = PenCode {
        bytes: &c,
        entry: 0,
        park: 6,
    };
    assert!(matches!(
        l.build(&mut v, BASE, &bad_park, &[1, 2]),
        Err(PenError::BadLayout { .. })
    ));
    assert!(l.build(&mut v, BASE, &code(&c), &[1, 2]).is_ok());
    // a generation carries into the header
    let g = l
        .with_generation(7)
        .build(&mut v, BASE, &code(&c), &[1, 2])
        .unwrap();
    assert_eq!(PenHeader::parse(&v, BASE).unwrap().generation, 7);
    assert_eq!(g.generation, 7);
}

/// Rewrites a header field and fixes the checksum.
fn patched(v: &[u8], off: usize, val: &[u8]) -> Vec<u8> {
    let mut w = v[..128].to_vec();
    w[off..off + val.len()].copy_from_slice(val);
    let crc = header_crc(&w);
    w[124..128].copy_from_slice(&crc.to_le_bytes());
    w
}

#[test]
fn parse_rejects_each_rule() {
    let (v, _) = built(BASE, &[0, 1], 2);
    let p = |w: &[u8]| PenHeader::parse(w, BASE);
    assert_eq!(
        p(&v[..127]),
        Err(PenError::TooShort {
            len: 127,
            need: 128
        })
    );
    let mut w = v.clone();
    w[0] ^= 1;
    assert!(matches!(p(&w), Err(PenError::BadMagic { .. })));
    assert_eq!(
        p(&patched(&v, 8, &2u32.to_le_bytes())),
        Err(PenError::BadVersion { found: 2 })
    );
    assert_eq!(
        p(&patched(&v, 12, &64u32.to_le_bytes())),
        Err(PenError::BadHeaderSize { found: 64 })
    );
    let mut w = v.clone();
    w[60] ^= 1; // generation, checksum not fixed
    assert!(matches!(p(&w), Err(PenError::BadChecksum { .. })));
    assert_eq!(
        PenHeader::parse(&v, BASE + 0x1000),
        Err(PenError::WrongPhysBase {
            header: BASE,
            found_at: BASE + 0x1000
        })
    );
    assert_eq!(p(&patched(&v, 100, &[1])), Err(PenError::ReservedNotZero));
    let layout = |off: usize, val: &[u8]| {
        let r = PenHeader::parse(&patched(&v, off, val), BASE);
        assert!(
            matches!(
                r,
                Err(PenError::BadLayout { .. }) | Err(PenError::BadEntryEl { .. })
            ),
            "{off} {val:?} {r:?}"
        );
    };
    layout(hdr::TOTAL_SIZE, &0u64.to_le_bytes());
    layout(hdr::TOTAL_SIZE, &0x1800u64.to_le_bytes());
    layout(hdr::TOTAL_SIZE, &(MAX_PEN_SIZE + 0x1000).to_le_bytes());
    layout(hdr::CODE_OFFSET, &0x40u32.to_le_bytes());
    layout(hdr::CODE_SIZE, &0u32.to_le_bytes());
    layout(hdr::CODE_SIZE, &0x281u32.to_le_bytes());
    layout(hdr::CODE_SIZE, &0x300u32.to_le_bytes()); // overlaps slots
    layout(hdr::SLOT_OFFSET, &0x2c0u32.to_le_bytes());
    layout(hdr::SLOT_OFFSET, &0x308u32.to_le_bytes());
    layout(hdr::SLOT_SIZE, &128u32.to_le_bytes());
    layout(hdr::NR_SLOTS, &0u32.to_le_bytes());
    layout(hdr::NR_SLOTS, &33u32.to_le_bytes()); // slots run into the state array
    layout(hdr::NR_SLOTS, &2000u32.to_le_bytes());
    layout(hdr::ENTRY_EL, &4u32.to_le_bytes());
    layout(hdr::ENTRY_EL, &0u32.to_le_bytes());
    layout(hdr::STATE_OFFSET, &0x400u32.to_le_bytes());
    layout(hdr::STATE_OFFSET, &0x1000u32.to_le_bytes());
    layout(hdr::STATE_SIZE, &32u32.to_le_bytes());
    layout(hdr::ENTRY_OFFSET, &0x40u32.to_le_bytes());
    layout(hdr::ENTRY_OFFSET, &0x300u32.to_le_bytes());
    layout(hdr::PARK_OFFSET, &0x82u32.to_le_bytes());
    // unaligned phys_base found where it says it is
    let w = patched(&v, hdr::PHYS_BASE, &(BASE + 8).to_le_bytes());
    assert!(matches!(
        PenHeader::parse(&w, BASE + 8),
        Err(PenError::BadLayout { .. })
    ));
    // a wrapping pen
    let w = patched(&v, hdr::PHYS_BASE, &(u64::MAX - 0xfff).to_le_bytes());
    assert!(matches!(
        PenHeader::parse(&w, u64::MAX - 0xfff),
        Err(PenError::BadLayout { .. })
    ));
    // PenImage wants the whole pen
    assert!(matches!(
        PenImage::parse(&v[..0xfff], BASE),
        Err(PenError::TooShort { .. })
    ));
}

#[test]
fn errors_display_on_one_line() {
    let errs = [
        PenError::TooShort { len: 1, need: 2 },
        PenError::BadMagic { found: 1 },
        PenError::BadVersion { found: 2 },
        PenError::BadHeaderSize { found: 3 },
        PenError::BadChecksum {
            stored: 1,
            computed: 2,
        },
        PenError::WrongPhysBase {
            header: 1,
            found_at: 2,
        },
        PenError::BadLayout {
            what: "x",
            value: 1,
        },
        PenError::BadEntryEl { found: 3 },
        PenError::ReservedNotZero,
        PenError::BadSlotCount { count: 0 },
        PenError::BadCode { len: 0 },
        PenError::BadMpidr { mpidr: 1 },
        PenError::DuplicateMpidr { mpidr: 1 },
        PenError::CpuCountMismatch { cpus: 1, slots: 2 },
        PenError::Unaligned,
        PenError::NoSlot { mpidr: 1 },
        PenError::NotHeld {
            mpidr: 1,
            status: SlotStatus::Unknown(9),
        },
        PenError::ReleasePending { mpidr: 1, value: 2 },
        PenError::BadEntry { entry: 3 },
        PenError::NeedsEl2,
        PenError::TooManyPens { limit: 8 },
    ];
    for e in errs {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s}");
    }
    let reasons = [
        LostReason::Released,
        LostReason::Refused,
        LostReason::NeverArrived,
        LostReason::ElMismatch {
            pen_el: 2,
            current_el: 1,
        },
        LostReason::NotASlot { addr: 1 },
        LostReason::SlotOwnerMismatch { owner: 1 },
        LostReason::SlotCorrupt { seen: 1 },
        LostReason::UnknownStatus(9),
        LostReason::InvalidPen {
            base: 1,
            error: PenError::Unaligned,
        },
        LostReason::NotReserved { addr: 1 },
        LostReason::Misaligned { addr: 1 },
        LostReason::Unreadable { addr: 1 },
        LostReason::NoReleaseAddr,
        LostReason::NoPsci,
        LostReason::NoEnableMethod,
        LostReason::UnknownMethod("x".into()),
        LostReason::Disabled,
    ];
    for r in reasons {
        let s = CpuAction::Lost { reason: r }.to_string();
        assert!(!s.contains('\n'), "{s}");
    }
}

#[test]
fn a_resident_pen_runs_at_el3() {
    // entry_el 3: the resident PSCI part's pen in secure memory (docs/psci.md)
    let l = PenLayout::new(4, CODE_LEN, 3).unwrap();
    let c = code_bytes();
    let mut v = vec![0u8; l.total_size as usize];
    let h = l.build(&mut v, BASE, &code(&c), &[0, 1, 2, 3]).unwrap();
    assert_eq!(h.entry_el, 3);
    assert_eq!(PenHeader::parse(&v, BASE).unwrap(), h);
}

#[test]
fn stray_records_follow_the_states() {
    let (mut v, h) = built(BASE, &[0, 1, 2, 3], 2);
    assert_eq!(h.stray_offset(), u64::from(h.state_offset) + 4 * 64);
    assert!(h.nr_strays() >= MIN_STRAYS);
    assert!(h.nr_strays() <= MAX_STRAYS);
    let img = PenImage::parse(&v, BASE).unwrap();
    assert_eq!(img.strays().count(), 0, "a new pen has none");
    sim_stray(&mut v, &h, 3, 0x0102, 2, 1);
    sim_stray(&mut v, &h, 5, 0x0, 3, 0);
    let img = PenImage::parse(&v, BASE).unwrap();
    let s: Vec<StrayRecord> = img.strays().collect();
    assert_eq!(
        s,
        [
            StrayRecord {
                mpidr: 0x0102,
                arrivals: 1,
                el: 2,
                how: 1
            },
            StrayRecord {
                mpidr: 0,
                arrivals: 1,
                el: 3,
                how: 0
            }
        ]
    );
    assert_eq!(
        s[0].to_string(),
        "MPIDR 0x102: no slot for it (arrived 1 time(s), last at EL2 through pen_park)"
    );
    // a pen whose states end at total_size (an older loader's) has no stray records
    let mut short = h;
    short.total_size = h.stray_offset();
    assert_eq!(short.nr_strays(), 0);
}

#[test]
fn a_faulted_record_says_where() {
    let (mut v, h) = built(BASE, &[0, 1], 2);
    sim_fault(&mut v, &h, 1, 0x4008_1234, 2, 4, 0x8600_000f);
    let img = PenImage::parse(&v, BASE).unwrap();
    let st = img.slot(1).unwrap().state;
    assert_eq!(st.status, SlotStatus::Faulted);
    assert!(st.status.is_stuck() && st.status.in_pen() && !st.status.is_held());
    let f = st.fault().unwrap();
    assert_eq!(
        f,
        Fault {
            elr: 0x4008_1234,
            el: 2,
            vector: 4,
            esr: 0x8600_000f
        }
    );
    assert_eq!(f.ec(), 0x21);
    assert_eq!(
        st.to_string(),
        "FAULTED: exception at EL2 (vector 0x200): ELR 0x40081234, ESR 0x8600000f (EC 0x21)"
    );
    assert_eq!(img.slot(0).unwrap().state.fault(), None);
}
