//! Real NVP (Dinh, Sohl-Dickstein, Bengio 2016) for real scalar fields on lattices of any
//! dimension, in the form of arXiv 1904.12072 / 2101.08176: affine coupling layers with
//! checkerboard (site parity) masks,
//! alternating parity, whose scale and shift come from a periodic convolutional network of the
//! frozen sites.
//!
//! One layer with mask m (1 on frozen sites) maps x to
//! x' = m x + (1 - m) (x e^s + t), (s, t) = net(m x), log|det dx'/dx| = sum (1 - m) s.

use super::conv::{ConvNet, NeighbourTable, validate_network};
use super::stack::{CouplingLayer, CouplingStack};
use crate::geometry::Lattice;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The architecture of a real-NVP flow (defaults: the tutorial network of arXiv 2101.08176).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealNvpArchitecture {
    /// Number of affine coupling layers (even, so both parities are updated equally often).
    pub layers: usize,
    /// Hidden channels of each coupling network.
    pub hidden: Vec<usize>,
    /// Odd convolution kernel size.
    pub kernel: usize,
}

impl Default for RealNvpArchitecture {
    fn default() -> Self {
        RealNvpArchitecture { layers: 16, hidden: vec![8, 8], kernel: 3 }
    }
}

impl RealNvpArchitecture {
    /// Checks the values; the message names the offending key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.layers == 0 || !self.layers.is_multiple_of(2) {
            return Err(format!("layers = {}: need a positive even number", self.layers));
        }
        validate_network(&self.hidden, self.kernel)
    }
}

/// One affine coupling layer, acting on fields in the layout [1, sites, batch] of
/// [`ConvNet`].
pub struct AffineCoupling {
    net: ConvNet,
    /// 1 on the frozen sites, [1, sites, 1].
    frozen: Tensor,
    /// 1 - frozen.
    active: Tensor,
}

impl AffineCoupling {
    /// (s, t) of the frozen part of `x`, each [1, sites, batch] and zero on frozen sites.
    fn scale_shift(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.net.forward(&x.broadcast_mul(&self.frozen)?)?;
        let s = out.narrow(0, 0, 1)?.broadcast_mul(&self.active)?;
        let t = out.narrow(0, 1, 1)?.broadcast_mul(&self.active)?;
        Ok((s, t))
    }
}

impl CouplingLayer for AffineCoupling {
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (s, t) = self.scale_shift(x)?;
        let y = ((x * s.exp()?)? + t)?;
        Ok((y, s.sum((0, 1))?))
    }

    fn inverse(&self, y: &Tensor) -> Result<(Tensor, Tensor)> {
        let (s, t) = self.scale_shift(y)?;
        let x = ((y - t)? * s.neg()?.exp()?)?;
        Ok((x, s.sum((0, 1))?.neg()?))
    }
}

/// A stack of affine coupling layers on [batch, 1, L_{D-1}, ..., L_0] tensors (x fastest);
/// inside, the layers work on the [1, sites, batch] layout of [`ConvNet`].
pub type RealNvp = CouplingStack<AffineCoupling>;

impl RealNvp {
    /// The flow for a lattice of extents `dims` (all even), its weights created under `vb` as
    /// `layer{i}.conv{j}.{weight,bias}`.
    pub fn new(architecture: &RealNvpArchitecture, dims: &[usize], vb: VarBuilder) -> Result<Self> {
        let lattice = Lattice::new(dims).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let neighbours = NeighbourTable::new(architecture.kernel, &lattice);
        let masks = [checkerboard(&lattice, 0, dtype, &device)?, checkerboard(&lattice, 1, dtype, &device)?];
        let layers = (0..architecture.layers)
            .map(|i| {
                let frozen = masks[i % 2].clone();
                let active = (1.0 - &frozen)?;
                let net =
                    ConvNet::new(1, &architecture.hidden, 2, true, &neighbours, vb.pp(format!("layer{i}")))?;
                Ok(AffineCoupling { net, frozen, active })
            })
            .collect::<Result<_>>()?;
        Ok(CouplingStack::from_layers(layers, 1, dims, &[]))
    }
}

/// The mask that is 1 on the sites of parity `parity` (sum of the coordinates mod 2),
/// [1, sites, 1].
fn checkerboard(lattice: &Lattice, parity: u8, dtype: DType, device: &Device) -> Result<Tensor> {
    let values: Vec<f64> =
        (0..lattice.volume()).map(|s| f64::from(u8::from(lattice.parity(s) == parity))).collect();
    Tensor::from_vec(values, (1, lattice.volume(), 1), device)?.to_dtype(dtype)
}
