//! Gauge-equivariant flows for U(1) (arXiv 2003.06413, in the form of the tutorial
//! arXiv 2101.08176; on lattices of any dimension D >= 2), and the U(1) gauge action on
//! batches of link angles.
//!
//! Links are angles theta_mu(x) in [0, 2 pi), the plaquette angle of the plane (a, b), a < b,
//! is theta_P(x) = theta_a(x) + theta_b(x + a) - theta_a(x + b) - theta_b(x). The coupling
//! layers update links in the stripes of [`super::stripes`]. An active plaquette angle x
//! goes to
//!
//!   x' = [ (1/n) sum_i g_{s_i}(x) + t ] mod 2 pi,  g_s(x) = 2 atan2(e^s sin(x/2), cos(x/2)),
//!
//! a mixture of n non-compact projections (NCP: g_s(x) = 2 atan(e^s tan(x/2)), a diffeomorphism
//! of the circle fixing 0 and pi) followed by a rotation t, with (s_i, t) from a periodic
//! convolutional network of cos and sin of the frozen plaquettes of every plane (2 D (D-1) / 2
//! input channels: the cosines of all planes, then the sines); the active link moves by the
//! change of its plaquette (with the sign it has in the plaquette). Every loop the network sees
//! is gauge invariant, so the layer commutes with gauge transformations. The log-Jacobian is
//! the sum over active plaquettes of log g'(x), g'_s(x) = 1 / (e^-s cos^2(x/2) + e^s sin^2(x/2)).
//! The inverse of the mixture has no closed form: it is found by safeguarded Newton iteration
//! in f64, and differentiated through the implicit function theorem (path-gradient training
//! differentiates log q(x) through the inverse pass).

use super::BatchAction;
use super::conv::{ConvNet, NeighbourTable, validate_network};
use super::loops::{batch_loop_action, path_links, shifted};
use super::ops::{ActiveSites, invert_ncp_mixture, modulo_tau, ncp_mixture};
use super::stack::{CouplingLayer, CouplingStack};
use super::stripes::{Stripes, forward_neighbours, planes};
use crate::action::GaugeAction;
use crate::geometry::Lattice;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// The architecture of a U(1) gauge-equivariant flow (defaults: the tutorial network of
/// arXiv 2101.08176).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct U1EquivariantArchitecture {
    /// Number of coupling layers (a multiple of 4D, so every link is updated equally often).
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

/// The plaquette angles [planes, sites, batch] of links [D, sites, batch], the planes in the
/// order of [`planes`]; `forward` holds the neighbours x + mu of every site.
fn plaquettes(theta: &Tensor, forward: &[Tensor]) -> Result<Tensor> {
    let angles = planes(forward.len())
        .into_iter()
        .map(|[a, b]| {
            let (ta, tb) = (theta.narrow(0, a, 1)?, theta.narrow(0, b, 1)?);
            (&ta + tb.index_select(&forward[a], 1)?)? - (ta.index_select(&forward[b], 1)? + &tb)?
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&angles, 0)
}

/// The NCP mixture of `x` [1, sites, batch] with scales `s` [n, sites, batch] on the `active`
/// sites (the identity on the others): its value and log-derivative, each [1, sites, batch].
fn mixture(x: &Tensor, s: &Tensor, active: &ActiveSites) -> Result<(Tensor, Tensor)> {
    let out = ncp_mixture(x, s, active)?;
    Ok((out.narrow(0, 0, 1)?, out.narrow(0, 1, 1)?))
}

/// One gauge-equivariant coupling layer on links in the layout [D, sites, batch].
pub struct PlaquetteCoupling {
    net: ConvNet,
    components: usize,
    /// The index of the plane of the active plaquettes.
    active_plane: usize,
    /// [D, 1, 1]: the sign of the updated link in its active plaquette in its direction, 0 in
    /// the others.
    direction: Tensor,
    /// 1 on the active plaquettes, [1, sites, 1].
    active: Tensor,
    /// The same as flags, one per site.
    active_sites: ActiveSites,
    /// 1 on the frozen plaquettes, [planes, sites, 1].
    frozen: Tensor,
    /// The neighbours x + mu of every site, one tensor per direction.
    neighbours: Vec<Tensor>,
}

impl PlaquetteCoupling {
    /// The plaquettes of every plane [planes, sites, batch] and the active ones [1, sites, batch].
    fn plaquettes(&self, theta: &Tensor) -> Result<(Tensor, Tensor)> {
        let all = plaquettes(theta, &self.neighbours)?;
        let active = all.narrow(0, self.active_plane, 1)?;
        Ok((all, active))
    }

    /// The mixture scales [n, sites, batch] and the rotation [1, sites, batch] from the frozen
    /// plaquettes.
    fn conditioner(&self, plaquettes: &Tensor) -> Result<(Tensor, Tensor)> {
        let frozen = plaquettes.broadcast_mul(&self.frozen)?;
        let out = self.net.forward(&Tensor::cat(&[frozen.cos()?, frozen.sin()?], 0)?)?;
        Ok((out.narrow(0, 0, self.components)?, out.narrow(0, self.components, 1)?))
    }

    /// Moves the updated links by the change `delta` [1, sites, batch] of their active
    /// plaquettes (with their sign in the plaquette).
    fn move_links(&self, theta: &Tensor, delta: &Tensor) -> Result<Tensor> {
        let links = delta.broadcast_mul(&self.active)?.broadcast_mul(&self.direction)?;
        modulo_tau(&(theta + links)?)
    }
}

impl CouplingLayer for PlaquetteCoupling {
    fn forward(&self, theta: &Tensor) -> Result<(Tensor, Tensor)> {
        let (all, p) = self.plaquettes(theta)?;
        let (s, t) = self.conditioner(&all)?;
        let (mixed, log_derivative) = mixture(&modulo_tau(&p)?, &s, &self.active_sites)?;
        let new = modulo_tau(&(mixed + t)?)?;
        // the mixture's log-derivative is 0 off the active sites
        let log_det = log_derivative.sum((0, 1))?;
        Ok((self.move_links(theta, &(new - p)?)?, log_det))
    }

    fn inverse(&self, theta: &Tensor) -> Result<(Tensor, Tensor)> {
        let (all, p) = self.plaquettes(theta)?;
        let (s, t) = self.conditioner(&all)?;
        let target = modulo_tau(&(&p - t)?)?;
        let old = invert_ncp_mixture(&target, &s, &self.active_sites)?;
        let (_, log_derivative) = mixture(&old, &s, &self.active_sites)?;
        let log_det = log_derivative.sum((0, 1))?.neg()?;
        Ok((self.move_links(theta, &(old - p)?)?, log_det))
    }
}

/// A stack of gauge-equivariant coupling layers on [batch, D, L_{D-1}, ..., L_0, 1] link angles
/// (the layout of [`super::gauge`]); inside, the layers work on [D, sites, batch].
pub type U1EquivariantFlow = CouplingStack<PlaquetteCoupling>;

impl U1EquivariantFlow {
    /// The flow for a lattice of extents `dims` (validated by the architecture), its weights
    /// created under `vb` as `layer{i}.conv{j}.{weight,bias}`.
    pub fn new(architecture: &U1EquivariantArchitecture, dims: &[usize], vb: VarBuilder) -> Result<Self> {
        architecture.validate(dims).map_err(candle_core::Error::Msg)?;
        let lattice = Lattice::new(dims).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let d = dims.len();
        let table = NeighbourTable::new(architecture.kernel, &lattice);
        let n = architecture.components;
        let neighbours = forward_neighbours(&lattice, &device)?;
        let inputs = 2 * planes(d).len();
        let layers = (0..architecture.layers)
            .map(|i| {
                let stripes = Stripes::of_layer(i, d);
                let (active_plane, sign) = stripes.active_plane(d);
                let direction: Vec<f64> =
                    (0..d).map(|mu| if mu == stripes.mu { sign } else { 0.0 }).collect();
                let net = ConvNet::new(
                    inputs,
                    &architecture.hidden,
                    n + 1,
                    false,
                    &table,
                    vb.pp(format!("layer{i}")),
                )?;
                Ok(PlaquetteCoupling {
                    net,
                    components: n,
                    active_plane,
                    direction: Tensor::from_vec(direction, (d, 1, 1), &device)?.to_dtype(dtype)?,
                    active: stripes.active_mask(&lattice, dtype, &device)?,
                    active_sites: ActiveSites::new(stripes.active_flags(&lattice)),
                    frozen: stripes.frozen_mask(&lattice, 1, dtype, &device)?,
                    neighbours: neighbours.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(CouplingStack::from_layers(layers, d, dims, &[1]))
    }
}

/// A gauge action of [`GaugeAction`] on batches of U(1) link angles
/// [batch, D, L_{D-1}, ..., L_0, 1]: S = beta sum [c0 sum_P (1 - cos theta_P) + c1 sum_R (1 -
/// cos theta_R)] over the plaquettes of every plane and the 2 x 1 rectangles of both
/// orientations, the value the field code computes.
pub struct U1BatchAction(pub GaugeAction);

impl BatchAction for U1BatchAction {
    fn batch_action(&self, x: &Tensor) -> Result<Tensor> {
        let theta = x.squeeze(x.rank() - 1)?;
        let d = theta.dim(1)?;
        let links = (0..d).map(|mu| theta.narrow(1, mu, 1)).collect::<Result<Vec<_>>>()?;
        batch_loop_action(&self.0, d, |path| loop_angles(&links, path)?.cos())
    }
}

/// The angle of the loop that starts at every site and follows `path` (steps (direction,
/// forward?)), for link angles theta[mu] [batch, 1, L_{D-1}, ..., L_0]: the sum of the angles
/// of the links it crosses forward minus those it crosses backward.
fn loop_angles(theta: &[Tensor], path: &[(usize, bool)]) -> Result<Tensor> {
    let mut angle: Option<Tensor> = None;
    for link in path_links(theta.len(), path) {
        let t = shifted(&theta[link.mu], &link.offset)?;
        angle = Some(match (angle, link.forward) {
            (None, true) => t,
            (None, false) => t.neg()?,
            (Some(a), true) => (a + t)?,
            (Some(a), false) => (a - t)?,
        });
    }
    angle.ok_or_else(|| candle_core::Error::Msg("loop_angles: an empty path".into()))
}
