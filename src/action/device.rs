//! Monomials on the CUDA backend's device-resident gauge field (feature `cuda`): the gauge
//! action and the two-flavour even/odd Wilson pseudofermion terms (plain and Hasenbusch
//! ratio), with the conventions, heatbath and force of [`super::gauge`] and [`super::fermion`].
//! With [`DeviceGauge`] as the phase space, `Hmc<DeviceGauge>` and every integrator run a
//! whole trajectory with links, momenta and pseudofermions on the device; solves run there
//! ([`crate::backend::cuda::wilson`]), and only the heatbath noise and the momenta, drawn from
//! the CPU's site streams so that a device chain follows the CPU's to round-off, are uploaded
//! at the start of a trajectory.

use super::Monomial;
use super::fermion::PseudofermionParams;
use crate::backend::cuda::gauge::{DeviceGauge, DeviceMomenta};
use crate::backend::cuda::layout;
use crate::backend::cuda::spinor::DeviceSpinor;
use crate::backend::cuda::wilson::{DeviceNormal, DeviceWilson, LinkStorage};
use crate::checkerboard::Checkerboard;
use crate::error::{Error, Result};
use crate::geometry::Lattice;
use crate::rng::{Purpose, StreamKey};
use crate::solver::{SolverVector, cg, mixed_cg};
use crate::spinor::{Sites, SpinorField};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The gauge action (Wilson, Symanzik or Iwasaki by its rectangle coefficient) on the device.
#[derive(Clone, Debug)]
pub struct DeviceGaugeAction {
    name: String,
    beta: f64,
    c1: f64,
}

impl DeviceGaugeAction {
    /// The action of `kind` at coupling `beta`, named `name`.
    pub fn new(name: &str, kind: super::GaugeActionKind, beta: f64) -> Self {
        DeviceGaugeAction { name: name.into(), beta, c1: kind.c1() }
    }
}

impl Monomial<DeviceGauge> for DeviceGaugeAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &DeviceGauge) -> Result<f64> {
        u.action(self.beta, self.c1)
    }

    fn add_force(&self, u: &DeviceGauge, h: f64, p: &mut DeviceMomenta) -> Result<()> {
        u.add_force(self.beta, self.c1, h, p)
    }
}

/// A two-flavour even/odd Wilson pseudofermion term on the device: S = phi^dagger M_h
/// (M_hat^dagger M_hat)^{-1} M_h^dagger phi as in [`super::fermion`], phi an even half field
/// resident on the device.
#[derive(Debug)]
pub struct DevicePseudofermion {
    name: String,
    params: PseudofermionParams,
    /// The operators' link storage.
    links: LinkStorage,
    /// The even/odd layout of the CPU fields the heatbath noise is drawn in.
    cb: Checkerboard,
    stream: u64,
    phi: Option<DeviceSpinor<f64>>,
    iterations: AtomicUsize,
}

impl DevicePseudofermion {
    /// The term named `name` with `params` on `lattice`, its operators' links held as `links`
    /// says; `stream` distinguishes the heatbath noise of the run's terms (as the CPU's). An
    /// error without even/odd preconditioning, which is what the device runs.
    pub fn new(
        name: &str,
        params: PseudofermionParams,
        links: LinkStorage,
        lattice: &Arc<Lattice>,
        stream: u64,
    ) -> Result<Self> {
        if !params.even_odd {
            return Err(Error::Config(format!(
                "pseudofermion term {name:?}: the CUDA backend runs even/odd preconditioned fermions (even_odd = true)"
            )));
        }
        let cb = Checkerboard::new(lattice.clone())?;
        Ok(DevicePseudofermion {
            name: name.into(),
            params,
            links,
            cb,
            stream,
            phi: None,
            iterations: AtomicUsize::new(0),
        })
    }

    fn operator(&self, u: &DeviceGauge, kappa: f64) -> Result<DeviceWilson<f64>> {
        DeviceWilson::on(u, kappa, self.theta()?, self.links)
    }

    /// The boundary phase; open boundaries do not run on the device.
    fn theta(&self) -> Result<f64> {
        self.params
            .boundary
            .theta()
            .ok_or_else(|| Error::Config("open boundaries do not run on the CUDA backend yet".into()))
    }

    /// M_hat x or M_hat^dagger x.
    fn apply(&self, w: &DeviceWilson<f64>, x: &DeviceSpinor<f64>, dagger: bool) -> Result<DeviceSpinor<f64>> {
        let (mut y, mut odd) = (x.zeroed(), DeviceSpinor::zeros(x.device(), w.half_entries())?);
        w.apply_schur(dagger, x, &mut y, &mut odd)?;
        Ok(y)
    }

    /// The divided-out operator M_h on u; None for a plain two-flavour term.
    fn heavy(&self, u: &DeviceGauge) -> Result<Option<DeviceWilson<f64>>> {
        let kappa = self.params.kappa_heavy;
        if kappa == 0.0 { Ok(None) } else { self.operator(u, kappa).map(Some) }
    }

    /// X = (M_hat^dagger M_hat)^{-1} psi for the Schur operator of `w` (on u), in f64 or mixed
    /// precision, counting the iterations.
    fn normal_solve(
        &self,
        u: &DeviceGauge,
        w: &DeviceWilson<f64>,
        psi: &DeviceSpinor<f64>,
    ) -> Result<DeviceSpinor<f64>> {
        let normal = DeviceNormal::new(w, true)?;
        let (x, report) = if self.params.mixed_precision {
            let single = DeviceWilson::<f32>::on(u, w.kappa(), self.theta()?, self.links)?;
            mixed_cg(&normal, &DeviceNormal::new(&single, true)?, psi, None, &self.params.solver)?
        } else {
            cg(&normal, psi, None, &self.params.solver)?
        };
        self.iterations.fetch_add(report.iterations, Ordering::Relaxed);
        Ok(x)
    }

    /// psi = M_h^dagger phi (phi for a plain two-flavour term, `heavy` None).
    fn psi(&self, heavy: Option<&DeviceWilson<f64>>) -> Result<DeviceSpinor<f64>> {
        let phi = self.phi()?;
        match heavy {
            None => phi.try_clone(),
            Some(h) => self.apply(h, phi, true),
        }
    }

    fn phi(&self) -> Result<&DeviceSpinor<f64>> {
        self.phi.as_ref().ok_or_else(|| {
            Error::Config(format!("pseudofermion term {:?}: used before its heatbath (refresh)", self.name))
        })
    }
}

impl Monomial<DeviceGauge> for DevicePseudofermion {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &DeviceGauge) -> Result<f64> {
        let w = self.operator(u, self.params.kappa)?;
        let psi = self.psi(self.heavy(u)?.as_ref())?;
        let x = self.normal_solve(u, &w, &psi)?;
        Ok(psi.dot(&x).re)
    }

    fn add_force(&self, u: &DeviceGauge, h: f64, p: &mut DeviceMomenta) -> Result<()> {
        let w = self.operator(u, self.params.kappa)?;
        let heavy = self.heavy(u)?;
        let x = self.normal_solve(u, &w, &self.psi(heavy.as_ref())?)?;
        let y = self.apply(&w, &x, false)?;
        // F = -dS = 2 Re(Y^dagger dM X) - 2 Re(phi^dagger dM_h X)
        w.add_schur_derivative(&y, &x, 2.0 * h, p)?;
        if let Some(heavy) = heavy {
            heavy.add_schur_derivative(self.phi()?, &x, -2.0 * h, p)?;
        }
        Ok(())
    }

    fn refresh(&mut self, u: &DeviceGauge, seed: u64, update: u64) -> Result<f64> {
        // the CPU's noise (the same streams), uploaded as an even half field
        let key = StreamKey::new(seed, Purpose::Pseudofermion, update).derive(self.stream);
        let eta = SpinorField::gaussian(&self.cb, Sites::Parity(0), &key);
        let full = SpinorField::from_halves(&eta, &SpinorField::half(&self.cb));
        let values = layout::half(&layout::spinor_of(&full, &self.cb), &u.dims(), 0);
        let device_eta = DeviceSpinor::<f64>::upload(u.device(), &values)?;
        let w = self.operator(u, self.params.kappa)?;
        let mdag_eta = self.apply(&w, &device_eta, true)?;
        let phi = match self.heavy(u)? {
            None => mdag_eta,
            // M_h^dagger phi = M^dagger eta  <=>  M_h (gamma5 phi) = gamma5 M^dagger eta
            Some(heavy) => {
                let mut rhs = mdag_eta;
                heavy.gamma5(&mut rhs)?;
                // (M_h^dagger M_h)^-1 M_h^dagger rhs = M_h^-1 rhs
                let mut phi = self.normal_solve(u, &heavy, &self.apply(&heavy, &rhs, true)?)?;
                heavy.gamma5(&mut phi)?;
                phi
            }
        };
        self.phi = Some(phi);
        // S = eta^dagger eta, exactly as the CPU sums it
        Ok(eta.norm_sqr())
    }

    fn take_solver_iterations(&self) -> usize {
        self.iterations.swap(0, Ordering::Relaxed)
    }
}
