//! Fermion operators as [`LinearOperator`]s, and solves of M x = b with or without even/odd
//! preconditioning, for any [`FermionMatrix`].

use super::operator::{FermionMatrix, FermionOperator};
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::error::Result;
use crate::solver::{LinearOperator, SolveReport, SolverParams, bicgstab, cg, mixed_cg};
use crate::spinor::SpinorField;

/// Which operator the Krylov solver sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// M on full fields.
    Full,
    /// M^dagger M on full fields.
    FullNormal,
    /// The Schur operator M_hat on even sites.
    Schur,
    /// M_hat^dagger M_hat on even sites.
    SchurNormal,
}

/// A fermion operator in one of its [`Operator`] forms, in precision R.
pub struct DiracOperator<'w, G: PackedGroup, const S: usize, R: Real = f64> {
    /// The fermion operator.
    pub op: &'w dyn FermionOperator<G, S, R>,
    /// The form.
    pub form: Operator,
}

impl<G: PackedGroup, const S: usize, R: Real> LinearOperator for DiracOperator<'_, G, S, R> {
    type Vector = SpinorField<G, S, R>;
    fn apply(&self, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let even_odd = matches!(self.form, Operator::Schur | Operator::SchurNormal);
        match self.form {
            Operator::Full | Operator::Schur => self.op.apply_as(even_odd, false, x, y),
            Operator::FullNormal | Operator::SchurNormal => self.op.apply_normal(even_odd, x, y),
        }
    }
}

/// Krylov method for M x = b.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// CG on the normal equations M^dagger M x = M^dagger b (the reported residual is that of
    /// the normal equations).
    Cg,
    /// BiCGStab on M x = b.
    Bicgstab,
    /// CG on the normal equations with f32 iterations and f64 reliable updates
    /// ([`crate::solver::mixed_cg`]); the residual is that of the normal equations, in f64.
    #[serde(rename = "mixed-cg")]
    MixedCg,
}

/// Solves M x = b (full fields) from the initial guess (x = 0 when `None`). With `even_odd`
/// the Schur system M_hat x_e = b_e - M_eo M_oo^{-1} b_o is solved from the guess's even half
/// and x_o = M_oo^{-1} (b_o - M_oe x_e) reconstructed.
pub fn solve<G: PackedGroup, const S: usize>(
    w: &impl FermionMatrix<G, S>,
    b: &SpinorField<G, S>,
    guess: Option<&SpinorField<G, S>>,
    method: Method,
    even_odd: bool,
    params: &SolverParams,
) -> Result<(SpinorField<G, S>, SolveReport)> {
    let (rhs, plain, normal) = if even_odd {
        (w.schur_source(b), Operator::Schur, Operator::SchurNormal)
    } else {
        (b.clone(), Operator::Full, Operator::FullNormal)
    };
    let guess = guess.map(|x| if even_odd { x.half_of(0) } else { x.clone() });
    let (x, report) = match method {
        Method::Bicgstab => bicgstab(&DiracOperator { op: w, form: plain }, &rhs, guess, params)?,
        Method::Cg | Method::MixedCg => {
            let mut mdag_b = rhs.zeros_like();
            w.apply_as(even_odd, true, &rhs, &mut mdag_b);
            normal_solve(w, normal, &mdag_b, guess, method == Method::MixedCg, params)?
        }
    };
    Ok((if even_odd { w.schur_reconstruct(b, &x) } else { x }, report))
}

/// Solves the normal equations A x = b, A = M^dagger M or M_hat^dagger M_hat (`form`), by CG
/// in f64 or, with `mixed`, by mixed-precision CG on the f32 copy of the operator, from the
/// initial guess (x = 0 when `None`).
pub fn normal_solve<G: PackedGroup, const S: usize>(
    w: &impl FermionMatrix<G, S>,
    form: Operator,
    b: &SpinorField<G, S>,
    guess: Option<SpinorField<G, S>>,
    mixed: bool,
    params: &SolverParams,
) -> Result<(SpinorField<G, S>, SolveReport)> {
    let a = DiracOperator { op: w, form };
    if mixed {
        let single = w.single();
        mixed_cg(&a, &DiracOperator { op: &single, form }, b, guess, params)
    } else {
        cg(&a, b, guess, params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkerboard::Checkerboard;
    use crate::dirac::{Boundary, WilsonOperator};
    use crate::field::GaugeField;
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use crate::rng::Purpose;
    use crate::solver::true_residual;
    use std::sync::Arc;

    fn check<G: PackedGroup, const S: usize>(dims: &[usize], kappa: f64) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 8);
        let cb = Checkerboard::new(lat).unwrap();
        let w = WilsonOperator::<G, S>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap();
        let b = SpinorField::<G, S>::gaussian_full(&cb, 5, Purpose::Test, 0);
        let params = SolverParams { tolerance: 1e-11, max_iterations: 5000 };
        let full = DiracOperator { op: &w, form: Operator::Full };
        let mut solutions = Vec::new();
        for method in [Method::Cg, Method::Bicgstab, Method::MixedCg] {
            for even_odd in [false, true] {
                let (x, report) = solve(&w, &b, None, method, even_odd, &params).unwrap();
                assert!(report.residual <= 1e-11, "{method:?} e/o {even_odd}");
                assert!(true_residual(&full, &b, &x) < 1e-8, "{method:?} e/o {even_odd}");
                solutions.push(x);
            }
        }
        for x in &solutions[1..] {
            let mut d = x.clone();
            d.axpy(num_complex::Complex64::new(-1.0, 0.0), &solutions[0]);
            assert!((d.norm_sqr() / x.norm_sqr()).sqrt() < 1e-8);
        }
    }

    /// Solves without even/odd preconditioning in the natural layout (lanes of mixed parity):
    /// every method reaches its residual and they agree.
    fn check_natural<G: PackedGroup, const S: usize>(dims: &[usize], kappa: f64) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 8);
        let cb = Checkerboard::natural(lat).unwrap();
        let w = WilsonOperator::<G, S>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap();
        let b = SpinorField::<G, S>::gaussian_full(&cb, 5, Purpose::Test, 0);
        let params = SolverParams { tolerance: 1e-11, max_iterations: 5000 };
        let full = DiracOperator { op: &w, form: Operator::Full };
        let solutions: Vec<SpinorField<G, S>> = [Method::Cg, Method::Bicgstab, Method::MixedCg]
            .into_iter()
            .map(|method| {
                let (x, report) = solve(&w, &b, None, method, false, &params).unwrap();
                assert!(report.residual <= 1e-11 && report.iterations > 0, "{dims:?} {method:?}");
                assert!(true_residual(&full, &b, &x) < 1e-8, "{dims:?} {method:?}");
                x
            })
            .collect();
        for x in &solutions[1..] {
            let mut d = x.clone();
            d.axpy(num_complex::Complex64::new(-1.0, 0.0), &solutions[0]);
            assert!((d.norm_sqr() / x.norm_sqr()).sqrt() < 1e-8);
        }
    }

    #[test]
    fn solves_in_the_natural_layout() {
        check_natural::<U1, 2>(&[6, 6], 0.24);
        check_natural::<U1, 2>(&[2, 2], 0.24);
        check_natural::<Su3, 4>(&[2, 2, 2, 6], 0.12);
    }

    #[test]
    fn even_odd_solves_equal_full_solves() {
        check::<U1, 2>(&[8, 8], 0.24);
        check::<Su3, 4>(&[4, 4, 4, 4], 0.12);
    }
}
