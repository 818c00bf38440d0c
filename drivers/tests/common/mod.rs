//! Shared helpers for the storage tests: fixture loading (gzip via
//! miniz_oxide), the deterministic content pattern of `fixtures/make.sh`, and
//! the deterministic PRNG of tests/testkit.
#![allow(dead_code)]

use drivers::block::MemDisk;

/// Decompress a gzip member (RFC 1952) with miniz_oxide.
pub fn gunzip(gz: &[u8]) -> Vec<u8> {
    assert!(
        gz.len() > 18 && gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8,
        "not gzip"
    );
    let flags = gz[3];
    let mut p = 10;
    if flags & 4 != 0 {
        let xlen = u16::from_le_bytes([gz[p], gz[p + 1]]) as usize;
        p += 2 + xlen;
    }
    for bit in [8u8, 16] {
        if flags & bit != 0 {
            while gz[p] != 0 {
                p += 1;
            }
            p += 1;
        }
    }
    if flags & 2 != 0 {
        p += 2;
    }
    let out = miniz_oxide::inflate::decompress_to_vec(&gz[p..gz.len() - 8]).expect("inflate");
    let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap());
    assert_eq!(out.len() as u32, isize, "gzip size mismatch");
    out
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/{name}.img.gz",
        env!("CARGO_MANIFEST_DIR")
    );
    gunzip(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

pub fn fixture(name: &str) -> MemDisk {
    MemDisk::new(fixture_bytes(name))
}

/// The content pattern of fixtures/make.sh.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let o = i % 512;
            if o < 8 {
                (((seed << 48) | (i / 512) as u64) >> (8 * o)) as u8
            } else {
                (((i as u64) * 131 + seed * 7) >> 3) as u8
            }
        })
        .collect()
}

// Not every test binary that includes this module draws random numbers.
#[allow(unused_imports)]
pub use testkit::Rng;

/// The fixtures' FAT volumes: (fixture, partition number, seed prefix, big-file size).
pub const VOLUMES: [(&str, u32, u64, usize); 3] = [
    ("fat12_superfloppy", 0, 100, 307200),
    ("fat16_mbr", 1, 200, 1048576),
    ("fat32_gpt", 1, 300, 2097152),
];

/// The `fsck.fat` binary (dosfstools). Its absence fails the test: the
/// external consistency check is part of what the FAT tests assert.
pub fn fsck_tool() -> &'static str {
    ["/usr/sbin/fsck.fat", "/sbin/fsck.fat", "/usr/bin/fsck.fat"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("fsck.fat not found: install dosfstools (the FAT tests need it)")
}

/// Run `fsck.fat -n` on a volume image: (clean, fsck's output). Panics if
/// fsck.fat is missing or cannot run.
pub fn fsck(bytes: &[u8], tag: &str) -> (bool, String) {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // RAM-backed when there is one: the FAT32 fixture is 38 MiB.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!(
        "parkboot-fsck-{}-{seq}-{tag}.img",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let out = std::process::Command::new(fsck_tool())
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running fsck.fat: {e}"));
    let _ = std::fs::remove_file(&path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The bytes of partition `index` of `d` (0: the whole disk).
pub fn partition_bytes(d: &MemDisk, index: u32) -> Vec<u8> {
    let mut d = d.clone();
    let t = drivers::part::read_table(&mut d).unwrap();
    let p = t.get(index).unwrap();
    d.data()[p.start_lba as usize * 512..(p.start_lba + p.num_blocks) as usize * 512].to_vec()
}

/// Assert that partition `index` of `d` is `fsck.fat`-clean.
pub fn check_fsck(d: &MemDisk, index: u32, tag: &str) {
    let (ok, out) = fsck(&partition_bytes(d, index), tag);
    assert!(ok, "fsck.fat reported problems on {tag}:\n{out}");
}
