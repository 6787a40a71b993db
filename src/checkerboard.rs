//! Views of the packed layout for fermion fields: the even/odd (checkerboard) view, for fields
//! that live on one parity (pseudofermions, the even/odd preconditioned Dirac operator), and the
//! natural view of one block, for full fields on lattices whose parities do not line up with
//! the lanes.
//!
//! A full field is a sequence of blocks, each a packed array over some of the outer sites (in
//! increasing outer order); a hop from block p lands in block [`Checkerboard::neighbour_block`].
//! - Even/odd layout: when L/2 is even in both lane directions
//!   ([`Lattice::lane_directions`]), the LANES sites of an outer site have the same parity, so
//!   block p holds the outer sites of parity p (index i = 0..V/(2 LANES)): a half field is one
//!   block, a full field the even block then the odd one, and a hop from parity p lands on the
//!   other parity.
//! - Natural layout (any even extents): one block of all outer sites in outer order; a hop
//!   lands in the same block. It serves the full operator M (no Schur operator, no half fields).
//!
//! [`Hop`] gives the neighbour's index in its block, its lane mask, the outer site of the link
//! that the hop crosses, and the lanes that wrap around the time boundary of the global lattice
//! (where fermion boundary phases apply).
//!
//! On a block of a cut lattice, hops from the block's edge land in the face elements of the
//! halo ([`crate::geometry::halo`]): block p's face elements are numbered after its interior,
//! index block_len(p) + j, and live in a separate halo buffer that [`Checkerboard::halo_plan`]
//! fills (the lattice's face plan in block indices). Sites with such a hop are the block's
//! boundary ([`Checkerboard::is_boundary`]); the others can be computed while the halo is on
//! its way.

use crate::backend::cpu::packed::LANES;
use crate::error::{Error, Result};
use crate::geometry::halo::{HaloPlan, LaneSite, Message};
use crate::geometry::{Lattice, PackedSite};
use std::sync::Arc;

/// One hop of the checkerboarded packed layout from site i of parity p in direction +-mu,
/// stored in 12 bytes so that the tables of a 16^4 lattice stay out of the caches' way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    neighbour: u32,
    link_outer: u32,
    mask: u8,
    link_mask: u8,
    wraps_time: u8,
}

impl Hop {
    /// Index of the neighbour among the outer sites of the other parity.
    #[inline(always)]
    pub fn neighbour(&self) -> usize {
        self.neighbour as usize
    }

    /// Lane mask of the hop (lane l reads lane l ^ mask of the neighbour).
    #[inline(always)]
    pub fn mask(&self) -> usize {
        usize::from(self.mask)
    }

    /// The link the hop crosses: U_mu(x) forward, U_mu(x - mu) backward, as a packed site.
    #[inline(always)]
    pub fn link(&self) -> PackedSite {
        PackedSite { outer: self.link_outer as usize, mask: usize::from(self.link_mask) }
    }

    /// Bit l set when lane l crosses the boundary of the time direction (mu = D-1).
    #[inline(always)]
    pub fn wraps_time(&self) -> u8 {
        self.wraps_time
    }
}

/// Block maps and hop tables of the packed layout for fermion fields: the even/odd layout
/// (two blocks, one per parity) or the natural one (one block of all outer sites).
#[derive(Clone, Debug)]
pub struct Checkerboard {
    lattice: Arc<Lattice>,
    /// Whether the blocks are the two parities (else one block of all outer sites).
    even_odd: bool,
    /// Outer sites of block p, in increasing order (block 1 is empty in the natural layout).
    outer_of: [Vec<usize>; 2],
    /// Face elements of the halo of block p, in increasing order.
    halo_of: [Vec<usize>; 2],
    /// Index of an outer site or face element within its block (face elements after the
    /// block's interior).
    index_of: Vec<usize>,
    /// Block (parity in the even/odd layout) of each outer site and face element.
    parity: Vec<u8>,
    /// Hops of block p, `(i * D + mu) * 2 + (0 forward | 1 backward)`.
    hops: [Vec<Hop>; 2],
    /// Whether site i of block p hops into the halo.
    boundary: [Vec<bool>; 2],
    /// The face plan of the lattice in the indices of block p.
    plans: [HaloPlan; 2],
}

impl Checkerboard {
    /// Checks that a whole lattice of extents `dims` on one process admits the even/odd layout:
    /// L_{D-2} and L_{D-1} (its lane directions) divisible by 4, so that all lanes of an outer
    /// site share its parity. The natural layout needs no more than the lattice itself (even
    /// extents).
    pub fn check_dims(dims: &[usize]) -> Result<()> {
        let d = dims.len();
        Self::check_lanes(dims, [d - 2, d - 1])
    }

    /// Checks that the block `lattice` admits the even/odd layout: its local extents in its lane
    /// directions ([`Lattice::lane_directions`]) divisible by 4. On one process this is
    /// [`Checkerboard::check_dims`]; on a process grid the lane directions move off the cut
    /// ones only where this holds for them, so a grid passes wherever it passed with the lanes
    /// in the last two directions (and may still fail where the global extents pass, e.g.
    /// [2, 2, 4, 4] cut to local [2, 2, 4, 2]).
    pub fn check_block(lattice: &Lattice) -> Result<()> {
        Self::check_lanes(lattice.dims(), lattice.lane_directions())
    }

    fn check_lanes(dims: &[usize], lanes: [usize; 2]) -> Result<()> {
        if lanes.iter().all(|&nu| dims[nu].is_multiple_of(4)) {
            return Ok(());
        }
        let d = dims.len();
        let which = if lanes == [d - 2, d - 1] {
            "the last two extents".to_string()
        } else {
            format!("the extents of directions {} and {} (the lane directions)", lanes[0], lanes[1])
        };
        Err(Error::Config(format!(
            "lattice {dims:?}: even/odd preconditioning (even_odd = true) needs {which} divisible by 4 (all \
             sites of a packed vector share a parity); even_odd = false runs on any even extents"
        )))
    }

    /// The even/odd layout (see [`Checkerboard::check_block`] for the extents it needs).
    pub fn new(lattice: Arc<Lattice>) -> Result<Self> {
        Self::build(lattice, true)
    }

    /// The natural layout: one block of all outer sites, for full fields on any lattice.
    pub fn natural(lattice: Arc<Lattice>) -> Result<Self> {
        Self::build(lattice, false)
    }

    /// The layout of fermion fields with or without even/odd preconditioning: the even/odd
    /// layout when `even_odd` (an error where the extents do not admit it) or where the extents
    /// admit it, else the natural one. Full fields of either layout hold the same values;
    /// keeping the even/odd layout where it exists keeps the summation order of runs without
    /// preconditioning what it was before the natural layout existed.
    pub fn for_fields(lattice: Arc<Lattice>, even_odd: bool) -> Result<Self> {
        if even_odd || Self::check_block(&lattice).is_ok() {
            Self::new(lattice)
        } else {
            Self::natural(lattice)
        }
    }

    /// Builds the maps and hop tables of the even/odd layout (blocks: the parities) or of the
    /// natural one (one block).
    fn build(lattice: Arc<Lattice>, even_odd: bool) -> Result<Self> {
        let dims = lattice.dims().to_vec();
        let d = dims.len();
        if even_odd {
            Self::check_block(&lattice)?;
        }
        let outer_volume = lattice.outer_volume();
        let elements = lattice.face_len();
        // the lanes of an element share its parity; the block's origin has even coordinates
        let parity_of = |e: usize| lattice.lane_coords(e, 0).iter().sum::<isize>().rem_euclid(2) as u8;
        let block: Vec<u8> = (0..elements).map(|e| if even_odd { parity_of(e) } else { 0 }).collect();
        let outer_of: [Vec<usize>; 2] =
            std::array::from_fn(|p| (0..outer_volume).filter(|&o| block[o] as usize == p).collect());
        let halo_of: [Vec<usize>; 2] =
            std::array::from_fn(|p| (outer_volume..elements).filter(|&e| block[e] as usize == p).collect());
        let mut index_of = vec![0; elements];
        for (list, halo) in outer_of.iter().zip(&halo_of) {
            for (i, &o) in list.iter().chain(halo).enumerate() {
                index_of[o] = i;
            }
        }
        let t = d - 1;
        let to_u32 = |index: usize| {
            u32::try_from(index)
                .map_err(|_| Error::Config(format!("lattice {dims:?}: too large for 32-bit hop tables")))
        };
        let hops: [Result<Vec<Hop>>; 2] = std::array::from_fn(|p| {
            let mut table = Vec::with_capacity(outer_of[p].len() * d * 2);
            for &outer in &outer_of[p] {
                let x = PackedSite { outer, mask: 0 };
                for mu in 0..d {
                    for forward in [true, false] {
                        let n = if forward { lattice.packed_fwd(x, mu) } else { lattice.packed_bwd(x, mu) };
                        let mut wraps_time = 0u8;
                        if mu == t {
                            let nt = lattice.global_dims()[t];
                            for lane in 0..LANES {
                                let tc = lattice.global_coords_of(&lattice.lane_coords(outer, lane))[t];
                                let wraps = if forward { tc + 1 == nt } else { tc == 0 };
                                wraps_time |= u8::from(wraps) << lane;
                            }
                        }
                        let link = if forward { x } else { n };
                        table.push(Hop {
                            neighbour: to_u32(index_of[n.outer])?,
                            link_outer: to_u32(link.outer)?,
                            mask: n.mask as u8,
                            link_mask: link.mask as u8,
                            wraps_time,
                        });
                    }
                }
            }
            Ok(table)
        });
        let [even, odd] = hops;
        let hops = [even?, odd?];
        let boundary = std::array::from_fn(|p| {
            hops[p]
                .chunks(2 * d)
                .map(|site| site.iter().any(|h| h.neighbour() >= outer_of[p].len()))
                .collect()
        });
        let in_block = |p: usize, s: &LaneSite| {
            (block[s.element as usize] as usize == p)
                .then(|| LaneSite { element: index_of[s.element as usize] as u32, lane: s.lane })
        };
        let face_plan = lattice.face_plan();
        let plans = std::array::from_fn(|p| HaloPlan {
            elements: halo_of[p].len(),
            stages: face_plan
                .stages
                .iter()
                .map(|stage| {
                    stage
                        .iter()
                        .map(|m| {
                            let (send, receive) = m
                                .send
                                .iter()
                                .zip(&m.receive)
                                .filter_map(|(s, r)| Some((in_block(p, s)?, in_block(p, r)?)))
                                .unzip();
                            Message { mu: m.mu, forward: m.forward, send, receive }
                        })
                        .collect()
                })
                .collect(),
            copies: face_plan
                .copies
                .iter()
                .filter_map(|(to, from)| Some((in_block(p, to)?, in_block(p, from)?)))
                .collect(),
        });
        Ok(Checkerboard {
            lattice,
            even_odd,
            outer_of,
            halo_of,
            index_of,
            parity: block,
            hops,
            boundary,
            plans,
        })
    }

    /// Whether this is the even/odd layout (half fields, the Schur operator) rather than the
    /// natural one.
    pub fn is_even_odd(&self) -> bool {
        self.even_odd
    }

    /// The block a hop from block p lands in: the other parity (even/odd), the same block
    /// (natural).
    #[inline(always)]
    pub fn neighbour_block(&self, p: usize) -> usize {
        if self.even_odd { 1 - p } else { p }
    }

    /// Number of outer sites in block p (V / (2 LANES) per parity; V / LANES and 0 in the
    /// natural layout).
    pub fn block_len(&self, p: usize) -> usize {
        self.outer_of[p].len()
    }

    /// Packed spinors of a full field (V / LANES).
    pub fn full_len(&self) -> usize {
        self.outer_of[0].len() + self.outer_of[1].len()
    }

    /// Number of face elements in the halo of block p (0 on the whole lattice).
    pub fn halo_len(&self, p: usize) -> usize {
        self.halo_of[p].len()
    }

    /// Whether site i of block p hops into the halo (never on the whole lattice).
    #[inline(always)]
    pub fn is_boundary(&self, p: usize, i: usize) -> bool {
        self.boundary[p][i]
    }

    /// The plan that fills the halo of block p from the neighbouring ranks, in block indices:
    /// interior sites 0..block_len(p), halo elements numbered after them.
    pub fn halo_plan(&self, p: usize) -> &HaloPlan {
        &self.plans[p]
    }

    /// Position in a full field of index i of block p.
    #[inline(always)]
    pub fn field_index(&self, p: usize, i: usize) -> usize {
        p * self.outer_of[0].len() + i
    }

    /// The lattice.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// Outer sites per parity (V / (2 LANES)) of the even/odd layout: the length of a half
    /// field.
    pub fn half_outer(&self) -> usize {
        assert!(self.even_odd, "half fields need the even/odd layout");
        self.outer_of[0].len()
    }

    /// The outer site of index i of block p.
    #[inline]
    pub fn outer(&self, parity: usize, i: usize) -> usize {
        self.outer_of[parity][i]
    }

    /// (block, index within the block) of an outer site; the block is the parity in the
    /// even/odd layout.
    #[inline]
    pub fn of_outer(&self, outer: usize) -> (usize, usize) {
        (self.parity[outer] as usize, self.index_of[outer])
    }

    /// (block, index within the block, lane) of a lexicographic site.
    pub fn locate(&self, site: usize) -> (usize, usize, usize) {
        let (outer, lane) = self.lattice.packed_of(site);
        (self.parity[outer] as usize, self.index_of[outer], lane)
    }

    /// The hop from site i of block p in direction mu, forward or backward.
    #[inline(always)]
    pub fn hop(&self, parity: usize, i: usize, mu: usize, forward: bool) -> &Hop {
        &self.hops_of(parity, i)[mu * 2 + usize::from(!forward)]
    }

    /// The 2D hops from site i of block p, entry 2 mu forward and 2 mu + 1 backward.
    #[inline(always)]
    pub fn hops_of(&self, parity: usize, i: usize) -> &[Hop] {
        let n = 2 * self.lattice.ndim();
        &self.hops[parity][i * n..(i + 1) * n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_hops(cb: &Checkerboard) {
        let lat = cb.lattice().clone();
        let dims = lat.dims().to_vec();
        let d = lat.ndim();
        assert_eq!(cb.full_len() * LANES, lat.volume());
        assert_eq!((cb.block_len(0) + cb.block_len(1)) * LANES, lat.volume());
        let mut seen = vec![false; cb.full_len()];
        for site in 0..lat.volume() {
            let (p, i, lane) = cb.locate(site);
            if cb.is_even_odd() {
                assert_eq!(p, lat.parity(site) as usize);
            } else {
                assert_eq!(p, 0);
            }
            assert_eq!(lat.site_of_packed(cb.outer(p, i), lane), site);
            seen[cb.field_index(p, i)] = true;
            for mu in 0..d {
                for forward in [true, false] {
                    let hop = cb.hop(p, i, mu, forward);
                    let n = if forward { lat.fwd(site, mu) } else { lat.bwd(site, mu) };
                    let target = lat
                        .site_of_packed(cb.outer(cb.neighbour_block(p), hop.neighbour()), lane ^ hop.mask());
                    assert_eq!(target, n, "{dims:?} site {site} mu {mu} forward {forward}");
                    let link_site = if forward { site } else { n };
                    assert_eq!(lat.site_of_packed(hop.link().outer, lane ^ hop.link().mask), link_site);
                    let tc = lat.coord(site, d - 1);
                    let wraps = mu == d - 1 && if forward { tc == dims[d - 1] - 1 } else { tc == 0 };
                    assert_eq!(hop.wraps_time() >> lane & 1 == 1, wraps);
                    assert!(lat.hop_may_permute(mu) || hop.mask() == 0, "mu {mu} exchanges lanes");
                }
            }
        }
        assert!(seen.iter().all(|&s| s), "{dims:?}: every position of a full field holds a site");
    }

    #[test]
    fn hops_reach_the_neighbours_of_every_lane() {
        for dims in [vec![4, 8], vec![2, 4, 4, 8]] {
            let lat = Arc::new(Lattice::new(&dims).unwrap());
            let cb = Checkerboard::new(lat.clone()).unwrap();
            assert!(cb.is_even_odd());
            assert_eq!(cb.half_outer() * 2 * LANES, lat.volume());
            check_hops(&cb);
        }
        let odd_half = Arc::new(Lattice::new(&[4, 6]).unwrap());
        assert!(Checkerboard::new(odd_half).is_err());
    }

    /// The natural layout (one block) holds every even lattice, those whose lanes mix parities
    /// included; `for_fields` keeps the even/odd layout where it exists.
    #[test]
    fn natural_layout_reaches_the_neighbours_of_every_lane() {
        for dims in [vec![6, 6], vec![2, 2], vec![4, 6], vec![4, 8], vec![2, 2, 2, 6], vec![4, 4, 6, 2]] {
            let lat = Arc::new(Lattice::new(&dims).unwrap());
            let cb = Checkerboard::natural(lat.clone()).unwrap();
            assert!(!cb.is_even_odd() && cb.block_len(1) == 0);
            check_hops(&cb);
            let chosen = Checkerboard::for_fields(lat.clone(), false).unwrap();
            assert_eq!(chosen.is_even_odd(), Checkerboard::check_dims(&dims).is_ok(), "{dims:?}");
            let e = Checkerboard::for_fields(lat, true).map(|_| ());
            if chosen.is_even_odd() {
                assert!(e.is_ok());
            } else {
                let e = e.unwrap_err().to_string();
                assert!(
                    e.contains(
                        "even/odd preconditioning (even_odd = true) needs the last two extents divisible by 4"
                    ) && e.contains("even_odd = false runs on any even extents"),
                    "{e}"
                );
            }
        }
    }
}
