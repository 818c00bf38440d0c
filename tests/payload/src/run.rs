//! The boot CPU's flow: DT and pen checks, release/park rounds on every
//! secondary, verdict, then poweroff / chain / stop as bootargs say.
use crate::println;
use crate::rt::{self, civac, cvac, rd, wr};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use arch::psci::{self, Conduit};
use arch::{cpu, timer, uart};
use loader::dt::{DtInfo, Region};
use loader::pen::{PenImage, SlotState, SlotStatus, MAX_PEN_SIZE, MPIDR_MASK};
use parkboot_payload::{
    check_dt, check_entry, check_entry_state, check_pen, choose_chain_dest, image_footprint,
    memreserve_text, parse_bootargs, round_state, timing_line, verdict_fail, verdict_pass, Args,
    EntryRecord, GicBits, Handoff, LatencyStats, Next, RoundState, SpinCpu, SpinTable, CHAIN_ALIGN,
    ROUND_TIMEOUT_US,
};

/// Where a failure leaves us: what bootargs asked for (poweroff stays poweroff; a chain is
/// never attempted after a failure) and the PSCI conduit if any.
struct Ctx {
    next: Next,
    psci: Option<Conduit>,
}

fn ok(line: &str) {
    println!("PAYLOAD: ok {line}");
}

/// `PAYLOAD: FAIL <why>`, the verdict, then poweroff (if asked for) or stop.
fn fail(ctx: &Ctx, why: &str) -> ! {
    let why = parkboot_payload::one_line(why);
    println!("PAYLOAD: FAIL {why}");
    println!("{}", verdict_fail(&why));
    if ctx.next == Next::Poweroff {
        poweroff(ctx);
    }
    println!("PAYLOAD: stopped");
    uart::flush();
    cpu::stop()
}

fn poweroff(ctx: &Ctx) -> ! {
    match ctx.psci {
        None => println!("PAYLOAD: cannot power off: no /psci node"),
        Some(c) if !psci::usable(c) => {
            println!("PAYLOAD: cannot power off: /psci method is hvc and the payload runs at EL2")
        }
        Some(c) => {
            println!(
                "PAYLOAD: poweroff (PSCI SYSTEM_OFF via {})",
                if c == Conduit::Hvc { "hvc" } else { "smc" }
            );
            uart::flush();
            let r = psci::system_off(c).map_or_else(i64::from, |()| 0);
            println!("PAYLOAD: SYSTEM_OFF returned {r:#x}");
        }
    }
    println!("PAYLOAD: stopped");
    uart::flush();
    cpu::stop()
}

/// Reads and parses the DT at `dtb` (read in place: MMU off, nothing writes it).
fn read_dt(dtb: u64) -> Result<DtInfo, String> {
    let blob = dt_blob(dtb)?;
    loader::dt::parse(blob).map_err(|e| format!("DT at {dtb:#x}: {e}"))
}

/// The DT at `dtb`, in place, after its header checks.
fn dt_blob(dtb: u64) -> Result<&'static [u8], String> {
    if dtb == 0 || !dtb.is_multiple_of(8) {
        return Err(format!(
            "DTB address {dtb:#x} is not a non-zero 8-byte aligned address"
        ));
    }
    // SAFETY: 40 bytes at the address the previous stage gave us as the DTB.
    let head = unsafe { core::slice::from_raw_parts(dtb as *const u8, loader::dt::FDT_HEADER_LEN) };
    let total = loader::dt::fdt_totalsize(head).map_err(|e| format!("DT at {dtb:#x}: {e}"))?;
    if total > 2 << 20 {
        return Err(format!(
            "DT at {dtb:#x}: totalsize {total:#x} is over 2 MiB"
        ));
    }
    // SAFETY: `total` bytes of DT, checked above to be at most 2 MiB.
    Ok(unsafe { core::slice::from_raw_parts(dtb as *const u8, total) })
}

/// A snapshot of `len` bytes at `addr` (cleaned+invalidated first, 64-bit volatile loads).
fn snapshot(addr: u64, len: u64) -> Vec<u8> {
    civac(addr, len);
    let mut out = Vec::with_capacity(len as usize);
    let mut a = addr;
    while a < addr + len {
        out.extend_from_slice(&rd(a as *const u64).to_le_bytes());
        a += 8;
    }
    out
}

/// A pen state record, read after `DC CIVAC` of its line (docs/protocol.md §4).
///
/// The counters are read before `status` (docs/protocol.md §5.2 step 4): the pen counts an
/// arrival first and publishes the status last, so a PARKED read after `parks` advanced belongs
/// to that park — read the other way round, a PARKED left from the previous round can pair
/// with the new count (a CPU that sleeps between wake-ups makes that window wide).
fn read_state(addr: u64) -> SlotState {
    civac(addr, 64);
    let r: Result<SlotState, core::convert::Infallible> = SlotState::read_live(|k| {
        if k == 0 {
            // status, after the counters: make sure it is read fresh, after them
            cpu::dsb();
            civac(addr, 8);
        }
        Ok(rd((addr + 8 * k as u64) as *const u64))
    });
    match r {
        Ok(s) => s,
        Err(e) => match e {},
    }
}

fn read_record(i: usize) -> EntryRecord {
    let r = rt::record(i);
    civac(r as u64, 128);
    // SAFETY: aligned fields of the record array.
    unsafe {
        // The secondary writes its fields, DSB, then `entries`: read `entries` first, DSB, then
        // the fields, so a new count comes with that entry's fields.
        let entries = rd(&raw const (*r).entries);
        cpu::dsb();
        EntryRecord {
            entries,
            mpidr: rd(&raw const (*r).mpidr),
            el: rd(&raw const (*r).el),
            regs: [
                rd(&raw const (*r).regs[0]),
                rd(&raw const (*r).regs[1]),
                rd(&raw const (*r).regs[2]),
                rd(&raw const (*r).regs[3]),
            ],
            entry_ticks: rd(&raw const (*r).entry_ticks),
            timer_ctl: rd(&raw const (*r).timer_ctl),
            gic_bits: rd(&raw const (*r).gic_bits),
            wakes: rd(&raw const (*r).wakes),
        }
    }
}

/// One secondary CPU being exercised.
struct Track {
    /// Index in the CPU table (and the record array).
    idx: usize,
    cpu: SpinCpu,
    state_addr: u64,
    base_parks: u64,
    base_releases: u64,
    /// Round in flight (1-based).
    round: u64,
    released_at: u64,
    /// The pen's `wakes` right before the release store.
    wakes_before: u32,
    done: bool,
    /// `payload.inject=no-zero`: round 1 parks without zeroing the release word.
    injected: bool,
    /// The injected UNARMED state was seen and the word zeroed.
    rearmed: bool,
}

/// The injected fault was caught: the CPU parked with its release word still holding our entry,
/// and the pen published UNARMED instead of re-entering it. Stop injecting, then do what
/// docs/protocol.md §5.2 step 5 says: store 0 to the release word, clean, DSB, SEV; the CPU must
/// arm and show PARKED (polled as usual).
fn rearm(t: &mut Track) {
    let slot = rt::cpu_slot(t.idx);
    // SAFETY: aligned field of our own table; the CPU is in the pen, not reading it.
    unsafe { wr(&raw mut (*slot).skip_zero, 0) };
    civac(slot as u64, 64);
    civac(t.cpu.release, 8);
    let w = rd(t.cpu.release as *const u64);
    wr(t.cpu.release as *mut u64, 0);
    cvac(t.cpu.release, 8);
    cpu::sev();
    t.rearmed = true;
    ok(&format!(
        "{}: parked without zeroing its release word ({w:#x}, injected): the pen held it UNARMED, no re-entry; zeroed the word",
        t.cpu.name
    ));
}

/// Releases `t` into the payload (docs/protocol.md §5.1): see [`release_cpu`]. The time is
/// taken right before the store, for the release latency.
fn release(ctx: &Ctx, t: &mut Track, entry: u64) {
    let what = format!("{}: round {}", t.cpu.name, t.round);
    t.wakes_before = read_state(t.state_addr).wakes;
    t.released_at = timer::ticks();
    release_cpu(ctx, &t.cpu, t.state_addr, entry, &what);
}

/// docs/protocol.md §5.1: the CPU must be held with its release word 0; then one 64-bit store
/// of the entry, clean to PoC, DSB, SEV. `what` names the CPU (and round) in a failure.
fn release_cpu(ctx: &Ctx, cpu: &SpinCpu, state_addr: u64, entry: u64, what: &str) {
    let s = read_state(state_addr);
    if !s.status.is_held() {
        fail(ctx, &format!("{what}: pen status {s} before release"));
    }
    civac(cpu.release, 8);
    let w = rd(cpu.release as *const u64);
    if w != 0 {
        fail(
            ctx,
            &format!("{what}: release word {w:#x} is not 0 before release"),
        );
    }
    wr(cpu.release as *mut u64, entry);
    cvac(cpu.release, 8);
    cpu::sev();
}

/// The address of `c`'s state record in the pen (a failure if it has none).
fn state_record(ctx: &Ctx, img: &PenImage<'_>, c: &SpinCpu) -> u64 {
    img.slot_of(c.mpidr)
        .and_then(|s| img.header().state_addr(s.index))
        .unwrap_or_else(|| fail(ctx, &format!("{}: no state record", c.name)))
}

/// Called by the arch crate's entry (`loader/arch/src/entry.S`) on the boot CPU.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
extern "C" fn rust_entry(
    dtb: u64,
    entry_ticks: u64,
    el: u64,
    x1: u64,
    x2: u64,
    x3: u64,
    daif: u64,
    sctlr: u64,
) -> ! {
    let el = el as u8;
    let boot = cpu::mpidr();
    wr(rt::BOOT_MPIDR.get(), boot);
    rt::init();
    let dt = read_dt(dtb);
    if let Ok(info) = &dt {
        if let Some(Region { base, .. }) = info.console.as_ref().and_then(|c| c.reg) {
            uart::set_base(base as usize);
        }
    }
    println!("PAYLOAD: start el={el} dtb={dtb:#x} counter={entry_ticks:#x}");
    let mut ctx = Ctx {
        next: Next::Stop,
        psci: None,
    };
    let info = match dt {
        Ok(i) => i,
        Err(e) => fail(&ctx, &e),
    };
    ctx.psci = info.psci.as_ref().map(|p| match p.conduit {
        loader::dt::Conduit::Hvc => Conduit::Hvc,
        loader::dt::Conduit::Smc => Conduit::Smc,
    });
    let args = match parse_bootargs(info.chosen.bootargs.as_deref()) {
        Ok(a) => a,
        Err(e) => fail(&ctx, &e),
    };
    ctx.next = args.next;
    let (fp_start, fp_end) = rt::footprint();
    println!(
        "PAYLOAD: payload at {fp_start:#x}..{fp_end:#x}, boot MPIDR {boot:#x}, {} cpu nodes, bootargs \"{}\"",
        info.cpus.len(),
        info.chosen.bootargs.as_deref().unwrap_or("")
    );
    println!("PAYLOAD: memreserve={}", memreserve_text(&info.memreserve));
    if (x1, x2, x3) != (0, 0, 0) {
        fail(
            &ctx,
            &format!("entered with x1..x3 = {x1:#x} {x2:#x} {x3:#x}, expected 0"),
        );
    }
    if daif & 0x3c0 != 0x3c0 {
        fail(
            &ctx,
            &format!("entered with DAIF {daif:#x}: not all of D, A, I, F masked"),
        );
    }
    if sctlr & 1 != 0 {
        fail(
            &ctx,
            &format!("entered with the MMU on (SCTLR_EL{el} {sctlr:#x})"),
        );
    }
    ok(&format!(
        "entry: x1..x3 = 0, DAIF masked, MMU off (SCTLR_EL{el} {sctlr:#x})"
    ));

    if args.psci_probe {
        psci_probe(&ctx, &info, dtb, boot, el);
    }
    let st = match check_dt(&info, boot, &mut |l| ok(l)) {
        Ok(s) => s,
        Err(e) => fail(&ctx, &e),
    };
    let pen_len = st.pen.size.min(MAX_PEN_SIZE);
    if !st.pen.base.is_multiple_of(4096) {
        fail(
            &ctx,
            &format!("/memreserve/ {} of the pen is not 4 KiB aligned", st.pen),
        );
    }
    let bytes = snapshot(st.pen.base, pen_len & !7);
    let img = match PenImage::parse(&bytes, st.pen.base) {
        Ok(i) => i,
        Err(e) => fail(&ctx, &format!("pen at {:#x}: {e}", st.pen.base)),
    };
    if let Err(e) = check_pen(&img, &st, boot, el, &mut |l| ok(l)) {
        fail(&ctx, &e);
    }

    rt::GIC.write(gic_info(&info, el));
    if args.wait_sleep {
        check_sleeping(&ctx, &st, &img, boot);
    }
    let rounds = exercise(&ctx, &st, &img, boot, el, &args);
    if args.el1_entry {
        el1_entry(&ctx, &st, &img, boot, el);
    }
    if args.inject_fault {
        inject_fault(&ctx, &st, &img, boot, el);
    }
    println!("{}", verdict_pass(st.cpus.len(), rounds, el));
    if args.keep {
        keep(&ctx, &st, &img, boot);
    }
    drop(bytes);

    match args.next {
        Next::Stop => {
            println!("PAYLOAD: done");
            uart::flush();
            cpu::stop()
        }
        Next::Poweroff => poweroff(&ctx),
        Next::Loader => {
            let dtb = if args.foreign {
                foreign_spin(&ctx, &info, dtb, &st, boot)
            } else {
                dtb
            };
            chain(&ctx, &info, dtb, &st, args.handoff)
        }
    }
}

/// `payload.psci=probe`: the bad PSCI calls and the CPU_ON/CPU_OFF cycles after them
/// (probe.rs), the verdict, then as bootargs say.
fn psci_probe(ctx: &Ctx, info: &DtInfo, dtb: u64, boot: u64, el: u8) -> ! {
    if ctx.psci != Some(Conduit::Smc) {
        fail(
            ctx,
            "payload.psci=probe needs a /psci node with method \"smc\"",
        );
    }
    let blob = match dt_blob(dtb) {
        Ok(b) => b,
        Err(e) => fail(ctx, &e),
    };
    match crate::probe::run(info, blob, boot, el) {
        Ok(cycles) => println!("PAYLOAD: PASS psci probe ({cycles} CPU_ON/CPU_OFF cycles)"),
        Err(e) => fail(ctx, &e),
    }
    if ctx.next == Next::Poweroff {
        poweroff(ctx);
    }
    println!("PAYLOAD: done");
    uart::flush();
    cpu::stop()
}

/// A system register the payload reads by name.
macro_rules! sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an ID / PMU register: no side effects.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// Polls `state_addr` until `done` holds or [`ROUND_TIMEOUT_US`] passes; the last state read.
fn poll_state(state_addr: u64, done: impl Fn(&SlotState) -> bool) -> (SlotState, bool) {
    let t0 = timer::ticks();
    loop {
        let s = read_state(state_addr);
        if done(&s) {
            // Read once more: the pen writes a record's fields before its status, and
            // `read_state` reads the status last, so the fields that came with this status
            // are the ones read after it (the final states polled for do not change again).
            return (read_state(state_addr), true);
        }
        if timer::ticks_to_us(timer::ticks().wrapping_sub(t0)) > ROUND_TIMEOUT_US {
            return (s, false);
        }
    }
}

/// `payload.el1=1`: releases the first secondary with mode 1 — as the resident PSCI part
/// does for CPU_ON from an EL1 OS: context and mode first, cleaned, then the release word
/// (docs/protocol.md §4) — to `payload_el1_entry`, and checks what it found at EL1.
fn el1_entry(ctx: &Ctx, st: &SpinTable, img: &PenImage<'_>, boot: u64, el: u8) {
    if el != 2 {
        fail(ctx, "payload.el1=1 needs the pen at EL2");
    }
    let Some(c) = st.cpus.iter().find(|c| c.mpidr != boot & MPIDR_MASK) else {
        fail(ctx, "payload.el1=1 needs a secondary CPU");
    };
    let state_addr = state_record(ctx, img, c);
    let s = read_state(state_addr);
    civac(c.release, 64);
    if !s.status.is_held() || rd(c.release as *const u64) != 0 {
        fail(
            ctx,
            &format!("{}: not held before the mode-1 release ({s})", c.name),
        );
    }
    let context = 0x5eed_0000_0000_0000 | c.mpidr;
    let entry = rt::payload_el1_entry as *const () as usize as u64;
    wr(
        (c.release + loader::pen::slot::CONTEXT as u64) as *mut u64,
        context,
    );
    wr(
        (c.release + loader::pen::slot::MODE as u64) as *mut u64,
        loader::pen::MODE_ERET_EL1,
    );
    cvac(c.release, 64);
    wr(c.release as *mut u64, entry);
    cvac(c.release, 8);
    cpu::sev();
    let report = rt::PAYLOAD_EL1.get();
    let t0 = timer::ticks();
    // SAFETY: field pointers of our own aligned static; the secondary writes it uncached.
    while rd(unsafe { &raw const (*report).done }) != 1 {
        if timer::ticks_to_us(timer::ticks().wrapping_sub(t0)) > ROUND_TIMEOUT_US {
            fail(
                ctx,
                &format!(
                    "{}: no report from EL1 after a mode-1 release; the pen says {}",
                    c.name,
                    read_state(state_addr)
                ),
            );
        }
    }
    civac(report as u64, 64);
    // SAFETY: as above; `done` was seen 1, so the fields are written.
    let r = unsafe { core::ptr::read_volatile(report) };
    let isar1 = sysreg!("id_aa64isar1_el1");
    let want = parkboot_payload::El1Want {
        context,
        pmu_n: (sysreg!("pmcr_el0") >> 11) & 0x1f,
        sve: (sysreg!("id_aa64pfr0_el1") >> 32) & 0xf != 0,
        pauth: isar1 & 0xff00_0ff0 != 0,
        midr: sysreg!("midr_el1"),
        mpidr: c.mpidr,
    };
    match parkboot_payload::check_el1_entry(&c.name, &r, &want) {
        Ok(line) => ok(&line),
        Err(e) => fail(ctx, &e),
    }
}

/// `payload.inject=fault`: releases the last secondary to an undefined instruction; the
/// pen's own vectors must take the exception, record it and keep the CPU.
fn inject_fault(ctx: &Ctx, st: &SpinTable, img: &PenImage<'_>, boot: u64, el: u8) {
    let Some(c) = st.cpus.iter().rev().find(|c| c.mpidr != boot & MPIDR_MASK) else {
        fail(ctx, "payload.inject=fault needs a secondary CPU");
    };
    let state_addr = state_record(ctx, img, c);
    let entry = rt::payload_udf as *const () as usize as u64;
    release_cpu(ctx, c, state_addr, entry, &format!("{}: fault", c.name));
    let (s, _) = poll_state(state_addr, |s| s.status == SlotStatus::Faulted);
    match parkboot_payload::check_fault(&c.name, &s, entry, el) {
        Ok(line) => ok(&line),
        Err(e) => fail(ctx, &e),
    }
}

/// `payload.foreign=1`: every secondary leaves the pen for a spin loop on one shared word
/// (a U-Boot-style spin-table; the first one leaves it 1.5 s after the release, later than a
/// loader waits); returns the address of the DT for the next loader: every
/// secondary but the last on that word (`enable-method = "spin-table"`, no `cpu-park-addr`),
/// the last one without a cpu node, the old pen's /memreserve/ replaced by one for the
/// payload (the CPUs run its code, the word and this DT are in it).
fn foreign_spin(ctx: &Ctx, info: &DtInfo, dtb: u64, st: &SpinTable, boot: u64) -> u64 {
    let secondaries: Vec<&SpinCpu> = st
        .cpus
        .iter()
        .filter(|c| c.mpidr != boot & MPIDR_MASK)
        .collect();
    let [.., stray] = secondaries.as_slice() else {
        fail(ctx, "payload.foreign=1 needs a secondary CPU");
    };
    let bytes = snapshot(st.pen.base, st.pen.size.min(MAX_PEN_SIZE) & !7);
    let img = match PenImage::parse(&bytes, st.pen.base) {
        Ok(i) => i,
        Err(e) => fail(ctx, &format!("pen at {:#x}: {e}", st.pen.base)),
    };
    let word = rt::PAYLOAD_FOREIGN_WORD.get() as u64;
    wr(word as *mut u64, 0);
    civac(word, 8);
    let late = secondaries[0].mpidr;
    wr(rt::PAYLOAD_FOREIGN_LATE.get(), late);
    civac(rt::PAYLOAD_FOREIGN_LATE.get() as u64, 8);
    let spin = rt::payload_foreign_spin as *const () as usize as u64;
    for c in &secondaries {
        let state_addr = state_record(ctx, &img, c);
        release_cpu(ctx, c, state_addr, spin, &format!("{}: foreign", c.name));
        if !poll_state(state_addr, |s| s.status == SlotStatus::Released).1 {
            fail(
                ctx,
                &format!("{}: not RELEASED into the foreign spin", c.name),
            );
        }
    }
    // SAFETY: the DT we were given, `totalsize` bytes (checked at start, read in place).
    let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, info.totalsize) };
    let (mut tree, _) = match loader::dtfix::load(blob) {
        Ok(t) => t,
        Err(e) => fail(ctx, &format!("foreign: DT: {e}")),
    };
    let path_of = |m: u64| {
        info.cpus
            .iter()
            .find(|c| c.mpidr == m)
            .map(|c| c.path.clone())
    };
    for c in &secondaries[..secondaries.len() - 1] {
        let Some(path) = path_of(c.mpidr) else {
            fail(ctx, &format!("{}: no cpu node", c.name));
        };
        let set = |tree: &mut _, prop: &str, v: Vec<u8>| {
            loader::dtfix::set_property(tree, &path, prop, v)
                .unwrap_or_else(|e| fail(ctx, &format!("foreign: {path}: {e}")))
        };
        set(&mut tree, "enable-method", b"spin-table\0".to_vec());
        set(&mut tree, "cpu-release-addr", word.to_be_bytes().to_vec());
        let _ = loader::dtfix::remove(&mut tree, &path, Some("cpu-park-addr"));
    }
    if let Some(path) = path_of(stray.mpidr) {
        let _ = loader::dtfix::remove(&mut tree, "/cpus/cpu-map", None);
        let _ = loader::dtfix::remove(&mut tree, &path, None);
    }
    let (fp_start, fp_end) = rt::footprint();
    let mut reserve: Vec<(u64, u64)> = info
        .memreserve
        .iter()
        .filter(|r| **r != st.pen)
        .map(|r| (r.base, r.size))
        .collect();
    let start = fp_start & !0xfff;
    reserve.push((start, ((fp_end + 0xfff) & !0xfff) - start));
    loader::dtfix::set_memreserve(&mut tree, &reserve);
    let out = match loader::dtfix::store(&tree, (boot & MPIDR_MASK) as u32) {
        Ok(o) => o,
        Err(e) => fail(ctx, &format!("foreign: DT: {e}")),
    };
    let mut words = alloc::vec![0u64; out.len().div_ceil(8)];
    for (w, chunk) in words.iter_mut().zip(out.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    let at = words.as_ptr() as u64;
    core::mem::forget(words);
    println!(
        "PAYLOAD: foreign: {} secondaries wait on the shared release word {word:#x} ({} leaves 1.5 s late); {} (MPIDR {:#x}) too, with no cpu node in the DT at {at:#x}",
        secondaries.len() - 1,
        secondaries[0].name,
        stray.name,
        stray.mpidr
    );
    at
}

/// Where the GIC is, for the secondaries' entry checks.
fn gic_info(info: &DtInfo, el: u8) -> rt::GicInfo {
    let mut g = rt::GicInfo::default();
    let Some(gic) = &info.gic else {
        return g;
    };
    let t = info.timer_irqs.unwrap_or_default();
    g.timer_intid = u64::from(if el == 2 { t.hyp_phys } else { t.virt }.unwrap_or(0));
    g.gicd = gic.distributor().map_or(0, |r| r.base);
    match gic.version {
        loader::dt::GicVersion::V2 => {
            g.version = 2;
            g.gicc = gic.cpu_interface().map_or(0, |r| r.base);
        }
        loader::dt::GicVersion::V3 => {
            g.version = 3;
            if let Some(r) = gic.redistributors().first() {
                g.gicr = r.base;
                g.gicr_size = r.size;
            }
        }
    }
    if g.gicd == 0 || (g.version == 2 && g.gicc == 0) || (g.version == 3 && g.gicr == 0) {
        g.version = 0;
    }
    g
}

/// `payload.wait=sleep`: every secondary waiting in the pen (handed over by the loader)
/// reports a sleeping wait method, and its wake-up counter advances while we watch — the pen's
/// periodic wake-ups, not a release, since none is written meanwhile.
fn check_sleeping(ctx: &Ctx, st: &SpinTable, img: &PenImage<'_>, boot: u64) {
    const WATCH_US: u64 = 20_000;
    let cpus: Vec<(&SpinCpu, u64)> = st
        .cpus
        .iter()
        .filter(|c| c.mpidr != boot & MPIDR_MASK)
        .map(|c| (c, state_record(ctx, img, c)))
        .collect();
    let before: Vec<SlotState> = cpus.iter().map(|(_, a)| read_state(*a)).collect();
    let t0 = timer::ticks();
    while timer::ticks_to_us(timer::ticks().wrapping_sub(t0)) < WATCH_US {}
    let us = timer::ticks_to_us(timer::ticks().wrapping_sub(t0));
    for ((c, a), b) in cpus.iter().zip(&before) {
        let s = read_state(*a);
        let wakes = s.wakes.wrapping_sub(b.wakes);
        if !s.wait.sleeps() {
            fail(
                ctx,
                &format!(
                    "{}: waits with {} in the pen, not a sleeping method",
                    c.name, s.wait
                ),
            );
        }
        if wakes == 0 || !s.status.is_held() {
            fail(
                ctx,
                &format!("{}: {} wake-ups in {us} us while held ({s})", c.name, wakes),
            );
        }
        ok(&format!(
            "{} sleeps in the pen with {}: {wakes} wake-ups in {us} us",
            c.name, s.wait
        ));
    }
}

/// `payload.keep=1`: release every (parked) secondary once more, into a WFI loop that never
/// parks, and wait until the pen shows it RELEASED: the next stage finds the CPUs taken and not
/// given back, as after a kernel that keeps them.
fn keep(ctx: &Ctx, st: &SpinTable, img: &PenImage<'_>, boot: u64) {
    let entry = rt::payload_keep_entry as *const () as usize as u64;
    for c in st.cpus.iter().filter(|c| c.mpidr != boot & MPIDR_MASK) {
        let state_addr = state_record(ctx, img, c);
        release_cpu(ctx, c, state_addr, entry, &format!("{}: keep", c.name));
        let t0 = timer::ticks();
        while read_state(state_addr).status != SlotStatus::Released {
            if timer::ticks_to_us(timer::ticks() - t0) > ROUND_TIMEOUT_US {
                fail(ctx, &format!("{}: not RELEASED after keep", c.name));
            }
        }
        println!(
            "PAYLOAD: keeping {} MPIDR {:#x}: released into a WFI loop at {entry:#x}, never parked",
            c.name, c.mpidr
        );
    }
}

/// Runs `args.rounds` release/park rounds on every secondary, all of them in flight at once
/// (each is released again as soon as its previous round is complete). Returns the rounds per
/// CPU (0 without secondaries).
fn exercise(ctx: &Ctx, st: &SpinTable, img: &PenImage<'_>, boot: u64, el: u8, args: &Args) -> u32 {
    let entry = rt::entry_addr();
    // The table the secondaries find themselves in (before any release).
    for (i, c) in st.cpus.iter().enumerate() {
        let s = rt::cpu_slot(i);
        // SAFETY: aligned fields of our own table; no secondary runs payload code yet.
        unsafe {
            wr(&raw mut (*s).mpidr, c.mpidr);
            wr(&raw mut (*s).release, c.release);
            wr(&raw mut (*s).park, st.park);
            wr(&raw mut (*s).skip_zero, u64::from(args.inject_no_zero));
            let state = img
                .slot_of(c.mpidr)
                .and_then(|sl| img.header().state_addr(sl.index))
                .unwrap_or(0);
            wr(&raw mut (*s).state, state);
        }
    }
    wr(rt::PAYLOAD_NR_CPUS.get(), st.cpus.len() as u64);
    civac(rt::PAYLOAD_CPUS.get() as u64, (st.cpus.len() * 64) as u64);
    civac(rt::PAYLOAD_NR_CPUS.get() as u64, 8);

    let mut tracks: Vec<Track> = Vec::new();
    for (i, c) in st.cpus.iter().enumerate() {
        if c.mpidr == boot & MPIDR_MASK {
            continue;
        }
        let state_addr = state_record(ctx, img, c);
        let s0 = read_state(state_addr);
        tracks.push(Track {
            idx: i,
            cpu: c.clone(),
            state_addr,
            base_parks: s0.parks,
            base_releases: s0.releases,
            round: 1,
            released_at: 0,
            wakes_before: 0,
            done: false,
            injected: args.inject_no_zero,
            rearmed: false,
        });
    }
    if tracks.is_empty() {
        ok("no secondary CPUs: nothing to release");
        return 0;
    }
    let rounds = u64::from(args.rounds);
    println!(
        "PAYLOAD: releasing {} secondaries to {entry:#x}, {rounds} rounds each, park at {:#x}",
        tracks.len(),
        st.park
    );
    let timeout = ROUND_TIMEOUT_US * timer::freq() / 1_000_000;
    let mut slowest = 0u64;
    let mut latency = LatencyStats::default();
    let mut gic_checked = false;
    let t0 = timer::ticks();
    for t in tracks.iter_mut() {
        release(ctx, t, entry);
    }
    let mut remaining = tracks.len();
    while remaining > 0 {
        for t in tracks.iter_mut().filter(|t| !t.done) {
            // State first: the secondary writes its record before it parks, so
            // a record read after a parked state is never older than that state.
            let s = read_state(t.state_addr);
            let rec = read_record(t.idx);
            if t.injected
                && !t.rearmed
                && s.status == SlotStatus::Unarmed
                && rec.entries == t.round
                && s.parks == t.base_parks.wrapping_add(t.round)
            {
                rearm(t);
                continue;
            }
            let unarmed_ok = t.injected && t.rearmed && t.round == 1;
            match round_state(rec.entries, s.status, s.parks, t.round, t.base_parks, unarmed_ok) {
                RoundState::Done => {
                    if let Err(e) = check_entry(&t.cpu, &rec, t.round, el)
                        .and_then(|()| check_entry_state(&t.cpu, &rec, t.round))
                    {
                        fail(ctx, &e);
                    }
                    if !t.injected || t.rearmed {
                        latency
                            .us
                            .push(timer::ticks_to_us(rec.entry_ticks.wrapping_sub(t.released_at)));
                        latency
                            .wakes
                            .push((rec.wakes as u32).wrapping_sub(t.wakes_before));
                    }
                    gic_checked |= rec.gic_bits & GicBits::CHECKED != 0;
                    if t.injected && !t.rearmed {
                        fail(
                            ctx,
                            &format!(
                                "{}: parked with its release word not zeroed (injected), yet the pen says {s} instead of UNARMED",
                                t.cpu.name
                            ),
                        );
                    }
                    slowest = slowest.max(timer::ticks().wrapping_sub(t.released_at));
                    if t.round == rounds {
                        t.done = true;
                        remaining -= 1;
                    } else {
                        t.round += 1;
                        release(ctx, t, entry);
                    }
                }
                RoundState::Pending => {
                    if timer::ticks().wrapping_sub(t.released_at) > timeout {
                        let stray = rd(rt::PAYLOAD_STRAY.get());
                        fail(
                            ctx,
                            &format!(
                                "{}: round {}: not back in the pen after {} ms: pen state {s}, payload record entries {}{}",
                                t.cpu.name,
                                t.round,
                                ROUND_TIMEOUT_US / 1000,
                                rec.entries,
                                if stray != 0 {
                                    format!(", stray CPU MPIDR {:#x} entered the payload", stray & MPIDR_MASK)
                                } else {
                                    String::new()
                                }
                            ),
                        );
                    }
                }
                RoundState::Broken => fail(
                    ctx,
                    &format!(
                        "{}: round {}: pen state {s}, payload record entries {} (pen parks before: {})",
                        t.cpu.name, t.round, rec.entries, t.base_parks
                    ),
                ),
            }
        }
    }
    let elapsed = timer::ticks().wrapping_sub(t0);
    // Final state: every secondary PARKED, counters advanced by exactly `rounds`, release word 0.
    for t in &tracks {
        let s = read_state(t.state_addr);
        civac(t.cpu.release, 8);
        let w = rd(t.cpu.release as *const u64);
        let parks = s.parks.wrapping_sub(t.base_parks);
        let rels = s.releases.wrapping_sub(t.base_releases);
        if s.status != SlotStatus::Parked
            || parks != rounds
            || rels != rounds
            || s.last_entry != entry
            || s.el != u64::from(el)
            || s.mpidr_seen != t.cpu.mpidr
            || w != 0
        {
            fail(
                ctx,
                &format!(
                    "{}: after {rounds} rounds: pen state {s} (parks +{parks}, releases +{rels}), release word {w:#x}",
                    t.cpu.name
                ),
            );
        }
        ok(&format!(
            "{} MPIDR {:#x}: {rounds} entries at EL{el} with x0..x3 = 0, pen parks +{parks} releases +{rels}, PARKED, release word 0",
            t.cpu.name, t.cpu.mpidr
        ));
    }
    let stray = rd(rt::PAYLOAD_STRAY.get());
    if stray != 0 {
        fail(
            ctx,
            &format!(
                "a CPU with MPIDR {:#x} entered the payload without a cpu node",
                stray & MPIDR_MASK
            ),
        );
    }
    println!(
        "{}",
        timing_line(
            tracks.len(),
            args.rounds,
            timer::ticks_to_us(elapsed),
            timer::ticks_to_us(slowest)
        )
    );
    match latency.verdict(args.max_release_us) {
        Ok(line) => ok(&line),
        Err(e) => fail(ctx, &e),
    }
    if gic_checked {
        ok("every entry found its timer off and no pen GIC state (timer and SGI 15 disabled, not pending, CPU interface off, priority mask 0)");
    } else {
        ok("every entry found its timer off (no GIC to check)");
    }
    args.rounds
}

/// `payload.next=loader`: copy the loader.bin we were given as initrd to a free 2 MiB-aligned
/// base (see [`choose_chain_dest`]), check it, clean it to PoC and enter it like kexec would
/// with `--dtb=/sys/firmware/fdt`: x0 = the DTB we were given (unchanged: it still carries the
/// pen's /memreserve/ and the spin-table properties), x1..x3 = 0, MMU off, DAIF masked. The
/// secondaries stay PARKED in the pen for the new loader to reclaim.
fn chain(ctx: &Ctx, info: &DtInfo, dtb: u64, st: &SpinTable, handoff: Handoff) -> ! {
    let ctx = &Ctx {
        next: Next::Stop,
        ..*ctx
    };
    let Some(rd_region) = info.chosen.initrd else {
        fail(
            ctx,
            "payload.next=loader needs loader.bin as the initrd (no /chosen/linux,initrd-start)",
        );
    };
    if rd_region.size < 64 || !rd_region.base.is_multiple_of(8) {
        fail(
            ctx,
            &format!("initrd {rd_region}: not an 8-byte aligned arm64 Image"),
        );
    }
    let head = snapshot(rd_region.base, 64);
    let image_size = match image_footprint(&head) {
        Ok(s) => s,
        Err(e) => fail(ctx, &format!("initrd {rd_region}: {e}")),
    };
    if image_size < rd_region.size {
        fail(
            ctx,
            &format!("initrd {rd_region}: image_size {image_size:#x} is smaller than the file"),
        );
    }
    let (fp_start, fp_end) = rt::footprint();
    let mut avoid: Vec<Region> = info.memreserve.clone();
    avoid.extend(info.reserved_memory.iter().map(|r| r.region));
    avoid.push(Region::new(dtb, info.totalsize as u64));
    avoid.push(rd_region);
    avoid.push(Region::new(fp_start, fp_end - fp_start));
    avoid.push(st.pen);
    let above = fp_end.max(rd_region.end());
    let Some(dest) = choose_chain_dest(&info.memory, &avoid, image_size, CHAIN_ALIGN, above) else {
        fail(
            ctx,
            &format!("no free 2 MiB-aligned {image_size:#x} bytes in /memory for the next loader"),
        );
    };
    println!(
        "PAYLOAD: chain: loader.bin {:#x} bytes (image_size {image_size:#x}) {:#x} -> {dest:#x}, dtb {dtb:#x}",
        rd_region.size, rd_region.base
    );
    // Push out any dirty line a cached previous owner left over the destination, so nothing is
    // written back over the copy later; then copy with 64-bit uncached stores.
    civac(dest, image_size);
    let words = rd_region.size.div_ceil(8);
    for i in 0..words {
        let v = rd((rd_region.base + i * 8) as *const u64);
        wr((dest + i * 8) as *mut u64, v);
    }
    for i in 0..words {
        let a = rd((rd_region.base + i * 8) as *const u64);
        let b = rd((dest + i * 8) as *const u64);
        if a != b {
            fail(ctx, &format!("chain: copy differs at {:#x}", dest + i * 8));
        }
    }
    let copied = snapshot(dest, 64);
    if let Err(e) = image_footprint(&copied) {
        fail(ctx, &format!("chain: copy at {dest:#x}: {e}"));
    }
    let (dtb, extra) = break_handoff(handoff, info, dtb, st, dest, words * 8);
    println!("PAYLOAD: entering loader at {dest:#x} (x0={dtb:#x}, x1..x3=0, MMU off, DAIF masked)");
    // SAFETY: `dest` holds a verified arm64 Image; the handoff cleans it (and a DTB copy) to
    // PoC, and nothing of ours is used after the branch.
    unsafe { arch::handoff::handoff(dest, dtb, &[(dest, words * 8), extra], false) }
}

/// `payload.handoff=...`: breaks what the next loader is handed (see [`Handoff`]); returns x0
/// and a range to clean to PoC with the loader (empty if none).
fn break_handoff(
    handoff: Handoff,
    info: &DtInfo,
    dtb: u64,
    st: &SpinTable,
    dest: u64,
    file_len: u64,
) -> (u64, (u64, u64)) {
    match handoff {
        Handoff::Plain => (dtb, (dest, 0)),
        Handoff::ScribblePen => {
            let base = st.pen.base;
            for off in (16..128).step_by(8) {
                wr((base + off) as *mut u64, 0xa5a5_a5a5_a5a5_a5a5);
            }
            civac(base, 128);
            println!("PAYLOAD: scribbled the pen header at {base:#x}: bytes 16..128 = 0xa5");
            (dtb, (dest, 0))
        }
        Handoff::DtbTotalsize(total) => {
            let w = rd(dtb as *const u64);
            wr(
                dtb as *mut u64,
                (w & 0xffff_ffff) | (u64::from(total.to_be()) << 32),
            );
            civac(dtb, 8);
            println!("PAYLOAD: DTB at {dtb:#x}: totalsize set to {total:#x}");
            (dtb, (dest, 0))
        }
        Handoff::DtbInLoader => {
            let len = (info.totalsize as u64).div_ceil(8) * 8;
            let at = (dest + file_len).next_multiple_of(0x1_0000);
            for i in 0..len / 8 {
                wr((at + i * 8) as *mut u64, rd((dtb + i * 8) as *const u64));
            }
            println!(
                "PAYLOAD: DTB copied into the next loader's footprint at {at:#x}..{:#x}",
                at + len
            );
            (at, (at, len))
        }
    }
}
