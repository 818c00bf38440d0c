//! The xtask library: pieces the `cargo xtask` binary and the QEMU tests
//! share (test-kernel fetching, disk images, ELF conversion).
pub mod disk;
pub mod elf;
pub mod kernel;
pub mod payload;
pub mod virt_dt;
