//! Gauge actions: Wilson, tree-level Symanzik and Iwasaki.
//!
//! S = beta * sum_x [ c0 sum_{mu<nu} (1 - Re tr P_{mu nu}(x) / N)
//!                  + c1 sum_{mu != nu} (1 - Re tr R_{mu nu}(x) / N) ]
//! with c0 = 1 - 8 c1 (README, Conventions): c1 = 0 (Wilson), -1/12 (Symanzik), -0.331 (Iwasaki). The
//! rectangle sum runs over every 1x2 rectangle once ([`crate::loops`]).

use super::Monomial;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::alg_lanes_axpy;
use crate::backend::cpu::packed::{Lanes, PackedMatrix};
use crate::error::Result;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::PackedSite;
use crate::loops::{plaquette_re_tr_sum, rectangle_re_tr_sum, rectangle_staple};
use crate::parallel::for_each_slice_in_phases;
use rayon::prelude::*;
use std::marker::PhantomData;

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

    /// The plaquette and rectangle coefficients (c0, c1).
    pub fn coefficients(&self) -> (f64, f64) {
        (self.c0, self.c1)
    }

    /// The action of `u`.
    pub fn value<G: PackedGroup>(&self, u: &GaugeField<G>) -> f64 {
        let lat = u.lattice();
        let n = G::NC as f64;
        let plaquettes = lat.plaquette_count() as f64;
        let mut s = self.c0 * (plaquettes - plaquette_re_tr_sum(u) / n);
        if self.c1 != 0.0 {
            s += self.c1 * (2.0 * plaquettes - rectangle_re_tr_sum(u) / n);
        }
        self.beta * s
    }

    /// p += h F(U) for the force F of this action (cannot fail).
    pub fn force<G: PackedGroup>(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) {
        // S contains -(beta/N) c Re tr L for every loop L, so each link gets
        // F_a = (beta/N) c Re tr(T_a L_link) from every loop containing it, L_link the loop
        // traversed from that link forward.
        let coeff = h * self.beta / G::NC as f64;
        add_plaquette_force(u, coeff * self.c0, p);
        if self.c1 != 0.0 {
            add_rectangle_force(u, coeff * self.c1, p);
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
/// W1 = U2^dagger U0, the loops are U0 (W0 U2^dagger) for U0, its adjoint for U2 (F -> -F),
/// W0 W1 for U1 and (W1 W0)^dagger for U3: three full products and three of which only the
/// traceless anti-Hermitian part is formed. The forces on U1 and U3 are scattered to the
/// neighbouring sites; sites are processed in slices of the slowest outer coordinate, whose
/// scatter reaches the next slice at most, in phases that never run neighbouring slices
/// together ([`for_each_slice_in_phases`]).
fn add_plaquette_force<G: PackedGroup>(u: &GaugeField<G>, c: f64, p: &mut MomentumField<G>) {
    let lat = u.lattice();
    let d = lat.ndim();
    let slices = lat.dims()[d - 1] / 2;
    let slice_len = lat.outer_volume() / slices;
    let target = ScatterTarget::new(p.packed_mut());
    for_each_slice_in_phases(slices, |s| {
        for outer in s * slice_len..(s + 1) * slice_len {
            let x = PackedSite { outer, mask: 0 };
            for mu in 0..d {
                for nu in mu + 1..d {
                    let (x_mu, x_nu) = (lat.packed_fwd(x, mu), lat.packed_fwd(x, nu));
                    let (u0, u2) = (u.packed_link(x, mu), u.packed_link(x, nu));
                    let w0 = G::Packed::<f64>::product::<false, true>(
                        u.packed_link(x_mu, nu),
                        u.packed_link(x_nu, mu),
                    );
                    let w1 = G::Packed::<f64>::product::<true, false>(u2, u0);
                    let r1 = G::packed_re_tr_generators_of_product(&w0, &w1);
                    let r3 = G::packed_re_tr_generators_of_product(&w1, &w0);
                    let w2 = G::Packed::<f64>::product::<false, true>((&w0, 0), u2);
                    let r0 = G::packed_re_tr_generators_of_product(u0.0, &w2);
                    // SAFETY: x lies in slice s; x_mu (mu < D-1) in slice s, x_nu in slice s
                    // or s+1 (mod the slice count): the slices this task may write.
                    unsafe {
                        target.axpy(outer * d + mu, c, &r0, 0);
                        target.axpy(outer * d + nu, -c, &r0, 0);
                        target.axpy(x_mu.outer * d + nu, c, &r1, x_mu.mask);
                        target.axpy(x_nu.outer * d + mu, -c, &r3, x_nu.mask);
                    }
                }
            }
        }
    });
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

/// Packed momenta written from several threads at once by [`add_plaquette_force`], each
/// thread confined to the slices its phase gives it.
struct ScatterTarget<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: the target only hands out writes through `axpy`, whose callers guarantee that no two
// threads write one element concurrently; T itself moves between threads safely.
unsafe impl<T: Send> Sync for ScatterTarget<'_, T> {}

impl<'a, T: AsRef<[Lanes]> + AsMut<[Lanes]>> ScatterTarget<'a, T> {
    fn new(data: &'a mut [T]) -> Self {
        ScatterTarget { ptr: data.as_mut_ptr(), len: data.len(), _borrow: PhantomData }
    }

    /// Element i += a * x, x's lane l ^ mask going to lane l ([`alg_lanes_axpy`]).
    ///
    /// # Safety
    /// No other thread may access element i during the call.
    #[inline(always)]
    unsafe fn axpy(&self, i: usize, a: f64, x: &T, mask: usize) {
        assert!(i < self.len, "scatter index {i} outside {} links", self.len);
        // SAFETY: i is in bounds, the borrow of the data outlives self, and the caller
        // excludes concurrent access to element i.
        alg_lanes_axpy(a, x, mask, unsafe { &mut *self.ptr.add(i) });
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
    fn check_force<G: PackedGroup>(dims: &[usize], kind: GaugeActionKind) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 21);
        let action = GaugeAction::new(kind, 2.3);
        let mut f = MomentumField::<G>::zeros(&lat);
        action.force(&u, 1.0, &mut f);
        let scale = f.components().fold(0.0f64, |m, x| m.max(x.abs()));
        let mut rng = StreamKey::new(2, Purpose::Test, 0).stream(0);
        let d = lat.ndim();
        for _ in 0..32 {
            let (site, mu) =
                ((rng.uniform() * lat.volume() as f64) as usize, (rng.uniform() * d as f64) as usize);
            let a = (rng.uniform() * G::ALG_DIM as f64) as usize;
            let mut t = G::Alg::default();
            t.as_mut()[a] = 1.0;
            let eps = 1e-4;
            let shifted = |w: f64| {
                let mut v = u.clone();
                v.set_link(site, mu, &G::exp(&t, w).mul(&u.link(site, mu)));
                action.value(&v)
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
        assert!(action.value(&u).abs() < 1e-10);
        let mut f = MomentumField::<Su3>::zeros(&lat);
        action.force(&u, 1.0, &mut f);
        assert!(f.kinetic_energy() < 1e-24);
    }
}
