//! Markov steps: one trait, implemented by HMC, flow independence Metropolis, HMC in a flow's
//! latent variables and schedules that mix them.

#[cfg(feature = "cuda")]
pub mod device;
pub mod flow_hmc;
pub mod flow_mh;
pub mod hmc;
pub mod schedule;

use crate::error::Result;
use crate::phase_space::PhaseSpace;

pub use flow_hmc::{FlowHmc, PulledBackAction};
pub use flow_mh::FlowMetropolis;
pub use hmc::Hmc;
pub use schedule::Schedule;

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
    /// For a flow proposal: whether its log-density and action were finite (a non-finite
    /// proposal is rejected); `None` for MD steps.
    pub flow_proposal: Option<bool>,
}

/// One step of a Markov chain on the configurations C whose stationary distribution is
/// exp(-S(U)). Steps are `Send + Sync`, so a host's context holding one may move between threads.
pub trait MarkovStep<C: PhaseSpace>: Send + Sync {
    /// Updates `u` in place. `update` is the global update number: all random numbers of the
    /// step derive from it and the run seed, so chains are reproducible and resumable.
    fn step(&mut self, u: &mut C, update: u64) -> Result<StepReport>;

    /// Asks MD steps to also integrate back and report the distance (see
    /// [`StepReport::reversibility`]); steps without MD ignore it.
    fn set_reversibility_check(&mut self, _on: bool) {}
    /// Switches the Metropolis test of MD steps on (the default) or off. Off, every trajectory
    /// with a finite dH is accepted: openQCD's and Chroma's thermalization without the test,
    /// which moves a chain stuck far from equilibrium (a cold start at large beta) but does not
    /// sample exp(-S), so it is only for updates that are not measured. Steps without MD
    /// ignore it.
    fn set_metropolis_test(&mut self, _on: bool) {}
}
