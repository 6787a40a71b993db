//! The Wilson-Dirac operator (README, Conventions): M = 1 - kappa H with
//! H psi(x) = sum_mu [(1 - gamma_mu) U_mu(x) psi(x+mu) + (1 + gamma_mu) U_mu(x-mu)^dagger psi(x-mu)],
//! kappa = 1 / (2 m0 + 2D), and a phase e^{i theta} on the hops that wrap around in time
//! (theta = pi: antiperiodic). M is gamma5-Hermitian, M^dagger = gamma5 M gamma5.
//!
//! H only connects sites of opposite parity, so in even/odd ordering
//! M = [[1, -kappa H_eo], [-kappa H_oe, 1]] and det M = det(M_hat) with the Schur operator
//! M_hat = 1 - kappa^2 H_eo H_oe on the even sites (no extra determinant factor for Wilson
//! fermions without a clover term).
//!
//! The operator works on the fields of either layout of its [`Checkerboard`]: in the even/odd
//! layout M applies H block by block (each parity from the other), in the natural layout (any
//! even extents) as one pass over the single block, reading the same field; the Schur forms
//! need the even/odd layout.

use super::gamma::{GammaBlock, Phase, blocks};
use super::operator::{Discretization, FermionMatrix, FermionOperator};
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::alg_lanes_axpy;
use crate::backend::cpu::halo::{
    Extended, LaneCodec, LaneRun, Whole, copy_lanes, exchange, finish_stage, lane_vectors, lane_vectors_mut,
    start_stage,
};
use crate::backend::cpu::packed::{ColorVector, LANES, Lanes, PackedMatrix, Real, VectorPair};
use crate::checkerboard::{Checkerboard, Hop};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::geometry::PackedSite;
use crate::geometry::halo::Message;
use crate::spinor::{Color, MIN_CHUNK, Spinor, SpinorField};
use rayon::prelude::*;
use std::sync::Mutex;

/// Boundary condition of the fermion fields in time (mu = D-1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Boundary {
    /// Hops that wrap around in time pick up e^{i theta} forward and e^{-i theta} backward
    /// (on a periodic lattice).
    Phase(f64),
    /// openQCD's open boundaries (its type 0) on a lattice open in time
    /// ([`crate::geometry::Lattice::open_in_time`]): the quark fields vanish on the boundary
    /// slices x0 = 0 and N0-1. No hop reaches or leaves those slices and the operator is the
    /// identity there, so a field that vanishes there keeps vanishing, and det M is that of
    /// the bulk 0 < x0 < N0-1. c_F adds 2 kappa (c_F - 1) to the diagonal at x0 = 1 and N0-2
    /// (c_F - 1 in openQCD's D_w, its `sw_term`); the clover operator takes any c_F, the Wilson
    /// operator c_F = 1.
    Open {
        /// The boundary improvement coefficient c_F (1 at tree level).
        c_f: f64,
    },
}

impl Boundary {
    /// Periodic fermions (theta = 0).
    pub const PERIODIC: Boundary = Boundary::Phase(0.0);
    /// Antiperiodic fermions (theta = pi), the default.
    pub const ANTIPERIODIC: Boundary = Boundary::Phase(std::f64::consts::PI);

    /// The boundary of the hopping term alone: open boundaries without their c_F (which the
    /// clover term carries), a phase as it is.
    pub fn hopping(self) -> Boundary {
        match self {
            Boundary::Open { .. } => Boundary::Open { c_f: 1.0 },
            phase => phase,
        }
    }

    /// The phase angle theta of a periodic boundary; None for open boundaries.
    pub fn theta(&self) -> Option<f64> {
        match *self {
            Boundary::Phase(theta) => Some(theta),
            Boundary::Open { .. } => None,
        }
    }

    /// Checks that the boundary suits `lattice`: open fermions on a lattice open in time,
    /// periodic ones (with a phase) otherwise, and a finite c_F.
    pub fn check(&self, lattice: &crate::geometry::Lattice) -> Result<()> {
        match (*self, lattice.is_open_in_time()) {
            (Boundary::Phase(_), false) => Ok(()),
            (Boundary::Open { c_f }, true) if c_f.is_finite() => Ok(()),
            (Boundary::Open { c_f }, true) => Err(Error::Config(format!("c_F = {c_f}: must be finite"))),
            (Boundary::Phase(_), true) => {
                Err(Error::Config("a lattice open in time needs fermions with open boundaries".into()))
            }
            (Boundary::Open { .. }, false) => {
                Err(Error::Config("open fermion boundaries need a lattice open in time".into()))
            }
        }
    }
}

/// Wilson fermions on the fields of a checkerboard with a boundary phase in time: the
/// [`Discretization`] whose operators are [`WilsonOperator`]s.
#[derive(Clone, Debug)]
pub struct Wilson {
    cb: Checkerboard,
    boundary: Boundary,
}

impl Wilson {
    /// Wilson fermions on the layout `cb` with `boundary` in time.
    pub fn new(cb: Checkerboard, boundary: Boundary) -> Self {
        Wilson { cb, boundary }
    }
}

impl<G: PackedGroup, const S: usize> Discretization<G, S> for Wilson {
    type Operator<'a> = WilsonOperator<'a, G, S>;

    fn checkerboard(&self) -> &Checkerboard {
        &self.cb
    }

    fn operator<'a>(&'a self, u: &'a GaugeField<G>, kappa: f64) -> Result<WilsonOperator<'a, G, S>> {
        WilsonOperator::new(u, &self.cb, kappa, self.boundary)
    }
}

/// The Wilson-Dirac operator on a gauge field, with S = 2 spin components in 2D and S = 4 in 4D.
///
/// The operator keeps its own copy of the links in hop order: for the outer site i of block
/// p, the 2D links its hops cross (checkerboard `hops_of` order), the backward ones stored as
/// U_mu(x-mu)^dagger with their lanes already in the order of x's lanes, and every link that
/// wraps around in time multiplied by its boundary phase. A pass of the hopping term then reads
/// the links as one contiguous stream, and its inner loop has no lane exchanges of links, no
/// adjoints and no phases (the layout of openQCD's and QUDA's Dirac kernels).
pub struct WilsonOperator<'a, G: PackedGroup, const S: usize, R: Real = f64> {
    u: &'a GaugeField<G>,
    cb: &'a Checkerboard,
    kappa: f64,
    /// The boundary in time.
    boundary: Boundary,
    /// The links of the hops of each parity, in hop order (see above).
    hop_links: [Vec<G::Packed<R>>; 2],
    /// Spare fields for intermediate results, reused across applications (a CG iteration
    /// would otherwise allocate and zero three fields).
    scratch: Mutex<Vec<SpinorField<G, S, R>>>,
}

/// The spinors a hop can land on: a block's own and, on a block of a cut lattice, its halo
/// (indices after the block's).
trait Neighbours<T>: Sync {
    /// Spinor k.
    fn at(&self, k: usize) -> &T;
}

impl<T: Sync> Neighbours<T> for [T] {
    #[inline(always)]
    fn at(&self, k: usize) -> &T {
        &self[k]
    }
}

/// A block and its halo.
struct WithHalo<'a, T> {
    block: &'a [T],
    halo: &'a [T],
}

impl<T: Sync> Neighbours<T> for WithHalo<'_, T> {
    #[inline(always)]
    fn at(&self, k: usize) -> &T {
        let n = self.block.len();
        if k < n { &self.block[k] } else { &self.halo[k - n] }
    }
}

/// The halo messages of the hopping term H (H^dagger with DAGGER): for each spinor the S/2
/// rows of the spin projection that the receiving hop applies (1 - gamma_mu for a forward hop,
/// 1 + gamma_mu backward, swapped for H^dagger), half the bytes of the spinor. The receiver
/// stores the rows as the upper components and zeros as the lower ones, so that its own
/// projection of the stored spinor gives back the rows it received, up to the sign of zeros;
/// the hop adds its terms to accumulators that start at +0 and so never hold -0, which makes
/// the sign of a zero term invisible: the hop computes the same bits as on one rank.
struct Projection<const DAGGER: bool, const S: usize>;

impl<const DAGGER: bool, const S: usize> Projection<DAGGER, S> {
    /// The gamma block and the sign of the projection of the hop that reads `message`.
    fn of(message: &Message) -> (&'static GammaBlock, bool) {
        let forward_hop = !message.forward;
        (&blocks(S)[message.mu], forward_hop != DAGGER)
    }
}

impl<V, const DAGGER: bool, const S: usize> LaneCodec<V> for Projection<DAGGER, S>
where
    V: ColorVector + crate::backend::cpu::halo::LaneArray,
{
    fn lane_bytes(&self, _message: &Message, width: usize) -> usize {
        width / 2 * V::VECTORS * <V::Scalar as Real>::BYTES
    }

    fn encode(&self, message: &Message, element: &[V], run: LaneRun, out: &mut [u8]) {
        let (b, minus) = Self::of(message);
        let v: &[V; S] = element.try_into().expect("a spinor");
        let size = <V::Scalar as Real>::BYTES;
        let (row_bytes, lane_bytes) = (V::VECTORS * size, LaneCodec::<V>::lane_bytes(self, message, S));
        for r in 0..S / 2 {
            let lower = times_phase(b.phase[r], &v[S / 2 + b.column[r]]);
            let half = if minus { v[r].sub(&lower) } else { v[r].add(&lower) };
            for (lane, out) in run.lanes().zip(out.chunks_exact_mut(lane_bytes)) {
                let row = &mut out[r * row_bytes..(r + 1) * row_bytes];
                for (x, bytes) in lane_vectors(&half).iter().zip(row.chunks_exact_mut(size)) {
                    x[lane].store_le(bytes);
                }
            }
        }
    }

    fn decode(&self, message: &Message, bytes: &[u8], run: LaneRun, element: &mut [V]) {
        let (b, _) = Self::of(message);
        let size = <V::Scalar as Real>::BYTES;
        let (row_bytes, lane_bytes) = (V::VECTORS * size, LaneCodec::<V>::lane_bytes(self, message, S));
        for (lane, encoded) in run.lanes().zip(bytes.chunks_exact(lane_bytes)) {
            for r in 0..S / 2 {
                let row = &encoded[r * row_bytes..(r + 1) * row_bytes];
                for (x, bytes) in lane_vectors_mut(&mut element[r]).iter_mut().zip(row.chunks_exact(size)) {
                    x[lane] = V::Scalar::read_le(bytes);
                }
                for x in lane_vectors_mut(&mut element[S / 2 + b.column[r]]) {
                    x[lane] = V::Scalar::ZERO;
                }
            }
        }
    }
}

/// i^k v.
#[inline(always)]
fn times_phase<V: ColorVector>(phase: Phase, v: &V) -> V {
    match phase.0 % 4 {
        0 => *v,
        1 => v.times_i(),
        2 => v.neg(),
        _ => v.times_i().neg(),
    }
}

impl<'a, G: PackedGroup, const S: usize, R: Real> WilsonOperator<'a, G, S, R> {
    /// The operator with hopping parameter `kappa` on the field `u`. Checks that S matches the
    /// dimension (2 in 2D, 4 in 4D) and that `cb` belongs to the field's lattice.
    pub fn new(u: &'a GaugeField<G>, cb: &'a Checkerboard, kappa: f64, boundary: Boundary) -> Result<Self> {
        let d = u.lattice().ndim();
        if !(d == 2 && S == 2 || d == 4 && S == 4) {
            return Err(Error::Config(format!(
                "Wilson fermions need 2 spin components in 2D and 4 in 4D, not {S} in {d}D"
            )));
        }
        if cb.lattice() != u.lattice() {
            return Err(Error::Config(
                "the checkerboard and the gauge field are on different lattices".into(),
            ));
        }
        if !(kappa.is_finite() && kappa >= 0.0) {
            return Err(Error::Config(format!("kappa = {kappa}: must be a finite number >= 0")));
        }
        boundary.check(u.lattice())?;
        if matches!(boundary, Boundary::Open { c_f } if c_f != 1.0) {
            return Err(Error::Config(
                "c_F != 1 needs the clover operator (kind = \"clover\", with csw = 0 for none)".into(),
            ));
        }
        Ok(Self::build(u, cb, kappa, boundary))
    }

    fn build(u: &'a GaugeField<G>, cb: &'a Checkerboard, kappa: f64, boundary: Boundary) -> Self {
        u.assert_halo_fresh();
        let mut w = Self::with_links(u, cb, kappa, boundary, [Vec::new(), Vec::new()]);
        w.hop_links = std::array::from_fn(|p| w.links_in_hop_order(p));
        w
    }

    /// The operator with the given hop-ordered links and an empty scratch pool.
    fn with_links(
        u: &'a GaugeField<G>,
        cb: &'a Checkerboard,
        kappa: f64,
        boundary: Boundary,
        hop_links: [Vec<G::Packed<R>>; 2],
    ) -> Self {
        WilsonOperator { u, cb, kappa, boundary, hop_links, scratch: Mutex::new(Vec::new()) }
    }

    /// A field of `len` packed spinors with unspecified contents, for a result that will be
    /// overwritten entirely; hand it back with [`WilsonOperator::recycle`].
    pub(crate) fn scratch(&self, len: usize) -> SpinorField<G, S, R> {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        match pool.iter().position(|f| f.len() == len) {
            Some(k) => pool.swap_remove(k),
            None => SpinorField::zeros(self.cb.lattice(), len),
        }
    }

    /// Returns a field taken with [`WilsonOperator::scratch`].
    pub(crate) fn recycle(&self, field: SpinorField<G, S, R>) {
        self.scratch.lock().unwrap_or_else(|e| e.into_inner()).push(field);
    }

    /// The links of the hops from block p in hop order (see [`WilsonOperator`]).
    fn links_in_hop_order(&self, p: usize) -> Vec<G::Packed<R>> {
        let mut links = vec![G::Packed::<R>::zero(); self.cb.block_len(p) * 2 * S];
        links.par_chunks_mut(2 * S).enumerate().for_each(|(i, site_links)| {
            for (k, (hop, out)) in self.cb.hops_of(p, i).iter().zip(site_links).enumerate() {
                let (mu, forward) = (k / 2, k % 2 == 0);
                let (link, mask) = self.u.packed_link(hop.link(), mu);
                let mut l = link.permute(mask);
                if !forward {
                    l = l.adj();
                }
                if let Some((re, im)) = self.hop_factor(self.cb.outer(p, i), hop, mu, forward) {
                    l = l.mul_lanes(&re, &im);
                }
                *out = G::packed_in(&l);
            }
        });
        links
    }

    /// The gauge field it was built on.
    pub fn gauge_field(&self) -> &'a GaugeField<G> {
        self.u
    }

    /// The hopping parameter.
    pub fn kappa(&self) -> f64 {
        self.kappa
    }

    /// The checkerboard the fields live on.
    pub fn checkerboard(&self) -> &Checkerboard {
        self.cb
    }

    /// (H src)(x) for the outer site i of block p, src the block its hops land in; with DAGGER
    /// (H^dagger src)(x) = (gamma5 H gamma5 src)(x): gamma5 flips the lower spin half of the
    /// input and of the output, which swaps the signs of the projection and reconstruction.
    ///
    /// The directions are unrolled at compile time (S = D), so the gamma structure is constant
    /// and lane exchanges of spinors (only in the lane directions) cost a predicted branch where
    /// they cannot occur; the links come from the hop-ordered copy with their boundary phases. In 4D
    /// and f32 ([`Real::PAIR_ROWS`]) the two rows of each spin projection go through the hop as
    /// one [`ColorPair`](crate::backend::cpu::packed::ColorPair): four f32 lanes fill half a
    /// 256-bit register, a pair fills it (1.6x faster where the fields are in cache, the same
    /// bits as row by row).
    #[inline(always)]
    fn hop_site<const DAGGER: bool, N: Neighbours<Spinor<G, S, R>> + ?Sized>(
        &self,
        p: usize,
        i: usize,
        src: &N,
    ) -> Spinor<G, S, R> {
        let hops = self.cb.hops_of(p, i);
        let links = &self.hop_links[p][i * 2 * S..(i + 1) * 2 * S];
        if S == 4 && R::PAIR_ROWS {
            let mut acc = [<Color<G, R> as ColorVector>::Pair::zero(); 2];
            self.hop_direction_pair::<0, DAGGER, N>(hops, links, src, &mut acc);
            self.hop_direction_pair::<1, DAGGER, N>(hops, links, src, &mut acc);
            self.hop_direction_pair::<2, DAGGER, N>(hops, links, src, &mut acc);
            self.hop_direction_pair::<3, DAGGER, N>(hops, links, src, &mut acc);
            // split without `map`, whose closure LLVM leaves as a call that reads the pairs
            // back through memory (8% of the f32 kernel in cache)
            let ([a0, a1], [a2, a3]) = (acc[0].split(), acc[1].split());
            let rows = [a0, a1, a2, a3];
            return std::array::from_fn(|s| rows[s]);
        }
        let mut acc = [Color::<G, R>::zero(); S];
        self.hop_direction::<0, DAGGER, N>(hops, links, src, &mut acc);
        self.hop_direction::<1, DAGGER, N>(hops, links, src, &mut acc);
        if S == 4 {
            self.hop_direction::<2, DAGGER, N>(hops, links, src, &mut acc);
            self.hop_direction::<3, DAGGER, N>(hops, links, src, &mut acc);
        }
        acc
    }

    /// `hop_direction` in 4D with the two rows of each projection as one pair: `acc[0]` holds
    /// the upper spin rows (0, 1), `acc[1]` the lower ones (2, 3).
    #[inline(never)]
    fn hop_direction_pair<const MU: usize, const DAGGER: bool, N: Neighbours<Spinor<G, S, R>> + ?Sized>(
        &self,
        hops: &[Hop],
        links: &[G::Packed<R>],
        src: &N,
        acc: &mut [<Color<G, R> as ColorVector>::Pair; 2],
    ) {
        let permute = self.cb.lattice().hop_may_permute(MU);
        Self::hop_pair::<MU, true, DAGGER>(
            &hops[2 * MU],
            permute,
            &links[2 * MU],
            src.at(hops[2 * MU].neighbour()),
            acc,
        );
        Self::hop_pair::<MU, false, DAGGER>(
            &hops[2 * MU + 1],
            permute,
            &links[2 * MU + 1],
            src.at(hops[2 * MU + 1].neighbour()),
            acc,
        );
    }

    /// One hop of `hop_site` in 4D, both rows at once: the operations of `hop_row` for r = 0
    /// and r = 1 lane by lane (the same bits).
    #[inline(always)]
    fn hop_pair<const MU: usize, const FORWARD: bool, const DAGGER: bool>(
        hop: &Hop,
        permute: bool,
        link: &G::Packed<R>,
        v: &Spinor<G, S, R>,
        acc: &mut [<Color<G, R> as ColorVector>::Pair; 2],
    ) {
        type Pair<G, R> = <Color<G, R> as ColorVector>::Pair;
        let b = &blocks(S)[MU];
        let minus = FORWARD != DAGGER;
        let up = Pair::<G, R>::join(&v[0], &v[1]);
        let down = Pair::<G, R>::join(&v[S / 2 + b.column[0]], &v[S / 2 + b.column[1]]);
        let lower = down.times_phases(b.phase[0].0, b.phase[1].0);
        let mut half = if minus { up.sub(&lower) } else { up.add(&lower) };
        if permute {
            half = half.permute(hop.mask());
        }
        let chi = link.mat_vec_pair(&half);
        acc[0] = acc[0].add(&chi);
        // row r goes to lower row column[r]: swap the halves when row 0 goes to lower row 1
        let mut down = chi.times_phases(b.phase[0].conj().0, b.phase[1].conj().0);
        if b.column[0] == 1 {
            down = down.swap_halves();
        }
        acc[1] = if minus { acc[1].sub(&down) } else { acc[1].add(&down) };
    }

    /// Adds the forward and the backward hop in direction MU of `hop_site` to `acc`.
    #[inline(never)]
    fn hop_direction<const MU: usize, const DAGGER: bool, N: Neighbours<Spinor<G, S, R>> + ?Sized>(
        &self,
        hops: &[Hop],
        links: &[G::Packed<R>],
        src: &N,
        acc: &mut Spinor<G, S, R>,
    ) {
        self.hop_one::<MU, true, DAGGER, N>(&hops[2 * MU], &links[2 * MU], src, acc);
        self.hop_one::<MU, false, DAGGER, N>(&hops[2 * MU + 1], &links[2 * MU + 1], src, acc);
    }

    /// Adds one hop of `hop_site`: project, parallel-transport with the hop-ordered link,
    /// reconstruct.
    #[inline(always)]
    fn hop_one<
        const MU: usize,
        const FORWARD: bool,
        const DAGGER: bool,
        N: Neighbours<Spinor<G, S, R>> + ?Sized,
    >(
        &self,
        hop: &Hop,
        link: &G::Packed<R>,
        src: &N,
        acc: &mut Spinor<G, S, R>,
    ) {
        let v = src.at(hop.neighbour());
        let permute = self.cb.lattice().hop_may_permute(MU);
        // the rows written out, so that each gamma phase is a constant
        Self::hop_row::<MU, FORWARD, DAGGER>(0, hop, permute, link, v, acc);
        if S == 4 {
            Self::hop_row::<MU, FORWARD, DAGGER>(1, hop, permute, link, v, acc);
        }
    }

    /// Row r of `hop_one`.
    #[inline(always)]
    fn hop_row<const MU: usize, const FORWARD: bool, const DAGGER: bool>(
        r: usize,
        hop: &Hop,
        permute: bool,
        link: &G::Packed<R>,
        v: &Spinor<G, S, R>,
        acc: &mut Spinor<G, S, R>,
    ) {
        let b = &blocks(S)[MU];
        let minus = FORWARD != DAGGER;
        let mut half = Self::project(b, r, minus, v);
        if permute {
            half = half.permute(hop.mask());
        }
        let chi = G::Packed::<R>::mat_vec::<false>((link, 0), &half);
        Self::reconstruct(b, r, minus, &chi, acc);
    }

    /// Row r of the half spinor psi_up -+ A_mu psi_down of the projection (1 -+ gamma_mu) psi
    /// (minus for 1 - gamma_mu).
    #[inline(always)]
    fn project(b: &GammaBlock, r: usize, minus: bool, v: &Spinor<G, S, R>) -> Color<G, R> {
        let lower = times_phase(b.phase[r], &v[S / 2 + b.column[r]]);
        if minus { v[r].sub(&lower) } else { v[r].add(&lower) }
    }

    /// The factor per lane (re, im) of `hop`, from the element `outer` along +mu (`forward`) or
    /// -mu: with a phase, e^{i theta} forward and e^{-i theta} backward on the lanes that wrap
    /// around in time; with open boundaries, 0 on the lanes whose hop leaves or reaches a
    /// boundary slice; 1 on the others. None where every lane's factor is 1.
    fn hop_factor(&self, outer: usize, hop: &Hop, mu: usize, forward: bool) -> Option<(Lanes, Lanes)> {
        match self.boundary {
            Boundary::Phase(theta) => (hop.wraps_time() != 0).then(|| {
                let (cos, sin) = (theta.cos(), theta.sin());
                let s = if forward { sin } else { -sin };
                let wraps = |l: usize| hop.wraps_time() >> l & 1 == 1;
                (
                    std::array::from_fn(|l| if wraps(l) { cos } else { 1.0 }),
                    std::array::from_fn(|l| if wraps(l) { s } else { 0.0 }),
                )
            }),
            Boundary::Open { .. } => {
                let lat = self.cb.lattice();
                let nt = lat.global_dims()[lat.ndim() - 1];
                let step = |x0: usize| match (mu + 1 == lat.ndim(), forward) {
                    (false, _) => x0,
                    (true, true) => (x0 + 1) % nt,
                    (true, false) => (x0 + nt - 1) % nt,
                };
                let cut = |l: usize| {
                    let x0 = lat.time_of_lane(outer, l);
                    lat.is_boundary_time(x0) || lat.is_boundary_time(step(x0))
                };
                let re: Lanes = std::array::from_fn(|l| if cut(l) { 0.0 } else { 1.0 });
                (re != [1.0; LANES]).then_some((re, [0.0; LANES]))
            }
        }
    }

    /// Adds the projected spinor of row r back: up_r += chi, down_{column r} -+= conj(phase) chi
    /// (minus for the projection 1 - gamma_mu).
    #[inline(always)]
    fn reconstruct(b: &GammaBlock, r: usize, minus: bool, chi: &Color<G, R>, acc: &mut Spinor<G, S, R>) {
        let h = S / 2;
        acc[r] = acc[r].add(chi);
        let down = times_phase(b.phase[r].conj(), chi);
        let k = h + b.column[r];
        acc[k] = if minus { acc[k].sub(&down) } else { acc[k].add(&down) };
    }

    /// dst = base + c H src (H^dagger src with DAGGER) on block p, src the block its hops land
    /// in (parity 1 - p, or the same block in the natural layout); base = 0 when None.
    ///
    /// On a block of a cut lattice the halo of src is sent off first (the spin projections of
    /// [`Projection`]), the sites away from the block's edge are computed while it travels,
    /// and the boundary sites once it has arrived.
    pub(crate) fn hopping_into<const DAGGER: bool>(
        &self,
        p: usize,
        src: &[Spinor<G, S, R>],
        c: f64,
        base: Option<&[Spinor<G, S, R>]>,
        dst: &mut [Spinor<G, S, R>],
    ) {
        let q = self.cb.neighbour_block(p);
        let plan = self.cb.halo_plan(q);
        if plan.is_empty() {
            return self.hop_sites::<DAGGER, _>(p, src, c, base, dst, |_| true);
        }
        let comm = self.cb.lattice().comm().as_ref();
        let mut halo = self.scratch(self.cb.halo_len(q));
        let codec = Projection::<DAGGER, S>;
        let mut field =
            Extended { interior: src.as_flattened(), halo: halo.data_mut().as_flattened_mut(), width: S };
        let stage = plan.stages.first().map_or(&[][..], |s| &s[..]);
        let pending = start_stage(comm, stage, &field, &codec);
        self.hop_sites::<DAGGER, _>(p, src, c, base, dst, |i| !self.cb.is_boundary(p, i));
        finish_stage(stage, pending, &mut field, &codec);
        copy_lanes(&plan.copies, &mut field);
        let neighbours = WithHalo { block: src, halo: halo.data() };
        self.hop_sites::<DAGGER, _>(p, &neighbours, c, base, dst, |i| self.cb.is_boundary(p, i));
        self.recycle(halo);
    }

    /// dst = base + c H src on the sites i of block p with `wanted(i)` (the others untouched):
    /// all of them, those away from the block's edge or those on it; `wanted` is a closure
    /// type of its own per caller, so the whole-lattice pass compiles without a test.
    #[inline(always)]
    fn hop_sites<const DAGGER: bool, N: Neighbours<Spinor<G, S, R>> + ?Sized>(
        &self,
        p: usize,
        src: &N,
        c: f64,
        base: Option<&[Spinor<G, S, R>]>,
        dst: &mut [Spinor<G, S, R>],
        wanted: impl Fn(usize) -> bool + Sync,
    ) {
        dst.par_iter_mut().with_min_len(MIN_CHUNK).enumerate().for_each(|(i, out)| {
            if !wanted(i) {
                return;
            }
            let hop = self.hop_site::<DAGGER, N>(p, i, src);
            for (s, o) in out.iter_mut().enumerate() {
                let start = base.map_or(Color::<G, R>::zero(), |b| b[i][s]);
                *o = start.add_scaled_real(c, &hop[s]);
            }
        });
    }

    /// dst = H_{p, 1-p} src: the hopping term from parity 1 - p to parity p (half fields).
    pub fn hopping(&self, p: usize, src: &SpinorField<G, S, R>, dst: &mut SpinorField<G, S, R>) {
        self.hopping_into::<false>(p, src.data(), 1.0, None, dst.data_mut());
    }

    /// M (M^dagger with DAGGER) block by block, each block from the one its hops land in: the
    /// even and the odd half from each other, or the natural layout's one block from itself
    /// (its block 1 is empty).
    fn apply_full<const DAGGER: bool>(&self, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let cb = self.cb;
        let (y0, y1) = y.data_mut().split_at_mut(cb.block_len(0));
        self.hopping_into::<DAGGER>(
            0,
            x.block(cb, cb.neighbour_block(0)),
            -self.kappa,
            Some(x.block(cb, 0)),
            y0,
        );
        self.hopping_into::<DAGGER>(
            1,
            x.block(cb, cb.neighbour_block(1)),
            -self.kappa,
            Some(x.block(cb, 1)),
            y1,
        );
    }

    /// M_hat = 1 - kappa^2 H_eo H_oe (its adjoint with DAGGER) on even half fields, both hops
    /// fused with their scaling.
    fn schur<const DAGGER: bool>(&self, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let mut odd = self.scratch(self.cb.half_outer());
        self.hopping_into::<DAGGER>(1, x.data(), 1.0, None, odd.data_mut());
        self.hopping_into::<DAGGER>(0, odd.data(), -self.kappa * self.kappa, Some(x.data()), y.data_mut());
        self.recycle(odd);
    }
}

/// M = 1 - kappa H: diagonal blocks 1, off-diagonal blocks -kappa H_{p, 1-p}, and gamma5 H
/// gamma5 in place of H for the daggered forms. The Schur forms and the normal operator are
/// the fused kernels above, not the block compositions.
impl<G: PackedGroup, const S: usize, R: Real> FermionOperator<G, S, R> for WilsonOperator<'_, G, S, R> {
    fn checkerboard(&self) -> &Checkerboard {
        self.cb
    }

    fn apply(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        if dagger { self.apply_full::<true>(x, y) } else { self.apply_full::<false>(x, y) }
    }

    fn apply_block(
        &self,
        row: usize,
        column: usize,
        dagger: bool,
        x: &SpinorField<G, S, R>,
        y: &mut SpinorField<G, S, R>,
    ) {
        if row == column {
            y.data_mut().copy_from_slice(x.data());
        } else if dagger {
            self.hopping_into::<true>(row, x.data(), -self.kappa, None, y.data_mut());
        } else {
            self.hopping_into::<false>(row, x.data(), -self.kappa, None, y.data_mut());
        }
    }

    fn apply_diagonal_inverse(
        &self,
        _p: usize,
        _dagger: bool,
        x: &SpinorField<G, S, R>,
        y: &mut SpinorField<G, S, R>,
    ) {
        y.data_mut().copy_from_slice(x.data());
    }

    fn apply_schur(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        if dagger { self.schur::<true>(x, y) } else { self.schur::<false>(x, y) }
    }

    fn apply_normal(&self, even_odd: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let mut t = self.scratch(x.len());
        self.apply_as(even_odd, false, x, &mut t);
        self.apply_as(even_odd, true, &t, y);
        self.recycle(t);
    }

    /// b_e + kappa H_eo b_o in one pass.
    fn schur_source(&self, b: &SpinorField<G, S, R>) -> SpinorField<G, S, R> {
        let mut s = SpinorField::<G, S, R>::half(self.cb);
        self.hopping_into::<false>(0, b.part(1), self.kappa, Some(b.part(0)), s.data_mut());
        s
    }

    /// x_o = b_o + kappa H_oe x_e in one pass.
    fn schur_reconstruct(
        &self,
        b: &SpinorField<G, S, R>,
        x_even: &SpinorField<G, S, R>,
    ) -> SpinorField<G, S, R> {
        let mut x = SpinorField::<G, S, R>::full(self.cb);
        let (xe, xo) = x.parts_mut();
        xe.copy_from_slice(x_even.data());
        self.hopping_into::<false>(1, x_even.data(), self.kappa, Some(b.part(1)), xo);
        x
    }
}

/// dM = -kappa dH (full), and for the Schur operator Re(a_e^dagger dM_hat b_e) = -kappa^2
/// Re(a'^dagger dH b') with b' = (b_e, H_oe b_e) and a' = (a_e, gamma5 H_oe gamma5 a_e).
impl<'a, G: PackedGroup, const S: usize> FermionMatrix<G, S> for WilsonOperator<'a, G, S> {
    type Single<'s>
        = WilsonOperator<'a, G, S, f32>
    where
        Self: 's;

    /// The f32 copy rounds this operator's hop-ordered links (the same values as building
    /// them from the gauge field in f32, without gathering them again).
    fn single(&self) -> WilsonOperator<'a, G, S, f32> {
        let links = self.hop_links.each_ref().map(|table| table.par_iter().map(G::packed_in).collect());
        WilsonOperator::with_links(self.u, self.cb, self.kappa, self.boundary, links)
    }

    fn add_derivative(
        &self,
        even_odd: bool,
        a: &SpinorField<G, S>,
        b: &SpinorField<G, S>,
        c: f64,
        p: &mut MomentumField<G>,
    ) {
        if even_odd {
            self.add_hopping_derivative(
                &self.lift(a, true),
                &self.lift(b, false),
                -c * (self.kappa * self.kappa),
                p,
            );
        } else {
            self.add_hopping_derivative(a, b, -c * self.kappa, p);
        }
    }
}

/// The force of the Wilson operator, in f64 (the precision of the gauge field).
impl<G: PackedGroup, const S: usize> WilsonOperator<'_, G, S> {
    /// The halo of block q of a field (its spinors on the neighbouring ranks that hops from the
    /// other block reach); empty on the whole lattice.
    fn halo_of(&self, block: &[Spinor<G, S>], q: usize) -> SpinorField<G, S> {
        let mut halo = SpinorField::zeros(self.cb.lattice(), self.cb.halo_len(q));
        let plan = self.cb.halo_plan(q);
        if !plan.is_empty() {
            let mut field = Extended {
                interior: block.as_flattened(),
                halo: halo.data_mut().as_flattened_mut(),
                width: S,
            };
            exchange(self.cb.lattice().comm().as_ref(), plan, &mut field, &Whole);
        }
        halo
    }

    /// The full field on which the derivative kernel sees the Schur operator: (x_e, H_oe x_e),
    /// with gamma5 H_oe gamma5 when `dagger`.
    fn lift(&self, x: &SpinorField<G, S>, dagger: bool) -> SpinorField<G, S> {
        let mut src = x.clone();
        if dagger {
            src.gamma5();
        }
        let mut odd = SpinorField::<G, S>::half(self.cb);
        self.hopping(1, &src, &mut odd);
        if dagger {
            odd.gamma5();
        }
        SpinorField::from_halves(x, &odd)
    }

    /// p_a(x, mu) += c d/dw Re(a^dagger H b) for every link, where U_mu(x) -> exp(w T_a) U_mu(x)
    /// (a and b full fields, either layout). With h = psi_up - A_mu psi_down and k = psi_up + A_mu psi_down
    /// the half spinors of the projections (1 -+ gamma_mu) psi, the derivative is
    /// Re tr(T_a Z) with Z = phase U C1 - conj(phase) C2 U^dagger, C1 = sum_r h_b(x+mu) h_a(x)^dagger
    /// and C2 = sum_r k_b(x) k_a(x+mu)^dagger (phase: the boundary phase of the hop).
    pub fn add_hopping_derivative(
        &self,
        a: &SpinorField<G, S>,
        b: &SpinorField<G, S>,
        c: f64,
        p: &mut MomentumField<G>,
    ) {
        let d = self.u.lattice().ndim();
        let cb = self.cb;
        // the blocks of a and b with their halos (full spinors: both projections are needed)
        let halos = [a, b].map(|f| [0, 1].map(|q| self.halo_of(f.block(cb, q), q)));
        let with_halo =
            |k: usize, q: usize| WithHalo { block: [a, b][k].block(cb, q), halo: halos[k][q].data() };
        let (a_blocks, b_blocks) = ([with_halo(0, 0), with_halo(0, 1)], [with_halo(1, 0), with_halo(1, 1)]);
        p.packed_mut().par_chunks_mut(d).enumerate().for_each(|(outer, pm)| {
            let (block, i) = cb.of_outer(outer);
            let next = cb.neighbour_block(block);
            let (a_here, b_here) = (a_blocks[block].at(i), b_blocks[block].at(i));
            for (mu, (blk, p_link)) in blocks(S).iter().zip(pm.iter_mut()).enumerate() {
                let hop = cb.hop(block, i, mu, true);
                let (a_next, b_next) =
                    (a_blocks[next].at(hop.neighbour()), b_blocks[next].at(hop.neighbour()));
                let (mut c1, mut c2) = (G::Packed::<f64>::zero(), G::Packed::<f64>::zero());
                for r in 0..S / 2 {
                    let hb_next = Self::project(blk, r, true, b_next).permute(hop.mask());
                    let ka_next = Self::project(blk, r, false, a_next).permute(hop.mask());
                    c1 = G::Packed::<f64>::outer_add(&c1, &hb_next, &Self::project(blk, r, true, a_here));
                    c2 = G::Packed::<f64>::outer_add(&c2, &Self::project(blk, r, false, b_here), &ka_next);
                }
                if let Some((re, im)) = self.hop_factor(outer, hop, mu, true) {
                    c1 = c1.mul_lanes(&re, &im);
                    // the conjugate factor (+0 where im is 0, as a conjugate phase has it)
                    c2 = c2.mul_lanes(&re, &im.map(|x| if x == 0.0 { 0.0 } else { -x }));
                }
                let (link, _) = self.u.packed_link(PackedSite { outer, mask: 0 }, mu);
                let forward = G::packed_re_tr_generators_of_product(link, &c1);
                let backward = G::packed_re_tr_generators_of_product(&c2, &link.adj());
                alg_lanes_axpy(c, &forward, 0, p_link);
                alg_lanes_axpy(-c, &backward, 0, p_link);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::gamma::gamma;
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::{LinkMatrix, Su3, U1};
    use crate::rng::Purpose;
    use num_complex::Complex64;
    use std::sync::Arc;

    fn fields<G: PackedGroup, const S: usize>(dims: &[usize]) -> (GaugeField<G>, Checkerboard) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        (GaugeField::<G>::hot(lat.clone(), 4), Checkerboard::new(lat).unwrap())
    }

    /// A hot field and the natural layout (one block) of its lattice.
    fn natural_fields<G: PackedGroup>(dims: &[usize]) -> (GaugeField<G>, Checkerboard) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        (GaugeField::<G>::hot(lat.clone(), 4), Checkerboard::natural(lat).unwrap())
    }

    /// Row by row, as the f64 kernel computes it: the hop of site i of block p from `src`.
    fn hop_by_rows<G: PackedGroup, const DAGGER: bool>(
        w: &WilsonOperator<'_, G, 4, f32>,
        p: usize,
        i: usize,
        src: &[Spinor<G, 4, f32>],
    ) -> Spinor<G, 4, f32> {
        let (hops, links) = (w.cb.hops_of(p, i), &w.hop_links[p][i * 8..(i + 1) * 8]);
        let mut acc = [Color::<G, f32>::zero(); 4];
        w.hop_direction::<0, DAGGER, _>(hops, links, src, &mut acc);
        w.hop_direction::<1, DAGGER, _>(hops, links, src, &mut acc);
        w.hop_direction::<2, DAGGER, _>(hops, links, src, &mut acc);
        w.hop_direction::<3, DAGGER, _>(hops, links, src, &mut acc);
        acc
    }

    /// The f32 kernel, which transports both rows of each spin projection as one pair, gives
    /// every site's hop (and its gamma5-conjugate) bit for bit as the row-by-row kernel does.
    fn check_paired_rows<G: PackedGroup>(dims: &[usize]) {
        let (u, cb) = fields::<G, 4>(dims);
        let w = WilsonOperator::<G, 4>::new(&u, &cb, 0.13, Boundary::Phase(0.7)).unwrap().single();
        let x = SpinorField::<G, 4>::gaussian_full(&cb, 1, Purpose::Test, 0).convert::<f32>();
        for p in 0..2 {
            let src = x.block(&cb, cb.neighbour_block(p));
            for i in 0..cb.block_len(p) {
                assert_eq!(w.hop_site::<false, _>(p, i, src), hop_by_rows::<G, false>(&w, p, i, src));
                assert_eq!(w.hop_site::<true, _>(p, i, src), hop_by_rows::<G, true>(&w, p, i, src));
            }
        }
    }

    #[test]
    fn paired_rows_equal_the_row_kernel_bit_for_bit() {
        check_paired_rows::<Su3>(&[4, 4, 4, 8]);
        check_paired_rows::<U1>(&[2, 2, 4, 4]);
    }

    /// <x, M y> = <M^dagger x, y> on full fields.
    fn check_full_adjoint<G: PackedGroup, const S: usize>(u: &GaugeField<G>, cb: &Checkerboard) {
        let m = WilsonOperator::<G, S>::new(u, cb, 0.13, Boundary::Phase(0.7)).unwrap();
        let x = SpinorField::<G, S>::gaussian_full(cb, 1, Purpose::Test, 0);
        let y = SpinorField::<G, S>::gaussian_full(cb, 2, Purpose::Test, 0);
        let (mut my, mut mdx) = (SpinorField::full(cb), SpinorField::full(cb));
        m.apply(false, &y, &mut my);
        m.apply(true, &x, &mut mdx);
        let (a, b) = (x.dot(&my), mdx.dot(&y));
        assert!((a - b).norm() < 1e-12 * a.norm(), "<x, M y> = {a}, <M^dagger x, y> = {b}");
        // and M is not Hermitian (the test can tell M from M^dagger)
        let mut mx = SpinorField::full(cb);
        m.apply(false, &x, &mut mx);
        assert!((x.dot(&my) - mx.dot(&y)).norm() > 1e-3 * a.norm());
    }

    fn check_adjoint_and_gamma5<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let (u, cb) = fields::<G, S>(dims);
        check_full_adjoint::<G, S>(&u, &cb);
        let m = WilsonOperator::<G, S>::new(&u, &cb, 0.13, Boundary::Phase(0.7)).unwrap();
        // Schur operator on the even halves
        let (xe, ye) = (
            SpinorField::<G, S>::gaussian(
                &cb,
                crate::spinor::Sites::Parity(0),
                &crate::rng::StreamKey::new(3, Purpose::Test, 0),
            ),
            SpinorField::<G, S>::gaussian(
                &cb,
                crate::spinor::Sites::Parity(0),
                &crate::rng::StreamKey::new(4, Purpose::Test, 0),
            ),
        );
        let (mut sy, mut sdx) = (SpinorField::half(&cb), SpinorField::half(&cb));
        m.apply_schur(false, &ye, &mut sy);
        m.apply_schur(true, &xe, &mut sdx);
        let (a, b) = (xe.dot(&sy), sdx.dot(&ye));
        assert!((a - b).norm() < 1e-12 * a.norm());
    }

    /// The f32 copy of the operator agrees with the f64 one to single-precision round-off, in
    /// every form (M, M^dagger, M_hat, M_hat^dagger).
    fn check_single_precision<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let (u, cb) = fields::<G, S>(dims);
        let m = WilsonOperator::<G, S>::new(&u, &cb, 0.13, Boundary::Phase(0.7)).unwrap();
        let single = m.single();
        let x = SpinorField::<G, S>::gaussian_full(&cb, 1, Purpose::Test, 0);
        let xe = SpinorField::<G, S>::gaussian(
            &cb,
            crate::spinor::Sites::Parity(0),
            &crate::rng::StreamKey::new(3, Purpose::Test, 0),
        );
        for (even_odd, dagger) in [(false, false), (false, true), (true, false), (true, true)] {
            let input = if even_odd { &xe } else { &x };
            let mut exact = input.zeros_like();
            m.apply_as(even_odd, dagger, input, &mut exact);
            let mut rounded = SpinorField::<G, S, f32>::zeros(input.lattice(), input.len());
            single.apply_as(even_odd, dagger, &input.convert(), &mut rounded);
            let mut diff = rounded.convert::<f64>();
            diff.axpy(Complex64::new(-1.0, 0.0), &exact);
            let relative = (diff.norm_sqr() / exact.norm_sqr()).sqrt();
            assert!(relative < 1e-6, "e/o {even_odd} dagger {dagger}: {relative:e}");
            assert!(relative > 0.0, "the f32 operator computes in f32");
        }
    }

    #[test]
    fn single_precision_operator_matches_double() {
        check_single_precision::<U1, 2>(&[4, 8]);
        check_single_precision::<Su3, 4>(&[4, 2, 4, 8]);
    }

    #[test]
    fn adjoint_relations() {
        check_adjoint_and_gamma5::<U1, 2>(&[4, 8]);
        check_adjoint_and_gamma5::<Su3, 2>(&[8, 4]);
        check_adjoint_and_gamma5::<U1, 4>(&[2, 2, 4, 4]);
        check_adjoint_and_gamma5::<Su3, 4>(&[4, 2, 4, 8]);
    }

    /// The full operator in the natural layout, on lattices whose packed lanes mix parities.
    #[test]
    fn adjoint_relations_in_the_natural_layout() {
        let (u, cb) = natural_fields::<U1>(&[6, 6]);
        check_full_adjoint::<U1, 2>(&u, &cb);
        let (u, cb) = natural_fields::<U1>(&[2, 2]);
        check_full_adjoint::<U1, 2>(&u, &cb);
        let (u, cb) = natural_fields::<Su3>(&[6, 2]);
        check_full_adjoint::<Su3, 2>(&u, &cb);
        let (u, cb) = natural_fields::<Su3>(&[4, 4, 6, 6]);
        check_full_adjoint::<Su3, 4>(&u, &cb);
        let (u, cb) = natural_fields::<U1>(&[2, 2, 2, 6]);
        check_full_adjoint::<U1, 4>(&u, &cb);
    }

    /// Where both layouts exist, M, M^dagger and the hopping derivative are the same, site by
    /// site and bit by bit, in the natural layout as in the even/odd one.
    fn check_layouts_agree<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let (u, eo) = fields::<G, S>(dims);
        let natural = Checkerboard::natural(u.lattice().clone()).unwrap();
        let lat = u.lattice().clone();
        let run = |cb: &Checkerboard| {
            let m = WilsonOperator::<G, S>::new(&u, cb, 0.13, Boundary::Phase(0.7)).unwrap();
            let x = SpinorField::<G, S>::gaussian_full(cb, 1, Purpose::Test, 0);
            let y = SpinorField::<G, S>::gaussian_full(cb, 2, Purpose::Test, 0);
            let (mut mx, mut mdx) = (SpinorField::full(cb), SpinorField::full(cb));
            m.apply(false, &x, &mut mx);
            m.apply(true, &x, &mut mdx);
            let mut p = MomentumField::<G>::zeros(&lat);
            m.add_hopping_derivative(&x, &y, 0.3, &mut p);
            let values = |f: &SpinorField<G, S>| -> Vec<Complex64> {
                (0..lat.volume())
                    .flat_map(|x| (0..S).flat_map(move |s| (0..Color::<G>::COLORS).map(move |c| (x, s, c))))
                    .map(|(x, s, c)| f.get(cb, x, s, c))
                    .collect()
            };
            (values(&x), values(&mx), values(&mdx), p)
        };
        let (a, b) = (run(&eo), run(&natural));
        assert_eq!(a.0, b.0, "{dims:?}: the same noise");
        assert_eq!(a.1, b.1, "{dims:?}: M");
        assert_eq!(a.2, b.2, "{dims:?}: M^dagger");
        assert_eq!(a.3, b.3, "{dims:?}: hopping derivative");
        assert_ne!(a.1, a.2);
    }

    #[test]
    fn natural_and_even_odd_layouts_agree() {
        check_layouts_agree::<U1, 2>(&[4, 8]);
        check_layouts_agree::<Su3, 2>(&[8, 4]);
        check_layouts_agree::<U1, 4>(&[2, 2, 4, 4]);
        check_layouts_agree::<Su3, 4>(&[4, 2, 4, 8]);
    }

    /// gamma5 M gamma5 = M^dagger entry by entry: <e_i, M e_j> = conj(<e_j, gamma5 M gamma5 e_i>)
    /// for every pair of unit vectors on a small lattice.
    fn check_gamma5_hermiticity<G: PackedGroup, const S: usize>(dims: &[usize], natural: bool) {
        let (u, cb) = if natural { natural_fields::<G>(dims) } else { fields::<G, S>(dims) };
        let m = WilsonOperator::<G, S>::new(&u, &cb, 0.2, Boundary::ANTIPERIODIC).unwrap();
        let lat = cb.lattice().clone();
        let colors = Color::<G>::COLORS;
        let unit = |site: usize, s: usize, c: usize| {
            let mut e = SpinorField::<G, S>::full(&cb);
            e.set(&cb, site, s, c, Complex64::new(1.0, 0.0));
            e
        };
        let index: Vec<(usize, usize, usize)> = (0..lat.volume())
            .flat_map(|x| (0..S).flat_map(move |s| (0..colors).map(move |c| (x, s, c))))
            .collect();
        let columns: Vec<(SpinorField<G, S>, SpinorField<G, S>)> = index
            .iter()
            .map(|&(x, s, c)| {
                let e = unit(x, s, c);
                let (mut me, mut g5mg5e) = (SpinorField::full(&cb), SpinorField::full(&cb));
                m.apply(false, &e, &mut me);
                let mut g = e.clone();
                g.gamma5();
                m.apply(false, &g, &mut g5mg5e);
                g5mg5e.gamma5();
                (me, g5mg5e)
            })
            .collect();
        for (i, &(xi, si, ci)) in index.iter().enumerate() {
            for (j, &(xj, sj, cj)) in index.iter().enumerate() {
                let mij = columns[j].0.get(&cb, xi, si, ci);
                let gji = columns[i].1.get(&cb, xj, sj, cj);
                assert!((mij - gji.conj()).norm() < 1e-14, "entry ({i}, {j})");
            }
        }
    }

    #[test]
    fn gamma5_hermiticity_entry_by_entry() {
        check_gamma5_hermiticity::<U1, 2>(&[4, 4], false);
        check_gamma5_hermiticity::<Su3, 4>(&[2, 2, 4, 4], false);
        check_gamma5_hermiticity::<U1, 2>(&[6, 6], true);
        check_gamma5_hermiticity::<U1, 2>(&[2, 2], true);
        check_gamma5_hermiticity::<Su3, 4>(&[2, 2, 2, 6], true);
    }

    /// On constant U(1) links U_mu = e^{i theta_mu}, M e^{ikx} chi = 2 kappa D(k) e^{ikx} chi
    /// with D(k) = m0 + sum_mu (1 - cos q_mu) + i sum_mu gamma_mu sin q_mu, q = k + theta.
    fn check_free_field<G: PackedGroup, const S: usize>(dims: &[usize], theta: &[f64], natural: bool) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let d = dims.len();
        let links: Vec<G::Elem> = (0..lat.volume() * d)
            .map(|k| {
                let mut p = G::Alg::default();
                // a constant abelian link: exp(theta T) with T the first (diagonal for U(1))
                // generator; for SU(3) use lambda_3 (diagonal) so colours decouple
                let a = if G::ALG_DIM == 1 { 0 } else { 2 };
                p.as_mut()[a] = theta[k % d] * if G::ALG_DIM == 1 { 1.0 } else { 2.0 };
                G::exp(&p, 1.0)
            })
            .collect();
        let u = GaugeField::<G>::from_links(lat.clone(), links).unwrap();
        let cb = if natural { Checkerboard::natural(lat.clone()) } else { Checkerboard::new(lat.clone()) }
            .unwrap();
        let kappa = 0.11;
        let m0 = 1.0 / (2.0 * kappa) - d as f64;
        let m = WilsonOperator::<G, S>::new(&u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap();
        let colors = Color::<G>::COLORS;
        // colour c of the diagonal link has phase theta (c = 0), -theta (c = 1), 0 (c = 2)
        let colour_charge = |c: usize| [1.0, -1.0, 0.0][c];
        for n in [[1usize, 0, 3, 1], [0, 2, 1, 0]] {
            let k: Vec<f64> = (0..d)
                .map(|mu| {
                    let shift = if mu == d - 1 { std::f64::consts::PI } else { 0.0 };
                    (2.0 * std::f64::consts::PI * n[mu] as f64 + shift) / dims[mu] as f64
                })
                .collect();
            let chi: Vec<Complex64> =
                (0..S).map(|s| Complex64::new(0.3 + s as f64, 1.0 - 0.4 * s as f64)).collect();
            let mut psi = SpinorField::<G, S>::full(&cb);
            for site in 0..lat.volume() {
                let x = lat.coords(site);
                let phase = Complex64::from_polar(1.0, (0..d).map(|mu| k[mu] * x[mu] as f64).sum());
                for (s, chi_s) in chi.iter().enumerate() {
                    for c in 0..colors {
                        psi.set(&cb, site, s, c, phase * chi_s);
                    }
                }
            }
            let mut out = SpinorField::<G, S>::full(&cb);
            m.apply(false, &psi, &mut out);
            for c in 0..colors {
                let charge = if G::ALG_DIM == 1 { 1.0 } else { colour_charge(c) };
                let q: Vec<f64> = (0..d).map(|mu| k[mu] + charge * theta[mu]).collect();
                let a = m0 + q.iter().map(|q| 1.0 - q.cos()).sum::<f64>();
                for site in [0, 5 % lat.volume(), lat.volume() - 1] {
                    for s in 0..S {
                        let mut expected = a * psi.get(&cb, site, s, c);
                        for (mu, q_mu) in q.iter().enumerate() {
                            let g = gamma(S, mu);
                            for (t, g_st) in g[s].iter().enumerate() {
                                expected += Complex64::i() * q_mu.sin() * g_st * psi.get(&cb, site, t, c);
                            }
                        }
                        expected *= 2.0 * kappa;
                        let got = out.get(&cb, site, s, c);
                        assert!(
                            (got - expected).norm() < 1e-12,
                            "site {site} spin {s} colour {c}: {got} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    /// The hopping derivative agrees with a central finite difference of Re(a^dagger H b).
    fn check_derivative<G: PackedGroup, const S: usize>(dims: &[usize], natural: bool) {
        let (u, cb) = if natural { natural_fields::<G>(dims) } else { fields::<G, S>(dims) };
        let lat = cb.lattice().clone();
        let boundary = Boundary::Phase(0.9);
        let a = SpinorField::<G, S>::gaussian_full(&cb, 6, Purpose::Test, 0);
        let b = SpinorField::<G, S>::gaussian_full(&cb, 7, Purpose::Test, 0);
        let mut deriv = MomentumField::<G>::zeros(&lat);
        WilsonOperator::<G, S>::new(&u, &cb, 1.0, boundary)
            .unwrap()
            .add_hopping_derivative(&a, &b, 1.0, &mut deriv);
        let re_ahb = |v: &GaugeField<G>| {
            let w = WilsonOperator::<G, S>::new(v, &cb, 1.0, boundary).unwrap();
            let mut mb = SpinorField::full(&cb);
            w.apply(false, &b, &mut mb);
            (a.dot(&b) - a.dot(&mb)).re
        };
        let d = lat.ndim();
        let t_dim = d - 1;
        // links at the time boundary and inside
        for (site, mu) in [(0, 0), (lat.volume() - 1, t_dim), (lat.volume() / 2 + 1, 1), (3, t_dim)] {
            for c in 0..G::ALG_DIM {
                let mut t = G::Alg::default();
                t.as_mut()[c] = 1.0;
                let eps = 1e-5;
                let shifted = |w: f64| {
                    let mut v = u.clone();
                    v.set_link(site, mu, &G::exp(&t, w).mul(&u.link(site, mu)));
                    re_ahb(&v)
                };
                let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
                let got = deriv.at(&lat, site, mu).as_ref()[c];
                assert!(
                    (fd - got).abs() < 1e-6 * (1.0 + got.abs()),
                    "site {site} mu {mu} a {c}: {got} vs {fd}"
                );
            }
        }
    }

    #[test]
    fn hopping_derivative_matches_finite_differences() {
        check_derivative::<U1, 2>(&[4, 8], false);
        check_derivative::<Su3, 2>(&[4, 4], false);
        check_derivative::<U1, 4>(&[2, 2, 4, 4], false);
        check_derivative::<Su3, 4>(&[2, 4, 4, 4], false);
        check_derivative::<U1, 2>(&[6, 6], true);
        check_derivative::<Su3, 2>(&[2, 6], true);
        check_derivative::<U1, 4>(&[2, 2, 2, 6], true);
        check_derivative::<Su3, 4>(&[2, 2, 6, 6], true);
    }

    #[test]
    fn free_and_constant_fields_match_momentum_space() {
        check_free_field::<U1, 2>(&[8, 4], &[0.0, 0.0], false);
        check_free_field::<U1, 2>(&[4, 8], &[0.3, -0.7], false);
        check_free_field::<Su3, 4>(&[4, 2, 4, 4], &[0.0; 4], false);
        check_free_field::<Su3, 4>(&[2, 4, 4, 8], &[0.2, -0.5, 0.1, 0.4], false);
        check_free_field::<U1, 4>(&[2, 2, 4, 4], &[0.3, 0.0, -0.2, 0.1], false);
        check_free_field::<U1, 2>(&[6, 6], &[0.3, -0.7], true);
        check_free_field::<U1, 2>(&[2, 2], &[0.2, 0.5], true);
        check_free_field::<Su3, 4>(&[2, 2, 6, 6], &[0.2, -0.5, 0.1, 0.4], true);
        check_free_field::<U1, 4>(&[4, 4, 2, 6], &[0.3, 0.0, -0.2, 0.1], true);
    }
}
