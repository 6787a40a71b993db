//! Phase spaces that the molecular-dynamics integrators and HMC work on: a configuration and
//! its conjugate momenta. Gauge fields pair with algebra-valued momenta ([`crate::field`]);
//! each space documents its kinetic energy, and its momentum refresh draws exactly the
//! Gaussian distribution exp(-kinetic energy).

/// A configuration space with conjugate momenta.
pub trait PhaseSpace: Clone + Send + Sync {
    /// The conjugate momenta (also the type forces are accumulated in).
    type Momentum: Clone + Send + Sync;
    /// Momenta drawn from exp(-kinetic energy), from the streams of (seed, update).
    fn gaussian_momenta(&self, seed: u64, update: u64) -> Self::Momentum;
    /// Zero momenta on the same lattice.
    fn zero_momenta(&self) -> Self::Momentum;
    /// The kinetic energy of p.
    fn kinetic_energy(p: &Self::Momentum) -> f64;
    /// p <- -p (the reversibility check integrates back with negated momenta).
    fn negate(p: &mut Self::Momentum);
    /// The drift: the configuration moved along p for MD time h.
    fn drift(&mut self, p: &Self::Momentum, h: f64);
    /// Largest difference between entries of two configurations.
    fn max_distance(&self, other: &Self) -> f64;
    /// Removes the round-off an accepted MD trajectory accumulated (projection back to the
    /// group for gauge fields; nothing for flat spaces).
    fn tidy(&mut self) {}
}
