//! Partition table tests on real images made by sfdisk (fixtures/make.sh).

mod common;

use common::*;
use drivers::block::{BlockDevice, BlockError, MemDisk};
use drivers::part::{self, Guid, PartError, PartKind, Scheme};

#[test]
fn mbr_primary_extended_and_logical() {
    let mut d = fixture("fat16_mbr");
    let t = part::read_table(&mut d).unwrap();
    assert_eq!(
        t.scheme,
        Scheme::Mbr {
            disk_signature: 0x1234_5678
        }
    );
    let got: Vec<_> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.index,
                p.start_lba,
                p.num_blocks,
                p.kind.clone(),
                p.bootable,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 2048, 32768, PartKind::Mbr(0x0e), true),
            (2, 34816, 8192, PartKind::Mbr(0x05), false),
            (5, 36864, 2048, PartKind::Mbr(0x01), false),
            (6, 40960, 2048, PartKind::Mbr(0x83), false),
        ]
    );
    assert!(t.get(2).unwrap().is_extended());
    assert_eq!(t.default_partition().unwrap().index, 1);
    let text = part::format_table(&t, "virtio device 0");
    assert!(text.contains("Partition Type: DOS"), "{text}");
    assert!(
        text.contains("  1\t2048      \t32768     \t12345678-01\t0e Boot"),
        "{text}"
    );
    assert!(
        text.contains("  2\t34816     \t8192      \t12345678-02\t05 Extd"),
        "{text}"
    );
    assert!(text.contains("  5\t36864"), "{text}");
}

#[test]
fn gpt_entries() {
    let mut d = fixture("fat32_gpt");
    let t = part::read_table(&mut d).unwrap();
    match &t.scheme {
        Scheme::Gpt {
            disk_guid,
            used_backup,
        } => {
            assert_eq!(
                disk_guid.to_string(),
                "01234567-89ab-cdef-0123-456789abcdef"
            );
            assert!(!used_backup);
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(t.partitions.len(), 2);
    let p1 = &t.partitions[0];
    assert_eq!(
        (p1.index, p1.start_lba, p1.num_blocks, p1.bootable),
        (1, 2048, 73728, true)
    );
    match &p1.kind {
        PartKind::Gpt {
            type_guid,
            part_guid,
            name,
            ..
        } => {
            assert_eq!(*type_guid, Guid::EFI_SYSTEM);
            assert_eq!(
                part_guid.to_string(),
                "11111111-2222-3333-4444-555555555555"
            );
            assert_eq!(name, "boot");
        }
        k => panic!("{k:?}"),
    }
    let p2 = &t.partitions[1];
    assert_eq!(
        (p2.index, p2.start_lba, p2.num_blocks, p2.bootable),
        (2, 75776, 4096, false)
    );
    assert!(
        matches!(&p2.kind, PartKind::Gpt { type_guid, name, .. } if *type_guid == Guid::LINUX_DATA && name == "rootfs")
    );
    let text = part::format_table(&t, "virtio device 0");
    assert!(text.contains("Partition Type: EFI"), "{text}");
    assert!(
        text.contains("  1\t0x00000800\t0x000127ff\t\"boot\""),
        "{text}"
    );
    assert!(
        text.contains("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
        "{text}"
    );
}

#[test]
fn superfloppy_is_partition_zero() {
    let mut d = fixture("fat12_superfloppy");
    let t = part::read_table(&mut d).unwrap();
    assert_eq!(t.scheme, Scheme::WholeDisk);
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].index, 0);
    assert_eq!(t.partitions[0].num_blocks, 4096);
    assert_eq!(t.partitions[0].kind, PartKind::WholeDisk);
    assert!(part::format_table(&t, "virtio device 0").contains("whole-disk"));
}

#[test]
fn open_partition_view_is_bounded() {
    let mut d = fixture("fat16_mbr");
    let mut p = part::open(&mut d, 5).unwrap();
    assert_eq!(p.num_blocks(), 2048);
    let mut b = [0u8; 512];
    p.read_blocks(0, &mut b).unwrap();
    assert_eq!(&b[54..59], b"FAT12");
    assert!(matches!(
        p.read_blocks(2048, &mut b),
        Err(BlockError::OutOfRange { .. })
    ));
    assert!(matches!(
        part::open(&mut d, 3),
        Err(PartError::NoSuchPartition(3))
    ));
    assert_eq!(part::open(&mut d, 0).unwrap().num_blocks(), 43008);
}

#[test]
fn gpt_falls_back_to_backup_header() {
    let mut d = fixture("fat32_gpt");
    d.data_mut()[512 + 24] ^= 1; // my_lba: breaks the header CRC
    let t = part::read_table(&mut d).unwrap();
    assert!(matches!(
        t.scheme,
        Scheme::Gpt {
            used_backup: true,
            ..
        }
    ));
    assert_eq!(t.partitions.len(), 2);
    assert!(part::format_table(&t, "x").contains("using backup GPT"));

    // Corrupt the primary entry array only: header fine, array CRC wrong.
    let mut d = fixture("fat32_gpt");
    d.data_mut()[2 * 512 + 60] ^= 0x55;
    let t = part::read_table(&mut d).unwrap();
    assert!(matches!(
        t.scheme,
        Scheme::Gpt {
            used_backup: true,
            ..
        }
    ));
    match &t.partitions[0].kind {
        PartKind::Gpt { name, .. } => assert_eq!(name, "boot"),
        k => panic!("{k:?}"),
    }
}

#[test]
fn gpt_both_headers_bad_is_an_error() {
    let mut d = fixture("fat32_gpt");
    let n = d.num_blocks() as usize;
    d.data_mut()[512 + 30] ^= 1;
    d.data_mut()[(n - 1) * 512 + 30] ^= 1;
    let e = part::read_table(&mut d).unwrap_err();
    assert!(matches!(e, PartError::BadGpt(_)), "{e:?}");
    assert_eq!(e.to_string(), "invalid GPT: header CRC mismatch");
}

#[test]
fn truncated_disks_give_errors() {
    // GPT disk cut in the middle of partition 1: header's usable area is past the end.
    let bytes = fixture_bytes("fat32_gpt");
    let mut d = MemDisk::new(bytes[..20 << 20].to_vec());
    let e = part::read_table(&mut d).unwrap_err();
    assert!(matches!(e, PartError::BadGpt(_)), "{e}");

    // MBR disk cut inside partition 1.
    let bytes = fixture_bytes("fat16_mbr");
    let mut d = MemDisk::new(bytes[..8 << 20].to_vec());
    let e = part::read_table(&mut d).unwrap_err();
    assert_eq!(
        e,
        PartError::OutOfDisk {
            index: 1,
            start: 2048,
            blocks: 32768,
            disk: 16384
        }
    );
    assert_eq!(
        e.to_string(),
        "partition 1 (start 2048, 32768 blocks) lies outside the disk (16384 blocks)"
    );

    // Smaller than one block.
    let mut d = MemDisk::new(vec![0; 100]);
    assert_eq!(part::read_table(&mut d), Err(PartError::NoTable));
}

#[test]
fn empty_disk_has_no_table() {
    let mut d = MemDisk::zeroed(64);
    let e = part::read_table(&mut d).unwrap_err();
    assert_eq!(e, PartError::NoTable);
    assert_eq!(e.to_string(), "no partition table or filesystem found");
}

#[test]
fn ebr_loop_is_detected() {
    let mut d = fixture("fat16_mbr");
    // EBR of logical 5 is at 34816; its link entry (slot 2) points to the next
    // EBR relative to the extended start. Point it back at the first EBR.
    let ebr = 34816 * 512;
    let link = ebr + 446 + 16;
    assert_eq!(d.data()[link + 4], 5);
    d.data_mut()[link + 8..link + 12].copy_from_slice(&0u32.to_le_bytes());
    let e = part::read_table(&mut d).unwrap_err();
    assert_eq!(e, PartError::BadExtended("loop in the EBR chain"));
}

#[test]
fn long_ebr_chain_is_bounded() {
    // Hand-made MBR: extended partition with 200 chained EBRs.
    let blocks = 4096u64;
    let mut d = MemDisk::zeroed(blocks as usize);
    let put = |d: &mut MemDisk, lba: u64, slot: usize, ty: u8, start: u32, size: u32| {
        let o = lba as usize * 512 + 446 + 16 * slot;
        let b = d.data_mut();
        b[o + 4] = ty;
        b[o + 8..o + 12].copy_from_slice(&start.to_le_bytes());
        b[o + 12..o + 16].copy_from_slice(&size.to_le_bytes());
        b[lba as usize * 512 + 510] = 0x55;
        b[lba as usize * 512 + 511] = 0xAA;
    };
    put(&mut d, 0, 0, 0x05, 1, 4000);
    for i in 0..200u32 {
        let ebr = 1 + u64::from(i) * 2;
        put(&mut d, ebr, 0, 0x83, 1, 1);
        put(&mut d, ebr, 1, 0x05, (i + 1) * 2, 2);
    }
    let e = part::read_table(&mut d).unwrap_err();
    assert_eq!(e, PartError::BadExtended("too many logical partitions"));
}

#[test]
fn gpt_entry_outside_usable_area_is_rejected() {
    let mut d = fixture("fat32_gpt");
    // Move partition 2's last LBA beyond the disk in both arrays, fixing CRCs.
    for (hdr_lba, arr_lba) in [(1usize, 2usize), (81919, 81887)] {
        let a = arr_lba * 512;
        let e2 = a + 128 + 40;
        d.data_mut()[e2..e2 + 8].copy_from_slice(&90000u64.to_le_bytes());
        let arr_crc = crc32fast::hash(&d.data()[a..a + 128 * 128]);
        let h = hdr_lba * 512;
        d.data_mut()[h + 88..h + 92].copy_from_slice(&arr_crc.to_le_bytes());
        d.data_mut()[h + 16..h + 20].copy_from_slice(&[0; 4]);
        let hcrc = crc32fast::hash(&d.data()[h..h + 92]);
        d.data_mut()[h + 16..h + 20].copy_from_slice(&hcrc.to_le_bytes());
    }
    let e = part::read_table(&mut d).unwrap_err();
    assert!(matches!(e, PartError::OutOfDisk { index: 2, .. }), "{e:?}");
}

#[test]
fn io_errors_propagate() {
    let mut d = fixture("fat32_gpt");
    d.set_fail_lba(Some(0));
    let e = part::read_table(&mut d).unwrap_err();
    assert!(matches!(e, PartError::Io(_)), "{e:?}");
    // Primary header unreadable: backup header is used.
    let mut d = fixture("fat32_gpt");
    d.set_fail_lba(Some(1));
    let t = part::read_table(&mut d).unwrap();
    assert!(matches!(
        t.scheme,
        Scheme::Gpt {
            used_backup: true,
            ..
        }
    ));
    // Primary unreadable at LBA 2 (entries): backup still works.
    let mut d = fixture("fat32_gpt");
    d.set_fail_lba(Some(2));
    assert!(part::read_table(&mut d).is_ok());
}

#[test]
fn part_errors_are_one_line() {
    for e in [
        PartError::NoTable,
        PartError::BadGpt("x"),
        PartError::BadExtended("y"),
        PartError::NoSuchPartition(7),
        PartError::BlockSize(3),
        PartError::Io(BlockError::Device("z")),
    ] {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s}");
    }
}
