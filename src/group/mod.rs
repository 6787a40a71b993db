//! Gauge groups: U(1) and SU(3), behind one [`Group`] trait.
//!
//! Algebra convention (README, Conventions): a momentum is P = sum_a p_a T_a with anti-Hermitian
//! generators normalised as tr(T_a T_b) = -1/2 delta_ab for SU(N) (T_a = i lambda_a / 2 with
//! the Gell-Mann matrices) and T = i for U(1). The kinetic energy is (1/2) sum_a p_a^2, so a
//! refresh draws every p_a from N(0, 1). Links evolve as dU/dt = P U, and a force is the vector
//! F_a = -d/dw S(exp(w T_a) U) at w = 0.

pub mod color;
pub mod packed;
pub mod su3;
pub mod u1;

use crate::rng::SiteRng;
use num_complex::Complex64;
use packed::{LANES, PackedMatrix, Real};
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

    /// LANES elements packed lane-wise for the vectorised kernels, in precision R (the gauge
    /// field and every gauge kernel use f64; the Dirac operator also comes in f32).
    type Packed<R: Real>: PackedMatrix<Real = R>;
    /// Packed elements rounded to precision R.
    fn packed_in<R: Real>(x: &Self::Packed<f64>) -> Self::Packed<R>;
    /// Packs the links of LANES sites.
    fn pack(links: [&Self::Elem; LANES]) -> Self::Packed<f64>;
    /// Lane `lane` of a packed element.
    fn lane(x: &Self::Packed<f64>, lane: usize) -> Self::Elem;
    /// Sets lane `lane` of a packed element.
    fn set_lane(x: &mut Self::Packed<f64>, lane: usize, value: &Self::Elem);
    /// Algebra elements of LANES links, component-major: entry a is the lane vector of p_a.
    type AlgLanes: Copy
        + Default
        + Send
        + Sync
        + Debug
        + PartialEq
        + AsRef<[packed::Lanes]>
        + AsMut<[packed::Lanes]>;
    /// [`Group::unitarity_violation`] of every lane (the same value up to rounding).
    fn packed_unitarity_violation(x: &Self::Packed<f64>) -> packed::Lanes {
        std::array::from_fn(|l| Self::unitarity_violation(&Self::lane(x, l)))
    }
    /// Re tr of every lane.
    fn packed_re_trace(x: &Self::Packed<f64>) -> packed::Lanes;
    /// [`Group::re_tr_generators`] of every lane.
    fn packed_re_tr_generators(x: &Self::Packed<f64>) -> Self::AlgLanes;
    /// [`Group::re_tr_generators`] of every lane of a * b, computing only the entries of the
    /// product that the traces need.
    #[inline(always)]
    fn packed_re_tr_generators_of_product(a: &Self::Packed<f64>, b: &Self::Packed<f64>) -> Self::AlgLanes {
        Self::packed_re_tr_generators(&a.mul(b))
    }

    /// u_l <- exp(eps p_l) u_l in every lane (the MD drift of LANES links).
    fn exp_mul_packed(p: &Self::AlgLanes, eps: f64, u: &mut Self::Packed<f64>) {
        for l in 0..LANES {
            Self::set_lane(u, l, &Self::exp(&alg_lane::<Self>(p, l), eps).mul(&Self::lane(u, l)));
        }
    }

    /// A Gaussian algebra element: every component N(0, 1), kinetic energy (1/2) sum p_a^2.
    fn gaussian_alg(rng: &mut SiteRng) -> Self::Alg {
        let mut p = Self::Alg::default();
        for c in p.as_mut() {
            *c = rng.normal();
        }
        p
    }
}

/// Lane `lane` of packed algebra elements.
#[inline]
pub fn alg_lane<G: Group>(p: &G::AlgLanes, lane: usize) -> G::Alg {
    let mut a = G::Alg::default();
    for (c, v) in a.as_mut().iter_mut().zip(p.as_ref()) {
        *c = v[lane];
    }
    a
}

/// Sets lane `lane` of packed algebra elements.
#[inline]
pub fn set_alg_lane<G: Group>(p: &mut G::AlgLanes, lane: usize, value: &G::Alg) {
    for (v, c) in p.as_mut().iter_mut().zip(value.as_ref()) {
        v[lane] = *c;
    }
}

/// y += a * x on packed algebra elements, lane l of y taking lane l ^ mask of x (the
/// packed-layout hop by which x's lanes reach y's sites).
#[inline(always)]
pub fn alg_lanes_axpy<A: AsRef<[packed::Lanes]> + AsMut<[packed::Lanes]>>(
    a: f64,
    x: &A,
    mask: usize,
    y: &mut A,
) {
    for (yv, xv) in y.as_mut().iter_mut().zip(x.as_ref()) {
        let xv = packed::permute_lanes(xv, mask);
        for l in 0..LANES {
            yv[l] = packed::fma(a, xv[l], yv[l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::packed::ColorVector;
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
            // the packed drift exp(eps p_l) u_l agrees with the scalar one, also for large eps
            // (series fallback)
            for eps in [0.01, 0.2, 2.5] {
                let ps: [G::Alg; LANES] = std::array::from_fn(|_| G::gaussian_alg(&mut rng));
                let us: [G::Elem; LANES] = std::array::from_fn(|_| G::haar(&mut rng));
                let mut packed = G::pack(us.each_ref());
                let mut p_lanes = G::AlgLanes::default();
                for (l, pl) in ps.iter().enumerate() {
                    set_alg_lane::<G>(&mut p_lanes, l, pl);
                }
                assert_eq!(alg_lane::<G>(&p_lanes, 2), ps[2]);
                G::exp_mul_packed(&p_lanes, eps, &mut packed);
                for l in 0..LANES {
                    let scalar = G::exp(&ps[l], eps).mul(&us[l]);
                    assert!(scalar.sub(&G::lane(&packed, l)).norm_sqr().sqrt() < 1e-14, "eps {eps}");
                }
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
            // the packed traces, also of a product, agree with the scalar ones lane by lane,
            // and a masked axpy moves lane l ^ mask to lane l
            let xs: [G::Elem; LANES] = std::array::from_fn(|_| G::haar(&mut rng).add(&G::haar(&mut rng)));
            let ys: [G::Elem; LANES] = std::array::from_fn(|_| G::haar(&mut rng));
            let (xp, yp) = (G::pack(xs.each_ref()), G::pack(ys.each_ref()));
            let whole = G::packed_re_tr_generators(&xp);
            let of_product = G::packed_re_tr_generators_of_product(&xp, &yp);
            // matrix-vector products agree with the entries, also read through a lane mask
            let n = G::NC;
            let mut v = <G::Packed<f64> as PackedMatrix>::Vector::zero();
            for l in 0..LANES {
                for c in 0..n {
                    v.set(l, c, Complex64::new(rng.normal(), rng.normal()));
                }
            }
            for mask in [0, 3] {
                let (uv, udv) = (
                    G::Packed::<f64>::mat_vec::<false>((&xp, mask), &v),
                    G::Packed::<f64>::mat_vec::<true>((&xp, mask), &v),
                );
                for l in 0..LANES {
                    let mut reals = vec![0.0; 2 * n * n];
                    xs[l ^ mask].write_reals(&mut reals);
                    let m = |r: usize, c: usize| {
                        Complex64::new(reals[2 * (n * r + c)], reals[2 * (n * r + c) + 1])
                    };
                    for r in 0..n {
                        let plain: Complex64 = (0..n).map(|c| m(r, c) * v.get(l, c)).sum();
                        let adjoint: Complex64 = (0..n).map(|c| m(c, r).conj() * v.get(l, c)).sum();
                        assert!((uv.get(l, r) - plain).norm() < 1e-14);
                        assert!((udv.get(l, r) - adjoint).norm() < 1e-14);
                    }
                }
            }
            // outer products and lane phases against the entries
            let outer = G::Packed::<f64>::outer_add(&G::Packed::<f64>::zero(), &v, &v.times_i());
            let (pre, pim) = ([0.6, -0.8, 1.0, 0.0], [0.8, 0.6, 0.0, -1.0]);
            let phased = xp.mul_lanes(&pre, &pim);
            for l in 0..LANES {
                let (mut o, mut ph, mut x) =
                    (vec![0.0; 2 * n * n], vec![0.0; 2 * n * n], vec![0.0; 2 * n * n]);
                G::lane(&outer, l).write_reals(&mut o);
                G::lane(&phased, l).write_reals(&mut ph);
                xs[l].write_reals(&mut x);
                let z = Complex64::new(pre[l], pim[l]);
                for r in 0..n {
                    for c in 0..n {
                        let k = 2 * (n * r + c);
                        let expected = v.get(l, r) * (Complex64::i() * v.get(l, c)).conj();
                        assert!((Complex64::new(o[k], o[k + 1]) - expected).norm() < 1e-14);
                        let expected = z * Complex64::new(x[k], x[k + 1]);
                        assert!((Complex64::new(ph[k], ph[k + 1]) - expected).norm() < 1e-14);
                    }
                }
            }
            let mut moved = G::AlgLanes::default();
            alg_lanes_axpy(2.0, &whole, 3, &mut moved);
            for l in 0..LANES {
                let (r, rp) = (G::re_tr_generators(&xs[l]), G::re_tr_generators(&xs[l].mul(&ys[l])));
                for a in 0..G::ALG_DIM {
                    assert_eq!(whole.as_ref()[a][l], r.as_ref()[a]);
                    assert!((of_product.as_ref()[a][l] - rp.as_ref()[a]).abs() < 1e-14);
                    assert_eq!(moved.as_ref()[a][l], 2.0 * whole.as_ref()[a][l ^ 3]);
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
