//! Gauge fields on tensors: the Haar prior and the conversion between [`GaugeField`]s and
//! batch tensors [batch, D, L_{D-1}, ..., L_0, K] of the links' K real coordinates
//! ([`crate::group::Group::coordinates`]: the angle for U(1)), direction-major, sites lexicographic (x
//! fastest).
//!
//! Densities of gauge flows are relative to the normalised Haar measure of every link, so the
//! Haar prior has log r = 0 and the training loss mean(log q + S) approaches -ln Z with
//! Z = integral dU exp(-S) (the normalisation of the exact U(1) results in
//! [`crate::reference`]). For U(1) the flows' Jacobians in the angles are Jacobians with
//! respect to that measure, since it is d theta / (2 pi) on every link.

use super::{FlowField, LatentField, Prior, require_one_rank};
use crate::backend::cpu::PackedGroup;
use crate::field::{GaugeField, MomentumField};
use crate::geometry::Lattice;
use crate::group::LinkMatrix;
use crate::rng::StreamKey;
use candle_core::{DType, Device, Result, Tensor};
use std::marker::PhantomData;
use std::sync::Arc;

/// The shape of a batch of gauge fields of group G on `lattice`.
fn batch_shape<G: PackedGroup>(batch: usize, lattice: &Lattice) -> Vec<usize> {
    let mut shape = vec![batch, lattice.ndim()];
    shape.extend(lattice.dims().iter().rev());
    shape.push(G::COORDINATES);
    shape
}

impl<G: PackedGroup> FlowField for GaugeField<G> {
    fn to_batch(fields: &[&Self], dtype: DType, device: &Device) -> Result<Tensor> {
        let lattice = fields[0].lattice();
        require_one_rank(lattice)?;
        let (d, volume, k) = (lattice.ndim(), lattice.volume(), G::COORDINATES);
        let mut values = vec![0.0; fields.len() * d * volume * k];
        let mut chunks = values.chunks_exact_mut(k);
        for u in fields {
            for mu in 0..d {
                for site in 0..volume {
                    G::coordinates(&u.link(site, mu), chunks.next().expect("sized"));
                }
            }
        }
        Tensor::from_vec(values, batch_shape::<G>(fields.len(), lattice), device)?.to_dtype(dtype)
    }

    fn reflected(&self) -> Self {
        let reals = 2 * G::NC * G::NC;
        let mut buffer = vec![0.0; reals];
        let links = self
            .to_links()
            .iter()
            .map(|link| {
                link.write_reals(&mut buffer);
                buffer.iter_mut().skip(1).step_by(2).for_each(|im| *im = -*im);
                G::Elem::read_reals(&buffer)
            })
            .collect();
        GaugeField::from_links(self.lattice().clone(), links).expect("conjugate links are group elements")
    }

    fn from_batch(x: &Tensor, lattice: &Arc<Lattice>) -> Result<Vec<Self>> {
        require_one_rank(lattice)?;
        let (d, volume, k) = (lattice.ndim(), lattice.volume(), G::COORDINATES);
        let expected = batch_shape::<G>(x.dim(0)?, lattice);
        if x.dims() != expected {
            candle_core::bail!("gauge batch of shape {:?}, the lattice needs {expected:?}", x.dims());
        }
        let values: Vec<f64> = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        values
            .chunks_exact(d * volume * k)
            .map(|field| {
                let mut links = vec![G::Elem::identity(); d * volume];
                for (i, c) in field.chunks_exact(k).enumerate() {
                    let (mu, site) = (i / volume, i % volume);
                    links[site * d + mu] = G::from_coordinates(c);
                }
                GaugeField::from_links(lattice.clone(), links)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))
            })
            .collect()
    }
}

/// The MD coordinates of a link are the generators of its drift exp(w T_a) U: F_a =
/// -sum_k dS/dc_k dc_k/dw_a with the coordinate tangents of [`crate::group::Group::coordinate_tangent`].
impl<G: PackedGroup> LatentField for GaugeField<G> {
    fn add_gradient_force(&self, gradient: &[f64], h: f64, p: &mut MomentumField<G>) {
        let lattice = self.lattice().clone();
        let (d, volume, k) = (lattice.ndim(), lattice.volume(), G::COORDINATES);
        let mut tangent = vec![0.0; k];
        for mu in 0..d {
            for site in 0..volume {
                let g = &gradient[(mu * volume + site) * k..][..k];
                let link = self.link(site, mu);
                let mut force = G::Alg::default();
                for (a, f) in force.as_mut().iter_mut().enumerate() {
                    G::coordinate_tangent(&link, a, &mut tangent);
                    *f = -h * g.iter().zip(&tangent).map(|(g, t)| g * t).sum::<f64>();
                }
                p.add_at(&lattice, site, mu, &force);
            }
        }
    }
}

/// The Haar measure on every link (log r = 0, see the module docs), drawn by
/// [`GaugeField::haar`].
pub struct HaarPrior<G: PackedGroup>(PhantomData<G>);

impl<G: PackedGroup> HaarPrior<G> {
    /// The prior.
    pub fn new() -> Self {
        HaarPrior(PhantomData)
    }
}

impl<G: PackedGroup> Default for HaarPrior<G> {
    fn default() -> Self {
        Self::new()
    }
}

impl<G: PackedGroup> Prior for HaarPrior<G> {
    fn sample(&self, lattice: &Lattice, keys: &[StreamKey], dtype: DType, device: &Device) -> Result<Tensor> {
        let lattice = Arc::new(lattice.clone());
        let fields: Vec<GaugeField<G>> =
            keys.iter().map(|key| GaugeField::haar(lattice.clone(), key)).collect();
        GaugeField::to_batch(&fields.iter().collect::<Vec<_>>(), dtype, device)
    }

    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        Tensor::zeros(z.dim(0)?, z.dtype(), z.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{LinkMatrix, Su3, U1};
    use crate::rng::Purpose;

    fn distance<G: PackedGroup>(a: &GaugeField<G>, b: &GaugeField<G>) -> f64 {
        a.to_links().iter().zip(b.to_links()).map(|(l, m)| l.sub(&m).norm_sqr().sqrt()).fold(0.0, f64::max)
    }

    fn round_trip<G: PackedGroup>(tolerance: f64) {
        let lattice = Arc::new(Lattice::new(&[4, 2]).unwrap());
        let fields = [GaugeField::<G>::hot(lattice.clone(), 3), GaugeField::<G>::hot(lattice.clone(), 4)];
        let x = GaugeField::to_batch(&fields.iter().collect::<Vec<_>>(), DType::F64, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[2, 2, 2, 4, G::COORDINATES]);
        let back = GaugeField::<G>::from_batch(&x, &lattice).unwrap();
        for (a, b) in fields.iter().zip(&back) {
            assert!(distance(a, b) < tolerance);
        }
        let key = StreamKey::new(3, Purpose::HotStart, 0);
        let z = HaarPrior::<G>::new().sample(&lattice, &[key], DType::F64, &Device::Cpu).unwrap();
        assert!(distance(&GaugeField::<G>::from_batch(&z, &lattice).unwrap()[0], &fields[0]) < tolerance);
        assert!(GaugeField::<G>::from_batch(&z.narrow(1, 0, 1).unwrap(), &lattice).is_err());
    }

    /// Charge conjugation U -> U* is an involution that keeps links in the group and leaves
    /// the gauge actions unchanged, and it moves the field (U(1): theta -> -theta).
    #[test]
    fn reflection_is_charge_conjugation() {
        use crate::action::{GaugeAction, GaugeActionKind, Monomial};
        fn check<G: PackedGroup>() {
            let lattice = Arc::new(Lattice::new(&[4, 2, 2, 4]).unwrap());
            let u = GaugeField::<G>::hot(lattice, 6);
            let c = u.reflected();
            assert!(distance(&c.reflected(), &u) < 1e-15);
            assert!(distance(&c, &u) > 0.1);
            assert!(c.max_unitarity_violation() < 1e-13);
            for kind in [GaugeActionKind::Wilson, GaugeActionKind::Iwasaki] {
                let action = GaugeAction::new(kind, 2.3);
                let (a, b) = (action.action(&u).unwrap(), action.action(&c).unwrap());
                assert!((a - b).abs() < 1e-11 * a.abs(), "{kind:?}: {a} vs {b}");
            }
        }
        check::<U1>();
        check::<Su3>();
        let lattice = Arc::new(Lattice::new(&[4, 2]).unwrap());
        let u = GaugeField::<U1>::hot(lattice, 7);
        for (a, b) in u.to_links().iter().zip(u.reflected().to_links()) {
            assert_eq!(b, a.conj());
        }
    }

    #[test]
    fn gauge_fields_round_trip_through_batches() {
        round_trip::<U1>(1e-15);
        round_trip::<Su3>(1e-14);
    }
}
