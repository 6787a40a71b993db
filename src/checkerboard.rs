//! Even/odd (checkerboard) view of the packed layout, for fields that live on one parity
//! (pseudofermions, the even/odd preconditioned Dirac operator).
//!
//! When L_{D-2}/2 and L_{D-1}/2 are even, the LANES sites of an outer site have the same
//! parity, so a field of one parity is a packed array over the outer sites of that parity
//! (index i = 0..V/(2 LANES), in increasing outer order). A hop from parity p lands on the other
//! parity; [`Hop`] gives the neighbour's index there, its lane mask, the outer site of the link
//! that the hop crosses, and the lanes that wrap around the time boundary (where fermion
//! boundary phases apply).

use crate::error::{Error, Result};
use crate::geometry::{Lattice, PackedSite};
use crate::group::packed::LANES;
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

/// Whether hops in direction mu of a D-dimensional lattice can exchange lanes: only the last
/// two directions are cut into the lane halves of the packed layout.
pub const fn hop_may_permute(ndim: usize, mu: usize) -> bool {
    mu + 2 >= ndim
}

/// Even/odd index maps and hop tables of the packed layout.
#[derive(Clone, Debug)]
pub struct Checkerboard {
    lattice: Arc<Lattice>,
    /// Outer sites of parity p, in increasing order.
    outer_of: [Vec<usize>; 2],
    /// Index of an outer site within its parity.
    index_of: Vec<usize>,
    /// Parity of each outer site.
    parity: Vec<u8>,
    /// Hops of parity p, `(i * D + mu) * 2 + (0 forward | 1 backward)`.
    hops: [Vec<Hop>; 2],
}

impl Checkerboard {
    /// Checks that extents `dims` admit the checkerboarded layout: L_{D-2} and L_{D-1}
    /// divisible by 4, so that all lanes of an outer site share its parity.
    pub fn check_dims(dims: &[usize]) -> Result<()> {
        let d = dims.len();
        if !dims[d - 2].is_multiple_of(4) || !dims[d - 1].is_multiple_of(4) {
            return Err(Error::Config(format!(
                "lattice {dims:?}: even/odd fermion fields need the last two extents divisible by 4"
            )));
        }
        Ok(())
    }

    /// Builds the maps (see [`Checkerboard::check_dims`] for the extents it needs).
    pub fn new(lattice: Arc<Lattice>) -> Result<Self> {
        let dims = lattice.dims().to_vec();
        let d = dims.len();
        Self::check_dims(&dims)?;
        let outer_volume = lattice.outer_volume();
        let parity: Vec<u8> =
            (0..outer_volume).map(|o| lattice.parity(lattice.site_of_packed(o, 0))).collect();
        let outer_of: [Vec<usize>; 2] =
            std::array::from_fn(|p| (0..outer_volume).filter(|&o| parity[o] as usize == p).collect());
        let mut index_of = vec![0; outer_volume];
        for list in &outer_of {
            for (i, &o) in list.iter().enumerate() {
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
                            for lane in 0..LANES {
                                let site = lattice.site_of_packed(outer, lane);
                                let tc = lattice.coord(site, t);
                                let wraps = if forward { tc + 1 == dims[t] } else { tc == 0 };
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
        Ok(Checkerboard { lattice, outer_of, index_of, parity, hops: [even?, odd?] })
    }

    /// The lattice.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// Outer sites per parity (V / (2 LANES)).
    pub fn half_outer(&self) -> usize {
        self.outer_of[0].len()
    }

    /// The outer site of index i of parity p.
    #[inline]
    pub fn outer(&self, parity: usize, i: usize) -> usize {
        self.outer_of[parity][i]
    }

    /// (parity, index within the parity) of an outer site.
    #[inline]
    pub fn of_outer(&self, outer: usize) -> (usize, usize) {
        (self.parity[outer] as usize, self.index_of[outer])
    }

    /// (parity, index within the parity, lane) of a lexicographic site.
    pub fn locate(&self, site: usize) -> (usize, usize, usize) {
        let (outer, lane) = self.lattice.packed_of(site);
        (self.parity[outer] as usize, self.index_of[outer], lane)
    }

    /// The hop from site i of parity p in direction mu, forward or backward.
    #[inline(always)]
    pub fn hop(&self, parity: usize, i: usize, mu: usize, forward: bool) -> &Hop {
        &self.hops_of(parity, i)[mu * 2 + usize::from(!forward)]
    }

    /// The 2D hops from site i of parity p, entry 2 mu forward and 2 mu + 1 backward.
    #[inline(always)]
    pub fn hops_of(&self, parity: usize, i: usize) -> &[Hop] {
        let n = 2 * self.lattice.ndim();
        &self.hops[parity][i * n..(i + 1) * n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_reach_the_neighbours_of_every_lane() {
        for dims in [vec![4, 8], vec![2, 4, 4, 8]] {
            let lat = Arc::new(Lattice::new(&dims).unwrap());
            let cb = Checkerboard::new(lat.clone()).unwrap();
            let d = lat.ndim();
            assert_eq!(cb.half_outer() * 2 * LANES, lat.volume());
            for site in 0..lat.volume() {
                let (p, i, lane) = cb.locate(site);
                assert_eq!(p, lat.parity(site) as usize);
                assert_eq!(lat.site_of_packed(cb.outer(p, i), lane), site);
                for mu in 0..d {
                    for forward in [true, false] {
                        let hop = cb.hop(p, i, mu, forward);
                        let n = if forward { lat.fwd(site, mu) } else { lat.bwd(site, mu) };
                        let target = lat.site_of_packed(cb.outer(1 - p, hop.neighbour()), lane ^ hop.mask());
                        assert_eq!(target, n, "site {site} mu {mu} forward {forward}");
                        let link_site = if forward { site } else { n };
                        assert_eq!(lat.site_of_packed(hop.link().outer, lane ^ hop.link().mask), link_site);
                        let tc = lat.coord(site, d - 1);
                        let wraps = mu == d - 1 && if forward { tc == dims[d - 1] - 1 } else { tc == 0 };
                        assert_eq!(hop.wraps_time() >> lane & 1 == 1, wraps);
                        assert!(hop_may_permute(d, mu) || hop.mask() == 0, "mu {mu} exchanges lanes");
                    }
                }
            }
        }
        let odd_half = Arc::new(Lattice::new(&[4, 6]).unwrap());
        assert!(Checkerboard::new(odd_half).is_err());
    }
}
