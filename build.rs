//! Build script: records the source revision in the binary (`flowhmc --version` and every
//! summary.json), so an ensemble can be traced to the code that made it, and builds the C++
//! side of the cxx bridge (`src/ffi/cxx_bridge.rs`; its generated header is what
//! `include/flowhmc/flowhmc.hpp` includes, see README.md for the include path). With the
//! feature `cuda` it also builds the CUDA kernel sources as host C++
//! (`src/backend/cuda/host/emulation.cpp`), which the CPU tests of the kernels launch.

use std::process::Command;

fn main() {
    let revision = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FLOWHMC_REVISION={revision}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");

    cxx_build::bridge("src/ffi/cxx_bridge.rs").std("c++17").compile("flowhmc-cxxbridge");
    println!("cargo:rerun-if-changed=src/ffi/cxx_bridge.rs");

    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        cc::Build::new()
            .cpp(true)
            .std("c++20")
            .file("src/backend/cuda/host/emulation.cpp")
            .compile("flowhmc-cuda-emulation");
        println!("cargo:rustc-link-lib=pthread");
        println!("cargo:rerun-if-changed=src/backend/cuda/host");
        println!("cargo:rerun-if-changed=src/backend/cuda/kernels");
    }
}
