//! The host interface from Rust: layout conversions (round trips and hand-computed offsets of
//! MILC and openQCD), the context's chain against the native chain, Dirac operator, solver
//! and forces on host buffers, refusals that leave the host buffer bit-identical, random
//! state save and restore, and independent contexts on two threads.

mod common;

use common::SU3_HOST_PARAMETERS as SU3_PARAMETERS;
use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
use flowhmc::backend::cpu::PackedGroup;
use flowhmc::chain::card::Card;
use flowhmc::chain::run::build_update;
use flowhmc::checkerboard::Checkerboard;
use flowhmc::dirac::gamma::SpinBasis;
use flowhmc::dirac::{Boundary, FermionOperator, WilsonOperator};
use flowhmc::ffi::context::parse_parameters;
use flowhmc::ffi::{Context, HostSlice, HostSliceMut, RngState};
use flowhmc::field::{GaugeField, MomentumField};
use flowhmc::geometry::Lattice;
use flowhmc::group::{Group, LinkMatrix, Su3, U1};
use flowhmc::host::{
    GaugeLayout, LinkOrder, MatrixOrder, ResolvedGaugeLayout, ResolvedSpinorLayout, SiteOrder, SpinorLayout,
    SpinorOrder, export_gauge, export_spinor, host_directions, import_gauge, import_spinor,
};
use flowhmc::observables::average_plaquette;
use flowhmc::rng::Purpose;
use flowhmc::spinor::SpinorField;
use std::sync::Arc;

const DIMS: [usize; 4] = [4, 4, 4, 4];

fn layouts(ndim: usize, lattice: &Lattice) -> Vec<GaugeLayout> {
    let eo = SiteOrder::x_fastest(ndim, true).resolve(lattice).unwrap();
    let mut openqcd = GaugeLayout::openqcd(eo);
    openqcd.directions = host_directions(ndim, true);
    vec![
        GaugeLayout::milc(ndim),
        GaugeLayout::qdp(ndim),
        openqcd,
        GaugeLayout {
            sites: SiteOrder::t_fastest(ndim, false),
            links: LinkOrder::SiteMajor,
            directions: (0..ndim).collect(),
            matrix: MatrixOrder::ColumnMajor,
        },
    ]
}

fn check_round_trips<G: PackedGroup>(dims: &[usize]) {
    let lat = Arc::new(Lattice::new(dims).unwrap());
    let u = GaugeField::<G>::hot(lat.clone(), 3);
    for layout in layouts(dims.len(), &lat) {
        let r = ResolvedGaugeLayout::new(&layout, &lat, G::NC).unwrap();
        let mut b64 = vec![0.0f64; r.len()];
        export_gauge(&r, &u, &mut b64).unwrap();
        let back: GaugeField<G> = import_gauge(&r, &lat, &b64, 1e-12).unwrap();
        assert_eq!(back, u, "{layout:?} f64");
        let mut b32 = vec![0.0f32; r.len()];
        export_gauge(&r, &u, &mut b32).unwrap();
        let back: GaugeField<G> = import_gauge(&r, &lat, &b32, 1e-5).unwrap();
        assert!(back.max_distance(&u) < 1e-6, "{layout:?} f32");
        assert!(back.max_distance(&u) > 0.0, "f32 rounds");
    }
}

#[test]
fn gauge_layouts_round_trip_in_both_precisions() {
    check_round_trips::<Su3>(&DIMS);
    check_round_trips::<U1>(&[4, 8]);
    check_round_trips::<Su3>(&[4, 8]);
}

/// MILC's own index formula (`node_index` of its lattice layout): lexicographic i with x
/// fastest; even sites at i / 2, odd ones at (i + V) / 2.
fn milc_index(lat: &Lattice, site: usize) -> usize {
    let (i, v) = (site, lat.volume());
    if lat.parity(site) == 0 { i / 2 } else { (i + v) / 2 }
}

#[test]
fn milc_and_openqcd_buffers_written_by_their_own_formulas_are_read_correctly() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let u = GaugeField::<Su3>::hot(lat.clone(), 4);
    let (v, d) = (lat.volume(), 4);
    let mut milc = vec![0.0; v * d * 18];
    let mut openqcd = vec![0.0; v * d * 18];
    let eo = SiteOrder::x_fastest(d, true).resolve(&lat).unwrap();
    for s in 0..v {
        for mu in 0..d {
            let mut reals = [0.0; 18];
            u.link(s, mu).write_reals(&mut reals);
            // MILC: site.link[mu].e[row][col], row-major complex
            let at = (milc_index(&lat, s) * d + mu) * 18;
            milc[at..at + 18].copy_from_slice(&reals);
            // openQCD: direction 0 is time; odd x holds U(x, mu) and U(x - mu, mu)
            let oqcd_mu = (mu + 1) % d;
            let (x, slot) = if lat.parity(s) == 1 { (s, 0) } else { (lat.fwd(s, mu), 1) };
            let at = (8 * (eo[x] - v / 2) + 2 * oqcd_mu + slot) * 18;
            openqcd[at..at + 18].copy_from_slice(&reals);
        }
    }
    for (layout, buffer) in [(GaugeLayout::milc(d), &milc), (GaugeLayout::openqcd(eo.clone()), &openqcd)] {
        let r = ResolvedGaugeLayout::new(&layout, &lat, 3).unwrap();
        let read: GaugeField<Su3> = import_gauge(&r, &lat, buffer, 1e-12).unwrap();
        assert_eq!(read, u, "{:?}", layout.links);
    }
}

#[test]
fn spinor_layouts_round_trip_and_change_basis() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let cb = Checkerboard::new(lat.clone()).unwrap();
    let psi = SpinorField::<Su3, 4>::gaussian_full(&cb, 2, Purpose::Test, 0);
    let site = lat.site(&[1, 2, 3, 0]);
    for order in [SpinorOrder::SpinColor, SpinorOrder::ColorSpin] {
        for basis in [SpinBasis::DegrandRossi, SpinBasis::OpenQcd] {
            let layout = SpinorLayout { sites: SiteOrder::x_fastest(4, true), order, basis };
            let r = ResolvedSpinorLayout::new(&layout, &lat, 4, 3).unwrap();
            let mut buffer = vec![0.0f64; r.len()];
            export_spinor(&r, &cb, &psi, &mut buffer).unwrap();
            let back: SpinorField<Su3, 4> = import_spinor(&r, &cb, &buffer).unwrap();
            let mut diff = back.clone();
            diff.axpy(num_complex::Complex64::new(-1.0, 0.0), &psi);
            assert!(diff.norm_sqr().sqrt() < 1e-14, "{order:?} {basis:?}");
            // colour 2 of the host's spin component 1 at `site`, by hand
            let internal = std::array::from_fn(|s| psi.get(&cb, site, s, 2));
            let host = basis.to_host(&internal);
            let offset = lat.eo_index(site) * 24
                + 2 * match order {
                    SpinorOrder::SpinColor => 3 + 2,
                    SpinorOrder::ColorSpin => 2 * 4 + 1,
                };
            assert_eq!((buffer[offset], buffer[offset + 1]), (host[1].re, host[1].im), "{order:?} {basis:?}");
        }
    }
}

fn host_buffer<G: PackedGroup>(ctx: &Context, u: &GaugeField<G>, layout: &GaugeLayout) -> Vec<f64> {
    let r = ResolvedGaugeLayout::new(layout, u.lattice(), G::NC).unwrap();
    let mut b = vec![0.0; ctx.gauge_len()];
    export_gauge(&r, u, &mut b).unwrap();
    b
}

fn read_back(buffer: &[f64], lat: &Arc<Lattice>, layout: &GaugeLayout) -> GaugeField<Su3> {
    import_gauge(&ResolvedGaugeLayout::new(layout, lat, 3).unwrap(), lat, buffer, 1e-9).unwrap()
}

#[test]
fn a_context_on_a_milc_buffer_runs_the_native_chain() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let start = GaugeField::<Su3>::cold(lat.clone());
    let mut ctx = Context::new(&DIMS, SU3_PARAMETERS).unwrap();
    let milc = GaugeLayout::milc(4);
    ctx.set_gauge_layout(&milc).unwrap();
    let mut buffer = host_buffer(&ctx, &start, &milc);
    let reports = ctx.trajectories(HostSliceMut::F64(&mut buffer), 2).unwrap();
    let third = ctx.update(HostSliceMut::F64(&mut buffer)).unwrap();

    let card: Card = parse_parameters(&DIMS, SU3_PARAMETERS).unwrap();
    let mut native = build_update::<GaugeField<Su3>>(&card, &lat).unwrap();
    let mut u = start.clone();
    for (update, r) in reports.iter().chain([&third]).enumerate() {
        let n = native.step(&mut u, update as u64).unwrap();
        assert_eq!((n.accepted, n.dh, n.solver_iterations), (r.accepted, r.dh, r.solver_iterations));
        assert_eq!(average_plaquette(&u), r.plaquette);
        assert!(n.solver_iterations > 0);
    }
    assert!(reports.iter().chain([&third]).any(|r| r.accepted), "the test needs a move");
    assert_eq!(read_back(&buffer, &lat, &milc), u);
    assert_eq!(ctx.plaquette(HostSlice::F64(&buffer)).unwrap(), average_plaquette(&u));
}

/// Parameters of an openQCD-like host with open boundaries in time (its type 0): the extents
/// come from the host, `[lattice]` gives only the boundary.
const OPEN_PARAMETERS: &str = r#"
[lattice]
boundary = "open"
[gauge]
group = "su3"
action = "wilson"
beta = 5.7
cg = 1.1
[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 8
[run]
seed = 11
threads = 1
[[fermions]]
kind = "clover"
csw = 1.5
flavors = 2
kappa = 0.12
boundary = "open"
cf = 1.1
even_odd = true
solver = { kind = "cg", tolerance = 1e-11, max_iterations = 2000 }
"#;

/// A host with open boundaries hands over its field in openQCD's layout with the time links
/// at x0 = N0-1 zero, as openQCD holds them: the context runs the native chain on the open
/// lattice (boundary-improved gauge action, open clover quarks), and the field it hands back
/// keeps those links exactly zero.
#[test]
fn an_open_lattice_on_an_openqcd_buffer_runs_the_native_chain() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap().open_in_time());
    let start = GaugeField::<Su3>::cold(lat.clone());
    let mut ctx = Context::new(&DIMS, OPEN_PARAMETERS).unwrap();
    let layout = GaugeLayout::openqcd(SiteOrder::x_fastest(4, true).resolve(&lat).unwrap());
    ctx.set_gauge_layout(&layout).unwrap();
    let mut buffer = host_buffer(&ctx, &start, &layout);
    // the links of the last time slice in time (openQCD's direction 0) are zero matrices
    let zero_links = |b: &[f64]| b.chunks_exact(18).filter(|m| m.iter().all(|&x| x == 0.0)).count();
    let removed = lat.volume() / DIMS[3];
    assert_eq!(zero_links(&buffer), removed);
    let reports = ctx.trajectories(HostSliceMut::F64(&mut buffer), 3).unwrap();

    let card: Card = parse_parameters(&DIMS, OPEN_PARAMETERS).unwrap();
    assert!(card.lattice.is_open(), "the parameters keep their boundary");
    let mut native = build_update::<GaugeField<Su3>>(&card, &lat).unwrap();
    let mut u = start.clone();
    for (update, r) in reports.iter().enumerate() {
        let n = native.step(&mut u, update as u64).unwrap();
        assert_eq!((n.accepted, n.dh, n.solver_iterations), (r.accepted, r.dh, r.solver_iterations));
        assert_eq!(average_plaquette(&u), r.plaquette);
    }
    assert!(reports.iter().any(|r| r.accepted), "the test needs a move");
    assert_eq!(read_back(&buffer, &lat, &layout), u);
    assert_eq!(zero_links(&buffer), removed, "the removed links stay zero");
}

#[test]
fn refused_inputs_leave_the_host_buffer_bit_identical() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let mut ctx = Context::new(&DIMS, SU3_PARAMETERS).unwrap();
    let good = host_buffer(&ctx, &GaugeField::<Su3>::hot(lat.clone(), 6), &GaugeLayout::milc(4));
    let bits = |b: &[f64]| b.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut nan = good.clone();
    nan[18 * 7 + 3] = f64::NAN;
    let mut scaled = good.clone();
    scaled[18 * 9..18 * 10].iter_mut().for_each(|x| *x *= 1.001);
    let mut short = good[..good.len() - 1].to_vec();
    for (buffer, message) in
        [(&mut nan, "not finite"), (&mut scaled, "is not in su3"), (&mut short, "the layout needs")]
    {
        let before = bits(buffer);
        let e = ctx.update(HostSliceMut::F64(buffer)).unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
        assert_eq!(bits(buffer), before);
    }
    // the site and direction are named: link 9 is (site 2, mu 1) = [2, 0, 0, 0]
    let e = ctx.plaquette(HostSlice::F64(&scaled)).unwrap_err().to_string();
    assert!(e.contains("[2, 0, 0, 0] in direction 1"), "{e}");
    // a solver that cannot converge fails the update and changes nothing
    let strict = SU3_PARAMETERS.replace("max_iterations = 2000", "max_iterations = 3");
    let mut ctx = Context::new(&DIMS, &strict).unwrap();
    let mut buffer = good.clone();
    let e = ctx.update(HostSliceMut::F64(&mut buffer)).unwrap_err().to_string();
    assert!(e.contains("iterations"), "{e}");
    assert_eq!(bits(&buffer), bits(&good));
    assert_eq!(ctx.rng_state().next_update, 0);
}

#[test]
fn bad_parameters_are_refused_with_their_key() {
    let e = Context::new(&[4, 4, 4, 4], &SU3_PARAMETERS.replace("beta = 5.7", "beta = -1.0")).err().unwrap();
    assert!(e.to_string().contains("gauge.beta"), "{e}");
    let e =
        Context::new(&[4, 4, 4, 4], &format!("[lattice]\ndims = [4, 4]\n{SU3_PARAMETERS}")).err().unwrap();
    assert!(e.to_string().contains("host lattice is [4, 4, 4, 4]"), "{e}");
    let e = Context::new(&[4, 4, 4, 4], &SU3_PARAMETERS.replace("steps = 8", "stepz = 8")).err().unwrap();
    assert!(e.to_string().contains("stepz"), "{e}");
    let mut ctx = Context::new(&DIMS, SU3_PARAMETERS).unwrap();
    let bad = GaugeLayout { directions: vec![0, 1, 1, 3], ..GaugeLayout::milc(4) };
    assert!(ctx.set_gauge_layout(&bad).unwrap_err().to_string().contains("directions"));
    assert!(ctx.set_unitarity_tolerance(-1.0).is_err());
}

/// Sets MILC links and openQCD-basis spinors on `ctx`, applies and inverts M through it on
/// host buffers of `u`, checks both against the native operator on `cb` (kappa 0.12,
/// antiperiodic: the parameters' values) and returns the gauge buffer.
fn check_host_dirac(ctx: &mut Context, u: &GaugeField<Su3>, cb: &Checkerboard) -> Vec<f64> {
    let lat = u.lattice().clone();
    let milc = GaugeLayout::milc(4);
    ctx.set_gauge_layout(&milc).unwrap();
    let spinors = SpinorLayout {
        sites: SiteOrder::x_fastest(4, true),
        order: SpinorOrder::SpinColor,
        basis: SpinBasis::OpenQcd,
    };
    ctx.set_spinor_layout(&spinors).unwrap();
    let gauge = host_buffer(ctx, u, &milc);
    let rs = ResolvedSpinorLayout::new(&spinors, &lat, 4, 3).unwrap();
    let b = SpinorField::<Su3, 4>::gaussian_full(cb, 3, Purpose::Test, 1);
    let mut host_b = vec![0.0; ctx.spinor_len()];
    export_spinor(&rs, cb, &b, &mut host_b).unwrap();

    let mut host_mb = vec![0.0; ctx.spinor_len()];
    ctx.apply_dirac(HostSlice::F64(&gauge), HostSlice::F64(&host_b), HostSliceMut::F64(&mut host_mb))
        .unwrap();
    let w = WilsonOperator::<Su3, 4>::new(u, cb, 0.12, Boundary::ANTIPERIODIC).unwrap();
    let mut mb = SpinorField::full(cb);
    w.apply(false, &b, &mut mb);
    let mut diff: SpinorField<Su3, 4> = import_spinor(&rs, cb, &host_mb).unwrap();
    diff.axpy(num_complex::Complex64::new(-1.0, 0.0), &mb);
    assert!(diff.norm_sqr().sqrt() < 1e-12 * mb.norm_sqr().sqrt());

    // M x = b solved on host buffers: M x, applied natively, gives b back
    let mut host_x = vec![0.0; ctx.spinor_len()];
    let report =
        ctx.solve(HostSlice::F64(&gauge), HostSlice::F64(&host_b), HostSliceMut::F64(&mut host_x)).unwrap();
    assert!(report.residual <= 1e-11 && report.iterations > 0);
    let x: SpinorField<Su3, 4> = import_spinor(&rs, cb, &host_x).unwrap();
    let mut mx = SpinorField::full(cb);
    w.apply(false, &x, &mut mx);
    mx.axpy(num_complex::Complex64::new(-1.0, 0.0), &b);
    assert!(mx.norm_sqr().sqrt() < 1e-8 * b.norm_sqr().sqrt());
    gauge
}

#[test]
fn dirac_operator_solver_and_forces_on_host_buffers_equal_the_native_ones() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let cb = Checkerboard::new(lat.clone()).unwrap();
    let u = GaugeField::<Su3>::hot(lat.clone(), 7);
    let mut ctx = Context::new(&DIMS, SU3_PARAMETERS).unwrap();
    let gauge = check_host_dirac(&mut ctx, &u, &cb);
    let milc = GaugeLayout::milc(4);

    // the gauge force as matrices sum_a F_a T_a in the host layout
    let mut host_f = vec![0.0; ctx.gauge_len()];
    ctx.gauge_force(HostSlice::F64(&gauge), HostSliceMut::F64(&mut host_f)).unwrap();
    let mut p = MomentumField::<Su3>::zeros(&lat);
    GaugeAction::new(GaugeActionKind::Wilson, 5.7).add_force(&u, 1.0, &mut p).unwrap();
    let r = ResolvedGaugeLayout::new(&milc, &lat, 3).unwrap();
    let (site, mu) = (lat.site(&[3, 1, 0, 2]), 2);
    let expected = Su3::alg_matrix(&p.at(&lat, site, mu));
    let at = r.offset(site * 4 + mu);
    let got = <Su3 as Group>::Elem::read_reals(&host_f[at..at + 18]);
    assert!(got.sub(&expected).norm_sqr().sqrt() < 1e-13, "{got:?} vs {expected:?}");

    // the fermion force needs pseudofermions first, and is nonzero after the heatbath
    let e = ctx.fermion_force(HostSlice::F64(&gauge), HostSliceMut::F64(&mut host_f)).unwrap_err();
    assert!(e.to_string().contains("heatbath"), "{e}");
    ctx.refresh_pseudofermions(HostSlice::F64(&gauge)).unwrap();
    ctx.fermion_force(HostSlice::F64(&gauge), HostSliceMut::F64(&mut host_f)).unwrap();
    assert!(host_f.iter().any(|&f| f != 0.0));
    let action = ctx.action(HostSlice::F64(&gauge)).unwrap();
    assert!(action.is_finite() && action > 0.0);
}

#[test]
fn restoring_the_rng_state_replays_the_chain() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let mut ctx = Context::new(&DIMS, SU3_PARAMETERS).unwrap();
    let mut buffer = host_buffer(&ctx, &GaugeField::<Su3>::hot(lat, 8), &GaugeLayout::milc(4));
    ctx.update(HostSliceMut::F64(&mut buffer)).unwrap();
    let (saved_state, saved_field) = (ctx.rng_state(), buffer.clone());
    let first = ctx.trajectories(HostSliceMut::F64(&mut buffer), 2).unwrap();
    let after = buffer.clone();
    ctx.set_rng_state(saved_state).unwrap();
    buffer = saved_field;
    let again = ctx.trajectories(HostSliceMut::F64(&mut buffer), 2).unwrap();
    assert_eq!(first, again);
    assert_eq!(buffer, after);
    assert_eq!(ctx.rng_state(), RngState { seed: 11, next_update: 3 });
}

#[test]
fn contexts_on_two_threads_are_independent() {
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let start = GaugeField::<Su3>::hot(lat, 9);
    let run = |seed: u64| {
        let mut ctx =
            Context::new(&DIMS, &SU3_PARAMETERS.replace("seed = 11", &format!("seed = {seed}"))).unwrap();
        let mut buffer = host_buffer(&ctx, &start, &GaugeLayout::milc(4));
        ctx.trajectories(HostSliceMut::F64(&mut buffer), 2).unwrap()
    };
    let alone = (run(1), run(2));
    let together = std::thread::scope(|s| {
        let a = s.spawn(|| run(1));
        let b = s.spawn(|| run(2));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(alone, together);
    assert_ne!(alone.0, alone.1);
}

#[test]
fn single_precision_host_buffers_run_the_chain() {
    // a context may move between threads: it is Send
    fn send<T: Send>(_: &T) {}
    let lat = Arc::new(Lattice::new(&DIMS).unwrap());
    let u = GaugeField::<Su3>::hot(lat.clone(), 12);
    let mut ctx = Context::new(&DIMS, SU3_PARAMETERS).unwrap();
    send(&ctx);
    let milc = GaugeLayout::milc(4);
    ctx.set_gauge_layout(&milc).unwrap();
    let r = ResolvedGaugeLayout::new(&milc, &lat, 3).unwrap();
    let mut single = vec![0.0f32; ctx.gauge_len()];
    export_gauge(&r, &u, &mut single).unwrap();
    let before = ctx.plaquette(HostSlice::F32(&single)).unwrap();
    assert!((before - average_plaquette(&u)).abs() < 1e-6);
    // f32 rounding is within the f32 tolerance, far outside the f64 one
    ctx.set_unitarity_tolerance(1e-10).unwrap();
    let e = ctx.plaquette(HostSlice::F32(&single)).unwrap_err().to_string();
    assert!(e.contains("tolerance 1.0e-10"), "{e}");
    ctx.set_unitarity_tolerance(1e-5).unwrap();
    let reports = ctx.trajectories(HostSliceMut::F32(&mut single), 3).unwrap();
    let last = reports.last().unwrap();
    let after = ctx.plaquette(HostSlice::F32(&single)).unwrap();
    assert!((after - last.plaquette).abs() < 1e-6, "{after} vs {}", last.plaquette);
    assert!(reports.iter().any(|r| r.accepted), "the test needs a move");
    assert_ne!(after, before);
}

#[test]
fn a_parameter_set_built_key_by_key_is_the_card_it_spells() {
    use flowhmc::ffi::ParameterSet;
    let mut p = ParameterSet::new();
    for (key, value) in [
        ("gauge.group", "\"su3\""),
        ("gauge.action", "\"wilson\""),
        ("gauge.beta", "7.0"),
        ("gauge.beta", "5.7"), // the last value counts
        ("update.kind", "\"hmc\""),
        ("update.trajectory_length", "1.0"),
        ("update.integrator", "\"omelyan\""),
        ("update.steps", "8"),
        ("run.seed", "11"),
        ("run.threads", "1"),
        (
            "fermions",
            "[{ kind = \"wilson\", flavors = 2, kappa = 0.12, boundary = \"antiperiodic\", even_odd = true, \
             solver = { kind = \"cg\", tolerance = 1e-11, max_iterations = 2000 } }]",
        ),
    ] {
        p.set(key, value).unwrap();
    }
    let built = parse_parameters(&DIMS, &p.to_toml()).unwrap();
    assert_eq!(built, parse_parameters(&DIMS, SU3_PARAMETERS).unwrap());
    // refusals name the key and change nothing
    let text = p.to_toml();
    for (key, value, message) in [
        ("gauge.beta", "six", "gauge.beta"),
        ("gauge..beta", "6.0", "dotted paths"),
        ("gauge.beta.x", "6.0", "beta is a value"),
    ] {
        let e = p.set(key, value).unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
    }
    assert_eq!(p.to_toml(), text);
    p.set("update.stepz", "8").unwrap();
    let e = Context::new(&DIMS, &p.to_toml()).err().unwrap().to_string();
    assert!(e.contains("stepz"), "{e}");
}

/// A host context whose parameters turn even/odd preconditioning off applies and inverts the
/// full operator on a lattice without the even/odd layout (2x2x2x6), as the native code does,
/// and integrates its pseudofermions.
#[test]
fn host_contexts_run_the_full_operator_on_any_even_extents() {
    let dims = [2, 2, 2, 6];
    let e = Context::new(&dims, SU3_PARAMETERS).err().unwrap();
    assert!(e.to_string().contains("even_odd = false runs on any even extents"), "{e}");
    let parameters = SU3_PARAMETERS.replace("even_odd = true", "even_odd = false");
    let mut ctx = Context::new(&dims, &parameters).unwrap();
    let lat = Arc::new(Lattice::new(&dims).unwrap());
    let cb = Checkerboard::for_fields(lat.clone(), false).unwrap();
    assert!(!cb.is_even_odd());
    let u = GaugeField::<Su3>::hot(lat, 7);
    let gauge = check_host_dirac(&mut ctx, &u, &cb);
    ctx.refresh_pseudofermions(HostSlice::F64(&gauge)).unwrap();
    let mut host_f = vec![0.0; ctx.gauge_len()];
    ctx.fermion_force(HostSlice::F64(&gauge), HostSliceMut::F64(&mut host_f)).unwrap();
    assert!(host_f.iter().any(|&f| f != 0.0));
    assert!(ctx.action(HostSlice::F64(&gauge)).unwrap().is_finite());
}
