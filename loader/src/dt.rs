//! Typed, validated description of the device tree the loader was given.
//!
//! The DTB handed to the loader (x0 at entry) is untrusted input. Following the pvmfw approach, it
//! is parsed once, up front, into plain typed structs ([`DtInfo`]); the rest of the loader works
//! with those and never walks the raw blob again for decisions.
//!
//! Layers of defence:
//! 1. [`fdt_totalsize`] checks the header magic and size before the loader forms a slice.
//! 2. [`parse`] runs `dtoolkit`'s full structural validation ([`Fdt::new`]: header offsets and
//!    sizes, memory-reservation block termination, every token, every node and property name,
//!    property lengths). `dtoolkit`'s accessors only panic (`expect("Fdt should be valid")`) on
//!    blobs that did not pass that validation, so they are only used after it.
//! 3. An iterative pass rejects trees nested deeper than [`MAX_DEPTH`], node names longer than
//!    [`MAX_NODE_NAME`] and paths longer than [`MAX_PATH`], so every later recursion (ours, and
//!    `dtoolkit`'s recursive `DeviceTree::from_fdt` / `Display`) has a bounded depth and stored
//!    paths stay small.
//! 4. Property values are decoded by hand with checked arithmetic; anything odd about an
//!    individual node becomes a [`DtWarning`] (kept in [`DtInfo::warnings`]) rather than a panic or
//!    a rejection of the whole tree. Every collected list and every kept string is capped, so the
//!    heap used by a [`DtInfo`] is bounded (about 1 MiB at worst) whatever the input.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use dtoolkit::error::FdtParseError;
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};

/// FDT header magic.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the (version 17) FDT header.
pub const FDT_HEADER_LEN: usize = 40;
/// Deepest node nesting accepted: nodes may be at most this many levels below the root.
pub const MAX_DEPTH: usize = 32;
/// Longest node name (`name@unit-address`) accepted, in bytes.
pub const MAX_NODE_NAME: usize = 127;
/// Longest node path accepted, in bytes.
pub const MAX_PATH: usize = 256;
/// Longest string kept from a property (compatible entries, model, enable-method, stdout-path).
pub const MAX_STRING: usize = 256;
/// Longest `/chosen/bootargs` kept.
pub const MAX_BOOTARGS: usize = 4096;

const MAX_WARNINGS: usize = 64;
const MAX_BANKS: usize = 128;
const MAX_RESERVATIONS: usize = 256;
const MAX_CPUS: usize = 512;
const MAX_MMIO: usize = 512;
const MAX_VIRTIO: usize = 256;
const MAX_PCI_HOSTS: usize = 16;
const MAX_REG_ENTRIES: usize = 64;
const MAX_WINDOWS: usize = 32;
const MAX_STRINGS: usize = 32;
/// Most `/config/environment` properties imported.
pub const MAX_ENV_PROPS: usize = 128;
/// The node whose properties become env variables.
pub const ENV_NODE: &str = "/config/environment";

// ---------------------------------------------------------------------------------------------
// Errors and warnings
// ---------------------------------------------------------------------------------------------

/// Why a device tree was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtError {
    /// Fewer bytes than an FDT header.
    HeaderTooShort { len: usize },
    /// The first word is not 0xd00dfeed.
    BadMagic { found: u32 },
    /// `totalsize` is smaller than the header itself.
    TotalSizeTooSmall { totalsize: usize },
    /// `totalsize` claims more bytes than were provided.
    Truncated { totalsize: usize, available: usize },
    /// `dtoolkit`'s structural validation failed.
    Malformed(FdtParseError),
    /// Nodes nest deeper than [`MAX_DEPTH`].
    TooDeep { limit: usize },
    /// A node name is longer than [`MAX_NODE_NAME`].
    NameTooLong { len: usize, limit: usize },
    /// A node path is longer than [`MAX_PATH`].
    PathTooLong { len: usize, limit: usize },
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderTooShort { len } => write!(
                f,
                "device tree header needs {FDT_HEADER_LEN} bytes, only {len} available"
            ),
            Self::BadMagic { found } => write!(
                f,
                "bad device tree magic {found:#010x} (expected {FDT_MAGIC:#010x})"
            ),
            Self::TotalSizeTooSmall { totalsize } => write!(
                f,
                "device tree totalsize {totalsize} is smaller than its {FDT_HEADER_LEN}-byte header"
            ),
            Self::Truncated {
                totalsize,
                available,
            } => write!(
                f,
                "device tree totalsize {totalsize} exceeds the {available} bytes available"
            ),
            Self::Malformed(e) => write!(f, "malformed device tree: {e}"),
            Self::TooDeep { limit } => {
                write!(f, "device tree nodes nest deeper than {limit} levels")
            }
            Self::NameTooLong { len, limit } => write!(
                f,
                "device tree node name of {len} bytes exceeds the {limit}-byte limit"
            ),
            Self::PathTooLong { len, limit } => write!(
                f,
                "device tree node path of {len} bytes exceeds the {limit}-byte limit"
            ),
        }
    }
}

/// Problems decoding a `reg` or `ranges` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegError {
    /// Cell counts this parser does not handle (address 1-2, size 0-2).
    UnsupportedCells { address: u32, size: u32 },
    /// Length is not a multiple of one entry.
    BadLength { len: usize, entry: usize },
    /// `base + size` wraps around 2^64.
    Overflow { base: u64, size: u64 },
}

impl fmt::Display for RegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedCells { address, size } => write!(
                f,
                "unsupported #address-cells {address} / #size-cells {size}"
            ),
            Self::BadLength { len, entry } => {
                write!(f, "{len} bytes is not a multiple of the {entry}-byte entry")
            }
            Self::Overflow { base, size } => {
                write!(f, "{base:#x} + {size:#x} overflows the address space")
            }
        }
    }
}

/// A non-fatal problem found in one node; the node (or property) was ignored or defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtWarning {
    /// Path of the node the problem is in.
    pub path: String,
    pub kind: WarningKind,
}

/// What a [`DtWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// A property has the wrong length.
    BadLength {
        prop: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// A property that must be a NUL-terminated UTF-8 string (list) is not.
    NotString { prop: &'static str },
    /// A `reg` property could not be decoded.
    BadReg(RegError),
    /// A `ranges` property could not be decoded.
    BadRanges(RegError),
    /// An address is not covered by the parent bus's `ranges`.
    Untranslatable { addr: u64 },
    /// A CPU node without a usable `reg` (MPIDR); the CPU is ignored.
    CpuWithoutReg,
    /// Two CPU nodes with the same MPIDR; the later one is ignored.
    DuplicateMpidr { mpidr: u64 },
    /// `cpu-release-addr` (or `cpu-park-addr`) is a single 32-bit cell.
    OneCell { prop: &'static str, value: u32 },
    /// `enable-method = "spin-table"` without `cpu-release-addr`.
    SpinTableWithoutReleaseAddr,
    /// CPU nodes use different enable-methods.
    MixedEnableMethods,
    /// `/psci` without a usable `method`.
    PsciBadMethod,
    /// `/psci` whose compatible names no known PSCI version.
    PsciUnknownCompatible,
    /// `stdout-path` names no node (or an unknown alias).
    StdoutPathUnresolved { path: String },
    /// The console node has no (translatable) `reg`.
    ConsoleWithoutReg,
    /// `linux,initrd-end` is below `linux,initrd-start`.
    InitrdInverted { start: u64, end: u64 },
    /// `/reserved-memory` cells differ from the root's or it lacks `ranges` (Linux ignores it).
    ReservedMemoryFormat,
    /// A `/memreserve/` entry with size 0 (ignored).
    ZeroSizeMemreserve { addr: u64 },
    /// A `/memreserve/` entry that wraps around 2^64 (ignored).
    MemreserveOverflow { addr: u64, size: u64 },
    /// Two memory banks overlap.
    BanksOverlap,
    /// PCI `bus-range` is invalid; the default 0-255 is used.
    BadBusRange { start: u32, end: u32 },
    /// The ECAM window is too small for the bus range; the range is clamped.
    EcamTooSmall { size: u64, buses: u32 },
    /// A PCI `ranges` entry for configuration space or with a bad size (ignored).
    BadPciWindow { phys_hi: u32 },
    /// More items than the parser keeps; the rest are ignored.
    TooMany { what: &'static str, limit: usize },
    /// A string longer than the parser keeps (ignored).
    TooLong {
        prop: &'static str,
        len: usize,
        limit: usize,
    },
    /// A `/config/environment` property that cannot be an env variable (ignored).
    BadEnvProperty { name: String, why: &'static str },
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLength {
                prop,
                len,
                expected,
            } => write!(f, "{prop} is {len} bytes, expected {expected}; ignored"),
            Self::NotString { prop } => {
                write!(f, "{prop} is not a NUL-terminated UTF-8 string; ignored")
            }
            Self::BadReg(e) => write!(f, "reg: {e}; ignored"),
            Self::BadRanges(e) => write!(f, "ranges: {e}; children ignored"),
            Self::Untranslatable { addr } => write!(
                f,
                "address {addr:#x} is not covered by the parent bus ranges; ignored"
            ),
            Self::CpuWithoutReg => write!(f, "cpu node has no usable reg (MPIDR); cpu ignored"),
            Self::DuplicateMpidr { mpidr } => {
                write!(f, "MPIDR {mpidr:#x} already used by another cpu; cpu ignored")
            }
            Self::OneCell { prop, value } => write!(
                f,
                "{prop} is one 32-bit cell ({value:#x}); it must be 64-bit (two cells), Linux fails to read it"
            ),
            Self::SpinTableWithoutReleaseAddr => {
                write!(f, "enable-method is spin-table but cpu-release-addr is missing")
            }
            Self::MixedEnableMethods => write!(
                f,
                "cpus use different enable-methods (Linux refuses cpus whose method differs)"
            ),
            Self::PsciBadMethod => write!(f, "method is not \"smc\" or \"hvc\"; PSCI ignored"),
            Self::PsciUnknownCompatible => {
                write!(f, "compatible names no known PSCI version; PSCI ignored")
            }
            Self::StdoutPathUnresolved { path } => {
                write!(f, "stdout-path \"{path}\" does not name a node")
            }
            Self::ConsoleWithoutReg => write!(f, "console node has no usable reg"),
            Self::InitrdInverted { start, end } => write!(
                f,
                "linux,initrd-end {end:#x} is below linux,initrd-start {start:#x}; ignored"
            ),
            Self::ReservedMemoryFormat => write!(
                f,
                "#address-cells/#size-cells differ from the root's or ranges is missing (Linux ignores this node; the loader still honours it)"
            ),
            Self::ZeroSizeMemreserve { addr } => {
                write!(f, "/memreserve/ entry at {addr:#x} has size 0; ignored")
            }
            Self::MemreserveOverflow { addr, size } => write!(
                f,
                "/memreserve/ entry {addr:#x} + {size:#x} overflows; ignored"
            ),
            Self::BanksOverlap => write!(f, "memory banks overlap"),
            Self::BadBusRange { start, end } => write!(
                f,
                "bus-range <{start:#x} {end:#x}> is invalid; using 0x0-0xff"
            ),
            Self::EcamTooSmall { size, buses } => write!(
                f,
                "ECAM window of {size:#x} bytes covers only {buses} buses; bus range clamped"
            ),
            Self::BadPciWindow { phys_hi } => write!(
                f,
                "ranges entry with phys.hi {phys_hi:#010x} is not an io/mem window; ignored"
            ),
            Self::BadEnvProperty { name, why } => {
                write!(f, "env property \"{name}\" {why}; ignored")
            }
            Self::TooMany { what, limit } => {
                write!(f, "more than {limit} {what}; the rest are ignored")
            }
            Self::TooLong { prop, len, limit } => {
                write!(f, "{prop} is {len} bytes, longer than the {limit} kept; ignored")
            }
        }
    }
}

impl fmt::Display for DtWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths and values come from the DT: never let control characters
        // (newlines, escapes) through to the console (fuzz regression
        // stdout-path-control-chars).
        struct Printable<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Printable<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    self.0.write_char(if c.is_control() { '?' } else { c })?;
                }
                Ok(())
            }
        }
        fmt::Write::write_fmt(
            &mut Printable(f),
            format_args!("{}: {}", self.path, self.kind),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Typed description
// ---------------------------------------------------------------------------------------------

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
    fn from_str(s: &str) -> Self {
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

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

fn be32_at(bytes: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Reads `totalsize` from an FDT header (at least [`FDT_HEADER_LEN`] bytes), checking the magic.
///
/// Use this to decide how many bytes at the DTB address to hand to [`parse`]; the caller must still
/// check that `[dtb, dtb + totalsize)` is memory it may read.
///
/// # Errors
/// [`DtError::HeaderTooShort`], [`DtError::BadMagic`], [`DtError::TotalSizeTooSmall`].
pub fn fdt_totalsize(header: &[u8]) -> Result<usize, DtError> {
    if header.len() < FDT_HEADER_LEN {
        return Err(DtError::HeaderTooShort { len: header.len() });
    }
    let magic = be32_at(header, 0).ok_or(DtError::HeaderTooShort { len: header.len() })?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic { found: magic });
    }
    let total = be32_at(header, 4).ok_or(DtError::HeaderTooShort { len: header.len() })?;
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total < FDT_HEADER_LEN {
        return Err(DtError::TotalSizeTooSmall { totalsize: total });
    }
    Ok(total)
}

/// Validates `dtb` and extracts a [`DtInfo`].
///
/// `dtb` may be longer than the header's `totalsize` (the extra bytes are ignored) but not shorter.
///
/// # Errors
/// Any [`DtError`]; problems confined to single nodes become [`DtInfo::warnings`] instead.
pub fn parse(dtb: &[u8]) -> Result<DtInfo, DtError> {
    let total = fdt_totalsize(dtb)?;
    let blob = dtb.get(..total).ok_or(DtError::Truncated {
        totalsize: total,
        available: dtb.len(),
    })?;
    let fdt = Fdt::new(blob).map_err(DtError::Malformed)?;
    check_shape(fdt)?;

    let mut p = Parser {
        fdt,
        info: DtInfo {
            totalsize: total,
            boot_cpuid_phys: fdt.boot_cpuid_phys(),
            ..DtInfo::default()
        },
        mmio_full: false,
    };
    p.run();
    Ok(p.info)
}

/// Iterative (no recursion) pass bounding depth, node-name and path length.
fn check_shape(fdt: Fdt<'_>) -> Result<(), DtError> {
    let root = fdt.root();
    // (children iterator, length of the parent's path without the trailing '/')
    let mut stack: Vec<(<FdtNode<'_> as Node>::Children<'_>, usize)> = Vec::new();
    stack.push((root.children(), 0));
    while let Some((iter, parent_len)) = stack.last_mut() {
        let parent_len = *parent_len;
        match iter.next() {
            Some(child) => {
                let len = child.name().len();
                if len > MAX_NODE_NAME {
                    return Err(DtError::NameTooLong {
                        len,
                        limit: MAX_NODE_NAME,
                    });
                }
                let path_len = parent_len.saturating_add(1).saturating_add(len);
                if path_len > MAX_PATH {
                    return Err(DtError::PathTooLong {
                        len: path_len,
                        limit: MAX_PATH,
                    });
                }
                // `stack.len()` is the child's depth (root children are at depth 1).
                if stack.len() > MAX_DEPTH {
                    return Err(DtError::TooDeep { limit: MAX_DEPTH });
                }
                stack.push((child.children(), path_len));
            }
            None => {
                stack.pop();
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Value helpers (all bounds-checked)
// ---------------------------------------------------------------------------------------------

fn prop<'a>(node: &FdtNode<'a>, name: &str) -> Option<&'a [u8]> {
    node.properties()
        .find(|p| p.name() == name)
        .and_then(|p| p.value_as::<&'a [u8]>().ok())
}

/// First string of a NUL-terminated string (list).
fn first_str(value: &[u8]) -> Option<&str> {
    let nul = value.iter().position(|&b| b == 0)?;
    core::str::from_utf8(value.get(..nul)?).ok()
}

/// A string list; `None` if not NUL-terminated or not UTF-8. At most [`MAX_STRINGS`] entries.
fn str_list(value: &[u8]) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let Some((&last, body)) = value.split_last() else {
        return Some(out);
    };
    if last != 0 {
        return None;
    }
    for part in body.split(|&b| b == 0).take(MAX_STRINGS) {
        out.push(core::str::from_utf8(part).ok()?);
    }
    Some(out)
}

fn has_string(value: &[u8], s: &str) -> bool {
    value.split(|&b| b == 0).any(|p| p == s.as_bytes())
}

fn u32_of(value: &[u8]) -> Option<u32> {
    if value.len() == 4 {
        be32_at(value, 0)
    } else {
        None
    }
}

/// Most `#redistributor-regions` a GICv3 node may declare.
pub const MAX_REDIST_REGIONS: u32 = 16;

/// The first interrupt of an `interrupts` property written for a GIC (type, number, flags) as
/// an INTID: SPI (type 0) n → n + 32 (n < 988), PPI (type 1) n → n + 16 (n < 16).
fn gic_intid(value: &[u8]) -> Option<u32> {
    if value.len() < 12 || !value.len().is_multiple_of(12) {
        return None;
    }
    let ty = be32_at(value, 0)?;
    let num = be32_at(value, 4)?;
    match ty {
        0 if num < 988 => Some(num + 32),
        1 if num < 16 => Some(num + 16),
        _ => None,
    }
}

/// Decodes an architected timer's `interrupts` written for a GIC (three cells per interrupt:
/// type, number, flags; type 1 = PPI). Up to four interrupts in the binding's order (secure
/// physical, non-secure physical, virtual, hypervisor physical); a non-PPI entry gives `None`
/// for that timer. `None` if the property is not a whole number of triples, or has none.
fn timer_irqs(value: &[u8]) -> Option<TimerIrqs> {
    if value.is_empty() || !value.len().is_multiple_of(12) {
        return None;
    }
    let ppi = |i: usize| -> Option<u32> {
        let ty = be32_at(value, i * 12)?;
        let num = be32_at(value, i * 12 + 4)?;
        (ty == 1 && num < 16).then_some(num + 16)
    };
    Some(TimerIrqs {
        secure_phys: ppi(0),
        nonsecure_phys: ppi(1),
        virt: ppi(2),
        hyp_phys: ppi(3),
    })
}

/// Big-endian number of 0, 1 or 2 cells (`value.len()` 0, 4 or 8).
fn cells_value(value: &[u8]) -> Option<u64> {
    match value.len() {
        0 => Some(0),
        4 => be32_at(value, 0).map(u64::from),
        8 => Some((u64::from(be32_at(value, 0)?) << 32) | u64::from(be32_at(value, 4)?)),
        _ => None,
    }
}

fn cells_bytes(cells: u32) -> Option<usize> {
    usize::try_from(cells).ok()?.checked_mul(4)
}

/// Decodes a `reg`-style array of `(address, size)` tuples.
fn decode_reg(value: &[u8], cells: CellSizes) -> Result<Vec<Region>, RegError> {
    if !(1..=2).contains(&cells.address) || cells.size > 2 {
        return Err(RegError::UnsupportedCells {
            address: cells.address,
            size: cells.size,
        });
    }
    let a = cells_bytes(cells.address).unwrap_or(0);
    let s = cells_bytes(cells.size).unwrap_or(0);
    let entry = a.saturating_add(s);
    if entry == 0 || !value.len().is_multiple_of(entry) {
        return Err(RegError::BadLength {
            len: value.len(),
            entry,
        });
    }
    let mut out = Vec::new();
    for chunk in value.chunks_exact(entry).take(MAX_REG_ENTRIES) {
        let (ab, sb) = chunk.split_at(a);
        let base = cells_value(ab).unwrap_or(0);
        let size = cells_value(sb).unwrap_or(0);
        if base.checked_add(size).is_none() {
            return Err(RegError::Overflow { base, size });
        }
        out.push(Region { base, size });
    }
    Ok(out)
}

fn last_component(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn join_path(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len().saturating_add(name.len()).saturating_add(1));
    if parent != "/" {
        s.push_str(parent);
    }
    s.push('/');
    s.push_str(name);
    s
}

fn status_of(node: &FdtNode<'_>) -> Status {
    match prop(node, "status") {
        None => Status::Okay,
        Some(v) => match first_str(v) {
            Some("okay" | "ok") => Status::Okay,
            Some("disabled") => Status::Disabled,
            Some("reserved") => Status::Reserved,
            Some(s) if s.starts_with("fail") => Status::Fail,
            _ => Status::Unknown,
        },
    }
}

/// Address translation from a bus's child address space to CPU physical addresses.
#[derive(Clone)]
enum Xlat {
    Identity,
    Windows(Vec<Window>),
}

#[derive(Clone, Copy)]
struct Window {
    child: u64,
    cpu: u64,
    size: u64,
}

impl Xlat {
    fn translate(&self, r: Region) -> Option<Region> {
        match self {
            // Fuzz regression (pci-window-wraps): identity must not let a
            // wrapping range through either.
            Self::Identity => r.base.checked_add(r.size).map(|_| r),
            Self::Windows(ws) => ws.iter().find_map(|w| {
                let off = r.base.checked_sub(w.child)?;
                if off.checked_add(r.size)? > w.size {
                    return None;
                }
                let base = w.cpu.checked_add(off)?;
                base.checked_add(r.size)?;
                Some(Region { base, size: r.size })
            }),
        }
    }
}

/// The address context a node's `reg` is interpreted in (its parent's).
struct Bus {
    cells: CellSizes,
    xlat: Xlat,
}

// ---------------------------------------------------------------------------------------------
// The parser proper
// ---------------------------------------------------------------------------------------------

struct Parser<'a> {
    fdt: Fdt<'a>,
    info: DtInfo,
    mmio_full: bool,
}

impl<'a> Parser<'a> {
    fn warn(&mut self, path: &str, kind: WarningKind) {
        if self.info.warnings.len() < MAX_WARNINGS {
            self.info.warnings.push(DtWarning {
                path: path.to_owned(),
                kind,
            });
        } else {
            self.info.warnings_dropped = self.info.warnings_dropped.saturating_add(1);
        }
    }

    fn cells_prop(
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
    fn cell_sizes(&mut self, node: &FdtNode<'a>, path: &str) -> CellSizes {
        CellSizes {
            address: self.cells_prop(node, path, "#address-cells", CellSizes::DEFAULT.address),
            size: self.cells_prop(node, path, "#size-cells", CellSizes::DEFAULT.size),
        }
    }

    fn string_prop(
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

    fn string_list_prop(
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
    fn regs(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) -> Vec<Region> {
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

    fn run(&mut self) {
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
    fn config_env(&mut self) {
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

    fn memreserve(&mut self) {
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

    fn memory(&mut self, root: &FdtNode<'a>, cells: CellSizes) {
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

    fn reserved_memory(&mut self, root_cells: CellSizes) {
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

    fn prop64(&mut self, node: &FdtNode<'a>, path: &str, name: &'static str) -> Prop64 {
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

    fn cpus(&mut self) {
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

    fn psci(&mut self, root: &FdtNode<'a>) {
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

    /// Walks device nodes below `node`, collecting MMIO regions and known devices.
    fn walk(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus, depth: usize) {
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
    fn child_bus(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) -> Option<Bus> {
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

    fn push_mmio(
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
    fn visit(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) {
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

    fn pci_host(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus, ecam: Region) {
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

    fn pci_windows(&mut self, node: &FdtNode<'a>, path: &str, bus: &Bus) -> Vec<PciWindow> {
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

    /// Resolves a path to its node and canonical path (full node names).
    fn resolve(&self, path: &str) -> Option<(FdtNode<'a>, String)> {
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
    fn top_node(&self, name: &str) -> Option<FdtNode<'a>> {
        self.fdt.root().children().find(|c| c.name() == name)
    }

    fn chosen(&mut self) {
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

    fn console(&mut self, stdout_path: &str) {
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

/// Root children that are not devices.
fn is_special_root_child(node: &FdtNode<'_>, name: &str) -> bool {
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

#[cfg(test)]
mod fuzz_regressions {
    use super::*;
    use alloc::format;

    const R: &str = "../tests/fuzz/regressions/dt_parse";

    #[test]
    fn pci_window_never_wraps() {
        let b = include_bytes!("../../tests/fuzz/regressions/dt_parse/pci-window-wraps.dtb");
        if let Ok(i) = parse(b) {
            for m in &i.mmio {
                assert!(m.region.base.checked_add(m.region.size).is_some(), "{m:?}");
            }
            for h in &i.pci_hosts {
                for w in &h.windows {
                    assert!(w.cpu_addr.checked_add(w.size).is_some(), "{w:?}");
                }
            }
        }
        let _ = R;
    }

    #[test]
    fn chosen_is_the_node_named_chosen() {
        let b =
            include_bytes!("../../tests/fuzz/regressions/dt_parse/chosen-unit-address-first.dtb");
        let i = parse(b).unwrap();
        assert_eq!(
            i.chosen.bootargs.as_deref(),
            Some("console=ttyAMA0 root=/dev/vda")
        );
    }

    #[test]
    fn warnings_print_without_control_characters() {
        let b =
            include_bytes!("../../tests/fuzz/regressions/dt_parse/stdout-path-control-chars.dtb");
        if let Ok(i) = parse(b) {
            for w in &i.warnings {
                let s = format!("{w}");
                assert!(!s.chars().any(char::is_control), "{s:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;
    use dtoolkit::memreserve::MemoryReservation;
    use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

    const VIRT_EL2: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-el2-gicv3-smp4.dtb");
    const VIRT_EL1: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-el1.dtb");
    const VIRT_SPIN: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-spin-table-smp4.dtb");

    // ---- helpers to build DTBs ----

    fn cells(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    fn pb(name: &str, bytes: &[u8]) -> DeviceTreeProperty {
        DeviceTreeProperty::new(name, bytes).unwrap()
    }

    fn pc(name: &str, v: &[u32]) -> DeviceTreeProperty {
        pb(name, &cells(v))
    }

    fn ps(name: &str, v: &str) -> DeviceTreeProperty {
        DeviceTreeProperty::new(name, v).unwrap()
    }

    fn n(
        name: &str,
        props: Vec<DeviceTreeProperty>,
        children: Vec<DeviceTreeNode>,
    ) -> DeviceTreeNode {
        let mut b = DeviceTreeNode::builder(name).unwrap();
        for p in props {
            b = b.property(p);
        }
        for c in children {
            b = b.child(c);
        }
        b.build()
    }

    /// A tree with root cells 2/2, 1 GiB at 0x40000000, plus `children`.
    fn tree(children: Vec<DeviceTreeNode>) -> DeviceTree {
        let mut t = DeviceTree::new();
        t.root.add_property(pc("#address-cells", &[2]));
        t.root.add_property(pc("#size-cells", &[2]));
        t.root
            .add_property(pb("compatible", b"acme,board\0acme,soc\0"));
        t.root.add_child(n(
            "memory@40000000",
            vec![
                ps("device_type", "memory"),
                pc("reg", &[0, 0x4000_0000, 0, 0x4000_0000]),
            ],
            vec![],
        ));
        for c in children {
            t.root.add_child(c);
        }
        t
    }

    fn cpus(cpu_nodes: Vec<DeviceTreeNode>) -> DeviceTreeNode {
        n(
            "cpus",
            vec![pc("#address-cells", &[1]), pc("#size-cells", &[0])],
            cpu_nodes,
        )
    }

    fn cpu(i: u32, extra: Vec<DeviceTreeProperty>) -> DeviceTreeNode {
        let mut props = vec![ps("device_type", "cpu"), pc("reg", &[i])];
        props.extend(extra);
        n(&format!("cpu@{i}"), props, vec![])
    }

    fn parse_tree(t: &DeviceTree) -> DtInfo {
        parse(&t.to_dtb()).unwrap()
    }

    fn has_warning(info: &DtInfo, f: impl Fn(&WarningKind) -> bool) -> bool {
        info.warnings.iter().any(|w| f(&w.kind))
    }

    // ---- header ----

    #[test]
    fn totalsize_of_header() {
        assert_eq!(fdt_totalsize(VIRT_EL2), Ok(VIRT_EL2.len()));
        assert_eq!(fdt_totalsize(&VIRT_EL2[..40]), Ok(VIRT_EL2.len()));
        assert_eq!(
            fdt_totalsize(&VIRT_EL2[..39]),
            Err(DtError::HeaderTooShort { len: 39 })
        );
        let mut bad = VIRT_EL2[..40].to_vec();
        bad[0] = 0;
        assert_eq!(
            fdt_totalsize(&bad),
            Err(DtError::BadMagic { found: 0x000d_feed })
        );
        let mut small = VIRT_EL2[..40].to_vec();
        small[4..8].copy_from_slice(&39u32.to_be_bytes());
        assert_eq!(
            fdt_totalsize(&small),
            Err(DtError::TotalSizeTooSmall { totalsize: 39 })
        );
    }

    #[test]
    fn errors_display_one_line() {
        let errs = [
            DtError::HeaderTooShort { len: 3 },
            DtError::BadMagic { found: 0x1234 },
            DtError::TotalSizeTooSmall { totalsize: 3 },
            DtError::Truncated {
                totalsize: 100,
                available: 50,
            },
            parse(&{
                let mut v = VIRT_EL1.to_vec();
                let off = u32::from_be_bytes(v[8..12].try_into().unwrap()) as usize;
                v[off + 3] = 0x7; // bad first token
                v
            })
            .unwrap_err(),
            DtError::TooDeep { limit: MAX_DEPTH },
            DtError::NameTooLong {
                len: 200,
                limit: MAX_NODE_NAME,
            },
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
        }
        assert_eq!(
            DtError::BadMagic { found: 0x1234 }.to_string(),
            "bad device tree magic 0x00001234 (expected 0xd00dfeed)"
        );
        assert_eq!(
            DtError::Truncated {
                totalsize: 100,
                available: 50
            }
            .to_string(),
            "device tree totalsize 100 exceeds the 50 bytes available"
        );
    }

    #[test]
    fn truncated_and_longer_buffers() {
        assert_eq!(
            parse(&VIRT_EL2[..VIRT_EL2.len() - 1]),
            Err(DtError::Truncated {
                totalsize: VIRT_EL2.len(),
                available: VIRT_EL2.len() - 1
            })
        );
        let mut longer = VIRT_EL2.to_vec();
        longer.extend_from_slice(&[0xff; 100]);
        let info = parse(&longer).unwrap();
        assert_eq!(info.totalsize, VIRT_EL2.len());
        assert_eq!(parse(&[]), Err(DtError::HeaderTooShort { len: 0 }));
    }

    #[test]
    fn qemu_padded_layout() {
        // QEMU passes totalsize = 1 MiB with zero padding after the strings block.
        let mut v = VIRT_EL2.to_vec();
        v.resize(1 << 20, 0);
        v[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
        let info = parse(&v).unwrap();
        assert_eq!(info.totalsize, 1 << 20);
        assert_eq!(info.cpus.len(), 4);
    }

    // ---- fixtures ----

    #[test]
    fn qemu_virt_el2_gicv3_smp4() {
        let info = parse(VIRT_EL2).unwrap();
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.model.as_deref(), Some("linux,dummy-virt"));
        assert_eq!(info.compatible, ["linux,dummy-virt"]);
        assert!(info.is_compatible("linux,dummy-virt"));
        assert_eq!(
            info.root_cells,
            CellSizes {
                address: 2,
                size: 2
            }
        );
        assert_eq!(info.memory, [Region::new(0x4000_0000, 0x4000_0000)]);
        assert!(info.memreserve.is_empty());
        assert!(info.reserved_memory.is_empty());
        assert_eq!(info.cpus_address_cells, 1);
        assert_eq!(info.cpus.len(), 4);
        for (i, c) in info.cpus.iter().enumerate() {
            assert_eq!(c.mpidr, i as u64);
            assert_eq!(c.path, format!("/cpus/cpu@{i}"));
            assert_eq!(c.name(), format!("cpu@{i}"));
            assert_eq!(c.enable_method, Some(EnableMethod::Psci));
            assert_eq!(c.release_addr, Prop64::Absent);
            assert_eq!(c.status, Status::Okay);
        }
        assert_eq!(info.cpu_by_mpidr(0x8000_0002).map(|c| c.mpidr), Some(2));
        let psci = info.psci.clone().unwrap();
        assert_eq!(psci.version, PsciVersion::V1_0);
        assert_eq!(psci.conduit, Conduit::Smc);
        assert_eq!(psci.cpu_on, Some(0xc400_0003));
        assert_eq!(psci.cpu_off, Some(0x8400_0002));
        let con = info.console.clone().unwrap();
        assert_eq!(con.path, "/pl011@9000000");
        assert_eq!(con.reg, Some(Region::new(0x0900_0000, 0x1000)));
        assert_eq!(con.compatible, ["arm,pl011", "arm,primecell"]);
        assert_eq!(con.options, None);
        assert_eq!(info.chosen.stdout_path.as_deref(), Some("/pl011@9000000"));
        assert_eq!(info.chosen.bootargs, None);
        assert_eq!(info.chosen.initrd, None);
        assert_eq!(info.virtio_mmio.len(), 32);
        let mut bases: Vec<u64> = info.virtio_mmio.iter().map(|v| v.region.base).collect();
        bases.sort_unstable();
        for (i, b) in bases.iter().enumerate() {
            assert_eq!(*b, 0x0a00_0000 + 0x200 * i as u64);
        }
        assert!(info.virtio_mmio.iter().all(|v| v.region.size == 0x200));
        assert_eq!(info.pci_hosts.len(), 1);
        let pci = &info.pci_hosts[0];
        assert_eq!(pci.path, "/pcie@10000000");
        assert_eq!(pci.ecam, Region::new(0x40_1000_0000, 0x1000_0000));
        assert_eq!((pci.bus_start, pci.bus_end), (0, 255));
        assert_eq!(
            pci.windows,
            [
                PciWindow {
                    space: PciSpace::Io,
                    prefetchable: false,
                    pci_addr: 0,
                    cpu_addr: 0x3eff_0000,
                    size: 0x1_0000
                },
                PciWindow {
                    space: PciSpace::Mem32,
                    prefetchable: false,
                    pci_addr: 0x1000_0000,
                    cpu_addr: 0x1000_0000,
                    size: 0x2eff_0000
                },
                PciWindow {
                    space: PciSpace::Mem64,
                    prefetchable: false,
                    pci_addr: 0x80_0000_0000,
                    cpu_addr: 0x80_0000_0000,
                    size: 0x80_0000_0000
                },
            ]
        );
        let gic = info.gic.clone().unwrap();
        assert_eq!(gic.version, GicVersion::V3);
        assert_eq!(gic.path, "/intc@8000000");
        assert_eq!(
            gic.regs,
            [
                Region::new(0x0800_0000, 0x1_0000),
                Region::new(0x080a_0000, 0xf6_0000)
            ]
        );
        assert_eq!(gic.distributor(), Some(Region::new(0x0800_0000, 0x1_0000)));
        assert_eq!(gic.cpu_interface(), None);
        assert_eq!(gic.redistributors(), [Region::new(0x080a_0000, 0xf6_0000)]);
        assert_eq!(info.timer_frequency, None);
        // QEMU: <1 13 0x304>, <1 14 0x304>, <1 11 0x304>, <1 10 0x304>.
        assert_eq!(
            info.timer_irqs,
            Some(TimerIrqs {
                secure_phys: Some(29),
                nonsecure_phys: Some(30),
                virt: Some(27),
                hyp_phys: Some(26),
            })
        );
        // MMIO: devices at the root and the ITS below the GIC (translated through `ranges;`).
        let find = |p: &str| {
            info.mmio
                .iter()
                .filter(|m| m.path == p)
                .map(|m| m.region)
                .collect::<Vec<_>>()
        };
        assert_eq!(find("/pl011@9000000"), [Region::new(0x0900_0000, 0x1000)]);
        assert_eq!(
            find("/intc@8000000/its@8080000"),
            [Region::new(0x0808_0000, 0x2_0000)]
        );
        assert_eq!(
            find("/flash@0"),
            [
                Region::new(0, 0x400_0000),
                Region::new(0x400_0000, 0x400_0000)
            ]
        );
        assert_eq!(find("/fw-cfg@9020000"), [Region::new(0x0902_0000, 0x18)]);
        assert!(find("/memory@40000000").is_empty());
        assert!(info.mmio.iter().all(|m| !m.path.starts_with("/cpus")));
        let its = info
            .mmio
            .iter()
            .find(|m| m.path == "/intc@8000000/its@8080000")
            .unwrap();
        assert_eq!(its.name(), "its@8080000");
        assert_eq!(its.compatible.as_deref(), Some("arm,gic-v3-its"));
        assert!(its.enabled);
        let windows: Vec<_> = info.mmio.iter().filter_map(|m| m.pci_window).collect();
        assert_eq!(windows, [PciSpace::Io, PciSpace::Mem32, PciSpace::Mem64]);
        let summary = info.to_string();
        assert!(
            summary.contains("memory: 0x40000000..0x80000000 (1024 MiB)"),
            "{summary}"
        );
        assert!(summary.contains("psci: V1_0 via Smc"), "{summary}");
    }

    #[test]
    fn qemu_virt_el1() {
        let info = parse(VIRT_EL1).unwrap();
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(info.cpus.len(), 1);
        assert_eq!(info.psci.as_ref().map(|p| p.conduit), Some(Conduit::Hvc));
        let gic = info.gic.unwrap();
        assert_eq!(gic.version, GicVersion::V2);
        assert_eq!(
            gic.regs,
            [
                Region::new(0x0800_0000, 0x1_0000),
                Region::new(0x0801_0000, 0x1_0000)
            ]
        );
    }

    #[test]
    fn spin_table_fixture() {
        let info = parse(VIRT_SPIN).unwrap();
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
        assert_eq!(
            info.memreserve,
            [
                Region::new(0x400f_f000, 0x1000),
                Region::new(0x7ff0_0000, 0x10_0000)
            ]
        );
        assert_eq!(
            info.reserved_memory,
            [ReservedMemory {
                name: "secmon@7fe00000".into(),
                region: Region::new(0x7fe0_0000, 0x10_0000),
                no_map: true,
                reusable: false
            }]
        );
        assert_eq!(info.cpus.len(), 4);
        for (i, c) in info.cpus.iter().enumerate() {
            assert_eq!(c.enable_method, Some(EnableMethod::SpinTable));
            assert_eq!(c.release_addr, Prop64::Value(0x400f_ff00 + 8 * i as u64));
            if i == 0 {
                assert_eq!(c.park_addr, Prop64::Absent);
            } else {
                assert_eq!(c.park_addr.value(), Some(0x400f_fe00 + 8 * i as u64));
            }
        }
        let con = info.console.clone().unwrap();
        assert_eq!(con.path, "/pl011@9000000");
        assert_eq!(con.options.as_deref(), Some("115200n8"));
        assert_eq!(con.reg.map(|r| r.base), Some(0x0900_0000));
        assert_eq!(
            info.chosen.bootargs.as_deref(),
            Some("console=ttyAMA0 root=/dev/vda1 nr_cpus=1")
        );
        assert_eq!(
            info.chosen.initrd,
            Some(Region::new(0x4820_0000, 0x80_0000))
        );
        // reserved-memory and aliases are not devices
        assert!(info
            .mmio
            .iter()
            .all(|m| !m.path.starts_with("/reserved-memory")));
        let s = info.to_string();
        assert!(s.contains("release 0x400fff08 park 0x400ffe08"), "{s}");
        assert!(
            s.contains("reserved-memory: secmon@7fe00000 0x7fe00000..0x7ff00000 no-map"),
            "{s}"
        );
    }

    // ---- built trees ----

    #[test]
    fn one_cell_release_addr_is_flagged() {
        let t = tree(vec![cpus(vec![
            cpu(
                0,
                vec![
                    ps("enable-method", "spin-table"),
                    pc("cpu-release-addr", &[0, 0x4000_fff8]),
                ],
            ),
            cpu(
                1,
                vec![
                    ps("enable-method", "spin-table"),
                    pc("cpu-release-addr", &[0x4000_fff0]),
                ],
            ),
            cpu(
                2,
                vec![
                    ps("enable-method", "spin-table"),
                    pc("cpu-release-addr", &[1, 2, 3]),
                ],
            ),
            cpu(3, vec![ps("enable-method", "spin-table")]),
        ])]);
        let info = parse_tree(&t);
        assert_eq!(info.cpus[0].release_addr, Prop64::Value(0x4000_fff8));
        assert_eq!(info.cpus[1].release_addr, Prop64::OneCell(0x4000_fff0));
        assert_eq!(info.cpus[1].release_addr.value(), None);
        assert_eq!(info.cpus[2].release_addr, Prop64::BadLength(12));
        assert_eq!(info.cpus[3].release_addr, Prop64::Absent);
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::OneCell {
                prop: "cpu-release-addr",
                value: 0x4000_fff0
            }
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::SpinTableWithoutReleaseAddr
        )));
        let w = info
            .warnings
            .iter()
            .find(|w| matches!(w.kind, WarningKind::OneCell { .. }))
            .unwrap();
        assert_eq!(w.path, "/cpus/cpu@1");
        assert_eq!(
            w.to_string(),
            "/cpus/cpu@1: cpu-release-addr is one 32-bit cell (0x4000fff0); it must be 64-bit (two cells), Linux fails to read it"
        );
    }

    #[test]
    fn cpus_with_two_address_cells_and_problems() {
        let cpus = n(
            "cpus",
            vec![pc("#address-cells", &[2]), pc("#size-cells", &[0])],
            vec![
                n(
                    "cpu@0",
                    vec![
                        ps("device_type", "cpu"),
                        pc("reg", &[0, 0]),
                        ps("enable-method", "psci"),
                    ],
                    vec![],
                ),
                n(
                    "cpu@10100",
                    vec![
                        ps("device_type", "cpu"),
                        pc("reg", &[1, 0x100]),
                        ps("enable-method", "spin-table"),
                        pc("cpu-release-addr", &[0, 0x8000_0000]),
                    ],
                    vec![],
                ),
                n(
                    "cpu@1",
                    vec![
                        ps("device_type", "cpu"),
                        pc("reg", &[0, 0]),
                        ps("enable-method", "psci"),
                    ],
                    vec![],
                ),
                n("cpu@2", vec![ps("device_type", "cpu")], vec![]),
                n(
                    "cpu@3",
                    vec![
                        ps("device_type", "cpu"),
                        pc("reg", &[0, 3]),
                        ps("status", "disabled"),
                    ],
                    vec![],
                ),
                n("cpu-map", vec![], vec![]),
                n("l2-cache", vec![ps("device_type", "cache")], vec![]),
            ],
        );
        let info = parse_tree(&tree(vec![cpus]));
        assert_eq!(info.cpus_address_cells, 2);
        let mpidrs: Vec<u64> = info.cpus.iter().map(|c| c.mpidr).collect();
        assert_eq!(mpidrs, [0, 0x1_0000_0100, 3]);
        assert_eq!(info.cpus[2].status, Status::Disabled);
        assert_eq!(info.enabled_cpus().count(), 2);
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::DuplicateMpidr { mpidr: 0 }
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::CpuWithoutReg
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::MixedEnableMethods
        )));
    }

    #[test]
    fn memory_banks_sorted_and_filtered() {
        let mut t = DeviceTree::new();
        t.root.add_property(pc("#address-cells", &[1]));
        t.root.add_property(pc("#size-cells", &[1]));
        t.root.add_child(n(
            "memory@80000000",
            vec![
                ps("device_type", "memory"),
                pc(
                    "reg",
                    &[
                        0x8000_0000,
                        0x1000_0000,
                        0x4000_0000,
                        0x100_0000,
                        0x5000_0000,
                        0,
                    ],
                ),
            ],
            vec![],
        ));
        t.root.add_child(n(
            "memory@10000000",
            vec![
                ps("device_type", "memory"),
                pc("reg", &[0x1000_0000, 0x100_0000]),
            ],
            vec![],
        ));
        t.root.add_child(n(
            "memory@20000000",
            vec![
                ps("device_type", "memory"),
                ps("status", "disabled"),
                pc("reg", &[0x2000_0000, 0x100_0000]),
            ],
            vec![],
        ));
        t.root.add_child(n(
            "memory@30000000",
            vec![pc("reg", &[0x3000_0000, 0x100_0000])],
            vec![],
        ));
        t.root.add_child(n(
            "sram@c0000000",
            vec![
                ps("device_type", "memory"),
                pc("reg", &[0xc000_0000, 0x1000, 0x7]),
            ],
            vec![],
        ));
        let info = parse_tree(&t);
        assert_eq!(
            info.memory,
            [
                Region::new(0x1000_0000, 0x100_0000),
                Region::new(0x4000_0000, 0x100_0000),
                Region::new(0x8000_0000, 0x1000_0000)
            ]
        );
        // The bad reg of sram@c0000000 (12 bytes, entry 8) is a warning, not an error.
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::BadReg(RegError::BadLength { len: 12, entry: 8 })
        )));
        // memory nodes are not MMIO
        assert!(info.mmio.iter().all(|m| !m.path.starts_with("/memory")));
    }

    #[test]
    fn reg_overflow_and_bad_cells() {
        let t = tree(vec![
            n(
                "dev@ffffffffffffffff",
                vec![pc("reg", &[0xffff_ffff, 0xffff_f000, 0, 0x2000])],
                vec![],
            ),
            n(
                "bus",
                vec![
                    pc("#address-cells", &[1, 2]),
                    pc("#size-cells", &[1]),
                    pb("ranges", b""),
                ],
                vec![n("x@0", vec![pc("reg", &[0, 0, 0x10])], vec![])],
            ),
            n(
                "weird",
                vec![pc("#address-cells", &[3]), pc("#size-cells", &[1])],
                vec![],
            ),
        ]);
        let info = parse_tree(&t);
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::BadReg(RegError::Overflow { .. })
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::BadLength {
                prop: "#address-cells",
                len: 8,
                ..
            }
        )));
        // the bus falls back to the default 2/1 cells: x@0's <0 0 0x10> decodes as base 0 size 0x10
        assert!(info
            .mmio
            .iter()
            .any(|m| m.path == "/bus/x@0" && m.region == Region::new(0, 0x10)));
    }

    #[test]
    fn simple_bus_translation() {
        let soc = n(
            "soc",
            vec![
                pb("compatible", b"simple-bus\0"),
                pc("#address-cells", &[1]),
                pc("#size-cells", &[1]),
                pc(
                    "ranges",
                    &[
                        0x0,
                        0x0,
                        0x1000_0000,
                        0x100_0000,
                        0x2000_0000,
                        0x1,
                        0x0,
                        0x1000,
                    ],
                ),
            ],
            vec![
                n(
                    "serial@1000",
                    vec![pb("compatible", b"ns16550a\0"), pc("reg", &[0x1000, 0x100])],
                    vec![],
                ),
                n(
                    "outside@5000000",
                    vec![pc("reg", &[0x500_0000, 0x100])],
                    vec![],
                ),
                n(
                    "hi@20000000",
                    vec![pc("reg", &[0x2000_0800, 0x100])],
                    vec![],
                ),
                n(
                    "inner",
                    vec![
                        pc("#address-cells", &[1]),
                        pc("#size-cells", &[1]),
                        pc("ranges", &[0x0, 0x20_0000, 0x1_0000]),
                    ],
                    vec![n(
                        "virtio@100",
                        vec![
                            pb("compatible", b"virtio,mmio\0"),
                            pc("reg", &[0x100, 0x200]),
                        ],
                        vec![],
                    )],
                ),
                n(
                    "i2c@3000",
                    vec![
                        pc("reg", &[0x3000, 0x100]),
                        pc("#address-cells", &[1]),
                        pc("#size-cells", &[0]),
                    ],
                    vec![n("eeprom@50", vec![pc("reg", &[0x50])], vec![])],
                ),
            ],
        );
        let chosen = n(
            "chosen",
            vec![ps("stdout-path", "/soc/serial@1000:9600")],
            vec![],
        );
        let info = parse_tree(&tree(vec![soc, chosen]));
        let get = |p: &str| info.mmio.iter().find(|m| m.path == p).map(|m| m.region);
        assert_eq!(
            get("/soc/serial@1000"),
            Some(Region::new(0x1000_1000, 0x100))
        );
        assert_eq!(
            get("/soc/hi@20000000"),
            Some(Region::new(0x1_0000_0800, 0x100))
        );
        assert_eq!(
            get("/soc/inner/virtio@100"),
            Some(Region::new(0x1020_0100, 0x200))
        );
        assert_eq!(get("/soc/outside@5000000"), None);
        assert_eq!(get("/soc/i2c@3000"), Some(Region::new(0x1000_3000, 0x100)));
        assert_eq!(get("/soc/i2c@3000/eeprom@50"), None);
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::Untranslatable { addr: 0x500_0000 }
        )));
        assert_eq!(
            info.virtio_mmio,
            [VirtioMmio {
                path: "/soc/inner/virtio@100".into(),
                region: Region::new(0x1020_0100, 0x200)
            }]
        );
        let con = info.console.unwrap();
        assert_eq!(con.path, "/soc/serial@1000");
        assert_eq!(con.reg, Some(Region::new(0x1000_1000, 0x100)));
        assert_eq!(con.options.as_deref(), Some("9600"));
        assert_eq!(con.compatible, ["ns16550a"]);
    }

    #[test]
    fn console_by_alias_and_unit_less_path() {
        let uart = n(
            "serial@9000000",
            vec![
                pb("compatible", b"arm,pl011\0"),
                pc("reg", &[0, 0x0900_0000, 0, 0x1000]),
                pc("interrupts", &[0, 1, 4]),
            ],
            vec![],
        );
        let aliases = n(
            "aliases",
            vec![ps("serial0", "/serial@9000000"), ps("bad", "/nonexistent")],
            vec![],
        );
        for (sp, ok) in [
            ("serial0", true),
            ("serial0:115200", true),
            ("/serial", true),
            ("bad", false),
            ("nosuch:1", false),
            ("", false),
        ] {
            let chosen = n("chosen", vec![ps("stdout-path", sp)], vec![]);
            let info = parse_tree(&tree(vec![uart.clone(), aliases.clone(), chosen]));
            assert_eq!(info.console.is_some(), ok, "{sp}");
            if ok {
                let c = info.console.unwrap();
                assert_eq!(c.path, "/serial@9000000");
                assert_eq!(c.reg.map(|r| r.base), Some(0x0900_0000));
                assert_eq!(c.irq, Some(33));
            } else {
                assert!(
                    has_warning(&info, |k| matches!(
                        k,
                        WarningKind::StdoutPathUnresolved { .. }
                    )),
                    "{sp}"
                );
            }
        }
        // legacy linux,stdout-path
        let chosen = n(
            "chosen",
            vec![ps("linux,stdout-path", "/serial@9000000")],
            vec![],
        );
        let info = parse_tree(&tree(vec![uart, chosen]));
        assert_eq!(
            info.console.map(|c| c.path).as_deref(),
            Some("/serial@9000000")
        );
    }

    #[test]
    fn config_environment_becomes_env() {
        let env = n(
            "environment",
            vec![
                ps("bootcmd", "booti ${a} - ${fdtcontroladdr}"),
                ps("bootdelay", "0"),
                ps("empty", ""),
                pb("cells", &cells(&[1, 2])),
                pb("list", b"a\0b\0"),
                pb("ctl", b"a\x1bb\0"),
                pb("tabbed", b"a\tb\0"),
                pb("bad#name", b"x\0"),
            ],
            vec![],
        );
        let info = parse_tree(&tree(vec![n("config", vec![], vec![env])]));
        assert_eq!(
            info.config_env,
            vec![
                ("bootcmd".into(), "booti ${a} - ${fdtcontroladdr}".into()),
                ("bootdelay".into(), "0".into()),
                ("empty".into(), String::new()),
                ("tabbed".into(), "a\tb".into()),
            ]
        );
        let bad: Vec<String> = info
            .warnings
            .iter()
            .filter_map(|w| match &w.kind {
                WarningKind::BadEnvProperty { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(bad, ["cells", "list", "ctl", "bad#name"]);
        // Only /config/environment counts, and too many properties are cut with a warning.
        let many: Vec<DeviceTreeProperty> = (0..MAX_ENV_PROPS + 3)
            .map(|i| ps(&format!("v{i}"), "1"))
            .collect();
        let info = parse_tree(&tree(vec![
            n("environment", vec![ps("x", "1")], vec![]),
            n("config", vec![], vec![n("environment", many, vec![])]),
        ]));
        assert_eq!(info.config_env.len(), MAX_ENV_PROPS);
        assert_eq!(info.config_env[0], ("v0".into(), "1".into()));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::BadEnvProperty { why, .. } if why.contains("beyond")
        )));
        assert!(parse_tree(&tree(vec![])).config_env.is_empty());
    }

    #[test]
    fn chosen_initrd_variants() {
        let mk = |start: Vec<u32>, end: Vec<u32>| {
            let chosen = n(
                "chosen",
                vec![
                    pc("linux,initrd-start", &start),
                    pc("linux,initrd-end", &end),
                    ps("bootargs", "quiet"),
                ],
                vec![],
            );
            parse_tree(&tree(vec![chosen]))
        };
        assert_eq!(
            mk(vec![0x4800_0000], vec![0x4900_0000]).chosen.initrd,
            Some(Region::new(0x4800_0000, 0x100_0000))
        );
        assert_eq!(
            mk(vec![1, 0], vec![1, 0x1000]).chosen.initrd,
            Some(Region::new(0x1_0000_0000, 0x1000))
        );
        let inv = mk(vec![0x4900_0000], vec![0x4800_0000]);
        assert_eq!(inv.chosen.initrd, None);
        assert!(has_warning(&inv, |k| matches!(
            k,
            WarningKind::InitrdInverted { .. }
        )));
        let bad = mk(vec![1, 2, 3], vec![0x4800_0000]);
        assert_eq!(bad.chosen.initrd, None);
        assert!(has_warning(&bad, |k| matches!(
            k,
            WarningKind::BadLength {
                prop: "linux,initrd-start",
                ..
            }
        )));
        assert_eq!(bad.chosen.bootargs.as_deref(), Some("quiet"));
    }

    #[test]
    fn psci_variants() {
        let mk = |compat: &[u8], method: Option<&str>| {
            let mut props = vec![
                pb("compatible", compat),
                pc("cpu_on", &[0x9500_0003]),
                pc("cpu_off", &[1, 2]),
            ];
            if let Some(m) = method {
                props.push(ps("method", m));
            }
            parse_tree(&tree(vec![n("psci", props, vec![])]))
        };
        let v01 = mk(b"arm,psci\0", Some("hvc"));
        let p = v01.psci.clone().unwrap();
        assert_eq!(
            (p.version, p.conduit, p.cpu_on, p.cpu_off),
            (PsciVersion::V0_1, Conduit::Hvc, Some(0x9500_0003), None)
        );
        assert!(has_warning(&v01, |k| matches!(
            k,
            WarningKind::BadLength {
                prop: "cpu_off",
                ..
            }
        )));
        assert_eq!(
            mk(b"arm,psci-0.2\0arm,psci\0", Some("smc"))
                .psci
                .unwrap()
                .version,
            PsciVersion::V0_2
        );
        let none = mk(b"arm,psci-1.0\0", None);
        assert!(none.psci.is_none());
        assert!(has_warning(&none, |k| matches!(
            k,
            WarningKind::PsciBadMethod
        )));
        assert!(mk(b"arm,psci-1.0\0", Some("svc")).psci.is_none());
    }

    #[test]
    fn gic_v2_timer_and_disabled_devices() {
        let t = tree(vec![
            n(
                "interrupt-controller@2c001000",
                vec![
                    pb("compatible", b"arm,gic-400\0"),
                    pc(
                        "reg",
                        &[0, 0x2c00_1000, 0, 0x1000, 0, 0x2c00_2000, 0, 0x2000],
                    ),
                ],
                vec![],
            ),
            n(
                "timer",
                vec![
                    pb("compatible", b"arm,armv8-timer\0"),
                    pc("clock-frequency", &[24_000_000]),
                    // secure phys is an SPI here (not a PPI: None), then 14, 11, 10
                    pc(
                        "interrupts",
                        &[0, 13, 4, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08],
                    ),
                ],
                vec![],
            ),
            n(
                "virtio@a000000",
                vec![
                    pb("compatible", b"virtio,mmio\0"),
                    pc("reg", &[0, 0x0a00_0000, 0, 0x200]),
                    ps("status", "disabled"),
                ],
                vec![],
            ),
            n(
                "virtio@a000200",
                vec![
                    pb("compatible", b"virtio,mmio\0"),
                    pc("reg", &[0, 0x0a00_0200, 0, 0x200]),
                    ps("status", "okay"),
                ],
                vec![],
            ),
        ]);
        let info = parse_tree(&t);
        let gic = info.gic.clone().unwrap();
        assert_eq!(gic.version, GicVersion::V2);
        assert_eq!(gic.regs.len(), 2);
        assert_eq!(gic.distributor(), Some(Region::new(0x2c00_1000, 0x1000)));
        assert_eq!(gic.cpu_interface(), Some(Region::new(0x2c00_2000, 0x2000)));
        assert!(gic.redistributors().is_empty());
        assert_eq!(info.timer_frequency, Some(24_000_000));
        assert_eq!(
            info.timer_irqs,
            Some(TimerIrqs {
                secure_phys: None,
                nonsecure_phys: Some(30),
                virt: Some(27),
                hyp_phys: Some(26),
            })
        );
        assert_eq!(info.virtio_mmio.len(), 1);
        assert_eq!(info.virtio_mmio[0].region.base, 0x0a00_0200);
        let dis = info
            .mmio
            .iter()
            .find(|m| m.path == "/virtio@a000000")
            .unwrap();
        assert!(!dis.enabled);
        assert!(info.to_string().contains("timer: 24000000 Hz"));
    }

    #[test]
    fn gic_intids() {
        let c = |v: &[u32]| cells(v);
        assert_eq!(gic_intid(&c(&[0, 1, 4])), Some(33));
        assert_eq!(gic_intid(&c(&[1, 14, 0xf04])), Some(30));
        assert_eq!(gic_intid(&c(&[1, 16, 4])), None);
        assert_eq!(gic_intid(&c(&[0, 988, 4])), None);
        assert_eq!(gic_intid(&c(&[2, 1, 4])), None);
        assert_eq!(gic_intid(&c(&[0, 1])), None);
        assert_eq!(gic_intid(&c(&[0, 1, 4, 0, 2, 4])), Some(33));
    }

    #[test]
    fn timer_interrupts_and_redistributor_regions_are_checked() {
        let t = tree(vec![
            n(
                "intc@8000000",
                vec![
                    pb("compatible", b"arm,gic-v3\0"),
                    pc("#redistributor-regions", &[2]),
                    pc(
                        "reg",
                        &[
                            0,
                            0x0800_0000,
                            0,
                            0x1_0000,
                            0,
                            0x080a_0000,
                            0,
                            0xf6_0000,
                            0,
                            0x1000_0000,
                            0,
                            0x4_0000,
                            0,
                            0x0801_0000,
                            0,
                            0x1_0000,
                        ],
                    ),
                ],
                vec![],
            ),
            n(
                "timer",
                vec![
                    pb("compatible", b"arm,armv8-timer\0"),
                    // not whole triples: ignored with a warning
                    pc("interrupts", &[1, 13, 4, 1]),
                ],
                vec![],
            ),
        ]);
        let info = parse_tree(&t);
        let gic = info.gic.clone().unwrap();
        assert_eq!(gic.redist_regions, 2);
        assert_eq!(
            gic.redistributors(),
            [
                Region::new(0x080a_0000, 0xf6_0000),
                Region::new(0x1000_0000, 0x4_0000)
            ]
        );
        assert_eq!(info.timer_irqs, None);
        assert!(info
            .warnings
            .iter()
            .any(|w| w.to_string().contains("interrupts")));

        // More redistributor regions than `reg` entries: clamped, never out of bounds.
        let t = tree(vec![n(
            "intc@8000000",
            vec![
                pb("compatible", b"arm,gic-v3\0"),
                pc("#redistributor-regions", &[9]),
                pc(
                    "reg",
                    &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0xf6_0000],
                ),
            ],
            vec![],
        )]);
        let gic = parse_tree(&t).gic.unwrap();
        assert_eq!(gic.redistributors(), [Region::new(0x080a_0000, 0xf6_0000)]);
    }

    #[test]
    fn pci_host_bus_range_and_windows() {
        let mk = |bus_range: Option<Vec<u32>>, ecam_size: u32| {
            let mut props = vec![
                pb("compatible", b"pci-host-ecam-generic\0"),
                ps("device_type", "pci"),
                pc("#address-cells", &[3]),
                pc("#size-cells", &[2]),
                pc("reg", &[0x40, 0x1000_0000, 0, ecam_size]),
                pc(
                    "ranges",
                    &[
                        0x0100_0000,
                        0,
                        0,
                        0,
                        0x3eff_0000,
                        0,
                        0x1_0000, // io
                        0x4200_0000,
                        0,
                        0x1000_0000,
                        0,
                        0x1000_0000,
                        0,
                        0x1000_0000, // prefetchable mem32
                        0x0000_0000,
                        0,
                        0,
                        0,
                        0x5000_0000,
                        0,
                        0x1000, // config: ignored
                    ],
                ),
            ];
            if let Some(br) = bus_range {
                props.push(pc("bus-range", &br));
            }
            parse_tree(&tree(vec![n(
                "pcie@10000000",
                props,
                vec![n("dev@0,0", vec![pc("reg", &[0, 0, 0, 0, 0])], vec![])],
            )]))
        };
        let info = mk(Some(vec![0, 0xff]), 0x1000_0000);
        let h = &info.pci_hosts[0];
        assert_eq!((h.bus_start, h.bus_end), (0, 255));
        assert_eq!(h.windows.len(), 2);
        assert!(h.windows[1].prefetchable);
        assert_eq!(h.windows[1].space, PciSpace::Mem32);
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::BadPciWindow { phys_hi: 0 }
        )));
        // PCI child nodes are not MMIO
        assert!(info.mmio.iter().all(|m| !m.path.contains("dev@0,0")));
        let small = mk(None, 0x40_0000);
        assert_eq!(
            (small.pci_hosts[0].bus_start, small.pci_hosts[0].bus_end),
            (0, 3)
        );
        assert!(has_warning(&small, |k| matches!(
            k,
            WarningKind::EcamTooSmall { buses: 4, .. }
        )));
        let bad = mk(Some(vec![5, 2]), 0x1000_0000);
        assert_eq!(
            (bad.pci_hosts[0].bus_start, bad.pci_hosts[0].bus_end),
            (0, 255)
        );
        assert!(has_warning(&bad, |k| matches!(
            k,
            WarningKind::BadBusRange { start: 5, end: 2 }
        )));
        let tiny = mk(None, 0x1000);
        assert!(tiny.pci_hosts.is_empty());
    }

    #[test]
    fn memreserve_entries() {
        let mut t = tree(vec![]);
        t.memory_reservations = vec![
            MemoryReservation::new(0x4000_0000, 0x1000),
            MemoryReservation::new(0x5000_0000, 0),
            MemoryReservation::new(u64::MAX - 10, 0x100),
            MemoryReservation::new(0x4800_0000, 0x10_0000),
        ];
        let info = parse_tree(&t);
        assert_eq!(
            info.memreserve,
            [
                Region::new(0x4000_0000, 0x1000),
                Region::new(0x4800_0000, 0x10_0000)
            ]
        );
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::ZeroSizeMemreserve { addr: 0x5000_0000 }
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::MemreserveOverflow { .. }
        )));
    }

    #[test]
    fn reserved_memory_format_mismatch_is_warned_but_honoured() {
        let rm = n(
            "reserved-memory",
            vec![pc("#address-cells", &[1]), pc("#size-cells", &[1])],
            vec![
                n(
                    "a@50000000",
                    vec![pc("reg", &[0x5000_0000, 0x1000]), pb("no-map", b"")],
                    vec![],
                ),
                n(
                    "b",
                    vec![
                        pc("reg", &[0x5100_0000, 0x2000]),
                        pb("reusable", b""),
                        ps("status", "disabled"),
                    ],
                    vec![],
                ),
                n(
                    "c",
                    vec![pc("reg", &[0x5200_0000, 0x2000]), pb("reusable", b"")],
                    vec![],
                ),
            ],
        );
        let info = parse_tree(&tree(vec![rm]));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::ReservedMemoryFormat
        )));
        assert_eq!(info.reserved_memory.len(), 2);
        assert!(info.reserved_memory[0].no_map && !info.reserved_memory[0].reusable);
        assert!(info.reserved_memory[1].reusable);
        assert_eq!(
            info.reserved_memory[1].region,
            Region::new(0x5200_0000, 0x2000)
        );
    }

    #[test]
    fn too_deep_is_rejected() {
        let mut node = n("leaf", vec![], vec![]);
        for i in 0..MAX_DEPTH {
            node = n(&format!("n{i}"), vec![], vec![node]);
        }
        let t = tree(vec![node]);
        assert_eq!(
            parse(&t.to_dtb()),
            Err(DtError::TooDeep { limit: MAX_DEPTH })
        );
        // exactly MAX_DEPTH levels below the root is fine
        let mut node = n("leaf", vec![], vec![]);
        for i in 0..MAX_DEPTH - 1 {
            node = n(&format!("n{i}"), vec![], vec![node]);
        }
        assert!(parse(&tree(vec![node]).to_dtb()).is_ok());
    }

    #[test]
    fn long_names_are_rejected() {
        let name = format!("a@{}", "f".repeat(MAX_NODE_NAME));
        let t = tree(vec![n(&name, vec![], vec![])]);
        assert_eq!(
            parse(&t.to_dtb()),
            Err(DtError::NameTooLong {
                len: MAX_NODE_NAME + 2,
                limit: MAX_NODE_NAME
            })
        );
    }

    #[test]
    fn long_paths_are_rejected() {
        let name = |c: char| format!("{}@{}", c, "1".repeat(98)); // 100 bytes
        let t = tree(vec![n(
            &name('a'),
            vec![],
            vec![n(&name('b'), vec![], vec![n(&name('c'), vec![], vec![])])],
        )]);
        assert_eq!(
            parse(&t.to_dtb()),
            Err(DtError::PathTooLong {
                len: 303,
                limit: MAX_PATH
            })
        );
        let t = tree(vec![n(
            &name('a'),
            vec![],
            vec![n(&name('b'), vec![], vec![])],
        )]);
        assert!(parse(&t.to_dtb()).is_ok());
    }

    #[test]
    fn long_strings_are_dropped() {
        let long = "x".repeat(MAX_STRING + 1);
        let mut t = tree(vec![
            n(
                "chosen",
                vec![ps("bootargs", &"y".repeat(MAX_BOOTARGS + 1))],
                vec![],
            ),
            n(
                "dev@0",
                vec![
                    pb("compatible", format!("{long}\0").as_bytes()),
                    pc("reg", &[0, 0, 0, 1]),
                ],
                vec![],
            ),
        ]);
        t.root.add_property(ps("model", &long));
        t.root
            .add_property(pb("compatible", format!("ok\0{long}\0").as_bytes()));
        let info = parse_tree(&t);
        assert_eq!(info.model, None);
        assert_eq!(info.compatible, ["ok"]);
        assert_eq!(info.chosen.bootargs, None);
        assert_eq!(
            info.mmio
                .iter()
                .find(|m| m.path == "/dev@0")
                .unwrap()
                .compatible,
            None
        );
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::TooLong {
                prop: "bootargs",
                ..
            }
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::TooLong {
                prop: "model",
                len: 257,
                limit: 256
            }
        )));
        // the maximum is accepted
        let t = tree(vec![n(
            "chosen",
            vec![ps("bootargs", &"y".repeat(MAX_BOOTARGS))],
            vec![],
        )]);
        assert_eq!(
            parse_tree(&t).chosen.bootargs.map(|b| b.len()),
            Some(MAX_BOOTARGS)
        );
    }

    #[test]
    fn collections_are_capped() {
        let children: Vec<_> = (0..MAX_MMIO as u32 + 10)
            .map(|i| {
                n(
                    &format!("d@{i:x}"),
                    vec![pc("reg", &[0, i * 0x1000, 0, 0x1000])],
                    vec![],
                )
            })
            .collect();
        let info = parse_tree(&tree(children));
        assert_eq!(info.mmio.len(), MAX_MMIO);
        let too_many = info
            .warnings
            .iter()
            .filter(|w| {
                matches!(
                    w.kind,
                    WarningKind::TooMany {
                        what: "MMIO regions",
                        ..
                    }
                )
            })
            .count();
        assert_eq!(too_many, 1);
    }

    #[test]
    fn warnings_are_capped() {
        let children: Vec<_> = (0..MAX_WARNINGS as u32 + 5)
            .map(|i| n(&format!("d@{i:x}"), vec![pc("reg", &[1, 2, 3])], vec![]))
            .collect();
        let info = parse_tree(&tree(children));
        assert_eq!(info.warnings.len(), MAX_WARNINGS);
        assert_eq!(info.warnings_dropped, 5);
        assert!(info.to_string().contains("(5 more warnings)"));
    }

    #[test]
    fn strings_must_be_terminated() {
        let mut t = tree(vec![]);
        t.root.add_property(pb("model", b"no-nul"));
        t.root.add_property(pb("compatible", b"a\0\xff\xfe\0"));
        let info = parse_tree(&t);
        assert_eq!(info.model, None);
        assert!(info.compatible.is_empty());
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::NotString { prop: "model" }
        )));
        assert!(has_warning(&info, |k| matches!(
            k,
            WarningKind::NotString { prop: "compatible" }
        )));
    }

    #[test]
    fn warning_display_is_one_line() {
        let t = tree(vec![
            cpus(vec![
                cpu(0, vec![pc("cpu-release-addr", &[1])]),
                cpu(0, vec![]),
            ]),
            n(
                "chosen",
                vec![
                    ps("stdout-path", "nowhere"),
                    pc("linux,initrd-start", &[9]),
                    pc("linux,initrd-end", &[1]),
                ],
                vec![],
            ),
            n(
                "psci",
                vec![pb("compatible", b"arm,psci\0"), ps("method", "x")],
                vec![],
            ),
        ]);
        let info = parse_tree(&t);
        assert!(info.warnings.len() >= 3);
        for w in &info.warnings {
            let s = w.to_string();
            assert!(!s.contains('\n') && s.starts_with('/'), "{s}");
        }
    }

    // ---- robustness: never panic on any input ----

    /// xorshift64*: deterministic pseudo-random numbers.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn exercise(bytes: &[u8]) {
        if let Ok(info) = parse(bytes) {
            // Display and derived data must not panic either.
            let _ = info.to_string();
            for w in &info.warnings {
                let _ = w.to_string();
            }
        }
    }

    #[test]
    fn fuzz_bit_flips() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for base in [VIRT_SPIN, VIRT_EL2, VIRT_EL1] {
            for _ in 0..1500 {
                let mut v = base.to_vec();
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
                exercise(&v);
            }
        }
    }

    #[test]
    fn fuzz_structure_words() {
        // Overwrite aligned 32-bit words with values that matter to the format (tokens, lengths,
        // offsets, cell counts), which reach deeper than random bit flips.
        let interesting = [
            0u32,
            1,
            2,
            3,
            4,
            9,
            0x20,
            0xffff_ffff,
            0x7fff_ffff,
            0x8000_0000,
            0x0100_0000,
            0x200,
            0x1000_0000,
        ];
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for _ in 0..4000 {
            let mut v = VIRT_SPIN.to_vec();
            for _ in 0..1 + rng.below(4) {
                let w = rng.below(v.len() / 4) * 4;
                let val = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u32
                };
                v[w..w + 4].copy_from_slice(&val.to_be_bytes());
            }
            exercise(&v);
        }
    }

    #[test]
    fn fuzz_truncation_with_patched_totalsize() {
        let mut v = VIRT_SPIN.to_vec();
        for len in (0..VIRT_SPIN.len()).step_by(3) {
            v.truncate(len);
            v.extend_from_slice(&VIRT_SPIN[len..]);
            let mut t = v[..len].to_vec();
            if len >= 8 {
                t[4..8].copy_from_slice(&(len as u32).to_be_bytes());
            }
            exercise(&t);
            exercise(&v[..len]);
        }
    }

    #[test]
    fn fuzz_random_bytes() {
        let mut rng = Rng(42);
        for _ in 0..3000 {
            let len = rng.below(512);
            let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len >= 40 && rng.below(4) != 0 {
                // plausible header so validation goes further
                v[0..4].copy_from_slice(&FDT_MAGIC.to_be_bytes());
                v[4..8].copy_from_slice(&(len as u32).to_be_bytes());
                v[20..24].copy_from_slice(&17u32.to_be_bytes());
                v[24..28].copy_from_slice(&16u32.to_be_bytes());
                let off_rsv = 40u32;
                v[16..20].copy_from_slice(&off_rsv.to_be_bytes());
                let off_struct = 56 + (rng.below(len.saturating_sub(56).max(1)) as u32 & !3);
                v[8..12].copy_from_slice(&off_struct.to_be_bytes());
                if len >= 56 {
                    v[40..56].fill(0);
                }
            }
            exercise(&v);
        }
    }

    #[test]
    fn fuzz_built_tree_mutations() {
        // Mutate property values of a rich built tree (cells, strings) without breaking the
        // structure, to exercise the value decoders.
        let mut rng = Rng(7);
        let base = parse_tree(&tree(vec![])).totalsize; // sanity
        assert!(base > 0);
        for _ in 0..1500 {
            let rand_bytes = |rng: &mut Rng| -> Vec<u8> {
                (0..rng.below(24))
                    .map(|_| [0u8, 1, 0xff, b'a', b'/', b':'][rng.below(6)])
                    .collect()
            };
            let names = [
                "reg",
                "ranges",
                "#address-cells",
                "#size-cells",
                "compatible",
                "status",
                "cpu-release-addr",
                "bus-range",
                "stdout-path",
                "method",
                "device_type",
                "enable-method",
                "clock-frequency",
                "linux,initrd-start",
            ];
            let props = |rng: &mut Rng| -> Vec<DeviceTreeProperty> {
                (0..rng.below(6))
                    .map(|_| pb(names[rng.below(names.len())], &rand_bytes(rng)))
                    .collect()
            };
            let t = tree(vec![
                cpus(vec![
                    n("cpu@0", props(&mut rng), vec![]),
                    cpu(1, props(&mut rng)),
                ]),
                n("psci", props(&mut rng), vec![]),
                n(
                    "pcie@0",
                    {
                        let mut p = props(&mut rng);
                        p.push(pb("compatible", b"pci-host-ecam-generic\0"));
                        p
                    },
                    vec![],
                ),
                n(
                    "soc",
                    {
                        let mut p = props(&mut rng);
                        p.push(pb("ranges", b""));
                        p
                    },
                    vec![n(
                        "dev@0",
                        props(&mut rng),
                        vec![n("x", props(&mut rng), vec![])],
                    )],
                ),
                n(
                    "reserved-memory",
                    props(&mut rng),
                    vec![n("r", props(&mut rng), vec![])],
                ),
                n("chosen", props(&mut rng), vec![]),
                n("aliases", props(&mut rng), vec![]),
                n(
                    "memory@0",
                    {
                        let mut p = props(&mut rng);
                        p.push(ps("device_type", "memory"));
                        p
                    },
                    vec![],
                ),
            ]);
            let dtb = t.to_dtb();
            assert!(parse(&dtb).is_ok());
            exercise(&dtb);
        }
    }

    #[test]
    fn decode_reg_edges() {
        assert_eq!(
            decode_reg(
                &[],
                CellSizes {
                    address: 2,
                    size: 2
                }
            ),
            Ok(vec![])
        );
        assert_eq!(
            decode_reg(
                &cells(&[1]),
                CellSizes {
                    address: 1,
                    size: 0
                }
            ),
            Ok(vec![Region::new(1, 0)])
        );
        assert_eq!(
            decode_reg(
                &cells(&[1]),
                CellSizes {
                    address: 0,
                    size: 1
                }
            ),
            Err(RegError::UnsupportedCells {
                address: 0,
                size: 1
            })
        );
        assert_eq!(
            decode_reg(
                &cells(&[1]),
                CellSizes {
                    address: u32::MAX,
                    size: u32::MAX
                }
            ),
            Err(RegError::UnsupportedCells {
                address: u32::MAX,
                size: u32::MAX
            })
        );
        let many: Vec<u32> = (0..2 * (MAX_REG_ENTRIES as u32 + 5)).collect();
        assert_eq!(
            decode_reg(
                &cells(&many),
                CellSizes {
                    address: 1,
                    size: 1
                }
            )
            .unwrap()
            .len(),
            MAX_REG_ENTRIES
        );
        assert_eq!(
            RegError::BadLength { len: 12, entry: 8 }.to_string(),
            "12 bytes is not a multiple of the 8-byte entry"
        );
        assert_eq!(Region::new(0x1000, 0x10).to_string(), "0x1000..0x1010");
        assert_eq!(Region::new(u64::MAX, 10).end(), u64::MAX);
        let _ = "x".to_string();
    }
}
