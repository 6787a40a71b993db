//! Flows made of coupling layers: the layers work on a site-major inner layout, in which
//! the convolutions of [`super::conv`] see [channels, sites, batch] and per-site values
//! (a link's coordinates) stay innermost.

use super::Flow;
use candle_core::{Result, Tensor};

/// One invertible layer on the inner layout, with its log-Jacobians (one per sample, the
/// sign conventions of [`Flow`]).
pub trait CouplingLayer: Send + Sync {
    /// y = g(x) and log|det dg/dx|.
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)>;
    /// x = g^-1(y) and log|det dg^-1/dy|.
    fn inverse(&self, y: &Tensor) -> Result<(Tensor, Tensor)>;
}

/// A stack of coupling layers acting on batches [batch, C, L_{D-1}, ..., L_0, K..] (x fastest;
/// C field components or link directions, K per-site coordinates, none for scalar fields);
/// inside, the layers see [C, sites, batch] (K = 1) or [C, sites, batch, K].
pub struct CouplingStack<L> {
    layers: Vec<L>,
    channels: usize,
    dims: Vec<usize>,
    coordinates: Vec<usize>,
}

impl<L: CouplingLayer> CouplingStack<L> {
    /// The stack of `layers` on fields with `channels` components of trailing shape
    /// `coordinates` on a lattice of extents `dims` (x first).
    pub(crate) fn from_layers(
        layers: Vec<L>,
        channels: usize,
        dims: &[usize],
        coordinates: &[usize],
    ) -> Self {
        CouplingStack { layers, channels, dims: dims.to_vec(), coordinates: coordinates.to_vec() }
    }

    fn sites(&self) -> usize {
        self.dims.iter().product()
    }

    fn coordinate_count(&self) -> usize {
        self.coordinates.iter().product()
    }

    /// [batch, C, L_{D-1}, ..., L_0, K..] -> [C, sites, batch(, K)].
    fn to_inner(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, k) = (x.dim(0)?, self.coordinate_count());
        let inner = x.reshape((batch, self.channels * self.sites(), k))?.transpose(0, 1)?.contiguous()?;
        if k == 1 {
            inner.reshape((self.channels, self.sites(), batch))
        } else {
            inner.reshape((self.channels, self.sites(), batch, k))
        }
    }

    /// [C, sites, batch(, K)] -> [batch, C, L_{D-1}, ..., L_0, K..].
    fn to_outer(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, k) = (x.dim(2)?, self.coordinate_count());
        let outer = x.reshape((self.channels * self.sites(), batch, k))?.transpose(0, 1)?.contiguous()?;
        let mut shape = vec![batch, self.channels];
        shape.extend(self.dims.iter().rev());
        shape.extend(&self.coordinates);
        outer.reshape(shape)
    }

    /// Runs `step` (a layer's forward or inverse map) through the layers in `order` and sums
    /// their log-Jacobians.
    fn chain<'a>(
        &'a self,
        x: &Tensor,
        order: impl Iterator<Item = &'a L>,
        step: fn(&L, &Tensor) -> Result<(Tensor, Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let mut log_det = Tensor::zeros(x.dim(0)?, x.dtype(), x.device())?;
        let mut y = self.to_inner(x)?;
        for layer in order {
            let (next, l) = step(layer, &y)?;
            y = next;
            log_det = (log_det + l)?;
        }
        Ok((self.to_outer(&y)?, log_det))
    }
}

impl<L: CouplingLayer> Flow for CouplingStack<L> {
    fn forward(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        self.chain(z, self.layers.iter(), L::forward)
    }

    fn inverse(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.chain(x, self.layers.iter().rev(), L::inverse)
    }
}
