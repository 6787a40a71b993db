//! HMC correctness: reversibility, step-size scaling, Creutz identity, determinism, and the
//! exact 2D U(1) plaquette.

mod common;

use common::assert_within_3_sigma;
use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
use flowhmc::analysis::gamma::{DEFAULT_S, gamma_method};
use flowhmc::backend::cpu::PackedGroup;
use flowhmc::field::{GaugeField, MomentumField};
use flowhmc::geometry::Lattice;
use flowhmc::group::{LinkMatrix, Su3, U1};
use flowhmc::integrator::{Integrator, Level, Scheme};
use flowhmc::observables::{average_plaquette, topological_charge_u1_2d};
use flowhmc::reference::{u1_2d_charge_squared, u1_2d_plaquette};
use flowhmc::update::{Hmc, MarkovStep};
use std::sync::Arc;

/// The gauge action split into two halves on two nested levels.
fn split<Gr: PackedGroup>(kind: GaugeActionKind, beta: f64) -> Vec<Box<dyn Monomial<GaugeField<Gr>>>> {
    vec![
        Box::new(GaugeAction::new(kind, beta / 2.0).named("outer")),
        Box::new(GaugeAction::new(kind, beta / 2.0).named("inner")),
    ]
}

fn nested(outer: Scheme, inner: Scheme, steps: usize) -> Integrator {
    Integrator::new(
        vec![
            Level { monomials: vec![0], steps, scheme: outer },
            Level { monomials: vec![1], steps: 2, scheme: inner },
        ],
        2,
    )
    .unwrap()
}

/// A thermalised field: `n` HMC trajectories from a hot start.
fn thermalised<Gr: PackedGroup>(dims: &[usize], kind: GaugeActionKind, beta: f64, n: u64) -> GaugeField<Gr> {
    let lat = Arc::new(Lattice::new(dims).unwrap());
    let mut u = GaugeField::<Gr>::hot(lat, 1);
    let mono: Vec<Box<dyn Monomial<GaugeField<Gr>>>> = vec![Box::new(GaugeAction::new(kind, beta))];
    let mut hmc = Hmc::new(mono, Integrator::single(Scheme::Omelyan, 12, 1).unwrap(), 0.5, 1).unwrap();
    for k in 0..n {
        hmc.step(&mut u, k).unwrap();
    }
    u
}

/// Mean |dH| over a few momentum draws on a fixed field.
fn mean_abs_dh<Gr: PackedGroup>(
    u: &GaugeField<Gr>,
    monomials: Vec<Box<dyn Monomial<GaugeField<Gr>>>>,
    integrator: Integrator,
) -> f64 {
    let draws = 6;
    let hmc = Hmc::new(monomials, integrator.clone(), 1.0, 0).unwrap();
    (0..draws)
        .map(|k| {
            let mut p = MomentumField::<Gr>::gaussian(u.lattice(), 77, k);
            let mut v = u.clone();
            let h0 = hmc.hamiltonian(&v, &p).unwrap();
            integrator.integrate(hmc.monomials(), &mut v, &mut p, 1.0).unwrap();
            (hmc.hamiltonian(&v, &p).unwrap() - h0).abs()
        })
        .sum::<f64>()
        / draws as f64
}

fn check_scaling<Gr: PackedGroup>(u: &GaugeField<Gr>, kind: GaugeActionKind, beta: f64, steps: usize) {
    for scheme in [Scheme::Leapfrog, Scheme::Omelyan, Scheme::Omelyan4, Scheme::ForceGradient] {
        let coarse =
            mean_abs_dh(u, gauge_for::<Gr>(kind, beta), Integrator::single(scheme, steps, 1).unwrap());
        let fine =
            mean_abs_dh(u, gauge_for::<Gr>(kind, beta), Integrator::single(scheme, 2 * steps, 1).unwrap());
        let expected = 2f64.powi(scheme.order() as i32);
        let ratio = coarse / fine;
        assert!(
            ratio > 0.75 * expected && ratio < 1.3 * expected,
            "{} {scheme:?}: |dH| {coarse:.3e} -> {fine:.3e}, ratio {ratio:.2}, expected {expected}",
            Gr::NAME
        );
    }
    // nested levels with one scheme keep its order
    for scheme in [Scheme::Omelyan, Scheme::Omelyan4, Scheme::ForceGradient] {
        let coarse = mean_abs_dh(u, split::<Gr>(kind, beta), nested(scheme, scheme, steps));
        let fine = mean_abs_dh(u, split::<Gr>(kind, beta), nested(scheme, scheme, 2 * steps));
        let (ratio, expected) = (coarse / fine, 2f64.powi(scheme.order() as i32));
        assert!(
            ratio > 0.75 * expected && ratio < 1.3 * expected,
            "{} nested {scheme:?}: |dH| {coarse:.3e} -> {fine:.3e}, ratio {ratio:.2}",
            Gr::NAME
        );
    }
}

fn gauge_for<Gr: PackedGroup>(kind: GaugeActionKind, beta: f64) -> Vec<Box<dyn Monomial<GaugeField<Gr>>>> {
    vec![Box::new(GaugeAction::new(kind, beta))]
}

#[test]
fn dh_scales_with_the_order_of_the_scheme() {
    let u = thermalised::<U1>(&[8, 8], GaugeActionKind::Wilson, 2.0, 20);
    check_scaling(&u, GaugeActionKind::Wilson, 2.0, 8);
    let u = thermalised::<Su3>(&[4, 4, 4, 4], GaugeActionKind::Wilson, 6.0, 20);
    check_scaling(&u, GaugeActionKind::Wilson, 6.0, 8);
    check_scaling(&u, GaugeActionKind::Iwasaki, 2.5, 8);
}

#[test]
fn trajectories_are_reversible() {
    let check = |name: &str, du: f64, dh: f64| {
        assert!(du < 1e-12 && dh < 1e-9, "{name}: |dU| = {du:e}, |dH| = {dh:e}");
    };
    let u0 = thermalised::<Su3>(&[4, 4, 4, 4], GaugeActionKind::Symanzik, 4.0, 5);
    for scheme in [Scheme::Leapfrog, Scheme::Omelyan, Scheme::Omelyan4, Scheme::ForceGradient] {
        let mut hmc = Hmc::new(
            gauge_for::<Su3>(GaugeActionKind::Symanzik, 4.0),
            Integrator::single(scheme, 5, 1).unwrap(),
            1.0,
            3,
        )
        .unwrap()
        .with_reversibility_check(true);
        let (du, dh) = hmc.step(&mut u0.clone(), 1).unwrap().reversibility.unwrap();
        check(&format!("su3 {scheme:?}"), du, dh);
    }
    let u1 = thermalised::<U1>(&[8, 8], GaugeActionKind::Wilson, 3.0, 5);
    let mut hmc = Hmc::new(
        split::<U1>(GaugeActionKind::Wilson, 3.0),
        nested(Scheme::Omelyan, Scheme::ForceGradient, 4),
        1.0,
        3,
    )
    .unwrap()
    .with_reversibility_check(true);
    let (du, dh) = hmc.step(&mut u1.clone(), 1).unwrap().reversibility.unwrap();
    check("u1 nested", du, dh);
}

#[test]
fn chains_are_identical_for_one_and_two_threads() {
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
            let mut u = GaugeField::<Su3>::hot(lat, 5);
            let mut hmc = Hmc::new(
                gauge_for::<Su3>(GaugeActionKind::Wilson, 5.7),
                Integrator::single(Scheme::Omelyan, 6, 1).unwrap(),
                1.0,
                5,
            )
            .unwrap();
            let dh: Vec<u64> = (0..6).map(|k| hmc.step(&mut u, k).unwrap().dh.to_bits()).collect();
            (u, dh)
        })
    };
    let (u1, dh1) = run(1);
    let (u2, dh2) = run(2);
    assert_eq!(dh1, dh2);
    assert!(u1 == u2, "fields differ bitwise");
}

/// A 2D U(1) HMC run: returns plaquette series, Q^2 series and exp(-dH) series.
fn u1_chain(
    l: usize,
    beta: f64,
    integrator: Integrator,
    monomials: Vec<Box<dyn Monomial<GaugeField<U1>>>>,
    n: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let lat = Arc::new(Lattice::new(&[l, l]).unwrap());
    let mut u = GaugeField::<U1>::hot(lat, 7);
    let mut hmc = Hmc::new(monomials, integrator, 1.0, 7 + l as u64 + (10.0 * beta) as u64).unwrap();
    let (mut plaq, mut q2, mut boltz) = (vec![], vec![], vec![]);
    for k in 0..n + 200 {
        let r = hmc.step(&mut u, k).unwrap();
        if k >= 200 {
            plaq.push(average_plaquette(&u));
            q2.push(topological_charge_u1_2d(&u).powi(2));
            boltz.push((-r.dh).exp());
        }
    }
    (plaq, q2, boltz)
}

/// The Gamma-method mean of `data` agrees with `exact` within 3 sigma.
fn within_3_sigma(name: &str, data: &[f64], exact: f64) {
    assert_within_3_sigma(name, &gamma_method(data, DEFAULT_S).unwrap(), exact);
}

#[test]
fn u1_2d_plaquette_and_charge_agree_with_exact_results() {
    for (l, beta) in [(4usize, 1.0), (8, 2.0), (8, 4.0), (6, 3.0)] {
        let v = l * l;
        let (plaq, q2, boltz) = u1_chain(
            l,
            beta,
            Integrator::single(Scheme::Omelyan, 6, 1).unwrap(),
            gauge_for::<U1>(GaugeActionKind::Wilson, beta),
            8000,
        );
        within_3_sigma(&format!("L={l} beta={beta} plaquette"), &plaq, u1_2d_plaquette(beta, v));
        within_3_sigma(&format!("L={l} beta={beta} <exp(-dH)>"), &boltz, 1.0);
        if beta <= 2.0 {
            within_3_sigma(&format!("L={l} beta={beta} <Q^2>"), &q2, u1_2d_charge_squared(beta, v));
        }
    }
    // nested levels with force-gradient outside sample the same distribution
    let (plaq, _, boltz) = u1_chain(
        8,
        2.0,
        nested(Scheme::ForceGradient, Scheme::Leapfrog, 2),
        split::<U1>(GaugeActionKind::Wilson, 2.0),
        8000,
    );
    within_3_sigma("nested plaquette", &plaq, u1_2d_plaquette(2.0, 64));
    within_3_sigma("nested <exp(-dH)>", &boltz, 1.0);
}

#[test]
fn creutz_identity_with_large_dh() {
    // few leapfrog steps: <dH> ~ 0.5, yet <exp(-dH)> = 1
    let (_, _, boltz) = u1_chain(
        16,
        2.0,
        Integrator::single(Scheme::Leapfrog, 4, 1).unwrap(),
        gauge_for::<U1>(GaugeActionKind::Wilson, 2.0),
        6000,
    );
    let mean_dh = boltz.iter().map(|b| -b.ln()).sum::<f64>() / boltz.len() as f64;
    assert!(mean_dh > 0.05, "dH should be sizeable here: {mean_dh}");
    within_3_sigma("<exp(-dH)>", &boltz, 1.0);
}

/// Open boundaries in time on a 2D U(1) lattice (8 x 8, periodic in x): the plaquettes of a
/// cylinder are independent, each with weight exp(beta Re P), so <Re P> = I1(beta) / I0(beta)
/// exactly at any size (an average that counted the 8 absent plaquettes would be 7/8 of it);
/// <exp(-dH)> = 1; the removed links stay zero.
#[test]
fn open_boundary_u1_2d_plaquette_is_the_single_plaquette_value() {
    use flowhmc::reference::ln_bessel_i;
    let beta = 2.0;
    let lat = Arc::new(Lattice::new(&[8, 8]).unwrap().open_in_time());
    let mut u = GaugeField::<U1>::hot(lat.clone(), 7);
    let mut hmc = Hmc::new(
        gauge_for::<U1>(GaugeActionKind::Wilson, beta),
        Integrator::single(Scheme::Omelyan, 4, 1).unwrap(),
        1.0,
        11,
    )
    .unwrap();
    let (mut plaq, mut boltz) = (vec![], vec![]);
    for k in 0..8200 {
        let r = hmc.step(&mut u, k).unwrap();
        if k >= 200 {
            plaq.push(average_plaquette(&u));
            boltz.push((-r.dh).exp());
        }
    }
    let exact = (ln_bessel_i(1, beta) - ln_bessel_i(0, beta)).exp();
    within_3_sigma("open plaquette", &plaq, exact);
    within_3_sigma("open <exp(-dH)>", &boltz, 1.0);
    let removed = (0..lat.volume()).filter(|&s| lat.is_removed_link(s, 1)).collect::<Vec<_>>();
    assert_eq!(removed.len(), 8);
    assert!(removed.iter().all(|&s| u.link(s, 1).norm() == 0.0));
}

/// Open boundaries with SU(3) and the Symanzik action (c_G = 1.3): trajectories are reversible,
/// the removed links stay zero and their momenta never move, the other links stay in SU(3).
#[test]
fn open_boundary_trajectories_are_reversible() {
    let lat = Arc::new(Lattice::new(&[4, 4, 4, 6]).unwrap().open_in_time());
    let mut u = GaugeField::<Su3>::hot(lat.clone(), 3);
    let action = || GaugeAction::new(GaugeActionKind::Symanzik, 4.0).with_boundary_coefficient(1.3);
    let mono: Vec<Box<dyn Monomial<GaugeField<Su3>>>> = vec![Box::new(action())];
    let mut hmc = Hmc::new(mono, Integrator::single(Scheme::Omelyan, 8, 1).unwrap(), 1.0, 3)
        .unwrap()
        .with_reversibility_check(true);
    for k in 0..3 {
        let r = hmc.step(&mut u, k).unwrap();
        let (du, dh) = r.reversibility.unwrap();
        assert!(du < 1e-12 && dh < 1e-9, "|dU| = {du:e}, |dH| = {dh:e}");
    }
    let t = 3;
    let removed: Vec<usize> = (0..lat.volume()).filter(|&s| lat.is_removed_link(s, t)).collect();
    assert_eq!(removed.len(), 64);
    assert!(removed.iter().all(|&s| u.link(s, t).norm_sqr() == 0.0));
    assert!(u.max_unitarity_violation() < 1e-12);
    let p = MomentumField::<Su3>::gaussian(&lat, 1, 2);
    assert!(removed.iter().all(|&s| p.at(&lat, s, t).iter().all(|&x| x == 0.0)));
    let mut f = MomentumField::<Su3>::zeros(&lat);
    action().force(&u, 1.0, &mut f);
    assert!(removed.iter().all(|&s| f.at(&lat, s, t).iter().all(|&x| x == 0.0)));
    assert!(f.kinetic_energy() > 1.0);
}
