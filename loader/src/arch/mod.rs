//! Target-only code: entry assembly, exception vectors, MMU and caches,
//! console, timer, PSCI calls. Everything else in the loader is plain Rust.
pub mod cpu;
pub mod exceptions;
pub mod handoff;
pub mod heap;
pub mod mmu;
pub mod psci;
pub mod timer;
pub mod uart;

core::arch::global_asm!(include_str!("entry.S"));
