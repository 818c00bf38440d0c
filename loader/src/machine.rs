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
use crate::rng::Rng;
use crate::sleep::Sleep;
use crate::smp::{self, Cpus, Smp};
use crate::stages::Timing;
use crate::storage::Disks;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use boards::Board;
use drivers::{fs, part};

pub struct Machine {
    pub board: &'static Board,
    pub footprint: Footprint,
    pub console: Console,
    pub fw: Firmware,
    pub dt: Dt,
    pub mem: Memory,
    pub disks: Disks,
    pub rng: Rng,
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

    /// `test -e <iface> <dev[:part]> <path>`: does the file exist on that filesystem? Without
    /// a partition: the whole disk's filesystem, else the table's default partition; partition
    /// 1 of a disk without a table is the whole disk (U-Boot's rule).
    pub fn file_exists(&mut self, iface: &str, spec: &str, path: &str) -> Result<bool, String> {
        if iface != "virtio" {
            return Err(format!("** Bad device specification {iface} {spec} **"));
        }
        let dp = loader::devspec::parse_dev_part(spec)?;
        self.ensure_disks();
        let n = self.disks.len();
        let d = self.disks.get_mut(dp.dev).ok_or_else(|| {
            format!(
                "** Bad device specification {iface} {} ** ({n} found)",
                dp.dev
            )
        })?;
        let table = part::read_table(d).map_err(|e| format!("{e}"))?;
        let index = match dp.part {
            Some(1) if table.scheme == part::Scheme::WholeDisk => 0,
            Some(p) => p,
            None => table
                .default_partition()
                .map(|p| p.index)
                .ok_or("no partition with a filesystem")?,
        };
        let mut view = part::open(d, index).map_err(|e| format!("{e}"))?;
        fs::exists(&mut view, path).map_err(|e| format!("{e}"))
    }

    /// Fills `buf` from a hardware entropy source (the CPU's RNDR, else a virtio-rng
    /// device); the source's name, or why there is none.
    pub fn entropy(&mut self, buf: &mut [u8]) -> Result<&'static str, String> {
        self.rng.fill(self.dt.info(), buf)
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
