//! QEMU driver for parkboot's integration tests.
//!
//! Boots `loader.bin` (or a kernel) in qemu-system-aarch64 with the serial
//! console on stdio pipes, waits for text with timeouts, types lines, and on
//! any failure panics with the tail of the serial transcript so a CI log shows
//! what the board printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use xtask::qemu::{board_args, command_output, Serial, SerialOpts};

pub use xtask::root;

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
    /// Start loader.bin as the machine's firmware: `-M virt,secure=on` and `-bios` (the
    /// image in flash at the reset vector, every CPU at EL3; docs/psci.md) instead of
    /// `-kernel`.
    pub bios: bool,
    /// Let a guest reset restart the machine (QEMU's default) instead of ending QEMU
    /// (`-no-reboot`, which every other test relies on).
    pub reboot: bool,
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
            bios: false,
            reboot: false,
        }
    }
}

impl Opts {
    pub fn machine(&self) -> String {
        let mut m = String::from("virt");
        if self.bios {
            m.push_str(",secure=on");
        }
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
        let args = board_args(&self.machine(), &self.cpu, self.smp, &self.mem);
        c.args(
            args.iter()
                .filter(|a| !(self.reboot && a.as_str() == "-no-reboot")),
        );
        let k = self.kernel.clone().unwrap_or_else(loader_bin);
        c.arg(if self.bios { "-bios" } else { "-kernel" }).arg(k);
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

pub struct Qemu {
    serial: Serial,
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

    fn spawn(name: &str, cmd: Command, terminal: bool) -> Qemu {
        let opts = SerialOpts {
            answer_cursor_queries: terminal,
            capture_stderr: false,
        };
        let serial = Serial::spawn(cmd, opts).unwrap_or_else(|e| panic!("[{name}] {e}"));
        Qemu {
            serial,
            started: Instant::now(),
            name: name.to_string(),
        }
    }

    /// Everything the board printed so far.
    pub fn transcript(&self) -> String {
        self.serial.transcript()
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
        match self.serial.wait(pat, timeout) {
            Ok(found) => found.text,
            Err(e) => self.fail(&e.to_string()),
        }
    }

    pub fn expect(&mut self, pat: &str) -> String {
        self.expect_within(pat, TIMEOUT)
    }

    /// Waits for whichever of `pats` comes first after the cursor; returns
    /// its index and the text up to and including it, and moves the cursor
    /// past it.
    pub fn expect_any(&mut self, pats: &[&str], timeout: Duration) -> (usize, String) {
        match self.serial.wait_any(pats, timeout) {
            Ok(found) => (found.which, found.text),
            Err(e) => self.fail(&e.to_string()),
        }
    }

    /// Fails if `pat` appears in the output between the cursor and now
    /// (text before the cursor is not looked at: for "must not appear at
    /// all", use [`Qemu::refute_anywhere`]).
    pub fn refute_seen(&self, pat: &str) {
        if self.serial.seen(pat) {
            self.fail(&format!("unexpected {pat:?} in output"));
        }
    }

    /// Fails if `pat` appears anywhere in the transcript so far, before or
    /// after the cursor.
    pub fn refute_anywhere(&self, pat: &str) {
        if self.serial.seen_anywhere(pat) {
            self.fail(&format!("unexpected {pat:?} in the transcript"));
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.serial.send(bytes) {
            self.fail(&e);
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
        command_output(&out)
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

    /// `-drive`/`-device` args for a virtio-mmio disk.
    pub fn mmio_disk(path: &Path, id: &str) -> Vec<String> {
        xtask::disk::qemu_disk_args(path, id)
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
        self.serial.wait_exit(timeout)
    }
}

pub use xtask::qemu::find;

/// Deterministic test content: `len` pseudo-random bytes from `seed`.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    testkit::Rng::seeded(seed.into()).bytes(len)
}

/// CRC-32 (IEEE), as the loader's `crc32` prints it.
pub use crc32fast::hash as crc32;

/// Parses a hex number as the loader prints it.
pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

impl Qemu {
    /// Where the running loader is (`bdinfo`'s `loader` line).
    pub fn loader_addr(&mut self) -> u64 {
        let bd = self.cmd("bdinfo");
        match bd
            .lines()
            .find(|l| l.starts_with("loader "))
            .and_then(|l| l.split('=').nth(1))
        {
            Some(v) => hex(v),
            None => self.fail(&format!("no loader line in bdinfo: {bd}")),
        }
    }

    /// The `PARKBOOT-INIT: key=value` report of the test initramfs' /init (kernel/init.sh),
    /// from its `begin` to its `ready` line.
    pub fn init_report(&mut self, timeout: Duration) -> HashMap<String, String> {
        self.expect_within("PARKBOOT-INIT: begin", timeout);
        let body = self.expect_within("PARKBOOT-INIT: ready", timeout);
        body.lines()
            .filter_map(|l| l.trim().strip_prefix("PARKBOOT-INIT: "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }

    /// The claim list of the memory map (`bdinfo`'s `memory map (claims):`
    /// lines).
    pub fn claims(&mut self) -> String {
        let bd = self.cmd("bdinfo");
        let claims: Vec<&str> = bd
            .lines()
            .skip_while(|l| !l.starts_with("memory map (claims):"))
            .skip(1)
            .take_while(|l| l.starts_with("  0x"))
            .collect();
        if claims.is_empty() {
            self.fail(&format!("no claims in bdinfo: {bd}"));
        }
        claims.join("\n")
    }

    /// The claim's range (`start..end`) whose owner is `owner` (bdinfo).
    pub fn claim(&mut self, owner: &str) -> (u64, u64) {
        let claims = self.claims();
        let found = claims.lines().find_map(|l| {
            let (range, who) = l.trim().split_once("  ")?;
            let (a, b) = range.split_once("..")?;
            (who.trim() == owner).then(|| (hex(a), hex(b)))
        });
        found.unwrap_or_else(|| self.fail(&format!("no {owner:?} claim in {claims}")))
    }

    /// CRC-32 of `len` bytes at `addr`, as the loader's `crc32` computes it.
    pub fn crc(&mut self, addr: u64, len: u64) -> u32 {
        let out = self.cmd(&format!("crc32 {addr:x} {len:x}"));
        match out.rsplit_once("==> ") {
            Some((_, v)) => hex(v) as u32,
            None => self.fail(&format!("crc32 {addr:x} {len:x}: {out}")),
        }
    }

    /// A command that must be refused: it answers with exactly `want` (one
    /// line) and the prompt, and nothing changed — the claim list, the
    /// environment, and the CRC of each of `ranges` (`(addr, len)`: every
    /// range it could have written).
    pub fn refused(&mut self, line: &str, want: &str, ranges: &[(u64, u64)]) {
        let claims = self.claims();
        let env = self.cmd("printenv");
        let crcs: Vec<u32> = ranges.iter().map(|&(a, n)| self.crc(a, n)).collect();
        let out = self.cmd(line);
        if out != want {
            self.fail(&format!("{line:?}: want {want:?}, got {out:?}"));
        }
        if self.claims() != claims {
            self.fail(&format!("{line:?} changed the claim list"));
        }
        if self.cmd("printenv") != env {
            self.fail(&format!("{line:?} changed the environment"));
        }
        for (&(a, n), crc) in ranges.iter().zip(crcs) {
            if self.crc(a, n) != crc {
                self.fail(&format!("{line:?} changed memory in {a:#x}+{n:#x}"));
            }
        }
    }

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

/// The command sequence LAVA 2023.01 (Debian bookworm's lava-dispatcher) types at a U-Boot
/// prompt for its `u-boot` boot method with `commands: ramdisk`, after the deploy put the
/// kernel, the mkimage-wrapped ramdisk and the DTB on its TFTP server: base-uboot.jinja2's
/// `uboot_common_cmds` + `setenv bootargs …` + `{BOOTX}`, with the placeholders as
/// `BootloaderCommandOverlay` substitutes them — `{SERVER_IP}` the dispatcher's address,
/// `{KERNEL}` etc. the files' TFTP paths, the TEE line dropped (no TEE), and `{BOOTX}` =
/// `booti <kernel> <ramdisk> <dtb>` (a u-boot header carries the ramdisk's size, so no
/// `:size`). `tests/tests/lava.rs` renders tools/lava's device type against LAVA's own templates
/// and checks that it gives exactly this.
pub struct LavaRamdisk<'a> {
    pub server_ip: &'a str,
    pub kernel_addr: &'a str,
    pub ramdisk_addr: &'a str,
    pub dtb_addr: &'a str,
    pub kernel: &'a str,
    pub ramdisk: &'a str,
    pub dtb: &'a str,
    /// The device's `console_device` and `baud_rate` as LAVA joins them (`ttyAMA0,115200n8`).
    pub console: &'a str,
    /// `extra_kernel_args` (empty by default).
    pub kernel_args: &'a str,
}

impl LavaRamdisk<'_> {
    pub fn commands(&self) -> Vec<String> {
        vec![
            "setenv autoload no".into(),
            "setenv initrd_high 0xffffffff".into(),
            "setenv fdt_high 0xffffffff".into(),
            "dhcp".into(),
            format!("setenv serverip {}", self.server_ip),
            format!("tftp {} {}", self.kernel_addr, self.kernel),
            format!("tftp {} {}", self.ramdisk_addr, self.ramdisk),
            "setenv initrd_size ${filesize}".into(),
            format!("tftp {} {}", self.dtb_addr, self.dtb),
            format!(
                "setenv bootargs 'console={} root=/dev/ram0 {} ip=dhcp'",
                self.console, self.kernel_args
            ),
            format!(
                "booti {} {} {}",
                self.kernel_addr, self.ramdisk_addr, self.dtb_addr
            ),
        ]
    }
}
