//! Chain-boot: loader → Debian Linux → `kexec -l loader.bin` → loader →
//! Linux … in one QEMU run, with every CPU each time and no drift in
//! MemTotal, the /memreserve/ table or the CPU count.
use qemu_harness::{scratch, Opts, Qemu};
use std::collections::HashMap;
use std::time::Duration;
use xtask::disk::{make_fat_disk, DiskSpec, Source, Table};

const T: Duration = Duration::from_secs(120);

fn report(q: &mut Qemu) -> HashMap<String, String> {
    q.expect_within("PARKBOOT-INIT: begin", T);
    let body = q.expect_within("PARKBOOT-INIT: ready", T);
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("PARKBOOT-INIT: "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn chain(name: &str, opts: Opts, kernels: usize) {
    chain_checked(name, opts, kernels, |_| {})
}

fn chain_checked(name: &str, opts: Opts, kernels: usize, mut each: impl FnMut(&mut Qemu)) {
    let dir = scratch(name);
    let loader = std::fs::read(qemu_harness::loader_bin()).unwrap();
    let rd = dir.join("initramfs.cpio.gz");
    xtask::kernel::initramfs_with(&[("/loader.bin", loader)], &rd).unwrap();
    let a = xtask::kernel::artifacts();
    let boot_cmd = "setenv bootargs 'console=ttyAMA0'\n\
        load virtio 0 ${ramdisk_addr_r} /initramfs.cpio.gz\n\
        setenv rdsize ${filesize}\n\
        load virtio 0 ${kernel_addr_r} /Image\n\
        booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}\n";
    let img = dir.join("disk.img");
    make_fat_disk(
        &img,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 64,
            files: vec![
                ("/Image".into(), Source::Host(a.image.clone())),
                ("/initramfs.cpio.gz".into(), Source::Host(rd)),
                (
                    "/boot.cmd".into(),
                    Source::Bytes(boot_cmd.as_bytes().to_vec()),
                ),
            ],
            label: None,
        },
    )
    .unwrap();
    let mut opts = opts;
    let cpus = opts.smp.to_string();
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let mut first: Option<HashMap<String, String>> = None;
    for n in 0..kernels {
        q.expect_within("parkboot 0.1.0", T);
        q.expect_within("Starting kernel", T);
        let r = report(&mut q);
        eprintln!("[{name}] kernel {n}: {r:?}");
        assert_eq!(r["nproc"], cpus, "kernel {n}: {r:?}");
        match &first {
            None => first = Some(r),
            Some(f) => {
                for key in ["memtotal", "memreserve", "nproc", "enable-method", "el"] {
                    assert_eq!(f[key], r[key], "kernel {n}: {key} drifted");
                }
            }
        }
        q.expect("initramfs# ");
        each(&mut q);
        if n + 1 < kernels {
            q.send("kexec -l /loader.bin --dtb=/sys/firmware/fdt && kexec -e");
        }
    }
}

#[test]
fn psci_chain_four_kernels() {
    chain("chain-psci", Opts::default(), 4);
}

#[test]
fn psci_chain_vhe_host() {
    // -cpu max has VHE: the kernel runs at EL2 with E2H set and kexecs the
    // loader with EL2 still configured for itself.
    chain_checked(
        "chain-psci-vhe",
        Opts {
            cpu: "max".into(),
            ..Opts::default()
        },
        3,
        |q| {
            q.send("dmesg | grep -c 'Virtualization Host Extensions'");
            let out = q.expect("initramfs# ");
            assert!(out.contains("\n1"), "this kernel must run with VHE: {out}");
        },
    );
}
