use super::*;
use crate::dt;
use alloc::vec;

const VIRT: &[u8] = include_bytes!("../../../tests/fixtures/qemu-virt-el2-gicv3-smp4.dtb");

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 0x4000_0000;
const KADDR: u64 = 0x4100_0000;
const PEN: Region = Region::new(0x7fff_0000, 0x1000);
const FDT_ADDR: &str = "0x44000000";
const KERNEL_ADDR_R: &str = "0x42000000";

/// Flags: 4 KiB pages, placement anywhere.
const ANYWHERE: u64 = 2 | 8;
/// Flags: 4 KiB pages, near the DRAM base.
const NEAR_BASE: u64 = 2;

fn header(text_offset: u64, image_size: u64, flags: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[8..16].copy_from_slice(&text_offset.to_le_bytes());
    h[16..24].copy_from_slice(&image_size.to_le_bytes());
    h[24..32].copy_from_slice(&flags.to_le_bytes());
    h[56..60].copy_from_slice(&crate::image::IMAGE_MAGIC.to_le_bytes());
    h
}

fn gzip(plain: &[u8]) -> Vec<u8> {
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(plain, 6));
    gz.extend_from_slice(&crc32fast::hash(plain).to_le_bytes());
    gz.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    gz
}

/// The map as the loader leaves it: its own image low in RAM, the incoming DT, the pen high.
fn map() -> MemMap {
    let mut m = MemMap::new(&[Region::new(RAM, RAM_SIZE)]);
    m.claim(RAM, 0x10_0000, Owner::IncomingDt).unwrap();
    m.claim(0x4020_0000, 0x60_0000, Owner::LoaderImage).unwrap();
    m.claim(PEN.base, PEN.size, Owner::Pen).unwrap();
    m
}

fn claims(m: &MemMap) -> Vec<crate::memmap::Claim> {
    m.claims().cloned().collect()
}

fn raw(addr: u64, text_offset: u64, image_size: u64, flags: u64, loaded: Option<u64>) -> Kernel {
    Kernel::inspect(
        addr,
        &header(text_offset, image_size, flags),
        loaded,
        |_| Err("not asked".into()),
    )
    .unwrap()
}

fn gz_kernel(addr: u64, image_size: u64, flags: u64, body: usize) -> (Kernel, Vec<u8>) {
    let mut plain = header(0, image_size, flags).to_vec();
    plain.resize(body, 0x5a);
    let member = gzip(&plain);
    let head = &member[..member.len().min(64)];
    let k = Kernel::inspect(addr, head, Some(member.len() as u64), |n| {
        Ok(&member[..n as usize])
    })
    .unwrap();
    (k, member)
}

fn request(kernel: Kernel) -> Request<'static> {
    Request {
        kernel,
        initrd: None,
        dtb: VIRT,
        bootargs: Some("console=ttyAMA0"),
        cpu_method: None,
        fdt_addr_r: Some(FDT_ADDR),
        kernel_addr_r: Some(KERNEL_ADDR_R),
        dt_extras: DtExtras::default(),
    }
}

fn pen_facts() -> PenFacts {
    PenFacts {
        region: PEN,
        park: PEN.base + 0x100,
        release: (0..4)
            .map(|i| (alloc::format!("/cpus/cpu@{i}"), PEN.base + 0x800 + 8 * i))
            .collect(),
        unusable: Vec::new(),
        dropped: Vec::new(),
        occupied: false,
    }
}

fn no_pen() -> CpuFacts {
    CpuFacts {
        pen: None,
        psci_usable: true,
        boot_cpuid: 0,
    }
}

fn with_pen() -> CpuFacts {
    CpuFacts {
        pen: Some(pen_facts()),
        ..no_pen()
    }
}

/// The claims of `p` applied in order to a copy of `m` all succeed (so they overlap neither an
/// existing claim nor one another), and every write lands inside a claim of the plan; the
/// kernel claim covers the entry's footprint, the DT claim holds the DT.
fn check_plan(p: &BootPlan, m: &MemMap) {
    let mut copy = m.clone();
    for c in &p.claims {
        copy.claim(c.start, c.size, c.owner.clone())
            .unwrap_or_else(|e| panic!("planned claim {c:?} refused: {e}"));
    }
    let inside = |r: Region, owners: &[Owner]| {
        p.claims
            .iter()
            .any(|c| owners.contains(&c.owner) && c.start <= r.base && r.end() <= c.start + c.size)
    };
    for w in &p.writes {
        assert!(
            inside(w.dst(), &[Owner::Kernel, Owner::Fdt]),
            "{w:?} writes outside the kernel and fdt claims"
        );
        if let Some(src) = w.src() {
            assert!(
                p.claims
                    .iter()
                    .any(|c| !c.keep && c.start == src.base && c.size == src.size),
                "{w:?} reads a range the plan does not hold"
            );
            let d = w.dst();
            assert!(
                d.end() <= src.base || src.end() <= d.base,
                "{w:?}: source and destination overlap"
            );
        }
    }
    assert!(inside(Region::new(p.entry, p.image_size), &[Owner::Kernel]));
    assert!(inside(Region::new(p.fdt, p.dt.len() as u64), &[Owner::Fdt]));
    dt::parse(&p.dt).expect("the planned DT parses");
}

fn refuse(req: &Request<'_>, cpus: &CpuFacts, m: &MemMap) -> Refusal {
    let before = claims(m);
    let Err(r) = plan(req, cpus, m) else {
        panic!("plan accepted")
    };
    assert_eq!(claims(m), before, "a refusal changed the map");
    let line = r.to_string();
    assert!(
        line.starts_with("booti: ") && !line.contains('\n'),
        "{line}"
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Arguments

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn parses_booti_arguments() {
    assert_eq!(
        BootiArgs::parse(&args("booti 40000000 50000000:1000 48000000")),
        Ok(BootiArgs {
            kernel: 0x4000_0000,
            initrd: Some(InitrdArg {
                addr: 0x5000_0000,
                size: Some(0x1000)
            }),
            fdt: Some(0x4800_0000)
        })
    );
    assert_eq!(
        BootiArgs::parse(&args("booti 40000000 -")),
        Ok(BootiArgs {
            kernel: 0x4000_0000,
            initrd: None,
            fdt: None
        })
    );
    assert_eq!(BootiArgs::parse(&args("booti")), Err(ArgError::Usage));
    assert_eq!(
        BootiArgs::parse(&args("booti 1 2 3 4")),
        Err(ArgError::Usage)
    );
    // Without a size: a legacy ramdisk (uInitrd) whose header says it.
    assert_eq!(
        BootiArgs::parse(&args("booti 1 5000")).map(|a| a.initrd),
        Ok(Some(InitrdArg {
            addr: 0x5000,
            size: None
        }))
    );
    for (line, want) in [
        ("booti zz", "bad kernel address 'zz'"),
        ("booti 1 q:10", "bad initrd address 'q'"),
        ("booti 1 10:q", "bad initrd size 'q'"),
        ("booti 1 10:0", "booti: initrd size is 0"),
        ("booti 1 - x", "bad fdt address 'x'"),
    ] {
        assert_eq!(
            BootiArgs::parse(&args(line)),
            Err(ArgError::Bad(want.into())),
            "{line}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Placements

#[test]
fn raw_image_at_a_2mib_boundary_runs_in_place() {
    let m = map();
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, Some(0x180_0000));
    let p = plan(&request(k), &no_pen(), &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.how, KernelHow::InPlace);
    assert_eq!(p.entry, KADDR);
    assert_eq!(p.file_len, 0x180_0000);
    assert_eq!(p.fdt, 0x4400_0000);
    assert_eq!(
        p.writes,
        vec![Write::Dt {
            dst: 0x4400_0000,
            len: p.dt.len() as u64
        }]
    );
    assert!(p.claims.iter().all(|c| c.keep));
    assert_eq!(p.cpus, CpuHandoff::Untouched);
    assert_eq!(
        p.banner(),
        alloc::format!(
            "## Booting arm64 Image at 0x41000000 (25165824 bytes, in place, image_size 0x2000000)\n\
             ## Device tree at 0x44000000 ({} bytes)\n\nStarting kernel ...\n\n",
            p.dt.len()
        )
    );
    assert_eq!(
        p.clean_ranges(),
        vec![(KADDR, 0x200_0000), (0x4400_0000, p.dt.len() as u64)]
    );
}

#[test]
fn near_base_image_moves_to_the_lowest_free_slot() {
    let m = map();
    let k = raw(
        KADDR + 0x1000,
        0x8_0000,
        0x100_0000,
        NEAR_BASE,
        Some(0x80_0000),
    );
    let p = plan(&request(k), &no_pen(), &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.how, KernelHow::Moved);
    // The 16.5 MiB footprint fits neither below the loader image (1 MiB free) nor between it
    // and the file (claimed while it moves): the first slot after the file is 0x41a00000.
    assert_eq!(p.entry, 0x41a0_0000 + 0x8_0000);
    assert_eq!(
        p.writes[0],
        Write::Move {
            src: KADDR + 0x1000,
            dst: p.entry,
            len: 0x80_0000
        }
    );
    assert_eq!(p.claims[0].owner, Owner::Load("kernel file".into()));
    assert!(!p.claims[0].keep);
}

#[test]
fn a_misaligned_anywhere_image_is_moved_not_run_in_place() {
    let m = map();
    let k = raw(KADDR + 0x1000, 0, 0x100_0000, ANYWHERE, Some(0x80_0000));
    let p = plan(&request(k), &no_pen(), &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.how, KernelHow::Moved);
}

#[test]
fn image_gz_inflates_at_kernel_addr_r_when_free() {
    let m = map();
    let (k, _) = gz_kernel(0x4800_0000, 0x100_0000, ANYWHERE, 0x1_0000);
    let p = plan(&request(k), &no_pen(), &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.how, KernelHow::Inflated);
    assert_eq!(p.entry, 0x4200_0000);
    assert_eq!(p.file_len, 0x1_0000);
    assert!(matches!(
        p.writes[0],
        Write::Inflate {
            src: 0x4800_0000,
            dst: 0x4200_0000,
            ..
        }
    ));
    assert!(p.banner().contains(", inflated from Image.gz"));
    // Near-base kernels, or kernel_addr_r taken: the lowest free slot.
    let (k, _) = gz_kernel(0x4800_0000, 0x100_0000, NEAR_BASE, 0x1_0000);
    let p = plan(&request(k), &no_pen(), &m).unwrap();
    assert_eq!(p.entry, 0x4080_0000);
    let mut taken = map();
    taken
        .claim(0x4200_0000, 0x1000, Owner::Other("x".into()))
        .unwrap();
    let (k, _) = gz_kernel(0x4800_0000, 0x100_0000, ANYWHERE, 0x1_0000);
    let p = plan(&request(k), &no_pen(), &taken).unwrap();
    check_plan(&p, &taken);
    assert_eq!(p.entry, 0x4080_0000);
}

#[test]
fn initrd_is_claimed_described_and_cleaned() {
    let m = map();
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, None);
    let mut req = request(k);
    req.initrd = Some((0x4a00_0000, 0x12_3456));
    let p = plan(&req, &no_pen(), &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.initrd, Some(Region::new(0x4a00_0000, 0x12_3456)));
    assert!(p.banner().contains("## initrd at 0x4a000000..0x4a123456\n"));
    assert!(p.clean_ranges().contains(&(0x4a00_0000, 0x12_3456)));
    let info = dt::parse(&p.dt).unwrap();
    assert_eq!(
        info.chosen.initrd,
        Some(Region::new(0x4a00_0000, 0x12_3456))
    );
    assert_eq!(info.chosen.bootargs.as_deref(), Some("console=ttyAMA0"));
}

#[test]
fn spin_table_describes_the_pen_and_fails_unusable_cpus() {
    let m = map();
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, None);
    let mut cpus = with_pen();
    if let Some(p) = cpus.pen.as_mut() {
        p.unusable.push("/cpus/cpu@3".into());
    }
    let p = plan(&request(k), &cpus, &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.cpus, CpuHandoff::SpinTable { pen: PEN });
    assert!(p.clean_ranges().contains(&(PEN.base, PEN.size)));
    let info = dt::parse(&p.dt).unwrap();
    // #17 item 6: the node stays, failed, still pointing at its slot
    assert_eq!(info.cpus.len(), 4);
    assert!(info.memreserve.contains(&PEN));
    for c in &info.cpus {
        assert_eq!(c.enable_method, Some(dt::EnableMethod::SpinTable));
    }
    let ok: Vec<&str> = info
        .cpus
        .iter()
        .filter(|c| c.status == dt::Status::Okay)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(ok, ["/cpus/cpu@0", "/cpus/cpu@1", "/cpus/cpu@2"]);
    assert_eq!(info.cpus[3].status, dt::Status::Fail);
    assert_eq!(
        info.cpus[3].release_addr,
        dt::Prop64::Value(PEN.base + 0x818)
    );
}

#[test]
fn psci_hands_the_cpus_back_and_forgets_the_pen() {
    let m = map();
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, None);
    let mut req = request(k);
    req.cpu_method = Some("psci");
    let p = plan(&req, &with_pen(), &m).unwrap();
    check_plan(&p, &m);
    assert_eq!(p.cpus, CpuHandoff::Psci);
    assert!(!p.clean_ranges().contains(&(PEN.base, PEN.size)));
    let info = dt::parse(&p.dt).unwrap();
    assert!(!info.memreserve.contains(&PEN));
    assert!(info
        .cpus
        .iter()
        .all(|c| c.enable_method == Some(dt::EnableMethod::Psci)));
}

#[test]
fn psci_keeps_an_occupied_pen_reserved() {
    // #17 item 1: a CPU that may still run pen code (REFUSED, a late arrival, a stray) must
    // not find its memory handed to the kernel: with cpu_method=psci the pen's /memreserve/
    // stays, and the CPU's node is failed (with its slot, so a later loader can take it).
    let m = map();
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, None);
    let mut req = request(k);
    req.cpu_method = Some("psci");
    let mut cpus = with_pen();
    if let Some(p) = cpus.pen.as_mut() {
        p.occupied = true;
        p.unusable.push("/cpus/cpu@2".into());
    }
    let p = plan(&req, &cpus, &m).unwrap();
    assert_eq!(p.cpus, CpuHandoff::Psci);
    let info = dt::parse(&p.dt).unwrap();
    assert_eq!(info.memreserve, [PEN], "exactly the pen, once");
    let c2 = &info.cpus[2];
    assert_eq!(c2.status, dt::Status::Fail);
    assert_eq!(c2.release_addr, dt::Prop64::Value(PEN.base + 0x810));
    for c in info.cpus.iter().filter(|c| c.status == dt::Status::Okay) {
        assert_eq!(c.enable_method, Some(dt::EnableMethod::Psci));
    }
}

#[test]
fn prepare_reports_the_cpu_method_before_any_cpu_moves() {
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, None);
    let mut req = request(k);
    assert_eq!(prepare(&req).unwrap().cpu_method(), CpuMethod::SpinTable);
    req.cpu_method = Some("psci");
    assert_eq!(prepare(&req).unwrap().cpu_method(), CpuMethod::Psci);
}

// ---------------------------------------------------------------------------------------------
// Refusals: one test per reason; each leaves the map as it was.

fn inspect_err(head: &[u8], loaded: Option<u64>, member: &[u8]) -> Refusal {
    let r = Kernel::inspect(KADDR, head, loaded, |n| {
        member
            .get(..n as usize)
            .ok_or_else(|| "0x41000000..: not RAM".into())
    })
    .unwrap_err();
    let line = r.to_string();
    assert!(
        line.starts_with("booti: ") && !line.contains('\n'),
        "{line}"
    );
    r
}

#[test]
fn refuses_bad_kernels() {
    let plain = header(0, 0x100_0000, ANYWHERE);
    let member = gzip(&plain);
    let head = &member[..20];
    assert_eq!(inspect_err(head, None, &member), Refusal::GzipSizeUnknown);
    assert_eq!(
        inspect_err(head, Some(member.len() as u64 + 1), &member),
        Refusal::Memory("0x41000000..: not RAM".into())
    );
    assert!(matches!(
        inspect_err(head, Some(12), &member),
        Refusal::Gzip(GzError::Truncated)
    ));
    let short = gzip(&plain[..32]);
    assert_eq!(
        inspect_err(&short, Some(short.len() as u64), &short),
        Refusal::GzipShort
    );
    let junk = gzip(&[0u8; 64]);
    assert!(matches!(
        inspect_err(&junk, Some(junk.len() as u64), &junk),
        Refusal::GzipHeader(ImageError::BadMagic { .. })
    ));
    let r = inspect_err(&[0u8; 64], None, &[]);
    assert!(matches!(r, Refusal::Header(ImageError::BadMagic { .. })));
    assert!(r.to_string().starts_with("booti: not an arm64 Image"));
    // An Image.gz inflating to more than its header's footprint.
    let mut big = header(0, 0x100, ANYWHERE).to_vec();
    big.resize(0x200, 0);
    let member = gzip(&big);
    let r = inspect_err(&member, Some(member.len() as u64), &member);
    assert_eq!(
        r,
        Refusal::ImageSizeTooSmall {
            gzip: true,
            image_size: 0x100,
            file_len: 0x200
        }
    );
    assert_eq!(
        r.to_string(),
        "booti: Image.gz: its gzip trailer says it inflates to 0x200 bytes, more than the Image header's image_size 0x100 (truncated or damaged?)"
    );
    // A raw Image whose header's footprint is under 64 bytes, loaded whole.
    let r = inspect_err(&header(0, 0x20, ANYWHERE), Some(0x40), &[]);
    assert_eq!(
        r.to_string(),
        "booti: Image header image_size 0x20 is smaller than the Image (0x40 bytes)"
    );
}

/// An EFI-stub-style Image: the header, a PE/COFF header at 64 with one
/// section whose raw data is `0x200..0x1200`; `len` bytes of it.
fn pe_image(image_size: u64, len: usize) -> Vec<u8> {
    let mut v = header(0, image_size, ANYWHERE).to_vec();
    v[60..64].copy_from_slice(&64u32.to_le_bytes());
    v.extend_from_slice(b"PE\0\0");
    v.extend_from_slice(&0xaa64u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // sections
    v.resize(64 + 24, 0); // no optional header
    let mut sect = [0u8; 40];
    sect[..5].copy_from_slice(b".text");
    sect[16..20].copy_from_slice(&0x1000u32.to_le_bytes());
    sect[20..24].copy_from_slice(&0x200u32.to_le_bytes());
    v.extend_from_slice(&sect);
    v.resize(0x1200, 0xaa);
    v.truncate(len);
    v
}

#[test]
fn refuses_a_truncated_image_and_one_larger_than_its_footprint() {
    // The whole file: accepted.
    let img = pe_image(0x2000, 0x1200);
    let k = Kernel::inspect(KADDR, &img[..64], Some(0x1200), |n| Ok(&img[..n as usize])).unwrap();
    assert_eq!(k.file_len, 0x1200);
    assert_eq!(crate::image::pe_sections_end(&img, 64), Some(0x1200));
    // Cut off: the PE/COFF sections say how long it should be.
    let cut = pe_image(0x2000, 0x1000);
    let r = inspect_err(&cut[..64], Some(0x1000), &cut);
    assert_eq!(
        r.to_string(),
        "booti: the Image is truncated: 0x1000 bytes loaded, its PE/COFF sections end at 0x1200"
    );
    // A header whose image_size is smaller than the loaded file.
    let small = pe_image(0x800, 0x1200);
    let r = inspect_err(&small[..64], Some(0x1200), &small);
    assert_eq!(
        r.to_string(),
        "booti: Image header image_size 0x800 is smaller than the Image (0x1200 bytes)"
    );
    // No PE header, or a broken one: nothing to compare with.
    assert_eq!(crate::image::pe_sections_end(&img, 65), None);
    let mut bad = img.clone();
    bad[64 + 6] = 0; // no sections
    assert_eq!(crate::image::pe_sections_end(&bad, 64), None);
    assert_eq!(crate::image::pe_sections_end(&img[..100], 64), None);
}

#[test]
fn refuses_a_footprint_that_overflows() {
    let m = map();
    let k = raw(KADDR, u64::MAX - 0x1000, 0x10_0000, NEAR_BASE, Some(0x1000));
    assert!(matches!(
        refuse(&request(k), &no_pen(), &m),
        Refusal::Footprint { .. }
    ));
}

#[test]
fn refuses_a_wrapping_initrd() {
    let m = map();
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.initrd = Some((u64::MAX - 0xff, 0x1000));
    let r = refuse(&req, &no_pen(), &m);
    assert_eq!(
        r.to_string(),
        "booti: initrd: range 0xffffffffffffff00 + 0x1000 overflows the address space"
    );
}

#[test]
fn refuses_a_bad_dt() {
    let m = map();
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    let junk = [0u8; 64];
    req.dtb = &junk;
    assert!(matches!(refuse(&req, &no_pen(), &m), Refusal::Fdt(_)));
}

#[test]
fn refuses_bad_env_values() {
    let m = map();
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.fdt_addr_r = None;
    assert_eq!(refuse(&req, &no_pen(), &m), Refusal::NoFdtAddr);
    assert_eq!(
        Refusal::NoFdtAddr.to_string(),
        "booti: ${fdt_addr_r} is not set"
    );
    req.fdt_addr_r = Some("zz");
    assert_eq!(refuse(&req, &no_pen(), &m), Refusal::NoFdtAddr);
    req.fdt_addr_r = Some("44000004");
    assert_eq!(
        refuse(&req, &no_pen(), &m),
        Refusal::FdtAddrAlign(0x4400_0004)
    );
    req.fdt_addr_r = Some(FDT_ADDR);
    req.cpu_method = Some("smp");
    let r = refuse(&req, &no_pen(), &m);
    assert_eq!(
        r.to_string(),
        "booti: cpu_method 'smp' must be spin-table or psci"
    );
}

#[test]
fn refuses_psci_without_reachable_firmware() {
    let m = map();
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.cpu_method = Some("psci");
    let cpus = CpuFacts {
        psci_usable: false,
        ..with_pen()
    };
    assert_eq!(refuse(&req, &cpus, &m), Refusal::PsciUnreachable);
}

#[test]
fn refuses_a_pen_without_a_slot_for_a_cpu() {
    let m = map();
    let req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    let mut cpus = with_pen();
    if let Some(p) = cpus.pen.as_mut() {
        p.release.pop();
    }
    let r = refuse(&req, &cpus, &m);
    assert_eq!(r, Refusal::DtFixup("/cpus/cpu@3: no pen slot".into()));
}

#[test]
fn refuses_ranges_that_overlap_claims() {
    let m = map();
    // The kernel file over the loader image: it must move, and its source is claimed.
    let req = request(raw(0x4030_0000, 0x8_0000, 0x100_0000, NEAR_BASE, None));
    let r = refuse(&req, &no_pen(), &m);
    assert!(
        matches!(r, Refusal::Claim(MemError::Overlap { .. })),
        "{r:?}"
    );
    // An initrd over the kernel.
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.initrd = Some((KADDR - 0x1_0000, 0x100_0000));
    let r = refuse(&req, &no_pen(), &m);
    assert!(r.to_string().contains("overlaps"), "{r}");
    // The DT over the pen.
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.fdt_addr_r = Some("7fff0000");
    assert!(matches!(
        refuse(&req, &no_pen(), &m),
        Refusal::Claim(MemError::Overlap { .. })
    ));
    // An initrd outside RAM.
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.initrd = Some((0x1000, 0x1000));
    assert!(matches!(
        refuse(&req, &no_pen(), &m),
        Refusal::Claim(MemError::OutsideRam { .. })
    ));
}

#[test]
fn refuses_when_no_slot_is_free() {
    // 8 MiB of RAM for a kernel with a 16 MiB footprint.
    let m = MemMap::new(&[Region::new(RAM, 0x80_0000)]);
    let (k, _) = gz_kernel(RAM + 0x10_0000, 0x100_0000, NEAR_BASE, 0x1000);
    let r = refuse(&request(k), &no_pen(), &m);
    assert_eq!(
        r,
        Refusal::NoRoom {
            footprint: 0x100_0000
        }
    );
    assert_eq!(
        r.to_string(),
        "booti: no free 2 MiB-aligned room for the kernel's 0x1000000-byte footprint"
    );
}

#[test]
fn refuses_an_initrd_outside_the_32gib_window() {
    let mut m = MemMap::new(&[
        Region::new(RAM, RAM_SIZE),
        Region::new(0x10_0000_0000, 0x1000_0000),
    ]);
    m.claim(RAM, 0x10_0000, Owner::IncomingDt).unwrap();
    let mut req = request(raw(KADDR, 0, 0x200_0000, ANYWHERE, None));
    req.initrd = Some((0x10_0000_0000, 0x1000));
    assert_eq!(refuse(&req, &no_pen(), &m), Refusal::Window);
}

// ---------------------------------------------------------------------------------------------
// Property: random maps, kernels, initrds and env values never give a plan that overlaps a claim.

use testkit::Rng;

/// A root node with its cell sizes: enough for the planner, and fast to parse.
fn tiny_dtb() -> Vec<u8> {
    use dtoolkit::model::DeviceTreeProperty;
    let mut t = DeviceTree::new();
    t.root
        .add_property(DeviceTreeProperty::new_unchecked("#address-cells", 2u32));
    t.root
        .add_property(DeviceTreeProperty::new_unchecked("#size-cells", 2u32));
    t.to_dtb()
}

#[test]
fn random_plans_never_overlap_a_claim() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dtb = tiny_dtb();
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut m = MemMap::new(&[Region::new(RAM, RAM_SIZE)]);
        for _ in 0..rng.below(8) {
            let start = RAM + (rng.below(RAM_SIZE) & !0xfff);
            let size = (rng.below(0x400_0000) & !0xfff).max(0x1000);
            let _ = m.claim(start, size, Owner::Other("random".into()));
        }
        let kaddr = RAM + (rng.below(RAM_SIZE) & !0xfff);
        let flags = if rng.below(2) == 0 {
            ANYWHERE
        } else {
            NEAR_BASE
        };
        let text_offset = [0, 0x8_0000, 0x1000][rng.below(3) as usize];
        let image_size = (rng.below(0x400_0000) & !0xfff).max(0x1000);
        let k = raw(
            kaddr,
            text_offset,
            image_size,
            flags,
            Some(rng.below(image_size) + 64),
        );
        let fdt = alloc::format!("{:x}", RAM + (rng.below(RAM_SIZE) & !7));
        let kr = alloc::format!("{:x}", RAM + (rng.below(RAM_SIZE) & !0x1f_ffff));
        let mut req = request(k);
        req.dtb = &dtb;
        req.fdt_addr_r = Some(&fdt);
        req.kernel_addr_r = Some(&kr);
        if rng.below(2) == 0 {
            req.initrd = Some((RAM + rng.below(RAM_SIZE), rng.below(0x100_0000) + 1));
        }
        let before = claims(&m);
        match plan(&req, &no_pen(), &m) {
            Ok(p) => {
                check_plan(&p, &m);
                accepted += 1;
            }
            Err(e) => {
                let line = e.to_string();
                assert!(
                    line.starts_with("booti: ") && !line.contains('\n'),
                    "{line}"
                );
            }
        }
        assert_eq!(claims(&m), before);
    }
    assert!(accepted > 300, "only {accepted} plans accepted");
}

#[test]
fn legacy_ramdisk_with_or_without_size() {
    let data = b"070701 an initramfs".to_vec();
    let img = crate::uimage::build(3, 0, 0, 0, "uInitrd", &data);
    let at = 0x4800_0000;
    let view = |a: u64, n: u64| -> Result<&[u8], String> {
        let off = (a - at) as usize;
        img.get(off..off + n as usize)
            .ok_or_else(|| "not readable".to_string())
    };
    let arg = |size| InitrdArg { addr: at, size };
    assert_eq!(
        resolve_initrd(arg(None), &img[..64], view),
        Ok((at + 64, data.len() as u64))
    );
    assert_eq!(
        resolve_initrd(arg(Some(img.len() as u64)), &img[..64], view),
        Ok((at + 64, data.len() as u64))
    );
    // `:size` shorter than header + data.
    let e = resolve_initrd(arg(Some(70)), &img[..64], view).unwrap_err();
    assert_eq!(
        e.to_string(),
        "booti: initrd at 0x48000000: legacy image data is 19 bytes but only 6 follow the header"
    );
    // A corrupt byte: the data CRC refuses it.
    let mut bad = img.clone();
    bad[80] ^= 0x20;
    let bview = |a: u64, n: u64| -> Result<&[u8], String> {
        let off = (a - at) as usize;
        Ok(&bad[off..off + n as usize])
    };
    let e = resolve_initrd(arg(None), &bad[..64], bview)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("booti: initrd at 0x48000000: legacy image: bad data checksum"),
        "{e}"
    );
    // A kernel image is not a ramdisk.
    let k = crate::uimage::build(2, 0, 0, 0, "k", &data);
    let e = resolve_initrd(arg(None), &k[..64], view)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "booti: initrd at 0x48000000: legacy image is a kernel, not a ramdisk"
    );
    // Raw data needs a size.
    let raw = [0u8; 64];
    assert_eq!(
        resolve_initrd(arg(Some(0x100)), &raw, view),
        Ok((at, 0x100))
    );
    assert_eq!(
        resolve_initrd(arg(None), &raw, view).unwrap_err().to_string(),
        "booti: initrd at 0x48000000 has no legacy (mkimage) header: give its size as <addr>:<size>"
    );
}

#[test]
fn a_foreign_dt_gets_memory_seed_and_keeps_a_kaslr_seed() {
    let k = raw(KADDR, 0, 0x200_0000, ANYWHERE, Some(0x180_0000));
    let mut req = request(k);
    req.dt_extras = DtExtras {
        memory: Some(alloc::vec![(0x4000_0000, 0x2000_0000)]),
        rng_seed: Some(alloc::vec![5u8; 64]),
        keep_kaslr_seed: false,
    };
    let p = plan(&req, &no_pen(), &map()).unwrap();
    let info = crate::dt::parse(&p.dt).unwrap();
    let m: Vec<(u64, u64)> = info.memory.iter().map(|r| (r.base, r.size)).collect();
    assert_eq!(m, alloc::vec![(0x4000_0000, 0x2000_0000)]);
    let (t, _) = crate::dtfix::load(&p.dt).unwrap();
    use dtoolkit::Node;
    let c = t.find_node("/chosen").unwrap();
    // QEMU's DT brings its own rng-seed: it stays.
    assert!(c.property("rng-seed").is_some());
}

#[test]
fn a_foreign_dt_names_its_cpus_its_own_way() {
    let own = crate::dt::parse(VIRT).unwrap();
    // The same four CPUs under other node names, plus one the machine lacks.
    let mut target = own.clone();
    for c in &mut target.cpus {
        c.path = alloc::format!("/cpus/core{}", c.mpidr);
    }
    let mut extra = target.cpus[0].clone();
    extra.path = "/cpus/core99".into();
    extra.mpidr = 0x99;
    target.cpus.push(extra);
    let mut pen = pen_facts();
    pen.unusable = vec!["/cpus/cpu@3".into()];
    pen.release.retain(|(p, _)| p != "/cpus/cpu@3");
    let r = retarget_pen(&pen, &own, &target);
    assert_eq!(
        r.release,
        vec![
            ("/cpus/core0".to_string(), PEN.base + 0x800),
            ("/cpus/core1".to_string(), PEN.base + 0x808),
            ("/cpus/core2".to_string(), PEN.base + 0x810),
        ]
    );
    assert_eq!(
        r.unusable,
        vec!["/cpus/core3".to_string(), "/cpus/core99".to_string()]
    );
    assert_eq!((r.region, r.park), (pen.region, pen.park));
    // The loader's own DT maps to itself.
    let same = retarget_pen(&pen_facts(), &own, &own);
    assert_eq!(same.release, pen_facts().release);
    assert!(same.unusable.is_empty());
}
