//! Bus translation, GIC, timer and PCI host nodes.

use super::*;
use crate::dt::cells::gic_intid;

#[test]
fn simple_bus_translation() {
    let soc = n(
        "soc",
        vec![
            pb("compatible", b"simple-bus\0"),
            pc("#address-cells", &[1]),
            pc("#size-cells", &[1]),
            pc(
                "ranges",
                &[
                    0x0,
                    0x0,
                    0x1000_0000,
                    0x100_0000,
                    0x2000_0000,
                    0x1,
                    0x0,
                    0x1000,
                ],
            ),
        ],
        vec![
            n(
                "serial@1000",
                vec![pb("compatible", b"ns16550a\0"), pc("reg", &[0x1000, 0x100])],
                vec![],
            ),
            n(
                "outside@5000000",
                vec![pc("reg", &[0x500_0000, 0x100])],
                vec![],
            ),
            n(
                "hi@20000000",
                vec![pc("reg", &[0x2000_0800, 0x100])],
                vec![],
            ),
            n(
                "inner",
                vec![
                    pc("#address-cells", &[1]),
                    pc("#size-cells", &[1]),
                    pc("ranges", &[0x0, 0x20_0000, 0x1_0000]),
                ],
                vec![n(
                    "virtio@100",
                    vec![
                        pb("compatible", b"virtio,mmio\0"),
                        pc("reg", &[0x100, 0x200]),
                    ],
                    vec![],
                )],
            ),
            n(
                "i2c@3000",
                vec![
                    pc("reg", &[0x3000, 0x100]),
                    pc("#address-cells", &[1]),
                    pc("#size-cells", &[0]),
                ],
                vec![n("eeprom@50", vec![pc("reg", &[0x50])], vec![])],
            ),
        ],
    );
    let chosen = n(
        "chosen",
        vec![ps("stdout-path", "/soc/serial@1000:9600")],
        vec![],
    );
    let info = parse_tree(&tree(vec![soc, chosen]));
    let get = |p: &str| info.mmio.iter().find(|m| m.path == p).map(|m| m.region);
    assert_eq!(
        get("/soc/serial@1000"),
        Some(Region::new(0x1000_1000, 0x100))
    );
    assert_eq!(
        get("/soc/hi@20000000"),
        Some(Region::new(0x1_0000_0800, 0x100))
    );
    assert_eq!(
        get("/soc/inner/virtio@100"),
        Some(Region::new(0x1020_0100, 0x200))
    );
    assert_eq!(get("/soc/outside@5000000"), None);
    assert_eq!(get("/soc/i2c@3000"), Some(Region::new(0x1000_3000, 0x100)));
    assert_eq!(get("/soc/i2c@3000/eeprom@50"), None);
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::Untranslatable { addr: 0x500_0000 }
    )));
    assert_eq!(
        info.virtio_mmio,
        [VirtioMmio {
            path: "/soc/inner/virtio@100".into(),
            region: Region::new(0x1020_0100, 0x200)
        }]
    );
    let con = info.console.unwrap();
    assert_eq!(con.path, "/soc/serial@1000");
    assert_eq!(con.reg, Some(Region::new(0x1000_1000, 0x100)));
    assert_eq!(con.options.as_deref(), Some("9600"));
    assert_eq!(con.compatible, ["ns16550a"]);
}

#[test]
fn gic_v2_timer_and_disabled_devices() {
    let t = tree(vec![
        n(
            "interrupt-controller@2c001000",
            vec![
                pb("compatible", b"arm,gic-400\0"),
                pc(
                    "reg",
                    &[0, 0x2c00_1000, 0, 0x1000, 0, 0x2c00_2000, 0, 0x2000],
                ),
            ],
            vec![],
        ),
        n(
            "timer",
            vec![
                pb("compatible", b"arm,armv8-timer\0"),
                pc("clock-frequency", &[24_000_000]),
                // secure phys is an SPI here (not a PPI: None), then 14, 11, 10
                pc(
                    "interrupts",
                    &[0, 13, 4, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08],
                ),
            ],
            vec![],
        ),
        n(
            "virtio@a000000",
            vec![
                pb("compatible", b"virtio,mmio\0"),
                pc("reg", &[0, 0x0a00_0000, 0, 0x200]),
                ps("status", "disabled"),
            ],
            vec![],
        ),
        n(
            "virtio@a000200",
            vec![
                pb("compatible", b"virtio,mmio\0"),
                pc("reg", &[0, 0x0a00_0200, 0, 0x200]),
                ps("status", "okay"),
            ],
            vec![],
        ),
    ]);
    let info = parse_tree(&t);
    let gic = info.gic.clone().unwrap();
    assert_eq!(gic.version, GicVersion::V2);
    assert_eq!(gic.regs.len(), 2);
    assert_eq!(gic.distributor(), Some(Region::new(0x2c00_1000, 0x1000)));
    assert_eq!(gic.cpu_interface(), Some(Region::new(0x2c00_2000, 0x2000)));
    assert!(gic.redistributors().is_empty());
    assert_eq!(info.timer_frequency, Some(24_000_000));
    assert_eq!(
        info.timer_irqs,
        Some(TimerIrqs {
            secure_phys: None,
            nonsecure_phys: Some(30),
            virt: Some(27),
            hyp_phys: Some(26),
        })
    );
    assert_eq!(info.virtio_mmio.len(), 1);
    assert_eq!(info.virtio_mmio[0].region.base, 0x0a00_0200);
    let dis = info
        .mmio
        .iter()
        .find(|m| m.path == "/virtio@a000000")
        .unwrap();
    assert!(!dis.enabled);
    assert!(info.to_string().contains("timer: 24000000 Hz"));
}

#[test]
fn gic_intids() {
    let c = |v: &[u32]| cells(v);
    assert_eq!(gic_intid(&c(&[0, 1, 4])), Some(33));
    assert_eq!(gic_intid(&c(&[1, 14, 0xf04])), Some(30));
    assert_eq!(gic_intid(&c(&[1, 16, 4])), None);
    assert_eq!(gic_intid(&c(&[0, 988, 4])), None);
    assert_eq!(gic_intid(&c(&[2, 1, 4])), None);
    assert_eq!(gic_intid(&c(&[0, 1])), None);
    assert_eq!(gic_intid(&c(&[0, 1, 4, 0, 2, 4])), Some(33));
}

#[test]
fn timer_interrupts_and_redistributor_regions_are_checked() {
    let t = tree(vec![
        n(
            "intc@8000000",
            vec![
                pb("compatible", b"arm,gic-v3\0"),
                pc("#redistributor-regions", &[2]),
                pc(
                    "reg",
                    &[
                        0,
                        0x0800_0000,
                        0,
                        0x1_0000,
                        0,
                        0x080a_0000,
                        0,
                        0xf6_0000,
                        0,
                        0x1000_0000,
                        0,
                        0x4_0000,
                        0,
                        0x0801_0000,
                        0,
                        0x1_0000,
                    ],
                ),
            ],
            vec![],
        ),
        n(
            "timer",
            vec![
                pb("compatible", b"arm,armv8-timer\0"),
                // not whole triples: ignored with a warning
                pc("interrupts", &[1, 13, 4, 1]),
            ],
            vec![],
        ),
    ]);
    let info = parse_tree(&t);
    let gic = info.gic.clone().unwrap();
    assert_eq!(gic.redist_regions, 2);
    assert_eq!(
        gic.redistributors(),
        [
            Region::new(0x080a_0000, 0xf6_0000),
            Region::new(0x1000_0000, 0x4_0000)
        ]
    );
    assert_eq!(info.timer_irqs, None);
    assert!(info
        .warnings
        .iter()
        .any(|w| w.to_string().contains("interrupts")));

    // More redistributor regions than `reg` entries: clamped, never out of bounds.
    let t = tree(vec![n(
        "intc@8000000",
        vec![
            pb("compatible", b"arm,gic-v3\0"),
            pc("#redistributor-regions", &[9]),
            pc(
                "reg",
                &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000],
            ),
        ],
        vec![],
    )]);
    let gic = parse_tree(&t).gic.unwrap();
    assert_eq!(gic.redistributors(), [Region::new(0x080a_0000, 0xf6_0000)]);
}

#[test]
fn pci_host_bus_range_and_windows() {
    let mk = |bus_range: Option<Vec<u32>>, ecam_size: u32| {
        let mut props = vec![
            pb("compatible", b"pci-host-ecam-generic\0"),
            ps("device_type", "pci"),
            pc("#address-cells", &[3]),
            pc("#size-cells", &[2]),
            pc("reg", &[0x40, 0x1000_0000, 0, ecam_size]),
            pc(
                "ranges",
                &[
                    0x0100_0000,
                    0,
                    0,
                    0,
                    0x3eff_0000,
                    0,
                    0x1_0000, // io
                    0x4200_0000,
                    0,
                    0x1000_0000,
                    0,
                    0x1000_0000,
                    0,
                    0x1000_0000, // prefetchable mem32
                    0x0000_0000,
                    0,
                    0,
                    0,
                    0x5000_0000,
                    0,
                    0x1000, // config: ignored
                ],
            ),
        ];
        if let Some(br) = bus_range {
            props.push(pc("bus-range", &br));
        }
        parse_tree(&tree(vec![n(
            "pcie@10000000",
            props,
            vec![n("dev@0,0", vec![pc("reg", &[0, 0, 0, 0, 0])], vec![])],
        )]))
    };
    let info = mk(Some(vec![0, 0xff]), 0x1000_0000);
    let h = &info.pci_hosts[0];
    assert_eq!((h.bus_start, h.bus_end), (0, 255));
    assert_eq!(h.windows.len(), 2);
    assert!(h.windows[1].prefetchable);
    assert_eq!(h.windows[1].space, PciSpace::Mem32);
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::BadPciWindow { phys_hi: 0 }
    )));
    // PCI child nodes are not MMIO
    assert!(info.mmio.iter().all(|m| !m.path.contains("dev@0,0")));
    let small = mk(None, 0x40_0000);
    assert_eq!(
        (small.pci_hosts[0].bus_start, small.pci_hosts[0].bus_end),
        (0, 3)
    );
    assert!(has_warning(&small, |k| matches!(
        k,
        WarningKind::EcamTooSmall { buses: 4, .. }
    )));
    let bad = mk(Some(vec![5, 2]), 0x1000_0000);
    assert_eq!(
        (bad.pci_hosts[0].bus_start, bad.pci_hosts[0].bus_end),
        (0, 255)
    );
    assert!(has_warning(&bad, |k| matches!(
        k,
        WarningKind::BadBusRange { start: 5, end: 2 }
    )));
    let tiny = mk(None, 0x1000);
    assert!(tiny.pci_hosts.is_empty());
}
