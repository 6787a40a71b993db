//! Fermion benchmarks: memory bandwidth, the Wilson hopping term, CG solves and HMC
//! trajectories with pseudofermions (the figures of issue 3 in BENCHMARKS.md).

use super::{Figure, spread, timed};
use crate::action::fermion::{Pseudofermion, PseudofermionParams};
use crate::action::{GaugeAction, GaugeActionKind, Monomial};
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::checkerboard::Checkerboard;
use crate::dirac::{Boundary, FermionOperator, Method, WilsonOperator, solve};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{Su3, U1};
use crate::integrator::{Integrator, Level, Scheme};
use crate::rng::Purpose;
use crate::solver::SolverParams;
use crate::spinor::SpinorField;
use crate::update::{Hmc, MarkovStep};
use rayon::prelude::*;
use std::sync::Arc;

/// Every fermion figure for `threads` threads: bandwidth, the operator on 8^4 and 16^4, CG at
/// kappa = 0.150 on `u8` and HMC trajectories with fermions; `trajectories` (the pure-gauge
/// count) scales the repetitions.
pub fn all(u8: &GaugeField<Su3>, threads: usize, trajectories: u64) -> Vec<Figure> {
    let mut figures = vec![memory_bandwidth(threads, 256, 5)];
    for l in [8, 16] {
        let repeats = if l == 8 { 50 } else { 10 };
        figures.extend(wilson_operator::<f64>(l, threads, repeats));
        figures.extend(wilson_operator::<f32>(l, threads, repeats));
    }
    figures.extend(cg_solves(u8, 0.150, threads, 1 + trajectories / 10));
    figures.extend(fermion_trajectories(u8, threads, 2 + trajectories / 4));
    figures
}

/// Flops of the hopping term per site (openQCD's and QUDA's count for Wilson-Dirac: 1320).
pub const HOPPING_FLOPS_PER_SITE: f64 = 1320.0;

/// Reals the full operator M must move per site at the least: 4 links (72 reals) read once,
/// one spinor read and one written (24 reals each).
pub const M_REALS_PER_SITE: f64 = 72.0 + 2.0 * 24.0;

/// STREAM triad a = b + s c over three arrays of `mib` MiB each, best of `repeats`, in GB/s
/// (counting 3 arrays of traffic; write-allocate not counted, as STREAM does).
pub fn memory_bandwidth(threads: usize, mib: usize, repeats: u64) -> Figure {
    let n = mib * (1 << 20) / 8;
    let (mut a, b, c) = (vec![0.0f64; n], vec![1.0f64; n], vec![2.0f64; n]);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let times = pool.install(|| {
        timed(repeats, |_| {
            a.par_chunks_mut(1 << 16).zip(b.par_chunks(1 << 16)).zip(c.par_chunks(1 << 16)).for_each(
                |((a, b), c)| {
                    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                        *a = b + 3.0 * c;
                    }
                },
            )
        })
    });
    let best = times.iter().cloned().fold(f64::MAX, f64::min);
    Figure {
        name: format!("memory bandwidth, STREAM triad {mib} MiB arrays, {threads} thread(s), best"),
        value: 3.0 * (n * 8) as f64 / best * 1e-9,
        unit: "GB/s",
    }
}

/// The full Wilson operator M in precision R on a hot SU(3) field of extent `l`^4: time per
/// site (median and best of `repeats`), GFLOP/s at 1320 flops per site, and the effective
/// bandwidth of the best time under [`M_REALS_PER_SITE`].
pub fn wilson_operator<R: Real>(l: usize, threads: usize, repeats: u64) -> Vec<Figure> {
    let lat = Arc::new(Lattice::new(&[l, l, l, l]).expect("lattice"));
    let u = GaugeField::<Su3>::hot(lat.clone(), 1);
    let cb = Checkerboard::new(lat.clone()).expect("checkerboard");
    let w = WilsonOperator::<Su3, 4, R>::new(&u, &cb, 0.12, Boundary::ANTIPERIODIC).expect("operator");
    let x = SpinorField::<Su3, 4>::gaussian_full(&cb, 1, Purpose::Test, 0).convert::<R>();
    let mut y = SpinorField::<Su3, 4, R>::full(&cb);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let times = pool.install(|| timed(repeats, |_| w.apply(false, &x, &mut y)));
    let per_site = 1e6 / lat.volume() as f64;
    let name = format!("Wilson operator M ({}) {l}^4, {threads} thread(s)", R::NAME);
    let mut figures = spread(&name, &times, per_site, "us/site").to_vec();
    let best = figures[1].value * 1e-6;
    figures.push(Figure {
        name: "  GFLOP/s (best)".into(),
        value: HOPPING_FLOPS_PER_SITE / best * 1e-9,
        unit: "GFLOP/s",
    });
    figures.push(Figure {
        name: "  effective bandwidth (best)".into(),
        value: M_REALS_PER_SITE * std::mem::size_of::<R>() as f64 / best * 1e-9,
        unit: "GB/s",
    });
    figures
}

/// CG on the normal equations to relative residual 1e-10 on `u` at `kappa`, full and even/odd,
/// in f64 and in mixed precision: iterations and seconds (best of `repeats`).
pub fn cg_solves(u: &GaugeField<Su3>, kappa: f64, threads: usize, repeats: u64) -> Vec<Figure> {
    let cb = Checkerboard::new(u.lattice().clone()).expect("checkerboard");
    let w = WilsonOperator::<Su3, 4>::new(u, &cb, kappa, Boundary::PERIODIC).expect("operator");
    let b = SpinorField::<Su3, 4>::gaussian_full(&cb, 2, Purpose::Test, 0);
    let params = SolverParams { tolerance: 1e-10, max_iterations: 20_000 };
    let dims = u.lattice().dims().to_vec();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let mut figures = Vec::new();
    for (method, even_odd) in
        [(Method::Cg, false), (Method::Cg, true), (Method::MixedCg, false), (Method::MixedCg, true)]
    {
        let mut iterations = 0;
        let times = pool.install(|| {
            timed(repeats, |_| {
                iterations =
                    solve(&w, &b, None, method, even_odd, &params).expect("CG converges").1.iterations
            })
        });
        let label = if even_odd { "even/odd" } else { "full" };
        let kind = if method == Method::MixedCg { "mixed-precision CG" } else { "CG" };
        let name = format!("{kind} to 1e-10, kappa = {kappa}, {dims:?} {label}, {threads} thread(s)");
        figures.push(Figure { name: format!("{name}: iterations"), value: iterations as f64, unit: "" });
        figures.push(Figure {
            name: format!("{name}: best"),
            value: times.iter().cloned().fold(f64::MAX, f64::min),
            unit: "s",
        });
    }
    figures
}

/// The monomials of the fermion benchmarks: the Wilson gauge action at `beta`, then one
/// even/odd pseudofermion "pf{i}" (antiperiodic, f64 CG to 1e-10) per (kappa, kappa_heavy) of
/// `terms` on `cb`, with random stream i.
pub(crate) fn gauge_and_pseudofermions<G: PackedGroup, const S: usize>(
    cb: &Checkerboard,
    beta: f64,
    terms: &[(f64, f64)],
) -> Vec<Box<dyn Monomial<GaugeField<G>>>> {
    let mut monomials: Vec<Box<dyn Monomial<GaugeField<G>>>> =
        vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, beta))];
    for (i, &(kappa, kappa_heavy)) in terms.iter().enumerate() {
        let params = PseudofermionParams {
            kappa,
            kappa_heavy,
            boundary: Boundary::ANTIPERIODIC,
            even_odd: true,
            solver: SolverParams { tolerance: 1e-10, max_iterations: 20_000 },
            mixed_precision: false,
        };
        monomials.push(Box::new(Pseudofermion::<G, S>::new(&format!("pf{i}"), params, cb.clone(), i as u64)));
    }
    monomials
}

/// Seconds per HMC trajectory (median), acceptance and CG iterations per trajectory of a
/// gauge + pseudofermion chain started from `u`.
fn fermion_chain<G: PackedGroup, const S: usize>(
    label: &str,
    mut u: GaugeField<G>,
    beta: f64,
    terms: &[(f64, f64)],
    levels: Vec<Level>,
    threads: usize,
    trajectories: u64,
) -> Vec<Figure> {
    let cb = Checkerboard::new(u.lattice().clone()).expect("checkerboard");
    let monomials = gauge_and_pseudofermions::<G, S>(&cb, beta, terms);
    let n = monomials.len();
    let mut hmc = Hmc::new(monomials, Integrator::new(levels, n).expect("levels"), 1.0, 1).expect("hmc");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let (mut accepted, mut iterations) = (0u64, 0usize);
    let times = pool.install(|| {
        timed(trajectories, |k| {
            let r = hmc.step(&mut u, k).expect("trajectory");
            accepted += u64::from(r.accepted);
            iterations += r.solver_iterations;
        })
    });
    let mut figures = spread(&format!("{label}, {threads} thread(s)"), &times, 1.0, "s/trajectory").to_vec();
    figures.push(Figure {
        name: "  acceptance".into(),
        value: accepted as f64 / trajectories as f64,
        unit: "",
    });
    figures.push(Figure {
        name: "  CG iterations per trajectory".into(),
        value: iterations as f64 / trajectories as f64,
        unit: "",
    });
    figures
}

/// HMC trajectories with fermions: the Schwinger model at L = 16 (beta = 2, kappa = 0.26,
/// Omelyan 8 steps), and 4D SU(3) Nf = 2 at beta = 5.6, kappa = 0.156 on 8^4 from `u8`
/// (openQCD's qcd1 point: OMF2 6 steps; and with a Hasenbusch mass 0.13 on a finer level).
pub fn fermion_trajectories(u8: &GaugeField<Su3>, threads: usize, trajectories: u64) -> Vec<Figure> {
    let schwinger = GaugeField::<U1>::hot(Arc::new(Lattice::new(&[16, 16]).expect("lattice")), 1);
    let single = |steps| vec![Level { monomials: vec![0, 1], steps, scheme: Scheme::Omelyan }];
    let mut figures = fermion_chain::<U1, 2>(
        "HMC Schwinger 16^2 b=2 k=0.26 e/o, Omelyan 8",
        schwinger,
        2.0,
        &[(0.26, 0.0)],
        single(8),
        threads,
        trajectories,
    );
    figures.extend(fermion_chain::<Su3, 4>(
        "HMC SU(3) Nf=2 8^4 b=5.6 k=0.156 e/o, Omelyan 6",
        u8.clone(),
        5.6,
        &[(0.156, 0.0)],
        single(6),
        threads,
        trajectories,
    ));
    let nested = vec![
        Level { monomials: vec![2], steps: 4, scheme: Scheme::Omelyan },
        Level { monomials: vec![0, 1], steps: 2, scheme: Scheme::Omelyan },
    ];
    figures.extend(fermion_chain::<Su3, 4>(
        "HMC SU(3) Nf=2 8^4 + Hasenbusch 0.13, Omelyan 4 x 2",
        u8.clone(),
        5.6,
        &[(0.13, 0.0), (0.156, 0.13)],
        nested,
        threads,
        trajectories,
    ));
    figures
}
