//! Start-up flow of the boot CPU: console, heap, DT, MMU, memory map, env,
//! shell. Everything it decides comes from the host-tested library (`loader`
//! crate: dt, memmap, image) and the board data (`boards`).

use crate::arch::{cpu, exceptions, heap, mmu, psci, timer, uart};
use crate::println;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use boards::Board;
use loader::dt::{self, DtInfo};
use loader::memmap::{LoadAddrs, MemMap, Owner};

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
    static __heap_start: u8;
    static __heap_end: u8;
}

/// Largest incoming DTB we accept (booting.rst: the DTB must not exceed 2 MiB;
/// we are lenient up to 8 MiB for trees that carry padding).
const MAX_DTB: usize = 8 << 20;

/// Everything the loader knows about itself and the machine.
pub struct State {
    pub el: u8,
    pub base: u64,
    pub image_size: u64,
    pub entry_ticks: u64,
    pub ready_ticks: u64,
    pub dtb: Option<(u64, usize)>,
    pub dt: Option<DtInfo>,
    pub dt_error: Option<String>,
    pub board: &'static Board,
    pub map: MemMap,
    pub load: Option<LoadAddrs>,
    pub psci: Option<psci::Conduit>,
    pub console_base: u64,
    pub map_errors: usize,
    pub disks: Vec<crate::storage::Disk>,
    pub disks_scanned: bool,
    /// `fdt addr` target (None: the DT the loader was given).
    pub fdt_work: Option<u64>,
    /// The pen and the CPUs (None until gathered, or if gathering failed).
    pub smp: Option<crate::smp::Smp>,
    pub smp_error: Option<String>,
    /// How waiting CPUs sleep (the pen's wake block; `gic::init` for the boot CPU).
    pub wake: loader::wake::WakeConfig,
    /// Why waiting CPUs cannot sleep on a timer interrupt, if they cannot.
    pub wake_note: Option<String>,
}

static mut STAGES: loader::bootstage::Bootstage = loader::bootstage::Bootstage::new();

/// Records a bootstage mark now.
pub fn mark(name: &'static str) {
    mark_at(name, timer::ticks(), 0);
}

pub fn mark_span(name: &'static str, start: u64, end: u64, bytes: u64) {
    // SAFETY: only the boot CPU runs Rust.
    unsafe { (*core::ptr::addr_of_mut!(STAGES)).mark_span(name, start, end, bytes) }
}

pub fn mark_at(name: &'static str, ticks: u64, bytes: u64) {
    // SAFETY: only the boot CPU runs Rust.
    unsafe { (*core::ptr::addr_of_mut!(STAGES)).mark_bytes(name, ticks, bytes) }
}

pub fn stages() -> &'static loader::bootstage::Bootstage {
    // SAFETY: only the boot CPU runs Rust; no mark is taken while this is read.
    unsafe { &*core::ptr::addr_of!(STAGES) }
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Looks at x0: returns the DTB's (address, totalsize) if a plausible header
/// is there, or a one-line reason.
fn probe_dtb(dtb: u64) -> Result<(u64, usize), String> {
    if dtb == 0 {
        return Err("x0 is 0".into());
    }
    if !dtb.is_multiple_of(8) {
        return Err(format!("x0 {dtb:#x} is not 8-byte aligned"));
    }
    let read_be = |a: u64| exceptions::probe_read_u32(a as usize).map(u32::from_be);
    let magic = read_be(dtb).ok_or_else(|| format!("nothing readable at x0 {dtb:#x}"))?;
    if magic != 0xd00d_feed {
        return Err(format!("bad magic {magic:#010x} at x0 {dtb:#x}"));
    }
    let total = read_be(dtb + 4).ok_or("header unreadable")? as usize;
    if !(40..=MAX_DTB).contains(&total) {
        return Err(format!("implausible totalsize {total:#x}"));
    }
    // The whole blob must be readable before we hand a slice of it to the parser.
    let last = (dtb + total as u64 - 4) & !3;
    read_be(last).ok_or_else(|| format!("totalsize {total:#x} runs past readable memory"))?;
    Ok((dtb, total))
}

#[no_mangle]
extern "C" fn rust_entry(x0: u64, entry_ticks: u64, el: u64, x1: u64, x2: u64, x3: u64) -> ! {
    mark_at("entry", entry_ticks, 0);
    let board0: &'static Board = boards::DEFAULT_BOARD;
    uart::set_base(board0.default_uart.unwrap_or(0) as usize);
    // SAFETY: linker-provided symbols.
    let (img_start, img_end, stack_lo, stack_hi, heap_lo, heap_hi) = unsafe {
        (
            sym(&__image_start),
            sym(&__image_end),
            sym(&__stack_bottom),
            sym(&__stack_top),
            sym(&__heap_start),
            sym(&__heap_end),
        )
    };
    // SAFETY: the heap range is inside our footprint and used by nothing else.
    unsafe { heap::init(heap_lo as usize, heap_hi as usize) };

    mark("heap ready");
    // Phase 1: parse the untrusted DT into a typed description.
    let mut dt_error = None;
    let mut dtb = None;
    let mut info = None;
    match probe_dtb(x0) {
        Ok((addr, total)) => {
            // SAFETY: probe_dtb read the first and last word of this range.
            let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, total) };
            match dt::parse(bytes) {
                Ok(i) => {
                    dtb = Some((addr, total));
                    info = Some(i);
                }
                Err(e) => dt_error = Some(format!("{e}")),
            }
        }
        Err(e) => dt_error = Some(e),
    }

    mark("DT parsed");
    let board = match &info {
        Some(i) => {
            let compat: Vec<&str> = i.compatible.iter().map(String::as_str).collect();
            boards::select(&compat)
        }
        None => board0,
    };

    // Console: /chosen/stdout-path when it is a PL011, else the board default.
    let mut console = board.default_uart.or(board0.default_uart).unwrap_or(0);
    if let Some(c) = info.as_ref().and_then(|i| i.console.as_ref()) {
        if c.compatible.iter().any(|s| s == "arm,pl011") {
            if let Some(r) = c.reg {
                console = r.base;
            }
        }
    }

    // Phase 2: the identity map. RAM from the DT (or the board's fallback,
    // or just our own footprint); device regions from every DT `reg`.
    let own = (img_start, img_end - img_start);
    let mut ram: Vec<(u64, u64)> = match &info {
        Some(i) if !i.memory.is_empty() => i.memory.iter().map(|r| (r.base, r.size)).collect(),
        _ => board.quirks.fallback_ram.into_iter().collect(),
    };
    if !ram
        .iter()
        .any(|&(b, s)| b <= own.0 && own.0 + own.1 <= b.saturating_add(s))
    {
        ram.push(own);
    }
    let mut devices: Vec<(u64, u64)> = Vec::new();
    if let Some(i) = &info {
        devices.extend(
            i.mmio
                .iter()
                .filter(|m| m.region.size > 0)
                .map(|m| (m.region.base, m.region.size)),
        );
    }
    if console != 0 {
        devices.push((console, 0x1000));
    }
    let map_errors = mmu::enable(&mmu::Layout2 {
        normal: &ram,
        device: &devices,
    });
    uart::set_base(console as usize);
    mark("MMU on");
    cpu::enable_event_stream();

    // Phase 3: the memory map and its claims.
    let banks: Vec<dt::Region> = ram
        .iter()
        .map(|&(base, size)| dt::Region { base, size })
        .collect();
    let mut map = MemMap::new(&banks);
    let mut warn: Vec<String> = Vec::new();
    let heap_claim = (heap_lo, heap_hi - heap_lo);
    let stack_claim = (stack_lo, stack_hi - stack_lo);
    // The image claim covers everything but the stack and heap, which are claimed by name.
    for (start, size, owner) in [
        (img_start, stack_lo - img_start, Owner::LoaderImage),
        (stack_claim.0, stack_claim.1, Owner::LoaderStack),
        (heap_claim.0, heap_claim.1, Owner::LoaderHeap),
        (heap_hi, img_end - heap_hi, Owner::LoaderImage),
    ] {
        if size == 0 {
            continue;
        }
        if let Err(e) = map.claim(start, size, owner) {
            warn.push(format!("{e}"));
        }
    }
    if let Some((addr, total)) = dtb {
        if let Err(e) = map.claim(addr, total as u64, Owner::IncomingDt) {
            warn.push(format!("{e}"));
        }
    }
    if let Some(i) = &info {
        for (n, r) in i.memreserve.iter().enumerate() {
            map.reserve(r.base, r.size, &Owner::MemReserve(n));
        }
        for r in &i.reserved_memory {
            map.reserve(
                r.region.base,
                r.region.size,
                &Owner::ReservedMemory(r.name.clone()),
            );
        }
    }
    let load = map.default_load_addresses();
    mark("memory map");

    let psci = info
        .as_ref()
        .and_then(|i| i.psci.as_ref())
        .map(|p| match p.conduit {
            dt::Conduit::Smc => psci::Conduit::Smc,
            dt::Conduit::Hvc => psci::Conduit::Hvc,
        });

    // Say who we are, and what went wrong, before anything else.
    println!();
    println!(
        "parkboot {} (EL{el}) at {img_start:#x}, {} KiB in place",
        env!("CARGO_PKG_VERSION"),
        (img_end - img_start) / 1024
    );
    if x1 != 0 || x2 != 0 || x3 != 0 {
        println!("warning: entered with x1-x3 = {x1:#x} {x2:#x} {x3:#x} (booting.rst wants 0)");
    }
    match (&dt_error, dtb) {
        (Some(e), _) => println!(
            "error: no valid device tree at x0 ({e}); using board {} defaults",
            board.name
        ),
        (None, Some((a, t))) => {
            if let Some(i) = &info {
                let mem: u64 = i.memory.iter().map(|r| r.size).sum();
                println!(
                    "DT at {a:#x} ({t} bytes): {}, {} MiB RAM, {} CPU(s), board {}",
                    i.model.as_deref().unwrap_or("?"),
                    mem >> 20,
                    i.cpus.len(),
                    board.name
                );
                for w in i.warnings.iter().take(8) {
                    println!("DT warning: {w}");
                }
            }
        }
        _ => {}
    }
    for w in &warn {
        println!("warning: {w}");
    }
    if map_errors != 0 {
        println!("warning: {map_errors} region(s) could not be mapped");
    }

    let mut st = State {
        el: cpu::current_el(),
        base: img_start,
        image_size: img_end - img_start,
        entry_ticks,
        ready_ticks: 0,
        dtb,
        dt: info,
        dt_error,
        board,
        map,
        load,
        psci,
        console_base: console,
        map_errors,
        disks: Vec::new(),
        disks_scanned: false,
        fdt_work: None,
        smp: None,
        smp_error: None,
        wake: loader::wake::WakeConfig::wfe_only(),
        wake_note: None,
    };
    let _ = el;
    crate::platform::run(&mut st)
}

impl State {
    pub fn us_since_entry(&self, ticks: u64) -> u64 {
        timer::ticks_to_us(ticks.saturating_sub(self.entry_ticks))
    }

    /// The DT's PSCI conduit, if the loader can call it from its EL.
    pub fn usable_psci(&self) -> Option<psci::Conduit> {
        self.psci.filter(|c| psci::usable(*c))
    }
}

extern "C" {
    static __image_file_end: u8;
}

/// Bytes of loader.bin (the file part of the footprint).
pub fn file_size() -> u64 {
    // SAFETY: linker-provided symbols.
    unsafe { sym(&__image_file_end) - sym(&__image_start) }
}

/// The env variables derived from the machine: default load addresses (from
/// the memory map) and where the DT the loader was given lives.
pub fn load_env(st: &State) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if let Some(l) = &st.load {
        v.push(("kernel_addr_r", format!("{:#x}", l.kernel_addr_r)));
        v.push(("fdt_addr_r", format!("{:#x}", l.fdt_addr_r)));
        v.push(("scriptaddr", format!("{:#x}", l.scriptaddr)));
        v.push(("pxefile_addr_r", format!("{:#x}", l.pxefile_addr_r)));
        v.push(("kernel_comp_addr_r", format!("{:#x}", l.kernel_comp_addr_r)));
        v.push(("kernel_comp_size", format!("{:#x}", l.kernel_comp_size)));
        v.push(("ramdisk_addr_r", format!("{:#x}", l.ramdisk_addr_r)));
        v.push(("loadaddr", format!("{:#x}", l.kernel_addr_r)));
    }
    if let Some((a, _)) = st.dtb {
        v.push(("fdtcontroladdr", format!("{a:#x}")));
    }
    v
}
