//! Gauge and momentum fields on a lattice, stored in the packed layout of
//! [`crate::geometry`]: LANES sites per element, so the hot kernels run on all lanes at once.
//!
//! A gauge field holds one packed link per outer site and direction at `outer * D + mu`, a
//! momentum field the algebra elements of those LANES links as lane vectors. Per-site
//! access ([`GaugeField::link`], [`MomentumField::at`]) and conversion to the lexicographic
//! order `site * D + mu` ([`GaugeField::to_links`]) hide the layout from everything else.

use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::halo::{Extended, Whole, exchange};
use crate::backend::cpu::packed::{LANES, Operand};
use crate::backend::cpu::{alg_lane, alg_lanes_axpy, set_alg_lane};
use crate::geometry::{Lattice, PackedSite};
use crate::group::LinkMatrix;
use crate::parallel::global_sums;
use crate::rng::{Purpose, StreamKey};
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next [`GaugeField::generation`] to hand out.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(0);

/// A generation no field has had before.
fn new_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Link variables U_mu(x) of group `G` on this rank's block, and their halo (the links of the
/// neighbouring blocks within the box of [`crate::geometry::halo`]), kept up to date by every
/// method that changes links in bulk.
#[derive(Clone, Debug)]
pub struct GaugeField<G: PackedGroup> {
    lattice: Arc<Lattice>,
    /// The interior elements' links, then the halo elements' (`element * D + mu`).
    packed: Vec<G::Packed<f64>>,
    /// Whether links were set one by one since the halo was last filled.
    halo_stale: bool,
    /// The links' identity ([`GaugeField::generation`]).
    generation: u64,
}

/// Fields are equal when their lattices and links are (whatever their generations).
impl<G: PackedGroup> PartialEq for GaugeField<G> {
    fn eq(&self, other: &Self) -> bool {
        self.lattice == other.lattice && self.packed == other.packed && self.halo_stale == other.halo_stale
    }
}

impl<G: PackedGroup> GaugeField<G> {
    /// The cold (unit) field: every link is the identity, plaquette 1.
    pub fn cold(lattice: Arc<Lattice>) -> Self {
        let one = G::Elem::identity();
        let packed = vec![G::pack([&one; LANES]); lattice.box_len() * lattice.ndim()];
        let mut u = GaugeField { lattice, packed, halo_stale: false, generation: new_generation() };
        u.zero_removed_links();
        u
    }

    /// The field from links in lexicographic order as a file stores them, and the field on
    /// `lattice`: the same links on the periodic view of the lattice (what a file's own checks,
    /// its plaquette and link trace, are computed on), then on `lattice` itself, where a lattice
    /// open in time sets its removed links to zero. One field twice on a periodic lattice.
    pub fn from_stored_links(lattice: Arc<Lattice>, links: Vec<G::Elem>) -> crate::Result<(Self, Self)> {
        if !lattice.is_open_in_time() {
            let u = Self::from_links(lattice, links)?;
            return Ok((u.clone(), u));
        }
        let stored = Self::from_links(Arc::new(lattice.periodic_in_time()), links)?;
        let mut u = GaugeField {
            lattice,
            packed: stored.packed.clone(),
            halo_stale: stored.halo_stale,
            generation: new_generation(),
        };
        u.zero_removed_links();
        Ok((stored, u))
    }

    /// Sets the links a lattice open in time removes ([`Lattice::is_removed_link`]) to zero, in
    /// the interior and the halo (openQCD's open boundary: they never move, and every loop
    /// through them vanishes). Nothing on a periodic lattice.
    fn zero_removed_links(&mut self) {
        if !self.lattice.is_open_in_time() {
            return;
        }
        let (lat, d) = (self.lattice.clone(), self.lattice.ndim());
        let zero = G::Elem::zero();
        self.generation = new_generation();
        self.packed.par_chunks_mut(d).enumerate().for_each(|(e, links)| {
            let removed = lat.removed_lanes(e, d - 1);
            (0..LANES)
                .filter(|l| removed >> l & 1 == 1)
                .for_each(|l| G::set_lane(&mut links[d - 1], l, &zero));
        });
    }

    /// A hot field: every link Haar-random, drawn from the site streams of `seed`.
    pub fn hot(lattice: Arc<Lattice>, seed: u64) -> Self {
        Self::haar(lattice, &StreamKey::new(seed, Purpose::HotStart, 0))
    }

    /// Every link Haar-random: the links of site x drawn in direction order from stream x of
    /// `key` (x the global site index).
    pub fn haar(lattice: Arc<Lattice>, key: &StreamKey) -> Self {
        let mut u = Self::cold(lattice);
        let (lat, d) = (u.lattice.clone(), u.lattice.ndim());
        u.interior_mut().par_chunks_mut(d).enumerate().for_each(|(outer, links)| {
            for lane in 0..LANES {
                let mut rng = key.stream(lat.global_site(lat.site_of_packed(outer, lane)));
                links.iter_mut().for_each(|l| G::set_lane(l, lane, &G::haar(&mut rng)));
            }
        });
        u.zero_removed_links();
        u.refresh_halo();
        u
    }

    /// A field from links in lexicographic order (`site * D + mu`); the length must match.
    pub fn from_links(lattice: Arc<Lattice>, links: Vec<G::Elem>) -> crate::Result<Self> {
        let d = lattice.ndim();
        let expected = lattice.volume() * d;
        if links.len() != expected {
            return Err(crate::Error::Config(format!(
                "{} links given, the lattice {:?} has {expected}",
                links.len(),
                lattice.dims()
            )));
        }
        let mut u = Self::cold(lattice);
        for (i, link) in links.iter().enumerate() {
            u.set_link(i / d, i % d, link);
        }
        u.zero_removed_links();
        u.refresh_halo();
        Ok(u)
    }

    /// The field with U_mu(site) = `link(site, mu)`, filled in parallel; fails with one of the
    /// errors `link` returns (which one depends on the thread schedule).
    pub fn try_from_fn<E: Send>(
        lattice: Arc<Lattice>,
        link: impl Fn(usize, usize) -> Result<G::Elem, E> + Sync,
    ) -> Result<Self, E> {
        let mut u = Self::cold(lattice);
        let (lat, d) = (u.lattice.clone(), u.lattice.ndim());
        u.interior_mut().par_chunks_mut(d).enumerate().try_for_each(|(outer, links)| {
            for lane in 0..LANES {
                let site = lat.site_of_packed(outer, lane);
                for (mu, l) in links.iter_mut().enumerate() {
                    G::set_lane(l, lane, &link(site, mu)?);
                }
            }
            Ok(())
        })?;
        u.zero_removed_links();
        u.refresh_halo();
        Ok(u)
    }

    /// All links in lexicographic order (`site * D + mu`).
    pub fn to_links(&self) -> Vec<G::Elem> {
        let d = self.lattice.ndim();
        (0..self.lattice.volume() * d).map(|i| self.link(i / d, i % d)).collect()
    }

    /// The lattice.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// The identity of the links' values: two fields of the same generation hold the same
    /// links. A clone keeps its original's generation; creating a field and every change of a
    /// link (one by one, the MD drift, projection) draws one no field has had, so a cache keyed
    /// on it (the clover term of [`crate::dirac::Clover`]) never serves a changed field.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// U_mu(site).
    #[inline]
    pub fn link(&self, site: usize, mu: usize) -> G::Elem {
        let (outer, lane) = self.lattice.packed_of(site);
        G::lane(&self.packed[outer * self.lattice.ndim() + mu], lane)
    }

    /// Sets U_mu(site); on a block of a cut lattice the halo is out of date until
    /// [`GaugeField::refresh_halo`].
    pub fn set_link(&mut self, site: usize, mu: usize, value: &G::Elem) {
        let (outer, lane) = self.lattice.packed_of(site);
        G::set_lane(&mut self.packed[outer * self.lattice.ndim() + mu], lane, value);
        self.halo_stale = !self.lattice.is_whole();
        self.generation = new_generation();
    }

    /// The interior elements' links, mutable (the halo is refreshed by the caller), under a
    /// new generation.
    fn interior_mut(&mut self) -> &mut [G::Packed<f64>] {
        self.generation = new_generation();
        let n = self.lattice.outer_volume() * self.lattice.ndim();
        &mut self.packed[..n]
    }

    /// Fills the halo with the links of the neighbouring blocks (collective; nothing to do on
    /// the whole lattice).
    pub fn refresh_halo(&mut self) {
        let lat = self.lattice.clone();
        if !lat.box_plan().is_empty() {
            let (interior, halo) = self.packed.split_at_mut(lat.outer_volume() * lat.ndim());
            let mut field = Extended { interior, halo, width: lat.ndim() };
            exchange(lat.comm().as_ref(), lat.box_plan(), &mut field, &Whole);
        }
        self.halo_stale = false;
    }

    /// Panics when links were set one by one since the halo was filled: kernels that read the
    /// halo call it first (a missing [`GaugeField::refresh_halo`] is a bug, not bad input).
    pub fn assert_halo_fresh(&self) {
        assert!(!self.halo_stale, "links were set one by one without GaugeField::refresh_halo");
    }

    /// The links U_mu of the LANES sites of a packed-layout site, as a product operand (the
    /// stored element and the lane mask to read it with; nothing is copied).
    #[inline(always)]
    pub fn packed_link(&self, s: PackedSite, mu: usize) -> Operand<'_, G::Packed<f64>> {
        (&self.packed[s.outer * self.lattice.ndim() + mu], s.mask)
    }

    /// U <- exp(eps P) U on every link (the MD position update).
    pub fn evolve(&mut self, p: &MomentumField<G>, eps: f64) {
        self.interior_mut().par_iter_mut().zip(&p.data).for_each(|(u, pl)| G::exp_mul_packed(pl, eps, u));
        self.refresh_halo();
    }

    /// Projects every link back to the group (removes accumulated round-off).
    pub fn project(&mut self) {
        self.interior_mut().par_iter_mut().for_each(|u| {
            for lane in 0..LANES {
                G::set_lane(u, lane, &G::project(&G::lane(u, lane)));
            }
        });
        self.zero_removed_links();
        self.refresh_halo();
    }

    /// The interior elements' links.
    fn interior(&self) -> &[G::Packed<f64>] {
        &self.packed[..self.lattice.outer_volume() * self.lattice.ndim()]
    }

    /// The largest distance of a link from the group ([`crate::group::Group::unitarity_violation`]);
    /// for a removed link of a lattice open in time, its distance from zero.
    pub fn max_unitarity_violation(&self) -> f64 {
        // NaN counts as the largest violation (f64::max would drop it)
        let worst = |a: f64, b: f64| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) };
        let (lat, d) = (&self.lattice, self.lattice.ndim());
        let local =
            self.interior()
                .par_iter()
                .enumerate()
                .map(|(k, u)| {
                    let removed = lat.removed_lanes(k / d, k % d);
                    let violation = G::packed_unitarity_violation(u);
                    (0..LANES)
                        .map(|l| {
                            if removed >> l & 1 == 1 { G::lane(u, l).norm_sqr().sqrt() } else { violation[l] }
                        })
                        .fold(0.0, worst)
                })
                .reduce(|| 0.0, worst);
        self.lattice.comm().max(local)
    }

    /// Largest entry-wise distance between two fields on the same lattice.
    pub fn max_distance(&self, other: &Self) -> f64 {
        let local = self
            .interior()
            .par_iter()
            .zip(other.interior().par_iter())
            .flat_map_iter(|(a, b)| {
                (0..LANES).map(move |l| G::lane(a, l).sub(&G::lane(b, l)).norm_sqr().sqrt())
            })
            .reduce(|| 0.0, f64::max);
        self.lattice.comm().max(local)
    }
}

/// Conjugate momenta, one algebra element per link, stored like the gauge field: element
/// `outer * D + mu` holds the momenta of the LANES links (outer, lane, mu) as lane vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct MomentumField<G: PackedGroup> {
    lattice: Arc<Lattice>,
    data: Vec<G::AlgLanes>,
}

impl<G: PackedGroup> MomentumField<G> {
    /// All momenta zero.
    pub fn zeros(lattice: &Arc<Lattice>) -> Self {
        let data = vec![G::AlgLanes::default(); lattice.outer_volume() * lattice.ndim()];
        MomentumField { lattice: lattice.clone(), data }
    }

    /// Gaussian momenta with kinetic energy (1/2) sum p_a^2: each component N(0, 1), drawn
    /// from the site streams of (seed, momentum, update), indexed by global site; zero on the
    /// removed links of a lattice open in time (drawn and discarded, so that the other links
    /// get the values they get on a periodic lattice).
    pub fn gaussian(lattice: &Arc<Lattice>, seed: u64, update: u64) -> Self {
        let key = StreamKey::new(seed, Purpose::Momentum, update);
        let d = lattice.ndim();
        let mut p = Self::zeros(lattice);
        p.data.par_chunks_mut(d).enumerate().for_each(|(outer, ps)| {
            for lane in 0..LANES {
                let mut rng = key.stream(lattice.global_site(lattice.site_of_packed(outer, lane)));
                for pm in ps.iter_mut() {
                    set_alg_lane::<G>(pm, lane, &G::gaussian_alg(&mut rng));
                }
            }
            let removed = lattice.removed_lanes(outer, d - 1);
            (0..LANES)
                .filter(|l| removed >> l & 1 == 1)
                .for_each(|l| set_alg_lane::<G>(&mut ps[d - 1], l, &G::Alg::default()));
        });
        p
    }

    /// The momentum of link (site, mu).
    pub fn at(&self, lattice: &Lattice, site: usize, mu: usize) -> G::Alg {
        let (outer, lane) = lattice.packed_of(site);
        alg_lane::<G>(&self.data[outer * lattice.ndim() + mu], lane)
    }

    /// Adds `value` to the momentum of link (site, mu).
    pub fn add_at(&mut self, lattice: &Lattice, site: usize, mu: usize, value: &G::Alg) {
        let (outer, lane) = lattice.packed_of(site);
        let p = &mut self.data[outer * lattice.ndim() + mu];
        let mut sum = alg_lane::<G>(p, lane);
        sum.as_mut().iter_mut().zip(value.as_ref()).for_each(|(s, v)| *s += v);
        set_alg_lane::<G>(p, lane, &sum);
    }

    /// Kinetic energy (1/2) sum over links and components of p_a^2: per link the sum over
    /// components, the links summed exactly over all ranks.
    pub fn kinetic_energy(&self) -> f64 {
        let [sum] = global_sums(self.lattice.comm().as_ref(), self.data.len(), |i, [sum]| {
            let mut link = [0.0; LANES];
            for component in self.data[i].as_ref() {
                for (s, x) in link.iter_mut().zip(component) {
                    *s += x * x;
                }
            }
            sum.add_all(&link);
        });
        0.5 * sum.value()
    }

    /// Every component of every link's momentum, in storage order.
    pub fn components(&self) -> impl Iterator<Item = f64> + '_ {
        self.data.iter().flat_map(|p| p.as_ref().iter().flatten().copied())
    }

    /// The packed momenta, element `outer * D + mu`, mutable.
    pub fn packed_mut(&mut self) -> &mut [G::AlgLanes] {
        &mut self.data
    }

    /// self += c * x.
    pub fn axpy(&mut self, c: f64, x: &Self) {
        self.data.par_iter_mut().zip(&x.data).for_each(|(y, x)| alg_lanes_axpy(c, x, 0, y));
    }

    /// p <- -p (time reversal, used by the reversibility check).
    pub fn negate(&mut self) {
        self.data.par_iter_mut().for_each(|p| p.as_mut().iter_mut().flatten().for_each(|x| *x = -*x));
    }
}

/// Gauge fields move along algebra-valued momenta: kinetic energy (1/2) sum p_a^2, drift
/// U <- exp(h P) U, accepted fields projected back to the group.
impl<G: PackedGroup> crate::phase_space::PhaseSpace for GaugeField<G> {
    type Momentum = MomentumField<G>;
    fn gaussian_momenta(&self, seed: u64, update: u64) -> MomentumField<G> {
        MomentumField::gaussian(self.lattice(), seed, update)
    }
    fn zero_momenta(&self) -> MomentumField<G> {
        MomentumField::zeros(self.lattice())
    }
    fn kinetic_energy(p: &MomentumField<G>) -> f64 {
        p.kinetic_energy()
    }
    fn negate(p: &mut MomentumField<G>) {
        p.negate()
    }
    fn drift(&mut self, p: &MomentumField<G>, h: f64) {
        self.evolve(p, h)
    }
    fn max_distance(&self, other: &Self) -> f64 {
        GaugeField::max_distance(self, other)
    }
    fn tidy(&mut self) {
        self.project()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::packed::PackedMatrix;
    use crate::group::Group;
    use crate::group::{Su3, U1};

    #[test]
    fn momentum_refresh_has_unit_variance_per_component() {
        let lat = Arc::new(Lattice::new(&[8, 8, 8, 8]).unwrap());
        let p = MomentumField::<Su3>::gaussian(&lat, 9, 3);
        let n = (lat.volume() * 4 * 8) as f64;
        let (s1, s2) = p.components().fold((0.0, 0.0), |(a, b), x| (a + x, b + x * x));
        let (mean, var) = (s1 / n, s2 / n - (s1 / n).powi(2));
        // 131072 components: standard errors 0.0028 (mean) and 0.0039 (variance)
        assert!(mean.abs() < 0.014 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
        assert!((p.kinetic_energy() / n - 0.5).abs() < 0.01);
    }

    #[test]
    fn evolve_stays_in_group_and_inverts() {
        let lat = Arc::new(Lattice::new(&[4, 4]).unwrap());
        let mut u = GaugeField::<U1>::hot(lat.clone(), 1);
        let start = u.clone();
        let p = MomentumField::<U1>::gaussian(&lat, 1, 1);
        u.evolve(&p, 0.7);
        assert!(u.max_distance(&start) > 0.1);
        u.evolve(&p, -0.7);
        assert!(u.max_distance(&start) < 1e-14);
        assert!(u.max_unitarity_violation() < 1e-14);
    }

    #[test]
    fn per_site_access_matches_the_packed_storage() {
        let lat = Arc::new(Lattice::new(&[4, 2, 6, 4]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 2);
        let links = u.to_links();
        let v = GaugeField::<Su3>::from_links(lat.clone(), links.clone()).unwrap();
        assert!(u == v);
        // a packed hop reads the neighbour's links in every lane
        for outer in 0..lat.outer_volume() {
            let s = PackedSite { outer, mask: 0 };
            for mu in 0..4 {
                let n = lat.packed_fwd(s, mu);
                let (stored, mask) = u.packed_link(n, 2);
                let packed = stored.permute(mask);
                for lane in 0..LANES {
                    let neighbour = lat.fwd(lat.site_of_packed(outer, lane), mu);
                    assert_eq!(Su3::lane(&packed, lane), links[neighbour * 4 + 2]);
                }
            }
        }
        // moving a field evolves each link by its own momentum
        let p = MomentumField::<Su3>::gaussian(&lat, 3, 0);
        let mut w = u.clone();
        w.evolve(&p, 0.3);
        let (site, mu) = (37, 1);
        let expected = Su3::exp(&p.at(&lat, site, mu), 0.3).mul(&u.link(site, mu));
        assert!(expected.sub(&w.link(site, mu)).norm_sqr() < 1e-28);
    }
}
