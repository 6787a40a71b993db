//! HMC in the latent variables of a flow (arXiv 2207.08945 calls it "flowed HMC"; the idea
//! goes back to neural-transport HMC, Hoffman et al. 2019): with x = f(z), the target
//! exp(-S(x)) dx is exp(-S~(z)) dz with the pulled-back action
//!
//!   S~(z) = S(f(z)) - log|det df/dz|,
//!
//! so HMC on z with S~ (momentum refresh, MD, Metropolis test on H = p^2/2 + S~) samples z,
//! and x = f(z) samples exp(-S). Each step maps the current field to its latent field
//! z = f^-1(x), runs one trajectory there and, if it is accepted, maps the end back. The force
//! -dS~/dz comes from candle's autograd through the flow and the batched action. A well trained
//! flow makes S~ nearly free (a flat Haar or Gaussian landscape), so the trajectories cross
//! barriers that the original MD does not. The integrator, reversibility check and dH are the
//! HMC ones, in the latent variables.

use super::{Hmc, MarkovStep, StepReport};
use crate::action::Monomial;
use crate::error::Result;
use crate::flow::{BatchAction, FlowModel, LatentField};
use candle_core::{DType, Device, Var};
use std::sync::Arc;

/// The pulled-back action S(f(z)) - log|det df/dz| as a monomial of the latent field, named
/// "flow".
pub struct PulledBackAction {
    model: Arc<FlowModel>,
    action: Box<dyn BatchAction>,
}

impl PulledBackAction {
    /// The action `action` pulled back through the flow of `model`.
    pub fn new(model: Arc<FlowModel>, action: Box<dyn BatchAction>) -> Self {
        PulledBackAction { model, action }
    }

    /// S~(z) and, if asked, its gradient with respect to the batch tensor of z.
    fn evaluate<C: LatentField>(&self, z: &C, gradient: bool) -> Result<(f64, Option<Vec<f64>>)> {
        let t = C::to_batch(&[z], self.model.info().precision.dtype(), &Device::Cpu)?;
        let z = Var::from_tensor(&t)?;
        let (x, log_det) = self.model.flow().forward(z.as_tensor())?;
        let s = (self.action.batch_action(&x)? - log_det)?.sum_all()?;
        let value = s.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !gradient {
            return Ok((value, None));
        }
        let grads = s.backward()?;
        let g = grads.get(z.as_tensor()).expect("the action depends on z");
        Ok((value, Some(g.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)))
    }
}

impl<C: LatentField> Monomial<C> for PulledBackAction {
    fn name(&self) -> &str {
        "flow"
    }

    fn action(&self, z: &C) -> Result<f64> {
        Ok(self.evaluate(z, false)?.0)
    }

    fn add_force(&self, z: &C, h: f64, p: &mut C::Momentum) -> Result<()> {
        let (_, gradient) = self.evaluate(z, true)?;
        z.add_gradient_force(&gradient.expect("asked for"), h, p);
        Ok(())
    }
}

/// HMC in the latent variables of a flow model, on fields C.
pub struct FlowHmc<C: LatentField> {
    model: Arc<FlowModel>,
    hmc: Hmc<C>,
}

impl<C: LatentField> FlowHmc<C> {
    /// Latent HMC with `hmc`, whose one monomial is the [`PulledBackAction`] of `model`.
    pub fn new(model: Arc<FlowModel>, hmc: Hmc<C>) -> Self {
        FlowHmc { model, hmc }
    }
}

impl<C: LatentField> MarkovStep<C> for FlowHmc<C> {
    fn step(&mut self, x: &mut C, update: u64) -> Result<StepReport> {
        let mut z = self.model.latent_of(x)?;
        let report = self.hmc.step(&mut z, update)?;
        if report.accepted {
            *x = self.model.image_of(&z)?;
        }
        Ok(report)
    }

    fn set_reversibility_check(&mut self, on: bool) {
        self.hmc.set_reversibility_check(on);
    }

    fn set_metropolis_test(&mut self, on: bool) {
        self.hmc.set_metropolis_test(on);
    }
}
