//! Never a panic on any input: header mutations and random reclaim inputs.

use super::reclaim::{cpu, dt_with, old_pen, Phys};
use super::*;

use testkit::Rng;

/// Whatever parse accepts is internally consistent.
fn check_accepted(h: &PenHeader, at: u64) {
    assert_eq!(h.phys_base, at);
    let n = h.nr_slots as usize;
    assert!(n >= 1 && n <= MAX_SLOTS as usize);
    let last_slot = h.slot_off(n - 1).unwrap() + 64;
    let last_state = h.state_off(n - 1).unwrap() + 64;
    assert!(last_slot as u64 <= u64::from(h.state_offset));
    assert!(last_state as u64 <= h.total_size);
    assert!(h.entry_offset >= CODE_OFFSET && h.entry_offset < CODE_OFFSET + h.code_size);
    assert!(h.park_offset >= CODE_OFFSET && h.park_offset < CODE_OFFSET + h.code_size);
    assert_eq!(PenHeader::parse(&h.to_bytes(), at).as_ref(), Ok(h));
}

#[test]
fn fuzz_header_mutations() {
    let (v, _) = built(BASE, &[0, 1, 2, 3], 2);
    let interesting: [u64; 12] = [
        0,
        1,
        4,
        64,
        0x80,
        0x800,
        0x1000,
        0xffff_ffff,
        0x8000_0000,
        u64::MAX,
        BASE,
        MAX_PEN_SIZE,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut w = v[..128].to_vec();
        for _ in 0..1 + rng.index(4) {
            match rng.index(3) {
                0 => {
                    let i = rng.index(128);
                    w[i] ^= 1 << rng.index(8);
                }
                1 => {
                    let i = rng.index(32) * 4;
                    let val = interesting[rng.index(interesting.len())] as u32;
                    w[i..i + 4].copy_from_slice(&val.to_le_bytes());
                }
                _ => {
                    let i = rng.index(16) * 8;
                    let val = if rng.index(2) == 0 {
                        interesting[rng.index(interesting.len())]
                    } else {
                        rng.next()
                    };
                    w[i..i + 8].copy_from_slice(&val.to_le_bytes());
                }
            }
        }
        if round % 4 != 0 {
            // keep the magic and fix the checksum so the layout rules get exercised
            if round % 2 == 0 {
                w[..8].copy_from_slice(&PEN_MAGIC.to_le_bytes());
            }
            let crc = header_crc(&w);
            w[124..].copy_from_slice(&crc.to_le_bytes());
        }
        let at = if rng.index(8) == 0 {
            rng.next()
        } else {
            rd_u64(&w, hdr::PHYS_BASE).unwrap()
        };
        if let Ok(h) = PenHeader::parse(&w, at) {
            accepted += 1;
            check_accepted(&h, at);
            // a whole image with random body bytes never panics either
            let mut full: Vec<u8> = (0..h.total_size as usize)
                .map(|_| rng.next() as u8)
                .collect();
            full[..128].copy_from_slice(&w);
            let img = PenImage::parse(&full, at).unwrap();
            let _ = img.slots().count();
            let _ = img.dt_patch();
            let _ = img.slot_of(rng.next());
            let _ = img.code();
        }
    }
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn fuzz_plan_reclaim() {
    let mut rng = Rng(0x1234_5678_9abc_def0);
    let (base_img, h) = old_pen([
        SlotStatus::Waiting,
        SlotStatus::Parked,
        SlotStatus::Released,
    ]);
    for _ in 0..3000 {
        let mut img = base_img.clone();
        // mutate a few words anywhere in the pen (header mutations mostly invalidate it)
        for _ in 0..rng.index(6) {
            let i = rng.index(img.len() / 8) * 8;
            let val = match rng.index(4) {
                0 => rng.next(),
                1 => rng.index(7) as u64,
                2 => rng.index(4) as u64,
                _ => h.slot_release_addr(rng.index(4)).unwrap(),
            };
            img[i..i + 8].copy_from_slice(&val.to_le_bytes());
        }
        if rng.index(2) == 0 {
            let crc = header_crc(&img);
            img[124..128].copy_from_slice(&crc.to_le_bytes());
        }
        let addrs = [
            h.slot_release_addr(0).unwrap(),
            h.slot_release_addr(1).unwrap(),
            h.slot_release_addr(2).unwrap(),
            BASE + rng.index(0x1000) as u64,
            rng.next(),
            0,
            u64::MAX - rng.index(16) as u64,
        ];
        let methods = [
            Some(EnableMethod::SpinTable),
            Some(EnableMethod::Psci),
            None,
            Some(EnableMethod::Other("x".into())),
        ];
        let cpus = (0..rng.index(6))
            .map(|i| {
                let rel = match rng.index(4) {
                    0 => Prop64::Absent,
                    1 => Prop64::OneCell(7),
                    _ => Prop64::Value(addrs[rng.index(addrs.len())]),
                };
                let mut c = cpu(
                    if rng.index(5) == 0 {
                        rng.next() & MPIDR_MASK
                    } else {
                        i as u64
                    },
                    methods[rng.index(4)].clone(),
                    rel,
                );
                if rng.index(6) == 0 {
                    c.status = Status::Fail;
                }
                c
            })
            .collect();
        let regions = [
            h.region(),
            Region::new(BASE, rng.index(0x2000) as u64),
            Region::new(rng.next(), rng.next() >> rng.index(64)),
            Region::new(u64::MAX - 0x10, 0x10),
        ];
        let memreserve = (0..rng.index(4))
            .map(|_| regions[rng.index(regions.len())])
            .collect();
        let dt = dt_with(cpus, memreserve);
        let mem = Phys(vec![(BASE, img)]);
        let e = ReclaimEnv {
            current_mpidr: rng.index(4) as u64,
            current_el: 1 + rng.index(2) as u8,
            psci: rng.index(2) == 0,
            our_code: None,
        };
        let plan = plan_reclaim(&dt, &e, |a, l| mem.read(a, l));
        let _ = plan.to_string();
        let _ = plan.droppable(&[1, 2], &[]);
        let _ = plan.new_pen_cpus();
        assert_eq!(plan.cpus.len(), dt.cpus.len());
        // invariant: a take-over only ever targets a pen that validated
        for c in &plan.cpus {
            if let CpuAction::TakeOverFromPen {
                old_pen_base,
                release_addr,
                ..
            } = c.action
            {
                let p = plan
                    .old_pens
                    .iter()
                    .find(|p| p.header.phys_base == old_pen_base)
                    .unwrap();
                let i = p.header.slot_of_release_addr(release_addr).unwrap();
                assert_eq!(p.slots[i].mpidr, c.mpidr);
                assert!(matches!(
                    p.slots[i].state.status,
                    SlotStatus::Waiting | SlotStatus::Parked | SlotStatus::Unarmed
                ));
            }
        }
    }
}
