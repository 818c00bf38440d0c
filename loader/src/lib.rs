#![no_std]
extern crate alloc;
pub mod bootconf;
pub mod bootstage;
pub mod distro;
pub mod devspec;
pub mod dt;
pub mod dtfix;
pub mod gzip;
pub mod image;
pub mod memmap;
pub mod pen;
pub mod overlay;
pub mod plan;
pub mod uimage;
pub mod wake;
