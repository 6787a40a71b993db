//! Gauge actions: Wilson, tree-level Symanzik and Iwasaki.
//!
//! S = beta * sum_x [ c0 sum_{mu<nu} (1 - Re tr P_{mu nu}(x) / N)
//!                  + c1 sum_{mu != nu} (1 - Re tr R_{mu nu}(x) / N) ]
//! with c0 = 1 - 8 c1 (DESIGN.md): c1 = 0 (Wilson), -1/12 (Symanzik), -0.331 (Iwasaki). The
//! rectangle sum runs over every 1x2 rectangle once ([`crate::loops`]).

use super::Monomial;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::PackedSite;
use crate::group::packed::{LANES, PackedMatrix};
use crate::group::{Group, alg_axpy};
use crate::loops::{
    lower_plaquette_staple, packed_plaquette, plaquette_re_tr_sum, rectangle_re_tr_sum, rectangle_staple,
};
use rayon::prelude::*;

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
}

impl GaugeAction {
    /// The action of `kind` at coupling `beta`, named "gauge".
    pub fn new(kind: GaugeActionKind, beta: f64) -> Self {
        let c1 = kind.c1();
        GaugeAction { name: "gauge".into(), beta, c0: 1.0 - 8.0 * c1, c1 }
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
}

impl<G: Group> Monomial<G> for GaugeAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &GaugeField<G>) -> f64 {
        let lat = u.lattice();
        let n = G::NC as f64;
        let plaquettes = lat.plaquette_count() as f64;
        let mut s = self.c0 * (plaquettes - plaquette_re_tr_sum(u) / n);
        if self.c1 != 0.0 {
            s += self.c1 * (2.0 * plaquettes - rectangle_re_tr_sum(u) / n);
        }
        self.beta * s
    }

    fn add_force(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) {
        // S contains -(beta/N) c Re tr L for every loop L, so each link gets
        // F_a = (beta/N) c Re tr(T_a L_link) from every loop containing it, L_link the loop
        // traversed from that link forward. Per site x: each plaquette P_{mu nu}(x) with base x
        // is computed once and serves U_mu(x) (L = P) and U_nu(x) (L = P^dagger, F = -r(P));
        // the plaquettes based at x - nu come from the lower staples, the rectangles from their
        // staples. LANES sites are computed together in packed form.
        let d = u.lattice().ndim();
        let coeff = h * self.beta / G::NC as f64;
        let (c_plaq, c_rect) = (coeff * self.c0, coeff * self.c1);
        p.data_mut().par_chunks_mut(LANES * d).enumerate().for_each(|(outer, ps)| {
            let x = PackedSite { outer, mask: 0 };
            let mut add = |mu: usize, c: f64, r: &[G::Alg; LANES]| {
                for (l, rl) in r.iter().enumerate() {
                    alg_axpy(c, rl, &mut ps[mu * LANES + l]);
                }
            };
            for mu in 0..d {
                for nu in mu + 1..d {
                    let r = G::packed_re_tr_generators(&packed_plaquette(u, x, mu, nu));
                    add(mu, c_plaq, &r);
                    add(nu, -c_plaq, &r);
                }
            }
            for mu in 0..d {
                let link = u.packed_link(x, mu);
                let loops = |staple: G::Packed| {
                    G::packed_re_tr_generators(&G::Packed::product::<false, false>(link, (&staple, 0)))
                };
                add(mu, c_plaq, &loops(lower_plaquette_staple(u, x, mu)));
                if self.c1 != 0.0 {
                    add(mu, c_rect, &loops(rectangle_staple(u, x, mu)));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::{LinkMatrix, Su3, U1};
    use crate::rng::{Purpose, StreamKey};
    use std::sync::Arc;

    /// Every force component agrees with a central finite difference of the action,
    /// relative to the force scale, to 1e-6.
    fn check_force<G: Group>(dims: &[usize], kind: GaugeActionKind) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 21);
        let action = GaugeAction::new(kind, 2.3);
        let mut f = MomentumField::<G>::zeros(&lat);
        action.add_force(&u, 1.0, &mut f);
        let scale = f.data().iter().flat_map(|a| a.as_ref().iter()).fold(0.0f64, |m, x| m.max(x.abs()));
        let mut rng = StreamKey::new(2, Purpose::Test, 0).stream(0);
        let d = lat.ndim();
        for _ in 0..12 {
            let (site, mu) =
                ((rng.uniform() * lat.volume() as f64) as usize, (rng.uniform() * d as f64) as usize);
            let a = (rng.uniform() * G::ALG_DIM as f64) as usize;
            let mut t = G::Alg::default();
            t.as_mut()[a] = 1.0;
            let eps = 1e-4;
            let shifted = |w: f64| {
                let mut v = u.clone();
                v.set_link(site, mu, &G::exp(&t, w).mul(&u.link(site, mu)));
                action.action(&v)
            };
            // fourth-order central difference
            let fd = -(8.0 * (shifted(eps) - shifted(-eps)) - (shifted(2.0 * eps) - shifted(-2.0 * eps)))
                / (12.0 * eps);
            let got = f.at(&lat, site, mu).as_ref()[a];
            assert!(
                (fd - got).abs() < 1e-6 * scale,
                "{kind:?} {} link ({site}, {mu}) a {a}: force {got}, finite difference {fd}",
                G::NAME
            );
        }
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

    #[test]
    fn cold_field_has_zero_action_and_force() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        let u = GaugeField::<Su3>::cold(lat.clone());
        let action = GaugeAction::new(GaugeActionKind::Iwasaki, 6.0);
        assert!(Monomial::<Su3>::action(&action, &u).abs() < 1e-10);
        let mut f = MomentumField::<Su3>::zeros(&lat);
        action.add_force(&u, 1.0, &mut f);
        assert!(f.kinetic_energy() < 1e-24);
    }
}
