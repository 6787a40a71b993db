//! HMC on the CUDA backend for a chain whose field lives on the host (feature `cuda`): the
//! field stays resident on the device from one trajectory to the next and is copied back after
//! each one, for the measurements and files of the run (the host boundary).

use super::{Hmc, MarkovStep, StepReport};
use crate::backend::cuda::device::Device;
use crate::backend::cuda::gauge::DeviceGauge;
use crate::error::Result;
use crate::field::GaugeField;
use crate::group::Su3;

/// [`Hmc`] on a [`DeviceGauge`], stepping a host [`GaugeField`]: it uploads the field only when
/// the host copy is not the one it last handed back (the first step, a resumed or changed
/// field; on a process grid when any rank's block changed, so that every rank uploads, which
/// is collective), and downloads it after every step.
pub struct DeviceHmc {
    device: Device,
    hmc: Hmc<DeviceGauge>,
    /// The device field and the host copy it equals.
    resident: Option<(DeviceGauge, GaugeField<Su3>)>,
}

impl DeviceHmc {
    /// HMC `hmc` (with device monomials) on `device`.
    pub fn new(device: Device, hmc: Hmc<DeviceGauge>) -> Self {
        DeviceHmc { device, hmc, resident: None }
    }
}

impl MarkovStep<GaugeField<Su3>> for DeviceHmc {
    fn step(&mut self, u: &mut GaugeField<Su3>, update: u64) -> Result<StepReport> {
        let resident = self.resident.take().filter(|(_, host)| host == u);
        let changed_anywhere = self.device.comm().max(if resident.is_some() { 0.0 } else { 1.0 }) > 0.0;
        let mut gauge = match resident {
            Some((gauge, _)) if !changed_anywhere => gauge,
            _ => DeviceGauge::upload(&self.device, u)?,
        };
        let report = self.hmc.step(&mut gauge, update)?;
        *u = gauge.to_host()?;
        self.resident = Some((gauge, u.clone()));
        Ok(report)
    }

    fn set_reversibility_check(&mut self, on: bool) {
        self.hmc.set_reversibility_check(on);
    }

    fn set_metropolis_test(&mut self, on: bool) {
        self.hmc.set_metropolis_test(on);
    }
}
