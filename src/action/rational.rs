//! One flavour of Wilson or clover quarks by rational HMC: the weight det(M^dagger M)^{1/2}
//! (with even/odd preconditioning that of the Schur operator M_hat; the odd-site clover
//! determinant is its own term, [`super::clover`], with one flavour).
//!
//! With Q = gamma5 M (Hermitian, Q^2 = M^dagger M) and the Zolotarev approximation
//! R(x) = A prod_k (x + nu_k^2) / (x + mu_k^2) of 1/sqrt(x) on a range [a, b] that holds the
//! spectrum of Q^2 ([`crate::rational`]):
//! - action S = phi^dagger R(Q^2) phi = A (phi^dagger phi + sum_k r_k phi^dagger X_k),
//!   X_k = (Q^2 + mu_k^2)^{-1} phi from one multi-shift solve;
//! - force F = -dS = sum_k 2 A r_k Re(Y_k^dagger dM X_k), Y_k = M X_k;
//! - heatbath: R = B^dagger B with B = A^{1/2} prod_k (Q - i nu_k) / (Q - i mu_k) (the factors
//!   commute), so phi = B^{-1} eta gives S = eta^dagger eta; by partial fractions
//!   B^{-1} = A^{-1/2} (1 + sum_k s_k (Q + i nu_k) (Q^2 + nu_k^2)^{-1}),
//!   s_k = prod_l (i nu_k - i mu_l) / prod_{l != k} (i nu_k - i nu_l), one more multi-shift
//!   solve (openQCD's construction for its RHMC pseudofermions).
//!
//! The approximation's relative error delta biases the weight by a factor within
//! (1 +- delta)^{V'} per configuration; choose delta well below 1/V.

use super::Monomial;
use crate::backend::cpu::PackedGroup;
use crate::dirac::{
    Boundary, DiracOperator, Discretization, FermionMatrix, FermionOperator, Operator, Wilson,
};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::rational::Zolotarev;
use crate::rng::{Purpose, StreamKey};
use crate::solver::{SolverParams, SpectralBounds, extreme_eigenvalues, multishift_cg};
use crate::spinor::{Sites, SpinorField};
use num_complex::Complex64;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Parameters of a rational pseudofermion term.
#[derive(Clone, Debug, PartialEq)]
pub struct RationalParams {
    /// Hopping parameter of M.
    pub kappa: f64,
    /// Fermion boundary phase in time.
    pub boundary: Boundary,
    /// Even/odd preconditioning (M_hat in place of M).
    pub even_odd: bool,
    /// Stopping rule of the multi-shift solves.
    pub solver: SolverParams,
    /// The approximation of (M^dagger M)^{-1/2}.
    pub approximation: Zolotarev,
}

/// One flavour of the fermions D by rational HMC (module docs).
pub struct RationalPseudofermion<G: PackedGroup, const S: usize, D: Discretization<G, S> = Wilson> {
    name: String,
    params: RationalParams,
    fermions: D,
    /// Index among the run's pseudofermion fields (separates their noise).
    stream: u64,
    phi: Option<SpinorField<G, S>>,
    iterations: AtomicUsize,
}

impl<G: PackedGroup, const S: usize, D: Discretization<G, S>> RationalPseudofermion<G, S, D> {
    /// The term named `name` of the fermions `fermions` with `params`; `stream` separates its
    /// heatbath noise from the run's other pseudofermions.
    pub fn new(name: &str, params: RationalParams, fermions: D, stream: u64) -> Self {
        RationalPseudofermion {
            name: name.into(),
            params,
            fermions,
            stream,
            phi: None,
            iterations: AtomicUsize::new(0),
        }
    }

    /// Gaussian noise from `key` on the sites the term's fields live on (the even sites with
    /// even/odd): the heatbath's eta, the reweighting sources and the Lanczos start.
    fn noise(&self, key: &StreamKey) -> SpinorField<G, S> {
        let sites = if self.params.even_odd { Sites::Parity(0) } else { Sites::All };
        SpinorField::gaussian(self.fermions.checkerboard(), sites, key)
    }

    /// Q^2 as a linear operator: M_hat^dagger M_hat with even/odd, else M^dagger M.
    fn normal<'w>(&self, w: &'w impl FermionOperator<G, S>) -> DiracOperator<'w, G, S> {
        let form = if self.params.even_odd { Operator::SchurNormal } else { Operator::FullNormal };
        DiracOperator { op: w, form }
    }

    /// (Q^2 + s)^{-1} b for each shift s, one multi-shift solve, counting its iterations.
    fn shifted_solves(
        &self,
        w: &impl FermionOperator<G, S>,
        b: &SpinorField<G, S>,
        shifts: &[f64],
    ) -> Result<Vec<SpinorField<G, S>>> {
        let (xs, reports) = multishift_cg(&self.normal(w), shifts, b, &self.params.solver)?;
        let iterations = reports.iter().map(|r| r.iterations).max().unwrap_or(0);
        self.iterations.fetch_add(iterations, Ordering::Relaxed);
        Ok(xs)
    }

    /// M x (M_hat x with even/odd).
    fn apply(&self, w: &impl FermionOperator<G, S>, x: &SpinorField<G, S>) -> SpinorField<G, S> {
        let mut y = x.zeros_like();
        w.apply_as(self.params.even_odd, false, x, &mut y);
        y
    }

    fn phi(&self) -> Result<&SpinorField<G, S>> {
        self.phi.as_ref().ok_or_else(|| {
            Error::Config(format!("pseudofermion term {:?}: used before its heatbath (refresh)", self.name))
        })
    }

    /// R(Q^2) x = A (x + sum_k r_k (Q^2 + mu_k^2)^{-1} x), one multi-shift solve.
    fn apply_rational(
        &self,
        w: &impl FermionOperator<G, S>,
        x: &SpinorField<G, S>,
    ) -> Result<SpinorField<G, S>> {
        let fractions = self.params.approximation.partial_fractions();
        let shifts: Vec<f64> = fractions.iter().map(|&(_, mu)| mu).collect();
        let xs = self.shifted_solves(w, x, &shifts)?;
        let mut y = x.clone();
        for (xk, &(r, _)) in xs.iter().zip(&fractions) {
            y.axpy(Complex64::new(r, 0.0), xk);
        }
        y.scale(Complex64::new(self.params.approximation.scale, 0.0));
        Ok(y)
    }

    /// Z x = (Q^2 R(Q^2)^2 - 1) x: two multi-shift solves and one Q^2.
    fn apply_error(
        &self,
        w: &impl FermionOperator<G, S>,
        x: &SpinorField<G, S>,
    ) -> Result<SpinorField<G, S>> {
        let r2x = self.apply_rational(w, &self.apply_rational(w, x)?)?;
        let mut z = x.zeros_like();
        w.apply_normal(self.params.even_odd, &r2x, &mut z);
        z.axpy(Complex64::new(-1.0, 0.0), x);
        Ok(z)
    }

    /// X_k = (Q^2 + mu_k^2)^{-1} phi and the residues r_k.
    fn solutions(&self, w: &impl FermionOperator<G, S>) -> Result<(Vec<SpinorField<G, S>>, Vec<f64>)> {
        let fractions = self.params.approximation.partial_fractions();
        let shifts: Vec<f64> = fractions.iter().map(|&(_, mu)| mu).collect();
        let xs = self.shifted_solves(w, self.phi()?, &shifts)?;
        Ok((xs, fractions.iter().map(|&(r, _)| r).collect()))
    }
}

impl<G: PackedGroup, const S: usize, D: Discretization<G, S>> Monomial<GaugeField<G>>
    for RationalPseudofermion<G, S, D>
{
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &GaugeField<G>) -> Result<f64> {
        let w = self.fermions.operator(u, self.params.kappa)?;
        let phi = self.phi()?;
        let (xs, residues) = self.solutions(&w)?;
        let sum: f64 = xs.iter().zip(&residues).map(|(x, r)| r * phi.dot(x).re).sum();
        Ok(self.params.approximation.scale * (phi.norm_sqr() + sum))
    }

    fn add_force(&self, u: &GaugeField<G>, h: f64, p: &mut MomentumField<G>) -> Result<()> {
        let w = self.fermions.operator(u, self.params.kappa)?;
        let (xs, residues) = self.solutions(&w)?;
        let scale = self.params.approximation.scale;
        for (x, r) in xs.iter().zip(&residues) {
            let y = self.apply(&w, x);
            w.add_derivative(self.params.even_odd, &y, x, 2.0 * h * scale * r, p);
        }
        Ok(())
    }

    fn refresh(&mut self, u: &GaugeField<G>, seed: u64, update: u64) -> Result<f64> {
        let key = StreamKey::new(seed, Purpose::Pseudofermion, update).derive(self.stream);
        let eta = self.noise(&key);
        let w = self.fermions.operator(u, self.params.kappa)?;
        let z = &self.params.approximation;
        let (nu, mu): (Vec<f64>, Vec<f64>) = (
            z.numerator_shifts.iter().map(|v| v.sqrt()).collect(),
            z.denominator_shifts.iter().map(|v| v.sqrt()).collect(),
        );
        let xs = self.shifted_solves(&w, &eta, &z.numerator_shifts)?;
        let i = Complex64::new(0.0, 1.0);
        let mut phi = eta.clone();
        for (k, x) in xs.iter().enumerate() {
            let numerator: Complex64 = mu.iter().map(|&m| i * (nu[k] - m)).product();
            let denominator: Complex64 =
                nu.iter().enumerate().filter(|&(l, _)| l != k).map(|(_, &n)| i * (nu[k] - n)).product();
            let s = numerator / denominator;
            // (Q + i nu_k) x
            let mut qx = self.apply(&w, x);
            qx.gamma5();
            qx.axpy(i * nu[k], x);
            phi.axpy(s, &qx);
        }
        phi.scale(Complex64::new(1.0 / z.scale.sqrt(), 0.0));
        self.phi = Some(phi);
        Ok(eta.norm_sqr())
    }

    fn take_solver_iterations(&self) -> usize {
        self.iterations.swap(0, Ordering::Relaxed)
    }
}

/// What a run asks of a rational term besides its monomial: the check of the approximation's
/// range against the spectrum, and the reweighting factor of its error. Object safe, so that a
/// run holds the terms of any discretisation and dimension.
pub trait RationalTerm<G: PackedGroup>: Monomial<GaugeField<G>> {
    /// The approximation of (Q^2)^{-1/2}.
    fn approximation(&self) -> &Zolotarev;

    /// The smallest and largest eigenvalue of Q^2 = M^dagger M (M_hat^dagger M_hat with
    /// even/odd) on the gauge field `u`, by Lanczos from the Gaussian noise of `key`, converged
    /// to `tolerance` ([`crate::solver::lanczos`]): what the approximation's range must hold.
    fn spectral_bounds(
        &self,
        u: &GaugeField<G>,
        key: &StreamKey,
        tolerance: f64,
        max_iterations: usize,
    ) -> Result<SpectralBounds>;

    /// One stochastic estimate of the reweighting factor of the approximation's error on the
    /// gauge field `u`, from the Gaussian noise of `key` (openQCD's construction, its rwrat
    /// module): the exact weight det(Q^2)^{1/2} over the simulated det R(Q^2)^{-1} is
    /// W = det(1 + Z)^{1/2}, Z = Q^2 R(Q^2)^2 - 1, and for eta with density exp(-eta^dagger eta)
    /// the mean of exp(-eta^dagger [(1 + Z)^{-1/2} - 1] eta) is W. The bracket is the series
    /// sum_k binom(-1/2, k) Z^k, summed until a term falls below 1e-14 of the first; an error
    /// when it does not converge within 30 terms (then |Z| is not small: the spectrum of Q^2
    /// reaches outside the range of the approximation). Z x is known to the solver tolerance
    /// relative to x, so that tolerance must lie well below delta.
    fn reweighting_factor(&self, u: &GaugeField<G>, key: &StreamKey) -> Result<f64>;
}

impl<G: PackedGroup, const S: usize, D: Discretization<G, S>> RationalTerm<G>
    for RationalPseudofermion<G, S, D>
{
    fn approximation(&self) -> &Zolotarev {
        &self.params.approximation
    }

    fn reweighting_factor(&self, u: &GaugeField<G>, key: &StreamKey) -> Result<f64> {
        let eta = self.noise(key);
        let w = self.fermions.operator(u, self.params.kappa)?;
        let (mut coefficient, mut z, mut sum, mut first) = (1.0, eta.clone(), 0.0, None);
        for k in 1..=30 {
            coefficient *= -(2 * k - 1) as f64 / (2 * k) as f64;
            z = self.apply_error(&w, &z)?;
            let term = coefficient * eta.dot(&z).re;
            sum += term;
            let first = *first.get_or_insert(term.abs());
            if term.abs() <= 1e-14 * first {
                return Ok((-sum).exp());
            }
        }
        Err(Error::Numerical(format!(
            "pseudofermion term {:?}: the reweighting series of the rational approximation does not \
             converge; the spectrum of M^dagger M reaches outside its range [{}, {}]",
            self.name, self.params.approximation.range.0, self.params.approximation.range.1
        )))
    }

    fn spectral_bounds(
        &self,
        u: &GaugeField<G>,
        key: &StreamKey,
        tolerance: f64,
        max_iterations: usize,
    ) -> Result<SpectralBounds> {
        let w = self.fermions.operator(u, self.params.kappa)?;
        extreme_eigenvalues(&self.normal(&w), &self.noise(key), tolerance, max_iterations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::finite_difference::{assert_force_matches, sample_components};
    use crate::checkerboard::Checkerboard;
    use crate::dirac::WilsonOperator;
    use crate::geometry::Lattice;
    use crate::group::{Su3, U1};
    use faer::Mat;
    use std::sync::Arc;

    fn params(even_odd: bool) -> RationalParams {
        RationalParams {
            kappa: 0.12,
            boundary: Boundary::ANTIPERIODIC,
            even_odd,
            solver: SolverParams { tolerance: 1e-13, max_iterations: 10_000 },
            approximation: Zolotarev::new(16, 1e-3, 10.0).unwrap(),
        }
    }

    /// The heatbath returns the action of the field it draws (S = eta^dagger eta to the solver
    /// tolerance and the approximation's error), and the force matches a fourth-order central
    /// difference of the action within 1e-6 of the largest component (U(1) 2D, SU(3) 4D, with
    /// and without even/odd).
    fn check_heatbath_and_force<G: PackedGroup, const S: usize>(dims: &[usize]) {
        let lat = Arc::new(Lattice::new(dims).unwrap());
        let u = GaugeField::<G>::hot(lat.clone(), 3);
        for even_odd in [true, false] {
            let cb = Checkerboard::new(lat.clone()).unwrap();
            let params = params(even_odd);
            assert!(params.approximation.delta < 1e-10);
            let mut term = RationalPseudofermion::<G, S>::new(
                "rhmc",
                params,
                Wilson::new(cb, Boundary::ANTIPERIODIC),
                0,
            );
            let drawn = term.refresh(&u, 9, 1).unwrap();
            let action = term.action(&u).unwrap();
            assert!(
                (drawn - action).abs() < 1e-9 * action,
                "e/o {even_odd}: refresh {drawn}, action {action}"
            );
            let mut f = MomentumField::<G>::zeros(&lat);
            term.add_force(&u, 1.0, &mut f).unwrap();
            let components = sample_components(&lat, G::ALG_DIM);
            let label = format!("rational, e/o {even_odd}");
            assert_force_matches(&u, &f, components, 1e-3, |v| term.action(v).unwrap(), &label);
        }
    }

    #[test]
    fn rational_heatbath_and_force() {
        check_heatbath_and_force::<U1, 2>(&[4, 8]);
        check_heatbath_and_force::<Su3, 4>(&[4, 4, 4, 4]);
    }

    /// The eigenvalues of M^dagger M (U(1) 4 x 4, full operator) from the dense matrix.
    fn dense_normal_spectrum(u: &GaugeField<U1>, cb: &Checkerboard) -> (Vec<f64>, Mat<Complex64>) {
        let w = WilsonOperator::<U1, 2>::new(u, cb, 0.12, Boundary::ANTIPERIODIC).unwrap();
        let m = crate::dirac::dense::dense_matrix(&w);
        let normal: Mat<Complex64> = m.adjoint() * &m;
        let eigen = normal.self_adjoint_eigen(faer::Side::Lower).unwrap();
        ((0..m.nrows()).map(|j| eigen.S()[j].re).collect(), eigen.U().to_owned())
    }

    /// The mean of the reweighting estimates over many noise fields equals the exact factor
    /// prod_j lambda_j^{1/2} R(lambda_j) over the eigenvalues of M^dagger M, for an
    /// approximation of low degree (delta of a few per cent, so that W differs from 1), and
    /// Lanczos finds the smallest and largest of those eigenvalues.
    #[test]
    fn reweighting_factor_and_spectral_bounds_match_the_dense_spectrum() {
        let lat = Arc::new(Lattice::new(&[4, 4]).unwrap());
        let u = GaugeField::<U1>::hot(lat.clone(), 4);
        let cb = Checkerboard::new(lat.clone()).unwrap();
        let mut params = params(false);
        params.approximation = Zolotarev::new(3, 1e-3, 10.0).unwrap();
        params.solver.tolerance = 1e-11;
        let term = RationalPseudofermion::<U1, 2>::new(
            "rhmc",
            params.clone(),
            Wilson::new(cb.clone(), Boundary::ANTIPERIODIC),
            0,
        );
        let (lambda, _) = dense_normal_spectrum(&u, &cb);
        let exact: f64 = lambda.iter().map(|&l| l.sqrt() * params.approximation.eval(l)).product();
        let n = 400;
        let samples: Vec<f64> = (0..n)
            .map(|k| term.reweighting_factor(&u, &StreamKey::new(5, Purpose::Noise, k)).unwrap())
            .collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let err = (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / ((n - 1) * n) as f64).sqrt();
        println!("delta {}: W = {mean} +- {err}, exact {exact}", params.approximation.delta);
        assert!(((mean - exact) / err).abs() < 3.5, "W = {mean} +- {err}, exact {exact}");
        assert!((exact - 1.0).abs() > 10.0 * err, "the factor must differ from 1 to test anything");
        let bounds = term.spectral_bounds(&u, &StreamKey::new(5, Purpose::Noise, 0), 1e-10, 500).unwrap();
        let (lo, hi) = (lambda[0], lambda[lambda.len() - 1]);
        assert!(
            (bounds.min - lo).abs() < 1e-8 * hi && (bounds.max - hi).abs() < 1e-8 * hi,
            "{bounds:?}: [{lo}, {hi}]"
        );
    }

    /// The action equals phi^dagger (M^dagger M)^{-1/2} phi from the dense matrix's
    /// eigen-decomposition (U(1) 4 x 4, full operator) within the approximation's error.
    #[test]
    fn rational_action_is_the_inverse_square_root() {
        let lat = Arc::new(Lattice::new(&[4, 4]).unwrap());
        let u = GaugeField::<U1>::hot(lat.clone(), 4);
        let cb = Checkerboard::new(lat.clone()).unwrap();
        let mut term = RationalPseudofermion::<U1, 2>::new(
            "rhmc",
            params(false),
            Wilson::new(cb.clone(), Boundary::ANTIPERIODIC),
            0,
        );
        term.refresh(&u, 2, 0).unwrap();
        let action = term.action(&u).unwrap();
        let (values, vectors) = dense_normal_spectrum(&u, &cb);
        let phi = term.phi().unwrap();
        let n = lat.volume() * 2;
        let v: Vec<Complex64> = (0..n).map(|k| phi.get(&cb, k / 2, k % 2, 0)).collect();
        let mut exact = 0.0;
        for j in 0..n {
            let lambda = values[j];
            assert!((1e-3..10.0).contains(&lambda), "eigenvalue {lambda} outside the range");
            let overlap: Complex64 = (0..n).map(|k| vectors[(k, j)].conj() * v[k]).sum();
            exact += overlap.norm_sqr() / lambda.sqrt();
        }
        assert!((action - exact).abs() < 1e-9 * exact, "rational {action}, exact {exact}");
    }
}
