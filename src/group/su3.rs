//! SU(3): 3x3 special unitary matrices, generators T_a = i lambda_a / 2 (Gell-Mann lambda_a).

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
/// 1/sqrt(3), the normalisation of lambda_8.
pub(crate) const INV_SQRT3: f64 = 0.577_350_269_189_625_8;

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
        // Re tr(T_a X) = -Im tr(lambda_a X) / 2 from the entries (k = 3 row + col)
        let (re, im) = (|k: usize| x.0[k].re, |k: usize| x.0[k].im);
        [
            -0.5 * (im(1) + im(3)),
            -0.5 * (re(1) - re(3)),
            -0.5 * (im(0) - im(4)),
            -0.5 * (im(2) + im(6)),
            -0.5 * (re(2) - re(6)),
            -0.5 * (im(5) + im(7)),
            -0.5 * (re(5) - re(7)),
            -0.5 * INV_SQRT3 * (im(0) + im(4) - 2.0 * im(8)),
        ]
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
