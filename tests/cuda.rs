//! The CUDA backend (feature `cuda`) on machines with and without a GPU: every kernel source
//! compiles with NVRTC for sm_80 and sm_90 (which needs no GPU: only libnvrtc); opening a GPU
//! without a driver is a clear error; and where a GPU is present, its kernels agree with the
//! CPU; the kernels, built as host C++, compute what their headers document and equal the CPU
//! operator. A test that needs what the machine lacks says so in one line and returns; with
//! `FLOWHMC_REQUIRE_NVRTC=1` (set by CI, which installs NVRTC) a missing NVRTC fails instead.
#![cfg(feature = "cuda")]

mod common;

use cudarc::driver::{LaunchConfig, PushKernelArg};
use flowhmc::action::Monomial;
use flowhmc::action::device::{DeviceGaugeAction, DevicePseudofermion};
use flowhmc::action::fermion::{Pseudofermion, PseudofermionParams};
use flowhmc::action::gauge::{GaugeAction, GaugeActionKind};
use flowhmc::backend::cuda::device::Device;
use flowhmc::backend::cuda::gauge::{DeviceGauge, DeviceMomenta};
use flowhmc::backend::cuda::layout;
use flowhmc::backend::cuda::spinor::DeviceSpinor;
use flowhmc::backend::cuda::wilson::{DeviceNormal, DeviceWilson, LinkStorage};
use flowhmc::backend::cuda::{
    BLAS, BLOCK, Gpu, KERNELS, KernelSource, compile, driver_present, nvrtc_present,
};
use flowhmc::chain::card::Card;
use flowhmc::chain::run::{RunOptions, run_card};
use flowhmc::chain::summary::read_measurements;
use flowhmc::checkerboard::Checkerboard;
use flowhmc::dirac::{Boundary, DiracOperator, FermionMatrix, FermionOperator, Operator, WilsonOperator};
use flowhmc::ffi::{Context, HostSliceMut};
use flowhmc::field::{GaugeField, MomentumField};
use flowhmc::geometry::Lattice;
use flowhmc::group::Su3;
use flowhmc::integrator::{Integrator, Scheme};
use flowhmc::rng::Purpose;
use flowhmc::solver::{SolverParams, SolverVector, cg, mixed_cg, multishift_cg};
use flowhmc::spinor::SpinorField;
use flowhmc::update::{Hmc, MarkovStep};
use std::sync::Arc;

/// Whether NVRTC is here; a skip line when not (a failure when CI requires it).
fn nvrtc_or_skip(test: &str) -> bool {
    if nvrtc_present() {
        return true;
    }
    assert!(
        std::env::var_os("FLOWHMC_REQUIRE_NVRTC").is_none(),
        "{test}: FLOWHMC_REQUIRE_NVRTC is set but libnvrtc cannot be loaded"
    );
    eprintln!("{test}: skipped, libnvrtc cannot be loaded (no NVRTC on this machine)");
    false
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    if !nvrtc_or_skip("every_kernel_compiles_for_sm80_and_sm90") {
        return;
    }
    for source in KERNELS {
        let entries: Vec<&str> = source
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("extern \"C\" __global__ void "))
            .map(|l| l.split('(').next().unwrap_or(""))
            .collect();
        assert!(!entries.is_empty(), "{}: no entry points", source.name);
        for arch in ["sm_80", "sm_90"] {
            let ptx = compile(*source, arch).unwrap_or_else(|e| panic!("{e}")).to_src();
            assert!(ptx.contains(&format!(".target {arch}")), "{} for {arch}: {ptx:.200}", source.name);
            for entry in &entries {
                assert!(
                    ptx.contains(&format!(".entry {entry}(")),
                    "{} for {arch}: no entry {entry}",
                    source.name
                );
            }
        }
    }
}

#[test]
fn a_kernel_that_does_not_compile_is_named_with_the_compiler_log() {
    if !nvrtc_or_skip("a_kernel_that_does_not_compile_is_named_with_the_compiler_log") {
        return;
    }
    let broken =
        KernelSource { name: "broken", text: "extern \"C\" __global__ void k() { undefined_call(); }" };
    let message = compile(broken, "sm_80").unwrap_err().to_string();
    assert!(message.contains("kernels/broken.cu does not compile for sm_80"), "{message}");
    assert!(message.contains("undefined_call"), "{message}");
}

#[test]
fn without_a_driver_opening_a_gpu_is_a_clear_error() {
    if driver_present() {
        eprintln!("without_a_driver_opening_a_gpu_is_a_clear_error: skipped, this machine has a CUDA driver");
        return;
    }
    let message = Gpu::open(0).unwrap_err().to_string();
    assert!(message.starts_with("device: no CUDA driver found"), "{message}");
}

/// Deterministic values in [-1, 1) (a fixed linear congruential sequence).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

#[test]
fn blas_kernels_on_the_gpu_match_the_cpu() {
    if !driver_present() {
        eprintln!("blas_kernels_on_the_gpu_match_the_cpu: skipped, no CUDA driver on this machine");
        return;
    }
    if !nvrtc_or_skip("blas_kernels_on_the_gpu_match_the_cpu") {
        return;
    }
    let gpu = Gpu::open(0).unwrap_or_else(|e| panic!("{e}"));
    let module = gpu.load(BLAS).unwrap_or_else(|e| panic!("{e}"));
    let stream = gpu.stream();
    let n = 1_000_003usize;
    let length = n as i64;
    let (x, y, a) = (values(n, 1), values(n, 2), 0.37f64);
    // axpy, f64: one rounding, as the CPU's mul_add
    let axpy = module.load_function("axpy_f64").unwrap();
    let (dx, mut dy) = (stream.clone_htod(&x).unwrap(), stream.clone_htod(&y).unwrap());
    let config = LaunchConfig {
        grid_dim: (n.div_ceil(BLOCK as usize) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&axpy);
    launch.arg(&length).arg(&a).arg(&dx).arg(&mut dy);
    unsafe { launch.launch(config) }.unwrap();
    let result = stream.clone_dtoh(&dy).unwrap();
    for i in 0..n {
        assert_eq!(result[i].to_bits(), a.mul_add(x[i], y[i]).to_bits(), "axpy_f64 at {i}");
    }
    // dot partials, f64 and f32: the same bits on every launch, and the sum close to the CPU's
    for precision in ["f64", "f32"] {
        let dot = module.load_function(&format!("dot_partial_{precision}")).unwrap();
        let blocks = 120u32;
        let run = || -> Vec<f64> {
            let mut partial = stream.alloc_zeros::<f64>(blocks as usize).unwrap();
            let mut launch = stream.launch_builder(&dot);
            let config =
                LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 };
            let (dx32, dy32);
            launch.arg(&length);
            if precision == "f64" {
                launch.arg(&dx).arg(&dy);
            } else {
                dx32 = stream.clone_htod(&x.iter().map(|&v| v as f32).collect::<Vec<f32>>()).unwrap();
                dy32 = stream.clone_htod(&result.iter().map(|&v| v as f32).collect::<Vec<f32>>()).unwrap();
                launch.arg(&dx32).arg(&dy32);
            }
            launch.arg(&mut partial);
            unsafe { launch.launch(config) }.unwrap();
            stream.clone_dtoh(&partial).unwrap()
        };
        let (first, second) = (run(), run());
        assert_eq!(first, second, "dot_partial_{precision} is not deterministic");
        let gpu_sum: f64 = first.iter().sum();
        let cpu_sum: f64 = if precision == "f64" {
            x.iter().zip(&result).map(|(a, b)| a * b).sum()
        } else {
            x.iter().zip(&result).map(|(&a, &b)| (a as f32) as f64 * (b as f32) as f64).sum()
        };
        let scale: f64 = x.iter().zip(&result).map(|(a, b)| (a * b).abs()).sum();
        assert!(
            (gpu_sum - cpu_sum).abs() <= 1e-13 * scale,
            "dot_partial_{precision}: {gpu_sum} against {cpu_sum}"
        );
    }
}

/// The devices to compare with the CPU: the emulation, and the first GPU where this machine
/// has a driver and NVRTC.
fn devices() -> Vec<Device> {
    let mut devices = vec![Device::emulated()];
    if driver_present() && nvrtc_present() {
        devices.push(Device::gpu(0).unwrap_or_else(|e| panic!("{e}")));
    }
    devices
}

/// The `run.device` values of [`devices`].
fn device_kinds() -> Vec<&'static str> {
    let mut kinds = vec!["cuda-emulated"];
    if driver_present() && nvrtc_present() {
        kinds.push("cuda");
    }
    kinds
}

/// A pointer to a kernel argument's value, as a launch takes it.
fn ptr<T>(value: &mut T) -> *mut std::ffi::c_void {
    (value as *mut T).cast()
}

/// Kernel `name` launched on the CPU emulation with the given argument pointers.
fn emulate(name: &str, grid: u32, args: &mut [*mut std::ffi::c_void]) {
    // SAFETY: every caller passes one pointer per parameter of `name`, to values of its types,
    // with arrays as long as the launch reads and writes.
    unsafe { flowhmc::backend::cuda::emulation::launch(name, grid, BLOCK, args) }
        .unwrap_or_else(|e| panic!("{e}"));
}

/// The emulated kernels (the sources of `kernels/` as host C++) compute what their headers
/// say, bit for bit: axpy as one fused multiply-add per element, the dot partials in their
/// documented order (thread-strided sums, then the fixed tree), recomputed here in Rust. Three
/// blocks over 2 * 3 * 256 + 77 elements, so every thread strides and the last stride is ragged.
#[test]
fn emulated_blas_kernels_compute_their_documented_sums() {
    let (grid, block) = (3u32, BLOCK as usize);
    let n = 2 * grid as usize * block + 77;
    let mut length = n as i64;
    let x = values(n, 3);
    let y = values(n, 4);
    let mut a = -1.25f64;
    // axpy, f64 and f32
    let mut out = y.clone();
    let (mut px, mut py) = (x.as_ptr(), out.as_mut_ptr());
    emulate("axpy_f64", grid, &mut [ptr(&mut length), ptr(&mut a), ptr(&mut px), ptr(&mut py)]);
    for i in 0..n {
        assert_eq!(out[i].to_bits(), a.mul_add(x[i], y[i]).to_bits(), "axpy_f64 at {i}");
    }
    let (x32, y32): (Vec<f32>, Vec<f32>) =
        (x.iter().map(|&v| v as f32).collect(), y.iter().map(|&v| v as f32).collect());
    let mut out32 = y32.clone();
    let mut a32 = a as f32;
    let (mut px32, mut py32) = (x32.as_ptr(), out32.as_mut_ptr());
    emulate("axpy_f32", grid, &mut [ptr(&mut length), ptr(&mut a32), ptr(&mut px32), ptr(&mut py32)]);
    for i in 0..n {
        assert_eq!(out32[i].to_bits(), a32.mul_add(x32[i], y32[i]).to_bits(), "axpy_f32 at {i}");
    }
    // dot partials, f64 and f32, against the documented order
    let expected = |product: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..grid as usize)
            .map(|b| {
                let mut sums: Vec<f64> = (0..block)
                    .map(|t| {
                        (b * block + t..n).step_by(grid as usize * block).fold(0.0, |acc, i| acc + product(i))
                    })
                    .collect();
                let mut w = block / 2;
                while w > 0 {
                    for t in 0..w {
                        sums[t] += sums[t + w];
                    }
                    w /= 2;
                }
                sums[0]
            })
            .collect()
    };
    let mut partial = vec![f64::NAN; grid as usize];
    let mut pp = partial.as_mut_ptr();
    let (mut px, mut py) = (x.as_ptr(), y.as_ptr());
    emulate("dot_partial_f64", grid, &mut [ptr(&mut length), ptr(&mut px), ptr(&mut py), ptr(&mut pp)]);
    assert_eq!(partial, expected(&|i| x[i] * y[i]), "dot_partial_f64");
    let (mut px32, mut py32) = (x32.as_ptr(), y32.as_ptr());
    emulate("dot_partial_f32", grid, &mut [ptr(&mut length), ptr(&mut px32), ptr(&mut py32), ptr(&mut pp)]);
    assert_eq!(partial, expected(&|i| x32[i] as f64 * y32[i] as f64), "dot_partial_f32");
}

#[test]
fn the_emulation_refuses_a_kernel_it_does_not_know() {
    // SAFETY: an unknown kernel reads no arguments.
    let message = unsafe { flowhmc::backend::cuda::emulation::launch("no_such_kernel", 1, BLOCK, &mut []) }
        .unwrap_err()
        .to_string();
    assert!(message.contains("no kernel no_such_kernel"), "{message}");
}

/// M psi by the emulated kernel `wilson_hop_f64` or `wilson_hop_f32` (by the real type T) on
/// full fields (parity -1, base = psi, factor kappa): site-major links and spinor `psi` of a
/// lattice `dims`, with (kappa, cos theta, sin theta); its result in f64 (NaN where the kernel
/// wrote nothing).
fn emulated_wilson<T: Copy + Into<f64> + From<f32>>(
    links: &[T],
    rows: i32,
    psi: &[T],
    dims: [usize; 4],
    reals: [T; 3],
    dagger: i32,
) -> Vec<f64> {
    let name = if size_of::<T>() == 8 { "wilson_hop_f64" } else { "wilson_hop_f32" };
    let grid = dims.iter().product::<usize>().div_ceil(BLOCK as usize) as u32;
    let mut out = vec![T::from(f32::NAN); psi.len()];
    let (mut pu, mut pp, mut pb, mut po) = (links.as_ptr(), psi.as_ptr(), psi.as_ptr(), out.as_mut_ptr());
    let [mut l0, mut l1, mut l2, mut l3] = dims.map(|l| l as i32);
    let [mut k, mut c, mut s] = reals;
    let (mut rows, mut d, mut parity) = (rows, dagger, -1i32);
    // no cut direction, both time faces on the boundary; no ghosts
    let (mut cut, mut edges, mut ghost) = (0i32, 3i32, std::ptr::null::<T>());
    emulate(
        name,
        grid,
        &mut [
            ptr(&mut pu),
            ptr(&mut rows),
            ptr(&mut pp),
            ptr(&mut ghost),
            ptr(&mut pb),
            ptr(&mut po),
            ptr(&mut l0),
            ptr(&mut l1),
            ptr(&mut l2),
            ptr(&mut l3),
            ptr(&mut cut),
            ptr(&mut edges),
            ptr(&mut k),
            ptr(&mut c),
            ptr(&mut s),
            ptr(&mut d),
            ptr(&mut parity),
        ],
    );
    out.into_iter().map(Into::into).collect()
}

/// The emulated Wilson kernel (site-major fields, one thread per site computing its neighbours
/// from its coordinates) equals the CPU operator M and M^dagger on a hot 4^3 x 8 field with a
/// generic time phase (theta = 0.7, so a wrong sign or a missing phase shows): to 1e-13 of the
/// largest component in f64 (the two sum the hops in different orders) and 1e-5 in f32, with
/// whole links and with two rows a link (the third rebuilt in the kernel).
#[test]
fn emulated_wilson_kernel_equals_the_cpu_operator() {
    let dims = [4, 4, 4, 8];
    let lattice = Arc::new(Lattice::new(&dims).unwrap());
    let cb = Checkerboard::new(lattice.clone()).unwrap();
    let u = GaugeField::<Su3>::hot(lattice.clone(), 7);
    let (kappa, theta) = (0.13, 0.7);
    let w = WilsonOperator::<Su3, 4>::new(&u, &cb, kappa, Boundary::Phase(theta)).unwrap();
    let x = SpinorField::<Su3, 4>::gaussian_full(&cb, 3, Purpose::Test, 0);
    let volume = lattice.volume();
    // the links with `rows` rows each
    let links = |rows: usize| -> Vec<f64> {
        (0..volume)
            .flat_map(|s| (0..4).map(move |mu| (s, mu)))
            .flat_map(|(s, mu)| u.link(s, mu).0.into_iter().take(3 * rows))
            .flat_map(|z| [z.re, z.im])
            .collect()
    };
    let spinor = |f: &SpinorField<Su3, 4>| -> Vec<f64> {
        (0..volume * 12).map(|k| f.get(&cb, k / 12, k / 3 % 4, k % 3)).flat_map(|z| [z.re, z.im]).collect()
    };
    let psi = spinor(&x);
    let to_f32 = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let (c, s) = (theta.cos(), theta.sin());
    for (dagger, rows) in [(0i32, 3), (1, 3), (0, 2), (1, 2)] {
        let links = links(rows);
        let mut y = SpinorField::<Su3, 4>::full(&cb);
        w.apply(dagger == 1, &x, &mut y);
        let expected = spinor(&y);
        let largest = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (name, tolerance, out) in [
            (
                "wilson_hop_f64",
                1e-13,
                emulated_wilson(&links, rows as i32, &psi, dims, [kappa, c, s], dagger),
            ),
            (
                "wilson_hop_f32",
                1e-5,
                emulated_wilson(
                    &to_f32(&links),
                    rows as i32,
                    &to_f32(&psi),
                    dims,
                    [kappa as f32, c as f32, s as f32],
                    dagger,
                ),
            ),
        ] {
            assert!(
                out.iter().all(|v| v.is_finite()),
                "{name}, dagger {dagger}, {rows} rows: a component was not written"
            );
            let worst = out.iter().zip(&expected).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= tolerance * largest,
                "{name}, dagger {dagger}, {rows} rows: off by {worst} (largest {largest})"
            );
        }
    }
}

/// CG on M^dagger M (full fields) or M_hat^dagger M_hat (even/odd, even half fields) with every
/// vector resident on `device` (the solvers' generic code over [`DeviceSpinor`]) against the
/// CPU's CG on the same field and source (4^4, hot links, kappa 0.12, theta = 0.7, tolerance
/// 1e-10): the same iteration count within one (the sums differ in order), true residuals
/// below the tolerance, and solutions within 1e-8 of each other relative to their norm (the
/// condition number here is below 100); f32 vectors converge to the f32 round-off of the same
/// solution (1e-5 at tolerance 1e-6); mixed precision with reliable updates reaches f64
/// accuracy in iterations within 10% of the CPU's mixed solve (the f32 recursions round
/// differently); multi-shift CG repeats the CPU's shifted solves (iterations within one,
/// solutions within 1e-8). All of it with whole links and with 12-real links.
fn check_device_cg(device: &Device, test: &str) {
    let dims = [4, 4, 4, 4];
    let lattice = Arc::new(Lattice::new(&dims).unwrap());
    let cb = Checkerboard::new(lattice.clone()).unwrap();
    let u = GaugeField::<Su3>::hot(lattice.clone(), 11);
    let (kappa, theta) = (0.12, 0.7);
    let w = WilsonOperator::<Su3, 4>::new(&u, &cb, kappa, Boundary::Phase(theta)).unwrap();
    let full = SpinorField::<Su3, 4>::gaussian_full(&cb, 5, Purpose::Test, 0);
    let params = SolverParams { tolerance: 1e-10, max_iterations: 500 };
    let distance = |x: &[num_complex::Complex64], y: &[num_complex::Complex64]| -> f64 {
        let d: f64 = x.iter().zip(y).map(|(a, b)| (a - b).norm_sqr()).sum();
        (d / y.iter().map(|a| a.norm_sqr()).sum::<f64>()).sqrt()
    };
    let gauge = DeviceGauge::upload(device, &u).unwrap();
    for (links, even_odd) in [
        (LinkStorage::Full, false),
        (LinkStorage::Full, true),
        (LinkStorage::TwoRows, false),
        (LinkStorage::TwoRows, true),
    ] {
        let at = format!("{test}, even/odd {even_odd}, {}-real links", links.reals());
        let double = DeviceWilson::<f64>::on(&gauge, kappa, theta, links).unwrap();
        let single = DeviceWilson::<f32>::on(&gauge, kappa, theta, links).unwrap();
        let form = if even_odd { Operator::SchurNormal } else { Operator::FullNormal };
        // the source: the full field, or its even half
        let b = if even_odd { full.half_of(0) } else { full.clone() };
        let cpu_op = DiracOperator { op: &w, form };
        let (want, cpu) = cg(&cpu_op, &b, None, &params).unwrap();
        // site-major values of a CPU field (full, or even half)
        let device_values = |f: &SpinorField<Su3, 4>| {
            if even_odd {
                let f = SpinorField::from_halves(f, &SpinorField::half(&cb));
                layout::half(&layout::spinor_of(&f, &cb), &dims, 0)
            } else {
                layout::spinor_of(f, &cb)
            }
        };
        let (source, want) = (device_values(&b), device_values(&want));
        // f64
        let normal = DeviceNormal::new(&double, even_odd).unwrap();
        let rhs = DeviceSpinor::<f64>::upload(device, &source).unwrap();
        let (x, report) = cg(&normal, &rhs, None, &params).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(
            report.iterations.abs_diff(cpu.iterations) <= 1,
            "{at}: {} iterations on the device, {} on the CPU",
            report.iterations,
            cpu.iterations
        );
        assert!(report.residual <= 1e-10, "{at}: residual {}", report.residual);
        let off = distance(&x.download().unwrap(), &want);
        assert!(off <= 1e-8, "{at}: f64 solution off by {off}");
        // f32
        let normal_single = DeviceNormal::new(&single, even_odd).unwrap();
        let rhs_single = DeviceSpinor::<f32>::upload(device, &source).unwrap();
        let loose = SolverParams { tolerance: 1e-6, max_iterations: 500 };
        let (x, _) = cg(&normal_single, &rhs_single, None, &loose).unwrap_or_else(|e| panic!("{at}: {e}"));
        let off = distance(&x.download().unwrap(), &want);
        assert!(off <= 1e-5, "{at}: f32 solution off by {off}");
        // mixed precision against the CPU's mixed solve
        let (_, cpu_mixed) = flowhmc::dirac::solve::normal_solve(&w, form, &b, None, true, &params).unwrap();
        let (x, report) =
            mixed_cg(&normal, &normal_single, &rhs, None, &params).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(report.residual <= 1e-10, "{at}: mixed residual {}", report.residual);
        assert!(
            report.iterations.abs_diff(cpu_mixed.iterations) * 10 <= cpu_mixed.iterations,
            "{at}: mixed CG took {} iterations on the device, {} on the CPU",
            report.iterations,
            cpu_mixed.iterations
        );
        let off = distance(&x.download().unwrap(), &want);
        assert!(off <= 1e-8, "{at}: mixed solution off by {off}");
        // multi-shift CG, (A + sigma) x = b, against the CPU's
        let shifts = [0.0, 0.05, 0.5];
        let (cpu_xs, cpu_reports) = multishift_cg(&cpu_op, &shifts, &b, &params).unwrap();
        let (xs, reports) =
            multishift_cg(&normal, &shifts, &rhs, &params).unwrap_or_else(|e| panic!("{at}: {e}"));
        for (k, sigma) in shifts.iter().enumerate() {
            let (n, m) = (reports[k].iterations, cpu_reports[k].iterations);
            assert!(n.abs_diff(m) <= 1, "{at}: shift {sigma}: {n} iterations on the device, {m} on the CPU");
            let off = distance(&xs[k].download().unwrap(), &device_values(&cpu_xs[k]));
            assert!(off <= 1e-8, "{at}: shift {sigma}: solution off by {off}");
        }
    }
}

#[test]
fn cg_on_the_emulated_device_repeats_the_cpu_solve() {
    check_device_cg(&Device::emulated(), "cg_on_the_emulated_device_repeats_the_cpu_solve");
}

#[test]
fn cg_on_the_gpu_repeats_the_cpu_solve() {
    let test = "cg_on_the_gpu_repeats_the_cpu_solve";
    if !driver_present() {
        eprintln!("{test}: skipped, no CUDA driver on this machine");
        return;
    }
    if !nvrtc_or_skip(test) {
        return;
    }
    check_device_cg(&Device::gpu(0).unwrap_or_else(|e| panic!("{e}")), test);
}

/// The device vectors' dot products and updates equal the same algebra on the host to
/// round-off, and a dot product repeats bit for bit.
#[test]
fn device_vector_algebra_matches_the_host() {
    let device = Device::emulated();
    let n = 1000;
    let v = values(4 * n, 21);
    let z = |k: usize| num_complex::Complex64::new(v[2 * k], v[2 * k + 1]);
    let x: Vec<_> = (0..n).map(z).collect();
    let y: Vec<_> = (n..2 * n).map(z).collect();
    let (dx, mut dy) = (
        DeviceSpinor::<f64>::upload(&device, &x).unwrap(),
        DeviceSpinor::<f64>::upload(&device, &y).unwrap(),
    );
    let dot: num_complex::Complex64 = x.iter().zip(&y).map(|(a, b)| a.conj() * b).sum();
    assert!((dx.dot(&dy) - dot).norm() <= 1e-13 * n as f64, "dot {} against {dot}", dx.dot(&dy));
    assert_eq!(dx.dot(&dy), dx.dot(&dy), "a dot product repeats");
    assert!((dx.re_dot(&dy) - dot.re).abs() <= 1e-13 * n as f64);
    let a = num_complex::Complex64::new(0.3, -1.1);
    let norm = dy.axpy_norm_sqr(a, &dx);
    let expected: Vec<_> = x.iter().zip(&y).map(|(p, q)| a * p + q).collect();
    let got = dy.download().unwrap();
    assert!(got.iter().zip(&expected).all(|(p, q)| (p - q).norm() <= 1e-15 * 4.0), "axpy");
    let expected_norm: f64 = expected.iter().map(|p| p.norm_sqr()).sum();
    assert!(
        (norm - expected_norm).abs() <= 1e-13 * expected_norm,
        "axpy norm {norm} against {expected_norm}"
    );
    assert!((dy.norm_sqr() - norm).abs() <= 1e-13 * norm);
    dy.xpay(&dx, a);
    let again: Vec<_> = x.iter().zip(&expected).map(|(p, q)| p + a * q).collect();
    let got = dy.download().unwrap();
    assert!(got.iter().zip(&again).all(|(p, q)| (p - q).norm() <= 1e-14), "xpay");
    let mut dz = dx.zeroed();
    dz.axpy(a, &dx);
    let got = dz.download().unwrap();
    assert!(got.iter().zip(&x).all(|(p, q)| (p - a * q).norm() <= 1e-15 * 4.0), "axpy from zero");
    assert_eq!(dz.entries(), n);
}

/// Molecular dynamics of the gauge field on the devices ([`devices`]) against the CPU, for the
/// Wilson, Symanzik and Iwasaki actions on a hot 4^4 field (beta = 5.6): the force (every
/// component within 1e-12 of the largest), the action and the kinetic energy (1e-12
/// relative), and five leapfrog steps (eps = 0.05) from the same momenta: links within 1e-12
/// and the change of H within 1e-9 (H itself is about 10^4).
#[test]
fn gauge_molecular_dynamics_on_the_device_repeats_the_cpu() {
    let dims = [4, 4, 4, 4];
    let lattice = Arc::new(Lattice::new(&dims).unwrap());
    for device in devices() {
        let beta = 5.6;
        for kind in [GaugeActionKind::Wilson, GaugeActionKind::Symanzik, GaugeActionKind::Iwasaki] {
            let action = GaugeAction::new(kind, beta);
            let mut u = GaugeField::<Su3>::hot(lattice.clone(), 17);
            let mut p = MomentumField::<Su3>::gaussian(&lattice, 4, 0);
            let mut gauge = DeviceGauge::upload(&device, &u).unwrap();
            let mut momenta = gauge.upload_momenta(&p).unwrap();
            // the force alone
            let mut force = MomentumField::<Su3>::zeros(&lattice);
            action.force(&u, 1.0, &mut force);
            let mut device_force = gauge.zero_momenta().unwrap();
            gauge.add_force(beta, kind.c1(), 1.0, &mut device_force).unwrap();
            let want = layout::momenta_of(&force, &lattice);
            let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let off = device_force
                .download()
                .unwrap()
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(off <= 1e-12 * largest, "{kind:?}: force off by {off} (largest {largest})");
            // H at the start
            let h = |u: &GaugeField<Su3>, p: &MomentumField<Su3>| action.value(u) + p.kinetic_energy();
            let device_h = |g: &DeviceGauge, q: &DeviceMomenta| {
                g.action(beta, kind.c1()).unwrap() + q.kinetic_energy().unwrap()
            };
            let (h0, device_h0) = (h(&u, &p), device_h(&gauge, &momenta));
            assert!((h0 - device_h0).abs() <= 1e-12 * h0.abs(), "{kind:?}: H {device_h0} against {h0}");
            // leapfrog
            let eps = 0.05;
            for step in 0..5 {
                let first = if step == 0 { 0.5 } else { 1.0 };
                action.force(&u, first * eps, &mut p);
                gauge.add_force(beta, kind.c1(), first * eps, &mut momenta).unwrap();
                u.evolve(&p, eps);
                gauge.evolve(&momenta, eps).unwrap();
            }
            action.force(&u, 0.5 * eps, &mut p);
            gauge.add_force(beta, kind.c1(), 0.5 * eps, &mut momenta).unwrap();
            let links = gauge.to_host().unwrap();
            let off = links.max_distance(&u);
            assert!(off <= 1e-12, "{kind:?}: links after five steps off by {off}");
            let (dh, device_dh) = (h(&u, &p) - h0, device_h(&gauge, &momenta) - device_h0);
            assert!((dh - device_dh).abs() <= 1e-9, "{kind:?}: dH {device_dh} against {dh}");
        }
    }
}

/// The force of the even/odd Wilson operator on the devices, d/dw Re(a^dagger M_hat b)
/// for random even halves a and b (hot 4^4 field, kappa 0.13, theta = 0.7), equals the CPU's
/// `add_derivative` to 1e-12 of its largest component.
#[test]
fn schur_operator_force_on_the_device_equals_the_cpu() {
    let dims = [4, 4, 4, 4];
    let lattice = Arc::new(Lattice::new(&dims).unwrap());
    let cb = Checkerboard::new(lattice.clone()).unwrap();
    let u = GaugeField::<Su3>::hot(lattice.clone(), 19);
    let (kappa, theta, c) = (0.13, 0.7, 0.8);
    let w = WilsonOperator::<Su3, 4>::new(&u, &cb, kappa, Boundary::Phase(theta)).unwrap();
    let a = SpinorField::<Su3, 4>::gaussian_full(&cb, 7, Purpose::Test, 0).half_of(0);
    let b = SpinorField::<Su3, 4>::gaussian_full(&cb, 8, Purpose::Test, 0).half_of(0);
    let mut want = MomentumField::<Su3>::zeros(&lattice);
    w.add_derivative(true, &a, &b, c, &mut want);
    for (device, links) in
        devices().into_iter().flat_map(|d| [(d.clone(), LinkStorage::Full), (d, LinkStorage::TwoRows)])
    {
        let gauge = DeviceGauge::upload(&device, &u).unwrap();
        let op = DeviceWilson::<f64>::on(&gauge, kappa, theta, links).unwrap();
        let even = |f: &SpinorField<Su3, 4>| {
            let full = SpinorField::from_halves(f, &SpinorField::half(&cb));
            DeviceSpinor::<f64>::upload(&device, &layout::half(&layout::spinor_of(&full, &cb), &dims, 0))
                .unwrap()
        };
        let mut p = gauge.zero_momenta().unwrap();
        op.add_schur_derivative(&even(&a), &even(&b), c, &mut p).unwrap();
        let want = layout::momenta_of(&want, &lattice);
        let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let off = p.download().unwrap().iter().zip(&want).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            largest > 0.0 && off <= 1e-12 * largest,
            "{}-real links: force off by {off} (largest {largest})",
            links.reals()
        );
    }
}

/// Whole HMC trajectories with every field on the devices (`Hmc<DeviceGauge>`) against
/// the CPU's (`Hmc<GaugeField<Su3>>`) from the same hot 4^4 field, seed and monomials: Wilson
/// gauge action (beta 5.6), an even/odd two-flavour term at kappa 0.10 and a Hasenbusch ratio
/// up to kappa 0.12, one Omelyan level of 4 steps, tau 0.5, solves to 1e-12 (f64 with whole
/// links, then mixed precision with 12-real links). Two trajectories each: the same acceptance, dH within 1e-8 (the forces differ by
/// the solver tolerance and the summation order), solver iterations within 5%, and final links
/// within 1e-10.
#[test]
fn hmc_trajectories_on_the_device_repeat_the_cpu() {
    let lattice = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
    let cb = Checkerboard::new(lattice.clone()).unwrap();
    let start = GaugeField::<Su3>::hot(lattice.clone(), 23);
    for device in devices() {
        let (beta, seed, tau) = (5.6, 31, 0.5);
        for (mixed_precision, links) in [(false, LinkStorage::Full), (true, LinkStorage::TwoRows)] {
            let params = |kappa: f64, kappa_heavy: f64| PseudofermionParams {
                kappa,
                kappa_heavy,
                boundary: Boundary::ANTIPERIODIC,
                even_odd: true,
                solver: SolverParams { tolerance: 1e-12, max_iterations: 1000 },
                mixed_precision,
            };
            let integrator = || Integrator::single(Scheme::Omelyan, 4, 3).unwrap();
            let cpu_monomials: Vec<Box<dyn Monomial<GaugeField<Su3>>>> = vec![
                Box::new(GaugeAction::new(GaugeActionKind::Wilson, beta)),
                Box::new(Pseudofermion::<Su3, 4>::new("light", params(0.10, 0.0), cb.clone(), 0)),
                Box::new(Pseudofermion::<Su3, 4>::new("ratio", params(0.12, 0.10), cb.clone(), 1)),
            ];
            let mut gauge = DeviceGauge::upload(&device, &start).unwrap();
            let device_monomials: Vec<Box<dyn Monomial<DeviceGauge>>> = vec![
                Box::new(DeviceGaugeAction::new("gauge", GaugeActionKind::Wilson, beta)),
                Box::new(DevicePseudofermion::new("light", params(0.10, 0.0), links, &lattice, 0).unwrap()),
                Box::new(DevicePseudofermion::new("ratio", params(0.12, 0.10), links, &lattice, 1).unwrap()),
            ];
            let mut cpu = Hmc::new(cpu_monomials, integrator(), tau, seed).unwrap();
            let mut gpu = Hmc::new(device_monomials, integrator(), tau, seed).unwrap();
            let mut u = start.clone();
            for update in 0..2 {
                let at = format!("mixed {mixed_precision}, update {update}");
                let want = cpu.step(&mut u, update).unwrap();
                let got = gpu.step(&mut gauge, update).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(
                    got.accepted, want.accepted,
                    "{at}: acceptance (dH {} against {})",
                    got.dh, want.dh
                );
                assert!((got.dh - want.dh).abs() <= 1e-8, "{at}: dH {} against {}", got.dh, want.dh);
                let (n, m) = (got.solver_iterations, want.solver_iterations);
                assert!(n.abs_diff(m) * 20 <= m, "{at}: {n} solver iterations on the device, {m} on the CPU");
                let off = gauge.to_host().unwrap().max_distance(&u);
                assert!(off <= 1e-10, "{at}: links off by {off}");
            }
        }
    }
}

/// A card with Nf = 2 (Hasenbusch, mixed precision) and nested levels, with `run.device =
/// "cuda-emulated"` (and `"cuda"` where a GPU is), with 18-real and 12-real links: the whole
/// run path on the device backend, against the same card on the CPU: every trajectory's acceptance and measured
/// plaquette (1e-10) and dH (1e-7) agree; and `run.device = "cuda"` without a driver is the
/// driver error.
#[test]
fn a_card_runs_on_the_devices_as_on_the_cpu() {
    let card = |device: &str, link_reals: usize, dir: &std::path::Path| {
        let run_keys = format!("device = \"{device}\"\nlink_reals = {link_reals}");
        common::hasenbusch_card(dir, 3, 3, 9, 1e-12, &run_keys)
    };
    let run = |device: &str, link_reals: usize| {
        let dir = std::env::temp_dir().join(format!("flowhmc-cuda-card-{}-{device}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let card =
            Card::parse(&card(device, link_reals, &dir), device).unwrap_or_else(|e| panic!("{device}: {e}"));
        run_card(&card, RunOptions { resume: false, quiet: true })
            .unwrap_or_else(|e| panic!("{device}: {e}"));
        let records = read_measurements(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        records
    };
    let cpu = run("cpu", 18);
    assert_eq!(cpu.len(), 3);
    for (kind, link_reals) in device_kinds().into_iter().flat_map(|k| [(k, 18), (k, 12)]) {
        let device = run(kind, link_reals);
        common::assert_runs_agree(&cpu, &device, 1e-10, 1e-7, &format!("{kind}, {link_reals}-real links"));
    }
    if !driver_present() {
        let dir = std::env::temp_dir().join(format!("flowhmc-cuda-card-{}-nodriver", std::process::id()));
        let card = Card::parse(&card("cuda", 18, &dir), "cuda").unwrap();
        let e = run_card(&card, RunOptions { resume: false, quiet: true }).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("no CUDA driver found"), "{e}");
    }
}

/// What the device cannot run is refused when the card is read, naming the key.
#[test]
fn cards_the_device_cannot_run_are_refused() {
    let two_d = flowhmc::chain::DEFAULT_CARD.replace("[run]", "[run]\ndevice = \"cuda-emulated\"");
    let e = Card::parse(&two_d, "card.toml").unwrap_err().to_string();
    assert!(
        e.contains("run.device = \"cuda-emulated\": the CUDA backend runs SU(3) gauge fields in 4D"),
        "{e}"
    );
    let odd_links = two_d.replace("[run]", "[run]\nlink_reals = 14");
    let e = Card::parse(&odd_links, "card.toml").unwrap_err().to_string();
    assert!(e.contains("run.link_reals = 14: 18 (whole links) or 12"), "{e}");
    let four_d = two_d.replace("[16, 16]", "[4, 4, 4, 4]").replace("\"u1\"", "\"su3\"");
    let rational = format!(
        "{four_d}[[fermions]]\nkind = \"wilson\"\nflavors = 1\nkappa = 0.1\n\
         rational = {{ range = [0.36, 1.64], tolerance = 1e-7 }}\n\
         solver = {{ kind = \"cg\", tolerance = 1e-10, max_iterations = 100 }}\n"
    );
    let e = Card::parse(&rational, "card.toml").unwrap_err().to_string();
    assert!(e.contains("fermions[0]: the CUDA backend runs two-flavour pseudofermions (no rational)"), "{e}");
}

/// A host context whose parameters name `run.device = "cuda-emulated"` (and `"cuda"` where a
/// GPU is; as a C, C++ or Rust host sets it) steps a host buffer as the CPU context does: the same acceptance, dH within
/// 1e-7, plaquette and buffer within 1e-10, over three updates from a cold field.
#[test]
fn a_host_context_runs_on_the_devices() {
    let parameters = |device: &str| {
        format!(
            r#"
[gauge]
group = "su3"
action = "wilson"
beta = 5.6
[update]
kind = "hmc"
trajectory_length = 0.5
integrator = "omelyan"
steps = 3
[run]
seed = 3
device = "{device}"
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.12
solver = {{ kind = "cg", tolerance = 1e-12, max_iterations = 1000 }}
"#
        )
    };
    let dims = [4, 4, 4, 4];
    for kind in device_kinds() {
        let mut cpu = Context::new(&dims, &parameters("cpu")).unwrap();
        let mut device = Context::new(&dims, &parameters(kind)).unwrap();
        // a cold field in the default layout: unit 3x3 matrices, row-major (re, im)
        let cold: Vec<f64> = (0..cpu.gauge_len()).map(|k| if k % 18 % 8 == 0 { 1.0 } else { 0.0 }).collect();
        let (mut a, mut b) = (cold.clone(), cold);
        for update in 0..3 {
            let want = cpu.update(HostSliceMut::F64(&mut a)).unwrap();
            let got = device
                .update(HostSliceMut::F64(&mut b))
                .unwrap_or_else(|e| panic!("{kind}, update {update}: {e}"));
            assert_eq!(got.accepted, want.accepted, "{kind}, update {update}");
            assert!(
                (got.dh - want.dh).abs() <= 1e-7,
                "{kind}, update {update}: dH {} against {}",
                got.dh,
                want.dh
            );
            assert!((got.plaquette - want.plaquette).abs() <= 1e-10, "{kind}, update {update}: plaquette");
            let off = a.iter().zip(&b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(off <= 1e-10, "{kind}, update {update}: buffers differ by {off}");
        }
    }
}

/// `flowhmc bench --device cuda-emulated` runs every GPU benchmark on 4^4 (the CG within one
/// iteration of the CPU's, the trajectory's dH within 1e-5 of the CPU's); `--device cuda`
/// without a driver exits 2 with the driver error.
#[test]
fn the_device_benchmarks_run_on_the_emulation() {
    let bench = |device: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowhmc"))
            .args(["bench", "--device", device])
            .output()
            .unwrap()
    };
    let out = bench("cuda-emulated");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let value = |key: &str| -> String {
        let line = text.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("no {key:?} in {text}"));
        line.rsplit(char::is_whitespace).find(|w| !w.is_empty()).unwrap().to_string()
    };
    for precision in ["f64", "f32"] {
        for links in [18, 12] {
            let key = format!("device Wilson M ({precision}, {links}-real links)");
            assert!(text.lines().any(|l| l.starts_with(&key) && l.ends_with("GB/s")), "{key}: {text}");
        }
    }
    let number = |key: &str| value(key).parse::<f64>().unwrap();
    assert!((number("iterations, device") - number("iterations, CPU")).abs() <= 1.0, "{text}");
    assert!((number("dH device") - number("dH CPU")).abs() <= 1e-5, "{text}");
    if !driver_present() {
        let out = bench("cuda");
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2));
        assert!(e.contains("no CUDA driver found"), "{e}");
    }
}
