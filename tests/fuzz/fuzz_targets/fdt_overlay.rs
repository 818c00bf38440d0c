//! `fdt apply` / extlinux `fdtoverlays` / Armbian's overlay loop
//! (`loader::overlay::apply`, `loader::plan::fdt::apply`): any bytes as a
//! `.dtbo`, applied to QEMU's virt DT with a `__symbols__` node (uart0, gic,
//! cpus) as `dtc -@` makes it.
//!
//! Properties: no panic, no hang; every error is one line; a refused overlay
//! leaves the base tree unchanged (all or nothing); an applied one gives a
//! tree that `loader::dt::parse` and `dtfix::load` read back.
#![no_main]

use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use std::sync::OnceLock;
use libfuzzer_sys::fuzz_target;
use loader::{dt, dtfix, overlay};

const VIRT: &[u8] = include_bytes!("../../../loader/tests/fixtures/qemu-virt-el2-gicv3-smp4.dtb");

/// The base tree and its blob, made once.
fn base() -> &'static (DeviceTree, Vec<u8>) {
    static BASE: OnceLock<(DeviceTree, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let (mut t, _) = dtfix::load(VIRT).expect("fixture loads");
        let mut syms = DeviceTreeNode::new_unchecked("__symbols__");
        for (label, path) in [
            ("uart0", "/pl011@9000000"),
            ("gic", "/intc@8000000"),
            ("cpus", "/cpus"),
        ] {
            syms.add_property(DeviceTreeProperty::new_unchecked(
                label,
                format!("{path}\0").into_bytes(),
            ));
        }
        t.root.add_child(syms);
        let blob = dtfix::store(&t, 0).expect("stores");
        (t, blob)
    })
}

fuzz_target!(|data: &[u8]| {
    let (before, blob) = base();
    let mut base = before.clone();
    match overlay::apply(&mut base, data) {
        Ok(()) => {
            let out = dtfix::store(&base, 0).expect("an applied overlay stores");
            dt::parse(&out).unwrap_or_else(|e| panic!("applied overlay does not parse: {e}"));
            dtfix::load(&out).unwrap_or_else(|e| panic!("applied overlay does not load: {e}"));
        }
        Err(e) => {
            assert!(!e.contains('\n'), "multi-line error {e:?}");
            assert!(&base == before, "a refused overlay changed the tree");
        }
    }
    // The fdt command's path: the blob in, the blob out (sized as U-Boot sizes it).
    match loader::plan::fdt::apply(blob, 0x4800_0000, data) {
        Ok(out) => assert!(out.len() >= blob.len()),
        Err(e) => assert!(!e.contains('\n'), "multi-line error {e:?}"),
    }
});
