//! Exception reporting (the Rust side of the vectors in `entry.S`). Any exception nobody
//! expects is handed to the reporter: by default a full report (kind, EL, ESR with its class,
//! ELR, FAR, SPSR, x0..x30, backtrace) on the console, then the CPU stops in a WFE loop: never a
//! silent hang, never a jump into the unknown. A program may install its own reporter
//! ([`set_reporter`]; the test payload prints its verdict lines). The one expected exception is
//! a data abort while a `probe_read_u32` is in flight (used to look at an untrusted x0 before
//! we know where RAM is): it is skipped and reported to the prober.
//!
//! The panic report ([`report_panic`]) is here too; each program names it in its own
//! `#[panic_handler]`.

use aarch64_cpu::registers::{Readable, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2};
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

static PROBING: AtomicBool = AtomicBool::new(false);
static PROBE_FAULTED: AtomicBool = AtomicBool::new(false);

const KINDS: [&str; 16] = [
    "Synchronous (current EL, SP0)",
    "IRQ (current EL, SP0)",
    "FIQ (current EL, SP0)",
    "SError (current EL, SP0)",
    "Synchronous (current EL, SPx)",
    "IRQ (current EL, SPx)",
    "FIQ (current EL, SPx)",
    "SError (current EL, SPx)",
    "Synchronous (lower EL, AArch64)",
    "IRQ (lower EL, AArch64)",
    "FIQ (lower EL, AArch64)",
    "SError (lower EL, AArch64)",
    "Synchronous (lower EL, AArch32)",
    "IRQ (lower EL, AArch32)",
    "FIQ (lower EL, AArch32)",
    "SError (lower EL, AArch32)",
];

/// An exception nobody expected, as the vectors saw it.
pub struct Exception<'a> {
    /// Vector index 0..16 (current EL SP0/SPx, lower EL AArch64/AArch32 × sync/IRQ/FIQ/SError).
    pub kind: u64,
    pub esr: u64,
    pub far: u64,
    /// The registers at the exception (ELR and SPSR included).
    pub frame: &'a Frame,
}

impl Exception<'_> {
    /// "Synchronous (current EL, SPx)" and so on.
    pub fn kind_name(&self) -> &'static str {
        KINDS.get(self.kind as usize).copied().unwrap_or("?")
    }

    /// The exception class (ESR bits 31:26).
    pub fn ec(&self) -> u64 {
        self.esr >> 26
    }
}

/// Reports an unexpected exception; never returns.
pub type Reporter = fn(&Exception<'_>) -> !;

struct ReporterCell(UnsafeCell<Reporter>);
// SAFETY: written once by the boot CPU before any other CPU can take an exception
// (`set_reporter`), read by the vectors; an aligned word, accessed with volatile loads/stores.
unsafe impl Sync for ReporterCell {}
static REPORTER: ReporterCell = ReporterCell(UnsafeCell::new(report));

/// Replaces the default report ([`report`]). Call on the boot CPU before any other CPU may run
/// the vectors (for the payload: before the first release).
pub fn set_reporter(r: Reporter) {
    // SAFETY: see `ReporterCell`.
    unsafe { REPORTER.0.get().write_volatile(r) };
}

fn reporter() -> Reporter {
    // SAFETY: see `ReporterCell`.
    unsafe { REPORTER.0.get().read_volatile() }
}

fn ec_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown reason",
        0x01 => "WFI/WFE trapped",
        0x07 => "FP/SIMD access trapped",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "system register access trapped",
        0x20 => "instruction abort (lower EL)",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort (lower EL)",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x3c => "BRK",
        _ => "other",
    }
}

fn read_esr_far() -> (u64, u64) {
    match crate::cpu::current_el() {
        3 => {
            let (esr, far): (u64, u64);
            // SAFETY: reading the EL3 syndrome registers at EL3 (not in aarch64-cpu).
            unsafe {
                core::arch::asm!("mrs {}, esr_el3", out(reg) esr, options(nomem, nostack));
                core::arch::asm!("mrs {}, far_el3", out(reg) far, options(nomem, nostack));
            }
            (esr, far)
        }
        2 => (ESR_EL2.get(), FAR_EL2.get()),
        _ => (ESR_EL1.get(), FAR_EL1.get()),
    }
}

#[no_mangle]
extern "C" fn exception_handler(kind: u64, frame: &mut Frame) {
    let (esr, far) = read_esr_far();
    let ec = esr >> 26;
    if kind == 4 && ec == 0x25 && PROBING.load(Ordering::Relaxed) {
        PROBE_FAULTED.store(true, Ordering::Relaxed);
        frame.elr += 4;
        return;
    }
    reporter()(&Exception {
        kind,
        esr,
        far,
        frame,
    })
}

/// The default report: what happened, the registers, the backtrace; then [`halt`].
pub fn report(e: &Exception<'_>) -> ! {
    crate::println!(
        "\n*** parkboot: unexpected exception: {} at EL{}",
        e.kind_name(),
        crate::cpu::current_el()
    );
    crate::println!(
        "    ESR {:#018x} (EC {:#04x}: {})  ELR {:#018x}  FAR {:#018x}  SPSR {:#010x}",
        e.esr,
        e.ec(),
        ec_name(e.ec()),
        e.frame.elr,
        e.far,
        e.frame.spsr
    );
    report_registers(&e.frame.x);
    backtrace(Some(e.frame.elr), e.frame.x[29]);
    halt("stopped after unexpected exception");
}

pub fn report_registers(x: &[u64; 31]) {
    for (i, pair) in x.chunks(4).enumerate() {
        crate::print!("   ");
        for (j, v) in pair.iter().enumerate() {
            let n = i * 4 + j;
            crate::print!(" x{n:<2} {v:016x}");
        }
        crate::println!();
    }
}

/// Stops this CPU for good after saying why. Never jumps anywhere.
pub fn halt(why: &str) -> ! {
    crate::println!("*** parkboot: {why}; CPU halted (reset the board).");
    crate::uart::flush();
    crate::cpu::stop()
}

/// Reads a u32 at `addr`, returning None instead of faulting when nothing
/// answers there (external abort / translation fault).
pub fn probe_read_u32(addr: usize) -> Option<u32> {
    if !addr.is_multiple_of(4) {
        return None;
    }
    PROBE_FAULTED.store(false, Ordering::Relaxed);
    PROBING.store(true, Ordering::Relaxed);
    let mut v: u32;
    // SAFETY: the load is a single instruction; if it aborts, the handler skips it.
    unsafe {
        asm!("mov {v:w}, #0", "ldr {v:w}, [{a}]", "dsb sy", a = in(reg) addr, v = out(reg) v, options(nostack));
    }
    PROBING.store(false, Ordering::Relaxed);
    if PROBE_FAULTED.load(Ordering::Relaxed) {
        None
    } else {
        Some(v)
    }
}

/// The panic report: message, location, EL, SP, the registers and the backtrace; then
/// [`halt`]. Inlined into the caller's `#[panic_handler]`, so the registers are those at the
/// handler's entry.
#[inline(always)]
pub fn report_panic(info: &core::panic::PanicInfo) -> ! {
    // The registers first, before printing disturbs them: they are those of
    // the panic handler's entry (x29/x30/sp lead back to the panicking code;
    // the backtrace below walks that chain).
    let mut x = [0u64; 31];
    let sp: u64;
    // SAFETY: stores the general registers into `x` (a local array); no other
    // memory is touched and no register is modified except the base.
    unsafe {
        asm!(
            "stp x0, x1, [{b}, #0]",
            "stp x2, x3, [{b}, #16]",
            "stp x4, x5, [{b}, #32]",
            "stp x6, x7, [{b}, #48]",
            "stp x8, x9, [{b}, #64]",
            "stp x10, x11, [{b}, #80]",
            "stp x12, x13, [{b}, #96]",
            "stp x14, x15, [{b}, #112]",
            "stp x16, x17, [{b}, #128]",
            "stp x18, x19, [{b}, #144]",
            "stp x20, x21, [{b}, #160]",
            "stp x22, x23, [{b}, #176]",
            "stp x24, x25, [{b}, #192]",
            "stp x26, x27, [{b}, #208]",
            "stp x28, x29, [{b}, #224]",
            "str x30, [{b}, #240]",
            "mov {sp}, sp",
            b = in(reg) x.as_mut_ptr(),
            sp = out(reg) sp,
            options(nostack, preserves_flags),
        );
    }
    crate::println!("\n*** parkboot: PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        crate::println!("    at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let (esr, far) = read_esr_far();
    crate::println!(
        "    EL{}  SP {sp:#018x}  last ESR {esr:#x} FAR {far:#x}",
        crate::cpu::current_el()
    );
    report_registers(&x);
    backtrace(None, x[29]);
    halt("panic")
}

/// `pc` (if given) and the call sites along the frame-pointer chain from
/// `fp` (the loader is built with frame pointers), as link-time addresses
/// for `addr2line -e target/aarch64-unknown-none/release/parkboot`. Every
/// frame must lie inside the primary stack and above the previous one, so a
/// corrupt chain ends the walk instead of faulting.
fn backtrace(pc: Option<u64>, mut fp: u64) {
    extern "C" {
        static __stack_bottom: u8;
        static __stack_top: u8;
        static __image_start: u8;
    }
    // Only the addresses of the linker symbols are taken.
    let (lo, hi, base) = (
        core::ptr::addr_of!(__stack_bottom) as u64,
        core::ptr::addr_of!(__stack_top) as u64,
        core::ptr::addr_of!(__image_start) as u64,
    );
    crate::print!("    backtrace (link addresses):");
    if let Some(pc) = pc {
        crate::print!(" {:#x}", pc.wrapping_sub(base));
    }
    for _ in 0..16 {
        if fp < lo || fp.saturating_add(16) > hi || !fp.is_multiple_of(16) {
            break;
        }
        // SAFETY: `fp` is a 16-byte aligned address inside the stack, which
        // is mapped normal memory; reading it has no side effects.
        let (next, lr) = unsafe {
            let p = fp as *const u64;
            (p.read_volatile(), p.add(1).read_volatile())
        };
        if lr == 0 {
            break;
        }
        crate::print!(" {:#x}", lr.wrapping_sub(base).wrapping_sub(4));
        if next <= fp {
            break;
        }
        fp = next;
    }
    crate::println!();
}
