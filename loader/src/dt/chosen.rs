//! `/chosen` (bootargs, initrd, stdout-path) and the console it resolves to.

use alloc::borrow::ToOwned;
use alloc::string::String;

use dtoolkit::fdt::FdtNode;
use dtoolkit::Node;

use super::cells::*;
use super::parser::Parser;
use super::*;

impl<'a> Parser<'a> {
    /// Resolves a path to its node and canonical path (full node names).
    pub(super) fn resolve(&self, path: &str) -> Option<(FdtNode<'a>, String)> {
        if !path.starts_with('/') {
            return None;
        }
        let mut node = self.fdt.root();
        let mut canon = String::new();
        for comp in path.split('/').filter(|s| !s.is_empty()) {
            node = node.child(comp)?;
            canon.push('/');
            canon.push_str(node.name());
        }
        if canon.is_empty() {
            canon.push('/');
        }
        Some((node, canon))
    }

    /// The root's child named exactly `name`, as Linux's `of_find_node_by_path`
    /// finds `/name` (a `name@1` sibling listed first is not it), and as
    /// `dtfix` edits it.
    pub(super) fn top_node(&self, name: &str) -> Option<FdtNode<'a>> {
        self.fdt.root().children().find(|c| c.name() == name)
    }

    pub(super) fn chosen(&mut self) {
        // The node named exactly "chosen" (as Linux uses), not a "chosen@0"
        // that happens to come first (fuzz regression chosen-unit-address-first).
        let Some(chosen) = self.top_node("chosen") else {
            return;
        };
        let path = "/chosen";
        self.info.chosen.bootargs = self
            .string_prop(&chosen, path, "bootargs", MAX_BOOTARGS)
            .map(ToOwned::to_owned);
        let stdout = if prop(&chosen, "stdout-path").is_some() {
            self.string_prop(&chosen, path, "stdout-path", MAX_STRING)
        } else {
            self.string_prop(&chosen, path, "linux,stdout-path", MAX_STRING)
        };
        self.info.chosen.stdout_path = stdout.map(ToOwned::to_owned);

        let mut initrd_val = |name: &'static str| -> Option<u64> {
            let v = prop(&chosen, name)?;
            let r = match v.len() {
                4 | 8 => cells_value(v),
                _ => None,
            };
            if r.is_none() {
                self.warn(
                    path,
                    WarningKind::BadLength {
                        prop: name,
                        len: v.len(),
                        expected: "4 or 8",
                    },
                );
            }
            r
        };
        let start = initrd_val("linux,initrd-start");
        let end = initrd_val("linux,initrd-end");
        if let (Some(start), Some(end)) = (start, end) {
            match end.checked_sub(start) {
                Some(size) => self.info.chosen.initrd = Some(Region::new(start, size)),
                None => self.warn(path, WarningKind::InitrdInverted { start, end }),
            }
        }

        if let Some(sp) = stdout {
            self.console(sp);
        }
    }

    pub(super) fn console(&mut self, stdout_path: &str) {
        let (target, options) = match stdout_path.split_once(':') {
            Some((t, o)) => (t, Some(o)),
            None => (stdout_path, None),
        };
        let full: Option<String> = if target.starts_with('/') {
            Some(target.to_owned())
        } else {
            // alias[/rest]
            let (alias, rest) = match target.split_once('/') {
                Some((a, r)) => (a, Some(r)),
                None => (target, None),
            };
            self.top_node("aliases")
                .and_then(|a| prop(&a, alias))
                .and_then(first_str)
                .filter(|p| p.len() <= MAX_PATH)
                .map(|p| {
                    let mut s = p.to_owned();
                    if let Some(r) = rest {
                        s.push('/');
                        s.push_str(r);
                    }
                    s
                })
        };
        let Some((node, canon)) = full.as_deref().and_then(|p| self.resolve(p)) else {
            self.warn(
                "/chosen",
                WarningKind::StdoutPathUnresolved {
                    path: stdout_path.to_owned(),
                },
            );
            return;
        };
        let reg = self
            .info
            .mmio
            .iter()
            .find(|m| m.path == canon && m.pci_window.is_none())
            .map(|m| m.region);
        if reg.is_none() {
            self.warn(&canon, WarningKind::ConsoleWithoutReg);
        }
        let compatible = self.string_list_prop(&node, &canon, "compatible");
        let irq = prop(&node, "interrupts").and_then(gic_intid);
        self.info.console = Some(Console {
            path: canon,
            options: options.filter(|o| !o.is_empty()).map(ToOwned::to_owned),
            compatible,
            reg,
            irq,
        });
    }
}
