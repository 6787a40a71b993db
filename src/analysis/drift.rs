//! Drift of a chain's mean: a thermalization that ended too early shows as a first part of
//! the measured chain whose mean differs from the rest.
//!
//! The first quarter of the chain is compared with its last half. Without a drift both parts
//! sample the same distribution, so the first part's mean fluctuates like the last half's
//! with sqrt(2 tau_int Gamma(0) / N) of the smaller N: its error is the last half's Gamma
//! error times sqrt(N_last / N_first), and
//! sigma = (mean_first - mean_last) / (error_last sqrt(1 + N_last / N_first)).
//! (The first part's own Gamma error would hide a drift: the trend inside it looks like a
//! long autocorrelation.) When a slow mode is known (tau_exp), the last half's error is the
//! tail-corrected one ([`super::gamma::GammaResult::with_tail`]): a mode slower than its window moves the
//! parts apart without any drift. The quarter between the parts separates them by more than most
//! autocorrelation times, so the two errors add in quadrature. A chain drifts when
//! |sigma| > [`DRIFT_SIGMA`].

use super::gamma::{DEFAULT_S, gamma_method};

/// |sigma| above which a chain drifts. Not 3: the summary tests every observable of a run
/// (ten or more, correlated), and the errors of the short first part are themselves uncertain
/// (its tau_int comes from a quarter of the chain), which fattens the tails of sigma; at 4 an
/// equilibrated chain raises a false alarm rarely, while the drift of a chain that was still
/// thermalizing is many sigma at once.
pub const DRIFT_SIGMA: f64 = 4.0;

/// Fewest measurements in the first part for a test: shorter chains are not tested.
pub const MIN_FIRST: usize = 10;

/// The comparison of the first quarter of a chain with its last half.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drift {
    /// Measurements in the first part.
    pub first: usize,
    /// Measurements in the last half.
    pub last: usize,
    /// (mean_first - mean_last) in units of their combined error (0 when both parts agree
    /// exactly, infinite when they differ and the last half never changed).
    pub sigma: f64,
}

impl Drift {
    /// Whether |sigma| > [`DRIFT_SIGMA`].
    pub fn drifts(&self) -> bool {
        self.sigma.abs() > DRIFT_SIGMA
    }
}

/// Compares the first quarter of `data` with its last half, whose error includes the tail of
/// a mode with exponential autocorrelation time `tau_exp` when given; `None` when the first
/// quarter has fewer than [`MIN_FIRST`] measurements.
pub fn drift(data: &[f64], tau_exp: Option<f64>) -> Option<Drift> {
    let (first, last) = (data.len() / 4, data.len() / 2);
    if first < MIN_FIRST {
        return None;
    }
    let early = data[..first].iter().sum::<f64>() / first as f64;
    let tail = &data[data.len() - last..];
    let mut reference = gamma_method(tail, DEFAULT_S)?;
    if let Some(tau_exp) = tau_exp {
        reference = reference.with_tail(tail, tau_exp);
    }
    let difference = early - reference.mean;
    let error = reference.error_tail.unwrap_or(reference.error) * (1.0 + last as f64 / first as f64).sqrt();
    let sigma = if difference == 0.0 { 0.0 } else { difference / error };
    Some(Drift { first, last, sigma })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`crate::analysis::gamma::ar1`] of this module's seed.
    fn ar1(a: f64, n: usize, stream: usize) -> Vec<f64> {
        crate::analysis::gamma::ar1(18, a, n, stream)
    }

    #[test]
    fn equilibrated_chains_do_not_drift() {
        // 40 correlated chains (tau_int 9.5) in equilibrium: none drifts, yet the comparison
        // is sharp enough that some differ by more than one sigma (a test that flagged at
        // 1 sigma, or that ignored the autocorrelations, would fail here)
        let sigmas: Vec<f64> = (0..40).map(|c| drift(&ar1(0.9, 2_000, c), None).unwrap().sigma).collect();
        println!("drift sigmas of equilibrated chains: {sigmas:.2?}");
        assert!(sigmas.iter().all(|s| s.abs() < DRIFT_SIGMA), "{sigmas:?}");
        assert!(sigmas.iter().any(|s| s.abs() > 1.0), "{sigmas:?}");
    }

    #[test]
    fn a_relaxing_start_drifts() {
        // the same kind of chain relaxing from 5 standard deviations, a little slower than it decorrelates
        let data: Vec<f64> = ar1(0.9, 2_000, 100)
            .iter()
            .enumerate()
            .map(|(i, x)| x + 5.0 * (-(i as f64) / 150.0).exp())
            .collect();
        let d = drift(&data, None).unwrap();
        println!("{d:?}");
        assert!(d.drifts(), "{d:?}");
        assert_eq!((d.first, d.last), (500, 1_000));
        assert!(drift(&data[..39], None).is_none());
        assert_eq!(drift(&[1.0; 40], None).unwrap().sigma, 0.0);
    }
}
