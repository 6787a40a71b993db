//! Benchmarks shared by `flowhmc bench` and `cargo bench`: the figures that are compared with
//! openQCD 2.4.2 run side by side (BENCHMARKS.md). Pure gauge here, fermions in [`fermions`],
//! the host interface's overhead in [`host`], the flow models in [`flows`], domain
//! decomposition against threads in [`ranks`], the CUDA backend against the CPU in `device`
//! (feature `cuda`).

#[cfg(feature = "cuda")]
pub mod device;
pub mod fermions;
pub mod flows;
pub mod host;
pub mod ranks;

use crate::action::{GaugeAction, GaugeActionKind, Monomial};
use crate::backend::cpu::PackedGroup;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::integrator::{Integrator, Scheme};
use crate::observables::average_plaquette;
use crate::update::{Hmc, MarkovStep};
use std::sync::Arc;
use std::time::Instant;

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

/// SU(3) Wilson beta = 6.0 on 8^4: the gauge-force time per site, and seconds per HMC
/// trajectory (tau = 1) with acceptance for Omelyan 2MN with 10 steps and Omelyan 4MN5FV with
/// 4 steps (openQCD's OMF2 and OMF4 benchmark points), for each thread count.
/// The field is thermalised from a hot start by `thermalization` trajectories first (with all
/// cores); then `trajectories` trajectories are timed per thread count.
pub fn su3_pure_gauge(thread_counts: &[usize], thermalization: u64, trajectories: u64) -> Vec<Figure> {
    su3_pure_gauge_on(&thermalised_su3(thermalization), thread_counts, thermalization, trajectories)
}

/// A hot 8^4 SU(3) field after `thermalization` Omelyan trajectories at beta = 6 (all cores).
pub fn thermalised_su3(thermalization: u64) -> GaugeField<Su3> {
    let lat = Arc::new(Lattice::new(&[8, 8, 8, 8]).expect("8^4"));
    let mut u = GaugeField::<Su3>::hot(lat, 1);
    let mut chain = pure_gauge_hmc::<Su3>(Scheme::Omelyan, 10);
    for k in 0..thermalization {
        chain.step(&mut u, k).expect("trajectory");
    }
    u
}

/// HMC (tau = 1) for the Wilson action at beta = 6 with one integrator level.
pub(crate) fn pure_gauge_hmc<G: PackedGroup>(scheme: Scheme, steps: usize) -> Hmc<GaugeField<G>> {
    let mono: Vec<Box<dyn Monomial<GaugeField<G>>>> =
        vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, 6.0))];
    let integrator = Integrator::single(scheme, steps, 1).expect("integrator");
    Hmc::new(mono, integrator, 1.0, 1).expect("hmc")
}

/// [`su3_pure_gauge`] on a given thermalised field (`thermalization`: its update count).
pub fn su3_pure_gauge_on(
    thermalised: &GaugeField<Su3>,
    thread_counts: &[usize],
    thermalization: u64,
    trajectories: u64,
) -> Vec<Figure> {
    let lat = thermalised.lattice().clone();
    let action = GaugeAction::new(GaugeActionKind::Wilson, 6.0);
    let mut figures = vec![Figure {
        name: format!("plaquette after {thermalization} thermalization trajectories"),
        value: average_plaquette(thermalised),
        unit: "",
    }];
    for &threads in thread_counts {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        pool.install(|| {
            let mut f = MomentumField::<Su3>::zeros(&lat);
            let force_times = timed(50, |_| action.force(thermalised, 1.0, &mut f));
            let per_site = 1e6 / lat.volume() as f64;
            figures.extend(spread(
                &format!("gauge force SU(3) Wilson 8^4, {threads} thread(s)"),
                &force_times,
                per_site,
                "us/site",
            ));
            for (scheme, steps, label) in
                [(Scheme::Omelyan, 10, "Omelyan 10 steps"), (Scheme::Omelyan4, 4, "OMF4 4 steps")]
            {
                let mut u = thermalised.clone();
                let mut chain = pure_gauge_hmc::<Su3>(scheme, steps);
                let mut accepted = 0;
                let times = timed(trajectories, |k| {
                    let report = chain.step(&mut u, thermalization + k).expect("trajectory");
                    accepted += u64::from(report.accepted);
                });
                let name = format!("HMC SU(3) Wilson b=6 8^4 {label}, {threads} thread(s)");
                figures.extend(spread(&name, &times, 1.0, "s/trajectory"));
                figures.push(Figure {
                    name: "  acceptance".into(),
                    value: accepted as f64 / trajectories as f64,
                    unit: "",
                });
            }
        });
    }
    figures
}

/// Seconds taken by each of `repeats` calls of `work(k)`, k = 0..repeats.
pub(crate) fn timed(repeats: u64, mut work: impl FnMut(u64)) -> Vec<f64> {
    (0..repeats)
        .map(|k| {
            let t = Instant::now();
            work(k);
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// The median and the minimum of `times`, scaled by `scale`: on a shared machine the median is
/// the typical figure and the minimum the one least disturbed by other work.
pub(crate) fn spread(name: &str, times: &[f64], scale: f64, unit: &'static str) -> [Figure; 2] {
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    [
        Figure { name: format!("{name}, median"), value: median(times) * scale, unit },
        Figure { name: format!("{name}, best of {}", times.len()), value: best * scale, unit },
    ]
}

/// The median of `times` (the upper one of an even count).
pub(crate) fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The thread counts the benchmarks compare: 1, and 2 where the machine has two cores or more.
pub fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if cores > 1 { vec![1, 2] } else { vec![1] }
}

/// Prints the figures as a table.
pub fn print(figures: &[Figure]) {
    for f in figures {
        println!("{:<64} {:>12.6} {}", f.name, f.value, f.unit);
    }
}
