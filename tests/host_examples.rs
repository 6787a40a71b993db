//! The example hosts of cpp/ are compiled against include/ and the library this test run
//! built, and run (each checks its own plaquette against the library's, the refusals of bad
//! input and that its flow proposals move); their chains are compared with the same chain run
//! through the Rust API: the same seed gives the same chain from C, C++ and Rust.

mod common;

use common::SU3_HOST_PARAMETERS;
use flowhmc::ffi::{Context, HostSliceMut, UpdateReport};
use flowhmc::host::GaugeLayout;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding the static and shared libraries cargo built for this test run.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    assert!(
        deps.join("libflowhmc.so").is_file(),
        "no libflowhmc.so next to the test binary in {}",
        deps.display()
    );
    deps
}

/// How an example links the library.
enum Linking {
    /// The shared library (C hosts).
    Shared,
    /// The static library with its native dependencies, the link line of README.md (the C++
    /// side of the cxx bridge is in it: C hosts need -lstdc++ too).
    Static,
}

/// Compiles `source` with `compiler` (extra flags after it) against include/ and the library
/// and returns the executable.
fn build(compiler: &str, flags: &[&str], source: &str, name: &str, linking: Linking) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let libs = library_dir();
    let out = std::env::temp_dir().join(format!("flowhmc-{name}-{}.bin", std::process::id()));
    let mut command = Command::new(compiler);
    command.args(flags).arg("-I").arg(root.join("include"));
    // the generated bridge header and rust/cxx.h
    command.arg("-I").arg(Path::new(env!("OUT_DIR")).join("cxxbridge/include"));
    command.arg(root.join(source)).arg("-o").arg(&out);
    match linking {
        Linking::Shared => {
            command.arg(format!("-L{}", libs.display())).arg(format!("-Wl,-rpath,{}", libs.display()));
            command.args(["-lflowhmc", "-lm"]);
        }
        Linking::Static => {
            command.arg(libs.join("libflowhmc.a"));
            command.args(["-lstdc++", "-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"]);
        }
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run the compiler {compiler:?}: {e}"));
    assert!(status.success(), "{compiler} failed on {source}");
    out
}

/// Runs an example and returns its stdout lines; it must exit 0.
fn run(exe: &Path, args: &[&Path]) -> Vec<String> {
    // cargo's LD_LIBRARY_PATH may name a libflowhmc.so of an earlier `cargo build` first
    let output = Command::new(exe).args(args).env("LD_LIBRARY_PATH", library_dir()).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{} failed:\n{stdout}\n{}",
        exe.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_file(exe).ok();
    stdout.lines().map(String::from).collect()
}

/// The "trajectory N ACCEPTED DH PLAQUETTE" lines of an example.
fn trajectories(lines: &[String]) -> Vec<(bool, f64, f64)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("trajectory "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1] == "1", f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect()
}

fn as_tuples(reports: &[UpdateReport]) -> Vec<(bool, f64, f64)> {
    reports.iter().map(|r| (r.accepted, r.dh, r.plaquette)).collect()
}

/// Builds and runs the C host with the given linking; its output lines.
fn run_c_host(linking: Linking, name: &str) -> Vec<String> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let exe = build(&compiler, &["-std=c11", "-O2", "-Wall", "-Werror"], "cpp/c_host.c", name, linking);
    let dir = std::env::temp_dir().join(format!("flowhmc-{name}-{}.work", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lines = run(&exe, &[&dir]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(lines.last().map(String::as_str), Some("ok"), "{lines:?}");
    lines
}

#[test]
fn the_c_host_runs_the_rust_chain_its_refusals_hold_and_its_flow_updates_move() {
    let lines = run_c_host(Linking::Shared, "c-host");
    let from_c = trajectories(&lines);
    assert_eq!(from_c.len(), 3);
    assert_eq!(lines.iter().filter(|l| l.starts_with("u1 trajectory ")).count(), 10);
    // the static library with README.md's link line runs the same
    assert_eq!(run_c_host(Linking::Static, "c-host-static"), lines);

    let dims = [4, 4, 4, 4];
    let mut ctx = Context::new(&dims, SU3_HOST_PARAMETERS).unwrap();
    ctx.set_gauge_layout(&GaugeLayout::milc(4)).unwrap();
    let mut cold = vec![0.0; ctx.gauge_len()];
    for link in cold.chunks_mut(18) {
        [0, 8, 16].iter().for_each(|&k| link[k] = 1.0);
    }
    let from_rust = ctx.trajectories(HostSliceMut::F64(&mut cold), 3).unwrap();
    assert_eq!(from_c, as_tuples(&from_rust));
}

/// The parameters of cpp/cpp_host.cpp, with its model file.
fn cpp_host_parameters(model: &Path) -> String {
    let hmc = "[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 2.0\n\
               [update]\nkind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 10\n\
               [run]\nseed = 3\nthreads = 1\n";
    let flow = format!(
        "[flow]\nmodel = \"u1-equivariant\"\nlayers = 8\nhidden = [4]\n\
         [train]\nsteps = 30\nbatch = 16\nlearning_rate = 0.003\nseed = 5\noutput = {:?}\n",
        model.display().to_string()
    );
    format!("{hmc}{flow}")
}

#[test]
fn the_cpp_host_runs_hmc_then_flow_updates_as_the_rust_api_does() {
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let exe = build(
        &compiler,
        &["-std=c++17", "-O2", "-Wall", "-Werror"],
        "cpp/cpp_host.cpp",
        "cpp-host",
        Linking::Static,
    );
    let dir = std::env::temp_dir().join(format!("flowhmc-cpp-host-{}.work", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lines = run(&exe, &[&dir]);
    assert_eq!(lines.last().map(String::as_str), Some("ok"), "{lines:?}");
    let from_cpp = trajectories(&lines);
    assert_eq!(from_cpp.len(), 10);

    // the same chain through the Rust API, with the model the C++ host trained
    let model = dir.join("u1.safetensors");
    let mut ctx = Context::new(&[8, 8], &cpp_host_parameters(&model)).unwrap();
    ctx.set_gauge_layout(&GaugeLayout::milc(2)).unwrap();
    let mut cold: Vec<f64> = (0..ctx.gauge_len()).map(|i| if i % 2 == 0 { 1.0 } else { 0.0 }).collect();
    let mut from_rust = ctx.trajectories(HostSliceMut::F64(&mut cold), 4).unwrap();
    let update = format!(
        "kind = \"schedule\"\nhmc = 1\nflow = 2\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\n\
         steps = 10\nbatch = 8\nmodel = {:?}\n",
        model.display().to_string()
    );
    ctx.set_update(&update).unwrap();
    from_rust.extend(ctx.trajectories(HostSliceMut::F64(&mut cold), 6).unwrap());
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(from_cpp, as_tuples(&from_rust));
    assert!(from_rust[4..].iter().any(|r| r.accepted), "the flow phase should move");
}
