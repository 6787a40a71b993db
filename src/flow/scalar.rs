//! The scalar theory on tensors: the Gaussian prior, the batched phi^4 action that training
//! differentiates, and the conversion between [`ScalarField`]s and [batch, 1, L_{D-1}, ...,
//! L_0] tensors (lexicographic order, x fastest, is row-major order of the lattice dimensions).

use super::{BatchAction, FlowField, LatentField, Prior, require_one_rank};
use crate::action::Phi4Action;
use crate::geometry::Lattice;
use crate::rng::StreamKey;
use crate::scalar::ScalarField;
use candle_core::{DType, Device, Result, Tensor};
use std::sync::Arc;

/// The prior N(0, 1) on every site: log r(z) = -(1/2) sum_x z(x)^2 - (V/2) ln(2 pi).
#[derive(Clone, Copy, Debug)]
pub struct GaussianPrior;

impl Prior for GaussianPrior {
    fn sample(&self, lattice: &Lattice, keys: &[StreamKey], dtype: DType, device: &Device) -> Result<Tensor> {
        let fields: Vec<ScalarField> =
            keys.iter().map(|k| ScalarField::gaussian(Arc::new(lattice.clone()), k)).collect();
        ScalarField::to_batch(&fields.iter().collect::<Vec<_>>(), dtype, device)
    }

    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let volume = z.elem_count() / z.dim(0)?;
        let norm = 0.5 * volume as f64 * (2.0 * std::f64::consts::PI).ln();
        (z.flatten_from(1)?.sqr()?.sum(1)? * -0.5)? - norm
    }
}

/// The phi^4 action of [`Phi4Action`] on a batch of fields [batch, 1, L_{D-1}, ..., L_0]: one
/// value per sample.
impl BatchAction for Phi4Action {
    fn batch_action(&self, x: &Tensor) -> Result<Tensor> {
        let (m2, lambda) = self.couplings();
        let mut density = ((x.sqr()? * m2)? + (x.sqr()?.sqr()? * lambda)?)?;
        for dim in 2..x.rank() {
            density = (density + (x.roll(-1, dim)? - x)?.sqr()?)?;
        }
        density.flatten_from(1)?.sum(1)
    }
}

impl FlowField for ScalarField {
    fn to_batch(fields: &[&Self], dtype: DType, device: &Device) -> Result<Tensor> {
        require_one_rank(fields[0].lattice())?;
        let mut shape = vec![fields.len(), 1];
        shape.extend(fields[0].lattice().dims().iter().rev());
        let values: Vec<f64> = fields.iter().flat_map(|f| f.values().iter().copied()).collect();
        Tensor::from_vec(values, shape, device)?.to_dtype(dtype)
    }

    fn reflected(&self) -> Self {
        let mut phi = self.clone();
        phi.values_mut().iter_mut().for_each(|v| *v = -*v);
        phi
    }

    fn from_batch(x: &Tensor, lattice: &Arc<Lattice>) -> Result<Vec<Self>> {
        require_one_rank(lattice)?;
        let values: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        Ok(values
            .chunks_exact(lattice.volume())
            .map(|v| {
                let mut phi = ScalarField::zeros(lattice.clone());
                phi.values_mut().copy_from_slice(v);
                phi
            })
            .collect())
    }
}

/// The MD coordinates of a scalar field are its site values: F(x) = -dS/dphi(x).
impl LatentField for ScalarField {
    fn add_gradient_force(&self, gradient: &[f64], h: f64, p: &mut ScalarField) {
        p.values_mut().iter_mut().zip(gradient).for_each(|(p, g)| *p -= h * g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Monomial;
    use crate::rng::Purpose;

    #[test]
    fn batched_action_and_prior_match_the_field_code() {
        check_batched_action(&[6, 4]);
        check_batched_action(&[2, 4, 2, 6]);
    }

    fn check_batched_action(dims: &[usize]) {
        let lattice = Lattice::new(dims).unwrap();
        let keys: Vec<StreamKey> = (0..3).map(|i| StreamKey::new(1, Purpose::Test, i)).collect();
        let z = GaussianPrior.sample(&lattice, &keys, DType::F64, &Device::Cpu).unwrap();
        let fields = ScalarField::from_batch(&z, &Arc::new(lattice.clone())).unwrap();
        let action = Phi4Action::new(-4.0, 8.0).unwrap();
        let batch: Vec<f64> = action.batch_action(&z).unwrap().to_vec1().unwrap();
        let log_prob: Vec<f64> = GaussianPrior.log_prob(&z).unwrap().to_vec1().unwrap();
        for (i, phi) in fields.iter().enumerate() {
            let s = action.action(phi).unwrap();
            assert!((batch[i] - s).abs() < 1e-12 * s.abs().max(1.0), "{} vs {s}", batch[i]);
            let sum2: f64 = phi.values().iter().map(|v| v * v).sum();
            let expected = -0.5 * sum2 - 0.5 * lattice.volume() as f64 * (2.0 * std::f64::consts::PI).ln();
            assert!((log_prob[i] - expected).abs() < 1e-12, "{} vs {expected}", log_prob[i]);
            assert_eq!(phi, &ScalarField::gaussian(Arc::new(lattice.clone()), &keys[i]));
            let reflected = phi.reflected();
            assert!(reflected.values().iter().zip(phi.values()).all(|(r, v)| *r == -*v));
            assert_eq!(action.action(&reflected).unwrap(), s);
        }
    }
}
