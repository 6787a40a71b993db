//! The Wilson operator as a dense matrix, and its log-determinant, for small lattices: the
//! exact fermion weight det(M^dagger M) = |det M|^2 against which pseudofermion estimates and
//! samplers are checked. Dense LU by faer (partial pivoting).

use super::WilsonOperator;
use crate::group::Group;
use crate::group::packed::ColorVector;
use crate::spinor::{Color, SpinorField};
use faer::Mat;
use num_complex::Complex64;

/// M as a dense matrix; row and column index (site * S + spin) * N + colour, N the number of
/// colours, sites lexicographic.
pub fn dense_matrix<G: Group, const S: usize>(w: &WilsonOperator<'_, G, S>) -> Mat<Complex64> {
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
                w.apply(&unit, &mut column);
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
pub fn ln_abs_det<G: Group, const S: usize>(w: &WilsonOperator<'_, G, S>) -> f64 {
    let lu = dense_matrix(w).partial_piv_lu();
    let u = lu.U();
    (0..u.nrows()).map(|i| u[(i, i)].norm().ln()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkerboard::Checkerboard;
    use crate::dirac::Boundary;
    use crate::field::GaugeField;
    use crate::geometry::Lattice;
    use crate::group::{Group, U1};
    use std::sync::Arc;

    /// ln det D_kappa of ../shared/reference/README.md section 5 (EXACT): free and constant
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
