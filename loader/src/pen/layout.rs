//! Choosing a pen's layout ([`PenLayout`]) and building its bytes.

use super::*;

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
        if !(1..=3).contains(&entry_el) {
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
        let strays = u64::from(MIN_STRAYS).saturating_mul(u64::from(STRAY_SIZE));
        let total_size = align_up(
            state_offset.saturating_add(array).saturating_add(strays),
            PEN_ALIGN,
        )
        .unwrap_or(u64::MAX);
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
