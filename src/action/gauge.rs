//! Gauge actions: Wilson, tree-level Symanzik and Iwasaki.
//!
//! S = beta * sum_x [ c0 sum_{mu<nu} (1 - Re tr P_{mu nu}(x) / N)
//!                  + c1 sum_{mu != nu} (1 - Re tr R_{mu nu}(x) / N) ]
//! with c0 = 1 - 8 c1 (README, Conventions): c1 = 0 (Wilson), -1/12 (Symanzik), -0.331 (Iwasaki). The
//! rectangle sum runs over every 1x2 rectangle once ([`crate::loops`]).
//!
//! On a lattice open in time ([`crate::geometry`]) the sums run over the loops that lie in the
//! lattice, 0 <= x0 <= N0-1 (those through the removed links vanish, as their links are zero),
//! and each space-like loop on the boundary slices x0 = 0 and N0-1 carries the weight c_G / 2,
//! openQCD's convention for its open boundaries (type 0; c_G = 1 is on-shell O(a) improved at
//! tree level): S = beta sum_C c_k w(C) (1 - Re tr C / N) with w(C) = c_G / 2 for those loops
//! and 1 otherwise. openQCD writes the same action as (1/g0^2) sum over oriented loops of
//! c_k w(C) tr(1 - C), with beta = 6 / g0^2.

use super::Monomial;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::alg_lanes_axpy;
use crate::backend::cpu::packed::{LANES, Lanes, PackedMatrix};
use crate::error::Result;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::PackedSite;
use crate::group::LinkMatrix;
use crate::loops::{
    Step, boundary_loop_counts, boundary_loop_re_tr_sums, path_product, plaquette_re_tr_sum,
    rectangle_re_tr_sum, rectangle_staple, spatial_loops_through,
};
use rayon::prelude::*;
use std::sync::Mutex;

/// The gauge actions a run card can name.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GaugeActionKind {
    /// Plaquettes only (c1 = 0).
    Wilson,
    /// Tree-level Symanzik (Luscher-Weisz), c1 = -1/12.
    Symanzik,
    /// Iwasaki, c1 = -0.331.
    Iwasaki,
}

impl GaugeActionKind {
    /// The rectangle coefficient c1.
    pub fn c1(self) -> f64 {
        match self {
            GaugeActionKind::Wilson => 0.0,
            GaugeActionKind::Symanzik => -1.0 / 12.0,
            GaugeActionKind::Iwasaki => -0.331,
        }
    }
}

/// A gauge action monomial with coupling beta (see the module docs for the normalisation).
#[derive(Clone, Debug)]
pub struct GaugeAction {
    name: String,
    beta: f64,
    c0: f64,
    c1: f64,
    /// c_G / 2, the weight of the space-like loops on the boundary slices of a lattice open in
    /// time (module docs).
    boundary_weight: f64,
    scratch: Scratch,
}

/// Storage that the plaquette force reuses from call to call (a fresh allocation each time
/// would cost page faults); a clone starts empty.
#[derive(Debug, Default)]
struct Scratch(Mutex<Vec<Lanes>>);

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl GaugeAction {
    /// The action of `kind` at coupling `beta`, named "gauge".
    pub fn new(kind: GaugeActionKind, beta: f64) -> Self {
        let c1 = kind.c1();
        GaugeAction {
            name: "gauge".into(),
            beta,
            c0: 1.0 - 8.0 * c1,
            c1,
            boundary_weight: 0.5,
            scratch: Scratch::default(),
        }
    }

    /// The same action with openQCD's boundary coefficient c_G (default 1), which weights the
    /// space-like loops on the boundary slices of a lattice open in time by c_G / 2 (module
    /// docs); it does nothing on a periodic lattice.
    pub fn with_boundary_coefficient(mut self, c_g: f64) -> Self {
        self.boundary_weight = 0.5 * c_g;
        self
    }

    /// The same action under another name (to place parts of it on different levels).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The coupling beta.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// The plaquette and rectangle coefficients (c0, c1).
    pub fn coefficients(&self) -> (f64, f64) {
        (self.c0, self.c1)
    }

    /// The action of `u`.
    pub fn value<G: PackedGroup>(&self, u: &GaugeField<G>) -> f64 {
        let lat = u.lattice();
        let n = G::NC as f64;
        let mut s = self.c0 * (lat.plaquette_count() as f64 - plaquette_re_tr_sum(u) / n);
        if self.c1 != 0.0 {
            s += self.c1 * (lat.rectangle_count() as f64 - rectangle_re_tr_sum(u) / n);
        }
        if lat.is_open_in_time() {
            // the boundary loops' weights beyond the 1 they got above
            let [plaquettes, rectangles] = boundary_loop_re_tr_sums(u, self.c1 != 0.0);
            let [np, nr] = boundary_loop_counts(lat).map(|k| k as f64);
            let extra = self.c0 * (np - plaquettes / n) + self.c1 * (nr - rectangles / n);
            s += (self.boundary_weight - 1.0) * extra;
        }
        self.beta * s
    }

    /// p += h F(U) for the force F of this action (cannot fail).
    pub fn force<G: PackedGroup>(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) {
        // S contains -(beta/N) c Re tr L for every loop L, so each link gets
        // F_a = (beta/N) c Re tr(T_a L_link) from every loop containing it, L_link the loop
        // traversed from that link forward.
        let coeff = h * self.beta / G::NC as f64;
        add_plaquette_force(u, coeff * self.c0, p, &self.scratch.0);
        if self.c1 != 0.0 {
            add_rectangle_force(u, coeff * self.c1, p);
        }
        if u.lattice().is_open_in_time() && self.boundary_weight != 1.0 {
            let extra = coeff * (self.boundary_weight - 1.0);
            add_boundary_loop_force(u, extra * self.c0, extra * self.c1, p);
        }
    }
}

impl<G: PackedGroup> Monomial<GaugeField<G>> for GaugeAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &GaugeField<G>) -> Result<f64> {
        Ok(self.value(u))
    }

    fn add_force(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) -> Result<()> {
        self.force(u, h, p);
        Ok(())
    }
}

/// p += c F with F_a = Re tr(T_a L) summed over the plaquettes L containing each link, L
/// traversed from that link forward.
///
/// Every plaquette is computed once and serves its four links, after openQCD's `plaq_frc`:
/// with U0 = U_mu(x), U1 = U_nu(x+mu), U3 = U_mu(x+nu), U2 = U_nu(x), W0 = U1 U3^dagger and
/// W1 = U2^dagger U0, the loops are U0 (W0 U2^dagger) for U0 (r0), its adjoint for U2 (-r0),
/// W0 W1 for U1 (r1) and (W1 W0)^dagger for U3 (-r3): three full products and three of which
/// only the traceless anti-Hermitian part is formed. A first pass adds +-r0 to the links at x,
/// plane by plane, and keeps r1 and r3, which belong to links at x + mu and x + nu; it runs
/// over the interior and over the lower faces of the block (plaquettes at x - nu that reach
/// links of the block). A second pass adds to every link the contributions it gets from the
/// plaquettes at x - nu, for nu = 0..D-1. Each link thus receives its 2(D-1) terms in one
/// fixed order: the same operations on any process grid and any thread count.
fn add_plaquette_force<G: PackedGroup>(
    u: &GaugeField<G>,
    c: f64,
    p: &mut MomentumField<G>,
    scratch: &Mutex<Vec<Lanes>>,
) {
    u.assert_halo_fresh();
    let lat = u.lattice();
    let d = lat.ndim();
    let planes: Vec<(usize, usize)> = (0..d).flat_map(|mu| (mu + 1..d).map(move |nu| (mu, nu))).collect();
    let mut plane_of = vec![0; d * d];
    for (k, &(mu, nu)) in planes.iter().enumerate() {
        (plane_of[mu * d + nu], plane_of[nu * d + mu]) = (k, k);
    }
    // r1 and r3 of every plane at every interior and face element (zero at upper faces),
    // written once each, without initialising the buffer first
    let np = planes.len();
    let len = lat.face_len() * 2 * np;
    let k_lanes = G::AlgLanes::default().as_ref().len();
    let mut kept = std::mem::take(&mut *scratch.lock().unwrap_or_else(|e| e.into_inner()));
    kept.resize(len * k_lanes, [0.0; LANES]);
    let (interior, faces) = kept.split_at_mut(lat.outer_volume() * 2 * np * k_lanes);
    p.packed_mut().par_chunks_mut(d).zip(interior.par_chunks_mut(2 * np * k_lanes)).enumerate().for_each(
        |(outer, (ps, keep))| {
            for (k, &(mu, nu)) in planes.iter().enumerate() {
                let [r0, r1, r3] = plaquette_derivatives(u, outer, mu, nu);
                alg_lanes_axpy(c, &r0, 0, &mut ps[mu]);
                alg_lanes_axpy(-c, &r0, 0, &mut ps[nu]);
                keep[2 * k * k_lanes..(2 * k + 1) * k_lanes].copy_from_slice(r1.as_ref());
                keep[(2 * k + 1) * k_lanes..(2 * k + 2) * k_lanes].copy_from_slice(r3.as_ref());
            }
        },
    );
    faces.par_chunks_mut(2 * np * k_lanes).enumerate().for_each(|(j, keep)| {
        let outer = lat.outer_volume() + j;
        for (k, &(mu, nu)) in planes.iter().enumerate() {
            let [_, r1, r3] = if lat.is_lower_face(outer) {
                plaquette_derivatives(u, outer, mu, nu)
            } else {
                [G::AlgLanes::default(); 3]
            };
            keep[2 * k * k_lanes..(2 * k + 1) * k_lanes].copy_from_slice(r1.as_ref());
            keep[(2 * k + 1) * k_lanes..(2 * k + 2) * k_lanes].copy_from_slice(r3.as_ref());
        }
    });
    let slot = |e: usize, j: usize| &kept[(e * 2 * np + j) * k_lanes..(e * 2 * np + j + 1) * k_lanes];
    p.packed_mut().par_chunks_mut(d).enumerate().for_each(|(outer, ps)| {
        let x = PackedSite { outer, mask: 0 };
        for (mu, pm) in ps.iter_mut().enumerate() {
            for nu in (0..d).filter(|&nu| nu != mu) {
                let below = lat.packed_bwd(x, nu);
                let k = plane_of[mu * d + nu];
                if mu < nu {
                    // U_mu(x) is U3 of the plaquette (mu, nu) at x - nu
                    alg_lanes_axpy(-c, slot(below.outer, 2 * k + 1), below.mask, pm);
                } else {
                    // U_mu(x) is U1 of the plaquette (nu, mu) at x - nu
                    alg_lanes_axpy(c, slot(below.outer, 2 * k), below.mask, pm);
                }
            }
        }
    });
    *scratch.lock().unwrap_or_else(|e| e.into_inner()) = kept;
}

/// r0, r1, r3 of the plaquette (mu, nu) at element `outer` (see [`add_plaquette_force`]).
#[inline(always)]
fn plaquette_derivatives<G: PackedGroup>(
    u: &GaugeField<G>,
    outer: usize,
    mu: usize,
    nu: usize,
) -> [G::AlgLanes; 3] {
    let lat = u.lattice();
    let x = PackedSite { outer, mask: 0 };
    let (x_mu, x_nu) = (lat.packed_fwd(x, mu), lat.packed_fwd(x, nu));
    let (u0, u2) = (u.packed_link(x, mu), u.packed_link(x, nu));
    let w0 = G::Packed::<f64>::product::<false, true>(u.packed_link(x_mu, nu), u.packed_link(x_nu, mu));
    let w1 = G::Packed::<f64>::product::<true, false>(u2, u0);
    let r1 = G::packed_re_tr_generators_of_product(&w0, &w1);
    let r3 = G::packed_re_tr_generators_of_product(&w1, &w0);
    let w2 = G::Packed::<f64>::product::<false, true>((&w0, 0), u2);
    [G::packed_re_tr_generators_of_product(u0.0, &w2), r1, r3]
}

/// p += c F with F_a = Re tr(T_a L) summed over the 1x2 rectangles L containing each link,
/// gathered per link from its rectangle staples.
fn add_rectangle_force<G: PackedGroup>(u: &GaugeField<G>, c: f64, p: &mut MomentumField<G>) {
    let d = u.lattice().ndim();
    p.packed_mut().par_chunks_mut(d).enumerate().for_each(|(outer, ps)| {
        let x = PackedSite { outer, mask: 0 };
        for (mu, pm) in ps.iter_mut().enumerate() {
            let staple = rectangle_staple(u, x, mu);
            alg_lanes_axpy(c, &G::packed_re_tr_generators_of_product(u.packed_link(x, mu).0, &staple), 0, pm);
        }
    });
}

/// p += F with F_a = c_k Re tr(T_a L) summed over the space-like loops L on the boundary
/// slices of a lattice open in time that contain each link, L traversed from that link forward:
/// c0 for plaquettes, c1 for rectangles (the weights beyond 1 of those loops, module docs).
/// Per site of the two slices: a boundary term, a fraction 2 / N0 of the links.
fn add_boundary_loop_force<G: PackedGroup>(u: &GaugeField<G>, c0: f64, c1: f64, p: &mut MomentumField<G>) {
    u.assert_halo_fresh();
    let lat = u.lattice();
    let d = lat.ndim();
    let loops: Vec<Vec<Vec<Step>>> = (0..d - 1).map(|mu| spatial_loops_through(d, mu, c1 != 0.0)).collect();
    let forces: Vec<(usize, usize, G::Alg)> = lat
        .boundary_sites()
        .into_par_iter()
        .flat_map_iter(|x| {
            let loops = &loops;
            (0..d - 1).map(move |mu| {
                let start = lat.fwd(x, mu);
                let mut w = G::Elem::zero();
                for path in &loops[mu] {
                    let c = if path.len() == 4 { c0 } else { c1 };
                    w = w.add(&path_product(u, start, &path[1..]).0.scale(c));
                }
                (x, mu, G::re_tr_generators(&u.link(x, mu).mul(&w)))
            })
        })
        .collect();
    for (x, mu, f) in forces {
        p.add_at(lat, x, mu, &f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::finite_difference::assert_force_matches;
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use crate::rng::{Purpose, StreamKey};
    use std::sync::Arc;

    /// Every force component agrees with a central finite difference of the action,
    /// relative to the force scale, to 1e-6.
    fn check_force<G: PackedGroup>(dims: &[usize], kind: GaugeActionKind) {
        check_force_on::<G>(Lattice::new(dims).unwrap(), GaugeAction::new(kind, 2.3));
    }

    /// `check_force` on `lattice` for `action`: 32 random links and, on a lattice open in time,
    /// links of every direction on the slices 0, 1, N0-2 and N0-1 (the removed ones included).
    fn check_force_on<G: PackedGroup>(lattice: Lattice, action: GaugeAction) {
        let lat = Arc::new(lattice);
        let u = GaugeField::<G>::hot(lat.clone(), 21);
        let mut f = MomentumField::<G>::zeros(&lat);
        action.force(&u, 1.0, &mut f);
        let mut rng = StreamKey::new(2, Purpose::Test, 0).stream(0);
        let d = lat.ndim();
        let n0 = lat.dims()[d - 1];
        let edges: Vec<(usize, usize)> = if lat.is_open_in_time() {
            let slice_site = |x0: usize| (0..lat.volume()).find(|&s| lat.coord(s, d - 1) == x0).unwrap() + 1;
            [0, 1, n0 - 2, n0 - 1].iter().flat_map(|&x0| (0..d).map(move |mu| (slice_site(x0), mu))).collect()
        } else {
            Vec::new()
        };
        let random = (0..32)
            .map(|_| ((rng.uniform() * lat.volume() as f64) as usize, (rng.uniform() * d as f64) as usize));
        let components: Vec<(usize, usize, usize)> = random
            .collect::<Vec<_>>()
            .into_iter()
            .chain(edges)
            .map(|(site, mu)| (site, mu, (rng.uniform() * G::ALG_DIM as f64) as usize))
            .collect();
        let label = format!("{:?} {}", action.coefficients(), G::NAME);
        assert_force_matches(&u, &f, components, 1e-4, |v| action.value(v), &label);
    }

    #[test]
    fn forces_match_finite_differences() {
        for kind in [GaugeActionKind::Wilson, GaugeActionKind::Symanzik, GaugeActionKind::Iwasaki] {
            check_force::<U1>(&[4, 6], kind);
            check_force::<U1>(&[4, 4, 4, 4], kind);
            check_force::<Su3>(&[4, 4], kind);
            check_force::<Su3>(&[4, 4, 2, 4], kind);
        }
    }

    /// Open boundaries: the forces with c_G != 1 (space-like boundary loops weighted 0.65)
    /// against finite differences, the removed links' and their neighbours' included.
    #[test]
    fn open_boundary_forces_match_finite_differences() {
        for kind in [GaugeActionKind::Wilson, GaugeActionKind::Symanzik] {
            let action = || GaugeAction::new(kind, 2.3).with_boundary_coefficient(1.3);
            check_force_on::<U1>(Lattice::new(&[4, 6]).unwrap().open_in_time(), action());
            check_force_on::<U1>(Lattice::new(&[4, 4, 4, 6]).unwrap().open_in_time(), action());
            check_force_on::<Su3>(Lattice::new(&[4, 4, 2, 6]).unwrap().open_in_time(), action());
        }
    }

    /// The action on a lattice open in time is openQCD's: beta sum c_k w(C) (1 - Re tr C / N)
    /// over the loops C whose links all join sites with 0 <= x0 <= N0-1 (found by walking each
    /// plaquette and rectangle with an unwrapped time coordinate), w = c_G / 2 for space-like
    /// loops on the slices x0 = 0 and N0-1, 1 otherwise. Links on the removed positions do not
    /// count: a field built from links that have them is the same field.
    #[test]
    fn open_boundary_action_sums_the_loops_inside_with_openqcd_weights() {
        fn check<G: PackedGroup>(dims: &[usize], kind: GaugeActionKind) {
            let (beta, c_g) = (2.3, 1.3);
            let lat = Arc::new(Lattice::new(dims).unwrap().open_in_time());
            let periodic = GaugeField::<G>::hot(Arc::new(Lattice::new(dims).unwrap()), 8);
            let u = GaugeField::<G>::from_links(lat.clone(), periodic.to_links()).unwrap();
            let action = GaugeAction::new(kind, beta).with_boundary_coefficient(c_g);
            let (d, n0) = (lat.ndim(), dims[dims.len() - 1] as isize);
            let (c0, c1) = action.coefficients();
            let mut shapes: Vec<(f64, Vec<Step>)> = Vec::new();
            for mu in 0..d {
                for nu in (0..d).filter(|&nu| nu != mu) {
                    if mu < nu {
                        shapes.push((c0, vec![Step::up(mu), Step::up(nu), Step::down(mu), Step::down(nu)]));
                    }
                    shapes.push((c1, crate::loops::rectangle_path(mu, nu).to_vec()));
                }
            }
            let mut want = 0.0;
            for x in 0..lat.volume() {
                let x0 = lat.coord(x, d - 1) as isize;
                for (c, path) in &shapes {
                    let mut t = x0;
                    let inside = path.iter().all(|s| {
                        if s.mu == d - 1 {
                            t += if s.forward { 1 } else { -1 };
                        }
                        (0..n0).contains(&t)
                    });
                    if !inside {
                        continue;
                    }
                    let spatial = path.iter().all(|s| s.mu != d - 1);
                    let w = if spatial && (x0 == 0 || x0 == n0 - 1) { c_g / 2.0 } else { 1.0 };
                    let re_tr = path_product(&u, x, path).0.trace().re;
                    want += beta * c * w * (1.0 - re_tr / G::NC as f64);
                }
            }
            let got = action.value(&u);
            assert!((got - want).abs() < 1e-11 * want.abs(), "{kind:?} {dims:?}: {got} against {want}");
            // the removed links are zero whatever the links given there
            let t = d - 1;
            let mut links = periodic.to_links();
            (0..lat.volume())
                .filter(|&s| lat.is_removed_link(s, t))
                .for_each(|s| links[s * d + t] = G::Elem::identity());
            assert!(GaugeField::<G>::from_links(lat.clone(), links).unwrap() == u);
            assert!(
                (0..lat.volume())
                    .filter(|&s| lat.is_removed_link(s, t))
                    .all(|s| u.link(s, t) == G::Elem::zero())
            );
        }
        check::<U1>(&[4, 6], GaugeActionKind::Wilson);
        check::<Su3>(&[4, 2, 4, 6], GaugeActionKind::Symanzik);
        check::<U1>(&[2, 4, 2, 8], GaugeActionKind::Iwasaki);
    }

    #[test]
    fn cold_field_has_zero_action_and_force() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        let u = GaugeField::<Su3>::cold(lat.clone());
        let action = GaugeAction::new(GaugeActionKind::Iwasaki, 6.0);
        assert!(action.value(&u).abs() < 1e-10);
        let mut f = MomentumField::<Su3>::zeros(&lat);
        action.force(&u, 1.0, &mut f);
        assert!(f.kinetic_energy() < 1e-24);
    }
}
