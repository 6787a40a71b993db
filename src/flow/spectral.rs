//! Conjugation-equivariant maps of SU(3) matrices that act on their eigenvalues: the kernels
//! of the spectral flows of arXiv 2008.05456.
//!
//! A matrix W = V diag(e^{i theta_k}) V^dagger goes to W' = F W with F = f(W) =
//! V diag(e^{i delta_k}) V^dagger: the eigenvectors stay, the eigenphases move to
//! theta'_k = theta_k + delta_k. The shifts are the gradient, projected on sum_k theta_k =
//! const (so det W' = 1), of the class function sum_k v(theta_k):
//!
//!   delta_k = v'(theta_k) - (1/3) sum_j v'(theta_j),
//!   v'(theta) = sum_{n=1..K} a_n cos(n theta) + b_n sin(n theta).
//!
//! The shifts are symmetric under permutations of the eigenvalues and periodic in each phase,
//! so F is a function of W alone and f(X W X^dagger) = X f(W) X^dagger. The coefficients
//! come from unbounded network outputs r as a_n = c tanh(r) / (sqrt(2) n K) (b_n likewise),
//! so |v''| <= c = 0.9 < 1: the map theta -> theta + delta is then a diffeomorphism of the
//! maximal torus, whatever the network outputs, and its inverse is found by Newton's method.
//!
//! The log-Jacobian with respect to the Haar measure, whose density in the eigenphases is
//! prod_{i<j} |e^{i theta_i} - e^{i theta_j}|^2, is
//!
//!   log J = ln det(1 + P D P)|_{sum = 0} + sum_{i<j} ln [sin^2(theta'_ij / 2) / sin^2(theta_ij / 2)],
//!
//! with D = diag(v''(theta_k)), P the projector on the plane sum = 0, where the determinant is
//! 1 + (2/3) sum_k d_k + (1/3)(d_1 d_2 + d_1 d_3 + d_2 d_3), and theta_ij = theta_j - theta_i.
//! F is evaluated by Newton interpolation on the eigenvalues (exact by Cayley-Hamilton), with
//! divided differences and the Vandermonde ratios written in forms that stay accurate when
//! two eigenvalues approach each other.
//!
//! Gradients (for training and flow HMC) come from forward-mode dual numbers through the same
//! code; the eigenvalues are found in f64 and differentiated through the characteristic
//! polynomial lambda^3 - t lambda^2 + conj(t) lambda - 1 (t = tr W): d lambda = -dp / p'(lambda).

use super::ops::{storage_like, tensor_like, tensor_values, values};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use num_complex::Complex64;
use rayon::prelude::*;
use std::ops::{Add, Div, Mul, Neg, Sub};

/// The bound c on |v''| (the Lipschitz constant of the eigenphase shifts).
const LIPSCHITZ: f64 = 0.9;

/// The most Fourier modes K a kernel may have.
pub const MAX_MODES: usize = 8;

/// Real coordinates of a 3 x 3 complex matrix: entries row-major as (re, im) pairs.
const REALS: usize = 18;

/// Scalars the kernel is written for: f64 for values, [`Dual`] for derivatives.
trait Scalar:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> + Neg<Output = Self>
{
    fn constant(x: f64) -> Self;
    fn value(self) -> f64;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn atan2(self, x: Self) -> Self;
    fn ln(self) -> Self;
    fn tanh(self) -> Self;
}

impl Scalar for f64 {
    fn constant(x: f64) -> Self {
        x
    }
    fn value(self) -> f64 {
        self
    }
    fn sin(self) -> Self {
        f64::sin(self)
    }
    fn cos(self) -> Self {
        f64::cos(self)
    }
    fn atan2(self, x: Self) -> Self {
        f64::atan2(self, x)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
}

/// A number with one directional derivative: v + d epsilon, epsilon^2 = 0.
#[derive(Clone, Copy, Debug)]
struct Dual {
    v: f64,
    d: f64,
}

impl Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual { v: self.v + o.v, d: self.d + o.d }
    }
}

impl Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        Dual { v: self.v - o.v, d: self.d - o.d }
    }
}

impl Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual { v: self.v * o.v, d: self.d * o.v + self.v * o.d }
    }
}

impl Div for Dual {
    type Output = Dual;
    fn div(self, o: Dual) -> Dual {
        let v = self.v / o.v;
        Dual { v, d: (self.d - v * o.d) / o.v }
    }
}

impl Neg for Dual {
    type Output = Dual;
    fn neg(self) -> Dual {
        Dual { v: -self.v, d: -self.d }
    }
}

impl Scalar for Dual {
    fn constant(x: f64) -> Self {
        Dual { v: x, d: 0.0 }
    }
    fn value(self) -> f64 {
        self.v
    }
    fn sin(self) -> Self {
        let (s, c) = self.v.sin_cos();
        Dual { v: s, d: c * self.d }
    }
    fn cos(self) -> Self {
        let (s, c) = self.v.sin_cos();
        Dual { v: c, d: -s * self.d }
    }
    fn atan2(self, x: Self) -> Self {
        Dual { v: self.v.atan2(x.v), d: (x.v * self.d - self.v * x.d) / (x.v * x.v + self.v * self.v) }
    }
    fn ln(self) -> Self {
        Dual { v: self.v.ln(), d: self.d / self.v }
    }
    fn tanh(self) -> Self {
        let t = self.v.tanh();
        Dual { v: t, d: (1.0 - t * t) * self.d }
    }
}

/// sin(x) / x, accurate near 0.
fn sinc<T: Scalar>(x: T) -> T {
    if x.value().abs() < 1e-3 {
        let x2 = x * x;
        T::constant(1.0) - x2 * (T::constant(1.0 / 6.0) - x2 * T::constant(1.0 / 120.0))
    } else {
        x.sin() / x
    }
}

/// A complex number over a [`Scalar`].
#[derive(Clone, Copy, Debug)]
struct Cx<T> {
    re: T,
    im: T,
}

impl<T: Scalar> Cx<T> {
    fn new(re: T, im: T) -> Self {
        Cx { re, im }
    }
    fn constant(z: Complex64) -> Self {
        Cx::new(T::constant(z.re), T::constant(z.im))
    }
    /// e^{i phi}.
    fn cis(phi: T) -> Self {
        Cx::new(phi.cos(), phi.sin())
    }
    fn conj(self) -> Self {
        Cx::new(self.re, -self.im)
    }
    fn scale(self, s: T) -> Self {
        Cx::new(self.re * s, self.im * s)
    }
}

impl<T: Scalar> Add for Cx<T> {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Cx::new(self.re + o.re, self.im + o.im)
    }
}

impl<T: Scalar> Sub for Cx<T> {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Cx::new(self.re - o.re, self.im - o.im)
    }
}

impl<T: Scalar> Mul for Cx<T> {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        Cx::new(self.re * o.re - self.im * o.im, self.re * o.im + self.im * o.re)
    }
}

impl<T: Scalar> Div for Cx<T> {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        let norm = o.re * o.re + o.im * o.im;
        (self * o.conj()).scale(T::constant(1.0) / norm)
    }
}

/// A 3 x 3 complex matrix, row-major.
type Matrix<T> = [Cx<T>; 9];

fn matrix_from_reals<T: Scalar>(w: &[T]) -> Matrix<T> {
    std::array::from_fn(|i| Cx::new(w[2 * i], w[2 * i + 1]))
}

fn matrix_to_reals<T: Scalar>(m: &Matrix<T>) -> [T; REALS] {
    std::array::from_fn(|i| if i % 2 == 0 { m[i / 2].re } else { m[i / 2].im })
}

fn matrix_product<T: Scalar>(a: &Matrix<T>, b: &Matrix<T>) -> Matrix<T> {
    std::array::from_fn(|k| {
        let (r, c) = (k / 3, k % 3);
        a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c]
    })
}

/// W - z 1.
fn minus_scalar<T: Scalar>(w: &Matrix<T>, z: Cx<T>) -> Matrix<T> {
    let mut out = *w;
    for k in [0, 4, 8] {
        out[k] = out[k] - z;
    }
    out
}

/// The three eigenvalues of an SU(3) (or any unitary 3 x 3) matrix, in f64, accurate also
/// when they nearly coincide: with A = z W for the z in {1, -i, -1, i} that keeps
/// det(1 + A) largest, the Cayley transform C = i (1 - A)(1 + A)^-1 is Hermitian with
/// eigenvalues tan(alpha_k / 2), found by the trigonometric formula for Hermitian 3 x 3
/// matrices; then lambda_k = e^{i alpha_k} / z.
fn eigenvalues(w: &[f64]) -> [Complex64; 3] {
    let w: [Complex64; 9] = std::array::from_fn(|i| Complex64::new(w[2 * i], w[2 * i + 1]));
    let one = Complex64::new(1.0, 0.0);
    let det = |m: &[Complex64; 9]| {
        m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
            + m[2] * (m[3] * m[7] - m[4] * m[6])
    };
    let shifted = |z: Complex64, sign: f64| -> [Complex64; 9] {
        std::array::from_fn(|k| if k % 4 == 0 { one + sign * z * w[k] } else { sign * z * w[k] })
    };
    let z = [one, -Complex64::i(), -one, Complex64::i()]
        .into_iter()
        .max_by(|a, b| det(&shifted(*a, 1.0)).norm().total_cmp(&det(&shifted(*b, 1.0)).norm()))
        .expect("four rotations");
    let (plus, minus) = (shifted(z, 1.0), shifted(z, -1.0));
    let d = det(&plus);
    // (1 + A)^-1 = adj(1 + A) / det
    let cofactor = |r: usize, c: usize| {
        let (r1, r2, c1, c2) = ((r + 1) % 3, (r + 2) % 3, (c + 1) % 3, (c + 2) % 3);
        plus[3 * r1 + c1] * plus[3 * r2 + c2] - plus[3 * r1 + c2] * plus[3 * r2 + c1]
    };
    let inverse: [Complex64; 9] = std::array::from_fn(|k| cofactor(k % 3, k / 3) / d);
    let cayley: [Complex64; 9] = std::array::from_fn(|k| {
        let (r, c) = (k / 3, k % 3);
        Complex64::i() * (0..3).map(|j| minus[3 * r + j] * inverse[3 * j + c]).sum::<Complex64>()
    });
    let hermitian: [Complex64; 9] =
        std::array::from_fn(|k| 0.5 * (cayley[k] + cayley[3 * (k % 3) + k / 3].conj()));
    let tangents = hermitian_eigenvalues(&hermitian);
    tangents.map(|t| Complex64::from_polar(1.0, 2.0 * t.atan()) / z)
}

/// The eigenvalues of a Hermitian 3 x 3 matrix by the trigonometric formula (O. K. Smith,
/// 1961): with B = H - m 1, m = tr H / 3, p^2 = tr B^2 / 6, they are
/// m + 2 p cos(phi + 2 pi k / 3), phi = acos(det B / (2 p^3)) / 3.
fn hermitian_eigenvalues(h: &[Complex64; 9]) -> [f64; 3] {
    let m = (h[0].re + h[4].re + h[8].re) / 3.0;
    let b: [Complex64; 9] = std::array::from_fn(|k| if k % 4 == 0 { h[k] - m } else { h[k] });
    let p = (b.iter().map(|z| z.norm_sqr()).sum::<f64>() / 6.0).sqrt();
    if p < 1e-300 {
        return [m; 3];
    }
    let n = b.map(|z| z / p);
    let det = (n[0] * (n[4] * n[8] - n[5] * n[7]) - n[1] * (n[3] * n[8] - n[5] * n[6])
        + n[2] * (n[3] * n[7] - n[4] * n[6]))
        .re;
    let phi = (0.5 * det).clamp(-1.0, 1.0).acos() / 3.0;
    let (first, third) = (m + 2.0 * p * phi.cos(), m + 2.0 * p * (phi + std::f64::consts::TAU / 3.0).cos());
    [first, 3.0 * m - first - third, third]
}

/// The eigenphases, differentiable: the f64 `roots` carry the derivative of one Newton step
/// on the characteristic polynomial of `w` (their values are kept, since near coinciding
/// roots a Newton step on the rounded polynomial would spoil them).
fn eigenphases<T: Scalar>(w: &Matrix<T>, roots: &[Complex64; 3]) -> [T; 3] {
    let t = w[0] + w[4] + w[8];
    std::array::from_fn(|k| {
        let l = Cx::constant(roots[k]);
        let value = ((l - t) * l + t.conj()) * l - Cx::new(T::constant(1.0), T::constant(0.0));
        let slope = (l.scale(T::constant(3.0)) - t.scale(T::constant(2.0))) * l + t.conj();
        let rounding = Cx::new(T::constant(value.re.value()), T::constant(value.im.value()));
        let l = l - (value - rounding) / slope;
        l.im.atan2(l.re)
    })
}

/// The shift function: coefficients (a_n, b_n) of v'(theta) = sum a_n cos + b_n sin.
struct Shift<T> {
    coefficients: [(T, T); MAX_MODES],
    modes: usize,
}

impl<T: Scalar> Shift<T> {
    /// The bounded coefficients from raw network outputs (a_1, b_1, a_2, b_2, ...).
    fn new(raw: &[T]) -> Self {
        let modes = raw.len() / 2;
        let mut coefficients = [(T::constant(0.0), T::constant(0.0)); MAX_MODES];
        for (n, c) in coefficients.iter_mut().enumerate().take(modes) {
            let bound = T::constant(LIPSCHITZ / (std::f64::consts::SQRT_2 * (n + 1) as f64 * modes as f64));
            *c = (bound * raw[2 * n].tanh(), bound * raw[2 * n + 1].tanh());
        }
        Shift { coefficients, modes }
    }

    /// v'(theta) and v''(theta).
    fn at(&self, theta: T) -> (T, T) {
        let (c1, s1) = (theta.cos(), theta.sin());
        let (mut c, mut s) = (c1, s1);
        let (mut value, mut slope) = (T::constant(0.0), T::constant(0.0));
        for (n, &(a, b)) in self.coefficients[..self.modes].iter().enumerate() {
            let n = T::constant((n + 1) as f64);
            value = value + a * c + b * s;
            slope = slope + n * (b * c - a * s);
            (c, s) = (c * c1 - s * s1, s * c1 + c * s1);
        }
        (value, slope)
    }

    /// (v'(theta_j) - v'(theta_i)) / (2 sin((theta_j - theta_i)/2)), written with Chebyshev
    /// polynomials sin(n x) / sin(x) = U_{n-1}(cos x), so that it stays finite as the
    /// phases meet.
    fn divided_difference(&self, theta_i: T, theta_j: T) -> T {
        let sigma = (theta_i + theta_j) * T::constant(0.5);
        let x = ((theta_j - theta_i) * T::constant(0.5)).cos();
        let (c1, s1) = (sigma.cos(), sigma.sin());
        let (mut c, mut s) = (c1, s1);
        let (mut u_previous, mut u) = (T::constant(0.0), T::constant(1.0));
        let mut sum = T::constant(0.0);
        for &(a, b) in &self.coefficients[..self.modes] {
            sum = sum + u * (b * c - a * s);
            (c, s) = (c * c1 - s * s1, s * c1 + c * s1);
            (u_previous, u) = (u, T::constant(2.0) * x * u - u_previous);
        }
        sum
    }
}

/// The pairs of eigenvalues.
const PAIRS: [(usize, usize); 3] = [(0, 1), (0, 2), (1, 2)];

/// What the map does to one pair (i, j) of eigenphases.
struct PairTerms<T> {
    /// sin((delta_j - delta_i)/2) / sin((theta_j - theta_i)/2).
    shift_ratio: T,
    /// sin(theta'_ij / 2) / sin(theta_ij / 2) (positive: the map keeps the order).
    vandermonde_ratio: T,
}

fn pair_terms<T: Scalar>(
    shift: &Shift<T>,
    theta: &[T; 3],
    delta: &[T; 3],
    (i, j): (usize, usize),
) -> PairTerms<T> {
    let half_delta = (delta[j] - delta[i]) * T::constant(0.5);
    let shift_ratio = sinc(half_delta) * shift.divided_difference(theta[i], theta[j]);
    let vandermonde_ratio = half_delta.cos() + ((theta[j] - theta[i]) * T::constant(0.5)).cos() * shift_ratio;
    PairTerms { shift_ratio, vandermonde_ratio }
}

/// g(W) by Newton interpolation on the nodes `lambda` with values `g`, where `first(i, j)`
/// is the divided difference g[lambda_i, lambda_j]. The pair farthest apart is taken as the
/// outer nodes, so that the second divided difference divides by the largest distance.
fn interpolate<T: Scalar>(
    w: &Matrix<T>,
    lambda: &[Cx<T>; 3],
    g: &[Cx<T>; 3],
    first: impl Fn(usize, usize) -> Cx<T>,
) -> Matrix<T> {
    let distance = |(i, j): (usize, usize)| {
        let d = lambda[j] - lambda[i];
        d.re.value().hypot(d.im.value())
    };
    let (i, j) = PAIRS.into_iter().max_by(|a, b| distance(*a).total_cmp(&distance(*b))).expect("pairs");
    let k = 3 - i - j;
    let (d_ik, d_kj) = (first(i, k), first(k, j));
    let second = (d_kj - d_ik) / (lambda[j] - lambda[i]);
    let (a, b) = (minus_scalar(w, lambda[i]), minus_scalar(w, lambda[k]));
    let ab = matrix_product(&a, &b);
    let mut out: Matrix<T> = std::array::from_fn(|n| d_ik * a[n] + second * ab[n]);
    for n in [0, 4, 8] {
        out[n] = out[n] + g[i];
    }
    out
}

/// The map at one matrix: F = f(W) as 18 reals and log J.
fn kernel<T: Scalar>(w: &[T], raw: &[T], roots: &[Complex64; 3]) -> ([T; REALS], T) {
    let w = matrix_from_reals(w);
    let theta = eigenphases(&w, roots);
    let shift = Shift::new(raw);
    let derivatives = theta.map(|t| shift.at(t));
    let mean = (derivatives[0].0 + derivatives[1].0 + derivatives[2].0) * T::constant(1.0 / 3.0);
    let delta = derivatives.map(|(s, _)| s - mean);
    let [d0, d1, d2] = derivatives.map(|(_, d)| d);
    let jacobian = T::constant(1.0)
        + T::constant(2.0 / 3.0) * (d0 + d1 + d2)
        + T::constant(1.0 / 3.0) * (d0 * d1 + d0 * d2 + d1 * d2);
    let terms = PAIRS.map(|pair| pair_terms(&shift, &theta, &delta, pair));
    let log_j = terms.iter().fold(jacobian.ln(), |l, t| l + T::constant(2.0) * t.vandermonde_ratio.ln());
    let lambda = theta.map(Cx::cis);
    let first = |i: usize, j: usize| {
        let (i, j) = (i.min(j), i.max(j));
        let t = &terms[PAIRS.iter().position(|&p| p == (i, j)).expect("a pair")];
        Cx::cis((delta[i] + delta[j] - theta[i] - theta[j]) * T::constant(0.5)).scale(t.shift_ratio)
    };
    let f = interpolate(&w, &lambda, &delta.map(Cx::cis), first);
    (matrix_to_reals(&f), log_j)
}

/// F = f(W) and log J of the map at `w` (18 reals of an SU(3) matrix) with the raw
/// coefficients `raw` (2K values), in f64.
pub fn spectral_map(w: &[f64], raw: &[f64]) -> ([f64; REALS], f64) {
    kernel(w, raw, &eigenvalues(w))
}

/// The inverse of the map: for W' = f(W) W (18 reals `w_new`), the matrix F^dagger with
/// W = F^dagger W' (as 18 reals) and log J of the forward map at W. The eigenphases are found
/// by Newton's method on the maximal torus (the map is a diffeomorphism there).
pub fn invert_spectral_map(w_new: &[f64], raw: &[f64]) -> ([f64; REALS], f64) {
    let roots = eigenvalues(w_new);
    let target: [f64; 3] = roots.map(|l| l.im.atan2(l.re));
    let shift = Shift::<f64>::new(raw);
    let theta = solve_phases(&shift, &target);
    let delta = {
        let s = theta.map(|t| shift.at(t).0);
        let mean = (s[0] + s[1] + s[2]) / 3.0;
        s.map(|s| s - mean)
    };
    let terms = PAIRS.map(|pair| pair_terms(&shift, &theta, &delta, pair));
    // W = g(W') with g(e^{i theta'_k}) = e^{i theta_k}; g[l'_i, l'_j] =
    // e^{i (theta_i + theta_j - theta'_i - theta'_j) / 2} / vandermonde_ratio
    let first = |i: usize, j: usize| {
        let (i, j) = (i.min(j), i.max(j));
        let t = &terms[PAIRS.iter().position(|&p| p == (i, j)).expect("a pair")];
        Cx::cis(0.5 * (theta[i] + theta[j] - target[i] - target[j])).scale(1.0 / t.vandermonde_ratio)
    };
    let w_new_matrix = matrix_from_reals(w_new);
    let lambda_new = target.map(Cx::cis);
    let w_old = matrix_to_reals(&interpolate(&w_new_matrix, &lambda_new, &theta.map(Cx::cis), first));
    let (f, log_j) = spectral_map(&w_old, raw);
    let f = matrix_from_reals(&f);
    let f_dagger: Matrix<f64> = std::array::from_fn(|k| f[3 * (k % 3) + k / 3].conj());
    (matrix_to_reals(&f_dagger), log_j)
}

/// The phases theta (lifted to the reals) with theta_k + delta_k(theta) = target_k, by
/// damped Newton iteration in (theta_0, theta_1), theta_2 = sum(target) - theta_0 - theta_1.
fn solve_phases(shift: &Shift<f64>, target: &[f64; 3]) -> [f64; 3] {
    let total = target.iter().sum::<f64>();
    let residual = |x: [f64; 2]| -> ([f64; 2], [f64; 3]) {
        let theta = [x[0], x[1], total - x[0] - x[1]];
        let s = theta.map(|t| shift.at(t));
        let mean = (s[0].0 + s[1].0 + s[2].0) / 3.0;
        ([theta[0] + s[0].0 - mean - target[0], theta[1] + s[1].0 - mean - target[1]], s.map(|s| s.1))
    };
    let norm = |r: [f64; 2]| r[0].abs().max(r[1].abs());
    let mut x = [target[0], target[1]];
    let (mut r, mut d) = residual(x);
    for _ in 0..100 {
        if norm(r) < 1e-15 {
            break;
        }
        // d delta_k / d x_l with theta_2 = total - x_0 - x_1
        let j = [
            [1.0 + d[0] - (d[0] - d[2]) / 3.0, -(d[1] - d[2]) / 3.0],
            [-(d[0] - d[2]) / 3.0, 1.0 + d[1] - (d[1] - d[2]) / 3.0],
        ];
        let det = j[0][0] * j[1][1] - j[0][1] * j[1][0];
        let step = [(j[1][1] * r[0] - j[0][1] * r[1]) / det, (j[0][0] * r[1] - j[1][0] * r[0]) / det];
        let mut scale = 1.0;
        loop {
            let next = [x[0] - scale * step[0], x[1] - scale * step[1]];
            let (r_next, d_next) = residual(next);
            if norm(r_next) < norm(r) || scale < 1e-6 {
                (x, r, d) = (next, r_next, d_next);
                break;
            }
            scale *= 0.5;
        }
    }
    [x[0], x[1], total - x[0] - x[1]]
}

/// The fused spectral map on rows: for `w` [N, 18] (SU(3) matrices) and raw coefficients
/// `raw` [N, 2K] (K <= [`MAX_MODES`]), the tensor [N, 19] of F = f(W) (18 reals) and log J,
/// differentiable in both inputs.
pub fn spectral_kernel(w: &Tensor, raw: &Tensor) -> Result<Tensor> {
    let (rows, reals) = w.dims2()?;
    let (raw_rows, coefficients) = raw.dims2()?;
    if reals != REALS
        || raw_rows != rows
        || coefficients == 0
        || coefficients % 2 != 0
        || coefficients > 2 * MAX_MODES
    {
        candle_core::bail!(
            "spectral_kernel: shapes {:?} and {:?} do not fit [N, 18], [N, 2K]",
            w.dims(),
            raw.dims()
        );
    }
    w.contiguous()?.apply_op2(&raw.contiguous()?, SpectralKernel)
}

struct SpectralKernel;

impl CustomOp2 for SpectralKernel {
    fn name(&self) -> &'static str {
        "spectral_kernel"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (w, raw) = (values(s1, l1, "spectral_kernel")?, values(s2, l2, "spectral_kernel")?);
        let rows = w.len() / REALS;
        let k = raw.len() / rows;
        let mut out = vec![0.0; rows * (REALS + 1)];
        out.par_chunks_mut(REALS + 1).enumerate().for_each(|(r, out)| {
            let (f, log_j) = spectral_map(&w[r * REALS..][..REALS], &raw[r * k..][..k]);
            out[..REALS].copy_from_slice(&f);
            out[REALS] = log_j;
        });
        Ok((storage_like(out, s1), Shape::from((rows, REALS + 1))))
    }

    fn bwd(
        &self,
        w: &Tensor,
        raw: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (wv, rv, gv) = (tensor_values(w)?, tensor_values(raw)?, tensor_values(grad)?);
        let rows = wv.len() / REALS;
        let k = rv.len() / rows;
        let inputs = REALS + k;
        let mut grads = vec![0.0; rows * inputs];
        grads.par_chunks_mut(inputs).enumerate().for_each(|(r, out)| {
            let (w, raw, g) =
                (&wv[r * REALS..][..REALS], &rv[r * k..][..k], &gv[r * (REALS + 1)..][..REALS + 1]);
            let roots = eigenvalues(w);
            for (seed, out) in out.iter_mut().enumerate() {
                let lift = |x: &[f64], offset: usize| -> Vec<Dual> {
                    x.iter()
                        .enumerate()
                        .map(|(i, &v)| Dual { v, d: f64::from(u8::from(i + offset == seed)) })
                        .collect()
                };
                let (f, log_j) = kernel(&lift(w, 0), &lift(raw, REALS), &roots);
                *out = f.iter().zip(g).map(|(f, g)| f.d * g).sum::<f64>() + log_j.d * g[REALS];
            }
        });
        let (mut grad_w, mut grad_raw) = (Vec::with_capacity(rows * REALS), Vec::with_capacity(rows * k));
        for row in grads.chunks_exact(inputs) {
            grad_w.extend_from_slice(&row[..REALS]);
            grad_raw.extend_from_slice(&row[REALS..]);
        }
        Ok((Some(tensor_like(grad_w, w)?), Some(tensor_like(grad_raw, raw)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Su3Matrix;
    use crate::group::{Group, LinkMatrix, Su3};
    use crate::rng::{Purpose, StreamKey};
    use candle_core::{Device, Var};

    fn random_su3(seed: u64) -> [f64; REALS] {
        let mut rng = StreamKey::new(seed, Purpose::Test, 0).stream(0);
        let mut out = [0.0; REALS];
        Su3::haar(&mut rng).write_reals(&mut out);
        out
    }

    fn product(a: &[f64], b: &[f64]) -> [f64; REALS] {
        let (a, b) = (Su3Matrix::read_reals(a), Su3Matrix::read_reals(b));
        let mut out = [0.0; REALS];
        a.mul(&b).write_reals(&mut out);
        out
    }

    const RAW: [f64; 4] = [0.8, -1.3, 2.0, 0.4];

    #[test]
    fn the_map_is_conjugation_equivariant_unitary_and_invertible() {
        for seed in 0..20 {
            let (w, x) = (random_su3(seed), random_su3(seed + 100));
            let (f, log_j) = spectral_map(&w, &RAW);
            let f_matrix = Su3Matrix::read_reals(&f);
            assert!(Su3::unitarity_violation(&f_matrix) < 1e-12, "F is not in SU(3)");
            // f commutes with W
            assert!(
                f_matrix
                    .mul(&Su3Matrix::read_reals(&w))
                    .sub(&Su3Matrix::read_reals(&product(&w, &f)))
                    .norm_sqr()
                    < 1e-24
            );
            // f(X W X^dagger) = X f(W) X^dagger
            let xm = Su3Matrix::read_reals(&x);
            let mut conjugated = [0.0; REALS];
            xm.mul(&Su3Matrix::read_reals(&w)).mul_adj(&xm).write_reals(&mut conjugated);
            let (fc, log_jc) = spectral_map(&conjugated, &RAW);
            let expected = xm.mul(&f_matrix).mul_adj(&xm);
            assert!(Su3Matrix::read_reals(&fc).sub(&expected).norm_sqr() < 1e-24);
            assert!((log_j - log_jc).abs() < 1e-12);
            // inverse
            let w_new = product(&f, &w);
            let (f_dagger, log_j_inverse) = invert_spectral_map(&w_new, &RAW);
            let back = product(&f_dagger, &w_new);
            assert!(back.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-12), "seed {seed}");
            assert!((log_j - log_j_inverse).abs() < 1e-10);
        }
    }

    /// The gradients of the fused op against central differences of its values: in the raw
    /// coefficients, and in W along the group (W -> exp(h T_a) W; off the group the
    /// derivative is that of the characteristic-polynomial extension, which gradients never
    /// see, since every upstream change of W is a move on the group).
    #[test]
    fn gradients_match_finite_differences() {
        let w0 = random_su3(7);
        let w = Var::from_vec(w0.to_vec(), (1, REALS), &Device::Cpu).unwrap();
        let raw = Var::from_vec(RAW.to_vec(), (1, 4), &Device::Cpu).unwrap();
        let weights: Vec<f64> = (0..REALS + 1).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3).collect();
        let weights = Tensor::from_vec(weights, (1, REALS + 1), &Device::Cpu).unwrap();
        let objective = |w: &[f64], raw: &[f64]| -> f64 {
            let w = Tensor::from_vec(w.to_vec(), (1, REALS), &Device::Cpu).unwrap();
            let raw = Tensor::from_vec(raw.to_vec(), (1, raw.len()), &Device::Cpu).unwrap();
            (spectral_kernel(&w, &raw).unwrap() * &weights).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        let out = spectral_kernel(&w, &raw).unwrap();
        let grads = (out * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let (grad_w, grad_raw) = (
            tensor_values(grads.get(&w).unwrap()).unwrap(),
            tensor_values(grads.get(&raw).unwrap()).unwrap(),
        );
        let h = 1e-6;
        for i in 0..4 {
            let shifted = |d: f64| {
                let mut v = RAW.to_vec();
                v[i] += d;
                objective(&w0, &v)
            };
            let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
            assert!((fd - grad_raw[i]).abs() < 1e-7 * fd.abs().max(1.0), "raw {i}: {fd} vs {}", grad_raw[i]);
        }
        let base = Su3Matrix::read_reals(&w0);
        for a in 0..8 {
            let moved = |d: f64| {
                let mut p = [0.0; 8];
                p[a] = d;
                let mut v = [0.0; REALS];
                Su3::exp(&p, 1.0).mul(&base).write_reals(&mut v);
                objective(&v, &RAW)
            };
            let fd = (moved(h) - moved(-h)) / (2.0 * h);
            let mut tangent = [0.0; REALS];
            Su3::coordinate_tangent(&base, a, &mut tangent);
            let analytic: f64 = grad_w.iter().zip(&tangent).map(|(g, t)| g * t).sum();
            assert!((fd - analytic).abs() < 1e-7 * fd.abs().max(1.0), "generator {a}: {fd} vs {analytic}");
        }
        assert!(spectral_kernel(&w, &raw.narrow(1, 0, 3).unwrap()).is_err());
    }

    /// Near-degenerate spectra (close to the identity) keep F unitary and the Jacobian finite.
    #[test]
    fn nearly_degenerate_spectra_stay_accurate() {
        let mut p = [0.0; 8];
        p[2] = 1e-5;
        p[7] = 3e-6;
        let mut w = [0.0; REALS];
        Su3::exp(&p, 1.0).write_reals(&mut w);
        let (f, log_j) = spectral_map(&w, &RAW);
        assert!(log_j.is_finite());
        assert!(Su3::unitarity_violation(&Su3Matrix::read_reals(&f)) < 1e-8);
        let w_new = product(&f, &w);
        let (f_dagger, _) = invert_spectral_map(&w_new, &RAW);
        let back = product(&f_dagger, &w_new);
        assert!(back.iter().zip(&w).all(|(a, b)| (a - b).abs() < 1e-8));
    }
}
