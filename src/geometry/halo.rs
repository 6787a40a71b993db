//! The halo of a rank's block in the packed layout: the extended box of packed elements around
//! the block and the plans that fill its halo elements from the neighbouring ranks.
//!
//! Conventions. The block's outer lattice (extents L_mu, halved in the two lane directions nu_0
//! < nu_1, see [`crate::geometry`]) is extended by [`DEPTH`] outer sites on both sides of every
//! direction that the process grid cuts; the other directions stay periodic within the block.
//! A packed element at box coordinates c' (negative or beyond the outer extent in cut
//! directions) holds in lane l = a + 2b the local site c with c_mu = c'_mu, plus a L_{nu_0}/2
//! in direction nu_0 and b L_{nu_1}/2 in direction nu_1 (as for interior elements). Sites
//! outside the block (`exterior`) belong to neighbouring ranks; in a cut direction that is
//! halved (only where fewer than two directions are uncut), an element beyond the block holds
//! exterior sites in one lane half and interior ones in the other.
//!
//! Elements are numbered: the interior (the outer sites in their usual order), then the
//! faces (one box coordinate one step outside the block in exactly one direction: what a hop
//! from the interior reaches), then the rest of the box (corners and the second layer).
//! Hops between box elements never exchange lanes in cut directions; a hop that would leave
//! the box is [`NO_SITE`].
//!
//! Every exterior site has one canonical element lane (in a halved direction: the lane half
//! below the block for c < 0 and above it for c >= L); a [`HaloPlan`] receives those from the
//! neighbours in stages, direction by direction, and then copies every other lane of its halo
//! elements from the canonical lane of its site (interior lanes from the interior). Since every
//! rank's block has the same extents and cut directions, the plan is the same on every rank,
//! and the lanes a rank sends in a message are listed in the order its neighbour receives them.

/// Box depth in outer sites: the reach of the longest path that a gauge kernel walks outside
/// the block (rectangle staples, 2 steps).
pub const DEPTH: usize = 2;

/// Hop target of a hop that leaves the box.
pub const NO_SITE: usize = usize::MAX;

/// One lane of one packed element (interior outer site or halo element).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LaneSite {
    /// Element index (interior first, then the halo).
    pub element: u32,
    /// Lane 0..LANES.
    pub lane: u8,
}

/// One message of a halo exchange: every rank sends the lanes `send` (its own elements) to
/// the neighbour one step in direction (mu, forward) and stores what arrives from the opposite
/// neighbour, in the same order, into the lanes `receive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Direction.
    pub mu: usize,
    /// Sent forward (filling the neighbour's halo below its block) or backward.
    pub forward: bool,
    /// Lanes sent, read from this rank's elements.
    pub send: Vec<LaneSite>,
    /// Lanes received, written into this rank's halo elements.
    pub receive: Vec<LaneSite>,
}

/// How to fill the first `elements` halo elements: the messages of each stage (a stage may
/// send lanes received in an earlier one, which is how corners travel), then the lane copies
/// `(to, from)` within the rank.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaloPlan {
    /// Number of halo elements filled (they follow the interior elements).
    pub elements: usize,
    /// Messages, stage by stage; the messages of one stage are independent.
    pub stages: Vec<Vec<Message>>,
    /// Lanes copied after the stages, `(to, from)`.
    pub copies: Vec<(LaneSite, LaneSite)>,
}

impl HaloPlan {
    /// Whether the plan moves nothing (a block that no direction cuts).
    pub fn is_empty(&self) -> bool {
        self.elements == 0
    }

    /// Lanes received per plan execution (sites that come from other ranks).
    pub fn received_lanes(&self) -> usize {
        self.stages.iter().flatten().map(|m| m.receive.len()).sum()
    }
}

/// The extended box of packed elements of a block (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExtendedBox {
    /// Local extents L_mu.
    dims: Vec<usize>,
    /// The lane directions nu_0 < nu_1.
    lanes: [usize; 2],
    /// Outer extents (L_mu, halved in the lane directions).
    outer_dims: Vec<usize>,
    /// Lowest box coordinate per direction (-DEPTH where cut, else 0).
    low: Vec<isize>,
    /// Box extent per direction.
    extent: Vec<usize>,
    /// Element index of each box position (box-lexicographic, first direction fastest).
    element_at: Vec<u32>,
    /// Box position of each element.
    position_of: Vec<usize>,
    /// Number of interior elements.
    interior: usize,
    /// Number of face elements.
    faces: usize,
}

impl ExtendedBox {
    /// The box of a block with local extents `dims` (even, halved in the lane directions
    /// `lanes`) and directions `cut` extended by [`DEPTH`].
    pub(crate) fn new(dims: &[usize], cut: &[bool], lanes: [usize; 2]) -> Self {
        let d = dims.len();
        let outer_dims: Vec<usize> =
            dims.iter().enumerate().map(|(mu, &l)| if lanes.contains(&mu) { l / 2 } else { l }).collect();
        let low: Vec<isize> = cut.iter().map(|&c| if c { -(DEPTH as isize) } else { 0 }).collect();
        let extent: Vec<usize> =
            outer_dims.iter().zip(cut).map(|(&l, &c)| if c { l + 2 * DEPTH } else { l }).collect();
        let positions: usize = extent.iter().product();
        let mut element_at = vec![u32::MAX; positions];
        let mut position_of = Vec::with_capacity(positions);
        let interior: usize = outer_dims.iter().product();
        let mut c = vec![0isize; d];
        // interior elements first, in the order of the outer sites (first direction fastest)
        for outer in 0..interior {
            let mut rest = outer;
            for (x, &l) in c.iter_mut().zip(&outer_dims) {
                *x = (rest % l) as isize;
                rest /= l;
            }
            let p = Self::position_in(&low, &extent, &c);
            element_at[p] = outer as u32;
            position_of.push(p);
        }
        // then the faces, then the rest of the box, each in box order
        let mut faces = 0;
        for faces_pass in [true, false] {
            for (p, at) in element_at.iter_mut().enumerate() {
                if *at != u32::MAX {
                    continue;
                }
                Self::coords_into(&low, &extent, p, &mut c);
                if Self::is_face(&c, &outer_dims) == faces_pass {
                    *at = position_of.len() as u32;
                    position_of.push(p);
                    faces += usize::from(faces_pass);
                }
            }
        }
        ExtendedBox {
            dims: dims.to_vec(),
            lanes,
            outer_dims,
            low,
            extent,
            element_at,
            position_of,
            interior,
            faces,
        }
    }

    /// Whether box coordinates `c` are one step outside the outer extents in exactly one
    /// direction (a face element).
    fn is_face(c: &[isize], outer_dims: &[usize]) -> bool {
        let outside: Vec<isize> = c
            .iter()
            .zip(outer_dims)
            .map(|(&x, &l)| if x < 0 { -x } else { (x + 1 - l as isize).max(0) })
            .collect();
        outside.iter().filter(|&&o| o > 0).count() == 1 && outside.iter().sum::<isize>() == 1
    }

    fn position_in(low: &[isize], extent: &[usize], c: &[isize]) -> usize {
        c.iter().zip(low).zip(extent).rev().fold(0, |acc, ((&x, &lo), &e)| acc * e + (x - lo) as usize)
    }

    fn coords_into(low: &[isize], extent: &[usize], mut p: usize, out: &mut [isize]) {
        for ((x, &lo), &e) in out.iter_mut().zip(low).zip(extent) {
            *x = (p % e) as isize + lo;
            p /= e;
        }
    }

    /// Number of interior elements (the outer volume).
    pub(crate) fn interior(&self) -> usize {
        self.interior
    }

    /// Number of face elements.
    pub(crate) fn faces(&self) -> usize {
        self.faces
    }

    /// Number of elements (interior and halo).
    pub(crate) fn len(&self) -> usize {
        self.position_of.len()
    }

    /// Whether element `e` is a face element below the block (its one outside coordinate is -1).
    pub(crate) fn is_lower_face(&self, e: usize) -> bool {
        (self.interior..self.interior + self.faces).contains(&e)
            && self.element_coords(e).iter().any(|&x| x < 0)
    }

    /// Box coordinates of element `e`.
    pub(crate) fn element_coords(&self, e: usize) -> Vec<isize> {
        let mut c = vec![0; self.dims.len()];
        Self::coords_into(&self.low, &self.extent, self.position_of[e], &mut c);
        c
    }

    /// Local coordinates of the site in lane `lane` of element `e` (negative or beyond the
    /// extents for exterior sites).
    pub(crate) fn lane_coords(&self, e: usize, lane: usize) -> Vec<isize> {
        let mut c = self.element_coords(e);
        for (bit, &nu) in self.lanes.iter().enumerate() {
            c[nu] += (lane >> bit & 1) as isize * self.outer_dims[nu] as isize;
        }
        c
    }

    /// The canonical element lane of the site at local coordinates `c` (inside the box's reach).
    pub(crate) fn canonical(&self, c: &[isize]) -> LaneSite {
        let mut outer = c.to_vec();
        let mut lane = 0;
        for (mu, bit) in [(self.lanes[0], 1), (self.lanes[1], 2)] {
            let (l, lo) = (self.dims[mu] as isize, self.outer_dims[mu] as isize);
            let x = c[mu];
            let upper = if x < 0 {
                false
            } else if x < l {
                x >= lo
            } else {
                true
            };
            if upper {
                outer[mu] = x - lo;
                lane |= bit;
            }
        }
        let p = Self::position_in(&self.low, &self.extent, &outer);
        LaneSite { element: self.element_at[p], lane: lane as u8 }
    }

    /// The element one step from element `e` in direction mu and its lane mask: within the box
    /// (mask 0) in cut directions, [`NO_SITE`] beyond it; periodic in the others, with the
    /// lane exchange of the halved directions where the step wraps.
    pub(crate) fn hop(&self, e: usize, mu: usize, forward: bool) -> (usize, usize) {
        let mut c = self.element_coords(e);
        let l = self.outer_dims[mu] as isize;
        let step = if forward { 1 } else { -1 };
        c[mu] += step;
        let mut mask = 0;
        if self.low[mu] < 0 {
            if c[mu] < self.low[mu] || c[mu] >= self.low[mu] + self.extent[mu] as isize {
                return (NO_SITE, 0);
            }
        } else if c[mu] < 0 || c[mu] >= l {
            c[mu] = c[mu].rem_euclid(l);
            if let Some(bit) = self.lanes.iter().position(|&nu| nu == mu) {
                mask = 1 << bit;
            }
        }
        (self.element_at[Self::position_in(&self.low, &self.extent, &c)] as usize, mask)
    }

    /// The plan that fills the face elements (`faces_only`) or every halo element of the box.
    pub(crate) fn plan(&self, faces_only: bool) -> HaloPlan {
        let d = self.dims.len();
        let elements = if faces_only { self.faces } else { self.len() - self.interior };
        // messages[stage][0 forward | 1 backward]
        let mut messages: Vec<[Message; 2]> = (0..d)
            .map(|mu| {
                [true, false].map(|forward| Message { mu, forward, send: Vec::new(), receive: Vec::new() })
            })
            .collect();
        let mut copies = Vec::new();
        for e in self.interior..self.interior + elements {
            for lane in 0..crate::backend::cpu::packed::LANES {
                let here = LaneSite { element: e as u32, lane: lane as u8 };
                let c = self.lane_coords(e, lane);
                let canonical = self.canonical(&c);
                if canonical != here {
                    copies.push((here, canonical));
                    continue;
                }
                // received in the stage of its last exterior direction, from the neighbour
                // that holds it
                let mu =
                    (0..d).rev().find(|&mu| c[mu] < 0 || c[mu] >= self.dims[mu] as isize).expect("exterior");
                let forward = c[mu] < 0;
                let mut source = c.clone();
                source[mu] += if forward { self.dims[mu] as isize } else { -(self.dims[mu] as isize) };
                let m = &mut messages[mu][usize::from(!forward)];
                m.receive.push(here);
                m.send.push(self.canonical(&source));
            }
        }
        let mut stages: Vec<Vec<Message>> = messages
            .into_iter()
            .map(|pair| pair.into_iter().filter(|m| !m.receive.is_empty()).collect::<Vec<_>>())
            .filter(|stage| !stage.is_empty())
            .collect();
        if faces_only {
            // faces need no corners: every message is independent
            stages = vec![stages.into_iter().flatten().collect()];
            stages.retain(|s| !s.is_empty());
        }
        HaloPlan { elements, stages, copies }
    }
}
