//! Build script: one linker flag for the release binary only, which `.cargo/config.toml`
//! cannot scope (its rustflags reach every target, tests included).
//!
//! `--no-eh-frame-hdr` drops the 20 KB binary-search index over the unwind tables, which keeps
//! the static binary under 1.5 MiB. The index serves only stack unwinding, which the release
//! binary (`panic = "abort"`) never does: a panic still prints its message and aborts. Test
//! harnesses do unwind (a failed assertion is reported, then the next test runs), and without
//! the index their first panic would abort the whole binary, so they keep it, and so does any
//! debug build.

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if release && gnu_linux {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-eh-frame-hdr");
    }
}
