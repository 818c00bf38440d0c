//! The live side of the spin pen (`loader::pen::Pen`): what the loader does to
//! a pen it has validated — its own, or a predecessor's after a kexec — while
//! CPUs and a previous OS may have written anything into the shared words.
//!
//! Input: `nr` (1..=8 slots), an EL, the slots' MPIDRs; a valid pen is built
//! with `PenLayout::build`; then up to 32 "scribbles" (offset, 8 bytes) model
//! what pen CPUs and an OS wrote (state records, release words, and anywhere
//! else, header included); then up to 32 operations (`status`, `state`,
//! `release_word`, `release`, `release_to_el1`, `rearm`, `adopt`) on MPIDRs
//! that may or may not own a slot.
//!
//! Properties (docs/protocol.md): `Pen::open` writes nothing when it refuses
//! the pen; a read-only operation changes no byte; a failing operation changes
//! no byte; `release` succeeds only for a held CPU (WAITING/PARKED) whose
//! release word was 0, and then changes only that slot's release, context and
//! mode words; `rearm` succeeds only for an UNARMED CPU and changes only its
//! release word (to 0); `adopt` changes only the header, which then validates
//! with the generation one higher. No panic, no hang, errors one line.
#![no_main]

use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;
use loader::pen::{
    slot, NoCacheOps, Pen, PenCode, PenHeader, PenImage, PenLayout, SlotStatus, HEADER_SIZE,
    MPIDR_MASK,
};

const PHYS: u64 = 0x7ff0_0000;

fn bytes_of(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: u64 storage viewed as bytes (8-byte aligned, like a pen in RAM).
    unsafe { core::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 8) }
}

/// Byte ranges `[a, b)` that differ between `before` and `after`.
fn changed(before: &[u8], after: &[u8]) -> Vec<usize> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect()
}

fn one_line(e: impl core::fmt::Display) {
    let s = format!("{e}");
    assert!(!s.contains('\n'), "multi-line error {s:?}");
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let nr = usize::from(b.u8() % 8) + 1;
    let el = if b.u8() & 1 == 0 { 2 } else { 1 };
    let mut mpidrs: Vec<u64> = Vec::new();
    for i in 0..nr {
        let mut m = u64::from(b.u16()) & MPIDR_MASK;
        // Distinct MPIDRs (the DT guarantees that much): a repeat becomes a fresh value.
        let mut k = 0u64;
        while mpidrs.contains(&m) {
            m = (0x1_0000 + (i as u64) * 16 + k) & MPIDR_MASK;
            k += 1;
        }
        mpidrs.push(m);
    }
    let code_bytes = [0u8; 64];
    let code = PenCode {
        bytes: &code_bytes,
        entry: 0,
        park: 8,
    };
    let Ok(layout) = PenLayout::new(nr, code_bytes.len(), el) else {
        return;
    };
    let size = layout.total_size as usize;
    let mut store = vec![0u64; size.div_ceil(8)];
    let mem = bytes_of(&mut store);
    let Ok(header): Result<PenHeader, _> = layout.build(mem, PHYS, &code, &mpidrs) else {
        return;
    };
    // Scribbles: what CPUs and an OS wrote.
    for _ in 0..usize::from(b.u8() % 33) {
        let off = (usize::from(b.u16()) % size) & !7;
        let v = b.u64();
        if off + 8 <= mem.len() {
            mem[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    let mut ops = NoCacheOps;
    let before_open = mem.to_vec();
    let pen = match Pen::open(mem, PHYS, &mut ops) {
        Ok(p) => p,
        Err(e) => {
            one_line(e);
            assert!(
                changed(&before_open, bytes_of(&mut store)).is_empty(),
                "open wrote to a pen it refused"
            );
            return;
        }
    };
    drop(pen);
    for _ in 0..usize::from(b.u8() % 33) {
        let op = b.u8() % 7;
        let pick = b.u8();
        let mpidr = match pick % 4 {
            0 => u64::from(b.u16()),
            _ => mpidrs[usize::from(pick) % mpidrs.len()],
        };
        let entry = match b.u8() % 4 {
            0 => b.u64(),
            _ => 0x4080_0000 + (u64::from(b.u16()) << 2),
        };
        let before = bytes_of(&mut store).to_vec();
        let img = PenImage::parse(&before, PHYS).ok();
        let mem = bytes_of(&mut store);
        let mut pen = Pen::open(mem, PHYS, &mut ops).expect("a pen that opened once opens again");
        let h = *pen.header();
        let slot_off = pen
            .slot_addr(mpidr)
            .map(|a| usize::try_from(a - PHYS).unwrap());
        let result: Result<(), String> = match op {
            0 => pen
                .status(&mut ops, mpidr)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            1 => pen
                .state(&mut ops, mpidr)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            2 => pen
                .release_word(&mut ops, mpidr)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            3 => pen
                .release(&mut ops, mpidr, entry)
                .map_err(|e| e.to_string()),
            4 => pen
                .release_to_el1(&mut ops, mpidr, entry, b.u64())
                .map_err(|e| e.to_string()),
            5 => pen.rearm(&mut ops, mpidr).map_err(|e| e.to_string()),
            _ => pen.adopt(&mut ops).map(|_| ()).map_err(|e| e.to_string()),
        };
        drop(pen);
        let after = bytes_of(&mut store).to_vec();
        let diff = changed(&before, &after);
        match (&result, op) {
            (Err(e), _) => {
                one_line(e);
                assert!(diff.is_empty(), "op {op} failed ({e}) but wrote {diff:?}");
            }
            (Ok(()), 0..=2) => assert!(diff.is_empty(), "read-only op {op} wrote {diff:?}"),
            (Ok(()), 3 | 4) => {
                let s = slot_off.expect("released a CPU without a slot");
                let allowed = |i: usize| {
                    [slot::RELEASE, slot::CONTEXT, slot::MODE]
                        .iter()
                        .any(|&f| (s + f..s + f + 8).contains(&i))
                };
                assert!(
                    diff.iter().all(|&i| allowed(i)),
                    "release wrote outside the slot: {diff:?}"
                );
                let img = img.expect("the pen parsed before the release");
                let st = img.status(mpidr).expect("status of a released CPU");
                assert!(st.is_held(), "released a CPU whose status was {st}");
                let word = u64::from_le_bytes(before[s..s + 8].try_into().unwrap());
                assert_eq!(word, 0, "released a CPU whose release word was {word:#x}");
                let now = u64::from_le_bytes(after[s..s + 8].try_into().unwrap());
                assert_eq!(now, entry);
            }
            (Ok(()), 5) => {
                let s = slot_off.expect("re-armed a CPU without a slot");
                assert!(
                    diff.iter().all(|&i| (s..s + 8).contains(&i)),
                    "rearm wrote {diff:?}"
                );
                let img = img.expect("the pen parsed before the rearm");
                assert_eq!(img.status(mpidr), Some(SlotStatus::Unarmed));
                assert_eq!(u64::from_le_bytes(after[s..s + 8].try_into().unwrap()), 0);
            }
            (Ok(()), _) => {
                assert!(
                    diff.iter().all(|&i| i < HEADER_SIZE as usize),
                    "adopt wrote {diff:?}"
                );
                let h2 = PenHeader::parse(&after, PHYS).expect("adopted header validates");
                assert_eq!(h2.generation, h.generation.wrapping_add(1));
            }
        }
    }
    let _ = header;
});
