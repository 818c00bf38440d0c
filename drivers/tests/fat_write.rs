//! FAT write tests (fatfs under our pre-checks), verified with our reader and
//! `fsck.fat -n` (dosfstools; a missing fsck.fat fails the tests).

mod common;

use common::*;
use drivers::block::BlockDevice;
use drivers::fs::{self, FatVolume, FsError};
use drivers::part;

fn read_all<D: BlockDevice + ?Sized>(dev: &mut D, path: &str) -> Vec<u8> {
    let n = fs::size(dev, path).unwrap() as usize;
    let mut v = vec![0u8; n];
    assert_eq!(fs::read(dev, path, &mut v, 0).unwrap(), n);
    v
}

#[test]
fn write_new_overwrite_and_nested() {
    for (name, index, seed, _) in VOLUMES {
        let mut d = fixture(name);
        {
            let mut p = part::open(&mut d, index).unwrap();
            // New file in the root, short name.
            fs::write(&mut p, "/uboot.env", &pattern(900, 16384)).unwrap();
            // New long-named file in a nested directory.
            let data = pattern(901, 70000);
            fs::write(
                &mut p,
                "/dir1/Dir2/third level/A new long-named file.bin",
                &data,
            )
            .unwrap();
            // Overwrite an existing file with something smaller, then larger.
            fs::write(&mut p, "/a.bin", b"short").unwrap();
            fs::write(&mut p, "/c.bin", &pattern(902, 100_000)).unwrap();
            // Empty file.
            fs::write(&mut p, "/zero.txt", b"").unwrap();
            fs::mkdir(&mut p, "/newdir").unwrap();
            fs::mkdir(&mut p, "/newdir").unwrap(); // exists: fine
            fs::write(&mut p, "/NEWDIR/inside.txt", b"inside\n").unwrap();

            assert_eq!(read_all(&mut p, "/UBOOT.ENV"), pattern(900, 16384));
            assert_eq!(
                read_all(&mut p, "/dir1/dir2/third level/a new long-named file.bin"),
                data
            );
            assert_eq!(read_all(&mut p, "/a.bin"), b"short");
            assert_eq!(read_all(&mut p, "/c.bin"), pattern(902, 100_000));
            assert_eq!(read_all(&mut p, "/zero.txt"), b"");
            assert_eq!(read_all(&mut p, "/newdir/inside.txt"), b"inside\n");
            // Untouched files are intact.
            assert_eq!(
                read_all(&mut p, "/dir1/Dir2/third level/deep.bin"),
                pattern(seed + 3, 5000)
            );
            assert_eq!(
                read_all(&mut p, "/A long file name with spaces.txt"),
                pattern(seed + 1, 3000)
            );
            let names: Vec<_> = fs::ls(&mut p, "/dir1/dir2/third level")
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(
                names.contains(&"A new long-named file.bin".to_string()),
                "{names:?}"
            );
        }
        check_fsck(&d, index, name);
    }
}

#[test]
fn rewrite_many_times_keeps_space() {
    // saveenv-style: the same file rewritten repeatedly must not leak clusters.
    let mut d = fixture("fat12_superfloppy");
    let free0 = FatVolume::mount(&mut d).unwrap().free_clusters().unwrap();
    for i in 0..50u64 {
        fs::write(&mut d, "/uboot.env", &pattern(i, 8192 + i as usize * 100)).unwrap();
    }
    assert_eq!(read_all(&mut d, "/uboot.env"), pattern(49, 8192 + 4900));
    let free1 = FatVolume::mount(&mut d).unwrap().free_clusters().unwrap();
    assert_eq!(free0 - free1, 26, "13092 bytes in 512-byte clusters");
    check_fsck(&d, 0, "rewrite");
}

#[test]
fn write_errors() {
    let mut d = fixture("fat12_superfloppy");
    let e = fs::write(&mut d, "/nodir/x.txt", b"x").unwrap_err();
    assert_eq!(e.to_string(), "** File not found /nodir/x.txt **");
    let e = fs::write(&mut d, "/dir1", b"x").unwrap_err();
    assert_eq!(e, FsError::IsADirectory("/dir1".into()));
    let e = fs::write(&mut d, "/", b"x").unwrap_err();
    assert!(matches!(e, FsError::IsADirectory(_)));
    let e = fs::write(&mut d, "/bad*name", b"x").unwrap_err();
    assert_eq!(e.to_string(), "invalid FAT file name: \"bad*name\"");
    // A multi-byte first character would panic inside fatfs: rejected up front.
    assert!(matches!(
        fs::write(&mut d, "/éa.txt", b"x"),
        Err(FsError::InvalidName(_))
    ));
    let e = fs::mkdir(&mut d, "/hello.txt").unwrap_err();
    assert!(matches!(e, FsError::NotADirectory(_)));
    // Too big for the volume: refused before anything is written.
    let before = d.data().to_vec();
    let e = fs::write(&mut d, "/huge.bin", &vec![0u8; 3 << 20]).unwrap_err();
    assert!(matches!(e, FsError::NoSpace { .. }), "{e}");
    assert!(e.to_string().starts_with("not enough free space"));
    assert!(
        d.data() == &before[..],
        "failed write must not modify the image"
    );
    // Read-only device.
    d.set_read_only(true);
    let e = fs::write(&mut d, "/new.txt", b"x").unwrap_err();
    assert_eq!(e.to_string(), "I/O error: block device is read-only");
}

#[test]
fn fill_volume_exactly() {
    let mut d = fixture("fat12_superfloppy");
    let free = FatVolume::mount(&mut d).unwrap().free_clusters().unwrap() as usize;
    // Leave one cluster for a possible directory extension.
    let data = pattern(77, (free - 1) * 512);
    fs::write(&mut d, "/fill.bin", &data).unwrap();
    assert_eq!(read_all(&mut d, "/fill.bin"), data);
    assert!(matches!(
        fs::write(&mut d, "/more.bin", &[1u8; 2048]),
        Err(FsError::NoSpace { .. })
    ));
    check_fsck(&d, 0, "fill");
}

#[test]
fn fat32_fsinfo_free_count_is_repaired() {
    // A FSInfo free count lower than reality would make fatfs underflow
    // (panic in debug builds) when it allocates; the write path fixes it first.
    let mut d = fixture("fat32_gpt");
    let fsinfo = (2048 + 1) * 512 + 488;
    d.data_mut()[fsinfo..fsinfo + 4].copy_from_slice(&0u32.to_le_bytes());
    {
        let mut p = part::open(&mut d, 1).unwrap();
        fs::write(&mut p, "/after.bin", &pattern(5, 50_000)).unwrap();
        assert_eq!(read_all(&mut p, "/after.bin"), pattern(5, 50_000));
        let free = FatVolume::mount(&mut p).unwrap().free_clusters().unwrap();
        let stored = u32::from_le_bytes(d_fsinfo(&mut p));
        assert_eq!(
            stored, free,
            "FSInfo must hold the exact free count after the write"
        );
    }
    check_fsck(&d, 1, "fsinfo");
}

fn d_fsinfo<D: BlockDevice>(p: &mut D) -> [u8; 4] {
    let mut s = [0u8; 512];
    p.read_blocks(1, &mut s).unwrap();
    s[488..492].try_into().unwrap()
}

#[test]
fn write_request_pattern_is_reasonable() {
    // A 1 MiB fatwrite on FAT16 (2 KiB clusters): data goes out in cluster-
    // sized direct writes; FAT/dir updates are absorbed by the cache.
    let mut d = fixture("fat16_mbr");
    let mut p = part::open(&mut d, 1).unwrap();
    p.inner().reset_counters();
    fs::write(&mut p, "/k.img", &pattern(1, 1 << 20)).unwrap();
    let w = p.inner().write_requests;
    assert!(w < 700, "{w} write requests for 512 clusters");
    assert_eq!(read_all(&mut p, "/k.img"), pattern(1, 1 << 20));
}

#[test]
fn large_file_spanning_many_fat_windows() {
    // 12 MiB in 512-byte clusters: 24576 FAT32 entries (96 KiB of FAT), so
    // the reader's run scan crosses several FAT windows.
    let mut d = fixture("fat32_gpt");
    let mut p = part::open(&mut d, 1).unwrap();
    let data = pattern(12, 12 << 20);
    fs::write(&mut p, "/large.bin", &data).unwrap();
    p.inner().reset_counters();
    assert_eq!(read_all(&mut p, "/large.bin"), data);
    let ext = FatVolume::mount(&mut p)
        .unwrap()
        .extents("/large.bin")
        .unwrap();
    assert!(ext.len() <= 3, "{ext:?}");
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        fs::read(&mut p, "/large.bin", &mut buf, (7 << 20) + 100).unwrap(),
        4096
    );
    assert_eq!(buf, data[(7 << 20) + 100..(7 << 20) + 4196]);
    check_fsck(&d, 1, "large");
}

#[test]
fn odd_names_roundtrip() {
    let mut d = fixture("fat16_mbr");
    let mut p = part::open(&mut d, 1).unwrap();
    let long255 = "L".repeat(255);
    let names = [
        "...",
        " lead",
        "trail ",
        "a.b.c.d",
        "x.verylongextension",
        "thirteenchars",
        "twentysixcharacters_abcdef",
        "aé€ unicode.txt",
        "UPPER.TXT",
        "lower.txt",
        "MiXeD.TxT",
        "$%'-_@~`!(){}^#&+,;=[]",
        long255.as_str(),
    ];
    for (i, n) in names.iter().enumerate() {
        let data = pattern(i as u64, 100 + i * 37);
        fs::write(&mut p, &format!("/dir1/{n}"), &data).unwrap_or_else(|e| panic!("{n:?}: {e}"));
        assert_eq!(read_all(&mut p, &format!("/dir1/{n}")), data, "{n:?}");
    }
    let listed: Vec<String> = fs::ls(&mut p, "/dir1")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    for n in names {
        assert!(listed.iter().any(|l| l == n), "{n:?} not in {listed:?}");
    }
    let too_long = "M".repeat(256);
    assert_eq!(
        fs::write(&mut p, &format!("/{too_long}"), b"x"),
        Err(FsError::PathTooLong)
    );
    check_fsck(&d, 1, "names");
}

/// `overwrite` writes a same-size file's new contents into its own clusters:
/// only the bytes of the file's extents change (no FAT, directory or FSInfo
/// block), the fragmented big.bin included; another size is refused with
/// the image unchanged.
#[test]
fn overwrite_in_place_touches_only_the_file_data() {
    for (name, index, seed, big) in VOLUMES {
        let mut d = fixture(name);
        let start = part::open(&mut d, index).unwrap().start_lba() * 512;
        for (path, len) in [("/big.bin", big), ("/HELLO.TXT", 0)] {
            let len = if len == 0 {
                fs::size(&mut part::open(&mut d, index).unwrap(), path).unwrap() as usize
            } else {
                len
            };
            let before = d.data().to_vec();
            let extents = {
                let mut p = part::open(&mut d, index).unwrap();
                FatVolume::mount(&mut p).unwrap().extents(path).unwrap()
            };
            let new = pattern(seed + 50, len);
            fs::overwrite(&mut part::open(&mut d, index).unwrap(), path, &new).unwrap();
            assert_eq!(read_all(&mut part::open(&mut d, index).unwrap(), path), new);
            let inside = |i: usize| {
                extents.iter().any(|&(off, n)| {
                    let o = (start + off) as usize;
                    (o..o + n as usize).contains(&i)
                })
            };
            let changed: Vec<usize> = (0..before.len())
                .filter(|&i| before[i] != d.data()[i])
                .collect();
            assert!(!changed.is_empty(), "{name} {path}");
            assert!(
                changed.iter().all(|&i| inside(i)),
                "{name} {path}: a byte outside the file's extents changed"
            );
            check_fsck(&d, index, &format!("{name}-overwrite-in-place"));
        }
        let before = d.data().to_vec();
        let mut p = part::open(&mut d, index).unwrap();
        let e = fs::overwrite(&mut p, "/HELLO.TXT", b"x").unwrap_err();
        assert!(
            e.to_string().starts_with("cannot overwrite a ")
                && e.to_string().ends_with("-byte file in place with 1 bytes"),
            "{e}"
        );
        assert_eq!(
            fs::overwrite(&mut p, "/missing", b"x").unwrap_err(),
            FsError::NotFound("/missing".into())
        );
        assert!(d.data() == &before[..], "{name}: refused overwrite wrote");
    }
}
