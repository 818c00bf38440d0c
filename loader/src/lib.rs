#![no_std]
extern crate alloc;
pub mod dt;
pub mod image;
pub mod memmap;
