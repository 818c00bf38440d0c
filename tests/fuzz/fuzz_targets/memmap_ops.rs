//! A sequence of memory-map operations decoded from bytes, checked against a
//! simple reference model.
//!
//! Input: bank count and banks, then ops until the input ends:
//! claim / release / check / find_free / reserve / in_ram / claim_at /
//! default_load_addresses. Addresses are biased so that ranges collide.
//!
//! Properties, after every op: no two claims ever overlap; every claim lies
//! inside one (merged) RAM bank; claims are sorted; `claim` succeeds exactly
//! when the model says the range is free RAM, and `check` agrees with it;
//! `find_free` results are aligned, below the limit and free; free regions
//! are free and disjoint from claims; default load slots are free.
#![no_main]

use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;
use loader::dt::Region;
use loader::memmap::{ClaimId, MemMap, Owner, Prefer};

struct Model {
    /// Merged banks [start, end).
    banks: Vec<(u64, u64)>,
    claims: Vec<(ClaimId, u64, u64)>,
}

impl Model {
    fn new(banks: &[Region]) -> Model {
        let mut v: Vec<(u64, u64)> = banks
            .iter()
            .filter(|b| b.size > 0)
            .map(|b| (b.base, b.base.saturating_add(b.size)))
            .collect();
        v.sort();
        let mut m: Vec<(u64, u64)> = Vec::new();
        for (s, e) in v {
            match m.last_mut() {
                Some(l) if s <= l.1 => l.1 = l.1.max(e),
                _ => m.push((s, e)),
            }
        }
        Model {
            banks: m,
            claims: Vec::new(),
        }
    }

    fn in_one_bank(&self, s: u64, e: u64) -> bool {
        self.banks.iter().any(|&(bs, be)| s >= bs && e <= be)
    }

    /// Whether `[start, start + size)` may be claimed.
    fn free(&self, start: u64, size: u64) -> bool {
        let Some(end) = start.checked_add(size) else {
            return false;
        };
        size > 0
            && self.in_one_bank(start, end)
            && self
                .claims
                .iter()
                .all(|&(_, cs, ce)| end <= cs || start >= ce)
    }
}

fn check_invariants(map: &MemMap, model: &Model) {
    let claims: Vec<_> = map.claims().cloned().collect();
    assert_eq!(
        claims.len(),
        model.claims.len(),
        "claim count differs from the model"
    );
    for w in claims.windows(2) {
        assert!(
            w[0].start < w[1].start,
            "claims not sorted: {} {}",
            w[0],
            w[1]
        );
        assert!(
            w[0].end <= w[1].start,
            "claims overlap: {} and {}",
            w[0],
            w[1]
        );
    }
    for c in &claims {
        assert!(c.start < c.end, "empty claim {c}");
        assert!(
            model.in_one_bank(c.start, c.end),
            "claim {c} not inside one bank"
        );
        assert!(
            model
                .claims
                .iter()
                .any(|&(id, s, e)| id == c.id && s == c.start && e == c.end),
            "claim {c} unknown to the model"
        );
    }
    let banks: Vec<(u64, u64)> = map.banks().iter().map(|b| (b.base, b.end())).collect();
    assert_eq!(banks, model.banks, "bank normalisation differs");
    let free = map.free_regions();
    for w in free.windows(2) {
        assert!(w[0].end() <= w[1].base, "free regions overlap");
    }
    for r in &free {
        assert!(r.size > 0);
        assert!(model.free(r.base, r.size), "free region {r} is not free");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let nbanks = (b.u8() % 5) as usize;
    let mut banks = Vec::new();
    for _ in 0..nbanks {
        banks.push(Region::new(b.addr(), b.addr()));
    }
    let mut map = MemMap::new(&banks);
    let mut model = Model::new(&banks);
    check_invariants(&map, &model);

    let mut ops = 0;
    while !b.is_empty() && ops < 256 {
        ops += 1;
        match b.u8() % 9 {
            0 | 1 => {
                let (s, n) = (b.addr(), b.addr());
                let expect = model.free(s, n);
                let checked = map.check(s, n, &Owner::Kernel).is_ok();
                assert_eq!(
                    checked, expect,
                    "check({s:#x}, {n:#x}) = {checked}, model {expect}"
                );
                match map.claim(s, n, Owner::Other(format!("op{ops}"))) {
                    Ok(id) => {
                        assert!(expect, "claim({s:#x}, {n:#x}) accepted, model says taken");
                        model.claims.push((id, s, s + n));
                    }
                    Err(e) => {
                        assert!(!expect, "claim({s:#x}, {n:#x}) refused: {e}");
                        assert!(!format!("{e}").contains('\n'));
                    }
                }
            }
            2 => {
                // Release the i-th live claim, or an id that is not live.
                let i = b.u8() as usize;
                if let Some(&(id, s, e)) = model.claims.get(i % model.claims.len().max(1)) {
                    let c = map.release(id).expect("live claim");
                    assert_eq!((c.start, c.end), (s, e));
                    model.claims.retain(|&(x, _, _)| x != id);
                    assert!(map.release(id).is_err(), "double release accepted");
                }
            }
            3 => {
                let (size, align) = (b.addr(), 1u64 << (b.u8() % 40));
                let below = if b.u8() & 1 == 0 {
                    None
                } else {
                    Some(b.addr())
                };
                let prefer = if b.u8() & 1 == 0 {
                    Prefer::Low
                } else {
                    Prefer::High
                };
                if let Some(s) = map.find_free(size, align, below, prefer) {
                    assert_eq!(s % align, 0, "find_free misaligned");
                    assert!(
                        model.free(s, size),
                        "find_free gave {s:#x}+{size:#x}, not free"
                    );
                    if let Some(lim) = below {
                        assert!(s + size <= lim, "find_free above the limit");
                    }
                    assert!(map.check(s, size, &Owner::Kernel).is_ok());
                }
            }
            4 => {
                let (s, n) = (b.addr(), b.addr());
                let out = map.reserve(s, n, &Owner::MemReserve(ops));
                for id in out.claimed {
                    let c = map.claim_by_id(id).expect("reserve claimed it").clone();
                    model.claims.push((id, c.start, c.end));
                }
            }
            5 => {
                let (s, n) = (b.addr(), b.addr());
                let expect = n > 0 && s.checked_add(n).is_some_and(|e| model.in_one_bank(s, e));
                assert_eq!(map.in_ram(s, n), expect);
            }
            6 => {
                let a = b.addr();
                let hit = model.claims.iter().find(|&&(_, s, e)| s <= a && a < e);
                assert_eq!(map.claim_at(a).map(|c| c.id), hit.map(|h| h.0));
            }
            7 => {
                if let Some(l) = map.default_load_addresses() {
                    let end = l.ramdisk_addr_r.saturating_add(l.ramdisk_size);
                    assert!(l.kernel_addr_r % (2 << 20) == 0);
                    assert!(
                        model.free(l.kernel_addr_r, end - l.kernel_addr_r),
                        "default load area {l:?} is not free RAM"
                    );
                    assert!(l.kernel_addr_r + l.kernel_size <= l.fdt_addr_r);
                    assert!(l.fdt_addr_r < l.scriptaddr && l.scriptaddr < l.pxefile_addr_r);
                    assert!(l.pxefile_addr_r < l.kernel_comp_addr_r);
                    assert!(l.kernel_comp_addr_r + l.kernel_comp_size <= l.ramdisk_addr_r);
                }
                let _ = format!("{map}");
            }
            _ => {
                let (s, n) = (b.addr(), b.addr());
                let _ = map.check(s, n, &Owner::Initrd);
            }
        }
        check_invariants(&map, &model);
    }
});
