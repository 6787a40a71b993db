//! Mixed-precision CG with reliable updates (Sleijpen and van der Vorst 1996; the scheme of
//! QUDA's mixed-precision CG, with the update criterion of openQCD's cgne): the Krylov
//! iterations run on an f32 copy of the operator (half the memory traffic), accumulating the
//! solution in f32. The f32 recursion for the residual tracks the true one only down to the
//! round-off of that accumulated solution, about eps_f32 |x_low|; once the recursive residual
//! is [`RELIABLE_LIMIT`] times that size (or after [`RELIABLE_MAX_ITERATIONS`] iterations
//! without an update), the accumulated solution is added to the f64 one, the true residual
//! r = b - A x is recomputed in f64 and replaces the recursive one, and CG goes on with its
//! search direction kept. The answer is as accurate as an f64 solve (the residual that stops it
//! is computed in f64), and the Krylov space is not thrown away as in a restarted defect
//! correction.

use super::{
    LinearOperator, SolveReport, SolverParams, SolverVector, Start, not_converged, start, true_residual,
};
use crate::error::Result;
use num_complex::Complex64;

/// A reliable update happens when the recursive residual has fallen to this multiple of the
/// accumulated low-precision solution's norm: 512 f32 epsilons (openQCD's PRECISION_LIMIT),
/// where the f32 round-off of that solution, amplified by the operator, starts to matter.
pub const RELIABLE_LIMIT: f64 = 512.0 * f32::EPSILON as f64;

/// A reliable update also happens after this many low-precision iterations without one
/// (openQCD's cgne restarts at the same count), which bounds the round-off the f32 recursion
/// accumulates in long solves.
pub const RELIABLE_MAX_ITERATIONS: usize = 100;

/// Vectors with a low-precision counterpart.
pub trait Lower<L: SolverVector>: SolverVector {
    /// s times the vector, rounded to low precision.
    fn lower_scaled(&self, s: f64) -> L;
    /// self <- self + a l for a low-precision l (accumulated in high precision).
    fn add_lower(&mut self, a: f64, l: &L);
}

/// a v for a solver vector.
fn scaled<V: SolverVector>(v: &V, a: f64) -> V {
    let mut out = v.zeroed();
    out.axpy(Complex64::new(a, 0.0), v);
    out
}

/// Solves A x = b (A Hermitian positive definite) to `params.tolerance` in the precision of
/// A, with the CG iterations on `low`, the same operator in low precision. The low-precision
/// vectors are kept in units of the last true residual norm, so they stay near 1 whatever
/// the tolerance. The reported iterations count every low-precision iteration plus one
/// high-precision application per reliable update; the reported residual is the true
/// high-precision one. The solve starts from the initial guess (x = 0 when `None`; a guess has
/// the shape of b).
pub fn mixed_cg<A, L>(
    a: &A,
    low: &L,
    b: &A::Vector,
    guess: Option<A::Vector>,
    params: &SolverParams,
) -> Result<(A::Vector, SolveReport)>
where
    A: LinearOperator,
    L: LinearOperator,
    A::Vector: Lower<L::Vector>,
{
    let (mut x, mut r_high, target) = match start(a, b, guess, params)? {
        Start::Solved(x, report) => return Ok((x, report)),
        Start::Iterate { x, r, target } => (x, r, target),
    };
    let b_norm_sqr = b.norm_sqr();
    // unit: the high-precision size of one low-precision unit (the last true residual norm)
    let mut unit = r_high.norm_sqr().sqrt();
    let mut r = r_high.lower_scaled(1.0 / unit);
    let mut x_low = r.zeroed();
    let mut p = r.clone();
    let mut ap = r.zeroed();
    let mut rr = r.norm_sqr();
    let mut since_update = 0;
    let mut iterations = 0;
    while iterations < params.max_iterations {
        low.apply(&p, &mut ap);
        iterations += 1;
        let pap = p.re_dot(&ap);
        if pap.is_nan() || pap <= 0.0 {
            break;
        }
        let alpha = rr / pap;
        let xx_low = x_low.axpy_norm_sqr(Complex64::new(alpha, 0.0), &p);
        let mut rr_new = r.axpy_norm_sqr(Complex64::new(-alpha, 0.0), &ap);
        since_update += 1;
        if rr_new * unit * unit <= target
            || rr_new <= RELIABLE_LIMIT * RELIABLE_LIMIT * xx_low
            || since_update == RELIABLE_MAX_ITERATIONS
        {
            // reliable update: move the low-precision solution into x and restart the
            // recursion from the true residual, in units of its norm
            x.add_lower(unit, &x_low);
            x_low = r.zeroed();
            a.apply(&x, &mut r_high);
            r_high.xpay(b, Complex64::new(-1.0, 0.0));
            iterations += 1;
            let rr_true = r_high.norm_sqr();
            if rr_true <= target {
                return Ok((x, SolveReport { iterations, residual: (rr_true / b_norm_sqr).sqrt() }));
            }
            if rr_true.is_nan() {
                break;
            }
            let new_unit = rr_true.sqrt();
            let ratio = unit / new_unit;
            r = r_high.lower_scaled(1.0 / new_unit);
            p = scaled(&p, ratio);
            rr *= ratio * ratio;
            rr_new = r.norm_sqr();
            since_update = 0;
            unit = new_unit;
        }
        p.xpay(&r, Complex64::new(rr_new / rr, 0.0));
        rr = rr_new;
    }
    x.add_lower(unit, &x_low);
    Err(not_converged("mixed-precision CG", params, iterations, true_residual(a, b, &x)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Dense, check_initial_guess, matrices, rhs};
    use super::*;

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
        let (x, report) = mixed_cg(&normal, &Rounded(&normal), &b, None, &params).unwrap();
        assert!(report.residual <= 1e-12, "{report:?}");
        assert!((true_residual(&normal, &b, &x) - report.residual).abs() < 1e-13);
        // reliable updates where the f32 round-off requires them (a few over twelve decades),
        // not one per fixed drop of the residual, and the f32 iterations as many as in f64
        let (_, f64_report) = crate::solver::cg(&normal, &b, None, &params).unwrap();
        assert!(report.iterations <= f64_report.iterations + 4, "{report:?} against f64 CG {f64_report:?}");
        let short = SolverParams { tolerance: 1e-12, max_iterations: 4 };
        let err = mixed_cg(&normal, &Rounded(&normal), &b, None, &short).unwrap_err().to_string();
        assert!(err.contains("did not converge"), "{err}");
        check_initial_guess(&normal, &b, &x, |guess, params| {
            mixed_cg(&normal, &Rounded(&normal), &b, guess, params)
        });
    }
}
