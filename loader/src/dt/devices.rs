//! Device nodes: the walk over the tree through bus translations, MMIO regions, virtio,
//! GIC, timer, PCI host bridges.

use alloc::borrow::ToOwned;
use alloc::vec::Vec;

use dtoolkit::fdt::FdtNode;
use dtoolkit::Node;

use super::cells::*;
use super::parser::Parser;
use super::*;

impl<'a> Parser<'a> {
    /// Walks device nodes below `node`, collecting MMIO regions and known devices.
    pub(super) fn walk(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus, depth: usize) {
        if depth >= MAX_DEPTH {
            return; // unreachable after check_shape; keeps recursion bounded regardless
        }
        for child in node.children() {
            let name = child.name();
            if depth == 0 && is_special_root_child(&child, name) {
                continue;
            }
            let cpath = join_path(path, name);
            self.visit(&child, &cpath, bus);
            if let Some(child_bus) = self.child_bus(&child, &cpath, bus) {
                self.walk(&child, &cpath, &child_bus, depth.saturating_add(1));
            }
        }
    }

    /// The bus context for `node`'s children, if they live in CPU-addressable space.
    pub(super) fn child_bus(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) -> Option<Bus> {
        let ranges = prop(node, "ranges")?;
        node.children().next()?;
        let cells = self.cell_sizes(node, path);
        if cells.address > 2 {
            return None; // e.g. a PCI bus: children are PCI devices, not MMIO
        }
        if ranges.is_empty() {
            return Some(Bus {
                cells,
                xlat: bus.xlat.clone(),
            });
        }
        let bad = |address: u32, size: u32| {
            WarningKind::BadRanges(RegError::UnsupportedCells { address, size })
        };
        if !(1..=2).contains(&cells.address)
            || !(1..=2).contains(&cells.size)
            || !(1..=2).contains(&bus.cells.address)
        {
            self.warn(path, bad(cells.address, cells.size));
            return None;
        }
        let ca = cells_bytes(cells.address).unwrap_or(0);
        let pa = cells_bytes(bus.cells.address).unwrap_or(0);
        let sz = cells_bytes(cells.size).unwrap_or(0);
        let entry = ca.saturating_add(pa).saturating_add(sz);
        if entry == 0 || !ranges.len().is_multiple_of(entry) {
            self.warn(
                path,
                WarningKind::BadRanges(RegError::BadLength {
                    len: ranges.len(),
                    entry,
                }),
            );
            return None;
        }
        let mut windows = Vec::new();
        for chunk in ranges.chunks_exact(entry).take(MAX_WINDOWS) {
            let (c, rest) = chunk.split_at(ca);
            let (p, s) = rest.split_at(pa);
            let child = cells_value(c).unwrap_or(0);
            let parent = cells_value(p).unwrap_or(0);
            let size = cells_value(s).unwrap_or(0);
            if child.checked_add(size).is_none() || parent.checked_add(size).is_none() {
                self.warn(
                    path,
                    WarningKind::BadRanges(RegError::Overflow { base: parent, size }),
                );
                continue;
            }
            match bus.xlat.translate(Region::new(parent, size)) {
                Some(t) => windows.push(Window {
                    child,
                    cpu: t.base,
                    size,
                }),
                None => self.warn(path, WarningKind::Untranslatable { addr: parent }),
            }
        }
        if windows.is_empty() {
            return None;
        }
        Some(Bus {
            cells,
            xlat: Xlat::Windows(windows),
        })
    }

    pub(super) fn push_mmio(
        &mut self,
        path: &str,
        region: Region,
        compatible: Option<&str>,
        enabled: bool,
        pci_window: Option<PciSpace>,
    ) {
        if self.info.mmio.len() >= MAX_MMIO {
            if !self.mmio_full {
                self.mmio_full = true;
                self.warn(
                    path,
                    WarningKind::TooMany {
                        what: "MMIO regions",
                        limit: MAX_MMIO,
                    },
                );
            }
            return;
        }
        self.info.mmio.push(MmioRegion {
            region,
            path: path.to_owned(),
            compatible: compatible.map(ToOwned::to_owned),
            enabled,
            pci_window,
        });
    }

    /// Classifies one device node.
    pub(super) fn visit(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) {
        let regs = self.regs(node, path, bus);
        let compat = prop(node, "compatible").unwrap_or(&[]);
        let first_compat = first_str(compat).filter(|c| c.len() <= MAX_STRING);
        let enabled = status_of(node).is_enabled();
        for r in &regs {
            self.push_mmio(path, *r, first_compat, enabled, None);
        }
        if !enabled {
            return;
        }
        if has_string(compat, "virtio,mmio") {
            if let Some(&region) = regs.first() {
                if self.info.virtio_mmio.len() < MAX_VIRTIO {
                    self.info.virtio_mmio.push(VirtioMmio {
                        path: path.to_owned(),
                        region,
                    });
                } else {
                    self.warn(
                        path,
                        WarningKind::TooMany {
                            what: "virtio-mmio devices",
                            limit: MAX_VIRTIO,
                        },
                    );
                }
            }
        }
        if has_string(compat, "pci-host-ecam-generic") {
            if let Some(&ecam) = regs.first() {
                self.pci_host(node, path, bus, ecam);
            }
        }
        if self.info.gic.is_none() {
            let version = if has_string(compat, "arm,gic-v3") {
                Some(GicVersion::V3)
            } else if [
                "arm,gic-400",
                "arm,cortex-a15-gic",
                "arm,cortex-a9-gic",
                "arm,cortex-a7-gic",
            ]
            .iter()
            .any(|c| has_string(compat, c))
            {
                Some(GicVersion::V2)
            } else {
                None
            };
            if let Some(version) = version {
                let redist_regions = match prop(node, "#redistributor-regions") {
                    None => 1,
                    Some(v) => match u32_of(v) {
                        Some(n) if (1..=MAX_REDIST_REGIONS).contains(&n) => n,
                        _ => {
                            self.warn(
                                path,
                                WarningKind::BadLength {
                                    prop: "#redistributor-regions",
                                    len: v.len(),
                                    expected: "one cell, 1..=16",
                                },
                            );
                            1
                        }
                    },
                };
                self.info.gic = Some(Gic {
                    version,
                    path: path.to_owned(),
                    regs: regs.clone(),
                    redist_regions,
                });
            }
        }
        let is_timer =
            has_string(compat, "arm,armv8-timer") || has_string(compat, "arm,armv7-timer");
        if is_timer && self.info.timer_irqs.is_none() {
            if let Some(v) = prop(node, "interrupts") {
                match timer_irqs(v) {
                    Some(t) => self.info.timer_irqs = Some(t),
                    None => self.warn(
                        path,
                        WarningKind::BadLength {
                            prop: "interrupts",
                            len: v.len(),
                            expected: "GIC triples (type, number, flags)",
                        },
                    ),
                }
            }
        }
        if is_timer && self.info.timer_frequency.is_none() {
            if let Some(v) = prop(node, "clock-frequency") {
                match u32_of(v) {
                    Some(hz) => self.info.timer_frequency = Some(hz),
                    None => self.warn(
                        path,
                        WarningKind::BadLength {
                            prop: "clock-frequency",
                            len: v.len(),
                            expected: "4",
                        },
                    ),
                }
            }
        }
    }

    pub(super) fn pci_host(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus, ecam: Region) {
        if self.info.pci_hosts.len() >= MAX_PCI_HOSTS {
            self.warn(
                path,
                WarningKind::TooMany {
                    what: "PCI host bridges",
                    limit: MAX_PCI_HOSTS,
                },
            );
            return;
        }
        // bus-range: default 0..=255.
        let (mut start, mut end) = (0u32, 255u32);
        if let Some(v) = prop(node, "bus-range") {
            match (v.len(), be32_at(v, 0), be32_at(v, 4)) {
                (8, Some(s), Some(e)) if s <= e && e <= 255 => (start, end) = (s, e),
                (8, Some(s), Some(e)) => {
                    self.warn(path, WarningKind::BadBusRange { start: s, end: e })
                }
                (n, ..) => self.warn(
                    path,
                    WarningKind::BadLength {
                        prop: "bus-range",
                        len: n,
                        expected: "8",
                    },
                ),
            }
        }
        // Each bus takes 1 MiB of ECAM.
        let buses_covered = ecam.size >> 20;
        let wanted = u64::from(end.saturating_sub(start)).saturating_add(1);
        if buses_covered < wanted {
            let covered = u32::try_from(buses_covered).unwrap_or(u32::MAX);
            self.warn(
                path,
                WarningKind::EcamTooSmall {
                    size: ecam.size,
                    buses: covered,
                },
            );
            if covered == 0 {
                return;
            }
            end = start.saturating_add(covered.saturating_sub(1)).min(255);
        }
        let windows = self.pci_windows(node, path, bus);
        for w in &windows {
            self.push_mmio(
                path,
                Region::new(w.cpu_addr, w.size),
                Some("pci-host-ecam-generic"),
                true,
                Some(w.space),
            );
        }
        self.info.pci_hosts.push(PciHost {
            path: path.to_owned(),
            ecam,
            bus_start: u8::try_from(start).unwrap_or(0),
            bus_end: u8::try_from(end).unwrap_or(255),
            windows,
        });
    }

    pub(super) fn pci_windows(
        &mut self,
        node: &FdtNode<'a>,
        path: &str,
        bus: &Bus,
    ) -> Vec<PciWindow> {
        let mut out = Vec::new();
        let Some(ranges) = prop(node, "ranges") else {
            return out;
        };
        let cells = self.cell_sizes(node, path);
        if cells.address != 3
            || !(1..=2).contains(&cells.size)
            || !(1..=2).contains(&bus.cells.address)
        {
            self.warn(
                path,
                WarningKind::BadRanges(RegError::UnsupportedCells {
                    address: cells.address,
                    size: cells.size,
                }),
            );
            return out;
        }
        let pa = cells_bytes(bus.cells.address).unwrap_or(0);
        let sz = cells_bytes(cells.size).unwrap_or(0);
        let entry = 12usize.saturating_add(pa).saturating_add(sz);
        if !ranges.len().is_multiple_of(entry) {
            self.warn(
                path,
                WarningKind::BadRanges(RegError::BadLength {
                    len: ranges.len(),
                    entry,
                }),
            );
            return out;
        }
        for chunk in ranges.chunks_exact(entry).take(MAX_WINDOWS) {
            let (c, rest) = chunk.split_at(12);
            let (p, s) = rest.split_at(pa);
            let phys_hi = be32_at(c, 0).unwrap_or(0);
            let pci_addr = cells_value(c.get(4..12).unwrap_or(&[])).unwrap_or(0);
            let parent = cells_value(p).unwrap_or(0);
            let size = cells_value(s).unwrap_or(0);
            let space = match (phys_hi >> 24) & 3 {
                1 => PciSpace::Io,
                2 => PciSpace::Mem32,
                3 => PciSpace::Mem64,
                _ => {
                    self.warn(path, WarningKind::BadPciWindow { phys_hi });
                    continue;
                }
            };
            if size == 0 || pci_addr.checked_add(size).is_none() {
                self.warn(path, WarningKind::BadPciWindow { phys_hi });
                continue;
            }
            let Some(cpu) = bus.xlat.translate(Region::new(parent, size)) else {
                self.warn(path, WarningKind::Untranslatable { addr: parent });
                continue;
            };
            out.push(PciWindow {
                space,
                prefetchable: phys_hi & 0x4000_0000 != 0,
                pci_addr,
                cpu_addr: cpu.base,
                size,
            });
        }
        out
    }
}

/// Root children that are not devices.
pub(super) fn is_special_root_child(node: &FdtNode<'_>, name: &str) -> bool {
    let base = name.split('@').next().unwrap_or(name);
    matches!(
        base,
        "cpus"
            | "chosen"
            | "aliases"
            | "reserved-memory"
            | "memory"
            | "__symbols__"
            | "__fixups__"
            | "__local_fixups__"
    ) || prop(node, "device_type").is_some_and(|v| first_str(v) == Some("memory"))
}
