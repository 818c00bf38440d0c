//! FAT12/16/32 read tests on images made by mkfs.fat + mtools.

mod common;

use common::*;
use drivers::block::{BlockDevice, MemDisk, PartitionDevice};
use drivers::fs::{self, DirEntry, FatType, FatVolume, FsError};
use drivers::part;

fn with_volume<R>(
    name: &str,
    f: impl FnOnce(&mut PartitionDevice<&mut MemDisk>, u64, usize) -> R,
) -> R {
    let (_, index, seed, big) = VOLUMES.iter().copied().find(|v| v.0 == name).unwrap();
    let mut d = fixture(name);
    let mut p = part::open(&mut d, index).unwrap();
    f(&mut p, seed, big)
}

fn names(v: &[DirEntry]) -> Vec<(String, u64, bool)> {
    let mut n: Vec<_> = v
        .iter()
        .map(|e| (e.name.clone(), e.size, e.is_dir))
        .collect();
    n.sort();
    n
}

#[test]
fn fat_types_and_labels() {
    for (name, fat, label) in [
        ("fat12_superfloppy", FatType::Fat12, "PARKFAT12"),
        ("fat16_mbr", FatType::Fat16, "PARKFAT16"),
        ("fat32_gpt", FatType::Fat32, "PARKFAT32"),
    ] {
        with_volume(name, |p, _, _| {
            let v = FatVolume::mount(p).unwrap();
            assert_eq!(v.fat_type(), fat, "{name}");
            assert_eq!(v.label(), label);
        });
    }
    // Logical partition 5 of the MBR disk is FAT12.
    let mut d = fixture("fat16_mbr");
    let mut p = part::open(&mut d, 5).unwrap();
    assert_eq!(FatVolume::mount(&mut p).unwrap().fat_type(), FatType::Fat12);
    assert_eq!(
        read_all(&mut p, "/logical.txt"),
        b"logical partition five\n"
    );
}

fn read_all<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Vec<u8> {
    let n = fs::size(dev, path).unwrap() as usize;
    let mut v = vec![0u8; n];
    assert_eq!(fs::read(dev, path, &mut v, 0).unwrap(), n);
    v
}

#[test]
fn root_listing() {
    for (name, _, seed, big) in VOLUMES {
        with_volume(name, |p, _, _| {
            let mut got = names(&fs::ls(p, "/").unwrap());
            got.retain(|e| e.0 != "boot.cmd" && e.0 != "EFI");
            let mut want = vec![
                ("HELLO.TXT".to_string(), 20, false),
                ("A long file name with spaces.txt".to_string(), 3000, false),
                ("MixedCase.Txt".to_string(), 777, false),
                ("empty.txt".to_string(), 0, false),
                ("dir1".to_string(), 0, true),
                ("a.bin".to_string(), 20480, false),
                ("c.bin".to_string(), 20480, false),
                ("big.bin".to_string(), big as u64, false),
            ];
            want.sort();
            assert_eq!(got, want, "{name} seed {seed}");
        });
    }
}

#[test]
fn file_contents_match() {
    for (name, _, seed, big) in VOLUMES {
        with_volume(name, |p, _, _| {
            assert_eq!(read_all(p, "HELLO.TXT"), b"hello from parkboot\n");
            assert_eq!(
                read_all(p, "/A long file name with spaces.txt"),
                pattern(seed + 1, 3000)
            );
            assert_eq!(read_all(p, "/mixedcase.txt"), pattern(seed + 2, 777));
            assert_eq!(read_all(p, "/empty.txt"), b"");
            assert_eq!(
                read_all(p, "/dir1/Dir2/third level/deep.bin"),
                pattern(seed + 3, 5000)
            );
            assert_eq!(read_all(p, "/a.bin"), pattern(seed + 10, 20480));
            assert_eq!(read_all(p, "/c.bin"), pattern(seed + 12, 20480));
            assert_eq!(read_all(p, "/big.bin"), pattern(seed + 13, big), "{name}");
        });
    }
    with_volume("fat32_gpt", |p, _, _| {
        assert_eq!(read_all(p, "/EFI/BOOT/BOOTAA64.EFI"), pattern(331, 65536));
    });
    with_volume("fat16_mbr", |p, _, _| {
        assert_eq!(read_all(p, "/boot.cmd"), b"echo booting\n");
    });
}

#[test]
fn big_file_is_fragmented_and_read_in_runs() {
    for (name, _, seed, big) in VOLUMES {
        with_volume(name, |p, _, _| {
            let ext = FatVolume::mount(&mut *p)
                .unwrap()
                .extents("/big.bin")
                .unwrap();
            assert!(
                ext.len() >= 2,
                "{name}: big.bin should be fragmented: {ext:?}"
            );
            assert_eq!(ext.iter().map(|e| e.1).sum::<u64>(), big as u64);
            p.inner().reset_counters();
            let mut buf = vec![0u8; big];
            assert_eq!(fs::read(p, "/big.bin", &mut buf, 0).unwrap(), big);
            assert_eq!(buf, pattern(seed + 13, big));
            let reqs = p.inner().read_requests;
            let blocks = p.inner().blocks_read;
            // One request per extent plus boot sector, FAT windows and directory.
            let fat_windows = 8;
            assert!(
                reqs <= ext.len() as u64 + 4 + fat_windows,
                "{name}: {reqs} requests for {} extents",
                ext.len()
            );
            // Metadata: boot sector, directory clusters, 32 KiB FAT windows.
            assert!(
                blocks < (big as u64 / 512) + 160,
                "{name}: read {blocks} blocks"
            );
        });
    }
}

#[test]
fn partial_reads_at_offsets() {
    with_volume("fat32_gpt", |p, seed, big| {
        let want = pattern(seed + 13, big);
        let mut rng = Rng(42);
        for _ in 0..200 {
            let pos = rng.below(big as u64 + 1) as usize;
            let len = rng.below(70000) as usize;
            let mut buf = vec![0xEEu8; len];
            let n = fs::read(p, "/BIG.BIN", &mut buf, pos as u64).unwrap();
            assert_eq!(n, len.min(big - pos));
            assert_eq!(&buf[..n], &want[pos..pos + n], "pos {pos} len {len}");
            assert!(buf[n..].iter().all(|&b| b == 0xEE), "wrote past the end");
        }
        let mut b = [0u8; 4];
        assert_eq!(fs::read(p, "/big.bin", &mut b, big as u64).unwrap(), 0);
        let e = fs::read(p, "/big.bin", &mut b, big as u64 + 1).unwrap_err();
        assert_eq!(
            e,
            FsError::PosBeyondEof {
                pos: big as u64 + 1,
                size: big as u64
            }
        );
    });
}

#[test]
fn nested_dirs_and_case_insensitivity() {
    for (name, ..) in VOLUMES {
        with_volume(name, |p, _, _| {
            let l = names(&fs::ls(p, "/DIR1").unwrap());
            assert_eq!(l, vec![("Dir2".to_string(), 0, true)]);
            let l = names(&fs::ls(p, "dir1/dir2/").unwrap());
            assert_eq!(l, vec![("third level".to_string(), 0, true)]);
            let l = names(&fs::ls(p, "/dir1/DIR2/THIRD LEVEL").unwrap());
            assert_eq!(l, vec![("deep.bin".to_string(), 5000, false)]);
            assert_eq!(
                fs::size(p, "/Dir1/./dir2/../dir2/Third Level/DEEP.BIN").unwrap(),
                5000
            );
            assert!(fs::exists(p, "/a long FILE name with spaces.TXT").unwrap());
            // Short alias of the long name works too.
            assert!(fs::exists(p, "/ALONGF~1.TXT").unwrap());
            assert!(fs::exists(p, "/dir1").unwrap());
            assert!(fs::exists(p, "/").unwrap());
            assert!(!fs::exists(p, "/nope").unwrap());
            assert!(!fs::exists(p, "/hello.txt/x").unwrap());
            assert!(
                !fs::exists(p, "/b.bin").unwrap(),
                "deleted file must not show"
            );
        });
    }
}

#[test]
fn error_messages() {
    with_volume("fat16_mbr", |p, _, _| {
        let e = fs::size(p, "/boot.scr").unwrap_err();
        assert_eq!(e.to_string(), "** File not found /boot.scr **");
        let e = fs::ls(p, "/HELLO.TXT").unwrap_err();
        assert_eq!(e.to_string(), "** Not a directory: /HELLO.TXT **");
        let e = fs::read(p, "/dir1", &mut [0u8; 4], 0).unwrap_err();
        assert_eq!(e.to_string(), "** /dir1 is a directory **");
        let e = fs::read(p, "/hello.txt/more", &mut [0u8; 4], 0).unwrap_err();
        assert!(matches!(e, FsError::NotADirectory(_)));
        let long = format!("/{}", "d/".repeat(600));
        assert_eq!(fs::ls(p, &long).unwrap_err().to_string(), "path too long");
        let long_name = format!("/{}", "n".repeat(256));
        assert_eq!(fs::size(p, &long_name).unwrap_err(), FsError::PathTooLong);
    });
    // Not FAT at all.
    let mut d = fixture("fat32_gpt");
    let mut p = part::open(&mut d, 2).unwrap();
    let e = fs::ls(&mut p, "/").unwrap_err();
    assert!(matches!(e, FsError::NotFat(_)), "{e}");
    assert!(e.to_string().starts_with("not a FAT filesystem: "));
}

#[test]
fn short_reads_into_small_buffers() {
    with_volume("fat12_superfloppy", |p, seed, _| {
        let mut b = vec![0u8; 100];
        assert_eq!(fs::read(p, "/a.bin", &mut b, 1000).unwrap(), 100);
        assert_eq!(b, pattern(seed + 10, 20480)[1000..1100]);
        let mut empty: [u8; 0] = [];
        assert_eq!(fs::read(p, "/a.bin", &mut empty, 0).unwrap(), 0);
    });
}

#[test]
fn works_on_4k_block_devices() {
    // The FAT16 partition (512-byte sectors) seen through a 4 KiB-block device.
    let bytes = fixture_bytes("fat16_mbr");
    let part = bytes[2048 * 512..(2048 + 32768) * 512].to_vec();
    let mut d = MemDisk::with_block_size(part, 4096);
    assert_eq!(d.block_size(), 4096);
    assert_eq!(read_all(&mut d, "/big.bin"), pattern(213, 1048576));
    assert_eq!(
        read_all(&mut d, "/dir1/dir2/third level/deep.bin"),
        pattern(203, 5000)
    );
    let mut b = vec![0u8; 1000];
    assert_eq!(fs::read(&mut d, "/a.bin", &mut b, 333).unwrap(), 1000);
    assert_eq!(b, pattern(210, 20480)[333..1333]);
}

#[test]
fn format_ls_output() {
    with_volume("fat12_superfloppy", |p, _, _| {
        let l = fs::ls(p, "/").unwrap();
        let s = fs::format_ls(&l);
        assert!(s.contains("       20   HELLO.TXT\n"), "{s}");
        assert!(s.contains("            dir1/\n"), "{s}");
        assert!(s.ends_with("7 file(s), 1 dir(s)\n"), "{s}");
    });
}

#[test]
fn dyn_block_device_works() {
    let mut d = fixture("fat12_superfloppy");
    let dev: &mut dyn BlockDevice = &mut d;
    assert_eq!(fs::size(dev, "/hello.txt").unwrap(), 20);
    assert_eq!(part::partitions(dev).unwrap()[0].index, 0);
}
