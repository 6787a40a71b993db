//! The phi^4 action in the convention of arXiv 2101.08176, for any dimension D:
//! S = sum_x [ -2 sum_mu phi(x) phi(x+mu) + (m^2 + 2D) phi(x)^2 + lambda phi(x)^4 ]
//! = sum_x [ sum_mu (phi(x+mu) - phi(x))^2 + m^2 phi^2 + lambda phi^4 ] (periodic lattice).
//! Its force is F(x) = -dS/dphi(x) = 2 sum_mu [phi(x+mu) + phi(x-mu)] - 2 (m^2 + 2D) phi(x)
//! - 4 lambda phi(x)^3.

use super::Monomial;
use crate::error::{Error, Result};
use crate::scalar::ScalarField;
use rayon::prelude::*;

/// The phi^4 action with bare mass squared `m2` (may be negative) and coupling `lambda`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phi4Action {
    m2: f64,
    lambda: f64,
}

impl Phi4Action {
    /// The action; `lambda` must be >= 0, and m^2 > 0 when lambda = 0 (otherwise exp(-S) is
    /// not normalisable).
    pub fn new(m2: f64, lambda: f64) -> Result<Self> {
        if !(m2.is_finite() && lambda.is_finite() && lambda >= 0.0 && (lambda > 0.0 || m2 > 0.0)) {
            return Err(Error::Config(format!(
                "phi^4 with m2 = {m2}, lambda = {lambda}: need lambda >= 0, and m2 > 0 when lambda = 0"
            )));
        }
        Ok(Phi4Action { m2, lambda })
    }

    /// (m^2, lambda).
    pub fn couplings(&self) -> (f64, f64) {
        (self.m2, self.lambda)
    }

    /// The coefficient m^2 + 2D of phi^2.
    fn mass_term(&self, phi: &ScalarField) -> f64 {
        self.m2 + 2.0 * phi.lattice().ndim() as f64
    }
}

impl Monomial<ScalarField> for Phi4Action {
    fn name(&self) -> &str {
        "phi4"
    }

    fn action(&self, phi: &ScalarField) -> Result<f64> {
        let (lat, v) = (phi.lattice(), phi.values());
        let mass = self.mass_term(phi);
        Ok(phi.sum_by(|x| {
            let hop: f64 = (0..lat.ndim()).map(|mu| v[lat.fwd(x, mu)]).sum();
            let p2 = v[x] * v[x];
            -2.0 * v[x] * hop + mass * p2 + self.lambda * p2 * p2
        }))
    }

    fn add_force(&self, phi: &ScalarField, h: f64, p: &mut ScalarField) -> Result<()> {
        let (lat, v) = (phi.lattice(), phi.values());
        let mass = self.mass_term(phi);
        p.values_mut().par_iter_mut().enumerate().for_each(|(x, px)| {
            let neighbours: f64 = (0..lat.ndim()).map(|mu| v[lat.fwd(x, mu)] + v[lat.bwd(x, mu)]).sum();
            *px += h * (2.0 * neighbours - 2.0 * mass * v[x] - 4.0 * self.lambda * v[x].powi(3));
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::phase_space::PhaseSpace;
    use crate::rng::{Purpose, StreamKey};
    use std::sync::Arc;

    #[test]
    fn force_matches_finite_differences() {
        for dims in [vec![6, 4], vec![4, 2, 2, 4]] {
            let lat = Arc::new(Lattice::new(&dims).unwrap());
            let phi = ScalarField::gaussian(lat.clone(), &StreamKey::new(5, Purpose::Test, 0));
            let s = Phi4Action::new(-4.0, 8.0).unwrap();
            let mut f = phi.zero_momenta();
            s.add_force(&phi, 1.0, &mut f).unwrap();
            for x in [0, 7, lat.volume() - 1] {
                let eps = 1e-4;
                let shifted = |w: f64| {
                    let mut q = phi.clone();
                    q.values_mut()[x] += w;
                    s.action(&q).unwrap()
                };
                let fd = -(shifted(eps) - shifted(-eps)) / (2.0 * eps);
                let got = f.values()[x];
                assert!((fd - got).abs() < 1e-6 * got.abs().max(1.0), "{dims:?} site {x}: {got} vs {fd}");
            }
        }
    }

    #[test]
    fn action_is_the_gradient_form() {
        let lat = Arc::new(Lattice::new(&[4, 6]).unwrap());
        let phi = ScalarField::gaussian(lat.clone(), &StreamKey::new(2, Purpose::Test, 0));
        let (m2, lambda) = (0.7, 1.3);
        let v = phi.values();
        let expected: f64 = (0..lat.volume())
            .map(|x| {
                let grad: f64 = (0..2).map(|mu| (v[lat.fwd(x, mu)] - v[x]).powi(2)).sum();
                grad + m2 * v[x] * v[x] + lambda * v[x].powi(4)
            })
            .sum();
        let got = Phi4Action::new(m2, lambda).unwrap().action(&phi).unwrap();
        assert!((got - expected).abs() < 1e-10 * expected.abs());
        assert!(Phi4Action::new(-1.0, 0.0).is_err());
        assert!(Phi4Action::new(1.0, -0.5).is_err());
        assert!(Phi4Action::new(f64::NAN, 1.0).is_err());
    }
}
