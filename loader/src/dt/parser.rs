//! The parser proper: one pass over a validated [`Fdt`] that fills a [`DtInfo`], the root's
//! cells, `/memreserve/`, `/memory`, `/reserved-memory` and `/config/environment`. CPUs
//! (`cpus.rs`), devices (`devices.rs`) and `/chosen` (`chosen.rs`) are further `impl` blocks.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};

use super::cells::*;
use super::*;

pub(super) struct Parser<'a> {
    pub(super) fdt: Fdt<'a>,
    pub(super) info: DtInfo,
    pub(super) mmio_full: bool,
}

impl<'a> Parser<'a> {
    pub(super) fn warn(&mut self, path: &str, kind: WarningKind) {
        if self.info.warnings.len() < MAX_WARNINGS {
            self.info.warnings.push(DtWarning {
                path: path.to_owned(),
                kind,
            });
        } else {
            self.info.warnings_dropped = self.info.warnings_dropped.saturating_add(1);
        }
    }

    pub(super) fn cells_prop(
        &mut self,
        node: &FdtNode<'a>,
        path: &str,
        name: &'static str,
        default: u32,
    ) -> u32 {
        match prop(node, name) {
            None => default,
            Some(v) => match u32_of(v) {
                Some(n) => n,
                None => {
                    self.warn(
                        path,
                        WarningKind::BadLength {
                            prop: name,
                            len: v.len(),
                            expected: "4",
                        },
                    );
                    default
                }
            },
        }
    }

    /// `#address-cells` / `#size-cells` a node applies to its children.
    pub(super) fn cell_sizes(&mut self, node: &FdtNode<'a>, path: &str) -> CellSizes {
        CellSizes {
            address: self.cells_prop(node, path, "#address-cells", CellSizes::DEFAULT.address),
            size: self.cells_prop(node, path, "#size-cells", CellSizes::DEFAULT.size),
        }
    }

    pub(super) fn string_prop(
        &mut self,
        node: &FdtNode<'a>,
        path: &str,
        name: &'static str,
        max: usize,
    ) -> Option<&'a str> {
        let v = prop(node, name)?;
        let Some(s) = first_str(v) else {
            self.warn(path, WarningKind::NotString { prop: name });
            return None;
        };
        if s.len() > max {
            self.warn(
                path,
                WarningKind::TooLong {
                    prop: name,
                    len: s.len(),
                    limit: max,
                },
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn string_list_prop(
        &mut self,
        node: &FdtNode<'a>,
        path: &str,
        name: &'static str,
    ) -> Vec<String> {
        let Some(v) = prop(node, name) else {
            return Vec::new();
        };
        let Some(list) = str_list(v) else {
            self.warn(path, WarningKind::NotString { prop: name });
            return Vec::new();
        };
        let mut out = Vec::with_capacity(list.len());
        for s in list {
            if s.len() > MAX_STRING {
                self.warn(
                    path,
                    WarningKind::TooLong {
                        prop: name,
                        len: s.len(),
                        limit: MAX_STRING,
                    },
                );
            } else {
                out.push(s.to_owned());
            }
        }
        out
    }

    /// Decoded and translated `reg` of a node; problems become warnings.
    pub(super) fn regs(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) -> Vec<Region> {
        let Some(v) = prop(node, "reg") else {
            return Vec::new();
        };
        let raw = match decode_reg(v, bus.cells) {
            Ok(r) => r,
            Err(e) => {
                self.warn(path, WarningKind::BadReg(e));
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(raw.len());
        for r in raw {
            match bus.xlat.translate(r) {
                Some(t) => out.push(t),
                None => self.warn(path, WarningKind::Untranslatable { addr: r.base }),
            }
        }
        out
    }

    pub(super) fn run(&mut self) {
        let root = self.fdt.root();
        self.info.model = self
            .string_prop(&root, "/", "model", MAX_STRING)
            .map(ToOwned::to_owned);
        self.info.compatible = self.string_list_prop(&root, "/", "compatible");
        let root_cells = self.cell_sizes(&root, "/");
        self.info.root_cells = root_cells;

        self.memreserve();
        self.memory(&root, root_cells);
        self.reserved_memory(root_cells);
        self.cpus();
        self.psci(&root);
        let root_bus = Bus {
            cells: root_cells,
            xlat: Xlat::Identity,
        };
        self.walk(&root, "/", &root_bus, 0);
        self.chosen();
        self.config_env();
    }

    /// `/config/environment`: every property a string variable (U-Boot's
    /// `env_import_fdt`); anything else is a warning, never an error.
    pub(super) fn config_env(&mut self) {
        let Some(node) = self
            .top_node("config")
            .and_then(|c| c.children().find(|e| e.name() == "environment"))
        else {
            return;
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for p in node.properties() {
            let name = p.name();
            let value = p.value_as::<&[u8]>().unwrap_or(&[]);
            let why = if name.len() > MAX_NODE_NAME || shell::check_name(name).is_err() {
                Some("is not a valid variable name")
            } else if out.len() >= MAX_ENV_PROPS {
                Some("is beyond the 128 kept")
            } else {
                match value.split_last() {
                    Some((0, body)) if body.len() > MAX_BOOTARGS => Some("is too long"),
                    Some((0, body)) => match core::str::from_utf8(body) {
                        Ok(s) if s.chars().all(|c| c == '\t' || !c.is_control()) => {
                            out.push((name.to_owned(), s.to_owned()));
                            None
                        }
                        _ => Some("is not one printable UTF-8 string"),
                    },
                    _ => Some("is not a NUL-terminated string"),
                }
            };
            if let Some(why) = why {
                let name = name
                    .chars()
                    .take(MAX_NODE_NAME)
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect();
                self.warn(ENV_NODE, WarningKind::BadEnvProperty { name, why });
            }
        }
        self.info.config_env = out;
    }

    pub(super) fn memreserve(&mut self) {
        let fdt = self.fdt;
        for r in fdt.memory_reservations() {
            let (addr, size) = (r.address(), r.size());
            if size == 0 {
                self.warn("/memreserve/", WarningKind::ZeroSizeMemreserve { addr });
                continue;
            }
            if addr.checked_add(size).is_none() {
                self.warn(
                    "/memreserve/",
                    WarningKind::MemreserveOverflow { addr, size },
                );
                continue;
            }
            if self.info.memreserve.len() >= MAX_RESERVATIONS {
                self.warn(
                    "/memreserve/",
                    WarningKind::TooMany {
                        what: "/memreserve/ entries",
                        limit: MAX_RESERVATIONS,
                    },
                );
                break;
            }
            self.info.memreserve.push(Region::new(addr, size));
        }
    }

    pub(super) fn memory(&mut self, root: &FdtNode<'a>, cells: CellSizes) {
        let bus = Bus {
            cells,
            xlat: Xlat::Identity,
        };
        for node in root.children() {
            let is_memory =
                prop(&node, "device_type").is_some_and(|v| first_str(v) == Some("memory"));
            if !is_memory || !status_of(&node).is_enabled() {
                continue;
            }
            let path = join_path("/", node.name());
            for r in self.regs(&node, &path, &bus) {
                if r.size == 0 {
                    continue;
                }
                if self.info.memory.len() >= MAX_BANKS {
                    self.warn(
                        &path,
                        WarningKind::TooMany {
                            what: "memory banks",
                            limit: MAX_BANKS,
                        },
                    );
                    break;
                }
                self.info.memory.push(r);
            }
        }
        self.info.memory.sort_unstable();
        let overlap = self
            .info
            .memory
            .windows(2)
            .any(|w| matches!(w, [a, b] if b.base < a.end()));
        if overlap {
            self.warn("/memory", WarningKind::BanksOverlap);
        }
    }

    pub(super) fn reserved_memory(&mut self, root_cells: CellSizes) {
        let Some(rm) = self.top_node("reserved-memory") else {
            return;
        };
        let path = join_path("/", rm.name());
        let cells = self.cell_sizes(&rm, &path);
        if cells != root_cells || prop(&rm, "ranges").is_none() {
            self.warn(&path, WarningKind::ReservedMemoryFormat);
        }
        let bus = Bus {
            cells,
            xlat: Xlat::Identity,
        };
        for child in rm.children() {
            if !status_of(&child).is_enabled() {
                continue;
            }
            let cpath = join_path(&path, child.name());
            let no_map = prop(&child, "no-map").is_some();
            let reusable = prop(&child, "reusable").is_some();
            for region in self.regs(&child, &cpath, &bus) {
                if region.size == 0 {
                    continue;
                }
                if self.info.reserved_memory.len() >= MAX_RESERVATIONS {
                    self.warn(
                        &cpath,
                        WarningKind::TooMany {
                            what: "reserved-memory regions",
                            limit: MAX_RESERVATIONS,
                        },
                    );
                    return;
                }
                self.info.reserved_memory.push(ReservedMemory {
                    name: child.name().to_owned(),
                    region,
                    no_map,
                    reusable,
                });
            }
        }
    }
}
