//! The Wilson operator as a dense matrix, and its log-determinant, for small lattices: the
//! exact fermion weight det(M^dagger M) = |det M|^2 against which pseudofermion estimates and
//! samplers are checked. Dense LU by faer (partial pivoting).

use super::FermionOperator;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::ColorVector;
use crate::spinor::{Color, SpinorField};
use faer::Mat;
use num_complex::Complex64;

/// M as a dense matrix; row and column index (site * S + spin) * N + colour, N the number of
/// colours, sites lexicographic.
pub fn dense_matrix<G: PackedGroup, const S: usize>(w: &impl FermionOperator<G, S>) -> Mat<Complex64> {
    let cb = w.checkerboard();
    let volume = cb.lattice().volume();
    let colors = Color::<G>::COLORS;
    let n = volume * S * colors;
    let mut m = Mat::<Complex64>::zeros(n, n);
    let mut unit = SpinorField::<G, S>::full(cb);
    let mut column = SpinorField::<G, S>::full(cb);
    for site in 0..volume {
        for spin in 0..S {
            for color in 0..colors {
                let j = (site * S + spin) * colors + color;
                unit.set(cb, site, spin, color, Complex64::new(1.0, 0.0));
                w.apply(false, &unit, &mut column);
                unit.set(cb, site, spin, color, Complex64::new(0.0, 0.0));
                for x in 0..volume {
                    for s in 0..S {
                        for c in 0..colors {
                            m[((x * S + s) * colors + c, j)] = column.get(cb, x, s, c);
                        }
                    }
                }
            }
        }
    }
    m
}

/// ln |det M| = (1/2) ln det(M^dagger M), from the diagonal of the LU factor U.
pub fn ln_abs_det<G: PackedGroup, const S: usize>(w: &impl FermionOperator<G, S>) -> f64 {
    let lu = dense_matrix(w).partial_piv_lu();
    let u = lu.U();
    (0..u.nrows()).map(|i| u[(i, i)].norm().ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkerboard::Checkerboard;
    use crate::dirac::{Boundary, WilsonOperator};
    use crate::field::GaugeField;
    use crate::geometry::Lattice;
    use crate::group::{Group, Su3, U1};
    use std::f64::consts::PI;
    use std::sync::Arc;

    /// ln |det M| of constant U(1) links e^{i theta_mu} in momentum space, for any extents:
    /// M = 2 kappa D(q) with D(q) = m0 + sum_mu (1 - cos q_mu) + i sum_mu gamma_mu sin q_mu,
    /// q_mu = (2 pi n_mu + pi [mu = time, antiperiodic]) / L_mu + theta_mu, and the spin
    /// determinant of a + i gamma.s is (a^2 + s.s)^{S/2}.
    fn free_ln_det(dims: &[usize], kappa: f64, theta: &[f64]) -> f64 {
        let d = dims.len();
        let spins = if d == 2 { 2.0 } else { 4.0 };
        let m0 = 1.0 / (2.0 * kappa) - d as f64;
        let volume: usize = dims.iter().product();
        (0..volume)
            .map(|k| {
                let (mut rest, mut a, mut s2) = (k, m0, 0.0);
                for mu in 0..d {
                    let n = rest % dims[mu];
                    rest /= dims[mu];
                    let shift = if mu == d - 1 { PI } else { 0.0 };
                    let q = (2.0 * PI * n as f64 + shift) / dims[mu] as f64 + theta[mu];
                    a += 1.0 - q.cos();
                    s2 += q.sin() * q.sin();
                }
                spins * (2.0 * kappa).ln() + spins / 2.0 * (a * a + s2).ln()
            })
            .sum()
    }

    /// The dense ln |det M| in the natural layout (lanes of mixed parity) equals the momentum-space
    /// value of constant U(1) fields; the formula itself reproduces the exact table.
    #[test]
    fn natural_layout_log_determinants_match_momentum_space() {
        let kappa_of = |m0: f64, d: usize| 1.0 / (2.0 * m0 + 2.0 * d as f64);
        assert!((free_ln_det(&[4, 4], kappa_of(0.1, 2), &[0.0; 2]) - 1.0307314631).abs() < 1e-9);
        assert!((free_ln_det(&[4, 4], kappa_of(-0.3, 2), &[0.3, -0.7]) - 2.3125393139).abs() < 1e-9);
        assert!((free_ln_det(&[4, 4, 4, 4], kappa_of(0.1, 4), &[0.0; 4]) - 7.0222633055).abs() < 1e-9);
        let cases: [(&[usize], f64, [f64; 4]); 5] = [
            (&[6, 6], 0.1, [0.0; 4]),
            (&[6, 6], -0.3, [0.3, -0.7, 0.0, 0.0]),
            (&[2, 2], 0.2, [0.4, 0.1, 0.0, 0.0]),
            (&[6, 2], -0.1, [0.0, 0.5, 0.0, 0.0]),
            (&[2, 2, 2, 6], 0.1, [0.3, 0.0, -0.2, 0.1]),
        ];
        for (dims, m0, theta) in cases {
            let lat = Arc::new(Lattice::new(dims).unwrap());
            let d = dims.len();
            let links = (0..lat.volume() * d).map(|k| U1::exp(&[theta[k % d]], 1.0)).collect();
            let u = GaugeField::<U1>::from_links(lat.clone(), links).unwrap();
            let cb = Checkerboard::natural(lat).unwrap();
            let kappa = kappa_of(m0, d);
            let got = if d == 2 {
                ln_abs_det(&WilsonOperator::<U1, 2>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap())
            } else {
                ln_abs_det(&WilsonOperator::<U1, 4>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap())
            };
            let exact = free_ln_det(dims, kappa, &theta[..d]);
            assert!((got - exact).abs() < 1e-8, "{dims:?} m0 {m0}: ln det {got}, momentum space {exact}");
        }
    }

    /// ln |det M_hat| of the Schur operator on the even sites, from its dense matrix.
    fn schur_ln_abs_det<G: PackedGroup, const S: usize>(w: &WilsonOperator<'_, G, S>) -> f64 {
        let cb = w.checkerboard();
        let lat = cb.lattice();
        let colors = Color::<G>::COLORS;
        let even: Vec<usize> = (0..lat.volume()).filter(|&x| lat.parity(x) == 0).collect();
        let n = even.len() * S * colors;
        let mut m = Mat::<Complex64>::zeros(n, n);
        let (mut unit, mut column) = (SpinorField::<G, S>::half(cb), SpinorField::<G, S>::half(cb));
        let at = |site: usize| {
            let (p, i, lane) = cb.locate(site);
            assert_eq!(p, 0);
            (i, lane)
        };
        for (j_site, &site) in even.iter().enumerate() {
            let (i, lane) = at(site);
            for spin in 0..S {
                for color in 0..colors {
                    unit.data_mut()[i][spin].set(lane, color, Complex64::new(1.0, 0.0));
                    w.apply_schur(false, &unit, &mut column);
                    unit.data_mut()[i][spin].set(lane, color, Complex64::new(0.0, 0.0));
                    for (k_site, &x) in even.iter().enumerate() {
                        let (ix, lx) = at(x);
                        for s in 0..S {
                            for c in 0..colors {
                                m[((k_site * S + s) * colors + c, (j_site * S + spin) * colors + color)] =
                                    column.data()[ix][s].get(lx, c);
                            }
                        }
                    }
                }
            }
        }
        let lu = m.partial_piv_lu();
        (0..n).map(|i| lu.U()[(i, i)].norm().ln()).sum()
    }

    /// Where both layouts exist, the dense ln |det M| of the natural layout, that of the
    /// even/odd layout and ln |det M_hat| of the Schur operator agree on hot fields.
    fn check_layouts_and_schur<G: PackedGroup, const S: usize>(dims: &[usize], kappa: f64) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 12);
        let (eo, natural) = (Checkerboard::new(lat.clone()).unwrap(), Checkerboard::natural(lat).unwrap());
        let boundary = Boundary::Phase(0.4);
        let w = WilsonOperator::<G, S>::new(&u, &eo, kappa, boundary).unwrap();
        let (full, schur) = (ln_abs_det(&w), schur_ln_abs_det(&w));
        let plain = ln_abs_det(&WilsonOperator::<G, S>::new(&u, &natural, kappa, boundary).unwrap());
        assert!(full.abs() > 1e-3, "{dims:?}: ln det {full} tells nothing");
        assert!((full - schur).abs() < 1e-9 * (1.0 + full.abs()), "{dims:?}: M {full}, M_hat {schur}");
        assert!(
            (full - plain).abs() < 1e-9 * (1.0 + full.abs()),
            "{dims:?}: even/odd {full}, natural {plain}"
        );
    }

    #[test]
    fn natural_even_odd_and_schur_log_determinants_agree() {
        check_layouts_and_schur::<U1, 2>(&[4, 8], 0.24);
        check_layouts_and_schur::<Su3, 2>(&[4, 4], 0.22);
        check_layouts_and_schur::<U1, 4>(&[2, 2, 4, 4], 0.12);
    }

    /// ln det D_kappa from an independent exact evaluation: free and constant
    /// U(1) fields, periodic in x, antiperiodic in t.
    #[test]
    fn log_determinants_match_the_exact_table() {
        let cases: [(&[usize], f64, [f64; 4], f64); 4] = [
            (&[4, 4], 0.1, [0.0; 4], 1.0307314631),
            (&[8, 8], 0.0, [0.0; 4], 4.5113399914),
            (&[4, 4], -0.3, [0.3, -0.7, 0.0, 0.0], 2.3125393139),
            (&[4, 4, 4, 4], 0.1, [0.0; 4], 7.0222633055),
        ];
        for (dims, m0, theta, exact) in cases {
            let lat = Arc::new(Lattice::new(dims).unwrap());
            let d = dims.len();
            let links = (0..lat.volume() * d).map(|k| U1::exp(&[theta[k % d]], 1.0)).collect();
            let u = GaugeField::<U1>::from_links(lat.clone(), links).unwrap();
            let cb = Checkerboard::new(lat).unwrap();
            let kappa = 1.0 / (2.0 * m0 + 2.0 * d as f64);
            let got = if d == 2 {
                ln_abs_det(&WilsonOperator::<U1, 2>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap())
            } else {
                ln_abs_det(&WilsonOperator::<U1, 4>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap())
            };
            assert!((got - exact).abs() < 1e-8, "{dims:?} m0 {m0}: ln det {got}, exact {exact}");
        }
    }
}
