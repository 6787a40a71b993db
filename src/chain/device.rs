//! A card's HMC on the CUDA backend (`run.device = "cuda"` or `"cuda-emulated"`, feature
//! `cuda`): the card's gauge action and pseudofermion terms as device monomials, in the order
//! and with the names and noise streams of the CPU's ([`super::fields`]), so that the device
//! chain follows the CPU chain of the same card to round-off.

use super::card::{Card, DeviceKind, GAUGE_MONOMIAL, SolverKind, Theory};
use crate::action::Monomial;
use crate::action::device::{DeviceGaugeAction, DevicePseudofermion};
use crate::action::fermion::PseudofermionParams;
use crate::backend::cuda::device::Device;
use crate::backend::cuda::gauge::DeviceGauge;
use crate::backend::cuda::gpu_of_rank;
use crate::backend::cuda::wilson::LinkStorage;
use crate::comm::agreed;
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::update::device::DeviceHmc;
use crate::update::{Hmc, MarkovStep};
use std::sync::Arc;

/// The card's HMC on its device (the card has been validated for it).
pub fn device_hmc(card: &Card, lattice: &Arc<Lattice>) -> Result<Box<dyn MarkovStep<GaugeField<Su3>>>> {
    let Theory::Gauge(gauge) = card.theory()? else {
        return Err(Error::Card("run.device: the CUDA backend runs gauge theories".into()));
    };
    let mut monomials: Vec<Box<dyn Monomial<DeviceGauge>>> =
        vec![Box::new(DeviceGaugeAction::new(GAUGE_MONOMIAL, gauge.action, gauge.beta))];
    let links = LinkStorage::of_reals(card.run.link_reals)
        .ok_or_else(|| Error::Card(format!("run.link_reals = {}: 18 or 12", card.run.link_reals)))?;
    let mut stream = 0;
    for (i, f) in card.fermions.iter().enumerate() {
        for (name, (kappa, kappa_heavy)) in f.term_names(i).iter().zip(f.term_kappas()) {
            let params = PseudofermionParams {
                kappa,
                kappa_heavy,
                boundary: f.time_boundary(),
                even_odd: f.even_odd,
                solver: f.solver_params(),
                mixed_precision: f.solver.kind == SolverKind::MixedCg,
            };
            monomials.push(Box::new(DevicePseudofermion::new(name, params, links, lattice, stream)?));
            stream += 1;
        }
    }
    // one device per rank; a rank that cannot open its GPU fails every rank
    let comm = lattice.comm().clone();
    let device = match card.run.device {
        DeviceKind::CudaEmulated => Ok(Device::emulated()),
        _ => gpu_of_rank(comm.rank()).and_then(Device::gpu),
    };
    let device = agreed(comm.as_ref(), device)?.on_ranks(comm);
    let hmc = Hmc::new(monomials, card.integrator()?, card.trajectory_length()?, card.run.seed)?;
    Ok(Box::new(DeviceHmc::new(device, hmc)))
}
