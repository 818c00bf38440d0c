//! parkboot: the bare-metal binary. Layers, each importing only those below:
//!
//! - `boot`: start-up, in order (entry → machine → shell → prompt);
//! - `commands` and the `cmd_*` handlers (parse → gather facts → plan →
//!   execute), with `exec` performing accepted plans;
//! - `platform`: the shell's `Platform` as a thin adapter over `machine`;
//! - `machine`: the owned parts — `console`, `firmware`, `devtree`, `memory`,
//!   `storage` (disks), `smp` (CPUs and pen), `sleep`, `stages` (timing),
//!   `footprint`;
//! - `arch`: the only target-only code — the arch crate (`loader/arch`, shared
//!   with the test payload), named `crate::arch` here.
//!
//! Every decision is made by the host-tested library (`loader` crate).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

/// The arch crate, at `crate::arch` where the glue expects it.
#[cfg(target_os = "none")]
extern crate arch;
/// `println!` for the glue (`use crate::println`).
#[cfg(target_os = "none")]
use arch::println;

#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cmd_boot;
#[cfg(target_os = "none")]
mod cmd_cpus;
#[cfg(target_os = "none")]
mod cmd_distro;
#[cfg(all(target_os = "none", feature = "cmd-exception"))]
mod cmd_exception;
#[cfg(target_os = "none")]
mod cmd_fdt;
#[cfg(target_os = "none")]
mod cmd_info;
#[cfg(target_os = "none")]
mod cmd_net;
#[cfg(target_os = "none")]
mod cmd_storage;
#[cfg(target_os = "none")]
mod commands;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod devtree;
#[cfg(target_os = "none")]
mod exec;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod footprint;
#[cfg(target_os = "none")]
mod machine;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod net;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod resident;
#[cfg(target_os = "none")]
mod rng;
#[cfg(target_os = "none")]
mod sleep;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod stages;
#[cfg(target_os = "none")]
mod storage;
#[cfg(target_os = "none")]
mod virtio;

/// A panic is reported (message, location, registers, backtrace) and the CPU
/// stops (docs/robustness.md, guarantee 1).
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::exceptions::report_panic(info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("parkboot runs bare-metal: build it with `cargo xtask build`");
}
