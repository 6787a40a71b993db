//! SU(3) in the packed layout: lane-wise packing, generator traces and the MD drift
//! exp(eps P) U of LANES links at once (exact to round-off).

use super::group::{PackedGroup, alg_lane, set_alg_lane};
use super::packed::{Convert, LANES, Lanes, PackedMatrix, Real, Su3Lanes, fma};
use crate::group::su3::INV_SQRT3;
use crate::group::{Group, LinkMatrix, Su3, Su3Matrix};
use num_complex::Complex64;
use std::sync::OnceLock;

/// Re tr(T_a X) = -Im tr(lambda_a X) / 2 for a = 1..8 in every lane, from the entries of X
/// (k = 3 row + col). The real parts of the diagonal are not used.
#[inline(always)]
fn generator_traces(x: &Su3Lanes) -> [Lanes; 8] {
    let (re, im) = (&x.re, &x.im);
    [
        lanes(|l| -0.5 * (im[1][l] + im[3][l])),
        lanes(|l| -0.5 * (re[1][l] - re[3][l])),
        lanes(|l| -0.5 * (im[0][l] - im[4][l])),
        lanes(|l| -0.5 * (im[2][l] + im[6][l])),
        lanes(|l| -0.5 * (re[2][l] - re[6][l])),
        lanes(|l| -0.5 * (im[5][l] + im[7][l])),
        lanes(|l| -0.5 * (re[5][l] - re[7][l])),
        lanes(|l| -0.5 * INV_SQRT3 * (im[0][l] + im[4][l] - 2.0 * im[8][l])),
    ]
}

/// Most terms the drift series takes (enough for |X|_F^2 up to [`SERIES_MAX_NORM_SQR`]).
const SERIES_MAX_TERMS: usize = 40;

/// 1/n for n = 0..=SERIES_MAX_TERMS (entry 0 unused), so the series needs no division.
const RECIPROCALS: [f64; SERIES_MAX_TERMS + 1] = {
    let mut r = [0.0; SERIES_MAX_TERMS + 1];
    let mut n = 1;
    while n <= SERIES_MAX_TERMS {
        r[n] = 1.0 / n as f64;
        n += 1;
    }
    r
};

/// Largest squared Frobenius norm of X for which [`exp_mul_series`] uses its power series.
const SERIES_MAX_NORM_SQR: f64 = 4.0;

/// Remainder below which the drift series is cut.
const SERIES_TOLERANCE: f64 = 1e-17;

/// The number N of terms after which the exponential series of a matrix X with |X|_F <= s has
/// a remainder below [`SERIES_TOLERANCE`]: sum_{n>N} |X^n|/n! <= s^(N+1)/(N+1)! e^s, whatever the
/// (exact) Cayley-Hamilton representation of the terms. The bound is tabulated once as the
/// largest s each N admits.
fn series_terms(s: f64) -> usize {
    largest_norms().iter().position(|&largest| s <= largest).unwrap_or(SERIES_MAX_TERMS)
}

/// Lowest binary exponent of |X|_F^2 with its own entry in [`series_terms_lanes`]' table
/// (smaller norms share it).
const LOWEST_EXPONENT: i32 = -64;

/// The terms of every lane's series from its |X|_F^2 (at most [`SERIES_MAX_NORM_SQR`]): the
/// [`series_terms`] of the top of the lane's binade [2^e, 2^(e+1)), read from a table by the
/// binary exponent e. Lanes of similar norms (the usual packed element) thus share their
/// count, and a lane's count depends on its own norm only.
#[inline(always)]
fn series_terms_lanes(norm_sqr: &Lanes) -> [usize; LANES] {
    const ENTRIES: usize = (2 - LOWEST_EXPONENT) as usize;
    static BY_EXPONENT: OnceLock<[u8; ENTRIES]> = OnceLock::new();
    let table = BY_EXPONENT.get_or_init(|| {
        std::array::from_fn(|k| {
            let top = 2f64.powi(LOWEST_EXPONENT + k as i32 + 1).min(SERIES_MAX_NORM_SQR);
            series_terms(top.sqrt()) as u8
        })
    });
    std::array::from_fn(|l| {
        let exponent = ((norm_sqr[l].to_bits() >> 52) & 0x7ff) as i32 - 1023;
        usize::from(table[(exponent - LOWEST_EXPONENT).clamp(0, ENTRIES as i32 - 1) as usize])
    })
}

/// Entry N: the largest norm s for which N terms of the series suffice ([`series_terms`]).
fn largest_norms() -> &'static [f64; SERIES_MAX_TERMS + 1] {
    static LARGEST_NORM: OnceLock<[f64; SERIES_MAX_TERMS + 1]> = OnceLock::new();
    LARGEST_NORM.get_or_init(|| {
        let bound = |s: f64, n: usize| {
            s.powi(n as i32 + 1) * RECIPROCALS[1..=n + 1].iter().product::<f64>() * s.exp()
        };
        std::array::from_fn(|n| {
            let cap = SERIES_MAX_NORM_SQR.sqrt();
            if n + 1 > SERIES_MAX_TERMS || bound(cap, n) < SERIES_TOLERANCE {
                return cap;
            }
            let (mut lo, mut hi) = (0.0, cap);
            for _ in 0..80 {
                let mid = 0.5 * (lo + hi);
                if bound(mid, n) < SERIES_TOLERANCE { lo = mid } else { hi = mid }
            }
            lo
        })
    })
}

/// The lane vector (f(0), .., f(LANES - 1)).
#[inline(always)]
fn lanes(f: impl Fn(usize) -> f64) -> Lanes {
    std::array::from_fn(f)
}

/// A Hermitian 3x3 matrix per lane: real diagonal d, upper off-diagonal entries (0,1), (0,2),
/// (1,2) as complex lane vectors.
struct HermitianLanes {
    d: [Lanes; 3],
    re: [Lanes; 3],
    im: [Lanes; 3],
}

/// Index of the upper off-diagonal entry (i, j), i < j, in [`HermitianLanes`].
const fn upper(i: usize, j: usize) -> usize {
    i + j - 1
}

impl HermitianLanes {
    /// H^2 (Hermitian), from the entries of H.
    #[inline(always)]
    fn square(&self) -> HermitianLanes {
        let (d, re, im) = (&self.d, &self.re, &self.im);
        let abs2 =
            |k: usize| -> Lanes { std::array::from_fn(|l| fma(re[k][l], re[k][l], im[k][l] * im[k][l])) };
        let (n01, n02, n12) = (abs2(0), abs2(1), abs2(2));
        // (H^2)_ij = h_ij (h_ii + h_jj) + h_ik h_kj for the third index k
        let off = |ij: usize, i: usize, j: usize, (kr, ki): (Lanes, Lanes)| -> (Lanes, Lanes) {
            (
                lanes(|l| fma(re[ij][l], d[i][l] + d[j][l], kr[l])),
                lanes(|l| fma(im[ij][l], d[i][l] + d[j][l], ki[l])),
            )
        };
        // h_02 h_21 = h_02 conj(h_12); h_01 h_12; conj(h_01) h_02
        let w_v = (
            lanes(|l| re[1][l] * re[2][l] + im[1][l] * im[2][l]),
            lanes(|l| im[1][l] * re[2][l] - re[1][l] * im[2][l]),
        );
        let z_v = (
            lanes(|l| re[0][l] * re[2][l] - im[0][l] * im[2][l]),
            lanes(|l| re[0][l] * im[2][l] + im[0][l] * re[2][l]),
        );
        let zc_w = (
            lanes(|l| re[0][l] * re[1][l] + im[0][l] * im[1][l]),
            lanes(|l| re[0][l] * im[1][l] - im[0][l] * re[1][l]),
        );
        let (e01, e02, e12) = (off(0, 0, 1, w_v), off(1, 0, 2, z_v), off(2, 1, 2, zc_w));
        HermitianLanes {
            d: [
                lanes(|l| fma(d[0][l], d[0][l], n01[l] + n02[l])),
                lanes(|l| fma(d[1][l], d[1][l], n01[l] + n12[l])),
                lanes(|l| fma(d[2][l], d[2][l], n02[l] + n12[l])),
            ],
            re: [e01.0, e02.0, e12.0],
            im: [e01.1, e02.1, e12.1],
        }
    }

    /// det H (real), from the entries of H.
    #[inline(always)]
    fn det(&self) -> Lanes {
        let (d, re, im) = (&self.d, &self.re, &self.im);
        std::array::from_fn(|l| {
            let abs2 = |k: usize| re[k][l] * re[k][l] + im[k][l] * im[k][l];
            // Re(h01 h12 conj(h02))
            let (zr, zi) =
                (re[0][l] * re[2][l] - im[0][l] * im[2][l], re[0][l] * im[2][l] + im[0][l] * re[2][l]);
            let cyc = zr * re[1][l] + zi * im[1][l];
            d[0][l] * d[1][l] * d[2][l] + 2.0 * cyc
                - d[0][l] * abs2(2)
                - d[1][l] * abs2(1)
                - d[2][l] * abs2(0)
        })
    }
}

/// u_l <- exp(eps P_l) u_l for LANES links at once. With eps P = i H (H Hermitian traceless),
/// exp(iH) = f0 + f1 H + f2 H^2, the coefficients summed from the Taylor series by Horner's
/// rule, reducing powers by the Cayley-Hamilton theorem H^3 = c1 H + c0 (c1 = tr H^2 / 2,
/// c0 = det H): c <- 1 + iH c / n maps (p, q, r) to (1 + i r c0 / n, i (p + r c1) / n, i q / n).
/// The series of each lane is cut where its own remainder is below [`SERIES_TOLERANCE`]
/// ([`series_terms_lanes`]), exact to round-off: a lane's result depends on its own link and
/// momentum only, not on the sites sharing its packed element (which differ between process
/// grids). Returns false, changing nothing, when some |eps P|^2 exceeds
/// [`SERIES_MAX_NORM_SQR`].
fn exp_mul_series(p: &[Lanes; 8], eps: f64, u: &mut Su3Lanes) -> bool {
    // H = (eps/2) sum p_a lambda_a (Gell-Mann matrices)
    let c: [Lanes; 8] = p.map(|v| v.map(|x| 0.5 * eps * x));
    let d8 = lanes(|l| c[7][l] * INV_SQRT3);
    let h = HermitianLanes {
        d: [lanes(|l| c[2][l] + d8[l]), lanes(|l| d8[l] - c[2][l]), lanes(|l| -2.0 * d8[l])],
        re: [c[0], c[3], c[5]],
        im: [c[1].map(|x| -x), c[4].map(|x| -x), c[6].map(|x| -x)],
    };
    let h2 = h.square();
    let c1 = lanes(|l| 0.5 * (h2.d[0][l] + h2.d[1][l] + h2.d[2][l]));
    // |eps P|_F^2 = tr H^2 = 2 c1
    let s_max = c1.iter().cloned().fold(0.0, f64::max) * 2.0;
    if s_max > SERIES_MAX_NORM_SQR {
        return false;
    }
    let c0 = h.det();
    let terms = series_terms_lanes(&lanes(|l| 2.0 * c1[l]));
    let (least, most) = (terms.iter().copied().min().unwrap_or(0), terms.iter().copied().max().unwrap_or(0));
    let zero = [0.0; LANES];
    // Horner's step c <- 1 + iH c / n on the state [p, q, r] (real and imaginary parts)
    let step = |n: usize, [pr, pi, qr, qi, rr, ri]: [Lanes; 6]| -> [Lanes; 6] {
        let inv = RECIPROCALS[n];
        [
            lanes(|l| 1.0 - ri[l] * c0[l] * inv),
            lanes(|l| rr[l] * c0[l] * inv),
            lanes(|l| -fma(ri[l], c1[l], pi[l]) * inv),
            lanes(|l| fma(rr[l], c1[l], pr[l]) * inv),
            lanes(|l| -qi[l] * inv),
            lanes(|l| qr[l] * inv),
        ]
    };
    let mut state = [[1.0; LANES], zero, zero, zero, zero, zero];
    // the top terms, where the lanes with shorter series keep their state (a bitwise select)
    for n in (least + 1..=most).rev() {
        let held: [u64; LANES] = std::array::from_fn(|l| if n > terms[l] { u64::MAX } else { 0 });
        let next = step(n, state);
        for (s, new) in state.iter_mut().zip(next) {
            *s = lanes(|l| f64::from_bits(new[l].to_bits() & !held[l] | s[l].to_bits() & held[l]));
        }
    }
    for n in (1..=least).rev() {
        state = step(n, state);
    }
    let [pr, pi, qr, qi, rr, ri] = state;
    // E = f0 + f1 H + f2 H^2 with (f0, f1, f2) = (p, q, r); the lower triangle from conj(h_ij)
    let mut e = Su3Lanes::zero();
    for i in 0..3 {
        let k = 4 * i;
        e.re[k] = lanes(|l| pr[l] + qr[l] * h.d[i][l] + rr[l] * h2.d[i][l]);
        e.im[k] = lanes(|l| pi[l] + qi[l] * h.d[i][l] + ri[l] * h2.d[i][l]);
        for j in i + 1..3 {
            let o = upper(i, j);
            let (hr, hi, gr, gi) = (&h.re[o], &h.im[o], &h2.re[o], &h2.im[o]);
            let (ku, kl) = (3 * i + j, 3 * j + i);
            e.re[ku] = lanes(|l| qr[l] * hr[l] - qi[l] * hi[l] + rr[l] * gr[l] - ri[l] * gi[l]);
            e.im[ku] = lanes(|l| qr[l] * hi[l] + qi[l] * hr[l] + rr[l] * gi[l] + ri[l] * gr[l]);
            e.re[kl] = lanes(|l| qr[l] * hr[l] + qi[l] * hi[l] + rr[l] * gr[l] + ri[l] * gi[l]);
            e.im[kl] = lanes(|l| qi[l] * hr[l] - qr[l] * hi[l] + ri[l] * gr[l] - rr[l] * gi[l]);
        }
    }
    *u = e.mul(u);
    true
}

impl PackedGroup for Su3 {
    type Packed<R: Real> = Su3Lanes<R>;
    fn packed_in<R: Real>(x: &Su3Lanes) -> Su3Lanes<R> {
        x.convert()
    }

    #[inline(always)]
    fn pack(links: [&Su3Matrix; LANES]) -> Su3Lanes {
        Su3Lanes {
            re: std::array::from_fn(|k| links.map(|m| m.0[k].re)),
            im: std::array::from_fn(|k| links.map(|m| m.0[k].im)),
        }
    }

    #[inline(always)]
    fn lane(x: &Su3Lanes, lane: usize) -> Su3Matrix {
        Su3Matrix(std::array::from_fn(|k| Complex64::new(x.re[k][lane], x.im[k][lane])))
    }

    #[inline(always)]
    fn set_lane(x: &mut Su3Lanes, lane: usize, value: &Su3Matrix) {
        for (k, z) in value.0.iter().enumerate() {
            x.re[k][lane] = z.re;
            x.im[k][lane] = z.im;
        }
    }

    fn packed_unitarity_violation(x: &Su3Lanes) -> Lanes {
        let (re, im) = (&x.re, &x.im);
        let mut worst: Lanes = [0.0; LANES];
        // (x x^dagger)_ij = sum_k x_ik conj(x_jk): the upper triangle
        for i in 0..3 {
            for j in i..3 {
                let (mut dr, mut di): (Lanes, Lanes) = ([0.0; LANES], [0.0; LANES]);
                for k in 0..3 {
                    let (a, b) = (3 * i + k, 3 * j + k);
                    for l in 0..LANES {
                        dr[l] = fma(re[a][l], re[b][l], fma(im[a][l], im[b][l], dr[l]));
                        di[l] = fma(im[a][l], re[b][l], fma(-re[a][l], im[b][l], di[l]));
                    }
                }
                let one = if i == j { 1.0 } else { 0.0 };
                for l in 0..LANES {
                    worst[l] = worst[l].max((dr[l] - one) * (dr[l] - one) + di[l] * di[l]);
                }
            }
        }
        // det x = row 0 . (row 1 x row 2)
        let (mut det_re, mut det_im): (Lanes, Lanes) = ([0.0; LANES], [0.0; LANES]);
        for (k, (c1, c2)) in [(1, 2), (2, 0), (0, 1)].into_iter().enumerate() {
            for l in 0..LANES {
                let (ar, ai, br, bi) = (re[3 + c1][l], im[3 + c1][l], re[6 + c2][l], im[6 + c2][l]);
                let (cr, ci, dr, di) = (re[3 + c2][l], im[3 + c2][l], re[6 + c1][l], im[6 + c1][l]);
                let (mr, mi) =
                    (ar * br - ai * bi - (cr * dr - ci * di), ar * bi + ai * br - (cr * di + ci * dr));
                det_re[l] += re[k][l] * mr - im[k][l] * mi;
                det_im[l] += re[k][l] * mi + im[k][l] * mr;
            }
        }
        for l in 0..LANES {
            worst[l] = worst[l].max((det_re[l] - 1.0) * (det_re[l] - 1.0) + det_im[l] * det_im[l]);
        }
        worst.map(f64::sqrt)
    }

    #[inline(always)]
    fn packed_re_trace(x: &Su3Lanes) -> Lanes {
        std::array::from_fn(|l| x.re[0][l] + x.re[4][l] + x.re[8][l])
    }

    type AlgLanes = [Lanes; 8];

    #[inline(always)]
    fn packed_re_tr_generators(x: &Su3Lanes) -> [Lanes; 8] {
        generator_traces(x)
    }

    #[inline(always)]
    fn packed_re_tr_generators_of_product(a: &Su3Lanes, b: &Su3Lanes) -> [Lanes; 8] {
        Self::packed_re_tr_generators(&Su3Lanes::product_without_re_diagonal(a, b))
    }

    fn exp_mul_packed(p: &[Lanes; 8], eps: f64, u: &mut Su3Lanes) {
        if !exp_mul_series(p, eps, u) {
            // some lane is beyond the series' range: every lane on its own, the series where it
            // converges (the same operations as in a mixed element) and Su3::exp elsewhere
            for l in 0..LANES {
                let (a, link) = (alg_lane::<Self>(p, l), Self::lane(u, l));
                let mut alone_p = [[0.0; LANES]; 8];
                (0..LANES).for_each(|k| set_alg_lane::<Self>(&mut alone_p, k, &a));
                let mut alone = Self::pack([&link; LANES]);
                let drifted = if exp_mul_series(&alone_p, eps, &mut alone) {
                    Self::lane(&alone, 0)
                } else {
                    <Self as Group>::exp(&a, eps).mul(&link)
                };
                Self::set_lane(u, l, &drifted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane's drift depends on its own momentum and link only: the same as with every lane
    /// holding them, whatever the other lanes hold (small, large, beyond the series' range).
    #[test]
    fn drift_of_a_lane_ignores_the_other_lanes() {
        let mut rng = crate::rng::StreamKey::new(6, crate::rng::Purpose::Test, 0).stream(0);
        let links: Vec<Su3Matrix> = (0..LANES).map(|_| Su3::haar(&mut rng)).collect();
        // lanes of different norms in the series' range (the terms a lane does not need change
        // its bits only now and then, so many elements), then one lane beyond the range
        let cases = (0..2000)
            .map(|k| ([0.3, 1.0, 1.0 + (k % 40) as f64 * 0.05, 2.0 + (k / 40) as f64 * 0.02], 0.1))
            .chain([([0.01, 0.3, 1.0, 3.0], 0.7)]);
        for (scales, eps) in cases {
            let momenta: Vec<[f64; 8]> = scales
                .iter()
                .map(|&s| {
                    let mut a = <Su3 as Group>::gaussian_alg(&mut rng);
                    a.iter_mut().for_each(|x| *x *= s);
                    a
                })
                .collect();
            let mut mixed_p = [[0.0; LANES]; 8];
            for (l, a) in momenta.iter().enumerate() {
                set_alg_lane::<Su3>(&mut mixed_p, l, a);
            }
            let mut mixed = Su3::pack(std::array::from_fn(|l| &links[l]));
            Su3::exp_mul_packed(&mixed_p, eps, &mut mixed);
            for l in 0..LANES {
                let mut alone_p = [[0.0; LANES]; 8];
                (0..LANES).for_each(|k| set_alg_lane::<Su3>(&mut alone_p, k, &momenta[l]));
                let mut alone = Su3::pack([&links[l]; LANES]);
                Su3::exp_mul_packed(&alone_p, eps, &mut alone);
                assert_eq!(
                    Su3::lane(&mixed, l),
                    Su3::lane(&alone, 0),
                    "eps {eps} lane {l} (scale {})",
                    scales[l]
                );
            }
        }
    }

    #[test]
    fn packed_unitarity_violation_is_the_scalar_one_lane_by_lane() {
        let mut rng = crate::rng::StreamKey::new(4, crate::rng::Purpose::Test, 0).stream(0);
        let links: Vec<Su3Matrix> = (0..LANES)
            .map(|l| {
                let u = Su3::haar(&mut rng);
                // lanes 1 and 3 off the group: a scaled row, a non-unit determinant
                match l {
                    1 => Su3Matrix(std::array::from_fn(|k| if k < 3 { u.0[k] * 1.01 } else { u.0[k] })),
                    3 => u.scale(1.002),
                    _ => u,
                }
            })
            .collect();
        let packed = Su3::pack(std::array::from_fn(|l| &links[l]));
        let lanes = Su3::packed_unitarity_violation(&packed);
        for (l, link) in links.iter().enumerate() {
            let scalar = Su3::unitarity_violation(link);
            assert!(
                (lanes[l] - scalar).abs() < 1e-14 * scalar.max(1.0),
                "lane {l}: {} vs {scalar}",
                lanes[l]
            );
        }
        assert!(lanes[0] < 1e-14 && lanes[1] > 1e-2 && lanes[3] > 1e-3);
    }

    #[test]
    fn drift_series_length_is_the_shortest_that_meets_the_tolerance() {
        let bound = |s: f64, n: usize| (1..=n + 1).fold(s.exp(), |b, k| b * s / k as f64);
        for i in 1..=200 {
            let s = 2.0 * i as f64 / 200.0;
            let n = series_terms(s);
            assert!(bound(s, n) < SERIES_TOLERANCE, "s {s}: {n} terms leave {}", bound(s, n));
            assert!(n == 0 || bound(s, n - 1) >= 0.999 * SERIES_TOLERANCE, "s {s}: {n} terms, fewer suffice");
        }
        assert_eq!(series_terms(0.0), 0);
    }
}
