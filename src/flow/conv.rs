//! Convolutions on the periodic lattice of any dimension (the kernel wraps around the
//! boundary), so every layer commutes with lattice translations and a network trained on one
//! lattice size applies unchanged to another.

use crate::geometry::Lattice;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use std::ops::AddAssign;
use std::sync::Arc;

/// A D-dimensional convolution with an odd kernel on periodic fields in the
/// channel-site-batch layout [channels, sites, batch] (sites lexicographic, x fastest).
///
/// Computed as one gather and one matrix product: the values at the k^D kernel offsets of
/// every site (periodic neighbours) are gathered into [channels * k^D, sites * batch] columns
/// (im2col) and multiplied by the weights [outputs, channels * k^D]. With the batch innermost
/// the gather moves contiguous rows; its gradient is a scatter-add, and the product's is
/// candle's (candle's own convolution has a slow gradient on CPU: its transposed
/// convolution).
pub struct PeriodicConv {
    weight: Tensor,
    bias: Tensor,
    neighbours: NeighbourTable,
}

/// The periodic neighbours a kernel window of odd width k reaches on a lattice: offset w
/// (w = sum_mu (d_mu + k/2) k^mu, x fastest) of site s sits at position w * sites + s. One
/// table serves every convolution of a network.
#[derive(Clone)]
pub struct NeighbourTable {
    index: Arc<[u32]>,
    kernel: usize,
    ndim: usize,
}

impl NeighbourTable {
    /// The table of an odd `kernel` on `lattice`.
    pub fn new(kernel: usize, lattice: &Lattice) -> Self {
        let (d, volume, half) = (lattice.ndim(), lattice.volume(), kernel / 2);
        let taps = kernel.pow(d as u32);
        let mut index = Vec::with_capacity(taps * volume);
        for w in 0..taps {
            for s in 0..volume {
                let mut site = s;
                for mu in 0..d {
                    let step = (w / kernel.pow(mu as u32)) % kernel;
                    for _ in 0..step {
                        site = lattice.fwd(site, mu);
                    }
                    for _ in 0..half {
                        site = lattice.bwd(site, mu);
                    }
                }
                index.push(site as u32);
            }
        }
        NeighbourTable { index: index.into(), kernel, ndim: d }
    }

    fn taps(&self) -> usize {
        self.kernel.pow(self.ndim as u32)
    }

    /// The values of `x` [channels, sites, batch] at the kernel window of every site,
    /// [channels, taps * sites, batch] in the order of the table (differentiable: the gradient
    /// is the scatter-add back onto the sites).
    fn gather(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(PeriodicGather { index: self.index.clone() })
    }
}

/// The gather of [`NeighbourTable::gather`]. candle's `index_select` does the same, but
/// moves one batch row per index through generic code, which at batch 1 (the inverse pass of
/// a Metropolis test) cost more than the convolution's matrix product.
struct PeriodicGather {
    index: Arc<[u32]>,
}

/// The rows `x[c, index[j], ..batch]` for every channel c and entry j.
fn gather_rows<T: Copy>(x: &[T], index: &[u32], channels: usize, batch: usize) -> Vec<T> {
    let plane = x.len() / channels;
    let mut out = Vec::with_capacity(channels * index.len() * batch);
    for values in x.chunks_exact(plane) {
        if batch == 1 {
            out.extend(index.iter().map(|&s| values[s as usize]));
        } else {
            for &s in index {
                let row = s as usize * batch;
                out.extend_from_slice(&values[row..row + batch]);
            }
        }
    }
    out
}

/// The transpose of [`gather_rows`]: `grad` [channels, index.len(), batch] added back onto
/// the rows [channels, sites, batch] it was gathered from.
fn scatter_add_rows<T: Copy + Default + AddAssign>(
    grad: &[T],
    index: &[u32],
    sites: usize,
    batch: usize,
) -> Vec<T> {
    let channels = grad.len() / (index.len() * batch);
    let mut out = vec![T::default(); channels * sites * batch];
    for (target, source) in out.chunks_exact_mut(sites * batch).zip(grad.chunks_exact(index.len() * batch)) {
        for (&s, rows) in index.iter().zip(source.chunks_exact(batch)) {
            let row = s as usize * batch;
            for (t, &g) in target[row..row + batch].iter_mut().zip(rows) {
                *t += g;
            }
        }
    }
    out
}

impl CustomOp1 for PeriodicGather {
    fn name(&self) -> &'static str {
        "periodic-gather"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (channels, _, batch) = layout.shape().dims3()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("periodic-gather: the operand must be contiguous")
        };
        let gathered = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(gather_rows(&v[start..end], &self.index, channels, batch)),
            CpuStorage::F64(v) => CpuStorage::F64(gather_rows(&v[start..end], &self.index, channels, batch)),
            _ => candle_core::bail!("periodic-gather: needs f32 or f64 tensors"),
        };
        Ok((gathered, Shape::from((channels, self.index.len(), batch))))
    }

    fn bwd(&self, x: &Tensor, _columns: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (_, sites, batch) = x.dims3()?;
        let grad = grad.flatten_all()?;
        let summed = match grad.dtype() {
            DType::F32 => {
                Tensor::new(scatter_add_rows(&grad.to_vec1::<f32>()?, &self.index, sites, batch), x.device())?
            }
            DType::F64 => {
                Tensor::new(scatter_add_rows(&grad.to_vec1::<f64>()?, &self.index, sites, batch), x.device())?
            }
            dtype => candle_core::bail!("periodic-gather: no gradient for {dtype:?}"),
        };
        Ok(Some(summed.reshape(x.shape())?))
    }
}

impl PeriodicConv {
    /// A convolution with the kernel of `neighbours` from `inputs` to `outputs` channels, with
    /// bias: weights `weight` [outputs, inputs, k, ..., k] (D kernel axes, the last one x) and
    /// `bias` \[outputs\] under `vb` (in 2D the layout of torch.nn.Conv2d).
    pub fn new(inputs: usize, outputs: usize, neighbours: &NeighbourTable, vb: VarBuilder) -> Result<Self> {
        let mut shape = vec![outputs, inputs];
        shape.extend(std::iter::repeat_n(neighbours.kernel, neighbours.ndim));
        let weight = vb.get(shape, "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Ok(PeriodicConv { weight, bias, neighbours: neighbours.clone() })
    }
}

impl Module for PeriodicConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (channels, sites, batch) = x.dims3()?;
        let (taps, outputs) = (self.neighbours.taps(), self.weight.dim(0)?);
        let columns = self.neighbours.gather(x)?.reshape((channels * taps, sites * batch))?;
        let weight = self.weight.reshape((outputs, channels * taps))?;
        let out = weight.matmul(&columns)?.broadcast_add(&self.bias.reshape((outputs, 1))?)?;
        out.reshape((outputs, sites, batch))
    }
}

/// Periodic convolutions with leaky-ReLU activations between them and, optionally, tanh
/// after the last: channels `inputs -> hidden[0] -> ... -> outputs` (the coupling network of
/// arXiv 2101.08176, with the final tanh for real NVP and without it for gauge layers).
pub struct ConvNet {
    layers: Vec<PeriodicConv>,
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
            .map(|(i, c)| PeriodicConv::new(c[0], c[1], neighbours, vb.pp(format!("conv{i}"))))
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
    use crate::rng::{Purpose, StreamKey};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// `n` values uniform in (-1, 1) from the test streams of `seed`.
    fn uniform(n: usize, seed: u64) -> Vec<f64> {
        let key = StreamKey::new(seed, Purpose::Test, 0);
        (0..n).map(|i| 2.0 * key.stream(i).uniform() - 1.0).collect()
    }

    /// Sets every variable of `varmap` to values uniform in (-1, 1) (a fresh VarMap holds zeros,
    /// which would make any comparison trivial).
    fn randomize(varmap: &VarMap) {
        for (k, var) in varmap.all_vars().iter().enumerate() {
            let values = uniform(var.elem_count(), 100 + k as u64);
            var.set(&Tensor::from_vec(values, var.dims(), &Device::Cpu).unwrap()).unwrap();
        }
    }

    fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

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
        let neighbours = NeighbourTable::new(3, &Lattice::new(&[6, 4]).unwrap());
        let net = ConvNet::new(1, &[3], 2, true, &neighbours, vb.clone()).unwrap();
        let conv = PeriodicConv::new(1, 3, &neighbours, vb.pp("c")).unwrap();
        randomize(&varmap);
        // [batch, channels, y, x] <-> [channels, sites, batch]
        let to_net =
            |t: &Tensor| t.reshape((2, 1, 24)).unwrap().permute((1, 2, 0)).unwrap().contiguous().unwrap();
        let from_net = |t: &Tensor| {
            let c = t.dim(0).unwrap();
            t.permute((2, 0, 1)).unwrap().reshape((2, c, 4, 6)).unwrap()
        };
        let x = Tensor::from_vec(uniform(48, 1), (2, 1, 4, 6), &Device::Cpu).unwrap();
        let shifted = |t: &Tensor| t.roll(1, 2).unwrap().roll(-2, 3).unwrap();
        let a = shifted(&from_net(&net.forward(&to_net(&x)).unwrap()));
        let b = from_net(&net.forward(&to_net(&shifted(&x))).unwrap());
        assert!(max_difference(&a, &b) < 1e-14, "{}", max_difference(&a, &b));
        assert!(
            max_difference(&a, &from_net(&net.forward(&to_net(&x)).unwrap())) > 1e-3,
            "not translation invariant"
        );
        // the same as candle's zero-padded convolution of the circularly padded input
        let padded = circular_pad(&circular_pad(&x, 2, 1).unwrap(), 3, 1).unwrap();
        let reference = padded
            .conv2d(&conv.weight, 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&conv.bias.reshape((3, 1, 1)).unwrap())
            .unwrap();
        let ours = from_net(&conv.forward(&to_net(&x)).unwrap());
        assert!(max_difference(&ours, &reference) < 1e-13, "{}", max_difference(&ours, &reference));
    }

    /// The gather moves the values of candle's index_select, in f32 and f64 and at batch 1
    /// and 3, and its gradient (the scatter-add) is index_select's gradient.
    #[test]
    fn gather_and_its_gradient_match_index_select() {
        let lattice = Lattice::new(&[4, 6]).unwrap();
        let table = NeighbourTable::new(3, &lattice);
        let index = Tensor::new(&table.index[..], &Device::Cpu).unwrap();
        for (dtype, batch) in [(DType::F64, 1), (DType::F32, 3)] {
            let (channels, sites) = (2, lattice.volume());
            let x = candle_core::Var::from_tensor(
                &Tensor::from_vec(
                    uniform(channels * sites * batch, 3),
                    (channels, sites, batch),
                    &Device::Cpu,
                )
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
            )
            .unwrap();
            let weights = Tensor::from_vec(
                uniform(channels * 9 * sites * batch, 4),
                (channels, 9 * sites, batch),
                &Device::Cpu,
            )
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            let ours = table.gather(&x).unwrap();
            let reference = x.index_select(&index, 1).unwrap();
            let as_f64 = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
            assert_eq!(max_difference(&as_f64(&ours), &as_f64(&reference)), 0.0, "{dtype:?}, batch {batch}");
            let gradient = |t: &Tensor| {
                let grads = (t * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                as_f64(grads.get(&x).unwrap())
            };
            let (g, g_reference) = (gradient(&ours), gradient(&reference));
            assert!(max_difference(&g, &g_reference) < 1e-6, "{dtype:?}, batch {batch}");
            assert!(g.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap() > 0.1);
        }
    }

    /// In 4D the convolution is the sum over the 3^4 kernel offsets of weight times the value
    /// at the periodic neighbour, weight axes [.., t, z, y, x].
    #[test]
    fn periodic_convolution_in_4d_is_the_direct_sum() {
        let lattice = Lattice::new(&[4, 2, 6, 4]).unwrap();
        let (volume, batch, inputs, outputs) = (lattice.volume(), 2, 2, 3);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let neighbours = NeighbourTable::new(3, &lattice);
        let conv = PeriodicConv::new(inputs, outputs, &neighbours, vb).unwrap();
        randomize(&varmap);
        let x = uniform(inputs * volume * batch, 2);
        let y: Vec<f64> = conv
            .forward(&Tensor::from_vec(x.clone(), (inputs, volume, batch), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let weight: Vec<f64> = conv.weight.flatten_all().unwrap().to_vec1().unwrap();
        let bias: Vec<f64> = conv.bias.to_vec1().unwrap();
        for (o, s, b) in [(0, 0, 0), (2, 17, 1), (1, volume - 1, 0)] {
            let mut expected = bias[o];
            for c in 0..inputs {
                for (dt, dz, dy, dx) in (0..81).map(|w| (w / 27, w / 9 % 3, w / 3 % 3, w % 3)) {
                    let mut site = s;
                    for (mu, step) in [dx, dy, dz, dt].into_iter().enumerate() {
                        site = if step == 0 {
                            lattice.bwd(site, mu)
                        } else if step == 2 {
                            lattice.fwd(site, mu)
                        } else {
                            site
                        };
                    }
                    let w = weight[((o * inputs + c) * 3 + dt) * 27 + dz * 9 + dy * 3 + dx];
                    expected += w * x[(c * volume + site) * batch + b];
                }
            }
            let got = y[(o * volume + s) * batch + b];
            assert!((got - expected).abs() < 1e-12, "output {o} site {s} sample {b}: {got} vs {expected}");
        }
    }
}
