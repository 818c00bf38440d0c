//! The resident part's place and the non-secure world's DT (docs/psci.md).
//!
//! - [`SecureInfo::parse`]: what the DT says is secure (nodes with `secure-status = "okay"`
//!   and `status = "disabled"`: secure RAM, secure flash, secure UART and GPIO) and the power
//!   GPIO lines (`gpio-poweroff`, `gpio-restart`, on a secure PL061);
//! - [`Layout::plan`]: the resident image, one EL3 stack per CPU, the resident pen and the
//!   secondaries' reset hold in secure RAM; the non-secure loader's copy in RAM; every check
//!   that nothing secure is described as usable RAM;
//! - [`hold_index`]: the hold word of a CPU (the EL3 assembly computes the same);
//! - [`ns_dt`]: the DT the non-secure world gets.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::model::{DeviceTreeNode, DeviceTreeProperty};
use dtoolkit::{Node, Property};

use crate::dt::Region;
use crate::dtfix;

/// A hold word, 8 bytes per CPU: `Aff0 + 16 × Aff1` (Aff0 < 16, Aff1 < 32, Aff2 = Aff3 = 0),
/// so 512 CPUs in 4 KiB. A CPU with another MPIDR stays in the reset code for good.
pub const HOLD_SLOTS: usize = 512;
/// What a secondary writes into its hold word when it arrives from reset (`"PKBTHOLD"`).
pub const HOLD_WAITING: u64 = u64::from_le_bytes(*b"PKBTHOLD");
/// One EL3 stack per CPU, for the SMC handler.
pub const EL3_STACK_SIZE: u64 = 0x4000;
/// Most CPUs the resident part holds (its per-CPU records are static).
pub const MAX_CPUS: usize = 64;

/// The index of `mpidr`'s hold word (see [`HOLD_SLOTS`]).
#[must_use]
pub const fn hold_index(mpidr: u64) -> Option<usize> {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let high = mpidr & 0xff_00ff_0000;
    if high != 0 || aff0 >= 16 || aff1 >= 32 {
        return None;
    }
    Some((aff0 + 16 * aff1) as usize)
}

/// A power line on a PL061 GPIO controller (QEMU virt `secure=on`: line 0 powers off, line 1
/// resets; `hw/arm/virt.c` `create_secure_gpio_pwr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerGpio {
    /// The PL061's base.
    pub base: u64,
    /// The line (0..7).
    pub line: u32,
    /// GPIO_ACTIVE_LOW in the specifier's flags.
    pub active_low: bool,
}

impl PowerGpio {
    /// PL061 GPIODIR.
    const DIR: u64 = 0x400;

    /// The two 32-bit writes that assert the line, in order: the line an output (GPIODIR),
    /// then its level through the masked data register (address bits 9:2 select the lines a
    /// write changes).
    #[must_use]
    pub fn writes(&self) -> [(u64, u32); 2] {
        let bit = 1u32 << self.line;
        let level = if self.active_low { 0 } else { bit };
        [
            (self.base + Self::DIR, bit),
            (self.base + (u64::from(bit) << 2), level),
        ]
    }
}

/// What the DT says is secure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecureInfo {
    /// Every `reg` of a secure-only node.
    pub regions: Vec<Region>,
    /// Secure RAM: a secure-only node with `device_type = "memory"`.
    pub ram: Vec<Region>,
    pub poweroff: Option<PowerGpio>,
    pub restart: Option<PowerGpio>,
}

fn prop<'a>(node: &FdtNode<'a>, name: &str) -> Option<&'a [u8]> {
    node.properties()
        .find(|p| p.name() == name)
        .and_then(|p| p.value_as::<&'a [u8]>().ok())
}

fn str_is(node: &FdtNode<'_>, name: &str, want: &str) -> bool {
    prop(node, name).is_some_and(|v| v.split(|&b| b == 0).next() == Some(want.as_bytes()))
}

fn cells(v: &[u8], at: usize, n: u32) -> Option<u64> {
    match n {
        1 => Some(u64::from(u32::from_be_bytes(
            v.get(at..at + 4)?.try_into().ok()?,
        ))),
        2 => Some(u64::from_be_bytes(v.get(at..at + 8)?.try_into().ok()?)),
        _ => None,
    }
}

fn u32_prop(node: &FdtNode<'_>, name: &str) -> Option<u32> {
    let v = prop(node, name)?;
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

impl SecureInfo {
    /// Reads the root's children of `dtb` (where QEMU puts them).
    ///
    /// # Errors
    /// A DT that does not parse.
    pub fn parse(dtb: &[u8]) -> Result<Self, String> {
        let fdt = Fdt::new(dtb).map_err(|e| format!("malformed device tree: {e}"))?;
        let root = fdt.root();
        let ac = u32_prop(&root, "#address-cells").unwrap_or(2);
        let sc = u32_prop(&root, "#size-cells").unwrap_or(1);
        let mut info = Self::default();
        let mut pl061: Vec<(u32, u64)> = Vec::new();
        let mut lines: Vec<(bool, u32, u32, u32)> = Vec::new();
        for node in root.children().take(4096) {
            let secure =
                str_is(&node, "secure-status", "okay") && str_is(&node, "status", "disabled");
            let mut regs = Vec::new();
            if let Some(v) = prop(&node, "reg") {
                let step = (ac + sc) as usize * 4;
                let mut at = 0;
                while step > 0 && at + step <= v.len() && regs.len() < 16 {
                    if let (Some(b), Some(s)) =
                        (cells(v, at, ac), cells(v, at + ac as usize * 4, sc))
                    {
                        regs.push(Region::new(b, s));
                    }
                    at += step;
                }
            }
            if secure {
                info.regions.extend(regs.iter().copied());
                if str_is(&node, "device_type", "memory") {
                    info.ram.extend(regs.iter().copied());
                }
                if let (Some(ph), Some(r)) = (u32_prop(&node, "phandle"), regs.first()) {
                    if prop(&node, "compatible")
                        .is_some_and(|c| c.split(|&b| b == 0).any(|s| s == b"arm,pl061"))
                    {
                        pl061.push((ph, r.base));
                    }
                }
                for (off, name) in [(true, "gpio-poweroff"), (false, "gpio-restart")] {
                    if str_is(&node, "compatible", name) {
                        if let Some(g) = prop(&node, "gpios").filter(|g| g.len() >= 12) {
                            let c = |i: usize| cells(g, i * 4, 1).unwrap_or(u64::MAX) as u32;
                            lines.push((off, c(0), c(1), c(2)));
                        }
                    }
                }
            }
        }
        for (off, ph, line, flags) in lines {
            let Some(&(_, base)) = pl061.iter().find(|p| p.0 == ph) else {
                continue;
            };
            if line >= 8 {
                continue;
            }
            let g = PowerGpio {
                base,
                line,
                active_low: flags & 1 != 0,
            };
            if off {
                info.poweroff = Some(g);
            } else {
                info.restart = Some(g);
            }
        }
        Ok(info)
    }
}

/// Where everything of the resident part goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The resident copy of the image (its whole in-place footprint).
    pub resident: Region,
    /// One [`EL3_STACK_SIZE`] stack per CPU, CPU `i`'s top at `stacks.base + (i + 1) × size`.
    pub stacks: Region,
    /// The resident pen (entry_el 3).
    pub pen: Region,
    /// The secondaries' reset hold.
    pub hold: Region,
    /// Where the non-secure loader copy goes (2 MiB aligned).
    pub ns_loader: u64,
}

impl Layout {
    /// Plans the layout for `nr_cpus` CPUs, a resident footprint of `footprint` bytes, a pen of
    /// `pen_size` bytes, the non-secure loader's footprint `ns_footprint`, on `board`, with the
    /// DT at `board.dtb` (`dt_size` bytes), the non-secure RAM `ram` (from /memory) and what
    /// the DT says is secure.
    ///
    /// # Errors
    /// One line when something does not fit, or when anything of the resident part, or
    /// anything secure, is described to the non-secure world as RAM.
    #[allow(clippy::too_many_arguments)]
    pub fn plan(
        board: &boards::El3,
        nr_cpus: usize,
        footprint: u64,
        pen_size: u64,
        ns_footprint: u64,
        dt_size: u64,
        ram: &[Region],
        secure: &SecureInfo,
    ) -> Result<Self, String> {
        if nr_cpus == 0 || nr_cpus > MAX_CPUS {
            return Err(format!(
                "{nr_cpus} CPUs: the resident part holds 1..={MAX_CPUS}"
            ));
        }
        let sram = Region::new(board.secure_ram.0, board.secure_ram.1);
        if !secure
            .ram
            .iter()
            .any(|r| r.base <= sram.base && sram.end() <= r.end())
        {
            return Err(format!(
                "secure RAM {sram} is not described as secure memory in the DT"
            ));
        }
        let align = |v: u64| v.checked_add(0xfff).map(|x| x & !0xfff);
        let resident = Region::new(board.resident, footprint);
        let stacks_base = align(resident.end()).ok_or("layout overflows")?;
        let stacks = Region::new(stacks_base, EL3_STACK_SIZE * nr_cpus as u64);
        let pen_base = align(stacks.end()).ok_or("layout overflows")?;
        let pen = Region::new(pen_base, pen_size);
        let hold = Region::new(board.hold, (HOLD_SLOTS * 8) as u64);
        let inside = |r: Region| r.base >= sram.base && r.end() <= sram.end();
        for (what, r) in [
            ("resident part", resident),
            ("EL3 stacks", stacks),
            ("pen", pen),
            ("hold", hold),
        ] {
            if !inside(r) {
                return Err(format!("{what} {r} does not fit in secure RAM {sram}"));
            }
        }
        if pen.end() > hold.base && pen.base < hold.end() {
            return Err(format!("pen {pen} runs into the hold {hold}"));
        }
        // Nothing secure may be RAM to the non-secure world.
        let flash = Region::new(board.flash.0, board.flash.1);
        for s in secure.regions.iter().chain([sram, flash].iter()) {
            if let Some(m) = ram.iter().find(|m| m.base < s.end() && s.base < m.end()) {
                return Err(format!("/memory {m} covers secure {s}"));
            }
        }
        let first = ram.first().ok_or("no /memory")?;
        let ns_loader = first
            .base
            .checked_add(board.ns_loader_offset)
            .ok_or("layout overflows")?;
        let dt = Region::new(board.dtb, dt_size);
        let ns = Region::new(ns_loader, ns_footprint);
        if dt.end() > ns.base && dt.base < ns.end() {
            return Err(format!("the DT {dt} runs into the non-secure loader {ns}"));
        }
        if !ram.iter().any(|m| m.base <= ns.base && ns.end() <= m.end()) {
            return Err(format!("the non-secure loader {ns} is not in RAM"));
        }
        Ok(Self {
            resident,
            stacks,
            pen,
            hold,
            ns_loader,
        })
    }

    /// The top of CPU `i`'s EL3 stack.
    #[must_use]
    pub const fn stack_top(&self, i: usize) -> u64 {
        self.stacks.base + (i as u64 + 1) * EL3_STACK_SIZE
    }
}

/// The DT for the non-secure world: a `/psci` node (PSCI 1.0 binding, method `smc`), every
/// cpu node in `on` with `enable-method = "psci"` (no spin-table properties), the nodes in
/// `failed` (CPUs that did not reach the resident pen) with `status = "fail"`. Nothing is
/// added to `/memory` or `/memreserve/`: the resident part is in secure RAM, which the
/// non-secure world never sees as RAM ([`Layout::plan`] checks).
///
/// # Errors
/// A DT that does not parse, or a path that is not there.
pub fn ns_dt(dtb: &[u8], on: &[String], failed: &[String]) -> Result<Vec<u8>, String> {
    let boot = dtb
        .get(28..32)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes);
    let (mut tree, _) = dtfix::load(dtb)?;
    tree.root.remove_child("psci");
    let mut psci = DeviceTreeNode::new_unchecked("psci");
    psci.add_property(DeviceTreeProperty::new_unchecked(
        "compatible",
        b"arm,psci-1.0\0arm,psci-0.2\0".to_vec(),
    ));
    psci.add_property(DeviceTreeProperty::new_unchecked("method", "smc"));
    let _ = tree.root.add_child_mut(psci);
    for p in on {
        let _ = dtfix::remove(&mut tree, p, Some("cpu-release-addr"));
        let _ = dtfix::remove(&mut tree, p, Some("cpu-park-addr"));
        dtfix::set_property(&mut tree, p, "enable-method", b"psci\0".to_vec())?;
        let failed_before = dtfix::find(&tree, p)
            .and_then(|n| n.property("status"))
            .is_some_and(|s| s.value().starts_with(b"fail"));
        if failed_before {
            dtfix::set_property(&mut tree, p, "status", b"okay\0".to_vec())?;
        }
    }
    for p in failed {
        dtfix::set_property(&mut tree, p, "status", b"fail\0".to_vec())?;
    }
    if !failed.is_empty() {
        let _ = dtfix::remove(&mut tree, "/cpus/cpu-map", None);
    }
    dtfix::store(&tree, boot).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt;

    const SECURE_DT: &[u8] = include_bytes!("../../tests/fixtures/qemu-virt-secure-el3-smp4.dtb");

    fn board() -> boards::El3 {
        boards::QEMU_VIRT.el3.unwrap()
    }

    /// el3.S's board constants are QEMU virt's EL3 facts (the assembly cannot read them).
    #[test]
    fn el3_asm_constants_match_the_board() {
        const ASM: &str = include_str!("../../arch/src/el3.S");
        let equ = |name: &str| -> u64 {
            let line = ASM
                .lines()
                .find(|l| l.trim_start().starts_with(&format!(".equ {name},")))
                .unwrap_or_else(|| panic!("no .equ {name}"));
            let v = line
                .split(',')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).unwrap(),
                None => v.parse().unwrap(),
            }
        };
        let b = board();
        assert_eq!(equ("EL3_RESIDENT_BASE"), b.resident);
        assert_eq!(equ("EL3_HOLD_BASE"), b.hold);
        assert_eq!(equ("EL3_HOLD_AFF0_LIMIT"), 16);
        assert_eq!(equ("EL3_HOLD_AFF1_LIMIT"), 32);
        assert_eq!(
            equ("EL3_HOLD_AFF0_LIMIT") * equ("EL3_HOLD_AFF1_LIMIT"),
            HOLD_SLOTS as u64
        );
        assert_eq!(equ("EL3_CPU_SIZE"), 64);
    }

    #[test]
    fn hold_index_is_affinity() {
        assert_eq!(hold_index(0), Some(0));
        assert_eq!(hold_index(3), Some(3));
        assert_eq!(hold_index(0x102), Some(18));
        assert_eq!(hold_index(0x1f0f), Some(511));
        assert_eq!(hold_index(0x10), None);
        assert_eq!(hold_index(0x2000), None);
        assert_eq!(hold_index(0x1_0000), None);
        assert_eq!(hold_index(0x1_0000_0000), None);
        assert_eq!(&HOLD_WAITING.to_le_bytes(), b"PKBTHOLD");
    }

    #[test]
    fn qemu_secure_dt_says_what_is_secure() {
        let s = SecureInfo::parse(SECURE_DT).unwrap();
        assert_eq!(s.ram, [Region::new(0x0e00_0000, 0x0100_0000)]);
        for r in [
            Region::new(0x0e00_0000, 0x0100_0000),
            Region::new(0, 0x0400_0000),
            Region::new(0x0904_0000, 0x1000),
            Region::new(0x090b_0000, 0x1000),
        ] {
            assert!(s.regions.contains(&r), "{r} not in {:?}", s.regions);
        }
        // QEMU 7.2 hw/arm/virt.c: line 0 "shutdown", line 1 "reset", active high
        assert_eq!(
            s.poweroff,
            Some(PowerGpio {
                base: 0x090b_0000,
                line: 0,
                active_low: false
            })
        );
        assert_eq!(s.restart.map(|g| g.line), Some(1));
        assert_eq!(
            s.poweroff.unwrap().writes(),
            [(0x090b_0400, 1), (0x090b_0004, 1)]
        );
        assert_eq!(
            s.restart.unwrap().writes(),
            [(0x090b_0400, 2), (0x090b_0008, 2)]
        );
    }

    #[test]
    fn layout_in_secure_ram() {
        let s = SecureInfo::parse(SECURE_DT).unwrap();
        let ram = [Region::new(0x4000_0000, 0x4000_0000)];
        let l = Layout::plan(&board(), 4, 0x4cc000, 0x2000, 0x4cc000, 0x2000, &ram, &s).unwrap();
        assert_eq!(l.resident, Region::new(0x0e00_0000, 0x4cc000));
        assert_eq!(l.stacks.base, 0x0e4c_c000);
        assert_eq!(l.stack_top(0), 0x0e4d_0000);
        assert_eq!(l.stack_top(3), 0x0e4d_c000);
        assert_eq!(l.pen, Region::new(0x0e4d_c000, 0x2000));
        assert_eq!(l.hold, Region::new(0x0eff_f000, 0x1000));
        assert_eq!(l.ns_loader, 0x4020_0000);
        // refusals, one line each
        let bad = |r: Result<Layout, String>| {
            let e = r.unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            e
        };
        // a /memory that covers secure RAM
        let over = [Region::new(0x0e00_0000, 0x8000_0000)];
        assert!(bad(Layout::plan(
            &board(),
            4,
            0x4cc000,
            0x2000,
            0x4cc000,
            0x2000,
            &over,
            &s
        ))
        .contains("covers secure"));
        // a /memory over the secure flash
        let flash = [Region::new(0, 0x1000_0000), ram[0]];
        assert!(bad(Layout::plan(
            &board(),
            4,
            0x4cc000,
            0x2000,
            0x4cc000,
            0x2000,
            &flash,
            &s
        ))
        .contains("covers secure"));
        // too big for secure RAM
        assert!(bad(Layout::plan(
            &board(),
            4,
            0x100_0000,
            0x2000,
            0x4cc000,
            0x2000,
            &ram,
            &s
        ))
        .contains("does not fit"));
        assert!(bad(Layout::plan(
            &board(),
            65,
            0x4cc000,
            0x2000,
            0x4cc000,
            0x2000,
            &ram,
            &s
        ))
        .contains("1..=64"));
        // a DT that would run into the non-secure loader
        assert!(bad(Layout::plan(
            &board(),
            4,
            0x4cc000,
            0x2000,
            0x4cc000,
            0x30_0000,
            &ram,
            &s
        ))
        .contains("runs into"));
        // secure RAM the DT does not describe
        let none = SecureInfo::default();
        assert!(bad(Layout::plan(
            &board(),
            4,
            0x4cc000,
            0x2000,
            0x4cc000,
            0x2000,
            &ram,
            &none
        ))
        .contains("not described"));
    }

    #[test]
    fn the_ns_dt_says_psci_over_smc() {
        let info = dt::parse(SECURE_DT).unwrap();
        assert!(info.psci.is_none());
        let paths: Vec<String> = info.cpus.iter().map(|c| c.path.clone()).collect();
        let out = ns_dt(SECURE_DT, &paths[..3], &paths[3..]).unwrap();
        let i = dt::parse(&out).unwrap();
        let p = i.psci.expect("a /psci node");
        assert_eq!(p.conduit, dt::Conduit::Smc);
        assert_eq!(i.cpus.len(), 4);
        for c in &i.cpus[..3] {
            assert_eq!(c.enable_method, Some(dt::EnableMethod::Psci));
            assert_eq!(c.status, dt::Status::Okay);
        }
        assert_eq!(i.cpus[3].status, dt::Status::Fail);
        assert!(i.memreserve.is_empty());
        assert_eq!(
            i.memory, info.memory,
            "RAM is what it was: nothing secure in it"
        );
        // and again over its own output: one /psci, nothing grows
        let again = ns_dt(&out, &paths, &[]).unwrap();
        let j = dt::parse(&again).unwrap();
        assert!(j.cpus.iter().all(|c| c.status == dt::Status::Okay));
        let third = ns_dt(&again, &paths, &[]).unwrap();
        assert_eq!(
            third.len(),
            again.len(),
            "nothing grows from one stage to the next"
        );
        assert!(ns_dt(b"junk", &[], &[]).is_err());
        assert!(ns_dt(SECURE_DT, &["/cpus/cpu@9".to_string()], &[]).is_err());
    }
}
