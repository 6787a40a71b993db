//! The packed layout of group elements: [`PackedGroup`] packs LANES elements lane-wise (one
//! site per SIMD lane) for the CPU kernels, with the lane-wise versions of the group's
//! operations. The group itself ([`crate::group::Group`]) knows nothing of lanes.

use super::packed::{LANES, Lanes, PackedMatrix, Real, fma, permute_lanes};
use crate::group::{Group, LinkMatrix};
use std::fmt::Debug;

/// A group in the CPU backend's packed layout (conventions of [`crate::group`], lane by lane).
pub trait PackedGroup: Group {
    /// LANES elements packed lane-wise for the vectorised kernels, in precision R (the gauge
    /// field and every gauge kernel use f64; the Dirac operator also comes in f32).
    type Packed<R: Real>: PackedMatrix<Real = R> + super::halo::LaneArray<Scalar = R>;
    /// Packed elements rounded to precision R.
    fn packed_in<R: Real>(x: &Self::Packed<f64>) -> Self::Packed<R>;
    /// Packs the links of LANES sites.
    fn pack(links: [&Self::Elem; LANES]) -> Self::Packed<f64>;
    /// Lane `lane` of a packed element.
    fn lane(x: &Self::Packed<f64>, lane: usize) -> Self::Elem;
    /// Sets lane `lane` of a packed element.
    fn set_lane(x: &mut Self::Packed<f64>, lane: usize, value: &Self::Elem);
    /// Algebra elements of LANES links, component-major: entry a is the lane vector of p_a.
    type AlgLanes: Copy + Default + Send + Sync + Debug + PartialEq + AsRef<[Lanes]> + AsMut<[Lanes]>;
    /// [`Group::unitarity_violation`] of every lane (the same value up to rounding).
    fn packed_unitarity_violation(x: &Self::Packed<f64>) -> Lanes {
        std::array::from_fn(|l| <Self as Group>::unitarity_violation(&Self::lane(x, l)))
    }
    /// Re tr of every lane.
    fn packed_re_trace(x: &Self::Packed<f64>) -> Lanes;
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
            Self::set_lane(u, l, &<Self as Group>::exp(&alg_lane::<Self>(p, l), eps).mul(&Self::lane(u, l)));
        }
    }
}

/// Lane `lane` of packed algebra elements.
#[inline]
pub fn alg_lane<G: PackedGroup>(p: &G::AlgLanes, lane: usize) -> G::Alg {
    let mut a = G::Alg::default();
    for (c, v) in a.as_mut().iter_mut().zip(p.as_ref()) {
        *c = v[lane];
    }
    a
}

/// Sets lane `lane` of packed algebra elements.
#[inline]
pub fn set_alg_lane<G: PackedGroup>(p: &mut G::AlgLanes, lane: usize, value: &G::Alg) {
    for (v, c) in p.as_mut().iter_mut().zip(value.as_ref()) {
        v[lane] = *c;
    }
}

/// y += a * x on packed algebra elements, lane l of y taking lane l ^ mask of x (the
/// packed-layout hop by which x's lanes reach y's sites).
#[inline(always)]
pub fn alg_lanes_axpy<X: AsRef<[Lanes]> + ?Sized, Y: AsMut<[Lanes]> + ?Sized>(
    a: f64,
    x: &X,
    mask: usize,
    y: &mut Y,
) {
    for (yv, xv) in y.as_mut().iter_mut().zip(x.as_ref()) {
        let xv = permute_lanes(xv, mask);
        for l in 0..LANES {
            yv[l] = fma(a, xv[l], yv[l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed::ColorVector;
    use super::*;
    use crate::group::{Su3, U1};
    use crate::rng::{Purpose, StreamKey};
    use num_complex::Complex64;

    /// The packed operations agree with the scalar ones of the group lane by lane.
    fn check_packing<G: PackedGroup>() {
        let key = StreamKey::new(11, Purpose::Test, 0);
        for i in 0..200 {
            let mut rng = key.stream(i);
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
        }
    }

    #[test]
    fn u1_packing() {
        check_packing::<U1>();
    }

    #[test]
    fn su3_packing() {
        check_packing::<Su3>();
    }
}
