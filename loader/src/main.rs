//! parkboot: the bare-metal binary. The target-only code is the arch crate
//! (`loader/arch`, named `crate::arch` here); `boot` is the start-up flow that
//! glues it and the host-tested library together.
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
#[cfg(all(target_os = "none", feature = "cmd-exception"))]
mod cmd_exception;
#[cfg(target_os = "none")]
mod cmd_storage;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod storage;

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
