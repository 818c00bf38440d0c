//! Storage and scripts: virtio-blk over mmio and PCI, MBR/GPT/superfloppy,
//! FAT12/16/32 with long names and nested paths, load/ls/size/fatwrite,
//! saveenv, source (text and mkimage boot.scr), autoboot — and bad input.
use qemu_harness::{crc32, hex, pattern, scratch, Opts, Qemu};
use std::path::{Path, PathBuf};
use std::time::Duration;
use xtask::disk::{make_fat_disk, DiskSpec, Source, Table};

fn disk(
    dir: &Path,
    name: &str,
    table: Table,
    fat: u8,
    size_mib: u64,
    files: Vec<(&str, Vec<u8>)>,
) -> PathBuf {
    let p = dir.join(name);
    make_fat_disk(
        &p,
        &DiskSpec {
            table,
            fat,
            size_mib,
            files: files
                .into_iter()
                .map(|(n, d)| (n.to_string(), Source::Bytes(d)))
                .collect(),
            label: None,
        },
    )
    .unwrap_or_else(|e| panic!("making {name}: {e}"));
    p
}

fn opts_with(disks: Vec<Vec<String>>) -> Opts {
    Opts {
        smp: 1,
        extra: disks.into_iter().flatten().collect(),
        ..Opts::default()
    }
}

#[test]
fn fat_variants_over_mmio_and_pci() {
    let dir = scratch("fat-variants");
    let small = pattern(5000, 1);
    let big = pattern(3 * 1024 * 1024 + 123, 2);
    let nested = pattern(70_000, 3);
    let d12 = disk(
        &dir,
        "fat12.img",
        Table::None,
        12,
        8,
        vec![
            ("/small.bin", small.clone()),
            ("/A Long File Name.dat", nested.clone()),
        ],
    );
    let d16 = disk(
        &dir,
        "fat16.img",
        Table::Mbr,
        16,
        32,
        vec![
            ("/dir/sub dir/deeply nested file.bin", nested.clone()),
            ("/big.bin", big.clone()),
        ],
    );
    let d32 = disk(
        &dir,
        "fat32.img",
        Table::Gpt,
        32,
        40,
        vec![("/boot/big.bin", big.clone())],
    );
    let dpci = disk(
        &dir,
        "pci.img",
        Table::Mbr,
        32,
        40,
        vec![("/onpci.bin", small.clone())],
    );
    // QEMU fills virtio-mmio slots from the top: the first -device gets the
    // highest slot; the loader numbers mmio disks in DT order, then PCI.
    let opts = opts_with(vec![
        Qemu::mmio_disk(&d32, "d32"),
        Qemu::mmio_disk(&d16, "d16"),
        Qemu::mmio_disk(&d12, "d12"),
        Qemu::pci_disk(&dpci, "dpci"),
    ]);
    let mut q = Qemu::boot_to_prompt("fat-variants", &opts);
    let info = q.cmd("virtio info");
    assert_eq!(
        info.lines().filter(|l| l.starts_with("Device ")).count(),
        4,
        "{info}"
    );
    assert!(info.contains("pci 00:"), "{info}");
    let addr = hex(&q.env("kernel_addr_r"));
    // Find each disk by what it holds rather than assuming slot order.
    let mut which = std::collections::HashMap::new();
    for dev in 0..4 {
        let ls = q.cmd(&format!("ls virtio {dev}"));
        let key = if ls.contains("small.bin") {
            "fat12"
        } else if ls.contains("dir/") {
            "fat16"
        } else if ls.contains("boot/") {
            "fat32"
        } else if ls.contains("onpci.bin") {
            "pci"
        } else {
            q.fail(&format!("disk {dev} unrecognised: {ls}"))
        };
        which.insert(key, dev);
    }
    assert_eq!(which["pci"], 3, "PCI disks are numbered after mmio disks");
    let ls = q.cmd(&format!("ls virtio {} /", which["fat12"]));
    assert!(ls.contains("A Long File Name.dat"), "{ls}");
    let checks: Vec<(String, &Vec<u8>)> = vec![
        (format!("{} /small.bin", which["fat12"]), &small),
        (
            format!("{}:0 /a long file name.DAT", which["fat12"]),
            &nested,
        ),
        (
            format!("{}:1 /dir/sub dir/deeply nested file.bin", which["fat16"]),
            &nested,
        ),
        (format!("{} /big.bin", which["fat16"]), &big),
        (format!("{}:1 /boot/big.bin", which["fat32"]), &big),
        (format!("{} /onpci.bin", which["pci"]), &small),
    ];
    for (spec, data) in checks {
        let (dev, path) = spec.split_once(' ').unwrap();
        let out = q.cmd(&format!("load virtio {dev} {addr:x} '{path}'"));
        assert!(
            out.contains(&format!("{} bytes read in", data.len())),
            "{spec}: {out}"
        );
        assert!(out.contains("MiB/s"), "{out}");
        assert_eq!(hex(&q.env("filesize")), data.len() as u64);
        let crc = q.cmd(&format!("crc32 {addr:x} {:x}", data.len()));
        assert!(
            crc.contains(&format!("==> {:08x}", crc32(data))),
            "{spec}: {crc}"
        );
    }
    // size, partial load with bytes and pos
    q.cmd(&format!("size virtio {} /big.bin", which["fat16"]));
    assert_eq!(hex(&q.env("filesize")), big.len() as u64);
    let out = q.cmd(&format!(
        "load virtio {} {addr:x} /big.bin 1000 2345",
        which["fat16"]
    ));
    assert!(out.contains("4096 bytes read"), "{out}");
    let crc = q.cmd(&format!("crc32 {addr:x} 1000"));
    assert!(
        crc.contains(&format!("{:08x}", crc32(&big[0x2345..0x3345]))),
        "{crc}"
    );
    let pl = q.cmd(&format!("part list virtio {}", which["fat32"]));
    assert!(pl.contains("GPT") || pl.contains("EFI"), "{pl}");
    let pl = q.cmd(&format!("part list virtio {}", which["fat16"]));
    assert!(pl.contains("DOS"), "{pl}");
}

#[test]
fn fatwrite_saveenv_and_env_at_start() {
    let dir = scratch("saveenv");
    let d = disk(
        &dir,
        "env.img",
        Table::Mbr,
        32,
        40,
        vec![("/hello.txt", b"hello\n".to_vec())],
    );
    let opts = opts_with(vec![Qemu::mmio_disk(&d, "d0")]);
    {
        let mut q = Qemu::boot_to_prompt("saveenv-1", &opts);
        let addr = hex(&q.env("kernel_addr_r"));
        q.cmd(&format!("mw.l {addr:x} cafef00d 400"));
        let out = q.cmd(&format!(
            "fatwrite virtio 0 {addr:x} /written-by-loader.bin 1000"
        ));
        assert!(out.contains("4096 bytes written"), "{out}");
        q.cmd(&format!("mw.l {addr:x} 0 400"));
        q.cmd(&format!("load virtio 0 {addr:x} /written-by-loader.bin"));
        let data: Vec<u8> = std::iter::repeat_n(0xcafe_f00du32.to_le_bytes(), 0x400)
            .flatten()
            .collect();
        assert!(q
            .cmd(&format!("crc32 {addr:x} 1000"))
            .contains(&format!("{:08x}", crc32(&data))));
        q.cmd("setenv parkboot_test 'saved value'");
        q.cmd("setenv bootdelay 5");
        let out = q.cmd("saveenv");
        assert!(out.contains("OK"), "{out}");
        q.send("poweroff");
        assert!(q.wait_exit(Duration::from_secs(10)));
    }
    let mut q = Qemu::start("saveenv-2", &opts);
    let banner = q.expect("autoboot");
    assert!(
        banner.contains("env:") && banner.contains("parkboot.env"),
        "{banner}"
    );
    q.expect(" 5 ");
    q.send_raw(b" ");
    q.expect("=> ");
    assert_eq!(q.env("parkboot_test"), "saved value");
}

#[test]
fn autoboot_runs_boot_cmd_and_boot_scr() {
    let dir = scratch("autoboot");
    // boot.cmd in /boot on the second partition-less disk, found by the scan.
    let cmd = b"echo SCRIPT-RAN-${devtype}${devnum}; if test -n \"${distro_bootpart}\"; then echo part=${distro_bootpart}; fi\n";
    let d = disk(
        &dir,
        "cmd.img",
        Table::Mbr,
        32,
        40,
        vec![("/boot/boot.cmd", cmd.to_vec())],
    );
    let mut q = Qemu::start("autoboot-cmd", &opts_with(vec![Qemu::mmio_disk(&d, "d0")]));
    q.expect("Hit any key to stop autoboot");
    q.expect("Scanning virtio 0:1...");
    q.expect("Found U-Boot script /boot/boot.cmd");
    q.expect("SCRIPT-RAN-virtio0");
    q.expect("part=1");
    q.expect("=> ");
    drop(q);

    // boot.scr made by U-Boot's mkimage, on a superfloppy FAT16.
    let txt = dir.join("boot.txt");
    std::fs::write(&txt, "echo FROM-BOOT-SCR\nsetenv scr_ran yes\n").unwrap();
    let scr = dir.join("boot.scr");
    let st = std::process::Command::new("mkimage")
        .args([
            "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-d",
        ])
        .arg(&txt)
        .arg(&scr)
        .output()
        .expect("mkimage (apt-get install u-boot-tools)");
    assert!(st.status.success(), "{st:?}");
    let d = disk(
        &dir,
        "scr.img",
        Table::None,
        16,
        16,
        vec![("/boot.scr", std::fs::read(&scr).unwrap())],
    );
    let mut q = Qemu::start("autoboot-scr", &opts_with(vec![Qemu::mmio_disk(&d, "d0")]));
    q.expect("FROM-BOOT-SCR");
    q.expect("=> ");
    assert_eq!(q.env("scr_ran"), "yes");
    // A corrupted boot.scr (data CRC) is refused with one line.
    let addr = hex(&q.env("scriptaddr"));
    q.cmd(&format!("load virtio 0 {addr:x} /boot.scr"));
    q.cmd(&format!("mw.b {:x} 41", addr + 64 + 12));
    let out = q.cmd(&format!("source {addr:x}"));
    assert!(out.contains("bad data checksum"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    drop(q);

    // A key already waiting stops autoboot even with bootdelay=0 (set via a saved env).
    let env = b"bootdelay=0\n".to_vec();
    let d = disk(
        &dir,
        "key.img",
        Table::Mbr,
        32,
        40,
        vec![
            ("/boot.cmd", b"echo MUST-NOT-RUN\n".to_vec()),
            ("/parkboot.env", env),
        ],
    );
    let mut q = Qemu::start("autoboot-key", &opts_with(vec![Qemu::mmio_disk(&d, "d0")]));
    q.send_raw(b"x");
    q.expect("autoboot");
    q.expect("=> ");
    std::thread::sleep(Duration::from_millis(300));
    q.refute_seen("MUST-NOT-RUN");
    // bootdelay=-1 disables autoboot: no countdown at all.
    q.cmd("setenv bootdelay -1");
    q.cmd("saveenv");
    q.send("reset");
    // -no-reboot makes QEMU exit on reset.
    assert!(q.wait_exit(Duration::from_secs(10)), "reset did not reset");
    let mut q = Qemu::start("autoboot-off", &opts_with(vec![Qemu::mmio_disk(&d, "d0")]));
    q.expect("ready in");
    q.expect("=> ");
    let t = q.transcript();
    assert!(
        !t.contains("autoboot") && !t.contains("MUST-NOT-RUN"),
        "{t}"
    );
}

#[test]
fn bad_storage_input_is_refused_and_nothing_is_lost() {
    let dir = scratch("bad-storage");
    let good = pattern(100_000, 9);
    let d = disk(
        &dir,
        "good.img",
        Table::Mbr,
        32,
        40,
        vec![
            ("/good.bin", good.clone()),
            ("/garbage.cmd", pattern(3000, 4)),
        ],
    );
    // Corrupt copies: FAT area zeroed-with-junk, partition table garbage, truncated.
    let raw = std::fs::read(&d).unwrap();
    let corrupt_fat = dir.join("corrupt-fat.img");
    let mut c = raw.clone();
    let fs_off = 2048 * 512;
    for b in &mut c[fs_off + 0x4000..fs_off + 0x40000] {
        *b = 0xa5;
    }
    std::fs::write(&corrupt_fat, &c).unwrap();
    let corrupt_pt = dir.join("corrupt-pt.img");
    let mut c = raw.clone();
    c[0x1be..0x1fe].copy_from_slice(&pattern(64, 5));
    std::fs::write(&corrupt_pt, &c).unwrap();
    let truncated = dir.join("truncated.img");
    std::fs::write(&truncated, &raw[..(fs_off + 64 * 1024)]).unwrap();
    let opts = opts_with(vec![
        Qemu::mmio_disk(&d, "d0"),
        Qemu::mmio_disk(&corrupt_fat, "d1"),
        Qemu::mmio_disk(&corrupt_pt, "d2"),
        Qemu::mmio_disk(&truncated, "d3"),
    ]);
    let mut q = Qemu::boot_to_prompt("bad-storage", &opts);
    let info = q.cmd("virtio info");
    let addr = hex(&q.env("kernel_addr_r"));
    let good_dev = (0..4)
        .find(|i| {
            q.cmd(&format!("load virtio {i} {addr:x} /good.bin"))
                .contains(&format!("{} bytes read", good.len()))
        })
        .unwrap_or_else(|| q.fail(&format!("no good disk: {info}")));
    let crc_before = q.cmd(&format!("crc32 {addr:x} {:x}", good.len()));
    assert!(
        crc_before.contains(&format!("{:08x}", crc32(&good))),
        "{crc_before} vs {:08x}",
        crc32(&good)
    );
    let loader = q.loader_addr();
    let mut cases: Vec<(String, &str)> = vec![
        (
            format!("load virtio {good_dev} {addr:x} /missing.bin"),
            "not found",
        ),
        (
            format!("load virtio 9 {addr:x} /good.bin"),
            "no virtio device 9",
        ),
        (format!("load virtio {good_dev}:7 {addr:x} /good.bin"), ""),
        (
            format!("load virtio {good_dev} {loader:x} /good.bin"),
            "loader",
        ),
        (
            format!("load virtio {good_dev} {:x} /good.bin", 0x7fff_f000u64),
            "not RAM",
        ),
        (
            format!("load virtio {good_dev} ffffffffffff0000 /good.bin"),
            "",
        ),
        (
            format!("load virtio {good_dev} {addr:x} /{}", "p/".repeat(700)),
            "too long",
        ),
        (
            format!("load virtio {good_dev} {addr:x} /good.bin 10 ffffffff"),
            "beyond",
        ),
        (format!("load sata 0 {addr:x} /good.bin"), "interface"),
        (format!("ls virtio {good_dev} /good.bin/x"), ""),
        (format!("source {:x}", addr + 0x20_0000), ""),
    ];
    for dev in 0..4 {
        if dev == good_dev {
            continue;
        }
        // A listing may still work (the root directory can survive); if not, one line.
        let ls = q.cmd(&format!("ls virtio {dev} /"));
        assert!(
            ls.contains("file(s)") || ls.lines().count() == 1,
            "ls on bad disk {dev}: {ls}"
        );
        cases.push((
            format!("load virtio {dev} {:x} /good.bin", addr + 0x10_0000),
            "",
        ));
        let pl = q.cmd(&format!("part list virtio {dev}"));
        assert!(
            pl.contains("Partition Map") || pl.lines().count() == 1,
            "part list on bad disk {dev}: {pl}"
        );
    }
    // Garbage script (binary) is refused by source.
    q.cmd(&format!(
        "load virtio {good_dev} {:x} /garbage.cmd",
        addr + 0x20_0000
    ));
    for (line, want) in cases {
        let out = q.cmd(&line);
        assert!(
            out.lines().count() <= 1,
            "{line}: more than one line: {out}"
        );
        assert!(out.contains(want), "{line}: want {want:?}, got {out:?}");
    }
    // Nothing outside a refused target changed.
    assert_eq!(
        crc_before,
        q.cmd(&format!("crc32 {addr:x} {:x}", good.len()))
    );
    assert_eq!(q.cmd("echo still alive"), "still alive");
}

#[test]
fn pen_gather_boot_defers_the_pen_until_needed() {
    // pen_gather=boot (from the saved env): no CPU is started at start; the
    // `cpus` command (or booti with spin-table) gathers them then.
    let dir = scratch("pen-gather-boot");
    let d = disk(
        &dir,
        "env.img",
        Table::Mbr,
        32,
        40,
        vec![("/parkboot.env", b"pen_gather=boot\n".to_vec())],
    );
    let mut q = Qemu::boot_to_prompt(
        "pen-gather-boot",
        &opts_with(vec![Qemu::mmio_disk(&d, "d0")]).clone_with_smp(4),
    );
    assert!(
        !q.transcript().contains("CPUs: "),
        "nothing gathered at start"
    );
    let out = q.cmd("cpus");
    assert!(out.contains("CPUs: 4 in DT, 3 in pen"), "{out}");
    assert_eq!(out.matches("parked").count(), 3, "{out}");
}

trait WithSmp {
    fn clone_with_smp(self, n: u32) -> Opts;
}
impl WithSmp for Opts {
    fn clone_with_smp(mut self, n: u32) -> Opts {
        self.smp = n;
        self
    }
}
