//! Optimal rational approximations of 1/sqrt(x) (Zolotarev), for rational HMC: one flavour
//! of quarks has the weight det(M^dagger M)^{1/2}, whose pseudofermion action
//! phi^dagger (M^dagger M)^{-1/2} phi needs (M^dagger M)^{-1/2} as a sum of shifted inverses.
//!
//! Zolotarev's solution (as in openQCD's ratfcts module and Chiu et al., hep-lat/0206007): on
//! y in [1, b/a] with k = sqrt(1 - a/b) and K = K(k) the complete elliptic integral of modulus
//! k, the rational function of degree (n, n)
//!   R(y) = A prod_{l=1}^{n} (y + c_{2l}) / (y + c_{2l-1}),
//!   c_r = sn^2(r K / (2n+1); k) / cn^2(r K / (2n+1); k), r = 1..2n,
//! minimises the largest relative error delta = max |1 - sqrt(y) R(y)| when A is fixed so that
//! 1 - sqrt(y) R(y) oscillates between +delta and -delta. On [a, b] the function is
//! R(x / a) / sqrt(a), whose shifts are a c_r. The library computes all of it (no tables):
//! the Jacobi functions by the arithmetic-geometric mean (descending Landen transformation),
//! and A and delta from the extrema of sqrt(y) prod(...) located on a logarithmic grid and
//! refined by golden-section search.

use crate::error::{Error, Result};
use std::f64::consts::PI;

/// The Zolotarev approximation R(x) of 1/sqrt(x) on [a, b] (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Zolotarev {
    /// The spectral range [a, b].
    pub range: (f64, f64),
    /// The overall factor: R(x) = scale prod_l (x + p_l) / (x + q_l), p and q the shifts below.
    pub scale: f64,
    /// a c_{2l}, l = 1..n (increasing).
    pub numerator_shifts: Vec<f64>,
    /// a c_{2l-1}, l = 1..n (increasing).
    pub denominator_shifts: Vec<f64>,
    /// The largest relative error max |1 - sqrt(x) R(x)| on [a, b].
    pub delta: f64,
}

/// sn, cn, dn of u for the parameter m = k^2 (0 <= m < 1), by the descending Landen
/// transformation (Abramowitz and Stegun 16.4).
fn jacobi(u: f64, m: f64) -> (f64, f64, f64) {
    let (mut a, mut b) = (1.0f64, (1.0 - m).sqrt());
    let mut c = vec![m.sqrt()];
    let mut aa = vec![a];
    while c.last().is_some_and(|&c| c.abs() > 1e-17 * a) && c.len() < 64 {
        let (an, bn) = ((a + b) / 2.0, (a * b).sqrt());
        c.push((a - b) / 2.0);
        aa.push(an);
        a = an;
        b = bn;
    }
    let steps = c.len() - 1;
    let mut phi = 2f64.powi(steps as i32) * a * u;
    let mut previous = phi;
    for k in (1..=steps).rev() {
        previous = phi;
        phi = (phi + (c[k] / aa[k] * phi.sin()).asin()) / 2.0;
    }
    let (sn, cn) = (phi.sin(), phi.cos());
    let dn = if steps == 0 { 1.0 } else { cn / (previous - phi).cos() };
    (sn, cn, dn)
}

/// K(k) for the parameter m = k^2: pi / (2 AGM(1, sqrt(1 - m))).
fn complete_elliptic(m: f64) -> f64 {
    let (mut a, mut b) = (1.0f64, (1.0 - m).sqrt());
    // quadratic convergence: a few steps reach round-off, where a and b may keep differing
    // in the last bit, so the loop stops at 4 ulp
    for _ in 0..64 {
        if (a - b).abs() <= 4.0 * f64::EPSILON * a {
            break;
        }
        (a, b) = ((a + b) / 2.0, (a * b).sqrt());
    }
    PI / (2.0 * a)
}

impl Zolotarev {
    /// The approximation of degree (n, n) on [a, b], 0 < a < b, n >= 1: an error naming the
    /// bad argument otherwise.
    pub fn new(n: usize, a: f64, b: f64) -> Result<Self> {
        if !(a > 0.0 && b > a && b.is_finite()) {
            return Err(Error::Config(format!("rational approximation on [{a}, {b}]: need 0 < a < b")));
        }
        if n == 0 {
            return Err(Error::Config("rational approximation of degree 0: need n >= 1".into()));
        }
        let eps = a / b;
        let m = 1.0 - eps;
        let kk = complete_elliptic(m);
        let c: Vec<f64> = (1..=2 * n)
            .map(|r| {
                let (sn, cn, _) = jacobi(r as f64 * kk / (2 * n + 1) as f64, m);
                (sn * sn) / (cn * cn)
            })
            .collect();
        let numerator: Vec<f64> = (1..=n).map(|l| c[2 * l - 1]).collect();
        let denominator: Vec<f64> = (1..=n).map(|l| c[2 * l - 2]).collect();
        // f(y) = sqrt(y) prod (y + c_2l) / (y + c_2l-1) on [1, b/a]: its extrema fix A and delta
        let f =
            |y: f64| numerator.iter().zip(&denominator).fold(y.sqrt(), |acc, (p, q)| acc * (y + p) / (y + q));
        let (lo, hi) = extrema(&f, 1.0, 1.0 / eps, 400 * n);
        let scale = 2.0 / (lo + hi);
        let delta = (hi - lo) / (hi + lo);
        Ok(Zolotarev {
            range: (a, b),
            scale: scale / a.sqrt(),
            numerator_shifts: numerator.iter().map(|v| v * a).collect(),
            denominator_shifts: denominator.iter().map(|v| v * a).collect(),
            delta,
        })
    }

    /// The approximation of least degree on [a, b] whose relative error is at most
    /// `tolerance` (at most degree 64).
    pub fn with_tolerance(a: f64, b: f64, tolerance: f64) -> Result<Self> {
        for n in 1..=64 {
            let z = Zolotarev::new(n, a, b)?;
            if z.delta <= tolerance {
                return Ok(z);
            }
        }
        Err(Error::Config(format!(
            "rational approximation on [{a}, {b}]: no degree up to 64 reaches the relative error {tolerance}"
        )))
    }

    /// The degree n.
    pub fn degree(&self) -> usize {
        self.numerator_shifts.len()
    }

    /// R(x).
    pub fn eval(&self, x: f64) -> f64 {
        self.numerator_shifts
            .iter()
            .zip(&self.denominator_shifts)
            .fold(self.scale, |acc, (p, q)| acc * (x + p) / (x + q))
    }

    /// R as partial fractions, R(x) = scale (1 + sum_k r_k / (x + mu_k)): the pairs (r_k, mu_k),
    /// mu_k the denominator shifts. Then R(A) b for a positive operator A is one multi-shift
    /// solve with shifts mu_k.
    pub fn partial_fractions(&self) -> Vec<(f64, f64)> {
        let (p, q) = (&self.numerator_shifts, &self.denominator_shifts);
        q.iter()
            .enumerate()
            .map(|(k, &mu)| {
                // residue of prod (x + p_l) / (x + q_l) at x = -mu_k
                let numerator: f64 = p.iter().map(|&pl| pl - mu).product();
                let denominator: f64 =
                    q.iter().enumerate().filter(|&(l, _)| l != k).map(|(_, &ql)| ql - mu).product();
                (numerator / denominator, mu)
            })
            .collect()
    }
}

/// The smallest and largest values of f on [lo, hi]: the endpoints and every interior local
/// extremum found on a logarithmic grid of `points` points, refined by golden-section search.
fn extrema(f: &impl Fn(f64) -> f64, lo: f64, hi: f64, points: usize) -> (f64, f64) {
    let ys: Vec<f64> = (0..=points).map(|i| lo * (hi / lo).powf(i as f64 / points as f64)).collect();
    let vs: Vec<f64> = ys.iter().map(|&y| f(y)).collect();
    let (mut min, mut max) = (vs[0].min(vs[points]), vs[0].max(vs[points]));
    for i in 1..points {
        let is_max = vs[i] >= vs[i - 1] && vs[i] >= vs[i + 1];
        let is_min = vs[i] <= vs[i - 1] && vs[i] <= vs[i + 1];
        if is_max || is_min {
            let sign = if is_max { -1.0 } else { 1.0 };
            let v = golden(&|t: f64| sign * f(t), ys[i - 1], ys[i + 1]) * sign;
            min = min.min(v);
            max = max.max(v);
        }
    }
    (min, max)
}

/// The least value of g on [a, b] (g unimodal there), by golden-section search.
fn golden(g: &impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> f64 {
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let (mut x1, mut x2) = (b - r * (b - a), a + r * (b - a));
    let (mut g1, mut g2) = (g(x1), g(x2));
    for _ in 0..100 {
        if g1 < g2 {
            b = x2;
            (x2, g2) = (x1, g1);
            x1 = b - r * (b - a);
            g1 = g(x1);
        } else {
            a = x1;
            (x1, g1) = (x2, g2);
            x2 = a + r * (b - a);
            g2 = g(x2);
        }
    }
    g1.min(g2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relative error 1 - sqrt(x) R(x) at x.
    fn error(z: &Zolotarev, x: f64) -> f64 {
        1.0 - x.sqrt() * z.eval(x)
    }

    /// Jacobi functions: sn^2 + cn^2 = 1, dn^2 + m sn^2 = 1, sn(K) = 1, and the limits m = 0
    /// (sin, cos, 1) and against a series for small u.
    /// K(m) against known values, and on ranges where the AGM's last bits oscillate (the
    /// range of the one-flavour sampler test, 1 - 0.0784^2 / 1.9216^2, once looped forever).
    #[test]
    fn complete_elliptic_integral_has_its_known_values() {
        assert!((complete_elliptic(0.0) - PI / 2.0).abs() < 1e-15);
        assert!((complete_elliptic(0.5) - 1.854_074_677_301_372).abs() < 1e-14);
        assert!((complete_elliptic(0.99) - 3.695_637_362_989_875).abs() < 1e-13);
        let m = 1.0 - (0.0784f64 / 1.9216).powi(2);
        let k = complete_elliptic(m);
        // K(m) ~ ln(4 / k') for m near 1
        assert!((k - (4.0 / (1.0 - m).sqrt()).ln()).abs() < 1e-2, "{k}");
    }

    #[test]
    fn jacobi_functions_satisfy_their_identities() {
        for m in [0.0, 0.3, 0.9, 1.0 - 1e-6] {
            let kk = complete_elliptic(m);
            let (sn, cn, _) = jacobi(kk, m);
            assert!((sn - 1.0).abs() < 1e-12 && cn.abs() < 1e-6, "m {m}: sn(K) = {sn}, cn(K) = {cn}");
            for u in [0.1, 0.7, 1.3] {
                let (sn, cn, dn) = jacobi(u, m);
                assert!((sn * sn + cn * cn - 1.0).abs() < 1e-14, "m {m} u {u}");
                assert!((dn * dn + m * sn * sn - 1.0).abs() < 1e-14, "m {m} u {u}");
            }
        }
        let (sn, cn, dn) = jacobi(0.6, 0.0);
        assert!((sn - 0.6f64.sin()).abs() < 1e-15 && (cn - 0.6f64.cos()).abs() < 1e-15 && dn == 1.0);
        // sn(u|m) = u - (1 + m) u^3 / 6 + O(u^5)
        let (u, m) = (1e-3, 0.5);
        assert!((jacobi(u, m).0 - (u - (1.0 + m) * u * u * u / 6.0)).abs() < 1e-15);
        assert!((complete_elliptic(0.0) - PI / 2.0).abs() < 1e-15);
    }

    /// On [a, b] the relative error stays within delta on a dense independent grid (up to the
    /// round-off of evaluating it), reaches
    /// +-delta with alternating signs at least 2n + 1 times (the equioscillation that makes it
    /// optimal), and delta falls with the degree; the partial fractions reproduce R.
    #[test]
    fn zolotarev_error_is_bounded_equioscillating_and_falls_with_degree() {
        for (a, b) in [(1e-4, 1.0), (0.01, 7.5), (2e-6, 3.0)] {
            let mut previous = f64::INFINITY;
            for n in [4, 8, 12] {
                let z = Zolotarev::new(n, a, b).unwrap();
                assert!(z.delta < previous, "[{a}, {b}] n {n}: delta {} not below {previous}", z.delta);
                previous = z.delta;
                let points = 200_000;
                let xs: Vec<f64> = (0..=points).map(|i| a * (b / a).powf(i as f64 / points as f64)).collect();
                let errors: Vec<f64> = xs.iter().map(|&x| error(&z, x)).collect();
                let worst = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
                // within delta, up to the round-off of evaluating 1 - sqrt(x) R(x) (a few 1e-16)
                assert!(
                    worst <= z.delta * (1.0 + 1e-6) + 1e-14,
                    "[{a}, {b}] n {n}: error {worst} above {}",
                    z.delta
                );
                // alternation: extrema of magnitude near delta with changing signs
                let mut alternations = 0;
                let mut last_sign = 0.0;
                for e in &errors {
                    if e.abs() > 0.999 * z.delta && e.signum() != last_sign {
                        alternations += 1;
                        last_sign = e.signum();
                    }
                }
                assert!(alternations > 2 * n, "[{a}, {b}] n {n}: {alternations} alternations");
                for &x in &[a, (a * b).sqrt(), b] {
                    let sum: f64 = z.partial_fractions().iter().map(|(r, mu)| r / (x + mu)).sum();
                    let from_fractions = z.scale * (1.0 + sum);
                    assert!(
                        (from_fractions - z.eval(x)).abs() < 1e-12 * z.eval(x),
                        "partial fractions at {x}"
                    );
                }
            }
        }
        let z = Zolotarev::with_tolerance(1e-4, 1.0, 1e-8).unwrap();
        assert!(z.delta <= 1e-8 && Zolotarev::new(z.degree() - 1, 1e-4, 1.0).unwrap().delta > 1e-8);
        assert!(Zolotarev::new(4, 1.0, 0.5).is_err() && Zolotarev::new(0, 0.1, 1.0).is_err());
    }
}
