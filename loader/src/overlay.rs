//! Device tree overlays (`fdt apply`, extlinux `fdtoverlays`, Armbian's
//! overlay loop): a `.dtbo` whose fragments (`target = <&label>` or
//! `target-path`) are merged into a base tree, with `/__fixups__` resolved
//! through the base's `/__symbols__` and the overlay's own phandles moved past
//! the base's (`/__local_fixups__`). The merge itself is dtoolkit's
//! `OverlayApplier` (a crate made for the field); this module makes it
//! all-or-nothing and checks both inputs and the result: the overlay is
//! applied to a copy, and the copy replaces the tree only when every fragment
//! applied and the result still parses as a DT the loader can hand on.

use crate::dt;
use crate::dtfix;
use alloc::format;
use alloc::string::{String, ToString};
use dtoolkit::fdt::Fdt;
use dtoolkit::model::overlay::OverlayApplier;
use dtoolkit::model::DeviceTree;
use dtoolkit::Node;

/// Largest overlay blob accepted.
pub const MAX_OVERLAY: usize = 1 << 20;

/// Checks that `blob` is a DT overlay: a valid FDT with at least one fragment
/// (a child with an `__overlay__` node). Returns its header length (totalsize).
///
/// # Errors
/// One line: why it is not an overlay.
pub fn check(blob: &[u8]) -> Result<usize, String> {
    let total = dt::fdt_totalsize(blob).map_err(|e| e.to_string())?;
    if total > MAX_OVERLAY || total > blob.len() {
        return Err(format!("overlay totalsize {total:#x} is implausible"));
    }
    let fdt = Fdt::new(&blob[..total]).map_err(|e| format!("malformed overlay: {e}"))?;
    let has_fragment = fdt
        .root()
        .children()
        .any(|c| c.children().any(|g| g.name() == "__overlay__"));
    if !has_fragment {
        return Err("not a DT overlay: no fragment with an __overlay__ node".into());
    }
    Ok(total)
}

/// Applies the overlay `blob` to `tree`. On any error `tree` is unchanged.
///
/// # Errors
/// One line: the overlay's defect (a missing symbol or target names it), or
/// why the result would not be a usable DT.
pub fn apply(tree: &mut DeviceTree, blob: &[u8]) -> Result<(), String> {
    let total = check(blob)?;
    let fdt = Fdt::new(&blob[..total]).map_err(|e| format!("malformed overlay: {e}"))?;
    let mut work = tree.clone();
    OverlayApplier::new(&mut work)
        .apply_overlay(&fdt)
        .map_err(|e| match e {
            dtoolkit::error::OverlayError::UnresolvedSymbol(s) => format!(
                "overlay refers to '{s}', which the base tree's __symbols__ do not name (base compiled without -@?)"
            ),
            other => format!("overlay: {other}"),
        })?;
    // The result must still be a DT the loader (and the kernel) can read.
    let bytes = dtfix::store(&work, 0)?;
    dt::parse(&bytes).map_err(|e| format!("the tree with the overlay would be invalid: {e}"))?;
    *tree = work;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use dtoolkit::model::{DeviceTreeNode, DeviceTreeProperty};
    use dtoolkit::Property;

    const VIRT: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-el2-gicv3-smp4.dtb");

    fn prop(name: &str, v: impl Into<Vec<u8>>) -> DeviceTreeProperty {
        DeviceTreeProperty::new_unchecked(name, v.into())
    }

    fn node(name: &str) -> DeviceTreeNode {
        DeviceTreeNode::new_unchecked(name)
    }

    /// The base: QEMU's tree with a `__symbols__` entry for the UART, as `dtc -@` makes it.
    fn base() -> DeviceTree {
        let (mut t, _) = dtfix::load(VIRT).unwrap();
        let uart = t
            .root
            .children()
            .find(|c| c.name().starts_with("pl011@"))
            .map(|c| c.name().to_string())
            .unwrap();
        let mut syms = node("__symbols__");
        syms.add_property(prop("uart0", format!("/{uart}\0").into_bytes()));
        t.root.add_child(syms);
        t
    }

    /// An overlay as `dtc -@` compiles:
    /// fragment@0 { target = <&uart0>; __overlay__ { status = "okay"; parkboot,ov = <&local>; }; };
    /// fragment@1 { target-path = "/"; __overlay__ { local: parkboot-ov { phandle = <1>; }; }; };
    fn overlay(symbol: &str) -> Vec<u8> {
        let mut t = DeviceTree::new();
        let mut f0 = node("fragment@0");
        f0.add_property(prop("target", 0xffff_ffffu32.to_be_bytes().to_vec()));
        let mut o0 = node("__overlay__");
        o0.add_property(prop("status", b"okay\0".to_vec()));
        o0.add_property(prop("parkboot,ov", 1u32.to_be_bytes().to_vec()));
        f0.add_child(o0);
        let mut f1 = node("fragment@1");
        f1.add_property(prop("target-path", b"/\0".to_vec()));
        let mut o1 = node("__overlay__");
        let mut local = node("parkboot-ov");
        local.add_property(prop("phandle", 1u32.to_be_bytes().to_vec()));
        local.add_property(prop("compatible", b"parkboot,test\0".to_vec()));
        o1.add_child(local);
        f1.add_child(o1);
        let mut fix = node("__fixups__");
        fix.add_property(prop(symbol, b"/fragment@0:target:0\0".to_vec()));
        let mut lf = node("__local_fixups__");
        let mut lf0 = node("fragment@0");
        let mut lfo = node("__overlay__");
        lfo.add_property(prop("parkboot,ov", 0u32.to_be_bytes().to_vec()));
        lf0.add_child(lfo);
        lf.add_child(lf0);
        t.root.add_child(f0);
        t.root.add_child(f1);
        t.root.add_child(fix);
        t.root.add_child(lf);
        t.to_dtb()
    }

    fn phandle_of(t: &DeviceTree, path: &str) -> u32 {
        let n = dtfix::find(t, path).unwrap();
        let p = n.property("phandle").unwrap();
        let v = p.value();
        u32::from_be_bytes([v[0], v[1], v[2], v[3]])
    }

    #[test]
    fn fixups_and_local_fixups_resolve() {
        let mut t = base();
        apply(&mut t, &overlay("uart0")).unwrap();
        let uart = t
            .root
            .children()
            .find(|c| c.name().starts_with("pl011@"))
            .unwrap();
        assert_eq!(uart.property("status").unwrap().value(), b"okay\0");
        // The local reference points at the new node's relocated phandle.
        let new = phandle_of(&t, "/parkboot-ov");
        let rp = uart.property("parkboot,ov").unwrap();
        let r = rp.value();
        assert_eq!(u32::from_be_bytes([r[0], r[1], r[2], r[3]]), new);
        assert!(new > 1, "moved past the base's phandles: {new}");
        assert!(dt::parse(&dtfix::store(&t, 0).unwrap()).is_ok());
    }

    #[test]
    fn a_failed_overlay_changes_nothing() {
        let mut t = base();
        let before = t.clone();
        let e = apply(&mut t, &overlay("nosuchlabel")).unwrap_err();
        assert!(e.contains("'nosuchlabel'"), "{e}");
        assert_eq!(t, before);
        // Garbage and a plain DT are refused before anything is tried.
        assert!(
            apply(&mut t, b"garbage-garbage-garbage-garbage-garbage-garbage")
                .unwrap_err()
                .contains("magic")
        );
        let e = apply(&mut t, VIRT).unwrap_err();
        assert_eq!(e, "not a DT overlay: no fragment with an __overlay__ node");
        assert_eq!(t, before);
        // A target path that is not in the base names it.
        let mut ov = DeviceTree::new();
        let mut f = node("fragment@0");
        f.add_property(prop("target-path", b"/nope\0".to_vec()));
        f.add_child(node("__overlay__"));
        ov.root.add_child(f);
        let e = apply(&mut t, &ov.to_dtb()).unwrap_err();
        assert!(e.contains("/nope"), "{e}");
        assert_eq!(t, before);
    }
}
