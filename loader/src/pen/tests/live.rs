//! The live pen: release / park protocol and its cache maintenance.

use super::*;

#[test]
fn release_and_park_cycle() {
    let c = code_bytes();
    let cpus = [0u64, 1, 2];
    let l = PenLayout::new(3, c.len(), 2).unwrap();
    let mut m = Mem8::new(l.total_size as usize);
    let h = l.build(m.bytes(), BASE, &code(&c), &cpus).unwrap();
    let mut ops = NoCacheOps;

    // CPU 1 arrives through pen_entry
    assert_eq!(sim_cpu(m.bytes(), &h, 1, false, 2), None);
    {
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Waiting));
        assert_eq!(pen.status(&mut ops, 2), Ok(SlotStatus::Empty));
        assert_eq!(pen.slot_addr(1), Some(BASE + 0x300 + 64));
        // nothing to release for a CPU that is not there
        assert_eq!(
            pen.release(&mut ops, 2, 0x4008_0000),
            Err(PenError::NotHeld {
                mpidr: 2,
                status: SlotStatus::Empty
            })
        );
        assert_eq!(
            pen.release(&mut ops, 7, 0x4008_0000),
            Err(PenError::NoSlot { mpidr: 7 })
        );
        assert_eq!(
            pen.release(&mut ops, 1, 0),
            Err(PenError::BadEntry { entry: 0 })
        );
        assert_eq!(
            pen.release(&mut ops, 1, 0x4008_0002),
            Err(PenError::BadEntry { entry: 0x4008_0002 })
        );
        pen.release(&mut ops, 1, 0x4008_0000).unwrap();
        // a second release before the CPU took the first is refused
        assert_eq!(
            pen.release(&mut ops, 1, 0x4008_0000),
            Err(PenError::ReleasePending {
                mpidr: 1,
                value: 0x4008_0000
            })
        );
    }
    // the CPU wakes and leaves
    assert_eq!(sim_poll(m.bytes(), &h, 1), Some(0x4008_0000));
    {
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        let st = pen.state(&mut ops, 1).unwrap();
        assert_eq!(st.status, SlotStatus::Released);
        assert_eq!(
            (st.entries, st.parks, st.releases, st.last_entry),
            (1, 0, 1, 0x4008_0000)
        );
        assert_eq!(pen.release_word(&mut ops, 1), Ok(0x4008_0000));
        assert!(matches!(
            pen.rearm(&mut ops, 1),
            Err(PenError::NotHeld { .. })
        ));
    }
    // the OS parks it properly: zero the word, then branch to pen_park
    let so = h.slot_off(1).unwrap();
    wr_u64(m.bytes(), so, 0).unwrap();
    assert_eq!(sim_cpu(m.bytes(), &h, 1, true, 2), None);
    {
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Parked));
        pen.release(&mut ops, 1, 0x4100_0000).unwrap();
    }
    assert_eq!(sim_poll(m.bytes(), &h, 1), Some(0x4100_0000));
    // the OS parks it WITHOUT zeroing: the stale entry is not taken
    assert_eq!(sim_cpu(m.bytes(), &h, 1, true, 2), None);
    assert_eq!(sim_poll(m.bytes(), &h, 1), None);
    {
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Unarmed));
        assert!(matches!(
            pen.release(&mut ops, 1, 0x4200_0000),
            Err(PenError::NotHeld { .. })
        ));
        pen.rearm(&mut ops, 1).unwrap();
    }
    assert_eq!(sim_poll(m.bytes(), &h, 1), None); // arms
    {
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Parked));
        let st = pen.state(&mut ops, 1).unwrap();
        assert_eq!((st.entries, st.parks, st.releases), (1, 2, 2));
        pen.release(&mut ops, 1, 0x4200_0000).unwrap();
    }
    assert_eq!(sim_poll(m.bytes(), &h, 1), Some(0x4200_0000));
    // wrong EL
    assert_eq!(sim_cpu(m.bytes(), &h, 2, false, 1), None);
    let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
    assert_eq!(pen.status(&mut ops, 2), Ok(SlotStatus::Refused));
    assert!(matches!(
        pen.release(&mut ops, 2, 0x4000_0000),
        Err(PenError::NotHeld { .. })
    ));
}

#[test]
fn release_cache_sequence() {
    let c = code_bytes();
    let l = PenLayout::new(2, c.len(), 2).unwrap();
    let mut m = Mem8::new(l.total_size as usize);
    let h = l.build(m.bytes(), BASE, &code(&c), &[0, 1]).unwrap();
    sim_set(m.bytes(), &h, 1, SlotStatus::Waiting);
    let mut rec = Rec::default();
    let mut pen = Pen::open(m.bytes(), BASE, &mut rec).unwrap();
    assert_eq!(rec.0, ["civac 0x7fe00000+128", "civac 0x7fe00300+128"]);
    rec.0.clear();
    pen.release(&mut rec, 1, 0x4008_0000).unwrap();
    assert_eq!(
        rec.0,
        [
            "civac 0x7fe00840+64", // state line before reading status
            "civac 0x7fe00340+8",  // release word before checking it is 0
            "clean 0x7fe00340+64", // context + mode
            "clean 0x7fe00340+8",  // the release word
            "sev"
        ]
    );
    rec.0.clear();
    assert_eq!(pen.adopt(&mut rec), Ok(2));
    assert_eq!(rec.0, ["clean 0x7fe00000+128"]);
    let hh = PenHeader::parse(m.bytes(), BASE).unwrap();
    assert_eq!(hh.generation, 2);
    assert_eq!(hh, PenHeader { generation: 2, ..h });
    // slot words as written
    let so = h.slot_off(1).unwrap();
    assert_eq!(rd_u64(m.bytes(), so + slot::RELEASE), Some(0x4008_0000));
    assert_eq!(rd_u64(m.bytes(), so + slot::MODE), Some(MODE_BRANCH));
    assert_eq!(rd_u64(m.bytes(), so + slot::CONTEXT), Some(0));
}

#[test]
fn release_to_el1_needs_el2_pen() {
    let c = code_bytes();
    for el in [1u8, 2] {
        let l = PenLayout::new(2, c.len(), el).unwrap();
        let mut m = Mem8::new(l.total_size as usize);
        let h = l.build(m.bytes(), BASE, &code(&c), &[0, 1]).unwrap();
        sim_set(m.bytes(), &h, 1, SlotStatus::Parked);
        let mut ops = NoCacheOps;
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        let r = pen.release_to_el1(&mut ops, 1, 0x4000_1000, 0xc0ffee);
        if el == 1 {
            assert_eq!(r, Err(PenError::NeedsEl2));
        } else {
            assert_eq!(r, Ok(()));
            let so = h.slot_off(1).unwrap();
            assert_eq!(rd_u64(m.bytes(), so + slot::MODE), Some(MODE_ERET_EL1));
            assert_eq!(rd_u64(m.bytes(), so + slot::CONTEXT), Some(0xc0ffee));
            assert_eq!(rd_u64(m.bytes(), so), Some(0x4000_1000));
        }
    }
}

#[test]
fn open_refuses_invalid_or_unaligned_and_writes_nothing() {
    let (v, _) = built(BASE, &[0, 1], 2);
    let mut m = Mem8::new(v.len() + 8);
    m.bytes()[..v.len()].copy_from_slice(&v);
    let mut ops = NoCacheOps;
    // unaligned view
    assert_eq!(
        Pen::open(&mut m.bytes()[1..], BASE, &mut ops).err(),
        Some(PenError::Unaligned)
    );
    // wrong address
    assert!(matches!(
        Pen::open(m.bytes(), BASE + 0x1000, &mut ops),
        Err(PenError::WrongPhysBase { .. })
    ));
    // truncated view
    assert!(matches!(
        Pen::open(&mut m.bytes()[..0x800], BASE, &mut ops),
        Err(PenError::TooShort { .. })
    ));
    // corrupted header
    m.bytes()[hdr::GENERATION] ^= 1;
    let before = m.bytes().to_vec();
    assert!(matches!(
        Pen::open(m.bytes(), BASE, &mut ops),
        Err(PenError::BadChecksum { .. })
    ));
    assert_eq!(m.bytes(), &before[..]);
}

#[test]
fn clear_release_zeroes_the_callers_word_whatever_its_status() {
    let (mut v, h) = built(BASE, &[0, 1], 2);
    // CPU 1 was released (its word holds the entry) and now parks itself
    let off = h.slot_off(1).unwrap();
    wr_u64(&mut v, off, 0x4008_0000).unwrap();
    sim_set(&mut v, &h, 1, SlotStatus::Released);
    let mut m = Mem8::new(v.len());
    m.bytes().copy_from_slice(&v);
    let mut ops = Rec::default();
    let mut p = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
    ops.0.clear();
    p.clear_release(&mut ops, 1).unwrap();
    assert_eq!(p.release_word(&mut ops, 1).unwrap(), 0);
    assert!(ops.0.iter().any(|o| o.starts_with("civac")), "{:?}", ops.0);
    assert!(p.clear_release(&mut ops, 7).is_err());
}
