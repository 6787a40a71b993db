//! Independence Metropolis-Hastings with flow proposals (arXiv 1904.12072): the proposal x'
//! is drawn from the model q independently of the current x and accepted with probability
//! min(1, [p(x') q(x)] / [p(x) q(x')]), p = exp(-S). The chain's stationary distribution is
//! exp(-S) whatever the model's quality; a poor model only lowers the acceptance.
//!
//! The reported dH is [S(x') + log q(x')] - [S(x) + log q(x)], so the acceptance is
//! min(1, exp(-dH)) as in HMC and <exp(-dH)> = 1 in equilibrium. S is the action of the
//! monomials, computed in f64 on the proposed field. log q of every field, proposed or not
//! (the start, a field an HMC step of a schedule made), comes from one function: the model's
//! inverse pass on that field alone, so the test uses one well-defined density and a resumed
//! chain recomputes exactly the value the uninterrupted chain kept. Before each step the monomials refresh
//! their auxiliary fields (a pseudofermion heatbath), so with fermions the test runs at fixed
//! pseudofermions (arXiv 2207.08945).
//!
//! Proposals are drawn in blocks of `batch` updates from the streams of (seed, update), so a
//! chain is reproducible and resumes exactly at any update.
//!
//! A symmetrized chain proposes R x' with probability 1/2, where R is the theory's reflection
//! ([`FlowField::reflected`]: phi -> -phi, or charge conjugation U -> U*), so the proposal
//! density is q_R(x) = [q(x) + q(R x)] / 2. A model that has collapsed onto one of two mirror
//! images (one sign of the magnetization, say) then proposes both; the test with q_R is exact
//! for any target, and since R leaves the action invariant it only changes the efficiency.

use super::{MarkovStep, StepReport};
use crate::action::Monomial;
use crate::error::Result;
use crate::flow::{FlowField, FlowModel};
use crate::phase_space::PhaseSpace;
use crate::rng::{Purpose, StreamKey};

/// Flow independence Metropolis on configurations C.
pub struct FlowMetropolis<C: PhaseSpace> {
    model: FlowModel,
    monomials: Vec<Box<dyn Monomial<C>>>,
    seed: u64,
    batch: u64,
    /// Proposals for updates `block * batch ..`, and `block`.
    proposals: Option<(u64, Vec<C>)>,
    /// The current field as the chain last left it, with its log q.
    current: Option<(C, f64)>,
    /// Whether proposals are symmetrized under the reflection (see the module docs).
    symmetric: bool,
}

impl<C: PhaseSpace + FlowField + PartialEq> FlowMetropolis<C> {
    /// Proposals from `model` for the target exp(-sum of `monomials`), drawn `batch` at a time.
    pub fn new(model: FlowModel, monomials: Vec<Box<dyn Monomial<C>>>, seed: u64, batch: usize) -> Self {
        FlowMetropolis {
            model,
            monomials,
            seed,
            batch: batch.max(1) as u64,
            proposals: None,
            current: None,
            symmetric: false,
        }
    }

    /// The same chain with proposals symmetrized under the theory's reflection when
    /// `symmetric` (see the module docs).
    pub fn symmetrized(mut self, symmetric: bool) -> Self {
        self.symmetric = symmetric;
        self
    }

    fn action(&self, u: &C) -> Result<f64> {
        self.monomials.iter().map(|m| m.action(u)).sum()
    }

    /// The proposal of `update`.
    fn proposal(&mut self, update: u64) -> Result<C> {
        let block = update / self.batch;
        if self.proposals.as_ref().map(|(b, _)| *b) != Some(block) {
            let keys: Vec<StreamKey> = (block * self.batch..(block + 1) * self.batch)
                .map(|n| StreamKey::new(self.seed, Purpose::FlowProposal, n))
                .collect();
            self.proposals = Some((block, self.model.propose(&keys)?));
        }
        let (_, proposals) = self.proposals.as_ref().expect("block drawn");
        let proposal = &proposals[(update - block * self.batch) as usize];
        let reflect = self.symmetric
            && StreamKey::new(self.seed, Purpose::FlowReflection, update).stream(0).uniform() < 0.5;
        Ok(if reflect { proposal.reflected() } else { proposal.clone() })
    }

    /// log q of `u` under the proposal density: the model's, or its symmetrization
    /// ln([q(u) + q(R u)] / 2).
    fn log_density(&self, u: &C) -> Result<f64> {
        let log_q = self.model.log_density_of(u)?;
        if !self.symmetric {
            return Ok(log_q);
        }
        let log_q_reflected = self.model.log_density_of(&u.reflected())?;
        let max = log_q.max(log_q_reflected);
        if !max.is_finite() {
            // both densities vanish, one is +infinite, or both are NaN: the caller rejects
            // (a single NaN propagates through the sum below)
            return Ok(log_q + log_q_reflected);
        }
        Ok(max + (0.5 * ((log_q - max).exp() + (log_q_reflected - max).exp())).ln())
    }

    /// log q of the current field, reusing the value of the last step when the chain has not
    /// moved the field since.
    fn current_log_density(&self, u: &C) -> Result<f64> {
        match &self.current {
            Some((field, log_q)) if field == u => Ok(*log_q),
            _ => self.log_density(u),
        }
    }
}

impl<C: PhaseSpace + FlowField + PartialEq> MarkovStep<C> for FlowMetropolis<C> {
    fn step(&mut self, u: &mut C, update: u64) -> Result<StepReport> {
        let mut action_old = 0.0;
        for m in &mut self.monomials {
            action_old += m.refresh(u, self.seed, update)?;
        }
        let proposal = self.proposal(update)?;
        let log_q_new = self.log_density(&proposal)?;
        let log_q_old = self.current_log_density(u)?;
        let weight_old = action_old + log_q_old;
        let dh = self.action(&proposal)? + log_q_new - weight_old;
        let finite = dh.is_finite() && log_q_new.is_finite();
        let r = StreamKey::new(self.seed, Purpose::Accept, update).stream(0).uniform();
        let accepted = finite && r < (-dh).exp();
        if accepted {
            *u = proposal.clone();
            self.current = Some((proposal, log_q_new));
        } else {
            self.current = Some((u.clone(), log_q_old));
        }
        let solver_iterations = self.monomials.iter().map(|m| m.take_solver_iterations()).sum();
        Ok(StepReport { accepted, dh, reversibility: None, solver_iterations, flow_proposal: Some(finite) })
    }
}
