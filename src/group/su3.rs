//! SU(3): 3x3 special unitary matrices, generators T_a = i lambda_a / 2 (Gell-Mann lambda_a).

use super::packed::{Convert, LANES, Lanes, PackedMatrix, Real, Su3Lanes, fma};
use super::{Group, LinkMatrix, alg_lane};
use crate::rng::SiteRng;
use num_complex::Complex64;
use std::sync::OnceLock;

/// The group SU(3). Plaquette normalisation N = 3: Re tr P / 3 is 1 on a cold start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Su3;

/// A 3x3 complex matrix stored row-major: `m[3 * row + col]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Su3Matrix(pub [Complex64; 9]);

const C0: Complex64 = Complex64::new(0.0, 0.0);
const C1: Complex64 = Complex64::new(1.0, 0.0);
/// 1/sqrt(3), the normalisation of lambda_8.
const INV_SQRT3: f64 = 0.577_350_269_189_625_8;

impl Su3Matrix {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> Complex64 {
        self.0[3 * r + c]
    }

    /// The determinant.
    pub fn det(&self) -> Complex64 {
        let m = |r, c| self.at(r, c);
        m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
            + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0))
    }
}

impl LinkMatrix for Su3Matrix {
    fn zero() -> Self {
        Su3Matrix([C0; 9])
    }
    fn identity() -> Self {
        Su3Matrix([C1, C0, C0, C0, C1, C0, C0, C0, C1])
    }
    #[inline]
    fn mul(&self, b: &Self) -> Self {
        let mut out = [C0; 9];
        for r in 0..3 {
            for c in 0..3 {
                out[3 * r + c] =
                    self.at(r, 0) * b.at(0, c) + self.at(r, 1) * b.at(1, c) + self.at(r, 2) * b.at(2, c);
            }
        }
        Su3Matrix(out)
    }
    #[inline]
    fn mul_adj(&self, b: &Self) -> Self {
        let mut out = [C0; 9];
        for r in 0..3 {
            for c in 0..3 {
                out[3 * r + c] = self.at(r, 0) * b.at(c, 0).conj()
                    + self.at(r, 1) * b.at(c, 1).conj()
                    + self.at(r, 2) * b.at(c, 2).conj();
            }
        }
        Su3Matrix(out)
    }
    #[inline]
    fn adj_mul(&self, b: &Self) -> Self {
        let mut out = [C0; 9];
        for r in 0..3 {
            for c in 0..3 {
                out[3 * r + c] = self.at(0, r).conj() * b.at(0, c)
                    + self.at(1, r).conj() * b.at(1, c)
                    + self.at(2, r).conj() * b.at(2, c);
            }
        }
        Su3Matrix(out)
    }
    #[inline]
    fn adj(&self) -> Self {
        let mut out = [C0; 9];
        for r in 0..3 {
            for c in 0..3 {
                out[3 * r + c] = self.at(c, r).conj();
            }
        }
        Su3Matrix(out)
    }
    #[inline]
    fn add(&self, b: &Self) -> Self {
        Su3Matrix(std::array::from_fn(|i| self.0[i] + b.0[i]))
    }
    #[inline]
    fn sub(&self, b: &Self) -> Self {
        Su3Matrix(std::array::from_fn(|i| self.0[i] - b.0[i]))
    }
    #[inline]
    fn scale(&self, s: f64) -> Self {
        Su3Matrix(std::array::from_fn(|i| self.0[i] * s))
    }
    #[inline]
    fn add_scalar(&self, z: Complex64) -> Self {
        let mut out = *self;
        for k in [0, 4, 8] {
            out.0[k] += z;
        }
        out
    }
    #[inline]
    fn trace(&self) -> Complex64 {
        self.0[0] + self.0[4] + self.0[8]
    }
    #[inline]
    fn re_tr_mul(&self, b: &Self) -> f64 {
        let mut s = 0.0;
        for r in 0..3 {
            for k in 0..3 {
                let (x, y) = (self.at(r, k), b.at(k, r));
                s += x.re * y.re - x.im * y.im;
            }
        }
        s
    }
    fn norm_sqr(&self) -> f64 {
        self.0.iter().map(|z| z.norm_sqr()).sum()
    }
    fn write_reals(&self, out: &mut [f64]) {
        for (i, z) in self.0.iter().enumerate() {
            out[2 * i] = z.re;
            out[2 * i + 1] = z.im;
        }
    }
    fn read_reals(reals: &[f64]) -> Self {
        Su3Matrix(std::array::from_fn(|i| Complex64::new(reals[2 * i], reals[2 * i + 1])))
    }
}

/// The Hermitian traceless matrix H = sum_a p_a lambda_a.
fn hermitian_from_components(p: &[f64; 8], scale: f64) -> Su3Matrix {
    let q = |x: f64| x * scale;
    let d8 = q(p[7]) * INV_SQRT3;
    let c = Complex64::new;
    Su3Matrix([
        c(q(p[2]) + d8, 0.0),
        c(q(p[0]), -q(p[1])),
        c(q(p[3]), -q(p[4])),
        c(q(p[0]), q(p[1])),
        c(-q(p[2]) + d8, 0.0),
        c(q(p[5]), -q(p[6])),
        c(q(p[3]), q(p[4])),
        c(q(p[5]), q(p[6])),
        c(-2.0 * d8, 0.0),
    ])
}

/// sin(w)/w, with its series near zero.
fn sinc(w: f64) -> f64 {
    if w.abs() < 0.05 {
        let w2 = w * w;
        1.0 - w2 / 6.0 * (1.0 - w2 / 20.0 * (1.0 - w2 / 42.0 * (1.0 - w2 / 72.0)))
    } else {
        w.sin() / w
    }
}

/// exp(iQ) for Hermitian traceless Q by the Cayley-Hamilton theorem:
/// exp(iQ) = f0 + f1 Q + f2 Q^2 with the coefficients of Morningstar and Peardon
/// (hep-lat/0311018, eqs. 29-34), exact to round-off for every Q.
fn exp_i_hermitian(q: &Su3Matrix) -> Su3Matrix {
    let q2 = q.mul(q);
    let c1 = 0.5 * q2.trace().re;
    if c1 == 0.0 {
        return Su3Matrix::identity();
    }
    let c0_signed = q.det().re;
    let c0 = c0_signed.abs();
    let c0_max = 2.0 * (c1 / 3.0).powf(1.5);
    let theta = (c0 / c0_max).clamp(-1.0, 1.0).acos();
    let u = (c1 / 3.0).sqrt() * (theta / 3.0).cos();
    let w = c1.sqrt() * (theta / 3.0).sin();
    let (u2, w2) = (u * u, w * w);
    let xi0 = sinc(w);
    let cw = w.cos();
    let e2iu = Complex64::from_polar(1.0, 2.0 * u);
    let emiu = Complex64::from_polar(1.0, -u);
    let i = Complex64::i();
    let h0 = e2iu * (u2 - w2) + emiu * (8.0 * u2 * cw + i * 2.0 * u * (3.0 * u2 + w2) * xi0);
    let h1 = e2iu * (2.0 * u) - emiu * (2.0 * u * cw - i * (3.0 * u2 - w2) * xi0);
    let h2 = e2iu - emiu * (cw + i * 3.0 * u * xi0);
    let denom = 9.0 * u2 - w2;
    let (mut f0, mut f1, mut f2) = (h0 / denom, h1 / denom, h2 / denom);
    if c0_signed < 0.0 {
        // f_j(-c0) = (-1)^j conj(f_j(c0))
        f0 = f0.conj();
        f1 = -f1.conj();
        f2 = f2.conj();
    }
    Su3Matrix(std::array::from_fn(|k| {
        let diag = if k % 4 == 0 { f0 } else { C0 };
        diag + f1 * q.0[k] + f2 * q2.0[k]
    }))
}

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
    static LARGEST_NORM: OnceLock<[f64; SERIES_MAX_TERMS + 1]> = OnceLock::new();
    let table = LARGEST_NORM.get_or_init(|| {
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
    });
    table.iter().position(|&largest| s <= largest).unwrap_or(SERIES_MAX_TERMS)
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
/// The series is cut where its remainder is below [`SERIES_TOLERANCE`] ([`series_terms`]), exact to round-off. Returns false,
/// changing nothing, when some |eps P|^2 exceeds [`SERIES_MAX_NORM_SQR`] (the caller then uses
/// [`Su3::exp`]).
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
    let terms = series_terms(s_max.sqrt());
    let zero = [0.0; LANES];
    let (mut pr, mut pi, mut qr, mut qi, mut rr, mut ri) = ([1.0; LANES], zero, zero, zero, zero, zero);
    for &inv in RECIPROCALS[1..=terms].iter().rev() {
        let next_p = (lanes(|l| 1.0 - ri[l] * c0[l] * inv), lanes(|l| rr[l] * c0[l] * inv));
        let next_q = (lanes(|l| -fma(ri[l], c1[l], pi[l]) * inv), lanes(|l| fma(rr[l], c1[l], pr[l]) * inv));
        let next_r = (lanes(|l| -qi[l] * inv), lanes(|l| qr[l] * inv));
        ((pr, pi), (qr, qi), (rr, ri)) = (next_p, next_q, next_r);
    }
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

impl Group for Su3 {
    type Elem = Su3Matrix;
    type Alg = [f64; 8];
    const NC: usize = 3;
    const ALG_DIM: usize = 8;
    const NAME: &'static str = "su3";

    fn exp(p: &[f64; 8], eps: f64) -> Su3Matrix {
        // eps * sum p_a (i lambda_a / 2) = i Q with Q = (eps / 2) sum p_a lambda_a
        exp_i_hermitian(&hermitian_from_components(p, 0.5 * eps))
    }

    fn re_tr_generators(x: &Su3Matrix) -> [f64; 8] {
        generator_traces(&Self::pack([x; LANES])).map(|v| v[0])
    }

    fn alg_matrix(p: &[f64; 8]) -> Su3Matrix {
        let h = hermitian_from_components(p, 0.5);
        Su3Matrix(std::array::from_fn(|k| Complex64::i() * h.0[k]))
    }

    fn project(x: &Su3Matrix) -> Su3Matrix {
        let row = |r: usize| [x.at(r, 0), x.at(r, 1), x.at(r, 2)];
        let norm = |v: &[Complex64; 3]| v.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
        let mut a = row(0);
        let n = norm(&a);
        a.iter_mut().for_each(|z| *z /= n);
        let mut b = row(1);
        let overlap: Complex64 = a.iter().zip(&b).map(|(ai, bi)| ai.conj() * bi).sum();
        b.iter_mut().zip(&a).for_each(|(bi, ai)| *bi -= overlap * ai);
        let n = norm(&b);
        b.iter_mut().for_each(|z| *z /= n);
        let c = [
            (a[1] * b[2] - a[2] * b[1]).conj(),
            (a[2] * b[0] - a[0] * b[2]).conj(),
            (a[0] * b[1] - a[1] * b[0]).conj(),
        ];
        Su3Matrix([a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2]])
    }

    fn haar(rng: &mut SiteRng) -> Su3Matrix {
        // Gram-Schmidt of a complex Ginibre matrix is Haar on U(3); completing the third row
        // by the cross product makes it Haar on SU(3).
        let g = Su3Matrix(std::array::from_fn(|_| Complex64::new(rng.normal(), rng.normal())));
        Self::project(&g)
    }

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
            for l in 0..LANES {
                Self::set_lane(u, l, &Self::exp(&alg_lane::<Self>(p, l), eps).mul(&Self::lane(u, l)));
            }
        }
    }

    fn unitarity_violation(x: &Su3Matrix) -> f64 {
        // x x^dagger is Hermitian: its upper triangle (row dot products) suffices; squared
        // moduli and one square root (|z| by hypot per entry cost more than the rest)
        let row = |i: usize| &x.0[3 * i..3 * i + 3];
        let dot = |i: usize, j: usize| -> Complex64 { (0..3).map(|k| row(i)[k] * row(j)[k].conj()).sum() };
        let mut worst = (x.det() - C1).norm_sqr();
        for i in 0..3 {
            worst = worst.max((dot(i, i).re - 1.0).powi(2));
            for j in i + 1..3 {
                worst = worst.max(dot(i, j).norm_sqr());
            }
        }
        worst.sqrt()
    }

    const COORDINATES: usize = 18;
    fn coordinates(x: &Su3Matrix, out: &mut [f64]) {
        x.write_reals(out);
    }
    fn from_coordinates(c: &[f64]) -> Su3Matrix {
        Self::project(&Su3Matrix::read_reals(c))
    }
    fn coordinate_tangent(x: &Su3Matrix, a: usize, out: &mut [f64]) {
        let mut generator = Self::Alg::default();
        generator[a] = 1.0;
        Self::alg_matrix(&generator).mul(x).write_reals(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
