//! Inputs the fuzzer found (tests/fuzz/regressions/dt_parse).

use super::*;
use alloc::format;

const R: &str = "../tests/fuzz/regressions/dt_parse";

#[test]
fn pci_window_never_wraps() {
    let b = include_bytes!("../../../../tests/fuzz/regressions/dt_parse/pci-window-wraps.dtb");
    if let Ok(i) = parse(b) {
        for m in &i.mmio {
            assert!(m.region.base.checked_add(m.region.size).is_some(), "{m:?}");
        }
        for h in &i.pci_hosts {
            for w in &h.windows {
                assert!(w.cpu_addr.checked_add(w.size).is_some(), "{w:?}");
            }
        }
    }
    let _ = R;
}

#[test]
fn chosen_is_the_node_named_chosen() {
    let b =
        include_bytes!("../../../../tests/fuzz/regressions/dt_parse/chosen-unit-address-first.dtb");
    let i = parse(b).unwrap();
    assert_eq!(
        i.chosen.bootargs.as_deref(),
        Some("console=ttyAMA0 root=/dev/vda")
    );
}

#[test]
fn warnings_print_without_control_characters() {
    let b =
        include_bytes!("../../../../tests/fuzz/regressions/dt_parse/stdout-path-control-chars.dtb");
    if let Ok(i) = parse(b) {
        for w in &i.warnings {
            let s = format!("{w}");
            assert!(!s.chars().any(char::is_control), "{s:?}");
        }
    }
}
