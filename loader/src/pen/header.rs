//! The validated pen header ([`PenHeader`]): parsing, the validation rules, serialising,
//! and the addresses of slots and state records.

use crate::dt::Region;

use super::*;

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
    pub(super) fn validate(&self) -> Result<(), PenError> {
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
        if !(1..=3).contains(&self.entry_el) {
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
    pub(super) fn slot_off(&self, i: usize) -> Option<usize> {
        if i >= self.nr_slots as usize {
            return None;
        }
        (self.slot_offset as usize).checked_add(i.checked_mul(SLOT_SIZE as usize)?)
    }

    /// Byte offset of state record `i` from the pen base.
    pub(super) fn state_off(&self, i: usize) -> Option<usize> {
        if i >= self.nr_slots as usize {
            return None;
        }
        (self.state_offset as usize).checked_add(i.checked_mul(STATE_SIZE as usize)?)
    }

    /// Byte offset of the stray records (right after the state array).
    #[must_use]
    pub fn stray_offset(&self) -> u64 {
        u64::from(self.state_offset)
            .saturating_add(u64::from(self.nr_slots).saturating_mul(u64::from(STATE_SIZE)))
    }

    /// How many stray records the pen has room for (0 in pens without spare room after the
    /// state array), at most [`MAX_STRAYS`] — the number pen CPUs use.
    #[must_use]
    pub fn nr_strays(&self) -> u32 {
        let room = self.total_size.saturating_sub(self.stray_offset()) / u64::from(STRAY_SIZE);
        u32::try_from(room.min(u64::from(MAX_STRAYS))).unwrap_or(MAX_STRAYS)
    }

    /// Byte offset of stray record `i`.
    pub(super) fn stray_off(&self, i: usize) -> Option<usize> {
        if i >= self.nr_strays() as usize {
            return None;
        }
        usize_of(self.stray_offset())?.checked_add(i.checked_mul(STRAY_SIZE as usize)?)
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
