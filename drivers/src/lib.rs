#![cfg_attr(not(test), no_std)]
extern crate alloc;

pub mod block;
pub mod fs;
pub mod net;
pub mod part;
