//! `cargo xtask bench`: parkboot against U-Boot, on the same QEMU and the same disk.
//!
//! ```text
//! cargo xtask bench [--runs N] [--no-build] [--no-prealloc] [--pen-gather start|boot]
//!                   [--cpu-method spin-table|psci]
//!   --runs N      rounds (default 5); each round runs every session once per loader,
//!                 interleaved: U-Boot, parkboot, U-Boot, parkboot, ...
//!   --no-build    use the existing target/loader.bin instead of building it first
//!   --no-prealloc leave out -mem-prealloc: guest RAM is then faulted in on the host at first
//!                 touch, which on some hosts costs more than the loaders' own work (see
//!                 docs/performance.md); by default QEMU preallocates and the clock starts at
//!                 the QMP `cont` that lets the paused guest run
//!   --pen-gather  parkboot's `pen_gather` for the typed, autoboot and raw sessions (default:
//!                 the loader's own default, `start`); `boot` keeps the secondaries in firmware
//!                 until booti, so under TCG they do not spin while the loader works
//!   --cpu-method  parkboot's `cpu_method` for those sessions (default `spin-table`); `psci`
//!                 hands the secondaries back to firmware at booti, as U-Boot leaves them
//! ```
//!
//! Both loaders run on `-M virt,virtualization=on -cpu cortex-a57 -smp 4 -m 1G` (TCG, `-nic none`,
//! `-mem-prealloc`; started paused, all times count from the QMP `cont`) with one FAT32/MBR disk on virtio-mmio holding the stock Debian Image, the test
//! initramfs, /boot.cmd (parkboot), /boot.scr (U-Boot, the same commands via mkimage) and
//! /loader.bin. Every serial chunk is timestamped on the host as it arrives (reader thread on
//! QEMU's stdout pipe); a pattern's time is the arrival of the chunk that completed it.
//!
//! Sessions per round and loader (see docs/performance.md for the method and the analysis):
//! * typed: stop the countdown with a key as soon as "Hit any key" appears, then type
//!   `load … /Image`, `load … /initramfs.cpio.gz`, `setenv bootargs …; booti …`; the stages are
//!   measured from the moment a command is written to the moment its result line arrives, so
//!   neither countdown nor typing is in the total (= start→autoboot line + loads + booti→kernel);
//! * autoboot: bootdelay=0 in both (parkboot: /parkboot.env on the disk; U-Boot: its default
//!   environment with bootdelay=0 in the env flash bank, made with mkenvimage), each loader's
//!   default bootcmd finds the script; wall clock start→kernel line, then until /init is ready;
//! * raw: `virtio read` of the Image's blocks into fresh RAM (cold), again (warm), then a FAT
//!   load of /Image over the same, now warm, RAM; for parkboot also a loader → loader hop
//!   (`booti` of /loader.bin);
//! * raw and autoboot again with `-smp 1` (diagnostic: no secondary CPUs, so no pen);
//! * parkboot only: one kexec chain cycle (loader → Linux → `kexec -l /loader.bin` → loader);
//! * parkboot only: the in-memory payload chain (docs/chain.md), 10 cycles per mode
//!   (`pen_gather=start` and `boot`): loader entry → payload entry in guest time.
//!
//! The CPU gather time comes from parkboot's start-up line (`CPUs: … in pen … after N us`);
//! rows for what the loader does not offer say "not yet implemented".
//!
//! Writes target/bench/latest.md (and prints it); session transcripts with arrival times go to
//! target/bench/logs/.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use xtask::disk::{self, DiskSpec, Source, Table};
use xtask::kernel;
use xtask::virt_dt;

const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
const BOOTARGS: &str = "console=ttyAMA0 earlycon parkboot.poweroff=1";
const AUTOBOOT: &str = "Hit any key to stop autoboot";
const KERNEL_LINE: &str = "Booting Linux on physical CPU";
/// Both loaders print this right before jumping to the kernel.
const STARTING: &str = "Starting kernel ...";
const INIT_READY: &str = "PARKBOOT-INIT: ready";
/// U-Boot's qemu_arm64 environment: CONFIG_ENV_SIZE, at the start of the second flash bank.
const UBOOT_ENV_SIZE: usize = 0x40000;
const FLASH_BANK: u64 = 64 << 20;
/// Longest wait for anything a loader prints.
const WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the kernel to reach /init under TCG.
const WAIT_INIT: Duration = Duration::from_secs(180);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Loader {
    UBoot,
    Parkboot,
}

impl Loader {
    fn name(self) -> &'static str {
        match self {
            Loader::UBoot => "U-Boot",
            Loader::Parkboot => "parkboot",
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Loader::UBoot => "uboot",
            Loader::Parkboot => "parkboot",
        }
    }
}

struct Opts {
    runs: usize,
    build: bool,
    prealloc: bool,
    /// `pen_gather` written to parkboot's /parkboot.env (None: the loader's default).
    pen_gather: Option<String>,
    /// `cpu_method` written to parkboot's /parkboot.env (None: the loader's default).
    cpu_method: Option<String>,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let usage =
        "usage: cargo xtask bench [--runs N] [--no-build] [--no-prealloc] [--pen-gather start|boot] [--cpu-method spin-table|psci]";
    let mut o = Opts {
        runs: 5,
        build: true,
        prealloc: true,
        pen_gather: None,
        cpu_method: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" | "-n" => {
                let v = it.next().ok_or(format!("--runs needs a number; {usage}"))?;
                o.runs = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or(format!("--runs {v:?}: want 1..100; {usage}"))?;
            }
            "--no-build" => o.build = false,
            "--no-prealloc" => o.prealloc = false,
            "--pen-gather" => {
                let v = it
                    .next()
                    .ok_or(format!("--pen-gather needs start or boot; {usage}"))?;
                if v != "start" && v != "boot" {
                    return Err(format!("--pen-gather {v:?}: want start or boot; {usage}"));
                }
                o.pen_gather = Some(v.clone());
            }
            "--cpu-method" => {
                let v = it
                    .next()
                    .ok_or(format!("--cpu-method needs spin-table or psci; {usage}"))?;
                if v != "spin-table" && v != "psci" {
                    return Err(format!(
                        "--cpu-method {v:?}: want spin-table or psci; {usage}"
                    ));
                }
                o.cpu_method = Some(v.clone());
            }
            "-h" | "--help" => return Err(usage.into()),
            _ => return Err(format!("unknown argument {a:?}; {usage}")),
        }
    }
    Ok(o)
}

/// `cargo xtask bench ...`
pub fn cli(args: &[String]) -> Result<(), String> {
    bench(args).map_err(|e| format!("bench: {e}"))
}

// ---------------------------------------------------------------------------------------------
// QEMU sessions with host-side arrival times
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// (end offset of a chunk, when it arrived), in order.
    stamps: Vec<(usize, Instant)>,
    eof: bool,
}

struct Shared {
    buf: Mutex<Buf>,
    cv: Condvar,
}

struct Session {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    sh: Arc<Shared>,
    stderr: Arc<Mutex<Vec<u8>>>,
    cursor: usize,
    /// When the guest started running (QMP `cont`): "start" of every measurement.
    t0: Instant,
    /// spawn → `cont`: QEMU's own set-up (incl. -mem-prealloc), not the loader's.
    setup_ms: f64,
    log: PathBuf,
    sent: Vec<(Instant, String)>,
}

impl Session {
    /// Starts QEMU paused (`-S`) with a QMP socket at `qmp`, then lets the guest run with `cont`
    /// once QEMU is set up; all times count from that `cont`.
    fn spawn(name: &str, args: &[String], log: PathBuf, qmp: &Path) -> Result<Session, String> {
        let _ = std::fs::remove_file(qmp);
        let mut c = Command::new("qemu-system-aarch64");
        c.args(args)
            .arg("-S")
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t_spawn = Instant::now();
        let mut child = c.spawn().map_err(|e| {
            format!("cannot start qemu-system-aarch64 ({e}): apt-get install qemu-system-arm")
        })?;
        let stdin = child.stdin.take();
        let mut out = child.stdout.take().ok_or("no stdout pipe")?;
        let mut err = child.stderr.take().ok_or("no stderr pipe")?;
        let sh = Arc::new(Shared {
            buf: Mutex::new(Buf::default()),
            cv: Condvar::new(),
        });
        let s2 = sh.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let now = Instant::now();
                        let mut b = s2.buf.lock().unwrap();
                        b.bytes.extend_from_slice(&chunk[..n]);
                        let end = b.bytes.len();
                        b.stamps.push((end, now));
                        s2.cv.notify_all();
                    }
                }
            }
            s2.buf.lock().unwrap().eof = true;
            s2.cv.notify_all();
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let e2 = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 1024];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                e2.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let mut s = Session {
            name: name.to_string(),
            child,
            stdin,
            sh,
            stderr,
            cursor: 0,
            t0: t_spawn,
            setup_ms: 0.0,
            log,
            sent: Vec::new(),
        };
        let t0 = s.qmp_cont(qmp).map_err(|e| s.fail(&format!("QMP: {e}")))?;
        s.setup_ms = between(t_spawn, t0);
        s.t0 = t0;
        Ok(s)
    }

    /// Connects to QEMU's QMP socket (QEMU answers once its machine, RAM included, is set up),
    /// then sends `cont`. Returns when `cont` was sent.
    fn qmp_cont(&mut self, qmp: &Path) -> Result<Instant, String> {
        use std::io::{BufRead, BufReader};
        use std::os::unix::net::UnixStream;
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match UnixStream::connect(qmp) {
                Ok(st) => break st,
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(format!("cannot connect to {}: {e}", qmp.display()));
                    }
                    if let Ok(Some(st)) = self.child.try_wait() {
                        return Err(format!("QEMU exited ({st})"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        stream
            .set_read_timeout(Some(WAIT))
            .map_err(|e| e.to_string())?;
        let mut w = stream.try_clone().map_err(|e| e.to_string())?;
        let mut rd = BufReader::new(stream);
        let mut expect = |what: &str| -> Result<(), String> {
            let mut l = String::new();
            loop {
                l.clear();
                match rd.read_line(&mut l) {
                    Ok(0) => return Err(format!("QMP closed while waiting for {what}")),
                    Ok(_) if l.contains(what) => return Ok(()),
                    Ok(_) if l.contains("\"error\"") => {
                        return Err(format!("QMP error: {}", l.trim()))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(format!("QMP read ({what}): {e}")),
                }
            }
        };
        expect("\"QMP\"")?;
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .map_err(|e| e.to_string())?;
        expect("\"return\"")?;
        let t = Instant::now();
        w.write_all(b"{\"execute\":\"cont\"}\n")
            .map_err(|e| e.to_string())?;
        expect("\"return\"")?;
        Ok(t)
    }

    fn ms_since_start(&self, t: Instant) -> f64 {
        ms(t.saturating_duration_since(self.t0))
    }

    /// The error text: what went wrong, QEMU's stderr and the transcript tail.
    fn fail(&self, why: &str) -> String {
        let b = self.sh.buf.lock().unwrap();
        let text = String::from_utf8_lossy(&b.bytes).replace('\r', "");
        let tail: String = {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(25)..].join("\n")
        };
        let err = String::from_utf8_lossy(&self.stderr.lock().unwrap())
            .trim()
            .to_string();
        let mut s = format!(
            "{}: {why} (full transcript: {})\n----- serial tail -----\n{tail}\n-----",
            self.name,
            self.log.display()
        );
        if !err.is_empty() {
            s.push_str(&format!("\nQEMU stderr: {err}"));
        }
        s
    }

    /// Waits for the first of `pats` after the cursor. Returns (which, arrival time of the
    /// chunk that completed it, text from the cursor to the end of the match); the cursor moves
    /// past the match.
    fn wait_any(
        &mut self,
        pats: &[&str],
        timeout: Duration,
    ) -> Result<(usize, Instant, String), String> {
        let deadline = Instant::now() + timeout;
        let mut b = self.sh.buf.lock().unwrap();
        loop {
            let mut best: Option<(usize, usize)> = None; // (end, which)
            for (k, p) in pats.iter().enumerate() {
                if let Some(i) = find(&b.bytes[self.cursor..], p.as_bytes()) {
                    let end = self.cursor + i + p.len();
                    if best.is_none_or(|(e, _)| end < e) {
                        best = Some((end, k));
                    }
                }
            }
            if let Some((end, k)) = best {
                let at = arrival(&b.stamps, end - 1);
                let text = String::from_utf8_lossy(&b.bytes[self.cursor..end]).into_owned();
                self.cursor = end;
                return Ok((k, at, text));
            }
            if b.eof {
                drop(b);
                return Err(self.fail(&format!("QEMU exited while waiting for {pats:?}")));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(b);
                return Err(self.fail(&format!("timed out after {timeout:?} waiting for {pats:?}")));
            }
            b = self
                .sh
                .cv
                .wait_timeout(b, (deadline - now).min(Duration::from_millis(250)))
                .unwrap()
                .0;
        }
    }

    fn wait(&mut self, pat: &str, timeout: Duration) -> Result<(Instant, String), String> {
        self.wait_any(&[pat], timeout).map(|(_, t, s)| (t, s))
    }

    /// Waits for `pat`, or fails early when `unless` comes first (e.g. the prompt after an
    /// error), then for the end of its line. Returns the whole line and when its end arrived.
    fn wait_line(
        &mut self,
        pat: &str,
        unless: &str,
        timeout: Duration,
    ) -> Result<(Instant, String), String> {
        let (k, _, text) = self.wait_any(&[pat, unless], timeout)?;
        if k == 1 {
            return Err(self.fail(&format!("expected {pat:?}, got: {:?}", text.trim())));
        }
        let start = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let head = text[start..].to_string();
        let (t, rest) = self.wait("\n", timeout)?;
        Ok((
            t,
            format!("{head}{rest}").replace('\r', "").trim().to_string(),
        ))
    }

    fn send(&mut self, text: &str) -> Result<Instant, String> {
        let t = Instant::now();
        let w = self.stdin.as_mut().ok_or("stdin closed")?;
        if w.write_all(text.as_bytes())
            .and_then(|_| w.flush())
            .is_err()
        {
            return Err(self.fail("cannot write to QEMU's serial input"));
        }
        self.sent.push((t, text.to_string()));
        Ok(t)
    }

    /// Types a command line (CR, as a terminal sends it).
    fn line(&mut self, cmd: &str) -> Result<Instant, String> {
        self.send(&format!("{cmd}\r"))
    }

    /// Types `cmd` and waits for the next prompt; returns the output (without the echo).
    fn cmd(&mut self, cmd: &str) -> Result<String, String> {
        self.line(cmd)?;
        let (_, out) = self.wait("\n=> ", WAIT)?;
        let out = out.replace('\r', "");
        let body = out.split_once('\n').map(|x| x.1).unwrap_or("");
        Ok(body.trim_end_matches("=> ").trim_end().to_string())
    }

    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The transcript with each line prefixed by the arrival time of its first byte
    /// (ms since spawn), and what was typed.
    fn write_log(&self) {
        let b = self.sh.buf.lock().unwrap();
        let mut s = String::new();
        let mut at_line_start = true;
        let mut prev = 0usize;
        for &(end, t) in &b.stamps {
            for &c in &b.bytes[prev..end] {
                if at_line_start {
                    let _ = write!(s, "[{:>10.3}] ", self.ms_since_start(t));
                    at_line_start = false;
                }
                if c == b'\n' {
                    s.push('\n');
                    at_line_start = true;
                } else if c != b'\r' {
                    s.push(c as char);
                }
            }
            prev = end;
        }
        s.push_str("\n----- typed -----\n");
        for (t, text) in &self.sent {
            let _ = writeln!(s, "[{:>10.3}] {:?}", self.ms_since_start(*t), text);
        }
        let _ = std::fs::write(&self.log, s);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.write_log();
    }
}

/// When byte `i` arrived.
fn arrival(stamps: &[(usize, Instant)], i: usize) -> Instant {
    let k = stamps.partition_point(|&(end, _)| end <= i);
    stamps
        .get(k)
        .or(stamps.last())
        .map(|s| s.1)
        .unwrap_or_else(Instant::now)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn between(a: Instant, b: Instant) -> f64 {
    ms(b.saturating_duration_since(a))
}

// ---------------------------------------------------------------------------------------------
// Parsing what the loaders print
// ---------------------------------------------------------------------------------------------

/// "27302400 bytes read in 274 ms (95 MiB/s)" (both loaders) → (bytes, ms, MiB/s).
/// U-Boot prints no rate for "in 0 ms": then the rate is bytes / 1 ms, a lower bound.
fn parse_load_line(line: &str) -> Option<(u64, f64, f64)> {
    let (head, tail) = line.split_once(" bytes read in ")?;
    let bytes: u64 = head.split_whitespace().last()?.parse().ok()?;
    let (msv, rest) = tail.split_once(" ms")?;
    let msv: f64 = msv.trim().parse().ok()?;
    let rate = match rest.split_once('(') {
        Some((_, r)) => parse_rate(r)?,
        None => bytes as f64 / 1048576.0 / (msv.max(1.0) / 1000.0),
    };
    Some((bytes, msv, rate))
}

/// "95 MiB/s)", "1.8 GiB/s)", "47.9 KiB/s)" → MiB/s.
fn parse_rate(s: &str) -> Option<f64> {
    let mut it = s.split_whitespace();
    let v: f64 = it.next()?.parse().ok()?;
    let unit = it.next()?.trim_end_matches(')').trim_end_matches(',');
    Some(match unit {
        "B/s" => v / 1048576.0,
        "KiB/s" => v / 1024.0,
        "MiB/s" => v,
        "GiB/s" => v * 1024.0,
        _ => return None,
    })
}

/// parkboot: "virtio read: 53325 blocks (27302400 bytes in 379 ms, 68.63 MiB/s)" → MiB/s.
fn parse_parkboot_raw(line: &str) -> Option<f64> {
    let (_, r) = line.split_once(" ms, ")?;
    parse_rate(r)
}

/// bdinfo: "boot time   = 79493 us (entry -> prompt)" → ms.
fn parse_boot_time(bdinfo: &str) -> Option<f64> {
    let l = bdinfo
        .lines()
        .find(|l| l.trim_start().starts_with("boot time"))?;
    let v: f64 = l
        .split('=')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(v / 1000.0)
}

/// parkboot: "CPUs: 4 in DT, 3 in pen at 0x7ffff000 (4096 bytes) after 21115 us" → ms.
fn parse_gather(text: &str) -> Option<f64> {
    let l = text
        .lines()
        .rev()
        .find(|l| l.contains("CPUs: ") && l.contains(" in pen"))?;
    let us: f64 = l
        .split(" after ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(us / 1000.0)
}

/// "1 disk(s); ready in 59.011 ms" → ms.
fn parse_ready(text: &str) -> Option<f64> {
    let l = text.lines().rev().find(|l| l.contains("ready in"))?;
    l.split("ready in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Results {
    /// Sections in order; each has rows (label, unit) in order.
    sections: Vec<(String, Vec<(String, String)>)>,
    values: BTreeMap<(String, String, Loader), Vec<f64>>,
}

impl Results {
    fn add(&mut self, section: &str, label: &str, unit: &str, l: Loader, v: f64) {
        let si = match self.sections.iter().position(|s| s.0 == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.into(), Vec::new()));
                self.sections.len() - 1
            }
        };
        if !self.sections[si].1.iter().any(|r| r.0 == label) {
            self.sections[si].1.push((label.into(), unit.into()));
        }
        self.values
            .entry((section.into(), label.into(), l))
            .or_default()
            .push(v);
    }

    fn get(&self, section: &str, label: &str, l: Loader) -> Option<&Vec<f64>> {
        self.values.get(&(section.into(), label.into(), l))
    }

    fn median(&self, section: &str, label: &str, l: Loader) -> Option<f64> {
        self.get(section, label, l).map(|v| stats(v).1)
    }
}

/// (min, median, max).
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (s[0], med, s[n - 1])
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

// ---------------------------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------------------------

const S_TYPED: &str = "Same commands, typed (countdown stopped by a key; total = sum of stages)";
const S_AUTO: &str =
    "Autoboot, bootdelay=0, each loader's default bootcmd finds the script (wall clock)";
const S_RAW: &str =
    "Raw device vs FAT (separate session; cold = first write to that RAM, warm = same RAM again)";
const S_PARK: &str = "parkboot only";
const S_CHAIN: &str =
    "parkboot kexec chain: loader → Linux → kexec loader.bin → loader (one cycle per round)";
const S_MEMCHAIN: &str = "parkboot in-memory payload chain: loader entry → payload entry, guest time from both CNTPCT stamps (no disk; every cycle a fresh loader copy; pen moved every other cycle)";
/// Cycles per in-memory chain session, and the payload's release/park rounds per cycle.
const MEMCHAIN_CYCLES: usize = 10;
const MEMCHAIN_ROUNDS: u32 = 10;
const S_SMP1_AUTO: &str = "Diagnostic: autoboot with -smp 1 (no secondary CPUs; until the kernel line; not a goal metric)";
const S_SMP1: &str =
    "Diagnostic: the raw session with -smp 1 (no secondary CPUs; not a goal metric)";

struct Ctx {
    opts: Opts,
    dir: PathBuf,
    logs: PathBuf,
    loader: PathBuf,
    disk_typed: PathBuf,
    disk_auto: PathBuf,
    flash: PathBuf,
    image_size: u64,
    initrd_size: u64,
    raw_blocks: u64,
    /// /Image + the test initramfs with /loader.bin appended (for the kexec chain).
    disk_chain: PathBuf,
    /// Commands the loader's `help` lists.
    commands: Vec<String>,
    /// The bare-metal test payload (for the in-memory chain).
    payload: PathBuf,
    /// DTs for the in-memory chain, per `pen_gather` mode.
    memchain_dtbs: Vec<(&'static str, PathBuf)>,
}

impl Ctx {
    /// The machine both loaders run on: virt at EL2, cortex-a57, 1 GiB, serial on stdio.
    fn machine_args(&self, smp: u32) -> Vec<String> {
        let mut a: Vec<String> = [
            "-M",
            "virt,virtualization=on",
            "-cpu",
            "cortex-a57",
            "-smp",
            &smp.to_string(),
            "-m",
            "1G",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
            "-nic",
            "none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.opts.prealloc {
            a.push("-mem-prealloc".into());
        }
        a
    }

    fn qemu_args(&self, l: Loader, disk_img: &Path, flash: bool, smp: u32) -> Vec<String> {
        let mut a = self.machine_args(smp);
        match l {
            Loader::UBoot => {
                a.push("-bios".into());
                a.push(UBOOT_BIN.into());
            }
            Loader::Parkboot => {
                a.push("-kernel".into());
                a.push(self.loader.display().to_string());
            }
        }
        a.extend(disk::qemu_disk_args(disk_img, "disk0"));
        if flash {
            // The same env flash bank for both (parkboot ignores it): identical machines.
            a.push("-drive".into());
            a.push(format!(
                "if=pflash,unit=1,format=raw,file={}",
                self.flash.display()
            ));
        }
        a
    }

    fn session(
        &self,
        l: Loader,
        mode: &str,
        run: usize,
        disk_img: &Path,
        flash: bool,
    ) -> Result<Session, String> {
        self.session_smp(l, mode, run, disk_img, flash, 4)
    }

    fn session_smp(
        &self,
        l: Loader,
        mode: &str,
        run: usize,
        disk_img: &Path,
        flash: bool,
        smp: u32,
    ) -> Result<Session, String> {
        let name = format!("{} {mode} run {run}", l.name());
        let log = self.logs.join(format!("{mode}-{}-{run}.log", l.tag()));
        Session::spawn(
            &name,
            &self.qemu_args(l, disk_img, flash, smp),
            log,
            &self.dir.join("qmp.sock"),
        )
    }
}

fn check_tools() -> Result<(), String> {
    disk::find_tool("qemu-system-aarch64", "qemu-system-arm")?;
    disk::find_tool("mkimage", "u-boot-tools")?;
    disk::find_tool("mkenvimage", "u-boot-tools")?;
    if !Path::new(UBOOT_BIN).is_file() {
        return Err(format!(
            "{UBOOT_BIN} not found: install the apt package u-boot-qemu (apt-get install u-boot-qemu)"
        ));
    }
    Ok(())
}

fn run_tool(c: &mut Command) -> Result<String, String> {
    let o = c.output().map_err(|e| format!("{c:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{c:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The script both loaders run (U-Boot gets it as a mkimage script image).
fn boot_script() -> String {
    format!(
        "load virtio 0 ${{kernel_addr_r}} /Image\n\
         load virtio 0 ${{ramdisk_addr_r}} /initramfs.cpio.gz\n\
         setenv bootargs '{BOOTARGS}'\n\
         booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}\n"
    )
}

fn prepare(opts: Opts) -> Result<Ctx, String> {
    check_tools()?;
    let dir = root().join("target/bench");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("mkdir {}: {e}", logs.display()))?;

    let built = if opts.build {
        crate::build()?
    } else {
        root().join("target/loader.bin")
    };
    if !built.is_file() {
        return Err(format!(
            "{} not found: run `cargo xtask build` first",
            built.display()
        ));
    }
    // A private copy: the numbers belong to one binary even if it is rebuilt meanwhile.
    let loader = dir.join("loader.bin");
    std::fs::copy(&built, &loader).map_err(|e| format!("copy {}: {e}", built.display()))?;

    let k = kernel::ensure_kernel()?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let image_size = size(&k.image)?;
    let initrd_size = size(&k.initramfs)?;

    let script = boot_script();
    let cmd_path = dir.join("boot.cmd");
    std::fs::write(&cmd_path, &script).map_err(|e| format!("{}: {e}", cmd_path.display()))?;
    let scr_path = dir.join("boot.scr");
    run_tool(
        Command::new("mkimage")
            .args([
                "-A",
                "arm64",
                "-O",
                "linux",
                "-T",
                "script",
                "-C",
                "none",
                "-n",
                "parkboot bench",
                "-d",
            ])
            .arg(&cmd_path)
            .arg(&scr_path),
    )?;
    let gather_line = [
        ("pen_gather", &opts.pen_gather),
        ("cpu_method", &opts.cpu_method),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}\n")))
    .collect::<String>();
    let files = |env: bool| {
        let mut f = vec![
            ("/Image".to_string(), Source::Host(k.image.clone())),
            (
                "/initramfs.cpio.gz".to_string(),
                Source::Host(k.initramfs.clone()),
            ),
            ("/boot.cmd".to_string(), Source::Host(cmd_path.clone())),
            ("/boot.scr".to_string(), Source::Host(scr_path.clone())),
            ("/loader.bin".to_string(), Source::Host(loader.clone())),
        ];
        let text = format!("{}{gather_line}", if env { "bootdelay=0\n" } else { "" });
        if !text.is_empty() {
            f.push((
                "/parkboot.env".to_string(),
                Source::Bytes(text.into_bytes()),
            ));
        }
        f
    };
    let payload = image_size + initrd_size + 4 * 1024 * 1024;
    let size_mib = (payload / (1 << 20) + 24).div_ceil(16) * 16;
    let disk_typed = dir.join("disk.img");
    let disk_auto = dir.join("disk-autoboot.img");
    for (p, env) in [(&disk_typed, false), (&disk_auto, true)] {
        disk::make_fat_disk(
            p,
            &DiskSpec {
                table: Table::Mbr,
                fat: 32,
                size_mib: size_mib.max(64),
                files: files(env),
                label: Some("PARKBOOT".into()),
            },
        )?;
    }
    // The kexec chain: loader → Linux → `kexec -l /loader.bin` → loader; the initramfs carries
    // the very loader.bin under test.
    let chain_rd = dir.join("initramfs-chain.cpio.gz");
    let loader_bytes = std::fs::read(&loader).map_err(|e| format!("{}: {e}", loader.display()))?;
    kernel::initramfs_with(&[("/loader.bin", loader_bytes)], &chain_rd)?;
    let disk_chain = dir.join("disk-chain.img");
    disk::make_fat_disk(
        &disk_chain,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: size_mib.max(64),
            files: vec![
                ("/Image".to_string(), Source::Host(k.image.clone())),
                ("/initramfs.cpio.gz".to_string(), Source::Host(chain_rd)),
            ],
            label: Some("PARKBOOT".into()),
        },
    )?;
    eprintln!(
        "xtask: bench: disks {} and {} ({} MiB, MBR, FAT32; Image {} bytes, initramfs {} bytes)",
        disk_typed.display(),
        disk_auto.display(),
        size_mib.max(64),
        image_size,
        initrd_size
    );

    // The in-memory payload chain (docs/chain.md): payload.bin and loader.bin in RAM, a DT whose
    // /config/environment drives the chain, one per pen_gather mode.
    let built_payload = xtask::payload::build_payload()?;
    let payload = dir.join("payload.bin");
    std::fs::copy(&built_payload, &payload)
        .map_err(|e| format!("copy {}: {e}", built_payload.display()))?;
    let loader_len = size(&loader)?;
    let mut memchain_dtbs = Vec::new();
    for gather in ["start", "boot"] {
        let node = virt_dt::config_environment_node(&virt_dt::MEMORY_CHAIN.env(
            loader_len,
            gather,
            MEMCHAIN_ROUNDS,
        ));
        let dtb = virt_dt::edited_virt_dtb(
            &dir,
            &format!("memchain-{gather}"),
            "virt,virtualization=on",
            "cortex-a57",
            4,
            "1G",
            |dts| virt_dt::dts_add_root_child(&dts, &node),
        )?;
        memchain_dtbs.push((gather, dtb));
    }

    Ok(Ctx {
        payload,
        memchain_dtbs,
        raw_blocks: image_size.div_ceil(512),
        opts,
        flash: dir.join("uboot-env-flash.img"),
        dir,
        logs,
        loader,
        disk_typed,
        disk_auto,
        image_size,
        initrd_size,
        disk_chain,
        commands: Vec::new(),
    })
}

/// Stops the countdown at the first "Hit any key" and waits for the prompt.
/// Returns (start→autoboot line, key→prompt, text up to the autoboot line).
fn to_prompt(s: &mut Session) -> Result<(f64, f64, String), String> {
    let (t_ab, banner) = s.wait(AUTOBOOT, WAIT)?;
    let t_key = s.send(" ")?;
    let (t_p, _) = s.wait("=> ", WAIT)?;
    Ok((s.ms_since_start(t_ab), between(t_key, t_p), banner))
}

/// U-Boot's default environment with bootdelay=0, in a 64 MiB flash bank image; also a warm-up
/// session. Returns U-Boot's version line.
fn make_uboot_env(ctx: &Ctx) -> Result<String, String> {
    // An erased (0xff) bank without a valid env: U-Boot uses its built-in default environment.
    let erased = vec![0xffu8; FLASH_BANK as usize];
    std::fs::write(&ctx.flash, &erased).map_err(|e| format!("{}: {e}", ctx.flash.display()))?;
    let mut s = ctx.session(Loader::UBoot, "setup", 0, &ctx.disk_typed, true)?;
    let (_, _, banner) = to_prompt(&mut s)?;
    let version = banner
        .lines()
        .find(|l| l.trim_start().starts_with("U-Boot 20"))
        .unwrap_or("U-Boot (version line not seen)")
        .trim()
        .to_string();
    let env = s.cmd("printenv")?;
    drop(s);
    let mut text = String::new();
    let mut seen_delay = false;
    for l in env.lines() {
        if l.starts_with("Environment size:") || l.trim().is_empty() {
            continue;
        }
        let Some((k, _)) = l.split_once('=') else {
            return Err(format!("U-Boot printenv: unexpected line {l:?}"));
        };
        match k {
            // Set by U-Boot at run time after the environment is loaded.
            "fdtcontroladdr" => continue,
            "bootdelay" => {
                text.push_str("bootdelay=0\n");
                seen_delay = true;
            }
            _ => {
                text.push_str(l);
                text.push('\n');
            }
        }
    }
    if !seen_delay || !text.contains("bootcmd=") {
        return Err(format!(
            "U-Boot printenv gave no bootdelay/bootcmd: {env:?}"
        ));
    }
    let txt = ctx.dir.join("uboot-env.txt");
    let bin = ctx.dir.join("uboot-env.bin");
    std::fs::write(&txt, &text).map_err(|e| format!("{}: {e}", txt.display()))?;
    run_tool(
        Command::new("mkenvimage")
            .args(["-s", &format!("{UBOOT_ENV_SIZE:#x}"), "-o"])
            .arg(&bin)
            .arg(&txt),
    )?;
    let mut img = std::fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    if img.len() != UBOOT_ENV_SIZE {
        return Err(format!(
            "mkenvimage wrote {} bytes, expected {UBOOT_ENV_SIZE}",
            img.len()
        ));
    }
    img.resize(FLASH_BANK as usize, 0xff);
    std::fs::write(&ctx.flash, &img).map_err(|e| format!("{}: {e}", ctx.flash.display()))?;
    Ok(version)
}

/// parkboot warm-up session: version line and which commands exist.
fn probe_parkboot(ctx: &mut Ctx) -> Result<String, String> {
    let mut s = ctx.session(Loader::Parkboot, "setup", 0, &ctx.disk_typed, false)?;
    let (_, _, banner) = to_prompt(&mut s)?;
    let help = s.cmd("help")?;
    let names: Vec<&str> = help
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ctx.commands = names.iter().map(|n| n.to_string()).collect();
    Ok(banner
        .lines()
        .find(|l| l.trim_start().starts_with("parkboot "))
        .unwrap_or("parkboot (version line not seen)")
        .trim()
        .to_string())
}

/// Loads `path` at `${var}` by typing the command; returns (host ms, reported MiB/s, bytes).
fn typed_load(s: &mut Session, var: &str, path: &str) -> Result<(f64, f64, u64), String> {
    let t = s.line(&format!("load virtio 0 ${{{var}}} {path}"))?;
    let (t_done, line) = s.wait_line(" bytes read in ", "\n=> ", WAIT)?;
    let (bytes, _, rate) =
        parse_load_line(&line).ok_or_else(|| s.fail(&format!("cannot parse {line:?}")))?;
    s.wait("=> ", WAIT)?;
    Ok((between(t, t_done), rate, bytes))
}

struct Extra {
    bootstage: Option<String>,
    notes: Vec<String>,
    host_before: String,
    host_after: String,
}

/// Load average and how many other QEMUs run on the host (the bench's numbers depend on both).
fn host_state() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    let mut qemus = 0;
    if let Ok(d) = std::fs::read_dir("/proc") {
        for e in d.flatten() {
            if let Ok(c) = std::fs::read_to_string(e.path().join("comm")) {
                if c.starts_with("qemu-system") {
                    qemus += 1;
                }
            }
        }
    }
    format!("load average {load}, {qemus} other QEMU process(es)")
}

fn run_typed(
    ctx: &Ctx,
    l: Loader,
    run: usize,
    r: &mut Results,
    x: &mut Extra,
) -> Result<(), String> {
    let mut s = ctx.session(l, "typed", run, &ctx.disk_typed, false)?;
    let (start, key, banner) = to_prompt(&mut s)?;
    if let Some(g) = parse_gather(&banner) {
        r.add(
            S_PARK,
            "CPU gather into the pen at start (banner `after N us`)",
            "ms",
            l,
            g,
        );
    }
    if l == Loader::Parkboot {
        let bd = s.cmd("bdinfo")?;
        let bt = parse_boot_time(&bd).ok_or_else(|| s.fail("no `boot time` line in bdinfo"))?;
        r.add(
            S_PARK,
            "entry → prompt (bdinfo `boot time`, loader clock)",
            "ms",
            l,
            bt,
        );
    }
    let (img_ms, img_rate, img_bytes) = typed_load(&mut s, "kernel_addr_r", "/Image")?;
    if img_bytes != ctx.image_size {
        return Err(s.fail(&format!(
            "/Image: {img_bytes} bytes read, expected {}",
            ctx.image_size
        )));
    }
    let (rd_ms, rd_rate, _) = typed_load(&mut s, "ramdisk_addr_r", "/initramfs.cpio.gz")?;
    if l == Loader::Parkboot && x.bootstage.is_none() {
        x.bootstage = Some(s.cmd("bootstage")?);
    }
    let t_b = s.line(&format!(
        "setenv bootargs '{BOOTARGS}'; booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}"
    ))?;
    let (k, t_sk, text) = s.wait_any(&[STARTING, "\n=> "], WAIT)?;
    if k != 0 {
        return Err(s.fail(&format!("booti returned to the prompt: {:?}", text.trim())));
    }
    let (t_k, _) = s.wait(KERNEL_LINE, WAIT)?;
    let booti = between(t_b, t_k);
    let setup = s.setup_ms;
    drop(s);
    let mib = |bytes: u64, ms: f64| bytes as f64 / 1048576.0 / (ms / 1000.0);
    r.add(
        S_TYPED,
        "QEMU set-up: spawn → guest start (not in total)",
        "ms",
        l,
        setup,
    );
    r.add(S_TYPED, "guest start → autoboot line", "ms", l, start);
    r.add(S_TYPED, "key → prompt (not in total)", "ms", l, key);
    r.add(
        S_TYPED,
        "load /Image (typed → result line)",
        "ms",
        l,
        img_ms,
    );
    r.add(
        S_TYPED,
        "load /Image, host-measured rate",
        "MiB/s",
        l,
        mib(ctx.image_size, img_ms),
    );
    r.add(
        S_TYPED,
        "load /Image, loader-reported rate",
        "MiB/s",
        l,
        img_rate,
    );
    r.add(
        S_TYPED,
        "load /initramfs.cpio.gz (typed → result line)",
        "ms",
        l,
        rd_ms,
    );
    r.add(
        S_TYPED,
        "load /initramfs.cpio.gz, loader-reported rate",
        "MiB/s",
        l,
        rd_rate,
    );
    r.add(S_TYPED, "booti (typed) → kernel line", "ms", l, booti);
    r.add(
        S_TYPED,
        "… of which booti (typed) → `Starting kernel ...`",
        "ms",
        l,
        between(t_b, t_sk),
    );
    r.add(
        S_TYPED,
        "… of which `Starting kernel ...` → kernel line",
        "ms",
        l,
        between(t_sk, t_k),
    );
    r.add(
        S_TYPED,
        "total: start + loads + booti → kernel",
        "ms",
        l,
        start + img_ms + rd_ms + booti,
    );
    Ok(())
}

/// `smp` 4: the reference session (until /init is ready); 1: the diagnostic one (until the
/// kernel line).
fn run_auto(ctx: &Ctx, l: Loader, run: usize, r: &mut Results, smp: u32) -> Result<(), String> {
    let (mode, sec) = if smp == 4 {
        ("autoboot", S_AUTO)
    } else {
        ("autoboot-smp1", S_SMP1_AUTO)
    };
    let mut s = ctx.session_smp(l, mode, run, &ctx.disk_auto, true, smp)?;
    let (t_ab, _) = s.wait(AUTOBOOT, WAIT)?;
    let (_, rest) = s.wait("\n", WAIT)?;
    let first = rest
        .trim_start_matches(':')
        .split_whitespace()
        .next()
        .unwrap_or("");
    if first != "0" {
        return Err(s.fail(&format!(
            "countdown starts at {first:?}, not 0: the bootdelay=0 environment was not used"
        )));
    }
    // Load lines are told apart by their size (the script's own load prints one too).
    let mut t_img = None;
    let mut t_rd = None;
    let mut img_rate = 0.0;
    while t_img.is_none() || t_rd.is_none() {
        let (t, line) = s.wait_line(" bytes read in ", "\n=> ", WAIT)?;
        let (bytes, _, rate) =
            parse_load_line(&line).ok_or_else(|| s.fail(&format!("cannot parse {line:?}")))?;
        if bytes == ctx.image_size {
            t_img = Some(t);
            img_rate = rate;
        } else if bytes == ctx.initrd_size {
            t_rd = Some(t);
        }
    }
    let (t_img, t_rd) = (t_img.unwrap(), t_rd.unwrap());
    let (t_sk, _) = s.wait(STARTING, WAIT)?;
    let (t_k, _) = s.wait(KERNEL_LINE, WAIT)?;
    let total = s.ms_since_start(t_k);
    let start = s.ms_since_start(t_ab);
    r.add(sec, "guest start → autoboot line", "ms", l, start);
    r.add(
        sec,
        "autoboot line → /Image loaded (find script, load)",
        "ms",
        l,
        between(t_ab, t_img),
    );
    r.add(
        sec,
        "/Image loaded → initramfs loaded",
        "ms",
        l,
        between(t_img, t_rd),
    );
    r.add(
        sec,
        "initramfs loaded → kernel line (booti)",
        "ms",
        l,
        between(t_rd, t_k),
    );
    r.add(
        sec,
        "… of which `Starting kernel ...` → kernel line",
        "ms",
        l,
        between(t_sk, t_k),
    );
    r.add(sec, "total: guest start → kernel line", "ms", l, total);
    r.add(
        sec,
        "load /Image, loader-reported rate",
        "MiB/s",
        l,
        img_rate,
    );
    if smp == 4 {
        let (t_init, _) = s.wait(INIT_READY, WAIT_INIT)?;
        // /init powers off (parkboot.poweroff=1); not timed, a check that the boot was whole.
        if !s.wait_exit(Duration::from_secs(30)) {
            eprintln!(
                "xtask: bench: note: {} autoboot run {run}: QEMU did not power off within 30 s",
                l.name()
            );
        }
        r.add(
            sec,
            "kernel line → /init ready (not in total)",
            "ms",
            l,
            between(t_k, t_init),
        );
    }
    Ok(())
}

/// Types a `virtio read` of the Image's blocks at `${kernel_addr_r}`; returns (host ms,
/// parkboot's reported MiB/s).
fn typed_raw(ctx: &Ctx, s: &mut Session, l: Loader) -> Result<(f64, Option<f64>), String> {
    let t = s.line(&format!(
        "virtio read ${{kernel_addr_r}} 0 {:x}",
        ctx.raw_blocks
    ))?;
    match l {
        Loader::UBoot => {
            // "virtio read: device 0 block # 0, count N ... N blocks read: OK"
            let (t_done, line) = s.wait_line(" blocks read: ", "\n=> ", WAIT)?;
            if !line.ends_with("OK") {
                return Err(s.fail(&format!("virtio read failed: {line:?}")));
            }
            s.wait("=> ", WAIT)?;
            Ok((between(t, t_done), None))
        }
        Loader::Parkboot => {
            let (t_done, line) = s.wait_line("virtio read: ", "\n=> ", WAIT)?;
            let rate = parse_parkboot_raw(&line)
                .ok_or_else(|| s.fail(&format!("cannot parse {line:?}")))?;
            s.wait("=> ", WAIT)?;
            Ok((between(t, t_done), Some(rate)))
        }
    }
}

/// `smp` 4: the reference session (with the chain and `cpus` extras); 1: the diagnostic
/// session without secondary CPUs.
fn run_raw(ctx: &Ctx, l: Loader, run: usize, r: &mut Results, smp: u32) -> Result<(), String> {
    let (mode, sec) = if smp == 4 {
        ("raw", S_RAW)
    } else {
        ("raw-smp1", S_SMP1)
    };
    let mut s = ctx.session_smp(l, mode, run, &ctx.disk_typed, false, smp)?;
    let (start, _, _) = to_prompt(&mut s)?;
    if l == Loader::UBoot {
        // Select the device outside the timed commands (parkboot's default is ${virtio_dev}=0).
        let o = s.cmd("virtio dev 0")?;
        if !o.contains("is now current device") {
            return Err(s.fail(&format!("`virtio dev 0`: {o:?}")));
        }
    }
    let (cold, cold_rep) = typed_raw(ctx, &mut s, l)?;
    let (warm, warm_rep) = typed_raw(ctx, &mut s, l)?;
    let (fat_ms, fat_rate, _) = typed_load(&mut s, "kernel_addr_r", "/Image")?;
    let mib = |ms: f64| ctx.image_size as f64 / 1048576.0 / (ms / 1000.0);
    if smp != 4 {
        r.add(sec, "guest start → autoboot line", "ms", l, start);
    }
    r.add(sec, "virtio read cold (typed → result line)", "ms", l, cold);
    r.add(
        sec,
        "virtio read cold, host-measured rate",
        "MiB/s",
        l,
        mib(cold),
    );
    r.add(sec, "virtio read warm (typed → result line)", "ms", l, warm);
    r.add(
        sec,
        "virtio read warm, host-measured rate",
        "MiB/s",
        l,
        mib(warm),
    );
    r.add(
        sec,
        "load /Image warm (typed → result line)",
        "ms",
        l,
        fat_ms,
    );
    r.add(
        sec,
        "load /Image warm, host-measured rate",
        "MiB/s",
        l,
        mib(fat_ms),
    );
    r.add(
        sec,
        "load /Image warm, loader-reported rate",
        "MiB/s",
        l,
        fat_rate,
    );
    if let (Some(c), Some(w)) = (cold_rep, warm_rep) {
        r.add(sec, "virtio read cold, loader-reported rate", "MiB/s", l, c);
        r.add(sec, "virtio read warm, loader-reported rate", "MiB/s", l, w);
    }
    if l == Loader::Parkboot && smp == 4 {
        // A loader → loader hop without Linux: booti of loader.bin; until the next countdown.
        s.cmd("load virtio 0 ${kernel_addr_r} /loader.bin")?;
        let t = s.line("booti ${kernel_addr_r} - ${fdtcontroladdr}")?;
        let (k, t_ab, text) = s.wait_any(&[AUTOBOOT, "\n=> "], WAIT)?;
        if k != 0 {
            return Err(s.fail(&format!("booti of loader.bin returned: {:?}", text.trim())));
        }
        r.add(
            S_PARK,
            "booti /loader.bin (warm RAM) → next loader's autoboot line",
            "ms",
            l,
            between(t, t_ab),
        );
        if let Some(ready) = parse_ready(&text) {
            r.add(S_PARK, "that loader's own entry → ready", "ms", l, ready);
        }
    }
    Ok(())
}

/// One cycle of the kexec chain (parkboot only): loader → booti Linux (cpu_method=psci, so the
/// kernel can kexec with every CPU) → /init shell → `kexec -l /loader.bin` → next loader.
/// A failure is a finding, not a bench error: returned as a note.
fn run_chain(ctx: &Ctx, run: usize, r: &mut Results) -> Result<Option<String>, String> {
    let l = Loader::Parkboot;
    let mut s = ctx.session(l, "chain", run, &ctx.disk_chain, false)?;
    to_prompt(&mut s)?;
    s.cmd("setenv cpu_method psci")?;
    s.cmd("setenv bootargs 'console=ttyAMA0 earlycon'")?;
    typed_load(&mut s, "ramdisk_addr_r", "/initramfs.cpio.gz")?;
    s.cmd("setenv rdsize ${filesize}")?;
    typed_load(&mut s, "kernel_addr_r", "/Image")?;
    let t_b = s.line("booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}")?;
    let (k, _, text) = s.wait_any(&[KERNEL_LINE, "\n=> "], WAIT)?;
    if k != 0 {
        return Ok(Some(format!(
            "chain run {run}: booti returned: {:?} ({})",
            text.trim(),
            s.log.display()
        )));
    }
    s.wait(INIT_READY, WAIT_INIT)?;
    let (t_sh, _) = s.wait(kernel::SHELL_PROMPT, WAIT)?;
    let t_k = s.line("kexec -l /loader.bin --dtb=/sys/firmware/fdt && kexec -e")?;
    let (k, t_next, text) = s.wait_any(&[AUTOBOOT, kernel::SHELL_PROMPT], WAIT)?;
    if k != 0 {
        let why = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.contains("kexec -l"))
            .unwrap_or("")
            .trim()
            .to_string();
        return Ok(Some(format!(
            "chain run {run}: kexec did not reach the next loader: {why:?} ({})",
            s.log.display()
        )));
    }
    r.add(
        S_CHAIN,
        "booti (typed) → Linux shell prompt",
        "ms",
        l,
        between(t_b, t_sh),
    );
    r.add(
        S_CHAIN,
        "kexec -l + kexec -e (typed) → next loader's autoboot line",
        "ms",
        l,
        between(t_k, t_next),
    );
    r.add(
        S_CHAIN,
        "one cycle: booti (typed) → next loader's autoboot line",
        "ms",
        l,
        between(t_b, t_next),
    );
    if let Some(ready) = parse_ready(&text) {
        r.add(S_CHAIN, "next loader's own entry → ready", "ms", l, ready);
    }
    if let Some(g) = parse_gather(&text) {
        r.add(
            S_CHAIN,
            "next loader's CPU gather (banner `after N us`)",
            "ms",
            l,
            g,
        );
    }
    Ok(None)
}

/// `MEMCHAIN_CYCLES` cycles of the in-memory chain with `pen_gather=<gather>`: every
/// cycle's loader entry → payload entry from the loader's handoff line and the payload's
/// start line (same counter), in guest ms.
fn run_memchain(
    ctx: &Ctx,
    run: usize,
    gather: &str,
    dtb: &Path,
    r: &mut Results,
) -> Result<Option<String>, String> {
    let l = Loader::Parkboot;
    let mut args = ctx.machine_args(4);
    args.extend(["-kernel".to_string(), ctx.loader.display().to_string()]);
    args.extend(["-dtb".to_string(), dtb.display().to_string()]);
    args.extend(virt_dt::MEMORY_CHAIN.qemu_args(&ctx.payload, &ctx.loader));
    let name = format!("parkboot memchain-{gather} run {run}");
    let log = ctx.logs.join(format!("memchain-{gather}-{run}.log"));
    let mut s = Session::spawn(&name, &args, log, &ctx.dir.join("qmp.sock"))?;
    let label = format!("one cycle, pen_gather={gather}");
    for n in 0..MEMCHAIN_CYCLES {
        s.wait("## loader entry -> handoff: ", WAIT)?;
        let (_, line) = s.wait("\n", WAIT)?;
        let Some(h) = virt_dt::parse_handoff(&line) else {
            return Ok(Some(format!(
                "memchain {gather} run {run} cycle {n}: handoff line {line:?}"
            )));
        };
        s.wait("PAYLOAD: start el=", WAIT)?;
        let (_, start) = s.wait("\n", WAIT)?;
        let Some(c) = virt_dt::parse_payload_counter(&start) else {
            return Ok(Some(format!(
                "memchain {gather} run {run} cycle {n}: payload line {start:?}"
            )));
        };
        r.add(S_MEMCHAIN, &label, "ms", l, h.ms_until(c));
        let (k, _, text) = s.wait_any(
            &["PAYLOAD: entering loader at ", "PAYLOAD: VERDICT FAIL"],
            WAIT,
        )?;
        if k != 0 {
            return Ok(Some(format!(
                "memchain {gather} run {run} cycle {n}: payload failed: {}",
                text.lines().last().unwrap_or("").trim()
            )));
        }
    }
    Ok(None)
}

fn git_desc() -> String {
    let out = |args: &[&str]| {
        Command::new("git")
            .current_dir(root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = out(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{rev} + uncommitted changes")
    } else {
        rev
    }
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn bench(args: &[String]) -> Result<(), String> {
    let opts = parse_opts(args)?;
    let runs = opts.runs;
    let mut ctx = prepare(opts)?;
    let t_all = Instant::now();
    eprintln!("xtask: bench: warm-up and U-Boot environment (bootdelay=0) ...");
    let uboot_version = make_uboot_env(&ctx)?;
    let parkboot_version = probe_parkboot(&mut ctx)?;
    let mut r = Results::default();
    let mut x = Extra {
        bootstage: None,
        notes: Vec::new(),
        host_before: host_state(),
        host_after: String::new(),
    };
    for run in 1..=runs {
        for mode in ["typed", "autoboot", "raw", "raw-smp1", "autoboot-smp1"] {
            for l in [Loader::UBoot, Loader::Parkboot] {
                eprintln!("xtask: bench: round {run}/{runs}: {mode} {}", l.name());
                match mode {
                    "typed" => run_typed(&ctx, l, run, &mut r, &mut x)?,
                    "autoboot" => run_auto(&ctx, l, run, &mut r, 4)?,
                    "autoboot-smp1" => run_auto(&ctx, l, run, &mut r, 1)?,
                    "raw" => run_raw(&ctx, l, run, &mut r, 4)?,
                    _ => run_raw(&ctx, l, run, &mut r, 1)?,
                }
            }
        }
        for (gather, dtb) in &ctx.memchain_dtbs {
            eprintln!(
                "xtask: bench: round {run}/{runs}: in-memory payload chain, pen_gather={gather}"
            );
            if let Some(n) = run_memchain(&ctx, run, gather, dtb, &mut r)? {
                eprintln!("xtask: bench: note: {n}");
                x.notes.push(n);
            }
        }
        eprintln!("xtask: bench: round {run}/{runs}: kexec chain cycle parkboot");
        if let Some(n) = run_chain(&ctx, run, &mut r)? {
            eprintln!("xtask: bench: note: {n}");
            x.notes.push(n);
        }
    }
    x.host_after = host_state();
    let report = render(
        &ctx,
        &r,
        &x,
        runs,
        &uboot_version,
        &parkboot_version,
        t_all.elapsed(),
    );
    let _ = std::fs::remove_file(ctx.dir.join("qmp.sock"));
    let out = ctx.dir.join("latest.md");
    std::fs::write(&out, &report).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{report}");
    eprintln!(
        "xtask: bench: wrote {} (transcripts in {})",
        out.display(),
        ctx.logs.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn render(
    ctx: &Ctx,
    r: &Results,
    x: &Extra,
    runs: usize,
    uboot_version: &str,
    parkboot_version: &str,
    took: Duration,
) -> String {
    let mut o = String::new();
    let qemu = Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(o, "# parkboot vs U-Boot: boot benchmark\n");
    let _ = writeln!(
        o,
        "- date: {}; {runs} rounds, interleaved U-Boot/parkboot; took {:.0} s",
        now_utc(),
        took.as_secs_f64()
    );
    let lsize = std::fs::metadata(&ctx.loader).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(
        o,
        "- parkboot: `{parkboot_version}` (loader.bin {lsize} bytes), git {}; U-Boot: `{uboot_version}` ({UBOOT_BIN})",
        git_desc()
    );
    let _ = writeln!(
        o,
        "- {qemu}, TCG on {ncpu} host CPU(s): `-M virt,virtualization=on -cpu cortex-a57 -smp 4 -m 1G -nic none`{}",
        if ctx.opts.prealloc { " `-mem-prealloc`" } else { "" }
    );
    let _ = writeln!(
        o,
        "- parkboot `pen_gather`: {}, `cpu_method`: {} (typed, autoboot and raw sessions)",
        ctx.opts
            .pen_gather
            .as_deref()
            .unwrap_or("start (the loader's default)"),
        ctx.opts
            .cpu_method
            .as_deref()
            .unwrap_or("spin-table (the loader's default)")
    );
    let _ = writeln!(
        o,
        "- host before: {}; after: {}",
        x.host_before, x.host_after
    );
    let _ = writeln!(
        o,
        "- disk: FAT32 on MBR over virtio-mmio (`-device virtio-blk-device`): /Image {} bytes, /initramfs.cpio.gz {} bytes; raw read = {} blocks\n",
        ctx.image_size, ctx.initrd_size, ctx.raw_blocks
    );
    let _ = writeln!(o, "Times in ms, rates in MiB/s; min / median / max over the runs; ratio = parkboot median / U-Boot median.");
    for (section, rows) in &r.sections {
        let _ = writeln!(o, "\n## {section}\n");
        let _ = writeln!(
            o,
            "| metric | unit | U-Boot min | med | max | parkboot min | med | max | ratio |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (label, unit) in rows {
            let cell = |l: Loader| match r.get(section, label, l) {
                Some(v) => {
                    let (a, m, b) = stats(v);
                    format!("{} | {} | {}", num(a), num(m), num(b))
                }
                None => "– | – | –".into(),
            };
            let ratio = match (
                r.median(section, label, Loader::Parkboot),
                r.median(section, label, Loader::UBoot),
            ) {
                (Some(p), Some(u)) if u != 0.0 => format!("{:.2}", p / u),
                _ => "–".into(),
            };
            let _ = writeln!(
                o,
                "| {label} | {unit} | {} | {} | {ratio} |",
                cell(Loader::UBoot),
                cell(Loader::Parkboot)
            );
        }
    }

    let _ = writeln!(o, "\n## Goals (medians)\n");
    let goal = |o: &mut String, what: &str, ok: bool, detail: String| {
        let _ = writeln!(
            o,
            "- {} {what}: {detail}",
            if ok { "MET" } else { "MISSED" }
        );
    };
    for (sec, label, name) in [
        (
            S_TYPED,
            "total: start + loads + booti → kernel",
            "typed, sum of stages",
        ),
        (
            S_AUTO,
            "total: guest start → kernel line",
            "autoboot, wall clock",
        ),
        (
            S_SMP1_AUTO,
            "total: guest start → kernel line",
            "autoboot, -smp 1: diagnostic only",
        ),
    ] {
        if let (Some(p), Some(u)) = (
            r.median(sec, label, Loader::Parkboot),
            r.median(sec, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("total ≤ 0.5 × U-Boot ({name})"),
                p <= 0.5 * u,
                format!(
                    "parkboot {:.0} ms vs U-Boot {:.0} ms = {:.2}×; target {:.0} ms{}",
                    p,
                    u,
                    p / u,
                    0.5 * u,
                    if p > 0.5 * u {
                        format!(", missed by {:.0} ms", p - 0.5 * u)
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
    for (sec, label, name) in [
        (
            S_TYPED,
            "load /Image, loader-reported rate",
            "cold RAM, typed",
        ),
        (
            S_AUTO,
            "load /Image, loader-reported rate",
            "cold RAM, autoboot",
        ),
        (S_RAW, "load /Image warm, loader-reported rate", "warm RAM"),
        (
            S_SMP1,
            "load /Image warm, loader-reported rate",
            "warm RAM, -smp 1: diagnostic only",
        ),
    ] {
        if let (Some(p), Some(u)) = (
            r.median(sec, label, Loader::Parkboot),
            r.median(sec, label, Loader::UBoot),
        ) {
            goal(
                &mut o,
                &format!("FAT load ≥ 2 × U-Boot's MiB/s ({name}, as each loader reports it)"),
                p >= 2.0 * u,
                format!("parkboot {p:.0} vs U-Boot {u:.0} MiB/s = {:.2}×", p / u),
            );
        }
    }
    let pk = Loader::Parkboot;
    for (fat, raw, name) in [
        (
            (S_TYPED, "load /Image, host-measured rate"),
            (S_RAW, "virtio read cold, host-measured rate"),
            "cold RAM, host-measured",
        ),
        (
            (S_RAW, "load /Image warm, host-measured rate"),
            (S_RAW, "virtio read warm, host-measured rate"),
            "warm RAM, host-measured",
        ),
        (
            (S_RAW, "load /Image warm, loader-reported rate"),
            (S_RAW, "virtio read warm, loader-reported rate"),
            "warm RAM, loader-reported",
        ),
        (
            (S_SMP1, "load /Image warm, host-measured rate"),
            (S_SMP1, "virtio read warm, host-measured rate"),
            "warm RAM, host-measured, -smp 1: diagnostic only",
        ),
    ] {
        if let (Some(f), Some(w)) = (r.median(fat.0, fat.1, pk), r.median(raw.0, raw.1, pk)) {
            goal(
                &mut o,
                &format!("parkboot FAT load ≥ 90 % of its raw read ({name})"),
                f >= 0.9 * w,
                format!("{f:.0} vs {w:.0} MiB/s = {:.0} %", 100.0 * f / w),
            );
        }
    }

    let _ = writeln!(o, "\n## Notes\n");
    let pk = Loader::Parkboot;
    if r.get(
        S_PARK,
        "CPU gather into the pen at start (banner `after N us`)",
        pk,
    )
    .is_none()
    {
        let _ = writeln!(
            o,
            "- CPU gather: not yet implemented (no `CPUs: … in pen` line at start)"
        );
    }
    if r.get(
        S_CHAIN,
        "one cycle: booti (typed) → next loader's autoboot line",
        pk,
    )
    .is_none()
    {
        let _ = writeln!(
            o,
            "- kexec chain cycle: not measured (no cycle completed; see the notes below)"
        );
    }
    for n in &x.notes {
        let _ = writeln!(o, "- {n}");
    }
    let _ = writeln!(
        o,
        "- parkboot commands (`help`): {}",
        ctx.commands.join(" ")
    );
    if let Some(b) = &x.bootstage {
        let _ = writeln!(
            o,
            "\n## parkboot `bootstage` (typed run 1, after both loads)\n\n```\n{}\n```",
            b.trim_end()
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_lines() {
        assert_eq!(
            parse_load_line("27302400 bytes read in 274 ms (95 MiB/s)"),
            Some((27302400, 274.0, 95.0))
        );
        assert_eq!(
            parse_load_line("27302400 bytes read in 14 ms (1.8 GiB/s)").map(|x| x.2),
            Some(1.8 * 1024.0)
        );
        assert_eq!(
            parse_load_line("295 bytes read in 6 ms (47.9 KiB/s)").map(|x| x.2),
            Some(47.9 / 1024.0)
        );
        assert_eq!(
            parse_load_line("27302400 bytes read in 20 ms (1278.54 MiB/s)").map(|x| x.2),
            Some(1278.54)
        );
        let (b, m, r) = parse_load_line("2091576 bytes read in 0 ms").unwrap();
        assert_eq!((b, m), (2091576, 0.0));
        assert!((r - 2091576.0 / 1048576.0 * 1000.0).abs() < 1e-6);
        assert_eq!(parse_load_line("** File not found /Image **"), None);
    }

    #[test]
    fn parkboot_lines() {
        assert_eq!(
            parse_parkboot_raw("virtio read: 53325 blocks (27302400 bytes in 379 ms, 68.63 MiB/s)"),
            Some(68.63)
        );
        assert_eq!(
            parse_boot_time("heap = 1\nboot time   = 79493 us (entry -> prompt)\n"),
            Some(79.493)
        );
        assert_eq!(
            parse_ready("x\n1 disk(s); ready in 59.011 ms\n"),
            Some(59.011)
        );
        assert_eq!(
            parse_gather("CPUs: 4 in DT, 3 in pen at 0x7ffff000 (4096 bytes) after 21115 us"),
            Some(21.115)
        );
        assert_eq!(parse_gather("1 disk(s); ready in 59.011 ms"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(stats(&[3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
        assert_eq!(stats(&[4.0, 1.0, 2.0, 3.0]), (1.0, 2.5, 4.0));
    }

    #[test]
    fn arrival_times() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let st = [(4, t0), (10, t1)];
        assert_eq!(arrival(&st, 0), t0);
        assert_eq!(arrival(&st, 3), t0);
        assert_eq!(arrival(&st, 4), t1);
        assert_eq!(arrival(&st, 9), t1);
    }
}
