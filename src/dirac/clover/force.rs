//! The clover term's contribution to the force: the derivative of Re sum_x tr(O(x) C(x)) with
//! respect to every link, for site-local matrices O(x) in spin and colour (an outer product
//! b a^dagger of two fields for the pseudofermions, A^{-1} for the log-determinant).
//!
//! With Y_{mu nu}(x)_{beta alpha} = sum_{s t} (gamma_mu gamma_nu)_{s t} O(x)_{(t beta), (s alpha)}
//! and Z = Y - Y^dagger, Re tr(O C) = -(kappa c_sw / 8) sum_{mu < nu} Re tr(Q_{mu nu}(x) Z_{mu nu}(x))
//! ([`super`] for C and the leaves Q). The insertions Z, scaled by their coefficients, are
//! summed first ([`Insertions`]), so that however many terms a force has, the leaves are
//! differentiated once. A link lies on two plaquettes per plane it spans, each a leaf of its
//! four corners z; a leaf that runs the link forward contributes Re tr(T_a U W), W the rest of
//! the loop from the link's end back to its start with Z(z) inserted at z, and one that runs
//! it backward the same with -Z (Z is anti-Hermitian). On a block of a cut lattice the
//! insertions of the corners on neighbouring blocks come from a halo exchanged like the links.

use super::term::{CloverTerm, planes};
use crate::backend::cpu::halo::{Extended, Whole, exchange};
use crate::backend::cpu::packed::{ColorVector, LANES, Lanes, PackedMatrix};
use crate::backend::cpu::{PackedGroup, alg_lanes_axpy};
use crate::checkerboard::Checkerboard;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::{Lattice, PackedSite};
use crate::group::LinkMatrix;
use crate::spinor::{Spinor, SpinorField};
use rayon::prelude::*;
use std::sync::Arc;

/// The entries of gamma_mu gamma_nu of one plane: (row s, column t, k) for the entry i^k
/// (every row has one, a power of i, in the bases of [`crate::dirac::gamma`]).
type SpinEntries = Vec<(usize, usize, u8)>;

/// Per-site insertions Z_{mu nu}(x) of every plane for fields of S spin components, packed like
/// a gauge field's links (`element * planes + plane`, the block's elements then its halo's).
pub(super) struct Insertions<G: PackedGroup> {
    lattice: Arc<Lattice>,
    pairs: Vec<(usize, usize)>,
    entries: Vec<SpinEntries>,
    packed: Vec<G::Packed<f64>>,
}

/// i^k z for the complex lane vector z = (re, im).
fn times_i_lanes((re, im): (Lanes, Lanes), k: u8) -> (Lanes, Lanes) {
    match k % 4 {
        0 => (re, im),
        1 => (im.map(|x| -x), re),
        2 => (re.map(|x| -x), im.map(|x| -x)),
        _ => (im, re.map(|x| -x)),
    }
}

/// i^k v.
fn times_i_power<V: ColorVector>(v: &V, k: u8) -> V {
    match k % 4 {
        0 => *v,
        1 => v.times_i(),
        2 => v.neg(),
        _ => v.times_i().neg(),
    }
}

impl<G: PackedGroup> Insertions<G> {
    /// No insertions, on the block of `lattice`, for fields of `spins` spin components.
    pub(super) fn new(lattice: &Arc<Lattice>, spins: usize) -> Self {
        let (pairs, products) = planes(spins, lattice.ndim());
        let entries = products
            .iter()
            .map(|g| {
                (0..spins)
                    .map(|s| {
                        let t = (0..spins).find(|&t| g[s][t].norm() > 0.0).expect("a nonzero entry per row");
                        let k = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)]
                            .iter()
                            .position(|&(re, im)| g[s][t].re == re && g[s][t].im == im)
                            .expect("entries are powers of i");
                        (s, t, k as u8)
                    })
                    .collect()
            })
            .collect();
        let zero = G::Packed::<f64>::zero();
        let packed = vec![zero; lattice.box_len() * pairs.len()];
        Insertions { lattice: lattice.clone(), pairs, entries, packed }
    }

    /// Adds `coef` (Y - Y^dagger) on every site off the boundary slices of open boundaries,
    /// Y = `y(outer)[plane]` per interior element.
    fn add(&mut self, coef: f64, y: impl Fn(usize) -> Vec<G::Packed<f64>> + Sync) {
        let (lattice, planes) = (&self.lattice, self.pairs.len());
        let interior = lattice.outer_volume() * planes;
        self.packed[..interior].par_chunks_mut(planes).enumerate().for_each(|(outer, z)| {
            // C vanishes identically on the boundary slices of open boundaries
            let weight = std::array::from_fn(|l| {
                if lattice.is_boundary_time(lattice.time_of_lane(outer, l)) { 0.0 } else { coef }
            });
            let negative = weight.map(|w| -w);
            for (z, y) in z.iter_mut().zip(y(outer)) {
                let zeros = [0.0; LANES];
                *z = z.add(&y.mul_lanes(&weight, &zeros)).add(&y.adj().mul_lanes(&negative, &zeros));
            }
        });
    }

    /// Adds the insertions of O(x) = `coef` b(x) a(x)^dagger (full fields of the layout `cb`).
    pub(super) fn add_outer_products<const S: usize>(
        &mut self,
        cb: &Checkerboard,
        a: &SpinorField<G, S>,
        b: &SpinorField<G, S>,
        coef: f64,
    ) {
        let entries = &self.entries.clone();
        let spinor = |f: &SpinorField<G, S>, outer: usize| -> Spinor<G, S> {
            let (p, i) = cb.of_outer(outer);
            f.data()[cb.field_index(p, i)]
        };
        self.add(coef, |outer| {
            let (a, b) = (spinor(a, outer), spinor(b, outer));
            let plane = |entries: &SpinEntries| {
                entries.iter().fold(G::Packed::<f64>::zero(), |y, &(s, t, power)| {
                    G::Packed::<f64>::outer_add(&y, &times_i_power(&b[t], power), &a[s])
                })
            };
            entries.iter().map(plane).collect()
        });
    }

    /// Adds the insertions of O(x) = `coef` A(x)^{-1} on the sites of parity `parity` (the
    /// blocks of `term` on the layout `cb`).
    pub(super) fn add_inverse_blocks(
        &mut self,
        cb: &Checkerboard,
        term: &CloverTerm<G>,
        parity: usize,
        coef: f64,
    ) {
        let (lattice, entries) = (self.lattice.clone(), self.entries.clone());
        let n = G::NC;
        // S / 2: every plane has an entry per spin
        let h = entries[0].len() / 2;
        let side = h * n;
        self.add(coef, |outer| {
            let (p, i) = cb.of_outer(outer);
            let j = cb.field_index(p, i);
            let blocks = [0, 1].map(|chi| term.dense_block(true, j, chi));
            let plane = |entries: &SpinEntries| {
                // Y's entries (beta, alpha), real and imaginary parts, every lane
                let mut reals = vec![[0.0; LANES]; 2 * n * n];
                for &(s, t, power) in entries {
                    // gamma_mu gamma_nu commutes with gamma5: s and t have the same chirality
                    let (chi, s, t) = (s / h, s % h, t % h);
                    for (beta, alpha) in (0..n).flat_map(|x| (0..n).map(move |y| (x, y))) {
                        let (re, im) =
                            times_i_lanes(blocks[chi][(t * n + beta) * side + s * n + alpha], power);
                        let at = 2 * (beta * n + alpha);
                        (0..LANES).for_each(|l| {
                            (reals[at][l], reals[at + 1][l]) =
                                (reals[at][l] + re[l], reals[at + 1][l] + im[l])
                        });
                    }
                }
                let mut y = G::Packed::<f64>::zero();
                let mut lane_reals = vec![0.0; 2 * n * n];
                for l in (0..LANES)
                    .filter(|&l| lattice.parity(lattice.site_of_packed(outer, l)) as usize == parity)
                {
                    lane_reals.iter_mut().zip(&reals).for_each(|(r, lanes)| *r = lanes[l]);
                    G::set_lane(&mut y, l, &G::Elem::read_reals(&lane_reals));
                }
                y
            };
            entries.iter().map(plane).collect()
        });
    }

    /// p_a(y, lambda) += d/dw Re sum_x tr(O(x) C(x)) for every link, U_lambda(y) ->
    /// exp(w T_a) U_lambda(y), with the insertions summed so far (module docs); collective on
    /// a cut lattice (the insertions' halo is exchanged).
    pub(super) fn add_force(mut self, u: &GaugeField<G>, p: &mut MomentumField<G>) {
        let lattice = self.lattice.clone();
        let planes = self.pairs.len();
        if !lattice.box_plan().is_empty() {
            let (interior, halo) = self.packed.split_at_mut(lattice.outer_volume() * planes);
            let mut field = Extended { interior, halo, width: planes };
            exchange(lattice.comm().as_ref(), lattice.box_plan(), &mut field, &Whole);
        }
        u.assert_halo_fresh();
        let d = lattice.ndim();
        let plane =
            |mu: usize, nu: usize| self.pairs.iter().position(|&q| q == (mu.min(nu), mu.max(nu))).unwrap();
        let z = |s: PackedSite, k: usize| self.packed[s.outer * planes + k].permute(s.mask);
        // the link leaving s in direction +mu (forward) or -mu, and the site it reaches
        let step = |s: PackedSite, mu: usize, forward: bool| {
            if forward {
                let (m, mask) = u.packed_link(s, mu);
                (m.permute(mask), lattice.packed_fwd(s, mu))
            } else {
                let t = lattice.packed_bwd(s, mu);
                let (m, mask) = u.packed_link(t, mu);
                (m.permute(mask).adj(), t)
            }
        };
        let minus = ([-1.0; LANES], [0.0; LANES]);
        p.packed_mut().par_chunks_mut(d).enumerate().for_each(|(outer, pm)| {
            let x = PackedSite { outer, mask: 0 };
            for (lambda, p_link) in pm.iter_mut().enumerate() {
                let end = lattice.packed_fwd(x, lambda);
                let (mut forward, mut backward) = (G::Packed::<f64>::zero(), G::Packed::<f64>::zero());
                for rho in (0..d).filter(|&rho| rho != lambda) {
                    let k = plane(lambda, rho);
                    for side in [true, false] {
                        // the leaf end -> c2 -> c3 -> x: l1 l2 l3 with Z at each corner, nested
                        let (l1, c2) = step(end, rho, side);
                        let (l2, c3) = step(c2, lambda, false);
                        let (l3, _) = step(c3, rho, !side);
                        let l23 = l2.mul(&l3);
                        let t3 = z(c3, k).mul(&l3).add(&l3.mul(&z(x, k)));
                        let t2 = z(c2, k).mul(&l23).add(&l2.mul(&t3));
                        let leaves = z(end, k).mul(&l1.mul(&l23)).add(&l1.mul(&t2));
                        if side == (lambda < rho) {
                            forward = forward.add(&leaves);
                        } else {
                            backward = backward.add(&leaves);
                        }
                    }
                }
                let w = forward.add(&backward.mul_lanes(&minus.0, &minus.1));
                let (link, _) = u.packed_link(x, lambda);
                alg_lanes_axpy(1.0, &G::packed_re_tr_generators_of_product(link, &w), 0, p_link);
            }
        });
    }
}
