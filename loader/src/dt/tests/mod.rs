//! Host tests of the DT parser, by concern; the helpers below build DTBs with `dtoolkit`.

mod chosen;
mod cpus;
mod devices;
mod fixtures;
mod header;
mod limits;
mod memory;
mod regressions;
mod robustness;

use super::*;
use alloc::format;
use alloc::string::String;
use alloc::string::ToString;
use alloc::vec;
use dtoolkit::memreserve::MemoryReservation;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

const VIRT_EL2: &[u8] = include_bytes!("../../../tests/fixtures/qemu-virt-el2-gicv3-smp4.dtb");
const VIRT_EL1: &[u8] = include_bytes!("../../../tests/fixtures/qemu-virt-el1.dtb");
const VIRT_SPIN: &[u8] = include_bytes!("../../../tests/fixtures/qemu-virt-spin-table-smp4.dtb");

// ---- helpers to build DTBs ----

fn cells(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|c| c.to_be_bytes()).collect()
}

fn pb(name: &str, bytes: &[u8]) -> DeviceTreeProperty {
    DeviceTreeProperty::new(name, bytes).unwrap()
}

fn pc(name: &str, v: &[u32]) -> DeviceTreeProperty {
    pb(name, &cells(v))
}

fn ps(name: &str, v: &str) -> DeviceTreeProperty {
    DeviceTreeProperty::new(name, v).unwrap()
}

fn n(name: &str, props: Vec<DeviceTreeProperty>, children: Vec<DeviceTreeNode>) -> DeviceTreeNode {
    let mut b = DeviceTreeNode::builder(name).unwrap();
    for p in props {
        b = b.property(p);
    }
    for c in children {
        b = b.child(c);
    }
    b.build()
}

/// A tree with root cells 2/2, 1 GiB at 0x40000000, plus `children`.
fn tree(children: Vec<DeviceTreeNode>) -> DeviceTree {
    let mut t = DeviceTree::new();
    t.root.add_property(pc("#address-cells", &[2]));
    t.root.add_property(pc("#size-cells", &[2]));
    t.root
        .add_property(pb("compatible", b"acme,board\0acme,soc\0"));
    t.root.add_child(n(
        "memory@40000000",
        vec![
            ps("device_type", "memory"),
            pc("reg", &[0, 0x4000_0000, 0, 0x4000_0000]),
        ],
        vec![],
    ));
    for c in children {
        t.root.add_child(c);
    }
    t
}

fn cpus(cpu_nodes: Vec<DeviceTreeNode>) -> DeviceTreeNode {
    n(
        "cpus",
        vec![pc("#address-cells", &[1]), pc("#size-cells", &[0])],
        cpu_nodes,
    )
}

fn cpu(i: u32, extra: Vec<DeviceTreeProperty>) -> DeviceTreeNode {
    let mut props = vec![ps("device_type", "cpu"), pc("reg", &[i])];
    props.extend(extra);
    n(&format!("cpu@{i}"), props, vec![])
}

fn parse_tree(t: &DeviceTree) -> DtInfo {
    parse(&t.to_dtb()).unwrap()
}

fn has_warning(info: &DtInfo, f: impl Fn(&WarningKind) -> bool) -> bool {
    info.warnings.iter().any(|w| f(&w.kind))
}
