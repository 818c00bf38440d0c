//! Loader-side access to a live pen with caches on ([`Pen`], [`CacheOps`]): volatile words,
//! the release / re-arm / adopt sequences.

use alloc::vec::Vec;
use core::sync::atomic::{compiler_fence, Ordering};

use super::*;

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
        let mem = &*self.mem;
        SlotState::read_live(|k| {
            compiler_fence(Ordering::SeqCst);
            vload(mem, off.saturating_add(k.saturating_mul(8))).ok_or(PenError::Unaligned)
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

    /// The stray records (docs/protocol.md §2.5), each read after a clean+invalidate of its
    /// line: CPUs that reached this pen without a slot, and stay in it.
    pub fn strays(&mut self, ops: &mut impl CacheOps) -> Vec<StrayRecord> {
        let mut out = Vec::new();
        for i in 0..self.header.nr_strays() as usize {
            let Some(off) = self.header.stray_off(i) else {
                break;
            };
            let addr = self.header.phys_base.saturating_add(off as u64);
            ops.clean_invalidate(addr, u64::from(STRAY_SIZE));
            compiler_fence(Ordering::SeqCst);
            let mut words = [0u64; 4];
            for (k, w) in words.iter_mut().enumerate() {
                *w = vload(self.mem, off.saturating_add(k.saturating_mul(8))).unwrap_or(0);
            }
            let mut b = [0u8; 32];
            for (k, w) in words.iter().enumerate() {
                b[k * 8..k * 8 + 8].copy_from_slice(&w.to_le_bytes());
            }
            if let Some(r) = StrayRecord::from_bytes(&b) {
                out.push(r);
            }
        }
        out
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

    /// Stores 0 to `mpidr`'s release word whatever its status (one 64-bit store, cleaned):
    /// the part of a park (docs/protocol.md §5.2 step 2) that a CPU does for itself before it
    /// branches to `pen_park` — the resident PSCI part's CPU_OFF on the calling CPU.
    pub fn clear_release(&mut self, ops: &mut impl CacheOps, mpidr: u64) -> Result<(), PenError> {
        let i = self.index(mpidr)?;
        let off = self.header.slot_off(i).ok_or(PenError::NoSlot { mpidr })?;
        let addr = self.header.slot_release_addr(i).unwrap_or(0);
        vstore(self.mem, off.saturating_add(slot::RELEASE), 0).ok_or(PenError::Unaligned)?;
        compiler_fence(Ordering::SeqCst);
        ops.clean_invalidate(addr, 8);
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
