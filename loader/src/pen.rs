//! The spin pen: where every secondary CPU waits while no OS owns it.
//!
//! The full contract (layout, release and park sequences, cache rules, DT properties, adoption)
//! is `docs/protocol.md`; this module is its loader-side implementation and the code in
//! `arch/pen.S` is the CPU side. In short:
//!
//! ```text
//! pen region (4 KiB aligned, 4 KiB multiple, one /memreserve/):
//!   0x000  header, 128 bytes            written only by loaders (caches on)
//!   0x080  pen code (arch/pen.S copy)   written only by loaders
//!   slot_offset   nr_slots x 64-byte mailboxes   written only by loaders / OSes (caches on):
//!                 +0 release  +8 mpidr  +16 context  +24 mode
//!   state_offset  nr_slots x 64-byte state records, 2 KiB aligned (>= the largest cache
//!                 writeback granule), written only by pen CPUs (MMU off):
//!                 +0 status  +8 mpidr_seen  +16 entries  +24 parks  +32 releases
//!                 +40 last_entry  +48 el
//! ```
//!
//! Everything here except [`Pen`]'s volatile word accesses is plain, host-tested code. Pen bytes
//! and DT data are untrusted: every offset is checked, every loop is bounded by
//! [`MAX_SLOTS`], nothing panics. A pen whose header does not validate is never written to.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{compiler_fence, Ordering};

use crate::dt::{DtInfo, EnableMethod, Region};
use crate::wake::WaitMethod;

// ---------------------------------------------------------------------------------------------
// Format constants (version 1). The asm constants in arch/pen.S are checked against these.
// ---------------------------------------------------------------------------------------------

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
    /// u32: how it waits ([`crate::wake::WaitMethod`]; 0 in pens without the wake block).
    pub const WAIT: usize = 60;
}

/// Release modes (`slot::MODE`).
pub const MODE_BRANCH: u64 = 0;
/// ERET to EL1h with x0 = context (pen at EL2 only; for PSCI CPU_ON on behalf of an EL1 OS).
pub const MODE_ERET_EL1: u64 = 1;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

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
            Self::BadEntryEl { found } => write!(f, "pen entry EL {found} is not 1 or 2"),
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

// ---------------------------------------------------------------------------------------------
// Little helpers (bounds-checked, no panics)
// ---------------------------------------------------------------------------------------------

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn rd_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

fn wr_u32(b: &mut [u8], off: usize, v: u32) -> Option<()> {
    b.get_mut(off..off.checked_add(4)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

fn wr_u64(b: &mut [u8], off: usize, v: u64) -> Option<()> {
    b.get_mut(off..off.checked_add(8)?)?
        .copy_from_slice(&v.to_le_bytes());
    Some(())
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    // `a` is a power of two
    let m = a.saturating_sub(1);
    v.checked_add(m).map(|x| x & !m)
}

fn usize_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// CRC-32 of the header bytes 0..124.
fn header_crc(h: &[u8]) -> u32 {
    crc32fast::hash(h.get(..hdr::CHECKSUM).unwrap_or(&[]))
}

// ---------------------------------------------------------------------------------------------
// Slot status and state
// ---------------------------------------------------------------------------------------------

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
            Self::Waiting | Self::Parked | Self::Refused | Self::Unarmed
        )
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
}

impl SlotState {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        Some(Self {
            wakes: rd_u32(b, state::WAKES)?,
            wait: WaitMethod::from_raw(rd_u32(b, state::WAIT)?),
            status: SlotStatus::from_raw(rd_u64(b, state::STATUS)?),
            mpidr_seen: rd_u64(b, state::MPIDR_SEEN)?,
            entries: rd_u64(b, state::ENTRIES)?,
            parks: rd_u64(b, state::PARKS)?,
            releases: rd_u64(b, state::RELEASES)?,
            last_entry: rd_u64(b, state::LAST_ENTRY)?,
            el: rd_u64(b, state::EL)?,
        })
    }
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (entries {}, parks {}, releases {}, last entry {:#x}, EL{})",
            self.status, self.entries, self.parks, self.releases, self.last_entry, self.el
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Layout and building
// ---------------------------------------------------------------------------------------------

/// The pen code to copy: its bytes and where `pen_entry` / `pen_park` are inside them.
#[derive(Debug, Clone, Copy)]
pub struct PenCode<'a> {
    /// `pen_code_start..pen_code_end`.
    pub bytes: &'a [u8],
    /// `pen_entry - pen_code_start`.
    pub entry: u32,
    /// `pen_park - pen_code_start`.
    pub park: u32,
}

/// Where everything goes in a pen of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenLayout {
    pub nr_slots: u32,
    pub entry_el: u32,
    pub code_offset: u32,
    pub code_size: u32,
    /// Mailbox array, 64-byte aligned, right after the code.
    pub slot_offset: u32,
    /// State array, [`CWG_MAX`]-aligned, after the mailboxes.
    pub state_offset: u32,
    /// Whole region, a multiple of [`PEN_ALIGN`].
    pub total_size: u64,
    /// Generation written into the header (1 for a first pen; see
    /// [`ReclaimPlan::next_generation`]).
    pub generation: u64,
}

impl PenLayout {
    /// Lays out a pen with `nr_slots` slots (one per CPU, the boot CPU included) for
    /// `code_size` bytes of code, whose CPUs run (and are released) at `entry_el`.
    pub fn new(nr_slots: usize, code_size: usize, entry_el: u8) -> Result<Self, PenError> {
        let n = u32::try_from(nr_slots)
            .ok()
            .filter(|n| (1..=MAX_SLOTS).contains(n))
            .ok_or(PenError::BadSlotCount { count: nr_slots })?;
        let code = u32::try_from(code_size)
            .ok()
            .filter(|c| *c > 0 && *c <= MAX_CODE_SIZE && c % 4 == 0)
            .ok_or(PenError::BadCode { len: code_size })?;
        if !(1..=2).contains(&entry_el) {
            return Err(PenError::BadEntryEl {
                found: u32::from(entry_el),
            });
        }
        // All u64 arithmetic below is on values bounded by the checks above (< 1 MiB).
        let array = u64::from(n).saturating_mul(u64::from(SLOT_SIZE));
        let code_end = u64::from(CODE_OFFSET).saturating_add(u64::from(code));
        let slot_offset = align_up(code_end, 64).unwrap_or(u64::MAX);
        let state_offset =
            align_up(slot_offset.saturating_add(array), u64::from(CWG_MAX)).unwrap_or(u64::MAX);
        let total_size =
            align_up(state_offset.saturating_add(array), PEN_ALIGN).unwrap_or(u64::MAX);
        let layout = Self {
            nr_slots: n,
            entry_el: u32::from(entry_el),
            code_offset: CODE_OFFSET,
            code_size: code,
            slot_offset: u32::try_from(slot_offset).unwrap_or(u32::MAX),
            state_offset: u32::try_from(state_offset).unwrap_or(u32::MAX),
            total_size,
            generation: 1,
        };
        Ok(layout)
    }

    /// The same layout with another generation number.
    #[must_use]
    pub const fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// The header this layout produces for a pen at `phys_base` with `code`.
    pub fn header(&self, phys_base: u64, code: &PenCode<'_>) -> Result<PenHeader, PenError> {
        if code.bytes.len() != self.code_size as usize {
            return Err(PenError::BadCode {
                len: code.bytes.len(),
            });
        }
        let h = PenHeader {
            version: PEN_VERSION,
            header_size: HEADER_SIZE,
            total_size: self.total_size,
            phys_base,
            code_offset: self.code_offset,
            code_size: self.code_size,
            slot_offset: self.slot_offset,
            slot_size: SLOT_SIZE,
            nr_slots: self.nr_slots,
            entry_el: self.entry_el,
            generation: self.generation,
            state_offset: self.state_offset,
            state_size: STATE_SIZE,
            entry_offset: self.code_offset.saturating_add(code.entry),
            park_offset: self.code_offset.saturating_add(code.park),
        };
        h.validate()?;
        Ok(h)
    }

    /// Writes a complete pen into `region` (the memory at `phys_base`, at least `total_size`
    /// bytes): zeroes it, then header, code and one slot per entry of `cpus` (MPIDR affinity
    /// values; release 0, status EMPTY).
    ///
    /// The caller then cleans and invalidates `[phys_base, phys_base + total_size)` to PoC and
    /// invalidates the instruction caches (`IC IALLUIS`, `DSB ISH`, `ISB`) before any CPU is sent
    /// to the pen, and never writes the state array again.
    pub fn build(
        &self,
        region: &mut [u8],
        phys_base: u64,
        code: &PenCode<'_>,
        cpus: &[u64],
    ) -> Result<PenHeader, PenError> {
        let h = self.header(phys_base, code)?;
        if cpus.len() != self.nr_slots as usize {
            return Err(PenError::CpuCountMismatch {
                cpus: cpus.len(),
                slots: self.nr_slots,
            });
        }
        for (i, &m) in cpus.iter().enumerate() {
            if m & !MPIDR_MASK != 0 {
                return Err(PenError::BadMpidr { mpidr: m });
            }
            if cpus.get(..i).is_some_and(|before| before.contains(&m)) {
                return Err(PenError::DuplicateMpidr { mpidr: m });
            }
        }
        let total = usize_of(self.total_size).ok_or(PenError::TooShort {
            len: region.len(),
            need: self.total_size,
        })?;
        let too_short = PenError::TooShort {
            len: region.len(),
            need: self.total_size,
        };
        let mem = region.get_mut(..total).ok_or(too_short.clone())?;
        mem.fill(0);
        mem.get_mut(..HEADER_SIZE as usize)
            .ok_or(too_short.clone())?
            .copy_from_slice(&h.to_bytes());
        let c0 = self.code_offset as usize;
        mem.get_mut(c0..c0.saturating_add(code.bytes.len()))
            .ok_or(too_short.clone())?
            .copy_from_slice(code.bytes);
        for (i, &m) in cpus.iter().enumerate() {
            let off = h.slot_off(i).ok_or(too_short.clone())?;
            wr_u64(mem, off.saturating_add(slot::MPIDR), m).ok_or(too_short.clone())?;
        }
        Ok(h)
    }
}

// ---------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------

/// A validated pen header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenHeader {
    pub version: u32,
    pub header_size: u32,
    pub total_size: u64,
    pub phys_base: u64,
    pub code_offset: u32,
    pub code_size: u32,
    pub slot_offset: u32,
    pub slot_size: u32,
    pub nr_slots: u32,
    pub entry_el: u32,
    pub generation: u64,
    pub state_offset: u32,
    pub state_size: u32,
    /// Offset of `pen_entry` from the pen base.
    pub entry_offset: u32,
    /// Offset of `pen_park` (the cpu-park-addr) from the pen base.
    pub park_offset: u32,
}

impl PenHeader {
    /// Parses and validates the header at the start of `bytes`, which were read from physical
    /// address `at_phys`. Checks, in order: length, magic, version, header size, checksum,
    /// `phys_base == at_phys`, reserved bytes, then every layout rule (see `docs/protocol.md`).
    pub fn parse(bytes: &[u8], at_phys: u64) -> Result<Self, PenError> {
        let b = bytes
            .get(..HEADER_SIZE as usize)
            .ok_or(PenError::TooShort {
                len: bytes.len(),
                need: u64::from(HEADER_SIZE),
            })?;
        let r32 = |o| rd_u32(b, o).unwrap_or(0);
        let r64 = |o| rd_u64(b, o).unwrap_or(0);
        let magic = r64(hdr::MAGIC);
        if magic != PEN_MAGIC {
            return Err(PenError::BadMagic { found: magic });
        }
        let version = r32(hdr::VERSION);
        if version != PEN_VERSION {
            return Err(PenError::BadVersion { found: version });
        }
        let header_size = r32(hdr::HEADER_SIZE);
        if header_size != HEADER_SIZE {
            return Err(PenError::BadHeaderSize { found: header_size });
        }
        let stored = r32(hdr::CHECKSUM);
        let computed = header_crc(b);
        if stored != computed {
            return Err(PenError::BadChecksum { stored, computed });
        }
        let phys_base = r64(hdr::PHYS_BASE);
        if phys_base != at_phys {
            return Err(PenError::WrongPhysBase {
                header: phys_base,
                found_at: at_phys,
            });
        }
        if b.get(hdr::RESERVED..hdr::CHECKSUM)
            .is_none_or(|r| r.iter().any(|&x| x != 0))
        {
            return Err(PenError::ReservedNotZero);
        }
        let h = Self {
            version,
            header_size,
            total_size: r64(hdr::TOTAL_SIZE),
            phys_base,
            code_offset: r32(hdr::CODE_OFFSET),
            code_size: r32(hdr::CODE_SIZE),
            slot_offset: r32(hdr::SLOT_OFFSET),
            slot_size: r32(hdr::SLOT_SIZE),
            nr_slots: r32(hdr::NR_SLOTS),
            entry_el: r32(hdr::ENTRY_EL),
            generation: r64(hdr::GENERATION),
            state_offset: r32(hdr::STATE_OFFSET),
            state_size: r32(hdr::STATE_SIZE),
            entry_offset: r32(hdr::ENTRY_OFFSET),
            park_offset: r32(hdr::PARK_OFFSET),
        };
        h.validate()?;
        Ok(h)
    }

    /// The layout rules (everything but magic/version/checksum/phys_base-at).
    fn validate(&self) -> Result<(), PenError> {
        let bad = |what, value: u64| Err(PenError::BadLayout { what, value });
        if self.version != PEN_VERSION {
            return Err(PenError::BadVersion {
                found: self.version,
            });
        }
        if self.header_size != HEADER_SIZE {
            return Err(PenError::BadHeaderSize {
                found: self.header_size,
            });
        }
        if !self.phys_base.is_multiple_of(PEN_ALIGN) {
            return bad("phys_base not 4 KiB aligned", self.phys_base);
        }
        let total = self.total_size;
        if total == 0 || !total.is_multiple_of(PEN_ALIGN) || total > MAX_PEN_SIZE {
            return bad("total_size not a non-zero 4 KiB multiple <= 1 MiB", total);
        }
        if self.phys_base.checked_add(total).is_none() {
            return bad("pen wraps the address space", self.phys_base);
        }
        if !(1..=2).contains(&self.entry_el) {
            return Err(PenError::BadEntryEl {
                found: self.entry_el,
            });
        }
        if self.code_offset != CODE_OFFSET {
            return bad("code_offset is not 0x80", self.code_offset.into());
        }
        if self.code_size == 0
            || !self.code_size.is_multiple_of(4)
            || self.code_size > MAX_CODE_SIZE
        {
            return bad("code_size", self.code_size.into());
        }
        if self.slot_size != SLOT_SIZE {
            return bad("slot_size is not 64", self.slot_size.into());
        }
        if self.state_size != STATE_SIZE {
            return bad("state_size is not 64", self.state_size.into());
        }
        if self.nr_slots == 0 || self.nr_slots > MAX_SLOTS {
            return bad("nr_slots", self.nr_slots.into());
        }
        // All operands are u32 widened to u64: no overflow possible.
        let code_end = u64::from(self.code_offset).saturating_add(u64::from(self.code_size));
        let array = u64::from(self.nr_slots).saturating_mul(u64::from(SLOT_SIZE));
        let slot_off = u64::from(self.slot_offset);
        let state_off = u64::from(self.state_offset);
        if !slot_off.is_multiple_of(u64::from(SLOT_SIZE)) || slot_off < code_end {
            return bad("slot_offset not 64-byte aligned after the code", slot_off);
        }
        let slot_end = slot_off.saturating_add(array);
        let state_end = state_off.saturating_add(array);
        if !state_off.is_multiple_of(u64::from(CWG_MAX)) || state_off < slot_end {
            return bad("state_offset not 2 KiB aligned after the slots", state_off);
        }
        if state_end > total {
            return bad("state array beyond total_size", state_end);
        }
        for (what, off) in [
            ("entry_offset outside the code", self.entry_offset),
            ("park_offset outside the code", self.park_offset),
        ] {
            let o = u64::from(off);
            if o < u64::from(self.code_offset) || o >= code_end || !o.is_multiple_of(4) {
                return bad(what, o);
            }
        }
        Ok(())
    }

    /// The 128 header bytes, checksum included.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE as usize] {
        let mut b = [0u8; HEADER_SIZE as usize];
        let _ = wr_u64(&mut b, hdr::MAGIC, PEN_MAGIC);
        let _ = wr_u32(&mut b, hdr::VERSION, self.version);
        let _ = wr_u32(&mut b, hdr::HEADER_SIZE, self.header_size);
        let _ = wr_u64(&mut b, hdr::TOTAL_SIZE, self.total_size);
        let _ = wr_u64(&mut b, hdr::PHYS_BASE, self.phys_base);
        let _ = wr_u32(&mut b, hdr::CODE_OFFSET, self.code_offset);
        let _ = wr_u32(&mut b, hdr::CODE_SIZE, self.code_size);
        let _ = wr_u32(&mut b, hdr::SLOT_OFFSET, self.slot_offset);
        let _ = wr_u32(&mut b, hdr::SLOT_SIZE, self.slot_size);
        let _ = wr_u32(&mut b, hdr::NR_SLOTS, self.nr_slots);
        let _ = wr_u32(&mut b, hdr::ENTRY_EL, self.entry_el);
        let _ = wr_u64(&mut b, hdr::GENERATION, self.generation);
        let _ = wr_u32(&mut b, hdr::STATE_OFFSET, self.state_offset);
        let _ = wr_u32(&mut b, hdr::STATE_SIZE, self.state_size);
        let _ = wr_u32(&mut b, hdr::ENTRY_OFFSET, self.entry_offset);
        let _ = wr_u32(&mut b, hdr::PARK_OFFSET, self.park_offset);
        let crc = header_crc(&b);
        let _ = wr_u32(&mut b, hdr::CHECKSUM, crc);
        b
    }

    /// The pen region: what the single /memreserve/ covers.
    #[must_use]
    pub const fn region(&self) -> Region {
        Region::new(self.phys_base, self.total_size)
    }

    /// Physical address of `pen_entry` (PSCI CPU_ON entry point; what is written into an older
    /// pen's release word to take a CPU over).
    #[must_use]
    pub const fn entry_addr(&self) -> u64 {
        self.phys_base.saturating_add(self.entry_offset as u64)
    }

    /// Physical address of `pen_park`: the `cpu-park-addr` of every CPU.
    #[must_use]
    pub const fn park_addr(&self) -> u64 {
        self.phys_base.saturating_add(self.park_offset as u64)
    }

    /// Byte offset of mailbox slot `i` from the pen base.
    fn slot_off(&self, i: usize) -> Option<usize> {
        if i >= self.nr_slots as usize {
            return None;
        }
        (self.slot_offset as usize).checked_add(i.checked_mul(SLOT_SIZE as usize)?)
    }

    /// Byte offset of state record `i` from the pen base.
    fn state_off(&self, i: usize) -> Option<usize> {
        if i >= self.nr_slots as usize {
            return None;
        }
        (self.state_offset as usize).checked_add(i.checked_mul(STATE_SIZE as usize)?)
    }

    /// Physical address of slot `i`'s release word (its `cpu-release-addr`).
    #[must_use]
    pub fn slot_release_addr(&self, i: usize) -> Option<u64> {
        self.phys_base
            .checked_add(u64::try_from(self.slot_off(i)?).ok()?)
    }

    /// Physical address of state record `i`.
    #[must_use]
    pub fn state_addr(&self, i: usize) -> Option<u64> {
        self.phys_base
            .checked_add(u64::try_from(self.state_off(i)?).ok()?)
    }

    /// The slot index whose release word is at `addr`, if any.
    #[must_use]
    pub fn slot_of_release_addr(&self, addr: u64) -> Option<usize> {
        let off = addr.checked_sub(self.phys_base.checked_add(self.slot_offset.into())?)?;
        if !off.is_multiple_of(u64::from(SLOT_SIZE)) {
            return None;
        }
        let i = usize_of(off.checked_div(u64::from(SLOT_SIZE))?)?;
        (i < self.nr_slots as usize).then_some(i)
    }
}

// ---------------------------------------------------------------------------------------------
// Read-only view of a pen image (planning, diagnostics)
// ---------------------------------------------------------------------------------------------

/// A validated snapshot of a whole pen.
#[derive(Debug, Clone, Copy)]
pub struct PenImage<'a> {
    bytes: &'a [u8],
    header: PenHeader,
}

/// One slot of a [`PenImage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub index: usize,
    pub mpidr: u64,
    /// Physical address of the release word.
    pub release_addr: u64,
    /// Current release word.
    pub release: u64,
    pub state: SlotState,
}

impl<'a> PenImage<'a> {
    /// Validates the header at the start of `bytes` (read from `at_phys`) and that `bytes`
    /// holds the whole pen.
    pub fn parse(bytes: &'a [u8], at_phys: u64) -> Result<Self, PenError> {
        let header = PenHeader::parse(bytes, at_phys)?;
        let total = usize_of(header.total_size).unwrap_or(usize::MAX);
        let bytes = bytes.get(..total).ok_or(PenError::TooShort {
            len: bytes.len(),
            need: header.total_size,
        })?;
        Ok(Self { bytes, header })
    }

    #[must_use]
    pub const fn header(&self) -> &PenHeader {
        &self.header
    }

    /// The copied pen code.
    #[must_use]
    pub fn code(&self) -> &'a [u8] {
        let c = self.header.code_offset as usize;
        self.bytes
            .get(c..c.saturating_add(self.header.code_size as usize))
            .unwrap_or(&[])
    }

    /// Slot `i`.
    #[must_use]
    pub fn slot(&self, i: usize) -> Option<SlotInfo> {
        let so = self.header.slot_off(i)?;
        let st = self.header.state_off(i)?;
        let state_bytes = self.bytes.get(st..st.checked_add(STATE_SIZE as usize)?)?;
        Some(SlotInfo {
            index: i,
            mpidr: rd_u64(self.bytes, so.checked_add(slot::MPIDR)?)?,
            release_addr: self.header.slot_release_addr(i)?,
            release: rd_u64(self.bytes, so.checked_add(slot::RELEASE)?)?,
            state: SlotState::from_bytes(state_bytes)?,
        })
    }

    /// All slots, in order (at most [`MAX_SLOTS`]).
    pub fn slots(&self) -> impl Iterator<Item = SlotInfo> + '_ {
        (0..self.header.nr_slots as usize).filter_map(|i| self.slot(i))
    }

    /// The first slot owned by `mpidr` (affinity bits).
    #[must_use]
    pub fn slot_of(&self, mpidr: u64) -> Option<SlotInfo> {
        let m = mpidr & MPIDR_MASK;
        self.slots().find(|s| s.mpidr == m)
    }

    /// Release word address of `mpidr`'s slot.
    #[must_use]
    pub fn slot_addr(&self, mpidr: u64) -> Option<u64> {
        self.slot_of(mpidr).map(|s| s.release_addr)
    }

    /// Status of `mpidr`'s slot.
    #[must_use]
    pub fn status(&self, mpidr: u64) -> Option<SlotStatus> {
        self.slot_of(mpidr).map(|s| s.state.status)
    }

    /// What the DT writer applies for spin-table through this pen.
    #[must_use]
    pub fn dt_patch(&self) -> DtPenPatch {
        DtPenPatch {
            memreserve: self.header.region(),
            park_addr: self.header.park_addr(),
            cpus: self
                .slots()
                .map(|s| CpuRelease {
                    mpidr: s.mpidr,
                    release_addr: s.release_addr,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loader-side access to a live pen (caches on)
// ---------------------------------------------------------------------------------------------

/// Cache maintenance the loader side needs around every shared word. Addresses are physical
/// (identity-mapped). Each operation completes (`DSB SY`) before returning. Host tests use
/// [`NoCacheOps`].
pub trait CacheOps {
    /// `DC CVAC` over `[addr, addr + len)`, then `DSB SY`.
    fn clean(&mut self, addr: u64, len: u64);
    /// `DC CIVAC` over `[addr, addr + len)`, then `DSB SY`.
    fn clean_invalidate(&mut self, addr: u64, len: u64);
    /// `DSB SY; SEV`.
    fn send_event(&mut self);
}

/// Cache operations that do nothing (host tests, or memory that is not cached).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCacheOps;

impl CacheOps for NoCacheOps {
    fn clean(&mut self, _addr: u64, _len: u64) {}
    fn clean_invalidate(&mut self, _addr: u64, _len: u64) {}
    fn send_event(&mut self) {}
}

/// Volatile, single-copy-atomic 64-bit load at `off` (must be in bounds and 8-byte aligned).
fn vload(mem: &[u8], off: usize) -> Option<u64> {
    let s = mem.get(off..off.checked_add(8)?)?;
    let p = s.as_ptr();
    if !(p as usize).is_multiple_of(8) {
        return None;
    }
    // SAFETY: `p` points at 8 initialised, in-bounds bytes of `mem`, 8-byte aligned.
    let v = unsafe { core::ptr::read_volatile(p.cast::<u64>()) };
    Some(u64::from_le(v))
}

/// Volatile, single-copy-atomic 64-bit store at `off` (must be in bounds and 8-byte aligned).
fn vstore(mem: &mut [u8], off: usize, v: u64) -> Option<()> {
    let s = mem.get_mut(off..off.checked_add(8)?)?;
    let p = s.as_mut_ptr();
    if !(p as usize).is_multiple_of(8) {
        return None;
    }
    // SAFETY: `p` points at 8 in-bounds bytes we hold exclusively, 8-byte aligned.
    unsafe { core::ptr::write_volatile(p.cast::<u64>(), v.to_le()) };
    Some(())
}

/// A live, validated pen the loader may write to (its own, or an older parkboot pen whose
/// header validated at its own address). Every shared word is accessed with one volatile 64-bit
/// access, with the cache maintenance of `docs/protocol.md` around it.
#[derive(Debug)]
pub struct Pen<'a> {
    mem: &'a mut [u8],
    header: PenHeader,
}

impl<'a> Pen<'a> {
    /// Opens the pen in `mem` (the memory at `phys`, at least the pen's `total_size`, 8-byte
    /// aligned). Cleans+invalidates the header and mailboxes first, then validates; nothing is
    /// written if validation fails.
    pub fn open(mem: &'a mut [u8], phys: u64, ops: &mut impl CacheOps) -> Result<Self, PenError> {
        if !(mem.as_ptr() as usize).is_multiple_of(8) {
            return Err(PenError::Unaligned);
        }
        ops.clean_invalidate(phys, u64::from(HEADER_SIZE));
        compiler_fence(Ordering::SeqCst);
        let header = PenHeader::parse(mem, phys)?;
        if (mem.len() as u64) < header.total_size {
            return Err(PenError::TooShort {
                len: mem.len(),
                need: header.total_size,
            });
        }
        ops.clean_invalidate(
            phys.saturating_add(header.slot_offset.into()),
            u64::from(header.nr_slots).saturating_mul(u64::from(SLOT_SIZE)),
        );
        compiler_fence(Ordering::SeqCst);
        Ok(Self { mem, header })
    }

    #[must_use]
    pub const fn header(&self) -> &PenHeader {
        &self.header
    }

    /// Index of `mpidr`'s slot (slot MPIDRs are written only when the pen is built).
    #[must_use]
    pub fn slot_index(&self, mpidr: u64) -> Option<usize> {
        let m = mpidr & MPIDR_MASK;
        (0..self.header.nr_slots as usize).find(|&i| {
            self.header
                .slot_off(i)
                .and_then(|o| rd_u64(self.mem, o.checked_add(slot::MPIDR)?))
                == Some(m)
        })
    }

    /// Physical address of `mpidr`'s release word (its `cpu-release-addr`).
    #[must_use]
    pub fn slot_addr(&self, mpidr: u64) -> Option<u64> {
        self.header.slot_release_addr(self.slot_index(mpidr)?)
    }

    fn index(&self, mpidr: u64) -> Result<usize, PenError> {
        self.slot_index(mpidr).ok_or(PenError::NoSlot { mpidr })
    }

    fn state_at(&mut self, ops: &mut impl CacheOps, i: usize) -> Result<SlotState, PenError> {
        let off = self
            .header
            .state_off(i)
            .ok_or(PenError::NoSlot { mpidr: 0 })?;
        let addr = self.header.state_addr(i).unwrap_or(0);
        ops.clean_invalidate(addr, u64::from(STATE_SIZE));
        compiler_fence(Ordering::SeqCst);
        let mut words = [0u64; 8];
        for (k, w) in words.iter_mut().enumerate() {
            *w = vload(self.mem, off.saturating_add(k.saturating_mul(8)))
                .ok_or(PenError::Unaligned)?;
        }
        let [status, mpidr_seen, entries, parks, releases, last_entry, el, wake] = words;
        Ok(SlotState {
            wakes: wake as u32,
            wait: WaitMethod::from_raw((wake >> 32) as u32),
            status: SlotStatus::from_raw(status),
            mpidr_seen,
            entries,
            parks,
            releases,
            last_entry,
            el,
        })
    }

    /// The state record of `mpidr`'s slot, read after a clean+invalidate of its line.
    pub fn state(&mut self, ops: &mut impl CacheOps, mpidr: u64) -> Result<SlotState, PenError> {
        let i = self.index(mpidr)?;
        self.state_at(ops, i)
    }

    /// Status of `mpidr`'s slot (a "truly returned" CPU reads `Parked` here).
    pub fn status(&mut self, ops: &mut impl CacheOps, mpidr: u64) -> Result<SlotStatus, PenError> {
        Ok(self.state(ops, mpidr)?.status)
    }

    /// Current value of `mpidr`'s release word (after a clean+invalidate of its line).
    pub fn release_word(&mut self, ops: &mut impl CacheOps, mpidr: u64) -> Result<u64, PenError> {
        let i = self.index(mpidr)?;
        let off = self.header.slot_off(i).ok_or(PenError::NoSlot { mpidr })?;
        ops.clean_invalidate(self.header.slot_release_addr(i).unwrap_or(0), 8);
        compiler_fence(Ordering::SeqCst);
        vload(self.mem, off).ok_or(PenError::Unaligned)
    }

    fn do_release(
        &mut self,
        ops: &mut impl CacheOps,
        mpidr: u64,
        entry: u64,
        context: u64,
        mode: u64,
    ) -> Result<(), PenError> {
        if entry == 0 || !entry.is_multiple_of(4) {
            return Err(PenError::BadEntry { entry });
        }
        if mode == MODE_ERET_EL1 && self.header.entry_el != 2 {
            return Err(PenError::NeedsEl2);
        }
        let i = self.index(mpidr)?;
        let status = self.state_at(ops, i)?.status;
        if !status.is_held() {
            return Err(PenError::NotHeld { mpidr, status });
        }
        let value = self.release_word(ops, mpidr)?;
        if value != 0 {
            return Err(PenError::ReleasePending { mpidr, value });
        }
        let off = self.header.slot_off(i).ok_or(PenError::NoSlot { mpidr })?;
        let addr = self.header.slot_release_addr(i).unwrap_or(0);
        // 1. context and mode, cleaned before the release word is written
        vstore(self.mem, off.saturating_add(slot::CONTEXT), context).ok_or(PenError::Unaligned)?;
        vstore(self.mem, off.saturating_add(slot::MODE), mode).ok_or(PenError::Unaligned)?;
        compiler_fence(Ordering::SeqCst);
        ops.clean(addr, u64::from(SLOT_SIZE));
        compiler_fence(Ordering::SeqCst);
        // 2. the release word: one 64-bit store, clean, DSB, SEV
        vstore(self.mem, off.saturating_add(slot::RELEASE), entry).ok_or(PenError::Unaligned)?;
        compiler_fence(Ordering::SeqCst);
        ops.clean(addr, 8);
        ops.send_event();
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }

    /// Releases `mpidr` to `entry` the spin-table way (branch at the pen's EL, x0..x3 = 0).
    /// Only a CPU whose status is WAITING or PARKED and whose release word reads 0 is released;
    /// afterwards poll [`Pen::status`] for RELEASED.
    pub fn release(
        &mut self,
        ops: &mut impl CacheOps,
        mpidr: u64,
        entry: u64,
    ) -> Result<(), PenError> {
        self.do_release(ops, mpidr, entry, 0, MODE_BRANCH)
    }

    /// Releases `mpidr` to `entry` at EL1h with x0 = `context` (PSCI CPU_ON on behalf of an EL1
    /// OS; the pen must run at EL2).
    pub fn release_to_el1(
        &mut self,
        ops: &mut impl CacheOps,
        mpidr: u64,
        entry: u64,
        context: u64,
    ) -> Result<(), PenError> {
        self.do_release(ops, mpidr, entry, context, MODE_ERET_EL1)
    }

    /// Zeroes the release word of an UNARMED CPU so it arms (status then becomes WAITING or
    /// PARKED). Refused for any other status: a RELEASED CPU's word belongs to its OS.
    pub fn rearm(&mut self, ops: &mut impl CacheOps, mpidr: u64) -> Result<(), PenError> {
        let i = self.index(mpidr)?;
        let status = self.state_at(ops, i)?.status;
        if status != SlotStatus::Unarmed {
            return Err(PenError::NotHeld { mpidr, status });
        }
        let off = self.header.slot_off(i).ok_or(PenError::NoSlot { mpidr })?;
        let addr = self.header.slot_release_addr(i).unwrap_or(0);
        vstore(self.mem, off.saturating_add(slot::RELEASE), 0).ok_or(PenError::Unaligned)?;
        compiler_fence(Ordering::SeqCst);
        ops.clean(addr, 8);
        ops.send_event();
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }

    /// Adopts the pen in place: increments `generation`, rewrites the checksum, cleans the
    /// header. Returns the new generation.
    pub fn adopt(&mut self, ops: &mut impl CacheOps) -> Result<u64, PenError> {
        let mut h = self.header;
        h.generation = h.generation.wrapping_add(1);
        let bytes = h.to_bytes();
        self.mem
            .get_mut(..HEADER_SIZE as usize)
            .ok_or(PenError::TooShort {
                len: 0,
                need: u64::from(HEADER_SIZE),
            })?
            .copy_from_slice(&bytes);
        compiler_fence(Ordering::SeqCst);
        ops.clean(self.header.phys_base, u64::from(HEADER_SIZE));
        compiler_fence(Ordering::SeqCst);
        self.header = h;
        Ok(h.generation)
    }

    /// A read-only snapshot view (no cache maintenance: call after [`Pen::open`] or after
    /// invalidating what you read).
    #[must_use]
    pub fn image(&self) -> Option<PenImage<'_>> {
        PenImage::parse(self.mem, self.header.phys_base).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// DT patch data
// ---------------------------------------------------------------------------------------------

/// One CPU's spin-table properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuRelease {
    pub mpidr: u64,
    /// `cpu-release-addr` (two cells).
    pub release_addr: u64,
}

/// What the DT writer applies for spin-table through a pen: on every listed cpu node
/// `enable-method = "spin-table"`, `cpu-release-addr`, `cpu-park-addr` (both 64-bit, two
/// cells), and exactly one `/memreserve/` for the pen region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtPenPatch {
    pub memreserve: Region,
    pub park_addr: u64,
    pub cpus: Vec<CpuRelease>,
}

impl DtPenPatch {
    /// The release address for `mpidr`.
    #[must_use]
    pub fn release_addr(&self, mpidr: u64) -> Option<u64> {
        let m = mpidr & MPIDR_MASK;
        self.cpus
            .iter()
            .find(|c| c.mpidr == m)
            .map(|c| c.release_addr)
    }
}

/// The /memreserve/ list for the next DT: `existing` without the entries in `drop` and without
/// any exact duplicate of `pen`, then `pen` once. Other entries keep their order; exact
/// duplicates among them are collapsed (so repeated boots never accumulate entries).
#[must_use]
pub fn memreserve_list(existing: &[Region], drop: &[Region], pen: Region) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::new();
    for r in existing {
        if *r == pen || drop.contains(r) || out.contains(r) {
            continue;
        }
        out.push(*r);
    }
    out.push(pen);
    out
}

// ---------------------------------------------------------------------------------------------
// Reclaim planning
// ---------------------------------------------------------------------------------------------

/// Why a CPU cannot be brought into the new pen (it is never touched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostReason {
    /// Its parkboot slot says RELEASED: an OS took it and never gave it back.
    Released,
    /// Its parkboot slot says REFUSED: it sits in the old pen at the wrong EL for good.
    Refused,
    /// Its parkboot slot is EMPTY (the CPU never arrived) and there is no PSCI to start it.
    NeverArrived,
    /// The old pen's CPUs run at another EL than this loader.
    ElMismatch { pen_el: u32, current_el: u8 },
    /// The release address is inside a parkboot pen but is not a slot's release word.
    NotASlot { addr: u64 },
    /// The release address is another CPU's slot.
    SlotOwnerMismatch { owner: u64 },
    /// The slot's state record names another MPIDR than the slot (corrupt).
    SlotCorrupt { seen: u64 },
    /// The slot's status is not a defined value.
    UnknownStatus(u64),
    /// The release address is inside a region that looks like a parkboot pen but does not
    /// validate (never written to).
    InvalidPen { base: u64, error: PenError },
    /// The release address is not inside any /memreserve/.
    NotReserved { addr: u64 },
    /// The release address (foreign pen) is not 8-byte aligned.
    Misaligned { addr: u64 },
    /// The /memreserve/ holding the release address could not be read (not RAM?).
    Unreadable { addr: u64 },
    /// `enable-method = "spin-table"` without a usable 64-bit `cpu-release-addr`.
    NoReleaseAddr,
    /// `enable-method = "psci"` but no usable PSCI.
    NoPsci,
    /// No `enable-method` and no PSCI.
    NoEnableMethod,
    /// An enable-method this loader does not know.
    UnknownMethod(String),
    /// The cpu node's status is not okay (and the CPU is not in a parkboot pen to move).
    Disabled,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Released => write!(f, "released to an OS that never parked it"),
            Self::Refused => write!(f, "held at the wrong EL in the old pen"),
            Self::NeverArrived => write!(f, "never arrived in the old pen and no PSCI"),
            Self::ElMismatch { pen_el, current_el } => write!(
                f,
                "old pen runs at EL{pen_el}, this loader at EL{current_el}"
            ),
            Self::NotASlot { addr } => {
                write!(f, "release address {addr:#x} is not a slot of the pen")
            }
            Self::SlotOwnerMismatch { owner } => {
                write!(f, "release address is the slot of MPIDR {owner:#x}")
            }
            Self::SlotCorrupt { seen } => {
                write!(f, "slot state names MPIDR {seen:#x} (corrupt)")
            }
            Self::UnknownStatus(v) => write!(f, "slot status {v:#x} is not defined"),
            Self::InvalidPen { base, error } => {
                write!(f, "pen at {base:#x} does not validate: {error}")
            }
            Self::NotReserved { addr } => {
                write!(f, "release address {addr:#x} is not in any /memreserve/")
            }
            Self::Misaligned { addr } => {
                write!(f, "release address {addr:#x} is not 8-byte aligned")
            }
            Self::Unreadable { addr } => {
                write!(f, "the /memreserve/ holding {addr:#x} cannot be read")
            }
            Self::NoReleaseAddr => write!(f, "spin-table without a 64-bit cpu-release-addr"),
            Self::NoPsci => write!(f, "enable-method psci but no usable PSCI"),
            Self::NoEnableMethod => write!(f, "no enable-method and no PSCI"),
            Self::UnknownMethod(m) => write!(f, "unknown enable-method \"{m}\""),
            Self::Disabled => write!(f, "cpu node is not enabled"),
        }
    }
}

/// What to do with one CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuAction {
    /// The CPU running the loader.
    Boot,
    /// Held in an older parkboot pen: write the new pen's `pen_entry` into `release_addr` with
    /// [`Pen::release`] on the old pen (after [`Pen::rearm`] if `status` is UNARMED), then wait
    /// for WAITING in the new pen.
    TakeOverFromPen {
        old_pen_base: u64,
        release_addr: u64,
        status: SlotStatus,
    },
    /// Start it with PSCI CPU_ON(mpidr, new pen's `pen_entry`, slot address).
    PsciCpuOn,
    /// Held by a foreign spin-table (U-Boot, boot-wrapper): write `pen_entry` into
    /// `release_addr` (one 64-bit store, clean, DSB, SEV). Several CPUs may share the address.
    SpinTableForeign { release_addr: u64 },
    /// Leave it alone.
    Lost { reason: LostReason },
}

impl fmt::Display for CpuAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boot => write!(f, "boot CPU"),
            Self::TakeOverFromPen {
                old_pen_base,
                release_addr,
                status,
            } => write!(
                f,
                "take over from parkboot pen {old_pen_base:#x} (slot {release_addr:#x}, {status})"
            ),
            Self::PsciCpuOn => write!(f, "PSCI CPU_ON"),
            Self::SpinTableForeign { release_addr } => {
                write!(f, "take over from foreign spin-table {release_addr:#x}")
            }
            Self::Lost { reason } => write!(f, "lost: {reason}"),
        }
    }
}

/// The plan for one DT CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPlan {
    pub mpidr: u64,
    pub path: String,
    /// The cpu node's status is okay.
    pub enabled: bool,
    pub action: CpuAction,
}

/// Why an old pen must stay reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocker {
    pub mpidr: u64,
    pub status: SlotStatus,
}

/// A valid parkboot pen found at the base of a /memreserve/ entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldPen {
    /// The /memreserve/ entry (starts at the pen base, covers at least the pen).
    pub reserve: Region,
    pub header: PenHeader,
    pub slots: Vec<SlotInfo>,
    /// MPIDRs planned `TakeOverFromPen` from this pen.
    pub to_move: Vec<u64>,
    /// Slots that keep the pen reserved: RELEASED (the CPU may still come back to this pen's
    /// park address), REFUSED, unknown, or held but not planned to move.
    pub blockers: Vec<Blocker>,
    /// Its code is byte-identical to ours (in-place adoption possible, see docs/protocol.md).
    pub same_code: bool,
}

impl OldPen {
    /// Whether the pen's /memreserve/ may be dropped once the CPUs in `moved` have been seen
    /// WAITING in the new pen.
    #[must_use]
    pub fn droppable_after(&self, moved: &[u64]) -> bool {
        self.blockers.is_empty() && self.to_move.iter().all(|m| moved.contains(m))
    }
}

/// A /memreserve/ entry that starts with the parkboot magic but does not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPen {
    pub reserve: Region,
    pub error: PenError,
}

/// What the loader finds and must do to gather every CPU into its new pen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReclaimPlan {
    /// One entry per DT CPU, in DT order.
    pub cpus: Vec<CpuPlan>,
    pub old_pens: Vec<OldPen>,
    /// Never written, never dropped.
    pub bad_pens: Vec<BadPen>,
    /// /memreserve/ entries whose first bytes `read` refused: CPUs held there are not touched.
    pub unreadable: Vec<Region>,
    /// The current MPIDR is one of the DT CPUs.
    pub boot_cpu_in_dt: bool,
    /// Generation for the new pen: one more than the highest old pen's, or 1.
    pub next_generation: u64,
}

impl ReclaimPlan {
    /// The plan for `mpidr`.
    #[must_use]
    pub fn cpu(&self, mpidr: u64) -> Option<&CpuPlan> {
        let m = mpidr & MPIDR_MASK;
        self.cpus.iter().find(|c| c.mpidr == m)
    }

    /// MPIDRs that need a slot in the new pen: every CPU that is not lost, boot CPU included.
    #[must_use]
    pub fn new_pen_cpus(&self) -> Vec<u64> {
        self.cpus
            .iter()
            .filter(|c| !matches!(c.action, CpuAction::Lost { .. }))
            .map(|c| c.mpidr)
            .collect()
    }

    /// /memreserve/ entries of old pens that may be dropped once `moved` are in the new pen.
    #[must_use]
    pub fn droppable(&self, moved: &[u64]) -> Vec<Region> {
        self.old_pens
            .iter()
            .filter(|p| p.droppable_after(moved))
            .map(|p| p.reserve)
            .collect()
    }
}

impl fmt::Display for ReclaimPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cpus {
            writeln!(
                f,
                "cpu {:#x} {}{}: {}",
                c.mpidr,
                c.path,
                if c.enabled { "" } else { " (disabled)" },
                c.action
            )?;
        }
        for p in &self.old_pens {
            writeln!(
                f,
                "old pen {} gen {} EL{}: {} to move, {} blocking{}",
                p.reserve,
                p.header.generation,
                p.header.entry_el,
                p.to_move.len(),
                p.blockers.len(),
                if p.same_code { ", same code" } else { "" }
            )?;
        }
        for b in &self.bad_pens {
            writeln!(f, "invalid pen {}: {}", b.reserve, b.error)?;
        }
        Ok(())
    }
}

/// What [`plan_reclaim`] needs to know about the running loader.
#[derive(Debug, Clone, Copy)]
pub struct ReclaimEnv<'a> {
    /// MPIDR of the CPU running the loader (masked here).
    pub current_mpidr: u64,
    /// EL the loader runs at (and every CPU must reach the kernel at).
    pub current_el: u8,
    /// PSCI CPU_ON is usable (a /psci node with a conduit callable from this EL).
    pub psci: bool,
    /// Our pen code, to tell whether an old pen runs identical code.
    pub our_code: Option<&'a [u8]>,
}

/// Plans how to gather every CPU of `dt` into a new pen.
///
/// `read(addr, len)` returns `len` bytes of physical memory at `addr` as seen at PoC (the caller
/// cleans+invalidates before reading), or `None` for memory that is not RAM or not readable.
/// It is called for the first [`HEADER_SIZE`] bytes of every /memreserve/ entry and for whole
/// pens (at most [`MAX_PEN_SIZE`]) whose header validated.
pub fn plan_reclaim(
    dt: &DtInfo,
    env: &ReclaimEnv<'_>,
    mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>,
) -> ReclaimPlan {
    let current = env.current_mpidr & MPIDR_MASK;
    let mut plan = ReclaimPlan {
        boot_cpu_in_dt: dt.cpus.iter().any(|c| c.mpidr == current),
        ..ReclaimPlan::default()
    };

    // 1. Find parkboot pens at the base of /memreserve/ entries.
    let mut seen: Vec<u64> = Vec::new();
    for r in &dt.memreserve {
        if seen.contains(&r.base) {
            continue;
        }
        seen.push(r.base);
        let Some(head) = read(r.base, HEADER_SIZE as usize) else {
            plan.unreadable.push(*r);
            continue;
        };
        if rd_u64(&head, hdr::MAGIC) != Some(PEN_MAGIC) {
            continue; // not ours: a foreign reservation
        }
        let bad = |error| BadPen { reserve: *r, error };
        let h = match PenHeader::parse(&head, r.base) {
            Ok(h) => h,
            Err(e) => {
                plan.bad_pens.push(bad(e));
                continue;
            }
        };
        if plan.old_pens.len() >= MAX_OLD_PENS {
            plan.bad_pens.push(bad(PenError::TooManyPens {
                limit: MAX_OLD_PENS,
            }));
            continue;
        }
        if h.total_size > r.size {
            plan.bad_pens.push(bad(PenError::BadLayout {
                what: "pen larger than its /memreserve/",
                value: h.total_size,
            }));
            continue;
        }
        let Some(full) = usize_of(h.total_size).and_then(|n| read(r.base, n)) else {
            plan.bad_pens.push(bad(PenError::TooShort {
                len: 0,
                need: h.total_size,
            }));
            continue;
        };
        let img = match PenImage::parse(&full, r.base) {
            Ok(img) if *img.header() == h => img,
            Ok(_) => {
                plan.bad_pens.push(bad(PenError::BadLayout {
                    what: "header changed while reading",
                    value: r.base,
                }));
                continue;
            }
            Err(e) => {
                plan.bad_pens.push(bad(e));
                continue;
            }
        };
        plan.old_pens.push(OldPen {
            reserve: *r,
            header: h,
            slots: img.slots().collect(),
            to_move: Vec::new(),
            blockers: Vec::new(),
            same_code: env.our_code.is_some_and(|c| c == img.code()),
        });
    }
    plan.next_generation = plan
        .old_pens
        .iter()
        .map(|p| p.header.generation)
        .max()
        .map_or(1, |g| g.saturating_add(1));

    // 2. One action per DT CPU.
    for cpu in &dt.cpus {
        let enabled = cpu.status.is_enabled();
        let mut action = if cpu.mpidr == current {
            CpuAction::Boot
        } else {
            cpu_action(cpu, &plan, env, &dt.memreserve)
        };
        if !enabled && !matches!(action, CpuAction::TakeOverFromPen { .. } | CpuAction::Boot) {
            action = CpuAction::Lost {
                reason: LostReason::Disabled,
            };
        }
        plan.cpus.push(CpuPlan {
            mpidr: cpu.mpidr,
            path: cpu.path.clone(),
            enabled,
            action,
        });
    }

    // 3. What keeps each old pen reserved.
    for i in 0..plan.old_pens.len() {
        let Some(pen) = plan.old_pens.get(i) else {
            break;
        };
        let base = pen.header.phys_base;
        let mut to_move = Vec::new();
        let mut blockers = Vec::new();
        for s in &pen.slots {
            if s.mpidr == current {
                continue; // that CPU is us
            }
            let moving = plan.cpus.iter().any(|c| {
                matches!(c.action, CpuAction::TakeOverFromPen { old_pen_base, release_addr, .. }
                    if old_pen_base == base && release_addr == s.release_addr)
            });
            match s.state.status {
                SlotStatus::Empty => {}
                SlotStatus::Waiting | SlotStatus::Parked | SlotStatus::Unarmed if moving => {
                    to_move.push(s.mpidr);
                }
                status => blockers.push(Blocker {
                    mpidr: s.mpidr,
                    status,
                }),
            }
        }
        if let Some(pen) = plan.old_pens.get_mut(i) {
            pen.to_move = to_move;
            pen.blockers = blockers;
        }
    }
    plan
}

fn cpu_action(
    cpu: &crate::dt::Cpu,
    plan: &ReclaimPlan,
    env: &ReclaimEnv<'_>,
    memreserve: &[Region],
) -> CpuAction {
    let lost = |reason| CpuAction::Lost { reason };
    match &cpu.enable_method {
        Some(EnableMethod::SpinTable) => {}
        Some(EnableMethod::Psci) => {
            return if env.psci {
                CpuAction::PsciCpuOn
            } else {
                lost(LostReason::NoPsci)
            };
        }
        None => {
            return if env.psci {
                CpuAction::PsciCpuOn
            } else {
                lost(LostReason::NoEnableMethod)
            };
        }
        Some(EnableMethod::Other(m)) => return lost(LostReason::UnknownMethod(m.clone())),
    }
    let Some(addr) = cpu.release_addr.value() else {
        return lost(LostReason::NoReleaseAddr);
    };
    // A parkboot pen?
    if let Some(pen) = plan
        .old_pens
        .iter()
        .find(|p| p.header.region().contains(addr))
    {
        let h = &pen.header;
        let Some(s) = h.slot_of_release_addr(addr).and_then(|i| pen.slots.get(i)) else {
            return lost(LostReason::NotASlot { addr });
        };
        if s.mpidr != cpu.mpidr {
            return lost(LostReason::SlotOwnerMismatch { owner: s.mpidr });
        }
        let st = s.state;
        if st.status != SlotStatus::Empty && st.mpidr_seen != s.mpidr {
            return lost(LostReason::SlotCorrupt {
                seen: st.mpidr_seen,
            });
        }
        return match st.status {
            SlotStatus::Waiting | SlotStatus::Parked | SlotStatus::Unarmed => {
                if h.entry_el != u32::from(env.current_el) {
                    lost(LostReason::ElMismatch {
                        pen_el: h.entry_el,
                        current_el: env.current_el,
                    })
                } else {
                    CpuAction::TakeOverFromPen {
                        old_pen_base: h.phys_base,
                        release_addr: addr,
                        status: st.status,
                    }
                }
            }
            SlotStatus::Released => lost(LostReason::Released),
            SlotStatus::Refused => lost(LostReason::Refused),
            SlotStatus::Empty if env.psci => CpuAction::PsciCpuOn,
            SlotStatus::Empty => lost(LostReason::NeverArrived),
            SlotStatus::Unknown(v) => lost(LostReason::UnknownStatus(v)),
        };
    }
    // Inside something that claims to be a parkboot pen but does not validate: never write.
    if let Some(b) = plan.bad_pens.iter().find(|b| b.reserve.contains(addr)) {
        return lost(LostReason::InvalidPen {
            base: b.reserve.base,
            error: b.error.clone(),
        });
    }
    if plan.unreadable.iter().any(|r| r.contains(addr)) {
        return lost(LostReason::Unreadable { addr });
    }
    // A foreign spin-table inside a /memreserve/.
    let word_end = addr.checked_add(8);
    if memreserve
        .iter()
        .any(|r| r.contains(addr) && word_end.is_some_and(|e| e <= r.end()))
    {
        return if addr.is_multiple_of(8) {
            CpuAction::SpinTableForeign { release_addr: addr }
        } else {
            lost(LostReason::Misaligned { addr })
        };
    }
    lost(LostReason::NotReserved { addr })
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dt::{Cpu, Prop64, Status};
    use crate::wake;
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec;

    // ---- fixtures ----

    const BASE: u64 = 0x7fe0_0000;
    const CODE_LEN: usize = 0x280;

    fn code_bytes() -> Vec<u8> {
        (0..CODE_LEN).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn code(b: &[u8]) -> PenCode<'_> {
        PenCode {
            bytes: b,
            entry: 0,
            park: 8,
        }
    }

    /// 8-byte aligned zeroed memory viewed as bytes.
    struct Mem8(Vec<u64>);
    impl Mem8 {
        fn new(len: usize) -> Self {
            Self(vec![0u64; len.div_ceil(8)])
        }
        fn bytes(&mut self) -> &mut [u8] {
            let n = self.0.len() * 8;
            // SAFETY: a Vec<u64> is n initialised bytes, u8 has no alignment requirement.
            unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), n) }
        }
    }

    fn built(base: u64, cpus: &[u64], el: u8) -> (Vec<u8>, PenHeader) {
        let c = code_bytes();
        let l = PenLayout::new(cpus.len(), c.len(), el).unwrap();
        let mut v = vec![0xaau8; l.total_size as usize];
        let h = l.build(&mut v, base, &code(&c), cpus).unwrap();
        (v, h)
    }

    /// Plays the pen CPU's part (what arch/pen.S does), on a byte image.
    fn sim_set(v: &mut [u8], h: &PenHeader, i: usize, status: SlotStatus) {
        let st = h.state_off(i).unwrap();
        let mpidr = rd_u64(v, h.slot_off(i).unwrap() + slot::MPIDR).unwrap();
        wr_u64(v, st + state::STATUS, status.raw()).unwrap();
        wr_u64(v, st + state::MPIDR_SEEN, mpidr).unwrap();
        wr_u64(v, st + state::EL, u64::from(h.entry_el)).unwrap();
    }

    /// The pen CPU's arrival and one pass of its loop: returns the entry it jumps to.
    fn sim_cpu(v: &mut [u8], h: &PenHeader, mpidr: u64, park: bool, el: u32) -> Option<u64> {
        let i = (0..h.nr_slots as usize)
            .find(|&i| rd_u64(v, h.slot_off(i).unwrap() + slot::MPIDR) == Some(mpidr))?;
        let so = h.slot_off(i).unwrap();
        let st = h.state_off(i).unwrap();
        wr_u64(v, st + state::MPIDR_SEEN, mpidr).unwrap();
        let k = if park { state::PARKS } else { state::ENTRIES };
        let n = rd_u64(v, st + k).unwrap();
        wr_u64(v, st + k, n + 1).unwrap();
        if el != h.entry_el {
            wr_u64(v, st, SlotStatus::Refused.raw()).unwrap();
            return None;
        }
        if rd_u64(v, so).unwrap() != 0 {
            wr_u64(v, st, SlotStatus::Unarmed.raw()).unwrap();
            return None;
        }
        let s = if park {
            SlotStatus::Parked
        } else {
            SlotStatus::Waiting
        };
        wr_u64(v, st, s.raw()).unwrap();
        sim_poll(v, h, i)
    }

    /// One wake-up of a CPU already in the pen.
    fn sim_poll(v: &mut [u8], h: &PenHeader, i: usize) -> Option<u64> {
        let so = h.slot_off(i).unwrap();
        let st = h.state_off(i).unwrap();
        let rel = rd_u64(v, so).unwrap();
        match SlotStatus::from_raw(rd_u64(v, st).unwrap()) {
            SlotStatus::Unarmed => {
                if rel == 0 {
                    let parks = rd_u64(v, st + state::PARKS).unwrap();
                    let s = if parks > 0 {
                        SlotStatus::Parked
                    } else {
                        SlotStatus::Waiting
                    };
                    wr_u64(v, st, s.raw()).unwrap();
                }
                None
            }
            SlotStatus::Waiting | SlotStatus::Parked if rel != 0 => {
                if !rel.is_multiple_of(4) {
                    wr_u64(v, st, SlotStatus::Unarmed.raw()).unwrap();
                    return None;
                }
                wr_u64(v, st + state::LAST_ENTRY, rel).unwrap();
                let n = rd_u64(v, st + state::RELEASES).unwrap();
                wr_u64(v, st + state::RELEASES, n + 1).unwrap();
                wr_u64(v, st, SlotStatus::Released.raw()).unwrap();
                Some(rel)
            }
            _ => None,
        }
    }

    /// Records cache operations.
    #[derive(Default)]
    struct Rec(Vec<String>);
    impl CacheOps for Rec {
        fn clean(&mut self, addr: u64, len: u64) {
            self.0.push(format!("clean {addr:#x}+{len}"));
        }
        fn clean_invalidate(&mut self, addr: u64, len: u64) {
            self.0.push(format!("civac {addr:#x}+{len}"));
        }
        fn send_event(&mut self) {
            self.0.push("sev".into());
        }
    }

    // ---- layout ----

    #[test]
    fn layout_small_fits_one_page() {
        let l = PenLayout::new(4, CODE_LEN, 2).unwrap();
        assert_eq!(l.code_offset, 0x80);
        assert_eq!(l.slot_offset, 0x300);
        assert_eq!(l.state_offset, 0x800);
        assert_eq!(l.total_size, 0x1000);
        assert_eq!(l.generation, 1);
        // the largest one-page pen
        let l = PenLayout::new(20, CODE_LEN, 2).unwrap();
        assert_eq!((l.state_offset, l.total_size), (0x800, 0x1000));
        let l = PenLayout::new(21, CODE_LEN, 2).unwrap();
        assert_eq!((l.state_offset, l.total_size), (0x1000, 0x2000));
    }

    #[test]
    fn layout_rules_hold_for_every_size() {
        for n in [1usize, 2, 8, 31, 32, 33, 64, 255, 256, 512, 1000, 1024] {
            for c in [4usize, 0x280, 0x784, 0x1000, MAX_CODE_SIZE as usize] {
                let l = PenLayout::new(n, c, 1).unwrap();
                let array = n as u64 * 64;
                assert_eq!(l.slot_offset % 64, 0);
                assert!(u64::from(l.slot_offset) >= 0x80 + c as u64);
                assert_eq!(l.state_offset % CWG_MAX, 0);
                assert!(u64::from(l.state_offset) >= u64::from(l.slot_offset) + array);
                assert!(u64::from(l.state_offset) + array <= l.total_size);
                assert_eq!(l.total_size % PEN_ALIGN, 0);
                assert!(l.total_size <= MAX_PEN_SIZE);
            }
        }
    }

    #[test]
    fn layout_rejects_bad_input() {
        assert_eq!(
            PenLayout::new(0, 64, 2),
            Err(PenError::BadSlotCount { count: 0 })
        );
        assert_eq!(
            PenLayout::new(1025, 64, 2),
            Err(PenError::BadSlotCount { count: 1025 })
        );
        assert_eq!(PenLayout::new(1, 0, 2), Err(PenError::BadCode { len: 0 }));
        assert_eq!(PenLayout::new(1, 6, 2), Err(PenError::BadCode { len: 6 }));
        assert_eq!(
            PenLayout::new(1, 0x4004, 2),
            Err(PenError::BadCode { len: 0x4004 })
        );
        assert_eq!(
            PenLayout::new(1, 64, 3),
            Err(PenError::BadEntryEl { found: 3 })
        );
        assert_eq!(
            PenLayout::new(1, 64, 0),
            Err(PenError::BadEntryEl { found: 0 })
        );
        assert!(PenLayout::new(usize::MAX, 64, 1).is_err());
    }

    // ---- build / parse ----

    #[test]
    fn build_then_parse_round_trips() {
        let cpus = [0x0, 0x1, 0x100, 0xff_0000_0203];
        let (v, h) = built(BASE, &cpus, 2);
        assert_eq!(PenHeader::parse(&v, BASE), Ok(h));
        assert_eq!(rd_u64(&v, 0), Some(PEN_MAGIC));
        assert_eq!(&v[..8], b"PKBTPEN1");
        assert_eq!(h.entry_addr(), BASE + 0x80);
        assert_eq!(h.park_addr(), BASE + 0x88);
        assert_eq!(h.region(), Region::new(BASE, 0x1000));
        assert_eq!(&v[0x80..0x80 + CODE_LEN], &code_bytes()[..]);
        // everything outside header/code/mpidrs is zero (the region was 0xaa before)
        let img = PenImage::parse(&v, BASE).unwrap();
        for (i, s) in img.slots().enumerate() {
            assert_eq!(s.index, i);
            assert_eq!(s.mpidr, cpus[i]);
            assert_eq!(s.release, 0);
            assert_eq!(s.release_addr, BASE + 0x300 + 64 * i as u64);
            assert_eq!(s.state.status, SlotStatus::Empty);
            assert_eq!(s.state.mpidr_seen, 0);
        }
        assert!(v[0x80 + CODE_LEN..0x300].iter().all(|&b| b == 0));
        assert!(v[0x800..].iter().all(|&b| b == 0));
        assert_eq!(img.slot_addr(0x100), Some(BASE + 0x380));
        assert_eq!(img.slot_addr(0x2), None);
        assert_eq!(img.status(0xff_0000_0203), Some(SlotStatus::Empty));
        assert_eq!(img.code(), &code_bytes()[..]);
        assert_eq!(h.slot_of_release_addr(BASE + 0x380), Some(2));
        assert_eq!(h.slot_of_release_addr(BASE + 0x388), None);
        assert_eq!(h.slot_of_release_addr(BASE + 0x400), None);
        assert_eq!(h.slot_of_release_addr(BASE), None);
        assert_eq!(h.state_addr(1), Some(BASE + 0x840));
    }

    #[test]
    fn build_rejects_bad_input() {
        let c = code_bytes();
        let l = PenLayout::new(2, c.len(), 2).unwrap();
        let mut v = vec![0u8; 0x1000];
        assert_eq!(
            l.build(&mut v, BASE, &code(&c), &[1]),
            Err(PenError::CpuCountMismatch { cpus: 1, slots: 2 })
        );
        assert_eq!(
            l.build(&mut v, BASE, &code(&c), &[1, 1]),
            Err(PenError::DuplicateMpidr { mpidr: 1 })
        );
        assert_eq!(
            l.build(&mut v, BASE, &code(&c), &[1, 1 << 24]),
            Err(PenError::BadMpidr { mpidr: 1 << 24 })
        );
        assert!(matches!(
            l.build(&mut v, BASE + 0x800, &code(&c), &[1, 2]),
            Err(PenError::BadLayout { .. })
        ));
        assert!(matches!(
            l.build(&mut v[..0xfff], BASE, &code(&c), &[1, 2]),
            Err(PenError::TooShort { .. })
        ));
        assert_eq!(
            l.build(&mut v, BASE, &code(&c[..8]), &[1, 2]),
            Err(PenError::BadCode { len: 8 })
        );
        let bad_entry = PenCode {
            bytes: &c,
            entry: CODE_LEN as u32,
            park: 8,
        };
        assert!(matches!(
            l.build(&mut v, BASE, &bad_entry, &[1, 2]),
            Err(PenError::BadLayout { .. })
        ));
        let bad_park = PenCode {
            bytes: &c,
            entry: 0,
            park: 6,
        };
        assert!(matches!(
            l.build(&mut v, BASE, &bad_park, &[1, 2]),
            Err(PenError::BadLayout { .. })
        ));
        assert!(l.build(&mut v, BASE, &code(&c), &[1, 2]).is_ok());
        // a generation carries into the header
        let g = l
            .with_generation(7)
            .build(&mut v, BASE, &code(&c), &[1, 2])
            .unwrap();
        assert_eq!(PenHeader::parse(&v, BASE).unwrap().generation, 7);
        assert_eq!(g.generation, 7);
    }

    /// Rewrites a header field and fixes the checksum.
    fn patched(v: &[u8], off: usize, val: &[u8]) -> Vec<u8> {
        let mut w = v[..128].to_vec();
        w[off..off + val.len()].copy_from_slice(val);
        let crc = header_crc(&w);
        w[124..128].copy_from_slice(&crc.to_le_bytes());
        w
    }

    #[test]
    fn parse_rejects_each_rule() {
        let (v, _) = built(BASE, &[0, 1], 2);
        let p = |w: &[u8]| PenHeader::parse(w, BASE);
        assert_eq!(
            p(&v[..127]),
            Err(PenError::TooShort {
                len: 127,
                need: 128
            })
        );
        let mut w = v.clone();
        w[0] ^= 1;
        assert!(matches!(p(&w), Err(PenError::BadMagic { .. })));
        assert_eq!(
            p(&patched(&v, 8, &2u32.to_le_bytes())),
            Err(PenError::BadVersion { found: 2 })
        );
        assert_eq!(
            p(&patched(&v, 12, &64u32.to_le_bytes())),
            Err(PenError::BadHeaderSize { found: 64 })
        );
        let mut w = v.clone();
        w[60] ^= 1; // generation, checksum not fixed
        assert!(matches!(p(&w), Err(PenError::BadChecksum { .. })));
        assert_eq!(
            PenHeader::parse(&v, BASE + 0x1000),
            Err(PenError::WrongPhysBase {
                header: BASE,
                found_at: BASE + 0x1000
            })
        );
        assert_eq!(p(&patched(&v, 100, &[1])), Err(PenError::ReservedNotZero));
        let layout = |off: usize, val: &[u8]| {
            let r = PenHeader::parse(&patched(&v, off, val), BASE);
            assert!(
                matches!(
                    r,
                    Err(PenError::BadLayout { .. }) | Err(PenError::BadEntryEl { .. })
                ),
                "{off} {val:?} {r:?}"
            );
        };
        layout(hdr::TOTAL_SIZE, &0u64.to_le_bytes());
        layout(hdr::TOTAL_SIZE, &0x1800u64.to_le_bytes());
        layout(hdr::TOTAL_SIZE, &(MAX_PEN_SIZE + 0x1000).to_le_bytes());
        layout(hdr::CODE_OFFSET, &0x40u32.to_le_bytes());
        layout(hdr::CODE_SIZE, &0u32.to_le_bytes());
        layout(hdr::CODE_SIZE, &0x281u32.to_le_bytes());
        layout(hdr::CODE_SIZE, &0x300u32.to_le_bytes()); // overlaps slots
        layout(hdr::SLOT_OFFSET, &0x2c0u32.to_le_bytes());
        layout(hdr::SLOT_OFFSET, &0x308u32.to_le_bytes());
        layout(hdr::SLOT_SIZE, &128u32.to_le_bytes());
        layout(hdr::NR_SLOTS, &0u32.to_le_bytes());
        layout(hdr::NR_SLOTS, &33u32.to_le_bytes()); // slots run into the state array
        layout(hdr::NR_SLOTS, &2000u32.to_le_bytes());
        layout(hdr::ENTRY_EL, &3u32.to_le_bytes());
        layout(hdr::ENTRY_EL, &0u32.to_le_bytes());
        layout(hdr::STATE_OFFSET, &0x400u32.to_le_bytes());
        layout(hdr::STATE_OFFSET, &0x1000u32.to_le_bytes());
        layout(hdr::STATE_SIZE, &32u32.to_le_bytes());
        layout(hdr::ENTRY_OFFSET, &0x40u32.to_le_bytes());
        layout(hdr::ENTRY_OFFSET, &0x300u32.to_le_bytes());
        layout(hdr::PARK_OFFSET, &0x82u32.to_le_bytes());
        // unaligned phys_base found where it says it is
        let w = patched(&v, hdr::PHYS_BASE, &(BASE + 8).to_le_bytes());
        assert!(matches!(
            PenHeader::parse(&w, BASE + 8),
            Err(PenError::BadLayout { .. })
        ));
        // a wrapping pen
        let w = patched(&v, hdr::PHYS_BASE, &(u64::MAX - 0xfff).to_le_bytes());
        assert!(matches!(
            PenHeader::parse(&w, u64::MAX - 0xfff),
            Err(PenError::BadLayout { .. })
        ));
        // PenImage wants the whole pen
        assert!(matches!(
            PenImage::parse(&v[..0xfff], BASE),
            Err(PenError::TooShort { .. })
        ));
    }

    #[test]
    fn errors_display_on_one_line() {
        let errs = [
            PenError::TooShort { len: 1, need: 2 },
            PenError::BadMagic { found: 1 },
            PenError::BadVersion { found: 2 },
            PenError::BadHeaderSize { found: 3 },
            PenError::BadChecksum {
                stored: 1,
                computed: 2,
            },
            PenError::WrongPhysBase {
                header: 1,
                found_at: 2,
            },
            PenError::BadLayout {
                what: "x",
                value: 1,
            },
            PenError::BadEntryEl { found: 3 },
            PenError::ReservedNotZero,
            PenError::BadSlotCount { count: 0 },
            PenError::BadCode { len: 0 },
            PenError::BadMpidr { mpidr: 1 },
            PenError::DuplicateMpidr { mpidr: 1 },
            PenError::CpuCountMismatch { cpus: 1, slots: 2 },
            PenError::Unaligned,
            PenError::NoSlot { mpidr: 1 },
            PenError::NotHeld {
                mpidr: 1,
                status: SlotStatus::Unknown(9),
            },
            PenError::ReleasePending { mpidr: 1, value: 2 },
            PenError::BadEntry { entry: 3 },
            PenError::NeedsEl2,
            PenError::TooManyPens { limit: 8 },
        ];
        for e in errs {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'), "{s}");
        }
        let reasons = [
            LostReason::Released,
            LostReason::Refused,
            LostReason::NeverArrived,
            LostReason::ElMismatch {
                pen_el: 2,
                current_el: 1,
            },
            LostReason::NotASlot { addr: 1 },
            LostReason::SlotOwnerMismatch { owner: 1 },
            LostReason::SlotCorrupt { seen: 1 },
            LostReason::UnknownStatus(9),
            LostReason::InvalidPen {
                base: 1,
                error: PenError::Unaligned,
            },
            LostReason::NotReserved { addr: 1 },
            LostReason::Misaligned { addr: 1 },
            LostReason::Unreadable { addr: 1 },
            LostReason::NoReleaseAddr,
            LostReason::NoPsci,
            LostReason::NoEnableMethod,
            LostReason::UnknownMethod("x".into()),
            LostReason::Disabled,
        ];
        for r in reasons {
            let s = CpuAction::Lost { reason: r }.to_string();
            assert!(!s.contains('\n'), "{s}");
        }
    }

    // ---- live pen: release / park protocol ----

    #[test]
    fn release_and_park_cycle() {
        let c = code_bytes();
        let cpus = [0u64, 1, 2];
        let l = PenLayout::new(3, c.len(), 2).unwrap();
        let mut m = Mem8::new(l.total_size as usize);
        let h = l.build(m.bytes(), BASE, &code(&c), &cpus).unwrap();
        let mut ops = NoCacheOps;

        // CPU 1 arrives through pen_entry
        assert_eq!(sim_cpu(m.bytes(), &h, 1, false, 2), None);
        {
            let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
            assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Waiting));
            assert_eq!(pen.status(&mut ops, 2), Ok(SlotStatus::Empty));
            assert_eq!(pen.slot_addr(1), Some(BASE + 0x300 + 64));
            // nothing to release for a CPU that is not there
            assert_eq!(
                pen.release(&mut ops, 2, 0x4008_0000),
                Err(PenError::NotHeld {
                    mpidr: 2,
                    status: SlotStatus::Empty
                })
            );
            assert_eq!(
                pen.release(&mut ops, 7, 0x4008_0000),
                Err(PenError::NoSlot { mpidr: 7 })
            );
            assert_eq!(
                pen.release(&mut ops, 1, 0),
                Err(PenError::BadEntry { entry: 0 })
            );
            assert_eq!(
                pen.release(&mut ops, 1, 0x4008_0002),
                Err(PenError::BadEntry { entry: 0x4008_0002 })
            );
            pen.release(&mut ops, 1, 0x4008_0000).unwrap();
            // a second release before the CPU took the first is refused
            assert_eq!(
                pen.release(&mut ops, 1, 0x4008_0000),
                Err(PenError::ReleasePending {
                    mpidr: 1,
                    value: 0x4008_0000
                })
            );
        }
        // the CPU wakes and leaves
        assert_eq!(sim_poll(m.bytes(), &h, 1), Some(0x4008_0000));
        {
            let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
            let st = pen.state(&mut ops, 1).unwrap();
            assert_eq!(st.status, SlotStatus::Released);
            assert_eq!(
                (st.entries, st.parks, st.releases, st.last_entry),
                (1, 0, 1, 0x4008_0000)
            );
            assert_eq!(pen.release_word(&mut ops, 1), Ok(0x4008_0000));
            assert!(matches!(
                pen.rearm(&mut ops, 1),
                Err(PenError::NotHeld { .. })
            ));
        }
        // the OS parks it properly: zero the word, then branch to pen_park
        let so = h.slot_off(1).unwrap();
        wr_u64(m.bytes(), so, 0).unwrap();
        assert_eq!(sim_cpu(m.bytes(), &h, 1, true, 2), None);
        {
            let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
            assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Parked));
            pen.release(&mut ops, 1, 0x4100_0000).unwrap();
        }
        assert_eq!(sim_poll(m.bytes(), &h, 1), Some(0x4100_0000));
        // the OS parks it WITHOUT zeroing: the stale entry is not taken
        assert_eq!(sim_cpu(m.bytes(), &h, 1, true, 2), None);
        assert_eq!(sim_poll(m.bytes(), &h, 1), None);
        {
            let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
            assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Unarmed));
            assert!(matches!(
                pen.release(&mut ops, 1, 0x4200_0000),
                Err(PenError::NotHeld { .. })
            ));
            pen.rearm(&mut ops, 1).unwrap();
        }
        assert_eq!(sim_poll(m.bytes(), &h, 1), None); // arms
        {
            let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
            assert_eq!(pen.status(&mut ops, 1), Ok(SlotStatus::Parked));
            let st = pen.state(&mut ops, 1).unwrap();
            assert_eq!((st.entries, st.parks, st.releases), (1, 2, 2));
            pen.release(&mut ops, 1, 0x4200_0000).unwrap();
        }
        assert_eq!(sim_poll(m.bytes(), &h, 1), Some(0x4200_0000));
        // wrong EL
        assert_eq!(sim_cpu(m.bytes(), &h, 2, false, 1), None);
        let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
        assert_eq!(pen.status(&mut ops, 2), Ok(SlotStatus::Refused));
        assert!(matches!(
            pen.release(&mut ops, 2, 0x4000_0000),
            Err(PenError::NotHeld { .. })
        ));
    }

    #[test]
    fn release_cache_sequence() {
        let c = code_bytes();
        let l = PenLayout::new(2, c.len(), 2).unwrap();
        let mut m = Mem8::new(l.total_size as usize);
        let h = l.build(m.bytes(), BASE, &code(&c), &[0, 1]).unwrap();
        sim_set(m.bytes(), &h, 1, SlotStatus::Waiting);
        let mut rec = Rec::default();
        let mut pen = Pen::open(m.bytes(), BASE, &mut rec).unwrap();
        assert_eq!(rec.0, ["civac 0x7fe00000+128", "civac 0x7fe00300+128"]);
        rec.0.clear();
        pen.release(&mut rec, 1, 0x4008_0000).unwrap();
        assert_eq!(
            rec.0,
            [
                "civac 0x7fe00840+64", // state line before reading status
                "civac 0x7fe00340+8",  // release word before checking it is 0
                "clean 0x7fe00340+64", // context + mode
                "clean 0x7fe00340+8",  // the release word
                "sev"
            ]
        );
        rec.0.clear();
        assert_eq!(pen.adopt(&mut rec), Ok(2));
        assert_eq!(rec.0, ["clean 0x7fe00000+128"]);
        let hh = PenHeader::parse(m.bytes(), BASE).unwrap();
        assert_eq!(hh.generation, 2);
        assert_eq!(hh, PenHeader { generation: 2, ..h });
        // slot words as written
        let so = h.slot_off(1).unwrap();
        assert_eq!(rd_u64(m.bytes(), so + slot::RELEASE), Some(0x4008_0000));
        assert_eq!(rd_u64(m.bytes(), so + slot::MODE), Some(MODE_BRANCH));
        assert_eq!(rd_u64(m.bytes(), so + slot::CONTEXT), Some(0));
    }

    #[test]
    fn release_to_el1_needs_el2_pen() {
        let c = code_bytes();
        for el in [1u8, 2] {
            let l = PenLayout::new(2, c.len(), el).unwrap();
            let mut m = Mem8::new(l.total_size as usize);
            let h = l.build(m.bytes(), BASE, &code(&c), &[0, 1]).unwrap();
            sim_set(m.bytes(), &h, 1, SlotStatus::Parked);
            let mut ops = NoCacheOps;
            let mut pen = Pen::open(m.bytes(), BASE, &mut ops).unwrap();
            let r = pen.release_to_el1(&mut ops, 1, 0x4000_1000, 0xc0ffee);
            if el == 1 {
                assert_eq!(r, Err(PenError::NeedsEl2));
            } else {
                assert_eq!(r, Ok(()));
                let so = h.slot_off(1).unwrap();
                assert_eq!(rd_u64(m.bytes(), so + slot::MODE), Some(MODE_ERET_EL1));
                assert_eq!(rd_u64(m.bytes(), so + slot::CONTEXT), Some(0xc0ffee));
                assert_eq!(rd_u64(m.bytes(), so), Some(0x4000_1000));
            }
        }
    }

    #[test]
    fn open_refuses_invalid_or_unaligned_and_writes_nothing() {
        let (v, _) = built(BASE, &[0, 1], 2);
        let mut m = Mem8::new(v.len() + 8);
        m.bytes()[..v.len()].copy_from_slice(&v);
        let mut ops = NoCacheOps;
        // unaligned view
        assert_eq!(
            Pen::open(&mut m.bytes()[1..], BASE, &mut ops).err(),
            Some(PenError::Unaligned)
        );
        // wrong address
        assert!(matches!(
            Pen::open(m.bytes(), BASE + 0x1000, &mut ops),
            Err(PenError::WrongPhysBase { .. })
        ));
        // truncated view
        assert!(matches!(
            Pen::open(&mut m.bytes()[..0x800], BASE, &mut ops),
            Err(PenError::TooShort { .. })
        ));
        // corrupted header
        m.bytes()[hdr::GENERATION] ^= 1;
        let before = m.bytes().to_vec();
        assert!(matches!(
            Pen::open(m.bytes(), BASE, &mut ops),
            Err(PenError::BadChecksum { .. })
        ));
        assert_eq!(m.bytes(), &before[..]);
    }

    #[test]
    fn dt_patch_and_memreserve_list() {
        let (v, h) = built(BASE, &[0, 1, 0x100], 2);
        let img = PenImage::parse(&v, BASE).unwrap();
        let p = img.dt_patch();
        assert_eq!(p.memreserve, Region::new(BASE, 0x1000));
        assert_eq!(p.park_addr, BASE + 0x88);
        assert_eq!(p.cpus.len(), 3);
        assert_eq!(p.release_addr(0x100), Some(BASE + 0x380));
        assert_eq!(p.release_addr(0x8000_0100), Some(BASE + 0x380)); // masked
        assert_eq!(p.release_addr(5), None);
        assert_eq!(p.release_addr(1), h.slot_release_addr(1));
        // release addresses are unique and 64 bytes apart
        for w in p.cpus.windows(2) {
            assert_eq!(w[1].release_addr - w[0].release_addr, 64);
        }

        let old = Region::new(0x7fd0_0000, 0x1000);
        let other = Region::new(0x4000_0000, 0x1000);
        let new = Region::new(BASE, 0x1000);
        assert_eq!(
            memreserve_list(&[other, old, new, other, new], &[old], new),
            [other, new]
        );
        assert_eq!(memreserve_list(&[], &[], new), [new]);
        // repeated application is stable: no accumulation
        let once = memreserve_list(&[other, old], &[], new);
        assert_eq!(memreserve_list(&once, &[], new), once);
    }

    // ---- reclaim planning ----

    fn cpu(mpidr: u64, method: Option<EnableMethod>, rel: Prop64) -> Cpu {
        Cpu {
            path: format!("/cpus/cpu@{mpidr:x}"),
            mpidr,
            enable_method: method,
            release_addr: rel,
            park_addr: Prop64::Absent,
            status: Status::Okay,
        }
    }

    fn spin(mpidr: u64, rel: u64) -> Cpu {
        cpu(mpidr, Some(EnableMethod::SpinTable), Prop64::Value(rel))
    }

    /// Physical memory made of segments.
    struct Phys(Vec<(u64, Vec<u8>)>);
    impl Phys {
        fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            self.0.iter().find_map(|(b, v)| {
                let off = usize::try_from(addr.checked_sub(*b)?).ok()?;
                v.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
            })
        }
    }

    fn env(psci: bool) -> ReclaimEnv<'static> {
        ReclaimEnv {
            current_mpidr: 0,
            current_el: 2,
            psci,
            our_code: None,
        }
    }

    /// An old pen at BASE for CPUs 0..4 with the given statuses of CPUs 1..4.
    fn old_pen(statuses: [SlotStatus; 3]) -> (Vec<u8>, PenHeader) {
        let (mut v, h) = built(BASE, &[0, 1, 2, 3], 2);
        for (k, s) in statuses.into_iter().enumerate() {
            if s != SlotStatus::Empty {
                sim_set(&mut v, &h, k + 1, s);
            }
        }
        (v, h)
    }

    fn dt_with(cpus: Vec<Cpu>, memreserve: Vec<Region>) -> DtInfo {
        DtInfo {
            cpus,
            memreserve,
            ..DtInfo::default()
        }
    }

    #[test]
    fn plan_takes_over_held_cpus_and_drops_the_old_pen() {
        let (v, h) = old_pen([SlotStatus::Waiting, SlotStatus::Parked, SlotStatus::Unarmed]);
        let r = |i| h.slot_release_addr(i).unwrap();
        let dt = dt_with(
            vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
            vec![Region::new(0x4000_0000, 0x1000), h.region()],
        );
        let mem = Phys(vec![(BASE, v.clone())]);
        let c = code_bytes();
        let e = ReclaimEnv {
            our_code: Some(&c),
            ..env(false)
        };
        let plan = plan_reclaim(&dt, &e, |a, l| mem.read(a, l));
        assert_eq!(plan.cpus[0].action, CpuAction::Boot);
        for (i, st) in [
            (1, SlotStatus::Waiting),
            (2, SlotStatus::Parked),
            (3, SlotStatus::Unarmed),
        ] {
            assert_eq!(
                plan.cpus[i].action,
                CpuAction::TakeOverFromPen {
                    old_pen_base: BASE,
                    release_addr: r(i),
                    status: st
                }
            );
        }
        assert!(plan.boot_cpu_in_dt);
        assert_eq!(plan.old_pens.len(), 1);
        let p = &plan.old_pens[0];
        assert_eq!(p.to_move, [1, 2, 3]);
        assert!(p.blockers.is_empty());
        assert!(p.same_code);
        assert_eq!(plan.next_generation, 2);
        assert!(!p.droppable_after(&[1, 2]));
        assert!(p.droppable_after(&[1, 2, 3]));
        assert_eq!(plan.droppable(&[1, 2, 3]), [h.region()]);
        assert_eq!(plan.new_pen_cpus(), [0, 1, 2, 3]);
        assert!(plan.bad_pens.is_empty());
        let text = plan.to_string();
        assert!(
            text.contains("take over from parkboot pen") && text.contains("same code"),
            "{text}"
        );
    }

    #[test]
    fn plan_released_cpu_is_lost_and_blocks_the_pen() {
        let (v, h) = old_pen([
            SlotStatus::Released,
            SlotStatus::Waiting,
            SlotStatus::Refused,
        ]);
        let r = |i| h.slot_release_addr(i).unwrap();
        let dt = dt_with(
            vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
            vec![h.region()],
        );
        let mem = Phys(vec![(BASE, v)]);
        let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
        assert_eq!(
            plan.cpus[1].action,
            CpuAction::Lost {
                reason: LostReason::Released
            }
        );
        assert!(matches!(
            plan.cpus[2].action,
            CpuAction::TakeOverFromPen { .. }
        ));
        assert_eq!(
            plan.cpus[3].action,
            CpuAction::Lost {
                reason: LostReason::Refused
            }
        );
        let p = &plan.old_pens[0];
        assert_eq!(p.to_move, [2]);
        assert_eq!(
            p.blockers,
            [
                Blocker {
                    mpidr: 1,
                    status: SlotStatus::Released
                },
                Blocker {
                    mpidr: 3,
                    status: SlotStatus::Refused
                }
            ]
        );
        assert!(!p.droppable_after(&[2]));
        assert!(plan.droppable(&[1, 2, 3]).is_empty());
        assert_eq!(plan.new_pen_cpus(), [0, 2]);
        assert!(!p.same_code); // our_code not given
    }

    #[test]
    fn plan_boot_cpu_released_slot_does_not_block() {
        // the kernel that kexec'd us ran on CPU 1, which it got from the old pen
        let (v, h) = old_pen([SlotStatus::Released, SlotStatus::Parked, SlotStatus::Empty]);
        let r = |i| h.slot_release_addr(i).unwrap();
        let dt = dt_with(
            vec![spin(0, r(0)), spin(1, r(1)), spin(2, r(2)), spin(3, r(3))],
            vec![h.region()],
        );
        let mem = Phys(vec![(BASE, v)]);
        let e = ReclaimEnv {
            current_mpidr: 0x8000_0001,
            ..env(false)
        }; // MPIDR with the U/MT-style high bit
        let plan = plan_reclaim(&dt, &e, |a, l| mem.read(a, l));
        assert_eq!(plan.cpus[1].action, CpuAction::Boot);
        // CPU 0 (slot EMPTY: the old loader's boot CPU, never parked) without PSCI
        assert_eq!(
            plan.cpus[0].action,
            CpuAction::Lost {
                reason: LostReason::NeverArrived
            }
        );
        assert_eq!(
            plan.cpus[3].action,
            CpuAction::Lost {
                reason: LostReason::NeverArrived
            }
        );
        let p = &plan.old_pens[0];
        assert!(p.blockers.is_empty());
        assert!(p.droppable_after(&[2]));
        // with PSCI, EMPTY slots are started with CPU_ON
        let plan = plan_reclaim(&dt, &ReclaimEnv { psci: true, ..e }, |a, l| mem.read(a, l));
        assert_eq!(plan.cpus[0].action, CpuAction::PsciCpuOn);
        assert_eq!(plan.cpus[3].action, CpuAction::PsciCpuOn);
    }

    #[test]
    fn plan_el_mismatch_slot_mismatch_and_corruption() {
        let (mut v, h) = old_pen([SlotStatus::Waiting, SlotStatus::Waiting, SlotStatus::Parked]);
        // corrupt CPU 3's state record
        wr_u64(&mut v, h.state_off(3).unwrap() + state::MPIDR_SEEN, 9).unwrap();
        let r = |i| h.slot_release_addr(i).unwrap();
        let dt = dt_with(
            vec![
                spin(0, r(0)),
                spin(1, r(2)),     // another CPU's slot
                spin(2, r(2) + 8), // inside the pen, not a release word
                spin(3, r(3)),
            ],
            vec![h.region()],
        );
        let mem = Phys(vec![(BASE, v)]);
        let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
        assert_eq!(
            plan.cpus[1].action,
            CpuAction::Lost {
                reason: LostReason::SlotOwnerMismatch { owner: 2 }
            }
        );
        assert_eq!(
            plan.cpus[2].action,
            CpuAction::Lost {
                reason: LostReason::NotASlot { addr: r(2) + 8 }
            }
        );
        assert_eq!(
            plan.cpus[3].action,
            CpuAction::Lost {
                reason: LostReason::SlotCorrupt { seen: 9 }
            }
        );
        // held CPUs nobody moves keep the pen reserved
        assert_eq!(plan.old_pens[0].blockers.len(), 3);
        // EL mismatch
        let plan = plan_reclaim(
            &dt,
            &ReclaimEnv {
                current_el: 1,
                ..env(true)
            },
            |a, l| mem.read(a, l),
        );
        assert_eq!(
            plan.cpus[3].action,
            CpuAction::Lost {
                reason: LostReason::SlotCorrupt { seen: 9 }
            }
        );
        let dt2 = dt_with(vec![spin(0, r(0)), spin(1, r(1))], vec![h.region()]);
        let plan = plan_reclaim(
            &dt2,
            &ReclaimEnv {
                current_el: 1,
                ..env(true)
            },
            |a, l| mem.read(a, l),
        );
        assert_eq!(
            plan.cpus[1].action,
            CpuAction::Lost {
                reason: LostReason::ElMismatch {
                    pen_el: 2,
                    current_el: 1
                }
            }
        );
    }

    #[test]
    fn plan_invalid_pen_is_never_used() {
        let (mut v, h) = old_pen([
            SlotStatus::Waiting,
            SlotStatus::Waiting,
            SlotStatus::Waiting,
        ]);
        v[hdr::GENERATION] ^= 1; // checksum now wrong
        let r = |i| h.slot_release_addr(i).unwrap();
        let dt = dt_with(vec![spin(0, r(0)), spin(1, r(1))], vec![h.region()]);
        let mem = Phys(vec![(BASE, v)]);
        let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
        assert!(plan.old_pens.is_empty());
        assert_eq!(plan.bad_pens.len(), 1);
        assert!(matches!(
            &plan.cpus[1].action,
            CpuAction::Lost {
                reason: LostReason::InvalidPen {
                    base: BASE,
                    error: PenError::BadChecksum { .. }
                }
            }
        ));
        assert!(plan.droppable(&[1]).is_empty());
        assert!(plan.to_string().contains("invalid pen"));
    }

    #[test]
    fn plan_pen_not_fully_reserved_or_unreadable() {
        let (v, h) = old_pen([SlotStatus::Waiting; 3]);
        let r1 = h.slot_release_addr(1).unwrap();
        let dt = dt_with(vec![spin(1, r1)], vec![Region::new(BASE, 0x800)]);
        let mem = Phys(vec![(BASE, v.clone())]);
        let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
        assert!(plan.old_pens.is_empty());
        assert!(matches!(
            plan.cpus[0].action,
            CpuAction::Lost {
                reason: LostReason::InvalidPen { .. }
            }
        ));
        // header readable, body not
        let mem = Phys(vec![(BASE, v[..0x100].to_vec())]);
        let dt = dt_with(vec![spin(1, r1)], vec![h.region()]);
        let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
        assert!(matches!(
            plan.cpus[0].action,
            CpuAction::Lost {
                reason: LostReason::InvalidPen { .. }
            }
        ));
        // nothing readable: not touched
        let plan = plan_reclaim(&dt, &env(false), |_, _| None);
        assert_eq!(
            plan.cpus[0].action,
            CpuAction::Lost {
                reason: LostReason::Unreadable { addr: r1 }
            }
        );
        assert_eq!(plan.unreadable, [h.region()]);
    }

    #[test]
    fn plan_foreign_spin_tables() {
        // U-Boot style: one shared release word inside a /memreserve/
        let uboot = Region::new(0xbff0_0000, 0x1000);
        let mut foreign = vec![0u8; 0x1000];
        foreign[..8].copy_from_slice(b"notapen!");
        let mem = Phys(vec![(uboot.base, foreign)]);
        let dt = dt_with(
            vec![
                spin(0, 0),
                spin(1, 0xbff0_0ff8),
                spin(2, 0xbff0_0ff8),
                spin(3, 0xbff0_0ff4), // misaligned
                spin(4, 0xbff0_0ffd), // word would cross the end
                spin(5, 0x9000_0000), // not reserved
                cpu(6, Some(EnableMethod::SpinTable), Prop64::OneCell(0x1234)),
                cpu(7, Some(EnableMethod::SpinTable), Prop64::Absent),
            ],
            vec![uboot],
        );
        let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
        let a = |i: usize| plan.cpus[i].action.clone();
        assert_eq!(
            a(1),
            CpuAction::SpinTableForeign {
                release_addr: 0xbff0_0ff8
            }
        );
        assert_eq!(
            a(2),
            CpuAction::SpinTableForeign {
                release_addr: 0xbff0_0ff8
            }
        );
        assert_eq!(
            a(3),
            CpuAction::Lost {
                reason: LostReason::Misaligned { addr: 0xbff0_0ff4 }
            }
        );
        assert_eq!(
            a(4),
            CpuAction::Lost {
                reason: LostReason::NotReserved { addr: 0xbff0_0ffd }
            }
        );
        assert_eq!(
            a(5),
            CpuAction::Lost {
                reason: LostReason::NotReserved { addr: 0x9000_0000 }
            }
        );
        assert_eq!(
            a(6),
            CpuAction::Lost {
                reason: LostReason::NoReleaseAddr
            }
        );
        assert_eq!(
            a(7),
            CpuAction::Lost {
                reason: LostReason::NoReleaseAddr
            }
        );
        assert!(plan.old_pens.is_empty() && plan.bad_pens.is_empty());
        assert_eq!(plan.next_generation, 1);
    }

    #[test]
    fn plan_psci_and_other_methods() {
        let mut off = cpu(4, Some(EnableMethod::Psci), Prop64::Absent);
        off.status = Status::Disabled;
        let dt = dt_with(
            vec![
                cpu(0, Some(EnableMethod::Psci), Prop64::Absent),
                cpu(1, Some(EnableMethod::Psci), Prop64::Absent),
                cpu(2, None, Prop64::Absent),
                cpu(
                    3,
                    Some(EnableMethod::Other("acpi-parking".into())),
                    Prop64::Absent,
                ),
                off,
            ],
            vec![],
        );
        let plan = plan_reclaim(&dt, &env(true), |_, _| None);
        let a = |p: &ReclaimPlan, i: usize| p.cpus[i].action.clone();
        assert_eq!(a(&plan, 0), CpuAction::Boot);
        assert_eq!(a(&plan, 1), CpuAction::PsciCpuOn);
        assert_eq!(a(&plan, 2), CpuAction::PsciCpuOn);
        assert_eq!(
            a(&plan, 3),
            CpuAction::Lost {
                reason: LostReason::UnknownMethod("acpi-parking".into())
            }
        );
        assert_eq!(
            a(&plan, 4),
            CpuAction::Lost {
                reason: LostReason::Disabled
            }
        );
        assert!(!plan.cpus[4].enabled);
        let plan = plan_reclaim(&dt, &env(false), |_, _| None);
        assert_eq!(
            a(&plan, 1),
            CpuAction::Lost {
                reason: LostReason::NoPsci
            }
        );
        assert_eq!(
            a(&plan, 2),
            CpuAction::Lost {
                reason: LostReason::NoEnableMethod
            }
        );
        // the boot CPU not in the DT
        let plan = plan_reclaim(
            &dt,
            &ReclaimEnv {
                current_mpidr: 0x100,
                ..env(true)
            },
            |_, _| None,
        );
        assert!(!plan.boot_cpu_in_dt);
        assert_eq!(a(&plan, 0), CpuAction::PsciCpuOn);
    }

    #[test]
    fn plan_disabled_cpu_in_old_pen_still_moves() {
        let (v, h) = old_pen([SlotStatus::Parked, SlotStatus::Empty, SlotStatus::Empty]);
        let mut c1 = spin(1, h.slot_release_addr(1).unwrap());
        c1.status = Status::Disabled;
        let dt = dt_with(
            vec![spin(0, h.slot_release_addr(0).unwrap()), c1],
            vec![h.region()],
        );
        let mem = Phys(vec![(BASE, v)]);
        let plan = plan_reclaim(&dt, &env(true), |a, l| mem.read(a, l));
        assert!(matches!(
            plan.cpus[1].action,
            CpuAction::TakeOverFromPen { .. }
        ));
        assert!(plan.old_pens[0].droppable_after(&[1]));
    }

    #[test]
    fn plan_two_pens_and_duplicate_memreserve() {
        let base2 = BASE + 0x10_0000;
        let (mut v1, h1) = built(BASE, &[0, 1, 2], 2);
        sim_set(&mut v1, &h1, 1, SlotStatus::Released);
        let c = code_bytes();
        let l = PenLayout::new(2, c.len(), 2).unwrap().with_generation(5);
        let mut v2 = vec![0u8; l.total_size as usize];
        let h2 = l.build(&mut v2, base2, &code(&c), &[0, 2]).unwrap();
        sim_set(&mut v2, &h2, 1, SlotStatus::Parked);
        let dt = dt_with(
            vec![
                spin(0, h2.slot_release_addr(0).unwrap()),
                spin(1, h1.slot_release_addr(1).unwrap()),
                spin(2, h2.slot_release_addr(1).unwrap()),
            ],
            vec![h1.region(), h2.region(), h1.region()],
        );
        let mem = Phys(vec![(BASE, v1), (base2, v2)]);
        let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
        assert_eq!(plan.old_pens.len(), 2);
        assert_eq!(plan.next_generation, 6);
        assert_eq!(
            plan.cpus[1].action,
            CpuAction::Lost {
                reason: LostReason::Released
            }
        );
        assert_eq!(
            plan.cpus[2].action,
            CpuAction::TakeOverFromPen {
                old_pen_base: base2,
                release_addr: h2.slot_release_addr(1).unwrap(),
                status: SlotStatus::Parked
            }
        );
        assert_eq!(plan.droppable(&[2]), [h2.region()]);
    }

    #[test]
    fn plan_caps_old_pens() {
        let c = code_bytes();
        let l = PenLayout::new(1, c.len(), 2).unwrap();
        let mut segs = Vec::new();
        let mut regions = Vec::new();
        for k in 0..MAX_OLD_PENS as u64 + 2 {
            let base = 0x5000_0000 + k * 0x1000;
            let mut v = vec![0u8; 0x1000];
            l.build(&mut v, base, &code(&c), &[k + 1]).unwrap();
            segs.push((base, v));
            regions.push(Region::new(base, 0x1000));
        }
        let mem = Phys(segs);
        let dt = dt_with(vec![spin(10, 0x5000_0000 + 0x9000 + 0x300)], regions);
        let plan = plan_reclaim(&dt, &env(false), |a, l| mem.read(a, l));
        assert_eq!(plan.old_pens.len(), MAX_OLD_PENS);
        assert_eq!(plan.bad_pens.len(), 2);
        assert!(matches!(
            plan.cpus[0].action,
            CpuAction::Lost {
                reason: LostReason::InvalidPen {
                    error: PenError::TooManyPens { .. },
                    ..
                }
            }
        ));
    }

    // ---- the asm and this file agree ----

    #[test]
    fn asm_constants_match() {
        let src = include_str!("../arch/src/pen.S");
        // included with global_asm!, where braces are format placeholders
        assert!(!src.contains('{') && !src.contains('}'));
        let mut found = Vec::new();
        for line in src.lines() {
            let l = line.trim();
            let Some(rest) = l.strip_prefix(".equ ") else {
                continue;
            };
            let mut it = rest.splitn(2, ',');
            let name = it.next().unwrap().trim().to_string();
            let val = it.next().unwrap().split("/*").next().unwrap().trim();
            let v = if let Some(h) = val.strip_prefix("0x") {
                u64::from_str_radix(h, 16).unwrap()
            } else {
                val.parse::<u64>().unwrap()
            };
            found.push((name, v));
        }
        let want: &[(&str, u64)] = &[
            ("PEN_CODE_OFFSET", CODE_OFFSET.into()),
            ("PEN_BASE_ALIGN_MASK", PEN_ALIGN - 1),
            ("PEN_HDR_MAGIC", hdr::MAGIC as u64),
            ("PEN_HDR_TOTAL_SIZE", hdr::TOTAL_SIZE as u64),
            ("PEN_HDR_PHYS_BASE", hdr::PHYS_BASE as u64),
            ("PEN_HDR_SLOT_OFFSET", hdr::SLOT_OFFSET as u64),
            ("PEN_HDR_NR_SLOTS", hdr::NR_SLOTS as u64),
            ("PEN_HDR_ENTRY_EL", hdr::ENTRY_EL as u64),
            ("PEN_HDR_STATE_OFFSET", hdr::STATE_OFFSET as u64),
            ("PEN_MAX_SLOTS", MAX_SLOTS.into()),
            ("PEN_SLOT_SHIFT", u64::from(SLOT_SIZE.trailing_zeros())),
            ("PEN_SLOT_SIZE", SLOT_SIZE.into()),
            ("PEN_SLOT_RELEASE", slot::RELEASE as u64),
            ("PEN_SLOT_MPIDR", slot::MPIDR as u64),
            ("PEN_SLOT_CONTEXT", slot::CONTEXT as u64),
            ("PEN_SLOT_MODE", slot::MODE as u64),
            ("PEN_STATE_SIZE", STATE_SIZE.into()),
            ("PEN_ST_STATUS", state::STATUS as u64),
            ("PEN_ST_MPIDR", state::MPIDR_SEEN as u64),
            ("PEN_ST_ENTRIES", state::ENTRIES as u64),
            ("PEN_ST_PARKS", state::PARKS as u64),
            ("PEN_ST_RELEASES", state::RELEASES as u64),
            ("PEN_ST_LAST_ENTRY", state::LAST_ENTRY as u64),
            ("PEN_ST_EL", state::EL as u64),
            ("PEN_ST_WAKES", state::WAKES as u64),
            ("PEN_ST_WAIT", state::WAIT as u64),
            ("WAKE_BLOCK_SIZE", wake::WAKE_BLOCK_SIZE as u64),
            ("WAKE_GIC_VERSION", wake::off::GIC_VERSION as u64),
            ("WAKE_FLAGS", wake::off::FLAGS as u64),
            ("WAKE_PERIOD", wake::off::PERIOD as u64),
            ("WAKE_INTID_EL2", wake::off::INTID_EL2 as u64),
            ("WAKE_INTID_EL1", wake::off::INTID_EL1 as u64),
            ("WAKE_GICD", wake::off::GICD as u64),
            ("WAKE_GICC", wake::off::GICC as u64),
            ("WAKE_NR_GICR", wake::off::NR_GICR as u64),
            ("WAKE_HOLD_PERIOD", wake::off::HOLD_PERIOD as u64),
            ("WAKE_GICR", wake::off::GICR as u64),
            ("WAKE_MAX_GICR", wake::MAX_GICR_REGIONS as u64),
            ("WAKE_PMR", u64::from(wake::WAKE_PMR)),
            ("WAIT_WFE", u64::from(wake::WaitMethod::WFE)),
            ("WAIT_WFIT", u64::from(wake::WaitMethod::WFIT)),
            ("WAIT_GICV2", u64::from(wake::WaitMethod::GICV2)),
            ("WAIT_GICV3", u64::from(wake::WaitMethod::GICV3)),
            ("WAKE_SGI", u64::from(wake::WAKE_SGI)),
            ("GICD_CTLR", wake::regs::GICD_CTLR as u64),
            ("GICD_ISENABLER", wake::regs::GICD_ISENABLER as u64),
            ("GICD_ICENABLER", wake::regs::GICD_ICENABLER as u64),
            ("GICD_ICPENDR", wake::regs::GICD_ICPENDR as u64),
            ("GICD_IPRIORITYR", wake::regs::GICD_IPRIORITYR as u64),
            ("GICD_CPENDSGIR", wake::regs::GICD_CPENDSGIR as u64),
            ("GICC_CTLR", wake::regs::GICC_CTLR as u64),
            ("GICC_PMR", wake::regs::GICC_PMR as u64),
            ("GICR_CTLR", wake::regs::GICR_CTLR as u64),
            ("GICR_WAKER", wake::regs::GICR_WAKER as u64),
            ("GICR_TYPER", wake::regs::GICR_TYPER as u64),
            ("GICR_FRAME", wake::GICR_FRAME),
            ("GICR_SGI_OFFSET", wake::regs::GICR_SGI_OFFSET as u64),
            ("GICR_IGROUPR0", wake::regs::GICR_IGROUPR0 as u64),
            ("GICR_ISENABLER0", wake::regs::GICR_ISENABLER0 as u64),
            ("GICR_ICENABLER0", wake::regs::GICR_ICENABLER0 as u64),
            ("GICR_ICPENDR0", wake::regs::GICR_ICPENDR0 as u64),
            ("GICR_IPRIORITYR", wake::regs::GICR_IPRIORITYR as u64),
            ("GIC_POLL_LIMIT", u64::from(wake::regs::GIC_POLL_LIMIT)),
            ("PEN_STATUS_WAITING", SlotStatus::Waiting.raw()),
            ("PEN_STATUS_RELEASED", SlotStatus::Released.raw()),
            ("PEN_STATUS_PARKED", SlotStatus::Parked.raw()),
            ("PEN_STATUS_REFUSED", SlotStatus::Refused.raw()),
            ("PEN_STATUS_UNARMED", SlotStatus::Unarmed.raw()),
            ("PEN_MODE_BRANCH", MODE_BRANCH),
            ("PEN_MODE_ERET_EL1", MODE_ERET_EL1),
            ("PEN_SCTLR_EL2_OFF", 0x30c5_0830),
            ("PEN_SCTLR_EL1_OFF", 0x30d0_0800),
            ("PEN_SPSR_EL1H_MASKED", 0x3c5),
        ];
        for (name, v) in want {
            let got = found.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            assert_eq!(got, Some(*v), "{name}");
        }
        assert_eq!(found.len(), want.len(), "unchecked .equ in pen.S");
        // the wake block magic, built the same way into x2
        let m = wake::WAKE_MAGIC;
        for (i, part) in [m & 0xffff, (m >> 16) & 0xffff, (m >> 32) & 0xffff, m >> 48]
            .iter()
            .enumerate()
        {
            let needle = if i == 0 {
                format!("movz    x2, #{part:#x}")
            } else {
                format!("movk    x2, #{part:#x}, lsl #{}", 16 * i)
            };
            assert!(src.contains(&needle), "{needle}");
        }
        // the magic the asm builds with movz/movk
        let m = PEN_MAGIC;
        for (i, part) in [m & 0xffff, (m >> 16) & 0xffff, (m >> 32) & 0xffff, m >> 48]
            .iter()
            .enumerate()
        {
            let needle = if i == 0 {
                format!("movz    x1, #{part:#x}")
            } else {
                format!("movk    x1, #{part:#x}, lsl #{}", 16 * i)
            };
            assert!(src.contains(&needle), "{needle}");
        }
        // the mask the asm builds: 0xffff | 0xff << 16 | 0xff << 32
        assert_eq!(0xffffu64 | 0xff << 16 | 0xff << 32, MPIDR_MASK);
        // a 64-byte slot line holds release + mpidr + context + mode
        assert!(slot::MODE + 8 <= SLOT_SIZE as usize && state::EL + 8 <= STATE_SIZE as usize);
    }

    // ---- robustness: never panic on any input ----

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

    /// Whatever parse accepts is internally consistent.
    fn check_accepted(h: &PenHeader, at: u64) {
        assert_eq!(h.phys_base, at);
        let n = h.nr_slots as usize;
        assert!(n >= 1 && n <= MAX_SLOTS as usize);
        let last_slot = h.slot_off(n - 1).unwrap() + 64;
        let last_state = h.state_off(n - 1).unwrap() + 64;
        assert!(last_slot as u64 <= u64::from(h.state_offset));
        assert!(last_state as u64 <= h.total_size);
        assert!(h.entry_offset >= CODE_OFFSET && h.entry_offset < CODE_OFFSET + h.code_size);
        assert!(h.park_offset >= CODE_OFFSET && h.park_offset < CODE_OFFSET + h.code_size);
        assert_eq!(PenHeader::parse(&h.to_bytes(), at).as_ref(), Ok(h));
    }

    #[test]
    fn fuzz_header_mutations() {
        let (v, _) = built(BASE, &[0, 1, 2, 3], 2);
        let interesting: [u64; 12] = [
            0,
            1,
            4,
            64,
            0x80,
            0x800,
            0x1000,
            0xffff_ffff,
            0x8000_0000,
            u64::MAX,
            BASE,
            MAX_PEN_SIZE,
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut w = v[..128].to_vec();
            for _ in 0..1 + rng.below(4) {
                match rng.below(3) {
                    0 => {
                        let i = rng.below(128);
                        w[i] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let i = rng.below(32) * 4;
                        let val = interesting[rng.below(interesting.len())] as u32;
                        w[i..i + 4].copy_from_slice(&val.to_le_bytes());
                    }
                    _ => {
                        let i = rng.below(16) * 8;
                        let val = if rng.below(2) == 0 {
                            interesting[rng.below(interesting.len())]
                        } else {
                            rng.next()
                        };
                        w[i..i + 8].copy_from_slice(&val.to_le_bytes());
                    }
                }
            }
            if round % 4 != 0 {
                // keep the magic and fix the checksum so the layout rules get exercised
                if round % 2 == 0 {
                    w[..8].copy_from_slice(&PEN_MAGIC.to_le_bytes());
                }
                let crc = header_crc(&w);
                w[124..].copy_from_slice(&crc.to_le_bytes());
            }
            let at = if rng.below(8) == 0 {
                rng.next()
            } else {
                rd_u64(&w, hdr::PHYS_BASE).unwrap()
            };
            if let Ok(h) = PenHeader::parse(&w, at) {
                accepted += 1;
                check_accepted(&h, at);
                // a whole image with random body bytes never panics either
                let mut full: Vec<u8> = (0..h.total_size as usize)
                    .map(|_| rng.next() as u8)
                    .collect();
                full[..128].copy_from_slice(&w);
                let img = PenImage::parse(&full, at).unwrap();
                let _ = img.slots().count();
                let _ = img.dt_patch();
                let _ = img.slot_of(rng.next());
                let _ = img.code();
            }
        }
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn fuzz_plan_reclaim() {
        let mut rng = Rng(0x1234_5678_9abc_def0);
        let (base_img, h) = old_pen([
            SlotStatus::Waiting,
            SlotStatus::Parked,
            SlotStatus::Released,
        ]);
        for _ in 0..3000 {
            let mut img = base_img.clone();
            // mutate a few words anywhere in the pen (header mutations mostly invalidate it)
            for _ in 0..rng.below(6) {
                let i = rng.below(img.len() / 8) * 8;
                let val = match rng.below(4) {
                    0 => rng.next(),
                    1 => rng.below(7) as u64,
                    2 => rng.below(4) as u64,
                    _ => h.slot_release_addr(rng.below(4)).unwrap(),
                };
                img[i..i + 8].copy_from_slice(&val.to_le_bytes());
            }
            if rng.below(2) == 0 {
                let crc = header_crc(&img);
                img[124..128].copy_from_slice(&crc.to_le_bytes());
            }
            let addrs = [
                h.slot_release_addr(0).unwrap(),
                h.slot_release_addr(1).unwrap(),
                h.slot_release_addr(2).unwrap(),
                BASE + rng.below(0x1000) as u64,
                rng.next(),
                0,
                u64::MAX - rng.below(16) as u64,
            ];
            let methods = [
                Some(EnableMethod::SpinTable),
                Some(EnableMethod::Psci),
                None,
                Some(EnableMethod::Other("x".into())),
            ];
            let cpus = (0..rng.below(6))
                .map(|i| {
                    let rel = match rng.below(4) {
                        0 => Prop64::Absent,
                        1 => Prop64::OneCell(7),
                        _ => Prop64::Value(addrs[rng.below(addrs.len())]),
                    };
                    let mut c = cpu(
                        if rng.below(5) == 0 {
                            rng.next() & MPIDR_MASK
                        } else {
                            i as u64
                        },
                        methods[rng.below(4)].clone(),
                        rel,
                    );
                    if rng.below(6) == 0 {
                        c.status = Status::Fail;
                    }
                    c
                })
                .collect();
            let regions = [
                h.region(),
                Region::new(BASE, rng.below(0x2000) as u64),
                Region::new(rng.next(), rng.next() >> rng.below(64)),
                Region::new(u64::MAX - 0x10, 0x10),
            ];
            let memreserve = (0..rng.below(4))
                .map(|_| regions[rng.below(regions.len())])
                .collect();
            let dt = dt_with(cpus, memreserve);
            let mem = Phys(vec![(BASE, img)]);
            let e = ReclaimEnv {
                current_mpidr: rng.below(4) as u64,
                current_el: 1 + rng.below(2) as u8,
                psci: rng.below(2) == 0,
                our_code: None,
            };
            let plan = plan_reclaim(&dt, &e, |a, l| mem.read(a, l));
            let _ = plan.to_string();
            let _ = plan.droppable(&[1, 2]);
            let _ = plan.new_pen_cpus();
            assert_eq!(plan.cpus.len(), dt.cpus.len());
            // invariant: a take-over only ever targets a pen that validated
            for c in &plan.cpus {
                if let CpuAction::TakeOverFromPen {
                    old_pen_base,
                    release_addr,
                    ..
                } = c.action
                {
                    let p = plan
                        .old_pens
                        .iter()
                        .find(|p| p.header.phys_base == old_pen_base)
                        .unwrap();
                    let i = p.header.slot_of_release_addr(release_addr).unwrap();
                    assert_eq!(p.slots[i].mpidr, c.mpidr);
                    assert!(matches!(
                        p.slots[i].state.status,
                        SlotStatus::Waiting | SlotStatus::Parked | SlotStatus::Unarmed
                    ));
                }
            }
        }
    }
}
