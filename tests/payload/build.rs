//! Passes the payload's link script, only for the bare-metal target (the host
//! build of `src/main.rs` is a stub and links normally).
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "aarch64-unknown-none" {
        let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
        let ld = dir.join("payload.ld");
        println!("cargo:rustc-link-arg-bins=-T{}", ld.display());
        println!("cargo:rerun-if-changed={}", ld.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/secondary.S");
}
