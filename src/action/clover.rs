//! The determinant of the clover term's odd-site blocks, the monomial that even/odd
//! preconditioned clover fermions need besides their pseudofermions.
//!
//! With M = [[A_ee, M_eo], [M_oe, A_oo]] ([`crate::dirac::clover`]) det M = det A_oo det M_hat,
//! and the pseudofermion terms of the Schur operator M_hat carry |det M_hat|^{2} (a doublet,
//! Hasenbusch chains included: their product telescopes to the light M_hat). The rest of the
//! weight |det M|^{n_f} is det(A_oo)^{n_f} (A is Hermitian and positive for fields near
//! unit links), the action
//!   S_det = -n_f sum_{x odd} ln det A(x),
//! openQCD's "small determinant" (its sdet action terms, up to a constant). Its force is
//! F = n_f d/dw ln det A_oo = n_f sum_x tr(A(x)^{-1} dC(x)) at the light quark's kappa.

use super::Monomial;
use crate::backend::cpu::PackedGroup;
use crate::dirac::{Clover, Discretization};
use crate::error::Result;
use crate::field::{GaugeField, MomentumField};

/// S_det = -n_f ln det A_oo of clover fermions at hopping parameter kappa (module docs).
#[derive(Clone, Debug)]
pub struct CloverDeterminant {
    name: String,
    clover: Clover,
    kappa: f64,
    flavors: f64,
}

impl CloverDeterminant {
    /// The term named `name` for `flavors` flavours of the clover fermions `clover` (on an
    /// even/odd layout) at `kappa`; it shares the clover terms `clover` builds with its clones
    /// (the table's pseudofermions).
    pub fn new(name: &str, clover: Clover, kappa: f64, flavors: u32) -> Self {
        CloverDeterminant { name: name.into(), clover, kappa, flavors: f64::from(flavors) }
    }
}

impl<G: PackedGroup> Monomial<GaugeField<G>> for CloverDeterminant {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &GaugeField<G>) -> Result<f64> {
        let term = match u.lattice().ndim() {
            2 => self.clover.term::<G, 2>(u, self.kappa)?,
            _ => self.clover.term::<G, 4>(u, self.kappa)?,
        };
        let mut sums = [term.log_det(1)];
        u.lattice().comm().sum_exact(&mut sums);
        Ok(-self.flavors * sums[0].value())
    }

    fn add_force(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) -> Result<()> {
        let c = h * self.flavors;
        if u.lattice().ndim() == 2 {
            Discretization::<G, 2>::operator(&self.clover, u, self.kappa)?.add_log_det_derivative(1, c, p);
        } else {
            Discretization::<G, 4>::operator(&self.clover, u, self.kappa)?.add_log_det_derivative(1, c, p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::fermion::{Pseudofermion, PseudofermionParams};
    use crate::action::finite_difference::{assert_force_matches, sample_components};
    use crate::checkerboard::Checkerboard;
    use crate::dirac::dense::ln_abs_det;
    use crate::dirac::{Boundary, CloverOperator, FermionOperator};
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use crate::solver::SolverParams;
    use crate::spinor::SpinorField;
    use faer::Mat;
    use num_complex::Complex64;
    use std::sync::Arc;

    const KAPPA: f64 = 0.12;
    const CSW: f64 = 1.3;

    /// Every sampled force component of `term` against a fourth-order central difference of its
    /// action (eps = 1e-3), within 1e-6 of the largest component.
    fn check_force<G: PackedGroup>(term: &dyn Monomial<GaugeField<G>>, u: &GaugeField<G>, label: &str) {
        let mut f = MomentumField::<G>::zeros(u.lattice());
        term.add_force(u, 1.0, &mut f).unwrap();
        let components = sample_components(u.lattice(), G::ALG_DIM);
        assert_force_matches(u, &f, components, 1e-3, |v| term.action(v).unwrap(), label);
    }

    fn hot<G: PackedGroup>(dims: &[usize]) -> (GaugeField<G>, Checkerboard) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        (GaugeField::<G>::hot(lat.clone(), 5), Checkerboard::new(lat).unwrap())
    }

    /// The determinant term's force and the force of a clover pseudofermion term (plain and
    /// Hasenbusch ratio, even/odd) match finite differences of their actions; a clover
    /// pseudofermion's heatbath returns its action.
    fn check_forces<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let (u, cb) = hot::<G>(dims);
        let clover = Clover::new(cb.clone(), Boundary::ANTIPERIODIC, CSW);
        let det = CloverDeterminant::new("det", clover, KAPPA, 2);
        check_force(&det, &u, &format!("{} det", G::NAME));
        for kappa_heavy in [0.0, 0.1] {
            let params = PseudofermionParams {
                kappa: KAPPA,
                kappa_heavy,
                boundary: Boundary::ANTIPERIODIC,
                even_odd: true,
                solver: SolverParams { tolerance: 1e-14, max_iterations: 10_000 },
                mixed_precision: false,
            };
            let clover = Clover::new(cb.clone(), Boundary::ANTIPERIODIC, CSW);
            let mut term = Pseudofermion::<G, S, Clover>::with_discretization("pf", params, clover, 0);
            let drawn = term.refresh(&u, 9, 1).unwrap();
            let action = term.action(&u).unwrap();
            assert!((drawn - action).abs() < 1e-10 * action, "refresh {drawn}, action {action}");
            check_force(&term, &u, &format!("{} clover pseudofermion, kappa_h {kappa_heavy}", G::NAME));
        }
    }

    #[test]
    fn clover_forces_match_finite_differences() {
        check_forces::<U1, 2>(&[4, 8]);
        check_forces::<Su3, 4>(&[4, 4, 4, 4]);
    }

    /// ln |det M| of the full clover operator (dense) is ln det A_oo + ln |det M_hat| (the
    /// Schur operator as a dense matrix on the even sites), so the determinant term and the
    /// pseudofermions of M_hat together carry |det M|^2: on a hot U(1) 4 x 8 field.
    #[test]
    fn the_odd_blocks_and_the_schur_operator_factor_the_determinant() {
        let (u, cb) = hot::<U1>(&[4, 8]);
        let m = CloverOperator::<U1, 2>::new(&u, &cb, KAPPA, CSW, Boundary::ANTIPERIODIC).unwrap();
        let lat = cb.lattice().clone();
        let even: Vec<usize> = (0..lat.volume()).filter(|&x| lat.parity(x) == 0).collect();
        let n = even.len() * 2;
        let mut schur = Mat::<Complex64>::zeros(n, n);
        let index = |k: usize| (even[k / 2], k % 2);
        for j in 0..n {
            let (site, spin) = index(j);
            let mut unit = SpinorField::<U1, 2>::full(&cb);
            unit.set(&cb, site, spin, 0, Complex64::new(1.0, 0.0));
            let mut column = SpinorField::half(&cb);
            m.apply_schur(false, &unit.half_of(0), &mut column);
            let column = SpinorField::from_halves(&column, &SpinorField::half(&cb));
            for i in 0..n {
                let (x, s) = index(i);
                schur[(i, j)] = column.get(&cb, x, s, 0);
            }
        }
        let lu = schur.partial_piv_lu();
        let ln_det_schur: f64 = (0..n).map(|i| lu.U()[(i, i)].norm().ln()).sum();
        let full = ln_abs_det(&m);
        let factored = m.term().log_det(1).value() + ln_det_schur;
        assert!((full - factored).abs() < 1e-10 * full.abs(), "ln |det M| {full}, factored {factored}");
        let det =
            CloverDeterminant::new("det", Clover::new(cb.clone(), Boundary::ANTIPERIODIC, CSW), KAPPA, 2);
        assert!((det.action(&u).unwrap() + 2.0 * m.term().log_det(1).value()).abs() < 1e-12);
    }
}
