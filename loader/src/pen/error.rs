//! [`PenError`]: why a pen is refused or an operation fails; one line each.

use core::fmt;

use super::*;

/// Why a pen (or a request on one) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PenError {
    /// Fewer bytes than needed.
    TooShort {
        len: usize,
        need: u64,
    },
    BadMagic {
        found: u64,
    },
    BadVersion {
        found: u32,
    },
    BadHeaderSize {
        found: u32,
    },
    BadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The header does not describe the address it was found at.
    WrongPhysBase {
        header: u64,
        found_at: u64,
    },
    /// A field's value breaks the layout rules; `what` names the rule.
    BadLayout {
        what: &'static str,
        value: u64,
    },
    BadEntryEl {
        found: u32,
    },
    ReservedNotZero,
    /// Building: slot count outside 1..=MAX_SLOTS.
    BadSlotCount {
        count: usize,
    },
    /// Building: the code is empty, too large or not whole instructions.
    BadCode {
        len: usize,
    },
    /// Building: an MPIDR with bits outside Aff3..Aff0.
    BadMpidr {
        mpidr: u64,
    },
    DuplicateMpidr {
        mpidr: u64,
    },
    /// Building: the number of MPIDRs differs from the layout's slot count.
    CpuCountMismatch {
        cpus: usize,
        slots: u32,
    },
    /// The memory given for the pen is not 8-byte aligned (word accesses must be single-copy
    /// atomic).
    Unaligned,
    /// No slot for this MPIDR.
    NoSlot {
        mpidr: u64,
    },
    /// The CPU is not waiting in the pen (releases are only allowed in WAITING or PARKED).
    NotHeld {
        mpidr: u64,
        status: SlotStatus,
    },
    /// The release word is not zero: a release is pending (or stale).
    ReleasePending {
        mpidr: u64,
        value: u64,
    },
    /// A release address that is zero or not 4-byte aligned.
    BadEntry {
        entry: u64,
    },
    /// Mode 1 (ERET to EL1) needs a pen running at EL2.
    NeedsEl2,
    /// More valid pens than [`MAX_OLD_PENS`] in the /memreserve/ list.
    TooManyPens {
        limit: usize,
    },
}

impl fmt::Display for PenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len, need } => {
                write!(f, "pen needs {need} bytes, only {len} available")
            }
            Self::BadMagic { found } => write!(f, "pen magic {found:#018x} is not PKBTPEN1"),
            Self::BadVersion { found } => write!(f, "pen version {found} (expected {PEN_VERSION})"),
            Self::BadHeaderSize { found } => {
                write!(f, "pen header size {found} (expected {HEADER_SIZE})")
            }
            Self::BadChecksum { stored, computed } => write!(
                f,
                "pen header checksum {stored:#010x} does not match {computed:#010x}"
            ),
            Self::WrongPhysBase { header, found_at } => write!(
                f,
                "pen header found at {found_at:#x} says it is at {header:#x}"
            ),
            Self::BadLayout { what, value } => write!(f, "pen layout: {what} ({value:#x})"),
            Self::BadEntryEl { found } => write!(f, "pen entry EL {found} is not 1, 2 or 3"),
            Self::ReservedNotZero => write!(f, "pen header reserved bytes are not zero"),
            Self::BadSlotCount { count } => {
                write!(f, "{count} pen slots (1..={MAX_SLOTS} allowed)")
            }
            Self::BadCode { len } => write!(
                f,
                "pen code of {len} bytes (non-empty, whole instructions, <= {MAX_CODE_SIZE})"
            ),
            Self::BadMpidr { mpidr } => {
                write!(f, "MPIDR {mpidr:#x} has bits outside Aff3..Aff0")
            }
            Self::DuplicateMpidr { mpidr } => write!(f, "MPIDR {mpidr:#x} given twice"),
            Self::CpuCountMismatch { cpus, slots } => {
                write!(f, "{cpus} CPUs for a pen laid out for {slots} slots")
            }
            Self::Unaligned => write!(f, "pen memory is not 8-byte aligned"),
            Self::NoSlot { mpidr } => write!(f, "no pen slot for MPIDR {mpidr:#x}"),
            Self::NotHeld { mpidr, status } => {
                write!(f, "CPU {mpidr:#x} is not held in the pen (status {status})")
            }
            Self::ReleasePending { mpidr, value } => {
                write!(f, "release word of CPU {mpidr:#x} is already {value:#x}")
            }
            Self::BadEntry { entry } => {
                write!(f, "entry {entry:#x} is zero or not 4-byte aligned")
            }
            Self::NeedsEl2 => write!(f, "release to EL1 needs a pen running at EL2"),
            Self::TooManyPens { limit } => {
                write!(
                    f,
                    "more than {limit} parkboot pens reserved; this one is ignored"
                )
            }
        }
    }
}
