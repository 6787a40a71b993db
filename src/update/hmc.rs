//! Hybrid Monte Carlo (Duane, Kennedy, Pendleton, Roweth 1987).
//!
//! H = (1/2) sum p_a^2 + sum of monomial actions. A trajectory refreshes the momenta (and the
//! monomials' auxiliary fields), integrates over MD time tau and accepts with probability
//! min(1, exp(-dH)) (or, with the Metropolis test switched off for thermalization, always). A
//! non-finite dH is always rejected. Accepted links are projected back to
//! the group to remove round-off drift.

use super::{MarkovStep, StepReport};
use crate::action::Monomial;
use crate::error::{Error, Result};
use crate::integrator::Integrator;
use crate::phase_space::PhaseSpace;
use crate::rng::{Purpose, StreamKey};

/// The HMC update on the phase space C.
pub struct Hmc<C: PhaseSpace> {
    monomials: Vec<Box<dyn Monomial<C>>>,
    integrator: Integrator,
    tau: f64,
    seed: u64,
    reversibility_check: bool,
    metropolis_test: bool,
}

impl<C: PhaseSpace> Hmc<C> {
    /// HMC over `monomials` with trajectory length `tau` (> 0) and run seed `seed`.
    pub fn new(
        monomials: Vec<Box<dyn Monomial<C>>>,
        integrator: Integrator,
        tau: f64,
        seed: u64,
    ) -> Result<Self> {
        if !(tau > 0.0 && tau.is_finite()) {
            return Err(Error::Card(format!("update.trajectory_length = {tau}: must be positive")));
        }
        Ok(Hmc { monomials, integrator, tau, seed, reversibility_check: false, metropolis_test: true })
    }

    /// Also integrate every trajectory back with reversed momenta and report the distance.
    pub fn with_reversibility_check(mut self, on: bool) -> Self {
        self.set_reversibility_check(on);
        self
    }

    /// The monomials.
    pub fn monomials(&self) -> &[Box<dyn Monomial<C>>] {
        &self.monomials
    }

    /// H = kinetic + sum of actions.
    pub fn hamiltonian(&self, u: &C, p: &C::Momentum) -> Result<f64> {
        let mut h = C::kinetic_energy(p);
        for m in &self.monomials {
            h += m.action(u)?;
        }
        Ok(h)
    }
}

impl<C: PhaseSpace> MarkovStep<C> for Hmc<C> {
    fn set_reversibility_check(&mut self, on: bool) {
        self.reversibility_check = on;
    }

    fn set_metropolis_test(&mut self, on: bool) {
        self.metropolis_test = on;
    }

    fn step(&mut self, u: &mut C, update: u64) -> Result<StepReport> {
        let mut actions = Vec::with_capacity(self.monomials.len());
        for m in &mut self.monomials {
            actions.push(m.refresh(u, self.seed, update)?);
        }
        let mut p = u.gaussian_momenta(self.seed, update);
        let h_start = actions.iter().fold(C::kinetic_energy(&p), |h, s| h + s);
        if !h_start.is_finite() {
            return Err(Error::Numerical(format!(
                "update {update}: the Hamiltonian of the current field is {h_start}"
            )));
        }
        let mut proposal = u.clone();
        self.integrator.integrate(&self.monomials, &mut proposal, &mut p, self.tau)?;
        let h_end = self.hamiltonian(&proposal, &p)?;
        let dh = h_end - h_start;

        let reversibility = if self.reversibility_check {
            let (mut back, mut q) = (proposal.clone(), p.clone());
            C::negate(&mut q);
            self.integrator.integrate(&self.monomials, &mut back, &mut q, self.tau)?;
            Some((back.max_distance(u), (self.hamiltonian(&back, &q)? - h_start).abs()))
        } else {
            None
        };
        let solver_iterations = self.monomials.iter().map(|m| m.take_solver_iterations()).sum();

        let r = StreamKey::new(self.seed, Purpose::Accept, update).stream(0).uniform();
        let accepted = dh.is_finite() && (!self.metropolis_test || r < (-dh).exp());
        if accepted {
            proposal.tidy();
            *u = proposal;
        }
        Ok(StepReport { accepted, dh, reversibility, solver_iterations, flow_proposal: None })
    }
}
