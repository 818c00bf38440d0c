//! parkboot test payload: the bare-metal binary. On the host this is a stub;
//! the logic worth testing there lives in the library (`src/lib.rs`).
//!
//! The payload runs with the MMU off on every CPU (so: no atomic
//! read-modify-write anywhere, only aligned accesses — the target has
//! +strict-align — and explicit cache maintenance on every shared word).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
use arch::println;

#[cfg(target_os = "none")]
mod probe;
#[cfg(target_os = "none")]
mod rt;
#[cfg(target_os = "none")]
mod run;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the payload runs bare-metal: `cargo xtask test` builds target/payload.bin");
}
