//! Gauge observables.
//!
//! Normalisations: the average plaquette is <Re tr P / N> over all V D(D-1)/2 plaquettes (1 on
//! a cold start); the rectangle likewise over the V D(D-1) 1x2 rectangles; the Polyakov loop is
//! the spatial average of tr prod_t U_t(x, t) / N (time is the last direction).

pub mod flow;
pub mod hadrons;

use crate::backend::cpu::PackedGroup;
use crate::field::GaugeField;
use crate::group::{LinkMatrix, U1};
use crate::loops::{plaquette, plaquette_re_tr_sum, rectangle_re_tr_sum};
use crate::parallel::{exact_sum, exact_sums};
use num_complex::Complex64;

pub use flow::{FlowMeasurement, wilson_flow};

/// Average plaquette <Re tr P / N>.
pub fn average_plaquette<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    plaquette_re_tr_sum(u) / (G::NC * u.lattice().plaquette_count()) as f64
}

/// Average 1x2 rectangle <Re tr R / N>.
pub fn average_rectangle<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    rectangle_re_tr_sum(u) / (G::NC * 2 * u.lattice().plaquette_count()) as f64
}

/// Polyakov loop: the average over spatial sites of tr prod_t U_t(x, t) / N.
pub fn polyakov_loop<G: PackedGroup>(u: &GaugeField<G>) -> Complex64 {
    let lat = u.lattice();
    let t_dir = lat.ndim() - 1;
    let nt = lat.dims()[t_dir];
    let spatial = lat.volume() / nt;
    let loop_at = |x: usize| {
        let mut site = x; // sites with t = 0 are the first `spatial` lexicographic indices
        let mut prod = G::Elem::identity();
        for _ in 0..nt {
            prod = prod.mul(&u.link(site, t_dir));
            site = lat.fwd(site, t_dir);
        }
        prod.trace()
    };
    // every loop once, in parallel; summed in site order, so independent of the thread count
    let [re, im] = exact_sums(spatial, |x, [re, im]| {
        let trace = loop_at(x);
        re.add(trace.re);
        im.add(trace.im);
    });
    Complex64::new(re.value(), im.value()) / (spatial * G::NC) as f64
}

/// Geometric topological charge of a 2D U(1) field: Q = (1/2 pi) sum_x arg P_{01}(x) with
/// arg in (-pi, pi]; an exact integer on the torus.
pub fn topological_charge_u1_2d(u: &GaugeField<U1>) -> f64 {
    assert_eq!(u.lattice().ndim(), 2, "the geometric charge is defined in 2D");
    exact_sum(u.lattice().volume(), |x| plaquette(u, x, 0, 1).arg()) / std::f64::consts::TAU
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::Su3;
    use std::f64::consts::TAU;
    use std::sync::Arc;

    /// A U(1) field with `n` units of constant flux in each listed plane (mu, nu): every
    /// plaquette of the plane has angle 2 pi n / (L_mu L_nu).
    pub(crate) fn constant_flux(lat: &Arc<Lattice>, planes: &[(usize, usize, i32)]) -> GaugeField<U1> {
        let mut u = GaugeField::<U1>::cold(lat.clone());
        for site in 0..lat.volume() {
            let x = lat.coords(site);
            for &(mu, nu, n) in planes {
                let (lm, ln) = (lat.dims()[mu], lat.dims()[nu]);
                let theta = TAU * n as f64 / (lm * ln) as f64;
                let phase = Complex64::from_polar(1.0, theta * x[mu] as f64);
                u.set_link(site, nu, &(u.link(site, nu) * phase));
                if x[mu] == lm - 1 {
                    let phase = Complex64::from_polar(1.0, -theta * (lm * x[nu]) as f64);
                    u.set_link(site, mu, &(u.link(site, mu) * phase));
                }
            }
        }
        u
    }

    #[test]
    fn cold_start_normalisations() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 6]).unwrap());
        let u = GaugeField::<Su3>::cold(lat);
        assert!((average_plaquette(&u) - 1.0).abs() < 1e-15);
        assert!((average_rectangle(&u) - 1.0).abs() < 1e-15);
        assert!((polyakov_loop(&u) - Complex64::new(1.0, 0.0)).norm() < 1e-15);
    }

    #[test]
    fn geometric_charge_counts_flux_units() {
        let lat = Arc::new(Lattice::new(&[8, 6]).unwrap());
        for n in [-2, 0, 1, 3] {
            let u = constant_flux(&lat, &[(0, 1, n)]);
            let q = topological_charge_u1_2d(&u);
            assert!((q - n as f64).abs() < 1e-12, "n = {n}: Q = {q}");
            let theta = TAU * n as f64 / 48.0;
            assert!((average_plaquette(&u) - theta.cos()).abs() < 1e-12);
        }
        let hot = GaugeField::<U1>::hot(lat, 4);
        let q = topological_charge_u1_2d(&hot);
        assert!((q - q.round()).abs() < 1e-9, "Q is an integer on the torus: {q}");
    }

    #[test]
    fn polyakov_loop_of_a_constant_temporal_link() {
        let lat = Arc::new(Lattice::new(&[4, 6]).unwrap());
        let mut u = GaugeField::<U1>::cold(lat.clone());
        for site in 0..lat.volume() {
            u.set_link(site, 1, &Complex64::from_polar(1.0, 0.3));
        }
        assert!((polyakov_loop(&u) - Complex64::from_polar(1.0, 1.8)).norm() < 1e-14);
    }
}
