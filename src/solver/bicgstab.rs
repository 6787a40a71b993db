//! BiCGStab (van der Vorst) for general, non-Hermitian operators such as M itself.

use super::{
    LinearOperator, SolveReport, SolverParams, SolverVector, Start, not_converged, start, true_residual,
};
use crate::error::Result;
use num_complex::Complex64;

/// The recursion state: residual r, shadow residual r0, search direction p, v = A p and the
/// scalars rho, alpha, omega.
struct State<V> {
    r: V,
    r0: V,
    p: V,
    v: V,
    rho: Complex64,
    alpha: Complex64,
    omega: Complex64,
}

impl<V: SolverVector> State<V> {
    /// A fresh recursion from the residual r = b - A x, with r0 = r.
    fn from_residual(r: V) -> Self {
        let one = Complex64::new(1.0, 0.0);
        State { r0: r.clone(), p: r.zeroed(), v: r.zeroed(), r, rho: one, alpha: one, omega: one }
    }

    /// A fresh recursion from the true residual of x.
    fn restart<A: LinearOperator<Vector = V>>(a: &A, b: &V, x: &V) -> Self {
        let mut r = x.zeroed();
        a.apply(x, &mut r);
        r.xpay(b, Complex64::new(-1.0, 0.0));
        Self::from_residual(r)
    }
}

/// Solves A x = b by BiCGStab starting from the initial guess (x = 0 when `None`; a guess has
/// the shape of b), with the shadow residual r0 = b - A x. A
/// breakdown (rho or omega vanishing) restarts the recursion from the true residual, and so
/// does a recursive residual below the tolerance whose true residual is not.
pub fn bicgstab<A: LinearOperator>(
    a: &A,
    b: &A::Vector,
    guess: Option<A::Vector>,
    params: &SolverParams,
) -> Result<(A::Vector, SolveReport)> {
    let (mut x, r, target) = match start(a, b, guess, params)? {
        Start::Solved(x, report) => return Ok((x, report)),
        Start::Iterate { x, r, target } => (x, r, target),
    };
    let mut s = State::from_residual(r);
    let mut t = b.zeroed();
    let mut iterations = 0;
    while iterations < params.max_iterations {
        let rho_new = s.r0.dot(&s.r);
        iterations += 1;
        if rho_new.norm() < 1e-300 || s.omega.norm() < 1e-300 {
            s = State::restart(a, b, &x);
            continue;
        }
        let beta = (rho_new / s.rho) * (s.alpha / s.omega);
        // p = r + beta (p - omega v)
        s.p.axpy(-s.omega, &s.v);
        s.p.xpay(&s.r, beta);
        a.apply(&s.p, &mut s.v);
        s.alpha = rho_new / s.r0.dot(&s.v);
        // s = r - alpha v (kept in r)
        s.r.axpy(-s.alpha, &s.v);
        a.apply(&s.r, &mut t);
        let tt = t.norm_sqr();
        s.omega = if tt > 0.0 { t.dot(&s.r) / tt } else { Complex64::new(0.0, 0.0) };
        x.axpy(s.alpha, &s.p);
        x.axpy(s.omega, &s.r);
        s.r.axpy(-s.omega, &t);
        s.rho = rho_new;
        if s.r.norm_sqr() <= target {
            let residual = true_residual(a, b, &x);
            if residual <= params.tolerance {
                return Ok((x, SolveReport { iterations, residual }));
            }
            s = State::restart(a, b, &x);
        }
    }
    Err(not_converged("BiCGStab", params, iterations, true_residual(a, b, &x)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_initial_guess, matrices, rhs};
    use super::*;

    #[test]
    fn solves_a_non_hermitian_system() {
        let (a, _) = matrices(40);
        let b = rhs(40);
        let params = SolverParams { tolerance: 1e-12, max_iterations: 200 };
        let (x, report) = bicgstab(&a, &b, None, &params).unwrap();
        assert!(report.residual <= 1e-12);
        assert!((true_residual(&a, &b, &x) - report.residual).abs() < 1e-15);
        assert!(bicgstab(&a, &b, None, &SolverParams { tolerance: 1e-12, max_iterations: 2 }).is_err());
        check_initial_guess(&a, &b, &x, |guess, params| bicgstab(&a, &b, guess, params));
    }
}
