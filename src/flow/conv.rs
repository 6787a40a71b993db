//! Convolutions on the periodic lattice (the kernel wraps around the boundary), so every
//! layer commutes with lattice translations and a network trained on one lattice size
//! applies unchanged to another.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A 2D convolution with an odd kernel on periodic fields in the channel-site-batch layout
/// [channels, sites, batch] (sites lexicographic, x fastest).
///
/// Computed as one gather and one matrix product: the values at the k^2 kernel offsets of
/// every site (periodic neighbours) are gathered into [channels * k^2, sites * batch] columns
/// (im2col) and multiplied by the weights [outputs, channels * k^2]. With the batch innermost
/// the gather moves contiguous rows, and both steps have fast gradients in candle (its
/// transposed convolution on CPU does not).
pub struct PeriodicConv2d {
    weight: Tensor,
    bias: Tensor,
    neighbours: NeighbourTable,
}

/// The periodic neighbours a `kernel` x `kernel` window reaches on an L_x x L_y lattice: the
/// site index of offset w at site s sits at position w * sites + s. One table serves every
/// convolution of a network.
#[derive(Clone)]
pub struct NeighbourTable {
    index: Tensor,
    kernel: usize,
}

impl NeighbourTable {
    /// The table of an odd `kernel` on `dims` = [L_x, L_y].
    pub fn new(kernel: usize, dims: [usize; 2], device: &candle_core::Device) -> Result<Self> {
        let ([lx, ly], half) = (dims, kernel / 2);
        let mut index = Vec::with_capacity(kernel * kernel * lx * ly);
        for dy in 0..kernel {
            for dx in 0..kernel {
                for s in 0..lx * ly {
                    let y = (s / lx + ly + dy - half) % ly;
                    let x = (s % lx + lx + dx - half) % lx;
                    index.push((y * lx + x) as u32);
                }
            }
        }
        Ok(NeighbourTable { index: Tensor::from_vec(index, kernel * kernel * lx * ly, device)?, kernel })
    }
}

impl PeriodicConv2d {
    /// A convolution with the kernel of `neighbours` from `inputs` to `outputs` channels, with
    /// bias: weights `weight` [outputs, inputs, kernel, kernel] and `bias` \[outputs\] under
    /// `vb` (the layout of torch.nn.Conv2d).
    pub fn new(inputs: usize, outputs: usize, neighbours: &NeighbourTable, vb: VarBuilder) -> Result<Self> {
        let kernel = neighbours.kernel;
        let weight = vb.get((outputs, inputs, kernel, kernel), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Ok(PeriodicConv2d { weight, bias, neighbours: neighbours.clone() })
    }
}

impl Module for PeriodicConv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (channels, sites, batch) = x.dims3()?;
        let (taps, outputs) = (self.neighbours.kernel.pow(2), self.weight.dim(0)?);
        let columns = x.index_select(&self.neighbours.index, 1)?.reshape((channels * taps, sites * batch))?;
        let weight = self.weight.reshape((outputs, channels * taps))?;
        let out = weight.matmul(&columns)?.broadcast_add(&self.bias.reshape((outputs, 1))?)?;
        out.reshape((outputs, sites, batch))
    }
}

/// Periodic convolutions with leaky-ReLU activations between them and, optionally, tanh
/// after the last: channels `inputs -> hidden[0] -> ... -> outputs` (the coupling network of
/// arXiv 2101.08176, with the final tanh for real NVP and without it for gauge layers).
pub struct ConvNet {
    layers: Vec<PeriodicConv2d>,
    final_tanh: bool,
}

/// Checks the shape of a coupling network (hidden channels, odd kernel); the message names
/// the offending key.
pub fn validate_network(hidden: &[usize], kernel: usize) -> std::result::Result<(), String> {
    if kernel.is_multiple_of(2) {
        return Err(format!("kernel = {kernel}: need an odd size"));
    }
    if hidden.contains(&0) {
        return Err(format!("hidden = {hidden:?}: every layer needs at least one channel"));
    }
    Ok(())
}

/// Slope of the leaky ReLU for negative inputs.
const LEAKY_SLOPE: f64 = 0.01;

impl ConvNet {
    /// The network with the kernel of `neighbours`, its convolutions named `conv0`, `conv1`,
    /// ... under `vb`; `final_tanh` bounds the outputs to (-1, 1).
    pub fn new(
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        final_tanh: bool,
        neighbours: &NeighbourTable,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut channels = vec![inputs];
        channels.extend_from_slice(hidden);
        channels.push(outputs);
        let layers = channels
            .windows(2)
            .enumerate()
            .map(|(i, c)| PeriodicConv2d::new(c[0], c[1], neighbours, vb.pp(format!("conv{i}"))))
            .collect::<Result<_>>()?;
        Ok(ConvNet { layers, final_tanh })
    }
}

impl Module for ConvNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i + 1 < self.layers.len() {
                h = candle_nn::ops::leaky_relu(&h, LEAKY_SLOPE)?;
            } else if self.final_tanh {
                h = h.tanh()?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// `x` padded by `p` sites on each side of dimension `dim` with the values from the opposite
    /// side (periodic boundary).
    fn circular_pad(x: &Tensor, dim: usize, p: usize) -> Result<Tensor> {
        if p == 0 {
            return Ok(x.clone());
        }
        let n = x.dim(dim)?;
        Tensor::cat(&[&x.narrow(dim, n - p, p)?, x, &x.narrow(dim, 0, p)?], dim)
    }

    #[test]
    fn periodic_convolution_commutes_with_translations() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let neighbours = NeighbourTable::new(3, [6, 4], &Device::Cpu).unwrap();
        let net = ConvNet::new(1, &[3], 2, true, &neighbours, vb).unwrap();
        // [batch, channels, y, x] <-> [channels, sites, batch]
        let to_net =
            |t: &Tensor| t.reshape((2, 1, 24)).unwrap().permute((1, 2, 0)).unwrap().contiguous().unwrap();
        let from_net = |t: &Tensor| {
            let c = t.dim(0).unwrap();
            t.permute((2, 0, 1)).unwrap().reshape((2, c, 4, 6)).unwrap()
        };
        let x = Tensor::randn(0.0, 1.0, (2, 1, 4, 6), &Device::Cpu).unwrap();
        let shifted = |t: &Tensor| t.roll(1, 2).unwrap().roll(-2, 3).unwrap();
        let a = shifted(&from_net(&net.forward(&to_net(&x)).unwrap()));
        let b = from_net(&net.forward(&to_net(&shifted(&x))).unwrap());
        let diff: f64 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-14, "{diff}");
        // the same as candle's zero-padded convolution of the circularly padded input
        let conv = PeriodicConv2d::new(
            1,
            3,
            &neighbours,
            VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu).pp("c"),
        )
        .unwrap();
        let padded = circular_pad(&circular_pad(&x, 2, 1).unwrap(), 3, 1).unwrap();
        let reference = padded
            .conv2d(&conv.weight, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&conv.bias.reshape((3, 1, 1)).unwrap())
            .unwrap();
        let diff: f64 = (from_net(&conv.forward(&to_net(&x)).unwrap()) - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-13, "{diff}");
    }
}
