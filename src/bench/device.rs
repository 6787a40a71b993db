//! The CUDA backend against the CPU (issue 19; `flowhmc bench --device cuda`, feature `cuda`),
//! on one hot SU(3) field per lattice:
//! - the Wilson operator M in f64 and f32, with 18-real and 12-real links ([`LinkStorage`]):
//!   time per application and the memory bandwidth it reaches, counting per site what a kernel
//!   without caching moves (the convention of QUDA's dslash figures): 8 neighbour spinors (24
//!   reals) and 8 links (18 or 12 reals) read, the site's own spinor read for the 1 in M, the
//!   result written: (8 (24 + 18) + 24 + 24) reals, 3072 bytes in f64 and 1536 in f32 (2688 and
//!   1344 with 12-real links); against the GPU's data-sheet bandwidth
//!   ([`Device::peak_bandwidth`]);
//! - CG on the even/odd normal equations to 1e-10 (kappa 0.155), device and CPU from the same
//!   source: iterations and seconds;
//! - an Nf = 2 even/odd trajectory (Wilson gauge action beta 5.6, kappa 0.156, Omelyan 6 steps,
//!   tau 1, CG to 1e-10), device and CPU from the same field and seed: seconds each.
//!
//! The device side waits for the GPU before each clock reading. The CPU side uses the threads
//! of the calling pool.

use super::{Figure, median};
use crate::action::device::{DeviceGaugeAction, DevicePseudofermion};
use crate::action::fermion::{Pseudofermion, PseudofermionParams};
use crate::action::{GaugeAction, GaugeActionKind, Monomial};
use crate::backend::cuda::device::{Device, DeviceReal};
use crate::backend::cuda::gauge::DeviceGauge;
use crate::backend::cuda::layout;
use crate::backend::cuda::spinor::DeviceSpinor;
use crate::backend::cuda::wilson::{DeviceNormal, DeviceWilson, LinkStorage};
use crate::checkerboard::Checkerboard;
use crate::dirac::{Boundary, DiracOperator, Operator, WilsonOperator};
use crate::error::Result;
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::integrator::{Integrator, Scheme};
use crate::rng::Purpose;
use crate::solver::{SolverParams, cg};
use crate::spinor::SpinorField;
use crate::update::{Hmc, MarkovStep};
use std::sync::Arc;
use std::time::Instant;

/// Bytes per site that one application of M moves in precision T with links stored as
/// `links` says (see the module docs).
pub fn wilson_bytes_per_site<T: DeviceReal>(links: LinkStorage) -> usize {
    (8 * (24 + links.reals()) + 24 + 24) * size_of::<T>()
}

/// Every figure of the module docs: the operator and the CG on `operator_dims`, trajectories
/// on each of `trajectory_dims`; `repeats` operator applications per precision.
pub fn device_against_cpu(
    device: &Device,
    operator_dims: [usize; 4],
    trajectory_dims: &[[usize; 4]],
    repeats: u64,
) -> Result<Vec<Figure>> {
    let lattice = Arc::new(Lattice::new(&operator_dims)?);
    let u = GaugeField::<Su3>::hot(lattice.clone(), 1);
    let gauge = DeviceGauge::upload(device, &u)?;
    let mut figures = Vec::new();
    for links in [LinkStorage::Full, LinkStorage::TwoRows] {
        figures.extend(operator::<f64>(device, &gauge, links, repeats)?);
        figures.extend(operator::<f32>(device, &gauge, links, repeats)?);
    }
    figures.extend(solve(device, &u, &gauge)?);
    for &dims in trajectory_dims {
        figures.extend(trajectory(device, dims)?);
    }
    Ok(figures)
}

/// M in precision T with links stored as `links` says, on the device: ms per application,
/// GB/s, fraction of the peak.
fn operator<T: DeviceReal>(
    device: &Device,
    gauge: &DeviceGauge,
    links: LinkStorage,
    repeats: u64,
) -> Result<Vec<Figure>> {
    let dims = gauge.dims();
    let w = DeviceWilson::<T>::on(gauge, 0.155, std::f64::consts::PI, links)?;
    let lattice = gauge.lattice();
    let cb = Checkerboard::new(lattice.clone())?;
    let x = SpinorField::<Su3, 4>::gaussian_full(&cb, 2, Purpose::Test, 0);
    let x = DeviceSpinor::<T>::upload(device, &layout::spinor_of(&x, &cb))?;
    let mut y = DeviceSpinor::<T>::zeros(device, w.entries())?;
    w.apply(false, &x, &mut y)?;
    device.synchronize()?;
    let times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            w.apply(false, &x, &mut y)?;
            device.synchronize()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    let seconds = median(&times);
    let per_site = wilson_bytes_per_site::<T>(links);
    let bytes = (per_site * lattice.volume()) as f64;
    let name = |what: &str| {
        format!("device Wilson M ({}, {}-real links) {dims:?}, {what}", T::SUFFIX, links.reals())
    };
    let mut figures = vec![
        Figure { name: name("median"), value: seconds * 1e3, unit: "ms" },
        Figure { name: name(&format!("{per_site} bytes/site")), value: bytes / seconds / 1e9, unit: "GB/s" },
    ];
    if let Some(peak) = device.peak_bandwidth()? {
        figures.push(Figure {
            name: name("fraction of the data-sheet bandwidth"),
            value: bytes / seconds / peak,
            unit: "",
        });
    }
    Ok(figures)
}

/// Even/odd CG to 1e-10 on the device and on the CPU from the same source.
fn solve(device: &Device, u: &GaugeField<Su3>, gauge: &DeviceGauge) -> Result<Vec<Figure>> {
    let (kappa, theta) = (0.155, std::f64::consts::PI);
    let params = SolverParams { tolerance: 1e-10, max_iterations: 10_000 };
    let cb = Checkerboard::new(u.lattice().clone())?;
    let b = SpinorField::<Su3, 4>::gaussian_full(&cb, 3, Purpose::Test, 0);
    let w = WilsonOperator::<Su3, 4>::new(u, &cb, kappa, Boundary::Phase(theta))?;
    let start = Instant::now();
    let (_, cpu) = cg(&DiracOperator { op: &w, form: Operator::SchurNormal }, &b.half_of(0), None, &params)?;
    let cpu_seconds = start.elapsed().as_secs_f64();
    let op = DeviceWilson::<f64>::on(gauge, kappa, theta, LinkStorage::Full)?;
    let rhs = layout::half(&layout::spinor_of(&b, &cb), &gauge.dims(), 0);
    let rhs = DeviceSpinor::<f64>::upload(device, &rhs)?;
    let normal = DeviceNormal::new(&op, true)?;
    device.synchronize()?;
    let start = Instant::now();
    let (_, report) = cg(&normal, &rhs, None, &params)?;
    device.synchronize()?;
    let device_seconds = start.elapsed().as_secs_f64();
    let name = |what: &str| format!("e/o CG to 1e-10, kappa 0.155 {:?}, {what}", gauge.dims());
    Ok(vec![
        Figure { name: name("iterations, device"), value: report.iterations as f64, unit: "" },
        Figure { name: name("iterations, CPU"), value: cpu.iterations as f64, unit: "" },
        Figure { name: name("device"), value: device_seconds, unit: "s" },
        Figure { name: name("CPU"), value: cpu_seconds, unit: "s" },
    ])
}

/// One Nf = 2 even/odd trajectory from the same hot field on the device and on the CPU.
fn trajectory(device: &Device, dims: [usize; 4]) -> Result<Vec<Figure>> {
    let lattice = Arc::new(Lattice::new(&dims)?);
    let start_field = GaugeField::<Su3>::hot(lattice.clone(), 4);
    let params = PseudofermionParams {
        kappa: 0.156,
        kappa_heavy: 0.0,
        boundary: Boundary::ANTIPERIODIC,
        even_odd: true,
        solver: SolverParams { tolerance: 1e-10, max_iterations: 10_000 },
        mixed_precision: false,
    };
    let integrator = || Integrator::single(Scheme::Omelyan, 6, 2);
    let beta = 5.6;
    let cpu_terms: Vec<Box<dyn Monomial<GaugeField<Su3>>>> = vec![
        Box::new(GaugeAction::new(GaugeActionKind::Wilson, beta)),
        Box::new(Pseudofermion::<Su3, 4>::new(
            "fermions",
            params.clone(),
            Checkerboard::new(lattice.clone())?,
            0,
        )),
    ];
    let device_terms: Vec<Box<dyn Monomial<DeviceGauge>>> = vec![
        Box::new(DeviceGaugeAction::new("gauge", GaugeActionKind::Wilson, beta)),
        Box::new(DevicePseudofermion::new("fermions", params, LinkStorage::Full, &lattice, 0)?),
    ];
    let mut cpu = Hmc::new(cpu_terms, integrator()?, 1.0, 1)?;
    let mut gpu = Hmc::new(device_terms, integrator()?, 1.0, 1)?;
    let mut u = start_field.clone();
    let start = Instant::now();
    let cpu_report = cpu.step(&mut u, 0)?;
    let cpu_seconds = start.elapsed().as_secs_f64();
    let mut gauge = DeviceGauge::upload(device, &start_field)?;
    device.synchronize()?;
    let start = Instant::now();
    let device_report = gpu.step(&mut gauge, 0)?;
    device.synchronize()?;
    let device_seconds = start.elapsed().as_secs_f64();
    let name = |what: &str| format!("Nf=2 e/o trajectory b=5.6 k=0.156, Omelyan 6 {dims:?}, {what}");
    Ok(vec![
        Figure { name: name("device"), value: device_seconds, unit: "s" },
        Figure { name: name("CPU"), value: cpu_seconds, unit: "s" },
        Figure { name: name("dH device"), value: device_report.dh, unit: "" },
        Figure { name: name("dH CPU"), value: cpu_report.dh, unit: "" },
    ])
}
