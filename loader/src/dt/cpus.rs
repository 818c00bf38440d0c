//! `/cpus` and `/psci`: CPU nodes, their enable methods and release addresses.

use dtoolkit::fdt::FdtNode;
use dtoolkit::Node;

use super::cells::*;
use super::parser::Parser;
use super::*;

impl<'a> Parser<'a> {
    pub(super) fn prop64(&mut self, node: &FdtNode<'a>, path: &str, name: &'static str) -> Prop64 {
        let Some(v) = prop(node, name) else {
            return Prop64::Absent;
        };
        match v.len() {
            8 => cells_value(v).map_or(Prop64::BadLength(8), Prop64::Value),
            4 => {
                let value = be32_at(v, 0).unwrap_or(0);
                self.warn(path, WarningKind::OneCell { prop: name, value });
                Prop64::OneCell(value)
            }
            n => {
                self.warn(
                    path,
                    WarningKind::BadLength {
                        prop: name,
                        len: n,
                        expected: "8 (two cells)",
                    },
                );
                Prop64::BadLength(n)
            }
        }
    }

    pub(super) fn cpus(&mut self) {
        let Some(cpus) = self.top_node("cpus") else {
            return;
        };
        let path = join_path("/", cpus.name());
        let cells = self.cell_sizes(&cpus, &path);
        let address = if (1..=2).contains(&cells.address) {
            cells.address
        } else {
            self.warn(
                &path,
                WarningKind::BadReg(RegError::UnsupportedCells {
                    address: cells.address,
                    size: cells.size,
                }),
            );
            return;
        };
        self.info.cpus_address_cells = address;
        let entry = cells_bytes(address).unwrap_or(4);
        let mut first_method: Option<EnableMethod> = None;
        let mut mixed = false;
        for node in cpus.children() {
            let is_cpu = prop(&node, "device_type").is_some_and(|v| first_str(v) == Some("cpu"));
            if !is_cpu {
                continue;
            }
            let cpath = join_path(&path, node.name());
            // MPIDR: the first address of reg (size cells are 0 for cpus; tolerate others).
            let mpidr = prop(&node, "reg").and_then(|v| cells_value(v.get(..entry)?));
            let Some(mpidr) = mpidr else {
                self.warn(&cpath, WarningKind::CpuWithoutReg);
                continue;
            };
            if self.info.cpus.iter().any(|c| c.mpidr == mpidr) {
                self.warn(&cpath, WarningKind::DuplicateMpidr { mpidr });
                continue;
            }
            if self.info.cpus.len() >= MAX_CPUS {
                self.warn(
                    &path,
                    WarningKind::TooMany {
                        what: "cpus",
                        limit: MAX_CPUS,
                    },
                );
                break;
            }
            let enable_method = self
                .string_prop(&node, &cpath, "enable-method", MAX_STRING)
                .map(EnableMethod::from_str);
            let release_addr = self.prop64(&node, &cpath, "cpu-release-addr");
            let park_addr = self.prop64(&node, &cpath, "cpu-park-addr");
            if enable_method == Some(EnableMethod::SpinTable) && release_addr == Prop64::Absent {
                self.warn(&cpath, WarningKind::SpinTableWithoutReleaseAddr);
            }
            let status = status_of(&node);
            if status.is_enabled() {
                match (&first_method, &enable_method) {
                    (None, Some(m)) => first_method = Some(m.clone()),
                    (Some(a), Some(b)) if a != b => mixed = true,
                    _ => {}
                }
            }
            self.info.cpus.push(Cpu {
                path: cpath,
                mpidr,
                enable_method,
                release_addr,
                park_addr,
                status,
            });
        }
        if mixed {
            self.warn(&path, WarningKind::MixedEnableMethods);
        }
    }

    pub(super) fn psci(&mut self, root: &FdtNode<'a>) {
        let Some(node) = root.children().find(|n| {
            prop(n, "compatible").is_some_and(|v| {
                has_string(v, "arm,psci")
                    || has_string(v, "arm,psci-0.2")
                    || has_string(v, "arm,psci-1.0")
            })
        }) else {
            return;
        };
        let path = join_path("/", node.name());
        if !status_of(&node).is_enabled() {
            return;
        }
        let compat = prop(&node, "compatible").unwrap_or(&[]);
        let version = if has_string(compat, "arm,psci-1.0") {
            PsciVersion::V1_0
        } else if has_string(compat, "arm,psci-0.2") {
            PsciVersion::V0_2
        } else if has_string(compat, "arm,psci") {
            PsciVersion::V0_1
        } else {
            self.warn(&path, WarningKind::PsciUnknownCompatible);
            return;
        };
        let conduit = match self.string_prop(&node, &path, "method", MAX_STRING) {
            Some("smc") => Conduit::Smc,
            Some("hvc") => Conduit::Hvc,
            _ => {
                self.warn(&path, WarningKind::PsciBadMethod);
                return;
            }
        };
        let mut id = |name: &'static str| -> Option<u32> {
            let v = prop(&node, name)?;
            let r = u32_of(v);
            if r.is_none() {
                self.warn(
                    &path,
                    WarningKind::BadLength {
                        prop: name,
                        len: v.len(),
                        expected: "4",
                    },
                );
            }
            r
        };
        let cpu_suspend = id("cpu_suspend");
        let cpu_off = id("cpu_off");
        let cpu_on = id("cpu_on");
        let migrate = id("migrate");
        self.info.psci = Some(Psci {
            version,
            conduit,
            cpu_suspend,
            cpu_off,
            cpu_on,
            migrate,
        });
    }
}
