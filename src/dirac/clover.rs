//! The clover (Sheikholeslami-Wohlert) improved Wilson-Dirac operator
//! M = 1 - kappa H + C, with the Wilson hopping term H of [`super::wilson`] and the site-local
//! clover term
//!   C(x) = (i/2) kappa c_sw sum_{mu, nu} sigma_{mu nu} F_{mu nu}(x)
//!        = -kappa c_sw sum_{mu < nu} gamma_mu gamma_nu F_{mu nu}(x),
//! sigma_{mu nu} = (i/2) [gamma_mu, gamma_nu], and the clover-leaf field strength
//! F_{mu nu}(x) = (1/8) (Q_{mu nu}(x) - Q_{mu nu}(x)^dagger), Q the sum of the four plaquettes
//! around x in the (mu, nu) plane, all oriented mu then nu ([`crate::loops::clover_leaves`]; no
//! trace is subtracted). This is openQCD's convention (its sw_term and ftensor modules): M is
//! 2 kappa times openQCD's D_w = m0 + 4 + c_sw (i/4) sum_{mu, nu} sigma_{mu nu} F_{mu nu} -
//! (1/2) H with m0 = 1/(2 kappa) - 4 (in a basis related to openQCD's by the spin map of
//! [`super::gamma`], which carries gamma_mu gamma_nu over direction by direction).
//!
//! C is Hermitian and commutes with gamma5, so in the chiral bases of [`super::gamma`]
//! (gamma5 = diag(1, .., -1, ..)) the diagonal A = 1 + C of M is, per site, two Hermitian
//! blocks of (S/2 N) x (S/2 N), one per chirality: A_0 = 1 - kappa c_sw sum (A_mu A_nu^dagger)
//! (x) F_{mu nu} and A_1 = 1 - kappa c_sw sum (A_mu^dagger A_nu) (x) F_{mu nu}, with
//! gamma_mu = [[0, A_mu], [A_mu^dagger, 0]]. M stays gamma5-Hermitian, and in even/odd blocks
//! M = [[A_ee, -kappa H_eo], [-kappa H_oe, A_oo]] with det M = det A_oo det M_hat,
//! M_hat = A_ee - kappa^2 H_eo A_oo^{-1} H_oe (the conventions of [`super::operator`]).
//!
//! Open boundaries ([`Boundary::Open`]): C vanishes on the boundary slices x0 = 0 and N0-1
//! (where the quark fields do) and gets 2 kappa (c_F - 1) on its diagonal at x0 = 1 and N0-2.
//!
//! On a block of a cut lattice the leaves reach into the gauge field's halo, and the force
//! reads the insertions Z_{mu nu} of the corners on neighbouring blocks from a halo of its own
//! (exchanged like the links), so every result equals the whole lattice's bit for bit.

use super::gamma::{SpinMatrix, gamma};
use super::operator::{Discretization, FermionMatrix, FermionOperator};
use super::wilson::{Boundary, WilsonOperator};
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::halo::{Extended, Whole, exchange};
use crate::backend::cpu::packed::{ColorVector, LANES, Real};
use crate::checkerboard::Checkerboard;
use crate::error::{Error, Result};
use crate::exact_sum::ExactSum;
use crate::field::{GaugeField, MomentumField};
use crate::group::LinkMatrix;
use crate::loops::{Step, clover_leaves, path_product};
use crate::spinor::{MIN_CHUNK, Spinor, SpinorField};
use num_complex::Complex64;
use rayon::prelude::*;
use std::sync::Arc;

/// Clover-improved Wilson fermions with coefficient c_sw on the fields of a checkerboard, with
/// a boundary phase in time: the [`Discretization`] whose operators are [`CloverOperator`]s.
#[derive(Clone, Debug)]
pub struct Clover {
    cb: Checkerboard,
    boundary: Boundary,
    csw: f64,
}

impl Clover {
    /// Clover fermions with coefficient `csw` on the layout `cb`, `boundary` in time.
    pub fn new(cb: Checkerboard, boundary: Boundary, csw: f64) -> Self {
        Clover { cb, boundary, csw }
    }

    /// The clover coefficient.
    pub fn csw(&self) -> f64 {
        self.csw
    }
}

impl<G: PackedGroup, const S: usize> Discretization<G, S> for Clover {
    type Operator<'a> = CloverOperator<'a, G, S>;

    fn checkerboard(&self) -> &Checkerboard {
        &self.cb
    }

    fn operator<'a>(&'a self, u: &'a GaugeField<G>, kappa: f64) -> Result<CloverOperator<'a, G, S>> {
        CloverOperator::new(u, &self.cb, kappa, self.csw, self.boundary)
    }
}

/// The site-local part of the clover operator on one gauge field: per site and chirality the
/// Hermitian block of C and the inverse of the block of A = 1 + C, dense and row-major in the
/// index (spin within the chirality) N + colour. Blocks are stored in the order of a full
/// field's packed spinors and lanes, so that applying them walks a field in order.
#[derive(Debug)]
pub struct CloverTerm {
    /// (S/2) N, the side of a block.
    side: usize,
    /// C: blocks of `side`^2 entries, two per site.
    term: Vec<Complex64>,
    /// A^{-1} = (1 + C)^{-1}, the same layout.
    inverse: Vec<Complex64>,
    /// sum over the sites of parity p of ln det A(x) (real: A is Hermitian), p = 0, 1, exact
    /// (not rounded, so that the sums of the ranks add up to the whole lattice's bit for bit).
    log_det: [ExactSum; 2],
}

/// Why a block of A could not be inverted: it is (numerically) singular.
fn singular(site: usize) -> Error {
    Error::Config(format!(
        "clover term: 1 + C is singular at site {site} (c_sw or kappa too large for this gauge field)"
    ))
}

impl CloverTerm {
    /// The clover term of `u` on the layout `cb` with hopping parameter `kappa` and clover
    /// coefficient `csw` (module docs), for fields of S spin components, with `boundary` in
    /// time: open boundaries make C zero on the boundary slices x0 = 0 and N0-1 (A = 1 where the
    /// quark fields vanish, as openQCD's `sw_term` sets it) and add 2 kappa (c_F - 1) to C at
    /// x0 = 1 and N0-2. An error when a block of 1 + C is singular.
    pub fn new<G: PackedGroup, const S: usize>(
        u: &GaugeField<G>,
        cb: &Checkerboard,
        kappa: f64,
        csw: f64,
        boundary: Boundary,
    ) -> Result<Self> {
        let lattice = cb.lattice();
        let (h, n) = (S / 2, G::NC);
        let side = h * n;
        let d = lattice.ndim();
        // the chiral blocks of gamma_mu gamma_nu, mu < nu: [pair][chirality][row][column]
        let (pairs, full) = planes(S, d);
        let products: Vec<[Vec<Vec<Complex64>>; 2]> = full
            .iter()
            .map(|g| {
                std::array::from_fn(|chi| {
                    (0..h).map(|r| (0..h).map(|c| g[chi * h + r][chi * h + c]).collect()).collect()
                })
            })
            .collect();
        let block_len = side * side;
        let nt = lattice.global_dims()[d - 1];
        // what C gets on its diagonal at time x0 (c_F's term next to an open boundary)
        let diagonal = |x0: usize| match boundary {
            Boundary::Open { c_f } if x0 == 1 || x0 + 2 == nt => 2.0 * kappa * (c_f - 1.0),
            _ => 0.0,
        };
        let identity: Vec<Complex64> = (0..2 * block_len)
            .map(|k| Complex64::new(f64::from(u8::from(k % block_len % (side + 1) == 0)), 0.0))
            .collect();
        // per site (in parallel): the two blocks of C, their inverses of 1 + C, ln det 1 + C
        let per_site = |site: usize| -> Result<(Vec<Complex64>, Vec<Complex64>, f64)> {
            let x0 = lattice.time_of(site);
            if lattice.is_boundary_time(x0) {
                return Ok((vec![Complex64::new(0.0, 0.0); 2 * block_len], identity.clone(), 0.0));
            }
            let shift = diagonal(x0);
            let mut reals = vec![0.0; 2 * n * n];
            // F_{mu nu}(x) of each pair, dense row-major
            let strengths: Vec<Vec<Complex64>> = pairs
                .iter()
                .map(|&(mu, nu)| {
                    let q = clover_leaves(u, site, mu, nu);
                    q.sub(&q.adj()).scale(0.125).write_reals(&mut reals);
                    reals.chunks_exact(2).map(|z| Complex64::new(z[0], z[1])).collect()
                })
                .collect();
            let mut blocks = vec![Complex64::new(0.0, 0.0); 2 * block_len];
            let mut inverses = Vec::with_capacity(2 * block_len);
            let mut ln_det = 0.0;
            for (chi, block) in blocks.chunks_exact_mut(block_len).enumerate() {
                for (f, g) in strengths.iter().zip(products.iter().map(|pair| &pair[chi])) {
                    for (r, c) in (0..h).flat_map(|r| (0..h).map(move |c| (r, c))) {
                        for (a, b) in (0..n).flat_map(|a| (0..n).map(move |b| (a, b))) {
                            block[(r * n + a) * side + c * n + b] -= kappa * csw * g[r][c] * f[a * n + b];
                        }
                    }
                }
                (0..side).for_each(|k| block[k * side + k] += shift);
                let mut a: Vec<Complex64> = block.to_vec();
                (0..side).for_each(|k| a[k * side + k] += 1.0);
                let (inv, block_ln_det) =
                    invert(&a, side).ok_or_else(|| singular(lattice.global_site(site)))?;
                inverses.extend(inv);
                ln_det += block_ln_det;
            }
            Ok((blocks, inverses, ln_det))
        };
        let sites: Vec<_> = (0..lattice.volume()).into_par_iter().map(per_site).collect::<Result<_>>()?;
        let slots = cb.full_len() * LANES;
        let mut term = vec![Complex64::new(0.0, 0.0); slots * 2 * block_len];
        let mut inverse = term.clone();
        let mut sums = [ExactSum::default(), ExactSum::default()];
        for (site, (blocks, inverses, ln_det)) in sites.into_iter().enumerate() {
            let (p, i, lane) = cb.locate(site);
            let at = (cb.field_index(p, i) * LANES + lane) * 2 * block_len;
            term[at..at + 2 * block_len].copy_from_slice(&blocks);
            inverse[at..at + 2 * block_len].copy_from_slice(&inverses);
            sums[lattice.parity(site) as usize].add(ln_det);
        }
        Ok(CloverTerm { side, term, inverse, log_det: sums })
    }

    /// ln det A_pp summed over the sites of parity p of this rank's block (A Hermitian: the
    /// determinant is real; the blocks' determinants are positive for fields near unit links),
    /// as an exact sum: add the ranks' with [`crate::comm::Comm::sum_exact`], then round.
    pub fn log_det(&self, p: usize) -> ExactSum {
        self.log_det[p]
    }

    /// y = base + B x on the packed spinors `x` (the field positions from `first` on), B the
    /// blocks `blocks` (C or A^{-1}) of each site; `base` None: y = B x.
    fn apply<G: PackedGroup, const S: usize, R: Real>(
        &self,
        blocks: &[Complex64],
        first: usize,
        x: &[Spinor<G, S, R>],
        identity: bool,
        y: &mut [Spinor<G, S, R>],
    ) {
        let (side, n, h) = (self.side, G::NC, S / 2);
        let block_len = side * side;
        y.par_chunks_mut(MIN_CHUNK).enumerate().for_each(|(chunk, ys)| {
            let start = chunk * MIN_CHUNK;
            let mut v = vec![Complex64::new(0.0, 0.0); side];
            for (k, y) in ys.iter_mut().enumerate() {
                let x = &x[start + k];
                for lane in 0..LANES {
                    let slot = (first + start + k) * LANES + lane;
                    for chi in 0..2 {
                        for (s, a) in (0..h).flat_map(|s| (0..n).map(move |a| (s, a))) {
                            v[s * n + a] = x[chi * h + s].get(lane, a);
                        }
                        let block = &blocks[(slot * 2 + chi) * block_len..][..block_len];
                        for (s, a) in (0..h).flat_map(|s| (0..n).map(move |a| (s, a))) {
                            let row = &block[(s * n + a) * side..][..side];
                            let mut z: Complex64 = row.iter().zip(&v).map(|(m, w)| m * w).sum();
                            if identity {
                                z += v[s * n + a];
                            }
                            y[chi * h + s].set(lane, a, z);
                        }
                    }
                }
            }
        });
    }
}

/// Per-site matrices of the planes (the force's Z_{mu nu}(x)) on the sites of a block and of
/// its halo box: packed like a gauge field's links (`element * planes + plane`) and exchanged
/// with the gauge field's box plan, so that a leaf whose corner lies on a neighbouring rank
/// (the force reads the corners x + lambda, x + lambda +- rho and x +- rho of each link's
/// leaves) finds it there.
struct ZField<G: PackedGroup> {
    lattice: Arc<crate::geometry::Lattice>,
    planes: usize,
    packed: Vec<G::Packed<f64>>,
}

impl<G: PackedGroup> ZField<G> {
    /// The field of `values` (site-major: `site * planes + plane`, the block's sites), its halo
    /// filled (collective on a cut lattice).
    fn new(lattice: &Arc<crate::geometry::Lattice>, planes: usize, values: &[G::Elem]) -> Self {
        let zero = G::Elem::zero();
        let mut packed = vec![G::pack([&zero; LANES]); lattice.box_len() * planes];
        for (site, z) in values.chunks_exact(planes).enumerate() {
            let (e, lane) = lattice.packed_of(site);
            for (k, m) in z.iter().enumerate() {
                G::set_lane(&mut packed[e * planes + k], lane, m);
            }
        }
        if !lattice.box_plan().is_empty() {
            let (interior, halo) = packed.split_at_mut(lattice.outer_volume() * planes);
            let mut field = Extended { interior, halo, width: planes };
            exchange(lattice.comm().as_ref(), lattice.box_plan(), &mut field, &Whole);
        }
        ZField { lattice: lattice.clone(), planes, packed }
    }

    /// Z at site x (of the block or its halo) in plane k.
    fn at(&self, x: usize, k: usize) -> G::Elem {
        let (e, lane) = self.lattice.packed_of(x);
        G::lane(&self.packed[e * self.planes + k], lane)
    }
}

/// The planes (mu, nu), mu < nu, of a `d`-dimensional lattice in the order of the clover
/// term's sums, and gamma_mu gamma_nu for each (dense, `spins` x `spins`).
fn planes(spins: usize, d: usize) -> (Vec<(usize, usize)>, Vec<SpinMatrix>) {
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

/// The inverse of the `n` x `n` row-major matrix `a` and ln |det a| (Gauss-Jordan elimination
/// with partial pivoting); None when a pivot vanishes.
fn invert(a: &[Complex64], n: usize) -> Option<(Vec<Complex64>, f64)> {
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

/// The clover-improved Wilson operator M = 1 - kappa H + C on a gauge field (module docs), in
/// precision R: the Wilson operator's hopping term and a [`CloverTerm`].
pub struct CloverOperator<'a, G: PackedGroup, const S: usize, R: Real = f64> {
    wilson: WilsonOperator<'a, G, S, R>,
    term: Arc<CloverTerm>,
    csw: f64,
}

impl<'a, G: PackedGroup, const S: usize> CloverOperator<'a, G, S> {
    /// M with hopping parameter `kappa`, clover coefficient `csw` and the time boundary
    /// `boundary` on the gauge field `u` (fields of the layout `cb`): the errors of
    /// [`WilsonOperator::new`] and [`CloverTerm::new`].
    pub fn new(
        u: &'a GaugeField<G>,
        cb: &'a Checkerboard,
        kappa: f64,
        csw: f64,
        boundary: Boundary,
    ) -> Result<Self> {
        if !csw.is_finite() {
            return Err(Error::Config(format!("csw = {csw}: must be finite")));
        }
        boundary.check(u.lattice())?;
        let wilson = WilsonOperator::new(u, cb, kappa, boundary.hopping())?;
        let term = Arc::new(CloverTerm::new::<G, S>(u, cb, kappa, csw, boundary)?);
        Ok(CloverOperator { wilson, term, csw })
    }

    /// The same operator in f32 (the hopping term's links rounded; the clover blocks are
    /// shared and applied in f64).
    pub fn single(&self) -> CloverOperator<'a, G, S, f32> {
        CloverOperator { wilson: self.wilson.single(), term: self.term.clone(), csw: self.csw }
    }
}

impl<G: PackedGroup, const S: usize, R: Real> CloverOperator<'_, G, S, R> {
    /// The clover coefficient.
    pub fn csw(&self) -> f64 {
        self.csw
    }

    /// The hopping parameter.
    pub fn kappa(&self) -> f64 {
        self.wilson.kappa()
    }

    /// The site-local term.
    pub fn term(&self) -> &CloverTerm {
        &self.term
    }

    /// The field position of the first packed spinor of a half field of parity p, or of a full
    /// field (`None`).
    fn first(&self, p: Option<usize>) -> usize {
        p.map_or(0, |p| self.wilson.checkerboard().field_index(p, 0))
    }
}

impl<G: PackedGroup, const S: usize, R: Real> FermionOperator<G, S, R> for CloverOperator<'_, G, S, R> {
    fn checkerboard(&self) -> &Checkerboard {
        self.wilson.checkerboard()
    }

    /// y = (1 - kappa H) x + C x (C is Hermitian, so M^dagger adds the same C x).
    fn apply(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        self.wilson.apply(dagger, x, y);
        let mut c = x.zeros_like();
        self.term.apply::<G, S, R>(&self.term.term, 0, x.data(), false, c.data_mut());
        y.axpy(Complex64::new(1.0, 0.0), &c);
    }

    /// The diagonal blocks are A_pp = 1 + C on the sites of parity p; the others the Wilson
    /// operator's -kappa H_{row, column}.
    fn apply_block(
        &self,
        row: usize,
        column: usize,
        dagger: bool,
        x: &SpinorField<G, S, R>,
        y: &mut SpinorField<G, S, R>,
    ) {
        if row == column {
            self.term.apply::<G, S, R>(&self.term.term, self.first(Some(row)), x.data(), true, y.data_mut());
        } else {
            self.wilson.apply_block(row, column, dagger, x, y);
        }
    }

    /// y = A_pp^{-1} x (A is Hermitian: the same for `dagger`).
    fn apply_diagonal_inverse(
        &self,
        p: usize,
        _dagger: bool,
        x: &SpinorField<G, S, R>,
        y: &mut SpinorField<G, S, R>,
    ) {
        self.term.apply::<G, S, R>(&self.term.inverse, self.first(Some(p)), x.data(), false, y.data_mut());
    }
}

impl<'a, G: PackedGroup, const S: usize> FermionMatrix<G, S> for CloverOperator<'a, G, S> {
    type Single<'s>
        = CloverOperator<'a, G, S, f32>
    where
        Self: 's;

    fn single(&self) -> CloverOperator<'a, G, S, f32> {
        CloverOperator::single(self)
    }

    /// With `even_odd` the derivative of Re(a^dagger M_hat b) is that of Re(u^dagger M v) at
    /// fixed u = (a, -A_oo^{-1} (M^dagger)_oe a) and v = (b, -A_oo^{-1} M_oe b), for which
    /// M v = (M_hat b, 0): the hopping term's derivative plus the clover term's, on full fields.
    fn add_derivative(
        &self,
        even_odd: bool,
        a: &SpinorField<G, S>,
        b: &SpinorField<G, S>,
        c: f64,
        p: &mut MomentumField<G>,
    ) {
        let (u, v) =
            if even_odd { (self.lift(a, true), self.lift(b, false)) } else { (a.clone(), b.clone()) };
        self.wilson.add_derivative(false, &u, &v, c, p);
        self.add_clover_derivative(&u, &v, c, p);
    }
}

impl<G: PackedGroup, const S: usize> CloverOperator<'_, G, S> {
    /// The full field (x, -A_oo^{-1} M_oe x) of an even half field x (M^dagger's blocks with
    /// `dagger`).
    fn lift(&self, x: &SpinorField<G, S>, dagger: bool) -> SpinorField<G, S> {
        let cb = self.checkerboard();
        let (mut t, mut odd) = (SpinorField::half(cb), SpinorField::half(cb));
        self.apply_block(1, 0, dagger, x, &mut t);
        self.apply_diagonal_inverse(1, dagger, &t, &mut odd);
        odd.scale(Complex64::new(-1.0, 0.0));
        SpinorField::from_halves(x, &odd)
    }

    /// p_a(y, lambda) += c d/dw Re(a^dagger C b) for every link, U_lambda(y) -> exp(w T_a)
    /// U_lambda(y), a and b full fields: `add_trace_derivative` with O(x) = b(x) a(x)^dagger.
    fn add_clover_derivative(
        &self,
        a: &SpinorField<G, S>,
        b: &SpinorField<G, S>,
        c: f64,
        p: &mut MomentumField<G>,
    ) {
        let cb = self.checkerboard();
        let n = G::NC;
        self.add_trace_derivative(
            |x| {
                let av: Vec<Complex64> = (0..S * n).map(|k| a.get(cb, x, k / n, k % n)).collect();
                let bv: Vec<Complex64> = (0..S * n).map(|k| b.get(cb, x, k / n, k % n)).collect();
                Some(bv.iter().flat_map(|bi| av.iter().map(move |aj| bi * aj.conj())).collect())
            },
            c,
            p,
        );
    }

    /// p_a(y, lambda) += c d/dw ln det A_pp for every link: the force of the log-determinant
    /// of the diagonal blocks of parity p (d ln det A = tr(A^{-1} dC)): the clover leaves'
    /// derivative of Re sum_x tr(O(x) C(x)) at O(x) = A(x)^{-1} on the sites of parity p.
    pub fn add_log_det_derivative(&self, parity: usize, c: f64, p: &mut MomentumField<G>) {
        let cb = self.checkerboard();
        let lattice = cb.lattice();
        let (side, h) = (self.term.side, S / 2);
        let sn = S * G::NC;
        self.add_trace_derivative(
            |x| {
                if lattice.parity(x) as usize != parity {
                    return None;
                }
                let (q, i, lane) = cb.locate(x);
                let slot = cb.field_index(q, i) * LANES + lane;
                let mut o = vec![Complex64::new(0.0, 0.0); sn * sn];
                for chi in 0..2 {
                    let block = &self.term.inverse[(slot * 2 + chi) * side * side..][..side * side];
                    let offset = chi * h * G::NC;
                    for (r, k) in (0..side).flat_map(|r| (0..side).map(move |k| (r, k))) {
                        o[(offset + r) * sn + offset + k] = block[r * side + k];
                    }
                }
                Some(o)
            },
            c,
            p,
        );
    }

    /// p_a(y, lambda) += c d/dw Re sum_x tr(O(x) C(x)) for every link, U_lambda(y) -> exp(w T_a)
    /// U_lambda(y), with O(x) fixed (S N) x (S N) matrices, row-major in the index spin N +
    /// colour, `outer(x)` (None: zero at x). With Y_{mu nu}(x)_{beta alpha} = sum_{s s'}
    /// (gamma_mu gamma_nu)_{s s'} O(x)_{(s' beta), (s alpha)} and Z = Y - Y^dagger,
    /// Re tr(O C) = -(kappa c_sw / 8) sum_{mu<nu} Re tr(Q_{mu nu}(x) Z_{mu nu}(x)). A link lies
    /// on two plaquettes per plane it spans, each a leaf of its four corners z; a leaf that runs
    /// the link forward contributes Re tr(T_a U W), W the rest of the loop from the link's end
    /// back to y with Z(z) inserted at z, and one that runs it backward the same with -Z (Z is
    /// anti-Hermitian).
    fn add_trace_derivative(
        &self,
        outer: impl Fn(usize) -> Option<Vec<Complex64>> + Sync,
        c: f64,
        p: &mut MomentumField<G>,
    ) {
        let cb = self.checkerboard();
        let u = self.wilson.gauge_field();
        let lattice = cb.lattice();
        let (d, n) = (lattice.ndim(), G::NC);
        let sn = S * n;
        let (pairs, products) = planes(S, d);
        let plane = |mu: usize, nu: usize| pairs.iter().position(|&q| q == (mu.min(nu), mu.max(nu))).unwrap();
        // Z_{mu nu}(x) per site and plane
        let z_local: Vec<G::Elem> = (0..lattice.volume())
            .into_par_iter()
            .flat_map_iter(|x| {
                // C vanishes identically on the boundary slices of open boundaries
                let o = if lattice.is_boundary_slice(x) { None } else { outer(x) };
                products.iter().map(move |g| {
                    let Some(o) = &o else { return G::Elem::zero() };
                    let mut reals = vec![0.0; 2 * n * n];
                    for (row, col) in (0..n).flat_map(|r| (0..n).map(move |c| (r, c))) {
                        let mut y = Complex64::new(0.0, 0.0);
                        for (s, t) in (0..S).flat_map(|s| (0..S).map(move |t| (s, t))) {
                            y += g[s][t] * o[(t * n + row) * sn + s * n + col];
                        }
                        reals[2 * (row * n + col)] = y.re;
                        reals[2 * (row * n + col) + 1] = y.im;
                    }
                    let y = G::Elem::read_reals(&reals);
                    y.sub(&y.adj())
                })
            })
            .collect();
        let z = ZField::<G>::new(lattice, pairs.len(), &z_local);
        let at = |x: usize, k: usize| z.at(x, k);
        let coef = -c * self.kappa() * self.csw / 8.0;
        let forces: Vec<Vec<G::Alg>> = (0..lattice.volume())
            .into_par_iter()
            .map(|y| {
                (0..d)
                    .map(|lambda| {
                        let link = u.link(y, lambda);
                        let end = lattice.fwd(y, lambda);
                        let mut w = G::Elem::zero();
                        for rho in (0..d).filter(|&rho| rho != lambda) {
                            let k = plane(lambda, rho);
                            for side in [true, false] {
                                let (l1, c2) = path_product(u, end, &[Step::signed(rho, side)]);
                                let (l2, c3) = path_product(u, c2, &[Step::down(lambda)]);
                                let (l3, _) = path_product(u, c3, &[Step::signed(rho, !side)]);
                                let l23 = l2.mul(&l3);
                                let l12 = l1.mul(&l2);
                                let leaves = at(end, k)
                                    .mul(&l1)
                                    .mul(&l23)
                                    .add(&l1.mul(&at(c2, k)).mul(&l23))
                                    .add(&l12.mul(&at(c3, k)).mul(&l3))
                                    .add(&l12.mul(&l3).mul(&at(y, k)));
                                let forward = side == (lambda < rho);
                                w = if forward { w.add(&leaves) } else { w.sub(&leaves) };
                            }
                        }
                        let mut f = G::re_tr_generators(&link.mul(&w));
                        f.as_mut().iter_mut().for_each(|v| *v *= coef);
                        f
                    })
                    .collect()
            })
            .collect();
        for (y, f) in forces.iter().enumerate() {
            for (lambda, f) in f.iter().enumerate() {
                p.add_at(lattice, y, lambda, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use crate::rng::{Purpose, StreamKey};
    use crate::spinor::Sites;

    const KAPPA: f64 = 0.12;
    const CSW: f64 = 1.3;

    fn hot<G: PackedGroup>(dims: &[usize]) -> (GaugeField<G>, Checkerboard) {
        hot_with::<G>(dims, Boundary::ANTIPERIODIC)
    }

    /// A hot field on a lattice open in time where `boundary` is open, and its checkerboard.
    fn hot_with<G: PackedGroup>(dims: &[usize], boundary: Boundary) -> (GaugeField<G>, Checkerboard) {
        let lat = Lattice::new(dims).unwrap();
        let lat = Arc::new(if boundary.theta().is_none() { lat.open_in_time() } else { lat });
        (GaugeField::<G>::hot(lat.clone(), 3), Checkerboard::new(lat).unwrap())
    }

    /// The sites of the time slice x0 (global coordinates; one rank).
    fn slice(lat: &Lattice, x0: usize) -> impl Iterator<Item = usize> + '_ {
        (0..lat.volume()).filter(move |&s| lat.coord(s, lat.ndim() - 1) == x0)
    }

    /// The largest |component| of `f` on the sites `sites`.
    fn largest_on<G: PackedGroup, const S: usize>(
        cb: &Checkerboard,
        f: &SpinorField<G, S>,
        sites: impl Iterator<Item = usize>,
    ) -> f64 {
        sites
            .flat_map(|x| (0..S * G::NC).map(move |k| (x, k)))
            .map(|(x, k)| f.get(cb, x, k / G::NC, k % G::NC).norm())
            .fold(0.0, f64::max)
    }

    fn distance<G: PackedGroup, const S: usize>(a: &SpinorField<G, S>, b: &SpinorField<G, S>) -> f64 {
        let mut d = a.clone();
        d.axpy(Complex64::new(-1.0, 0.0), b);
        (d.norm_sqr() / b.norm_sqr()).sqrt()
    }

    fn even<G: PackedGroup, const S: usize>(cb: &Checkerboard, seed: u64) -> SpinorField<G, S> {
        SpinorField::gaussian(cb, Sites::Parity(0), &StreamKey::new(seed, Purpose::Test, 0))
    }

    /// M and M^dagger are adjoint on full fields and in Schur form, M^dagger = gamma5 M gamma5,
    /// and the clover term changes M (so these checks see it).
    fn check_adjoint_and_gamma5<G: PackedGroup, const S: usize>(dims: &[usize], boundary: Boundary) {
        let (u, cb) = hot_with::<G>(dims, boundary);
        let m = CloverOperator::<G, S>::new(&u, &cb, KAPPA, CSW, boundary).unwrap();
        let x = SpinorField::<G, S>::gaussian_full(&cb, 1, Purpose::Test, 0);
        let y = SpinorField::<G, S>::gaussian_full(&cb, 2, Purpose::Test, 0);
        let (mut my, mut mdx) = (SpinorField::full(&cb), SpinorField::full(&cb));
        m.apply(false, &y, &mut my);
        m.apply(true, &x, &mut mdx);
        let (a, b) = (x.dot(&my), mdx.dot(&y));
        assert!((a - b).norm() < 1e-12 * a.norm(), "<x, M y> = {a}, <M^dagger x, y> = {b}");
        let mut g5mg5x = x.clone();
        g5mg5x.gamma5();
        let mut t = SpinorField::full(&cb);
        m.apply(false, &g5mg5x, &mut t);
        t.gamma5();
        assert!(distance(&t, &mdx) < 1e-14, "gamma5 M gamma5 = M^dagger");
        let (xe, ye) = (even::<G, S>(&cb, 3), even::<G, S>(&cb, 4));
        let (mut sy, mut sdx) = (SpinorField::half(&cb), SpinorField::half(&cb));
        m.apply_schur(false, &ye, &mut sy);
        m.apply_schur(true, &xe, &mut sdx);
        let (a, b) = (xe.dot(&sy), sdx.dot(&ye));
        assert!((a - b).norm() < 1e-12 * a.norm(), "Schur: {a} against {b}");
        let w = WilsonOperator::<G, S>::new(&u, &cb, KAPPA, boundary.hopping()).unwrap();
        let mut wy = SpinorField::full(&cb);
        w.apply(false, &y, &mut wy);
        assert!(distance(&wy, &my) > 1e-2, "the clover term is there");
    }

    #[test]
    fn clover_operator_is_adjoint_and_gamma5_hermitian() {
        for boundary in [Boundary::Phase(0.7), Boundary::Open { c_f: 0.8 }] {
            check_adjoint_and_gamma5::<U1, 2>(&[4, 8], boundary);
            check_adjoint_and_gamma5::<Su3, 4>(&[4, 4, 4, 4], boundary);
        }
    }

    /// Open boundaries: a field that vanishes on the boundary slices (Gaussian noise does) has
    /// M x and M^dagger x vanishing there too, whatever the field's links there; M x does not
    /// see x on the boundary slices; c_F adds 2 kappa (c_F - 1) x at x0 = 1 and N0-2 and
    /// nothing elsewhere.
    fn check_open<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let c_f = 0.8;
        let (u, cb) = hot_with::<G>(dims, Boundary::Open { c_f });
        let lat = cb.lattice().clone();
        let n0 = lat.dims()[lat.ndim() - 1];
        let m = CloverOperator::<G, S>::new(&u, &cb, KAPPA, CSW, Boundary::Open { c_f }).unwrap();
        let x = SpinorField::<G, S>::gaussian_full(&cb, 1, Purpose::Test, 0);
        let boundary = || slice(&lat, 0).chain(slice(&lat, n0 - 1));
        assert_eq!(largest_on(&cb, &x, boundary()), 0.0, "noise vanishes on the boundary");
        assert!(largest_on(&cb, &x, slice(&lat, 1)) > 0.5);
        let mut mx = SpinorField::full(&cb);
        for dagger in [false, true] {
            m.apply(dagger, &x, &mut mx);
            assert_eq!(largest_on(&cb, &mx, boundary()), 0.0, "M x on the boundary, dagger {dagger}");
        }
        // noise on the boundary slices only (copied from a periodic lattice's): M acts there as
        // the identity and sends nothing into the bulk
        let pcb = Checkerboard::new(Arc::new(Lattice::new(dims).unwrap())).unwrap();
        let noise = SpinorField::<G, S>::gaussian_full(&pcb, 1, Purpose::Test, 0);
        let mut y = SpinorField::<G, S>::full(&cb);
        for site in boundary() {
            for k in 0..S * G::NC {
                let (s, c) = (k / G::NC, k % G::NC);
                y.set(&cb, site, s, c, noise.get(&pcb, site, s, c));
            }
        }
        assert!(y.norm_sqr() > 1.0);
        m.apply(false, &y, &mut mx);
        assert_eq!(distance(&mx, &y), 0.0, "M y = y for y on the boundary slices");
        // M - M(c_F = 1) = 2 kappa (c_F - 1) on the slices next to the boundary
        let plain = CloverOperator::<G, S>::new(&u, &cb, KAPPA, CSW, Boundary::Open { c_f: 1.0 }).unwrap();
        let mut px = SpinorField::full(&cb);
        m.apply(false, &x, &mut mx);
        plain.apply(false, &x, &mut px);
        mx.axpy(Complex64::new(-1.0, 0.0), &px);
        for x0 in 0..n0 {
            let factor = if x0 == 1 || x0 + 2 == n0 { 2.0 * KAPPA * (c_f - 1.0) } else { 0.0 };
            for site in slice(&lat, x0) {
                for k in 0..S * G::NC {
                    let (s, c) = (k / G::NC, k % G::NC);
                    let (got, want) = (mx.get(&cb, site, s, c), x.get(&cb, site, s, c) * factor);
                    assert!((got - want).norm() < 1e-14, "c_F at x0 = {x0}: {got} against {want}");
                }
            }
        }
    }

    #[test]
    fn open_boundaries_keep_quark_fields_off_the_boundary_slices() {
        check_open::<U1, 2>(&[4, 8]);
        check_open::<Su3, 4>(&[4, 4, 4, 8]);
    }

    /// Even/odd form equals full: for b = M x, the Schur source is M_hat x_e and the
    /// reconstruction from x_e gives back x; M (x_e, 0) = (A_ee x_e, M_oe x_e); A^{-1} inverts
    /// the diagonal blocks; at c_sw = 0 the operator is the Wilson operator.
    fn check_even_odd<G: PackedGroup, const S: usize>(dims: &[usize], boundary: Boundary) {
        let (u, cb) = hot_with::<G>(dims, boundary);
        let m = CloverOperator::<G, S>::new(&u, &cb, KAPPA, CSW, boundary).unwrap();
        let x = SpinorField::<G, S>::gaussian_full(&cb, 5, Purpose::Test, 0);
        let mut b = SpinorField::full(&cb);
        m.apply(false, &x, &mut b);
        let xe = x.half_of(0);
        let mut schur = SpinorField::half(&cb);
        m.apply_schur(false, &xe, &mut schur);
        assert!(distance(&m.schur_source(&b), &schur) < 1e-13, "Schur source");
        assert!(distance(&m.schur_reconstruct(&b, &xe), &x) < 1e-13, "reconstruction");
        for dagger in [false, true] {
            let mut m_full = SpinorField::full(&cb);
            m.apply(dagger, &SpinorField::from_halves(&xe, &SpinorField::half(&cb)), &mut m_full);
            for row in 0..2 {
                let mut block = SpinorField::half(&cb);
                m.apply_block(row, 0, dagger, &xe, &mut block);
                assert!(distance(&block, &m_full.half_of(row)) < 1e-14, "block ({row}, 0), dagger {dagger}");
            }
        }
        for p in 0..2 {
            let (mut ax, mut back) = (SpinorField::half(&cb), SpinorField::half(&cb));
            m.apply_block(p, p, false, &x.half_of(p), &mut ax);
            m.apply_diagonal_inverse(p, false, &ax, &mut back);
            assert!(distance(&back, &x.half_of(p)) < 1e-13, "A^-1 A on parity {p}");
        }
        let (plain, w) = (
            CloverOperator::<G, S>::new(&u, &cb, KAPPA, 0.0, boundary.hopping()).unwrap(),
            WilsonOperator::<G, S>::new(&u, &cb, KAPPA, boundary.hopping()).unwrap(),
        );
        let (mut cx, mut wx) = (SpinorField::full(&cb), SpinorField::full(&cb));
        plain.apply(false, &x, &mut cx);
        w.apply(false, &x, &mut wx);
        assert!(distance(&cx, &wx) < 1e-15, "c_sw = 0 is Wilson");
    }

    #[test]
    fn even_odd_blocks_equal_the_full_operator() {
        for boundary in [Boundary::ANTIPERIODIC, Boundary::Open { c_f: 1.2 }] {
            check_even_odd::<U1, 2>(&[4, 8], boundary);
            check_even_odd::<Su3, 4>(&[4, 4, 4, 4], boundary);
        }
    }

    /// On a 2D U(1) field of constant flux (every plaquette e^{i phi}, phi = 2 pi n / V) the
    /// clover field strength is F_01 = i sin(phi), so C = -kappa c_sw gamma_0 gamma_1 F_01 =
    /// kappa c_sw sin(phi) sigma_3 (gamma_0 gamma_1 = i sigma_3): M x - (1 - kappa H) x =
    /// kappa c_sw sin(phi) gamma5 x exactly. Normalisation and sign of the term.
    #[test]
    fn constant_flux_gives_the_analytic_clover_term() {
        let l = 8;
        let lat = Arc::new(Lattice::new(&[l, l]).unwrap());
        let phi = 2.0 * std::f64::consts::PI * 2.0 / (l * l) as f64;
        let u = GaugeField::<U1>::try_from_fn(lat.clone(), |site, mu| {
            let (x0, x1) = (lat.coord(site, 0) as f64, lat.coord(site, 1) as f64);
            let angle = match mu {
                1 => phi * x0,
                _ if lat.coord(site, 0) == l - 1 => -phi * l as f64 * x1,
                _ => 0.0,
            };
            Ok::<_, ()>(Complex64::from_polar(1.0, angle))
        })
        .unwrap();
        let cb = Checkerboard::new(lat).unwrap();
        let m = CloverOperator::<U1, 2>::new(&u, &cb, KAPPA, CSW, Boundary::ANTIPERIODIC).unwrap();
        let w = WilsonOperator::<U1, 2>::new(&u, &cb, KAPPA, Boundary::ANTIPERIODIC).unwrap();
        let x = SpinorField::<U1, 2>::gaussian_full(&cb, 6, Purpose::Test, 0);
        let (mut mx, mut wx) = (SpinorField::full(&cb), SpinorField::full(&cb));
        m.apply(false, &x, &mut mx);
        w.apply(false, &x, &mut wx);
        let mut want = x.clone();
        want.gamma5();
        want.scale(Complex64::new(KAPPA * CSW * phi.sin(), 0.0));
        want.axpy(Complex64::new(1.0, 0.0), &wx);
        assert!(distance(&mx, &want) < 1e-14, "off by {}", distance(&mx, &want));
    }

    /// The f32 operator agrees with the f64 one to single-precision round-off.
    #[test]
    fn single_precision_clover_matches_double() {
        let (u, cb) = hot::<Su3>(&[4, 4, 4, 4]);
        let m = CloverOperator::<Su3, 4>::new(&u, &cb, KAPPA, CSW, Boundary::ANTIPERIODIC).unwrap();
        let xe = even::<Su3, 4>(&cb, 7);
        let mut want = SpinorField::half(&cb);
        m.apply_schur(false, &xe, &mut want);
        let mut got = SpinorField::half(&cb);
        m.single().apply_schur(false, &xe.convert(), &mut got);
        assert!(distance(&got.convert(), &want) < 1e-5);
    }

    /// The derivative of Re(a^dagger M b) (full fields) and of Re(a^dagger M_hat b) (even
    /// halves) against central finite differences (eps = 1e-5) for every generator of links
    /// inside and on the time boundary: within 1e-6 of the largest component.
    fn check_derivative<G: PackedGroup, const S: usize>(dims: &[usize], boundary: Boundary) {
        let (u, cb) = hot_with::<G>(dims, boundary);
        let lat = cb.lattice().clone();
        for even_odd in [false, true] {
            let (a, b) = if even_odd {
                (even::<G, S>(&cb, 8), even::<G, S>(&cb, 9))
            } else {
                (
                    SpinorField::<G, S>::gaussian_full(&cb, 8, Purpose::Test, 0),
                    SpinorField::<G, S>::gaussian_full(&cb, 9, Purpose::Test, 0),
                )
            };
            let mut deriv = MomentumField::<G>::zeros(&lat);
            CloverOperator::<G, S>::new(&u, &cb, KAPPA, CSW, boundary)
                .unwrap()
                .add_derivative(even_odd, &a, &b, 1.0, &mut deriv);
            let re_amb = |v: &GaugeField<G>| {
                let m = CloverOperator::<G, S>::new(v, &cb, KAPPA, CSW, boundary).unwrap();
                let mut mb = b.zeros_like();
                m.apply_as(even_odd, false, &b, &mut mb);
                a.dot(&mb).re
            };
            let largest = deriv.components().fold(0.0f64, |m, v| m.max(v.abs()));
            let t = lat.ndim() - 1;
            // inside, on the time boundary, and (open) next to it: slices 1 and N0-2
            let n0 = lat.dims()[t];
            let near = |x0: usize| slice(&lat, x0).nth(1).unwrap();
            let links = [
                (0, 0),
                (lat.volume() - 1, t),
                (lat.volume() / 2 + 1, 1),
                (3, t),
                (near(1), t),
                (near(1), 0),
            ];
            for (site, mu) in links.into_iter().chain([(near(n0 - 2), t), (near(n0 - 2), 1)]) {
                for k in 0..G::ALG_DIM {
                    let mut generator = G::Alg::default();
                    generator.as_mut()[k] = 1.0;
                    let eps = 1e-5;
                    let shifted = |w: f64| {
                        let mut v = u.clone();
                        v.set_link(site, mu, &G::exp(&generator, w).mul(&u.link(site, mu)));
                        re_amb(&v)
                    };
                    let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps);
                    let got = deriv.at(&lat, site, mu).as_ref()[k];
                    assert!(
                        (fd - got).abs() < 1e-6 * largest,
                        "e/o {even_odd}, site {site} mu {mu} a {k}: {got} against {fd} (largest {largest})"
                    );
                }
            }
        }
    }

    #[test]
    fn clover_derivative_matches_finite_differences() {
        for boundary in [Boundary::Phase(0.9), Boundary::Open { c_f: 0.9 }] {
            check_derivative::<U1, 2>(&[4, 8], boundary);
            check_derivative::<Su3, 4>(&[4, 4, 4, 4], boundary);
        }
    }
}
