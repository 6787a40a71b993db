//! Markov steps: one trait, implemented by HMC (and later by flow-based updates).

pub mod hmc;

use crate::error::Result;
use crate::phase_space::PhaseSpace;

pub use hmc::Hmc;

/// What one Markov step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Whether the proposal was accepted.
    pub accepted: bool,
    /// H(proposal) - H(current); exp(-dH) averages to 1 for an exact algorithm.
    pub dh: f64,
    /// Reversibility check, when asked for: (max |U_back - U_start|, |H_back - H_start|).
    pub reversibility: Option<(f64, f64)>,
    /// Krylov solver iterations the step took (0 without fermions).
    pub solver_iterations: usize,
}

/// One step of a Markov chain on the configurations C whose stationary distribution is
/// exp(-S(U)).
pub trait MarkovStep<C: PhaseSpace> {
    /// Updates `u` in place. `update` is the global update number: all random numbers of the
    /// step derive from it and the run seed, so chains are reproducible and resumable.
    fn step(&mut self, u: &mut C, update: u64) -> Result<StepReport>;
}
