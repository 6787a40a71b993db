//! The Wilson gradient flow (Luscher, arXiv:1006.4518) and observables at flow time t.
//!
//! Flow equation: dV/dt = Z(V) V with Z = -g0^2 dS_W/dV, which is the Wilson-action force of
//! [`crate::action::GaugeAction`] at beta = 2N. Integration by Luscher's third-order
//! Runge-Kutta scheme (his eq. C.1):
//!   W1 = exp(Z0/4) V,  W2 = exp(8/9 Z1 - 17/36 Z0) W1,  V(t+e) = exp(3/4 Z2 - 8/9 Z1 + 17/36 Z0) W2
//! with Z_i = e Z(W_i).
//!
//! Field strength: the clover G_{mu nu}(x) = (1/8)(C - C^dagger), traceless for SU(N), with C the
//! sum of the four plaquettes around x in the (mu, nu) plane. Energy density
//! E = -sum_{mu<nu} tr G_{mu nu}^2 (site average; E = (1/4) G^a G^a). Topological charge in 4D:
//! Q = -(1/4 pi^2) sum_x [tr(G01 G23) - tr(G02 G13) + tr(G03 G12)] = (1/32 pi^2) sum eps tr(F F)
//! with Hermitian F = -i G; a U(1) field with n01 flux units in (0,1) and n23 in (2,3) has
//! Q close to n01 n23. t0 solves t^2 E(t) = 0.3 (linear interpolation between flow steps).

use crate::action::{GaugeAction, GaugeActionKind};
use crate::backend::cpu::PackedGroup;
use crate::field::{GaugeField, MomentumField};
use crate::group::LinkMatrix;
use crate::loops::clover_leaves;
use crate::parallel::global_sum;

/// The clover field strength G_{mu nu}(x) (anti-Hermitian, traceless for SU(N)).
pub fn clover<G: PackedGroup>(u: &GaugeField<G>, site: usize, mu: usize, nu: usize) -> G::Elem {
    let c = clover_leaves(u, site, mu, nu);
    let g = c.sub(&c.adj()).scale(0.125);
    if G::NC > 1 { g.add_scalar(-g.trace() / G::NC as f64) } else { g }
}

/// Clover energy density E = -sum_{mu<nu} tr G^2, averaged over sites; on a lattice open in
/// time over the bulk sites 0 < x0 < N0-1 (openQCD's `ym_action` and `tcharge` leave out the
/// boundary slices, where leaves pass through removed links).
pub fn energy_density<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    u.assert_halo_fresh();
    let (lat, d) = (u.lattice(), u.lattice().ndim());
    let sum = global_sum(lat.comm().as_ref(), lat.volume(), |x| {
        if lat.is_boundary_slice(x) {
            return 0.0;
        }
        let mut e = 0.0;
        for mu in 0..d {
            for nu in mu + 1..d {
                let g = clover(u, x, mu, nu);
                e -= g.re_tr_mul(&g);
            }
        }
        e
    });
    sum / lat.bulk_volume() as f64
}

/// Clover topological charge of a 4D field (module docs for the normalisation); on a lattice
/// open in time the sum over the bulk sites, like [`energy_density`] (not an integer there).
pub fn topological_charge_clover<G: PackedGroup>(u: &GaugeField<G>) -> f64 {
    assert_eq!(u.lattice().ndim(), 4, "the clover charge is defined in 4D");
    u.assert_halo_fresh();
    let lat = u.lattice();
    let sum = global_sum(lat.comm().as_ref(), lat.volume(), |x| {
        if lat.is_boundary_slice(x) {
            return 0.0;
        }
        let g = |mu, nu| clover(u, x, mu, nu);
        g(0, 1).re_tr_mul(&g(2, 3)) - g(0, 2).re_tr_mul(&g(1, 3)) + g(0, 3).re_tr_mul(&g(1, 2))
    });
    -sum / (4.0 * std::f64::consts::PI * std::f64::consts::PI)
}

/// One Runge-Kutta step of the Wilson flow of size `eps`. On a lattice open in time the removed
/// links stay zero, Z is the force of the Wilson action with c_G = 1 (space-like boundary
/// plaquettes weighted 1/2), and the space-like links on the boundary slices move with 2 Z
/// (openQCD's `wflow`, after Luscher and Schaefer, arXiv:1206.2809, app. B).
pub fn flow_step<G: PackedGroup>(v: &mut GaugeField<G>, eps: f64) {
    let wilson = GaugeAction::new(GaugeActionKind::Wilson, 2.0 * G::NC as f64);
    let z = |w: &GaugeField<G>| {
        let lat = w.lattice();
        let mut f = MomentumField::<G>::zeros(lat);
        wilson.force(w, eps, &mut f);
        for x in lat.boundary_sites() {
            for mu in 0..lat.ndim() - 1 {
                let z = f.at(lat, x, mu);
                f.add_at(lat, x, mu, &z);
            }
        }
        f
    };
    let lattice = v.lattice().clone();
    let combine = |terms: &[(f64, &MomentumField<G>)]| {
        let mut out = MomentumField::<G>::zeros(&lattice);
        for (c, f) in terms {
            out.axpy(*c, f);
        }
        out
    };
    let z0 = z(v);
    v.evolve(&z0, 0.25);
    let z1 = z(v);
    v.evolve(&combine(&[(8.0 / 9.0, &z1), (-17.0 / 36.0, &z0)]), 1.0);
    let z2 = z(v);
    v.evolve(&combine(&[(0.75, &z2), (-8.0 / 9.0, &z1), (17.0 / 36.0, &z0)]), 1.0);
}

/// What one flow measurement records.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowMeasurement {
    /// Flow times t_k = k eps, k = 0..n.
    pub times: Vec<f64>,
    /// E(t_k), clover definition.
    pub energy: Vec<f64>,
    /// t0 with t0^2 E(t0) = 0.3, if reached before t_max.
    pub t0: Option<f64>,
    /// The clover topological charge at t_max (4D only).
    pub charge: Option<f64>,
}

/// Flows a copy of `u` to `t_max` in steps of `eps`, recording E(t), t0 and (in 4D) Q(t_max).
pub fn wilson_flow<G: PackedGroup>(u: &GaugeField<G>, eps: f64, t_max: f64) -> FlowMeasurement {
    let mut v = u.clone();
    let steps = (t_max / eps).round() as usize;
    let mut times = vec![0.0];
    let mut energy = vec![energy_density(&v)];
    let mut t0 = None;
    for k in 1..=steps {
        flow_step(&mut v, eps);
        let t = k as f64 * eps;
        let e = energy_density(&v);
        let (t_prev, e_prev) = (times[k - 1], energy[k - 1]);
        let (y_prev, y) = (t_prev * t_prev * e_prev, t * t * e);
        if t0.is_none() && y_prev < 0.3 && y >= 0.3 {
            t0 = Some(t_prev + (0.3 - y_prev) / (y - y_prev) * eps);
        }
        times.push(t);
        energy.push(e);
    }
    let charge = (u.lattice().ndim() == 4).then(|| topological_charge_clover(&v));
    FlowMeasurement { times, energy, t0, charge }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use crate::observables::average_plaquette;
    use crate::observables::tests::constant_flux;
    use std::sync::Arc;

    #[test]
    fn clover_charge_of_constant_fluxes() {
        let lat = Arc::new(Lattice::new(&[8, 8, 6, 6]).unwrap());
        for (n01, n23) in [(1, 1), (2, -1), (1, 0)] {
            let u = constant_flux(&lat, &[(0, 1, n01), (2, 3, n23)]);
            let (t01, t23) =
                (std::f64::consts::TAU * n01 as f64 / 64.0, std::f64::consts::TAU * n23 as f64 / 36.0);
            // clover of a constant field: G = i sin(theta), so Q = V sin t01 sin t23 / (4 pi^2)
            let exact = lat.volume() as f64 * t01.sin() * t23.sin() / (4.0 * std::f64::consts::PI.powi(2));
            let q = topological_charge_clover(&u);
            assert!((q - exact).abs() < 1e-10, "({n01},{n23}): Q = {q}, exact {exact}");
            // and the O(theta^2) clover error is small: Q is n01 n23 to 3 percent
            let n = (n01 * n23) as f64;
            assert!((q - n).abs() <= 0.03 * n.abs() + 1e-10, "({n01},{n23}): Q = {q}");
            // E = -sum tr G^2 = sin^2 t01 + sin^2 t23 exactly
            let e = t01.sin().powi(2) + t23.sin().powi(2);
            assert!((energy_density(&u) - e).abs() < 1e-12);
        }
    }

    #[test]
    fn charge_and_energy_are_gauge_invariant() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 8);
        let g = GaugeField::<Su3>::hot(lat.clone(), 9); // g(x) = link 0 of site x
        let mut v = u.clone();
        for x in 0..lat.volume() {
            for mu in 0..4 {
                let gx = g.link(x, 0);
                let gy = g.link(lat.fwd(x, mu), 0);
                v.set_link(x, mu, &gx.mul(&u.link(x, mu)).mul_adj(&gy));
            }
        }
        assert!((energy_density(&u) - energy_density(&v)).abs() < 1e-12);
        assert!((topological_charge_clover(&u) - topological_charge_clover(&v)).abs() < 1e-12);
        assert!((average_plaquette(&u) - average_plaquette(&v)).abs() < 1e-14);
    }

    #[test]
    fn flow_smooths_and_rk3_converges_at_third_order() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 12);
        // the flow is the gradient flow of the Wilson action: the plaquette grows at every step
        let mut v = u.clone();
        let mut plaq = average_plaquette(&v);
        for _ in 0..20 {
            flow_step(&mut v, 0.02);
            let next = average_plaquette(&v);
            assert!(next > plaq, "plaquette {next} after {plaq}");
            plaq = next;
        }
        // once the field is smooth (t >= 0.5 here) E(t) falls monotonically
        let m = wilson_flow(&u, 0.05, 2.0);
        assert!(m.energy[10..].windows(2).all(|w| w[1] < w[0]), "E(t): {:?}", m.energy);
        // global error of a third-order scheme: halving eps divides it by ~8
        let flowed = |eps: f64| {
            let mut v = u.clone();
            for _ in 0..(0.4 / eps).round() as usize {
                flow_step(&mut v, eps);
            }
            v
        };
        let reference = flowed(0.0025);
        let (e1, e2) = (flowed(0.04).max_distance(&reference), flowed(0.02).max_distance(&reference));
        let ratio = e1 / e2;
        assert!(ratio > 6.0 && ratio < 10.0, "error ratio {ratio} ({e1} / {e2})");
        // t0 is where t^2 E crosses 0.3, interpolated between two flow steps
        let m = wilson_flow(&u, 0.02, 1.0);
        let t0 = m.t0.expect("a hot field reaches t^2 E = 0.3 early");
        let k = m.times.iter().position(|&t| t >= t0).unwrap();
        let y = |i: usize| m.times[i] * m.times[i] * m.energy[i];
        assert!(y(k - 1) < 0.3 && y(k) >= 0.3, "t0 = {t0} between steps {} and {k}", k - 1);
        // U(1) in 4D flows too (the same code with N = 1)
        let w = GaugeField::<U1>::hot(lat, 13);
        let mu = wilson_flow(&w, 0.05, 0.5);
        assert!(mu.energy.last() < mu.energy.first());
    }
}
