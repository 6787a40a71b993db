//! BiCGStab (van der Vorst) for general, non-Hermitian operators such as M itself.

use super::{
    LinearOperator, SolveReport, SolverParams, SolverVector, check_params, not_converged, true_residual,
};
use crate::error::Result;
use num_complex::Complex64;

/// Solves A x = b by BiCGStab starting from x = 0, with the shadow residual r0 = b. A
/// breakdown (rho or <r0, v> vanishing) restarts the recursion from the true residual.
pub fn bicgstab<A: LinearOperator>(
    a: &A,
    b: &A::Vector,
    params: &SolverParams,
) -> Result<(A::Vector, SolveReport)> {
    check_params(params)?;
    let b_norm = b.norm_sqr();
    let mut x = b.zeroed();
    if b_norm == 0.0 {
        return Ok((x, SolveReport { iterations: 0, residual: 0.0 }));
    }
    let target = params.tolerance * params.tolerance * b_norm;
    let one = Complex64::new(1.0, 0.0);
    let mut r = b.clone();
    let mut r0 = r.clone();
    let (mut p, mut v, mut t) = (b.zeroed(), b.zeroed(), b.zeroed());
    let (mut rho, mut alpha, mut omega) = (one, one, one);
    let mut iterations = 0;
    while iterations < params.max_iterations {
        let rho_new = r0.dot(&r);
        if rho_new.norm() < 1e-300 || omega.norm() < 1e-300 {
            // breakdown: restart from the true residual
            a.apply(&x, &mut r);
            r.xpay(b, Complex64::new(-1.0, 0.0));
            r0 = r.clone();
            p = b.zeroed();
            v = b.zeroed();
            (rho, alpha, omega) = (one, one, one);
            iterations += 1;
            continue;
        }
        let beta = (rho_new / rho) * (alpha / omega);
        // p = r + beta (p - omega v)
        p.axpy(-omega, &v);
        p.xpay(&r, beta);
        a.apply(&p, &mut v);
        alpha = rho_new / r0.dot(&v);
        // s = r - alpha v (kept in r)
        r.axpy(-alpha, &v);
        a.apply(&r, &mut t);
        iterations += 1;
        let tt = t.norm_sqr();
        omega = if tt > 0.0 { t.dot(&r) / tt } else { Complex64::new(0.0, 0.0) };
        x.axpy(alpha, &p);
        x.axpy(omega, &r);
        r.axpy(-omega, &t);
        rho = rho_new;
        if r.norm_sqr() <= target {
            let residual = true_residual(a, b, &x);
            if residual <= params.tolerance {
                return Ok((x, SolveReport { iterations, residual }));
            }
            a.apply(&x, &mut r);
            r.xpay(b, Complex64::new(-1.0, 0.0));
            r0 = r.clone();
            p = b.zeroed();
            v = b.zeroed();
            (rho, alpha, omega) = (one, one, one);
        }
    }
    Err(not_converged("BiCGStab", params, iterations, true_residual(a, b, &x)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{matrices, rhs};
    use super::*;

    #[test]
    fn solves_a_non_hermitian_system() {
        let (a, _) = matrices(40);
        let b = rhs(40);
        let params = SolverParams { tolerance: 1e-12, max_iterations: 200 };
        let (x, report) = bicgstab(&a, &b, &params).unwrap();
        assert!(report.residual <= 1e-12);
        assert!((true_residual(&a, &b, &x) - report.residual).abs() < 1e-15);
        assert!(bicgstab(&a, &b, &SolverParams { tolerance: 1e-12, max_iterations: 2 }).is_err());
    }
}
