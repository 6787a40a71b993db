//! 4D SU(3) Wilson gauge theory at beta = 6.0 on 8^4: the HMC plaquette agrees with the
//! value of an independent heatbath simulation (0.59422 +- 0.00016), and <exp(-dH)> = 1.

use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
use flowhmc::analysis::gamma::{DEFAULT_S, gamma_method};
use flowhmc::field::GaugeField;
use flowhmc::geometry::Lattice;
use flowhmc::group::Su3;
use flowhmc::integrator::{Integrator, Scheme};
use flowhmc::observables::average_plaquette;
use flowhmc::update::{Hmc, MarkovStep};
use std::sync::Arc;

#[test]
fn su3_8_to_the_4_plaquette_at_beta_6() {
    let lat = Arc::new(Lattice::new(&[8, 8, 8, 8]).unwrap());
    let mut u = GaugeField::<Su3>::hot(lat, 2);
    let mono: Vec<Box<dyn Monomial<GaugeField<Su3>>>> =
        vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, 6.0))];
    let mut hmc = Hmc::new(mono, Integrator::single(Scheme::Omelyan, 10, 1).unwrap(), 1.0, 2).unwrap();
    let (therm, n) = (100, 400);
    let (mut plaq, mut boltz) = (vec![], vec![]);
    for k in 0..therm + n {
        let r = hmc.step(&mut u, k).unwrap();
        if k >= therm {
            plaq.push(average_plaquette(&u));
            boltz.push((-r.dh).exp());
        }
    }
    let p = gamma_method(&plaq, DEFAULT_S).unwrap();
    let (reference, reference_error) = (0.59422, 0.00016);
    let sigma = (p.error.powi(2) + reference_error * reference_error).sqrt();
    assert!(
        ((p.mean - reference) / sigma).abs() < 3.0,
        "plaquette {} +- {} (tau_int {:.1}) vs {reference} +- {reference_error}",
        p.mean,
        p.error,
        p.tau_int
    );
    let b = gamma_method(&boltz, DEFAULT_S).unwrap();
    assert!(((b.mean - 1.0) / b.error).abs() < 3.0, "<exp(-dH)> = {} +- {}", b.mean, b.error);
    println!(
        "plaquette {:.5} +- {:.5} (tau_int {:.2}); <exp(-dH)> {:.4} +- {:.4}",
        p.mean, p.error, p.tau_int, b.mean, b.error
    );
}

/// 2D SU(3) Wilson gauge theory, L = 8: the HMC plaquette agrees with the exact character
/// expansion (exact; equal to L = infinity there).
#[test]
fn su3_2d_plaquette_agrees_with_the_character_expansion() {
    for (beta, exact) in [(4.0, 0.279_619_149_409), (8.0, 0.535_753_990_214)] {
        let lat = Arc::new(Lattice::new(&[8, 8]).unwrap());
        let mut u = GaugeField::<Su3>::hot(lat, 3);
        let mono: Vec<Box<dyn Monomial<GaugeField<Su3>>>> =
            vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, beta))];
        let mut hmc = Hmc::new(mono, Integrator::single(Scheme::Omelyan, 8, 1).unwrap(), 1.0, 4).unwrap();
        let (therm, n) = (200, 4000);
        let mut plaq = Vec::with_capacity(n as usize);
        for k in 0..therm + n {
            hmc.step(&mut u, k).unwrap();
            if k >= therm {
                plaq.push(average_plaquette(&u));
            }
        }
        let p = gamma_method(&plaq, DEFAULT_S).unwrap();
        assert!(
            ((p.mean - exact) / p.error).abs() < 3.0,
            "beta {beta}: plaquette {} +- {} (tau_int {:.2}) vs exact {exact}",
            p.mean,
            p.error,
            p.tau_int
        );
        println!("beta {beta}: plaquette {:.5} +- {:.5} vs exact {exact:.5}", p.mean, p.error);
    }
}
