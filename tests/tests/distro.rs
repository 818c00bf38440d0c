//! Distribution boot flows, each booting the stock Debian kernel to /init with
//! every CPU by the default autoboot with nothing typed (the loader's
//! `bootcmd` is `run distro_bootcmd`): a flash-kernel style `boot.scr`, an
//! Armbian style `boot.cmd` + `armbianEnv.txt` + `uInitrd` with an overlay
//! loop, and the extlinux.conf Debian's u-boot-menu generates (fdtdir and an
//! overlay). The boot files are in tests/distro/ (see its README). The board
//! DT a distribution would ship is QEMU's own for the machine (dumpdtb) with
//! a `uart0` label, compiled with `dtc -@` — and with a placeholder memory
//! node (256 MiB) that booti must replace with the RAM the loader knows.
//! Plus the bad input of these flows at the prompt: a bad overlay, a bad
//! extlinux.conf, a corrupt uInitrd.
use qemu_harness::{edited_virt_dtb, scratch, Opts, Qemu};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xtask::disk::{make_fat_disk, DiskSpec, Source, Table};

const KERNEL_TIMEOUT: Duration = Duration::from_secs(120);
const KVER: &str = "6.1.0-parkboot-arm64";

fn distro_file(rel: &str) -> PathBuf {
    xtask::root().join("tests/distro").join(rel)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (apt-get install device-tree-compiler u-boot-tools)")
    });
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// `dtc -@` of a DTS into `out` (overlays get __fixups__ / __local_fixups__, a base its
/// __symbols__).
fn dtc(src: &Path, out: &Path) -> PathBuf {
    run(Command::new("dtc")
        .args(["-q", "-@", "-I", "dts", "-O", "dtb", "-o"])
        .arg(out)
        .arg(src));
    out.to_path_buf()
}

/// The board DT a distribution ships for QEMU virt (4 CPUs, 1 GiB): QEMU's own, the UART
/// labelled `uart0`, memory left at a 256 MiB placeholder, compiled with symbols.
fn board_dtb(dir: &Path) -> PathBuf {
    let opts = Opts::default();
    edited_virt_dtb(dir, "board", &opts, |s| {
        let s = s.replacen("pl011@9000000 {", "uart0: pl011@9000000 {", 1);
        assert!(s.contains("uart0: pl011"), "no pl011@9000000 in QEMU's DT");
        let mem = "reg = <0x00 0x40000000 0x00 0x40000000>;";
        assert!(s.contains(mem), "QEMU's memory node changed");
        s.replacen(mem, "reg = <0x00 0x40000000 0x00 0x10000000>;", 1)
    });
    dtc(&dir.join("board.dts"), &dir.join("board-sym.dtb"))
}

fn mkimage(args: &[&str], input: &Path, out: &Path) -> PathBuf {
    run(Command::new("mkimage")
        .args(args)
        .arg("-d")
        .arg(input)
        .arg(out));
    out.to_path_buf()
}

fn kernel() -> xtask::kernel::Artifacts {
    let a = xtask::kernel::artifacts();
    for p in [&a.image, &a.image_gz, &a.initramfs] {
        assert!(
            p.exists(),
            "{} missing: run `cargo xtask kernel` (cargo xtask test does)",
            p.display()
        );
    }
    a
}

fn disk(dir: &Path, files: Vec<(String, Source)>) -> PathBuf {
    let img = dir.join("disk.img");
    make_fat_disk(
        &img,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 96,
            files,
            label: None,
        },
    )
    .unwrap();
    img
}

fn host(p: &Path) -> Source {
    Source::Host(p.to_path_buf())
}

/// Boots with the disk and nothing typed; returns the /init report after checking that every
/// CPU came up through the pen and that the kernel saw all the RAM.
fn autoboot(name: &str, img: &Path, expect: &[&str]) -> (Qemu, HashMap<String, String>) {
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(img, "d0"));
    let mut q = Qemu::start(name, &opts);
    q.expect("Hit any key to stop autoboot");
    for e in expect {
        q.expect(e);
    }
    let booting = q.expect("Starting kernel");
    assert!(booting.contains("## Booting arm64 Image"), "{booting}");
    let r = q.init_report(KERNEL_TIMEOUT);
    assert_eq!(r["nproc"], "4", "every CPU: {r:?}");
    assert_eq!(r["enable-method"], "spin-table", "{r:?}");
    let mem: u64 = r["memtotal"].parse().unwrap();
    assert!(
        mem > 512 * 1024,
        "the 256 MiB placeholder memory node was not replaced: MemTotal {mem} kB"
    );
    (q, r)
}

/// In the initramfs shell: a DT property as text (NULs dropped).
fn dt_prop(q: &mut Qemu, path: &str) -> String {
    q.send(&format!(
        "echo \"DTPROP=$(tr -d '\\000' < /proc/device-tree/{path} 2>/dev/null || echo none)=END\""
    ));
    let out = q.expect_within("=END\r\n", KERNEL_TIMEOUT);
    out.rsplit("DTPROP=")
        .next()
        .and_then(|s| s.strip_suffix("=END\r\n"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn flash_kernel_boot_scr() {
    let dir = scratch("distro-flash-kernel");
    let a = kernel();
    let scr = mkimage(
        &[
            "-A",
            "arm",
            "-O",
            "linux",
            "-T",
            "script",
            "-C",
            "none",
            "-n",
            "boot script",
        ],
        &distro_file("flash-kernel/boot.cmd"),
        &dir.join("boot.scr"),
    );
    let dtb = board_dtb(&dir);
    let img = disk(
        &dir,
        vec![
            ("/boot/boot.scr".into(), host(&scr)),
            (format!("/boot/vmlinuz-{KVER}"), host(&a.image_gz)),
            (format!("/boot/initrd.img-{KVER}"), host(&a.initramfs)),
            (format!("/boot/dtbs/{KVER}/qemu/virt.dtb"), host(&dtb)),
        ],
    );
    let (mut q, r) = autoboot(
        "distro-flash-kernel",
        &img,
        &[
            "Scanning virtio 0:1...",
            "Found U-Boot script /boot/boot.scr",
            &format!("Booting Debian {KVER} from virtio 0:1..."),
        ],
    );
    // The Image.gz was loaded before the DT and the initrd: its size came from its own load.
    assert_eq!(
        r["cmdline"], "console=ttyAMA0 parkboot.poweroff=1  quiet",
        "{r:?}"
    );
    assert!(
        q.wait_exit(Duration::from_secs(60)),
        "kernel did not power off"
    );
}

#[test]
fn armbian_boot_cmd_with_env_uinitrd_and_overlays() {
    let dir = scratch("distro-armbian");
    let a = kernel();
    let src = distro_file("armbian");
    let scr = mkimage(
        &["-C", "none", "-A", "arm", "-T", "script"],
        &src.join("boot.cmd"),
        &dir.join("boot.scr"),
    );
    let uinitrd = mkimage(
        &[
            "-A", "arm64", "-O", "linux", "-T", "ramdisk", "-C", "gzip", "-n", "uInitrd",
        ],
        &a.initramfs,
        &dir.join("uInitrd"),
    );
    let dtb = board_dtb(&dir);
    let ov = |n: &str| {
        dtc(
            &src.join(format!("{n}.dts")),
            &dir.join(format!("{n}.dtbo")),
        )
    };
    let img = disk(
        &dir,
        vec![
            ("/boot/boot.cmd".into(), host(&src.join("boot.cmd"))),
            ("/boot/boot.scr".into(), host(&scr)),
            (
                "/boot/armbianEnv.txt".into(),
                host(&src.join("armbianEnv.txt")),
            ),
            ("/boot/Image".into(), host(&a.image)),
            ("/boot/uInitrd".into(), host(&uinitrd)),
            ("/boot/dtb/qemu/virt.dtb".into(), host(&dtb)),
            (
                "/boot/dtb/qemu/overlay/parkboot-uart0.dtbo".into(),
                host(&ov("parkboot-uart0")),
            ),
            (
                "/boot/dtb/qemu/overlay/parkboot-phandles.dtbo".into(),
                host(&ov("parkboot-phandles")),
            ),
        ],
    );
    let (mut q, r) = autoboot(
        "distro-armbian",
        &img,
        &[
            "Found U-Boot script /boot/boot.scr",
            "Boot script loaded from virtio 0",
            "Applying kernel provided DT overlay parkboot-uart0.dtbo",
            "Applying kernel provided DT overlay parkboot-phandles.dtbo",
        ],
    );
    q.refute_seen("Error applying DT overlays");
    let cmdline = &r["cmdline"];
    for want in [
        "root=UUID=9c1b3a4e-3c5f-4f7e-8d2a-1b2c3d4e5f60",
        "console=ttyAMA0,115200",
        "ubootpart=7061726b-01",
        "parkboot.armbian=1",
        "cgroup_enable=memory",
    ] {
        assert!(cmdline.contains(want), "{want} not in {cmdline}");
    }
    q.expect("initramfs# ");
    // Both overlays are in the DT the kernel got: the uart's new property, the overlay's own
    // node, and the references between them resolved (__fixups__ and __local_fixups__).
    assert_eq!(dt_prop(&mut q, "pl011@9000000/parkboot,overlay"), "armbian");
    assert_eq!(
        dt_prop(&mut q, "parkboot-overlay/compatible"),
        "parkboot,overlay-test"
    );
    let hex = |q: &mut Qemu, p: &str| {
        q.send(&format!(
            "echo \"HEX=$(od -An -tx1 /proc/device-tree/{p} | tr -d ' \\n')=END\""
        ));
        let out = q.expect_within("=END\r\n", KERNEL_TIMEOUT);
        out.rsplit("HEX=")
            .next()
            .and_then(|s| s.strip_suffix("=END\r\n"))
            .unwrap_or("")
            .to_string()
    };
    let uart_ph = hex(&mut q, "pl011@9000000/phandle");
    let ov_ph = hex(&mut q, "parkboot-overlay/phandle");
    assert_eq!(hex(&mut q, "parkboot-overlay/parkboot,uart"), uart_ph);
    assert_eq!(hex(&mut q, "pl011@9000000/parkboot,peer"), ov_ph);
    assert_ne!(uart_ph, ov_ph);
}

#[test]
fn extlinux_from_u_boot_menu_with_fdtdir_and_overlay() {
    let dir = scratch("distro-extlinux");
    let a = kernel();
    let src = distro_file("u-boot-menu");
    let dtb = board_dtb(&dir);
    let ov = dtc(
        &src.join("parkboot-uart.dts"),
        &dir.join("parkboot-uart.dtbo"),
    );
    // The boot partition as u-boot-update saw it (regenerate.sh): /boot on its own partition.
    let img = disk(
        &dir,
        vec![
            (
                "/extlinux/extlinux.conf".into(),
                host(&src.join("extlinux.conf")),
            ),
            (format!("/vmlinuz-{KVER}"), host(&a.image_gz)),
            (format!("/initrd.img-{KVER}"), host(&a.initramfs)),
            (
                format!("/usr/lib/linux-image-{KVER}/qemu/virt.dtb"),
                host(&dtb),
            ),
            ("/boot/dtbo/parkboot-uart.dtbo".into(), host(&ov)),
        ],
    );
    let (mut q, r) = autoboot(
        "distro-extlinux",
        &img,
        &[
            "Found /extlinux/extlinux.conf",
            &format!("1:\tDebian GNU/Linux 12 (bookworm) {KVER}"),
            &format!("Retrieving file: /usr/lib/linux-image-{KVER}/qemu/virt.dtb"),
            "Retrieving file: /boot/dtbo/parkboot-uart.dtbo",
        ],
    );
    q.refute_seen("Failed to apply overlay");
    assert_eq!(
        r["cmdline"], "root=/dev/vda2 console=ttyAMA0 parkboot.extlinux=1",
        "{r:?}"
    );
    q.expect("initramfs# ");
    assert_eq!(
        dt_prop(&mut q, "pl011@9000000/parkboot,overlay"),
        "extlinux"
    );
}

/// Bad input of these flows at the prompt, each one line, nothing changed: an overlay for
/// another board, a malformed extlinux.conf (file and line named), a uInitrd with a flipped
/// byte, a raw initrd without a size, bootm of a raw Image or a corrupt uImage; then a good
/// bootm of a uImage (Image.gz inside) with the uInitrd.
#[test]
fn bad_overlay_extlinux_and_uinitrd_are_one_line_and_change_nothing() {
    let dir = scratch("distro-bad-input");
    let a = kernel();
    let src = distro_file("armbian");
    let dtb = board_dtb(&dir);
    let broken = dtc(&src.join("broken.dts"), &dir.join("broken.dtbo"));
    let uinitrd = mkimage(
        &[
            "-A", "arm64", "-O", "linux", "-T", "ramdisk", "-C", "gzip", "-n", "uInitrd",
        ],
        &a.initramfs,
        &dir.join("uInitrd"),
    );
    // A kernel uImage (gzip'd Image inside) for bootm.
    let uimage = mkimage(
        &[
            "-A",
            "arm64",
            "-O",
            "linux",
            "-T",
            "kernel",
            "-C",
            "gzip",
            "-a",
            "0",
            "-e",
            "0",
            "-n",
            "Debian kernel",
        ],
        &a.image_gz,
        &dir.join("uImage"),
    );
    let bad_conf = "default l0\nlabel l0\n\tkernel /Image\n\tappend console=ttyAMA0\n\tinitrd\n";
    // A menu (prompt 1, 1 s) whose labels name kernels that are not there.
    let menu_conf = "menu title Pick one\nprompt 1\ntimeout 10\ndefault two\nlabel one\n\tkernel /nope-1\nlabel two\n\tmenu label Second\n\tkernel /nope-2\n";
    let img = disk(
        &dir,
        vec![
            ("/board.dtb".into(), host(&dtb)),
            ("/broken.dtbo".into(), host(&broken)),
            ("/uInitrd".into(), host(&uinitrd)),
            ("/Image".into(), host(&a.image)),
            ("/uImage".into(), host(&uimage)),
            (
                "/conf/bad.conf".into(),
                Source::Bytes(bad_conf.as_bytes().to_vec()),
            ),
            (
                "/conf/menu.conf".into(),
                Source::Bytes(menu_conf.as_bytes().to_vec()),
            ),
        ],
    );
    let mut opts = Opts::default();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::boot_to_prompt("distro-bad-input", &opts);
    q.cmd("load virtio 0 ${fdt_addr_r} /board.dtb");
    q.cmd("fdt addr ${fdt_addr_r}; fdt resize 1000");
    q.cmd("crc32 ${fdt_addr_r} 3000 before");
    q.cmd("load virtio 0 ${scriptaddr} /broken.dtbo");
    let out = q.cmd("fdt apply ${scriptaddr}; echo status=$?");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("fdt apply: ") && lines[0].contains("'i2c7'"),
        "{out}"
    );
    assert_eq!(lines[1], "status=1");
    q.cmd("crc32 ${fdt_addr_r} 3000 after");
    assert_eq!(
        q.env("before"),
        q.env("after"),
        "a failed overlay changed the DT"
    );

    let out = q.cmd("sysboot virtio 0:1 any ${pxefile_addr_r} /conf/bad.conf; echo status=$?");
    assert!(
        out.contains("/conf/bad.conf:5: 'initrd' needs a value\n"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("status=1"), "{out}");
    q.refute_seen("Starting kernel");

    // The menu: no key within the timeout takes the default, then the others in file order.
    let out = q.cmd("sysboot virtio 0:1 any ${pxefile_addr_r} /conf/menu.conf");
    let at = |pat: &str| {
        out.find(pat)
            .unwrap_or_else(|| panic!("{pat:?} not in {out}"))
    };
    assert!(
        at("Pick one\n1:\tone\n2:\tSecond\nEnter choice: ")
            < at("2:\tSecond\nRetrieving file: /nope-2")
    );
    assert!(at("Retrieving file: /nope-2") < at("1:\tone\nRetrieving file: /nope-1"));
    assert!(
        out.contains("no label of the configuration booted"),
        "{out}"
    );
    // A typed choice goes first.
    q.send("sysboot -p virtio 0:1 any ${pxefile_addr_r} /conf/menu.conf");
    q.expect("Enter choice: ");
    q.send("1");
    let out = q.expect("\n=> ").replace('\r', "");
    let one = out.find("1:\tone\nRetrieving file: /nope-1").expect(&out);
    let two = out
        .find("2:\tSecond\nRetrieving file: /nope-2")
        .expect(&out);
    assert!(one < two, "{out}");

    q.cmd("load virtio 0 ${ramdisk_addr_r} /uInitrd");
    q.cmd("setexpr flip ${ramdisk_addr_r} + 1000; mw.b ${flip} 5a 1");
    q.cmd("load virtio 0 ${kernel_addr_r} /Image");
    let out = q.cmd("booti ${kernel_addr_r} ${ramdisk_addr_r} ${fdt_addr_r}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("booti: initrd at ") && out.contains("bad data checksum"),
        "{out}"
    );
    let out = q.cmd("booti ${kernel_addr_r} ${fdt_addr_r} ${fdt_addr_r}");
    assert!(
        out.contains("has no legacy (mkimage) header: give its size"),
        "{out}"
    );
    // unzip of the uInitrd's gzip data (no load recorded there: the stream ends itself): the
    // flipped byte is caught; reloaded, it inflates to the trailer's size.
    q.cmd("setexpr gz ${ramdisk_addr_r} + 40");
    let out = q.cmd("unzip ${gz} ${kernel_comp_addr_r}; echo status=$?");
    assert!(
        out.starts_with("unzip: ") && out.lines().count() == 2,
        "{out}"
    );
    assert!(out.trim_end().ends_with("status=1"), "{out}");
    q.cmd("load virtio 0 ${ramdisk_addr_r} /uInitrd");
    let gz = std::fs::read(&a.initramfs).unwrap();
    let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into().unwrap());
    let out = q.cmd("unzip ${gz} ${kernel_comp_addr_r}");
    assert_eq!(
        out.trim_end(),
        format!("Uncompressed size: {isize} = 0x{isize:X}")
    );
    assert_eq!(q.env("filesize"), format!("{isize:x}"));

    // bootm: a raw Image is not a legacy image; a flipped byte in a uImage's data is caught.
    let out = q.cmd("bootm ${kernel_addr_r} - ${fdt_addr_r}");
    assert!(
        out.contains("bootm: no legacy image (mkimage) header at"),
        "{out}"
    );
    q.cmd("load virtio 0 ${kernel_addr_r} /uImage");
    q.cmd("setexpr flip ${kernel_addr_r} + 20000; mw.b ${flip} 5a 1");
    let out = q.cmd("bootm ${kernel_addr_r} - ${fdt_addr_r}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("bootm: legacy image: bad data checksum"),
        "{out}"
    );
    // Nothing was claimed by the refusals: the uImage and the uInitrd, reloaded, boot with
    // bootm (the kernel inside is an Image.gz; its length is the header's).
    q.cmd("load virtio 0 ${kernel_addr_r} /uImage");
    q.cmd("load virtio 0 ${ramdisk_addr_r} /uInitrd");
    q.cmd("setenv bootargs console=ttyAMA0 parkboot.poweroff=1");
    q.send("bootm ${kernel_addr_r} ${ramdisk_addr_r} ${fdt_addr_r}");
    let out = q.expect("Starting kernel");
    assert!(
        out.contains("## Booting kernel from Legacy Image at")
            && out.contains("Image Name:   Debian kernel")
            && out.contains("Verifying Checksum ... OK")
            && out.contains("inflated from Image.gz"),
        "{out}"
    );
    let r = q.init_report(KERNEL_TIMEOUT);
    assert_eq!(r["nproc"], "4", "{r:?}");
}
