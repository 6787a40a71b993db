//! Self-training by reverse Kullback-Leibler divergence (no data): each step draws a batch
//! x ~ q, and Adam lowers the loss mean(log q(x) + S(x)) = KL(q || p) - ln Z. The learning
//! rate is constant (as in arXiv 2101.08176) or follows a cosine schedule from
//! `learning_rate` down to 0 over the run.
//!
//! The figures of merit, from the reweighting factors w = exp(-S(x) - log q(x)) of each
//! batch: the effective sample size per sample ESS = (sum w)^2 / (N sum w^2) and the
//! acceptance of an independence Metropolis chain run through the batch in order. The
//! Euclidean norm of the loss gradient over all weights is recorded too; with
//! `max_grad_norm` a larger gradient is scaled down to that norm before the Adam step
//! (gradient clipping), which keeps a rare heavy-tailed batch from throwing the weights far.
//!
//! The gradient is that of the batch loss through x = f(z) (the reparameterization
//! estimator), or with `path_gradient` its path part alone (Roeder et al., arXiv 1703.09194;
//! for flows Vaitl et al., arXiv 2207.08219): the derivative of log q(x) + S(x) in x, at fixed
//! weights, times dx/dweights. The two differ by the score term E[d log q / d weights] at
//! fixed x, which vanishes on average, so both are unbiased; the path gradient vanishes sample
//! by sample where q = exp(-S) / Z, so its noise falls as the model improves. It costs an
//! inverse pass, differentiated, per step.

use super::{Architecture, BatchAction, FlowModel};
use crate::error::{Error, Result};
use crate::rng::{Purpose, StreamKey};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::Serialize;
use std::time::Instant;

/// How the learning rate changes over a training run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The initial rate throughout.
    #[default]
    Constant,
    /// lr(t) = lr (1 + cos(pi t / steps)) / 2.
    Cosine,
}

/// The parameters of a training run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingOptions {
    /// Optimizer steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f64,
    /// Its schedule.
    pub schedule: Schedule,
    /// Seed of the prior draws.
    pub seed: u64,
    /// Record the metrics (averaged since the last record) every this many steps.
    pub log_every: usize,
    /// Scale a gradient whose norm exceeds this down to it (no clipping if `None`).
    pub max_grad_norm: Option<f64>,
    /// Use the path gradient instead of the full reparameterization gradient.
    pub path_gradient: bool,
}

impl TrainingOptions {
    /// Checks the values; the error names them as the `[train]` keys.
    pub fn validate(&self) -> Result<()> {
        let lr_ok = self.learning_rate > 0.0 && self.learning_rate.is_finite();
        if self.steps == 0 || self.batch < 2 || !lr_ok || self.log_every == 0 {
            return Err(Error::Card(format!(
                "train: need steps >= 1, batch >= 2, learning_rate > 0 and log_every >= 1 (steps = {}, batch = {}, \
                 learning_rate = {}, log_every = {})",
                self.steps, self.batch, self.learning_rate, self.log_every
            )));
        }
        if let Some(max) = self.max_grad_norm.filter(|m| !(*m > 0.0 && m.is_finite())) {
            return Err(Error::Card(format!("train: max_grad_norm = {max}, need a positive number")));
        }
        Ok(())
    }
}

/// The metrics of a stretch of training, averaged over its steps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainingPoint {
    /// Steps done.
    pub step: usize,
    /// Mean loss mean(log q + S).
    pub loss: f64,
    /// Mean effective sample size per sample of the batches.
    pub ess: f64,
    /// Mean acceptance of the independence Metropolis test within the batches.
    pub acceptance: f64,
    /// Mean norm of the loss gradient over all weights (before any clipping).
    pub grad_norm: f64,
    /// Largest norm of the loss gradient.
    pub peak_grad_norm: f64,
    /// Learning rate at the last step.
    pub learning_rate: f64,
    /// Wall-clock seconds since the start.
    pub seconds: f64,
}

/// The outcome of a training run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainingReport {
    /// The learning curves.
    pub curve: Vec<TrainingPoint>,
    /// Steps whose loss was not finite (skipped without an update).
    pub skipped_steps: usize,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Consecutive non-finite losses after which training stops with an error.
pub const MAX_NONFINITE_STEPS: usize = 10;

/// ESS per sample and independence-Metropolis acceptance of log weights `log_w` (a sample
/// with non-finite weight is never accepted); `key` draws the accept/reject numbers.
pub fn batch_metrics(log_w: &[f64], key: &StreamKey) -> (f64, f64) {
    let finite: Vec<f64> = log_w.iter().copied().filter(|w| w.is_finite()).collect();
    let ess = if finite.is_empty() {
        0.0
    } else {
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (s1, s2) = finite.iter().fold((0.0, 0.0), |(a, b), w| {
            let e = (w - max).exp();
            (a + e, b + e * e)
        });
        s1 * s1 / (log_w.len() as f64 * s2)
    };
    let mut current = log_w[0];
    let mut accepted = 0usize;
    for (i, &w) in log_w.iter().enumerate().skip(1) {
        let u = key.stream(i).uniform();
        if w.is_finite() && (!current.is_finite() || u < (w - current).exp()) {
            current = w;
            accepted += 1;
        }
    }
    (ess, accepted as f64 / (log_w.len() - 1).max(1) as f64)
}

/// The Euclidean norm of the gradients of `vars` in `grads`; where it exceeds `max`, every
/// gradient is scaled by max / norm (so the step keeps its direction).
fn clip_gradients(grads: &mut GradStore, vars: &[Var], max: Option<f64>) -> Result<f64> {
    let mut squares = 0.0;
    for var in vars {
        if let Some(g) = grads.get(var) {
            squares += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = squares.sqrt();
    if let Some(max) = max.filter(|&max| norm > max) {
        for var in vars {
            if let Some(g) = grads.get(var) {
                let scaled = (g * (max / norm))?;
                grads.insert(var, scaled);
            }
        }
    }
    Ok(norm)
}

/// The path gradient of the batch loss at the samples `x` = f(z) (still attached to the
/// weights): v = d[log q(x) + S(x)]/dx at fixed weights, through the inverse map, then the
/// gradient of mean(v . x) with v held constant.
pub fn path_gradients(model: &FlowModel, action: &dyn BatchAction, x: &Tensor) -> Result<GradStore> {
    let fixed = Var::from_tensor(&x.detach())?;
    let loss_terms = (model.log_density(fixed.as_tensor())? + action.batch_action(fixed.as_tensor())?)?;
    let along = loss_terms.sum_all()?.backward()?.remove(&fixed).ok_or_else(|| {
        Error::Model("path gradient: log q + S does not depend on the field through the inverse map".into())
    })?;
    let surrogate = ((x * along.detach())?.sum_all()? / x.dim(0)? as f64)?;
    Ok(surrogate.backward()?)
}

/// Trains `model` towards exp(-`action`); `on_record` sees every learning-curve point as it
/// is made (for progress output).
pub fn train(
    model: &FlowModel,
    action: &dyn BatchAction,
    options: &TrainingOptions,
    on_record: &mut dyn FnMut(&TrainingPoint),
) -> Result<TrainingReport> {
    options.validate()?;
    if options.path_gradient && matches!(model.info().architecture, Architecture::Su3Spectral(_)) {
        return Err(Error::Card(
            "train: path_gradient needs a differentiable inverse map, which su3-spectral models do not have"
                .into(),
        ));
    }
    let params = ParamsAdamW { lr: options.learning_rate, weight_decay: 0.0, ..Default::default() };
    let vars = model.vars();
    let mut adam = AdamW::new(vars.clone(), params)?;
    let started = Instant::now();
    let (mut curve, mut skipped, mut nonfinite_run) = (Vec::new(), 0usize, 0usize);
    let mut sums = [0.0f64; 4];
    let (mut counted, mut peak_norm) = (0usize, 0.0f64);
    for step in 0..options.steps {
        let progress = step as f64 / options.steps as f64;
        let lr = match options.schedule {
            Schedule::Constant => options.learning_rate,
            Schedule::Cosine => 0.5 * options.learning_rate * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        adam.set_learning_rate(lr);
        let key = StreamKey::new(options.seed, Purpose::Training, step as u64);
        let keys: Vec<StreamKey> = (0..options.batch as u64).map(|b| key.derive(b)).collect();
        let (x, log_q) = model.sample(&keys)?;
        let s = action.batch_action(&x)?;
        let loss = (&log_q + &s)?.mean_all()?;
        let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss_value.is_finite() {
            skipped += 1;
            nonfinite_run += 1;
            if nonfinite_run >= MAX_NONFINITE_STEPS {
                return Err(Error::Numerical(format!(
                    "training: the loss was {loss_value} for {nonfinite_run} consecutive steps (up to step {}); \
                     the flow diverged, lower learning_rate",
                    step + 1
                )));
            }
            continue;
        }
        nonfinite_run = 0;
        let mut grads =
            if options.path_gradient { path_gradients(model, action, &x)? } else { loss.backward()? };
        let norm = clip_gradients(&mut grads, &vars, options.max_grad_norm)?;
        adam.step(&grads)?;
        let log_w: Vec<f64> = (s.neg()? - &log_q)?.to_dtype(DType::F64)?.to_vec1()?;
        let (ess, acceptance) = batch_metrics(&log_w, &key.derive(u64::MAX));
        for (sum, v) in sums.iter_mut().zip([loss_value, ess, acceptance, norm]) {
            *sum += v;
        }
        peak_norm = peak_norm.max(norm);
        counted += 1;
        if (step + 1) % options.log_every == 0 || step + 1 == options.steps {
            let n = counted.max(1) as f64;
            let point = TrainingPoint {
                step: step + 1,
                loss: sums[0] / n,
                ess: sums[1] / n,
                acceptance: sums[2] / n,
                grad_norm: sums[3] / n,
                peak_grad_norm: peak_norm,
                learning_rate: lr,
                seconds: started.elapsed().as_secs_f64(),
            };
            on_record(&point);
            curve.push(point);
            sums = [0.0; 4];
            (counted, peak_norm) = (0, 0.0);
        }
    }
    Ok(TrainingReport { curve, skipped_steps: skipped, seconds: started.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_of_perfect_and_degenerate_weights() {
        let key = StreamKey::new(1, Purpose::Test, 0);
        assert_eq!(batch_metrics(&[0.3; 8], &key), (1.0, 1.0));
        let (ess, acceptance) = batch_metrics(&[0.0, -1e3, -1e3, -1e3], &key);
        assert!((ess - 0.25).abs() < 1e-12 && acceptance == 0.0, "{ess} {acceptance}");
        let (ess, acceptance) = batch_metrics(&[f64::NAN, 0.0, 0.0], &key);
        assert!((ess - 2.0 / 3.0).abs() < 1e-12 && acceptance == 1.0, "{ess} {acceptance}");
    }

    /// The gradient of sum(a * w) + sum(b * v) is (w, v): its norm is reported, and scaled to
    /// the limit only where it exceeds it.
    #[test]
    fn gradients_are_clipped_to_the_limit_and_keep_their_direction() {
        use candle_core::Device;
        let (a, b) = (
            Var::zeros(3, DType::F64, &Device::Cpu).unwrap(),
            Var::zeros(1, DType::F64, &Device::Cpu).unwrap(),
        );
        let grads = || {
            let w = Tensor::new(&[3.0f64, 0.0, 4.0], &Device::Cpu).unwrap();
            let v = Tensor::new(&[12.0f64], &Device::Cpu).unwrap();
            ((a.as_tensor() * w).unwrap().sum_all().unwrap()
                + (b.as_tensor() * v).unwrap().sum_all().unwrap())
            .unwrap()
            .backward()
            .unwrap()
        };
        let vars = [a.clone(), b.clone()];
        let values = |g: &GradStore, v: &Var| g.get(v).unwrap().to_vec1::<f64>().unwrap();
        for max in [None, Some(13.0), Some(100.0)] {
            let mut g = grads();
            assert_eq!(clip_gradients(&mut g, &vars, max).unwrap(), 13.0);
            assert_eq!((values(&g, &a), values(&g, &b)), (vec![3.0, 0.0, 4.0], vec![12.0]), "{max:?}");
        }
        let mut g = grads();
        assert_eq!(clip_gradients(&mut g, &vars, Some(6.5)).unwrap(), 13.0);
        assert_eq!((values(&g, &a), values(&g, &b)), (vec![1.5, 0.0, 2.0], vec![6.0]));
    }

    #[test]
    fn a_limit_that_is_not_a_positive_number_is_refused() {
        let options = TrainingOptions {
            steps: 1,
            batch: 2,
            learning_rate: 1e-3,
            schedule: Schedule::Constant,
            seed: 1,
            log_every: 1,
            max_grad_norm: Some(1.0),
            path_gradient: false,
        };
        assert!(options.validate().is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e =
                TrainingOptions { max_grad_norm: Some(bad), ..options }.validate().unwrap_err().to_string();
            assert!(e.contains("max_grad_norm"), "{e}");
        }
    }
}
