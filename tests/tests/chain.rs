//! Chain-boot: loader → Debian Linux → `kexec -l loader.bin` → loader →
//! Linux … in one QEMU run, with every CPU each time and no drift in
//! MemTotal, the /memreserve/ table or the CPU count.
use qemu_harness::{scratch, Opts, Qemu};
use std::collections::HashMap;
use std::time::Duration;
use xtask::disk::{make_fat_disk, DiskSpec, Source, Table};

const T: Duration = Duration::from_secs(120);

/// One disk with the kernel, an initramfs that carries loader.bin, and
/// optionally a `/parkboot.env`.
fn chain_disk(name: &str, env: Option<&str>) -> std::path::PathBuf {
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
            files: [
                ("/Image".to_string(), Source::Host(a.image.clone())),
                ("/initramfs.cpio.gz".to_string(), Source::Host(rd)),
            ]
            .into_iter()
            .chain(env.map(|e| {
                (
                    "/parkboot.env".to_string(),
                    Source::Bytes(e.as_bytes().to_vec()),
                )
            }))
            .collect(),
            label: None,
        },
    )
    .unwrap();
    img
}

/// `plan[n]` = (cpu_method, extra bootargs, expected nproc) for kernel n.
fn chain(name: &str, opts: Opts, plan: &[(&str, &str, &str)], each: impl FnMut(&mut Qemu, &str)) {
    chain_env(name, None, KEXEC_L, opts, plan, each)
}

/// How each kernel kexecs the next loader: kexec_load with the DT it was
/// given, or kexec_file_load (`-s`: the kernel builds the next DT itself).
const KEXEC_L: &str = "kexec -l /loader.bin --dtb=/sys/firmware/fdt && kexec -e";
const KEXEC_S: &str = "kexec -s -l /loader.bin && kexec -e";

/// In the initramfs shell: what `cmd` prints. The console echoes (and
/// wraps) the typed line, so the output is fenced by markers that the echo
/// does not contain (`B42B` is typed as `B$((6*7))B`).
fn sh(q: &mut Qemu, cmd: &str) -> String {
    q.send(&format!("echo B$((6*7))B; {cmd}; echo E$((6*7))E"));
    let out = q.expect_within("E42E", T).replace('\r', "");
    q.expect("initramfs# ");
    let body = out.rsplit_once("B42B\n").map_or("", |x| x.1);
    body.trim_end_matches("E42E").trim().to_string()
}

/// What the running kernel's DT says about memory: every `/memory*` node's
/// `reg`, every `/reserved-memory` child's name and `reg` (hex), and the
/// DT's totalsize.
fn dt_memory(q: &mut Qemu) -> [String; 3] {
    let dt = "/sys/firmware/devicetree/base";
    let memory = sh(
        q,
        &format!(
            "for f in {dt}/memory*/reg; do echo \"$f=$(od -An -v -tx1 $f | tr -d ' \\n')\"; done"
        ),
    );
    let reserved = sh(
        q,
        &format!("find {dt}/reserved-memory -name reg 2>/dev/null | sort | while read f; do echo \"$f=$(od -An -v -tx1 $f | tr -d ' \\n')\"; done"),
    );
    let size = sh(q, "od -An -tx1 -j4 -N4 /sys/firmware/fdt | tr -d ' \\n'");
    [memory, reserved, size]
}

/// The output of the loader that booted the running kernel: from its
/// banner (the last one in the transcript) on.
fn this_loader(t: &str) -> &str {
    let at = t
        .rfind("\nparkboot 0.1.0 (EL")
        .expect("a loader banner in the transcript");
    &t[at + 1..]
}

/// [`chain`] with a `/parkboot.env` on the disk and a `kexec` command.
fn chain_env(
    name: &str,
    env: Option<&str>,
    kexec: &str,
    opts: Opts,
    plan: &[(&str, &str, &str)],
    mut each: impl FnMut(&mut Qemu, &str),
) {
    let img = chain_disk(name, env);
    let mut opts = opts;
    opts.extra.extend(Qemu::mmio_disk(&img, "d0"));
    let mut q = Qemu::start(name, &opts);
    let mut first: Option<(HashMap<String, String>, [String; 3])> = None;
    let mut by_config: HashMap<String, String> = HashMap::new();
    let mut dt_size: HashMap<String, (String, String)> = HashMap::new();
    for (n, (method, extra, want)) in plan.iter().enumerate() {
        // A kexec that fails says so at once (e.g. kexec -s on a kernel
        // without CONFIG_KEXEC_FILE: "syscall kexec_file_load not available").
        let (i, _) = q.expect_any(&["parkboot 0.1.0", "initramfs# "], T);
        if i == 1 {
            q.fail(&format!("kernel {n}: the kexec failed"));
        }
        // nokaslr: the same configuration places the kernel the same way,
        // so MemTotal can be compared exactly.
        let args = format!("console=ttyAMA0 nokaslr {extra}");
        q.typed_linux_boot(method, args.trim(), T);
        let r = q.init_report(T);
        eprintln!("[{name}] kernel {n}: {r:?}");
        assert_eq!(&r["nproc"], want, "kernel {n}: {r:?}");
        q.expect("initramfs# ");
        let dt = dt_memory(&mut q);
        eprintln!("[{name}] kernel {n}: DT memory {dt:?}");
        assert_eq!(
            dt[0],
            "/sys/firmware/devicetree/base/memory@40000000/reg=00000000400000000000000040000000",
            "kernel {n}: /memory"
        );
        // Reservations, EL, /memory and /reserved-memory never change from
        // one kernel to the next.
        match &first {
            None => first = Some((r.clone(), dt.clone())),
            Some((f, fdt)) => {
                for key in ["memreserve", "el"] {
                    assert_eq!(f[key], r[key], "kernel {n}: {key} drifted");
                }
                assert_eq!(fdt[0], dt[0], "kernel {n}: /memory drifted");
                assert_eq!(fdt[1], dt[1], "kernel {n}: /reserved-memory drifted");
            }
        }
        // MemTotal: exactly equal between kernels of one boot configuration
        // (per-CPU areas cost RAM, so the CPU count is part of it); a leak of
        // one 4 KiB page per cycle shows at once. The DT's size and the
        // kernel's reserved ranges (/proc/iomem) too, from the second kernel on (the first loader got QEMU's DT, the others one a
        // kernel handed on; bootargs are part of the configuration).
        let config = format!("{method} {extra} {}", r["nproc"]);
        match by_config.get(&config) {
            None => {
                by_config.insert(config.clone(), r["memtotal"].clone());
            }
            Some(m) => assert_eq!(
                m, &r["memtotal"],
                "kernel {n} ({config}): MemTotal drifted (kB)"
            ),
        }
        if n >= 1 {
            let now = (dt[2].clone(), r["iomem-reserved"].clone());
            match dt_size.get(&config) {
                None => {
                    dt_size.insert(config, now);
                }
                Some((size, iomem)) => {
                    assert_eq!(size, &now.0, "kernel {n} ({config}): the DT's size drifted");
                    assert_eq!(
                        iomem, &now.1,
                        "kernel {n} ({config}): /proc/iomem's reserved ranges drifted"
                    );
                }
            }
        }
        let t = q.transcript();
        each(&mut q, this_loader(&t));
        if n + 1 < plan.len() {
            q.send(kexec);
        }
    }
}

#[test]
fn psci_chain_four_kernels() {
    let p = ("psci", "", "4");
    chain("chain-psci", Opts::default(), &[p, p, p, p], |_, _| {});
}

#[test]
fn psci_chain_gicv3() {
    let p = ("psci", "", "4");
    chain(
        "chain-psci-gicv3",
        Opts {
            gic: Some(3),
            ..Opts::default()
        },
        &[p, p, p],
        |_, l| {
            let cpus = l.lines().find(|x| x.starts_with("CPUs: ")).unwrap_or("");
            assert!(
                cpus.starts_with("CPUs: 4 in DT, 3 in pen at ")
                    && cpus.trim_end().ends_with("waiting with wfi+gicv3"),
                "{cpus}"
            );
        },
    );
}

/// kexec_file_load (`kexec -s`): the kernel checks the Image itself and
/// builds the next loader's DT from its own.
#[test]
#[ignore = "the test kernel (Debian's cloud-arm64, build/kernel) has CONFIG_KEXEC_FILE unset: \
            kexec -s says \"syscall kexec_file_load not available\"; needs a kernel with it"]
fn psci_chain_kexec_file_load() {
    let p = ("psci", "", "4");
    chain_env(
        "chain-kexec-file",
        None,
        KEXEC_S,
        Opts::default(),
        &[p, p, p],
        |_, _| {},
    );
}

#[test]
fn psci_chain_vhe_host() {
    // -cpu max has VHE: the kernel runs at EL2 with E2H set and kexecs the
    // loader with EL2 still configured for itself.
    let p = ("psci", "", "4");
    chain(
        "chain-psci-vhe",
        Opts {
            cpu: "max".into(),
            ..Opts::default()
        },
        &[p, p, p],
        |q, _| {
            q.send("dmesg | grep -c 'Virtualization Host Extensions'");
            let out = q.expect("initramfs# ");
            assert!(out.contains("\n1"), "this kernel must run with VHE: {out}");
        },
    );
}

#[test]
fn spin_table_chain_reclaims_cpus_from_the_old_pen() {
    // Stock Linux can kexec from a spin-table boot only when it knows one
    // CPU (nr_cpus=1): the secondaries never leave the loader's pen. Each
    // next loader finds the old pen through the DT, takes its CPUs over and
    // drops it; the last kernel comes up with every CPU via spin-table.
    let one = ("spin-table", "nr_cpus=1", "1");
    chain(
        "chain-spin-table",
        Opts::default(),
        &[one, one, one, ("spin-table", "", "4")],
        |_, l| {
            let last = l.rfind("CPUs: ").map(|i| &l[i..]).unwrap_or("");
            assert!(
                last.starts_with("CPUs: 4 in DT, 3 in pen"),
                "loader must hold 3 CPUs: {}",
                &last[..last.len().min(120)]
            );
        },
    );
}

#[test]
fn psci_chain_el1() {
    // No EL2 (virtualization=off): the loader, the kernels and every kexec'd
    // loader run at EL1; PSCI goes through hvc to QEMU.
    let p = ("psci", "", "4");
    chain(
        "chain-psci-el1",
        Opts {
            el2: false,
            ..Opts::default()
        },
        &[p, p, p],
        |_, l| {
            assert!(
                l.starts_with("parkboot 0.1.0 (EL1)"),
                "{}",
                &l[..l.len().min(60)]
            );
        },
    );
}

#[test]
fn spin_table_chain_cpus_rest_in_firmware() {
    // pen_gather=boot: every kexec'd loader takes the three secondaries over
    // from the old pen, lets them wait in firmware (PSCI CPU_OFF) while it
    // sits at the prompt, and booti recalls them into the pen; the last
    // kernel comes up with every CPU via spin-table.
    let one = ("spin-table", "nr_cpus=1", "1");
    let mut n = 0;
    chain_env(
        "chain-spin-table-rest",
        Some("pen_gather=boot\n"),
        KEXEC_L,
        Opts::default(),
        &[one, one, ("spin-table", "", "4")],
        |_, l| {
            if n > 0 {
                assert!(
                    l.contains("CPUs: 4 in DT, 3 resting in firmware until booti"),
                    "kernel {n}: this loader must rest the CPUs"
                );
            }
            let last = l.rfind("CPUs: ").map(|i| &l[i..]).unwrap_or("");
            if n > 0 {
                assert!(
                    last.starts_with("CPUs: 4 in DT, 3 in pen"),
                    "kernel {n}: booti must recall 3 CPUs: {}",
                    &last[..last.len().min(120)]
                );
            }
            n += 1;
        },
    );
}
