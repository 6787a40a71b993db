//! Real scalar fields phi(x) on the sites of a lattice (lexicographic order, x fastest), and
//! their phase space for HMC: momenta pi(x) with kinetic energy (1/2) sum_x pi(x)^2, drift
//! phi <- phi + h pi.

use crate::geometry::Lattice;
use crate::parallel::exact_sum;
use crate::phase_space::PhaseSpace;
use crate::rng::{Purpose, StreamKey};
use rayon::prelude::*;
use std::sync::Arc;

/// A real scalar field (also the type of its conjugate momenta and forces).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalarField {
    lattice: Arc<Lattice>,
    values: Vec<f64>,
}

impl ScalarField {
    /// phi = 0 everywhere.
    pub fn zeros(lattice: Arc<Lattice>) -> Self {
        let values = vec![0.0; lattice.volume()];
        ScalarField { lattice, values }
    }

    /// phi(x) drawn from N(0, 1) per site, from the site streams of `key` (the same field for
    /// any thread count).
    pub fn gaussian(lattice: Arc<Lattice>, key: &StreamKey) -> Self {
        let values = (0..lattice.volume()).into_par_iter().map(|x| key.stream(x).normal()).collect();
        ScalarField { lattice, values }
    }

    /// The lattice.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// The values in lexicographic site order.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The values, mutable.
    pub fn values_mut(&mut self) -> &mut [f64] {
        &mut self.values
    }

    /// sum_x f(x), exact (bit-identical for any thread count).
    pub fn sum_by(&self, f: impl Fn(usize) -> f64 + Sync) -> f64 {
        exact_sum(self.values.len(), f)
    }

    /// The magnetization M = sum_x phi(x).
    pub fn magnetization(&self) -> f64 {
        self.sum_by(|x| self.values[x])
    }
}

impl PhaseSpace for ScalarField {
    type Momentum = ScalarField;
    fn gaussian_momenta(&self, seed: u64, update: u64) -> ScalarField {
        ScalarField::gaussian(self.lattice.clone(), &StreamKey::new(seed, Purpose::Momentum, update))
    }
    fn zero_momenta(&self) -> ScalarField {
        ScalarField::zeros(self.lattice.clone())
    }
    fn kinetic_energy(p: &ScalarField) -> f64 {
        0.5 * p.sum_by(|x| p.values[x] * p.values[x])
    }
    fn negate(p: &mut ScalarField) {
        p.values.par_iter_mut().for_each(|v| *v = -*v);
    }
    fn drift(&mut self, p: &ScalarField, h: f64) {
        self.values.par_iter_mut().zip(&p.values).for_each(|(phi, pi)| *phi += h * pi);
    }
    fn max_distance(&self, other: &Self) -> f64 {
        self.values.iter().zip(&other.values).fold(0.0, |m, (a, b)| m.max((a - b).abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn momenta_have_unit_variance_and_drift_is_linear() {
        let lat = Arc::new(Lattice::new(&[16, 16]).unwrap());
        let phi = ScalarField::zeros(lat.clone());
        let p = phi.gaussian_momenta(3, 1);
        let v = lat.volume() as f64;
        // 2 kinetic / V estimates <pi^2> = 1 with standard error sqrt(2 / V)
        let second_moment = 2.0 * ScalarField::kinetic_energy(&p) / v;
        assert!((second_moment - 1.0).abs() < 4.0 * (2.0 / v).sqrt(), "{second_moment}");
        let mut moved = phi.clone();
        moved.drift(&p, 0.5);
        moved.drift(&p, -0.5);
        assert_eq!(moved.max_distance(&phi), 0.0);
        assert_ne!(p, phi.gaussian_momenta(3, 2));
    }
}
