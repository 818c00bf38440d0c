//! parkboot: the bare-metal binary. `arch` is the only target-only code;
//! `boot` is the start-up flow that glues the host-tested library together.
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
mod cmd_storage;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod storage;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("parkboot runs bare-metal: build it with `cargo xtask build`");
}
