//! Multi-shift conjugate gradient (Jegerlehner, hep-lat/9612014): solves (A + sigma_i) x_i = b
//! for all shifts with the Krylov space of the smallest one, at the cost of one CG solve plus a
//! vector update per shift and iteration.

use super::{LinearOperator, SolveReport, SolverParams, SolverVector, check_params, not_converged};
use crate::error::{Error, Result};
use num_complex::Complex64;

/// A + sigma for a Hermitian positive operator A.
struct Shifted<'a, A> {
    a: &'a A,
    sigma: f64,
}

impl<A: LinearOperator> LinearOperator for Shifted<'_, A> {
    type Vector = A::Vector;
    fn apply(&self, x: &A::Vector, y: &mut A::Vector) {
        self.a.apply(x, y);
        y.axpy(Complex64::new(self.sigma, 0.0), x);
    }
}

/// Solves (A + sigma_i) x_i = b for shifts sigma_i >= 0 (A Hermitian positive definite),
/// starting from x_i = 0. The residual of shift i is zeta_i times the residual of the smallest
/// shift; a shifted system stops being updated once it reaches the tolerance, iteration stops
/// when every shift has, and each true residual is then recomputed and reported (an error if
/// any exceeds the tolerance).
pub fn multishift_cg<A: LinearOperator>(
    a: &A,
    shifts: &[f64],
    b: &A::Vector,
    params: &SolverParams,
) -> Result<(Vec<A::Vector>, Vec<SolveReport>)> {
    check_params(params)?;
    if shifts.is_empty() || shifts.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        return Err(Error::Config(format!(
            "multi-shift CG shifts {shifts:?}: need at least one, all finite and >= 0"
        )));
    }
    let n = shifts.len();
    let base = (0..n).min_by(|&i, &j| shifts[i].total_cmp(&shifts[j])).expect("a shift");
    let sigma0 = shifts[base];
    let op = Shifted { a, sigma: sigma0 };
    let b_norm = b.norm_sqr();
    let mut xs: Vec<A::Vector> = vec![b.zeroed(); n];
    let target = params.tolerance * params.tolerance * b_norm;
    let mut r = b.clone();
    let mut ps: Vec<A::Vector> = vec![b.clone(); n];
    let mut w = b.zeroed();
    let (mut zeta, mut zeta_prev) = (vec![1.0f64; n], vec![1.0f64; n]);
    let (mut alpha_prev, mut beta_prev) = (1.0f64, 0.0f64);
    let mut rr = r.norm_sqr();
    let mut iterations = 0;
    let done = |zeta: &[f64], rr: f64| zeta.iter().all(|z| z * z * rr <= target);
    while b_norm > 0.0 && !done(&zeta, rr) && iterations < params.max_iterations {
        op.apply(&ps[base], &mut w);
        iterations += 1;
        let alpha = rr / ps[base].dot(&w).re;
        // a shifted system that reached the tolerance is left as it is: its zeta keeps falling
        // and would underflow to 0 / 0 in the updates below
        let active: Vec<bool> = (0..n).map(|s| s == base || zeta[s] * zeta[s] * rr > target).collect();
        let mut zeta_next = zeta.clone();
        for s in (0..n).filter(|&s| active[s]) {
            let step = if s == base {
                alpha
            } else {
                let ds = shifts[s] - sigma0;
                zeta_next[s] = zeta[s] * zeta_prev[s] * alpha_prev
                    / (alpha * beta_prev * (zeta_prev[s] - zeta[s])
                        + zeta_prev[s] * alpha_prev * (1.0 + ds * alpha));
                alpha * zeta_next[s] / zeta[s]
            };
            xs[s].axpy(Complex64::new(step, 0.0), &ps[s]);
        }
        r.axpy(Complex64::new(-alpha, 0.0), &w);
        let rr_new = r.norm_sqr();
        let beta = rr_new / rr;
        for s in (0..n).filter(|&s| active[s]) {
            if s == base {
                ps[s].xpay(&r, Complex64::new(beta, 0.0));
            } else {
                // p_s = zeta_next r + beta_s p_s with beta_s = beta (zeta_next / zeta)^2
                let ratio = zeta_next[s] / zeta[s];
                ps[s].xpay(&r, Complex64::new(beta * ratio * ratio, 0.0));
                ps[s].axpy(Complex64::new(zeta_next[s] - 1.0, 0.0), &r);
            }
        }
        for s in (0..n).filter(|&s| s != base && active[s]) {
            zeta_prev[s] = zeta[s];
            zeta[s] = zeta_next[s];
        }
        alpha_prev = alpha;
        beta_prev = beta;
        rr = rr_new;
    }
    let mut reports = Vec::with_capacity(n);
    for (s, x) in xs.iter().enumerate() {
        let residual =
            if b_norm > 0.0 { super::true_residual(&Shifted { a, sigma: shifts[s] }, b, x) } else { 0.0 };
        if residual.is_nan() || residual > params.tolerance {
            return Err(not_converged(
                &format!("multi-shift CG (shift {})", shifts[s]),
                params,
                iterations,
                residual,
            ));
        }
        reports.push(SolveReport { iterations, residual });
    }
    Ok((xs, reports))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{matrices, rhs};
    use super::super::{cg, true_residual};
    use super::*;

    #[test]
    fn shifted_solutions_equal_separate_solves() {
        let (_, normal) = matrices(30);
        let b = rhs(30);
        let params = SolverParams { tolerance: 1e-11, max_iterations: 300 };
        let shifts = [0.5, 0.0, 2.0, 0.01];
        let (xs, reports) = multishift_cg(&normal, &shifts, &b, &params).unwrap();
        for (s, &sigma) in shifts.iter().enumerate() {
            let shifted = Shifted { a: &normal, sigma };
            let (x, _) = cg(&shifted, &b, None, &params).unwrap();
            let mut diff = x.clone();
            diff.axpy(Complex64::new(-1.0, 0.0), &xs[s]);
            assert!((diff.norm_sqr() / x.norm_sqr()).sqrt() < 1e-9, "shift {sigma}");
            assert!(reports[s].residual <= 1e-11);
            assert!((true_residual(&shifted, &b, &xs[s]) - reports[s].residual).abs() < 1e-15);
        }
        assert!(multishift_cg(&normal, &[-1.0], &b, &params).is_err());
        // shifts 1e18 apart: the large one converges at once and its zeta would underflow
        // while the smallest still iterates (as in rational HMC on a wide range)
        let wide = [1e-3, 1e15];
        let tight = SolverParams { tolerance: 1e-13, max_iterations: 300 };
        let (xs, reports) = multishift_cg(&normal, &wide, &b, &tight).unwrap();
        for (s, &sigma) in wide.iter().enumerate() {
            assert!(
                reports[s].residual <= 1e-13 && xs[s].norm_sqr().is_finite(),
                "shift {sigma}: {reports:?}"
            );
        }
        assert!(
            multishift_cg(&normal, &[0.0, 1.0], &b, &SolverParams { tolerance: 1e-11, max_iterations: 2 })
                .is_err()
        );
    }
}
