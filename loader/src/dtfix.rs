//! Writing device trees: the fixups `booti` applies to the DT it hands on,
//! and the edits behind the `fdt` command. Input is always validated by
//! [`crate::dt::parse`] first (which bounds nesting), then converted to
//! dtoolkit's model, edited, and serialised anew (pvmfw's pattern: never
//! patch an untrusted blob in place).

use crate::dt;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use dtoolkit::fdt::Fdt;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};

/// booting.rst: the DTB must not exceed 2 MiB.
pub const MAX_DTB: usize = 2 << 20;

/// What booti changes in /chosen.
#[derive(Debug, Default, Clone)]
pub struct ChosenFixups {
    /// `bootargs` env: replaces /chosen/bootargs when set (as U-Boot does).
    pub bootargs: Option<String>,
    /// [start, end) of the initrd; any existing linux,initrd-* are replaced
    /// (or removed when None).
    pub initrd: Option<(u64, u64)>,
    /// Keep a non-zero /chosen/kaslr-seed: the `kaslrseed` command (or an extlinux
    /// `kaslrseed` label) wrote it into this very tree.
    pub keep_kaslr_seed: bool,
    /// Entropy from a hardware RNG for /chosen/rng-seed, written only when the tree has
    /// none (never made up: None when the machine has no RNG).
    pub rng_seed: Option<Vec<u8>>,
}

/// Parses and validates `dtb`, returning the editable model.
pub fn load(dtb: &[u8]) -> Result<(DeviceTree, dt::DtInfo), String> {
    let info = dt::parse(dtb).map_err(|e| format!("{e}"))?;
    let len = info.totalsize.min(dtb.len());
    let fdt = Fdt::new(&dtb[..len]).map_err(|e| format!("malformed device tree: {e}"))?;
    Ok((DeviceTree::from_fdt(&fdt), info))
}

/// Serialises `tree`, stamping boot_cpuid_phys, and checks the size limit.
pub fn store(tree: &DeviceTree, boot_cpuid_phys: u32) -> Result<Vec<u8>, String> {
    let mut out = tree.to_dtb();
    if out.len() > MAX_DTB {
        return Err(format!(
            "device tree would be {} bytes (max {MAX_DTB})",
            out.len()
        ));
    }
    if let Some(h) = out.get_mut(28..32) {
        h.copy_from_slice(&boot_cpuid_phys.to_be_bytes());
    }
    Ok(out)
}

fn chosen(tree: &mut DeviceTree) -> &mut DeviceTreeNode {
    // Take it out (or make it) and put it back: one mutable path, no unwrap.
    let node = tree
        .root
        .remove_child("chosen")
        .unwrap_or_else(|| DeviceTreeNode::new_unchecked("chosen"));
    tree.root.add_child_mut(node)
}

/// Applies booti's /chosen fixups. kaslr-seed is removed when non-zero
/// (kexec-tools refuses a DTB that carries one), stdout-path is kept.
pub fn apply_chosen(tree: &mut DeviceTree, fx: &ChosenFixups) {
    let c = chosen(tree);
    if let Some(args) = &fx.bootargs {
        c.remove_property("bootargs");
        c.add_property(DeviceTreeProperty::new_unchecked("bootargs", args.as_str()));
    }
    c.remove_property("linux,initrd-start");
    c.remove_property("linux,initrd-end");
    if let Some((s, e)) = fx.initrd {
        c.add_property(DeviceTreeProperty::new_unchecked("linux,initrd-start", s));
        c.add_property(DeviceTreeProperty::new_unchecked("linux,initrd-end", e));
    }
    let nonzero_seed = c
        .property("kaslr-seed")
        .is_some_and(|p| p.value().iter().any(|&b| b != 0));
    if nonzero_seed && !fx.keep_kaslr_seed {
        c.remove_property("kaslr-seed");
    }
    if let Some(seed) = &fx.rng_seed {
        if c.property("rng-seed").is_none() && !seed.is_empty() {
            c.add_property(DeviceTreeProperty::new_unchecked("rng-seed", seed.clone()));
        }
    }
}

/// Writes `seed` as /chosen/kaslr-seed (the `kaslrseed` command).
pub fn set_kaslr_seed(tree: &mut DeviceTree, seed: u64) {
    let c = chosen(tree);
    c.remove_property("kaslr-seed");
    c.add_property(DeviceTreeProperty::new_unchecked("kaslr-seed", seed));
}

/// U-Boot's `fdt_fixup_memory_banks` for a DT the loader did not boot with (a
/// distribution's `.dtb`): the first memory node (`device_type = "memory"`, or named
/// `memory`/`memory@…`) gets `reg` = the RAM `banks` the loader knows, in the root's cell
/// sizes; other memory nodes are removed; one is made when there is none.
///
/// # Errors
/// A bank that does not fit the root's `#address-cells`/`#size-cells`.
pub fn apply_memory(tree: &mut DeviceTree, banks: &[(u64, u64)]) -> Result<(), String> {
    if banks.is_empty() {
        return Ok(());
    }
    let cells = |name: &str, default: u32| {
        tree.root
            .property(name)
            .and_then(|p| {
                p.value()
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            })
            .unwrap_or(default)
    };
    let (ac, sc) = (cells("#address-cells", 2), cells("#size-cells", 1));
    let mut reg = Vec::new();
    for &(base, size) in banks {
        push_cells(&mut reg, base, ac)
            .ok_or_else(|| format!("memory bank {base:#x} does not fit #address-cells = {ac}"))?;
        push_cells(&mut reg, size, sc)
            .ok_or_else(|| format!("memory size {size:#x} does not fit #size-cells = {sc}"))?;
    }
    let is_memory = |n: &DeviceTreeNode| {
        n.name() == "memory"
            || n.name().starts_with("memory@")
            || n.property("device_type")
                .is_some_and(|p| p.value() == b"memory\0")
    };
    let names: Vec<String> = tree
        .root
        .children()
        .filter(|n| is_memory(n))
        .map(|n| n.name().to_string())
        .collect();
    for n in &names {
        tree.root.remove_child(n);
    }
    let mut node = DeviceTreeNode::new_unchecked(format!("memory@{:x}", banks[0].0));
    node.add_property(DeviceTreeProperty::new_unchecked("device_type", "memory"));
    node.add_property(DeviceTreeProperty::new_unchecked("reg", reg));
    tree.root.add_child(node);
    Ok(())
}

fn push_cells(out: &mut Vec<u8>, v: u64, cells: u32) -> Option<()> {
    match cells {
        1 => out.extend_from_slice(&u32::try_from(v).ok()?.to_be_bytes()),
        2 => out.extend_from_slice(&v.to_be_bytes()),
        _ => return None,
    }
    Some(())
}

/// The child of `node` that path component `comp` names: the child named
/// exactly `comp`, else (when `comp` has no unit address) the first child
/// named `comp@...` — U-Boot's rule. One resolver for `fdt set`, `rm` and
/// `print`, so they always address the same node (dtoolkit's `find_node` and
/// `find_node_mut` disagree when `x` and `x@1` are siblings: fuzz regression
/// fdt_edit/set-then-print-sibling-unit-address).
fn child_name(node: &DeviceTreeNode, comp: &str) -> Option<String> {
    if node.children().any(|c| c.name() == comp) {
        return Some(comp.to_string());
    }
    if comp.contains('@') {
        return None;
    }
    node.children()
        .find(|c| {
            c.name()
                .split_once('@')
                .is_some_and(|(base, _)| base == comp)
        })
        .map(|c| c.name().to_string())
}

/// The node at `path` (absolute; empty components ignored), resolved as
/// [`child_name`] says.
pub fn find<'a>(tree: &'a DeviceTree, path: &str) -> Option<&'a DeviceTreeNode> {
    if !path.starts_with('/') {
        return None;
    }
    let mut node = &tree.root;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let name = child_name(node, comp)?;
        node = node.children().find(|c| c.name() == name)?;
    }
    Some(node)
}

fn find_mut<'a>(tree: &'a mut DeviceTree, path: &str) -> Result<&'a mut DeviceTreeNode, String> {
    if !path.starts_with('/') {
        return Err(format!("no node {path}"));
    }
    let mut node = &mut tree.root;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let name = child_name(node, comp).ok_or_else(|| format!("no node {path}"))?;
        node = node
            .child_mut(&name)
            .ok_or_else(|| format!("no node {path}"))?;
    }
    Ok(node)
}

/// Parses U-Boot `fdt set` value syntax: `<0x1 2>` (u32 cells), `[00 11]`
/// (bytes), `"text"` or bare words (one string; several words → a string
/// list), nothing → empty property.
pub fn parse_value(args: &[&str]) -> Result<Vec<u8>, String> {
    let joined = args.join(" ");
    let t = joined.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(inner) = t.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
        let mut v = Vec::new();
        for w in inner.split_whitespace() {
            let n = parse_num(w).ok_or_else(|| format!("bad cell '{w}'"))?;
            let n = u32::try_from(n).map_err(|_| format!("cell '{w}' exceeds 32 bits"))?;
            v.extend_from_slice(&n.to_be_bytes());
        }
        return Ok(v);
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let hex: String = inner.split_whitespace().collect();
        if !hex.len().is_multiple_of(2) {
            return Err("odd number of hex digits in [..]".into());
        }
        return (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad byte in [{inner}]"))
            })
            .collect();
    }
    let mut v = Vec::new();
    for w in args {
        let w = w.trim_matches('"');
        v.extend_from_slice(w.as_bytes());
        v.push(0);
    }
    Ok(v)
}

fn parse_num(w: &str) -> Option<u64> {
    match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => w.parse().ok(),
    }
}

pub fn set_property(
    tree: &mut DeviceTree,
    path: &str,
    prop: &str,
    value: Vec<u8>,
) -> Result<(), String> {
    // Devicetree spec 2.2.4: 1-31 characters of [0-9a-zA-Z,._+?#-]. Anything
    // else would make a tree that no parser (ours, Linux's) reads back.
    if prop.is_empty()
        || prop.len() > 31
        || !prop
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b",._+?#-".contains(&b))
    {
        return Err(format!(
            "bad property name '{}': 1-31 characters of 0-9 a-z A-Z , . _ + ? # -",
            prop.escape_debug()
        ));
    }
    let node = find_mut(tree, path)?;
    node.remove_property(prop);
    node.add_property(DeviceTreeProperty::new_unchecked(prop, value));
    Ok(())
}

pub fn remove(tree: &mut DeviceTree, path: &str, prop: Option<&str>) -> Result<(), String> {
    match prop {
        Some(p) => {
            let node = find_mut(tree, path)?;
            node.remove_property(p)
                .map(|_| ())
                .ok_or_else(|| format!("no property {p} in {path}"))
        }
        None => {
            let (parent, name) = match path.rsplit_once('/') {
                Some(("", n)) => ("/", n),
                Some((p, n)) => (p, n),
                None => return Err(format!("bad path {path}")),
            };
            if name.is_empty() {
                return Err("cannot remove the root node".into());
            }
            let node = find_mut(tree, parent)?;
            let name = child_name(node, name).ok_or_else(|| format!("no node {path}"))?;
            node.remove_child(&name)
                .map(|_| ())
                .ok_or_else(|| format!("no node {path}"))
        }
    }
}

/// DTS-style text of the subtree at `path` (depth-bounded).
pub fn print(tree: &DeviceTree, path: &str) -> Result<String, String> {
    let node = find(tree, path).ok_or_else(|| format!("no node {path}"))?;
    let mut o = String::new();
    if path == "/" {
        for r in &tree.memory_reservations {
            let _ = writeln!(o, "/memreserve/ {:#x} {:#x};", r.address(), r.size());
        }
    }
    print_node(&mut o, node, if path == "/" { "/" } else { node.name() }, 0);
    Ok(o)
}

fn print_node(o: &mut String, node: &DeviceTreeNode, name: &str, depth: usize) {
    let ind = "\t".repeat(depth);
    let _ = writeln!(o, "{ind}{name} {{");
    for p in node.properties() {
        let _ = writeln!(o, "{ind}\t{}{};", p.name(), render_value(p.value()));
    }
    if depth < 32 {
        for c in node.children() {
            print_node(o, c, c.name(), depth + 1);
        }
    }
    let _ = writeln!(o, "{ind}}};");
}

fn render_value(v: &[u8]) -> String {
    if v.is_empty() {
        return String::new();
    }
    let printable = v.last() == Some(&0)
        && v.len() > 1
        && v.split(|&b| b == 0)
            .take(v.len())
            .all(|s| s.iter().all(|&b| (0x20..0x7f).contains(&b)))
        && !v.windows(2).any(|w| w == [0, 0]);
    if printable {
        let strs: Vec<String> = v[..v.len() - 1]
            .split(|&b| b == 0)
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s)))
            .collect();
        return format!(" = {}", strs.join(", "));
    }
    if v.len().is_multiple_of(4) {
        let cells: Vec<String> = v
            .chunks_exact(4)
            .map(|c| format!("{:#010x}", u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        return format!(" = <{}>", cells.join(" "));
    }
    let bytes: Vec<String> = v.iter().map(|b| format!("{b:02x}")).collect();
    format!(" = [{}]", bytes.join(" "))
}

/// How the kernel will find its CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuMethod {
    /// Through the loader's pen: per-CPU release words and the park address.
    SpinTable {
        release: Vec<(String, u64)>,
        park: u64,
    },
    /// Through firmware PSCI (the pen is gone).
    Psci,
}

/// A CPU node whose CPU cannot be handed on (it did not arrive, or is lost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCpu {
    pub path: String,
    /// Its slot in the pen, `(cpu-release-addr, cpu-park-addr)`, when it has one: the node
    /// keeps pointing at it (spin-table), so a later loader can still take the CPU over
    /// should it arrive late (docs/protocol.md §6).
    pub slot: Option<(u64, u64)>,
}

fn set_spin_table(node: &mut DeviceTreeNode, release: u64, park: u64) {
    node.add_property(DeviceTreeProperty::new_unchecked(
        "enable-method",
        "spin-table",
    ));
    // 64-bit values: two cells, as Linux's of_property_read_u64 needs.
    node.add_property(DeviceTreeProperty::new_unchecked(
        "cpu-release-addr",
        release,
    ));
    node.add_property(DeviceTreeProperty::new_unchecked("cpu-park-addr", park));
}

fn status_is_fail(node: &DeviceTreeNode) -> bool {
    node.property("status")
        .is_some_and(|p| p.value().starts_with(b"fail"))
}

/// Rewrites every cpu node's enable-method (never mixing methods among the CPUs handed on),
/// marks the nodes in `failed` `status = "fail"` (Linux skips such nodes; a node that has a
/// pen slot keeps pointing at it, so a late arrival stays reclaimable), gives a CPU handed on
/// whose node an earlier loader failed `status = "okay"` again, removes any cpu-map when a
/// node failed (it would reference a CPU the kernel does not have), and replaces the
/// /memreserve/ table with `memreserve`.
pub fn apply_cpus(
    tree: &mut DeviceTree,
    cpu_paths: &[String],
    method: &CpuMethod,
    failed: &[FailedCpu],
    memreserve: &[(u64, u64)],
) -> Result<(), String> {
    if !failed.is_empty() {
        if let Some(cpus) = tree.find_node_mut("/cpus") {
            cpus.remove_child("cpu-map");
        }
    }
    for f in failed {
        let Ok(node) = find_mut(tree, &f.path) else {
            continue;
        };
        node.remove_property("status");
        node.add_property(DeviceTreeProperty::new_unchecked("status", "fail"));
        if let Some((release, park)) = f.slot {
            node.remove_property("enable-method");
            node.remove_property("cpu-release-addr");
            node.remove_property("cpu-park-addr");
            set_spin_table(node, release, park);
        }
    }
    for path in cpu_paths
        .iter()
        .filter(|p| !failed.iter().any(|f| &f.path == *p))
    {
        let node = find_mut(tree, path)?;
        node.remove_property("enable-method");
        node.remove_property("cpu-release-addr");
        node.remove_property("cpu-park-addr");
        if status_is_fail(node) {
            node.remove_property("status");
            node.add_property(DeviceTreeProperty::new_unchecked("status", "okay"));
        }
        match method {
            CpuMethod::Psci => {
                node.add_property(DeviceTreeProperty::new_unchecked("enable-method", "psci"));
            }
            CpuMethod::SpinTable { release, park } => {
                let addr = release
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, a)| *a)
                    .ok_or_else(|| format!("{path}: no pen slot"))?;
                set_spin_table(node, addr, *park);
            }
        }
    }
    set_memreserve(tree, memreserve);
    Ok(())
}

/// Replaces the /memreserve/ table with `memreserve` (address, size), in order.
pub fn set_memreserve(tree: &mut DeviceTree, memreserve: &[(u64, u64)]) {
    tree.memory_reservations = memreserve
        .iter()
        .map(|&(a, s)| dtoolkit::memreserve::MemoryReservation::new(a, s))
        .collect();
}

/// The names of /memreserve/ entries as (addr, size).
pub fn memreserves(tree: &DeviceTree) -> Vec<(u64, u64)> {
    tree.memory_reservations
        .iter()
        .map(|r| (r.address(), r.size()))
        .collect()
}

pub fn describe_err(e: impl ToString) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRT: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-el2-gicv3-smp4.dtb");

    /// Fuzz regression fdt_edit/set-invalid-property-name: `fdt set` of a
    /// property named `regpl011@90000000` used to be stored and left a tree
    /// that no longer parsed.
    #[test]
    fn fuzz_regression_set_invalid_property_name() {
        let input =
            include_bytes!("../../tests/fuzz/regressions/fdt_edit/set-invalid-property-name.bin");
        let n = usize::from(u16::from_le_bytes([input[0], input[1]]));
        let (mut t, _) = load(&input[2..2 + n]).unwrap();
        let text = core::str::from_utf8(&input[2 + n..]).unwrap();
        let line = text.lines().next().unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(w[0], "set");
        let v = parse_value(&w[3..]).unwrap();
        assert!(set_property(&mut t, w[1], w[2], v).is_err());
        assert!(crate::dt::parse(&store(&t, 0).unwrap()).is_ok());
    }

    /// Fuzz regression fdt_edit/set-then-print-sibling-unit-address: a tree
    /// with `cpus@8000000` listed before `cpus`. `fdt set /cpus/cpu@1` edited
    /// `/cpus` (exact) while `fdt print` and the next load looked in
    /// `cpus@8000000` (dtoolkit's `find_node` takes the first `cpus@...`).
    #[test]
    fn fuzz_regression_sibling_unit_address() {
        let input = include_bytes!(
            "../../tests/fuzz/regressions/fdt_edit/set-then-print-sibling-unit-address.bin"
        );
        let n = usize::from(u16::from_le_bytes([input[0], input[1]]));
        let (mut t, info) = load(&input[2..2 + n]).unwrap();
        // The parser reads the exact /cpus too.
        assert!(
            info.cpus.iter().any(|c| c.path == "/cpus/cpu@1"),
            "{:?}",
            info.cpus
        );
        set_property(
            &mut t,
            "/cpus/cpu@1",
            "enable-method",
            b"spin-table\0".to_vec(),
        )
        .unwrap();
        assert!(print(&t, "/cpus/cpu@1").unwrap().contains("\"spin-table\""));
        let (back, _) = load(&store(&t, 0).unwrap()).unwrap();
        let node = find(&back, "/cpus/cpu@1").unwrap();
        assert!(node
            .properties()
            .any(|p| p.name() == "enable-method" && p.value() == b"spin-table\0"));
        // Without a unit address a component still finds `name@...` when no exact name exists.
        assert_eq!(
            find(&back, "/memory")
                .map(|n| n.name().to_string())
                .as_deref(),
            Some("memory@40000000")
        );
        assert!(find(&back, "/nope").is_none() && find(&back, "cpus").is_none());
    }

    #[test]
    fn chosen_fixups_roundtrip() {
        let (mut t, _) = load(VIRT).unwrap();
        apply_chosen(
            &mut t,
            &ChosenFixups {
                bootargs: Some("console=ttyAMA0 quiet".into()),
                initrd: Some((0x4800_0000, 0x4810_0000)),
                ..ChosenFixups::default()
            },
        );
        let out = store(&t, 0).unwrap();
        let info = dt::parse(&out).unwrap();
        assert_eq!(
            info.chosen.bootargs.as_deref(),
            Some("console=ttyAMA0 quiet")
        );
        assert_eq!(
            info.chosen.initrd.map(|r| (r.base, r.size)),
            Some((0x4800_0000, 0x10_0000))
        );
        assert!(info.chosen.stdout_path.is_some(), "stdout-path kept");
        // Replacing: no stale initrd survives.
        let (mut t2, _) = load(&out).unwrap();
        apply_chosen(&mut t2, &ChosenFixups::default());
        let info2 = dt::parse(&store(&t2, 0).unwrap()).unwrap();
        assert!(info2.chosen.initrd.is_none());
        assert_eq!(
            info2.chosen.bootargs.as_deref(),
            Some("console=ttyAMA0 quiet")
        );
    }

    #[test]
    fn kaslr_seed_removed_when_nonzero() {
        let (mut t, _) = load(VIRT).unwrap();
        set_property(
            &mut t,
            "/chosen",
            "kaslr-seed",
            [1u8, 2, 3, 4, 5, 6, 7, 8].to_vec(),
        )
        .unwrap();
        apply_chosen(&mut t, &ChosenFixups::default());
        assert!(t
            .find_node("/chosen")
            .unwrap()
            .property("kaslr-seed")
            .is_none());
        set_property(&mut t, "/chosen", "kaslr-seed", [0u8; 8].to_vec()).unwrap();
        apply_chosen(&mut t, &ChosenFixups::default());
        assert!(t
            .find_node("/chosen")
            .unwrap()
            .property("kaslr-seed")
            .is_some());
    }

    #[test]
    fn kaslr_seed_kept_when_asked_and_rng_seed_added_only_when_missing() {
        let (mut t, _) = load(VIRT).unwrap();
        set_kaslr_seed(&mut t, 0x1122_3344_5566_7788);
        remove(&mut t, "/chosen", Some("rng-seed")).ok();
        apply_chosen(
            &mut t,
            &ChosenFixups {
                keep_kaslr_seed: true,
                rng_seed: Some(alloc::vec![7u8; 32]),
                ..ChosenFixups::default()
            },
        );
        let c = t.find_node("/chosen").unwrap();
        assert_eq!(
            c.property("kaslr-seed").unwrap().value(),
            &0x1122_3344_5566_7788u64.to_be_bytes()
        );
        assert_eq!(c.property("rng-seed").unwrap().value(), &[7u8; 32]);
        // An rng-seed already there stays as it is.
        apply_chosen(
            &mut t,
            &ChosenFixups {
                rng_seed: Some(alloc::vec![9u8; 32]),
                ..ChosenFixups::default()
            },
        );
        let c = t.find_node("/chosen").unwrap();
        assert_eq!(c.property("rng-seed").unwrap().value(), &[7u8; 32]);
        assert!(c.property("kaslr-seed").is_none(), "not kept unless asked");
    }

    #[test]
    fn memory_banks_replace_the_dts_memory_nodes() {
        let (mut t, _) = load(VIRT).unwrap();
        apply_memory(
            &mut t,
            &[(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x1000_0000)],
        )
        .unwrap();
        let info = dt::parse(&store(&t, 0).unwrap()).unwrap();
        let m: Vec<(u64, u64)> = info.memory.iter().map(|r| (r.base, r.size)).collect();
        assert_eq!(
            m,
            alloc::vec![(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x1000_0000)]
        );
        // A size that does not fit one cell is refused, the tree unchanged.
        let mut small = DeviceTree::new();
        small
            .root
            .add_property(DeviceTreeProperty::new_unchecked("#address-cells", 1u32));
        small
            .root
            .add_property(DeviceTreeProperty::new_unchecked("#size-cells", 1u32));
        let before = small.clone();
        assert!(apply_memory(&mut small, &[(0x1_0000_0000, 1)]).is_err());
        assert_eq!(small, before);
    }

    #[test]
    fn fdt_command_edits() {
        let (mut t, _) = load(VIRT).unwrap();
        set_property(
            &mut t,
            "/chosen",
            "parkboot,test",
            parse_value(&["<0x1", "2>"]).unwrap(),
        )
        .unwrap();
        set_property(&mut t, "/chosen", "s", parse_value(&["\"hello\""]).unwrap()).unwrap();
        set_property(
            &mut t,
            "/chosen",
            "b",
            parse_value(&["[0a", "0b]"]).unwrap(),
        )
        .unwrap();
        let p = print(&t, "/chosen").unwrap();
        assert!(
            p.contains("parkboot,test = <0x00000001 0x00000002>;"),
            "{p}"
        );
        assert!(p.contains("s = \"hello\";"), "{p}");
        assert!(p.contains("b = [0a 0b];"), "{p}");
        remove(&mut t, "/chosen", Some("s")).unwrap();
        assert!(remove(&mut t, "/chosen", Some("s")).is_err());
        assert!(set_property(&mut t, "/nope", "x", Vec::new()).is_err());
        // Only the spec's characters: a name with '@', '/', '{' or a quote would make a tree
        // nothing reads back (fuzz regression fdt_edit/set-invalid-property-name).
        for bad in [
            "reg@1",
            "a/b",
            "x{",
            "q\"",
            "",
            "a b",
            "0123456789012345678901234567890123",
        ] {
            let e = set_property(&mut t, "/chosen", bad, Vec::new()).unwrap_err();
            assert!(e.starts_with("bad property name"), "{e}");
        }
        for good in ["linux,initrd-start", "#size-cells", "a.b_c+d?e-f"] {
            set_property(&mut t, "/chosen", good, alloc::vec![1]).unwrap();
        }
        assert!(crate::dt::parse(&store(&t, 0).unwrap()).is_ok());
        assert!(parse_value(&["<0x100000000>"]).is_err());
        assert!(parse_value(&["[0]"]).is_err());
        remove(&mut t, "/chosen", None).unwrap();
        assert!(print(&t, "/chosen").is_err());
        assert!(remove(&mut t, "/", None).is_err());
        let root = print(&t, "/").unwrap();
        assert!(root.starts_with("/ {"), "{root}");
    }

    #[test]
    fn cpus_become_spin_table_through_the_pen() {
        let (mut t, info) = load(VIRT).unwrap();
        let paths: Vec<String> = info.cpus.iter().map(|c| c.path.clone()).collect();
        let release: Vec<(String, u64)> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), 0x7fff_0300 + 64 * i as u64))
            .collect();
        apply_cpus(
            &mut t,
            &paths[..3],
            &CpuMethod::SpinTable {
                release,
                park: 0x7fff_0088,
            },
            &[],
            &[(0x7fff_0000, 0x1000)],
        )
        .unwrap();
        let out = store(&t, 0).unwrap();
        let mut i2 = dt::parse(&out).unwrap();
        assert_eq!(i2.cpus.len(), 4);
        i2.cpus.truncate(3);
        assert_eq!(i2.memreserve.len(), 1);
        assert_eq!(
            (i2.memreserve[0].base, i2.memreserve[0].size),
            (0x7fff_0000, 0x1000)
        );
        for (i, c) in i2.cpus.iter().enumerate() {
            assert_eq!(c.enable_method, Some(dt::EnableMethod::SpinTable), "{c:?}");
            assert_eq!(
                c.release_addr,
                dt::Prop64::Value(0x7fff_0300 + 64 * i as u64)
            );
            assert_eq!(c.park_addr, dt::Prop64::Value(0x7fff_0088));
        }
        // And back to PSCI: no spin-table leftovers, no reservation.
        let (mut t3, i3) = load(&out).unwrap();
        let p3: Vec<String> = i3.cpus.iter().map(|c| c.path.clone()).collect();
        apply_cpus(&mut t3, &p3, &CpuMethod::Psci, &[], &[]).unwrap();
        let i4 = dt::parse(&store(&t3, 0).unwrap()).unwrap();
        assert!(i4.memreserve.is_empty());
        for c in &i4.cpus {
            assert_eq!(c.enable_method, Some(dt::EnableMethod::Psci));
            assert_eq!(c.release_addr, dt::Prop64::Absent);
        }
    }

    #[test]
    fn cpus_that_did_not_come_are_failed_not_deleted() {
        // #17 item 6: a CPU that did not arrive keeps its node with status = "fail" (Linux
        // skips it) and its slot, so a later loader can take it over if it arrives late; a
        // lost CPU (no slot in our pen) keeps what it had.
        let (mut t, info) = load(VIRT).unwrap();
        let paths: Vec<String> = info.cpus.iter().map(|c| c.path.clone()).collect();
        let failed = alloc::vec![
            FailedCpu {
                path: paths[2].clone(),
                slot: Some((0x7fff_0380, 0x7fff_0088)),
            },
            FailedCpu {
                path: paths[3].clone(),
                slot: None,
            },
        ];
        apply_cpus(
            &mut t,
            &paths,
            &CpuMethod::Psci,
            &failed,
            &[(0x7fff_0000, 0x2000)],
        )
        .unwrap();
        let out = store(&t, 0).unwrap();
        let i2 = dt::parse(&out).unwrap();
        assert_eq!(i2.cpus.len(), 4, "no node deleted");
        assert!(find(&t, "/cpus/cpu-map").is_none());
        for c in &i2.cpus[..2] {
            assert_eq!(c.status, dt::Status::Okay);
            assert_eq!(c.enable_method, Some(dt::EnableMethod::Psci));
        }
        let c2 = &i2.cpus[2];
        assert_eq!(c2.status, dt::Status::Fail);
        assert_eq!(c2.enable_method, Some(dt::EnableMethod::SpinTable));
        assert_eq!(c2.release_addr, dt::Prop64::Value(0x7fff_0380));
        assert_eq!(c2.park_addr, dt::Prop64::Value(0x7fff_0088));
        let c3 = &i2.cpus[3];
        assert_eq!(c3.status, dt::Status::Fail);
        assert_eq!(
            c3.enable_method,
            Some(dt::EnableMethod::Psci),
            "left as it was"
        );
        // The next loader got the CPU back: its node is okay again, with the new method.
        let (mut t2, i3) = load(&out).unwrap();
        let p2: Vec<String> = i3.cpus.iter().map(|c| c.path.clone()).collect();
        let release: Vec<(String, u64)> = p2
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), 0x7fff_0300 + 64 * i as u64))
            .collect();
        apply_cpus(
            &mut t2,
            &p2,
            &CpuMethod::SpinTable {
                release,
                park: 0x7fff_0088,
            },
            &[],
            &[(0x7fff_0000, 0x2000)],
        )
        .unwrap();
        let i4 = dt::parse(&store(&t2, 0).unwrap()).unwrap();
        assert!(i4.cpus.iter().all(|c| c.status == dt::Status::Okay));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(load(b"garbage").is_err());
        assert!(load(&VIRT[..100]).is_err());
    }
}
