//! `/chosen`, the console and `/config/environment`.

use super::*;

#[test]
fn console_by_alias_and_unit_less_path() {
    let uart = n(
        "serial@9000000",
        vec![
            pb("compatible", b"arm,pl011\0"),
            pc("reg", &[0, 0x0900_0000, 0, 0x1000]),
            pc("interrupts", &[0, 1, 4]),
        ],
        vec![],
    );
    let aliases = n(
        "aliases",
        vec![ps("serial0", "/serial@9000000"), ps("bad", "/nonexistent")],
        vec![],
    );
    for (sp, ok) in [
        ("serial0", true),
        ("serial0:115200", true),
        ("/serial", true),
        ("bad", false),
        ("nosuch:1", false),
        ("", false),
    ] {
        let chosen = n("chosen", vec![ps("stdout-path", sp)], vec![]);
        let info = parse_tree(&tree(vec![uart.clone(), aliases.clone(), chosen]));
        assert_eq!(info.console.is_some(), ok, "{sp}");
        if ok {
            let c = info.console.unwrap();
            assert_eq!(c.path, "/serial@9000000");
            assert_eq!(c.reg.map(|r| r.base), Some(0x0900_0000));
            assert_eq!(c.irq, Some(33));
        } else {
            assert!(
                has_warning(&info, |k| matches!(
                    k,
                    WarningKind::StdoutPathUnresolved { .. }
                )),
                "{sp}"
            );
        }
    }
    // legacy linux,stdout-path
    let chosen = n(
        "chosen",
        vec![ps("linux,stdout-path", "/serial@9000000")],
        vec![],
    );
    let info = parse_tree(&tree(vec![uart, chosen]));
    assert_eq!(
        info.console.map(|c| c.path).as_deref(),
        Some("/serial@9000000")
    );
}

#[test]
fn config_environment_becomes_env() {
    let env = n(
        "environment",
        vec![
            ps("bootcmd", "booti ${a} - ${fdtcontroladdr}"),
            ps("bootdelay", "0"),
            ps("empty", ""),
            pb("cells", &cells(&[1, 2])),
            pb("list", b"a\0b\0"),
            pb("ctl", b"a\x1bb\0"),
            pb("tabbed", b"a\tb\0"),
            pb("bad#name", b"x\0"),
        ],
        vec![],
    );
    let info = parse_tree(&tree(vec![n("config", vec![], vec![env])]));
    assert_eq!(
        info.config_env,
        vec![
            ("bootcmd".into(), "booti ${a} - ${fdtcontroladdr}".into()),
            ("bootdelay".into(), "0".into()),
            ("empty".into(), String::new()),
            ("tabbed".into(), "a\tb".into()),
        ]
    );
    let bad: Vec<String> = info
        .warnings
        .iter()
        .filter_map(|w| match &w.kind {
            WarningKind::BadEnvProperty { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(bad, ["cells", "list", "ctl", "bad#name"]);
    // Only /config/environment counts, and too many properties are cut with a warning.
    let many: Vec<DeviceTreeProperty> = (0..MAX_ENV_PROPS + 3)
        .map(|i| ps(&format!("v{i}"), "1"))
        .collect();
    let info = parse_tree(&tree(vec![
        n("environment", vec![ps("x", "1")], vec![]),
        n("config", vec![], vec![n("environment", many, vec![])]),
    ]));
    assert_eq!(info.config_env.len(), MAX_ENV_PROPS);
    assert_eq!(info.config_env[0], ("v0".into(), "1".into()));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::BadEnvProperty { why, .. } if why.contains("beyond")
    )));
    assert!(parse_tree(&tree(vec![])).config_env.is_empty());
}

#[test]
fn chosen_initrd_variants() {
    let mk = |start: Vec<u32>, end: Vec<u32>| {
        let chosen = n(
            "chosen",
            vec![
                pc("linux,initrd-start", &start),
                pc("linux,initrd-end", &end),
                ps("bootargs", "quiet"),
            ],
            vec![],
        );
        parse_tree(&tree(vec![chosen]))
    };
    assert_eq!(
        mk(vec![0x4800_0000], vec![0x4900_0000]).chosen.initrd,
        Some(Region::new(0x4800_0000, 0x100_0000))
    );
    assert_eq!(
        mk(vec![1, 0], vec![1, 0x1000]).chosen.initrd,
        Some(Region::new(0x1_0000_0000, 0x1000))
    );
    let inv = mk(vec![0x4900_0000], vec![0x4800_0000]);
    assert_eq!(inv.chosen.initrd, None);
    assert!(has_warning(&inv, |k| matches!(
        k,
        WarningKind::InitrdInverted { .. }
    )));
    let bad = mk(vec![1, 2, 3], vec![0x4800_0000]);
    assert_eq!(bad.chosen.initrd, None);
    assert!(has_warning(&bad, |k| matches!(
        k,
        WarningKind::BadLength {
            prop: "linux,initrd-start",
            ..
        }
    )));
    assert_eq!(bad.chosen.bootargs.as_deref(), Some("quiet"));
}
