//! Corrupted and truncated images: every operation must return a typed error
//! (with a one-line message) or succeed, never panic or hang.

mod common;

use common::*;
use drivers::block::{BlockDevice, MemDisk, PartitionDevice};
use drivers::fs::{self, FsError};
use drivers::part;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Coverage counters for the mutation loops: successful listings, file reads
/// that returned data, writes that succeeded, and errors seen.
static LS_OK: AtomicU64 = AtomicU64::new(0);
static READ_OK: AtomicU64 = AtomicU64::new(0);
static WRITE_OK: AtomicU64 = AtomicU64::new(0);
static ERRORS: AtomicU64 = AtomicU64::new(0);

/// Raw layout of a FAT volume (parsed independently of the crate).
struct Layout {
    cs: usize,
    fat_start: usize,
    fat32: bool,
    fat12: bool,
    data_start: usize,
    fats: usize,
    fat_bytes: usize,
}

impl Layout {
    fn of(v: &[u8]) -> Self {
        let u16at = |o: usize| u16::from_le_bytes([v[o], v[o + 1]]) as usize;
        let bps = u16at(11);
        let spc = v[13] as usize;
        let reserved = u16at(14);
        let fats = v[16] as usize;
        let root_entries = u16at(17);
        let spf16 = u16at(22);
        let spf = if spf16 != 0 {
            spf16
        } else {
            u32::from_le_bytes(v[36..40].try_into().unwrap()) as usize
        };
        let root_sectors = (root_entries * 32).div_ceil(bps);
        let data_start = (reserved + fats * spf + root_sectors) * bps;
        let total = {
            let t = u16at(19);
            if t != 0 {
                t
            } else {
                u32::from_le_bytes(v[32..36].try_into().unwrap()) as usize
            }
        };
        let clusters = (total - data_start / bps) / spc;
        Layout {
            cs: bps * spc,
            fat_start: reserved * bps,
            fat32: spf16 == 0,
            fat12: clusters < 4085,
            data_start,
            fats,
            fat_bytes: spf * bps,
        }
    }

    fn cluster_of_entry(&self, v: &[u8], entry: usize) -> u32 {
        let lo = u16::from_le_bytes([v[entry + 26], v[entry + 27]]) as u32;
        let hi = if self.fat32 {
            u16::from_le_bytes([v[entry + 20], v[entry + 21]]) as u32
        } else {
            0
        };
        (hi << 16) | lo
    }

    fn set_entry_cluster(&self, v: &mut [u8], entry: usize, c: u32) {
        v[entry + 26..entry + 28].copy_from_slice(&(c as u16).to_le_bytes());
        if self.fat32 {
            v[entry + 20..entry + 22].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
        }
    }

    /// Set FAT[c] = val in every FAT copy.
    fn set_fat(&self, v: &mut [u8], c: u32, val: u32) {
        for f in 0..self.fats {
            let base = self.fat_start + f * self.fat_bytes;
            if self.fat32 {
                let o = base + c as usize * 4;
                v[o..o + 4].copy_from_slice(&val.to_le_bytes());
            } else if self.fat12 {
                let o = base + c as usize + c as usize / 2;
                let old = u16::from_le_bytes([v[o], v[o + 1]]);
                let new = if c & 1 == 1 {
                    (old & 0x000F) | ((val as u16) << 4)
                } else {
                    (old & 0xF000) | (val as u16 & 0xFFF)
                };
                v[o..o + 2].copy_from_slice(&new.to_le_bytes());
            } else {
                let o = base + c as usize * 2;
                v[o..o + 2].copy_from_slice(&(val as u16).to_le_bytes());
            }
        }
    }
}

/// Byte offset of the short-name directory entry `sfn` inside the volume.
fn find_entry(v: &[u8], sfn: &[u8; 11]) -> usize {
    v.windows(11)
        .enumerate()
        .position(|(i, w)| i % 32 == 0 && w == sfn)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(sfn)))
}

/// A FAT volume image (partition bytes) of one of the fixtures.
fn volume(name: &str) -> Vec<u8> {
    let (_, index, ..) = VOLUMES.iter().copied().find(|v| v.0 == name).unwrap();
    let mut d = fixture(name);
    let t = part::read_table(&mut d).unwrap();
    let p = t.get(index).unwrap();
    d.data()[p.start_lba as usize * 512..(p.start_lba + p.num_blocks) as usize * 512].to_vec()
}

fn assert_one_line<E: std::fmt::Display>(e: &E) {
    ERRORS.fetch_add(1, Relaxed);
    let s = e.to_string();
    assert!(!s.is_empty() && !s.contains('\n'), "bad message {s:?}");
}

#[test]
fn bpb_corruptions_are_rejected() {
    type Mutation = (&'static str, fn(&mut [u8]));
    let muts: &[Mutation] = &[
        ("bps=0", |v| v[11..13].copy_from_slice(&[0, 0])),
        ("bps=1000", |v| {
            v[11..13].copy_from_slice(&1000u16.to_le_bytes())
        }),
        ("spc=0", |v| v[13] = 0),
        ("spc=3", |v| v[13] = 3),
        ("reserved=0", |v| v[14..16].copy_from_slice(&[0, 0])),
        ("fats=0", |v| v[16] = 0),
        ("fats=255", |v| v[16] = 255),
        ("total=0", |v| {
            v[19..21].copy_from_slice(&[0, 0]);
            v[32..36].copy_from_slice(&[0; 4]);
        }),
        ("total=max", |v| {
            v[19..21].copy_from_slice(&[0, 0]);
            v[32..36].copy_from_slice(&[0xFF; 4]);
        }),
        ("spf16=0xFFFF", |v| v[22..24].copy_from_slice(&[0xFF, 0xFF])),
        ("spf32=max", |v| v[36..40].copy_from_slice(&[0xFF; 4])),
        ("rootclus=0", |v| v[44..48].copy_from_slice(&[0; 4])),
        ("rootclus=max", |v| v[44..48].copy_from_slice(&[0xFF; 4])),
        ("root_entries=0", |v| v[17..19].copy_from_slice(&[0, 0])),
        ("root_entries=max", |v| {
            v[17..19].copy_from_slice(&[0xFF, 0xFF])
        }),
        ("zero sector", |v| v[..512].fill(0)),
        ("ff sector", |v| v[..512].fill(0xFF)),
    ];
    for (name, ..) in VOLUMES {
        let base = volume(name);
        for (what, m) in muts {
            let mut v = base.clone();
            m(&mut v);
            let mut d = MemDisk::new(v);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let ls = fs::ls(&mut d, "/");
                let rd = fs::read(&mut d, "/big.bin", &mut vec![0u8; 1 << 16], 0);
                let wr = fs::write(&mut d, "/new.txt", b"data");
                (ls, rd, wr)
            }));
            match r {
                Ok((ls, rd, wr)) => {
                    for e in [ls.err(), rd.err(), wr.err()].into_iter().flatten() {
                        assert_one_line(&e);
                    }
                }
                Err(p) => {
                    eprintln!("PANIC on {name} with {what}");
                    resume_unwind(p)
                }
            }
        }
    }
}

#[test]
fn loop_in_file_chain_is_detected() {
    for (name, ..) in VOLUMES {
        let mut v = volume(name);
        let l = Layout::of(&v);
        let e = find_entry(&v, b"BIG     BIN");
        let first = l.cluster_of_entry(&v, e);
        // big.bin's first fragment is contiguous: link its 5th cluster back to the 2nd.
        l.set_fat(&mut v, first + 4, first + 1);
        let mut d = MemDisk::new(v);
        let mut buf = vec![0u8; 4 << 20];
        let err = fs::read(&mut d, "/big.bin", &mut buf, 0).unwrap_err();
        assert_eq!(err, FsError::Corrupt("loop in a cluster chain"), "{name}");
        assert_eq!(
            err.to_string(),
            "corrupted FAT filesystem: loop in a cluster chain"
        );
        // Overwriting it must not follow the loop forever either.
        let err = fs::write(&mut d, "/big.bin", b"x").unwrap_err();
        assert_eq!(err, FsError::Corrupt("loop in a cluster chain"), "{name}");
    }
}

#[test]
fn loop_in_directory_chain_is_detected() {
    for (name, ..) in VOLUMES {
        let mut v = volume(name);
        let l = Layout::of(&v);
        let e = find_entry(&v, b"DIR1       ");
        let c = l.cluster_of_entry(&v, e);
        // Fill dir1's first cluster with non-end entries so the reader must follow the chain.
        let off = l.data_start + (c as usize - 2) * l.cs;
        for (i, ent) in v[off..off + l.cs].chunks_exact_mut(32).enumerate().skip(2) {
            ent[..11].copy_from_slice(format!("F{i:07}TXT").as_bytes());
            ent[11] = 0x20;
        }
        l.set_fat(&mut v, c, c);
        let mut d = MemDisk::new(v);
        let err = fs::ls(&mut d, "/dir1").unwrap_err();
        assert!(matches!(err, FsError::Corrupt(_)), "{name}: {err}");
        let err = fs::write(&mut d, "/dir1/new.txt", b"x").unwrap_err();
        assert!(matches!(err, FsError::Corrupt(_)), "{name}: {err}");
        let err = fs::size(&mut d, "/dir1/nothere").unwrap_err();
        assert!(matches!(err, FsError::Corrupt(_)), "{name}: {err}");
    }
}

#[test]
fn bad_cluster_numbers_and_sizes() {
    for (name, ..) in VOLUMES {
        let base = volume(name);
        let l = Layout::of(&base);
        let e = find_entry(&base, b"A       BIN");
        let first = l.cluster_of_entry(&base, e);
        let outside = if l.fat32 {
            0x0FFF_FF00
        } else if l.fat12 {
            0xFF0
        } else {
            0xFFF0
        };
        let cases: Vec<(&str, Mutator, FsError)> = vec![
            (
                "cluster 1",
                Box::new(move |v: &mut Vec<u8>| l_set(v, e, 1)),
                FsError::Corrupt("cluster number out of range"),
            ),
            (
                "cluster huge",
                Box::new(move |v: &mut Vec<u8>| l_set(v, e, 0x0FFF_FF00)),
                FsError::Corrupt("cluster number out of range"),
            ),
            (
                "cluster 0",
                Box::new(move |v: &mut Vec<u8>| l_set(v, e, 0)),
                FsError::Corrupt("non-empty file without clusters"),
            ),
            (
                "size 4G",
                Box::new(move |v: &mut Vec<u8>| v[e + 28..e + 32].fill(0xFF)),
                FsError::Corrupt("file larger than the volume"),
            ),
            (
                "size +1 cluster",
                Box::new(move |v: &mut Vec<u8>| {
                    let s = u32::from_le_bytes(v[e + 28..e + 32].try_into().unwrap()) + 40960;
                    v[e + 28..e + 32].copy_from_slice(&s.to_le_bytes());
                }),
                FsError::Corrupt("cluster chain shorter than the file"),
            ),
            (
                "free in chain",
                Box::new(move |v: &mut Vec<u8>| Layout::of(v).set_fat(v, first + 1, 0)),
                FsError::Corrupt("free cluster inside a cluster chain"),
            ),
            (
                "chain outside",
                Box::new(move |v: &mut Vec<u8>| Layout::of(v).set_fat(v, first + 1, outside)),
                FsError::Corrupt("cluster chain points outside the volume"),
            ),
        ];
        for (what, m, want) in cases {
            let mut v = base.clone();
            m(&mut v);
            let mut d = MemDisk::new(v);
            let mut buf = vec![0u8; 1 << 20];
            let got = fs::read(&mut d, "/a.bin", &mut buf, 0);
            assert_eq!(got, Err(want.clone()), "{name}: {what}");
            assert_one_line(&want);
            // Writing over the damaged file must fail cleanly too (or succeed).
            let w = fs::write(&mut d, "/a.bin", b"new");
            if let Err(e) = w {
                assert_one_line(&e);
            }
        }
    }
}

type Mutator = Box<dyn Fn(&mut Vec<u8>)>;

fn l_set(v: &mut [u8], e: usize, c: u32) {
    Layout::of(v).set_entry_cluster(v, e, c);
}

#[test]
fn garbage_long_name_entries_fall_back_to_short_names() {
    for (name, ..) in VOLUMES {
        let mut v = volume(name);
        let e = find_entry(&v, b"ALONGF~1TXT");
        // The LFN entries precede the SFN entry: scramble orders and checksums.
        v[e - 32] = 0x47; // order 7 "last" with a wrong count
        v[e - 32 + 13] ^= 0x5A; // checksum
        v[e - 64] = 0x3F; // index 31: invalid
        let mut d = MemDisk::new(v);
        let l = fs::ls(&mut d, "/").unwrap();
        assert!(l.iter().any(|x| x.name == "ALONGF~1.TXT"), "{name}: {l:?}");
        assert_eq!(fs::size(&mut d, "/alongf~1.txt").unwrap(), 3000);
        assert!(!fs::exists(&mut d, "/A long file name with spaces.txt").unwrap());
    }
}

#[test]
fn fsinfo_bad_signature_blocks_writes_only() {
    let mut v = volume("fat32_gpt");
    v[512..516].fill(0);
    let mut d = MemDisk::new(v);
    assert_eq!(fs::size(&mut d, "/hello.txt").unwrap(), 20);
    let e = fs::write(&mut d, "/x.txt", b"x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "corrupted FAT filesystem: bad FAT32 FSInfo sector signature"
    );
}

#[test]
fn truncated_volumes_give_io_errors() {
    for (name, ..) in VOLUMES {
        let v = volume(name);
        let l = Layout::of(&v);
        let e = find_entry(&v, b"BIG     BIN");
        let first = l.cluster_of_entry(&v, e) as usize;
        // Cut inside big.bin's data.
        let cut = l.data_start + (first - 2 + 3) * l.cs;
        let mut d = MemDisk::new(v[..cut].to_vec());
        let mut buf = vec![0u8; 4 << 20];
        let err = fs::read(&mut d, "/big.bin", &mut buf, 0).unwrap_err();
        assert!(matches!(err, FsError::Io(_)), "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with("I/O error: block I/O out of range"),
            "{err}"
        );
        // Earlier files still read fine.
        assert_eq!(fs::size(&mut d, "/hello.txt").unwrap(), 20);
    }
    // Whole disks cut at many points: partitions + walk never panic.
    for (name, ..) in VOLUMES {
        let bytes = fixture_bytes(name);
        let step = bytes.len() / 48;
        let mut cuts: Vec<usize> = (0..48).map(|i| i * step + 512 * (i % 3)).collect();
        cuts.extend([
            0,
            1,
            511,
            512,
            513,
            1024,
            4096,
            1 << 20,
            2048 * 512 + 512,
            2048 * 512 + 1024,
        ]);
        for cut in cuts {
            let mut d = MemDisk::new(bytes[..cut.min(bytes.len())].to_vec());
            exercise(&mut d, &format!("{name} cut at {cut}"), false);
        }
    }
}

/// partitions + recursive ls/size/read/exists (+ optional writes), bounded.
fn exercise(d: &mut MemDisk, ctx: &str, writes: bool) {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let parts = match part::partitions(d) {
            Ok(p) => p,
            Err(e) => {
                assert_one_line(&e);
                return;
            }
        };
        for p in parts.iter().take(8) {
            let mut v = PartitionDevice::new(&mut *d, p.start_lba, p.num_blocks);
            let mut budget = 200usize;
            walk(&mut v, String::from("/"), 0, &mut budget);
            if writes {
                for (path, data) in [
                    ("/fuzz.bin", &[0xA5u8; 3000][..]),
                    ("/dir1/f.txt", b"x"),
                    ("/big.bin", b"y"),
                ] {
                    match fs::write(&mut v, path, data) {
                        Ok(()) => {
                            WRITE_OK.fetch_add(1, Relaxed);
                        }
                        Err(e) => assert_one_line(&e),
                    }
                }
                if let Err(e) = fs::mkdir(&mut v, "/dir1/newdir") {
                    assert_one_line(&e);
                }
                let mut budget = 100usize;
                walk(&mut v, String::from("/"), 0, &mut budget);
            }
        }
    }));
    if let Err(p) = r {
        eprintln!("PANIC while exercising {ctx}");
        resume_unwind(p);
    }
}

fn walk<D: BlockDevice>(v: &mut D, path: String, depth: usize, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let entries = match fs::ls(v, &path) {
        Ok(e) => {
            LS_OK.fetch_add(1, Relaxed);
            e
        }
        Err(e) => {
            assert_one_line(&e);
            return;
        }
    };
    for e in entries.iter().take(40) {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let child = format!("{}/{}", path.trim_end_matches('/'), e.name);
        match fs::exists(v, &child) {
            Ok(_) => {}
            Err(err) => assert_one_line(&err),
        }
        if e.is_dir {
            if depth < 5 {
                walk(v, child, depth + 1, budget);
            }
            continue;
        }
        match fs::size(v, &child) {
            Ok(_) | Err(_) => {}
        }
        let mut buf = vec![0u8; (e.size as usize).min(3 << 20)];
        match fs::read(v, &child, &mut buf, 0) {
            Ok(n) => {
                assert!(n <= buf.len());
                if n > 0 {
                    READ_OK.fetch_add(1, Relaxed);
                }
            }
            Err(err) => assert_one_line(&err),
        }
        let mut small = [0u8; 700];
        if let Err(err) = fs::read(v, &child, &mut small, e.size / 3) {
            assert_one_line(&err);
        }
    }
}

/// Regions worth mutating: partition tables and the FAT metadata of each volume.
fn hot_regions(bytes: &[u8], name: &str) -> Vec<(usize, usize)> {
    let mut r = vec![(0, 34 * 512), (bytes.len() - 34 * 512, bytes.len())];
    let (_, index, ..) = VOLUMES.iter().copied().find(|v| v.0 == name).unwrap();
    let mut d = MemDisk::new(bytes.to_vec());
    let t = part::read_table(&mut d).unwrap();
    for p in &t.partitions {
        let start = p.start_lba as usize * 512;
        if p.is_extended() {
            r.push((start, start + 512));
            continue;
        }
        if p.index == index || p.index == 5 {
            let v = &bytes[start..];
            if let Some(l) = (v.len() > 512 && v[510] == 0x55).then(|| Layout::of(v)) {
                let end = (l.data_start + 64 * l.cs).min(p.num_blocks as usize * 512);
                r.push((start, start + end));
            }
        }
    }
    r
}

/// `PARKBOOT_FUZZ_SCALE=N` multiplies the iteration counts (long campaigns);
/// `PARKBOOT_FUZZ_SEED=S` changes the seeds.
fn fuzz(name: &str, iterations: u64, write_every: u64, seed: u64) {
    let scale: u64 = std::env::var("PARKBOOT_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seed = seed
        ^ std::env::var("PARKBOOT_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0u64);
    let iterations = iterations * scale;
    let before = [
        LS_OK.load(Relaxed),
        READ_OK.load(Relaxed),
        WRITE_OK.load(Relaxed),
        ERRORS.load(Relaxed),
    ];
    let pristine = fixture_bytes(name);
    let regions = hot_regions(&pristine, name);
    let mut rng = Rng(seed);
    let mut d = MemDisk::new(pristine.clone());
    for it in 0..iterations {
        let writes = write_every != 0 && it % write_every == 0;
        let nmut = 1 + rng.below(12) as usize;
        let mut touched: Vec<(usize, u8)> = Vec::new();
        for _ in 0..nmut {
            let (a, b) = if rng.below(10) == 0 {
                (0, pristine.len())
            } else {
                regions[rng.below(regions.len() as u64) as usize]
            };
            let at = a + rng.below((b - a) as u64) as usize;
            let kind = rng.below(6);
            let len = match kind {
                4 => 4,
                5 => 32,
                _ => 1,
            };
            for i in 0..len {
                let o = (at + i).min(pristine.len() - 1);
                touched.push((o, d.data()[o]));
                let val = match kind {
                    0 => rng.next() as u8,
                    1 => d.data()[o] ^ (1 << rng.below(8)),
                    2 => 0,
                    3 => 0xFF,
                    _ => rng.next() as u8,
                };
                d.data_mut()[o] = val;
            }
        }
        exercise(
            &mut d,
            &format!("{name} iteration {it} (seed {seed})"),
            writes,
        );
        if writes {
            d.data_mut().copy_from_slice(&pristine);
        } else {
            for (o, b) in touched.into_iter().rev() {
                d.data_mut()[o] = b;
            }
        }
    }
    let after = [
        LS_OK.load(Relaxed),
        READ_OK.load(Relaxed),
        WRITE_OK.load(Relaxed),
        ERRORS.load(Relaxed),
    ];
    let [ls, rd, wr, er] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
    eprintln!("fuzz {name}: {iterations} iterations, {ls} listings, {rd} file reads, {wr} writes ok, {er} errors");
    // The loop must actually get past partition/BPB parsing most of the time.
    assert!(ls > iterations, "{name}: only {ls} successful listings");
    assert!(rd > iterations, "{name}: only {rd} successful reads");
}

#[test]
fn fuzz_fat12_superfloppy() {
    fuzz("fat12_superfloppy", 1500, 3, 0x1234_5678_9abc_def1);
}

#[test]
fn fuzz_fat16_mbr() {
    fuzz("fat16_mbr", 800, 5, 0x0bad_cafe_f00d_0001);
}

#[test]
fn fuzz_fat32_gpt() {
    fuzz("fat32_gpt", 800, 10, 0x5eed_0000_0000_0032);
}
