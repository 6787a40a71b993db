//! Gauge-equivariant spectral flows for SU(3) (arXiv 2008.05456; on lattices of any dimension
//! D >= 2), and the SU(3) gauge action on batches of links.
//!
//! Links are SU(3) matrices as 18 reals ([`crate::group::Group::coordinates`]). The coupling
//! layers update links in the stripes of [`super::stripes`]. An updated link U_mu(x) opens
//! its active plaquette in the (mu, nu) plane, the untraced loop W that starts with it:
//! W = U_mu(x) U_nu(x+mu) U_mu(x+nu)^dagger U_nu(x)^dagger. The layer maps W to f(W) W with
//! the spectral map of [`super::spectral`], whose coefficients come from a periodic
//! convolutional network of Re tr / 3 and Im tr / 3 of the frozen plaquettes of every plane
//! (channels Re, Im of the first plane, then of the next, ...; the plaquette of the plane
//! (a, b), a < b, is U_a(x) U_b(x+a) U_a(x+b)^dagger U_b(x)^dagger), and sets
//! U_mu(x) -> f(W) U_mu(x): the
//! loop then becomes f(W) W, since f(W) commutes with W. A gauge transformation conjugates
//! W by Omega(x) and leaves the traces alone, so the layer commutes with it; the link moves
//! by a left multiplication (Haar measure preserving), so the layer's log-Jacobian is the sum
//! of the spectral maps' log-Jacobians over the active plaquettes.

use super::BatchAction;
use super::conv::{ConvNet, NeighbourTable, validate_network};
use super::loops::{batch_loop_action, path_links, shifted};
use super::ops::color_product;
use super::spectral::{MAX_MODES, invert_spectral_map, spectral_kernel};
use super::stack::{CouplingLayer, CouplingStack};
use super::stripes::{Stripes, forward_neighbours, planes};
use crate::action::GaugeAction;
use crate::geometry::Lattice;
use candle_core::{DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Real coordinates of an SU(3) link.
const REALS: usize = 18;

/// The architecture of an SU(3) spectral flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Su3SpectralArchitecture {
    /// Number of coupling layers (a multiple of 4D, so every link is updated equally often).
    pub layers: usize,
    /// Hidden channels of each coupling network.
    pub hidden: Vec<usize>,
    /// Odd convolution kernel size.
    pub kernel: usize,
    /// Fourier modes K of the eigenphase shift (1 to 8).
    pub modes: usize,
}

impl Default for Su3SpectralArchitecture {
    fn default() -> Self {
        Su3SpectralArchitecture { layers: 16, hidden: vec![8, 8], kernel: 3, modes: 2 }
    }
}

impl Su3SpectralArchitecture {
    /// Checks the values against a lattice of extents `dims`; the message names the offending
    /// key.
    pub fn validate(&self, dims: &[usize]) -> std::result::Result<(), String> {
        validate_network(&self.hidden, self.kernel)?;
        if !(1..=MAX_MODES).contains(&self.modes) {
            return Err(format!("modes = {}: need 1 to {MAX_MODES}", self.modes));
        }
        super::stripes::validate(self.layers, dims, "SU(3)")
    }
}

/// Re tr and Im tr of a [..., 18] matrix tensor, as [..., 2], divided by 3.
fn normalized_traces(m: &Tensor) -> Result<Tensor> {
    let mut selector = vec![0.0; REALS * 2];
    for k in [0, 4, 8] {
        selector[2 * (2 * k)] = 1.0 / 3.0;
        selector[2 * (2 * k + 1) + 1] = 1.0 / 3.0;
    }
    let selector = Tensor::from_vec(selector, (REALS, 2), m.device())?.to_dtype(m.dtype())?;
    let mut dims = m.dims().to_vec();
    let rows = m.elem_count() / REALS;
    *dims.last_mut().expect("a matrix dimension") = 2;
    m.contiguous()?.reshape((rows, REALS))?.matmul(&selector)?.reshape(dims)
}

/// One spectral coupling layer on links in the layout [D, sites, batch, 18].
pub struct SpectralCoupling {
    net: ConvNet,
    stripes: Stripes,
    /// The sites of the active plaquettes.
    active: Tensor,
    /// 1 on the frozen plaquettes, [2 planes, sites, 1] (the Re and Im channels of each plane).
    frozen: Tensor,
    /// Where each site of the updated direction finds its new link in
    /// [old links (sites), new active links]: the site itself, or sites + its active index.
    placement: Tensor,
    /// The neighbours x + mu of every site, one tensor per direction.
    neighbours: Vec<Tensor>,
}

/// What a layer needs of the current links.
struct LayerInput {
    /// The links of the updated direction, [1, sites, batch, 18].
    updated: Tensor,
    /// The active loops at the active sites, [active * batch, 18].
    loops: Tensor,
    /// The raw spectral coefficients at the active sites, [active * batch, 2K].
    raw: Tensor,
}

impl SpectralCoupling {
    fn input(&self, links: &Tensor) -> Result<LayerInput> {
        let (_, sites, batch, _) = links.dims4()?;
        let (mu, nu) = (self.stripes.mu, self.stripes.nu);
        let mut traces = Vec::new();
        let mut loops = None;
        for [a, b] in planes(self.neighbours.len()) {
            let (ua, ub) = (links.narrow(0, a, 1)?, links.narrow(0, b, 1)?);
            // the plaquette A B^dagger, A = U_a(x) U_b(x+a), B = U_b(x) U_a(x+b)
            let pa = color_product(&ua, &ub.index_select(&self.neighbours[a], 1)?, (false, false))?;
            let pb = color_product(&ub, &ua.index_select(&self.neighbours[b], 1)?, (false, false))?;
            let plaquette = color_product(&pa, &pb, (false, true))?;
            traces.push(normalized_traces(&plaquette.reshape((sites, batch, REALS))?)?.permute((2, 0, 1))?);
            if [a, b] == [mu.min(nu), mu.max(nu)] {
                // the loop that starts with U_mu(x): the plaquette, or B A^dagger for mu = b
                loops = Some(if mu == a { plaquette } else { color_product(&pb, &pa, (false, true))? });
            }
        }
        let traces = Tensor::cat(&traces, 0)?;
        let raw = self.net.forward(&traces.broadcast_mul(&self.frozen)?.contiguous()?)?;
        let active = self.active.dim(0)?;
        let raw = raw.index_select(&self.active, 1)?.permute((1, 2, 0))?.contiguous()?;
        let raw = raw.reshape((active * batch, raw.dim(2)?))?;
        let loops = loops.expect("the active plane is a plane of the lattice");
        let loops = loops.index_select(&self.active, 1)?.reshape((active * batch, REALS))?;
        Ok(LayerInput { updated: links.narrow(0, mu, 1)?, loops, raw })
    }

    /// The links with the active links of the updated direction replaced by `new`
    /// [1, active, batch, 18].
    fn place(&self, links: &Tensor, updated: &Tensor, new: &Tensor) -> Result<Tensor> {
        let direction = Tensor::cat(&[updated, new], 1)?.index_select(&self.placement, 1)?;
        let all = (0..links.dim(0)?)
            .map(|k| if k == self.stripes.mu { Ok(direction.clone()) } else { links.narrow(0, k, 1) })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&all, 0)
    }
}

impl CouplingLayer for SpectralCoupling {
    fn forward(&self, links: &Tensor) -> Result<(Tensor, Tensor)> {
        let input = self.input(links)?;
        let (active, batch) = (self.active.dim(0)?, links.dim(2)?);
        let out = spectral_kernel(&input.loops, &input.raw)?;
        let f = out.narrow(1, 0, REALS)?.reshape((1, active, batch, REALS))?;
        let log_det = out.narrow(1, REALS, 1)?.reshape((active, batch))?.sum(0)?;
        let old = input.updated.index_select(&self.active, 1)?;
        let new = color_product(&f, &old, (false, false))?;
        Ok((self.place(links, &input.updated, &new)?, log_det))
    }

    fn inverse(&self, links: &Tensor) -> Result<(Tensor, Tensor)> {
        let input = self.input(links)?;
        let (active, batch) = (self.active.dim(0)?, links.dim(2)?);
        let loops: Vec<f64> = input.loops.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let raw: Vec<f64> = input.raw.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let k = raw.len() / (active * batch);
        let inverted: Vec<([f64; REALS], f64)> = (0..active * batch)
            .into_par_iter()
            .map(|i| invert_spectral_map(&loops[i * REALS..][..REALS], &raw[i * k..][..k]))
            .collect();
        let f_dagger: Vec<f64> = inverted.iter().flat_map(|(f, _)| *f).collect();
        let log_j: Vec<f64> = inverted.iter().map(|(_, l)| *l).collect();
        let (dtype, device) = (links.dtype(), links.device());
        let f_dagger = Tensor::from_vec(f_dagger, (1, active, batch, REALS), device)?.to_dtype(dtype)?;
        let log_det = Tensor::from_vec(log_j, (active, batch), device)?.to_dtype(dtype)?.sum(0)?.neg()?;
        let current = input.updated.index_select(&self.active, 1)?;
        let old = color_product(&f_dagger, &current, (false, false))?;
        Ok((self.place(links, &input.updated, &old)?, log_det))
    }
}

/// A stack of spectral coupling layers on [batch, D, L_{D-1}, ..., L_0, 18] links (the layout
/// of [`super::gauge`]); inside, the layers work on [D, sites, batch, 18].
pub type Su3SpectralFlow = CouplingStack<SpectralCoupling>;

impl Su3SpectralFlow {
    /// The flow for a lattice of extents `dims` (validated by the architecture), its weights
    /// created under `vb` as `layer{i}.conv{j}.{weight,bias}`.
    pub fn new(architecture: &Su3SpectralArchitecture, dims: &[usize], vb: VarBuilder) -> Result<Self> {
        architecture.validate(dims).map_err(candle_core::Error::Msg)?;
        let lattice = Lattice::new(dims).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let (d, sites) = (dims.len(), lattice.volume());
        let table = NeighbourTable::new(architecture.kernel, &lattice);
        let neighbours = forward_neighbours(&lattice, &device)?;
        let layers = (0..architecture.layers)
            .map(|i| {
                let stripes = Stripes::of_layer(i, d);
                let active = stripes.active_sites(&lattice);
                let mut placement: Vec<u32> = (0..sites as u32).collect();
                for (slot, &site) in active.iter().enumerate() {
                    placement[site as usize] = (sites + slot) as u32;
                }
                let net = ConvNet::new(
                    2 * planes(d).len(),
                    &architecture.hidden,
                    2 * architecture.modes,
                    false,
                    &table,
                    vb.pp(format!("layer{i}")),
                )?;
                Ok(SpectralCoupling {
                    net,
                    stripes,
                    active: Tensor::from_vec(active.clone(), active.len(), &device)?,
                    frozen: stripes.frozen_mask(&lattice, 2, dtype, &device)?,
                    placement: Tensor::from_vec(placement, sites, &device)?,
                    neighbours: neighbours.clone(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(CouplingStack::from_layers(layers, d, dims, &[REALS]))
    }
}

/// A gauge action of [`GaugeAction`] on batches of SU(3) links [batch, D, L_{D-1}, ..., L_0, 18]:
/// S = beta sum_x [c0 sum_P (1 - Re tr P / 3) + c1 sum_R (1 - Re tr R / 3)] over the
/// plaquettes of every plane and the 2 x 1 rectangles of both orientations, the value the
/// field code computes.
pub struct Su3BatchAction(pub GaugeAction);

/// Re tr / 3 of the loop that starts at every site and follows `path` (steps (direction,
/// forward?); the first step forward), for links u[mu] [batch, 1, L_{D-1}, ..., L_0, 18];
/// the result is [batch, 1, L_{D-1}, ..., L_0].
fn loop_traces(u: &[Tensor], path: &[(usize, bool)]) -> Result<Tensor> {
    let mut product: Option<Tensor> = None;
    for link in path_links(u.len(), path) {
        let factor = shifted(&u[link.mu], &link.offset)?;
        product = Some(match product {
            None if link.forward => factor,
            None => candle_core::bail!("loop_traces: the path must start with a forward step"),
            Some(p) => color_product(&p, &factor, (false, !link.forward))?,
        });
    }
    let product = product.ok_or_else(|| candle_core::Error::Msg("loop_traces: an empty path".into()))?;
    let traces = normalized_traces(&product)?;
    let last = traces.rank() - 1;
    traces.narrow(last, 0, 1)?.squeeze(last)
}

impl BatchAction for Su3BatchAction {
    fn batch_action(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dim(1)?;
        let u = (0..d).map(|mu| x.narrow(1, mu, 1)?.contiguous()).collect::<Result<Vec<_>>>()?;
        batch_loop_action(&self.0, d, |path| loop_traces(&u, path))
    }
}
