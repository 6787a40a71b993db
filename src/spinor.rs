//! Fermion fields in the packed layouts of [`crate::checkerboard`].
//!
//! A field holds one packed spinor (S spin components, each a packed colour vector of LANES
//! sites) per outer site. In the even/odd layout a half field covers the sites of one parity
//! and a full field holds the even half followed by the odd half (even/odd ordering,
//! README, Conventions); in the natural layout a full field is one block of all outer sites. Spin components
//! follow the internal gamma basis of [`crate::dirac::gamma`]. The BLAS-like operations treat
//! any field as one vector; their reductions run over every rank of the field's process grid
//! and are bit-identical for any thread count and any grid.

use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::{ColorVector, LANES, PackedMatrix, Real};
use crate::checkerboard::Checkerboard;
use crate::comm::Comm;
use crate::geometry::Lattice;
use crate::parallel::{exact_sums_mut, global_sums};
use crate::rng::{Purpose, StreamKey};
use num_complex::Complex64;
use rayon::prelude::*;
use std::sync::Arc;

/// Fewest packed spinors a thread takes in the BLAS loops and the hopping term: smaller
/// pieces cost more in scheduling than they save.
pub const MIN_CHUNK: usize = 64;

/// The sites a field covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sites {
    /// The sites of one parity (0 even, 1 odd): a half field (even/odd layout).
    Parity(usize),
    /// All sites: a full field (in the even/odd layout the even half first).
    All,
}

/// The packed colour vector of group G in precision R.
pub type Color<G, R = f64> = <<G as PackedGroup>::Packed<R> as PackedMatrix>::Vector;

/// The packed spinor of LANES sites: S spin components.
pub type Spinor<G, const S: usize, R = f64> = [Color<G, R>; S];

/// The even and the odd half of a full field, mutable.
pub type HalvesMut<'a, G, const S: usize, R> = (&'a mut [Spinor<G, S, R>], &'a mut [Spinor<G, S, R>]);

/// A fermion field in precision R: packed spinors of one parity (half field) or of both (full
/// field, even half first).
#[derive(Clone, Debug, PartialEq)]
pub struct SpinorField<G: PackedGroup, const S: usize, R: Real = f64> {
    /// The block the field lives on (its sums run over every rank of its process grid).
    lattice: Arc<Lattice>,
    data: Vec<Spinor<G, S, R>>,
}

impl<G: PackedGroup, const S: usize, R: Real> SpinorField<G, S, R> {
    /// A zero field of `len` packed spinors (half_outer for a half field, full_len for a
    /// full one).
    pub fn zeros(lattice: &Arc<Lattice>, len: usize) -> Self {
        SpinorField { lattice: lattice.clone(), data: vec![[Color::<G, R>::zero(); S]; len] }
    }

    /// A zero field of the same lattice and length.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(&self.lattice, self.len())
    }

    /// A zero half field (even/odd layout).
    pub fn half(cb: &Checkerboard) -> Self {
        Self::zeros(cb.lattice(), cb.half_outer())
    }

    /// A zero full field.
    pub fn full(cb: &Checkerboard) -> Self {
        Self::zeros(cb.lattice(), cb.full_len())
    }

    /// Gaussian noise with <|eta|^2> = 1 per complex component (real and imaginary parts
    /// N(0, 1/2)) on `sites`, from the site streams of `key`; zero on the boundary slices of a
    /// lattice open in time, where quark fields vanish (drawn and discarded there, so that the
    /// other sites get the values they get on a periodic lattice).
    pub fn gaussian(cb: &Checkerboard, sites: Sites, key: &StreamKey) -> Self {
        let mut f = Self::zeros(
            cb.lattice(),
            match sites {
                Sites::Parity(_) => cb.half_outer(),
                Sites::All => cb.full_len(),
            },
        );
        let first = cb.block_len(0);
        let lattice = cb.lattice();
        let colors = Color::<G, R>::COLORS;
        let scale = std::f64::consts::FRAC_1_SQRT_2;
        f.data.par_iter_mut().enumerate().for_each(|(k, spinor)| {
            let (p, i) = match sites {
                Sites::Parity(p) => (p, k),
                Sites::All if k < first => (0, k),
                Sites::All => (1, k - first),
            };
            let outer = cb.outer(p, i);
            for lane in 0..LANES {
                let mut rng = key.stream(lattice.global_site(lattice.site_of_packed(outer, lane)));
                let vanishes = lattice.is_boundary_time(lattice.time_of_lane(outer, lane));
                for component in spinor.iter_mut() {
                    for c in 0..colors {
                        let z = Complex64::new(rng.normal(), rng.normal()) * scale;
                        component.set(lane, c, if vanishes { Complex64::new(0.0, 0.0) } else { z });
                    }
                }
            }
        });
        f
    }

    /// A full field of Gaussian noise (see [`SpinorField::gaussian`]).
    pub fn gaussian_full(cb: &Checkerboard, seed: u64, purpose: Purpose, update: u64) -> Self {
        Self::gaussian(cb, Sites::All, &StreamKey::new(seed, purpose, update))
    }

    /// The block the field lives on.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// The ranks the field's sums run over.
    fn comm(&self) -> &dyn Comm {
        self.lattice.comm().as_ref()
    }

    /// Number of packed spinors.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for a field of no sites.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The packed spinors.
    pub fn data(&self) -> &[Spinor<G, S, R>] {
        &self.data
    }

    /// The packed spinors, mutable.
    pub fn data_mut(&mut self) -> &mut [Spinor<G, S, R>] {
        &mut self.data
    }

    /// The even (p = 0) or odd (p = 1) half of a full field (even/odd layout).
    pub fn part(&self, p: usize) -> &[Spinor<G, S, R>] {
        let h = self.data.len() / 2;
        &self.data[p * h..(p + 1) * h]
    }

    /// Block p of a full field in the layout of `cb`: the half of parity p (even/odd) or the
    /// whole field (natural, p = 0).
    pub fn block(&self, cb: &Checkerboard, p: usize) -> &[Spinor<G, S, R>] {
        let start = cb.field_index(p, 0);
        &self.data[start..start + cb.block_len(p)]
    }

    /// The half of parity p of a full field as a half field (even/odd layout).
    pub fn half_of(&self, p: usize) -> Self {
        SpinorField { lattice: self.lattice.clone(), data: self.part(p).to_vec() }
    }

    /// The full field of an even and an odd half field (even/odd layout).
    pub fn from_halves(even: &Self, odd: &Self) -> Self {
        SpinorField { lattice: even.lattice.clone(), data: [even.data(), odd.data()].concat() }
    }

    /// Both halves of a full field, mutable (even/odd layout).
    pub fn parts_mut(&mut self) -> HalvesMut<'_, G, S, R> {
        let h = self.data.len() / 2;
        self.data.split_at_mut(h)
    }

    /// Component (spin, colour) at a lexicographic site of a full field.
    pub fn get(&self, cb: &Checkerboard, site: usize, spin: usize, color: usize) -> Complex64 {
        let (p, i, lane) = cb.locate(site);
        self.data[cb.field_index(p, i)][spin].get(lane, color)
    }

    /// Sets component (spin, colour) at a lexicographic site of a full field.
    pub fn set(&mut self, cb: &Checkerboard, site: usize, spin: usize, color: usize, z: Complex64) {
        let (p, i, lane) = cb.locate(site);
        self.data[cb.field_index(p, i)][spin].set(lane, color, z);
    }

    /// <self, x> = sum conj(self) x: per site the sum over spin and colour, the sites summed
    /// exactly.
    pub fn dot(&self, x: &Self) -> Complex64 {
        let [re, im] = global_sums(self.comm(), self.data.len(), |k, [re, im]| {
            let (mut site_re, mut site_im) = ([0.0; LANES], [0.0; LANES]);
            for (a, b) in self.data[k].iter().zip(&x.data[k]) {
                let (r, i) = a.dot_lanes(b);
                for l in 0..LANES {
                    site_re[l] += r[l].to_f64();
                    site_im[l] += i[l].to_f64();
                }
            }
            re.add_all(&site_re);
            im.add_all(&site_im);
        });
        Complex64::new(re.value(), im.value())
    }

    /// |self|^2, summed like [`SpinorField::dot`].
    pub fn norm_sqr(&self) -> f64 {
        let [sum] = global_sums(self.comm(), self.data.len(), |k, [sum]| {
            let mut site = [0.0; LANES];
            for a in &self.data[k] {
                let (r, _) = a.dot_lanes(a);
                for l in 0..LANES {
                    site[l] += r[l].to_f64();
                }
            }
            sum.add_all(&site);
        });
        sum.value()
    }

    /// Re <self, x>, summed like [`SpinorField::dot`] (the same bits as its real part).
    pub fn re_dot(&self, x: &Self) -> f64 {
        let [re] = global_sums(self.comm(), self.data.len(), |k, [re]| {
            let mut site = [0.0; LANES];
            for (a, b) in self.data[k].iter().zip(&x.data[k]) {
                let (r, _) = a.dot_lanes(b);
                for l in 0..LANES {
                    site[l] += r[l].to_f64();
                }
            }
            re.add_all(&site);
        });
        re.value()
    }

    /// self <- self + a x and the new |self|^2 in one pass (the same bits as
    /// [`SpinorField::axpy`] followed by [`SpinorField::norm_sqr`]).
    pub fn axpy_norm_sqr(&mut self, a: Complex64, x: &Self) -> f64 {
        let comm = self.lattice.comm().clone();
        let mut sums = exact_sums_mut(&mut self.data, |k, y, [sum]| {
            let mut site = [0.0; LANES];
            for (yc, xc) in y.iter_mut().zip(&x.data[k]) {
                *yc = yc.add_scaled(a, xc);
                let (r, _) = yc.dot_lanes(yc);
                for l in 0..LANES {
                    site[l] += r[l].to_f64();
                }
            }
            sum.add_all(&site);
        });
        comm.sum_exact(&mut sums);
        sums[0].value()
    }

    /// self <- self + a x.
    pub fn axpy(&mut self, a: Complex64, x: &Self) {
        self.data.par_iter_mut().with_min_len(MIN_CHUNK).zip(&x.data).for_each(|(y, x)| {
            for (yc, xc) in y.iter_mut().zip(x) {
                *yc = yc.add_scaled(a, xc);
            }
        });
    }

    /// self <- x + a self.
    pub fn xpay(&mut self, x: &Self, a: Complex64) {
        self.data.par_iter_mut().with_min_len(MIN_CHUNK).zip(&x.data).for_each(|(y, x)| {
            for (yc, xc) in y.iter_mut().zip(x) {
                *yc = xc.add_scaled(a, yc);
            }
        });
    }

    /// self <- a self.
    pub fn scale(&mut self, a: Complex64) {
        let zero = Color::<G, R>::zero();
        self.data.par_iter_mut().with_min_len(MIN_CHUNK).for_each(|y| {
            for yc in y.iter_mut() {
                *yc = zero.add_scaled(a, yc);
            }
        });
    }

    /// The field rounded to precision T (the f32 copies of mixed-precision solves).
    pub fn convert<T: Real>(&self) -> SpinorField<G, S, T> {
        let colors = Color::<G, R>::COLORS;
        let mut out = SpinorField::<G, S, T>::zeros(&self.lattice, self.len());
        out.data.par_iter_mut().with_min_len(MIN_CHUNK).zip(&self.data).for_each(|(y, x)| {
            for (yc, xc) in y.iter_mut().zip(x) {
                for lane in 0..LANES {
                    for c in 0..colors {
                        yc.set(lane, c, xc.get(lane, c));
                    }
                }
            }
        });
        out
    }

    /// self <- gamma5 self (internal chiral basis: the lower S/2 components change sign).
    pub fn gamma5(&mut self) {
        self.data.par_iter_mut().with_min_len(MIN_CHUNK).for_each(|y| {
            for yc in &mut y[S / 2..] {
                *yc = yc.neg();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::Su3;
    use std::sync::Arc;

    #[test]
    fn blas_and_noise() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 8]).unwrap());
        let cb = Checkerboard::new(lat.clone()).unwrap();
        let a = SpinorField::<Su3, 4>::gaussian_full(&cb, 1, Purpose::Test, 0);
        let b = SpinorField::<Su3, 4>::gaussian_full(&cb, 2, Purpose::Test, 0);
        // <|eta|^2> = 1 per complex component: 12 per site, standard error sqrt(12 V) / (12 V)
        let n = (12 * lat.volume()) as f64;
        assert!((a.norm_sqr() / n - 1.0).abs() < 5.0 / n.sqrt());
        // dot against per-site sums
        let mut reference = Complex64::new(0.0, 0.0);
        for site in 0..lat.volume() {
            for s in 0..4 {
                for c in 0..3 {
                    reference += a.get(&cb, site, s, c).conj() * b.get(&cb, site, s, c);
                }
            }
        }
        assert!((a.dot(&b) - reference).norm() < 1e-9);
        assert!((a.dot(&a).re - a.norm_sqr()).abs() < 1e-9);
        // the fused and partial reductions give the bits of the plain ones
        assert_eq!(a.re_dot(&b).to_bits(), a.dot(&b).re.to_bits());
        let (mut fused, mut plain) = (a.clone(), a.clone());
        let fused_norm = fused.axpy_norm_sqr(Complex64::new(-0.3, 0.0), &b);
        plain.axpy(Complex64::new(-0.3, 0.0), &b);
        assert_eq!(fused, plain);
        assert_eq!(fused_norm.to_bits(), plain.norm_sqr().to_bits());
        let z = Complex64::new(0.5, -2.0);
        let mut c = a.clone();
        c.axpy(z, &b);
        let mut d = b.clone();
        d.scale(z);
        d.xpay(&a, Complex64::new(1.0, 0.0));
        assert!((c.dot(&c) - d.dot(&c)).norm() < 1e-8 * c.norm_sqr());
        let mut g = a.clone();
        g.gamma5();
        assert_eq!(g.get(&cb, 5, 1, 2), a.get(&cb, 5, 1, 2));
        assert_eq!(g.get(&cb, 5, 3, 2), -a.get(&cb, 5, 3, 2));
    }
}
