//! `bdinfo` and `bootstage`: what the loader knows about itself and the
//! machine, and how long start-up took.

use crate::arch::{heap, timer};
use crate::platform::Sh;
use crate::stages;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;
use shell::{CmdError, CmdResult};

pub fn cmd_bdinfo(sh: &mut Sh, args: &[String]) -> CmdResult {
    if args.len() != 1 {
        return Err(CmdError::Usage);
    }
    let m = &sh.platform;
    let mut o = String::new();
    let _ = writeln!(o, "board       = {}", m.board.name);
    let _ = writeln!(o, "loader      = {:#018x}", m.footprint.base());
    let _ = writeln!(
        o,
        "loader size = {:#018x} (in place; file {} bytes)",
        m.footprint.size(),
        m.footprint.file_size()
    );
    let _ = writeln!(o, "current eL  = {}", m.fw.el());
    match (m.dt.blob(), m.dt.error()) {
        (Some((a, t)), _) => {
            let _ = writeln!(o, "fdt_blob    = {a:#018x}");
            let _ = writeln!(o, "fdt_size    = {t:#018x}");
        }
        (None, Some(e)) => {
            let _ = writeln!(o, "fdt_blob    = none ({e})");
        }
        _ => {}
    }
    for b in m.mem.map().banks() {
        let _ = writeln!(o, "DRAM bank   = ");
        let _ = writeln!(o, "-> start    = {:#018x}", b.base);
        let _ = writeln!(o, "-> size     = {:#018x}", b.size);
    }
    let _ = writeln!(o, "console     = pl011 @ {:#x}", m.console.base());
    if let Some(dt) = m.dt.info() {
        if let Some(p) = &dt.psci {
            let _ = writeln!(o, "psci        = {:?} via {:?}", p.version, p.conduit);
        }
        let methods: BTreeSet<String> = dt
            .cpus
            .iter()
            .map(|c| match &c.enable_method {
                Some(m) => format!("{m:?}"),
                None => "none".into(),
            })
            .collect();
        let _ = writeln!(
            o,
            "cpus        = {} (enable-method {:?})",
            dt.cpus.len(),
            methods
        );
        if let Some(g) = &dt.gic {
            let _ = writeln!(o, "gic         = {:?}", g.version);
        }
        let _ = writeln!(
            o,
            "virtio-mmio = {} slot(s), pci hosts = {}",
            dt.virtio_mmio.len(),
            dt.pci_hosts.len()
        );
    }
    if m.mem.map_errors() != 0 {
        let _ = writeln!(
            o,
            "map errors  = {} region(s) could not be mapped",
            m.mem.map_errors()
        );
    }
    let _ = writeln!(o, "timer freq  = {} Hz", timer::freq());
    let _ = writeln!(o, "idle        = {}", m.sleep.describe());
    let hs = heap::stats();
    let _ = writeln!(
        o,
        "heap        = {} KiB, {} KiB in use, high water {} KiB",
        hs.total / 1024,
        hs.in_use / 1024,
        hs.high_water / 1024
    );
    let (lo, hi) = m.footprint.stack();
    let _ = writeln!(
        o,
        "stack       = {} KiB, high water {} KiB",
        (hi - lo) / 1024,
        m.footprint.stack_high_water() / 1024
    );
    let _ = writeln!(o, "memory map (claims):");
    for c in m.mem.map().claims() {
        let _ = writeln!(o, "  {:#012x}..{:#012x}  {}", c.start, c.end, c.owner);
    }
    for (k, v) in m.env() {
        let _ = writeln!(o, "{k:<18}= {v}");
    }
    let _ = writeln!(
        o,
        "boot time   = {} us (entry -> prompt)",
        m.timing.ready_us()
    );
    sh.print(&o);
    Ok(())
}

pub fn cmd_bootstage(sh: &mut Sh, args: &[String]) -> CmdResult {
    match args {
        [_] | [_, _] if args.get(1).is_none_or(|a| a == "report") => {
            sh.print(&stages::report());
            Ok(())
        }
        _ => Err(CmdError::Usage),
    }
}
