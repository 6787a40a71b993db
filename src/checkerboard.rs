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

/// One hop of the checkerboarded packed layout from site i of parity p in direction +-mu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Index of the neighbour among the outer sites of the other parity.
    pub neighbour: usize,
    /// Lane mask of the hop (lane l reads lane l ^ mask of the neighbour).
    pub mask: usize,
    /// The link the hop crosses: U_mu(x) forward, U_mu(x - mu) backward, as a packed site.
    pub link: PackedSite,
    /// Bit l set when lane l crosses the boundary of the time direction (mu = D-1).
    pub wraps_time: u8,
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
        let hops = std::array::from_fn(|p| {
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
                                let tc = lattice.coords(site)[t];
                                let wraps = if forward { tc + 1 == dims[t] } else { tc == 0 };
                                wraps_time |= u8::from(wraps) << lane;
                            }
                        }
                        table.push(Hop {
                            neighbour: index_of[n.outer],
                            mask: n.mask,
                            link: if forward { x } else { n },
                            wraps_time,
                        });
                    }
                }
            }
            table
        });
        Ok(Checkerboard { lattice, outer_of, index_of, parity, hops })
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
        &self.hops[parity][(i * self.lattice.ndim() + mu) * 2 + usize::from(!forward)]
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
                        let target = lat.site_of_packed(cb.outer(1 - p, hop.neighbour), lane ^ hop.mask);
                        assert_eq!(target, n, "site {site} mu {mu} forward {forward}");
                        let link_site = if forward { site } else { n };
                        assert_eq!(lat.site_of_packed(hop.link.outer, lane ^ hop.link.mask), link_site);
                        let tc = lat.coords(site)[d - 1];
                        let wraps = mu == d - 1 && if forward { tc == dims[d - 1] - 1 } else { tc == 0 };
                        assert_eq!(hop.wraps_time >> lane & 1 == 1, wraps);
                    }
                }
            }
        }
        let odd_half = Arc::new(Lattice::new(&[4, 6]).unwrap());
        assert!(Checkerboard::new(odd_half).is_err());
    }
}
