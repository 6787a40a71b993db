//! Domain decomposition inside one process: every kernel on the blocks of 2 and 4 ranks (threads
//! of this test, [`ThreadComm`]) equals the whole lattice's result bit for bit, on process grids
//! that cut one or two directions, time included, in 2D and 4D.

mod common;

use common::{NF2_HOST_PARAMETERS, cold_su3_host_field};
use flowhmc::action::gauge::{GaugeAction, GaugeActionKind};
use flowhmc::backend::cpu::PackedGroup;
use flowhmc::checkerboard::Checkerboard;
use flowhmc::comm::Comm;
use flowhmc::comm::threads::run_ranks;
use flowhmc::dirac::operator::FermionMatrix;
use flowhmc::dirac::solve::{Method, solve};
use flowhmc::dirac::wilson::{Boundary, WilsonOperator};
use flowhmc::field::{GaugeField, MomentumField};
use flowhmc::geometry::Lattice;
use flowhmc::group::{Su3, U1};
use flowhmc::observables::hadrons::{chiral_condensate, pion_correlator};
use flowhmc::observables::{
    average_plaquette, average_rectangle, polyakov_loop, topological_charge_u1_2d, wilson_flow,
};
use flowhmc::rng::Purpose;
use flowhmc::rng::StreamKey;
use flowhmc::solver::SolverParams;
use flowhmc::spinor::SpinorField;
use std::sync::Arc;

/// (global extents, process grid) pairs: 2D and 4D, cutting time, z, x, and two at once; the
/// packed layout's lane directions ([`Lattice::lane_directions`]) move off the cut ones where
/// they can ([4, 4, 4, 8] on [1, 1, 1, 2]: y and z; [4, 4, 8, 4] on [1, 2, 2, 1]: x and t) and
/// stay split by the cut where they cannot (2D on [1, 2]; [4, 2, 4, 8] on [1, 1, 1, 2], whose
/// y extent 2 leaves z and t).
const GRIDS: [(&[usize], &[usize]); 7] = [
    (&[8, 8], &[1, 2]),
    (&[8, 8], &[2, 2]),
    (&[4, 4, 4, 8], &[1, 1, 1, 2]),
    (&[4, 2, 4, 8], &[1, 1, 1, 2]),
    (&[4, 4, 8, 8], &[1, 1, 2, 2]),
    (&[8, 4, 4, 4], &[2, 1, 1, 1]),
    (&[4, 4, 8, 4], &[1, 2, 2, 1]),
];

/// This rank's block of the whole field `whole`.
fn block_of<G: PackedGroup>(whole: &GaugeField<G>, comm: Arc<dyn Comm>) -> GaugeField<G> {
    let lat = Arc::new(Lattice::distributed(whole.lattice().dims(), comm).unwrap());
    let l = lat.clone();
    GaugeField::<G>::try_from_fn(lat, |site, mu| Ok::<_, ()>(whole.link(l.global_site(site), mu))).unwrap()
}

/// Whether every momentum of the block equals the whole lattice's at the same global site.
fn same_momenta<G: PackedGroup>(
    block: &MomentumField<G>,
    lat: &Lattice,
    whole: &MomentumField<G>,
    wl: &Lattice,
) -> bool {
    (0..lat.volume()).all(|site| {
        (0..lat.ndim()).all(|mu| {
            let (a, b) = (block.at(lat, site, mu), whole.at(wl, lat.global_site(site), mu));
            a.as_ref().iter().zip(b.as_ref()).all(|(x, y)| x.to_bits() == y.to_bits())
        })
    })
}

fn check_gauge<G: PackedGroup>(dims: &[usize], grid: &[usize]) {
    let whole = GaugeField::<G>::hot(Arc::new(Lattice::new(dims).unwrap()), 11);
    let wl = whole.lattice().clone();
    let actions =
        [GaugeAction::new(GaugeActionKind::Wilson, 5.5), GaugeAction::new(GaugeActionKind::Iwasaki, 2.3)];
    let expected: Vec<(f64, MomentumField<G>)> = actions
        .iter()
        .map(|a| {
            let mut p = MomentumField::<G>::gaussian(&wl, 3, 1);
            a.force(&whole, 0.3, &mut p);
            (a.value(&whole), p)
        })
        .collect();
    let (plaquette, rectangle) = (average_plaquette(&whole), average_rectangle(&whole));
    let kinetic = MomentumField::<G>::gaussian(&wl, 3, 1).kinetic_energy();
    run_ranks(grid, |comm| {
        let u = block_of(&whole, comm);
        let lat = u.lattice().clone();
        assert_eq!(u, GaugeField::<G>::hot(lat.clone(), 11), "{dims:?} {grid:?}: hot start on the blocks");
        assert_eq!(average_plaquette(&u).to_bits(), plaquette.to_bits(), "{dims:?} {grid:?} plaquette");
        assert_eq!(average_rectangle(&u).to_bits(), rectangle.to_bits(), "{dims:?} {grid:?} rectangle");
        assert_eq!(MomentumField::<G>::gaussian(&lat, 3, 1).kinetic_energy().to_bits(), kinetic.to_bits());
        for (a, (value, force)) in actions.iter().zip(&expected) {
            assert_eq!(a.value(&u).to_bits(), value.to_bits(), "{dims:?} {grid:?} action");
            let mut p = MomentumField::<G>::gaussian(&lat, 3, 1);
            a.force(&u, 0.3, &mut p);
            assert!(same_momenta(&p, &lat, force, &wl), "{dims:?} {grid:?} force of {a:?}");
        }
    });
}

#[test]
fn gauge_actions_forces_and_loops_on_ranks_equal_the_whole_lattice() {
    for (dims, grid) in GRIDS {
        if dims.len() == 2 {
            check_gauge::<U1>(dims, grid);
        } else {
            check_gauge::<Su3>(dims, grid);
        }
    }
}

/// Whether every component of the block's full field equals the whole field's at the same
/// global site, bit for bit.
fn same_spinors<G: PackedGroup, const S: usize>(
    block: &SpinorField<G, S>,
    cb: &Checkerboard,
    whole: &SpinorField<G, S>,
    wcb: &Checkerboard,
) -> bool {
    let lat = cb.lattice();
    (0..lat.volume()).all(|site| {
        (0..S).all(|spin| {
            (0..G::NC).all(|c| {
                let (a, b) = (block.get(cb, site, spin, c), whole.get(wcb, lat.global_site(site), spin, c));
                a.re.to_bits() == b.re.to_bits() && a.im.to_bits() == b.im.to_bits()
            })
        })
    })
}

/// What a fermion operator computes from one field: M x, M^dagger x, the derivative of
/// Re(x^dagger M y) (full operator), and with even/odd preconditioning the Schur operator and
/// its derivative on the even half, a CG solve (iterations, residual, solution) and a
/// mixed-precision one.
struct WilsonResults<G: PackedGroup, const S: usize> {
    m: SpinorField<G, S>,
    m_dagger: SpinorField<G, S>,
    point: SpinorField<G, S>,
    force: MomentumField<G>,
    schur: Option<(SpinorField<G, S>, MomentumField<G>)>,
    solves: Vec<(usize, f64, SpinorField<G, S>)>,
    /// The clover term's ln det A over the lattice (clover operators only).
    log_det: Option<f64>,
}

fn wilson_results<G: PackedGroup, const S: usize>(
    u: &GaugeField<G>,
    even_odd: bool,
) -> (Checkerboard, WilsonResults<G, S>) {
    let cb = Checkerboard::for_fields(u.lattice().clone(), even_odd).unwrap();
    let w = WilsonOperator::<G, S>::new(u, &cb, 0.12, Boundary::ANTIPERIODIC).unwrap();
    (cb.clone(), operator_results(&w, &cb, even_odd))
}

/// [`WilsonResults`] of the operator `w` on the layout `cb`.
fn operator_results<G: PackedGroup, const S: usize>(
    w: &impl FermionMatrix<G, S>,
    cb: &Checkerboard,
    even_odd: bool,
) -> WilsonResults<G, S> {
    let x = SpinorField::<G, S>::gaussian_full(cb, 5, Purpose::Pseudofermion, 2);
    let y = SpinorField::<G, S>::gaussian_full(cb, 6, Purpose::Pseudofermion, 2);
    let (mut m, mut m_dagger) = (x.zeros_like(), x.zeros_like());
    w.apply(false, &x, &mut m);
    w.apply(true, &x, &mut m_dagger);
    // a point source at the global origin, with gamma5 applied so that the zeros of its lower
    // spin components are -0: the halo must keep the signs of zeros too
    let lat = cb.lattice();
    let mut source = x.zeros_like();
    if let Some(origin) = (0..lat.volume()).find(|&s| lat.global_site(s) == 0) {
        source.set(cb, origin, 0, 0, num_complex::Complex64::new(1.0, -2.0));
    }
    source.gamma5();
    let mut point = x.zeros_like();
    w.apply(false, &source, &mut point);
    let mut force = MomentumField::<G>::gaussian(cb.lattice(), 1, 1);
    w.add_derivative(false, &x, &y, 0.7, &mut force);
    let params = SolverParams { tolerance: 1e-10, max_iterations: 1000 };
    let schur = even_odd.then(|| {
        let (xe, ye) = (x.half_of(0), y.half_of(0));
        let mut s = xe.zeros_like();
        w.apply_schur(false, &xe, &mut s);
        let mut f = MomentumField::<G>::zeros(cb.lattice());
        w.add_derivative(true, &xe, &ye, -0.3, &mut f);
        (s, f)
    });
    let solves = [Method::Cg, Method::MixedCg]
        .into_iter()
        .map(|method| {
            let (solution, report) = solve(w, &x, None, method, even_odd, &params).unwrap();
            (report.iterations, report.residual, solution)
        })
        .collect();
    WilsonResults { m, m_dagger, point, force, schur, solves, log_det: None }
}

fn check_wilson<G: PackedGroup, const S: usize>(dims: &[usize], grid: &[usize]) {
    check_operator::<G, S>(dims, grid, wilson_results::<G, S>);
}

/// The clover operator's results ([`WilsonResults`]), the derivative of ln det A_oo added to the
/// force, with the term's ln det A (both parities, summed over the ranks).
fn clover_results<G: PackedGroup, const S: usize>(
    u: &GaugeField<G>,
    even_odd: bool,
) -> (Checkerboard, WilsonResults<G, S>) {
    use flowhmc::dirac::CloverOperator;
    let cb = Checkerboard::for_fields(u.lattice().clone(), even_odd).unwrap();
    let m = CloverOperator::<G, S>::new(u, &cb, 0.12, 1.7, Boundary::ANTIPERIODIC).unwrap();
    let mut results = operator_results(&m, &cb, even_odd);
    m.add_log_det_derivative(1, 0.4, &mut results.force);
    let mut sums = [m.term().log_det(0), m.term().log_det(1)];
    u.lattice().comm().sum_exact(&mut sums);
    let logs = sums.map(|s| s.value());
    results.log_det = Some(logs[0] + logs[1]);
    (cb, results)
}

/// The operator results of `results` on the blocks of `grid` equal the whole lattice's, bit
/// for bit.
fn check_operator<G: PackedGroup, const S: usize>(
    dims: &[usize],
    grid: &[usize],
    results: impl Fn(&GaugeField<G>, bool) -> (Checkerboard, WilsonResults<G, S>) + Sync,
) {
    let whole = GaugeField::<G>::hot(Arc::new(Lattice::new(dims).unwrap()), 12);
    let wl = whole.lattice().clone();
    for even_odd in [false, true] {
        let (wcb, want) = results(&whole, even_odd);
        run_ranks(grid, |comm| {
            let u = block_of(&whole, comm);
            let lat = u.lattice().clone();
            let (cb, got) = results(&u, even_odd);
            let at = format!("{dims:?} on {grid:?}, even/odd {even_odd}");
            assert!(same_spinors(&got.m, &cb, &want.m, &wcb), "{at}: M");
            assert!(same_spinors(&got.m_dagger, &cb, &want.m_dagger, &wcb), "{at}: M^dagger");
            assert!(same_spinors(&got.point, &cb, &want.point, &wcb), "{at}: M on a point source");
            assert!(same_momenta(&got.force, &lat, &want.force, &wl), "{at}: derivative of M");
            if let (Some((s, f)), Some((ws, wf))) = (&got.schur, &want.schur) {
                // the even half, compared through full fields with a zero odd half
                let (full, wfull) = (
                    SpinorField::from_halves(s, &s.zeros_like()),
                    SpinorField::from_halves(ws, &ws.zeros_like()),
                );
                assert!(same_spinors(&full, &cb, &wfull, &wcb), "{at}: Schur operator");
                assert!(same_momenta(f, &lat, wf, &wl), "{at}: derivative of the Schur operator");
            }
            assert_eq!(got.log_det.map(f64::to_bits), want.log_det.map(f64::to_bits), "{at}: ln det A");
            for ((n, r, x), (wn, wr, wx)) in got.solves.iter().zip(&want.solves) {
                assert_eq!((n, r.to_bits()), (wn, wr.to_bits()), "{at}: iterations and residual");
                assert!(same_spinors(x, &cb, wx, &wcb), "{at}: solution");
            }
        });
    }
}

/// The clover operator on ranks: M, the Schur operator, their derivatives with the odd-site
/// determinant's, the solves and ln det A equal the whole lattice's bit for bit (the force
/// reads the field-strength insertions of the neighbouring blocks from their halo).
#[test]
fn clover_operator_forces_and_solves_on_ranks_equal_the_whole_lattice() {
    for (dims, grid) in GRIDS {
        if dims.len() == 2 {
            check_operator::<U1, 2>(dims, grid, clover_results::<U1, 2>);
        } else {
            check_operator::<Su3, 4>(dims, grid, clover_results::<Su3, 4>);
        }
    }
}

#[test]
fn wilson_operator_forces_and_solves_on_ranks_equal_the_whole_lattice() {
    for (dims, grid) in GRIDS {
        if dims.len() == 2 {
            check_wilson::<U1, 2>(dims, grid);
        } else {
            check_wilson::<Su3, 4>(dims, grid);
        }
    }
}

/// Every gauge observable of a run's measurements: plaquette, rectangle, Polyakov loop, the
/// topological charge (geometric in 2D, clover after the flow in 4D) and the Wilson flow's
/// energy densities; with a Wilson operator the chiral condensate and the pion correlator.
fn observables<G: PackedGroup, const S: usize>(u: &GaugeField<G>) -> Vec<f64> {
    let mut values = vec![average_plaquette(u), average_rectangle(u)];
    let p = polyakov_loop(u);
    values.extend([p.re, p.im]);
    let flow = wilson_flow(u, 0.05, 0.2);
    values.extend(flow.energy);
    values.extend(flow.charge);
    if let Some(q) = (u.lattice().ndim() == 2).then(|| topological_charge_u1_2d_any(u)).flatten() {
        values.push(q);
    }
    let cb = Checkerboard::for_fields(u.lattice().clone(), true).unwrap();
    let w = WilsonOperator::<G, S>::new(u, &cb, 0.12, Boundary::ANTIPERIODIC).unwrap();
    let params = SolverParams { tolerance: 1e-10, max_iterations: 1000 };
    let key = StreamKey::new(3, Purpose::Test, 1);
    values.push(chiral_condensate(&w, 2, &key, Method::Cg, &params).unwrap().value);
    values.extend(pion_correlator(&w, Method::Cg, &params).unwrap().value);
    values
}

/// The geometric charge where the field is U(1).
fn topological_charge_u1_2d_any<G: PackedGroup>(u: &GaugeField<G>) -> Option<f64> {
    (u as &dyn std::any::Any).downcast_ref::<GaugeField<U1>>().map(topological_charge_u1_2d)
}

fn check_observables<G: PackedGroup, const S: usize>(dims: &[usize], grid: &[usize]) {
    let whole = GaugeField::<G>::hot(Arc::new(Lattice::new(dims).unwrap()), 13);
    let want = observables::<G, S>(&whole);
    run_ranks(grid, |comm| {
        let got = observables::<G, S>(&block_of(&whole, comm));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{dims:?} on {grid:?}: {got:?} against {want:?}");
    });
}

#[test]
fn observables_on_ranks_equal_the_whole_lattice() {
    for (dims, grid) in GRIDS {
        if dims.len() == 2 {
            check_observables::<U1, 2>(dims, grid);
        } else {
            check_observables::<Su3, 4>(dims, grid);
        }
    }
}

/// A chain of `trajectories` HMC trajectories with the Iwasaki gauge action and Nf = 2 Wilson
/// fermions, even/odd preconditioned with a Hasenbusch mass (the heavy term on the outer level
/// with the gauge action inside, mixed-precision solves in the light term), from the hot field
/// `u`: each trajectory's dH, acceptance and solver iterations, and the final field.
fn nf2_chain(mut u: GaugeField<Su3>, trajectories: u64) -> (Vec<(u64, bool, usize)>, GaugeField<Su3>) {
    use flowhmc::action::Monomial;
    use flowhmc::action::fermion::{Pseudofermion, PseudofermionParams};
    use flowhmc::integrator::{Integrator, Level, Scheme};
    use flowhmc::update::{Hmc, MarkovStep};
    let cb = Checkerboard::new(u.lattice().clone()).unwrap();
    let mut monomials: Vec<Box<dyn Monomial<GaugeField<Su3>>>> =
        vec![Box::new(GaugeAction::new(GaugeActionKind::Iwasaki, 2.3))];
    for (i, (kappa, kappa_heavy, mixed)) in [(0.11, 0.0, false), (0.125, 0.11, true)].into_iter().enumerate()
    {
        let params = PseudofermionParams {
            kappa,
            kappa_heavy,
            boundary: Boundary::ANTIPERIODIC,
            even_odd: true,
            solver: SolverParams { tolerance: 1e-10, max_iterations: 5000 },
            mixed_precision: mixed,
        };
        monomials.push(Box::new(Pseudofermion::<Su3, 4>::new(
            &format!("pf{i}"),
            params,
            cb.clone(),
            i as u64,
        )));
    }
    let levels = vec![
        Level { monomials: vec![0], steps: 3, scheme: Scheme::Omelyan },
        Level { monomials: vec![1, 2], steps: 3, scheme: Scheme::Omelyan },
    ];
    let mut hmc = Hmc::new(monomials, Integrator::new(levels, 3).unwrap(), 0.5, 7).unwrap();
    let reports = (0..trajectories)
        .map(|k| {
            let r = hmc.step(&mut u, k).unwrap();
            (r.dh.to_bits(), r.accepted, r.solver_iterations)
        })
        .collect();
    (reports, u)
}

#[test]
fn an_nf2_hasenbusch_chain_on_ranks_equals_the_whole_lattice() {
    let dims = [4, 4, 8, 8];
    let whole = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&dims).unwrap()), 21);
    let (want, wu) = nf2_chain(whole.clone(), 3);
    assert!(want.iter().any(|r| r.1), "some trajectory is accepted: {want:?}");
    for grid in [[1, 1, 1, 2], [1, 1, 2, 2]] {
        run_ranks(&grid, |comm| {
            let (got, u) = nf2_chain(block_of(&whole, comm), 3);
            assert_eq!(got, want, "{grid:?}: dH, acceptance and iterations");
            let lat = u.lattice().clone();
            for site in 0..lat.volume() {
                for mu in 0..4 {
                    assert!(u.link(site, mu) == wu.link(lat.global_site(site), mu), "{grid:?}: final field");
                }
            }
        });
    }
}

#[test]
fn flows_are_refused_on_more_than_one_rank_with_one_message() {
    use candle_core::{DType, Device};
    use flowhmc::flow::FlowField;
    let whole = GaugeField::<U1>::hot(Arc::new(Lattice::new(&[8, 8]).unwrap()), 1);
    assert!(GaugeField::<U1>::to_batch(&[&whole], DType::F64, &Device::Cpu).is_ok());
    let messages = run_ranks(&[1, 2], |comm| {
        let u = block_of(&whole, comm);
        // the message's first line (candle may append a backtrace)
        let first = |e: candle_core::Error| e.to_string().lines().next().unwrap_or_default().to_string();
        let e = first(GaugeField::<U1>::to_batch(&[&u], DType::F64, &Device::Cpu).unwrap_err());
        let x = GaugeField::<U1>::to_batch(&[&whole], DType::F64, &Device::Cpu).unwrap();
        let back = first(GaugeField::<U1>::from_batch(&x, u.lattice()).map(|_| ()).unwrap_err());
        assert_eq!(e, back);
        e
    });
    assert!(messages.iter().all(|m| m == &messages[0]), "{messages:?}");
    assert!(
        messages[0].contains("flow models run on one rank for now") && messages[0].contains("[1, 2]"),
        "{messages:?}"
    );
}

/// A small Nf = 2 + 1 card (the doublet even/odd with a Hasenbusch mass and mixed-precision
/// CG, the third quark by rational HMC with its reweighting factor) that measures the Wilson
/// flow and hadrons, writing into `out`. The rational range holds the Schur operator's
/// spectrum at kappa = 0.1: |Q_hat| in [1 - 64 kappa^2, 1 + 64 kappa^2].
fn nf2p1_card(out: &std::path::Path, trajectories: u64, extra_run_keys: &str) -> flowhmc::chain::Card {
    let text = format!(
        "[lattice]\ndims = [4, 4, 4, 8]\n[gauge]\ngroup = \"su3\"\naction = \"iwasaki\"\nbeta = 2.5\n\
         [update]\nkind = \"hmc\"\ntrajectory_length = 0.5\nintegrator = \"omelyan\"\nsteps = 4\n\
         [run]\ntrajectories = {trajectories}\nthermalization = 1\nseed = 7\nstart = \"hot\"\n\
         checkpoint_every = 2\noutput = {:?}\n{extra_run_keys}\n\
         [measure]\nflow = {{ epsilon = 0.05, t_max = 0.2, every = 2 }}\nhadrons = {{ every = 2, noise = 1 }}\n\
         [[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.12\nboundary = \"antiperiodic\"\n\
         even_odd = true\nhasenbusch = [0.1]\n\
         solver = {{ kind = \"mixed-cg\", tolerance = 1e-10, max_iterations = 1000 }}\n\
         [[fermions]]\nname = \"strange\"\nkind = \"wilson\"\nflavors = 1\nkappa = 0.1\n\
         rational = {{ range = [0.36, 1.64], tolerance = 1e-6, reweight_sources = 1 }}\n\
         solver = {{ kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }}\n",
        out.display().to_string()
    );
    flowhmc::chain::Card::parse(&text, "nf2.toml").unwrap()
}

/// The files a run leaves that the chain determines.
fn chain_files(out: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(out.join("checkpoint.cfg")).unwrap(),
        std::fs::read(out.join("measurements.jsonl")).unwrap(),
    )
}

/// `card` run quietly on `ranks` thread ranks (a one-direction world the run arranges).
fn run_on_ranks(card: &flowhmc::chain::Card, ranks: usize, resume: bool) -> Vec<flowhmc::Result<bool>> {
    use flowhmc::chain::RunOptions;
    use flowhmc::chain::run::run_card_on;
    run_ranks(&[ranks], |world| {
        run_card_on(card, RunOptions { resume, quiet: true }, &world).map(|summary| summary.is_some())
    })
}

#[test]
fn a_run_on_ranks_writes_the_files_of_one_process_and_resumes_on_another_grid() {
    use flowhmc::chain::{RunOptions, run_card};
    let scratch = common::empty_dir("flowhmc-ranks-run");
    let one = scratch.join("one");
    run_card(&nf2p1_card(&one, 4, ""), RunOptions { resume: false, quiet: true }).unwrap();
    let want = chain_files(&one);
    assert!(
        String::from_utf8_lossy(&want.1).contains("\"strange.rw\":"),
        "the reweighting factor is measured"
    );
    // the grid chosen for 2 ranks (time cut) and one given for 4
    let two = scratch.join("two");
    let done = run_on_ranks(&nf2p1_card(&two, 4, ""), 2, false);
    assert_eq!(done.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [true, false], "rank 0 summarises");
    assert!(chain_files(&two) == want, "2 ranks: checkpoint and measurements");
    let four = scratch.join("four");
    run_on_ranks(&nf2p1_card(&four, 4, "process_grid = [1, 2, 1, 2]"), 4, false).into_iter().for_each(|r| {
        r.unwrap();
    });
    assert!(chain_files(&four) == want, "4 ranks: checkpoint and measurements");
    // stopped after 2 measured trajectories on 2 ranks, resumed on 4 ranks cutting y and t
    let split = scratch.join("split");
    run_on_ranks(&nf2p1_card(&split, 2, ""), 2, false).into_iter().for_each(|r| {
        r.unwrap();
    });
    run_on_ranks(&nf2p1_card(&split, 4, "process_grid = [1, 2, 1, 2]"), 4, true).into_iter().for_each(|r| {
        r.unwrap();
    });
    assert!(chain_files(&split) == want, "a resume on another grid repeats the chain");
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// Open boundaries in time on ranks: a Symanzik (c_G = 1.2) Nf = 2 + 1 card with an open clover
/// doublet (c_F = 1.1, Hasenbusch, the odd-site determinant), an open Wilson strange quark and
/// the Wilson flow gives the files of one process on 2 ranks (time cut, so that the removed
/// links and the boundary slices sit on different ranks) and on 4.
#[test]
fn an_open_boundary_run_on_ranks_writes_the_files_of_one_process() {
    use flowhmc::chain::{RunOptions, run_card};
    let scratch = common::empty_dir("flowhmc-ranks-open");
    let card = |out: &std::path::Path, grid: &str| {
        let text = format!(
            "[lattice]\ndims = [4, 4, 4, 8]\nboundary = \"open\"\n\
             [gauge]\ngroup = \"su3\"\naction = \"symanzik\"\nbeta = 3.5\ncg = 1.2\n\
             [update]\nkind = \"hmc\"\ntrajectory_length = 0.5\nintegrator = \"omelyan\"\nsteps = 4\n\
             [run]\ntrajectories = 3\nthermalization = 1\nseed = 9\nstart = \"hot\"\n\
             checkpoint_every = 2\noutput = {:?}\n{grid}\n\
             [measure]\nflow = {{ epsilon = 0.05, t_max = 0.2, every = 2 }}\n\
             [[fermions]]\nkind = \"clover\"\ncsw = 1.5\nflavors = 2\nkappa = 0.12\nboundary = \"open\"\ncf = 1.1\n\
             hasenbusch = [0.1]\nsolver = {{ kind = \"mixed-cg\", tolerance = 1e-10, max_iterations = 1000 }}\n\
             [[fermions]]\nname = \"strange\"\nkind = \"wilson\"\nflavors = 1\nkappa = 0.1\nboundary = \"open\"\n\
             rational = {{ range = [0.36, 1.64], tolerance = 1e-6, reweight_sources = 1 }}\n\
             solver = {{ kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }}\n",
            out.display().to_string()
        );
        flowhmc::chain::Card::parse(&text, "open.toml").unwrap()
    };
    let one = scratch.join("one");
    run_card(&card(&one, ""), RunOptions { resume: false, quiet: true }).unwrap();
    let want = chain_files(&one);
    let text = String::from_utf8_lossy(&want.1).to_string();
    assert!(text.contains("\"flow_t0\"") && !text.contains("polyakov"), "{text}");
    for (ranks, grid) in [(2, "process_grid = [1, 1, 1, 2]"), (4, "process_grid = [1, 2, 1, 2]")] {
        let out = scratch.join(format!("ranks{ranks}"));
        run_on_ranks(&card(&out, grid), ranks, false).into_iter().for_each(|r| {
            r.unwrap();
        });
        assert!(chain_files(&out) == want, "{ranks} ranks: checkpoint and measurements");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// A clover block that cannot be inverted in one rank's block (a link of NaN at the last site,
/// whose leaves reach the first time slice through the halo) fails the clover term on every
/// rank with one message, so that no rank goes on to the next exchange alone.
#[test]
fn a_singular_clover_block_fails_every_rank_with_one_message() {
    use flowhmc::dirac::CloverOperator;
    use flowhmc::group::LinkMatrix;
    let mut whole = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&[4, 4, 4, 8]).unwrap()), 3);
    let last = whole.lattice().volume() - 1;
    whole.set_link(last, 1, &<Su3 as flowhmc::group::Group>::Elem::read_reals(&[f64::NAN; 18]));
    let messages = run_ranks(&[1, 1, 1, 2], |comm| {
        let u = block_of(&whole, comm);
        let cb = Checkerboard::new(u.lattice().clone()).unwrap();
        CloverOperator::<Su3, 4>::new(&u, &cb, 0.12, 1.7, Boundary::ANTIPERIODIC).err().map(|e| e.to_string())
    });
    assert!(messages[0].as_deref().is_some_and(|m| m.contains("1 + C is singular")), "{messages:?}");
    assert_eq!(messages[0], messages[1]);
}

#[test]
fn bad_input_on_ranks_fails_every_rank_with_one_message() {
    let scratch = common::empty_dir("flowhmc-ranks-bad");
    // a start file that is not a field, one with a flipped data byte, a grid of other ranks,
    // a solver that cannot converge, an output directory that holds files
    let junk = scratch.join("junk.cfg");
    std::fs::write(&junk, b"not a configuration").unwrap();
    let good = scratch.join("good");
    flowhmc::chain::run_card(
        &nf2p1_card(&good, 2, ""),
        flowhmc::chain::RunOptions { resume: false, quiet: true },
    )
    .unwrap();
    let flipped = scratch.join("flipped.cfg");
    let mut bytes = std::fs::read(good.join("checkpoint.cfg")).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    std::fs::write(&flipped, bytes).unwrap();
    let out = scratch.join("out");
    let base = nf2p1_card(&out, 2, "").to_toml();
    let card = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        flowhmc::chain::Card::parse(&base.replacen(from, to, 1), "bad.toml").unwrap()
    };
    let start = |path: &std::path::Path| format!("start = {:?}", path.display().to_string());
    for (card, expected) in [
        (
            card("start = \"hot\"", &start(&junk)),
            "not a configuration file (flowhmc, NERSC, ILDG or openQCD)",
        ),
        (card("start = \"hot\"", &start(&flipped)), "checksum mismatch"),
        (card("[run]\n", "[run]\nprocess_grid = [1, 1, 1, 4]\n"), "needs 4 ranks, the program runs on 2"),
        (card("max_iterations = 1000", "max_iterations = 3"), "CG did not converge"),
        (card("[run]\n", "[run]\nprocess_grid = [1, 1, 1, 2]\n"), "already holds files"),
    ] {
        if expected == "already holds files" {
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("notes.txt"), b"mine").unwrap();
        }
        let messages: Vec<String> =
            run_on_ranks(&card, 2, false).into_iter().map(|r| r.unwrap_err().to_string()).collect();
        assert!(messages[0].contains(expected) && messages[1] == messages[0], "{expected}: {messages:?}");
        assert!(!messages[0].contains('\n'), "{messages:?}");
        if out.exists() && expected != "already holds files" {
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine", "the user's file is kept");
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn field_files_written_on_ranks_are_the_files_of_one_process() {
    use flowhmc::io::{ildg, native, nersc, openqcd};
    let scratch = common::empty_dir("flowhmc-ranks-files");
    let dims = [4, 4, 8, 8];
    let whole = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&dims).unwrap()), 5);
    // each writer's files in a directory of its own, under the same names (ILDG files hold
    // their name as the logical file name)
    let in_dir = |dir: String| {
        let dir = scratch.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        move |kind: &str| dir.join(kind)
    };
    let single = in_dir("single".into());
    // every format written by one process, and written again on ranks
    let write = |u: &GaugeField<Su3>, path: &dyn Fn(&str) -> std::path::PathBuf| {
        native::write(u, serde_json::json!({"n": 1}), &path("native")).unwrap();
        nersc::write(u, &path("nersc"), nersc::Storage::TwoRow, nersc::Precision::F32).unwrap();
        ildg::write(u, &path("ildg"), nersc::Precision::F64).unwrap();
        openqcd::write(u, &path("openqcd")).unwrap();
    };
    write(&whole, &single);
    let kinds = ["native", "nersc", "ildg", "openqcd"];
    for grid in [[1, 1, 1, 2], [1, 1, 2, 2], [2, 1, 2, 1]] {
        run_ranks(&grid, |comm| {
            let u = block_of(&whole, comm.clone());
            let name = in_dir(format!("{grid:?}"));
            write(&u, &name);
            comm.agree(Ok(())).unwrap(); // every file is complete
            for kind in kinds {
                assert!(std::fs::read(name(kind)).unwrap() == std::fs::read(single(kind)).unwrap(), "{kind}");
            }
            let lattice = u.lattice().clone();
            let (back, meta) = native::read_into::<GaugeField<Su3>>(&single("native"), &lattice).unwrap();
            assert!(back == u && meta["n"] == 1, "{grid:?}: native read onto the blocks");
            for kind in ["ildg", "openqcd"] {
                let back = flowhmc::io::read_su3(&single(kind), &lattice).unwrap();
                assert!(back == u, "{grid:?}: {kind} read onto the blocks");
            }
            let back = nersc::read_into(&single("nersc"), &lattice).unwrap();
            let whole_back = nersc::read(&single("nersc"), false).unwrap();
            for site in 0..lattice.volume() {
                for mu in 0..4 {
                    let (a, b) = (back.link(site, mu), whole_back.link(lattice.global_site(site), mu));
                    assert!(a == b, "{grid:?}: NERSC read onto the blocks");
                }
            }
        });
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn host_contexts_on_ranks_repeat_the_whole_lattice_and_fail_together() {
    use flowhmc::ffi::{Context, HostSlice, HostSliceMut};
    let dims = [4, 4, 4, 8];
    let mut whole = Context::new(&dims, NF2_HOST_PARAMETERS).unwrap();
    let mut wb = cold_su3_host_field(dims.iter().product());
    let report = |r: &flowhmc::ffi::UpdateReport| {
        (r.accepted, r.dh.to_bits(), r.plaquette.to_bits(), r.solver_iterations)
    };
    let want: Vec<_> =
        whole.trajectories(HostSliceMut::F64(&mut wb), 3).unwrap().iter().map(report).collect();
    assert!(want.iter().any(|r| r.0), "some trajectory is accepted: {want:?}");
    let plaquette = whole.plaquette(HostSlice::F64(&wb)).unwrap();
    for grid in [[1, 1, 1, 2], [1, 2, 1, 2]] {
        run_ranks(&grid, |comm| {
            let lattice = Lattice::distributed(&dims, comm.clone()).unwrap();
            let mut ctx = Context::on_ranks(&dims, NF2_HOST_PARAMETERS, comm.clone()).unwrap();
            assert_eq!(ctx.gauge_len(), lattice.volume() * 4 * 18, "the host holds its block");
            let mut b = cold_su3_host_field(lattice.volume());
            let got: Vec<_> =
                ctx.trajectories(HostSliceMut::F64(&mut b), 3).unwrap().iter().map(report).collect();
            assert_eq!(got, want, "{grid:?}: reports");
            for site in 0..lattice.volume() {
                let (mine, theirs) = (site * 72, lattice.global_site(site) * 72);
                assert!(b[mine..mine + 72] == wb[theirs..theirs + 72], "{grid:?}: the block's links");
            }
            assert_eq!(ctx.plaquette(HostSlice::F64(&b)).unwrap().to_bits(), plaquette.to_bits());
            // one rank's bad buffer (a NaN) fails every rank with its message, and changes nothing
            let mut bad = b.clone();
            if comm.rank() == 1 {
                bad[7] = f64::NAN;
            }
            let before = bad.clone();
            let e = ctx.update(HostSliceMut::F64(&mut bad)).unwrap_err().to_string();
            assert!(e.contains("is not finite"), "{e}");
            assert!(bad.iter().zip(&before).all(|(a, b)| a.to_bits() == b.to_bits()));
            // a buffer of the wrong length on rank 0 alone
            let short = if comm.rank() == 0 { &b[1..] } else { &b[..] };
            let e = ctx.plaquette(HostSlice::F64(short)).unwrap_err().to_string();
            assert!(e.contains("gauge field"), "{e}");
            e
        })
        .windows(2)
        .for_each(|m| assert_eq!(m[0], m[1], "{grid:?}: one message on every rank"));
    }
    // flow updates are refused on ranks, with one message
    // (any existing file passes the card's check of the model path; the refusal comes first)
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let hmc = "kind = \"hmc\"\ntrajectory_length = 0.3\nintegrator = \"omelyan\"\nsteps = 6\n";
    assert!(NF2_HOST_PARAMETERS.contains(hmc));
    let flow = NF2_HOST_PARAMETERS.replace(hmc, &format!("kind = \"flow-mh\"\nmodel = {model:?}\n"));
    let messages = run_ranks(&[1, 1, 1, 2], |comm| {
        Context::on_ranks(&dims, &flow, comm).err().expect("refused").to_string()
    });
    assert!(
        messages[0] == messages[1] && messages[0].contains("flow updates run on one rank"),
        "{messages:?}"
    );
}

/// An openQCD-style site table of `lattice` (the block on a cut lattice): even sites first,
/// each parity in lexicographic order.
fn openqcd_table(lattice: &Lattice) -> Vec<usize> {
    let mut next = [0, lattice.volume() / 2];
    (0..lattice.volume())
        .map(|s| {
            let p = lattice.parity(s) as usize;
            next[p] += 1;
            next[p] - 1
        })
        .collect()
}

#[test]
fn openqcd_layout_on_ranks_moves_the_links_across_the_faces() {
    use flowhmc::ffi::{Context, HostSliceMut};
    use flowhmc::host::GaugeLayout;
    let dims = [4, 4, 4, 8];
    let whole_lattice = Lattice::new(&dims).unwrap();
    let whole_table = openqcd_table(&whole_lattice);
    let mut whole = Context::new(&dims, NF2_HOST_PARAMETERS).unwrap();
    whole.set_gauge_layout(&GaugeLayout::openqcd(whole_table.clone())).unwrap();
    let mut wb = cold_su3_host_field(dims.iter().product());
    let report = |r: &flowhmc::ffi::UpdateReport| (r.accepted, r.dh.to_bits(), r.solver_iterations);
    // one update per call: every call imports the field the last one exported
    let want: Vec<_> = (0..3).map(|_| report(&whole.update(HostSliceMut::F64(&mut wb)).unwrap())).collect();
    assert!(want.iter().any(|r| r.0), "some trajectory is accepted: {want:?}");
    // grids cutting t (openQCD's direction 0), and x and t
    for grid in [[1, 1, 1, 2], [2, 1, 1, 2]] {
        run_ranks(&grid, |comm| {
            let lattice = Lattice::distributed(&dims, comm.clone()).unwrap();
            let table = openqcd_table(&lattice);
            let mut ctx = Context::on_ranks(&dims, NF2_HOST_PARAMETERS, comm).unwrap();
            ctx.set_gauge_layout(&GaugeLayout::openqcd(table.clone())).unwrap();
            let mut b = cold_su3_host_field(lattice.volume());
            let got: Vec<_> =
                (0..3).map(|_| report(&ctx.update(HostSliceMut::F64(&mut b)).unwrap())).collect();
            assert_eq!(got, want, "{grid:?}: reports");
            // every odd site's eight links, those of the block below included
            let half = lattice.volume() / 2;
            for x in (0..lattice.volume()).filter(|&x| lattice.parity(x) == 1) {
                let (mine, theirs) = (
                    table[x] - half,
                    whole_table[lattice.global_site(x)] - dims.iter().product::<usize>() / 2,
                );
                assert!(
                    b[mine * 144..(mine + 1) * 144] == wb[theirs * 144..(theirs + 1) * 144],
                    "{grid:?}: odd site {x}"
                );
            }
        });
    }
}
