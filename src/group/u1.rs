//! U(1): links are unit complex numbers e^{i theta}; the generator is T = i.

use super::{Group, LinkMatrix};
use crate::rng::SiteRng;
use num_complex::Complex64;

/// The group U(1). Plaquette normalisation N = 1, so Re tr P = cos(theta_P).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct U1;

impl LinkMatrix for Complex64 {
    fn zero() -> Self {
        Complex64::new(0.0, 0.0)
    }
    fn identity() -> Self {
        Complex64::new(1.0, 0.0)
    }
    #[inline]
    fn mul(&self, b: &Self) -> Self {
        self * b
    }
    #[inline]
    fn mul_adj(&self, b: &Self) -> Self {
        self * b.conj()
    }
    #[inline]
    fn adj_mul(&self, b: &Self) -> Self {
        self.conj() * b
    }
    #[inline]
    fn adj(&self) -> Self {
        self.conj()
    }
    #[inline]
    fn add(&self, b: &Self) -> Self {
        self + b
    }
    #[inline]
    fn sub(&self, b: &Self) -> Self {
        self - b
    }
    #[inline]
    fn scale(&self, s: f64) -> Self {
        self * s
    }
    #[inline]
    fn add_scalar(&self, z: Complex64) -> Self {
        self + z
    }
    #[inline]
    fn trace(&self) -> Complex64 {
        *self
    }
    #[inline]
    fn re_tr_mul(&self, b: &Self) -> f64 {
        self.re * b.re - self.im * b.im
    }
    fn norm_sqr(&self) -> f64 {
        Complex64::norm_sqr(self)
    }
    fn write_reals(&self, out: &mut [f64]) {
        out[0] = self.re;
        out[1] = self.im;
    }
    fn read_reals(reals: &[f64]) -> Self {
        Complex64::new(reals[0], reals[1])
    }
}

impl Group for U1 {
    type Elem = Complex64;
    type Alg = [f64; 1];
    const NC: usize = 1;
    const ALG_DIM: usize = 1;
    const NAME: &'static str = "u1";

    #[inline]
    fn exp(p: &[f64; 1], eps: f64) -> Complex64 {
        Complex64::from_polar(1.0, eps * p[0])
    }
    #[inline]
    fn re_tr_generators(x: &Complex64) -> [f64; 1] {
        [-x.im] // Re(i x)
    }
    fn alg_matrix(p: &[f64; 1]) -> Complex64 {
        Complex64::new(0.0, p[0])
    }
    fn project(x: &Complex64) -> Complex64 {
        x / x.norm()
    }
    fn haar(rng: &mut SiteRng) -> Complex64 {
        Complex64::from_polar(1.0, std::f64::consts::TAU * rng.uniform())
    }
    fn unitarity_violation(x: &Complex64) -> f64 {
        (x.norm_sqr() - 1.0).abs()
    }

    const COORDINATES: usize = 1;
    fn coordinates(x: &Complex64, out: &mut [f64]) {
        out[0] = x.arg().rem_euclid(std::f64::consts::TAU);
    }
    fn from_coordinates(c: &[f64]) -> Complex64 {
        Complex64::from_polar(1.0, c[0])
    }
    fn coordinate_tangent(_x: &Complex64, _a: usize, out: &mut [f64]) {
        out[0] = 1.0;
    }
}
