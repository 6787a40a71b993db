//! Exact results to validate samplers against (character expansions and free-field sums).
//!
//! 2D U(1) Wilson gauge theory on an L0 x L1 periodic torus with V plaquettes and
//! S = -beta sum_P Re U_P (+ const): Z = sum_n I_n(beta)^V (character expansion), so
//! `<Re U_P> = sum_n I_n^(V-1) (I_{n-1} + I_{n+1})/2 / sum_n I_n^V`, and the topological
//! susceptibility follows from the same sector weights (README eqs. for A_n, B_n).
//!
//! 2D SU(3) Wilson gauge theory, S = -(beta/3) sum_P Re tr U_P, in infinite volume (section
//! 2): the character coefficients c_lambda = sum_n det[I_{lambda_j - j + i + n}(beta/3)]
//! give `<Re tr U_P / 3> = c_f / (3 c_0)`; on a torus of V plaquettes the corrections are of
//! relative order (c_r / (d_r c_0))^V, below 1e-9 for V >= 16 and beta <= 4.
//!
//! The free scalar field (section 3.3) in the phi^4 convention of arXiv 2101.08176 with
//! lambda = 0: S = phi K phi, K = -laplacian + m^2.

/// ln I_n(x) for integer n and x > 0 from the power series
/// I_n(x) = sum_k (x/2)^(2k+n) / (k! (k+n)!), summed in logs (exact to round-off for x < 50).
pub fn ln_bessel_i(n: i64, x: f64) -> f64 {
    let n = n.unsigned_abs() as f64;
    let ln_half_x = (0.5 * x).ln();
    let ln_term = |k: f64| (2.0 * k + n) * ln_half_x - ln_gamma(k + 1.0) - ln_gamma(k + n + 1.0);
    let terms: Vec<f64> = (0..400).map(|k| ln_term(k as f64)).collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// ln Gamma(x) for x >= 1 (Lanczos, g = 7, 9 terms; relative error below 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + 7.5;
    let s = C[1..].iter().enumerate().fold(C[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + s.ln()
}

/// Exact `<Re U_P>` of 2D U(1) with the Wilson action at `beta` on a torus of `volume` sites.
pub fn u1_2d_plaquette(beta: f64, volume: usize) -> f64 {
    let v = volume as f64;
    // ln I_n / I_0 for n = -41..=41, so that n = -40..=40 and their neighbours are at hand
    let ln_i0 = ln_bessel_i(0, beta);
    let ratio: Vec<f64> = (-41i64..=41).map(|n| ln_bessel_i(n, beta) - ln_i0).collect();
    let (mut num, mut den) = (0.0, 0.0);
    for k in 1..ratio.len() - 1 {
        let w = ((v - 1.0) * ratio[k]).exp(); // I_n^(V-1) / I_0^(V-1)
        num += w * 0.5 * (ratio[k - 1].exp() + ratio[k + 1].exp());
        den += w * ratio[k].exp();
    }
    num / den
}

/// Exact `<Re tr U_P / 3>` of 2D SU(3) with the Wilson action at `beta` in infinite volume.
pub fn su3_2d_plaquette(beta: f64) -> f64 {
    let x = beta / 3.0;
    let bessel = |k: i64| ln_bessel_i(k, x).exp();
    let coefficient = |lambda: [i64; 3]| -> f64 {
        (-30i64..=30)
            .map(|n| {
                let m = |i: usize, j: usize| bessel(lambda[j] - j as i64 + i as i64 + n);
                m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1))
                    - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
                    + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0))
            })
            .sum()
    };
    coefficient([1, 0, 0]) / (3.0 * coefficient([0, 0, 0]))
}

/// Exact <Q^2> of 2D U(1) with the Wilson action (geometric charge) on a torus of `volume`
/// sites; the topological susceptibility is this divided by the volume.
pub fn u1_2d_charge_squared(beta: f64, volume: usize) -> f64 {
    let v = volume as f64;
    let ln_i0 = ln_bessel_i(0, beta);
    // A_n and B_n by the midpoint rule on a fine grid (the integrands are smooth and periodic
    // up to the phi^2 term, so 20000 points give ~1e-9 accuracy)
    let points = 20_000;
    let h = std::f64::consts::TAU / points as f64;
    let mut total = 0.0;
    let mut norm = 0.0;
    for n in -30i64..=30 {
        let ln_in = ln_bessel_i(n, beta);
        let (mut a, mut b) = (0.0, 0.0);
        for k in 0..points {
            let phi = -std::f64::consts::PI + (k as f64 + 0.5) * h;
            let weight = (beta * phi.cos() - beta).exp() * h;
            let q = phi / std::f64::consts::TAU;
            a += q * q * (n as f64 * phi).cos() * weight;
            b += q * (n as f64 * phi).sin() * weight;
        }
        // (1 / (2 pi I_n)) int ... with the e^{-beta} scaling undone in logs
        let scale = (beta - ln_in).exp() / std::f64::consts::TAU;
        let (a, b) = (a * scale, b * scale);
        let w = (v * (ln_in - ln_i0)).exp();
        total += w * (v * a - v * (v - 1.0) * b * b);
        norm += w;
    }
    total / norm
}

/// <phi(x)^2> of the free scalar field S = sum_x [ sum_mu (phi(x+mu) - phi(x))^2 + m2 phi^2 ]
/// on a periodic lattice of extents `dims` (m2 > 0): (1 / 2V) sum_k 1 / (m2 + sum_mu
/// 4 sin^2(k_mu / 2)), k_mu = 2 pi n_mu / L_mu.
pub fn free_scalar_phi_squared(dims: &[usize], m2: f64) -> f64 {
    let volume: usize = dims.iter().product();
    let sum: f64 = (0..volume)
        .map(|site| {
            let mut rest = site;
            let p2: f64 = dims
                .iter()
                .map(|&l| {
                    let k = 2.0 * std::f64::consts::PI * (rest % l) as f64 / l as f64;
                    rest /= l;
                    4.0 * (k / 2.0).sin().powi(2)
                })
                .sum();
            1.0 / (m2 + p2)
        })
        .sum();
    sum / (2.0 * volume as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The free-scalar reference table (standard normalisation, twice the value here).
    #[test]
    fn free_scalar_matches_the_reference_table() {
        for (dims, m2, standard) in [
            (&[8, 8][..], 1.0, 0.2541739977),
            (&[8, 8][..], 0.5, 0.3175926812),
            (&[4, 4, 4, 4][..], 1.0, 0.1284427990),
        ] {
            let value = 2.0 * free_scalar_phi_squared(dims, m2);
            assert!((value - standard).abs() < 1e-9, "{dims:?} m2 = {m2}: {value} vs {standard}");
        }
    }

    #[test]
    fn bessel_values() {
        // I_0(1) = 1.2660658777520082, I_1(2) = 1.5906368546373291, I_3(5) = 10.331150169151138
        assert!((ln_bessel_i(0, 1.0).exp() - 1.266_065_877_752_008_2).abs() < 1e-14);
        assert!((ln_bessel_i(1, 2.0).exp() - 1.590_636_854_637_329).abs() < 1e-14);
        assert!((ln_bessel_i(-3, 5.0).exp() / 10.331_150_169_151_138 - 1.0).abs() < 1e-13);
    }

    #[test]
    fn agrees_with_the_reference_tables() {
        // the 2D U(1) character expansion at V = 64, evaluated independently to 12 digits
        assert!((u1_2d_plaquette(2.0, 64) - 0.697_774_658_011).abs() < 1e-10);
        assert!((u1_2d_plaquette(5.0, 64) - 0.893_421_249_755).abs() < 1e-10);
        assert!((u1_2d_plaquette(7.0, 256) - 0.925_532_210_854).abs() < 1e-10);
        assert!((u1_2d_charge_squared(2.0, 64) - 1.239_298_910_7).abs() < 1e-6);
        assert!((u1_2d_charge_squared(5.0, 256) - 1.473_486_659_5).abs() < 1e-6);
    }

    /// The infinite-volume 2D SU(3) plaquette (character expansion) and the
    /// strong-coupling expansion beta/18 + beta^2/216.
    #[test]
    fn su3_plaquette_matches_the_character_expansion_table() {
        for (beta, expected) in
            [(1.0, 0.0601265548336), (2.0, 0.128627785322), (4.0, 0.279619149409), (10.0, 0.618175738968)]
        {
            let p = su3_2d_plaquette(beta);
            assert!((p - expected).abs() < 1e-11, "beta {beta}: {p} vs {expected}");
        }
        let small = 0.05;
        assert!((su3_2d_plaquette(small) - (small / 18.0 + small * small / 216.0)).abs() < 1e-6);
    }
}
