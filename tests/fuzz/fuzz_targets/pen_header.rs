//! The spin pen's untrusted-memory side (`loader::pen`): after a kexec the
//! loader finds older pens through /memreserve/ entries and must validate
//! them before touching anything.
//!
//! Config byte (first): bits 0-1 = mode.
//! * 0: `PenHeader::parse` + `PenImage::parse` on the rest. Bit 2: make the
//!   header look plausible first (magic, version, header size, checksum,
//!   `at_phys` = the header's `phys_base`), so the fuzzer reaches the layout
//!   rules; bit 3: zero-pad the bytes to the header's `total_size`.
//!   Properties: an accepted header re-serialises to the same 128 bytes;
//!   every slot and state record, the entry and park addresses lie inside
//!   the pen region (entry/park inside the code); slot addresses map back to
//!   their index.
//! * 1: generator vs validator: `PenLayout::new` + `header` + `build`, then
//!   the result must parse with the same header and slots.
//! * 2/3: `plan_reclaim` over a DT with CPUs and /memreserve/ entries pointing
//!   into fuzz-controlled memory (with the pen at its start checksummed when
//!   bit 2 is set). Property: no panic; the plan's text is produced.
#![no_main]

use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;
use loader::dt::{Cpu, DtInfo, EnableMethod, Prop64, Region, Status};
use loader::pen::{
    self, PenCode, PenHeader, PenImage, PenLayout, ReclaimEnv, HEADER_SIZE, PEN_MAGIC, PEN_VERSION,
};

const CHECKSUM: usize = 124;
const PHYS_BASE: usize = 24;
const MEM_BASE: u64 = 0x4800_0000;

/// Make the first 128 bytes a header with valid magic/version/size/checksum.
fn plausible(m: &mut Vec<u8>) {
    if m.len() < HEADER_SIZE as usize {
        m.resize(HEADER_SIZE as usize, 0);
    }
    m[0..8].copy_from_slice(&PEN_MAGIC.to_le_bytes());
    m[8..12].copy_from_slice(&PEN_VERSION.to_le_bytes());
    m[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    m[80..CHECKSUM].fill(0);
    let c = crc32fast::hash(&m[..CHECKSUM]);
    m[CHECKSUM..CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
}

fn check_header(h: &PenHeader, raw: &[u8]) {
    assert!(
        h.to_bytes()[..] == raw[..HEADER_SIZE as usize],
        "header does not re-serialise"
    );
    let r = h.region();
    let end = r.base.checked_add(r.size).expect("accepted pen wraps");
    let code = h.phys_base + u64::from(h.code_offset);
    let code_end = code + u64::from(h.code_size);
    assert!(code_end <= end);
    for a in [h.entry_addr(), h.park_addr()] {
        assert!(
            a >= code && a < code_end,
            "entry/park {a:#x} outside the code"
        );
    }
    for i in 0..h.nr_slots as usize {
        let s = h.slot_release_addr(i).expect("slot in range");
        let st = h.state_addr(i).expect("state in range");
        assert!(s >= code_end && s + 64 <= end, "slot {i} outside the pen");
        assert!(st + 64 <= end, "state {i} outside the pen");
        assert!(st >= h.phys_base + u64::from(h.slot_offset) + 64 * u64::from(h.nr_slots));
        assert_eq!(h.slot_of_release_addr(s), Some(i));
    }
    assert!(h.slot_release_addr(h.nr_slots as usize).is_none());
}

fn image_checks(bytes: &[u8], at: u64) {
    if let Ok(img) = PenImage::parse(bytes, at) {
        let _ = img.code();
        let n = img.slots().count();
        assert!(n <= img.header().nr_slots as usize);
        let first = img.slot(0);
        if let Some(s) = first {
            // Slot MPIDRs are untrusted memory; only a valid affinity value
            // can be looked up (slot_of masks its argument).
            if s.mpidr & !pen::MPIDR_MASK == 0 {
                assert!(img.slot_of(s.mpidr).is_some());
            }
            let _ = img.status(s.mpidr);
            let _ = img.slot_addr(s.mpidr);
        }
        let p = img.dt_patch();
        for c in &p.cpus {
            let _ = p.release_addr(c.mpidr);
        }
    }
}

fn mode_parse(cfg: u8, rest: &[u8]) {
    let mut m = rest.to_vec();
    let mut at = MEM_BASE;
    if cfg & 4 != 0 {
        plausible(&mut m);
        at = u64::from_le_bytes(m[PHYS_BASE..PHYS_BASE + 8].try_into().unwrap());
    }
    let parsed = PenHeader::parse(&m, at);
    if fuzz_common::debug() {
        eprintln!("pen_header: {:?}", parsed.as_ref().map(|h| h.nr_slots));
    }
    match parsed {
        Ok(h) => {
            check_header(&h, &m);
            if cfg & 8 != 0 && (m.len() as u64) < h.total_size {
                m.resize(h.total_size as usize, 0);
            }
            image_checks(&m, at);
        }
        Err(e) => assert!(!format!("{e}").contains('\n'), "multi-line error {e}"),
    }
}

fn mode_layout(rest: &[u8]) {
    let mut b = Bytes::new(rest);
    let nr = usize::from(b.u16() % 1100);
    let code_size = usize::from(b.u16() % 0x4400);
    let el = b.u8() % 4;
    let phys = b.addr();
    let (entry, park) = (u32::from(b.u16()), u32::from(b.u16()));
    let generation = b.u64();
    let Ok(layout) = PenLayout::new(nr, code_size, el) else {
        return;
    };
    let layout = layout.with_generation(generation);
    let code_bytes: Vec<u8> = (0..code_size).map(|i| i as u8).collect();
    let code = PenCode {
        bytes: &code_bytes,
        entry,
        park,
    };
    let Ok(h) = layout.header(phys, &code) else {
        return;
    };
    let raw = h.to_bytes();
    assert_eq!(
        PenHeader::parse(&raw, phys),
        Ok(h),
        "generated header does not validate"
    );
    check_header(&h, &raw);
    let cpus: Vec<u64> = (0..nr as u64)
        .map(|i| (i & 0xff) | ((i >> 8) << 8))
        .collect();
    let mut region = vec![0u8; h.total_size as usize];
    let built = layout
        .build(&mut region, phys, &code, &cpus)
        .unwrap_or_else(|e| panic!("build of a valid layout fails: {e}"));
    assert_eq!(built, h);
    let img = PenImage::parse(&region, phys).expect("built pen parses");
    assert_eq!(img.slots().count(), nr);
    assert!(img.code() == &code_bytes[..]);
}

fn mode_reclaim(cfg: u8, rest: &[u8]) {
    let mut b = Bytes::new(rest);
    let ncpus = b.u8() % 9;
    let nres = b.u8() % 5;
    let current = u64::from(b.u8());
    let env_el = 1 + b.u8() % 2;
    let psci = b.u8() & 1 != 0;
    let mut dt = DtInfo::default();
    for i in 0..ncpus {
        let k = b.u8();
        dt.cpus.push(Cpu {
            path: format!("/cpus/cpu@{i}"),
            mpidr: u64::from(b.u8()),
            enable_method: match k % 3 {
                0 => Some(EnableMethod::SpinTable),
                1 => Some(EnableMethod::Psci),
                _ => None,
            },
            release_addr: if k & 4 != 0 {
                Prop64::Value(MEM_BASE + u64::from(b.u16()) * 8)
            } else {
                Prop64::Absent
            },
            park_addr: if k & 8 != 0 {
                Prop64::Value(b.addr())
            } else {
                Prop64::Absent
            },
            status: if k & 16 != 0 {
                Status::Disabled
            } else {
                Status::Okay
            },
        });
    }
    for _ in 0..nres {
        // Mostly page multiples inside the fake memory, sometimes anywhere.
        let r = if b.u8() & 7 == 0 {
            Region::new(b.addr(), b.addr())
        } else {
            Region::new(
                MEM_BASE + u64::from(b.u8() % 4) * 4096,
                u64::from(b.u8() % 8 + 1) * 4096,
            )
        };
        dt.memreserve.push(r);
    }
    let mut mem = b.rest().to_vec();
    if cfg & 4 != 0 {
        plausible(&mut mem);
        mem[PHYS_BASE..PHYS_BASE + 8].copy_from_slice(&MEM_BASE.to_le_bytes());
        let c = crc32fast::hash(&mem[..CHECKSUM]);
        mem[CHECKSUM..CHECKSUM + 4].copy_from_slice(&c.to_le_bytes());
    }
    let our_code = [0u8; 64];
    let env = ReclaimEnv {
        current_mpidr: current,
        current_el: env_el,
        psci,
        our_code: if cfg & 8 != 0 { Some(&our_code) } else { None },
    };
    let mut reads = 0usize;
    let plan = pen::plan_reclaim(&dt, &env, |addr, len| {
        reads += 1;
        assert!(reads < 10_000, "plan_reclaim reads without bound");
        let off = usize::try_from(addr.checked_sub(MEM_BASE)?).ok()?;
        let end = off.checked_add(len)?;
        if end <= 1 << 20 {
            // Memory beyond the input reads as zero, as RAM would.
            let mut v = vec![0u8; len];
            if off < mem.len() {
                let n = (mem.len() - off).min(len);
                v[..n].copy_from_slice(&mem[off..off + n]);
            }
            Some(v)
        } else {
            None
        }
    });
    let text = format!("{plan}");
    if fuzz_common::debug() {
        eprintln!("pen_header: plan {text}\n{plan:?}\n{dt:?}");
    }
    let _ = plan.new_pen_cpus();
    let _ = plan.droppable(&[current], &[current ^ 1]);
    for p in &plan.old_pens {
        let _ = p.kept_because();
    }
    for c in &dt.cpus {
        let _ = plan.cpu(c.mpidr);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    match cfg & 3 {
        0 => mode_parse(cfg, rest),
        1 => mode_layout(rest),
        _ => mode_reclaim(cfg, rest),
    }
});
