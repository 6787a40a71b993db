//! Monomials: the terms of the action, each with its value, force and refresh.
//!
//! A force is F_a(x, mu) = -d/dw S(exp(w T_a) U_mu(x)) at w = 0 in the generator basis of
//! [`crate::group`], so the MD equations are dP/dt = F, dU/dt = P U.

pub mod clover;
#[cfg(feature = "cuda")]
pub mod device;
pub mod exact_determinant;
pub mod fermion;
#[cfg(test)]
mod finite_difference;
pub mod gauge;
pub mod phi4;
pub mod rational;

use crate::error::Result;
use crate::phase_space::PhaseSpace;

pub use gauge::{GaugeAction, GaugeActionKind};
pub use phi4::Phi4Action;

/// One term of the action S(U) on the phase space C (a gauge field, or a scalar field): the
/// gauge action, a pseudofermion term, the phi^4 action. Terms that solve linear systems fail
/// with an error when a solve does not converge.
pub trait Monomial<C: PhaseSpace>: Send + Sync {
    /// Name used by run cards to place the monomial on an integrator level.
    fn name(&self) -> &str;
    /// The value of this term.
    fn action(&self, u: &C) -> Result<f64>;
    /// p += h F(U) for this term's force F.
    fn add_force(&self, u: &C, h: f64, p: &mut C::Momentum) -> Result<()>;
    /// Draws the auxiliary fields of this term at the start of a trajectory (pseudofermion
    /// heatbath) and returns the action at `u` with them, the term's share of the initial
    /// Hamiltonian. A heatbath knows it without a solve (S = eta^dagger eta); terms of the
    /// field alone have nothing to draw and return [`Monomial::action`].
    fn refresh(&mut self, u: &C, _seed: u64, _update: u64) -> Result<f64> {
        self.action(u)
    }
    /// Solver iterations spent since the last call (and resets the count); 0 for terms that
    /// solve nothing.
    fn take_solver_iterations(&self) -> usize {
        0
    }
}
