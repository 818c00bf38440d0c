//! A read-only view of a whole pen ([`PenImage`]) for planning and diagnostics, and the DT
//! data a pen implies (spin-table release addresses, `/memreserve/`).

use alloc::vec::Vec;

use crate::dt::Region;

use super::*;

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

    /// The CPUs recorded in the stray records (docs/protocol.md §2.5), in record order.
    pub fn strays(&self) -> impl Iterator<Item = StrayRecord> + '_ {
        (0..self.header.nr_strays() as usize).filter_map(|i| {
            let o = self.header.stray_off(i)?;
            StrayRecord::from_bytes(self.bytes.get(o..o.checked_add(STRAY_SIZE as usize)?)?)
        })
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
