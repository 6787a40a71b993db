//! The site-local part A = 1 + C of the clover operator ([`super`]) on one gauge field: per
//! site and chirality a Hermitian block of side (S/2) N, its inverse and ln det A.
//!
//! Storage: the blocks of LANES sites are packed lane-wise like the spinors they act on, in a
//! full field's order (position j of a full field holds the blocks of the LANES sites of its
//! packed spinor, chirality 0 then 1). Within a chirality the index is (spin s within the
//! chirality) N + colour, and a block is stored as its N x N colour blocks B_st with s <= t,
//! packed like links ([`PackedGroup::Packed`]; B_ts = B_st^dagger is not stored), so that it
//! is applied with the colour mat-vec of the hopping term: (B v)_s = sum_t B_st v_t. Each is
//! kept in f64 and rounded to f32 for the operator in f32.
//!
//! The field strength F_{mu nu}(x) is built from the packed links (all lanes at once); the
//! blocks are inverted lane-parallel by Gauss-Jordan elimination without pivoting, and a lane
//! whose pivot falls below [`PIVOT_FLOOR`] (a block far from the identity) is inverted again
//! alone with partial pivoting. What a site gets depends only on its own links, never on the
//! sites sharing its lanes, so the term is the same on every process grid bit for bit.

use super::super::gamma::{SpinMatrix, gamma};
use super::super::wilson::Boundary;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::{ColorVector, LANES, Lanes, PackedMatrix, Real};
use crate::checkerboard::Checkerboard;
use crate::comm::agreed;
use crate::error::{Error, Result};
use crate::exact_sum::ExactSum;
use crate::field::GaugeField;
use crate::geometry::PackedSite;
use crate::group::LinkMatrix;
use crate::loops::packed_clover_leaves;
use crate::spinor::{Color, MIN_CHUNK, Spinor};
use num_complex::Complex64;
use rayon::prelude::*;

/// Pivots of the lane-parallel elimination smaller than this in modulus send the lane to the
/// pivoted elimination. A = 1 + C has pivots near 1 on smooth fields, where elimination without
/// pivoting is accurate (exactly stable for positive blocks); rough fields can have small ones.
const PIVOT_FLOOR: f64 = 0.25;

/// The clover term of one gauge field for group G (module docs): A = 1 + C and A^{-1} per
/// site and chirality, colour blocks in a full field's order, and ln det A per parity.
#[derive(Debug)]
pub struct CloverTerm<G: PackedGroup> {
    /// S/2, the spins of a chirality.
    spins: usize,
    /// A = 1 + C: per position of a full field and chirality the colour blocks B_st, s <= t.
    blocks: Vec<G::Packed<f64>>,
    /// A^{-1}, the same layout.
    inverse: Vec<G::Packed<f64>>,
    /// A and A^{-1} rounded to f32, for the operator in f32.
    single: [Vec<G::Packed<f32>>; 2],
    /// Sum over the sites of parity p of ln det A(x) (real: A is Hermitian), p = 0, 1, exact
    /// (not rounded, so that the sums of the ranks add up to the whole lattice's bit for bit).
    log_det: [ExactSum; 2],
}

/// Why a block of A could not be inverted: it is (numerically) singular.
fn singular(site: usize) -> Error {
    Error::Config(format!(
        "clover term: 1 + C is singular at site {site} (c_sw or kappa too large for this gauge field)"
    ))
}

/// The colour blocks B_st, s <= t, of a chirality of `spins` spins.
fn colour_blocks(spins: usize) -> usize {
    spins * (spins + 1) / 2
}

/// The position of B_st, s <= t, among the colour blocks of a chirality of `spins` spins.
fn colour_block(spins: usize, s: usize, t: usize) -> usize {
    s * spins - s * s.saturating_sub(1) / 2 + t - s
}

/// The planes (mu, nu), mu < nu, of a `d`-dimensional lattice in the order of the clover
/// term's sums, and gamma_mu gamma_nu for each (dense, `spins` x `spins`).
pub(super) fn planes(spins: usize, d: usize) -> (Vec<(usize, usize)>, Vec<SpinMatrix>) {
    let pairs: Vec<(usize, usize)> = (0..d).flat_map(|mu| (mu + 1..d).map(move |nu| (mu, nu))).collect();
    let products = pairs
        .iter()
        .map(|&(mu, nu)| {
            let (a, b) = (gamma(spins, mu), gamma(spins, nu));
            (0..spins)
                .map(|r| (0..spins).map(|c| (0..spins).map(|k| a[r][k] * b[k][c]).sum()).collect())
                .collect()
        })
        .collect();
    (pairs, products)
}

/// A dense complex matrix of LANES sites, row-major, each entry its real and imaginary lane
/// vectors.
type LaneMatrix = Vec<(Lanes, Lanes)>;

/// The inverse of every lane of the dense `n` x `n` matrix `a` by Gauss-Jordan elimination
/// without pivoting, and ln |det| per lane; lanes with a pivot below [`PIVOT_FLOOR`] are marked
/// in the returned mask (their results are to be discarded).
fn invert_lanes(a: &LaneMatrix, n: usize) -> (LaneMatrix, Lanes, [bool; LANES]) {
    let w = 2 * n;
    let zero = ([0.0; LANES], [0.0; LANES]);
    // [a | 1], row-major with rows of 2n entries
    let mut m = vec![zero; n * w];
    for r in 0..n {
        m[r * w..r * w + n].copy_from_slice(&a[r * n..(r + 1) * n]);
        m[r * w + n + r].0 = [1.0; LANES];
    }
    let (mut ln_det, mut small) = ([0.0; LANES], [false; LANES]);
    for col in 0..n {
        let (pr, pi) = m[col * w + col];
        let (mut sr, mut si) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            let norm = pr[l] * pr[l] + pi[l] * pi[l];
            // NaN counts as small
            small[l] |= norm.partial_cmp(&(PIVOT_FLOOR * PIVOT_FLOOR)).is_none_or(|o| o.is_lt());
            ln_det[l] += 0.5 * norm.ln();
            (sr[l], si[l]) = (pr[l] / norm, -pi[l] / norm);
        }
        for k in col..w {
            let (er, ei) = m[col * w + k];
            m[col * w + k] = (
                std::array::from_fn(|l| er[l] * sr[l] - ei[l] * si[l]),
                std::array::from_fn(|l| er[l] * si[l] + ei[l] * sr[l]),
            );
        }
        for r in (0..n).filter(|&r| r != col) {
            let (fr, fi) = m[r * w + col];
            for k in col..w {
                let ((pr, pi), (er, ei)) = (m[col * w + k], m[r * w + k]);
                m[r * w + k] = (
                    std::array::from_fn(|l| er[l] - (fr[l] * pr[l] - fi[l] * pi[l])),
                    std::array::from_fn(|l| ei[l] - (fr[l] * pi[l] + fi[l] * pr[l])),
                );
            }
        }
    }
    let inverse = (0..n * n).map(|k| m[(k / n) * w + n + k % n]).collect();
    (inverse, ln_det, small)
}

/// The inverse of the `n` x `n` row-major matrix `a` and ln |det a| (Gauss-Jordan elimination
/// with partial pivoting); None when a pivot vanishes.
fn invert_pivoted(a: &[Complex64], n: usize) -> Option<(Vec<Complex64>, f64)> {
    let mut m = a.to_vec();
    let mut inv = vec![Complex64::new(0.0, 0.0); n * n];
    (0..n).for_each(|k| inv[k * n + k] = Complex64::new(1.0, 0.0));
    let mut ln_det = 0.0;
    for col in 0..n {
        let pivot = (col..n).max_by(|&r, &s| m[r * n + col].norm().total_cmp(&m[s * n + col].norm()))?;
        let p = m[pivot * n + col];
        if p.norm() == 0.0 || !p.norm().is_finite() {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                m.swap(pivot * n + k, col * n + k);
                inv.swap(pivot * n + k, col * n + k);
            }
        }
        ln_det += p.norm().ln();
        let scale = p.inv();
        for k in 0..n {
            m[col * n + k] *= scale;
            inv[col * n + k] *= scale;
        }
        for r in (0..n).filter(|&r| r != col) {
            let f = m[r * n + col];
            if f != Complex64::new(0.0, 0.0) {
                for k in 0..n {
                    let (mk, ik) = (m[col * n + k], inv[col * n + k]);
                    m[r * n + k] -= f * mk;
                    inv[r * n + k] -= f * ik;
                }
            }
        }
    }
    Some((inv, ln_det))
}

/// Writes the colour blocks B_st, s <= t, of the dense matrix `a` (side `spins` N) into `out`,
/// lane by lane.
fn pack_colour_blocks<G: PackedGroup>(a: &LaneMatrix, spins: usize, out: &mut [G::Packed<f64>]) {
    let (n, side) = (G::NC, spins * G::NC);
    let mut reals = vec![0.0; 2 * n * n];
    for (s, t) in (0..spins).flat_map(|s| (s..spins).map(move |t| (s, t))) {
        let block = &mut out[colour_block(spins, s, t)];
        for l in 0..LANES {
            for (x, y) in (0..n).flat_map(|x| (0..n).map(move |y| (x, y))) {
                let (re, im) = a[(s * n + x) * side + t * n + y];
                (reals[2 * (x * n + y)], reals[2 * (x * n + y) + 1]) = (re[l], im[l]);
            }
            G::set_lane(block, l, &G::Elem::read_reals(&reals));
        }
    }
}

impl<G: PackedGroup> CloverTerm<G> {
    /// The clover term of `u` on the layout `cb` with hopping parameter `kappa` and clover
    /// coefficient `csw` ([`super`]), for fields of S spin components, with `boundary` in time:
    /// open boundaries make C zero on the boundary slices x0 = 0 and N0-1 (A = 1 where the
    /// quark fields vanish, as openQCD's `sw_term` sets it) and add 2 kappa (c_F - 1) to C at
    /// x0 = 1 and N0-2. An error when a block of 1 + C is singular, on every rank of a process
    /// grid (collective).
    pub fn new<const S: usize>(
        u: &GaugeField<G>,
        cb: &Checkerboard,
        kappa: f64,
        csw: f64,
        boundary: Boundary,
    ) -> Result<Self> {
        u.assert_halo_fresh();
        let lattice = cb.lattice();
        let (h, n) = (S / 2, G::NC);
        let side = h * n;
        let block_len = side * side;
        let d = lattice.ndim();
        let (pairs, products) = planes(S, d);
        let nt = lattice.global_dims()[d - 1];
        // what C gets on its diagonal at time x0 (c_F's term next to an open boundary)
        let shift = |x0: usize| match boundary {
            Boundary::Open { c_f } if x0 == 1 || x0 + 2 == nt => 2.0 * kappa * (c_f - 1.0),
            _ => 0.0,
        };
        let first_block = cb.block_len(0);
        let stored = 2 * colour_blocks(h);
        let mut blocks = vec![G::Packed::<f64>::zero(); cb.full_len() * stored];
        let mut inverse = blocks.clone();
        let per_position =
            |j: usize, a_out: &mut [G::Packed<f64>], inv_out: &mut [G::Packed<f64>]| -> Result<Lanes> {
                let (p, i) = (j / first_block, j % first_block);
                let outer = cb.outer(p, i);
                // F_{mu nu} of each plane, dense row-major, per lane
                let mut reals = vec![0.0; 2 * n * n];
                let strengths: Vec<Vec<(Lanes, Lanes)>> = pairs
                    .iter()
                    .map(|&(mu, nu)| {
                        let q = packed_clover_leaves(u, PackedSite { outer, mask: 0 }, mu, nu);
                        let mut f = vec![([0.0; LANES], [0.0; LANES]); n * n];
                        for l in 0..LANES {
                            let q = G::lane(&q, l);
                            q.sub(&q.adj()).scale(0.125).write_reals(&mut reals);
                            for (e, z) in f.iter_mut().zip(reals.chunks_exact(2)) {
                                (e.0[l], e.1[l]) = (z[0], z[1]);
                            }
                        }
                        f
                    })
                    .collect();
                let times: [usize; LANES] = std::array::from_fn(|l| lattice.time_of_lane(outer, l));
                let inside: Lanes = times.map(|x0| f64::from(u8::from(!lattice.is_boundary_time(x0))));
                let diagonal: Lanes = std::array::from_fn(|l| 1.0 + inside[l] * shift(times[l]));
                let mut ln_det = [0.0; LANES];
                for chi in 0..2 {
                    // A = 1 + shift - kappa c_sw sum_k (gamma_mu gamma_nu)_chi (x) F_k, 1 on the boundary
                    let mut a = vec![([0.0; LANES], [0.0; LANES]); block_len];
                    for (f, g) in strengths.iter().zip(&products) {
                        for (r, c) in (0..h).flat_map(|r| (0..h).map(move |c| (r, c))) {
                            let z = -kappa * csw * g[chi * h + r][chi * h + c];
                            if z == Complex64::new(0.0, 0.0) {
                                continue;
                            }
                            for (x, y) in (0..n).flat_map(|x| (0..n).map(move |y| (x, y))) {
                                let (fr, fi) = f[x * n + y];
                                let e = &mut a[(r * n + x) * side + c * n + y];
                                for l in 0..LANES {
                                    e.0[l] += inside[l] * (z.re * fr[l] - z.im * fi[l]);
                                    e.1[l] += inside[l] * (z.re * fi[l] + z.im * fr[l]);
                                }
                            }
                        }
                    }
                    for k in 0..side {
                        let e = &mut a[k * side + k].0;
                        (0..LANES).for_each(|l| e[l] += diagonal[l]);
                    }
                    let at = chi * stored / 2..(chi + 1) * stored / 2;
                    pack_colour_blocks::<G>(&a, h, &mut a_out[at.clone()]);
                    let (mut inv, lanes_ln_det, small) = invert_lanes(&a, side);
                    for l in (0..LANES).filter(|&l| small[l]) {
                        let dense: Vec<Complex64> =
                            a.iter().map(|(re, im)| Complex64::new(re[l], im[l])).collect();
                        let site = lattice.global_site(lattice.site_of_packed(outer, l));
                        let (lane_inverse, lane_ln_det) =
                            invert_pivoted(&dense, side).ok_or_else(|| singular(site))?;
                        for (e, z) in inv.iter_mut().zip(lane_inverse) {
                            (e.0[l], e.1[l]) = (z.re, z.im);
                        }
                        ln_det[l] += lane_ln_det;
                    }
                    for l in (0..LANES).filter(|&l| !small[l]) {
                        ln_det[l] += lanes_ln_det[l];
                    }
                    pack_colour_blocks::<G>(&inv, h, &mut inv_out[at]);
                }
                Ok(ln_det)
            };
        let ln_dets: Result<Vec<Lanes>> = blocks
            .par_chunks_mut(stored)
            .zip(inverse.par_chunks_mut(stored))
            .enumerate()
            .map(|(j, (a_out, inv_out))| per_position(j, a_out, inv_out))
            .collect();
        // a singular block on one rank fails every rank, before any goes on to an exchange
        let ln_dets = agreed(lattice.comm().as_ref(), ln_dets)?;
        let mut log_det = [ExactSum::default(), ExactSum::default()];
        for (j, ln_det) in ln_dets.iter().enumerate() {
            let outer = cb.outer(j / first_block, j % first_block);
            for (l, &v) in ln_det.iter().enumerate() {
                log_det[lattice.parity(lattice.site_of_packed(outer, l)) as usize].add(v);
            }
        }
        let round = |b: &[G::Packed<f64>]| b.par_iter().map(G::packed_in::<f32>).collect();
        let single = [round(&blocks), round(&inverse)];
        Ok(CloverTerm { spins: h, blocks, inverse, single, log_det })
    }

    /// ln det A_pp summed over the sites of parity p of this rank's block (A Hermitian: the
    /// determinant is real; the blocks' determinants are positive for fields near unit links),
    /// as an exact sum: add the ranks' with [`crate::comm::Comm::sum_exact`], then round.
    pub fn log_det(&self, p: usize) -> ExactSum {
        self.log_det[p]
    }

    /// The dense block of A (`inverse` false) or A^{-1} of chirality `chi` at position `j` of a
    /// full field as [`CloverTerm::multiply`] applies it: side (S/2) N, row-major, each entry its
    /// real and imaginary lane vectors.
    pub(super) fn dense_block(&self, inverse: bool, j: usize, chi: usize) -> Vec<(Lanes, Lanes)> {
        let (h, n) = (self.spins, G::NC);
        let side = h * n;
        let stored = colour_blocks(h);
        let blocks = &[&self.blocks, &self.inverse][usize::from(inverse)][(2 * j + chi) * stored..][..stored];
        let mut dense = vec![([0.0; LANES], [0.0; LANES]); side * side];
        let mut reals = vec![0.0; 2 * n * n];
        for (s, t) in (0..h).flat_map(|s| (s..h).map(move |t| (s, t))) {
            for l in 0..LANES {
                G::lane(&blocks[colour_block(h, s, t)], l).write_reals(&mut reals);
                for (x, y) in (0..n).flat_map(|x| (0..n).map(move |y| (x, y))) {
                    let (re, im) = (reals[2 * (x * n + y)], reals[2 * (x * n + y) + 1]);
                    let (upper, lower) = ((s * n + x) * side + t * n + y, (t * n + y) * side + s * n + x);
                    (dense[upper].0[l], dense[upper].1[l]) = (re, im);
                    if s < t {
                        (dense[lower].0[l], dense[lower].1[l]) = (re, -im);
                    }
                }
            }
        }
        dense
    }

    /// A (`inverse` false) or A^{-1} stored in precision R.
    fn stored<R: Real>(&self, inverse: bool) -> &[G::Packed<R>] {
        let double: &dyn std::any::Any = if inverse { &self.inverse } else { &self.blocks };
        let single: &dyn std::any::Any = &self.single[usize::from(inverse)];
        let stored = double.downcast_ref::<Vec<G::Packed<R>>>().or_else(|| single.downcast_ref());
        stored.expect("blocks are stored in f64 and f32")
    }

    /// y = A x (`inverse` false) or y = A^{-1} x on the packed spinors `x`, the positions of a
    /// full field from `first` on, computed in the fields' precision.
    pub(super) fn multiply<const S: usize, R: Real>(
        &self,
        inverse: bool,
        first: usize,
        x: &[Spinor<G, S, R>],
        y: &mut [Spinor<G, S, R>],
    ) {
        let blocks = self.stored::<R>(inverse);
        let h = S / 2;
        let stored = colour_blocks(h);
        y.par_chunks_mut(MIN_CHUNK).zip(x.par_chunks(MIN_CHUNK)).enumerate().for_each(|(chunk, (ys, xs))| {
            for (k, (y, x)) in ys.iter_mut().zip(xs).enumerate() {
                let j = first + chunk * MIN_CHUNK + k;
                for chi in 0..2 {
                    let b = &blocks[(2 * j + chi) * stored..][..stored];
                    let (x, y) = (&x[chi * h..][..h], &mut y[chi * h..][..h]);
                    for (s, y) in y.iter_mut().enumerate() {
                        *y = (0..h).fold(Color::<G, R>::zero(), |acc, t| {
                            acc.add(&if s <= t {
                                G::Packed::<R>::mat_vec::<false>((&b[colour_block(h, s, t)], 0), &x[t])
                            } else {
                                G::Packed::<R>::mat_vec::<true>((&b[colour_block(h, t, s)], 0), &x[t])
                            })
                        });
                    }
                }
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

    /// The dense block of chirality `chi` at position `j` of a term's A (or A^{-1}), lane l.
    fn dense(term: &CloverTerm<Su3>, inverse: bool, j: usize, chi: usize, l: usize) -> Vec<Complex64> {
        term.dense_block(inverse, j, chi).iter().map(|(re, im)| Complex64::new(re[l], im[l])).collect()
    }

    /// On hot SU(3) fields, smooth (c_sw 1.3: pivots near 1) and rough (c_sw 6: some lanes take
    /// the pivoted elimination), A^{-1} A = 1 on every site and chirality to round-off (eps
    /// times the condition number, with 1e-13 for eps), and ln det A per
    /// parity is the sum of the pivoted elimination's ln |det| of every block.
    #[test]
    fn inverses_and_log_determinants_of_smooth_and_rough_fields() {
        let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
        let u = GaugeField::<Su3>::hot(lat.clone(), 7);
        let cb = Checkerboard::new(lat.clone()).unwrap();
        for (csw, rough) in [(1.3, false), (6.0, true)] {
            let term = CloverTerm::<Su3>::new::<4>(&u, &cb, 0.12, csw, Boundary::ANTIPERIODIC).unwrap();
            let side = 6;
            let (mut ln_det, mut pivoted) = ([0.0; 2], 0);
            for j in 0..cb.full_len() {
                let outer = cb.outer(j / cb.block_len(0), j % cb.block_len(0));
                for (chi, l) in (0..2).flat_map(|chi| (0..LANES).map(move |l| (chi, l))) {
                    let (a, inv) = (dense(&term, false, j, chi, l), dense(&term, true, j, chi, l));
                    // round-off of an inversion: eps times the condition number
                    let norm = |m: &[Complex64]| m.iter().map(|z| z.norm_sqr()).sum::<f64>().sqrt();
                    let tolerance = 1e-13 * norm(&a) * norm(&inv);
                    for (r, c) in (0..side).flat_map(|r| (0..side).map(move |c| (r, c))) {
                        let z: Complex64 = (0..side).map(|k| inv[r * side + k] * a[k * side + c]).sum();
                        let want = if r == c { 1.0 } else { 0.0 };
                        assert!((z - want).norm() < tolerance, "c_sw {csw}: (A^-1 A)_{r}{c} = {z}");
                    }
                    let parity = lat.parity(lat.site_of_packed(outer, l)) as usize;
                    ln_det[parity] += invert_pivoted(&a, side).unwrap().1;
                    let lanes: LaneMatrix =
                        a.iter().map(|z| ([z.re; LANES], [z.im; LANES])).collect::<Vec<_>>();
                    pivoted += usize::from(invert_lanes(&lanes, side).2[0]);
                }
            }
            for (p, want) in ln_det.into_iter().enumerate() {
                let got = term.log_det(p).value();
                assert!((got - want).abs() < 1e-10 * want.abs().max(1.0), "{got} against {want}");
            }
            assert_eq!(pivoted > 0, rough, "c_sw {csw}: {pivoted} blocks pivoted");
        }
    }
}
