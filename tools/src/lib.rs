//! The xtask library: what the `cargo xtask` binary and the QEMU tests share — building the
//! bare-metal images, the first-minute setup, the QEMU serial driver, test-kernel fetching, disk
//! images and edited device trees.
pub mod build;
pub mod cmd;
pub mod disk;
pub mod elf;
pub mod kernel;
pub mod lava;
pub mod qemu;
pub mod setup;
pub mod virt_dt;

use std::path::{Path, PathBuf};

/// Where the workspace lives.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ has a parent directory")
        .to_path_buf()
}
