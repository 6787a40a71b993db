//! Pseudofermion monomials for two flavours of Wilson fermions.
//!
//! One form covers all of them: S = phi^dagger M_h (M^dagger M)^{-1} M_h^dagger phi with
//! M = M(kappa) and M_h = M(kappa_h), the weight det(M^dagger M) / det(M_h^dagger M_h).
//! - `two_flavor`: kappa_h = 0, M_h = 1, S = phi^dagger (M^dagger M)^{-1} phi.
//! - Hasenbusch ratio (hep-lat/0107019): 0 < kappa_h < kappa, the heavier operator M_h
//!   divided out; the chain kappa_1 < ... < kappa_n < kappa of a card gives `two_flavor`
//!   at kappa_1 and ratios (kappa_{i+1} over kappa_i), whose product is det(M^dagger M).
//!
//! With even/odd preconditioning M and M_h are the Schur operators
//! M_hat = 1 - kappa^2 H_eo H_oe on the even sites (phi is an even half field); det M =
//! det M_hat for Wilson fermions, so the weight is the same.
//!
//! Heatbath: with eta Gaussian (<|eta|^2> = 1 per component), phi = M_h^{-dagger} M^dagger eta
//! gives S = eta^dagger eta. Force: with psi = M_h^dagger phi, X = (M^dagger M)^{-1} psi and
//! Y = M X, dS = 2 Re(phi^dagger dM_h X) - 2 Re(Y^dagger dM X), the derivatives dM coming from
//! the operator ([`FermionMatrix::add_derivative`]).
//!
//! The terms are generic over the fermion [`Discretization`] (Wilson; the clover term and
//! backend operators plug in the same way), whose operators M(kappa) they build per call.

use super::Monomial;
use crate::backend::cpu::PackedGroup;
use crate::checkerboard::Checkerboard;
use crate::dirac::solve::normal_solve;
use crate::dirac::{Boundary, Discretization, FermionMatrix, FermionOperator, Operator, Wilson};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::rng::{Purpose, StreamKey};
use crate::solver::SolverParams;
use crate::spinor::{Sites, SpinorField};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Parameters of one pseudofermion term.
#[derive(Clone, Debug, PartialEq)]
pub struct PseudofermionParams {
    /// Hopping parameter kappa of M.
    pub kappa: f64,
    /// kappa_h of the divided-out operator (0: plain two-flavour term).
    pub kappa_heavy: f64,
    /// Fermion boundary phase in time.
    pub boundary: Boundary,
    /// Even/odd preconditioning.
    pub even_odd: bool,
    /// Stopping rule of the solves.
    pub solver: SolverParams,
    /// Solve with f32 iterations and f64 reliable updates ([`crate::solver::mixed_cg`]).
    pub mixed_precision: bool,
}

/// A two-flavour pseudofermion term (see the module docs) of the fermion discretization D,
/// S spin components.
pub struct Pseudofermion<G: PackedGroup, const S: usize, D: Discretization<G, S> = Wilson> {
    name: String,
    params: PseudofermionParams,
    fermions: D,
    /// Index of this term among the run's pseudofermion fields (separates their noise).
    stream: u64,
    phi: Option<SpinorField<G, S>>,
    iterations: AtomicUsize,
}

impl<G: PackedGroup, const S: usize> Pseudofermion<G, S> {
    /// A term of Wilson fermions (with the boundary phase of `params`) named `name` on the
    /// layout `cb`; `stream` distinguishes the heatbath noise of the run's pseudofermion terms.
    pub fn new(name: &str, params: PseudofermionParams, cb: Checkerboard, stream: u64) -> Self {
        let fermions = Wilson::new(cb, params.boundary);
        Self::with_discretization(name, params, fermions, stream)
    }
}

impl<G: PackedGroup, const S: usize, D: Discretization<G, S>> Pseudofermion<G, S, D> {
    /// A term of the fermions `fermions` named `name` (`params.boundary` is the
    /// discretization's business here); `stream` distinguishes the heatbath noise of the run's
    /// pseudofermion terms.
    pub fn with_discretization(name: &str, params: PseudofermionParams, fermions: D, stream: u64) -> Self {
        Pseudofermion {
            name: name.into(),
            params,
            fermions,
            stream,
            phi: None,
            iterations: AtomicUsize::new(0),
        }
    }

    /// M x, or M^dagger x when `dagger` (M_hat on even halves with even/odd).
    fn apply(
        &self,
        w: &impl FermionOperator<G, S>,
        x: &SpinorField<G, S>,
        dagger: bool,
    ) -> SpinorField<G, S> {
        let mut y = x.zeros_like();
        w.apply_as(self.params.even_odd, dagger, x, &mut y);
        y
    }

    /// X = (M^dagger M)^{-1} psi, counting the iterations.
    fn normal_solve(
        &self,
        w: &impl FermionMatrix<G, S>,
        psi: &SpinorField<G, S>,
    ) -> Result<SpinorField<G, S>> {
        let form = if self.params.even_odd { Operator::SchurNormal } else { Operator::FullNormal };
        let (x, report) = normal_solve(w, form, psi, None, self.params.mixed_precision, &self.params.solver)?;
        self.iterations.fetch_add(report.iterations, Ordering::Relaxed);
        Ok(x)
    }

    /// The divided-out operator M_h on u; None for a plain two-flavour term.
    fn heavy<'a>(&'a self, u: &'a GaugeField<G>) -> Result<Option<D::Operator<'a>>> {
        let kappa = self.params.kappa_heavy;
        if kappa == 0.0 { Ok(None) } else { self.fermions.operator(u, kappa).map(Some) }
    }

    /// psi = M_h^dagger phi (phi itself for a plain two-flavour term, `heavy` None).
    fn psi(&self, heavy: Option<&D::Operator<'_>>) -> Result<SpinorField<G, S>> {
        let phi = self.phi()?;
        Ok(heavy.map_or_else(|| phi.clone(), |h| self.apply(h, phi, true)))
    }

    /// The streams of the heatbath noise of trajectory `update`: purpose Pseudofermion,
    /// derived for this term's stream index.
    fn noise_key(&self, seed: u64, update: u64) -> StreamKey {
        StreamKey::new(seed, Purpose::Pseudofermion, update).derive(self.stream)
    }

    /// The pseudofermion field; an error before the first heatbath.
    fn phi(&self) -> Result<&SpinorField<G, S>> {
        self.phi.as_ref().ok_or_else(|| {
            Error::Config(format!("pseudofermion term {:?}: used before its heatbath (refresh)", self.name))
        })
    }
}

impl<G: PackedGroup, const S: usize, D: Discretization<G, S>> Monomial<GaugeField<G>>
    for Pseudofermion<G, S, D>
{
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &GaugeField<G>) -> Result<f64> {
        let w = self.fermions.operator(u, self.params.kappa)?;
        let psi = self.psi(self.heavy(u)?.as_ref())?;
        let x = self.normal_solve(&w, &psi)?;
        Ok(psi.dot(&x).re)
    }

    fn add_force(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) -> Result<()> {
        let w = self.fermions.operator(u, self.params.kappa)?;
        let heavy = self.heavy(u)?;
        let x = self.normal_solve(&w, &self.psi(heavy.as_ref())?)?;
        let y = self.apply(&w, &x, false);
        // F = -dS = 2 Re(Y^dagger dM X) - 2 Re(phi^dagger dM_h X)
        let even_odd = self.params.even_odd;
        w.add_derivative(even_odd, &y, &x, 2.0 * h, p);
        if let Some(heavy) = heavy {
            heavy.add_derivative(even_odd, self.phi()?, &x, -2.0 * h, p);
        }
        Ok(())
    }

    fn refresh(&mut self, u: &GaugeField<G>, seed: u64, update: u64) -> Result<f64> {
        let key = self.noise_key(seed, update);
        let sites = if self.params.even_odd { Sites::Parity(0) } else { Sites::All };
        let eta = SpinorField::<G, S>::gaussian(self.fermions.checkerboard(), sites, &key);
        let w = self.fermions.operator(u, self.params.kappa)?;
        let mdag_eta = self.apply(&w, &eta, true);
        let phi = match self.heavy(u)? {
            None => mdag_eta,
            // M_h^dagger phi = M^dagger eta  <=>  M_h (gamma5 phi) = gamma5 M^dagger eta
            Some(heavy) => {
                let mut rhs = mdag_eta;
                rhs.gamma5();
                // (M_h^dagger M_h)^-1 M_h^dagger rhs = M_h^-1 rhs
                let mut phi = self.normal_solve(&heavy, &self.apply(&heavy, &rhs, true))?;
                phi.gamma5();
                phi
            }
        };
        self.phi = Some(phi);
        // S = phi^dagger M_h (M^dagger M)^-1 M_h^dagger phi = eta^dagger eta
        Ok(eta.norm_sqr())
    }

    fn take_solver_iterations(&self) -> usize {
        self.iterations.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::finite_difference::{assert_force_matches, sample_components};
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use std::sync::Arc;

    /// Every sampled force component agrees with a fourth-order central difference of the
    /// action (pseudofermion field fixed), relative to the force scale, to 1e-6.
    fn check_force<G: PackedGroup, const S: usize>(
        dims: &[usize],
        kappa: f64,
        kappa_heavy: f64,
        even_odd: bool,
    ) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 3);
        let params = PseudofermionParams {
            kappa,
            kappa_heavy,
            boundary: Boundary::ANTIPERIODIC,
            even_odd,
            solver: SolverParams { tolerance: 1e-14, max_iterations: 10_000 },
            mixed_precision: false,
        };
        let cb = Checkerboard::for_fields(lat.clone(), even_odd).unwrap();
        let mut term = Pseudofermion::<G, S>::new("pf", params, cb, 0);
        // the heatbath's action eta^dagger eta is the action of the drawn field
        let drawn = term.refresh(&u, 9, 1).unwrap();
        let action = term.action(&u).unwrap();
        assert!((drawn - action).abs() < 1e-10 * action, "refresh {drawn}, action {action}");
        let mut f = MomentumField::<G>::zeros(&lat);
        term.add_force(&u, 1.0, &mut f).unwrap();
        let label = format!("{} {dims:?} kappa {kappa} kappa_h {kappa_heavy} e/o {even_odd}", G::NAME);
        let components = sample_components(&lat, G::ALG_DIM);
        assert_force_matches(&u, &f, components, 1e-3, |v| term.action(v).unwrap(), &label);
        assert!(term.take_solver_iterations() > 0);
        assert_eq!(term.take_solver_iterations(), 0);
    }

    #[test]
    fn forces_match_finite_differences() {
        for even_odd in [false, true] {
            for kappa_heavy in [0.0, 0.15] {
                check_force::<U1, 2>(&[4, 8], 0.22, kappa_heavy, even_odd);
                check_force::<Su3, 2>(&[4, 4], 0.2, kappa_heavy, even_odd);
            }
            for kappa_heavy in [0.0, 0.08] {
                check_force::<U1, 4>(&[2, 2, 4, 4], 0.11, kappa_heavy, even_odd);
                check_force::<Su3, 4>(&[2, 2, 4, 4], 0.11, kappa_heavy, even_odd);
            }
        }
    }

    /// Without even/odd preconditioning the terms run on lattices whose packed lanes mix
    /// parities (the natural layout).
    #[test]
    fn forces_match_finite_differences_on_any_even_extents() {
        for dims in [[6, 6], [2, 6]] {
            let lat = Arc::new(Lattice::new(&dims).unwrap());
            assert!(!Checkerboard::for_fields(lat, false).unwrap().is_even_odd());
        }
        for kappa_heavy in [0.0, 0.15] {
            check_force::<U1, 2>(&[6, 6], 0.24, kappa_heavy, false);
            check_force::<Su3, 2>(&[2, 6], 0.2, kappa_heavy, false);
        }
        check_force::<U1, 4>(&[2, 2, 2, 6], 0.11, 0.08, false);
        check_force::<Su3, 4>(&[2, 2, 2, 6], 0.11, 0.0, false);
    }

    #[test]
    fn use_before_the_heatbath_is_an_error() {
        let lat = Arc::new(Lattice::new(&[4, 4]).unwrap());
        let u = GaugeField::<U1>::cold(lat.clone());
        let params = PseudofermionParams {
            kappa: 0.2,
            kappa_heavy: 0.0,
            boundary: Boundary::ANTIPERIODIC,
            even_odd: true,
            solver: SolverParams { tolerance: 1e-10, max_iterations: 100 },
            mixed_precision: false,
        };
        let term = Pseudofermion::<U1, 2>::new("quarks", params, Checkerboard::new(lat.clone()).unwrap(), 0);
        let e = term.action(&u).unwrap_err().to_string();
        assert!(e.contains("\"quarks\"") && e.contains("before its heatbath"), "{e}");
        let mut p = MomentumField::<U1>::zeros(&lat);
        assert!(term.add_force(&u, 1.0, &mut p).is_err());
        assert_eq!(p, MomentumField::<U1>::zeros(&lat));
    }

    /// The heatbath identity S = eta^dagger eta in the natural layout (6x6, no even/odd
    /// preconditioning).
    #[test]
    fn heatbath_action_is_the_noise_norm_on_6x6() {
        let lat = Arc::new(Lattice::new(&[6, 6]).unwrap());
        let u = GaugeField::<U1>::hot(lat.clone(), 5);
        let cb = Checkerboard::for_fields(lat.clone(), false).unwrap();
        assert!(!cb.is_even_odd());
        for (kappa_heavy, mixed_precision) in [(0.0, false), (0.2, false), (0.2, true)] {
            let params = PseudofermionParams {
                kappa: 0.24,
                kappa_heavy,
                boundary: Boundary::ANTIPERIODIC,
                even_odd: false,
                solver: SolverParams { tolerance: 1e-12, max_iterations: 10_000 },
                mixed_precision,
            };
            let mut term = Pseudofermion::<U1, 2>::new("pf", params, cb.clone(), 2);
            term.refresh(&u, 4, 7).unwrap();
            let eta = SpinorField::<U1, 2>::gaussian(&cb, Sites::All, &term.noise_key(4, 7));
            let s = term.action(&u).unwrap();
            assert!(
                (s - eta.norm_sqr()).abs() < 1e-8 * s,
                "kappa_h {kappa_heavy}: {s} vs {}",
                eta.norm_sqr()
            );
            assert!(term.take_solver_iterations() > 0);
        }
    }

    /// The heatbath draws phi with S = eta^dagger eta: <S> = (number of components) exactly,
    /// and the action right after a refresh equals |eta|^2 of the same draw.
    #[test]
    fn heatbath_action_is_the_noise_norm() {
        let lat = Arc::new(Lattice::new(&[8, 8]).unwrap());
        let u = GaugeField::<U1>::hot(lat.clone(), 5);
        let cases = [(false, 0.0, false), (true, 0.0, false), (false, 0.2, false), (true, 0.2, false)];
        // mixed-precision solves reach the same f64 accuracy
        let mixed = [(false, 0.0, true), (true, 0.2, true)];
        for (even_odd, kappa_heavy, mixed_precision) in cases.into_iter().chain(mixed) {
            let params = PseudofermionParams {
                kappa: 0.24,
                kappa_heavy,
                boundary: Boundary::ANTIPERIODIC,
                even_odd,
                solver: SolverParams { tolerance: 1e-12, max_iterations: 10_000 },
                mixed_precision,
            };
            let cb = Checkerboard::new(lat.clone()).unwrap();
            let mut term = Pseudofermion::<U1, 2>::new("pf", params, cb.clone(), 2);
            term.refresh(&u, 4, 7).unwrap();
            let key = term.noise_key(4, 7);
            let sites = if even_odd { Sites::Parity(0) } else { Sites::All };
            let eta = SpinorField::<U1, 2>::gaussian(&cb, sites, &key);
            let s = term.action(&u).unwrap();
            assert!(
                (s - eta.norm_sqr()).abs() < 1e-8 * s,
                "e/o {even_odd} kappa_h {kappa_heavy} mixed {mixed_precision}: {s} vs {}",
                eta.norm_sqr()
            );
        }
    }
}
