//! Gauge observables.
//!
//! Normalisations: the average plaquette is <Re tr P / N> over all V D(D-1)/2 plaquettes (1 on
//! a cold start); the rectangle likewise over the V D(D-1) 1x2 rectangles; the Polyakov loop is
//! the spatial average of tr prod_t U_t(x, t) / N (time is the last direction).

pub mod flow;
pub mod hadrons;

use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::halo::{LaneArray, lane_vectors, lane_vectors_mut};
use crate::backend::cpu::packed::{LANES, Real};
use crate::field::GaugeField;
use crate::group::{LinkMatrix, U1};
use crate::loops::{
    boundary_loop_counts, boundary_loop_re_tr_sums, plaquette, plaquette_re_tr_sum, rectangle_re_tr_sum,
};
use crate::parallel::{global_sum, global_sums};
use num_complex::Complex64;
use rayon::prelude::*;

pub use flow::{FlowMeasurement, wilson_flow};

/// Average plaquette <Re tr P / N>; on a lattice open in time the plaquettes in the lattice,
/// the space-like ones on the boundary slices with weight 1/2 (openQCD's `plaq_wsum_dble`,
/// which qcd1 divides by the weighted count D(D-1)/2 (N0-1) V3: 1 on a cold start).
pub fn average_plaquette<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    let [boundary, _] = boundary_loop_re_tr_sums(u, false);
    let [count, _] = boundary_loop_counts(u.lattice());
    (plaquette_re_tr_sum(u) - 0.5 * boundary)
        / (G::NC as f64 * (u.lattice().plaquette_count() as f64 - 0.5 * count as f64))
}

/// Average 1x2 rectangle <Re tr R / N>, weighted like [`average_plaquette`] on a lattice open in
/// time.
pub fn average_rectangle<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    let [_, boundary] = boundary_loop_re_tr_sums(u, true);
    let [_, count] = boundary_loop_counts(u.lattice());
    (rectangle_re_tr_sum(u) - 0.5 * boundary)
        / (G::NC as f64 * (u.lattice().rectangle_count() as f64 - 0.5 * count as f64))
}

/// Polyakov loop: the average over spatial sites of tr prod_t U_t(x, t) / N, the product
/// accumulated link by link from t = 0 (on a grid that cuts time, rank after rank along it, so
/// that every loop is the same product as on one rank).
pub fn polyakov_loop<G: PackedGroup>(u: &GaugeField<G>) -> Complex64 {
    let lat = u.lattice();
    let t_dir = lat.ndim() - 1;
    let nt = lat.dims()[t_dir];
    let spatial = lat.volume() / nt;
    // sites with t = 0 are the first `spatial` lexicographic indices, time the slowest
    let continued =
        |x: usize, start: &G::Elem| (0..nt).fold(*start, |prod, t| prod.mul(&u.link(x + t * spatial, t_dir)));
    let mut loops: Vec<G::Elem> = (0..spatial).map(|_| G::Elem::identity()).collect();
    let comm = lat.comm();
    let ranks_in_time = comm.grid()[t_dir];
    let mine = comm.coords()[t_dir];
    // the products travel forward in time, one rank per round
    for round in 0..ranks_in_time {
        if round == mine {
            loops = loops.par_iter().enumerate().map(|(x, start)| continued(x, start)).collect();
        }
        if round + 1 < ranks_in_time {
            let bytes = encode_elements::<G>(&loops);
            let arrived = comm.start_exchange(t_dir, true, bytes.clone(), bytes.len()).finish();
            if round + 1 == mine {
                loops = decode_elements::<G>(&arrived);
            }
        }
    }
    let last = mine + 1 == ranks_in_time;
    let [re, im] = global_sums(comm.as_ref(), spatial, |x, [re, im]| {
        if last {
            let trace = loops[x].trace();
            re.add(trace.re);
            im.add(trace.im);
        }
    });
    let spatial_volume = lat.global_volume() / lat.global_dims()[t_dir];
    Complex64::new(re.value(), im.value()) / (spatial_volume * G::NC) as f64
}

/// Group elements as message bytes (each packed into lane 0 of a packed element).
fn encode_elements<G: PackedGroup>(elements: &[G::Elem]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        let packed = G::pack([e; LANES]);
        lane_vectors(&packed).iter().for_each(|v| v[0].write_le(&mut out));
    }
    out
}

/// The group elements of [`encode_elements`]' bytes.
fn decode_elements<G: PackedGroup>(bytes: &[u8]) -> Vec<G::Elem> {
    let reals = <G::Packed<f64> as LaneArray>::VECTORS;
    bytes
        .chunks_exact(reals * 8)
        .map(|chunk| {
            let one = G::Elem::identity();
            let mut packed = G::pack([&one; LANES]);
            for (k, v) in lane_vectors_mut(&mut packed).iter_mut().enumerate() {
                v[0] = f64::read_le(&chunk[k * 8..]);
            }
            G::lane(&packed, 0)
        })
        .collect()
}

/// Geometric topological charge of a 2D U(1) field: Q = (1/2 pi) sum_x arg P_{01}(x) with
/// arg in (-pi, pi]; an exact integer on the torus.
pub fn topological_charge_u1_2d(u: &GaugeField<U1>) -> f64 {
    assert_eq!(u.lattice().ndim(), 2, "the geometric charge is defined in 2D");
    u.assert_halo_fresh();
    let lat = u.lattice();
    global_sum(lat.comm().as_ref(), lat.volume(), |x| plaquette(u, x, 0, 1).arg()) / std::f64::consts::TAU
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
