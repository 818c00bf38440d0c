//! Exception reporting. Any exception the loader does not expect prints a full
//! report (kind, EL, ESR with its class, ELR, FAR, SPSR, x0..x30) on the
//! console and stops the CPU in a WFE loop: never a silent hang, never a jump
//! into the unknown. The one expected exception is a data abort while a
//! `probe_read_u32` is in flight (used to look at an untrusted x0 before we
//! know where RAM is): it is skipped and reported to the prober.

use core::arch::asm;
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
    let (esr, far): (u64, u64);
    // SAFETY: reading syndrome registers of the current EL has no side effects.
    unsafe {
        if super::cpu::current_el() == 2 {
            asm!("mrs {}, esr_el2", "mrs {}, far_el2", out(reg) esr, out(reg) far, options(nomem, nostack));
        } else {
            asm!("mrs {}, esr_el1", "mrs {}, far_el1", out(reg) esr, out(reg) far, options(nomem, nostack));
        }
    }
    (esr, far)
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
    let name = KINDS.get(kind as usize).copied().unwrap_or("?");
    crate::println!(
        "\n*** parkboot: unexpected exception: {name} at EL{}",
        super::cpu::current_el()
    );
    crate::println!(
        "    ESR {esr:#018x} (EC {ec:#04x}: {})  ELR {:#018x}  FAR {far:#018x}  SPSR {:#010x}",
        ec_name(ec),
        frame.elr,
        frame.spsr
    );
    report_registers(&frame.x);
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
    super::uart::flush();
    loop {
        // SAFETY: masks interrupts and waits; no memory effects.
        unsafe { asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
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

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::println!("\n*** parkboot: PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        crate::println!("    at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let regs = [0u64; 31];
    let (esr, far) = read_esr_far();
    crate::println!(
        "    EL{} last ESR {esr:#x} FAR {far:#x}",
        super::cpu::current_el()
    );
    let _ = regs;
    halt("panic")
}
