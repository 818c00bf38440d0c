#![no_std]
extern crate alloc;
pub mod bootconf;
pub mod bootstage;
pub mod devspec;
pub mod distro;
pub mod dt;
pub mod dtfix;
pub mod envstore;
pub mod gzip;
pub mod image;
pub mod memmap;
pub mod overlay;
pub mod pen;
pub mod plan;
pub mod psci;
pub mod uimage;
pub mod wake;
