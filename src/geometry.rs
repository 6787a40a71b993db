//! Lattice geometry: extents, lexicographic site index, neighbours, parity, even/odd maps.
//!
//! Conventions (README, Conventions): directions mu = 0..D-1 are x, y, (z,) t, time last. The
//! lexicographic index has x fastest: `site = x0 + L0 * (x1 + L1 * (x2 + ...))`. The parity of
//! a site is the sum of its coordinates mod 2. Even/odd-ordered arrays hold all even sites
//! first, each parity in increasing lexicographic order. The torus is periodic; boundary phases
//! of fermions are applied by the operators, not here.
//!
//! Packed (vector) layout: fields store LANES = 4 sites per element, one per SIMD lane. The
//! last two dimensions (z and t in 4D, x and y in 2D) are cut in halves; lane l = a + 2b holds
//! the site whose coordinate in dimension D-2 is shifted by a L_{D-2}/2 and in dimension D-1 by
//! b L_{D-1}/2 relative to the outer site. The outer lattice has those two extents halved. A
//! hop from an outer site lands on one outer site for all lanes; where it crosses a half
//! boundary the lanes are exchanged, lane l reading lane l ^ mask with mask 1 (dimension D-2)
//! or 2 (dimension D-1). Masks compose by XOR.

use crate::backend::cpu::packed::LANES;
use crate::error::{Error, Result};
use crate::memory::{check_available, human};

/// Most sites a lattice may have: the hop tables of the packed layout index sites in 32 bits.
pub const MAX_SITES: usize = u32::MAX as usize;

/// A site in the packed layout: outer site and lane mask (lane l of the view reads physical
/// lane l ^ mask of the outer site).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedSite {
    /// Outer site index.
    pub outer: usize,
    /// XOR mask applied to the lane index.
    pub mask: usize,
}

/// A D-dimensional periodic lattice with precomputed neighbour tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Lattice {
    dims: Vec<usize>,
    volume: usize,
    forward: Vec<usize>,
    backward: Vec<usize>,
    parity: Vec<u8>,
    eo_index: Vec<usize>,
    lex_of_eo: Vec<usize>,
    outer_volume: usize,
    /// (outer site, lane) of each lexicographic site.
    packed_of: Vec<(usize, usize)>,
    /// Lexicographic site of outer * LANES + lane.
    site_of_packed: Vec<usize>,
    /// Outer neighbours with crossing masks, `outer * D + mu`.
    outer_forward: Vec<PackedSite>,
    outer_backward: Vec<PackedSite>,
}

impl Lattice {
    /// Checks extents `dims` without allocating anything and returns the volume: at least 2
    /// dimensions, every extent even and at least 2 (so that the even/odd decomposition and
    /// parity are well defined) and at most [`MAX_SITES`] sites. `need` gives the bytes the
    /// caller would allocate for `dims`, named in the error of a lattice with too many sites.
    pub fn check_extents(dims: &[usize], need: impl Fn() -> u128) -> Result<usize> {
        let bad = |m: String| Err(Error::Card(format!("lattice.dims = {dims:?}: {m}")));
        if dims.len() < 2 {
            return bad("need at least 2 dimensions".into());
        }
        if let Some(&l) = dims.iter().find(|&&l| l < 2 || l % 2 != 0) {
            return bad(format!("extent {l} is not an even number >= 2"));
        }
        let volume = dims.iter().try_fold(1usize, |v, &l| v.checked_mul(l)).filter(|&v| v <= MAX_SITES);
        volume.map_or_else(
            || {
                let sites = dims.iter().map(|&l| l as f64).product::<f64>();
                bad(format!(
                    "{sites:.3e} sites, a lattice may have at most {MAX_SITES} (it would need about {} of memory)",
                    human(need())
                ))
            },
            Ok,
        )
    }

    /// [`Lattice::check_extents`], and tables ([`Lattice::table_bytes`]) that fit in the
    /// machine's available memory: the checks of [`Lattice::new`].
    pub fn check_dims(dims: &[usize]) -> Result<usize> {
        let volume = Self::check_extents(dims, || Self::table_bytes(dims))?;
        check_available(&format!("lattice.dims = {dims:?}"), Self::table_bytes(dims))?;
        Ok(volume)
    }

    /// Bytes of the tables of extents `dims` (per site: [`Lattice::table_bytes_per_site`]), in
    /// 128 bits (no overflow).
    pub fn table_bytes(dims: &[usize]) -> u128 {
        dims.iter().map(|&l| l as u128).product::<u128>() * Self::table_bytes_per_site(dims.len())
    }

    /// Bytes of the neighbour, parity and layout tables that [`Lattice::new`] builds for
    /// `volume` sites in `ndim` dimensions.
    /// Bytes per site of the tables: forward and backward neighbours (2 D words), parity (1
    /// byte), even/odd maps (2 words), packed maps (3 words) and outer hops (2 D packed sites
    /// per LANES sites).
    pub fn table_bytes_per_site(ndim: usize) -> u128 {
        let word = size_of::<usize>() as u128;
        let d = ndim as u128;
        2 * d * word + 1 + 5 * word + 2 * d * size_of::<PackedSite>() as u128 / LANES as u128
    }

    /// Builds a lattice with extents `dims` (x first, time last), checked by
    /// [`Lattice::check_dims`].
    pub fn new(dims: &[usize]) -> Result<Self> {
        let volume = Self::check_dims(dims)?;
        let d = dims.len();
        let mut forward = vec![0; volume * d];
        let mut backward = vec![0; volume * d];
        let mut parity = vec![0u8; volume];
        let mut coords = vec![0usize; d];
        for site in 0..volume {
            Self::coords_into(dims, site, &mut coords);
            parity[site] = (coords.iter().sum::<usize>() % 2) as u8;
            let mut stride = 1;
            for mu in 0..d {
                let x = coords[mu];
                let up = if x + 1 == dims[mu] { site + stride - dims[mu] * stride } else { site + stride };
                let down = if x == 0 { site + (dims[mu] - 1) * stride } else { site - stride };
                forward[site * d + mu] = up;
                backward[site * d + mu] = down;
                stride *= dims[mu];
            }
        }
        let mut lex_of_eo: Vec<usize> = (0..volume).filter(|&s| parity[s] == 0).collect();
        lex_of_eo.extend((0..volume).filter(|&s| parity[s] == 1));
        let mut eo_index = vec![0; volume];
        for (i, &s) in lex_of_eo.iter().enumerate() {
            eo_index[s] = i;
        }
        let (a_dim, b_dim) = (d - 2, d - 1);
        let mut outer_dims = dims.to_vec();
        outer_dims[a_dim] /= 2;
        outer_dims[b_dim] /= 2;
        let outer_volume = volume / LANES;
        let packed_of: Vec<(usize, usize)> = (0..volume)
            .map(|site| {
                Self::coords_into(dims, site, &mut coords);
                let a = coords[a_dim] / outer_dims[a_dim];
                let b = coords[b_dim] / outer_dims[b_dim];
                coords[a_dim] %= outer_dims[a_dim];
                coords[b_dim] %= outer_dims[b_dim];
                let outer = coords.iter().zip(&outer_dims).rev().fold(0, |acc, (&c, &l)| acc * l + c);
                (outer, a + 2 * b)
            })
            .collect();
        let mut site_of_packed = vec![0; volume];
        for (site, &(outer, lane)) in packed_of.iter().enumerate() {
            site_of_packed[outer * LANES + lane] = site;
        }
        // lane 0 of an outer site hops to lane `mask` of the neighbouring outer site; the
        // crossing is the same for every lane, so that lane is the mask of the hop
        let hop = |outer: usize, mu: usize, table: &[usize]| {
            let (o, lane) = packed_of[table[site_of_packed[outer * LANES] * d + mu]];
            PackedSite { outer: o, mask: lane }
        };
        let mut outer_forward = Vec::with_capacity(outer_volume * d);
        let mut outer_backward = Vec::with_capacity(outer_volume * d);
        for outer in 0..outer_volume {
            for mu in 0..d {
                outer_forward.push(hop(outer, mu, &forward));
                outer_backward.push(hop(outer, mu, &backward));
            }
        }
        Ok(Lattice {
            dims: dims.to_vec(),
            volume,
            forward,
            backward,
            parity,
            eo_index,
            lex_of_eo,
            outer_volume,
            packed_of,
            site_of_packed,
            outer_forward,
            outer_backward,
        })
    }

    fn coords_into(dims: &[usize], mut site: usize, out: &mut [usize]) {
        for (c, &l) in out.iter_mut().zip(dims) {
            *c = site % l;
            site /= l;
        }
    }

    /// Number of dimensions D.
    pub fn ndim(&self) -> usize {
        self.dims.len()
    }

    /// Extents, x first and time last.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of sites.
    pub fn volume(&self) -> usize {
        self.volume
    }

    /// Coordinates of a lexicographic site index.
    pub fn coords(&self, site: usize) -> Vec<usize> {
        let mut c = vec![0; self.ndim()];
        Self::coords_into(&self.dims, site, &mut c);
        c
    }

    /// Coordinate mu of a lexicographic site index (without building all coordinates).
    pub fn coord(&self, site: usize, mu: usize) -> usize {
        site / self.dims[..mu].iter().product::<usize>() % self.dims[mu]
    }

    /// Lexicographic index of coordinates (taken modulo the extents).
    pub fn site(&self, coords: &[usize]) -> usize {
        coords.iter().zip(&self.dims).rev().fold(0, |acc, (&c, &l)| acc * l + c % l)
    }

    /// The site one step forward in direction mu (periodic).
    #[inline]
    pub fn fwd(&self, site: usize, mu: usize) -> usize {
        self.forward[site * self.dims.len() + mu]
    }

    /// The site one step backward in direction mu (periodic).
    #[inline]
    pub fn bwd(&self, site: usize, mu: usize) -> usize {
        self.backward[site * self.dims.len() + mu]
    }

    /// Parity of a site: 0 (even) or 1 (odd), the coordinate sum mod 2.
    #[inline]
    pub fn parity(&self, site: usize) -> u8 {
        self.parity[site]
    }

    /// Position of a lexicographic site in the even/odd ordering (even sites first).
    #[inline]
    pub fn eo_index(&self, site: usize) -> usize {
        self.eo_index[site]
    }

    /// Lexicographic site at position `i` of the even/odd ordering.
    #[inline]
    pub fn lex_of_eo(&self, i: usize) -> usize {
        self.lex_of_eo[i]
    }

    /// Number of sites of one parity (V/2).
    pub fn half_volume(&self) -> usize {
        self.volume / 2
    }

    /// Number of outer sites of the packed layout (V / LANES).
    pub fn outer_volume(&self) -> usize {
        self.outer_volume
    }

    /// (outer site, lane) of a lexicographic site.
    #[inline]
    pub fn packed_of(&self, site: usize) -> (usize, usize) {
        self.packed_of[site]
    }

    /// Lexicographic site held by `lane` of `outer`.
    #[inline]
    pub fn site_of_packed(&self, outer: usize, lane: usize) -> usize {
        self.site_of_packed[outer * LANES + lane]
    }

    /// One step forward in direction mu in the packed layout.
    #[inline]
    pub fn packed_fwd(&self, s: PackedSite, mu: usize) -> PackedSite {
        let n = self.outer_forward[s.outer * self.dims.len() + mu];
        PackedSite { outer: n.outer, mask: n.mask ^ s.mask }
    }

    /// One step backward in direction mu in the packed layout.
    #[inline]
    pub fn packed_bwd(&self, s: PackedSite, mu: usize) -> PackedSite {
        let n = self.outer_backward[s.outer * self.dims.len() + mu];
        PackedSite { outer: n.outer, mask: n.mask ^ s.mask }
    }

    /// Number of plaquettes: V * D(D-1)/2.
    pub fn plaquette_count(&self) -> usize {
        self.volume * self.ndim() * (self.ndim() - 1) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_odd_extents_and_one_dimension() {
        assert!(Lattice::new(&[4, 3]).is_err());
        assert!(Lattice::new(&[4]).is_err());
        assert!(Lattice::new(&[4, 0]).is_err());
    }

    #[test]
    fn refuses_overflowing_and_oversized_extents_before_allocating() {
        // the volume of 65536^4 wraps to 0 in 64 bits
        let e = Lattice::new(&[65536; 4]).unwrap_err().to_string();
        assert!(e.contains("[65536, 65536, 65536, 65536]") && e.contains("1.845e19 sites"), "{e}");
        assert!(e.contains("would need about 2.53e21 bytes"), "{e}");
        // 10^10 sites overflow the 32-bit hop tables
        let e = Lattice::new(&[100000, 100000]).unwrap_err().to_string();
        assert!(e.contains("1.000e10 sites"), "{e}");
        // fits the tables' index range but not this machine's memory
        let have = crate::memory::available_bytes().unwrap();
        let side = (((have / Lattice::table_bytes_per_site(2)) as f64).sqrt() as usize + 2) & !1;
        let e = Lattice::check_dims(&[side, side]).unwrap_err().to_string();
        assert!(e.contains("needs about") && e.contains("available"), "{e}");
        assert_eq!(Lattice::check_dims(&[6, 4]).unwrap(), 24);
    }

    #[test]
    fn index_neighbours_parity_2d_and_4d() {
        for dims in [vec![4usize, 6], vec![2, 4, 4, 6]] {
            let lat = Lattice::new(&dims).unwrap();
            let d = lat.ndim();
            for s in 0..lat.volume() {
                let c = lat.coords(s);
                assert_eq!(lat.site(&c), s);
                assert_eq!(lat.parity(s) as usize, c.iter().sum::<usize>() % 2);
                for mu in 0..d {
                    assert_eq!(lat.coord(s, mu), c[mu]);
                    let mut up = c.clone();
                    up[mu] = (up[mu] + 1) % dims[mu];
                    assert_eq!(lat.fwd(s, mu), lat.site(&up));
                    assert_eq!(lat.bwd(lat.fwd(s, mu), mu), s);
                    assert_ne!(lat.parity(lat.fwd(s, mu)), lat.parity(s));
                }
            }
            // x is fastest
            assert_eq!(lat.site(&[1, 0, 0, 0][..d]), 1);
            assert_eq!(lat.coords(dims[0])[1], 1);
        }
    }

    #[test]
    fn packed_layout_is_a_bijection_with_consistent_hops() {
        for dims in [vec![2usize, 2], vec![4, 6], vec![4, 2, 6, 2], vec![8, 8, 8, 8]] {
            let lat = Lattice::new(&dims).unwrap();
            let d = lat.ndim();
            assert_eq!(lat.outer_volume() * LANES, lat.volume());
            for site in 0..lat.volume() {
                let (o, l) = lat.packed_of(site);
                assert_eq!(lat.site_of_packed(o, l), site);
            }
            for outer in 0..lat.outer_volume() {
                for mask in 0..LANES {
                    let s = PackedSite { outer, mask };
                    for mu in 0..d {
                        let (f, b) = (lat.packed_fwd(s, mu), lat.packed_bwd(s, mu));
                        assert_eq!(lat.packed_bwd(f, mu), s);
                        for lane in 0..LANES {
                            let here = lat.site_of_packed(outer, lane ^ mask);
                            assert_eq!(lat.site_of_packed(f.outer, lane ^ f.mask), lat.fwd(here, mu));
                            assert_eq!(lat.site_of_packed(b.outer, lane ^ b.mask), lat.bwd(here, mu));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn even_odd_maps_are_inverse_and_ordered() {
        let lat = Lattice::new(&[4, 4, 2, 6]).unwrap();
        let h = lat.half_volume();
        for i in 0..lat.volume() {
            let s = lat.lex_of_eo(i);
            assert_eq!(lat.eo_index(s), i);
            assert_eq!(lat.parity(s) as usize, usize::from(i >= h));
            if i + 1 < lat.volume() && (i + 1) != h {
                assert!(lat.lex_of_eo(i + 1) > s, "each parity in lexicographic order");
            }
        }
    }
}
