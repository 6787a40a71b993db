//! HMC for the phi^4 theory: the free field against its exact propagator, the interacting
//! theory against an independent single-site Metropolis sampler, and reversibility.

mod common;

use common::assert_within_3_sigma;
use flowhmc::action::{Monomial, Phi4Action};
use flowhmc::analysis::gamma::{DEFAULT_S, GammaResult, gamma_method};
use flowhmc::geometry::Lattice;
use flowhmc::integrator::{Integrator, Scheme};
use flowhmc::phase_space::PhaseSpace;
use flowhmc::reference::free_scalar_phi_squared;
use flowhmc::rng::{Purpose, StreamKey};
use flowhmc::scalar::ScalarField;
use flowhmc::update::{Hmc, MarkovStep};
use std::sync::Arc;

/// <phi^2> = (1/V) sum_x phi(x)^2 of a configuration.
fn phi_squared(phi: &ScalarField) -> f64 {
    phi.values().iter().map(|v| v * v).sum::<f64>() / phi.values().len() as f64
}

/// An HMC chain of `n` trajectories after `n / 10` of thermalization: Gamma-method <phi^2>
/// and the acceptance.
fn hmc_phi_squared(dims: &[usize], m2: f64, lambda: f64, n: u64, reversibility: bool) -> (GammaResult, f64) {
    let lat = Arc::new(Lattice::new(dims).unwrap());
    let mut phi = ScalarField::zeros(lat);
    let action: Vec<Box<dyn Monomial<ScalarField>>> = vec![Box::new(Phi4Action::new(m2, lambda).unwrap())];
    let integrator = Integrator::single(Scheme::Omelyan, 8, 1).unwrap();
    let mut hmc = Hmc::new(action, integrator, 1.0, 7).unwrap().with_reversibility_check(reversibility);
    let (mut samples, mut accepted) = (Vec::new(), 0);
    for k in 0..n + n / 10 {
        let report = hmc.step(&mut phi, k).unwrap();
        if let Some((d_phi, d_h)) = report.reversibility {
            assert!(d_phi < 1e-10 && d_h < 1e-9, "reversibility {d_phi:e} {d_h:e}");
        }
        if k >= n / 10 {
            samples.push(phi_squared(&phi));
            accepted += usize::from(report.accepted);
        }
    }
    (gamma_method(&samples, DEFAULT_S).unwrap(), accepted as f64 / n as f64)
}

/// Free field (lambda = 0): <phi(x)^2> against the exact propagator.
#[test]
fn free_field_matches_the_exact_propagator() {
    let (l, m2) = (8usize, 0.5);
    let exact = free_scalar_phi_squared(&[l, l], m2);
    let (r, acceptance) = hmc_phi_squared(&[l, l], m2, 0.0, 4000, false);
    assert!(acceptance > 0.8, "acceptance {acceptance}");
    assert_within_3_sigma("<phi^2>", &r, exact);
}

/// Single-site Metropolis on the same action: an independent sampler of phi^4.
fn metropolis_phi_squared(dims: &[usize], m2: f64, lambda: f64, sweeps: u64) -> GammaResult {
    let lat = Arc::new(Lattice::new(dims).unwrap());
    let d = lat.ndim() as f64;
    let mut phi = vec![0.0f64; lat.volume()];
    let local = |phi: &[f64], x: usize, v: f64| {
        let hop: f64 = (0..lat.ndim()).map(|mu| phi[lat.fwd(x, mu)] + phi[lat.bwd(x, mu)]).sum();
        -2.0 * v * hop + (m2 + 2.0 * d) * v * v + lambda * v.powi(4)
    };
    let mut samples = Vec::new();
    for sweep in 0..sweeps + sweeps / 10 {
        let mut rng = StreamKey::new(3, Purpose::Test, sweep).stream(0);
        for x in 0..lat.volume() {
            let trial = phi[x] + 1.5 * (rng.uniform() - 0.5);
            let ds = local(&phi, x, trial) - local(&phi, x, phi[x]);
            if rng.uniform() < (-ds).exp() {
                phi[x] = trial;
            }
        }
        if sweep >= sweeps / 10 {
            samples.push(phi.iter().map(|v| v * v).sum::<f64>() / phi.len() as f64);
        }
    }
    gamma_method(&samples, DEFAULT_S).unwrap()
}

/// Interacting theory: HMC (with the reversibility check on) and Metropolis agree on <phi^2>.
#[test]
fn interacting_theory_agrees_with_metropolis() {
    let (dims, m2, lambda) = ([6, 6], -1.0, 1.0);
    let (hmc, acceptance) = hmc_phi_squared(&dims, m2, lambda, 3000, true);
    let metropolis = metropolis_phi_squared(&dims, m2, lambda, 20000);
    let sigma = (hmc.error.powi(2) + metropolis.error.powi(2)).sqrt();
    assert!(acceptance > 0.7, "acceptance {acceptance}");
    assert!(
        (hmc.mean - metropolis.mean).abs() < 3.0 * sigma,
        "HMC {} +- {}, Metropolis {} +- {}",
        hmc.mean,
        hmc.error,
        metropolis.mean,
        metropolis.error
    );
}

#[test]
fn trajectories_are_reproducible() {
    let lat = Arc::new(Lattice::new(&[4, 4]).unwrap());
    let run = || {
        let mut phi = ScalarField::zeros(lat.clone());
        let action: Vec<Box<dyn Monomial<ScalarField>>> = vec![Box::new(Phi4Action::new(-4.0, 8.0).unwrap())];
        let mut hmc = Hmc::new(action, Integrator::single(Scheme::Leapfrog, 10, 1).unwrap(), 1.0, 1).unwrap();
        for k in 0..5 {
            hmc.step(&mut phi, k).unwrap();
        }
        phi
    };
    let (a, b) = (run(), run());
    assert_eq!(a.max_distance(&b), 0.0);
    assert!(a.magnetization().abs() > 0.0);
}

/// A `[scalar]` card runs through the chain: its records carry the scalar observables, the
/// summary the susceptibility, and a run stopped and resumed reproduces the uninterrupted one.
#[test]
fn scalar_cards_run_and_resume() {
    use flowhmc::chain::{Card, RunOptions, run_card};
    let dir = std::env::temp_dir().join(format!("flowhmc-scalar-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let card = |name: &str, trajectories: u64| {
        let text = format!(
            "[lattice]\ndims = [6, 6]\n[scalar]\nm2 = -1.0\nlambda = 1.0\n[update]\nkind = \"hmc\"\n\
             trajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 8\n[run]\ntrajectories = {trajectories}\n\
             thermalization = 20\nseed = 5\nstart = \"hot\"\ncheckpoint_every = 30\noutput = {:?}\n",
            dir.join(name)
        );
        Card::parse(&text, name).unwrap()
    };
    let quiet = RunOptions { resume: false, quiet: true };
    let whole = run_card(&card("whole", 200), quiet).unwrap();
    for key in ["magnetization", "abs_magnetization", "phi_squared", "susceptibility", "exp_minus_dh"] {
        assert!(whole.observables.contains_key(key), "{key} missing from {:?}", whole.observables.keys());
    }
    assert!(whole.acceptance > 0.7, "acceptance {}", whole.acceptance);
    run_card(&card("parts", 70), quiet).unwrap();
    run_card(&card("parts", 200), RunOptions { resume: true, quiet: true }).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.join(name).join("measurements.jsonl")).unwrap();
    assert_eq!(read("whole"), read("parts"));
    std::fs::remove_dir_all(&dir).unwrap();
}
