//! Lattice geometry: extents, lexicographic site index, neighbours, parity, even/odd maps.
//!
//! Conventions (README, Conventions): directions mu = 0..D-1 are x, y, (z,) t, time last. The
//! lexicographic index has x fastest: `site = x0 + L0 * (x1 + L1 * (x2 + ...))`. The parity of
//! a site is the sum of its coordinates mod 2. Even/odd-ordered arrays hold all even sites
//! first, each parity in increasing lexicographic order. The torus is periodic; boundary phases
//! of fermions are applied by the operators, not here.
//!
//! Packed (vector) layout: fields store LANES = 4 sites per element, one per SIMD lane. Two
//! lane directions nu_0 < nu_1 ([`Lattice::lane_directions`]) are cut in halves; lane l = a +
//! 2b holds the site whose coordinate in direction nu_0 is shifted by a L_{nu_0}/2 and in
//! direction nu_1 by b L_{nu_1}/2 relative to the outer site. The outer lattice has those two
//! extents halved. A hop from an outer site lands on one outer site for all lanes; where it
//! crosses a half boundary the lanes are exchanged, lane l reading lane l ^ mask with mask 1
//! (direction nu_0) or 2 (direction nu_1). Masks compose by XOR. The lane directions are the
//! last two (z and t in 4D, x and y in 2D) on one process; on a process grid they are the last
//! two directions it does not cut, where there are two whose local extents are multiples of 4
//! (see [`lane_directions`]), so that a cut never splits the lanes of an element between
//! ranks. Values per site do not depend on the lane directions: each lane computes its own
//! site, and global sums are exact.
//!
//! Ranks: a lattice is this rank's block of a global lattice cut by a process grid ([`Comm`]);
//! one process is one rank holding the whole lattice. Extents, lexicographic indices, parity
//! and the packed layout above are those of the block (local coordinates); [`Lattice::origin`]
//! places it in the global lattice. Directions the grid cuts are not periodic within the block:
//! there the packed hops lead into the halo of [`halo`], and the per-site hops of the
//! lexicographic tables to exterior sites, numbered after the block's own (indices
//! [`Lattice::volume`] and up, their links in the halo), out to the depth of the halo and
//! [`NO_SITE`] beyond. Per-site code (loops along paths, clover leaves) thus runs unchanged at
//! the block's edge, as long as the halo is up to date. Random streams are keyed by global
//! site index ([`Lattice::global_site`]), so fields drawn on any process grid hold the same
//! values.
//!
//! Open boundaries in time ([`Lattice::open_in_time`], openQCD's boundary type 0): the lattice
//! keeps its periodic tables, but the N0 time slices x0 = 0 .. N0-1 end at both sides. The
//! links U_t(x) with x0 = N0-1, which would close time into a circle, are absent: gauge fields
//! hold zero matrices there and never move them ([`Lattice::is_removed_link`]), so every loop
//! through them vanishes. Quark fields vanish on the boundary slices x0 = 0 and N0-1
//! ([`Lattice::is_boundary_slice`]), as openQCD's do.

pub mod halo;

use crate::backend::cpu::packed::LANES;
use crate::comm::{Comm, Single, check_grid};
use crate::error::{Error, Result};
use crate::memory::{check_available, human};
pub use halo::NO_SITE;
use halo::{DEPTH, ExtendedBox, HaloPlan};
use std::sync::Arc;

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

/// This rank's block of a D-dimensional periodic lattice, with precomputed neighbour tables
/// (see the module docs).
#[derive(Clone, Debug)]
pub struct Lattice {
    /// Local extents.
    dims: Vec<usize>,
    /// Extents of the global lattice.
    global_dims: Vec<usize>,
    /// Global coordinates of local site 0.
    origin: Vec<usize>,
    /// The ranks of the process grid.
    comm: Arc<dyn Comm>,
    /// Whether the process grid cuts direction mu.
    cut: Vec<bool>,
    /// The lane directions of the packed layout.
    lanes: [usize; 2],
    /// The packed elements with their halo.
    extended: ExtendedBox,
    /// Fills the face elements (what one hop from the interior reaches).
    face_plan: HaloPlan,
    /// Fills every halo element of the box.
    box_plan: HaloPlan,
    /// Whether each element is a face element below the block.
    lower_face: Vec<bool>,
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
    /// Neighbours of every element of the box with crossing masks, `element * D + mu`.
    outer_forward: Vec<PackedSite>,
    outer_backward: Vec<PackedSite>,
    /// Whether time has open ends (see the module docs).
    open_time: bool,
    /// The global time coordinate of every lane of every element of the box.
    lane_times: Vec<[u32; LANES]>,
}

impl Lattice {
    /// Checks extents `dims` without allocating anything and returns the volume: at least 2
    /// dimensions, every extent even and at least 2 (so that the even/odd decomposition and
    /// parity are well defined) and at most [`MAX_SITES`] sites. `need` gives the bytes the
    /// caller would allocate for `dims`, named in the error of a lattice with too many sites.
    pub fn check_extents(dims: &[usize], need: impl Fn() -> u128) -> Result<usize> {
        let bad = |m: String| Err(Error::Card(format!("lattice.dims = {dims:?}: {m}")));
        Self::check_shape(dims)?;
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

    /// Checks the shape of extents `dims`: at least 2 dimensions, every extent even and at
    /// least 2.
    pub fn check_shape(dims: &[usize]) -> Result<()> {
        let bad = |m: String| Err(Error::Card(format!("lattice.dims = {dims:?}: {m}")));
        if dims.len() < 2 {
            return bad("need at least 2 dimensions".into());
        }
        if let Some(&l) = dims.iter().find(|&&l| l < 2 || l % 2 != 0) {
            return bad(format!("extent {l} is not an even number >= 2"));
        }
        Ok(())
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
    /// byte), even/odd maps (2 words), packed maps (3 words), outer hops (2 D packed sites
    /// per LANES sites) and time coordinates (4 bytes).
    pub fn table_bytes_per_site(ndim: usize) -> u128 {
        let word = size_of::<usize>() as u128;
        let d = ndim as u128;
        2 * d * word + 1 + 5 * word + 2 * d * size_of::<PackedSite>() as u128 / LANES as u128 + 4
    }

    /// The whole lattice with extents `dims` (x first, time last) on one process, checked by
    /// [`Lattice::check_dims`].
    pub fn new(dims: &[usize]) -> Result<Self> {
        Self::distributed(dims, Arc::new(Single::new(dims.len())))
    }

    /// This rank's block of the lattice with extents `global_dims` cut by the process grid of
    /// `comm`: the grid must divide every extent into an even local extent, and the block is
    /// checked by [`Lattice::check_dims`].
    pub fn distributed(global_dims: &[usize], comm: Arc<dyn Comm>) -> Result<Self> {
        Self::check_shape(global_dims)?;
        let grid = comm.grid().to_vec();
        check_grid(global_dims, &grid, comm.size())?;
        let dims: Vec<usize> = global_dims.iter().zip(&grid).map(|(&l, &p)| l / p).collect();
        if let Some(mu) = (0..dims.len()).find(|&mu| !dims[mu].is_multiple_of(2)) {
            return Err(Error::Card(format!(
                "run.process_grid = {grid:?}: lattice.dims = {global_dims:?} leaves each rank the odd extent {} in \
                 direction {mu}; every rank's block needs even extents",
                dims[mu]
            )));
        }
        let volume = Self::check_dims(&dims)?;
        let d = dims.len();
        let cut: Vec<bool> = grid.iter().map(|&p| p > 1).collect();
        let origin: Vec<usize> = comm.coords().iter().zip(&dims).map(|(&c, &l)| c * l).collect();
        let lanes = lane_directions(&dims, &cut);
        let extended = ExtendedBox::new(&dims, &cut, lanes);
        let mut coords = vec![0usize; d];
        let packed_of_interior = (0..volume).map(|site| {
            Self::coords_into(&dims, site, &mut coords);
            let c: Vec<isize> = coords.iter().map(|&x| x as isize).collect();
            let at = extended.canonical(&c);
            (at.element as usize, at.lane as usize)
        });
        // exterior sites: the canonical lanes of the halo, numbered after the interior sites
        let inside = |c: &[isize]| c.iter().zip(&dims).all(|(&x, &l)| x >= 0 && x < l as isize);
        let exterior: Vec<(usize, usize)> = (extended.interior()..extended.len())
            .flat_map(|e| (0..LANES).map(move |lane| (e, lane)))
            .filter(|&(e, lane)| {
                let c = extended.lane_coords(e, lane);
                !inside(&c)
                    && extended.canonical(&c) == halo::LaneSite { element: e as u32, lane: lane as u8 }
            })
            .collect();
        let packed_of: Vec<(usize, usize)> = packed_of_interior.chain(exterior.iter().copied()).collect();
        let sites = packed_of.len();
        let mut site_at_lane = vec![NO_SITE; extended.len() * LANES];
        for (site, &(e, lane)) in packed_of.iter().enumerate() {
            site_at_lane[e * LANES + lane] = site;
        }
        let reach = DEPTH as isize;
        // the site at local coordinates c: periodic in uncut directions, NO_SITE beyond the box
        let site_at = |c: &mut [isize]| -> usize {
            for (mu, x) in c.iter_mut().enumerate() {
                let l = dims[mu] as isize;
                if !cut[mu] {
                    *x = x.rem_euclid(l);
                } else if *x < -reach || *x >= l + reach {
                    return NO_SITE;
                }
            }
            let at = extended.canonical(c);
            site_at_lane[at.element as usize * LANES + at.lane as usize]
        };
        let mut forward = vec![0; sites * d];
        let mut backward = vec![0; sites * d];
        let mut parity = vec![0u8; sites];
        for site in 0..volume {
            Self::coords_into(&dims, site, &mut coords);
            parity[site] = (coords.iter().sum::<usize>() % 2) as u8;
            let mut stride = 1;
            for mu in 0..d {
                let x = coords[mu];
                let (top, bottom) = (x + 1 == dims[mu], x == 0);
                let up = if top { site + stride - dims[mu] * stride } else { site + stride };
                let down = if bottom { site + (dims[mu] - 1) * stride } else { site - stride };
                forward[site * d + mu] = up;
                backward[site * d + mu] = down;
                if cut[mu] && (top || bottom) {
                    let mut c: Vec<isize> = coords.iter().map(|&x| x as isize).collect();
                    c[mu] += if top { 1 } else { -1 };
                    let across = site_at(&mut c);
                    if top {
                        forward[site * d + mu] = across;
                    }
                    if bottom {
                        backward[site * d + mu] = across;
                    }
                }
                stride *= dims[mu];
            }
        }
        for (k, &(e, lane)) in exterior.iter().enumerate() {
            let site = volume + k;
            let c = extended.lane_coords(e, lane);
            // the block's origin has even coordinates, so local and global parity agree
            parity[site] = c.iter().sum::<isize>().rem_euclid(2) as u8;
            for mu in 0..d {
                for (table, step) in [(&mut forward, 1), (&mut backward, -1)] {
                    let mut n = c.clone();
                    n[mu] += step;
                    table[site * d + mu] = site_at(&mut n);
                }
            }
        }
        let mut lex_of_eo: Vec<usize> = (0..volume).filter(|&s| parity[s] == 0).collect();
        lex_of_eo.extend((0..volume).filter(|&s| parity[s] == 1));
        let mut eo_index = vec![0; volume];
        for (i, &s) in lex_of_eo.iter().enumerate() {
            eo_index[s] = i;
        }
        let outer_volume = volume / LANES;
        let mut site_of_packed = vec![0; volume];
        for (site, &(outer, lane)) in packed_of[..volume].iter().enumerate() {
            site_of_packed[outer * LANES + lane] = site;
        }
        let hops = |forward: bool| -> Vec<PackedSite> {
            (0..extended.len())
                .flat_map(|e| (0..d).map(move |mu| (e, mu)))
                .map(|(e, mu)| {
                    let (outer, mask) = extended.hop(e, mu, forward);
                    PackedSite { outer, mask }
                })
                .collect()
        };
        let (outer_forward, outer_backward) = (hops(true), hops(false));
        let lane_times = (0..extended.len())
            .map(|e| {
                std::array::from_fn(|lane| {
                    let t = extended.lane_coords(e, lane)[d - 1] + origin[d - 1] as isize;
                    t.rem_euclid(global_dims[d - 1] as isize) as u32
                })
            })
            .collect();
        Ok(Lattice {
            lower_face: (0..extended.len()).map(|e| extended.is_lower_face(e)).collect(),
            face_plan: extended.plan(true),
            box_plan: extended.plan(false),
            dims,
            global_dims: global_dims.to_vec(),
            origin,
            comm,
            cut,
            lanes,
            extended,
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
            open_time: false,
            lane_times,
        })
    }

    /// The same lattice with open boundaries in time (module docs; openQCD's boundary type 0).
    pub fn open_in_time(mut self) -> Self {
        self.open_time = true;
        self
    }

    /// The same block with periodic time (the tables are the same; only the removed links and
    /// boundary slices of an open lattice go).
    pub fn periodic_in_time(&self) -> Self {
        Lattice { open_time: false, ..self.clone() }
    }

    /// Whether time has open ends.
    pub fn is_open_in_time(&self) -> bool {
        self.open_time
    }

    /// The global time coordinate x0 of lane `lane` of element `e` of the box (interior or halo).
    #[inline]
    pub fn time_of_lane(&self, e: usize, lane: usize) -> usize {
        self.lane_times[e][lane] as usize
    }

    /// The global time coordinate x0 of a site of this block (or of its exterior).
    #[inline]
    pub fn time_of(&self, site: usize) -> usize {
        let (e, lane) = self.packed_of[site];
        self.time_of_lane(e, lane)
    }

    /// Whether the link U_mu(site) of this block is absent: on a lattice open in time, the
    /// time links at x0 = N0-1 (module docs).
    pub fn is_removed_link(&self, site: usize, mu: usize) -> bool {
        let t = self.ndim() - 1;
        self.open_time && mu == t && self.time_of(site) + 1 == self.global_dims[t]
    }

    /// The lanes of element `e` of the box (interior or halo) whose link in direction mu is
    /// removed ([`Lattice::is_removed_link`]), as a bit mask (bit l: lane l).
    pub fn removed_lanes(&self, e: usize, mu: usize) -> u8 {
        let t = self.ndim() - 1;
        if !self.open_time || mu != t {
            return 0;
        }
        (0..LANES).filter(|&l| self.time_of_lane(e, l) + 1 == self.global_dims[t]).fold(0, |m, l| m | 1 << l)
    }

    /// Whether a global time coordinate x0 is a boundary slice of a lattice open in time
    /// (x0 = 0 or N0-1), where quark fields vanish; never on a periodic lattice.
    pub fn is_boundary_time(&self, x0: usize) -> bool {
        self.open_time && (x0 == 0 || x0 + 1 == self.global_dims[self.ndim() - 1])
    }

    /// Whether a site of this block lies on a boundary slice ([`Lattice::is_boundary_time`]).
    pub fn is_boundary_slice(&self, site: usize) -> bool {
        self.is_boundary_time(self.time_of(site))
    }

    /// The number of sites of the whole lattice off the boundary slices: the global volume,
    /// less two time slices on a lattice open in time.
    pub fn bulk_volume(&self) -> usize {
        let slices = if self.open_time { 2 } else { 0 };
        self.global_volume() - slices * self.global_volume() / self.global_dims[self.ndim() - 1]
    }

    /// The sites of this block on the boundary slices x0 = 0 and N0-1 of a lattice open in time
    /// (none on a periodic lattice), in increasing order.
    pub fn boundary_sites(&self) -> Vec<usize> {
        if !self.open_time {
            return Vec::new();
        }
        (0..self.volume).filter(|&s| self.is_boundary_slice(s)).collect()
    }

    /// Local coordinates of a site, into `out`.
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

    /// Extents of this rank's block, x first and time last (the whole lattice on one rank).
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Extents of the global lattice.
    pub fn global_dims(&self) -> &[usize] {
        &self.global_dims
    }

    /// Global coordinates of the block's local site 0.
    pub fn origin(&self) -> &[usize] {
        &self.origin
    }

    /// The ranks of the process grid.
    pub fn comm(&self) -> &Arc<dyn Comm> {
        &self.comm
    }

    /// Whether the process grid cuts direction mu (more than one rank along it).
    pub fn is_cut(&self, mu: usize) -> bool {
        self.cut[mu]
    }

    /// The two directions nu_0 < nu_1 that the packed layout cuts into lane halves (see the
    /// module docs).
    pub fn lane_directions(&self) -> [usize; 2] {
        self.lanes
    }

    /// Whether a hop in direction mu can exchange lanes (mu is a lane direction).
    #[inline]
    pub fn hop_may_permute(&self, mu: usize) -> bool {
        self.lanes.contains(&mu)
    }

    /// Whether the block is the whole lattice (no direction cut).
    pub fn is_whole(&self) -> bool {
        !self.cut.contains(&true)
    }

    /// Global coordinates of local coordinates `c` (which may lie in the halo), periodic.
    pub fn global_coords_of(&self, c: &[isize]) -> Vec<usize> {
        c.iter()
            .zip(&self.origin)
            .zip(&self.global_dims)
            .map(|((&x, &o), &l)| (x + o as isize).rem_euclid(l as isize) as usize)
            .collect()
    }

    /// Global coordinates of a local site.
    pub fn global_coords(&self, site: usize) -> Vec<usize> {
        let c: Vec<isize> = self.coords(site).iter().map(|&x| x as isize).collect();
        self.global_coords_of(&c)
    }

    /// Global lexicographic index of a local site (x fastest over the global extents): the
    /// index of its random stream, the same on every process grid.
    pub fn global_site(&self, site: usize) -> usize {
        let mut c = vec![0; self.ndim()];
        Self::coords_into(&self.dims, site, &mut c);
        c.iter().zip(&self.origin).zip(&self.global_dims).rev().fold(0, |acc, ((&x, &o), &l)| acc * l + x + o)
    }

    /// Packed elements including the halo: the interior ([`Lattice::outer_volume`]), the faces,
    /// the rest of the box (see [`halo`]).
    pub fn box_len(&self) -> usize {
        self.extended.len()
    }

    /// Interior and face elements: what one hop from the interior reaches.
    pub fn face_len(&self) -> usize {
        self.extended.interior() + self.extended.faces()
    }

    /// Whether element `e` is a face element below the block (one step below it in one cut
    /// direction): where the plaquettes that reach the block's links from below start.
    #[inline]
    pub fn is_lower_face(&self, e: usize) -> bool {
        self.lower_face[e]
    }

    /// The plan that fills the face elements.
    pub fn face_plan(&self) -> &HaloPlan {
        &self.face_plan
    }

    /// The plan that fills every halo element of the box.
    pub fn box_plan(&self) -> &HaloPlan {
        &self.box_plan
    }

    /// Local coordinates of the site in lane `lane` of element `e` (interior or halo; negative
    /// or beyond the extents outside the block).
    pub fn lane_coords(&self, e: usize, lane: usize) -> Vec<isize> {
        self.extended.lane_coords(e, lane)
    }

    /// Number of sites of the block and exterior sites together (see the module docs).
    pub fn sites_with_exterior(&self) -> usize {
        self.packed_of.len()
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

    /// The site one step forward in direction mu (periodic; beyond the block in a cut direction
    /// an exterior site, see the module docs).
    #[inline]
    pub fn fwd(&self, site: usize, mu: usize) -> usize {
        self.forward[site * self.dims.len() + mu]
    }

    /// The site one step backward in direction mu (like [`Lattice::fwd`]).
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

    /// (outer site, lane) of a lexicographic site, or (halo element, lane) of an exterior site.
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

    /// Number of sites of the global lattice.
    pub fn global_volume(&self) -> usize {
        self.global_dims.iter().product()
    }

    /// Number of plaquettes of the global lattice: V D(D-1)/2, less the (D-1) V/N0 time-like
    /// ones through the removed links when time is open.
    pub fn plaquette_count(&self) -> usize {
        let d = self.ndim();
        self.global_volume() * d * (d - 1) / 2 - self.open_time_loss(d - 1)
    }

    /// Number of 1x2 rectangles of the global lattice: V D(D-1), less, when time is open, the
    /// 3 (D-1) V/N0 through the removed links (long in time from x0 = N0-2 and N0-1, short in
    /// time from x0 = N0-1).
    pub fn rectangle_count(&self) -> usize {
        let d = self.ndim();
        self.global_volume() * d * (d - 1) - self.open_time_loss(3 * (d - 1))
    }

    /// `per_slice` times the global volume of one time slice when time is open, else 0.
    fn open_time_loss(&self, per_slice: usize) -> usize {
        if self.open_time { per_slice * self.global_volume() / self.global_dims[self.ndim() - 1] } else { 0 }
    }
}

/// The lane directions of a block with local extents `dims` and cut directions `cut`: the last
/// two uncut directions where there are two and both local extents are multiples of 4 (what the
/// even/odd layout needs, [`crate::checkerboard::Checkerboard::check_dims`]), else the last two
/// directions. One process thus keeps the last two; a grid that cuts time puts the lanes in y
/// and z, so that its faces are whole elements and its edge whole time slices.
pub fn lane_directions(dims: &[usize], cut: &[bool]) -> [usize; 2] {
    let d = dims.len();
    let mut uncut = (0..d).rev().filter(|&mu| !cut[mu]);
    match (uncut.next(), uncut.next()) {
        (Some(b), Some(a)) if dims[a].is_multiple_of(4) && dims[b].is_multiple_of(4) => [a, b],
        _ => [d - 2, d - 1],
    }
}

/// Blocks are equal when they are the same block of the same global lattice on the same process
/// grid (the tables follow from these).
impl PartialEq for Lattice {
    fn eq(&self, other: &Self) -> bool {
        self.dims == other.dims
            && self.global_dims == other.global_dims
            && self.origin == other.origin
            && self.comm.grid() == other.comm.grid()
            && self.open_time == other.open_time
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
        assert!(e.contains("would need about 2.60e21 bytes"), "{e}");
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

    /// The blocks of every rank of `grid` (built without communicating).
    fn blocks(dims: &[usize], grid: &[usize]) -> Vec<Lattice> {
        crate::comm::threads::ThreadComm::grid(grid)
            .into_iter()
            .map(|c| Lattice::distributed(dims, Arc::new(c)).unwrap())
            .collect()
    }

    /// Global coordinates of lane `lane` of element e.
    fn global_of(lat: &Lattice, e: usize, lane: usize) -> Vec<usize> {
        lat.global_coords_of(&lat.lane_coords(e, lane))
    }

    const GRIDS: [(&[usize], &[usize]); 9] = [
        (&[4, 8], &[1, 2]),
        (&[4, 2, 4, 8], &[1, 1, 1, 2]),
        (&[4, 4, 8, 4], &[1, 2, 2, 1]),
        (&[8, 8], &[2, 2]),
        (&[4, 4], &[1, 2]),
        (&[4, 4, 4, 8], &[1, 1, 1, 2]),
        (&[4, 4, 8, 8], &[1, 1, 2, 2]),
        (&[4, 4, 4, 4], &[2, 2, 1, 1]),
        (&[4, 2, 4, 8], &[2, 1, 2, 2]),
    ];

    /// Every lane of every element of every block, interior and halo, hops to the lane holding
    /// its global neighbour; hops leave the box only from its outermost layer.
    #[test]
    fn blocks_hop_to_their_global_neighbours() {
        for (dims, grid) in GRIDS {
            for lat in blocks(dims, grid) {
                let d = lat.ndim();
                assert_eq!(lat.outer_volume() * LANES, lat.volume());
                for site in 0..lat.volume() {
                    let (o, l) = lat.packed_of(site);
                    assert_eq!(lat.site_of_packed(o, l), site);
                    let c: Vec<isize> = lat.coords(site).iter().map(|&x| x as isize).collect();
                    assert_eq!(
                        lat.global_site(site),
                        Lattice::new(dims).unwrap().site(&lat.global_coords_of(&c))
                    );
                }
                for e in 0..lat.box_len() {
                    for mask in 0..LANES {
                        let s = PackedSite { outer: e, mask };
                        for mu in 0..d {
                            for (n, step) in [(lat.packed_fwd(s, mu), 1), (lat.packed_bwd(s, mu), -1)] {
                                if n.outer == NO_SITE {
                                    assert!(lat.is_cut(mu) && e >= lat.outer_volume(), "{dims:?} {grid:?}");
                                    continue;
                                }
                                assert!(
                                    e >= lat.face_len()
                                        || n.outer < lat.face_len()
                                        || e >= lat.outer_volume()
                                );
                                for lane in 0..LANES {
                                    let mut want = lat.lane_coords(e, lane ^ mask);
                                    want[mu] += step;
                                    assert_eq!(
                                        global_of(&lat, n.outer, lane ^ n.mask),
                                        lat.global_coords_of(&want)
                                    );
                                }
                            }
                        }
                    }
                }
                // per-site hops, from the block's sites and from exterior ones, reach the site
                // holding the global neighbour until they leave the box
                let coords_of_site = |site: usize| {
                    let (e, lane) = lat.packed_of(site);
                    lat.lane_coords(e, lane)
                };
                for site in 0..lat.sites_with_exterior() {
                    for mu in 0..d {
                        for (n, step) in [(lat.fwd(site, mu), 1), (lat.bwd(site, mu), -1)] {
                            if n == NO_SITE {
                                assert!(
                                    site >= lat.volume() && lat.is_cut(mu),
                                    "{dims:?} {grid:?} site {site}"
                                );
                                continue;
                            }
                            let mut want = coords_of_site(site);
                            want[mu] += step;
                            let got = lat.global_coords_of(&coords_of_site(n));
                            assert_eq!(got, lat.global_coords_of(&want), "{dims:?} {grid:?} site {site}");
                            assert_eq!(lat.parity(n), 1 - lat.parity(site));
                        }
                    }
                }
                assert_eq!(lat.sites_with_exterior() > lat.volume(), !lat.is_whole());
            }
        }
    }

    /// The lane directions avoid the cut ones where two uncut directions with local extents
    /// divisible by 4 remain; then the faces are whole elements (no lane copies).
    #[test]
    fn lane_directions_avoid_the_cut_where_they_can() {
        let cases: [(&[usize], &[usize], [usize; 2]); 7] = [
            (&[4, 4, 4, 8], &[1, 1, 1, 1], [2, 3]),
            (&[4, 4, 4, 8], &[1, 1, 1, 2], [1, 2]),
            (&[4, 4, 8, 8], &[1, 1, 2, 2], [0, 1]),
            (&[4, 4, 8, 4], &[1, 2, 2, 1], [0, 3]),
            (&[4, 2, 4, 8], &[1, 1, 1, 2], [2, 3]),
            (&[4, 2, 4, 8], &[2, 1, 2, 2], [2, 3]),
            (&[4, 8], &[1, 2], [0, 1]),
        ];
        for (dims, grid, lanes) in cases {
            for lat in blocks(dims, grid) {
                assert_eq!(lat.lane_directions(), lanes, "{dims:?} on {grid:?}");
                let splits_cut = lanes.iter().any(|&nu| lat.is_cut(nu));
                assert_eq!(lat.face_plan().copies.is_empty(), !splits_cut, "{dims:?} on {grid:?}");
                for mu in 0..dims.len() {
                    assert_eq!(lat.hop_may_permute(mu), lanes.contains(&mu));
                }
            }
        }
    }

    /// The plans, run between the blocks in memory, fill every halo lane with its global site.
    #[test]
    fn halo_plans_fill_every_lane_with_its_global_site() {
        for (dims, grid) in GRIDS {
            let blocks = blocks(dims, grid);
            let whole = Lattice::new(dims).unwrap();
            for faces in [true, false] {
                let plan =
                    |lat: &Lattice| if faces { lat.face_plan().clone() } else { lat.box_plan().clone() };
                let mut fields: Vec<Vec<usize>> = blocks
                    .iter()
                    .map(|lat| {
                        let mut f = vec![usize::MAX; lat.box_len() * LANES];
                        for site in 0..lat.volume() {
                            let (o, l) = lat.packed_of(site);
                            f[o * LANES + l] = lat.global_site(site);
                        }
                        f
                    })
                    .collect();
                let at = |s: &halo::LaneSite| s.element as usize * LANES + s.lane as usize;
                let stages = plan(&blocks[0]).stages;
                for (k, stage) in stages.iter().enumerate() {
                    for (m, message) in stage.iter().enumerate() {
                        let sent: Vec<Vec<usize>> = blocks
                            .iter()
                            .zip(&fields)
                            .map(|(lat, f)| plan(lat).stages[k][m].send.iter().map(|s| f[at(s)]).collect())
                            .collect();
                        for (r, lat) in blocks.iter().enumerate() {
                            let to = lat.comm().neighbour(message.mu, message.forward);
                            let receive = plan(&blocks[to]).stages[k][m].receive.clone();
                            for (s, &v) in receive.iter().zip(&sent[r]) {
                                fields[to][at(s)] = v;
                            }
                        }
                    }
                }
                for (lat, f) in blocks.iter().zip(&mut fields) {
                    let p = plan(lat);
                    assert_eq!(
                        p.elements,
                        if faces { lat.face_len() } else { lat.box_len() } - lat.outer_volume()
                    );
                    for (to, from) in &p.copies {
                        f[at(to)] = f[at(from)];
                    }
                    for e in lat.outer_volume()..lat.outer_volume() + p.elements {
                        for lane in 0..LANES {
                            let want = whole.site(&global_of(lat, e, lane));
                            assert_eq!(
                                f[e * LANES + lane],
                                want,
                                "{dims:?} {grid:?} faces {faces} element {e}"
                            );
                        }
                    }
                }
            }
        }
        // the whole lattice on one rank has no halo
        let whole = Lattice::new(&[4, 4, 4, 8]).unwrap();
        assert!(whole.face_plan().is_empty() && whole.box_plan().is_empty());
        assert_eq!(whole.box_len(), whole.outer_volume());
    }
}
