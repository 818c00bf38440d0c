//! parkboot: the bare-metal binary. Layers, each importing only those below:
//!
//! - `boot`: start-up, in order (entry → machine → shell → prompt);
//! - `commands` and the `cmd_*` handlers (parse → gather facts → plan →
//!   execute), with `exec` performing accepted plans;
//! - `platform`: the shell's `Platform` as a thin adapter over `machine`;
//! - `machine`: the owned parts — `console`, `firmware`, `devtree`, `memory`,
//!   `storage` (disks), `smp` (CPUs and pen), `sleep`, `stages` (timing),
//!   `footprint`;
//! - `arch`: the only target-only code.
//!
//! Every decision is made by the host-tested library (`loader` crate).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
mod cmd_boot;
#[cfg(target_os = "none")]
mod cmd_cpus;
#[cfg(target_os = "none")]
mod cmd_info;
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
mod platform;
#[cfg(target_os = "none")]
mod sleep;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod stages;
#[cfg(target_os = "none")]
mod storage;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("parkboot runs bare-metal: build it with `cargo xtask build`");
}
