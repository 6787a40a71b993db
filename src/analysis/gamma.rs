//! The Gamma method for one primary observable (U. Wolff, "Monte Carlo errors with less
//! errors", hep-lat/0306017), with his automatic windowing procedure, and the tail correction
//! for slow modes of Schaefer, Sommer and Virotta (arXiv:1009.5228, section 4).
//!
//! Gamma(t) = <(a_i - abar)(a_{i+t} - abar)>, tau_int(W) = 1/2 + sum_{t=1}^W Gamma(t)/Gamma(0).
//! The window W is the first with g(W) = exp(-W/tau) - tau/sqrt(W N) < 0, where
//! tau = S / ln((2 tau_int + 1)/(2 tau_int - 1)) and S = 1.5. The bias of the mean is corrected
//! as in Wolff's eq. (31): C_F -> C_F (1 + (2W + 1)/N). The error of the mean is sqrt(C_F / N),
//! and tau_int = C_F / (2 Gamma(0)), so error^2 = 2 tau_int Gamma(0) / N.
//!
//! A mode slower than the window sees is invisible to Wolff's W. Schaefer, Sommer and Virotta
//! assume that beyond W the normalised autocorrelation decays with the slowest mode,
//! rho(t) = rho(W) exp(-(t - W)/tau_exp), and add the sum of that tail:
//! tau_int,tail = tau_int(W) + tau_exp rho(W) (an upper estimate when the slow mode decays
//! faster than tau_exp; rho(W) < 0, which is noise, adds nothing).

/// Wolff's default S.
pub const DEFAULT_S: f64 = 1.5;

/// Result of the Gamma-method analysis of one observable.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GammaResult {
    /// Sample mean.
    pub mean: f64,
    /// Error of the mean, including autocorrelations.
    pub error: f64,
    /// Integrated autocorrelation time (1/2 for uncorrelated data).
    pub tau_int: f64,
    /// Statistical error of tau_int (Madras-Sokal approximation, Wolff eq. 42).
    pub tau_int_error: f64,
    /// The summation window W chosen automatically.
    pub window: usize,
    /// Number of measurements.
    pub samples: usize,
    /// Every sample has the same value: the chain never changed the observable, so it is not
    /// measured and `error` = 0 says nothing about its uncertainty (false when absent).
    #[serde(default)]
    pub constant: bool,
    /// tau_int with the tail of the slowest mode added ([`GammaResult::with_tail`]), when the
    /// analysis made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau_int_tail: Option<f64>,
    /// The error that `tau_int_tail` implies, error sqrt(tau_int_tail / tau_int).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_tail: Option<f64>,
}

/// The mean of `data` and the deviations from it.
fn deviations(data: &[f64]) -> (f64, Vec<f64>) {
    let mean = data.iter().sum::<f64>() / data.len() as f64;
    (mean, data.iter().map(|x| x - mean).collect())
}

/// Gamma(t) of the deviations `dev` (normalised by the N - t pairs).
fn autocovariance(dev: &[f64], t: usize) -> f64 {
    let n = dev.len();
    dev[..n - t].iter().zip(&dev[t..]).map(|(a, b)| a * b).sum::<f64>() / (n - t) as f64
}

/// The normalised autocorrelation function rho(t) = Gamma(t)/Gamma(0) for t = 0..=t_max.
pub fn autocorrelation(data: &[f64], t_max: usize) -> Vec<f64> {
    let (_, dev) = deviations(data);
    let g0 = autocovariance(&dev, 0);
    (0..=t_max.min(data.len().saturating_sub(1)))
        .map(|t| {
            if g0 > 0.0 {
                autocovariance(&dev, t) / g0
            } else if t == 0 {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// Gamma-method analysis of `data` with window parameter `s` ([`DEFAULT_S`] = 1.5).
/// Returns `None` for fewer than two samples; a series of identical values is `constant`,
/// with error 0 and tau_int 1/2.
pub fn gamma_method(data: &[f64], s: f64) -> Option<GammaResult> {
    let n = data.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (mean, dev) = deviations(data);
    let g0 = autocovariance(&dev, 0);
    let constant = GammaResult {
        mean: data[0],
        error: 0.0,
        tau_int: 0.5,
        tau_int_error: 0.0,
        window: 0,
        samples: n,
        constant: true,
        tau_int_tail: None,
        error_tail: None,
    };
    // (g0 = 0 for differing values only when their squares underflow)
    if g0 <= 0.0 || data.iter().all(|&x| x == data[0]) {
        return Some(constant);
    }
    let w_max = n / 2;
    let mut sum = 0.0; // sum_{t=1}^W Gamma(t)
    let mut window = w_max;
    for w in 1..=w_max {
        sum += autocovariance(&dev, w);
        let tau_int = 0.5 + sum / g0;
        let tau = if tau_int <= 0.5 {
            f64::MIN_POSITIVE
        } else {
            s / ((2.0 * tau_int + 1.0) / (2.0 * tau_int - 1.0)).ln()
        };
        let g = (-(w as f64) / tau).exp() - tau / (w as f64 * nf).sqrt();
        if g < 0.0 {
            window = w;
            break;
        }
    }
    // A summed autocovariance C_F <= 0 (short or anticorrelated data, where the window sum
    // overshoots) would report an error of 0 for data that vary: fall back to the
    // uncorrelated estimate C_F = Gamma(0), tau_int = 1/2.
    let c_f = match (g0 + 2.0 * sum) * (1.0 + (2 * window + 1) as f64 / nf) {
        c if c > 0.0 => c,
        _ => g0,
    };
    let g0_corrected = g0 + c_f / nf;
    let tau_int = (c_f / (2.0 * g0_corrected)).max(0.0);
    let tau_int_error = tau_int * (4.0 * ((window as f64 + 0.5 - tau_int).max(0.0)) / nf).sqrt();
    Some(GammaResult {
        mean,
        error: (c_f / nf).sqrt(),
        tau_int,
        tau_int_error,
        window,
        constant: false,
        ..constant
    })
}

impl GammaResult {
    /// This result of `data` with the tail of a mode of exponential autocorrelation time
    /// `tau_exp` (in measurements) added at its window W: tau_int_tail = tau_int +
    /// tau_exp max(rho(W), 0) and error_tail = error sqrt(tau_int_tail / tau_int)
    /// (Schaefer, Sommer, Virotta). A constant series or one with tau_int = 0 gets no tail.
    pub fn with_tail(self, data: &[f64], tau_exp: f64) -> GammaResult {
        if self.constant || self.tau_int <= 0.0 {
            return self;
        }
        let (_, dev) = deviations(data);
        let rho = autocovariance(&dev, self.window) / autocovariance(&dev, 0);
        let tau_int_tail = self.tau_int + tau_exp * rho.max(0.0);
        GammaResult {
            tau_int_tail: Some(tau_int_tail),
            error_tail: Some(self.error * (tau_int_tail / self.tau_int).sqrt()),
            ..self
        }
    }
}

/// AR(1) chain x_{i+1} = a x_i + sqrt(1 - a^2) eta_i with the normal deviates of test stream
/// `stream` of `seed`, started in equilibrium: unit variance, tau_int = (1 + a) / (2 (1 - a)).
/// The analysis modules' tests use it as a series whose autocorrelations are known.
#[cfg(test)]
pub(crate) fn ar1(seed: u64, a: f64, n: usize, stream: usize) -> Vec<f64> {
    use crate::rng::{Purpose, StreamKey};
    let mut rng = StreamKey::new(seed, Purpose::Test, 0).stream(stream);
    let mut x = rng.normal();
    (0..n)
        .map(|_| {
            x = a * x + (1.0 - a * a).sqrt() * rng.normal();
            x
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::ar1`] of this module's seed.
    fn ar1(a: f64, n: usize, stream: usize) -> Vec<f64> {
        super::ar1(17, a, n, stream)
    }

    #[test]
    fn tau_int_of_ar1_process() {
        for (a, stream) in [(0.0, 0), (0.5, 1), (0.8, 2), (0.95, 3)] {
            let r = gamma_method(&ar1(a, 200_000, stream), DEFAULT_S).unwrap();
            let exact = (1.0 + a) / (2.0 * (1.0 - a));
            // the windowing bias exp(-W/tau) is below the statistical error by construction
            assert!(
                (r.tau_int - exact).abs() < 3.0 * r.tau_int_error + 0.02 * exact,
                "a = {a}: tau_int {} +- {} vs {exact}",
                r.tau_int,
                r.tau_int_error
            );
            let expected_error = (2.0 * exact / 200_000.0).sqrt();
            assert!((r.error / expected_error - 1.0).abs() < 0.1, "error {} vs {expected_error}", r.error);
        }
    }

    #[test]
    fn error_bars_cover_the_truth() {
        // 400 short correlated chains with true mean 0: about 68% within one error bar
        let inside = (0..400)
            .filter(|&c| {
                let r = gamma_method(&ar1(0.9, 2_000, 100 + c), DEFAULT_S).unwrap();
                r.mean.abs() < r.error
            })
            .count();
        // binomial standard deviation sqrt(400 * 0.68 * 0.32) = 9.3
        assert!((245..=300).contains(&inside), "{inside} of 400 within one sigma");
    }

    #[test]
    fn constant_and_tiny_series() {
        let r = gamma_method(&[2.0; 10], DEFAULT_S).unwrap();
        assert_eq!((r.mean, r.error, r.tau_int, r.constant), (2.0, 0.0, 0.5, true));
        // the mean of identical values is the value (summing ten 0.1 is not 1.0)
        assert_eq!(gamma_method(&[0.1; 10], DEFAULT_S).unwrap().mean, 0.1);
        let mut moved = [0.1; 10];
        moved[9] = 0.1 + 1e-15;
        assert!(!gamma_method(&moved, DEFAULT_S).unwrap().constant);
        assert_eq!(r.with_tail(&[2.0; 10], 100.0), r, "a constant series gets no tail");
        assert!(gamma_method(&[1.0], DEFAULT_S).is_none());
        // alternating data sum to C_F < 0 in the window: the uncorrelated error, not 0
        let alternating: Vec<f64> = (0..20).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let r = gamma_method(&alternating, DEFAULT_S).unwrap();
        assert!(!r.constant && (r.error - (1.0f64 / 20.0).sqrt()).abs() < 1e-12, "{r:?}");
        let rho = autocorrelation(&ar1(0.5, 50_000, 9), 3);
        assert!((rho[0] - 1.0).abs() < 1e-12 && (rho[1] - 0.5).abs() < 0.02 && (rho[2] - 0.25).abs() < 0.02);
    }

    #[test]
    fn tail_adds_the_slow_mode_the_window_misses() {
        // unit-variance AR(1) (tau_int 1.5) plus a slow AR(1) of variance v and
        // tau_exp = 200: tau_int = (1.5 + v tau_slow) / (1 + v)
        let (v, tau_exp) = (0.02f64, 200.0f64);
        let a = (-1.0 / tau_exp).exp();
        let tau_slow = (1.0 + a) / (2.0 * (1.0 - a));
        let exact = (1.5 + v * tau_slow) / (1.0 + v);
        let n = 1_000_000;
        let data: Vec<f64> =
            ar1(0.5, n, 20).iter().zip(ar1(a, n, 21)).map(|(fast, slow)| fast + v.sqrt() * slow).collect();
        let r = gamma_method(&data, DEFAULT_S).unwrap().with_tail(&data, tau_exp);
        let tail = r.tau_int_tail.unwrap();
        println!("tau_int {} (W = {}), with tail {tail}, exact {exact}", r.tau_int, r.window);
        assert!(r.tau_int < 0.5 * exact, "the window should miss the slow mode: {} vs {exact}", r.tau_int);
        assert!((tail / exact - 1.0).abs() < 0.2, "tau_int_tail {tail} vs {exact} (plain {})", r.tau_int);
        let error_tail = r.error_tail.unwrap();
        assert!((error_tail / r.error - (tail / r.tau_int).sqrt()).abs() < 1e-12);
    }
}
