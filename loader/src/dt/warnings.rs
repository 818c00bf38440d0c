//! Why a tree is rejected ([`DtError`]) and what is odd about a node ([`DtWarning`]); every
//! message is one line.

use alloc::string::String;
use core::fmt;

use super::*;

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
