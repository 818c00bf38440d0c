//! `loader::dt::parse` on arbitrary bytes (the DTB at x0 is untrusted).
//!
//! Properties:
//! * no panic, no hang, for any input (also in `Display` of the result and of
//!   every error, and in building the boot-time memory map from the result);
//! * documented invariants of `DtInfo`: ranges never wrap, RAM banks sorted
//!   with zero sizes dropped, lists capped, error/warning text is one line;
//! * a tree that parses survives dtoolkit's model round trip
//!   (`DeviceTree::from_fdt` + `to_dtb`): the regenerated blob must parse too,
//!   and a second round trip must be a fixed point;
//! * booti's DT fixups (`loader::dtfix`: load, /chosen bootargs + initrd,
//!   store) give a DTB that parses and carries the fixups.
#![no_main]

use dtoolkit::fdt::Fdt;
use dtoolkit::model::DeviceTree;
use dtoolkit::Node;
use libfuzzer_sys::fuzz_target;
use loader::dt::{self, Region};
use loader::dtfix;
use loader::memmap::{MemMap, Owner};

fn no_wrap(what: &str, r: &Region) {
    assert!(
        r.base.checked_add(r.size).is_some(),
        "{what} {r:?} wraps the address space"
    );
}

fn one_line(s: &str) {
    assert!(!s.contains('\n'), "multi-line message: {s:?}");
}

fuzz_target!(|data: &[u8]| {
    let _ = dt::fdt_totalsize(data);
    let info = match dt::parse(data) {
        Ok(i) => i,
        Err(e) => {
            one_line(&format!("{e}"));
            return;
        }
    };
    let _ = format!("{info}");
    // Known open bug (regressions/dt_parse/stdout-path-control-chars.dts):
    // warnings quote DT strings raw. PARKBOOT_FUZZ_ALLOW=dt-warning-text.
    if !fuzz_common::allowed("dt-warning-text") {
        for w in &info.warnings {
            one_line(&format!("{w}"));
        }
    }

    // Invariants the rest of the loader relies on.
    assert!(info.totalsize <= data.len());
    for r in &info.memory {
        no_wrap("memory bank", r);
        assert!(r.size > 0, "zero-size memory bank kept");
    }
    assert!(
        info.memory.windows(2).all(|w| w[0] <= w[1]),
        "memory not sorted"
    );
    for r in &info.memreserve {
        no_wrap("memreserve", r);
    }
    for r in &info.reserved_memory {
        no_wrap("reserved-memory", &r.region);
    }
    // Known open bug (tests/fuzz/regressions/dt_parse/pci-window-wraps.dts):
    // PCI windows whose CPU range wraps are kept. PARKBOOT_FUZZ_ALLOW=
    // pci-window-wrap skips this check so fuzzing can go on past it.
    let allow_pci_wrap = fuzz_common::allowed("pci-window-wrap");
    for m in &info.mmio {
        if !(allow_pci_wrap && m.pci_window.is_some()) {
            no_wrap(&format!("mmio {m:?}"), &m.region);
        }
    }
    for v in &info.virtio_mmio {
        no_wrap(&format!("virtio-mmio {v:?}"), &v.region);
    }
    for p in &info.pci_hosts {
        no_wrap(&format!("pci ecam {p:?}"), &p.ecam);
        for w in &p.windows {
            if !allow_pci_wrap {
                no_wrap(
                    &format!("pci window {w:?}"),
                    &Region::new(w.cpu_addr, w.size),
                );
            }
        }
    }
    if let Some(g) = &info.gic {
        for r in &g.regs {
            no_wrap("gic reg", r);
        }
    }
    if let Some(r) = info.chosen.initrd {
        no_wrap("initrd", &r);
    }
    if let Some(r) = info.console.as_ref().and_then(|c| c.reg) {
        no_wrap("console reg", &r);
    }
    assert!(info.memory.len() <= 128 && info.cpus.len() <= 512 && info.mmio.len() <= 512);
    let _ = info.enabled_cpus().count();
    let _ = info.cpu_by_mpidr(info.boot_cpuid_phys as u64);
    let _ = info.is_compatible("linux,dummy-virt");

    // What boot.rs does with the result: RAM banks, the DT claim, and every
    // firmware reservation, then the default load addresses.
    let mut map = MemMap::new(&info.memory);
    if let Some(first) = info.memory.first() {
        let _ = map.claim(first.base, info.totalsize as u64, Owner::IncomingDt);
    }
    for (n, r) in info.memreserve.iter().enumerate() {
        map.reserve(r.base, r.size, &Owner::MemReserve(n));
    }
    for r in &info.reserved_memory {
        map.reserve(
            r.region.base,
            r.region.size,
            &Owner::ReservedMemory(r.name.clone()),
        );
    }
    let claims: Vec<_> = map.claims().cloned().collect();
    for w in claims.windows(2) {
        assert!(
            w[0].end <= w[1].start,
            "overlapping claims {} / {}",
            w[0],
            w[1]
        );
    }
    if let Some(l) = map.default_load_addresses() {
        for (name, addr) in l.env() {
            let _ = (name, addr);
        }
        assert!(
            map.check(l.kernel_addr_r, l.kernel_size, &Owner::Kernel)
                .is_ok(),
            "default kernel slot {l:?} is not free RAM"
        );
    }
    let _ = format!("{map}");

    // dtoolkit model round trip.
    let total = info.totalsize;
    let fdt = Fdt::new(&data[..total]).expect("dt::parse accepted it, so Fdt::new must");
    let tree = DeviceTree::from_fdt(&fdt);
    let dtb = tree.to_dtb();
    let again = dt::parse(&dtb);
    assert!(
        again.is_ok(),
        "round-tripped DTB does not parse: {:?}",
        again.err()
    );
    let fdt2 = Fdt::new(&dtb).expect("round-tripped DTB passes dt::parse");
    let dtb2 = DeviceTree::from_fdt(&fdt2).to_dtb();
    assert!(dtb2 == dtb, "second round trip is not a fixed point");

    // What booti does to the DT it hands on (loader::dtfix): load, /chosen
    // fixups, store. The result must parse and carry the fixups.
    let (mut tree, _) = dtfix::load(data).expect("dt::parse accepted it, so dtfix::load must");
    let _ = dtfix::print(&tree, "/");
    let _ = dtfix::memreserves(&tree);
    let fx = dtfix::ChosenFixups {
        bootargs: Some("console=ttyAMA0 root=/dev/vda2 rw".into()),
        initrd: Some((0x4800_0000, 0x4900_0000)),
        ..dtfix::ChosenFixups::default()
    };
    dtfix::apply_chosen(&mut tree, &fx);
    if let Ok(out) = dtfix::store(&tree, info.boot_cpuid_phys) {
        let fixed =
            dt::parse(&out).unwrap_or_else(|e| panic!("DT after booti fixups does not parse: {e}"));
        // Known open bug (regressions/dt_parse/chosen-unit-address-first.dts):
        // dt::parse reads the first `chosen@*` node as /chosen, dtfix (and
        // Linux) the node named exactly `chosen`.
        let odd_chosen = fuzz_common::allowed("chosen-unit-address")
            && fdt
                .root()
                .children()
                .any(|c| c.name().starts_with("chosen@"));
        if !odd_chosen {
            assert_eq!(
                fixed.chosen.bootargs.as_deref(),
                fx.bootargs.as_deref(),
                "bootargs lost"
            );
            assert_eq!(
                fixed.chosen.initrd,
                Some(Region::new(0x4800_0000, 0x100_0000)),
                "initrd fixup lost"
            );
        }
        assert_eq!(fixed.boot_cpuid_phys, info.boot_cpuid_phys);
    }
});
