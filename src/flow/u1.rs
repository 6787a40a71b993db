//! Gauge-equivariant flows for 2D U(1) (arXiv 2003.06413, in the form of the tutorial
//! arXiv 2101.08176), and the U(1) gauge action on batches of link angles.
//!
//! Links are angles theta_mu(x) in [0, 2 pi), the plaquette angle is
//! theta_P(x) = theta_0(x) + theta_1(x + 0) - theta_0(x + 1) - theta_1(x). Coupling layer i
//! updates the links of direction mu = i % 2 on the lines x_nu = off (mod 4), nu = 1 - mu,
//! off = (i / 2) % 4. Each such link is the only updated link of the plaquette P(x) at its own
//! site (the "active" plaquettes, x_nu = off); the plaquettes at x_nu = off + 1, off + 2
//! hold no updated link ("frozen") and condition the layer; those at x_nu = off + 3 change
//! as a consequence ("passive"). An active plaquette angle x goes to
//!
//!   x' = [ (1/n) sum_i g_{s_i}(x) + t ] mod 2 pi,  g_s(x) = 2 atan2(e^s sin(x/2), cos(x/2)),
//!
//! a mixture of n non-compact projections (NCP: g_s(x) = 2 atan(e^s tan(x/2)), a diffeomorphism
//! of the circle fixing 0 and pi) followed by a rotation t, with (s_i, t) from a periodic
//! convolutional network of cos and sin of the frozen plaquettes; the active link moves by the
//! change of its plaquette (with the sign it has in the plaquette). Every loop the network sees
//! is gauge invariant, so the layer commutes with gauge transformations. The log-Jacobian is
//! the sum over active plaquettes of log g'(x), g'_s(x) = 1 / (e^-s cos^2(x/2) + e^s sin^2(x/2)).
//! The inverse of the mixture has no closed form: it is found by safeguarded Newton iteration
//! in f64 (the inverse pass is not differentiated).

use super::conv::{ConvNet, NeighbourTable, validate_network};
use super::ops::{invert_ncp_mixture, modulo_tau, ncp_mixture};
use super::{BatchAction, Flow, compose};
use crate::action::GaugeAction;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The architecture of a U(1) gauge-equivariant flow (defaults: the tutorial network of
/// arXiv 2101.08176).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct U1EquivariantArchitecture {
    /// Number of coupling layers (a multiple of 8, so every link is updated equally often).
    pub layers: usize,
    /// Hidden channels of each coupling network.
    pub hidden: Vec<usize>,
    /// Odd convolution kernel size.
    pub kernel: usize,
    /// Non-compact projections in each mixture.
    pub components: usize,
}

impl Default for U1EquivariantArchitecture {
    fn default() -> Self {
        U1EquivariantArchitecture { layers: 16, hidden: vec![8, 8], kernel: 3, components: 2 }
    }
}

impl U1EquivariantArchitecture {
    /// Checks the values against a lattice of extents `dims`; the message names the offending
    /// key.
    pub fn validate(&self, dims: &[usize]) -> std::result::Result<(), String> {
        if self.layers == 0 || !self.layers.is_multiple_of(8) {
            return Err(format!("layers = {}: need a positive multiple of 8", self.layers));
        }
        validate_network(&self.hidden, self.kernel)?;
        if self.components == 0 {
            return Err("components = 0: need at least one projection per mixture".into());
        }
        if dims.len() != 2 || dims.iter().any(|l| !l.is_multiple_of(4)) {
            return Err(format!(
                "dims {dims:?}: the U(1) flow acts on 2D lattices with extents divisible by 4"
            ));
        }
        Ok(())
    }
}

/// Index tensors of the neighbour s + mu of every site s (mu = 0, 1) on an L_x x L_y lattice.
fn forward_neighbours(dims: [usize; 2], device: &Device) -> Result<[Tensor; 2]> {
    let [lx, ly] = dims;
    let shifted = |dx: usize, dy: usize| -> Result<Tensor> {
        let index: Vec<u32> =
            (0..lx * ly).map(|s| (((s / lx + dy) % ly) * lx + (s % lx + dx) % lx) as u32).collect();
        Tensor::from_vec(index, lx * ly, device)
    };
    Ok([shifted(1, 0)?, shifted(0, 1)?])
}

/// The plaquette angles [1, sites, batch] of links [2, sites, batch].
fn plaquettes(theta: &Tensor, forward: &[Tensor; 2]) -> Result<Tensor> {
    let (t0, t1) = (theta.narrow(0, 0, 1)?, theta.narrow(0, 1, 1)?);
    (&t0 + t1.index_select(&forward[0], 1)?)? - (t0.index_select(&forward[1], 1)? + &t1)?
}

/// The NCP mixture of `x` [1, sites, batch] with scales `s` [n, sites, batch]: its value and
/// log-derivative, each [1, sites, batch].
fn mixture(x: &Tensor, s: &Tensor) -> Result<(Tensor, Tensor)> {
    let out = ncp_mixture(x, s)?;
    Ok((out.narrow(0, 0, 1)?, out.narrow(0, 1, 1)?))
}

/// One gauge-equivariant coupling layer on links in the layout [2, sites, batch].
struct PlaquetteCoupling {
    net: ConvNet,
    components: usize,
    /// 1 on the updated links, [2, sites, 1].
    active_links: Tensor,
    /// 1 on the active plaquettes, [1, sites, 1].
    active: Tensor,
    /// 1 on the frozen plaquettes, [1, sites, 1].
    frozen: Tensor,
    /// The neighbours x + 0 and x + 1 of every site.
    neighbours: [Tensor; 2],
}

impl PlaquetteCoupling {
    /// The mixture scales [n, sites, batch] and the rotation [1, sites, batch] from the frozen
    /// plaquettes.
    fn conditioner(&self, plaquettes: &Tensor) -> Result<(Tensor, Tensor)> {
        let frozen = plaquettes.broadcast_mul(&self.frozen)?;
        let out = self.net.forward(&Tensor::cat(&[frozen.cos()?, frozen.sin()?], 0)?)?;
        Ok((out.narrow(0, 0, self.components)?, out.narrow(0, self.components, 1)?))
    }

    /// Moves the updated links by the change `delta` [1, sites, batch] of their active
    /// plaquettes (+ for direction 0, - for direction 1, their signs in the plaquette).
    fn move_links(&self, theta: &Tensor, delta: &Tensor) -> Result<Tensor> {
        let delta = delta.broadcast_mul(&self.active)?;
        let links = Tensor::cat(&[&delta, &delta.neg()?], 0)?.broadcast_mul(&self.active_links)?;
        modulo_tau(&(theta + links)?)
    }

    fn forward(&self, theta: &Tensor) -> Result<(Tensor, Tensor)> {
        let p = plaquettes(theta, &self.neighbours)?;
        let (s, t) = self.conditioner(&p)?;
        let (mixed, log_derivative) = mixture(&modulo_tau(&p)?, &s)?;
        let new = modulo_tau(&(mixed + t)?)?;
        let log_det = log_derivative.broadcast_mul(&self.active)?.sum((0, 1))?;
        Ok((self.move_links(theta, &(new - p)?)?, log_det))
    }

    fn inverse(&self, theta: &Tensor) -> Result<(Tensor, Tensor)> {
        let p = plaquettes(theta, &self.neighbours)?;
        let (s, t) = self.conditioner(&p)?;
        let target = modulo_tau(&(&p - t)?)?;
        let (n, sites, batch) = s.dims3()?;
        let scales: Vec<f64> = s.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let targets: Vec<f64> = target.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let active: Vec<f64> = self.active.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let old: Vec<f64> = (0..sites * batch)
            .map(|i| {
                if active[i / batch] == 0.0 {
                    return targets[i];
                }
                invert_ncp_mixture(targets[i], &scales[i..], n, sites * batch)
            })
            .collect();
        let old = Tensor::from_vec(old, (1, sites, batch), theta.device())?.to_dtype(theta.dtype())?;
        let (_, log_derivative) = mixture(&old, &s)?;
        let log_det = log_derivative.broadcast_mul(&self.active)?.sum((0, 1))?.neg()?;
        Ok((self.move_links(theta, &(old - p)?)?, log_det))
    }
}

/// A stack of gauge-equivariant coupling layers on [batch, 2, L_y, L_x, 1] link angles (the
/// layout of [`super::gauge`]); inside, the layers work on [2, sites, batch].
pub struct U1EquivariantFlow {
    layers: Vec<PlaquetteCoupling>,
    dims: [usize; 2],
}

/// A mask [channels, sites, 1] that is 1 in `channel` on the sites whose coordinate `nu` is
/// one of `residues` mod 4.
fn stripes(
    dims: [usize; 2],
    channels: usize,
    channel: usize,
    nu: usize,
    residues: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let sites = dims[0] * dims[1];
    let values: Vec<f64> = (0..channels * sites)
        .map(|i| {
            let (c, s) = (i / sites, i % sites);
            let coordinate = if nu == 0 { s % dims[0] } else { s / dims[0] };
            f64::from(u8::from(c == channel && residues.contains(&(coordinate % 4))))
        })
        .collect();
    Tensor::from_vec(values, (channels, sites, 1), device)?.to_dtype(dtype)
}

impl U1EquivariantFlow {
    /// The flow for `dims` = [L_x, L_y] (validated by the architecture), its weights created
    /// under `vb` as `layer{i}.conv{j}.{weight,bias}`.
    pub fn new(architecture: &U1EquivariantArchitecture, dims: &[usize], vb: VarBuilder) -> Result<Self> {
        architecture.validate(dims).map_err(candle_core::Error::Msg)?;
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let dims = [dims[0], dims[1]];
        let table = NeighbourTable::new(architecture.kernel, dims, &device)?;
        let n = architecture.components;
        let neighbours = forward_neighbours(dims, &device)?;
        let layers = (0..architecture.layers)
            .map(|i| {
                let (mu, off) = (i % 2, (i / 2) % 4);
                let nu = 1 - mu;
                let net =
                    ConvNet::new(2, &architecture.hidden, n + 1, false, &table, vb.pp(format!("layer{i}")))?;
                Ok(PlaquetteCoupling {
                    net,
                    components: n,
                    active_links: stripes(dims, 2, mu, nu, &[off], dtype, &device)?,
                    active: stripes(dims, 1, 0, nu, &[off], dtype, &device)?,
                    frozen: stripes(dims, 1, 0, nu, &[(off + 1) % 4, (off + 2) % 4], dtype, &device)?,
                    neighbours: neighbours.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(U1EquivariantFlow { layers, dims })
    }

    /// [batch, 2, L_y, L_x, 1] -> [2, sites, batch].
    fn to_inner(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, sites) = (x.dim(0)?, self.dims[0] * self.dims[1]);
        x.reshape((batch, 2 * sites))?.t()?.reshape((2, sites, batch))?.contiguous()
    }

    /// [2, sites, batch] -> [batch, 2, L_y, L_x, 1].
    fn to_outer(&self, x: &Tensor) -> Result<Tensor> {
        let (_, sites, batch) = x.dims3()?;
        x.reshape((2 * sites, batch))?.t()?.contiguous()?.reshape((batch, 2, self.dims[1], self.dims[0], 1))
    }

    /// Runs `step` through the layers in `order` and sums their log-Jacobians.
    fn chain<'a>(
        &self,
        x: &Tensor,
        order: impl Iterator<Item = &'a PlaquetteCoupling>,
        step: fn(&PlaquetteCoupling, &Tensor) -> Result<(Tensor, Tensor)>,
    ) -> Result<(Tensor, Tensor)> {
        let (y, log_det) = compose(self.to_inner(x)?, x.dim(0)?, order, step)?;
        Ok((self.to_outer(&y)?, log_det))
    }
}

impl Flow for U1EquivariantFlow {
    fn forward(&self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        self.chain(z, self.layers.iter(), PlaquetteCoupling::forward)
    }

    fn inverse(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.chain(x, self.layers.iter().rev(), PlaquetteCoupling::inverse)
    }
}

/// A gauge action of [`GaugeAction`] on batches of 2D U(1) link angles
/// [batch, 2, L_y, L_x, 1]: S = beta sum [c0 (1 - cos theta_P) + c1 sum_rect (1 - cos theta_R)],
/// the value the field code computes.
pub struct U1BatchAction(pub GaugeAction);

impl BatchAction for U1BatchAction {
    fn batch_action(&self, x: &Tensor) -> Result<Tensor> {
        let (c0, c1) = self.0.coefficients();
        let theta = x.squeeze(4)?;
        let link = |mu: usize| theta.narrow(1, mu, 1);
        // shift by +1 in direction mu: dims 3 (x) and 2 (y) of [batch, 1, L_y, L_x]
        let up = |t: &Tensor, mu: usize, steps: i32| t.roll(-steps, 3 - mu);
        let (t0, t1) = (link(0)?, link(1)?);
        let plaquette = ((&t0 + up(&t1, 0, 1)?)? - (up(&t0, 1, 1)? + &t1)?)?;
        let mut density = ((1.0 - plaquette.cos()?)? * c0)?;
        if c1 != 0.0 {
            for (tm, tn, mu, nu) in [(&t0, &t1, 0, 1), (&t1, &t0, 1, 0)] {
                let forward = ((tm + up(tm, mu, 1)?)? + up(tn, mu, 2)?)?;
                let back = ((up(&up(tm, mu, 1)?, nu, 1)? + up(tm, nu, 1)?)? + tn)?;
                density = (density + ((1.0 - (forward - back)?.cos()?)? * c1)?)?;
            }
        }
        density.sum((1, 2, 3))? * self.0.beta()
    }
}
