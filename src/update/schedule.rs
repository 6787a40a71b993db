//! Schedules: a fixed cycle of Markov steps, e.g. one HMC trajectory then four flow proposals.
//! Every member leaves exp(-S) invariant, so the cycle does too. Each member step is one
//! update of the chain (and one measurement record); update n runs the member at position
//! n mod (cycle length).

use super::{MarkovStep, StepReport};
use crate::error::{Error, Result};
use crate::phase_space::PhaseSpace;

/// A cycle of Markov steps, each repeated a number of times.
pub struct Schedule<C: PhaseSpace> {
    members: Vec<(Box<dyn MarkovStep<C>>, u64)>,
    cycle: u64,
}

impl<C: PhaseSpace> Schedule<C> {
    /// The cycle `members` (step, repetitions), in order; every repetition count >= 1.
    pub fn new(members: Vec<(Box<dyn MarkovStep<C>>, u64)>) -> Result<Self> {
        if members.is_empty() || members.iter().any(|(_, n)| *n == 0) {
            return Err(Error::Card("update: a schedule needs members with at least one step each".into()));
        }
        let cycle = members.iter().map(|(_, n)| n).sum();
        Ok(Schedule { members, cycle })
    }

    /// The member that runs update `update`.
    fn member(&mut self, update: u64) -> &mut dyn MarkovStep<C> {
        let mut position = update % self.cycle;
        for (step, n) in &mut self.members {
            if position < *n {
                return step.as_mut();
            }
            position -= *n;
        }
        unreachable!("position below the cycle length")
    }
}

impl<C: PhaseSpace> MarkovStep<C> for Schedule<C> {
    fn step(&mut self, u: &mut C, update: u64) -> Result<StepReport> {
        self.member(update).step(u, update)
    }

    fn set_reversibility_check(&mut self, on: bool) {
        self.members.iter_mut().for_each(|(step, _)| step.set_reversibility_check(on));
    }

    fn set_metropolis_test(&mut self, on: bool) {
        self.members.iter_mut().for_each(|(step, _)| step.set_metropolis_test(on));
    }
}
