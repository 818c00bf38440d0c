//! The pen's binary format (version 1): constants, field offsets of the header, slots and
//! state records (checked against `arch/pen.S` by a test), slot states, and bounds-checked
//! little-endian access.

use core::fmt;

use crate::wake::WaitMethod;

/// `"PKBTPEN1"` read as a little-endian u64.
pub const PEN_MAGIC: u64 = u64::from_le_bytes(*b"PKBTPEN1");
/// Format version.
pub const PEN_VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_SIZE: u32 = 128;
/// Offset of the code (fixed: the pen code finds its header by subtracting it from its PC).
pub const CODE_OFFSET: u32 = 0x80;
/// Size of one mailbox slot.
pub const SLOT_SIZE: u32 = 64;
/// Size of one state record.
pub const STATE_SIZE: u32 = 64;
/// Most slots a pen may have (the pen code refuses a header with more).
pub const MAX_SLOTS: u32 = 1024;
/// Largest pen code accepted.
pub const MAX_CODE_SIZE: u32 = 0x4000;
/// Pen base alignment and size granule.
pub const PEN_ALIGN: u64 = 4096;
/// Largest cache writeback granule the architecture allows (CTR_EL0.CWG = 9: 2 KiB). The state
/// records start on this boundary so no cache line written back by a cacheable observer can
/// overlap a word written by a pen CPU.
pub const CWG_MAX: u32 = 2048;
/// Offset of the pen's exception vector table from the pen base (VBAR of a pen CPU; 2 KiB
/// aligned because the base is 4 KiB aligned). The code must be at least this long.
pub const VECTORS_OFFSET: u32 = 0x800;
/// Size of one stray record (after the state array, docs/protocol.md §2.5).
pub const STRAY_SIZE: u32 = 64;
/// Most stray records a pen CPU uses (the rest of the region stays zero).
pub const MAX_STRAYS: u32 = 64;
/// Stray records a pen built by this loader always has room for.
pub const MIN_STRAYS: u32 = 8;
/// Largest pen accepted (header `total_size`).
pub const MAX_PEN_SIZE: u64 = 1 << 20;
/// MPIDR affinity bits (Aff3..Aff0).
pub const MPIDR_MASK: u64 = 0xff_00ff_ffff;
/// Most valid old pens [`plan_reclaim`] takes into account (later ones are treated as invalid:
/// kept reserved, never written). Bounds the planner's heap use to a few hundred KiB.
pub const MAX_OLD_PENS: usize = 8;

/// Header field offsets.
pub mod hdr {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_SIZE: usize = 12;
    pub const TOTAL_SIZE: usize = 16;
    pub const PHYS_BASE: usize = 24;
    pub const CODE_OFFSET: usize = 32;
    pub const CODE_SIZE: usize = 36;
    pub const SLOT_OFFSET: usize = 40;
    pub const SLOT_SIZE: usize = 44;
    pub const NR_SLOTS: usize = 48;
    pub const ENTRY_EL: usize = 52;
    pub const GENERATION: usize = 56;
    pub const STATE_OFFSET: usize = 64;
    pub const STATE_SIZE: usize = 68;
    pub const ENTRY_OFFSET: usize = 72;
    pub const PARK_OFFSET: usize = 76;
    /// Bytes 80..124 are reserved and must be zero.
    pub const RESERVED: usize = 80;
    /// CRC-32 (IEEE 802.3, as zlib's `crc32`) of bytes 0..124.
    pub const CHECKSUM: usize = 124;
}

/// Mailbox slot field offsets (written by loaders and OSes only).
pub mod slot {
    /// u64: entry address; 0 = hold. Written last, as one 64-bit store.
    pub const RELEASE: usize = 0;
    /// u64: MPIDR affinity of the slot's owner (set when the pen is built, never changed).
    pub const MPIDR: usize = 8;
    /// u64: x0 handed over by a mode-1 release.
    pub const CONTEXT: usize = 16;
    /// u64: 0 = branch at the pen's EL with x0..x3 = 0 (spin-table), 1 = ERET to EL1h.
    pub const MODE: usize = 24;
}

/// State record field offsets (written by pen CPUs only, after the pen is built).
pub mod state {
    pub const STATUS: usize = 0;
    pub const MPIDR_SEEN: usize = 8;
    pub const ENTRIES: usize = 16;
    pub const PARKS: usize = 24;
    pub const RELEASES: usize = 32;
    pub const LAST_ENTRY: usize = 40;
    pub const EL: usize = 48;
    /// u32: times the CPU came back from its wait instruction (wraps).
    pub const WAKES: usize = 56;
    /// u32: bits 7:0 how it waits ([`crate::wake::WaitMethod`]; 0 in pens without the wake
    /// block); bits 15:8 its GICv2 CPU interface bit (GICD_ITARGETSR0), for targeted kicks.
    pub const WAIT: usize = 60;
}

/// Stray record field offsets (written by pen CPUs without a slot, docs/protocol.md §2.5).
pub mod stray {
    /// u64: the stray's MPIDR affinity with bit 63 set; 0 = free record.
    pub const TAG: usize = 0;
    /// u64: its arrivals.
    pub const ARRIVALS: usize = 8;
    /// u64: CurrentEL at its last arrival.
    pub const EL: usize = 16;
    /// u64: how it came: 0 `pen_entry`, 1 `pen_park`, 2 an exception (the fault handler).
    pub const HOW: usize = 24;
    /// `TAG` bit that marks a taken record.
    pub const TAG_BIT: u64 = 1 << 63;
}

/// Release modes (`slot::MODE`).
pub const MODE_BRANCH: u64 = 0;
/// ERET to EL1h with x0 = context (pen at EL2 only; for PSCI CPU_ON on behalf of an EL1 OS).
pub const MODE_ERET_EL1: u64 = 1;

pub(super) fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

pub(super) fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

pub(super) fn wr_u32(b: &mut [u8], off: usize, v: u32) -> Option<()> {
    b.get_mut(off..off.checked_add(4)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

pub(super) fn wr_u64(b: &mut [u8], off: usize, v: u64) -> Option<()> {
    b.get_mut(off..off.checked_add(8)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

pub(super) fn align_up(v: u64, a: u64) -> Option<u64> {
    // `a` is a power of two
    let m = a.saturating_sub(1);
    v.checked_add(m).map(|x| x & !m)
}

pub(super) fn usize_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// CRC-32 of the header bytes 0..124.
pub(super) fn header_crc(h: &[u8]) -> u32 {
    crc32fast::hash(h.get(..hdr::CHECKSUM).unwrap_or(&[]))
}

/// `state::STATUS` values (written by the pen CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotStatus {
    /// 0: no CPU has arrived in this slot since the pen was built.
    Empty,
    /// 1: arrived through `pen_entry`; armed (its release word read 0): the next non-zero release
    /// value is taken.
    Waiting,
    /// 2: left the pen for `last_entry`.
    Released,
    /// 3: arrived through `pen_park` (returned by an OS); armed like `Waiting`.
    Parked,
    /// 4: arrived at an EL other than the header's `entry_el`; stays in the pen for good.
    Refused,
    /// 5: in the pen, but its release word was non-zero on arrival (or held an invalid
    /// release); it waits for the word to read 0, then becomes `Waiting`/`Parked`.
    Unarmed,
    /// 6: an exception was taken to the pen's vectors (in pen code, or in code a release jumped
    /// to before it installed its own); the CPU stays in the pen for good. `last_entry` holds
    /// the ELR of the exception, `el` its EL, vector and ESR ([`SlotState::fault`]).
    Faulted,
    /// Anything else.
    Unknown(u64),
}

impl SlotStatus {
    #[must_use]
    pub const fn from_raw(v: u64) -> Self {
        match v {
            0 => Self::Empty,
            1 => Self::Waiting,
            2 => Self::Released,
            3 => Self::Parked,
            4 => Self::Refused,
            5 => Self::Unarmed,
            6 => Self::Faulted,
            other => Self::Unknown(other),
        }
    }

    #[must_use]
    pub const fn raw(self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Waiting => 1,
            Self::Released => 2,
            Self::Parked => 3,
            Self::Refused => 4,
            Self::Unarmed => 5,
            Self::Faulted => 6,
            Self::Unknown(v) => v,
        }
    }

    /// Waiting or Parked: in the pen and releasable right now.
    #[must_use]
    pub const fn is_held(self) -> bool {
        matches!(self, Self::Waiting | Self::Parked)
    }

    /// The CPU is executing pen code (for PSCI AFFINITY_INFO: OFF).
    #[must_use]
    pub const fn in_pen(self) -> bool {
        matches!(
            self,
            Self::Waiting | Self::Parked | Self::Refused | Self::Unarmed | Self::Faulted
        )
    }

    /// In the pen for good: it will never take a release (REFUSED, FAULTED).
    #[must_use]
    pub const fn is_stuck(self) -> bool {
        matches!(self, Self::Refused | Self::Faulted)
    }
}

impl fmt::Display for SlotStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("EMPTY"),
            Self::Waiting => f.write_str("WAITING"),
            Self::Released => f.write_str("RELEASED"),
            Self::Parked => f.write_str("PARKED"),
            Self::Refused => f.write_str("REFUSED"),
            Self::Unarmed => f.write_str("UNARMED"),
            Self::Faulted => f.write_str("FAULTED"),
            Self::Unknown(v) => write!(f, "unknown({v:#x})"),
        }
    }
}

/// One state record, as last written by the pen CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub status: SlotStatus,
    /// MPIDR (affinity) the CPU read at its last arrival; equals the slot's MPIDR unless the
    /// record is corrupt (0 while `Empty`).
    pub mpidr_seen: u64,
    /// Arrivals through `pen_entry`.
    pub entries: u64,
    /// Arrivals through `pen_park`.
    pub parks: u64,
    /// Times it left the pen.
    pub releases: u64,
    /// Entry address of the last release.
    pub last_entry: u64,
    /// EL at the last arrival.
    pub el: u64,
    /// Wake-ups from its wait instruction (a sleeping CPU counts one per wake period).
    pub wakes: u32,
    /// How it waits.
    pub wait: WaitMethod,
    /// GICv2: its CPU interface bit (0 otherwise).
    pub gic_target: u8,
}

impl SlotState {
    pub(super) fn from_bytes(b: &[u8]) -> Option<Self> {
        let mut words = [0u64; 8];
        for (k, w) in words.iter_mut().enumerate() {
            *w = rd_u64(b, k * 8)?;
        }
        Some(Self::from_words(words))
    }

    /// Decodes a state record from its eight little-endian words (word `k` at `8 * k`).
    #[must_use]
    pub fn from_words(words: [u64; 8]) -> Self {
        let [status, mpidr_seen, entries, parks, releases, last_entry, el, wake] = words;
        Self {
            wakes: wake as u32,
            wait: WaitMethod::from_raw(((wake >> 32) & 0xff) as u32),
            gic_target: (wake >> 40) as u8,
            status: SlotStatus::from_raw(status),
            mpidr_seen,
            entries,
            parks,
            releases,
            last_entry,
            el,
        }
    }

    /// Reads a live state record through `load(word index)`, in the order the protocol asks
    /// (docs/protocol.md §5.2 step 4): the counters first, `status` last — the pen counts an
    /// arrival first and publishes the status last, so a status read after the counters never
    /// belongs to an older arrival than they do.
    pub fn read_live<E>(mut load: impl FnMut(usize) -> Result<u64, E>) -> Result<Self, E> {
        let mut words = [0u64; 8];
        for k in (1..8).chain(0..1) {
            words[k] = load(k)?;
        }
        Ok(Self::from_words(words))
    }
}

/// What a FAULTED state record says about the exception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// ELR of the exception (the faulting instruction, or the one after an SVC/HVC/SMC).
    pub elr: u64,
    /// The EL it was taken at.
    pub el: u8,
    /// The vector (0..15: offset / 0x80 in the table).
    pub vector: u8,
    /// ESR_ELx bits 31:0 (EC in bits 31:26).
    pub esr: u32,
}

impl Fault {
    /// The exception class (ESR bits 31:26).
    #[must_use]
    pub const fn ec(&self) -> u32 {
        self.esr >> 26
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exception at EL{} (vector {:#x}): ELR {:#x}, ESR {:#x} (EC {:#x})",
            self.el,
            u32::from(self.vector) * 0x80,
            self.elr,
            self.esr,
            self.ec()
        )
    }
}

impl SlotState {
    /// The exception a FAULTED record describes.
    #[must_use]
    pub const fn fault(&self) -> Option<Fault> {
        if !matches!(self.status, SlotStatus::Faulted) {
            return None;
        }
        Some(Fault {
            elr: self.last_entry,
            el: (self.el & 0xff) as u8,
            vector: ((self.el >> 8) & 0xff) as u8,
            esr: (self.el >> 32) as u32,
        })
    }
}

/// A stray record: a CPU that reached the pen but found no slot for its MPIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrayRecord {
    /// Its MPIDR affinity.
    pub mpidr: u64,
    pub arrivals: u64,
    /// CurrentEL at its last arrival.
    pub el: u64,
    /// 0 `pen_entry`, 1 `pen_park`, 2 an exception.
    pub how: u64,
}

impl StrayRecord {
    /// Decodes one record; `None` for a free one.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let tag = rd_u64(b, stray::TAG)?;
        if tag & stray::TAG_BIT == 0 {
            return None;
        }
        Some(Self {
            mpidr: tag & MPIDR_MASK,
            arrivals: rd_u64(b, stray::ARRIVALS)?,
            el: rd_u64(b, stray::EL)?,
            how: rd_u64(b, stray::HOW)?,
        })
    }
}

impl fmt::Display for StrayRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.how {
            0 => "pen_entry",
            1 => "pen_park",
            2 => "an exception",
            _ => "?",
        };
        write!(
            f,
            "MPIDR {:#x}: no slot for it (arrived {} time(s), last at EL{} through {how})",
            self.mpidr, self.arrivals, self.el
        )
    }
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(fault) = self.fault() {
            return write!(f, "FAULTED: {fault}");
        }
        write!(
            f,
            "{} (entries {}, parks {}, releases {}, last entry {:#x}, EL{})",
            self.status, self.entries, self.parks, self.releases, self.last_entry, self.el
        )
    }
}
