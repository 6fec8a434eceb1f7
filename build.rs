//! Gives `libddaebm.so` the SONAME `libddaebm.so`, so programs linked against it by path record
//! just the file name and find the library through their rpath or `LD_LIBRARY_PATH`.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libddaebm.so");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
