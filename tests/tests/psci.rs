//! parkboot as the platform's PSCI firmware (docs/psci.md): QEMU `virt,secure=on` with
//! `-bios loader.bin`. The image starts at EL3 from reset on every CPU, keeps a resident part
//! in secure RAM that serves PSCI 1.1 over SMC from a pen, and continues as the normal loader
//! at non-secure EL2. The stock Debian kernel then runs with `enable-method = "psci"`: every
//! CPU online, CPU hotplug, KVM, kexec chains through the resident pen, poweroff.
use qemu_harness::{scratch, Opts, Qemu};
use std::collections::HashMap;
use std::time::Duration;
use xtask::disk::{make_fat_disk, DiskSpec, Source, Table};

const T: Duration = Duration::from_secs(180);

/// A disk with the kernel and an initramfs that carries loader.bin (for kexec).
fn linux_disk(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let loader = std::fs::read(qemu_harness::loader_bin()).unwrap();
    let rd = dir.join("initramfs.cpio.gz");
    xtask::kernel::initramfs_with(&[("/loader.bin", loader)], &rd).unwrap();
    let a = xtask::kernel::artifacts();
    let img = dir.join("disk.img");
    make_fat_disk(
        &img,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 64,
            files: vec![
                ("/Image".to_string(), Source::Host(a.image.clone())),
                ("/initramfs.cpio.gz".to_string(), Source::Host(rd)),
            ],
            label: None,
        },
    )
    .unwrap();
    img
}

fn el3_opts(name: &str, smp: u32, gic: Option<u32>) -> Opts {
    let img = linux_disk(name);
    let mut opts = Opts {
        bios: true,
        smp,
        gic,
        ..Opts::default()
    };
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    opts
}

/// Types `line` at the initramfs shell and returns its output.
fn sh(q: &mut Qemu, line: &str) -> String {
    q.send(line);
    q.expect_within("initramfs# ", T)
}

/// The resident part's start-up line: every CPU reached its pen.
fn expect_resident(q: &mut Qemu, smp: u32) {
    let line = q.expect_within("non-secure loader at ", T);
    let want = format!("PSCI 1.1 over SMC; {smp} of {smp} CPUs in the resident pen at ");
    if !line.contains(&want) {
        q.fail(&format!("no {want:?} from the resident part"));
    }
}

/// Offlines CPUs 1.. and onlines them again, `rounds` times; each time Linux must see them go
/// and come back (PSCI CPU_OFF parks them in the resident pen, CPU_ON releases them).
fn hotplug(q: &mut Qemu, smp: u32, rounds: usize) {
    let all = format!("0-{}", smp - 1);
    for round in 0..rounds {
        for c in 1..smp {
            sh(
                q,
                &format!("echo 0 > /sys/devices/system/cpu/cpu{c}/online"),
            );
        }
        let out = sh(q, "cat /sys/devices/system/cpu/online");
        if !out.lines().any(|l| l.trim() == "0") {
            q.fail(&format!(
                "round {round}: CPUs 1-{} not offline: {out}",
                smp - 1
            ));
        }
        for c in 1..smp {
            sh(
                q,
                &format!("echo 1 > /sys/devices/system/cpu/cpu{c}/online"),
            );
        }
        let out = sh(q, "cat /sys/devices/system/cpu/online");
        if !out.lines().any(|l| l.trim() == all) {
            q.fail(&format!("round {round}: CPUs not back online: {out}"));
        }
    }
}

/// issue #14's chain: `-bios loader.bin` → resident PSCI + loader (EL2) → Linux (psci): 4
/// CPUs online through PSCI, CPUs 1-3 offlined and onlined back three times, KVM available
/// (/dev/kvm); then `kexec -l loader.bin --dtb=/sys/firmware/fdt` with every CPU online (Linux
/// parks the secondaries with CPU_OFF), the next loader (entered at EL2) finds the resident
/// PSCI in the DT and brings them back with CPU_ON, … 4 kernels with /memreserve/,
/// /reserved-memory and MemTotal identical in every one; the last one's `poweroff` ends QEMU
/// (PSCI SYSTEM_OFF → the secure GPIO).
#[test]
fn el3_psci_linux_hotplug_kvm_kexec_chain_poweroff() {
    let name = "el3-psci-chain";
    let opts = el3_opts(name, 4, None);
    let mut q = Qemu::start(name, &opts);
    expect_resident(&mut q, 4);
    let mut first: Option<HashMap<String, String>> = None;
    for n in 0..4 {
        let banner = q.expect_within("autoboot", T);
        if !banner.contains("parkboot 0.1.0 (EL2)") {
            q.fail(&format!("kernel {n}: the loader must run at EL2"));
        }
        if !banner.contains("CPUs: 4 in DT, 3 in pen") {
            q.fail(&format!(
                "kernel {n}: the loader must gather 3 CPUs through PSCI CPU_ON"
            ));
        }
        // typed_linux_boot waits for the countdown again: it was just seen, so press a key.
        q.send_raw(b" ");
        q.expect_within("=> ", T);
        q.cmd("setenv cpu_method psci");
        q.cmd("setenv bootargs 'console=ttyAMA0'");
        q.cmd("load virtio 0 ${ramdisk_addr_r} /initramfs.cpio.gz");
        q.cmd("setenv rdsize ${filesize}");
        q.cmd("load virtio 0 ${kernel_addr_r} /Image");
        q.send("booti ${kernel_addr_r} ${ramdisk_addr_r}:${rdsize}");
        q.expect_within("Starting kernel", T);
        let r = q.init_report(T);
        eprintln!("[{name}] kernel {n}: {r:?}");
        assert_eq!(r["nproc"], "4", "kernel {n}: {r:?}");
        assert_eq!(r["enable-method"], "psci", "kernel {n}: {r:?}");
        assert_eq!(r["kvm"], "yes", "kernel {n}: KVM must be available: {r:?}");
        match &first {
            None => first = Some(r.clone()),
            Some(f) => {
                for key in ["memreserve", "reserved-memory", "memtotal", "el"] {
                    assert_eq!(f[key], r[key], "kernel {n}: {key} drifted");
                }
            }
        }
        q.expect_within("initramfs# ", T);
        if n == 0 {
            hotplug(&mut q, 4, 3);
        }
        if n < 3 {
            q.send("kexec -l /loader.bin --dtb=/sys/firmware/fdt && kexec -e");
        }
    }
    q.send("poweroff -f");
    if !q.wait_exit(T) {
        q.fail("poweroff in Linux did not end QEMU");
    }
}

/// The same firmware with 8 CPUs on GICv3, and `cpu_method=spin-table` in this mode: the
/// loader gathers the CPUs from the resident part (CPU_ON) into its own pen and hands them to
/// Linux through spin-table; Linux comes up with all 8.
#[test]
fn el3_psci_smp8_gicv3_spin_table() {
    let name = "el3-psci-smp8-gicv3";
    let opts = el3_opts(name, 8, Some(3));
    let mut q = Qemu::start(name, &opts);
    expect_resident(&mut q, 8);
    q.typed_linux_boot("spin-table", "console=ttyAMA0", T);
    let r = q.init_report(T);
    eprintln!("[{name}] {r:?}");
    assert_eq!(r["nproc"], "8", "{r:?}");
    assert_eq!(r["enable-method"], "spin-table", "{r:?}");
    assert_eq!(r["kvm"], "yes", "{r:?}");
    q.expect_within("initramfs# ", T);
    q.send("poweroff -f");
    if !q.wait_exit(T) {
        q.fail("poweroff did not end QEMU");
    }
}

/// Bad PSCI calls from the test payload (tests/payload/src/probe.rs), booted by the loader
/// with `cpu_method=psci` (every secondary handed back to the resident part): CPU_ON of an
/// unknown MPIDR, of the caller (already on), with an entry point in secure RAM, outside RAM
/// and in the secure flash, CPU_OFF of the last CPU, unknown function IDs — each gets the
/// spec's error; then every secondary is turned on (at EL2) and off twice, and SYSTEM_OFF ends
/// QEMU: the resident part kept working.
fn bad_calls(name: &str, smp: u32, gic: Option<u32>) {
    let dir = scratch(name);
    let img = dir.join("disk.img");
    make_fat_disk(
        &img,
        &DiskSpec {
            table: Table::Mbr,
            fat: 32,
            size_mib: 40,
            files: vec![(
                "/payload.bin".to_string(),
                Source::Host(qemu_harness::payload_bin()),
            )],
            label: None,
        },
    )
    .unwrap();
    let mut opts = Opts {
        bios: true,
        smp,
        gic,
        ..Opts::default()
    };
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    expect_resident(&mut q, smp);
    q.expect_within("autoboot", T);
    q.send_raw(b" ");
    q.expect_within("=> ", T);
    q.cmd("setenv cpu_method psci");
    q.cmd("setenv bootargs 'payload.psci=probe payload.next=poweroff'");
    q.cmd("load virtio 0 ${kernel_addr_r} /payload.bin");
    q.send("booti ${kernel_addr_r}");
    let out = q.expect_within("PAYLOAD: poweroff", T);
    if out.contains("PAYLOAD: FAIL") || !out.contains("PAYLOAD: PASS psci probe") {
        q.fail("the PSCI probe failed");
    }
    let n = smp - 1;
    for want in [
        "ok psci PSCI_VERSION: 0x10001".to_string(),
        "ok psci unknown function 0x8400001f: NOT_SUPPORTED".into(),
        "ok psci unknown function 0x82000000: NOT_SUPPORTED".into(),
        "ok psci CPU_ON unknown MPIDR 0xff: INVALID_PARAMETERS".into(),
        "ok psci CPU_ON 0x0 (the caller, already on): ALREADY_ON".into(),
        "ok psci CPU_ON 0x1 entry 0xe001000 (secure RAM): INVALID_ADDRESS".into(),
        "ok psci CPU_ON 0x1 entry 0x80000000 (outside RAM): INVALID_ADDRESS".into(),
        "ok psci CPU_OFF of the last CPU: DENIED".into(),
        format!("ok psci round 1: {n} CPUs on at EL2 and off again"),
        format!("PASS psci probe ({} CPU_ON/CPU_OFF cycles)", 2 * n),
    ] {
        if !out.contains(&want) {
            q.fail(&format!("no {want:?}"));
        }
    }
    if !q.wait_exit(T) {
        q.fail("SYSTEM_OFF did not end QEMU");
    }
}

#[test]
fn el3_psci_bad_calls_smp4() {
    bad_calls("el3-psci-bad-calls", 4, None);
}

#[test]
fn el3_psci_bad_calls_smp8_gicv3() {
    bad_calls("el3-psci-bad-calls-gicv3", 8, Some(3));
}

/// `reset` at the prompt is PSCI SYSTEM_RESET: the resident part drives the secure
/// `gpio-restart` line, QEMU resets every CPU into flash at EL3 again (RAM, with the previous
/// boot's hold words and pen, survives), and the whole start-up repeats: every CPU reaches
/// the new resident pen, the loader reaches its prompt at EL2 with every secondary; twice.
#[test]
fn el3_psci_system_reset_starts_again() {
    let name = "el3-psci-reset";
    let opts = Opts {
        bios: true,
        smp: 4,
        reboot: true,
        ..Opts::default()
    };
    let mut q = Qemu::start(name, &opts);
    for boot in 0..3 {
        expect_resident(&mut q, 4);
        let banner = q.expect_within("autoboot", T);
        if !banner.contains("parkboot 0.1.0 (EL2)") || !banner.contains("CPUs: 4 in DT, 3 in pen") {
            q.fail(&format!(
                "boot {boot}: no EL2 loader with 3 CPUs in its pen"
            ));
        }
        q.send_raw(b" ");
        q.expect_within("=> ", T);
        if boot < 2 {
            q.send("reset");
        }
    }
    q.send("poweroff");
    if !q.wait_exit(T) {
        q.fail("poweroff did not end QEMU");
    }
}
