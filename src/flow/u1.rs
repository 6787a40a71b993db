//! Gauge-equivariant flows for 2D U(1) (arXiv 2003.06413, in the form of the tutorial
//! arXiv 2101.08176), and the U(1) gauge action on batches of link angles.
//!
//! Links are angles theta_mu(x) in [0, 2 pi), the plaquette angle is
//! theta_P(x) = theta_0(x) + theta_1(x + 0) - theta_0(x + 1) - theta_1(x). The coupling
//! layers update links in the stripes of [`super::stripes`]. An active plaquette angle x
//! goes to
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

use super::BatchAction;
use super::conv::{ConvNet, NeighbourTable, validate_network};
use super::ops::{invert_ncp_mixture, modulo_tau, ncp_mixture};
use super::stack::{CouplingLayer, CouplingStack};
use super::stripes::{Stripes, forward_neighbours, stripe_mask};
use crate::action::GaugeAction;
use candle_core::{DType, Module, Result, Tensor};
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
        validate_network(&self.hidden, self.kernel)?;
        if self.components == 0 {
            return Err("components = 0: need at least one projection per mixture".into());
        }
        super::stripes::validate(self.layers, dims, "U(1)")
    }
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
pub struct PlaquetteCoupling {
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
}

impl CouplingLayer for PlaquetteCoupling {
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
pub type U1EquivariantFlow = CouplingStack<PlaquetteCoupling>;

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
                let stripes = Stripes::of_layer(i);
                let (mu, off, nu) = (stripes.mu, stripes.off, stripes.nu());
                let net =
                    ConvNet::new(2, &architecture.hidden, n + 1, false, &table, vb.pp(format!("layer{i}")))?;
                Ok(PlaquetteCoupling {
                    net,
                    components: n,
                    active_links: stripe_mask(dims, (2, mu), nu, &[off], dtype, &device)?,
                    active: stripe_mask(dims, (1, 0), nu, &[off], dtype, &device)?,
                    frozen: stripe_mask(dims, (1, 0), nu, &stripes.frozen(), dtype, &device)?,
                    neighbours: neighbours.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(CouplingStack::from_layers(layers, 2, dims, &[1]))
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
