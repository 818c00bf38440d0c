//! QEMU driver for parkboot's integration tests.
//!
//! Boots `loader.bin` (or a kernel) in qemu-system-aarch64 with the serial
//! console on stdio pipes, waits for text with timeouts, types lines, and on
//! any failure panics with the tail of the serial transcript so a CI log shows
//! what the board printed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where the workspace lives.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The loader image under test: $PARKBOOT_LOADER or target/loader.bin.
pub fn loader_bin() -> PathBuf {
    built_image("PARKBOOT_LOADER", "loader.bin", "cargo xtask build")
}

/// The test build with the `exception` command (loader feature
/// `cmd-exception`): $PARKBOOT_LOADER_EXCEPTION or
/// target/loader-exception.bin.
pub fn loader_exception_bin() -> PathBuf {
    built_image(
        "PARKBOOT_LOADER_EXCEPTION",
        "loader-exception.bin",
        "cargo xtask build --exception",
    )
}

/// The bare-metal test payload: $PARKBOOT_PAYLOAD or target/payload.bin.
pub fn payload_bin() -> PathBuf {
    built_image("PARKBOOT_PAYLOAD", "payload.bin", "cargo xtask payload")
}

/// `$var`, else target/`name`, which must exist (`how` makes it; `cargo
/// xtask test` makes them all).
fn built_image(var: &str, name: &str, how: &str) -> PathBuf {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target").join(name));
    assert!(
        p.exists(),
        "{} does not exist: run `{how}` (or `cargo xtask test`)",
        p.display()
    );
    p
}

/// A scratch directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let d = root().join("target/qemu-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(Clone, Debug)]
pub struct Opts {
    /// Enter at EL2 (`virtualization=on`) instead of EL1.
    pub el2: bool,
    pub smp: u32,
    pub mem: String,
    pub cpu: String,
    pub gic: Option<u32>,
    /// Boot this file with `-kernel` (default: loader.bin).
    pub kernel: Option<PathBuf>,
    /// Pass this DTB with `-dtb`.
    pub dtb: Option<PathBuf>,
    pub extra: Vec<String>,
    /// Answer `ESC[6n` cursor queries like a real terminal would.
    pub terminal: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            el2: true,
            smp: 4,
            mem: "1G".into(),
            cpu: "cortex-a57".into(),
            gic: None,
            kernel: None,
            dtb: None,
            extra: Vec::new(),
            terminal: false,
        }
    }
}

impl Opts {
    pub fn machine(&self) -> String {
        let mut m = String::from("virt");
        if self.el2 {
            m.push_str(",virtualization=on");
        }
        if let Some(g) = self.gic {
            m.push_str(&format!(",gic-version={g}"));
        }
        m
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-aarch64");
        c.args(["-M", &self.machine(), "-cpu", &self.cpu])
            .args(["-smp", &self.smp.to_string(), "-m", &self.mem])
            .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-no-reboot"]);
        let k = self.kernel.clone().unwrap_or_else(loader_bin);
        c.arg("-kernel").arg(k);
        if let Some(d) = &self.dtb {
            c.arg("-dtb").arg(d);
        }
        c.args(&self.extra);
        c
    }
}

/// QEMU's own DT for the machine `opts` describes, passed through `edit`
/// (DTS text in, DTS text out) and compiled into `dir/name.dtb` — for
/// `Opts::dtb` (see `xtask::virt_dt`). Needs `dtc`.
pub fn edited_virt_dtb(
    dir: &Path,
    name: &str,
    opts: &Opts,
    edit: impl FnOnce(String) -> String,
) -> PathBuf {
    xtask::virt_dt::edited_virt_dtb(
        dir,
        name,
        &opts.machine(),
        &opts.cpu,
        opts.smp,
        &opts.mem,
        edit,
    )
    .unwrap_or_else(|e| panic!("{name}.dtb: {e}"))
}

pub use xtask::virt_dt::{dts_add_root_child, dts_string};

struct Shared {
    out: Mutex<Vec<u8>>,
    cv: Condvar,
    eof: Mutex<bool>,
}

pub struct Qemu {
    child: Child,
    stdin: Arc<Mutex<ChildStdin>>,
    shared: Arc<Shared>,
    cursor: usize,
    pub started: Instant,
    pub name: String,
}

/// Default time to wait for one expected piece of text.
pub const TIMEOUT: Duration = Duration::from_secs(30);

impl Qemu {
    pub fn start(name: &str, opts: &Opts) -> Qemu {
        Self::spawn(name, opts.command(), opts.terminal)
    }

    /// Starts qemu-system-aarch64 with exactly these arguments.
    pub fn start_args(name: &str, args: &[String]) -> Qemu {
        let mut c = Command::new("qemu-system-aarch64");
        c.args(args);
        Self::spawn(name, c, false)
    }

    fn spawn(name: &str, mut cmd: Command, terminal: bool) -> Qemu {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start qemu-system-aarch64 ({e}): is it installed?"));
        let stdin = Arc::new(Mutex::new(child.stdin.take().unwrap()));
        let mut stdout = child.stdout.take().unwrap();
        let shared = Arc::new(Shared {
            out: Mutex::new(Vec::new()),
            cv: Condvar::new(),
            eof: Mutex::new(false),
        });
        let sh = shared.clone();
        let answer = terminal.then(|| stdin.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut scanned = 0usize;
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut out = sh.out.lock().unwrap();
                        out.extend_from_slice(&buf[..n]);
                        if let Some(w) = &answer {
                            // Reply to every new cursor-position query.
                            while let Some(i) = find(&out[scanned..], b"\x1b[6n") {
                                scanned += i + 4;
                                let _ = w.lock().unwrap().write_all(b"\x1b[24;1R");
                            }
                        }
                        sh.cv.notify_all();
                    }
                }
            }
            *sh.eof.lock().unwrap() = true;
            sh.cv.notify_all();
        });
        Qemu {
            child,
            stdin,
            shared,
            cursor: 0,
            started: Instant::now(),
            name: name.to_string(),
        }
    }

    /// Everything the board printed so far.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.shared.out.lock().unwrap()).into_owned()
    }

    /// Fails the test with the transcript tail.
    pub fn fail(&self, why: &str) -> ! {
        let t = self.transcript();
        let tail: String = {
            let chars: Vec<char> = t.chars().collect();
            let start = chars.len().saturating_sub(4000);
            chars[start..].iter().collect()
        };
        panic!(
            "[{}] {why}\n----- serial transcript tail -----\n{tail}\n----- end of transcript -----",
            self.name
        );
    }

    /// Waits for `pat` after the cursor; returns the text up to and including
    /// it and moves the cursor past it.
    pub fn expect_within(&mut self, pat: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut out = self.shared.out.lock().unwrap();
        loop {
            if let Some(i) = find(&out[self.cursor..], pat.as_bytes()) {
                let end = self.cursor + i + pat.len();
                let s = String::from_utf8_lossy(&out[self.cursor..end]).into_owned();
                self.cursor = end;
                return s;
            }
            let now = Instant::now();
            if now >= deadline {
                drop(out);
                self.fail(&format!("timed out after {timeout:?} waiting for {pat:?}"));
            }
            if *self.shared.eof.lock().unwrap() {
                drop(out);
                self.fail(&format!("QEMU exited while waiting for {pat:?}"));
            }
            let (o, _) = self
                .shared
                .cv
                .wait_timeout(out, (deadline - now).min(Duration::from_millis(200)))
                .unwrap();
            out = o;
        }
    }

    pub fn expect(&mut self, pat: &str) -> String {
        self.expect_within(pat, TIMEOUT)
    }

    /// Waits for whichever of `pats` comes first after the cursor; returns
    /// its index and the text up to and including it, and moves the cursor
    /// past it.
    pub fn expect_any(&mut self, pats: &[&str], timeout: Duration) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        let mut out = self.shared.out.lock().unwrap();
        loop {
            let first = pats
                .iter()
                .enumerate()
                .filter_map(|(k, p)| find(&out[self.cursor..], p.as_bytes()).map(|i| (i, k)))
                .min();
            if let Some((i, k)) = first {
                let end = self.cursor + i + pats[k].len();
                let s = String::from_utf8_lossy(&out[self.cursor..end]).into_owned();
                self.cursor = end;
                return (k, s);
            }
            let now = Instant::now();
            if now >= deadline {
                drop(out);
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for one of {pats:?}"
                ));
            }
            if *self.shared.eof.lock().unwrap() {
                drop(out);
                self.fail(&format!("QEMU exited while waiting for one of {pats:?}"));
            }
            let (o, _) = self
                .shared
                .cv
                .wait_timeout(out, (deadline - now).min(Duration::from_millis(200)))
                .unwrap();
            out = o;
        }
    }

    /// Fails if `pat` appears in the output between the cursor and now.
    pub fn refute_seen(&self, pat: &str) {
        let out = self.shared.out.lock().unwrap();
        if find(&out[self.cursor..], pat.as_bytes()).is_some() {
            drop(out);
            self.fail(&format!("unexpected {pat:?} in output"));
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut w = self.stdin.lock().unwrap();
        if w.write_all(bytes).and_then(|_| w.flush()).is_err() {
            drop(w);
            self.fail("cannot write to QEMU's serial input");
        }
    }

    /// Types a line (terminated with CR, as a terminal does).
    pub fn send(&mut self, line: &str) {
        self.send_raw(line.as_bytes());
        self.send_raw(b"\r");
    }

    /// Types `line` at the prompt, waits for the next prompt and returns the
    /// command's output (without the echoed line and the prompt).
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(line);
        let out = self.expect_within("\n=> ", TIMEOUT);
        // Drop the echoed command line.
        let body = match out.find('\n') {
            Some(i) => &out[i + 1..],
            None => "",
        };
        body.trim_end_matches("\n=> ")
            .trim_end_matches("=> ")
            .replace('\r', "")
            .trim_end()
            .to_string()
    }

    /// Boots to the loader's prompt, stopping autoboot with a key press.
    pub fn boot_to_prompt(name: &str, opts: &Opts) -> Qemu {
        let mut q = Qemu::start(name, opts);
        q.expect("parkboot");
        q.expect("autoboot");
        q.send_raw(b" ");
        q.expect("=> ");
        q
    }

    /// Attaches nothing; returns `-drive`/`-device` args for a virtio-mmio disk.
    pub fn mmio_disk(path: &Path, id: &str) -> Vec<String> {
        vec![
            "-drive".into(),
            format!("if=none,file={},format=raw,id={id}", path.display()),
            "-device".into(),
            format!("virtio-blk-device,drive={id}"),
        ]
    }

    /// `-drive`/`-device` args for a virtio-pci disk behind the ECAM bridge.
    pub fn pci_disk(path: &Path, id: &str) -> Vec<String> {
        vec![
            "-drive".into(),
            format!("if=none,file={},format=raw,id={id}", path.display()),
            "-device".into(),
            format!("virtio-blk-pci,drive={id},disable-legacy=on"),
        ]
    }

    /// Waits for QEMU to exit on its own (poweroff); returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Deterministic test content.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as u8
        })
        .collect()
}

/// CRC-32 (IEEE), as the loader's `crc32` prints it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut c = !0u32;
    for &b in data {
        c = table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Parses a hex number as the loader prints it.
pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

impl Qemu {
    /// The value of env variable `name` (via printenv).
    pub fn env(&mut self, name: &str) -> String {
        let out = self.cmd(&format!("printenv {name}"));
        match out.lines().find(|l| l.starts_with(&format!("{name}="))) {
            Some(line) => line[name.len() + 1..].to_string(),
            None => self.fail(&format!("printenv {name} gave {out:?}")),
        }
    }
}

impl Qemu {
    /// At a loader that is counting down: stop autoboot, then type the boot
    /// of the test disk's /Image + /initramfs.cpio.gz (virtio 0) with
    /// `cpu_method` and `bootargs`, and wait for "Starting kernel".
    pub fn typed_linux_boot(&mut self, method: &str, args: &str, timeout: Duration) {
        self.expect_within("autoboot", timeout);
        self.send_raw(b" ");
        self.expect("=> ");
        self.cmd(&format!("setenv cpu_method {method}"));
        self.cmd(&format!("setenv bootargs '{args}'"));
        self.cmd("load virtio 0 ${ramdisk_addr_r} /initramfs.cpio.gz");
        self.cmd("setenv rdsize ${filesize}");
        self.cmd("load virtio 0 ${kernel_addr_r} /Image");
        self.send("booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}");
        self.expect_within("Starting kernel", timeout);
    }
}
