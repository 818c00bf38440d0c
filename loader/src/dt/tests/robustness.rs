//! Never a panic on any input: seeded mutations of real and built trees.

use super::*;

use testkit::Rng;

fn exercise(bytes: &[u8]) {
    if let Ok(info) = parse(bytes) {
        // Display and derived data must not panic either.
        let _ = info.to_string();
        for w in &info.warnings {
            let _ = w.to_string();
        }
    }
}

#[test]
fn fuzz_bit_flips() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for base in [VIRT_SPIN, VIRT_EL2, VIRT_EL1] {
        for _ in 0..1500 {
            let mut v = base.to_vec();
            for _ in 0..1 + rng.index(8) {
                let i = rng.index(v.len());
                v[i] ^= 1 << rng.index(8);
            }
            exercise(&v);
        }
    }
}

#[test]
fn fuzz_structure_words() {
    // Overwrite aligned 32-bit words with values that matter to the format (tokens, lengths,
    // offsets, cell counts), which reach deeper than random bit flips.
    let interesting = [
        0u32,
        1,
        2,
        3,
        4,
        9,
        0x20,
        0xffff_ffff,
        0x7fff_ffff,
        0x8000_0000,
        0x0100_0000,
        0x200,
        0x1000_0000,
    ];
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..4000 {
        let mut v = VIRT_SPIN.to_vec();
        for _ in 0..1 + rng.index(4) {
            let w = rng.index(v.len() / 4) * 4;
            let val = if rng.index(2) == 0 {
                interesting[rng.index(interesting.len())]
            } else {
                rng.next() as u32
            };
            v[w..w + 4].copy_from_slice(&val.to_be_bytes());
        }
        exercise(&v);
    }
}

#[test]
fn fuzz_truncation_with_patched_totalsize() {
    let mut v = VIRT_SPIN.to_vec();
    for len in (0..VIRT_SPIN.len()).step_by(3) {
        v.truncate(len);
        v.extend_from_slice(&VIRT_SPIN[len..]);
        let mut t = v[..len].to_vec();
        if len >= 8 {
            t[4..8].copy_from_slice(&(len as u32).to_be_bytes());
        }
        exercise(&t);
        exercise(&v[..len]);
    }
}

#[test]
fn fuzz_random_bytes() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let len = rng.index(512);
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 40 && rng.index(4) != 0 {
            // plausible header so validation goes further
            v[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
            v[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            v[20..24].copy_from_slice(&17u32.to_be_bytes());
            v[24..28].copy_from_slice(&16u32.to_be_bytes());
            let off_rsv = 40u32;
            v[16..20].copy_from_slice(&off_rsv.to_be_bytes());
            let off_struct = 56 + (rng.index(len.saturating_sub(56).max(1)) as u32 & !3);
            v[8..12].copy_from_slice(&off_struct.to_be_bytes());
            if len >= 56 {
                v[40..56].fill(0);
            }
        }
        exercise(&v);
    }
}

#[test]
fn fuzz_built_tree_mutations() {
    // Mutate property values of a rich built tree (cells, strings) without breaking the
    // structure, to exercise the value decoders.
    let mut rng = Rng(7);
    let base = parse_tree(&tree(vec![])).totalsize; // sanity
    assert!(base > 0);
    for _ in 0..1500 {
        let rand_bytes = |rng: &mut Rng| -> Vec<u8> {
            (0..rng.index(24))
                .map(|_| [0u8, 1, 0xff, b'a', b'/', b':'][rng.index(6)])
                .collect()
        };
        let names = [
            "reg",
            "ranges",
            "#address-cells",
            "#size-cells",
            "compatible",
            "status",
            "cpu-release-addr",
            "bus-range",
            "stdout-path",
            "method",
            "device_type",
            "enable-method",
            "clock-frequency",
            "linux,initrd-start",
        ];
        let props = |rng: &mut Rng| -> Vec<DeviceTreeProperty> {
            (0..rng.index(6))
                .map(|_| pb(names[rng.index(names.len())], &rand_bytes(rng)))
                .collect()
        };
        let t = tree(vec![
            cpus(vec![
                n("cpu@0", props(&mut rng), vec![]),
                cpu(1, props(&mut rng)),
            ]),
            n("psci", props(&mut rng), vec![]),
            n(
                "pcie@0",
                {
                    let mut p = props(&mut rng);
                    p.push(pb("compatible", b"pci-host-ecam-generic\0"));
                    p
                },
                vec![],
            ),
            n(
                "soc",
                {
                    let mut p = props(&mut rng);
                    p.push(pb("ranges", b""));
                    p
                },
                vec![n(
                    "dev@0",
                    props(&mut rng),
                    vec![n("x", props(&mut rng), vec![])],
                )],
            ),
            n(
                "reserved-memory",
                props(&mut rng),
                vec![n("r", props(&mut rng), vec![])],
            ),
            n("chosen", props(&mut rng), vec![]),
            n("aliases", props(&mut rng), vec![]),
            n(
                "memory@0",
                {
                    let mut p = props(&mut rng);
                    p.push(ps("device_type", "memory"));
                    p
                },
                vec![],
            ),
        ]);
        let dtb = t.to_dtb();
        assert!(parse(&dtb).is_ok());
        exercise(&dtb);
    }
}
