//! SU(3): 3x3 special unitary matrices, generators T_a = i lambda_a / 2 (Gell-Mann lambda_a).

use super::packed::{LANES, Lanes, PackedMatrix, Su3Lanes, fma};
use super::{Group, LinkMatrix};
use crate::rng::SiteRng;
use num_complex::Complex64;

/// The group SU(3). Plaquette normalisation N = 3: Re tr P / 3 is 1 on a cold start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Su3;

/// A 3x3 complex matrix stored row-major: `m[3 * row + col]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Su3Matrix(pub [Complex64; 9]);

const C0: Complex64 = Complex64::new(0.0, 0.0);
const C1: Complex64 = Complex64::new(1.0, 0.0);
const SQRT3: f64 = 1.732_050_807_568_877_2;

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
    let d8 = q(p[7]) / SQRT3;
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

/// Re tr(T_a X) = -Im tr(lambda_a X) / 2 for a = 1..8, from the entries of X (k = 3 row + col).
#[inline(always)]
fn generator_traces(re: impl Fn(usize) -> f64, im: impl Fn(usize) -> f64) -> [f64; 8] {
    [
        -0.5 * (im(1) + im(3)),
        -0.5 * (re(1) - re(3)),
        -0.5 * (im(0) - im(4)),
        -0.5 * (im(2) + im(6)),
        -0.5 * (re(2) - re(6)),
        -0.5 * (im(5) + im(7)),
        -0.5 * (re(5) - re(7)),
        -0.5 * (im(0) + im(4) - 2.0 * im(8)) / SQRT3,
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

/// Largest squared Frobenius norm of X for which [`exp_mul_lanes`] uses its power series.
const SERIES_MAX_NORM_SQR: f64 = 4.0;

/// u_l <- exp(eps P_l) u_l for LANES links at once. exp(X) = f0 + f1 X + f2 X^2 with the
/// coefficients summed from the Taylor series, reducing X^n by the Cayley-Hamilton theorem
/// X^3 = (tr X^2 / 2) X + det(X) (traceless X): X^n = p_n + q_n X + r_n X^2 with
/// p_{n+1} = r_n det X, q_{n+1} = p_n + r_n tr X^2 / 2, r_{n+1} = q_n. The series is cut
/// where its remainder is below 1e-17 (exact to round-off). Returns false, changing nothing, when
/// some |X|^2 exceeds [`SERIES_MAX_NORM_SQR`] (the caller then uses [`Su3::exp`]).
fn exp_mul_series(p: &[[f64; 8]; LANES], eps: f64, u: &mut Su3Lanes) -> bool {
    let lanes = |f: &dyn Fn(usize) -> f64| -> Lanes { std::array::from_fn(f) };
    // X = eps sum p_a T_a = i H' with H' = (eps/2) sum p_a lambda_a: X.re = -Im H', X.im = Re H'
    let h = 0.5 * eps;
    let c: [Lanes; 8] = std::array::from_fn(|a| std::array::from_fn(|l| h * p[l][a]));
    let d8 = lanes(&|l| c[7][l] / SQRT3);
    let neg = |v: &Lanes| v.map(|x| -x);
    let zero = [0.0; LANES];
    let x = Su3Lanes {
        re: [zero, c[1], c[4], neg(&c[1]), zero, c[6], neg(&c[4]), neg(&c[6]), zero],
        im: [
            lanes(&|l| c[2][l] + d8[l]),
            c[0],
            c[3],
            c[0],
            lanes(&|l| d8[l] - c[2][l]),
            c[5],
            c[3],
            c[5],
            lanes(&|l| -2.0 * d8[l]),
        ],
    };
    let x2 = x.mul(&x);
    let half_tr = lanes(&|l| 0.5 * (x2.re[0][l] + x2.re[4][l] + x2.re[8][l]));
    let norm_sqr = half_tr.map(|t| -2.0 * t);
    if norm_sqr.iter().any(|&n| n > SERIES_MAX_NORM_SQR) {
        return false;
    }
    let (det_re, det_im) = det_lanes(&x);
    // The remainder of the matrix series after N terms is below sum_{n>N} s^n/n! for
    // s = |X|_F >= |X|_2, whatever the (exact) Cayley-Hamilton representation of the terms:
    // take N with s^(N+1)/(N+1)! e^s < 1e-17 for the largest s of the lanes.
    let s_max = norm_sqr.iter().cloned().fold(0.0, f64::max).sqrt();
    let (mut terms, mut tail) = (0, s_max.exp());
    while tail >= 1e-17 && terms < SERIES_MAX_TERMS {
        terms += 1;
        tail *= s_max * RECIPROCALS[terms];
    }
    // Horner: c <- 1 + X c / n for n = N..1 gives sum_{n<=N} X^n/n! = f0 + f1 X + f2 X^2,
    // with X (p + q X + r X^2) = r det X + (p + r tr X^2 / 2) X + q X^2 (all lanes at once)
    let (mut f0r, mut f0i, mut f1r, mut f1i, mut f2r, mut f2i) = ([1.0; LANES], zero, zero, zero, zero, zero);
    for &inv in RECIPROCALS[1..=terms].iter().rev() {
        let p_re = lanes(&|l| 1.0 + (f2r[l] * det_re[l] - f2i[l] * det_im[l]) * inv);
        let p_im = lanes(&|l| (f2r[l] * det_im[l] + f2i[l] * det_re[l]) * inv);
        let q_re = lanes(&|l| (f0r[l] + f2r[l] * half_tr[l]) * inv);
        let q_im = lanes(&|l| (f0i[l] + f2i[l] * half_tr[l]) * inv);
        let r_re = lanes(&|l| f1r[l] * inv);
        let r_im = lanes(&|l| f1i[l] * inv);
        (f0r, f0i, f1r, f1i, f2r, f2i) = (p_re, p_im, q_re, q_im, r_re, r_im);
    }
    let mut e = Su3Lanes::zero();
    for k in 0..9 {
        for l in 0..LANES {
            let (dr, di) = if k % 4 == 0 { (f0r[l], f0i[l]) } else { (0.0, 0.0) };
            e.re[k][l] = dr
                + fma(f1r[l], x.re[k][l], -f1i[l] * x.im[k][l])
                + fma(f2r[l], x2.re[k][l], -f2i[l] * x2.im[k][l]);
            e.im[k][l] = di
                + fma(f1r[l], x.im[k][l], f1i[l] * x.re[k][l])
                + fma(f2r[l], x2.im[k][l], f2i[l] * x2.re[k][l]);
        }
    }
    *u = e.mul(u);
    true
}

/// The determinant of every lane, as (real parts, imaginary parts), computed lane-wise.
fn det_lanes(x: &Su3Lanes) -> (Lanes, Lanes) {
    let (mut dr, mut di) = ([0.0; LANES], [0.0; LANES]);
    for l in 0..LANES {
        let e = |k: usize| (x.re[k][l], x.im[k][l]);
        let mul = |(ar, ai): (f64, f64), (br, bi): (f64, f64)| (ar * br - ai * bi, ar * bi + ai * br);
        let minor = |a: usize, b: usize, c: usize, d: usize| {
            let (p, q) = (mul(e(a), e(b)), mul(e(c), e(d)));
            (p.0 - q.0, p.1 - q.1)
        };
        let terms =
            [mul(e(0), minor(4, 8, 5, 7)), mul(e(1), minor(3, 8, 5, 6)), mul(e(2), minor(3, 7, 4, 6))];
        dr[l] = terms[0].0 - terms[1].0 + terms[2].0;
        di[l] = terms[0].1 - terms[1].1 + terms[2].1;
    }
    (dr, di)
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

    #[inline]
    fn re_tr_generators(x: &Su3Matrix) -> [f64; 8] {
        generator_traces(|k| x.0[k].re, |k| x.0[k].im)
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

    type Packed = Su3Lanes;

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

    #[inline(always)]
    fn packed_re_trace(x: &Su3Lanes) -> Lanes {
        std::array::from_fn(|l| x.re[0][l] + x.re[4][l] + x.re[8][l])
    }

    #[inline(always)]
    fn packed_re_tr_generators(x: &Su3Lanes) -> [[f64; 8]; LANES] {
        std::array::from_fn(|l| generator_traces(|k| x.re[k][l], |k| x.im[k][l]))
    }

    fn exp_mul_packed(p: &[[f64; 8]; LANES], eps: f64, u: &mut Su3Lanes) {
        if !exp_mul_series(p, eps, u) {
            for (l, pl) in p.iter().enumerate() {
                Self::set_lane(u, l, &Self::exp(pl, eps).mul(&Self::lane(u, l)));
            }
        }
    }

    fn unitarity_violation(x: &Su3Matrix) -> f64 {
        let uu = x.mul_adj(x).sub(&Su3Matrix::identity());
        let worst = uu.0.iter().map(|z| z.norm()).fold(0.0, f64::max);
        worst.max((x.det() - C1).norm())
    }
}
