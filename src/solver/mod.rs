//! Krylov solvers behind one [`LinearOperator`] trait: conjugate gradient (Hermitian positive
//! definite operators, e.g. the normal equations M^dagger M), BiCGStab (general operators) and
//! multi-shift CG ((A + sigma_i) x_i = b for several sigma_i at the cost of one solve); and
//! the Lanczos recursion for the extreme eigenvalues of a Hermitian operator.
//!
//! Residuals are relative, |b - A x| / |b|, for the system the solver is given. Every solve
//! recomputes the true residual from x at the end and reports it with the iteration count;
//! a solve that does not reach the tolerance within the iteration limit is an error naming
//! both, never a silently inaccurate answer.

pub mod bicgstab;
pub mod cg;
pub mod lanczos;
pub mod mixed;
pub mod multishift;

use crate::error::{Error, Result};
use num_complex::Complex64;

pub use bicgstab::bicgstab;
pub use cg::cg;
pub use lanczos::{SpectralBounds, extreme_eigenvalues};
pub use mixed::{Lower, mixed_cg};
pub use multishift::multishift_cg;

/// Vectors the solvers work on (fermion fields).
pub trait SolverVector: Clone + Send + Sync {
    /// <self, x> = sum conj(self) x.
    fn dot(&self, x: &Self) -> Complex64;
    /// |self|^2.
    fn norm_sqr(&self) -> f64;
    /// Re <self, x> (only the real part, which CG needs).
    fn re_dot(&self, x: &Self) -> f64 {
        self.dot(x).re
    }
    /// self <- self + a x, returning the new |self|^2 (one pass where the vector can fuse it).
    fn axpy_norm_sqr(&mut self, a: Complex64, x: &Self) -> f64 {
        self.axpy(a, x);
        self.norm_sqr()
    }
    /// self <- self + a x.
    fn axpy(&mut self, a: Complex64, x: &Self);
    /// self <- x + a self.
    fn xpay(&mut self, x: &Self, a: Complex64);
    /// A zero vector of the same shape.
    fn zeroed(&self) -> Self;
    /// Number of entries (packed spinors for fermion fields): vectors of one system agree.
    fn entries(&self) -> usize;
}

/// A linear operator y = A x.
pub trait LinearOperator: Sync {
    /// The vectors it acts on.
    type Vector: SolverVector;
    /// y = A x (y is overwritten).
    fn apply(&self, x: &Self::Vector, y: &mut Self::Vector);
}

/// Stopping rule of a solve.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SolverParams {
    /// Target relative residual |b - A x| / |b|.
    pub tolerance: f64,
    /// Most iterations before the solve fails.
    pub max_iterations: usize,
}

/// What a successful solve reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SolveReport {
    /// Iterations (operator applications of the Krylov recursion).
    pub iterations: usize,
    /// The true final relative residual |b - A x| / |b|, recomputed from x.
    pub residual: f64,
}

/// |b - A x| / |b|, computed from scratch.
pub fn true_residual<A: LinearOperator>(a: &A, b: &A::Vector, x: &A::Vector) -> f64 {
    let mut r = x.zeroed();
    a.apply(x, &mut r);
    r.xpay(b, Complex64::new(-1.0, 0.0));
    (r.norm_sqr() / b.norm_sqr()).sqrt()
}

/// The error of a solve that stopped short of its tolerance.
fn not_converged(method: &str, params: &SolverParams, iterations: usize, residual: f64) -> Error {
    Error::Numerical(format!(
        "{method} did not converge: relative residual {residual:.3e} after {iterations} iterations \
         (tolerance {:.1e}, max_iterations {})",
        params.tolerance, params.max_iterations
    ))
}

/// How a solve begins.
enum Start<V> {
    /// b = 0 (x = 0 is the exact answer), or a guess that meets the tolerance.
    Solved(V, SolveReport),
    /// The start vector x, its residual r = b - A x and the target |r|^2 = tolerance^2 |b|^2.
    Iterate { x: V, r: V, target: f64 },
}

/// Checks the parameters and the guess and sets up a solve of A x = b from the initial guess
/// (x = 0 when `None`, whose residual is b itself with no operator application); a guess whose
/// residual already meets the tolerance is the answer.
fn start<A: LinearOperator>(
    a: &A,
    b: &A::Vector,
    guess: Option<A::Vector>,
    params: &SolverParams,
) -> Result<Start<A::Vector>> {
    check_params(params)?;
    if let Some(x) = &guess
        && x.entries() != b.entries()
    {
        return Err(Error::Config(format!(
            "initial guess of {} components for a right-hand side of {}",
            x.entries(),
            b.entries()
        )));
    }
    let b_norm = b.norm_sqr();
    if b_norm == 0.0 {
        return Ok(Start::Solved(b.zeroed(), SolveReport { iterations: 0, residual: 0.0 }));
    }
    let target = params.tolerance * params.tolerance * b_norm;
    Ok(match guess {
        None => Start::Iterate { x: b.zeroed(), r: b.clone(), target },
        Some(x) => {
            let mut r = x.zeroed();
            a.apply(&x, &mut r);
            r.xpay(b, Complex64::new(-1.0, 0.0));
            let rr = r.norm_sqr();
            if rr <= target {
                Start::Solved(x, SolveReport { iterations: 0, residual: (rr / b_norm).sqrt() })
            } else {
                Start::Iterate { x, r, target }
            }
        }
    })
}

/// Rejects parameters no solve can honour.
fn check_params(params: &SolverParams) -> Result<()> {
    if !(params.tolerance > 0.0 && params.tolerance < 1.0) || params.max_iterations == 0 {
        return Err(Error::Config(format!(
            "solver tolerance {} and max_iterations {}: need 0 < tolerance < 1 and max_iterations > 0",
            params.tolerance, params.max_iterations
        )));
    }
    Ok(())
}

impl<G: crate::backend::cpu::PackedGroup, const S: usize, R: crate::backend::cpu::packed::Real> SolverVector
    for crate::spinor::SpinorField<G, S, R>
{
    fn dot(&self, x: &Self) -> Complex64 {
        crate::spinor::SpinorField::dot(self, x)
    }
    fn norm_sqr(&self) -> f64 {
        crate::spinor::SpinorField::norm_sqr(self)
    }
    fn re_dot(&self, x: &Self) -> f64 {
        crate::spinor::SpinorField::re_dot(self, x)
    }
    fn axpy_norm_sqr(&mut self, a: Complex64, x: &Self) -> f64 {
        crate::spinor::SpinorField::axpy_norm_sqr(self, a, x)
    }
    fn axpy(&mut self, a: Complex64, x: &Self) {
        crate::spinor::SpinorField::axpy(self, a, x)
    }
    fn xpay(&mut self, x: &Self, a: Complex64) {
        crate::spinor::SpinorField::xpay(self, x, a)
    }
    fn zeroed(&self) -> Self {
        self.zeros_like()
    }
    fn entries(&self) -> usize {
        self.len()
    }
}

impl<G: crate::backend::cpu::PackedGroup, const S: usize> Lower<crate::spinor::SpinorField<G, S, f32>>
    for crate::spinor::SpinorField<G, S>
{
    fn lower_scaled(&self, s: f64) -> crate::spinor::SpinorField<G, S, f32> {
        let mut low = self.convert();
        low.scale(Complex64::new(s, 0.0));
        low
    }
    fn add_lower(&mut self, a: f64, l: &crate::spinor::SpinorField<G, S, f32>) {
        self.axpy(Complex64::new(a, 0.0), &l.convert());
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small dense operator for solver tests.
    use super::*;

    /// A dense complex vector.
    #[derive(Clone, Debug)]
    pub struct Dense(pub Vec<Complex64>);

    impl SolverVector for Dense {
        fn dot(&self, x: &Self) -> Complex64 {
            self.0.iter().zip(&x.0).map(|(a, b)| a.conj() * b).sum()
        }
        fn norm_sqr(&self) -> f64 {
            self.0.iter().map(|a| a.norm_sqr()).sum()
        }
        fn axpy(&mut self, a: Complex64, x: &Self) {
            self.0.iter_mut().zip(&x.0).for_each(|(y, x)| *y += a * x);
        }
        fn xpay(&mut self, x: &Self, a: Complex64) {
            self.0.iter_mut().zip(&x.0).for_each(|(y, x)| *y = x + a * *y);
        }
        fn zeroed(&self) -> Self {
            Dense(vec![Complex64::new(0.0, 0.0); self.0.len()])
        }
        fn entries(&self) -> usize {
            self.0.len()
        }
    }

    /// A dense matrix operator plus a real shift.
    pub struct Matrix(pub Vec<Vec<Complex64>>, pub f64);

    impl LinearOperator for Matrix {
        type Vector = Dense;
        fn apply(&self, x: &Dense, y: &mut Dense) {
            for (yi, row) in y.0.iter_mut().zip(&self.0) {
                *yi = row.iter().zip(&x.0).map(|(a, b)| a * b).sum();
            }
            y.axpy(Complex64::new(self.1, 0.0), x);
        }
    }

    /// A random-ish non-Hermitian n x n matrix (diagonally dominant) and A^dagger A + 0.1.
    pub fn matrices(n: usize) -> (Matrix, Matrix) {
        let a: Vec<Vec<Complex64>> = (0..n)
            .map(|r| {
                (0..n)
                    .map(|c| {
                        let z =
                            Complex64::new(((r * 7 + c * 3) as f64).sin(), ((r + 5 * c) as f64).cos()) * 0.3;
                        if r == c { z + 2.0 } else { z / (1.0 + (r as f64 - c as f64).abs()) }
                    })
                    .collect()
            })
            .collect();
        let normal: Vec<Vec<Complex64>> = (0..n)
            .map(|r| (0..n).map(|c| (0..n).map(|k| a[k][r].conj() * a[k][c]).sum()).collect())
            .collect();
        (Matrix(a, 0.0), Matrix(normal, 0.1))
    }

    /// Checks a solver's initial guess on A x = b, `x` its solution from zero: the solution
    /// as guess costs no iteration, a guess near it fewer than from zero, any guess ends at the
    /// tolerance, and a guess of another shape is refused.
    pub fn check_initial_guess<A: LinearOperator<Vector = Dense>>(
        a: &A,
        b: &Dense,
        x: &Dense,
        solve: impl Fn(Option<Dense>, &SolverParams) -> Result<(Dense, SolveReport)>,
    ) {
        let params = SolverParams { tolerance: 1e-10, max_iterations: 500 };
        let (_, from_zero) = solve(None, &params).unwrap();
        let (_, from_solution) = solve(Some(x.clone()), &params).unwrap();
        assert_eq!(from_solution.iterations, 0, "{from_solution:?}");
        let mut near = x.clone();
        near.axpy(Complex64::new(1e-6, 0.0), b);
        let mut far = b.clone();
        far.axpy(Complex64::new(3.0, -1.0), x);
        for (label, guess) in [("near", near), ("far", far)] {
            let (y, report) = solve(Some(guess), &params).unwrap();
            assert!(report.residual <= 1e-10 && true_residual(a, b, &y) <= 1e-10, "{label}: {report:?}");
            if label == "near" {
                assert!(report.iterations < from_zero.iterations, "{report:?} vs {from_zero:?}");
            }
        }
        let short = Dense(vec![Complex64::new(1.0, 0.0); b.0.len() - 1]);
        let e = solve(Some(short), &params).unwrap_err().to_string();
        assert!(e.contains("initial guess"), "{e}");
    }

    /// A right-hand side.
    pub fn rhs(n: usize) -> Dense {
        Dense((0..n).map(|i| Complex64::new((i as f64 * 0.7).cos(), (i as f64 * 1.3).sin())).collect())
    }
}
