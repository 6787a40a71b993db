//! The fermion-operator interface: what solvers, pseudofermion monomials and measurements need
//! of a lattice Dirac operator M, so that Wilson, clover and each backend's versions are new
//! implementations rather than edits (the design of Grid's fermion operators).
//!
//! Conventions: M acts on the full fields of its [`Checkerboard`] (either layout). In the
//! even/odd layout M = [[M_ee, M_eo], [M_oe, M_oo]] in blocks of the half fields; the Schur
//! operator on the even sites is M_hat = M_ee - M_eo M_oo^{-1} M_oe, with det M = det M_oo
//! det M_hat, and M x = b becomes M_hat x_e = b_e - M_eo M_oo^{-1} b_o, x_o = M_oo^{-1} (b_o -
//! M_oe x_e). Every daggered form is the adjoint of the plain one; the blocks of M^dagger are
//! (M^dagger)_{pq} = (M_{qp})^dagger, and the Schur operator of M^dagger is M_hat^dagger.
//!
//! - [`FermionOperator`]: M on one gauge field, in precision R (f64, or f32 inside
//!   mixed-precision solves): M, its blocks, the Schur operator, the normal operators.
//! - [`FermionMatrix`]: the f64 operator the monomials use, with its force derivative and its
//!   f32 copy.
//! - [`Discretization`]: a kind of fermion (Wilson, later clover) with its layout and boundary
//!   conditions; importing a gauge field gives the operator M(kappa) on it.

use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::checkerboard::Checkerboard;
use crate::error::Result;
use crate::field::{GaugeField, MomentumField};
use crate::spinor::SpinorField;

/// A fermion operator M on one gauge field, in precision R (see the module docs for the
/// block conventions). Full fields have the checkerboard's full length, half fields its
/// half length; the block forms need the even/odd layout.
pub trait FermionOperator<G: PackedGroup, const S: usize, R: Real = f64>: Sync {
    /// The layout of the fields it acts on.
    fn checkerboard(&self) -> &Checkerboard;

    /// y = M x, or M^dagger x when `dagger`, on full fields.
    fn apply(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>);

    /// y = M_{row, column} x, or (M^dagger)_{row, column} x when `dagger`: the block from the
    /// half field of parity `column` to that of parity `row`.
    fn apply_block(
        &self,
        row: usize,
        column: usize,
        dagger: bool,
        x: &SpinorField<G, S, R>,
        y: &mut SpinorField<G, S, R>,
    );

    /// y = M_pp^{-1} x, or ((M^dagger)_pp)^{-1} x when `dagger`, on half fields of parity p.
    fn apply_diagonal_inverse(
        &self,
        p: usize,
        dagger: bool,
        x: &SpinorField<G, S, R>,
        y: &mut SpinorField<G, S, R>,
    );

    /// y = M_hat x, or M_hat^dagger x when `dagger`, on even half fields.
    fn apply_schur(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let cb = self.checkerboard();
        let (mut odd, mut odd_inv) = (SpinorField::half(cb), SpinorField::half(cb));
        self.apply_block(1, 0, dagger, x, &mut odd);
        self.apply_diagonal_inverse(1, dagger, &odd, &mut odd_inv);
        self.apply_block(0, 1, dagger, &odd_inv, &mut odd);
        self.apply_block(0, 0, dagger, x, y);
        y.axpy(num_complex::Complex64::new(-1.0, 0.0), &odd);
    }

    /// y = M x (M^dagger x) on full fields, or with `even_odd` M_hat x (M_hat^dagger x) on even
    /// half fields: the operator a solve with or without preconditioning sees.
    fn apply_as(&self, even_odd: bool, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        if even_odd { self.apply_schur(dagger, x, y) } else { self.apply(dagger, x, y) }
    }

    /// y = M^dagger M x on full fields, or M_hat^dagger M_hat x on even half fields with
    /// `even_odd`: the operator of the normal equations.
    fn apply_normal(&self, even_odd: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let mut t = x.zeros_like();
        self.apply_as(even_odd, false, x, &mut t);
        self.apply_as(even_odd, true, &t, y);
    }

    /// The even source of the Schur system of M x = b (full b): b_e - M_eo M_oo^{-1} b_o.
    fn schur_source(&self, b: &SpinorField<G, S, R>) -> SpinorField<G, S, R> {
        let cb = self.checkerboard();
        let (mut t, mut u) = (SpinorField::half(cb), SpinorField::half(cb));
        self.apply_diagonal_inverse(1, false, &b.half_of(1), &mut t);
        self.apply_block(0, 1, false, &t, &mut u);
        let mut s = b.half_of(0);
        s.axpy(num_complex::Complex64::new(-1.0, 0.0), &u);
        s
    }

    /// The full solution of M x = b from the even half x_e solving the Schur system:
    /// x_o = M_oo^{-1} (b_o - M_oe x_e).
    fn schur_reconstruct(
        &self,
        b: &SpinorField<G, S, R>,
        x_even: &SpinorField<G, S, R>,
    ) -> SpinorField<G, S, R> {
        let cb = self.checkerboard();
        let mut t = SpinorField::half(cb);
        self.apply_block(1, 0, false, x_even, &mut t);
        t.xpay(&b.half_of(1), num_complex::Complex64::new(-1.0, 0.0));
        let mut x_odd = SpinorField::half(cb);
        self.apply_diagonal_inverse(1, false, &t, &mut x_odd);
        SpinorField::from_halves(x_even, &x_odd)
    }
}

/// The double-precision operator that monomials use: a [`FermionOperator`] with the derivative
/// that forces need and a single-precision copy for mixed-precision solves.
pub trait FermionMatrix<G: PackedGroup, const S: usize>: FermionOperator<G, S> {
    /// The operator in f32.
    type Single<'s>: FermionOperator<G, S, f32>
    where
        Self: 's;

    /// The same operator rounded to f32 (links and parameters).
    fn single(&self) -> Self::Single<'_>;

    /// p_a(x, mu) += c d/dw Re(a^dagger M b) for every link, U_mu(x) -> exp(w T_a) U_mu(x)
    /// (momentum conventions of [`crate::group`]): a and b full fields, or with `even_odd`
    /// even half fields and M_hat in place of M.
    fn add_derivative(
        &self,
        even_odd: bool,
        a: &SpinorField<G, S>,
        b: &SpinorField<G, S>,
        c: f64,
        p: &mut MomentumField<G>,
    );
}

/// A kind of fermion (Wilson, later clover): its field layout and boundary conditions, and how
/// it imports a gauge field.
pub trait Discretization<G: PackedGroup, const S: usize>: Send + Sync {
    /// The operator on one gauge field.
    type Operator<'a>: FermionMatrix<G, S>
    where
        Self: 'a;

    /// The layout of its fields.
    fn checkerboard(&self) -> &Checkerboard;

    /// M(kappa) on the gauge field u (the operator keeps what it needs of u in its own
    /// layout); an error for a field of another lattice or a kappa it cannot take.
    fn operator<'a>(&'a self, u: &'a GaugeField<G>, kappa: f64) -> Result<Self::Operator<'a>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirac::{Boundary, WilsonOperator};
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use crate::rng::{Purpose, StreamKey};
    use crate::spinor::Sites;
    use num_complex::Complex64;
    use std::sync::Arc;

    /// An operator that has only the required methods (the Wilson operator's), so that the
    /// provided ones compose the blocks.
    struct FromBlocks<'w, 'a, G: PackedGroup, const S: usize>(&'w WilsonOperator<'a, G, S>);

    impl<G: PackedGroup, const S: usize> FermionOperator<G, S> for FromBlocks<'_, '_, G, S> {
        fn checkerboard(&self) -> &Checkerboard {
            self.0.checkerboard()
        }
        fn apply(&self, dagger: bool, x: &SpinorField<G, S>, y: &mut SpinorField<G, S>) {
            self.0.apply(dagger, x, y)
        }
        fn apply_block(
            &self,
            row: usize,
            column: usize,
            dagger: bool,
            x: &SpinorField<G, S>,
            y: &mut SpinorField<G, S>,
        ) {
            self.0.apply_block(row, column, dagger, x, y)
        }
        fn apply_diagonal_inverse(
            &self,
            p: usize,
            dagger: bool,
            x: &SpinorField<G, S>,
            y: &mut SpinorField<G, S>,
        ) {
            self.0.apply_diagonal_inverse(p, dagger, x, y)
        }
    }

    fn distance<G: PackedGroup, const S: usize>(a: &SpinorField<G, S>, b: &SpinorField<G, S>) -> f64 {
        let mut d = a.clone();
        d.axpy(Complex64::new(-1.0, 0.0), b);
        (d.norm_sqr() / b.norm_sqr()).sqrt()
    }

    /// The blocks of M are the blocks of the full operator, adjoint to those of M^dagger, and
    /// the provided Schur, normal, source and reconstruction forms composed from them equal the
    /// fused Wilson kernels.
    fn check_blocks<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 6);
        let cb = Checkerboard::new(lat).unwrap();
        let w = WilsonOperator::<G, S>::new(&u, &cb, 0.14, Boundary::Phase(0.9)).unwrap();
        let composed = FromBlocks(&w);
        let half = |seed| {
            SpinorField::<G, S>::gaussian(&cb, Sites::Parity(0), &StreamKey::new(seed, Purpose::Test, 0))
        };
        let (xe, ye) = (half(1), half(2));
        let full = SpinorField::<G, S>::gaussian_full(&cb, 3, Purpose::Test, 0);
        for dagger in [false, true] {
            // M (x_e, 0) = (M_ee x_e, M_oe x_e)
            let mut m_full = SpinorField::full(&cb);
            w.apply(dagger, &SpinorField::from_halves(&xe, &SpinorField::half(&cb)), &mut m_full);
            for row in 0..2 {
                let mut block = SpinorField::half(&cb);
                w.apply_block(row, 0, dagger, &xe, &mut block);
                assert!(distance(&block, &m_full.half_of(row)) < 1e-15, "block ({row}, 0) dagger {dagger}");
            }
            // <y, M_eo x> = <(M^dagger)_oe y, x>
            let (mut a, mut b) = (SpinorField::half(&cb), SpinorField::half(&cb));
            w.apply_block(0, 1, dagger, &xe, &mut a);
            w.apply_block(1, 0, !dagger, &ye, &mut b);
            let (l, r) = (ye.dot(&a), b.dot(&xe));
            assert!((l - r).norm() < 1e-12 * l.norm(), "{l} vs {r}");
            let (mut fused, mut from_blocks) = (SpinorField::half(&cb), SpinorField::half(&cb));
            w.apply_schur(dagger, &xe, &mut fused);
            composed.apply_schur(dagger, &xe, &mut from_blocks);
            assert!(distance(&from_blocks, &fused) < 1e-14, "Schur dagger {dagger}");
        }
        for even_odd in [false, true] {
            let x = if even_odd { &xe } else { &full };
            let (mut fused, mut from_blocks) = (x.zeros_like(), x.zeros_like());
            w.apply_normal(even_odd, x, &mut fused);
            composed.apply_normal(even_odd, x, &mut from_blocks);
            assert!(distance(&from_blocks, &fused) < 1e-14, "normal e/o {even_odd}");
        }
        assert!(distance(&composed.schur_source(&full), &w.schur_source(&full)) < 1e-14);
        let (a, b) = (composed.schur_reconstruct(&full, &xe), w.schur_reconstruct(&full, &xe));
        assert!(distance(&a, &b) < 1e-14);
    }

    #[test]
    fn provided_forms_compose_the_blocks() {
        check_blocks::<U1, 2>(&[4, 8]);
        check_blocks::<Su3, 4>(&[4, 4, 4, 4]);
    }
}
