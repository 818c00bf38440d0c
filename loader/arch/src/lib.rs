//! parkboot's arm64 layer, shared by the loader (`loader/src/main.rs`) and the bare-metal test
//! payload (`tests/payload`): the one copy of the code that touches the CPU.
//!
//! - `entry.S`: the arm64 Image header, the boot CPU's entry (EL2/EL1 reset, footprint
//!   invalidate, self-relocation, .bss, stack; then `rust_entry`) and the exception vectors;
//! - [`exceptions`]: the vectors' Rust side, the exception and panic reports, `probe_read_u32`;
//! - [`cpu`] (system registers, caches, barriers), [`timer`], [`uart`] (the polled PL011 and
//!   `print!`/`println!`), [`heap`] (the global allocator), [`mmu`] (identity map);
//! - [`psci`] (through the `smccc` crate), [`handoff`] (the one way out);
//! - `el3.S` and [`el3`]: parkboot from reset at EL3 — the flash → secure RAM copy, the
//!   secondaries' reset hold, the resident part's SMC vectors, CPU_ON's way into the
//!   non-secure world and CPU_OFF's way back into the pen (docs/psci.md);
//! - `pen.S` (the spin pen's CPU side) and [`gic`] (the boot CPU's sleep and the pen kicks);
//! - on the host too: [`gic_regs`] (the GIC register map) and [`wait`] (how a CPU waits, and
//!   what the boot CPU's sleep needs from a wake plan), which the host-tested library shares.
//!
//! It depends on nothing else of parkboot: callers pass plain values (addresses, a
//! [`wait::WakePlan`]). Only the boot CPU runs Rust in the loader; the payload's secondaries run
//! the entry, report and cache functions with the MMU off, so nothing here uses atomic
//! read-modify-write or locks.
#![no_std]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

extern crate alloc;

pub mod gic_regs;
pub mod wait;

#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod el3;
#[cfg(target_os = "none")]
pub mod exceptions;
#[cfg(target_os = "none")]
pub mod gic;
#[cfg(target_os = "none")]
pub mod handoff;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod psci;
#[cfg(target_os = "none")]
pub mod timer;
#[cfg(target_os = "none")]
pub mod uart;

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("entry.S"));
#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("pen.S"));
#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("el3.S"));
