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
//! The blocks and their inverses ([`CloverTerm`], `term.rs`) and the force's insertions
//! (`force.rs`) are packed like the spinors and links. On a block of a cut lattice the leaves
//! reach into the gauge field's halo, and the force reads the insertions of the corners on
//! neighbouring blocks from a halo of its own, so every result equals the whole lattice's bit
//! for bit. A [`Clover`] keeps the terms it built for the gauge field it last saw (one per
//! hopping parameter), so the pseudofermion and determinant terms of one table, which all
//! need them at the same field, build each once per field.

mod force;
mod term;

pub use term::CloverTerm;

use super::operator::{Discretization, FermionMatrix, FermionOperator};
use super::wilson::{Boundary, WilsonOperator};
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::checkerboard::Checkerboard;
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::spinor::SpinorField;
use force::Insertions;
use num_complex::Complex64;
use std::any::Any;
use std::sync::{Arc, Mutex};

/// The clover terms a [`Clover`] built for one gauge field: per (hopping parameter, spin
/// components) one term.
#[derive(Default)]
struct TermCache {
    /// The [`GaugeField::generation`] the terms belong to.
    generation: Option<u64>,
    /// (kappa's bits, S, the term: a `CloverTerm<G>` of the field's group).
    terms: Vec<(u64, usize, Arc<dyn Any + Send + Sync>)>,
}

impl std::fmt::Debug for TermCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermCache")
            .field("generation", &self.generation)
            .field("terms", &self.terms.len())
            .finish()
    }
}

/// Clover-improved Wilson fermions with coefficient c_sw on the fields of a checkerboard, with
/// a boundary phase in time: the [`Discretization`] whose operators are [`CloverOperator`]s.
/// Clones share the terms built for the last gauge field (module docs).
#[derive(Clone, Debug)]
pub struct Clover {
    cb: Checkerboard,
    boundary: Boundary,
    csw: f64,
    terms: Arc<Mutex<TermCache>>,
}

impl Clover {
    /// Clover fermions with coefficient `csw` on the layout `cb`, `boundary` in time.
    pub fn new(cb: Checkerboard, boundary: Boundary, csw: f64) -> Self {
        Clover { cb, boundary, csw, terms: Arc::default() }
    }

    /// The clover coefficient.
    pub fn csw(&self) -> f64 {
        self.csw
    }

    /// The boundary in time.
    pub fn boundary(&self) -> Boundary {
        self.boundary
    }

    /// The clover term of `u` at `kappa` for fields of S spin components
    /// ([`CloverTerm::new`]): the one built before when `u` has not changed since
    /// ([`GaugeField::generation`]); the terms of earlier fields are dropped.
    pub fn term<G: PackedGroup, const S: usize>(
        &self,
        u: &GaugeField<G>,
        kappa: f64,
    ) -> Result<Arc<CloverTerm<G>>> {
        let mut cache = self.terms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.generation != Some(u.generation()) {
            *cache = TermCache { generation: Some(u.generation()), terms: Vec::new() };
        }
        let key = (kappa.to_bits(), S);
        let found = cache.terms.iter().find(|(k, s, _)| (*k, *s) == key);
        if let Some(term) = found.and_then(|(_, _, term)| term.clone().downcast::<CloverTerm<G>>().ok()) {
            return Ok(term);
        }
        let term = Arc::new(CloverTerm::<G>::new::<S>(u, &self.cb, kappa, self.csw, self.boundary)?);
        cache.terms.push((key.0, key.1, term.clone()));
        Ok(term)
    }
}

impl<G: PackedGroup, const S: usize> Discretization<G, S> for Clover {
    type Operator<'a> = CloverOperator<'a, G, S>;

    fn checkerboard(&self) -> &Checkerboard {
        &self.cb
    }

    fn operator<'a>(&'a self, u: &'a GaugeField<G>, kappa: f64) -> Result<CloverOperator<'a, G, S>> {
        CloverOperator::with_term(u, &self.cb, kappa, self.csw, self.boundary, |u| {
            self.term::<G, S>(u, kappa)
        })
    }
}

/// The clover-improved Wilson operator M = 1 - kappa H + C on a gauge field (module docs), in
/// precision R: the Wilson operator's hopping term and a [`CloverTerm`].
pub struct CloverOperator<'a, G: PackedGroup, const S: usize, R: Real = f64> {
    wilson: WilsonOperator<'a, G, S, R>,
    term: Arc<CloverTerm<G>>,
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
        Self::with_term(u, cb, kappa, csw, boundary, |u| {
            Ok(Arc::new(CloverTerm::<G>::new::<S>(u, cb, kappa, csw, boundary)?))
        })
    }

    /// [`CloverOperator::new`] with the clover term `term(u)` (built for these parameters),
    /// asked for once the parameters are checked.
    fn with_term(
        u: &'a GaugeField<G>,
        cb: &'a Checkerboard,
        kappa: f64,
        csw: f64,
        boundary: Boundary,
        term: impl FnOnce(&GaugeField<G>) -> Result<Arc<CloverTerm<G>>>,
    ) -> Result<Self> {
        if !csw.is_finite() {
            return Err(Error::Config(format!("csw = {csw}: must be finite")));
        }
        boundary.check(u.lattice())?;
        let wilson = WilsonOperator::new(u, cb, kappa, boundary.hopping())?;
        Ok(CloverOperator { wilson, term: term(u)?, csw })
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
    pub fn term(&self) -> &CloverTerm<G> {
        &self.term
    }

    /// The field position of the first packed spinor of a half field of parity p.
    fn first(&self, p: usize) -> usize {
        self.wilson.checkerboard().field_index(p, 0)
    }

    /// M_hat = A_ee - kappa^2 H_eo A_oo^{-1} H_oe (its adjoint with DAGGER: A is Hermitian and
    /// commutes with gamma5) on even half fields, the last hop fused with the subtraction.
    fn schur<const DAGGER: bool>(&self, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let half = x.len();
        let (mut hop, mut inverse, mut diagonal) =
            (self.wilson.scratch(half), self.wilson.scratch(half), self.wilson.scratch(half));
        self.wilson.hopping_into::<DAGGER>(1, x.data(), 1.0, None, hop.data_mut());
        self.term.multiply::<S, R>(true, self.first(1), hop.data(), inverse.data_mut());
        self.term.multiply::<S, R>(false, self.first(0), x.data(), diagonal.data_mut());
        let kappa = self.kappa();
        self.wilson.hopping_into::<DAGGER>(
            0,
            inverse.data(),
            -kappa * kappa,
            Some(diagonal.data()),
            y.data_mut(),
        );
        [hop, inverse, diagonal].into_iter().for_each(|f| self.wilson.recycle(f));
    }
}

impl<G: PackedGroup, const S: usize, R: Real> FermionOperator<G, S, R> for CloverOperator<'_, G, S, R> {
    fn checkerboard(&self) -> &Checkerboard {
        self.wilson.checkerboard()
    }

    /// y = (1 - kappa H) x + (A - 1) x (C is Hermitian, so M^dagger adds the same C x).
    fn apply(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        self.wilson.apply(dagger, x, y);
        let mut ax = x.zeros_like();
        self.term.multiply::<S, R>(false, 0, x.data(), ax.data_mut());
        y.axpy(Complex64::new(1.0, 0.0), &ax);
        y.axpy(Complex64::new(-1.0, 0.0), x);
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
            self.term.multiply::<S, R>(false, self.first(row), x.data(), y.data_mut());
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
        self.term.multiply::<S, R>(true, self.first(p), x.data(), y.data_mut());
    }

    fn apply_schur(&self, dagger: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        if dagger { self.schur::<true>(x, y) } else { self.schur::<false>(x, y) }
    }

    fn apply_normal(&self, even_odd: bool, x: &SpinorField<G, S, R>, y: &mut SpinorField<G, S, R>) {
        let mut t = self.wilson.scratch(x.len());
        self.apply_as(even_odd, false, x, &mut t);
        self.apply_as(even_odd, true, &t, y);
        self.wilson.recycle(t);
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
        let mut insertions = Insertions::<G>::new(self.checkerboard().lattice(), S);
        insertions.add_outer_products(self.checkerboard(), &u, &v, self.clover_coefficient(c));
        insertions.add_force(self.wilson.gauge_field(), p);
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

    /// The factor of the insertions Z of c d/dw Re tr(O C): -c kappa c_sw / 8 (`force.rs`).
    fn clover_coefficient(&self, c: f64) -> f64 {
        -c * self.kappa() * self.csw / 8.0
    }

    /// p_a(y, lambda) += c d/dw ln det A_pp for every link: the force of the log-determinant
    /// of the diagonal blocks of parity p (d ln det A = tr(A^{-1} dC)), the clover leaves'
    /// derivative of Re sum_x tr(O(x) C(x)) at O(x) = A(x)^{-1} on the sites of parity p.
    pub fn add_log_det_derivative(&self, parity: usize, c: f64, p: &mut MomentumField<G>) {
        let cb = self.checkerboard();
        let mut insertions = Insertions::<G>::new(cb.lattice(), S);
        insertions.add_inverse_blocks(cb, &self.term, parity, self.clover_coefficient(c));
        insertions.add_force(self.wilson.gauge_field(), p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Lattice;
    use crate::group::{LinkMatrix, Su3, U1};
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
