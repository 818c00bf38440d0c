//! booti's planning step (`loader::plan::booti`): `Kernel::inspect` on any
//! Image header or gzip member, then `prepare` + `plan` with any DT, memory
//! map, initrd, env values and pen.
//!
//! Input:
//! ```text
//! [0]      flags: bit 0 Image.gz (else a raw Image), bit 1 an initrd,
//!          bit 2 a pen, bit 3 PSCI usable, bits 4-5 cpu_method (unset,
//!          spin-table, psci, an unknown value), bit 6 no fdt_addr_r,
//!          bit 7 no kernel_addr_r
//! [1..3]   u16 LE N, then N bytes of DTB
//! kernel   raw: 64 header bytes; gzip: u16 LE M, then the M-byte member
//! then (fuzz_common::Bytes): kernel address; loaded length selector
//!          (raw: none / addr; gzip: none / M / addr); initrd (addr, size);
//!          fdt_addr_r; kernel_addr_r; banks (u8 % 4, then addr, size each;
//!          none: 1 GiB at 0x40000000); claims (u8 % 8, addr, size each);
//!          pen region (addr, size), slot mask, unusable mask, dropped pens
//!          (u8 % 3, addr, size each); boot CPU id (u32)
//! ```
//! Properties: no panic; every refusal is one line starting `booti:` and
//! leaves the map as it was; an accepted plan's claims, made in order on a
//! copy of the map, all succeed (so no placement overlaps a claim or another
//! placement), every write lands inside the plan's kernel or fdt claim and
//! reads only a range the plan holds for it, without overlapping it; the
//! kernel claim covers `[entry, entry + image_size)`, the fdt claim the DT,
//! which parses again; the CPU handoff matches the method and the pen.
#![no_main]

use fuzz_common::Bytes;
use libfuzzer_sys::fuzz_target;
use loader::dt::Region;
use loader::memmap::{Claim, MemMap, Owner};
use loader::plan::booti::{
    self, BootPlan, CpuFacts, CpuHandoff, Kernel, PenFacts, Refusal, Request,
};

fn one_line(r: &Refusal) {
    let s = r.to_string();
    assert!(s.starts_with("booti: ") && !s.contains('\n'), "{s:?}");
}

fn claims(m: &MemMap) -> Vec<Claim> {
    m.claims().cloned().collect()
}

fn check(p: &BootPlan, m: &MemMap, pen: Option<&PenFacts>, psci_usable: bool) {
    let mut copy = m.clone();
    for c in &p.claims {
        copy.claim(c.start, c.size, c.owner.clone())
            .unwrap_or_else(|e| panic!("planned claim {c:?} refused: {e}"));
    }
    let inside = |r: Region, owners: &[Owner]| {
        p.claims.iter().any(|c| {
            owners.contains(&c.owner)
                && c.start <= r.base
                && r.base.checked_add(r.size).is_some_and(|e| e <= c.start + c.size)
        })
    };
    for w in &p.writes {
        let d = w.dst();
        assert!(inside(d, &[Owner::Kernel, Owner::Fdt]), "{w:?} outside the plan's claims");
        if let Some(s) = w.src() {
            assert!(
                p.claims.iter().any(|c| !c.keep && c.start == s.base && c.size == s.size),
                "{w:?} reads a range the plan does not hold"
            );
            assert!(d.end() <= s.base || s.end() <= d.base, "{w:?} overlaps its source");
        }
    }
    assert!(inside(Region::new(p.entry, p.image_size), &[Owner::Kernel]));
    assert!(inside(Region::new(p.fdt, p.dt.len() as u64), &[Owner::Fdt]));
    assert!(p.file_len <= p.image_size);
    assert_eq!(p.clean_ranges()[0], (p.entry, p.image_size));
    match p.cpus {
        CpuHandoff::Untouched => assert!(pen.is_none()),
        CpuHandoff::SpinTable { pen: r } => assert_eq!(Some(r), pen.map(|f| f.region)),
        CpuHandoff::Psci => assert!(pen.is_some() && psci_usable),
    }
    // a pen that may still hold a CPU stays reserved, whatever the method (#17 item 1)
    if let Some(f) = pen.filter(|f| f.occupied && p.cpus != CpuHandoff::Untouched) {
        if let Ok(info) = loader::dt::parse(&p.dt) {
            assert!(info.memreserve.contains(&f.region), "an occupied pen lost its /memreserve/");
        }
    }
    if let Err(e) = loader::dt::parse(&p.dt) {
        panic!("the planned DT does not parse: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let n = b.u16() as usize;
    let dtb = b.take(n);
    let gz = flags & 1 != 0;
    let file = if gz {
        let m = b.u16() as usize;
        b.take(m)
    } else {
        b.take(64)
    };
    let kaddr = b.addr();
    let loaded = match (gz, b.u8() % 3) {
        (_, 0) => None,
        (true, 1) => Some(file.len() as u64),
        _ => Some(b.addr()),
    };
    let head = &file[..file.len().min(64)];
    let member = |len: u64| {
        file.get(..len as usize)
            .ok_or_else(|| format!("{kaddr:#x} + {len:#x} is not RAM"))
    };
    let kernel = match Kernel::inspect(kaddr, head, loaded, member) {
        Ok(k) => k,
        Err(e) => return one_line(&e),
    };

    let initrd = (b.addr(), b.addr());
    let fdt_addr_r = format!("{:x}", b.addr());
    let kernel_addr_r = format!("{:x}", b.addr());
    let nbanks = (b.u8() % 4) as usize;
    let mut banks: Vec<Region> = (0..nbanks).map(|_| Region::new(b.addr(), b.addr())).collect();
    if banks.is_empty() {
        banks.push(Region::new(0x4000_0000, 1 << 30));
    }
    let mut map = MemMap::new(&banks);
    for i in 0..b.u8() % 8 {
        let _ = map.claim(b.addr(), b.addr(), Owner::Other(format!("c{i}")));
    }
    let region = Region::new(b.addr(), b.addr());
    let park = b.addr();
    let slots = b.u8();
    let unusable = b.u8();
    let dropped: Vec<Region> = (0..b.u8() % 3).map(|_| Region::new(b.addr(), b.addr())).collect();
    let boot_cpuid = b.u32();

    let paths: Vec<String> = loader::dt::parse(dtb)
        .map(|i| i.cpus.iter().map(|c| c.path.clone()).collect())
        .unwrap_or_default();
    let pen = (flags & 4 != 0).then(|| PenFacts {
        region,
        park,
        release: paths
            .iter()
            .enumerate()
            .filter(|(i, _)| *i >= 8 || slots & (1 << i) != 0)
            .map(|(i, p)| (p.clone(), region.base.wrapping_add(0x100 + 8 * i as u64)))
            .collect(),
        unusable: paths
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 8 && unusable & (1 << i) != 0)
            .map(|(_, p)| p.clone())
            .collect(),
        dropped,
        occupied: flags & 16 != 0,
    });
    let cpus = CpuFacts {
        pen,
        psci_usable: flags & 8 != 0,
        boot_cpuid,
    };
    let req = Request {
        kernel,
        initrd: (flags & 2 != 0).then_some(initrd),
        dtb,
        bootargs: Some("console=ttyAMA0"),
        cpu_method: [None, Some("spin-table"), Some("psci"), Some("smp")][usize::from(flags >> 4 & 3)],
        fdt_addr_r: (flags & 0x40 == 0).then_some(fdt_addr_r.as_str()),
        kernel_addr_r: (flags & 0x80 == 0).then_some(kernel_addr_r.as_str()),
        dt_extras: Default::default(),
    };
    let before = claims(&map);
    match booti::plan(&req, &cpus, &map) {
        Ok(p) => check(&p, &map, cpus.pen.as_ref(), cpus.psci_usable),
        Err(e) => one_line(&e),
    }
    assert_eq!(claims(&map), before, "planning changed the map");
});
