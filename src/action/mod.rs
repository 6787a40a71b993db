//! Monomials: the terms of the action, each with its value, force and refresh.
//!
//! A force is F_a(x, mu) = -d/dw S(exp(w T_a) U_mu(x)) at w = 0 in the generator basis of
//! [`crate::group`], so the MD equations are dP/dt = F, dU/dt = P U.

pub mod fermion;
pub mod gauge;

use crate::error::Result;
use crate::field::{GaugeField, MomentumField};
use crate::group::Group;

pub use gauge::{GaugeAction, GaugeActionKind};

/// One term of the action S(U): the gauge action or a pseudofermion term. Terms that solve
/// linear systems fail with an error when a solve does not converge.
pub trait Monomial<G: Group>: Send + Sync {
    /// Name used by run cards to place the monomial on an integrator level.
    fn name(&self) -> &str;
    /// The value of this term.
    fn action(&self, u: &GaugeField<G>) -> Result<f64>;
    /// p += h F(U) for this term's force F.
    fn add_force(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) -> Result<()>;
    /// Draws the auxiliary fields of this term at the start of a trajectory (pseudofermion
    /// heatbath). Terms of the gauge field alone have nothing to draw.
    fn refresh(&mut self, _u: &GaugeField<G>, _seed: u64, _update: u64) -> Result<()> {
        Ok(())
    }
    /// Solver iterations spent since the last call (and resets the count); 0 for terms that
    /// solve nothing.
    fn take_solver_iterations(&self) -> usize {
        0
    }
}
