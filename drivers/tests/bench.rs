//! Read throughput on a MemDisk: raw device vs our fast path vs plain fatfs.
//!
//! Run in release mode:
//!   cargo test -p parkboot-drivers --release --test bench -- --ignored --nocapture
//! The non-ignored test checks the request pattern (cheap, any build).

mod common;

use common::pattern;
use drivers::block::{BlockDevice, MemDisk};
use drivers::fs::{self, BlockIo};
use std::time::Instant;

const FILE: usize = 27 * 1024 * 1024 + 12345;

/// Format `blocks` blocks as FAT with `cluster` bytes per cluster, write the
/// kernel-sized file (optionally fragmented by interleaving it with a small
/// file, as when writes alternate).
fn make_disk(blocks: usize, fat: fatfs::FatType, cluster: u32, fragmented: bool) -> MemDisk {
    let mut d = MemDisk::zeroed(blocks);
    {
        let mut io = BlockIo::new(&mut d);
        let opts = fatfs::FormatVolumeOptions::new()
            .fat_type(fat)
            .bytes_per_cluster(cluster);
        fatfs::format_volume(&mut io, opts).unwrap();
        io.commit().unwrap();
    }
    if fragmented {
        // 64 holes: write 128 chunk files, delete every other one... using our
        // writer: files k0..k127, then rewrite the odd ones empty.
        for i in 0..128 {
            fs::write(&mut d, &format!("/k{i}"), &vec![1u8; FILE / 128 + 1000]).unwrap();
        }
        for i in (0..128).step_by(2) {
            fs::write(&mut d, &format!("/k{i}"), b"").unwrap();
        }
        if fat == fatfs::FatType::Fat32 {
            // Drop the FSInfo next-free hint so allocation restarts at the
            // beginning and fills the holes.
            d.data_mut()[512 + 492..512 + 496].fill(0xFF);
        }
    }
    fs::write(&mut d, "/Image", &pattern(7, FILE)).unwrap();
    d
}

fn best_of<F: FnMut()>(n: usize, mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..n {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn mibs(secs: f64) -> f64 {
    FILE as f64 / (1024.0 * 1024.0) / secs
}

/// A MemDisk with a device-like cost model (busy-wait): a fixed latency per
/// request plus a transfer rate, roughly a virtio-blk disk under QEMU.
struct SlowDisk {
    inner: MemDisk,
    per_request: std::time::Duration,
    bytes_per_sec: f64,
}

impl BlockDevice for SlowDisk {
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn num_blocks(&self) -> u64 {
        self.inner.num_blocks()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), drivers::block::BlockError> {
        let t = Instant::now();
        let cost = self.per_request
            + std::time::Duration::from_secs_f64(buf.len() as f64 / self.bytes_per_sec);
        while t.elapsed() < cost {
            std::hint::spin_loop();
        }
        self.inner.read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), drivers::block::BlockError> {
        self.inner.write_blocks(lba, buf)
    }
}

fn measure<D: BlockDevice>(
    d: &mut D,
    buf: &mut [u8],
    raw: &mut [u8],
    runs: usize,
) -> (f64, f64, f64) {
    let t_raw = best_of(runs, || d.read_blocks(0, raw).unwrap());
    let t_fast = best_of(runs, || {
        assert_eq!(fs::read(d, "/Image", buf, 0).unwrap(), FILE);
    });
    let t_fatfs = best_of(runs, || {
        let io = BlockIo::new(d);
        let ffs = fatfs::FileSystem::new(io, fatfs::FsOptions::new()).unwrap();
        let mut f = ffs.root_dir().open_file("Image").unwrap();
        fatfs::Read::read_exact(&mut f, buf).unwrap();
    });
    (t_raw, t_fast, t_fatfs)
}

fn run(label: &str, mut d: MemDisk) {
    let want = pattern(7, FILE);
    let ext = fs::FatVolume::mount(&mut d)
        .unwrap()
        .extents("/Image")
        .unwrap();
    let mut buf = vec![0u8; FILE];
    let raw_len = FILE.div_ceil(512) * 512;
    let mut raw = vec![0u8; raw_len];
    let (t_raw, t_fast, t_fatfs) = measure(&mut d, &mut buf, &mut raw, 15);
    assert!(buf == want);
    d.reset_counters();
    fs::read(&mut d, "/Image", &mut buf, 0).unwrap();
    let fast_reqs = d.read_requests;
    d.reset_counters();
    {
        let io = BlockIo::new(&mut d);
        let ffs = fatfs::FileSystem::new(io, fatfs::FsOptions::new()).unwrap();
        let mut f = ffs.root_dir().open_file("Image").unwrap();
        fatfs::Read::read_exact(&mut f, &mut buf).unwrap();
    }
    let fatfs_reqs = d.read_requests;
    println!(
        "{label:<36} extents {:>3} | raw {:>6.0} MiB/s | fast {:>6.0} MiB/s ({:>5.1}%, {fast_reqs} req) | fatfs {:>6.0} MiB/s ({:>5.1}%, {fatfs_reqs} req)",
        ext.len(),
        mibs(t_raw),
        mibs(t_fast),
        100.0 * t_raw / t_fast,
        mibs(t_fatfs),
        100.0 * t_raw / t_fatfs,
    );
    let mut slow = SlowDisk {
        inner: d,
        per_request: std::time::Duration::from_micros(20),
        bytes_per_sec: 1024.0 * 1024.0 * 1024.0,
    };
    let (t_raw, t_fast, t_fatfs) = measure(&mut slow, &mut buf, &mut raw, 3);
    assert!(buf == want);
    println!(
        "{:<36} 20 us/req + 1 GiB/s | raw {:>6.0} MiB/s | fast {:>6.0} MiB/s ({:>5.1}%) | fatfs {:>6.0} MiB/s ({:>5.1}%)",
        "",
        mibs(t_raw),
        mibs(t_fast),
        100.0 * t_raw / t_fast,
        mibs(t_fatfs),
        100.0 * t_raw / t_fatfs,
    );
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn read_throughput() {
    run(
        "FAT32, 4 KiB clusters, contiguous",
        make_disk(272 << 11, fatfs::FatType::Fat32, 4096, false),
    );
    run(
        "FAT32, 4 KiB clusters, 64 fragments",
        make_disk(272 << 11, fatfs::FatType::Fat32, 4096, true),
    );
    run(
        "FAT32, 512 B clusters, contiguous",
        make_disk(64 << 11, fatfs::FatType::Fat32, 512, false),
    );
    run(
        "FAT16, 16 KiB clusters, contiguous",
        make_disk(128 << 11, fatfs::FatType::Fat16, 16384, false),
    );
}

#[test]
fn contiguous_file_is_one_request() {
    // 3 MiB file on a fresh FAT16 volume: boot sector + FAT window(s) +
    // root dir + exactly one data request.
    let mut d = MemDisk::zeroed(32 << 11);
    {
        let mut io = BlockIo::new(&mut d);
        let opts = fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat16)
            .bytes_per_cluster(4096);
        fatfs::format_volume(&mut io, opts).unwrap();
        io.commit().unwrap();
    }
    let data = pattern(3, 3 << 20);
    fs::write(&mut d, "/Image", &data).unwrap();
    let mut buf = vec![0u8; data.len()];
    d.reset_counters();
    fs::read(&mut d, "/Image", &mut buf, 0).unwrap();
    assert_eq!(buf, data);
    let data_blocks = (3 << 20) / 512;
    assert!(
        d.blocks_read < data_blocks + 100,
        "{} blocks",
        d.blocks_read
    );
    assert!(d.read_requests <= 6, "{} requests", d.read_requests);
}
