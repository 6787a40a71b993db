//! A flow model as a whole: prior, flow, weights and the record of what it was built for
//! (theory, couplings, lattice, architecture, precision, training), saved as safetensors with
//! that record as JSON in the file's metadata under the key `flowhmc`.
//!
//! Weights are initialised from the library's streams (not candle's unseeded generator), so
//! a training run is reproducible, with the distribution torch.nn.Conv2d uses: weights and
//! biases of a layer uniform in [-1/sqrt(fan_in), 1/sqrt(fan_in)], fan_in = inputs * k^2.

use super::gauge::HaarPrior;
use super::real_nvp::{RealNvp, RealNvpArchitecture};
use super::scalar::GaussianPrior;
use super::su3::{Su3SpectralArchitecture, Su3SpectralFlow};
use super::u1::{U1EquivariantArchitecture, U1EquivariantFlow};
use super::{Flow, FlowField, Prior};
use crate::error::{Error, Result, spelling};
use crate::geometry::Lattice;
use crate::group::{Su3, U1};
use crate::io::{read_file, write_atomically};
use crate::rng::{Purpose, StreamKey};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The theory a model samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TheoryTag {
    /// Real scalar phi^4.
    Scalar,
    /// U(1) gauge theory.
    U1,
    /// SU(3) gauge theory.
    Su3,
}

/// Floating-point precision of a model's weights and tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision (the default: training is about twice as fast).
    #[default]
    F32,
    /// Double precision.
    F64,
}

impl Precision {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        }
    }
}

/// The architectures flowhmc builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// Real NVP with checkerboard affine couplings (scalar fields, any dimension).
    RealNvp(RealNvpArchitecture),
    /// Gauge-equivariant coupling layers with NCP mixtures (U(1), any dimension).
    U1Equivariant(U1EquivariantArchitecture),
    /// Gauge-equivariant coupling layers with spectral maps of the active loops (SU(3), any
    /// dimension).
    Su3Spectral(Su3SpectralArchitecture),
}

impl Architecture {
    /// The card name of the model.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::RealNvp(_) => "real-nvp",
            Architecture::U1Equivariant(_) => "u1-equivariant",
            Architecture::Su3Spectral(_) => "su3-spectral",
        }
    }
}

/// What a model was built for; stored with its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// The architecture and its parameters.
    pub architecture: Architecture,
    /// The precision of the weights.
    pub precision: Precision,
    /// The theory.
    pub theory: TheoryTag,
    /// The couplings it was trained at (`m2`, `lambda`; or `beta`).
    pub couplings: BTreeMap<String, f64>,
    /// The lattice extents (x first).
    pub dims: Vec<usize>,
    /// Training record (steps, seconds, final loss, ESS, acceptance); null before training.
    #[serde(default)]
    pub training: serde_json::Value,
}

const METADATA_KEY: &str = "flowhmc";
const FORMAT: &str = "flowhmc-flow";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    model: ModelInfo,
}

/// A prior, a flow and its weights.
pub struct FlowModel {
    info: ModelInfo,
    lattice: Arc<Lattice>,
    varmap: VarMap,
    flow: Box<dyn Flow>,
    prior: Box<dyn Prior>,
}

impl std::fmt::Debug for FlowModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowModel").field("info", &self.info).finish_non_exhaustive()
    }
}

impl FlowModel {
    /// A model with fresh weights drawn from the streams of `seed`.
    pub fn new(info: ModelInfo, seed: u64) -> Result<Self> {
        let model = Self::build(info)?;
        let vars: BTreeMap<String, Var> =
            model.varmap.data().lock().expect("var map").clone().into_iter().collect();
        for (index, (name, var)) in vars.iter().enumerate() {
            let weight = name.strip_suffix(".bias").map(|layer| format!("{layer}.weight"));
            let shape = weight.as_ref().and_then(|w| vars.get(w)).unwrap_or(var).dims().to_vec();
            let fan_in: usize = shape.iter().skip(1).product();
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            let key = StreamKey::new(seed, Purpose::ModelInit, index as u64);
            let values: Vec<f64> =
                (0..var.elem_count()).map(|i| bound * (2.0 * key.stream(i).uniform() - 1.0)).collect();
            var.set(&Tensor::from_vec(values, var.dims(), &Device::Cpu)?.to_dtype(var.dtype())?)?;
        }
        Ok(model)
    }

    /// The model with the weights of `path`, which must hold a model for the same theory and
    /// architecture; `dims` overrides the stored lattice (convolutional flows apply to any
    /// lattice size), `None` keeps it.
    pub fn load(path: &Path, dims: Option<&[usize]>) -> Result<Self> {
        let bytes = read_file(path)?;
        let named = |m: String| Error::Model(format!("{}: {m}", path.display()));
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| named(format!("not a safetensors file ({e})")))?;
        let text = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| named("no flowhmc model record in the metadata".into()))?;
        let header: Header =
            serde_json::from_str(text).map_err(|e| named(format!("unreadable model record: {e}")))?;
        if header.format != FORMAT || header.version != 1 {
            return Err(named(format!(
                "format {} version {} is not a flowhmc flow",
                header.format, header.version
            )));
        }
        let mut info = header.model;
        if let Some(dims) = dims {
            info.dims = dims.to_vec();
        }
        let model = Self::build(info).map_err(|e| named(e.to_string()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let data = model.varmap.data().lock().expect("var map");
        if tensors.len() != data.len() {
            return Err(named(format!("{} tensors, the architecture has {}", tensors.len(), data.len())));
        }
        for (name, var) in data.iter() {
            let t = tensors.get(name).ok_or_else(|| named(format!("tensor {name} is missing")))?;
            if t.dims() != var.dims() || t.dtype() != var.dtype() {
                return Err(named(format!(
                    "tensor {name} has shape {:?} {:?}, expected {:?} {:?}",
                    t.dims(),
                    t.dtype(),
                    var.dims(),
                    var.dtype()
                )));
            }
            let finite =
                t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?.iter().all(|v| v.is_finite());
            if !finite {
                return Err(named(format!("tensor {name} holds NaN or infinite weights")));
            }
            var.set(t)?;
        }
        drop(data);
        Ok(model)
    }

    /// Writes weights and record to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_with_training(path, &self.info.training)
    }

    /// Writes the weights to `path` (atomically) with `training` in place of the model's
    /// training record (a checkpoint of a run in progress).
    pub fn save_with_training(&self, path: &Path, training: &serde_json::Value) -> Result<()> {
        let model = ModelInfo { training: training.clone(), ..self.info.clone() };
        let header = Header { format: FORMAT.into(), version: 1, model };
        let metadata = HashMap::from([(
            METADATA_KEY.to_string(),
            serde_json::to_string(&header).expect("record serialises"),
        )]);
        let data = self.varmap.data().lock().expect("var map");
        let tensors: BTreeMap<String, Tensor> =
            data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        drop(data);
        let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), Some(metadata))
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
        write_atomically(path, &bytes)
    }

    fn build(info: ModelInfo) -> Result<Self> {
        let lattice = Arc::new(Lattice::new(&info.dims)?);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, info.precision.dtype(), &Device::Cpu);
        let (flow, prior): (Box<dyn Flow>, Box<dyn Prior>) = match (&info.architecture, info.theory) {
            (Architecture::RealNvp(a), TheoryTag::Scalar) => {
                a.validate().map_err(|m| Error::Model(format!("real-nvp: {m}")))?;
                (Box::new(RealNvp::new(a, &info.dims, vb)?), Box::new(GaussianPrior))
            }
            (Architecture::U1Equivariant(a), TheoryTag::U1) => {
                a.validate(&info.dims).map_err(|m| Error::Model(format!("u1-equivariant: {m}")))?;
                (Box::new(U1EquivariantFlow::new(a, &info.dims, vb)?), Box::new(HaarPrior::<U1>::new()))
            }
            (Architecture::Su3Spectral(a), TheoryTag::Su3) => {
                a.validate(&info.dims).map_err(|m| Error::Model(format!("su3-spectral: {m}")))?;
                (Box::new(Su3SpectralFlow::new(a, &info.dims, vb)?), Box::new(HaarPrior::<Su3>::new()))
            }
            (a, theory) => {
                return Err(Error::Model(format!(
                    "a {} model cannot sample the {} theory",
                    a.name(),
                    spelling(&theory)
                )));
            }
        };
        Ok(FlowModel { info, lattice, varmap, flow, prior })
    }

    /// What the model was built for.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Records the training summary (saved with the weights).
    pub fn set_training(&mut self, record: serde_json::Value) {
        self.info.training = record;
    }

    /// Records the couplings the model is (further) trained at.
    pub fn set_couplings(&mut self, couplings: BTreeMap<String, f64>) {
        self.info.couplings = couplings;
    }

    /// The lattice the model acts on.
    pub fn lattice(&self) -> &Arc<Lattice> {
        &self.lattice
    }

    /// The trainable weights.
    pub fn vars(&self) -> Vec<Var> {
        self.varmap.all_vars()
    }

    /// Checks that the model samples `theory` on `dims`; the error names the mismatch.
    pub fn check_matches(&self, theory: TheoryTag, dims: &[usize]) -> Result<()> {
        if self.info.theory != theory {
            return Err(Error::Model(format!(
                "the model samples the {} theory, the card asks for {}",
                spelling(&self.info.theory),
                spelling(&theory)
            )));
        }
        if self.info.dims != dims {
            return Err(Error::Model(format!(
                "the model is for dims {:?}, the card says {dims:?}",
                self.info.dims
            )));
        }
        Ok(())
    }

    /// Samples x = f(z) for one prior draw per key, with log q(x) of each (differentiable).
    pub fn sample(&self, keys: &[StreamKey]) -> Result<(Tensor, Tensor)> {
        let z = self.prior.sample(&self.lattice, keys, self.info.precision.dtype(), &Device::Cpu)?;
        let (x, log_det) = self.flow.forward(&z)?;
        let log_q = (self.prior.log_prob(&z)? - log_det)?;
        Ok((x, log_q))
    }

    /// log q(x) of each sample of a batch, through the inverse map.
    pub fn log_density(&self, x: &Tensor) -> Result<Tensor> {
        let (z, log_det_inverse) = self.flow.inverse(x)?;
        Ok((self.prior.log_prob(&z)? + log_det_inverse)?)
    }

    /// Proposals as fields, one per key: f of the prior draws (no gradients kept). Their
    /// log q is [`FlowModel::log_density_of`], the one density flow Metropolis uses.
    pub fn propose<F: FlowField>(&self, keys: &[StreamKey]) -> Result<Vec<F>> {
        let (x, _) = self.sample(keys)?;
        Ok(F::from_batch(&x.detach(), &self.lattice)?)
    }

    /// log q of one field.
    pub fn log_density_of<F: FlowField>(&self, field: &F) -> Result<f64> {
        let x = F::to_batch(&[field], self.info.precision.dtype(), &Device::Cpu)?;
        Ok(self.log_density(&x)?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0])
    }

    /// The latent field z = f^-1(x) of one field.
    pub fn latent_of<F: FlowField>(&self, x: &F) -> Result<F> {
        let t = F::to_batch(&[x], self.info.precision.dtype(), &Device::Cpu)?;
        Ok(F::from_batch(&self.flow.inverse(&t)?.0, &self.lattice)?.pop().expect("one field"))
    }

    /// The field x = f(z) of one latent field.
    pub fn image_of<F: FlowField>(&self, z: &F) -> Result<F> {
        let t = F::to_batch(&[z], self.info.precision.dtype(), &Device::Cpu)?;
        Ok(F::from_batch(&self.flow.forward(&t)?.0, &self.lattice)?.pop().expect("one field"))
    }

    /// The flow itself (forward and inverse maps with their log-Jacobians).
    pub fn flow(&self) -> &dyn Flow {
        self.flow.as_ref()
    }
}
