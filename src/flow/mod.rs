//! Normalizing flows (candle models, CPU): a prior r(z) that can be sampled exactly and an
//! invertible map x = f(z) with tractable Jacobian give the model density
//! log q(x) = log r(z) - log|det df/dz|. Used as proposals in a Metropolis test (or as a
//! change of variables for HMC), q need not equal exp(-S) / Z for the chain to be exact.
//!
//! Tensors hold a batch of fields, batch first. Sign conventions: [`Flow::forward`] returns
//! log|det df/dz| and [`Flow::inverse`] log|det df^-1/dx| = -log|det df/dz|.

pub mod conv;
pub mod gauge;
pub mod loops;
pub mod model;
pub mod ops;
pub mod real_nvp;
pub mod scalar;
pub mod spectral;
pub mod stack;
pub mod stripes;
pub mod su3;
pub mod train;
pub mod u1;

use crate::geometry::Lattice;
use crate::phase_space::PhaseSpace;
use crate::rng::StreamKey;
use candle_core::{DType, Device, Result, Tensor};
use std::sync::Arc;

pub use model::{Architecture, FlowModel, ModelInfo, Precision, TheoryTag};
pub use train::{TrainingOptions, TrainingReport, train};

/// An invertible map on batches of fields with its log-Jacobian.
pub trait Flow: Send + Sync {
    /// x = f(z) and log|det df/dz| of each sample (shape \[batch\]).
    fn forward(&self, z: &Tensor) -> Result<(Tensor, Tensor)>;
    /// z = f^-1(x) and log|det df^-1/dx| of each sample (shape \[batch\]).
    fn inverse(&self, x: &Tensor) -> Result<(Tensor, Tensor)>;
}

/// A base distribution that is sampled exactly from the library's reproducible streams.
pub trait Prior: Send + Sync {
    /// One field per key (drawn from the site streams of that key), as a batch tensor.
    fn sample(&self, lattice: &Lattice, keys: &[StreamKey], dtype: DType, device: &Device) -> Result<Tensor>;
    /// The normalised log-density of each sample (shape \[batch\]).
    fn log_prob(&self, z: &Tensor) -> Result<Tensor>;
}

/// An action evaluated on a batch of fields with candle operations (so training can
/// differentiate it): one value per sample, the same value as the field code's action.
pub trait BatchAction: Send + Sync {
    /// S of each sample (shape \[batch\]).
    fn batch_action(&self, x: &Tensor) -> Result<Tensor>;
}

/// Refuses the block of a cut lattice: flows run on one rank for now (on ranks a convolution
/// needs halos of its kernel width per layer, and training sums gradients over the ranks,
/// which come with a later issue). Every rank gets the same error, so none waits for another.
pub fn require_one_rank(lattice: &Lattice) -> Result<()> {
    if !lattice.is_whole() {
        candle_core::bail!(
            "flow models run on one rank for now; this lattice is one block of the process grid {:?}",
            lattice.comm().grid()
        );
    }
    Ok(())
}

/// Fields that flows act on: conversion between fields and batch tensors.
pub trait FlowField: Sized {
    /// The fields stacked into one batch tensor of the model's dtype.
    fn to_batch(fields: &[&Self], dtype: DType, device: &Device) -> Result<Tensor>;
    /// The fields of a batch tensor on `lattice` (values converted to f64).
    fn from_batch(x: &Tensor, lattice: &Arc<Lattice>) -> Result<Vec<Self>>;
    /// The image under the theory's reflection, an involution that leaves the actions
    /// invariant: phi -> -phi for scalar fields, charge conjugation U -> U* (complex
    /// conjugation of every link) for gauge fields.
    fn reflected(&self) -> Self;
}

/// Latent fields of flow HMC: a phase space whose configurations flows act on, with the
/// force of an action given by its gradient in the batch tensor.
pub trait LatentField: FlowField + PhaseSpace {
    /// p += h F for the force F = -dS/dw of the action whose gradient with respect to this
    /// field's batch-1 tensor ([`FlowField::to_batch`] layout, flattened) is `gradient`
    /// (w: the field's MD coordinates, the site values or the generators of the links).
    fn add_gradient_force(&self, gradient: &[f64], h: f64, p: &mut Self::Momentum);
}
