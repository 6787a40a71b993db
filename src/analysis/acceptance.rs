//! Acceptance at the end of a chain and the step-size advice for HMC.
//!
//! A chain is stuck when fewer than [`LOW_ACCEPTANCE`] of its last [`WINDOW`] measured updates
//! were accepted. For HMC the advice follows from the large-volume relation between the mean
//! energy violation and the acceptance (Gupta, Kilcup, Sharpe, Phys. Rev. D 38 (1988) 1278):
//! acceptance = erfc(sqrt(\<dH>) / 2). An integrator of order p violates H by O(eps^p) per
//! trajectory and \<dH> = \<dH^2>/2, so \<dH> grows as eps^(2p): to bring \<dH> down to the value
//! of [`TARGET_ACCEPTANCE`], the number of steps must grow by (\<dH> / \<dH>_target)^(1/(2p)).

/// Measured updates (the last ones) the recent acceptance is taken over; all when fewer.
pub const WINDOW: usize = 50;

/// Recent acceptance below which a chain is stuck: 5 or fewer of 50 updates. HMC tuned as
/// usual accepts 0.6-0.9, and a chain that moves once in ten updates gains nothing.
pub const LOW_ACCEPTANCE: f64 = 0.1;

/// The acceptance the step advice aims at.
pub const TARGET_ACCEPTANCE: f64 = 0.7;

/// erfc(x) (Numerical Recipes' Chebyshev fit, fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = [
        -1.26551223,
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, c| acc * t + c);
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The large-volume HMC acceptance erfc(sqrt(\<dH>) / 2) at mean energy violation `mean_dh`
/// (1 for \<dH> <= 0).
pub fn acceptance_of_dh(mean_dh: f64) -> f64 {
    erfc(mean_dh.max(0.0).sqrt() / 2.0)
}

/// The \<dH> at which [`acceptance_of_dh`] equals `acceptance` (0 < acceptance < 1), by
/// bisection.
pub fn dh_for_acceptance(acceptance: f64) -> f64 {
    let (mut low, mut high) = (0.0, 1e4);
    for _ in 0..100 {
        let mid = 0.5 * (low + high);
        if acceptance_of_dh(mid) > acceptance {
            low = mid;
        } else {
            high = mid;
        }
    }
    0.5 * (low + high)
}

/// The factor by which the MD steps of an order-`order` integrator must grow so that the mean
/// energy violation `mean_dh` falls to the \<dH> of [`TARGET_ACCEPTANCE`]; below 1 when it is
/// already there.
pub fn step_factor(mean_dh: f64, order: u32) -> f64 {
    (mean_dh / dh_for_acceptance(TARGET_ACCEPTANCE)).powf(1.0 / f64::from(2 * order))
}

/// The acceptance of the last [`WINDOW`] of `accepted` (all when fewer), `None` when empty.
pub fn recent_acceptance(accepted: &[bool]) -> Option<f64> {
    let window = &accepted[accepted.len().saturating_sub(WINDOW)..];
    (!window.is_empty()).then(|| window.iter().filter(|&&a| a).count() as f64 / window.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_its_series() {
        // erfc(x) = 1 - 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        for x in [-1.5, -0.3, 0.0, 0.2, 0.7, 1.1, 2.0] {
            let (mut term, mut sum) = (x, 0.0);
            for n in 0..60 {
                sum += term / (2 * n + 1) as f64;
                term *= -x * x / (n + 1) as f64;
            }
            let series = 1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum;
            assert!((erfc(x) / series - 1.0).abs() < 2e-7, "erfc({x}) = {} vs {series}", erfc(x));
        }
    }

    #[test]
    fn advice_inverts_the_acceptance_formula() {
        let target = dh_for_acceptance(TARGET_ACCEPTANCE);
        assert!((acceptance_of_dh(target) - TARGET_ACCEPTANCE).abs() < 1e-9);
        assert!((acceptance_of_dh(-0.1) - 1.0).abs() < 1e-6);
        // <dH> 2^(2p) times the target: the step size must halve, for either order
        for order in [2, 4] {
            let mean_dh = target * 2f64.powi(2 * order as i32);
            assert!((step_factor(mean_dh, order) - 2.0).abs() < 1e-9);
        }
        assert!(step_factor(target / 2.0, 2) < 1.0);
    }

    #[test]
    fn recent_acceptance_uses_the_last_window() {
        let mut accepted = vec![true; 3 * WINDOW];
        accepted.extend(vec![false; WINDOW]);
        assert_eq!(recent_acceptance(&accepted), Some(0.0));
        assert_eq!(recent_acceptance(&[true, false, false, false]), Some(0.25));
        assert_eq!(recent_acceptance(&[]), None);
    }
}
