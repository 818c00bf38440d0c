//! Host tests of the pen, by concern; shared fixtures and a software model of the pen CPU
//! below.

mod asm;
mod format;
mod image;
mod live;
mod reclaim;
mod robustness;

use super::*;
use crate::dt::{Cpu, DtInfo, EnableMethod, Prop64, Region, Status};
use crate::wake;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

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

/// A CPU without a slot records itself in stray record `k` (what arch/pen.S does).
fn sim_stray(v: &mut [u8], h: &PenHeader, k: usize, mpidr: u64, el: u64, how: u64) {
    let o = h.stray_off(k).unwrap();
    wr_u64(v, o + stray::TAG, mpidr | stray::TAG_BIT).unwrap();
    let n = rd_u64(v, o + stray::ARRIVALS).unwrap();
    wr_u64(v, o + stray::ARRIVALS, n + 1).unwrap();
    wr_u64(v, o + stray::EL, el).unwrap();
    wr_u64(v, o + stray::HOW, how).unwrap();
}

/// Slot `i`'s CPU takes an exception to the pen's vectors (what arch/pen.S's handler does).
fn sim_fault(v: &mut [u8], h: &PenHeader, i: usize, elr: u64, el: u64, vector: u64, esr: u32) {
    let st = h.state_off(i).unwrap();
    let mpidr = rd_u64(v, h.slot_off(i).unwrap() + slot::MPIDR).unwrap();
    wr_u64(v, st + state::MPIDR_SEEN, mpidr).unwrap();
    wr_u64(v, st + state::LAST_ENTRY, elr).unwrap();
    wr_u64(v, st + state::EL, el | vector << 8 | u64::from(esr) << 32).unwrap();
    wr_u64(v, st + state::STATUS, SlotStatus::Faulted.raw()).unwrap();
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
