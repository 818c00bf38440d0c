//! `/memory`, `reg` decoding, `/memreserve/` and `/reserved-memory`.

use super::*;
use crate::dt::cells::decode_reg;

#[test]
fn memory_banks_sorted_and_filtered() {
    let mut t = DeviceTree::new();
    t.root.add_property(pc("#address-cells", &[1]));
    t.root.add_property(pc("#size-cells", &[1]));
    t.root.add_child(n(
        "memory@80000000",
        vec![
            ps("device_type", "memory"),
            pc(
                "reg",
                &[
                    0x8000_0000,
                    0x1000_0000,
                    0x4000_0000,
                    0x100_0000,
                    0x5000_0000,
                    0,
                ],
            ),
        ],
        vec![],
    ));
    t.root.add_child(n(
        "memory@10000000",
        vec![
            ps("device_type", "memory"),
            pc("reg", &[0x1000_0000, 0x100_0000]),
        ],
        vec![],
    ));
    t.root.add_child(n(
        "memory@20000000",
        vec![
            ps("device_type", "memory"),
            ps("status", "disabled"),
            pc("reg", &[0x2000_0000, 0x100_0000]),
        ],
        vec![],
    ));
    t.root.add_child(n(
        "memory@30000000",
        vec![pc("reg", &[0x3000_0000, 0x100_0000])],
        vec![],
    ));
    t.root.add_child(n(
        "sram@c0000000",
        vec![
            ps("device_type", "memory"),
            pc("reg", &[0xc000_0000, 0x1000, 0x7]),
        ],
        vec![],
    ));
    let info = parse_tree(&t);
    assert_eq!(
        info.memory,
        [
            Region::new(0x1000_0000, 0x100_0000),
            Region::new(0x4000_0000, 0x100_0000),
            Region::new(0x8000_0000, 0x1000_0000)
        ]
    );
    // The bad reg of sram@c0000000 (12 bytes, entry 8) is a warning, not an error.
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::BadReg(RegError::BadLength { len: 12, entry: 8 })
    )));
    // memory nodes are not MMIO
    assert!(info.mmio.iter().all(|m| !m.path.starts_with("/memory")));
}

#[test]
fn reg_overflow_and_bad_cells() {
    let t = tree(vec![
        n(
            "dev@ffffffffffffffff",
            vec![pc("reg", &[0xffff_ffff, 0xffff_f000, 0, 0x2000])],
            vec![],
        ),
        n(
            "bus",
            vec![
                pc("#address-cells", &[1, 2]),
                pc("#size-cells", &[1]),
                pb("ranges", b""),
            ],
            vec![n("x@0", vec![pc("reg", &[0, 0, 0x10])], vec![])],
        ),
        n(
            "weird",
            vec![pc("#address-cells", &[3]), pc("#size-cells", &[1])],
            vec![],
        ),
    ]);
    let info = parse_tree(&t);
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::BadReg(RegError::Overflow { .. })
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::BadLength {
            prop: "#address-cells",
            len: 8,
            ..
        }
    )));
    // the bus falls back to the default 2/1 cells: x@0's <0 0 0x10> decodes as base 0 size 0x10
    assert!(info
        .mmio
        .iter()
        .any(|m| m.path == "/bus/x@0" && m.region == Region::new(0, 0x10)));
}

#[test]
fn memreserve_entries() {
    let mut t = tree(vec![]);
    t.memory_reservations = vec![
        MemoryReservation::new(0x4000_0000, 0x1000),
        MemoryReservation::new(0x5000_0000, 0),
        MemoryReservation::new(u64::MAX - 10, 0x100),
        MemoryReservation::new(0x4800_0000, 0x10_0000),
    ];
    let info = parse_tree(&t);
    assert_eq!(
        info.memreserve,
        [
            Region::new(0x4000_0000, 0x1000),
            Region::new(0x4800_0000, 0x10_0000)
        ]
    );
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::ZeroSizeMemreserve { addr: 0x5000_0000 }
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::MemreserveOverflow { .. }
    )));
}

#[test]
fn reserved_memory_format_mismatch_is_warned_but_honoured() {
    let rm = n(
        "reserved-memory",
        vec![pc("#address-cells", &[1]), pc("#size-cells", &[1])],
        vec![
            n(
                "a@50000000",
                vec![pc("reg", &[0x5000_0000, 0x1000]), pb("no-map", b"")],
                vec![],
            ),
            n(
                "b",
                vec![
                    pc("reg", &[0x5100_0000, 0x2000]),
                    pb("reusable", b""),
                    ps("status", "disabled"),
                ],
                vec![],
            ),
            n(
                "c",
                vec![pc("reg", &[0x5200_0000, 0x2000]), pb("reusable", b"")],
                vec![],
            ),
        ],
    );
    let info = parse_tree(&tree(vec![rm]));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::ReservedMemoryFormat
    )));
    assert_eq!(info.reserved_memory.len(), 2);
    assert!(info.reserved_memory[0].no_map && !info.reserved_memory[0].reusable);
    assert!(info.reserved_memory[1].reusable);
    assert_eq!(
        info.reserved_memory[1].region,
        Region::new(0x5200_0000, 0x2000)
    );
}

#[test]
fn decode_reg_edges() {
    assert_eq!(
        decode_reg(
            &[],
            CellSizes {
                address: 2,
                size: 2
            }
        ),
        Ok(vec![])
    );
    assert_eq!(
        decode_reg(
            &cells(&[1]),
            CellSizes {
                address: 1,
                size: 0
            }
        ),
        Ok(vec![Region::new(1, 0)])
    );
    assert_eq!(
        decode_reg(
            &cells(&[1]),
            CellSizes {
                address: 0,
                size: 1
            }
        ),
        Err(RegError::UnsupportedCells {
            address: 0,
            size: 1
        })
    );
    assert_eq!(
        decode_reg(
            &cells(&[1]),
            CellSizes {
                address: u32::MAX,
                size: u32::MAX
            }
        ),
        Err(RegError::UnsupportedCells {
            address: u32::MAX,
            size: u32::MAX
        })
    );
    let many: Vec<u32> = (0..2 * (MAX_REG_ENTRIES as u32 + 5)).collect();
    assert_eq!(
        decode_reg(
            &cells(&many),
            CellSizes {
                address: 1,
                size: 1
            }
        )
        .unwrap()
        .len(),
        MAX_REG_ENTRIES
    );
    assert_eq!(
        RegError::BadLength { len: 12, entry: 8 }.to_string(),
        "12 bytes is not a multiple of the 8-byte entry"
    );
    assert_eq!(Region::new(0x1000, 0x10).to_string(), "0x1000..0x1010");
    assert_eq!(Region::new(u64::MAX, 10).end(), u64::MAX);
    let _ = "x".to_string();
}
