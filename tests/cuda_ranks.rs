//! The CUDA backend with one device per rank (feature `cuda`): thread ranks, each with its own
//! emulated device holding its block, against one emulated device holding the whole lattice.
//! What each site computes is the same arithmetic either way, so per-site results (the Wilson
//! operator, its Schur form, the forces, the link update) agree bit for bit; sums differ only in
//! their order (each rank sums its block, then the ranks' totals are added exactly).
#![cfg(feature = "cuda")]

mod common;

use flowhmc::action::Monomial;
use flowhmc::action::device::{DeviceGaugeAction, DevicePseudofermion};
use flowhmc::action::fermion::PseudofermionParams;
use flowhmc::action::gauge::GaugeActionKind;
use flowhmc::backend::cuda::device::Device;
use flowhmc::backend::cuda::gauge::DeviceGauge;
use flowhmc::backend::cuda::layout;
use flowhmc::backend::cuda::spinor::DeviceSpinor;
use flowhmc::backend::cuda::wilson::{DeviceNormal, DeviceWilson, LinkStorage};
use flowhmc::checkerboard::Checkerboard;
use flowhmc::comm::Comm;
use flowhmc::comm::threads::run_ranks;
use flowhmc::dirac::Boundary;
use flowhmc::field::GaugeField;
use flowhmc::geometry::Lattice;
use flowhmc::group::Su3;
use flowhmc::integrator::{Integrator, Scheme};
use flowhmc::rng::Purpose;
use flowhmc::solver::{SolverParams, SolverVector, cg};
use flowhmc::spinor::SpinorField;
use flowhmc::update::{Hmc, MarkovStep};
use num_complex::Complex64;
use std::sync::Arc;

/// Lattices and process grids: time cut (the boundary phase crosses ranks), x and time cut
/// (blocks two sites wide in x), and y and z cut.
const GRIDS: [([usize; 4], [usize; 4]); 3] =
    [([4, 4, 4, 8], [1, 1, 1, 2]), ([4, 4, 4, 8], [2, 1, 1, 2]), ([4, 4, 8, 4], [1, 2, 2, 1])];

/// This rank's block of the whole field `whole`.
fn block_of(whole: &GaugeField<Su3>, comm: Arc<dyn Comm>) -> GaugeField<Su3> {
    let lat = Arc::new(Lattice::distributed(whole.lattice().dims(), comm).unwrap());
    let l = lat.clone();
    GaugeField::<Su3>::try_from_fn(lat, |site, mu| Ok::<_, ()>(whole.link(l.global_site(site), mu))).unwrap()
}

/// The values of the block's sites (`per_site` each) from site-major values of the whole lattice.
fn local_of<T: Copy>(whole: &[T], lattice: &Lattice, per_site: usize) -> Vec<T> {
    (0..lattice.volume())
        .flat_map(|x| {
            let g = lattice.global_site(x);
            whole[g * per_site..(g + 1) * per_site].to_vec()
        })
        .collect()
}

/// The even half (kernel layout) of the block of a whole-lattice full field.
fn local_even(whole: &[Complex64], lattice: &Lattice) -> Vec<Complex64> {
    layout::half(&local_of(whole, lattice, 12), lattice.dims(), 0)
}

/// Largest difference of two arrays relative to the largest entry of the second.
fn relative_off(got: &[f64], want: &[f64]) -> f64 {
    let largest = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / largest
}

fn reals(z: &[Complex64]) -> Vec<f64> {
    z.iter().flat_map(|z| [z.re, z.im]).collect()
}

/// Everything one device computes on the whole lattice that the ranks must repeat.
struct Reference {
    m: Vec<Complex64>,
    m_dagger_single_12: Vec<Complex64>,
    schur: Vec<Complex64>,
    schur_force: Vec<f64>,
    gauge_force: Vec<f64>,
    evolved: Vec<Complex64>,
    action: f64,
    cg_iterations: usize,
    solution: Vec<Complex64>,
}

const KAPPA: f64 = 0.125;
const THETA: f64 = 0.7;
const BETA: f64 = 2.3;

/// The operator, force, gauge-MD and CG results on `gauge` (whole or a block) with sources
/// `psi` (full) and `eta`, `chi` (even halves) of the block.
fn compute(gauge: &mut DeviceGauge, psi: &[Complex64], eta: &[Complex64], chi: &[Complex64]) -> Reference {
    let device = gauge.device().clone();
    let upload = |v: &[Complex64]| DeviceSpinor::<f64>::upload(&device, v).unwrap();
    let w = DeviceWilson::<f64>::on(gauge, KAPPA, THETA, LinkStorage::Full).unwrap();
    let (psi, eta, chi) = (upload(psi), upload(eta), upload(chi));
    let mut m = DeviceSpinor::<f64>::zeros(&device, w.entries()).unwrap();
    w.apply(false, &psi, &mut m).unwrap();
    let single = DeviceWilson::<f32>::on(gauge, KAPPA, THETA, LinkStorage::TwoRows).unwrap();
    let psi_single = DeviceSpinor::<f32>::upload(&device, &psi.download().unwrap()).unwrap();
    let mut m_single = DeviceSpinor::<f32>::zeros(&device, w.entries()).unwrap();
    single.apply(true, &psi_single, &mut m_single).unwrap();
    let (mut schur, mut odd) = (eta.zeroed(), DeviceSpinor::<f64>::zeros(&device, w.half_entries()).unwrap());
    w.apply_schur(false, &eta, &mut schur, &mut odd).unwrap();
    let mut schur_force = gauge.zero_momenta().unwrap();
    w.add_schur_derivative(&eta, &chi, 0.8, &mut schur_force).unwrap();
    let mut gauge_force = gauge.zero_momenta().unwrap();
    gauge.add_force(BETA, GaugeActionKind::Iwasaki.c1(), 1.0, &mut gauge_force).unwrap();
    let params = SolverParams { tolerance: 1e-10, max_iterations: 1000 };
    let (x, report) = cg(&DeviceNormal::new(&w, true).unwrap(), &eta, None, &params).unwrap();
    let action = gauge.action(BETA, GaugeActionKind::Iwasaki.c1()).unwrap();
    let mut moved = gauge.try_clone().unwrap();
    moved.evolve(&gauge_force, 0.01).unwrap();
    // a second force on the moved field reads the refreshed halos
    moved.add_force(BETA, GaugeActionKind::Iwasaki.c1(), 1.0, &mut gauge_force).unwrap();
    Reference {
        m: m.download().unwrap(),
        m_dagger_single_12: m_single.download().unwrap(),
        schur: schur.download().unwrap(),
        schur_force: schur_force.download().unwrap(),
        gauge_force: gauge_force.download().unwrap(),
        evolved: moved.download().unwrap(),
        action,
        cg_iterations: report.iterations,
        solution: x.download().unwrap(),
    }
}

/// On every grid: M (f64), M^dagger (f32 with 12-real links), the Schur operator, its force,
/// the Iwasaki gauge force before and after a link update, and the updated links equal the
/// whole lattice's bit for bit at every site; the action within 1e-13 relative; CG on the
/// Schur normal equations to 1e-10 in the same iterations within one, solutions within 1e-9.
#[test]
fn operators_forces_and_solves_on_ranks_repeat_one_device() {
    for (dims, grid) in GRIDS {
        let whole_lattice = Arc::new(Lattice::new(&dims).unwrap());
        let u = GaugeField::<Su3>::hot(whole_lattice.clone(), 41);
        let cb = Checkerboard::new(whole_lattice.clone()).unwrap();
        let full =
            |seed| layout::spinor_of(&SpinorField::<Su3, 4>::gaussian_full(&cb, seed, Purpose::Test, 0), &cb);
        let (psi, a, b) = (full(1), full(2), full(3));
        let whole_device = Device::emulated();
        let mut whole = DeviceGauge::upload(&whole_device, &u).unwrap();
        let want =
            compute(&mut whole, &psi, &local_even(&a, &whole_lattice), &local_even(&b, &whole_lattice));
        run_ranks(&grid, |comm| {
            let at = format!("{dims:?} on {grid:?}, rank {}", comm.rank());
            let block = block_of(&u, comm.clone());
            let lattice = block.lattice().clone();
            let device = Device::emulated().on_ranks(comm.clone());
            let mut gauge = DeviceGauge::upload(&device, &block).unwrap();
            let got = compute(
                &mut gauge,
                &local_of(&psi, &lattice, 12),
                &local_even(&a, &lattice),
                &local_even(&b, &lattice),
            );
            let local = |v: &[Complex64], per_site| local_of(v, &lattice, per_site);
            assert!(got.m == local(&want.m, 12), "{at}: M");
            assert!(
                got.m_dagger_single_12 == local(&want.m_dagger_single_12, 12),
                "{at}: M^dagger f32, 12 reals"
            );
            assert!(
                got.schur == local_even(&want.schur_full(&whole_lattice), &lattice),
                "{at}: Schur operator"
            );
            assert!(got.schur_force == local_of(&want.schur_force, &lattice, 32), "{at}: Schur force");
            assert!(got.gauge_force == local_of(&want.gauge_force, &lattice, 32), "{at}: gauge forces");
            assert!(got.evolved == local(&want.evolved, 36), "{at}: updated links");
            assert!((got.action - want.action).abs() <= 1e-13 * want.action.abs(), "{at}: action");
            assert!(got.cg_iterations.abs_diff(want.cg_iterations) <= 1, "{at}: CG iterations");
            let solution = local_even(&want.solution_full(&whole_lattice), &lattice);
            let off = relative_off(&reals(&got.solution), &reals(&solution));
            assert!(off <= 1e-9, "{at}: CG solution off by {off}");
        });
    }
}

impl Reference {
    /// The even-half Schur result as a full field of the whole lattice (odd sites zero).
    fn schur_full(&self, lattice: &Lattice) -> Vec<Complex64> {
        even_to_full(&self.schur, lattice)
    }

    fn solution_full(&self, lattice: &Lattice) -> Vec<Complex64> {
        even_to_full(&self.solution, lattice)
    }
}

/// A full field (site-major) whose even sites hold the even half `even` (kernel layout) and
/// whose odd sites are zero.
fn even_to_full(even: &[Complex64], lattice: &Lattice) -> Vec<Complex64> {
    let mut full = vec![Complex64::new(0.0, 0.0); lattice.volume() * 12];
    let mut k = 0;
    for x in 0..lattice.volume() {
        if lattice.coords(x).iter().sum::<usize>() % 2 == 0 {
            full[x * 12..(x + 1) * 12].copy_from_slice(&even[k * 12..(k + 1) * 12]);
            k += 1;
        }
    }
    full
}

/// An Nf = 2 trajectory with a Hasenbusch ratio (Iwasaki gauge action beta 2.3, kappa 0.11
/// and 0.125, mixed-precision solves with 12-real links, Omelyan 3 steps, tau 0.5) on four
/// thread ranks (y and z cut) with a device each repeats that of one device on the whole
/// lattice: the same
/// acceptance, dH within 1e-9, and links within 1e-11.
#[test]
fn hmc_trajectories_on_ranks_repeat_one_device() {
    let dims = [4, 4, 4, 8];
    let u = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&dims).unwrap()), 43);
    let chain = |gauge: &mut DeviceGauge, lattice: &Arc<Lattice>| -> Vec<(bool, f64)> {
        let params = |kappa: f64, kappa_heavy: f64| PseudofermionParams {
            kappa,
            kappa_heavy,
            boundary: Boundary::ANTIPERIODIC,
            even_odd: true,
            solver: SolverParams { tolerance: 1e-11, max_iterations: 1000 },
            mixed_precision: true,
        };
        let links = LinkStorage::TwoRows;
        let monomials: Vec<Box<dyn Monomial<DeviceGauge>>> = vec![
            Box::new(DeviceGaugeAction::new("gauge", GaugeActionKind::Iwasaki, BETA)),
            Box::new(DevicePseudofermion::new("light", params(0.11, 0.0), links, lattice, 0).unwrap()),
            Box::new(DevicePseudofermion::new("ratio", params(0.125, 0.11), links, lattice, 1).unwrap()),
        ];
        let integrator = Integrator::single(Scheme::Omelyan, 3, 3).unwrap();
        let mut hmc = Hmc::new(monomials, integrator, 0.5, 5).unwrap();
        (0..1)
            .map(|k| {
                let r = hmc.step(gauge, k).unwrap();
                (r.accepted, r.dh)
            })
            .collect()
    };
    let mut whole = DeviceGauge::upload(&Device::emulated(), &u).unwrap();
    let want = chain(&mut whole, &u.lattice().clone());
    let want_links = whole.download().unwrap();
    // y and z cut (time cut with HMC: the card test below)
    let grid = [1, 2, 2, 1];
    run_ranks(&grid, |comm| {
        let at = format!("{dims:?} on {grid:?}, rank {}", comm.rank());
        let block = block_of(&u, comm.clone());
        let lattice = block.lattice().clone();
        let mut gauge = DeviceGauge::upload(&Device::emulated().on_ranks(comm.clone()), &block).unwrap();
        let got = chain(&mut gauge, &lattice);
        for ((a, dh), (b, want_dh)) in got.iter().zip(&want) {
            assert_eq!(a, b, "{at}: acceptance");
            assert!((dh - want_dh).abs() <= 1e-9, "{at}: dH {dh} against {want_dh}");
        }
        let off =
            relative_off(&reals(&gauge.download().unwrap()), &reals(&local_of(&want_links, &lattice, 36)));
        assert!(off <= 1e-11, "{at}: links off by {off}");
    });
}

/// A card with `device = "cuda-emulated"` (Iwasaki, Nf = 2 with a Hasenbusch ratio on two
/// levels, mixed-precision CG) run on two thread ranks (process grid [1, 1, 1, 2], a device
/// each) repeats the same card on one process: every trajectory's acceptance, plaquette
/// (1e-11) and dH (1e-8).
#[test]
fn a_card_on_ranks_with_a_device_each_repeats_one_process() {
    use flowhmc::chain::card::Card;
    use flowhmc::chain::run::{RunOptions, run_card, run_card_on};
    use flowhmc::chain::summary::read_measurements;
    let card = |dir: &std::path::Path| {
        let run_keys = "device = \"cuda-emulated\"\nprocess_grid = [1, 1, 1, 2]";
        Card::parse(&common::hasenbusch_card(dir, 2, 2, 3, 1e-11, run_keys), "card.toml").unwrap()
    };
    let scratch = std::env::temp_dir().join(format!("flowhmc-cuda-ranks-card-{}", std::process::id()));
    let (one, two) = (scratch.join("one"), scratch.join("two"));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut single = card(&one);
    single.run.process_grid = None;
    run_card(&single, RunOptions { resume: false, quiet: true }).unwrap();
    let on_ranks = card(&two);
    let results = run_ranks(&[2], |world| {
        run_card_on(&on_ranks, RunOptions { resume: false, quiet: true }, &world)
            .map(|summary| summary.is_some())
    });
    assert_eq!(
        results.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [true, false],
        "rank 0 summarizes"
    );
    let (want, got) = (read_measurements(&one).unwrap(), read_measurements(&two).unwrap());
    std::fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(got.len(), 2);
    common::assert_runs_agree(&want, &got, 1e-11, 1e-8, "2 ranks");
}
