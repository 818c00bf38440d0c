//! Shared helpers for the fuzz targets: a compact "sparse disk" input format
//! for the block-device targets, a fake shell platform with bounded time and
//! input, and small decoders.

use std::cell::Cell;
use std::collections::VecDeque;

use drivers::block::MemDisk;

// ---------------------------------------------------------------------------
// Sparse disks

/// Largest disk a fuzz input may describe, in bytes (64 MiB: big enough for
/// the FAT32 fixture's 40 MiB GPT disk).
pub const MAX_DISK_BYTES: u64 = 64 << 20;

/// A disk described compactly by a fuzz input.
///
/// Format (every byte string decodes to some disk):
///
/// ```text
/// [0]      config byte (target-specific; bits 0-1 pick the block size
///          512 << n for the targets that honour it)
/// [1..5]   number of blocks, u32 LE (clamped so the disk is <= 64 MiB)
/// then extents, repeated until the input ends:
///          lba u32 LE, len u16 LE, len bytes (fewer if the input ends)
///          written at byte lba * block_size, clipped to the disk
/// ```
///
/// Everything not covered by an extent is zero. The real fixture images are
/// turned into this format by `tools/mkcorpus.py`, keeping only the blocks
/// that are not file contents, so seeds stay a few KiB.
pub struct SparseDisk {
    pub config: u8,
    pub block_size: usize,
    pub bytes: usize,
    pub extents: Vec<(usize, Vec<u8>)>,
}

impl SparseDisk {
    pub fn decode(data: &[u8]) -> SparseDisk {
        let config = data.first().copied().unwrap_or(0);
        let block_size = 512usize << (config & 3);
        let blocks = data
            .get(1..5)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0) as u64;
        let bytes = (blocks * block_size as u64).min(MAX_DISK_BYTES) as usize;
        let mut extents = Vec::new();
        let mut rest = data.get(5..).unwrap_or(&[]);
        while rest.len() >= 6 {
            let lba = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
            let len = u16::from_le_bytes([rest[4], rest[5]]) as usize;
            let body = &rest[6..];
            let take = len.min(body.len());
            let off = lba * block_size as u64;
            if off < bytes as u64 {
                let off = off as usize;
                let n = take.min(bytes - off);
                extents.push((off, body[..n].to_vec()));
            }
            rest = &body[take..];
        }
        SparseDisk {
            config,
            block_size,
            bytes,
            extents,
        }
    }

    /// The disk contents as a `MemDisk` with `block_size`-byte blocks.
    pub fn memdisk(&self, block_size: usize) -> MemDisk {
        let mut v = vec![0u8; self.bytes];
        for (off, b) in &self.extents {
            v[*off..*off + b.len()].copy_from_slice(b);
        }
        MemDisk::with_block_size(v, block_size)
    }
}

/// Large `MemDisk`s are mostly zero pages: make every big allocation a fresh
/// `mmap` (zeroed lazily by the kernel, returned on free) so that a 64 MiB
/// disk costs only the pages a run touches. Without this, glibc raises its
/// mmap threshold after the first free and then `memset`s each new disk.
pub fn big_allocs_use_mmap() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: plain glibc call with valid arguments, done once before any
        // large allocation of ours.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 256 * 1024);
        }
    });
}

// ---------------------------------------------------------------------------
// Byte reader

/// Reads fixed-size little-endian values from a byte string; past the end it
/// returns zeros, so every input decodes.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let r = self.rest();
        let n = n.min(r.len());
        self.pos += n;
        &r[..n]
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    pub fn u16(&mut self) -> u16 {
        let mut a = [0u8; 2];
        let t = self.take(2);
        a[..t.len()].copy_from_slice(t);
        u16::from_le_bytes(a)
    }
    pub fn u32(&mut self) -> u32 {
        let mut a = [0u8; 4];
        let t = self.take(4);
        a[..t.len()].copy_from_slice(t);
        u32::from_le_bytes(a)
    }
    pub fn u64(&mut self) -> u64 {
        let mut a = [0u8; 8];
        let t = self.take(8);
        a[..t.len()].copy_from_slice(t);
        u64::from_le_bytes(a)
    }

    /// An address or size biased towards interesting values: small multiples
    /// of 4 KiB and 2 MiB around a 1 GiB RAM base (so ranges collide often),
    /// values near `u64::MAX`, and raw 64-bit values.
    pub fn addr(&mut self) -> u64 {
        match self.u8() % 8 {
            0 => u64::from(self.u16()) << 12,
            1 => 0x4000_0000 + (u64::from(self.u16()) << 12),
            2 => 0x4000_0000 + (u64::from(self.u8()) << 21),
            3 => u64::MAX - u64::from(self.u16()),
            4 => u64::from(self.u8()) << 21,
            5 => 1u64 << (self.u8() % 64),
            6 => u64::from(self.u32()),
            _ => self.u64(),
        }
    }
}

// ---------------------------------------------------------------------------
// Fake shell platform

const FANOUT_POLLS: u64 = 20_000;

/// Fake RAM for the memory commands: 16 KiB at 0x4000_0000 (small, so that
/// `md`/`crc32` over all of it stay fast).
pub const MEM_BASE: u64 = 0x4000_0000;
pub const MEM_SIZE: usize = 16 * 1024;

/// A shell platform for fuzzing: console output is counted and dropped,
/// input comes from a queue, time advances on every `now_us`/`idle` call,
/// and `idle()` reports end of input after `idle_budget` calls. Once the
/// budget is spent the fake "user" types ctrl-C (so a long `sleep` ends, as
/// it would at a real console; every other read returns nothing, so a
/// prompt waiting for a line still sees end of input), but commands that never
/// wait are not interrupted: an input that makes the shell run for ever
/// without waiting shows up as a libFuzzer timeout.
pub struct FakePlatform {
    pub out_bytes: usize,
    pub input: VecDeque<u8>,
    pub time: Cell<u64>,
    pub idle_calls: u64,
    pub idle_budget: u64,
    /// Console polls (`read_byte` calls) so far.
    pub polls: u64,
    /// Toggles once the budget is spent: ctrl-C and "nothing" alternate.
    ctrlc_phase: bool,
    pub mem: Vec<u8>,
    pub resets: u32,
    pub poweroffs: u32,
}

impl FakePlatform {
    pub fn new(idle_budget: u64) -> Self {
        FakePlatform {
            out_bytes: 0,
            input: VecDeque::new(),
            time: Cell::new(0),
            idle_calls: 0,
            idle_budget,
            polls: 0,
            ctrlc_phase: false,
            mem: vec![0; MEM_SIZE],
            resets: 0,
            poweroffs: 0,
        }
    }

    fn exhausted(&self) -> bool {
        self.idle_calls >= self.idle_budget
            // Known open issue (regressions/shell_line/run-fanout-hang.txt):
            // `run` fan-out makes exponential work that only ctrl-C ends. With
            // PARKBOOT_FUZZ_ALLOW=shell-run-fanout the fake operator also
            // presses ctrl-C after this many console polls (the shell polls
            // once per command), so a campaign can look past it.
            || (self.polls > FANOUT_POLLS && allowed("shell-run-fanout"))
    }
}

impl shell::Platform for FakePlatform {
    fn write_str(&mut self, s: &str) {
        self.out_bytes = self.out_bytes.saturating_add(s.len());
    }

    fn read_byte(&mut self) -> Option<u8> {
        self.polls += 1;
        match self.input.pop_front() {
            Some(b) => Some(b),
            // ctrl-C and "no byte" alternate, so that a waiting `sleep` is
            // interrupted and a waiting prompt still sees end of input.
            None if self.exhausted() => {
                self.ctrlc_phase = !self.ctrlc_phase;
                self.ctrlc_phase.then_some(0x03)
            }
            None => None,
        }
    }

    fn idle(&mut self) -> bool {
        self.idle_calls += 1;
        self.time.set(self.time.get().wrapping_add(1000));
        !self.exhausted()
    }

    fn now_us(&self) -> u64 {
        let t = self.time.get().wrapping_add(1);
        self.time.set(t);
        t
    }

    fn mem_check(&self, addr: u64, len: u64, _write: bool) -> Result<(), String> {
        let end = addr.checked_add(len).ok_or("overflow")?;
        if addr >= MEM_BASE && end <= MEM_BASE + MEM_SIZE as u64 {
            Ok(())
        } else {
            Err(format!("{addr:#x}..{end:#x} is not RAM"))
        }
    }

    fn mem_read(&self, addr: u64, buf: &mut [u8]) {
        // mem_check accepted the range; a shell bug that skips the check
        // panics here (index out of range) and is reported.
        let o = (addr - MEM_BASE) as usize;
        buf.copy_from_slice(&self.mem[o..o + buf.len()]);
    }

    fn mem_write(&mut self, addr: u64, data: &[u8]) {
        let o = (addr - MEM_BASE) as usize;
        self.mem[o..o + data.len()].copy_from_slice(data);
    }

    fn reset(&mut self) {
        self.resets += 1;
    }

    fn poweroff(&mut self) {
        self.poweroffs += 1;
    }

    fn version(&self) -> String {
        "parkboot fuzz".into()
    }
}

/// A shell on a fresh fake platform with the variables a booted loader has.
pub fn fuzz_shell(idle_budget: u64) -> shell::Shell<FakePlatform> {
    let mut sh = shell::Shell::new(FakePlatform::new(idle_budget));
    // Fan-out inputs (`run a; run a` at every level) end at the command
    // budget; with the product's 20 000 (each command perhaps expanding a
    // 64 KiB variable) such an input costs up to a second here. 300 reaches
    // the same code: two thirds of shell_line's time went to these inputs
    // even at 2 000.
    sh.max_commands = 300;
    for (k, v) in [
        ("kernel_addr_r", "0x40000000"),
        ("fdt_addr_r", "0x40002000"),
        ("scriptaddr", "0x40003000"),
        ("ramdisk_addr_r", "0x40003800"),
        ("bootdelay", "2"),
        ("bootcmd", "echo booting; run distro_bootcmd"),
        (
            "distro_bootcmd",
            "if test -n \"$fdt_addr_r\"; then echo ok; fi",
        ),
        ("stdout", "serial"),
    ] {
        let _ = sh.env.set(k, v);
    }
    sh
}

/// `PARKBOOT_FUZZ_DEBUG=1`: targets print what they found (for checking
/// that seeds reach deep code; do not fuzz with it).
pub fn debug() -> bool {
    use std::sync::OnceLock;
    static D: OnceLock<bool> = OnceLock::new();
    *D.get_or_init(|| std::env::var_os("PARKBOOT_FUZZ_DEBUG").is_some())
}

/// `PARKBOOT_FUZZ_ALLOW=name[,name...]`: skip the checks for known, reported
/// bugs (named in the targets and in docs/robustness.md) so that a campaign
/// can look for other problems while a fix is pending.
pub fn allowed(name: &str) -> bool {
    use std::sync::OnceLock;
    static A: OnceLock<Vec<String>> = OnceLock::new();
    A.get_or_init(|| {
        std::env::var("PARKBOOT_FUZZ_ALLOW")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_default()
    })
    .iter()
    .any(|a| a == name)
}
