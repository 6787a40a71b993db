//! The extreme eigenvalues of a Hermitian operator by the Lanczos recursion, for the
//! spectral-range check of rational HMC: the approximation of (M^dagger M)^{-1/2} holds only on
//! its range [a, b], so a run checks that the spectrum of M^dagger M lies inside.
//!
//! The recursion (no reorthogonalisation, which the extreme eigenvalues do not need):
//! v_1 = x / |x|, w = A v_j - beta_{j-1} v_{j-1}, alpha_j = <v_j, w>, w -= alpha_j v_j,
//! beta_j = |w|, v_{j+1} = w / beta_j. The eigenvalues of the tridiagonal matrix
//! T_j = tridiag(beta, alpha, beta) (Ritz values) approach the extreme eigenvalues of A from
//! inside: lambda_min(A) <= min Ritz and max Ritz <= lambda_max(A). The smallest and largest
//! eigenvalue of T_j are found by bisection on its Sturm sequence.

use super::{LinearOperator, SolverVector};
use crate::error::{Error, Result};
use num_complex::Complex64;

/// The smallest and largest eigenvalue of a Hermitian operator, as Lanczos found them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpectralBounds {
    /// The smallest Ritz value (an upper bound of lambda_min, converged to the tolerance).
    pub min: f64,
    /// The largest Ritz value (a lower bound of lambda_max, converged to the tolerance).
    pub max: f64,
    /// Operator applications.
    pub iterations: usize,
}

/// How many eigenvalues of the symmetric tridiagonal matrix (diagonal `alpha`, off-diagonal
/// `beta`) are below x: the sign changes of its Sturm sequence (LDL^T pivots below zero).
fn count_below(alpha: &[f64], beta: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut d = 1.0;
    for (j, &a) in alpha.iter().enumerate() {
        let b2 = if j == 0 { 0.0 } else { beta[j - 1] * beta[j - 1] };
        d = a - x - b2 / d;
        if d == 0.0 {
            d = -f64::EPSILON * (a.abs() + x.abs() + 1.0);
        }
        if d < 0.0 {
            count += 1;
        }
    }
    count
}

/// The k-th smallest eigenvalue (from 0) of the symmetric tridiagonal matrix, by bisection
/// inside its Gershgorin interval to the last bits of f64.
fn tridiagonal_eigenvalue(alpha: &[f64], beta: &[f64], k: usize) -> f64 {
    let radius =
        |j: usize| (if j > 0 { beta[j - 1].abs() } else { 0.0 }) + beta.get(j).map_or(0.0, |b| b.abs());
    let mut lo = (0..alpha.len()).map(|j| alpha[j] - radius(j)).fold(f64::INFINITY, f64::min);
    let mut hi = (0..alpha.len()).map(|j| alpha[j] + radius(j)).fold(f64::NEG_INFINITY, f64::max);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if count_below(alpha, beta, mid) > k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The smallest and largest eigenvalue of the Hermitian operator `a`, by Lanczos from the
/// start vector `start` (random, so that it overlaps every eigenvector): the recursion stops
/// when both extreme Ritz values changed by less than `tolerance` (relative to the largest)
/// over the last ten steps, or when the Krylov space is invariant; an error when neither
/// happens within `max_iterations` or the start vector is zero.
pub fn extreme_eigenvalues<A: LinearOperator>(
    a: &A,
    start: &A::Vector,
    tolerance: f64,
    max_iterations: usize,
) -> Result<SpectralBounds> {
    let norm = start.norm_sqr().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return Err(Error::Numerical("Lanczos: the start vector is zero or not finite".into()));
    }
    let mut v = start.zeroed();
    v.axpy(Complex64::new(1.0 / norm, 0.0), start);
    let mut previous = start.zeroed();
    let mut w = start.zeroed();
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut history: Vec<(f64, f64)> = Vec::new();
    for j in 1..=max_iterations {
        a.apply(&v, &mut w);
        if let Some(&b) = beta.last() {
            w.axpy(Complex64::new(-b, 0.0), &previous);
        }
        let a_j = v.re_dot(&w);
        alpha.push(a_j);
        let b_j = w.axpy_norm_sqr(Complex64::new(-a_j, 0.0), &v).sqrt();
        let bounds = (
            tridiagonal_eigenvalue(&alpha, &beta, 0),
            tridiagonal_eigenvalue(&alpha, &beta, alpha.len() - 1),
        );
        history.push(bounds);
        let scale = bounds.1.abs().max(f64::MIN_POSITIVE);
        let converged = j > 10 && {
            let (min0, max0) = history[j - 11];
            (bounds.0 - min0).abs() <= tolerance * scale && (bounds.1 - max0).abs() <= tolerance * scale
        };
        if converged || b_j <= 1e-14 * scale {
            return Ok(SpectralBounds { min: bounds.0, max: bounds.1, iterations: j });
        }
        beta.push(b_j);
        let mut next = w.zeroed();
        next.axpy(Complex64::new(1.0 / b_j, 0.0), &w);
        previous = std::mem::replace(&mut v, next);
    }
    Err(Error::Numerical(format!(
        "Lanczos: the extreme eigenvalues did not converge to {tolerance} in {max_iterations} iterations"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::testing::{Dense, Matrix, matrices, rhs};

    /// A Hermitian matrix with known eigenvalues (a diagonal one in a basis rotated by a
    /// Householder reflection): Lanczos finds the smallest and the largest.
    #[test]
    fn lanczos_finds_the_extreme_eigenvalues_of_a_known_spectrum() {
        // A = U diag(lambda) U^dagger, U = 1 - 2 u u^dagger / |u|^2
        let n = 60;
        let lambda: Vec<f64> = (0..n).map(|i| 0.05 + 3.0 * (i as f64 / (n - 1) as f64).powi(2)).collect();
        let u = rhs(n);
        let unorm = u.norm_sqr();
        let reflect = |x: &Dense| {
            let mut y = x.clone();
            y.axpy(-2.0 * u.dot(x) / unorm, &u);
            y
        };
        let columns: Vec<Dense> = (0..n)
            .map(|c| {
                let mut e = Dense(vec![Complex64::new(0.0, 0.0); n]);
                e.0[c] = Complex64::new(1.0, 0.0);
                let mut y = reflect(&e);
                y.0.iter_mut().zip(&lambda).for_each(|(z, l)| *z *= l);
                reflect(&y)
            })
            .collect();
        let a = Matrix((0..n).map(|r| (0..n).map(|c| columns[c].0[r]).collect()).collect(), 0.0);
        let start = Dense((0..n).map(|i| Complex64::new(1.0 + (i as f64 * 0.37).sin(), 0.2)).collect());
        let bounds = extreme_eigenvalues(&a, &start, 1e-10, 200).unwrap();
        assert!((bounds.min - lambda[0]).abs() < 1e-8, "{bounds:?}");
        assert!((bounds.max - lambda[n - 1]).abs() < 1e-8, "{bounds:?}");
        // without reorthogonalisation more steps than the dimension, but not many more
        assert!(bounds.iterations < 2 * n, "{bounds:?}");
        // a loose tolerance stops early, with Ritz values inside the spectrum
        let rough = extreme_eigenvalues(&a, &start, 1e-2, 200).unwrap();
        assert!(rough.iterations < bounds.iterations, "{rough:?}");
        assert!(rough.min >= lambda[0] - 1e-12 && rough.max <= lambda[n - 1] + 1e-12, "{rough:?}");
    }

    /// On a normal operator A^dagger A + 0.1 the bounds enclose every Rayleigh quotient.
    #[test]
    fn lanczos_bounds_enclose_rayleigh_quotients_and_refuse_a_zero_start() {
        let (_, normal) = matrices(40);
        let bounds = extreme_eigenvalues(&normal, &rhs(40), 1e-12, 400).unwrap();
        for k in 0..20 {
            let x = Dense(
                (0..40)
                    .map(|i| Complex64::new(((i * k) as f64).sin(), (i as f64 + k as f64).cos()))
                    .collect(),
            );
            let mut y = x.zeroed();
            normal.apply(&x, &mut y);
            let q = x.re_dot(&y) / x.norm_sqr();
            assert!(q >= bounds.min - 1e-10 && q <= bounds.max + 1e-10, "{q} outside {bounds:?}");
        }
        assert!(bounds.min >= 0.1 - 1e-12, "{bounds:?}");
        let e = extreme_eigenvalues(&normal, &rhs(40).zeroed(), 1e-8, 100).unwrap_err().to_string();
        assert!(e.contains("start vector"), "{e}");
    }

    #[test]
    fn sturm_counts_match_a_two_by_two_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3
        let (alpha, beta) = ([2.0, 2.0], [1.0]);
        assert_eq!(count_below(&alpha, &beta, 0.5), 0);
        assert_eq!(count_below(&alpha, &beta, 2.0), 1);
        assert_eq!(count_below(&alpha, &beta, 3.5), 2);
        assert!((tridiagonal_eigenvalue(&alpha, &beta, 0) - 1.0).abs() < 1e-14);
        assert!((tridiagonal_eigenvalue(&alpha, &beta, 1) - 3.0).abs() < 1e-14);
    }
}
