//! The gauge field and its momenta resident on a device, with the molecular-dynamics kernels
//! of `kernels/gauge.cu`: the force of the Wilson, Symanzik and Iwasaki actions, the link
//! update U <- exp(eps P) U, the gauge action and the kinetic energy. Fields move to and from
//! the host only at the boundary ([`super::layout`]).
//!
//! Conventions are the CPU's (README, Conventions; [`crate::group`], [`crate::action::gauge`]):
//! S = beta sum_x [c0 sum_{mu<nu} (1 - Re tr P / 3) + c1 sum_{mu!=nu} (1 - Re tr R / 3)] with
//! c0 = 1 - 8 c1, momenta P = sum_a p_a T_a with kinetic energy (1/2) sum p_a^2, dU/dt = P U,
//! and the force F_a = -d/dw S(exp(w T_a) U). Sums come back from per-block partials added in
//! block order: deterministic, equal to the CPU's exact sums to round-off.
//!
//! On a process grid each rank's device holds its block ([`super::block`]): the links on the
//! extended box, whose halo layers are refreshed from the neighbours after every change of the
//! links (upload, update, projection), and the momenta on the block.

use super::block::{BlockShape, exchange_slabs};
use super::device::{Arg, Device, DeviceBuffer, DeviceReal, checked};
use super::{GAUGE, layout};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::phase_space::PhaseSpace;
use num_complex::Complex64;
use std::sync::Arc;

/// SU(3) links U_mu(x) of this rank's block of a 4D lattice on a device, in f64 (site-major
/// on the extended box, halos current), with the CPU lattice they came from (for the random
/// streams of momentum refreshes, keyed by site).
#[derive(Debug)]
pub struct DeviceGauge {
    links: DeviceBuffer<f64>,
    lattice: Arc<Lattice>,
    block: BlockShape,
}

/// Momenta P_mu(x) on a device, 8 reals per link (site-major).
#[derive(Debug)]
pub struct DeviceMomenta {
    data: DeviceBuffer<f64>,
}

impl DeviceGauge {
    /// The gauge field `u` (this rank's block of a 4D SU(3) field) uploaded to `device`, whose
    /// ranks must be those of u's lattice. Collective.
    pub fn upload(device: &Device, u: &GaugeField<Su3>) -> Result<Self> {
        let lattice = u.lattice().clone();
        let block = BlockShape::of(&lattice)?;
        if device.comm().size() != lattice.comm().size() {
            return Err(Error::Device(format!(
                "a device computing for {} ranks cannot hold a field of a lattice on {}",
                device.comm().size(),
                lattice.comm().size()
            )));
        }
        let site_links = layout::links_of(u);
        let mut reals = vec![0.0; block.extended_volume() * 72];
        for (x, links) in site_links.chunks_exact(36).enumerate() {
            let at = block.extended_site(x) * 72;
            for (k, z) in links.iter().enumerate() {
                reals[at + 2 * k] = z.re;
                reals[at + 2 * k + 1] = z.im;
            }
        }
        let mut gauge = DeviceGauge { links: device.upload(&reals)?, lattice, block };
        gauge.refresh_halos()?;
        Ok(gauge)
    }

    /// The halo layers of the links from the neighbours' blocks (collective; nothing on one
    /// rank).
    fn refresh_halos(&mut self) -> Result<()> {
        let device = self.device().clone();
        exchange_slabs(&device, &self.block, &mut self.links, GAUGE)
    }

    /// The block's links on the host, site-major.
    pub fn download(&self) -> Result<Vec<Complex64>> {
        let reals = self.links.download()?;
        Ok((0..self.block.volume())
            .flat_map(|x| {
                let at = self.block.extended_site(x) * 72;
                reals[at..at + 72].chunks_exact(2).map(|p| Complex64::new(p[0], p[1])).collect::<Vec<_>>()
            })
            .collect())
    }

    /// The field back on the host, in the CPU's layout.
    pub fn to_host(&self) -> Result<GaugeField<Su3>> {
        layout::links_from(&self.download()?, &self.lattice)
    }

    /// A second copy on the same device.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(DeviceGauge { links: self.links.try_clone()?, lattice: self.lattice.clone(), block: self.block })
    }

    /// The lattice.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// The block's extents.
    pub fn dims(&self) -> [usize; 4] {
        self.block.dims()
    }

    /// The block.
    pub fn block(&self) -> &BlockShape {
        &self.block
    }

    /// A copy of the links on the extended box in precision T (rounded for f32), for the Dirac
    /// operators.
    pub fn links_in<T: DeviceReal>(&self) -> Result<DeviceBuffer<T>> {
        T::from_f64_buffer(&self.links)
    }

    /// The device it lives on.
    pub fn device(&self) -> &Device {
        self.links.device()
    }

    /// Number of links of the block (4 per site).
    pub fn links(&self) -> usize {
        self.block.volume() * 4
    }

    /// Zero momenta for these links.
    pub fn zero_momenta(&self) -> Result<DeviceMomenta> {
        Ok(DeviceMomenta { data: self.device().zeros(self.links() * 8)? })
    }

    /// The momenta `p` (of this lattice) uploaded.
    pub fn upload_momenta(&self, p: &MomentumField<Su3>) -> Result<DeviceMomenta> {
        Ok(DeviceMomenta { data: self.device().upload(&layout::momenta_of(p, &self.lattice))? })
    }

    /// Every link projected back to SU(3), as the CPU's [`GaugeField::project`].
    pub fn project(&mut self) -> Result<()> {
        let links = self.links();
        let device = self.device().clone();
        let mut args = vec![Arg::F64Mut(&mut self.links)];
        args.extend(self.block.args());
        // SAFETY: the parameters of project_f64; 18 reals per link of the extended box.
        unsafe { device.launch(GAUGE, "project_f64", device.shape(links), &mut args)? };
        self.refresh_halos()
    }

    fn check(&self, p: &DeviceMomenta) -> Result<()> {
        if p.data.len() != self.links() * 8 {
            return Err(Error::Device(format!(
                "momenta of {} reals for {} links",
                p.data.len(),
                self.links()
            )));
        }
        Ok(())
    }

    /// p += h F(U) for the gauge action with coupling `beta` and rectangle coefficient `c1`
    /// (c0 = 1 - 8 c1): the CPU's [`crate::action::gauge::GaugeAction::force`] on the device.
    pub fn add_force(&self, beta: f64, c1: f64, h: f64, p: &mut DeviceMomenta) -> Result<()> {
        self.check(p)?;
        let coeff = h * beta / 3.0;
        let mut args = vec![Arg::F64(&self.links), Arg::F64Mut(&mut p.data)];
        args.extend(self.block.args());
        args.extend([Arg::Double(coeff * (1.0 - 8.0 * c1)), Arg::Double(coeff * c1)]);
        let device = self.device();
        // SAFETY: the parameters of gauge_force_f64 in order; links and momenta hold 18 and 8
        // reals per link of the extended box and of the block (checked).
        unsafe { device.launch(GAUGE, "gauge_force_f64", device.shape(self.links() / 4), &mut args) }
    }

    /// U <- exp(eps P) U on every link (collective: the halos follow).
    pub fn evolve(&mut self, p: &DeviceMomenta, eps: f64) -> Result<()> {
        self.check(p)?;
        let links = self.links();
        let device = self.device().clone();
        let mut args = vec![Arg::F64Mut(&mut self.links), Arg::F64(&p.data)];
        args.extend(self.block.args());
        args.push(Arg::Double(eps));
        // SAFETY: the parameters of link_update_f64 in order; links and momenta hold 18 and 8
        // reals per link of the extended box and of the block (checked).
        unsafe { device.launch(GAUGE, "link_update_f64", device.shape(links), &mut args)? };
        self.refresh_halos()
    }

    /// The sum over the lattice of Re tr P_{mu nu}(x) over mu < nu (plaquettes) or of Re tr
    /// R_{mu nu}(x) over mu != nu (`rectangles`, every 1x2 rectangle once). Collective.
    pub fn loop_sum(&self, rectangles: bool) -> Result<f64> {
        let mut args = vec![Arg::F64(&self.links)];
        args.extend(self.block.args());
        args.push(Arg::Int(i32::from(rectangles)));
        // SAFETY: the parameters of loop_partial_f64 in order (the partials last); the links hold
        // 18 reals per link of the extended box.
        Ok(unsafe { self.device().reduce(GAUGE, "loop_partial_f64", self.block.volume(), args, 1) }?[0])
    }

    /// The gauge action with coupling `beta` and rectangle coefficient `c1` (see the module
    /// docs), as the CPU's [`crate::action::gauge::GaugeAction::value`]. Collective.
    pub fn action(&self, beta: f64, c1: f64) -> Result<f64> {
        let plaquettes = (self.lattice.global_volume() * 6) as f64;
        let mut s = (1.0 - 8.0 * c1) * (plaquettes - self.loop_sum(false)? / 3.0);
        if c1 != 0.0 {
            s += c1 * (2.0 * plaquettes - self.loop_sum(true)? / 3.0);
        }
        Ok(beta * s)
    }
}

impl DeviceMomenta {
    /// The kinetic energy (1/2) sum over links and components of p_a^2.
    pub fn kinetic_energy(&self) -> Result<f64> {
        let n = self.data.len();
        let args = vec![Arg::Long(n as i64), Arg::F64(&self.data), Arg::F64(&self.data)];
        // SAFETY: the parameters of dot_partial_f64 in order (the partials last); n reals.
        Ok(0.5 * unsafe { self.data.device().reduce(super::BLAS, "dot_partial_f64", n, args, 1) }?[0])
    }

    /// The momenta on the host, site-major.
    pub fn download(&self) -> Result<Vec<f64>> {
        self.data.download()
    }

    /// A second copy on the same device.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(DeviceMomenta { data: self.data.try_clone()? })
    }

    /// p <- -p.
    pub fn negate(&mut self) -> Result<()> {
        let n = self.data.len();
        let device = self.data.device().clone();
        let mut args = vec![Arg::Long(n as i64), Arg::Double(-1.0), Arg::F64Mut(&mut self.data)];
        // SAFETY: the parameters of scale_f64; n reals.
        unsafe { device.launch(super::BLAS, "scale_f64", device.shape(n), &mut args) }
    }

    /// Its reals, for the force kernels of other modules (8 per link, site-major).
    pub(super) fn reals_mut(&mut self) -> &mut DeviceBuffer<f64> {
        &mut self.data
    }
}

impl Clone for DeviceGauge {
    fn clone(&self) -> Self {
        checked(self.try_clone())
    }
}

impl Clone for DeviceMomenta {
    fn clone(&self) -> Self {
        checked(self.try_clone())
    }
}

/// The gauge field on the device as the phase space of HMC and its integrators: the same
/// kinetic energy, drift and projection as the CPU's [`GaugeField`], so `Hmc<DeviceGauge>`
/// runs a trajectory with the links and momenta resident on the device. Momenta are drawn on
/// the host from the CPU's site streams and uploaded once per trajectory, so a device chain
/// follows the CPU's to round-off. A failing device call (a lost GPU) panics with its message:
/// the phase-space operations cannot return errors.
impl PhaseSpace for DeviceGauge {
    type Momentum = DeviceMomenta;

    fn gaussian_momenta(&self, seed: u64, update: u64) -> DeviceMomenta {
        checked(self.upload_momenta(&MomentumField::gaussian(&self.lattice, seed, update)))
    }

    fn zero_momenta(&self) -> DeviceMomenta {
        checked(DeviceGauge::zero_momenta(self))
    }

    fn kinetic_energy(p: &DeviceMomenta) -> f64 {
        checked(p.kinetic_energy())
    }

    fn negate(p: &mut DeviceMomenta) {
        checked(p.negate())
    }

    fn drift(&mut self, p: &DeviceMomenta, h: f64) {
        checked(self.evolve(p, h))
    }

    fn max_distance(&self, other: &Self) -> f64 {
        checked(self.to_host().and_then(|a| other.to_host().map(|b| a.max_distance(&b))))
    }

    fn tidy(&mut self) {
        checked(self.project())
    }
}
