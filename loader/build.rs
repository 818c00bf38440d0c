fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "aarch64-unknown-none" {
        let dir =
            std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../linker");
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            dir.join("loader.ld").display()
        );
        println!("cargo:rerun-if-changed={}", dir.join("loader.ld").display());
    }
}
