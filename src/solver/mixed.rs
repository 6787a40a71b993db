//! Mixed-precision CG by defect correction: the Krylov iterations run on a low-precision copy
//! of the operator (f32: half the memory traffic), and an outer loop in the high precision
//! recomputes the true residual r = b - A x, solves A e = r again in low precision and adds the
//! correction, until the high-precision residual reaches the target. The answer is as accurate
//! as a high-precision solve (the residual that stops it is computed in f64), at the cost of
//! a few restarts of the Krylov space.

use super::cg::cg_iterations;
use super::{LinearOperator, SolveReport, SolverParams, SolverVector, Start, not_converged, start};
use crate::error::Result;
use num_complex::Complex64;

/// Relative residual each low-precision solve aims for: a few digits above the f32 round-off
/// (about 1e-7), so that the recursive residual still tracks the true one.
pub const INNER_TOLERANCE: f64 = 1e-5;

/// Vectors with a low-precision counterpart.
pub trait Lower<L: SolverVector>: SolverVector {
    /// s times the vector, rounded to low precision.
    fn lower_scaled(&self, s: f64) -> L;
    /// self <- self + a l for a low-precision l (accumulated in high precision).
    fn add_lower(&mut self, a: f64, l: &L);
}

/// Solves A x = b (A Hermitian positive definite) to `params.tolerance` in the precision of
/// A, with the CG iterations on `low`, the same operator in low precision. The reported
/// iterations count every low-precision iteration plus one high-precision application per
/// correction, and the reported residual is the true high-precision one.
pub fn mixed_cg<A, L>(
    a: &A,
    low: &L,
    b: &A::Vector,
    params: &SolverParams,
) -> Result<(A::Vector, SolveReport)>
where
    A: LinearOperator,
    L: LinearOperator,
    A::Vector: Lower<L::Vector>,
{
    let (mut x, target) = match start(b, params)? {
        Start::Solved(x, report) => return Ok((x, report)),
        Start::Iterate(x, target) => (x, target),
    };
    let b_norm = b.norm_sqr().sqrt();
    let mut r = b.clone();
    let mut rr = r.norm_sqr();
    let mut iterations = 0;
    while rr > target && iterations < params.max_iterations {
        // solve A e = r / |r| in low precision: a unit right-hand side keeps f32 in range
        let r_norm = rr.sqrt();
        let mut r_low = r.lower_scaled(1.0 / r_norm);
        let mut e_low = r_low.zeroed();
        let inner_target = INNER_TOLERANCE.max(params.tolerance).powi(2);
        let run =
            cg_iterations(low, &mut e_low, &mut r_low, inner_target, params.max_iterations - iterations);
        iterations += run.iterations + 1;
        x.add_lower(r_norm, &e_low);
        a.apply(&x, &mut r);
        r.xpay(b, Complex64::new(-1.0, 0.0));
        let rr_new = r.norm_sqr();
        if rr_new.is_nan() || rr_new >= rr {
            // no progress: the low-precision operator cannot resolve the residual
            break;
        }
        rr = rr_new;
    }
    let residual = rr.sqrt() / b_norm;
    if rr <= target {
        Ok((x, SolveReport { iterations, residual }))
    } else {
        Err(not_converged("mixed-precision CG", params, iterations, residual))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Dense, matrices, rhs};
    use super::*;
    use crate::solver::true_residual;

    /// The dense test operator with every matrix entry and vector rounded to f32 after each
    /// product: a stand-in for a single-precision operator.
    struct Rounded<'a>(&'a super::super::testing::Matrix);

    fn round(v: &Dense) -> Dense {
        Dense(v.0.iter().map(|z| Complex64::new(z.re as f32 as f64, z.im as f32 as f64)).collect())
    }

    impl Lower<Dense> for Dense {
        fn lower_scaled(&self, s: f64) -> Dense {
            round(&Dense(self.0.iter().map(|z| z * s).collect()))
        }
        fn add_lower(&mut self, a: f64, l: &Dense) {
            self.axpy(Complex64::new(a, 0.0), l);
        }
    }

    impl LinearOperator for Rounded<'_> {
        type Vector = Dense;
        fn apply(&self, x: &Dense, y: &mut Dense) {
            self.0.apply(&round(x), y);
            *y = round(y);
        }
    }

    #[test]
    fn reaches_the_double_precision_tolerance() {
        let (_, normal) = matrices(40);
        let b = rhs(40);
        let params = SolverParams { tolerance: 1e-12, max_iterations: 500 };
        let (x, report) = mixed_cg(&normal, &Rounded(&normal), &b, &params).unwrap();
        assert!(report.residual <= 1e-12, "{report:?}");
        assert!((true_residual(&normal, &b, &x) - report.residual).abs() < 1e-13);
        let short = SolverParams { tolerance: 1e-12, max_iterations: 4 };
        let err = mixed_cg(&normal, &Rounded(&normal), &b, &short).unwrap_err().to_string();
        assert!(err.contains("did not converge"), "{err}");
    }
}
