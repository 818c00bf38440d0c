//! The typed description a DTB is parsed into ([`DtInfo`] and its parts).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::cells::last_component;
use super::*;

/// A physical address range `[base, base + size)`. Ranges produced by [`parse`] never wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    #[must_use]
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// Exclusive end (saturating at `u64::MAX`).
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    #[must_use]
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.base, self.end())
    }
}

/// `#address-cells` / `#size-cells` of a node (as applied to its children).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellSizes {
    pub address: u32,
    pub size: u32,
}

impl CellSizes {
    /// The Devicetree specification's defaults when the properties are absent.
    pub const DEFAULT: Self = Self {
        address: 2,
        size: 1,
    };
}

/// A node's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `"okay"`, `"ok"` or absent.
    Okay,
    Disabled,
    Reserved,
    /// `"fail"` or `"fail-..."`.
    Fail,
    /// Anything else (treated as not available, like Linux does).
    Unknown,
}

impl Status {
    #[must_use]
    pub const fn is_enabled(self) -> bool {
        matches!(self, Self::Okay)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Okay => "okay",
            Self::Disabled => "disabled",
            Self::Reserved => "reserved",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        })
    }
}

/// A child of `/reserved-memory` with a static `reg` (one entry per `reg` tuple).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedMemory {
    /// Node name, e.g. `secmon@7fe00000`.
    pub name: String,
    pub region: Region,
    pub no_map: bool,
    pub reusable: bool,
}

/// A CPU's `enable-method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnableMethod {
    Psci,
    SpinTable,
    Other(String),
}

impl EnableMethod {
    pub(super) fn from_str(s: &str) -> Self {
        match s {
            "psci" => Self::Psci,
            "spin-table" => Self::SpinTable,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for EnableMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Psci => f.write_str("psci"),
            Self::SpinTable => f.write_str("spin-table"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// A 64-bit property that must be two cells (`cpu-release-addr`, `cpu-park-addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prop64 {
    Absent,
    /// Two cells: the value.
    Value(u64),
    /// One cell: Linux's `of_property_read_u64` fails on this; recorded, not used.
    OneCell(u32),
    /// Any other length.
    BadLength(usize),
}

impl Prop64 {
    /// The value if the property is a proper 64-bit value.
    #[must_use]
    pub const fn value(self) -> Option<u64> {
        match self {
            Self::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Prop64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("-"),
            Self::Value(v) => write!(f, "{v:#x}"),
            Self::OneCell(v) => write!(f, "{v:#x} (ONE CELL, invalid)"),
            Self::BadLength(n) => write!(f, "({n} bytes, invalid)"),
        }
    }
}

/// A `/cpus/cpu@*` node with `device_type = "cpu"` and a usable `reg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// Node path, e.g. `/cpus/cpu@1`.
    pub path: String,
    /// `reg`: MPIDR affinity bits (Aff3..Aff0, as in MPIDR_EL1 & 0xff_00ff_ffff).
    pub mpidr: u64,
    pub enable_method: Option<EnableMethod>,
    pub release_addr: Prop64,
    /// parkboot's own `cpu-park-addr` (the address the OS branches to to return the CPU).
    pub park_addr: Prop64,
    pub status: Status,
}

impl Cpu {
    /// Node name (last path component).
    #[must_use]
    pub fn name(&self) -> &str {
        last_component(&self.path)
    }
}

/// PSCI version announced by `/psci`'s compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PsciVersion {
    /// `"arm,psci"`: function ids come from the node.
    V0_1,
    /// `"arm,psci-0.2"`.
    V0_2,
    /// `"arm,psci-1.0"`.
    V1_0,
}

/// SMCCC conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// `/psci`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Psci {
    pub version: PsciVersion,
    pub conduit: Conduit,
    /// Function ids (meaningful for PSCI 0.1; QEMU also provides them for newer versions).
    pub cpu_suspend: Option<u32>,
    pub cpu_off: Option<u32>,
    pub cpu_on: Option<u32>,
    pub migrate: Option<u32>,
}

/// The console named by `/chosen/stdout-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// Canonical node path (aliases resolved, full node names).
    pub path: String,
    /// The part after `:` in stdout-path, e.g. `115200n8`.
    pub options: Option<String>,
    pub compatible: Vec<String>,
    /// First `reg` entry translated to a CPU address, if any.
    pub reg: Option<Region>,
    /// Its first interrupt as a GIC INTID (SPI n = n + 32, PPI n = n + 16), when `interrupts`
    /// is a GIC triple.
    pub irq: Option<u32>,
}

/// `/chosen` properties the loader cares about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chosen {
    pub bootargs: Option<String>,
    /// Raw `stdout-path` (or `linux,stdout-path`).
    pub stdout_path: Option<String>,
    /// `[linux,initrd-start, linux,initrd-end)`.
    pub initrd: Option<Region>,
}

/// A `virtio,mmio` node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioMmio {
    pub path: String,
    pub region: Region,
}

/// PCI address space of a host-bridge window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciSpace {
    Io,
    Mem32,
    Mem64,
}

impl fmt::Display for PciSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Io => "io",
            Self::Mem32 => "mem32",
            Self::Mem64 => "mem64",
        })
    }
}

/// One decoded entry of a PCI host bridge's `ranges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciWindow {
    pub space: PciSpace,
    pub prefetchable: bool,
    pub pci_addr: u64,
    pub cpu_addr: u64,
    pub size: u64,
}

/// A `pci-host-ecam-generic` host bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciHost {
    pub path: String,
    /// ECAM configuration window (CPU address).
    pub ecam: Region,
    /// First and last bus number (inclusive), clamped to what the ECAM window covers.
    pub bus_start: u8,
    pub bus_end: u8,
    pub windows: Vec<PciWindow>,
}

/// GIC architecture version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

/// The interrupt controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gic {
    pub version: GicVersion,
    pub path: String,
    /// v2: distributor, CPU interface, ...; v3: distributor, redistributor region(s), ...
    pub regs: Vec<Region>,
    /// v3: `#redistributor-regions` (default 1): `regs[1..=n]` are redistributor regions.
    pub redist_regions: u32,
}

impl Gic {
    /// The distributor (`reg` entry 0).
    #[must_use]
    pub fn distributor(&self) -> Option<Region> {
        self.regs.first().copied()
    }

    /// v2: the CPU interface (`reg` entry 1).
    #[must_use]
    pub fn cpu_interface(&self) -> Option<Region> {
        match self.version {
            GicVersion::V2 => self.regs.get(1).copied(),
            GicVersion::V3 => None,
        }
    }

    /// v3: the redistributor regions (`reg` entries 1..=`#redistributor-regions`).
    #[must_use]
    pub fn redistributors(&self) -> &[Region] {
        match self.version {
            GicVersion::V2 => &[],
            GicVersion::V3 => {
                let n = (self.redist_regions as usize).min(self.regs.len().saturating_sub(1));
                self.regs.get(1..1 + n).unwrap_or(&[])
            }
        }
    }
}

/// The architected timer's interrupts as GIC INTIDs (PPI number + 16), in the binding's order.
/// `None` where the node gives no PPI for that timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerIrqs {
    pub secure_phys: Option<u32>,
    pub nonsecure_phys: Option<u32>,
    pub virt: Option<u32>,
    pub hyp_phys: Option<u32>,
}

/// One `reg` entry of a device node, translated to a CPU physical address, or one window of a
/// PCI host bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmioRegion {
    pub region: Region,
    /// Node path.
    pub path: String,
    /// First compatible string, if any.
    pub compatible: Option<String>,
    pub enabled: bool,
    /// `Some` when this is a PCI host bridge window rather than a `reg` entry.
    pub pci_window: Option<PciSpace>,
}

impl MmioRegion {
    /// Node name (last path component).
    #[must_use]
    pub fn name(&self) -> &str {
        last_component(&self.path)
    }
}

/// Everything the loader uses from the incoming device tree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DtInfo {
    /// Header `totalsize` (bytes of the blob that were parsed).
    pub totalsize: usize,
    pub boot_cpuid_phys: u32,
    pub model: Option<String>,
    /// Root compatible list, most specific first.
    pub compatible: Vec<String>,
    /// Root `#address-cells` / `#size-cells`.
    pub root_cells: CellSizes,
    /// RAM from `/memory*` nodes (`device_type = "memory"`, enabled), sorted, zero sizes dropped.
    pub memory: Vec<Region>,
    /// The header's `/memreserve/` block, in blob order (zero-size entries dropped).
    pub memreserve: Vec<Region>,
    /// `/reserved-memory` children with a static `reg`.
    pub reserved_memory: Vec<ReservedMemory>,
    /// `/cpus` `#address-cells` (1 or 2).
    pub cpus_address_cells: u32,
    pub cpus: Vec<Cpu>,
    pub psci: Option<Psci>,
    pub chosen: Chosen,
    pub console: Option<Console>,
    pub virtio_mmio: Vec<VirtioMmio>,
    pub pci_hosts: Vec<PciHost>,
    pub gic: Option<Gic>,
    /// `clock-frequency` of the architected timer node, if given.
    pub timer_frequency: Option<u32>,
    /// The architected timer node's `interrupts` (GIC PPIs), if it has a usable one.
    pub timer_irqs: Option<TimerIrqs>,
    /// Device `reg`s (translated through parent `ranges`) and PCI windows, in tree order.
    pub mmio: Vec<MmioRegion>,
    /// `/config/environment` properties (U-Boot's `CONFIG_ENV_IMPORT_FDT`): each one a
    /// single NUL-terminated UTF-8 string without control characters other than tab; in
    /// blob order, at most [`MAX_ENV_PROPS`], each at most [`MAX_BOOTARGS`] bytes.
    pub config_env: Vec<(String, String)>,
    pub warnings: Vec<DtWarning>,
    /// Warnings beyond the kept ones.
    pub warnings_dropped: usize,
}

impl Default for CellSizes {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl DtInfo {
    /// The CPU whose `reg` equals `mpidr` (affinity bits only).
    #[must_use]
    pub fn cpu_by_mpidr(&self, mpidr: u64) -> Option<&Cpu> {
        let aff = mpidr & 0xff_00ff_ffff;
        self.cpus.iter().find(|c| c.mpidr == aff)
    }

    /// CPUs whose status is okay.
    pub fn enabled_cpus(&self) -> impl Iterator<Item = &Cpu> {
        self.cpus.iter().filter(|c| c.status.is_enabled())
    }

    /// Whether the root compatible list contains `compat`.
    #[must_use]
    pub fn is_compatible(&self, compat: &str) -> bool {
        self.compatible.iter().any(|c| c == compat)
    }
}

impl fmt::Display for DtInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model: {}", self.model.as_deref().unwrap_or("(none)"))?;
        write!(f, "compatible:")?;
        for c in &self.compatible {
            write!(f, " \"{c}\"")?;
        }
        writeln!(f)?;
        writeln!(f, "dtb: {} bytes", self.totalsize)?;
        for m in &self.memory {
            writeln!(f, "memory: {m} ({} MiB)", m.size >> 20)?;
        }
        for (i, r) in self.memreserve.iter().enumerate() {
            writeln!(f, "/memreserve/ #{i}: {r}")?;
        }
        for r in &self.reserved_memory {
            writeln!(
                f,
                "reserved-memory: {} {}{}{}",
                r.name,
                r.region,
                if r.no_map { " no-map" } else { "" },
                if r.reusable { " reusable" } else { "" }
            )?;
        }
        for c in &self.cpus {
            write!(f, "cpu: {} mpidr {:#x} {}", c.path, c.mpidr, c.status)?;
            match &c.enable_method {
                Some(m) => write!(f, " {m}")?,
                None => write!(f, " (no enable-method)")?,
            }
            if c.release_addr != Prop64::Absent {
                write!(f, " release {}", c.release_addr)?;
            }
            if c.park_addr != Prop64::Absent {
                write!(f, " park {}", c.park_addr)?;
            }
            writeln!(f)?;
        }
        if let Some(p) = &self.psci {
            writeln!(f, "psci: {:?} via {:?}", p.version, p.conduit)?;
        }
        if let Some(g) = &self.gic {
            write!(f, "gic: {:?} {}", g.version, g.path)?;
            for r in &g.regs {
                write!(f, " {r}")?;
            }
            writeln!(f)?;
        }
        if let Some(t) = self.timer_frequency {
            writeln!(f, "timer: {t} Hz")?;
        }
        if let Some(c) = &self.console {
            write!(f, "console: {}", c.path)?;
            if let Some(r) = c.reg {
                write!(f, " at {:#x}", r.base)?;
            }
            if let Some(c0) = c.compatible.first() {
                write!(f, " ({c0})")?;
            }
            if let Some(o) = &c.options {
                write!(f, " options {o}")?;
            }
            writeln!(f)?;
        }
        if let Some(b) = &self.chosen.bootargs {
            writeln!(f, "bootargs: {b}")?;
        }
        if let Some(i) = &self.chosen.initrd {
            writeln!(f, "initrd: {i}")?;
        }
        for v in &self.virtio_mmio {
            writeln!(f, "virtio-mmio: {} {}", v.path, v.region)?;
        }
        for p in &self.pci_hosts {
            writeln!(
                f,
                "pci: {} ecam {} buses {}-{}",
                p.path, p.ecam, p.bus_start, p.bus_end
            )?;
            for w in &p.windows {
                writeln!(
                    f,
                    "  {}{} pci {:#x} -> cpu {:#x} size {:#x}",
                    w.space,
                    if w.prefetchable { " pref" } else { "" },
                    w.pci_addr,
                    w.cpu_addr,
                    w.size
                )?;
            }
        }
        writeln!(f, "mmio regions: {}", self.mmio.len())?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        if self.warnings_dropped > 0 {
            writeln!(f, "({} more warnings)", self.warnings_dropped)?;
        }
        Ok(())
    }
}
