//! Conjugate gradient for Hermitian positive definite operators.

use super::{
    LinearOperator, SolveReport, SolverParams, SolverVector, Start, not_converged, start, true_residual,
};
use crate::error::Result;
use num_complex::Complex64;

/// Solves A x = b by conjugate gradients (A Hermitian positive definite), starting from the
/// initial guess (x = 0 when `None`; a guess has the shape of b). When the recursive residual reaches the tolerance, the true residual is recomputed; if it
/// has drifted above the tolerance the recursion restarts from it.
pub fn cg<A: LinearOperator>(
    a: &A,
    b: &A::Vector,
    guess: Option<A::Vector>,
    params: &SolverParams,
) -> Result<(A::Vector, SolveReport)> {
    let (mut x, mut r, target) = match start(a, b, guess, params)? {
        Start::Solved(x, report) => return Ok((x, report)),
        Start::Iterate { x, r, target } => (x, r, target),
    };
    let mut iterations = 0;
    while iterations < params.max_iterations {
        let run = cg_iterations(a, &mut x, &mut r, target, params.max_iterations - iterations);
        iterations += run.iterations;
        if !run.reached {
            break;
        }
        let residual = true_residual(a, b, &x);
        if residual <= params.tolerance {
            return Ok((x, SolveReport { iterations, residual }));
        }
        // restart from the true residual
        a.apply(&x, &mut r);
        r.xpay(b, Complex64::new(-1.0, 0.0));
    }
    Err(not_converged("CG", params, iterations, true_residual(a, b, &x)))
}

/// How a run of [`cg_iterations`] ended.
pub(crate) struct CgRun {
    /// Operator applications made.
    pub iterations: usize,
    /// Whether the recursive residual reached the target (false: iteration limit, or a
    /// breakdown from an operator that is not positive definite or a NaN).
    pub reached: bool,
}

/// CG iterations on A x = b from the current x and its residual r = b - A x, updating both,
/// until the recursive |r|^2 reaches `target` or `max_iterations` have been made.
pub(crate) fn cg_iterations<A: LinearOperator>(
    a: &A,
    x: &mut A::Vector,
    r: &mut A::Vector,
    target: f64,
    max_iterations: usize,
) -> CgRun {
    let mut rr = r.norm_sqr();
    if rr <= target {
        return CgRun { iterations: 0, reached: true };
    }
    let mut p = r.clone();
    let mut ap = r.zeroed();
    for iterations in 1..=max_iterations {
        a.apply(&p, &mut ap);
        let pap = p.re_dot(&ap);
        if pap.is_nan() || pap <= 0.0 {
            // not positive definite (or NaN in the field): the caller reports the failure
            return CgRun { iterations, reached: false };
        }
        let alpha = rr / pap;
        x.axpy(Complex64::new(alpha, 0.0), &p);
        let rr_new = r.axpy_norm_sqr(Complex64::new(-alpha, 0.0), &ap);
        if rr_new <= target {
            return CgRun { iterations, reached: true };
        }
        p.xpay(r, Complex64::new(rr_new / rr, 0.0));
        rr = rr_new;
    }
    CgRun { iterations: max_iterations, reached: false }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_initial_guess, matrices, rhs};
    use super::*;

    #[test]
    fn converges_to_the_tolerance_and_reports_failure() {
        let (_, normal) = matrices(40);
        let b = rhs(40);
        let params = SolverParams { tolerance: 1e-12, max_iterations: 200 };
        let (x, report) = cg(&normal, &b, None, &params).unwrap();
        assert!(report.residual <= 1e-12 && report.iterations > 1);
        assert!((true_residual(&normal, &b, &x) - report.residual).abs() < 1e-15);
        let short = SolverParams { tolerance: 1e-12, max_iterations: 3 };
        let err = cg(&normal, &b, None, &short).unwrap_err().to_string();
        assert!(err.contains("did not converge") && err.contains("3 iterations"), "{err}");
        assert!(cg(&normal, &b, None, &SolverParams { tolerance: 0.0, max_iterations: 5 }).is_err());
        check_initial_guess(&normal, &b, &x, |guess, params| cg(&normal, &b, guess, params));
    }
}
