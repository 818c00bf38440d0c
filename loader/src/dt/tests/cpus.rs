//! `/cpus` and `/psci`.

use super::*;

// ---- built trees ----

#[test]
fn one_cell_release_addr_is_flagged() {
    let t = tree(vec![cpus(vec![
        cpu(
            0,
            vec![
                ps("enable-method", "spin-table"),
                pc("cpu-release-addr", &[0, 0x4000_fff8]),
            ],
        ),
        cpu(
            1,
            vec![
                ps("enable-method", "spin-table"),
                pc("cpu-release-addr", &[0x4000_fff0]),
            ],
        ),
        cpu(
            2,
            vec![
                ps("enable-method", "spin-table"),
                pc("cpu-release-addr", &[1, 2, 3]),
            ],
        ),
        cpu(3, vec![ps("enable-method", "spin-table")]),
    ])]);
    let info = parse_tree(&t);
    assert_eq!(info.cpus[0].release_addr, Prop64::Value(0x4000_fff8));
    assert_eq!(info.cpus[1].release_addr, Prop64::OneCell(0x4000_fff0));
    assert_eq!(info.cpus[1].release_addr.value(), None);
    assert_eq!(info.cpus[2].release_addr, Prop64::BadLength(12));
    assert_eq!(info.cpus[3].release_addr, Prop64::Absent);
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::OneCell {
            prop: "cpu-release-addr",
            value: 0x4000_fff0
        }
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::SpinTableWithoutReleaseAddr
    )));
    let w = info
        .warnings
        .iter()
        .find(|w| matches!(w.kind, WarningKind::OneCell { .. }))
        .unwrap();
    assert_eq!(w.path, "/cpus/cpu@1");
    assert_eq!(
        w.to_string(),
        "/cpus/cpu@1: cpu-release-addr is one 32-bit cell (0x4000fff0); it must be 64-bit (two cells), Linux fails to read it"
    );
}

#[test]
fn cpus_with_two_address_cells_and_problems() {
    let cpus = n(
        "cpus",
        vec![pc("#address-cells", &[2]), pc("#size-cells", &[0])],
        vec![
            n(
                "cpu@0",
                vec![
                    ps("device_type", "cpu"),
                    pc("reg", &[0, 0]),
                    ps("enable-method", "psci"),
                ],
                vec![],
            ),
            n(
                "cpu@10100",
                vec![
                    ps("device_type", "cpu"),
                    pc("reg", &[1, 0x100]),
                    ps("enable-method", "spin-table"),
                    pc("cpu-release-addr", &[0, 0x8000_0000]),
                ],
                vec![],
            ),
            n(
                "cpu@1",
                vec![
                    ps("device_type", "cpu"),
                    pc("reg", &[0, 0]),
                    ps("enable-method", "psci"),
                ],
                vec![],
            ),
            n("cpu@2", vec![ps("device_type", "cpu")], vec![]),
            n(
                "cpu@3",
                vec![
                    ps("device_type", "cpu"),
                    pc("reg", &[0, 3]),
                    ps("status", "disabled"),
                ],
                vec![],
            ),
            n("cpu-map", vec![], vec![]),
            n("l2-cache", vec![ps("device_type", "cache")], vec![]),
        ],
    );
    let info = parse_tree(&tree(vec![cpus]));
    assert_eq!(info.cpus_address_cells, 2);
    let mpidrs: Vec<u64> = info.cpus.iter().map(|c| c.mpidr).collect();
    assert_eq!(mpidrs, [0, 0x1_0000_0100, 3]);
    assert_eq!(info.cpus[2].status, Status::Disabled);
    assert_eq!(info.enabled_cpus().count(), 2);
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::DuplicateMpidr { mpidr: 0 }
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::CpuWithoutReg
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::MixedEnableMethods
    )));
}

#[test]
fn psci_variants() {
    let mk = |compat: &[u8], method: Option<&str>| {
        let mut props = vec![
            pb("compatible", compat),
            pc("cpu_on", &[0x9500_0003]),
            pc("cpu_off", &[1, 2]),
        ];
        if let Some(m) = method {
            props.push(ps("method", m));
        }
        parse_tree(&tree(vec![n("psci", props, vec![])]))
    };
    let v01 = mk(b"arm,psci\0", Some("hvc"));
    let p = v01.psci.clone().unwrap();
    assert_eq!(
        (p.version, p.conduit, p.cpu_on, p.cpu_off),
        (PsciVersion::V0_1, Conduit::Hvc, Some(0x9500_0003), None)
    );
    assert!(has_warning(&v01, |k| matches!(
        k,
        WarningKind::BadLength {
            prop: "cpu_off",
            ..
        }
    )));
    assert_eq!(
        mk(b"arm,psci-0.2\0arm,psci\0", Some("smc"))
            .psci
            .unwrap()
            .version,
        PsciVersion::V0_2
    );
    let none = mk(b"arm,psci-1.0\0", None);
    assert!(none.psci.is_none());
    assert!(has_warning(&none, |k| matches!(
        k,
        WarningKind::PsciBadMethod
    )));
    assert!(mk(b"arm,psci-1.0\0", Some("svc")).psci.is_none());
}
