//! Depth, name, path, string and collection limits; warning display.

use super::*;

#[test]
fn too_deep_is_rejected() {
    let mut node = n("leaf", vec![], vec![]);
    for i in 0..MAX_DEPTH {
        node = n(&format!("n{i}"), vec![], vec![node]);
    }
    let t = tree(vec![node]);
    assert_eq!(
        parse(&t.to_dtb()),
        Err(DtError::TooDeep { limit: MAX_DEPTH })
    );
    // exactly MAX_DEPTH levels below the root is fine
    let mut node = n("leaf", vec![], vec![]);
    for i in 0..MAX_DEPTH - 1 {
        node = n(&format!("n{i}"), vec![], vec![node]);
    }
    assert!(parse(&tree(vec![node]).to_dtb()).is_ok());
}

#[test]
fn long_names_are_rejected() {
    let name = format!("a@{}", "f".repeat(MAX_NODE_NAME));
    let t = tree(vec![n(&name, vec![], vec![])]);
    assert_eq!(
        parse(&t.to_dtb()),
        Err(DtError::NameTooLong {
            len: MAX_NODE_NAME + 2,
            limit: MAX_NODE_NAME
        })
    );
}

#[test]
fn long_paths_are_rejected() {
    let name = |c: char| format!("{}@{}", c, "1".repeat(98)); // 100 bytes
    let t = tree(vec![n(
        &name('a'),
        vec![],
        vec![n(&name('b'), vec![], vec![n(&name('c'), vec![], vec![])])],
    )]);
    assert_eq!(
        parse(&t.to_dtb()),
        Err(DtError::PathTooLong {
            len: 303,
            limit: MAX_PATH
        })
    );
    let t = tree(vec![n(
        &name('a'),
        vec![],
        vec![n(&name('b'), vec![], vec![])],
    )]);
    assert!(parse(&t.to_dtb()).is_ok());
}

#[test]
fn long_strings_are_dropped() {
    let long = "x".repeat(MAX_STRING + 1);
    let mut t = tree(vec![
        n(
            "chosen",
            vec![ps("bootargs", &"y".repeat(MAX_BOOTARGS + 1))],
            vec![],
        ),
        n(
            "dev@0",
            vec![
                pb("compatible", format!("{long}\0").as_bytes()),
                pc("reg", &[0, 0, 0, 1]),
            ],
            vec![],
        ),
    ]);
    t.root.add_property(ps("model", &long));
    t.root
        .add_property(pb("compatible", format!("ok\0{long}\0").as_bytes()));
    let info = parse_tree(&t);
    assert_eq!(info.model, None);
    assert_eq!(info.compatible, ["ok"]);
    assert_eq!(info.chosen.bootargs, None);
    assert_eq!(
        info.mmio
            .iter()
            .find(|m| m.path == "/dev@0")
            .unwrap()
            .compatible,
        None
    );
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::TooLong {
            prop: "bootargs",
            ..
        }
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::TooLong {
            prop: "model",
            len: 257,
            limit: 256
        }
    )));
    // the maximum is accepted
    let t = tree(vec![n(
        "chosen",
        vec![ps("bootargs", &"y".repeat(MAX_BOOTARGS))],
        vec![],
    )]);
    assert_eq!(
        parse_tree(&t).chosen.bootargs.map(|b| b.len()),
        Some(MAX_BOOTARGS)
    );
}

#[test]
fn collections_are_capped() {
    let children: Vec<_> = (0..MAX_MMIO as u32 + 10)
        .map(|i| {
            n(
                &format!("d@{i:x}"),
                vec![pc("reg", &[0, i * 0x1000, 0, 0x1000])],
                vec![],
            )
        })
        .collect();
    let info = parse_tree(&tree(children));
    assert_eq!(info.mmio.len(), MAX_MMIO);
    let too_many = info
        .warnings
        .iter()
        .filter(|w| {
            matches!(
                w.kind,
                WarningKind::TooMany {
                    what: "MMIO regions",
                    ..
                }
            )
        })
        .count();
    assert_eq!(too_many, 1);
}

#[test]
fn warnings_are_capped() {
    let children: Vec<_> = (0..MAX_WARNINGS as u32 + 5)
        .map(|i| n(&format!("d@{i:x}"), vec![pc("reg", &[1, 2, 3])], vec![]))
        .collect();
    let info = parse_tree(&tree(children));
    assert_eq!(info.warnings.len(), MAX_WARNINGS);
    assert_eq!(info.warnings_dropped, 5);
    assert!(info.to_string().contains("(5 more warnings)"));
}

#[test]
fn strings_must_be_terminated() {
    let mut t = tree(vec![]);
    t.root.add_property(pb("model", b"no-nul"));
    t.root.add_property(pb("compatible", b"a\0\xff\xfe\0"));
    let info = parse_tree(&t);
    assert_eq!(info.model, None);
    assert!(info.compatible.is_empty());
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::NotString { prop: "model" }
    )));
    assert!(has_warning(&info, |k| matches!(
        k,
        WarningKind::NotString { prop: "compatible" }
    )));
}

#[test]
fn warning_display_is_one_line() {
    let t = tree(vec![
        cpus(vec![
            cpu(0, vec![pc("cpu-release-addr", &[1])]),
            cpu(0, vec![]),
        ]),
        n(
            "chosen",
            vec![
                ps("stdout-path", "nowhere"),
                pc("linux,initrd-start", &[9]),
                pc("linux,initrd-end", &[1]),
            ],
            vec![],
        ),
        n(
            "psci",
            vec![pb("compatible", b"arm,psci\0"), ps("method", "x")],
            vec![],
        ),
    ]);
    let info = parse_tree(&t);
    assert!(info.warnings.len() >= 3);
    for w in &info.warnings {
        let s = w.to_string();
        assert!(!s.contains('\n') && s.starts_with('/'), "{s}");
    }
}
