//! The cost of the host interface: a Markov step on a host buffer (copy in with the checks,
//! step, copy out) against the same step on flowhmc's own field.

use super::{Figure, timed};
use crate::chain::run::build_update;
use crate::ffi::context::parse_parameters;
use crate::ffi::{Context, HostSliceMut};
use crate::field::GaugeField;
use crate::group::Su3;
use crate::host::{GaugeLayout, ResolvedGaugeLayout, export_gauge};

/// The parameters of the pure-gauge benchmark (SU(3) Wilson beta = 6, Omelyan 10 steps,
/// tau = 1) as a host passes them.
fn parameters(threads: usize) -> String {
    format!(
        "[gauge]\ngroup = \"su3\"\naction = \"wilson\"\nbeta = 6.0\n\
         [update]\nkind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 10\n\
         [run]\nseed = 1\nthreads = {threads}\n"
    )
}

/// Seconds per HMC trajectory on `thermalised` natively and through [`Context::update`] on an
/// f64 MILC-layout buffer, `trajectories` of each, alternating one native and one host
/// trajectory. Both chains start from the same field with the same seed, so they make the
/// same trajectories and do the same work; the ratio of the total times is the interface's
/// overhead.
pub fn update_overhead(thermalised: &GaugeField<Su3>, threads: usize, trajectories: u64) -> Vec<Figure> {
    let lat = thermalised.lattice().clone();
    let text = parameters(threads);
    let card = parse_parameters(lat.dims(), &text).expect("benchmark parameters");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let mut native = pool.install(|| build_update::<GaugeField<Su3>>(&card, &lat)).expect("HMC");
    let mut ctx = Context::new(lat.dims(), &text).expect("context");
    let milc = GaugeLayout::milc(lat.ndim());
    ctx.set_gauge_layout(&milc).expect("MILC layout");
    let mut buffer = vec![0.0; ctx.gauge_len()];
    let resolved = ResolvedGaugeLayout::new(&milc, &lat, 3).expect("layout");
    export_gauge(&resolved, thermalised, &mut buffer).expect("buffer");
    let mut u = thermalised.clone();
    let (mut native_times, mut host_times) = (Vec::new(), Vec::new());
    for k in 0..trajectories {
        native_times.extend(timed(1, |_| {
            pool.install(|| native.step(&mut u, k)).expect("trajectory");
        }));
        host_times.extend(timed(1, |_| {
            ctx.update(HostSliceMut::F64(&mut buffer)).expect("host trajectory");
        }));
    }
    let (native_total, host_total): (f64, f64) = (native_times.iter().sum(), host_times.iter().sum());
    let name = |what: &str| format!("HMC SU(3) 8^4 Omelyan 10 steps, {what}, {threads} thread(s)");
    let mut figures = Vec::new();
    figures.extend(super::spread(&name("native field"), &native_times, 1.0, "s/trajectory"));
    figures.extend(super::spread(&name("host buffer (MILC, f64)"), &host_times, 1.0, "s/trajectory"));
    figures.push(Figure {
        name: format!("  host-interface overhead, {threads} thread(s) (total host / total native - 1)"),
        value: 100.0 * (host_total / native_total - 1.0),
        unit: "%",
    });
    figures
}
