//! Network boot through parkboot on QEMU's user-mode network, sealed: `restrict=on` (the guest
//! reaches nothing but QEMU's own DHCP/TFTP/DNS addresses), `-nic none` (no default NIC), QEMU's
//! built-in TFTP server on a scratch directory, and for `wget` an HTTP server of the test's own
//! on 127.0.0.1, reached only through a `guestfwd` rule (10.0.2.100:80, forwarded by
//! `tests/src/bin/netfwd.rs`, one per guest connection). No packet leaves the QEMU process and
//! the host's loopback.
//!
//! * LAVA's u-boot ramdisk method, typed as LAVA 2023.01 types it (`qemu_harness::LavaRamdisk`,
//!   checked against LAVA's templates by tests/tests/lava.rs), boots the stock Debian kernel with
//!   a `mkimage -T ramdisk` ramdisk to /init with every CPU — virtio-net over virtio-mmio;
//! * `dhcp; pxe get; pxe boot` boots it too — virtio-net over PCI;
//! * bad network input, each one line with the prompt back and the claims as they were: a TFTP
//!   error packet (file not found, access violation), a server that does not answer (TFTP) or
//!   stops answering (HTTP), a lying HTTP Content-Length both ways, downloads that do not fit
//!   before the next claim (announced by `tsize`, or growing without an announcement), a load
//!   address inside a claim, ctrl-C.
use qemu_harness::{crc32, edited_virt_dtb, hex, pattern, scratch, LavaRamdisk, Opts, Qemu};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const KERNEL_TIMEOUT: Duration = Duration::from_secs(120);
/// QEMU's user-mode network: the gateway, which is also its DHCP and TFTP server.
const SERVER: &str = "10.0.2.2";
/// Where `guestfwd` puts the test's HTTP server.
const HTTP_IP: &str = "10.0.2.100";

/// `-nic none`, the user-mode network with QEMU's TFTP server on `tftp` (and its DHCP offering
/// `bootfile`), the HTTP forward when given, and one virtio-net device `dev` on it.
fn net_args(dev: &str, tftp: &Path, bootfile: &str, http_port: Option<u16>) -> Vec<String> {
    let mut netdev = format!(
        "user,id=n0,restrict=on,tftp={},bootfile={bootfile}",
        tftp.display()
    );
    if let Some(p) = http_port {
        // One `netfwd` per guest connection, to the test's server on 127.0.0.1:p.
        netdev.push_str(&format!(
            ",guestfwd=tcp:{HTTP_IP}:80-cmd:{} {p}",
            env!("CARGO_BIN_EXE_netfwd")
        ));
    }
    vec![
        "-nic".into(),
        "none".into(),
        "-netdev".into(),
        netdev,
        "-device".into(),
        format!("{dev},netdev=n0"),
    ]
}

const MMIO: &str = "virtio-net-device";
const PCI: &str = "virtio-net-pci,disable-legacy=on";

fn kernel_files() -> xtask::kernel::Artifacts {
    let a = xtask::kernel::artifacts();
    for p in [&a.image, &a.initramfs] {
        assert!(
            p.exists(),
            "{} missing: run `cargo xtask kernel` (cargo xtask test does)",
            p.display()
        );
    }
    a
}

fn copy(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// What LAVA's deploy does to a ramdisk for a u-boot device (`add_header: u-boot`).
fn mkimage_ramdisk(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    let out = Command::new("mkimage")
        .args(["-A", "arm64", "-T", "ramdisk", "-C", "none", "-d"])
        .arg(from)
        .arg(to)
        .output()
        .expect("mkimage (u-boot-tools)");
    assert!(out.status.success(), "mkimage: {out:?}");
}

/// The init report after "Starting kernel" (a prompt instead fails the test at once): every
/// CPU up, the command line as typed.
fn assert_linux_up(q: &mut Qemu, cpus: u32, cmdline: &str) {
    let (which, out) = q.expect_any(&["Starting kernel", "\n=> "], KERNEL_TIMEOUT);
    if which != 0 {
        q.fail(&format!("no boot: {out}"));
    }
    let r = q.init_report(KERNEL_TIMEOUT);
    assert_eq!(r["nproc"], cpus.to_string(), "{r:?}");
    assert_eq!(r["cmdline"], cmdline, "{r:?}");
}

/// The loader's own summary line of a download: bytes, ms, MiB/s.
fn assert_summary(out: &str, what: &str, bytes: u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{what}: {bytes} bytes in ")))
        .unwrap_or_else(|| panic!("no {what} summary for {bytes} bytes: {out}"));
    assert!(line.ends_with(" MiB/s") && line.contains(" ms, "), "{line}");
    assert!(
        out.contains(&format!("Bytes transferred = {bytes} ({bytes:x} hex)")),
        "{out}"
    );
}

#[test]
fn lava_ramdisk_method_boots_linux_over_virtio_mmio() {
    let a = kernel_files();
    let dir = scratch("net-lava");
    let tftp = dir.join("tftp");
    // Paths as LAVA's tftp deploy lays them out under its TFTP root.
    let deploy = "1/tftp-deploy-4t5i2n3x";
    let kernel = format!("{deploy}/kernel/Image");
    let ramdisk = format!("{deploy}/ramdisk/initramfs.cpio.gz.uboot");
    let dtb = format!("{deploy}/dtb/virt.dtb");
    copy(&a.image, &tftp.join(&kernel));
    mkimage_ramdisk(&a.initramfs, &tftp.join(&ramdisk));
    let opts = Opts::default();
    let virt = edited_virt_dtb(&dir, "virt", &opts, |s| s);
    copy(&virt, &tftp.join(&dtb));
    let mut opts = opts;
    opts.extra = net_args(MMIO, &tftp, "", None);
    let mut q = Qemu::boot_to_prompt("net-lava", &opts);
    let seq = LavaRamdisk {
        server_ip: SERVER,
        kernel_addr: "0x48200000",
        ramdisk_addr: "0x4e600000",
        dtb_addr: "0x4c200000",
        kernel: &kernel,
        ramdisk: &ramdisk,
        dtb: &dtb,
        console: "ttyAMA0,115200n8",
        kernel_args: "",
    }
    .commands();
    let (boot, setup) = seq.split_last().unwrap();
    let mut transcript = String::new();
    for line in setup {
        let out = q.cmd(line);
        // LAVA fails the job on these (base.jinja2's u-boot error-messages).
        for bad in ["TFTP error", "Retry", "ERROR", "not found", "Usage"] {
            assert!(!out.contains(bad), "{line}: {out}");
        }
        transcript.push_str(&out);
        transcript.push('\n');
    }
    let image_len = std::fs::metadata(&a.image).unwrap().len();
    assert_summary(&transcript, "tftp", image_len);
    assert!(
        transcript.contains("DHCP client bound to address 10.0.2.15"),
        "{transcript}"
    );
    // initrd_size: the whole uInitrd, as U-Boot's filesize would be.
    let uinitrd_len = std::fs::metadata(tftp.join(&ramdisk)).unwrap().len();
    assert_eq!(hex(&q.env("initrd_size")), uinitrd_len);
    q.send(boot);
    assert_linux_up(
        &mut q,
        4,
        "console=ttyAMA0,115200n8 root=/dev/ram0  ip=dhcp",
    );
}

#[test]
fn pxe_get_and_boot_over_virtio_pci() {
    let a = kernel_files();
    let dir = scratch("net-pxe");
    let tftp = dir.join("tftp");
    copy(&a.image, &tftp.join("boot/Image"));
    copy(&a.initramfs, &tftp.join("boot/initramfs.cpio.gz"));
    let args = "console=ttyAMA0 parkboot.poweroff=1";
    std::fs::create_dir_all(tftp.join("boot/pxelinux.cfg")).unwrap();
    std::fs::write(
        tftp.join("boot/pxelinux.cfg/default"),
        format!(
            "# pxelinux.cfg for the test\nmenu title parkboot netboot\ndefault linux\n\
             label broken\n  kernel nosuch-Image\n\
             label linux\n  menu label Debian (network)\n  kernel Image\n  initrd initramfs.cpio.gz\n  append {args}\n"
        ),
    )
    .unwrap();
    // bootfile's directory is where pxelinux.cfg/ is looked for.
    let opts = Opts {
        extra: net_args(PCI, &tftp, "boot/pxelinux.0", None),
        ..Opts::default()
    };
    let mut q = Qemu::boot_to_prompt("net-pxe", &opts);
    q.cmd("setenv autoload no");
    let out = q.cmd("dhcp");
    assert!(out.contains("Net:   virtio-net#0 (pci 00:"), "{out}");
    assert_eq!(q.env("bootfile"), "boot/pxelinux.0");
    let out = q.cmd("pxe get");
    // U-Boot's order: by MAC, by IP in hex and its prefixes, then the defaults.
    let tried: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Retrieving file: "))
        .collect();
    assert_eq!(
        tried,
        [
            "boot/pxelinux.cfg/01-52-54-00-12-34-56",
            "boot/pxelinux.cfg/0A00020F",
            "boot/pxelinux.cfg/0A00020",
            "boot/pxelinux.cfg/0A0002",
            "boot/pxelinux.cfg/0A000",
            "boot/pxelinux.cfg/0A00",
            "boot/pxelinux.cfg/0A0",
            "boot/pxelinux.cfg/0A",
            "boot/pxelinux.cfg/0",
            "boot/pxelinux.cfg/default-arm",
            "boot/pxelinux.cfg/default",
        ],
        "{out}"
    );
    assert!(out.contains("TFTP error: 'File not found' (1)"), "{out}");
    assert!(
        out.contains("Config file 'boot/pxelinux.cfg/default' found"),
        "{out}"
    );
    q.send("pxe boot");
    let (which, booting) = q.expect_any(&["Starting kernel", "\n=> "], KERNEL_TIMEOUT);
    if which != 0 {
        q.fail(&format!("pxe boot did not boot: {booting}"));
    }
    // The default label first, its files relative to bootfile's directory; append as bootargs.
    assert!(booting.contains("2:\tDebian (network)"), "{booting}");
    assert!(
        booting.contains("Retrieving file: boot/initramfs.cpio.gz"),
        "{booting}"
    );
    assert!(booting.contains("Retrieving file: boot/Image"), "{booting}");
    assert!(booting.contains(&format!("append: {args}")), "{booting}");
    assert!(!booting.contains("nosuch-Image"), "{booting}");
    let r = q.init_report(KERNEL_TIMEOUT);
    assert_eq!(r["nproc"], "4", "{r:?}");
    assert_eq!(r["cmdline"], args, "{r:?}");
}

// ---------------------------------------------------------------- bad network input

/// What the test's HTTP server answers for a path.
#[derive(Clone)]
enum Reply {
    /// 200 with the body and its true Content-Length.
    Body(Vec<u8>),
    /// A Content-Length of `claims`, then `body` (shorter or longer), then the connection closes.
    Lying { claims: usize, body: Vec<u8> },
    /// No Content-Length: the body ends when the connection closes.
    UntilClose(Vec<u8>),
    /// A Content-Length of `claims`, `body`, then nothing more for a minute.
    Stall { claims: usize, body: Vec<u8> },
}

/// The test's HTTP/1.1 server on 127.0.0.1 (an ephemeral port), serving `routes`; 404 else.
fn http_server(routes: Vec<(&'static str, Reply)>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let routes = routes.clone();
            std::thread::spawn(move || serve(c, &routes));
        }
    });
    port
}

fn serve(mut c: TcpStream, routes: &[(&'static str, Reply)]) {
    let mut req = Vec::new();
    let mut b = [0u8; 512];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&b[..n]),
        }
    }
    let req = String::from_utf8_lossy(&req);
    let path = req.split_whitespace().nth(1).unwrap_or("/");
    let head = |len: Option<usize>| match len {
        Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"),
        None => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string(),
    };
    let reply = routes.iter().find(|(p, _)| *p == path).map(|(_, r)| r);
    let _ = match reply {
        None => c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        Some(Reply::Body(d)) => c
            .write_all(head(Some(d.len())).as_bytes())
            .and_then(|_| c.write_all(d)),
        Some(Reply::Lying { claims, body }) => c
            .write_all(head(Some(*claims)).as_bytes())
            .and_then(|_| c.write_all(body)),
        Some(Reply::UntilClose(d)) => c
            .write_all(head(None).as_bytes())
            .and_then(|_| c.write_all(d)),
        Some(Reply::Stall { claims, body }) => {
            let r = c
                .write_all(head(Some(*claims)).as_bytes())
                .and_then(|_| c.write_all(body));
            std::thread::sleep(Duration::from_secs(60));
            r
        }
    };
    let _ = c.flush();
}

/// The memory map's claims as `bdinfo` lists them.
fn claims(q: &mut Qemu) -> String {
    let bd = q.cmd("bdinfo");
    let start = bd.find("memory map (claims):").expect("claims in bdinfo");
    bd[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  0x"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `line`, which must fail with exactly one line after the transcript lines of the
/// transfer, ending in `want`; returns the output.
fn refused(q: &mut Qemu, line: &str, want: &str) -> String {
    let out = q.cmd(line);
    let last = out.lines().last().unwrap_or("");
    assert!(
        last.ends_with(want),
        "{line}: want {want:?} last, got:\n{out}"
    );
    let errors = out
        .lines()
        .filter(|l| l.contains("error") || l.contains("nothing") || l.contains("Abort"))
        .count();
    assert_eq!(errors, 1, "{line}: one error line:\n{out}");
    out
}

fn crc(q: &mut Qemu, addr: u64, len: u64) -> String {
    let out = q.cmd(&format!("crc32 {addr:x} {len:x}"));
    out.rsplit("==> ").next().unwrap_or("").trim().to_string()
}

#[test]
fn bad_network_input_gets_one_line_and_leaves_the_claims() {
    let dir = scratch("net-bad");
    let tftp = dir.join("tftp");
    std::fs::create_dir_all(&tftp).unwrap();
    let blob = pattern(300_000, 18);
    std::fs::write(tftp.join("blob"), &blob).unwrap();
    let a = kernel_files();
    copy(&a.image, &tftp.join("Image"));
    let ok = pattern(200_000, 19);
    let port = http_server(vec![
        ("/ok.bin", Reply::Body(ok.clone())),
        (
            "/short",
            Reply::Lying {
                claims: 100_000,
                body: pattern(50_000, 20),
            },
        ),
        (
            "/long",
            Reply::Lying {
                claims: 1_000,
                body: pattern(5_000, 21),
            },
        ),
        ("/grow", Reply::UntilClose(pattern(64 * 1024, 22))),
        (
            "/stall",
            Reply::Stall {
                claims: 10_000,
                body: pattern(1_000, 23),
            },
        ),
    ]);
    let mut opts = Opts {
        smp: 2,
        ..Opts::default()
    };
    opts.extra = net_args(MMIO, &tftp, "blob", Some(port));
    let mut q = Qemu::boot_to_prompt("net-bad", &opts);
    q.cmd("setenv autoload no");
    let out = q.cmd("dhcp");
    assert!(out.contains("DHCP client bound"), "{out}");
    assert_eq!(q.env("serverip"), SERVER);
    let before = claims(&mut q);
    let dt = hex(&q.env("fdtcontroladdr"));
    let dt_crc = crc(&mut q, dt, 0x1000);
    let scratch_addr = 0x5000_0000u64;

    // A good TFTP and a good HTTP download: filesize, fileaddr, the data.
    let out = q.cmd(&format!("tftp {scratch_addr:x} blob"));
    assert_summary(&out, "tftp", blob.len() as u64);
    assert_eq!(hex(&q.env("filesize")), blob.len() as u64);
    assert_eq!(hex(&q.env("fileaddr")), scratch_addr);
    assert_eq!(
        crc(&mut q, scratch_addr, blob.len() as u64),
        format!("{:08x}", crc32(&blob))
    );
    let out = q.cmd(&format!("wget {scratch_addr:x} {HTTP_IP}:/ok.bin"));
    assert_summary(&out, "wget", ok.len() as u64);
    assert_eq!(
        crc(&mut q, scratch_addr, ok.len() as u64),
        format!("{:08x}", crc32(&ok))
    );
    let out = q.cmd(&format!("ping {SERVER}"));
    assert!(out.ends_with(&format!("host {SERVER} is alive")), "{out}");

    // From here on every command fails; filesize must stay as it is.
    q.cmd("setenv filesize abc");
    refused(
        &mut q,
        &format!("tftp {scratch_addr:x} nosuchfile"),
        "TFTP error: 'File not found' (1)",
    );
    refused(
        &mut q,
        &format!("tftp {scratch_addr:x} ../blob"),
        "TFTP error: 'Access violation' (2)",
    );
    // A server that does not answer at all (nobody has 10.0.2.99): the retries, then one line.
    q.cmd("setenv tftptimeout 1000");
    q.cmd("setenv tftptimeoutcountmax 2");
    refused(
        &mut q,
        &format!("tftp {scratch_addr:x} 10.0.2.99:blob"),
        "TFTP error: retry count exceeded (2 timeouts of 1000 ms); giving up",
    );
    // tsize says the file does not fit below the incoming DT's claim: nothing is written.
    let below = dt - 0x1000;
    let below_crc = crc(&mut q, below, 0x1000);
    refused(
        &mut q,
        &format!("tftp {below:x} blob"),
        &format!(
            "TFTP error: file is {} bytes but only 4096 bytes are free at {below:#x}; nothing loaded",
            blob.len()
        ),
    );
    assert_eq!(crc(&mut q, below, 0x1000), below_crc);
    // A load address inside a claim.
    refused(
        &mut q,
        &format!("tftp {:x} blob", dt + 0x100),
        &format!(
            "is in use: {dt:#x}..{:#x} (incoming DT); nothing loaded",
            dt + 0x10_0000
        ),
    );
    // HTTP: the connection closes before the length it announced; more than it announced;
    // a body without a length that grows past the claim; a server that stops sending.
    refused(
        &mut q,
        &format!("wget {scratch_addr:x} {HTTP_IP}:/short"),
        "HTTP error: connection closed after 50000 of the 100000 bytes of its Content-Length",
    );
    refused(
        &mut q,
        &format!("wget {scratch_addr:x} {HTTP_IP}:/long"),
        "HTTP error: server sent more than the 1000 bytes it announced; stopped",
    );
    let out = refused(
        &mut q,
        &format!("wget {below:x} {HTTP_IP}:/grow"),
        "; stopped, nothing written past the limit",
    );
    assert!(
        out.contains(&format!(
            "transfer grew past the 4096 bytes free at {below:#x}"
        )),
        "{out}"
    );
    refused(
        &mut q,
        &format!("wget {scratch_addr:x} {HTTP_IP}:/stall"),
        "HTTP error: nothing received for 10000 ms (after 1000 bytes)",
    );
    refused(
        &mut q,
        &format!("wget {scratch_addr:x} {HTTP_IP}:/missing"),
        "HTTP error: server answered 404 Not Found",
    );
    // ctrl-C in the middle of a transfer.
    q.send(&format!("tftp {scratch_addr:x} Image"));
    q.expect("Loading: *");
    q.send_raw(&[0x03]);
    let out = q.expect_within("\n=> ", Duration::from_secs(30));
    assert!(out.contains("Abort"), "{out}");
    // Nothing of all this moved a claim, wrote into the DT, or set filesize.
    assert_eq!(q.env("filesize"), "abc");
    assert_eq!(crc(&mut q, dt, 0x1000), dt_crc);
    assert_eq!(claims(&mut q), before);
    // And the network still works.
    let out = q.cmd(&format!("tftp {scratch_addr:x} blob"));
    assert_summary(&out, "tftp", blob.len() as u64);
}
