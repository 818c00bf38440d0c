//! QEMU-generated DTBs parsed end to end.

use super::*;

// ---- fixtures ----

#[test]
fn qemu_virt_el2_gicv3_smp4() {
    let info = parse(VIRT_EL2).unwrap();
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    assert_eq!(info.model.as_deref(), Some("linux,dummy-virt"));
    assert_eq!(info.compatible, ["linux,dummy-virt"]);
    assert!(info.is_compatible("linux,dummy-virt"));
    assert_eq!(
        info.root_cells,
        CellSizes {
            address: 2,
            size: 2
        }
    );
    assert_eq!(info.memory, [Region::new(0x4000_0000, 0x4000_0000)]);
    assert!(info.memreserve.is_empty());
    assert!(info.reserved_memory.is_empty());
    assert_eq!(info.cpus_address_cells, 1);
    assert_eq!(info.cpus.len(), 4);
    for (i, c) in info.cpus.iter().enumerate() {
        assert_eq!(c.mpidr, i as u64);
        assert_eq!(c.path, format!("/cpus/cpu@{i}"));
        assert_eq!(c.name(), format!("cpu@{i}"));
        assert_eq!(c.enable_method, Some(EnableMethod::Psci));
        assert_eq!(c.release_addr, Prop64::Absent);
        assert_eq!(c.status, Status::Okay);
    }
    assert_eq!(info.cpu_by_mpidr(0x8000_0002).map(|c| c.mpidr), Some(2));
    let psci = info.psci.clone().unwrap();
    assert_eq!(psci.version, PsciVersion::V1_0);
    assert_eq!(psci.conduit, Conduit::Smc);
    assert_eq!(psci.cpu_on, Some(0xc400_0003));
    assert_eq!(psci.cpu_off, Some(0x8400_0002));
    let con = info.console.clone().unwrap();
    assert_eq!(con.path, "/pl011@9000000");
    assert_eq!(con.reg, Some(Region::new(0x0900_0000, 0x1000)));
    assert_eq!(con.compatible, ["arm,pl011", "arm,primecell"]);
    assert_eq!(con.options, None);
    assert_eq!(info.chosen.stdout_path.as_deref(), Some("/pl011@9000000"));
    assert_eq!(info.chosen.bootargs, None);
    assert_eq!(info.chosen.initrd, None);
    assert_eq!(info.virtio_mmio.len(), 32);
    let mut bases: Vec<u64> = info.virtio_mmio.iter().map(|v| v.region.base).collect();
    bases.sort_unstable();
    for (i, b) in bases.iter().enumerate() {
        assert_eq!(*b, 0x0a00_0000 + 0x200 * i as u64);
    }
    assert!(info.virtio_mmio.iter().all(|v| v.region.size == 0x200));
    assert_eq!(info.pci_hosts.len(), 1);
    let pci = &info.pci_hosts[0];
    assert_eq!(pci.path, "/pcie@10000000");
    assert_eq!(pci.ecam, Region::new(0x40_1000_0000, 0x1000_0000));
    assert_eq!((pci.bus_start, pci.bus_end), (0, 255));
    assert_eq!(
        pci.windows,
        [
            PciWindow {
                space: PciSpace::Io,
                prefetchable: false,
                pci_addr: 0,
                cpu_addr: 0x3eff_0000,
                size: 0x1_0000
            },
            PciWindow {
                space: PciSpace::Mem32,
                prefetchable: false,
                pci_addr: 0x1000_0000,
                cpu_addr: 0x1000_0000,
                size: 0x2eff_0000
            },
            PciWindow {
                space: PciSpace::Mem64,
                prefetchable: false,
                pci_addr: 0x80_0000_0000,
                cpu_addr: 0x80_0000_0000,
                size: 0x80_0000_0000
            },
        ]
    );
    let gic = info.gic.clone().unwrap();
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.path, "/intc@8000000");
    assert_eq!(
        gic.regs,
        [
            Region::new(0x0800_0000, 0x1_0000),
            Region::new(0x080a_0000, 0xf6_0000)
        ]
    );
    assert_eq!(gic.distributor(), Some(Region::new(0x0800_0000, 0x1_0000)));
    assert_eq!(gic.cpu_interface(), None);
    assert_eq!(gic.redistributors(), [Region::new(0x080a_0000, 0xf6_0000)]);
    assert_eq!(info.timer_frequency, None);
    // QEMU: <1 13 0x304>, <1 14 0x304>, <1 11 0x304>, <1 10 0x304>.
    assert_eq!(
        info.timer_irqs,
        Some(TimerIrqs {
            secure_phys: Some(29),
            nonsecure_phys: Some(30),
            virt: Some(27),
            hyp_phys: Some(26),
        })
    );
    // MMIO: devices at the root and the ITS below the GIC (translated through `ranges;`).
    let find = |p: &str| {
        info.mmio
            .iter()
            .filter(|m| m.path == p)
            .map(|m| m.region)
            .collect::<Vec<_>>()
    };
    assert_eq!(find("/pl011@9000000"), [Region::new(0x0900_0000, 0x1000)]);
    assert_eq!(
        find("/intc@8000000/its@8080000"),
        [Region::new(0x0808_0000, 0x2_0000)]
    );
    assert_eq!(
        find("/flash@0"),
        [
            Region::new(0, 0x400_0000),
            Region::new(0x400_0000, 0x400_0000)
        ]
    );
    assert_eq!(find("/fw-cfg@9020000"), [Region::new(0x0902_0000, 0x18)]);
    assert!(find("/memory@40000000").is_empty());
    assert!(info.mmio.iter().all(|m| !m.path.starts_with("/cpus")));
    let its = info
        .mmio
        .iter()
        .find(|m| m.path == "/intc@8000000/its@8080000")
        .unwrap();
    assert_eq!(its.name(), "its@8080000");
    assert_eq!(its.compatible.as_deref(), Some("arm,gic-v3-its"));
    assert!(its.enabled);
    let windows: Vec<_> = info.mmio.iter().filter_map(|m| m.pci_window).collect();
    assert_eq!(windows, [PciSpace::Io, PciSpace::Mem32, PciSpace::Mem64]);
    let summary = info.to_string();
    assert!(
        summary.contains("memory: 0x40000000..0x80000000 (1024 MiB)"),
        "{summary}"
    );
    assert!(summary.contains("psci: V1_0 via Smc"), "{summary}");
}

#[test]
fn qemu_virt_el1() {
    let info = parse(VIRT_EL1).unwrap();
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    assert_eq!(info.cpus.len(), 1);
    assert_eq!(info.psci.as_ref().map(|p| p.conduit), Some(Conduit::Hvc));
    let gic = info.gic.unwrap();
    assert_eq!(gic.version, GicVersion::V2);
    assert_eq!(
        gic.regs,
        [
            Region::new(0x0800_0000, 0x1_0000),
            Region::new(0x0801_0000, 0x1_0000)
        ]
    );
}

#[test]
fn spin_table_fixture() {
    let info = parse(VIRT_SPIN).unwrap();
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    assert_eq!(
        info.memreserve,
        [
            Region::new(0x400f_f000, 0x1000),
            Region::new(0x7ff0_0000, 0x10_0000)
        ]
    );
    assert_eq!(
        info.reserved_memory,
        [ReservedMemory {
            name: "secmon@7fe00000".into(),
            region: Region::new(0x7fe0_0000, 0x10_0000),
            no_map: true,
            reusable: false
        }]
    );
    assert_eq!(info.cpus.len(), 4);
    for (i, c) in info.cpus.iter().enumerate() {
        assert_eq!(c.enable_method, Some(EnableMethod::SpinTable));
        assert_eq!(c.release_addr, Prop64::Value(0x400f_ff00 + 8 * i as u64));
        if i == 0 {
            assert_eq!(c.park_addr, Prop64::Absent);
        } else {
            assert_eq!(c.park_addr.value(), Some(0x400f_fe00 + 8 * i as u64));
        }
    }
    let con = info.console.clone().unwrap();
    assert_eq!(con.path, "/pl011@9000000");
    assert_eq!(con.options.as_deref(), Some("115200n8"));
    assert_eq!(con.reg.map(|r| r.base), Some(0x0900_0000));
    assert_eq!(
        info.chosen.bootargs.as_deref(),
        Some("console=ttyAMA0 root=/dev/vda1 nr_cpus=1")
    );
    assert_eq!(
        info.chosen.initrd,
        Some(Region::new(0x4820_0000, 0x80_0000))
    );
    // reserved-memory and aliases are not devices
    assert!(info
        .mmio
        .iter()
        .all(|m| !m.path.starts_with("/reserved-memory")));
    let s = info.to_string();
    assert!(s.contains("release 0x400fff08 park 0x400ffe08"), "{s}");
    assert!(
        s.contains("reserved-memory: secmon@7fe00000 0x7fe00000..0x7ff00000 no-map"),
        "{s}"
    );
}
