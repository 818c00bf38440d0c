//! Target-only code: entry assembly, exception vectors, MMU and caches,
//! console, timer, PSCI calls. Everything else in the loader is plain Rust.
pub mod cpu;
pub mod exceptions;
pub mod gic;
pub mod handoff;
pub mod heap;
pub mod mmu;
pub mod psci;
pub mod timer;
pub mod uart;

core::arch::global_asm!(include_str!("entry.S"));
core::arch::global_asm!(include_str!("pen.S"));

// Where a pen CPU is released to when `cpu_method=psci` hands CPUs back to
// firmware: PSCI CPU_OFF through the conduit (never returns on success).
core::arch::global_asm!(
    ".section .text.psci_off, \"ax\"",
    ".global psci_off_smc",
    "psci_off_smc:",
    "    movz w0, #0x0002",
    "    movk w0, #0x8400, lsl #16",
    "    smc #0",
    "1:  wfe",
    "    b 1b",
    ".global psci_off_hvc",
    "psci_off_hvc:",
    "    movz w0, #0x0002",
    "    movk w0, #0x8400, lsl #16",
    "    hvc #0",
    "2:  wfe",
    "    b 2b",
);
