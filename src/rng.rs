//! Reproducible random numbers: one ChaCha8 stream per (seed, purpose, update number, site).
//!
//! The key of a stream is derived from the run seed, the purpose of the draw and the update
//! (trajectory) number; the site index selects the ChaCha stream. A draw therefore depends on
//! nothing but these four numbers, so a chain is bit-identical for any number of threads and
//! a resumed run needs no generator state beyond the update number.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Why random numbers are drawn; each purpose gets statistically independent streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Gaussian momenta at the start of an MD trajectory.
    Momentum = 1,
    /// The uniform number of a Metropolis accept/reject test.
    Accept = 2,
    /// Haar-random links of a hot start.
    HotStart = 3,
    /// Draws made by tests and benchmarks that need a random field.
    Test = 4,
    /// Gaussian noise of a pseudofermion heatbath.
    Pseudofermion = 5,
    /// Noise vectors of stochastic estimators (chiral condensate).
    Noise = 6,
    /// Prior draws of flow proposals (one field per update).
    FlowProposal = 7,
    /// Prior draws of a training batch (one batch per training step).
    Training = 8,
    /// Initial weights of a flow model.
    ModelInit = 9,
    /// Whether a symmetrized flow proposal is reflected (one draw per update).
    FlowReflection = 10,
    /// Noise fields of the reweighting factor of a rational approximation.
    Reweighting = 11,
    /// Start vectors of the spectral-range check of rational HMC.
    SpectralCheck = 12,
}

/// SplitMix64 finaliser: a bijective 64-bit mixer (Steele, Lea, Flood 2014).
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 256-bit key shared by all site streams of one (seed, purpose, update).
#[derive(Clone, Copy, Debug)]
pub struct StreamKey([u8; 32]);

impl StreamKey {
    /// Derives the key of `purpose` draws for update number `update` of a run seeded `seed`.
    pub fn new(seed: u64, purpose: Purpose, update: u64) -> Self {
        let mut key = [0u8; 32];
        let mut h = mix64(seed ^ mix64(purpose as u64 ^ mix64(update)));
        for chunk in key.chunks_mut(8) {
            h = mix64(h);
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        StreamKey(key)
    }

    /// The key of the `index`-th of several independent fields drawn for the same (seed,
    /// purpose, update): pseudofermion terms, noise vectors.
    pub fn derive(&self, index: u64) -> StreamKey {
        let mut key = [0u8; 32];
        let mut h = mix64(index ^ 0xD1B5_4A32_D192_ED03);
        for (chunk, old) in key.chunks_mut(8).zip(self.0.chunks(8)) {
            h = mix64(h ^ u64::from_le_bytes(old.try_into().expect("8-byte chunk")));
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        StreamKey(key)
    }

    /// The generator for one site (or any other index that must have its own stream).
    pub fn stream(&self, site: usize) -> SiteRng {
        let mut rng = ChaCha8Rng::from_seed(self.0);
        rng.set_stream(site as u64);
        SiteRng { rng, spare_normal: None }
    }
}

/// A random stream with the draws lattice code needs: uniforms and unit Gaussians.
pub struct SiteRng {
    rng: ChaCha8Rng,
    spare_normal: Option<f64>,
}

impl SiteRng {
    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal N(0, 1) by the Box-Muller transform (pairs are cached).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // in (0, 1], so the log is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare_normal = Some(r * s);
        r * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_every_index() {
        let draw =
            |seed, purpose, update, site| StreamKey::new(seed, purpose, update).stream(site).rng.next_u64();
        let base = draw(1, Purpose::Momentum, 5, 7);
        assert_eq!(base, draw(1, Purpose::Momentum, 5, 7));
        assert_ne!(base, draw(2, Purpose::Momentum, 5, 7));
        assert_ne!(base, draw(1, Purpose::Accept, 5, 7));
        assert_ne!(base, draw(1, Purpose::Momentum, 6, 7));
        assert_ne!(base, draw(1, Purpose::Momentum, 5, 8));
        let key = StreamKey::new(1, Purpose::Momentum, 5);
        let derived = |k: &StreamKey| k.stream(7).uniform();
        assert_eq!(derived(&key.derive(2)), derived(&key.derive(2)));
        assert_ne!(derived(&key.derive(2)), derived(&key.derive(3)));
        assert_ne!(derived(&key.derive(0)), derived(&key));
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = StreamKey::new(3, Purpose::Test, 0).stream(0);
        let n = 200_000;
        let (mut s1, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.normal();
            s1 += z;
            s2 += z * z;
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        // standard errors: 1/sqrt(n) = 0.0022 for the mean, sqrt(2/n) = 0.0032 for the variance
        assert!(mean.abs() < 0.011, "mean {mean}");
        assert!((var - 1.0).abs() < 0.016, "variance {var}");
    }
}
