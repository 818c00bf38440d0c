//! The machine as the loader knows it: owned parts, each with its own
//! methods (console, firmware, DT, memory, disks, network, CPUs, sleep, timing), and
//! the few operations that need several parts at once. The shell reaches it
//! through the thin adapter in `platform.rs`.

use crate::console::Console;
use crate::devtree::Dt;
use crate::firmware::Firmware;
use crate::footprint::Footprint;
use crate::memory::Memory;
use crate::net::Net;
use crate::sleep::Sleep;
use crate::smp::{self, Cpus, Smp};
use crate::stages::Timing;
use crate::storage::Disks;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use boards::Board;

pub struct Machine {
    pub board: &'static Board,
    pub footprint: Footprint,
    pub console: Console,
    pub fw: Firmware,
    pub dt: Dt,
    pub mem: Memory,
    pub disks: Disks,
    pub net: Net,
    pub cpus: Cpus,
    pub sleep: Sleep,
    pub timing: Timing,
}

impl Machine {
    /// The env variables the machine defines: the default load addresses (from the memory
    /// map) and where the DT the loader was given lives.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = self.mem.load_env();
        if let Some(a) = self.dt.blob_addr() {
            v.push(("fdtcontroladdr", format!("{a:#x}")));
        }
        v
    }

    /// Scans for disks unless that was done; returns the problems met.
    pub fn ensure_disks(&mut self) -> Vec<String> {
        if self.disks.scanned() {
            return Vec::new();
        }
        self.rescan_disks()
    }

    /// Scans for disks again; returns the problems met.
    pub fn rescan_disks(&mut self) -> Vec<String> {
        self.disks.rescan(self.dt.info())
    }

    /// Finds the network interfaces unless that was done; returns the problems met.
    pub fn ensure_net(&mut self) -> Vec<String> {
        self.net.scan(self.dt.info())
    }

    /// Sets up how waiting CPUs sleep (wake period `period_us`).
    pub fn init_sleep(&mut self, period_us: u64) {
        let uart = self.console.irq(self.dt.info());
        self.sleep
            .init(self.dt.info(), period_us, self.fw.el(), uart);
    }

    /// The CPUs part, and what gathering or recalling them needs from the other parts.
    fn cpus_and_ctx(&mut self) -> (&mut Cpus, smp::Ctx<'_>) {
        let Self {
            cpus,
            dt,
            mem,
            sleep,
            fw,
            ..
        } = self;
        let ctx = smp::Ctx {
            dt: dt.info(),
            map: mem.map_mut(),
            wake: sleep.config(),
            psci: fw.usable_psci(),
        };
        (cpus, ctx)
    }

    /// Gathers the CPUs into a pen (at `pen_addr` if given).
    pub fn gather_cpus(&mut self, pen_addr: Option<u64>) -> Result<&Smp, String> {
        let (cpus, ctx) = self.cpus_and_ctx();
        cpus.gather(ctx, pen_addr)
    }

    /// Recalls CPUs resting in firmware into the pen (at `pen_addr` if given); the summary to
    /// print, or None when none rest.
    pub fn recall_cpus(&mut self, pen_addr: Option<u64>) -> Result<Option<String>, String> {
        let (cpus, ctx) = self.cpus_and_ctx();
        cpus.recall(ctx, pen_addr)
    }

    /// Lets the pen's CPUs wait in firmware when PSCI allows; the line to print.
    pub fn rest_cpus(&mut self) -> Option<String> {
        let conduit = self.fw.usable_psci()?;
        self.cpus.rest_in_firmware(conduit)
    }
}
