//! Domain decomposition against threads (issue 18): the same kernels on a 16^4 lattice run by
//! one rank with two threads and by two ranks with one thread each (blocks 16^3 x 8, time cut),
//! alternately in one run. The ranks are threads of this process ([`run_ranks`]), whose halo
//! messages are copies through shared memory, as MPI's shared-memory transport makes them on
//! one node; under `mpirun -np 2` (feature `mpi`) the two-rank side runs on the MPI ranks and
//! the one-rank side is left to a plain run of the same command, alternated by the caller.
//!
//! Timing of a rank pair: both ranks meet at a barrier ([`Comm::agree`]), run the kernel and
//! meet again; rank 0's time between the barriers is the pair's (the slower rank's) time.

use super::{Figure, median, spread};
use crate::checkerboard::Checkerboard;
use crate::comm::Comm;
use crate::comm::threads::run_ranks;
use crate::dirac::{Boundary, FermionOperator, Method, WilsonOperator, solve};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::integrator::{Integrator, Level, Scheme};
use crate::rng::Purpose;
use crate::solver::SolverParams;
use crate::spinor::SpinorField;
use crate::update::{Hmc, MarkovStep};
use std::sync::Arc;
use std::time::Instant;

/// The lattice of the comparison.
pub const DIMS: [usize; 4] = [16, 16, 16, 16];

/// The two-rank process grid: time cut in halves.
pub const GRID: [usize; 4] = [1, 1, 1, 2];

/// One repetition k of a kernel on a rank's block, returning its work count (solver
/// iterations; 1 where there is nothing to count).
type Work<'a> = &'a mut dyn FnMut(u64) -> usize;

/// What a kernel hands its [`Work`] to once it has built its fields: the timing loop.
type Measure<'a> = &'a mut dyn FnMut(Work);

/// A kernel of the comparison: its name, the unit of its figure, seconds per unit from (seconds,
/// work count), repetitions per round, the most rounds it is worth (a trajectory takes
/// seconds), and how a rank builds it on its block and hands it to the timing loop.
struct Kernel {
    name: &'static str,
    unit: &'static str,
    per: fn(f64, usize) -> f64,
    repeats: u64,
    max_rounds: u64,
    build: fn(&Arc<Lattice>, Measure),
}

/// The hot field of every kernel (keyed by global sites, so each block holds its part of it).
fn field(lattice: &Arc<Lattice>) -> GaugeField<Su3> {
    GaugeField::hot(lattice.clone(), 1)
}

fn wilson<R: crate::backend::cpu::packed::Real>(lattice: &Arc<Lattice>, measure: Measure) {
    let cb = Checkerboard::new(lattice.clone()).expect("checkerboard");
    let u = field(lattice);
    let w = WilsonOperator::<Su3, 4, R>::new(&u, &cb, 0.155, Boundary::ANTIPERIODIC).expect("M");
    let x = SpinorField::<Su3, 4>::gaussian_full(&cb, 1, Purpose::Test, 0).convert::<R>();
    let mut y = SpinorField::<Su3, 4, R>::full(&cb);
    measure(&mut |_| {
        w.apply(false, &x, &mut y);
        1
    })
}

fn even_odd_cg(lattice: &Arc<Lattice>, measure: Measure) {
    let cb = Checkerboard::new(lattice.clone()).expect("checkerboard");
    let u = field(lattice);
    let w = WilsonOperator::<Su3, 4>::new(&u, &cb, 0.155, Boundary::ANTIPERIODIC).expect("M");
    let b = SpinorField::<Su3, 4>::gaussian_full(&cb, 2, Purpose::Test, 0);
    let params = SolverParams { tolerance: 1e-10, max_iterations: 20_000 };
    measure(&mut |_| solve(&w, &b, None, Method::Cg, true, &params).expect("CG converges").1.iterations)
}

fn nf2_trajectory(lattice: &Arc<Lattice>, measure: Measure) {
    let cb = Checkerboard::new(lattice.clone()).expect("checkerboard");
    let monomials = super::fermions::gauge_and_pseudofermions::<Su3, 4>(&cb, 5.6, &[(0.156, 0.0)]);
    let levels = vec![Level { monomials: vec![0, 1], steps: 6, scheme: Scheme::Omelyan }];
    let mut hmc = Hmc::new(monomials, Integrator::new(levels, 2).expect("levels"), 1.0, 1).expect("hmc");
    let mut u = field(lattice);
    measure(&mut |k| hmc.step(&mut u, k).expect("trajectory").solver_iterations)
}

/// The kernels compared.
fn kernels() -> [Kernel; 4] {
    let each = |s: f64, _: usize| s * 1e3;
    [
        Kernel {
            name: "Wilson operator M (f64)",
            unit: "ms",
            per: each,
            repeats: 20,
            max_rounds: 9,
            build: wilson::<f64>,
        },
        Kernel {
            name: "Wilson operator M (f32)",
            unit: "ms",
            per: each,
            repeats: 20,
            max_rounds: 9,
            build: wilson::<f32>,
        },
        Kernel {
            name: "even/odd CG to 1e-10, kappa 0.155",
            unit: "ms/iteration",
            per: |s, n| s * 1e3 / n as f64,
            repeats: 2,
            max_rounds: 9,
            build: even_odd_cg,
        },
        Kernel {
            name: "Nf=2 e/o trajectory b=5.6 k=0.156, Omelyan 6",
            unit: "s",
            per: |s, _| s,
            repeats: 1,
            max_rounds: 3,
            build: nf2_trajectory,
        },
    ]
}

/// Times `kernel` on `lattice` in a pool of `threads` threads, `barrier` before and after each
/// repetition: one figure per repetition (repetition k of round `round`).
fn timed_on(
    kernel: &Kernel,
    lattice: impl FnOnce() -> Lattice + Send,
    threads: usize,
    round: u64,
    barrier: impl Fn() + Sync,
) -> Vec<f64> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    pool.install(|| {
        let lattice = Arc::new(lattice());
        let mut times = Vec::new();
        (kernel.build)(&lattice, &mut |work| {
            times = (0..kernel.repeats)
                .map(|k| {
                    barrier();
                    let t = Instant::now();
                    let n = work(round * kernel.repeats + k);
                    barrier();
                    (kernel.per)(t.elapsed().as_secs_f64(), n)
                })
                .collect()
        });
        times
    })
}

/// Times `kernel` on `comm`'s block with one thread; the same figures on every rank.
fn on_ranks(kernel: &Kernel, comm: Arc<dyn Comm>, round: u64) -> Vec<f64> {
    let lattice = || Lattice::distributed(&DIMS, comm.clone()).expect("blocks");
    timed_on(kernel, lattice, 1, round, || comm.agree(Ok(())).expect("barrier"))
}

/// Times `kernel` on the whole lattice with `threads` threads.
fn on_threads(kernel: &Kernel, threads: usize, round: u64) -> Vec<f64> {
    timed_on(kernel, || Lattice::new(&DIMS).expect("lattice"), threads, round, || ())
}

/// 1 rank x 2 threads against 2 ranks x 1 thread (ranks as threads of this process), `rounds`
/// alternations of both per kernel (at most its `max_rounds`): each
/// side's median and best time, and the ratio ranks / threads of each round's medians, whose
/// median and range are the figures compared (a ratio of two sides measured a moment apart is
/// spared most of the drift of a shared machine, which moves both).
pub fn ranks_against_threads(rounds: u64) -> Vec<Figure> {
    let mut figures = Vec::new();
    for kernel in kernels() {
        let rounds = rounds.min(kernel.max_rounds);
        let (mut threads, mut ranks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let t = on_threads(&kernel, 2, round);
            let r = run_ranks(&GRID, |comm| on_ranks(&kernel, comm, round)).swap_remove(0);
            ratios.push(median(&r) / median(&t));
            threads.extend(t);
            ranks.extend(r);
        }
        figures.extend(compared(&kernel, &threads, &ranks, &ratios));
    }
    figures
}

/// The figures of one kernel: each side's spread, and the median, smallest and largest of the
/// rounds' ratios.
fn compared(kernel: &Kernel, threads: &[f64], ranks: &[f64], ratios: &[f64]) -> Vec<Figure> {
    let name = format!("{} {DIMS:?}", kernel.name);
    let a = spread(&format!("{name}, 1 rank x 2 threads"), threads, 1.0, kernel.unit);
    let b = spread(&format!("{name}, 2 ranks x 1 thread {GRID:?}"), ranks, 1.0, kernel.unit);
    let (low, high) = ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    let ratio =
        |what: &str, value: f64| Figure { name: format!("  2 ranks / 2 threads, {what}"), value, unit: "" };
    let n = ratios.len();
    a.into_iter()
        .chain(b)
        .chain([
            ratio(&format!("median of {n} rounds"), median(ratios)),
            ratio("smallest round", low),
            ratio("largest round", high),
        ])
        .collect()
}

/// The two-rank side alone on `world`'s two ranks (MPI): every kernel, `rounds` rounds; the
/// figures on rank 0, empty on the other.
pub fn on_world_ranks(world: &Arc<dyn Comm>, rounds: u64) -> crate::Result<Vec<Figure>> {
    let comm = world.arrange(&GRID)?;
    let mut figures = Vec::new();
    for kernel in kernels() {
        let times: Vec<f64> = (0..rounds).flat_map(|round| on_ranks(&kernel, comm.clone(), round)).collect();
        let name = format!("{} {DIMS:?}, 2 MPI ranks x 1 thread {GRID:?}", kernel.name);
        figures.extend(spread(&name, &times, 1.0, kernel.unit));
    }
    Ok(if comm.rank() == 0 { figures } else { Vec::new() })
}
