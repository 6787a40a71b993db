//! Gauge groups: U(1) and SU(3), behind one [`Group`] trait.
//!
//! Algebra convention (README, Conventions): a momentum is P = sum_a p_a T_a with anti-Hermitian
//! generators normalised as tr(T_a T_b) = -1/2 delta_ab for SU(N) (T_a = i lambda_a / 2 with
//! the Gell-Mann matrices) and T = i for U(1). The kinetic energy is (1/2) sum_a p_a^2, so a
//! refresh draws every p_a from N(0, 1). Links evolve as dU/dt = P U, and a force is the vector
//! F_a = -d/dw S(exp(w T_a) U) at w = 0.

pub mod su3;
pub mod u1;

use crate::rng::SiteRng;
use num_complex::Complex64;
use std::fmt::Debug;

pub use su3::{Su3, Su3Matrix};
pub use u1::U1;

/// Arithmetic on link variables (N x N complex matrices, N = 1 is a complex number).
pub trait LinkMatrix: Copy + Send + Sync + Debug + PartialEq + 'static {
    /// The zero matrix.
    fn zero() -> Self;
    /// The unit matrix.
    fn identity() -> Self;
    /// a * b.
    fn mul(&self, b: &Self) -> Self;
    /// a * b^dagger.
    fn mul_adj(&self, b: &Self) -> Self;
    /// a^dagger * b.
    fn adj_mul(&self, b: &Self) -> Self;
    /// a^dagger.
    fn adj(&self) -> Self;
    /// a + b.
    fn add(&self, b: &Self) -> Self;
    /// a - b.
    fn sub(&self, b: &Self) -> Self;
    /// s * a for real s.
    fn scale(&self, s: f64) -> Self;
    /// a + z * identity for complex z.
    fn add_scalar(&self, z: Complex64) -> Self;
    /// The trace.
    fn trace(&self) -> Complex64;
    /// Re tr(a * b) without forming the product.
    fn re_tr_mul(&self, b: &Self) -> f64;
    /// Frobenius norm squared, sum |a_ij|^2.
    fn norm_sqr(&self) -> f64;
    /// The entries row-major as (re, im) pairs: 2 N^2 reals.
    fn write_reals(&self, out: &mut [f64]);
    /// Inverse of [`LinkMatrix::write_reals`].
    fn read_reals(reals: &[f64]) -> Self;
}

/// A compact gauge group with its Lie algebra (see the module docs for the conventions).
pub trait Group: Copy + Send + Sync + Debug + PartialEq + 'static {
    /// Group element (link variable).
    type Elem: LinkMatrix;
    /// Algebra element as its real components p_a in the basis T_a.
    type Alg: Copy + Default + Send + Sync + Debug + PartialEq + AsRef<[f64]> + AsMut<[f64]>;
    /// N of the 1/N normalisation of traces: 1 for U(1), 3 for SU(3).
    const NC: usize;
    /// Number of generators (1 for U(1), 8 for SU(3)).
    const ALG_DIM: usize;
    /// Name used in run cards and files: "u1" or "su3".
    const NAME: &'static str;

    /// exp(eps * sum_a p_a T_a), exact to round-off.
    fn exp(p: &Self::Alg, eps: f64) -> Self::Elem;
    /// The vector r_a = Re tr(T_a X): the derivative d/dw Re tr(exp(w T_a) X) at w = 0.
    fn re_tr_generators(x: &Self::Elem) -> Self::Alg;
    /// The algebra element sum_a p_a T_a as a matrix.
    fn alg_matrix(p: &Self::Alg) -> Self::Elem;
    /// Projection of a near-group matrix back to the group (unit modulus for U(1); Gram-Schmidt
    /// of the first two rows and the third row as their conjugate cross product for SU(3)).
    fn project(x: &Self::Elem) -> Self::Elem;
    /// A Haar-distributed random element.
    fn haar(rng: &mut SiteRng) -> Self::Elem;
    /// How far x is from the group: max of |x x^dagger - 1| entries and |det x - 1|.
    fn unitarity_violation(x: &Self::Elem) -> f64;

    /// Number of real coordinates of an element as flow models see it.
    const COORDINATES: usize;
    /// The real coordinates of `x`: for U(1) the angle in [0, 2 pi), for SU(3) the entries
    /// row-major as (re, im) pairs.
    fn coordinates(x: &Self::Elem, out: &mut [f64]);
    /// The element with coordinates `c` (SU(3): projected to the group, which absorbs the
    /// rounding of single-precision models).
    fn from_coordinates(c: &[f64]) -> Self::Elem;
    /// The derivative of the coordinates of exp(w T_a) x at w = 0 (how the drift along
    /// generator a moves them; flow HMC turns coordinate gradients into forces with it).
    fn coordinate_tangent(x: &Self::Elem, a: usize, out: &mut [f64]);

    /// A Gaussian algebra element: every component N(0, 1), kinetic energy (1/2) sum p_a^2.
    fn gaussian_alg(rng: &mut SiteRng) -> Self::Alg {
        let mut p = Self::Alg::default();
        for c in p.as_mut() {
            *c = rng.normal();
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Purpose, StreamKey};

    /// Reference exponential: Taylor series with scaling and squaring.
    fn exp_reference<G: Group>(p: &G::Alg, eps: f64) -> G::Elem {
        let x = G::alg_matrix(p).scale(eps);
        let squarings = (x.norm_sqr().sqrt() / 0.25).log2().ceil().max(0.0) as i32;
        let x = x.scale(0.5f64.powi(squarings));
        let mut term = G::Elem::identity();
        let mut sum = G::Elem::identity();
        for k in 1..25 {
            term = term.mul(&x).scale(1.0 / k as f64);
            sum = sum.add(&term);
        }
        for _ in 0..squarings {
            sum = sum.mul(&sum);
        }
        sum
    }

    fn check_group<G: Group>() {
        let key = StreamKey::new(11, Purpose::Test, 0);
        for i in 0..200 {
            let mut rng = key.stream(i);
            let p = G::gaussian_alg(&mut rng);
            for eps in [1e-9, 1e-3, 0.1, 1.0, 3.0] {
                let e = G::exp(&p, eps);
                let r = exp_reference::<G>(&p, eps);
                assert!(e.sub(&r).norm_sqr().sqrt() < 1e-13, "exp vs Taylor at eps {eps}");
                assert!(G::unitarity_violation(&e) < 1e-14);
                let back = G::exp(&p, -eps).mul(&e);
                assert!(back.sub(&G::Elem::identity()).norm_sqr().sqrt() < 1e-14);
            }
            // r_a = Re tr(T_a X) matches the finite-difference derivative of Re tr(exp(w T_a) X)
            let x = G::haar(&mut rng).add(&G::haar(&mut rng));
            let r = G::re_tr_generators(&x);
            for a in 0..G::ALG_DIM {
                let mut t = G::Alg::default();
                t.as_mut()[a] = 1.0;
                let h = 1e-5;
                let fd = (G::exp(&t, h).mul(&x).trace().re - G::exp(&t, -h).mul(&x).trace().re) / (2.0 * h);
                assert!((fd - r.as_ref()[a]).abs() < 1e-9, "generator {a}: {fd} vs {r:?}");
            }
            // coordinates round-trip, and their tangents match finite differences (differences
            // taken mod 2 pi, for the U(1) angle)
            let u = G::haar(&mut rng);
            let k = G::COORDINATES;
            let coordinates = |x: &G::Elem| {
                let mut c = vec![0.0; k];
                G::coordinates(x, &mut c);
                c
            };
            assert!(G::from_coordinates(&coordinates(&u)).sub(&u).norm_sqr().sqrt() < 1e-14);
            for a in 0..G::ALG_DIM {
                let mut t = G::Alg::default();
                t.as_mut()[a] = 1.0;
                let h = 1e-5;
                let (up, down) = (coordinates(&G::exp(&t, h).mul(&u)), coordinates(&G::exp(&t, -h).mul(&u)));
                let mut tangent = vec![0.0; k];
                G::coordinate_tangent(&u, a, &mut tangent);
                for i in 0..k {
                    let d = up[i] - down[i];
                    let fd = (d - std::f64::consts::TAU * (d / std::f64::consts::TAU).round()) / (2.0 * h);
                    assert!(
                        (fd - tangent[i]).abs() < 1e-9,
                        "generator {a}, coordinate {i}: {fd} vs {}",
                        tangent[i]
                    );
                }
            }
            // Haar elements are in the group, and projection fixes a perturbed element
            let u = G::haar(&mut rng);
            assert!(G::unitarity_violation(&u) < 1e-14);
            let kick = G::alg_matrix(&G::gaussian_alg(&mut rng)).scale(1e-3);
            let noisy = G::Elem::identity().scale(1.002).add(&kick).mul(&u);
            assert!(G::unitarity_violation(&noisy) > 1e-3);
            let fixed = G::project(&noisy);
            assert!(G::unitarity_violation(&fixed) < 1e-14);
            assert!(fixed.sub(&u).norm_sqr().sqrt() < 1e-2);
            // the algebra matrix is anti-Hermitian and traceless (for SU(N)) with
            // tr(P P) = -(1/2) sum p^2 for SU(3), -p^2 for U(1)
            let p_mat = G::alg_matrix(&p);
            assert!(p_mat.add(&p_mat.adj()).norm_sqr() < 1e-28);
            let norm = if G::NC == 1 { 1.0 } else { 0.5 };
            let p_norm_sqr: f64 = p.as_ref().iter().map(|x| x * x).sum();
            assert!((p_mat.re_tr_mul(&p_mat) + norm * p_norm_sqr).abs() < 1e-12);
        }
    }

    #[test]
    fn u1_group_properties() {
        check_group::<U1>();
    }

    #[test]
    fn su3_group_properties() {
        check_group::<Su3>();
    }

    /// Haar measure: <|tr U|^2> = 1 for SU(N) (N >= 2) and for U(1), <tr U> = 0.
    fn check_haar_moments<G: Group>() {
        let key = StreamKey::new(5, Purpose::Test, 1);
        let n = 40_000;
        let (mut t1, mut t2) = (Complex64::new(0.0, 0.0), 0.0);
        for i in 0..n {
            let tr = G::haar(&mut key.stream(i)).trace();
            t1 += tr;
            t2 += tr.norm_sqr();
        }
        let (t1, t2) = (t1 / n as f64, t2 / n as f64);
        // standard errors ~ 1/sqrt(n) = 0.005 (tr U) and about 0.007 (|tr U|^2)
        assert!(t1.norm() < 0.025, "<tr U> = {t1}");
        assert!((t2 - 1.0).abs() < 0.035, "<|tr U|^2> = {t2}");
    }

    #[test]
    fn haar_moments() {
        check_haar_moments::<U1>();
        check_haar_moments::<Su3>();
    }
}
