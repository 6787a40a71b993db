//! Run cards: the TOML description of a run, parsed strictly and validated before anything
//! is written.
//!
//! ```toml
//! [lattice]
//! dims = [16, 16]            # x, y, (z,) t; every extent even
//! [gauge]                    # or [scalar] (below)
//! group = "u1"               # "u1" | "su3"
//! action = "wilson"          # "wilson" | "symanzik" | "iwasaki"
//! beta = 3.0
//! [update]
//! kind = "hmc"
//! trajectory_length = 1.0
//! integrator = "omelyan"     # "leapfrog" | "omelyan" | "omelyan4" | "force-gradient"
//! steps = 10
//! reversibility_check = 0    # every n-th trajectory also runs back (0: never)
//! [run]
//! trajectories = 2000        # measured trajectories, after thermalization
//! thermalization = 200
//! seed = 1
//! start = "hot"              # "hot" | "cold" | path to a NERSC or flowhmc gauge file
//!                            # (with flow updates "hot" is a sample of the model)
//! checkpoint_every = 100
//! output = "runs/u1"
//! threads = 0                # per rank; 0: all cores
//! process_grid = [1, 1, 2, 2]  # ranks per direction under mpirun (optional: chosen for
//!                            # the number of ranks when absent)
//! [measure]                  # optional
//! flow = { epsilon = 0.02, t_max = 3.0, every = 10 }   # Wilson flow, 4D only
//! hadrons = { every = 10, noise = 4 }   # condensate and pion, needs [[fermions]]
//! ```
//!
//! A scalar phi^4 theory (the action of [`crate::action::Phi4Action`], monomial "phi4")
//! replaces `[gauge]` by
//! ```toml
//! [scalar]
//! m2 = -4.0
//! lambda = 8.0
//! ```
//! and then `start = "hot"` draws phi(x) from N(0, 1), "cold" sets phi = 0.
//!
//! Nested time scales replace `integrator` and `steps` by a list of levels, outermost first;
//! every monomial ("gauge" for the gauge action) sits on exactly one level:
//! ```toml
//! [[update.levels]]
//! integrator = "omelyan"
//! steps = 4
//! monomials = ["gauge"]
//! ```
//! Flow models (trained by `flowhmc train` from the card's `[flow]` and `[train]` tables)
//! drive three more update kinds: `kind = "flow-mh"` (independence Metropolis; `model`,
//! optional `batch` and `symmetrize`), `"schedule"` (`hmc = n` trajectories then `flow = m`
//! proposals per cycle, with `model` and the HMC keys) and `"flow-hmc"` (HMC in the latent
//! variables of `model`, with `trajectory_length`, `integrator` and `steps`; no levels, no
//! fermions). `symmetrize = true` proposes the reflected sample (phi -> -phi, or charge
//! conjugation U -> U*) half of the time, with the symmetrized density in the test.
//!
//! Unknown keys, wrong types and invalid values are errors that name the key.

use crate::action::exact_determinant::MAX_DENSE_ROWS;
use crate::action::{GaugeAction, GaugeActionKind, Phi4Action};
use crate::checkerboard::Checkerboard;
use crate::comm::Comm;
use crate::dirac::{Boundary, Clover, Method};
use crate::error::{Error, Result, spelling};
use crate::flow::real_nvp::RealNvpArchitecture;
use crate::flow::su3::Su3SpectralArchitecture;
use crate::flow::train::{Schedule as LearningRateSchedule, TrainingOptions};
use crate::flow::u1::U1EquivariantArchitecture;
use crate::flow::{Architecture, Precision, TheoryTag};
use crate::geometry::Lattice;
use crate::integrator::{Integrator, Level, Scheme};
use crate::rational::Zolotarev;
use crate::solver::SolverParams;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A whole run card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// `[lattice]`.
    pub lattice: LatticeCard,
    /// `[gauge]` (exactly one of `gauge` and `scalar`).
    pub gauge: Option<GaugeCard>,
    /// `[scalar]`: a phi^4 theory instead of a gauge theory.
    pub scalar: Option<ScalarCard>,
    /// `[update]`.
    pub update: UpdateCard,
    /// `[run]`.
    pub run: RunCard,
    /// `[measure]` (optional).
    #[serde(default)]
    pub measure: MeasureCard,
    /// `[[fermions]]`: dynamical fermion species (none: pure gauge).
    #[serde(default)]
    pub fermions: Vec<FermionCard>,
    /// `[flow]`: the model `flowhmc train` builds (not used by `flowhmc run`).
    pub flow: Option<FlowModelCard>,
    /// `[train]`: its training (not used by `flowhmc run`).
    pub train: Option<TrainCard>,
}

/// Fermion discretisations a card can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FermionKind {
    /// Wilson fermions (r = 1).
    Wilson,
    /// Clover-improved Wilson fermions ([`crate::dirac::clover`]) with coefficient `csw`;
    /// with even/odd preconditioning the table adds the odd-site determinant term NAME.det.
    Clover,
}

/// Fermion boundary conditions in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundaryName {
    /// psi(t + L_t) = -psi(t).
    #[default]
    Antiperiodic,
    /// psi(t + L_t) = psi(t).
    Periodic,
    /// openQCD's open boundaries ([`crate::dirac::Boundary::Open`]), on a lattice with
    /// `boundary = "open"` (and only there).
    Open,
}

/// The lattice's boundary in time (`[lattice] boundary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatticeBoundary {
    /// A torus.
    #[default]
    Periodic,
    /// Open ends in time, openQCD's type 0 ([`crate::geometry::Lattice::open_in_time`]).
    Open,
}

/// Krylov solvers a card can name for the pseudofermion solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverKind {
    /// Conjugate gradient on the normal equations.
    Cg,
    /// The same with f32 iterations and f64 reliable updates to the f64 tolerance.
    #[serde(rename = "mixed-cg")]
    MixedCg,
}

/// `solver = { kind, tolerance, max_iterations }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverCard {
    /// The method.
    pub kind: SolverKind,
    /// Target relative residual.
    pub tolerance: f64,
    /// Most iterations per solve.
    pub max_iterations: usize,
}

/// One `[[fermions]]` table: a doublet of mass-degenerate Wilson quarks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FermionCard {
    /// Monomial name (default "fermions", "fermions2", ... by position); with Hasenbusch
    /// masses the terms are NAME.0 (heaviest) .. NAME.n (the ratio that reaches `kappa`).
    pub name: Option<String>,
    /// The discretisation.
    pub kind: FermionKind,
    /// The clover coefficient c_sw (kind "clover" only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csw: Option<f64>,
    /// Number of flavours: 2 (a doublet, two-flavour pseudofermions) or, with `rational`, any
    /// n >= 1 (n rational pseudofermions, each of weight det(M^dagger M)^{1/2}).
    pub flavors: u32,
    /// Rational HMC ([`RationalCard`]); needed for one flavour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rational: Option<RationalCard>,
    /// Hopping parameter.
    pub kappa: f64,
    /// Boundary condition in time ("open" exactly when the lattice is open).
    #[serde(default)]
    pub boundary: BoundaryName,
    /// openQCD's boundary coefficient c_F of open boundaries (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cf: Option<f64>,
    /// Even/odd preconditioning (default true).
    #[serde(default = "yes")]
    pub even_odd: bool,
    /// Hopping parameters of the heavier Hasenbusch operators, increasing, all below `kappa`.
    #[serde(default)]
    pub hasenbusch: Vec<f64>,
    /// The solver of the pseudofermion terms (and of hadron measurements).
    pub solver: SolverCard,
    /// Use the exact weight det(M^dagger M) from the dense Wilson matrix instead of
    /// pseudofermions (small lattices, flow-mh only; default false).
    #[serde(default)]
    pub exact_determinant: bool,
}

/// `rational = { range = [ra, rb], tolerance = 1e-7 }` (or `degree = n` for `tolerance`) in a
/// fermion table: its flavours by rational HMC ([`crate::action::rational`]) with the
/// Zolotarev approximation of (M^dagger M)^{-1/2} on the range of eigenvalues of
/// |Q| = (M^dagger M)^{1/2} (of M_hat with even/odd) given by `range`, so [ra^2, rb^2] for
/// M^dagger M. openQCD's rational functions (its `[Rational ...]` sections) also take the range of
/// |Q|, for its operator 2 kappa times smaller: openQCD's [ra, rb] is this [ra, rb] / (2 kappa).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RationalCard {
    /// [ra, rb]: bounds of the eigenvalues of |Q|, 0 < ra < rb.
    pub range: [f64; 2],
    /// The largest relative error of the approximation (the least degree reaching it is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// The degree, in place of `tolerance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degree: Option<usize>,
    /// Noise fields per measurement of the reweighting factor of the approximation's error,
    /// the column NAME.rw (default 0: not measured).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reweight_sources: u64,
}

impl RationalCard {
    /// The approximation the table asks for (validated card).
    pub fn approximation(&self) -> Result<Zolotarev> {
        let [ra, rb] = self.range;
        match (self.tolerance, self.degree) {
            (Some(tolerance), None) => Zolotarev::with_tolerance(ra * ra, rb * rb, tolerance),
            (None, Some(n)) => Zolotarev::new(n, ra * ra, rb * rb),
            _ => Err(Error::Card("rational: give tolerance or degree, one of them".into())),
        }
        .map_err(|e| Error::Card(format!("rational: {}", strip(e))))
    }
}

fn yes() -> bool {
    true
}

/// The largest hopping parameter a card accepts for Wilson quarks (r = 1) in `ndim`
/// dimensions, kappa = 1/(2 m0 + 2D) for a bare mass m0:
/// - 4D: m0 > -2 (kappa < 1/4), where the doublers with one momentum component at pi become
///   massless; the critical kappa of the physical branch lies below it at every coupling (1/8
///   free, about 0.157 at beta = 6, 1/4 in the strong-coupling limit);
/// - 2D, where those doublers stay massive for every positive kappa: m0 > -1 (kappa < 1/2),
///   twice the free critical kappa 1/4, far above the critical kappa of the Schwinger model
///   at the couplings simulated (about 0.26 at beta = 2).
pub fn max_kappa(ndim: usize) -> f64 {
    let m0_min = if ndim > 2 { -2.0 } else { -1.0 };
    1.0 / (2.0 * m0_min + 2.0 * ndim as f64)
}

impl FermionCard {
    /// The boundary of the fermions in time.
    pub fn time_boundary(&self) -> Boundary {
        match self.boundary {
            BoundaryName::Antiperiodic => Boundary::ANTIPERIODIC,
            BoundaryName::Periodic => Boundary::PERIODIC,
            BoundaryName::Open => Boundary::Open { c_f: self.cf.unwrap_or(1.0) },
        }
    }

    /// The clover fermions of this table on the layout `cb`, None for Wilson quarks: one per
    /// table, its clones shared by the table's terms (they build the clover term once per
    /// gauge field).
    pub fn clover(&self, cb: &Checkerboard) -> Option<Clover> {
        match (self.kind, self.csw) {
            (FermionKind::Clover, Some(csw)) => Some(Clover::new(cb.clone(), self.time_boundary(), csw)),
            _ => None,
        }
    }

    /// The Krylov method of the solves (CG on the normal equations, in f64 or mixed precision).
    pub fn solver_method(&self) -> Method {
        match self.solver.kind {
            SolverKind::Cg => Method::Cg,
            SolverKind::MixedCg => Method::MixedCg,
        }
    }

    /// The stopping rule of the solves.
    pub fn solver_params(&self) -> SolverParams {
        SolverParams { tolerance: self.solver.tolerance, max_iterations: self.solver.max_iterations }
    }

    /// The monomial names of this table's pseudofermion terms, `index` its position among the
    /// tables: NAME; with Hasenbusch masses NAME.0 .. NAME.n; with `rational` and n > 1 flavours
    /// NAME.0 .. NAME.(n-1), one per flavour.
    pub fn term_names(&self, index: usize) -> Vec<String> {
        let base = self.base_name(index);
        let count = if self.rational.is_some() { self.flavors as usize } else { self.hasenbusch.len() + 1 };
        if count == 1 { vec![base] } else { (0..count).map(|i| format!("{base}.{i}")).collect() }
    }

    /// The name of the odd-site determinant term of even/odd clover fermions
    /// ([`crate::action::clover::CloverDeterminant`]): NAME.det, after the pseudofermion terms.
    pub fn determinant_name(&self, index: usize) -> Option<String> {
        (self.kind == FermionKind::Clover && self.even_odd && !self.exact_determinant)
            .then(|| format!("{}.det", self.base_name(index)))
    }

    /// NAME of the table at position `index`: its `name`, else "fermions", "fermions2", ...
    pub fn base_name(&self, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| {
            if index == 0 { "fermions".to_string() } else { format!("fermions{}", index + 1) }
        })
    }

    /// (kappa, kappa_heavy) of each term, in the order of [`FermionCard::term_names`]: the
    /// heaviest two-flavour term first (kappa_heavy = 0), then the ratios.
    pub fn term_kappas(&self) -> Vec<(f64, f64)> {
        let mut chain = self.hasenbusch.clone();
        chain.push(self.kappa);
        let mut heavier = 0.0;
        chain
            .into_iter()
            .map(|k| {
                let pair = (k, heavier);
                heavier = k;
                pair
            })
            .collect()
    }
}

/// `[lattice]`: the extents and the boundary in time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatticeCard {
    /// Extents x, y, (z,) t.
    pub dims: Vec<usize>,
    /// "periodic" (default) or "open" (openQCD's open boundaries in time).
    #[serde(default, skip_serializing_if = "is_periodic")]
    pub boundary: LatticeBoundary,
}

fn is_periodic(b: &LatticeBoundary) -> bool {
    *b == LatticeBoundary::Periodic
}

impl LatticeCard {
    /// This rank's block of the lattice on the process grid of `comm`, open in time where the
    /// card says so.
    pub fn lattice(&self, comm: Arc<dyn Comm>) -> Result<Lattice> {
        let lattice = Lattice::distributed(&self.dims, comm)?;
        Ok(if self.is_open() { lattice.open_in_time() } else { lattice })
    }

    /// Whether time has open ends.
    pub fn is_open(&self) -> bool {
        self.boundary == LatticeBoundary::Open
    }
}

/// The gauge groups a card can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupName {
    /// U(1).
    U1,
    /// SU(3).
    Su3,
}

impl GroupName {
    /// The number of colours N of the fundamental representation.
    pub fn colors(self) -> usize {
        match self {
            GroupName::U1 => 1,
            GroupName::Su3 => 3,
        }
    }
}

/// `[gauge]`: group, action and coupling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaugeCard {
    /// The group.
    pub group: GroupName,
    /// The gauge action.
    pub action: GaugeActionKind,
    /// The coupling beta (> 0).
    pub beta: f64,
    /// openQCD's boundary coefficient c_G of open boundaries (default 1; lattice open only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cg: Option<f64>,
}

impl GaugeCard {
    /// The gauge action monomial.
    pub fn action(&self) -> GaugeAction {
        GaugeAction::new(self.action, self.beta).with_boundary_coefficient(self.cg.unwrap_or(1.0))
    }
}

/// `[scalar]`: the couplings of the phi^4 action (convention of arXiv 2101.08176).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalarCard {
    /// The bare mass squared (may be negative).
    pub m2: f64,
    /// The quartic coupling (>= 0).
    pub lambda: f64,
}

/// The theory a card describes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Theory<'a> {
    /// A gauge theory (with the card's fermions).
    Gauge(&'a GaugeCard),
    /// Scalar phi^4.
    Scalar(&'a ScalarCard),
}

/// The update kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateKind {
    /// Hybrid Monte Carlo.
    Hmc,
    /// Independence Metropolis with proposals from the flow model `update.model`.
    FlowMh,
    /// A cycle of `update.hmc` HMC trajectories then `update.flow` flow proposals.
    Schedule,
    /// HMC in the latent variables of the flow model `update.model`.
    FlowHmc,
}

impl UpdateKind {
    /// Whether the update runs MD trajectories (and needs an integrator).
    pub fn uses_md(self) -> bool {
        matches!(self, UpdateKind::Hmc | UpdateKind::Schedule | UpdateKind::FlowHmc)
    }

    /// Whether the update uses a flow model.
    pub fn uses_flow(self) -> bool {
        matches!(self, UpdateKind::FlowMh | UpdateKind::Schedule | UpdateKind::FlowHmc)
    }
}

/// Flow architectures a card can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelName {
    /// Real NVP with checkerboard affine couplings (scalar theories, any dimension).
    RealNvp,
    /// Gauge-equivariant coupling layers with NCP mixtures (U(1), any dimension).
    U1Equivariant,
    /// Gauge-equivariant coupling layers with spectral maps of the active loops (SU(3), any
    /// dimension).
    Su3Spectral,
}

/// `[flow]`: the model a training run builds. Keys that an architecture does not use are
/// errors; absent keys take the architecture's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowModelCard {
    /// The architecture.
    pub model: ModelName,
    /// "f32" (default) or "f64".
    #[serde(default)]
    pub precision: Precision,
    /// Coupling layers.
    pub layers: Option<usize>,
    /// Hidden channels of each coupling network.
    pub hidden: Option<Vec<usize>>,
    /// Convolution kernel size (odd).
    pub kernel: Option<usize>,
    /// Non-compact projections per mixture (u1-equivariant).
    pub components: Option<usize>,
    /// Fourier modes of the eigenphase shifts (su3-spectral).
    pub modes: Option<usize>,
}

impl FlowModelCard {
    /// The architecture for a lattice of extents `dims`, with defaults filled in, validated.
    pub fn architecture(&self, dims: &[usize]) -> Result<Architecture> {
        let bad = |m: String| Error::Card(format!("flow: {m}"));
        match self.model {
            ModelName::RealNvp => {
                self.refuse_key(self.components.is_some(), "components", "u1-equivariant")?;
                self.refuse_key(self.modes.is_some(), "modes", "su3-spectral")?;
                let d = RealNvpArchitecture::default();
                let a = RealNvpArchitecture {
                    layers: self.layers.unwrap_or(d.layers),
                    hidden: self.hidden.clone().unwrap_or(d.hidden),
                    kernel: self.kernel.unwrap_or(d.kernel),
                };
                a.validate().map_err(bad)?;
                Ok(Architecture::RealNvp(a))
            }
            ModelName::U1Equivariant => {
                self.refuse_key(self.modes.is_some(), "modes", "su3-spectral")?;
                let d = U1EquivariantArchitecture::default();
                let a = U1EquivariantArchitecture {
                    layers: self.layers.unwrap_or(d.layers),
                    hidden: self.hidden.clone().unwrap_or(d.hidden),
                    kernel: self.kernel.unwrap_or(d.kernel),
                    components: self.components.unwrap_or(d.components),
                };
                a.validate(dims).map_err(bad)?;
                Ok(Architecture::U1Equivariant(a))
            }
            ModelName::Su3Spectral => {
                self.refuse_key(self.components.is_some(), "components", "u1-equivariant")?;
                let d = Su3SpectralArchitecture::default();
                let a = Su3SpectralArchitecture {
                    layers: self.layers.unwrap_or(d.layers),
                    hidden: self.hidden.clone().unwrap_or(d.hidden),
                    kernel: self.kernel.unwrap_or(d.kernel),
                    modes: self.modes.unwrap_or(d.modes),
                };
                a.validate(dims).map_err(bad)?;
                Ok(Architecture::Su3Spectral(a))
            }
        }
    }

    /// The error for a key `key` of the architecture `owner` given to another one.
    fn refuse_key(&self, present: bool, key: &str, owner: &str) -> Result<()> {
        if present {
            let name = serde_json::to_value(self.model).ok().and_then(|v| v.as_str().map(String::from));
            return Err(Error::Card(format!(
                "flow: {key} is a key of {owner}, not of {}",
                name.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

/// `[train]`: reverse-KL self-training of the `[flow]` model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainCard {
    /// Optimizer steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f64,
    /// "constant" (default) or "cosine" (decays to 0 at the last step).
    #[serde(default)]
    pub schedule: LearningRateSchedule,
    /// Seed of the initial weights and of the prior draws.
    pub seed: u64,
    /// The model file to write (safetensors); learning curves go next to it.
    pub output: PathBuf,
    /// Learning-curve points every this many steps (default 50).
    #[serde(default = "default_log_every")]
    pub log_every: usize,
    /// Start from the weights of this model file (same theory and architecture, any lattice
    /// size) instead of fresh ones.
    pub init: Option<PathBuf>,
    /// Clip the loss gradient to this Euclidean norm over all weights (default: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Train with the path gradient (real-nvp and u1-equivariant; default false).
    #[serde(default)]
    pub path_gradient: bool,
    /// Write the model to `output` at the first learning-curve point after every this many
    /// steps (default: at the end only).
    pub save_every: Option<usize>,
}

impl TrainCard {
    /// The options of the training run.
    pub fn options(&self) -> TrainingOptions {
        TrainingOptions {
            steps: self.steps,
            batch: self.batch,
            learning_rate: self.learning_rate,
            schedule: self.schedule,
            seed: self.seed,
            log_every: self.log_every,
            max_grad_norm: self.max_grad_norm,
            path_gradient: self.path_gradient,
        }
    }
}

fn default_log_every() -> usize {
    50
}

/// A training card: the theory and lattice of a run card with `[flow]` and `[train]`; the
/// tables `[update]`, `[run]`, `[measure]` and `[[fermions]]` may be present (one card can
/// train a model and then run with it) and are not used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingCard {
    /// `[lattice]`.
    pub lattice: LatticeCard,
    /// `[gauge]` (exactly one of `gauge` and `scalar`).
    pub gauge: Option<GaugeCard>,
    /// `[scalar]`.
    pub scalar: Option<ScalarCard>,
    /// `[flow]`.
    pub flow: FlowModelCard,
    /// `[train]`.
    pub train: TrainCard,
}

impl TrainingCard {
    /// Parses and validates a training card; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<TrainingCard> {
        let named = |m: String| Error::Card(format!("{origin}: {m}"));
        let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        for unused in ["update", "run", "measure", "fermions"] {
            table.remove(unused);
        }
        let card: TrainingCard = table.try_into().map_err(|e: toml::de::Error| named(e.to_string()))?;
        card.validate().map_err(|e| named(strip(e)))?;
        Ok(card)
    }

    /// Reads, parses and validates a training card file.
    pub fn load(path: &Path) -> Result<TrainingCard> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The theory.
    pub fn theory(&self) -> Result<Theory<'_>> {
        theory_of(&self.gauge, &self.scalar)
    }

    fn validate(&self) -> Result<()> {
        Lattice::check_dims(&self.lattice.dims)?;
        validate_theory(self.theory()?)?;
        self.flow.architecture(&self.lattice.dims)?;
        let t = &self.train;
        t.options().validate()?;
        if let Some(init) = t.init.as_ref().filter(|p| !p.is_file()) {
            return Err(Error::Card(format!("train.init = {:?}: no such file", init.display())));
        }
        if t.save_every == Some(0) {
            return Err(Error::Card("train.save_every = 0: need at least 1 step".into()));
        }
        Ok(())
    }
}

/// The theory of the `[gauge]` and `[scalar]` tables: exactly one must be given.
fn theory_of<'a>(gauge: &'a Option<GaugeCard>, scalar: &'a Option<ScalarCard>) -> Result<Theory<'a>> {
    match (gauge, scalar) {
        (Some(g), None) => Ok(Theory::Gauge(g)),
        (None, Some(s)) => Ok(Theory::Scalar(s)),
        (Some(_), Some(_)) => Err(Error::Card("give either [gauge] or [scalar], not both".into())),
        (None, None) => Err(Error::Card("missing [gauge] (or [scalar])".into())),
    }
}

/// Checks the couplings of a theory.
fn validate_theory(theory: Theory<'_>) -> Result<()> {
    match theory {
        Theory::Gauge(g) if !(g.beta > 0.0 && g.beta.is_finite()) => {
            Err(Error::Card(format!("gauge.beta = {}: must be a positive number", g.beta)))
        }
        Theory::Scalar(s) => Phi4Action::new(s.m2, s.lambda)
            .map(|_| ())
            .map_err(|e| Error::Card(format!("scalar: {}", strip(e)))),
        Theory::Gauge(_) => Ok(()),
    }
}

impl Theory<'_> {
    /// The tag flow models record.
    pub fn tag(&self) -> TheoryTag {
        match self {
            Theory::Scalar(_) => TheoryTag::Scalar,
            Theory::Gauge(GaugeCard { group: GroupName::U1, .. }) => TheoryTag::U1,
            Theory::Gauge(GaugeCard { group: GroupName::Su3, .. }) => TheoryTag::Su3,
        }
    }

    /// The couplings flow models record: `m2` and `lambda`, or `beta`.
    pub fn couplings(&self) -> std::collections::BTreeMap<String, f64> {
        match self {
            Theory::Scalar(s) => [("m2".to_string(), s.m2), ("lambda".to_string(), s.lambda)].into(),
            Theory::Gauge(g) => [("beta".to_string(), g.beta)].into(),
        }
    }
}

/// One `[[update.levels]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelCard {
    /// The scheme.
    pub integrator: Scheme,
    /// Steps per drift of the enclosing level.
    pub steps: usize,
    /// Names of the monomials integrated on this level.
    pub monomials: Vec<String>,
}

/// `[update]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCard {
    /// The update kind.
    pub kind: UpdateKind,
    /// MD time per trajectory (kinds with MD).
    pub trajectory_length: Option<f64>,
    /// Scheme of the single level (when `levels` is absent).
    pub integrator: Option<Scheme>,
    /// Steps of the single level (when `levels` is absent).
    pub steps: Option<usize>,
    /// Nested levels, outermost first.
    pub levels: Option<Vec<LevelCard>>,
    /// Every n-th trajectory is also integrated back to check reversibility (0: never).
    #[serde(default)]
    pub reversibility_check: u64,
    /// The flow model file (kinds with flow proposals).
    pub model: Option<PathBuf>,
    /// Flow proposals drawn per model evaluation (default 8).
    pub batch: Option<usize>,
    /// Flow proposals symmetrized under the theory's reflection (phi -> -phi for scalars,
    /// charge conjugation U -> U* for gauge fields; kinds with flow proposals, default false).
    #[serde(default)]
    pub symmetrize: bool,
    /// HMC trajectories per schedule cycle.
    pub hmc: Option<u64>,
    /// Flow proposals per schedule cycle.
    pub flow: Option<u64>,
}

/// How a run starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// Haar-random links.
    Hot,
    /// Unit links.
    Cold,
    /// A configuration file (NERSC or native).
    File(PathBuf),
}

/// `[run]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCard {
    /// Measured trajectories after thermalization.
    pub trajectories: u64,
    /// Trajectories discarded first.
    pub thermalization: u64,
    /// The first this many thermalization trajectories skip the Metropolis test (every
    /// trajectory with a finite dH is accepted), as openQCD and Chroma allow: it moves a chain
    /// that starts far from equilibrium and would be rejected forever. At most
    /// `thermalization`; MD updates only. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub thermalization_no_accept: u64,
    /// Seed of every random stream.
    pub seed: u64,
    /// "hot", "cold" or a path.
    pub start: String,
    /// Write a checkpoint every this many trajectories (>= 1).
    pub checkpoint_every: u64,
    /// Output directory.
    pub output: PathBuf,
    /// Worker threads of each rank (0: one per core; at most [`MAX_THREADS`]). Results do
    /// not depend on it.
    #[serde(default)]
    pub threads: usize,
    /// Ranks per direction (x first) when the program runs on many MPI ranks; their product
    /// is the number of ranks. Chosen by [`crate::comm::choose_grid`] when absent. Results do
    /// not depend on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_grid: Option<Vec<usize>>,
    /// Where the trajectories are computed (default "cpu").
    #[serde(default, skip_serializing_if = "DeviceKind::is_cpu")]
    pub device: DeviceKind,
    /// Reals a link in the Dirac operators' copies of the gauge field on the device: 18
    /// (default), or 12 (two rows, the third rebuilt in the kernels as QUDA's reconstruct-12
    /// does: a third fewer link bytes). A device choice: only with a CUDA `device`.
    #[serde(default = "full_link", skip_serializing_if = "is_full_link")]
    pub link_reals: usize,
}

fn full_link() -> usize {
    18
}

fn is_full_link(reals: &usize) -> bool {
    *reals == 18
}

/// `[run] device`: the backend that computes the trajectories. Measurements, checkpoints and
/// files stay on the host: after each trajectory the field is copied back once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// The CPU backend.
    #[default]
    Cpu,
    /// The CUDA backend on the first GPU (a build with the cargo feature `cuda`): SU(3) in 4D,
    /// HMC with the gauge action and even/odd Wilson pseudofermions; on a process grid every
    /// rank takes a GPU of its node (`backend::cuda::gpu_of_rank`).
    Cuda,
    /// The CUDA backend with its kernels run by the CPU emulation: the whole device path on a
    /// machine without a GPU, for tests (much slower than the CPU backend).
    CudaEmulated,
}

impl DeviceKind {
    fn is_cpu(&self) -> bool {
        *self == DeviceKind::Cpu
    }
}

/// Most worker threads a card may ask for.
pub const MAX_THREADS: usize = 1024;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `[measure]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureCard {
    /// Wilson-flow measurements (4D only).
    pub flow: Option<FlowCard>,
    /// Fermionic measurements with the first `[[fermions]]` table's operator.
    pub hadrons: Option<HadronCard>,
}

/// `[measure] hadrons = {...}`: chiral condensate and pion correlator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HadronCard {
    /// Measure every this many measured trajectories.
    pub every: u64,
    /// Noise vectors of the chiral-condensate estimate.
    pub noise: usize,
}

/// Most Wilson-flow steps (`t_max / epsilon`) a measurement may take: ten times what t0 and
/// E(t) at the usual epsilon = 0.01 need on large lattices (t0/a^2 near 10).
pub const MAX_FLOW_STEPS: u64 = 10_000;

/// `[measure] flow = {...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowCard {
    /// Flow step size.
    pub epsilon: f64,
    /// Largest flow time; the charge is measured there.
    pub t_max: f64,
    /// Measure every this many measured trajectories.
    pub every: u64,
}

/// The monomial name of the gauge action.
pub const GAUGE_MONOMIAL: &str = "gauge";

/// The monomial name of the phi^4 action.
pub const PHI4_MONOMIAL: &str = "phi4";

impl Card {
    /// Parses and validates a card given as TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Card> {
        let card: Card = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        card.validate().map_err(|e| match e {
            Error::Card(m) => Error::Card(format!("{origin}: {m}")),
            other => other,
        })?;
        Ok(card)
    }

    /// Reads, parses and validates a card file.
    pub fn load(path: &Path) -> Result<Card> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The card as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a card serialises")
    }

    /// Checks every value (the parser has already checked keys and types).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Card(m));
        Lattice::check_extents(&self.lattice.dims, || self.memory_need())?;
        let theory = self.theory()?;
        validate_theory(theory)?;
        self.validate_boundaries()?;
        if let Theory::Scalar(_) = theory {
            let gauge_only = [
                (!self.fermions.is_empty(), "[[fermions]]"),
                (self.measure.flow.is_some(), "measure.flow"),
                (self.measure.hadrons.is_some(), "measure.hadrons"),
            ];
            if let Some((_, what)) = gauge_only.iter().find(|(given, _)| *given) {
                return bad(format!("{what}: needs a gauge theory, the card has [scalar]"));
            }
        }
        self.validate_update()?;
        let r = &self.run;
        if r.checkpoint_every == 0 {
            return bad("run.checkpoint_every = 0: must be at least 1".into());
        }
        if r.trajectories == 0 {
            return bad("run.trajectories = 0: must be at least 1".into());
        }
        if r.thermalization_no_accept > r.thermalization {
            return bad(format!(
                "run.thermalization_no_accept = {}: at most thermalization = {} (unmeasured trajectories only)",
                r.thermalization_no_accept, r.thermalization
            ));
        }
        if r.thermalization_no_accept > 0 && !self.update.kind.uses_md() {
            return bad(format!(
                "run.thermalization_no_accept: kind \"{}\" has no MD trajectories to accept without a test",
                spelling(&self.update.kind)
            ));
        }
        if r.threads > MAX_THREADS {
            return bad(format!("run.threads = {}: at most {MAX_THREADS} (0: one per core)", r.threads));
        }
        if let Some(grid) = &r.process_grid {
            crate::comm::check_grid(&self.lattice.dims, grid, grid.iter().product())?;
        }
        if r.output.as_os_str().is_empty() {
            return bad("run.output = \"\": name the directory the run writes".into());
        }
        self.validate_device()?;
        if let Start::File(path) = self.start() {
            if path.is_dir() {
                return bad(format!(
                    "run.start = {:?}: a directory, not a configuration file",
                    path.display()
                ));
            }
            if !path.is_file() {
                return bad(format!("run.start = {:?}: no such file", path.display()));
            }
        }
        for (i, f) in self.fermions.iter().enumerate() {
            let at = format!("fermions[{i}]");
            let d = self.lattice.dims.len();
            if d != 2 && d != 4 {
                return bad(format!("{at}: Wilson fermions need a 2D or 4D lattice"));
            }
            match (f.kind, f.csw) {
                (FermionKind::Clover, None) => {
                    return bad(format!("{at}: kind = \"clover\" needs csw (e.g. csw = 1.769)"));
                }
                (FermionKind::Clover, Some(csw)) if !csw.is_finite() => {
                    return bad(format!("{at}.csw = {csw}: must be finite"));
                }
                (FermionKind::Wilson, Some(csw)) => {
                    return bad(format!("{at}.csw = {csw}: only for kind = \"clover\""));
                }
                _ => {}
            }
            if f.kind == FermionKind::Clover && f.exact_determinant {
                return bad(format!("{at}.exact_determinant: the dense determinant is of Wilson quarks"));
            }
            if f.even_odd {
                Checkerboard::check_dims(&self.lattice.dims)
                    .or_else(|e| bad(format!("{at}.even_odd: {}", strip(e))))?;
            }
            match (&f.rational, f.flavors) {
                (None, 2) => {}
                (None, n) => {
                    return bad(format!(
                        "{at}.flavors = {n}: without rational only 2 (a degenerate doublet); one flavour \
                         needs rational = {{ range = [ra, rb], tolerance = 1e-7 }}"
                    ));
                }
                (Some(_), 0) => return bad(format!("{at}.flavors = 0: need at least one")),
                (Some(r), _) => {
                    let [ra, rb] = r.range;
                    if !(ra > 0.0 && rb > ra && rb.is_finite()) {
                        return bad(format!("{at}.rational.range = [{ra}, {rb}]: need 0 < ra < rb"));
                    }
                    match (r.tolerance, r.degree) {
                        (Some(t), None) if !(t > 0.0 && t < 1.0) => {
                            return bad(format!("{at}.rational.tolerance = {t}: need 0 < tolerance < 1"));
                        }
                        (None, Some(n)) if !(1..=64).contains(&n) => {
                            return bad(format!("{at}.rational.degree = {n}: need 1 <= degree <= 64"));
                        }
                        (Some(_), None) | (None, Some(_)) => {}
                        _ => return bad(format!("{at}.rational: give tolerance or degree, one of them")),
                    }
                    if let Err(e) = r.approximation() {
                        return bad(format!("{at}.{}", strip(e)));
                    }
                    if !f.hasenbusch.is_empty() {
                        return bad(format!(
                            "{at}.hasenbusch: not with rational (the terms split by flavour)"
                        ));
                    }
                    if f.exact_determinant {
                        return bad(format!("{at}.exact_determinant: not with rational"));
                    }
                }
            }
            if !(f.kappa > 0.0 && f.kappa < max_kappa(d)) {
                return bad(format!(
                    "{at}.kappa = {}: Wilson quarks in {d}D need 0 < kappa < {} (bare mass m0 = 1/(2 kappa) - {d} above {})",
                    f.kappa,
                    max_kappa(d),
                    1.0 / (2.0 * max_kappa(d)) - d as f64
                ));
            }
            let mut previous = 0.0;
            for &k in &f.hasenbusch {
                if !(k > previous && k < f.kappa) {
                    return bad(format!(
                        "{at}.hasenbusch = {:?}: need increasing values between 0 and kappa = {}",
                        f.hasenbusch, f.kappa
                    ));
                }
                previous = k;
            }
            if !(f.solver.tolerance > 0.0 && f.solver.tolerance < 1.0) || f.solver.max_iterations == 0 {
                return bad(format!("{at}.solver: need 0 < tolerance < 1 and max_iterations > 0"));
            }
            if f.exact_determinant {
                let (spins, colors) =
                    (if d == 2 { 2 } else { 4 }, self.gauge.as_ref().map_or(1, |g| g.group.colors()));
                let rows = self.lattice.dims.iter().product::<usize>() * spins * colors;
                let why = if self.update.kind != UpdateKind::FlowMh {
                    Some("it has no MD force, use kind = \"flow-mh\"".to_string())
                } else if !f.hasenbusch.is_empty() {
                    Some(
                        "Hasenbusch masses split pseudofermion terms, the exact weight needs none"
                            .to_string(),
                    )
                } else if rows > MAX_DENSE_ROWS {
                    Some(format!(
                        "the dense matrix would have {rows} rows, at most {MAX_DENSE_ROWS} are allowed"
                    ))
                } else {
                    None
                };
                if let Some(why) = why {
                    return bad(format!("{at}.exact_determinant: {why}"));
                }
            }
        }
        let names = self.monomial_names();
        if let Some(dup) = names.iter().enumerate().find_map(|(i, n)| names[..i].contains(n).then_some(n)) {
            return bad(format!("fermions: monomial name {dup:?} is used twice"));
        }
        if let Some(h) = &self.measure.hadrons {
            if self.fermions.is_empty() {
                return bad(
                    "measure.hadrons: needs a [[fermions]] table (its kappa and boundary are used)".into()
                );
            }
            if h.every == 0 || h.noise == 0 {
                return bad("measure.hadrons: need every >= 1 and noise >= 1".into());
            }
        }
        if let Some(f) = &self.measure.flow {
            if self.lattice.dims.len() != 4 {
                return bad("measure.flow: the Wilson-flow measurements need a 4D lattice".into());
            }
            let steps = f.t_max / f.epsilon;
            if !(f.epsilon > 0.0 && f.t_max >= f.epsilon && f.every >= 1 && steps <= MAX_FLOW_STEPS as f64) {
                return bad(format!(
                    "measure.flow = {{ epsilon = {}, t_max = {}, every = {} }}: need epsilon > 0, \
                     t_max >= epsilon, t_max / epsilon <= {MAX_FLOW_STEPS} steps, every >= 1",
                    f.epsilon, f.t_max, f.every
                ));
            }
        }
        Ok(())
    }

    /// The theory: `[gauge]` or `[scalar]`, exactly one of them.
    pub fn theory(&self) -> Result<Theory<'_>> {
        theory_of(&self.gauge, &self.scalar)
    }

    /// The MD trajectory length (kinds with MD; validated).
    pub fn trajectory_length(&self) -> Result<f64> {
        match self.update.trajectory_length {
            Some(tau) if tau > 0.0 && tau.is_finite() => Ok(tau),
            Some(tau) => Err(Error::Card(format!("update.trajectory_length = {tau}: must be positive"))),
            None => Err(Error::Card(format!(
                "update: kind \"{}\" needs trajectory_length",
                spelling(&self.update.kind)
            ))),
        }
    }

    /// What open boundaries in time need: a gauge theory with N0 >= 4, HMC or its kin on the
    /// CPU, `boundary = "open"` in every fermion table (and only then), and c_G and c_F only with
    /// them (c_F != 1 on clover quarks).
    fn validate_boundaries(&self) -> Result<()> {
        let open = self.lattice.is_open();
        let bad = |m: String| Err(Error::Card(m));
        if let Some(cg) = self.gauge.as_ref().and_then(|g| g.cg) {
            if !open {
                return bad(
                    "gauge.cg: c_G weights the boundary of an open lattice (lattice.boundary = \"open\")"
                        .into(),
                );
            }
            if !cg.is_finite() {
                return bad(format!("gauge.cg = {cg}: must be finite"));
            }
        }
        for (i, f) in self.fermions.iter().enumerate() {
            let at = format!("fermions[{i}]");
            match (f.boundary == BoundaryName::Open, open) {
                (true, false) => {
                    return bad(format!("{at}.boundary = \"open\": needs lattice.boundary = \"open\""));
                }
                (false, true) => {
                    return bad(format!(
                        "{at}.boundary = \"{}\": the lattice is open in time, its quarks need boundary = \"open\"",
                        spelling(&f.boundary)
                    ));
                }
                _ => {}
            }
            match f.cf {
                Some(_) if !open => return bad(format!("{at}.cf: c_F is for boundary = \"open\"")),
                Some(cf) if !cf.is_finite() => return bad(format!("{at}.cf = {cf}: must be finite")),
                Some(cf) if cf != 1.0 && f.kind == FermionKind::Wilson => {
                    return bad(format!(
                        "{at}.cf = {cf}: c_F != 1 needs kind = \"clover\" (with csw = 0 for no clover term)"
                    ));
                }
                _ => {}
            }
        }
        if !open {
            return Ok(());
        }
        let n0 = *self.lattice.dims.last().expect("checked extents");
        let at = "lattice.boundary = \"open\"";
        if n0 < 4 {
            return bad(format!("{at}: needs at least 4 time slices, lattice.dims has {n0}"));
        }
        if let Theory::Scalar(_) = self.theory()? {
            return bad(format!("{at}: open boundaries are for gauge fields, the card has [scalar]"));
        }
        if self.update.kind.uses_flow() {
            return bad(format!(
                "{at}: flow updates (update.kind = \"{}\") run on periodic lattices",
                spelling(&self.update.kind)
            ));
        }
        if self.run.device != DeviceKind::Cpu {
            return bad(format!("{at}: the CUDA backend runs periodic lattices (run.device = \"cpu\")"));
        }
        Ok(())
    }

    /// What a run on the CUDA backend needs (`run.device`): the feature, SU(3) in 4D, HMC,
    /// and even/odd Wilson pseudofermions.
    fn validate_device(&self) -> Result<()> {
        let device = self.run.device;
        let link_reals = self.run.link_reals;
        if device == DeviceKind::Cpu {
            return match link_reals {
                18 => Ok(()),
                _ => Err(Error::Card(format!(
                    "run.link_reals = {link_reals}: a choice of the CUDA backend's link storage; the CPU \
                     backend (run.device = \"cpu\") stores whole links"
                ))),
            };
        }
        let at = format!("run.device = {:?}", spelling(&device));
        let bad = |m: &str| Err(Error::Card(format!("{at}: {m}")));
        if link_reals != 18 && link_reals != 12 {
            return Err(Error::Card(format!(
                "run.link_reals = {link_reals}: 18 (whole links) or 12 (two rows, the third rebuilt)"
            )));
        }
        if !cfg!(feature = "cuda") {
            return bad(
                "this flowhmc is built without the CUDA backend (cargo build --release --features cuda)",
            );
        }
        let su3_4d = matches!(self.theory()?, Theory::Gauge(g) if g.group == GroupName::Su3)
            && self.lattice.dims.len() == 4;
        if !su3_4d {
            return bad("the CUDA backend runs SU(3) gauge fields in 4D");
        }
        if self.update.kind != UpdateKind::Hmc {
            return bad("the CUDA backend runs HMC (update.kind = \"hmc\")");
        }
        if let Some(i) = self.fermions.iter().position(|f| f.rational.is_some()) {
            return bad(&format!(
                "fermions[{i}]: the CUDA backend runs two-flavour pseudofermions (no rational)"
            ));
        }
        if let Some(i) = self.fermions.iter().position(|f| f.kind == FermionKind::Clover) {
            return bad(&format!("fermions[{i}]: the CUDA backend runs Wilson quarks (kind = \"wilson\")"));
        }
        if let Some(i) = self.fermions.iter().position(|f| !f.even_odd || f.exact_determinant) {
            return bad(&format!(
                "fermions[{i}]: the CUDA backend runs even/odd pseudofermions (even_odd = true, no exact_determinant)"
            ));
        }
        Ok(())
    }

    /// Every key of `[update]` present where its kind uses it, and only there.
    fn validate_update(&self) -> Result<()> {
        let u = &self.update;
        let bad = |m: String| Err(Error::Card(format!("update: {m}")));
        if u.kind.uses_md() {
            self.trajectory_length()?;
            self.integrator()?;
        } else {
            let md_keys = [
                (u.trajectory_length.is_some(), "trajectory_length"),
                (u.integrator.is_some(), "integrator"),
                (u.steps.is_some(), "steps"),
                (u.levels.is_some(), "levels"),
                (u.reversibility_check > 0, "reversibility_check"),
            ];
            if let Some((_, key)) = md_keys.iter().find(|(given, _)| *given) {
                return bad(format!("{key} is for updates with MD, kind \"{}\" has none", spelling(&u.kind)));
            }
        }
        if u.kind.uses_flow() {
            match &u.model {
                None => {
                    return bad(format!(
                        "kind \"{}\" needs model = \"PATH\" (a trained flow)",
                        spelling(&u.kind)
                    ));
                }
                Some(path) if !path.is_file() => {
                    return bad(format!("model = {:?}: no such file", path.display()));
                }
                Some(_) => {}
            }
            if u.batch == Some(0) {
                return bad("batch = 0: must be at least 1".into());
            }
            if u.kind == UpdateKind::FlowHmc {
                let refused = [
                    (u.batch.is_some(), "batch: flow-hmc draws no proposals"),
                    (u.symmetrize, "symmetrize: flow-hmc draws no proposals"),
                    (
                        u.levels.is_some(),
                        "levels: flow-hmc integrates one pulled-back action, give integrator and steps",
                    ),
                    (
                        !self.fermions.is_empty(),
                        "[[fermions]]: flow-hmc pulls back the gauge action only; use flow-mh or a schedule with fermions",
                    ),
                ];
                if let Some((_, why)) = refused.iter().find(|(given, _)| *given) {
                    return bad(why.to_string());
                }
            }
        } else if u.model.is_some() || u.batch.is_some() || u.symmetrize {
            return bad(format!(
                "model, batch and symmetrize are for flow updates, kind \"{}\" has none",
                spelling(&u.kind)
            ));
        }
        match (u.kind, u.hmc, u.flow) {
            (UpdateKind::Schedule, Some(h), Some(f)) if h > 0 && f > 0 => Ok(()),
            (UpdateKind::Schedule, _, _) => {
                bad("a schedule needs hmc >= 1 and flow >= 1 (steps per cycle)".into())
            }
            (_, None, None) => Ok(()),
            _ => bad("hmc and flow count the steps of a schedule; kind is not \"schedule\"".into()),
        }
    }

    /// The start of the chain.
    pub fn start(&self) -> Start {
        match self.run.start.as_str() {
            "hot" => Start::Hot,
            "cold" => Start::Cold,
            path => Start::File(PathBuf::from(path)),
        }
    }

    /// Names of the monomials, in the order the update builds them: "gauge", then the terms
    /// of each `[[fermions]]` table; "phi4" for a scalar theory.
    pub fn monomial_names(&self) -> Vec<String> {
        if self.scalar.is_some() {
            return vec![PHI4_MONOMIAL.to_string()];
        }
        let mut names = vec![GAUGE_MONOMIAL.to_string()];
        for (i, f) in self.fermions.iter().enumerate() {
            names.extend(f.term_names(i));
            names.extend(f.determinant_name(i));
        }
        names
    }

    /// The integrator the card describes (single level or nested levels).
    pub fn integrator(&self) -> Result<Integrator> {
        let u = &self.update;
        let names = self.monomial_names();
        match (&u.levels, u.integrator, u.steps) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Error::Card(
                "update: give either integrator and steps, or [[update.levels]], not both".into(),
            )),
            (None, Some(scheme), Some(steps)) => Integrator::single(scheme, steps, names.len())
                .map_err(|e| Error::Card(format!("update: {}", strip(e)))),
            (None, _, _) => {
                Err(Error::Card("update: missing integrator and steps (or [[update.levels]])".into()))
            }
            (Some(levels), None, None) => {
                let mut built = Vec::new();
                for (i, l) in levels.iter().enumerate() {
                    let mut monomials = Vec::new();
                    for m in &l.monomials {
                        let idx = names.iter().position(|n| n == m).ok_or_else(|| {
                            Error::Card(format!(
                                "update.levels[{i}]: unknown monomial {m:?} (known: {names:?})"
                            ))
                        })?;
                        monomials.push(idx);
                    }
                    built.push(Level { monomials, steps: l.steps, scheme: l.integrator });
                }
                Integrator::new(built, names.len())
                    .map_err(|e| Error::Card(format!("update.levels: {}", strip(e))))
            }
        }
    }
}

/// A TOML error in `text` as one line naming the line, the key (dotted, with its table) and the
/// problem, e.g. `card.toml, line 11: update.steps: invalid type: string "ten", expected usize`;
/// a missing key names its table (`run: missing field `seed``).
fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return Error::Card(format!("{origin}: {message}"));
    };
    let before = &text[..span.start.min(text.len())];
    let number = before.matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or("").trim();
    let header = |l: &str| {
        let l = l.split_once('#').map_or(l, |(table, _comment)| table).trim();
        l.starts_with('[').then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
    };
    let key = match header(line) {
        Some(table) => table,
        None => {
            let table = before.lines().rev().skip(1).find_map(header);
            let name = line.split('=').next().unwrap_or("").trim();
            table.map_or(name.to_string(), |t| format!("{t}.{name}"))
        }
    };
    Error::Card(format!("{origin}, line {number}: {key}: {message}"))
}

/// The message of an error without its kind, for repeating it under a card key.
fn strip(e: Error) -> String {
    match e {
        Error::Card(m) | Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// The built-in default card of `flowhmc` without arguments: a short 2D U(1) HMC run.
pub const DEFAULT_CARD: &str = r#"[lattice]
dims = [16, 16]

[gauge]
group = "u1"
action = "wilson"
beta = 3.0

[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 10

[run]
trajectories = 10000
thermalization = 200
seed = 1
start = "hot"
checkpoint_every = 2000
output = "runs/default"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn with(replace: &str, by: &str) -> Result<Card> {
        assert!(DEFAULT_CARD.contains(replace), "{replace}");
        Card::parse(&DEFAULT_CARD.replacen(replace, by, 1), "card.toml")
    }

    fn err(replace: &str, by: &str) -> String {
        with(replace, by).unwrap_err().to_string()
    }

    #[test]
    fn default_card_is_valid_and_round_trips() {
        let card = Card::parse(DEFAULT_CARD, "default").unwrap();
        assert_eq!(Card::parse(&card.to_toml(), "again").unwrap(), card);
        assert_eq!(card.start(), Start::Hot);
    }

    /// `[lattice] boundary = "open"`: the card round-trips, the lattice it builds is open, and
    /// every key that does not fit open (or periodic) boundaries is refused by name.
    #[test]
    fn open_boundary_cards() {
        let fermions = |extra: &str| {
            format!(
                "[[fermions]]\nflavors = 2\nkappa = 0.2\n{extra}\n\
                 solver = {{ kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }}\n[run]"
            )
        };
        let open = |extra: &str| {
            let text = DEFAULT_CARD.replace("dims = [16, 16]", "dims = [8, 8]\nboundary = \"open\"");
            let text = text.replace("beta = 3.0", "beta = 3.0\ncg = 1.1");
            Card::parse(
                &text.replace("[run]", &fermions(&format!("kind = \"clover\"\ncsw = 1.0\n{extra}"))),
                "card.toml",
            )
        };
        let card = open("boundary = \"open\"\ncf = 0.9").unwrap();
        assert_eq!(Card::parse(&card.to_toml(), "again").unwrap(), card);
        assert!(card.lattice.lattice(Arc::new(crate::comm::Single::new(2))).unwrap().is_open_in_time());
        assert_eq!(card.fermions[0].time_boundary(), Boundary::Open { c_f: 0.9 });
        assert_eq!(card.gauge.as_ref().unwrap().cg, Some(1.1));
        // hadrons: a source in the bulk (crate::observables::hadrons)
        let mut hadrons = card.clone();
        hadrons.measure.hadrons = Some(HadronCard { every: 1, noise: 1 });
        assert_eq!(Card::parse(&hadrons.to_toml(), "hadrons").unwrap(), hadrons);
        let e = open("").unwrap_err().to_string();
        assert!(e.contains("fermions[0].boundary = \"antiperiodic\": the lattice is open in time"), "{e}");
        let text = DEFAULT_CARD.replace("dims = [16, 16]", "dims = [8, 8]\nboundary = \"open\"");
        let wilson = fermions("kind = \"wilson\"\nboundary = \"open\"\ncf = 0.9");
        let e = Card::parse(&text.replace("[run]", &wilson), "card.toml").unwrap_err().to_string();
        assert!(e.contains("fermions[0].cf = 0.9: c_F != 1 needs kind = \"clover\""), "{e}");
        let periodic = |extra: &str| err("[run]", &fermions(&format!("kind = \"wilson\"\n{extra}")));
        assert!(periodic("boundary = \"open\"").contains("needs lattice.boundary = \"open\""));
        assert!(periodic("cf = 1.0").contains("fermions[0].cf: c_F is for boundary = \"open\""));
        assert!(err("beta = 3.0", "beta = 3.0\ncg = 1.0").contains("gauge.cg: c_G weights the boundary"));
        let short = err("dims = [16, 16]", "dims = [16, 2]\nboundary = \"open\"");
        assert!(short.contains("at least 4 time slices"), "{short}");
        let e = err("dims = [16, 16]", "dims = [16, 16]\nboundary = \"closed\"");
        assert!(e.contains("closed"), "{e}");
    }

    #[test]
    fn bad_cards_name_the_problem() {
        assert!(err("beta = 3.0", "beta = 3.0\ncolour = 3").contains("unknown field `colour`"));
        assert!(err("beta = 3.0", "beta = \"three\"").contains("beta"));
        assert!(err("dims = [16, 16]", "dims = [16, 15]").contains("extent 15"));
        assert!(err("beta = 3.0", "beta = -1.0").contains("gauge.beta = -1"));
        assert!(err("group = \"u1\"", "group = \"su2\"").contains("su2"));
        assert!(err("start = \"hot\"", "start = \"/no/such/file\"").contains("no such file"));
        assert!(err("checkpoint_every = 2000", "checkpoint_every = 0").contains("checkpoint_every"));
        assert!(err("steps = 10", "").contains("missing integrator"));
        assert!(err("integrator = \"omelyan\"", "integrator = \"rk4\"").contains("rk4"));
        let e = err(
            "steps = 10\n",
            "steps = 10\n[[update.levels]]\nintegrator = \"leapfrog\"\nsteps = 2\nmonomials = [\"gauge\"]\n",
        );
        assert!(e.contains("not both"), "{e}");
        assert!(
            err("[run]", "[measure]\nflow = { epsilon = 0.1, t_max = 1.0, every = 1 }\n[run]").contains("4D")
        );
        // an endless flow (t_max infinite, or epsilon vanishing) is refused
        let flow = |f: &str| {
            let text = DEFAULT_CARD.replace("[16, 16]", "[4, 4, 4, 4]");
            Card::parse(&text.replace("[run]", &format!("[measure]\nflow = {f}\n[run]")), "card.toml")
        };
        assert!(flow("{ epsilon = 0.01, t_max = 100.0, every = 1 }").is_ok());
        for endless in
            ["{ epsilon = 0.01, t_max = inf, every = 1 }", "{ epsilon = 1e-300, t_max = 1.0, every = 1 }"]
        {
            let e = flow(endless).unwrap_err().to_string();
            assert!(e.contains("t_max / epsilon <= 10000 steps"), "{e}");
        }
        assert!(err("[lattice]", "[lattice]\n[lattice]").contains("card.toml"));
        #[cfg(not(feature = "cuda"))]
        {
            let e = err("[run]", "[run]\ndevice = \"cuda\"");
            assert!(
                e.contains("run.device = \"cuda\": this flowhmc is built without the CUDA backend"),
                "{e}"
            );
        }
        assert!(err("[run]", "[run]\ndevice = \"tpu\"").contains("tpu"));
        let cpu_links = err("[run]", "[run]\nlink_reals = 12");
        assert!(cpu_links.contains("run.link_reals = 12: a choice of the CUDA backend"), "{cpu_links}");
        let hadrons = err("[run]", "[measure]\nhadrons = { every = 1, noise = 1 }\n[run]");
        assert!(hadrons.contains("needs a [[fermions]] table"), "{hadrons}");
        let symmetrized = err("steps = 10", "steps = 10\nsymmetrize = true");
        assert!(symmetrized.contains("symmetrize are for flow updates"), "{symmetrized}");
    }

    #[test]
    fn toml_errors_are_one_line_naming_the_key() {
        let cases = [
            (
                "steps = 10",
                "steps = \"ten\"",
                "card.toml, line 13: update.steps: invalid type: string \"ten\", expected",
            ),
            (
                "steps = 10",
                "steps = 10\nfoo = 3",
                "card.toml, line 14: update.foo: unknown field `foo`, expected one of",
            ),
            ("seed = 1\n", "", "card.toml, line 15: run: missing field `seed`"),
            ("group = \"u1\"", "group = \"su2\"", "card.toml, line 5: gauge.group: unknown variant `su2`"),
            ("[run]", "[lattice]", "line 15: lattice: duplicate key"),
            ("[run]", "[lattice]   # again", "line 15: lattice: duplicate key"),
        ];
        for (replace, by, expected) in cases {
            let e = err(replace, by);
            assert!(e.contains(expected) && !e.contains('\n'), "{e:?}");
        }
        // a comment after a table header is not part of the key
        let commented =
            DEFAULT_CARD.replace("[update]", "[update]  # how").replace("steps = 10", "steps = -1");
        let e = Card::parse(&commented, "card.toml").unwrap_err().to_string();
        assert!(e.contains("card.toml, line 13: update.steps: invalid value"), "{e:?}");
    }

    #[test]
    fn run_keys_that_guard_the_user() {
        let e = err("seed = 1", "seed = 1\nthreads = 100000");
        assert!(e.contains("run.threads = 100000: at most 1024"), "{e}");
        assert!(
            err("output = \"runs/default\"", "output = \"\"")
                .contains("run.output = \"\": name the directory")
        );
        let dir = std::env::temp_dir();
        let e = err("start = \"hot\"", &format!("start = {:?}", dir.display().to_string()));
        assert!(e.contains("a directory, not a configuration file"), "{e}");
        let e = err("thermalization = 200", "thermalization = 200\nthermalization_no_accept = 201");
        assert!(e.contains("thermalization_no_accept = 201: at most thermalization = 200"), "{e}");
        let card =
            with("thermalization = 200", "thermalization = 200\nthermalization_no_accept = 200").unwrap();
        assert_eq!(Card::parse(&card.to_toml(), "again").unwrap(), card);
        assert!(
            !Card::parse(DEFAULT_CARD, "d").unwrap().to_toml().contains("no_accept"),
            "an unset key stays out of card.toml"
        );
    }

    #[test]
    fn nested_levels() {
        let levels = "integrator = \"omelyan\"\nsteps = 10\n";
        let nested =
            "[[update.levels]]\nintegrator = \"force-gradient\"\nsteps = 3\nmonomials = [\"gauge\"]\n";
        let card = with(levels, nested).unwrap();
        let integrator = card.integrator().unwrap();
        assert_eq!(integrator.levels().len(), 1);
        assert_eq!(integrator.levels()[0].scheme, Scheme::ForceGradient);
        let unknown = nested.replace("[\"gauge\"]", "[\"fermion\"]");
        assert!(err(levels, &unknown).contains("unknown monomial \"fermion\""));
        let twice = format!("{nested}{}", nested.replace("steps = 3", "steps = 2"));
        assert!(err(levels, &twice).contains("exactly one"));
    }

    #[test]
    fn scalar_cards() {
        let gauge = "[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 3.0\n";
        let card = with(gauge, "[scalar]\nm2 = -4.0\nlambda = 8.0\n").unwrap();
        assert_eq!(card.theory().unwrap(), Theory::Scalar(&ScalarCard { m2: -4.0, lambda: 8.0 }));
        assert_eq!(card.monomial_names(), [PHI4_MONOMIAL]);
        assert_eq!(Card::parse(&card.to_toml(), "again").unwrap(), card);
        assert!(err(gauge, "[scalar]\nm2 = -4.0\nlambda = -1.0\n").contains("scalar: phi^4"));
        assert!(err(gauge, "[scalar]\nm2 = -4.0\n").contains("lambda"));
        assert!(err(gauge, "").contains("missing [gauge]"));
        assert!(err(gauge, &format!("{gauge}[scalar]\nm2 = 1.0\nlambda = 0.0\n")).contains("not both"));
        let fermions = "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.2\n\
                        solver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 10 }\n";
        let e = Card::parse(
            &format!("{}{fermions}", DEFAULT_CARD.replace(gauge, "[scalar]\nm2 = 1.0\nlambda = 0.0\n")),
            "card.toml",
        );
        assert!(e.unwrap_err().to_string().contains("[[fermions]]: needs a gauge theory"));
    }

    /// A [[fermions]] table appended to the default card, with `edit` applied to it.
    fn fermions(edit: (&str, &str)) -> Result<Card> {
        let table = "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.24\nhasenbusch = [0.1, 0.2]\n\
                     solver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }\n";
        assert!(table.contains(edit.0), "{}", edit.0);
        Card::parse(&format!("{DEFAULT_CARD}{}", table.replacen(edit.0, edit.1, 1)), "card.toml")
    }

    #[test]
    fn fermion_tables() {
        let card = fermions(("", "")).unwrap();
        assert_eq!(card.monomial_names(), ["gauge", "fermions.0", "fermions.1", "fermions.2"]);
        assert_eq!(card.fermions[0].term_kappas(), [(0.1, 0.0), (0.2, 0.1), (0.24, 0.2)]);
        assert!(card.fermions[0].even_odd);
        assert_eq!(card.fermions[0].boundary, BoundaryName::Antiperiodic);
        let plain = fermions(("hasenbusch = [0.1, 0.2]\n", "name = \"quarks\"\n")).unwrap();
        assert_eq!(plain.monomial_names(), ["gauge", "quarks"]);
        assert_eq!(plain.fermions[0].term_kappas(), [(0.24, 0.0)]);
        assert_eq!(plain.fermions[0].solver_method(), Method::Cg);
        let mixed = fermions(("kind = \"cg\"", "kind = \"mixed-cg\"")).unwrap();
        assert_eq!(mixed.fermions[0].solver_method(), Method::MixedCg);
        let e = |edit| fermions(edit).unwrap_err().to_string();
        assert!(e(("flavors = 2", "flavors = 1")).contains("flavors = 1"));
        assert!(e(("kappa = 0.24", "kappa = -0.24")).contains("kappa = -0.24"));
        // the default card is 2D: kappa < 1/2 (m0 > -1)
        let above = e(("kappa = 0.24", "kappa = 1.5"));
        assert!(above.contains("kappa = 1.5: Wilson quarks in 2D need 0 < kappa < 0.5"), "{above}");
        assert!(fermions(("kappa = 0.24", "kappa = 0.49")).is_ok());
        assert_eq!((max_kappa(2), max_kappa(4)), (0.5, 0.25));
        assert!(e(("[0.1, 0.2]", "[0.2, 0.1]")).contains("increasing"));
        assert!(e(("[0.1, 0.2]", "[0.1, 0.3]")).contains("increasing"));
        assert!(e(("kind = \"cg\"", "kind = \"gmres\"")).contains("gmres"));
        assert!(e(("tolerance = 1e-10", "tolerance = 2.0")).contains("tolerance"));
        assert!(e(("kind = \"wilson\"", "kind = \"staggered\"")).contains("staggered"));
        let dims = Card::parse(
            &format!(
                "{}{}",
                DEFAULT_CARD.replace("[16, 16]", "[6, 6]"),
                "[[fermions]]\nkind = \"wilson\"\n\
             flavors = 2\nkappa = 0.2\nsolver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 10 }\n"
            ),
            "card.toml",
        );
        assert!(dims.unwrap_err().to_string().contains("divisible by 4"));
    }

    #[test]
    fn clover_tables() {
        let clover = fermions(("kind = \"wilson\"\n", "kind = \"clover\"\ncsw = 1.769\n")).unwrap();
        assert_eq!(clover.fermions[0].csw, Some(1.769));
        // the odd-site determinant after the pseudofermion terms
        assert_eq!(
            clover.monomial_names(),
            ["gauge", "fermions.0", "fermions.1", "fermions.2", "fermions.det"]
        );
        assert_eq!(Card::parse(&clover.to_toml(), "again").unwrap(), clover);
        let full =
            fermions(("kind = \"wilson\"\n", "kind = \"clover\"\ncsw = 1.0\neven_odd = false\n")).unwrap();
        assert_eq!(full.monomial_names(), ["gauge", "fermions.0", "fermions.1", "fermions.2"]);
        let e = |edit| fermions(edit).unwrap_err().to_string();
        assert!(e(("kind = \"wilson\"", "kind = \"clover\"")).contains("kind = \"clover\" needs csw"));
        assert!(
            e(("kind = \"wilson\"\n", "kind = \"wilson\"\ncsw = 1.0\n")).contains("csw = 1: only for kind")
        );
        assert!(e(("kind = \"wilson\"\n", "kind = \"clover\"\ncsw = inf\n")).contains("must be finite"));
    }

    #[test]
    fn rational_tables() {
        let one = "flavors = 1\nrational = { range = [0.1, 2.0], tolerance = 1e-7 }\n";
        let strange = fermions((
            "flavors = 2\nkappa = 0.24\nhasenbusch = [0.1, 0.2]\n",
            &format!("{one}kappa = 0.2\n"),
        ))
        .unwrap();
        assert_eq!(strange.monomial_names(), ["gauge", "fermions"]);
        let z = strange.fermions[0].rational.as_ref().unwrap().approximation().unwrap();
        // the range of |Q| is squared for M^dagger M, the degree the least reaching 1e-7
        assert_eq!(z.range, (0.1 * 0.1, 4.0));
        assert!(z.delta <= 1e-7 && Zolotarev::new(z.degree() - 1, 0.01, 4.0).unwrap().delta > 1e-7);
        assert_eq!(Card::parse(&strange.to_toml(), "again").unwrap(), strange);
        // clover: one pseudofermion per flavour, then the odd-site determinant
        let two = fermions((
            "kind = \"wilson\"\nflavors = 2\nkappa = 0.24\nhasenbusch = [0.1, 0.2]\n",
            "kind = \"clover\"\ncsw = 1.0\nflavors = 2\nkappa = 0.2\nrational = { range = [0.1, 2.0], degree = 6 }\n",
        ))
        .unwrap();
        assert_eq!(two.monomial_names(), ["gauge", "fermions.0", "fermions.1", "fermions.det"]);
        assert_eq!(two.fermions[0].rational.as_ref().unwrap().approximation().unwrap().degree(), 6);
        let e = |edit: (&str, String)| fermions((edit.0, &edit.1)).unwrap_err().to_string();
        let with = |r: &str| {
            (
                "flavors = 2\nkappa = 0.24\nhasenbusch = [0.1, 0.2]\n",
                format!("flavors = 1\nkappa = 0.2\nrational = {r}\n"),
            )
        };
        let bad_range = e(with("{ range = [2.0, 0.1], tolerance = 1e-7 }"));
        assert!(bad_range.contains("fermions[0].rational.range = [2, 0.1]: need 0 < ra < rb"), "{bad_range}");
        assert!(e(with("{ range = [0.1, 2.0] }")).contains("give tolerance or degree"));
        assert!(
            e(with("{ range = [0.1, 2.0], degree = 3, tolerance = 1e-3 }"))
                .contains("give tolerance or degree")
        );
        assert!(
            e(with("{ range = [0.1, 2.0], tolerance = 0.0 }"))
                .contains("tolerance = 0: need 0 < tolerance < 1")
        );
        assert!(e(with("{ range = [0.1, 2.0], degree = 65 }")).contains("degree = 65"));
        let unreachable = e(with("{ range = [1e-9, 2.0], tolerance = 1e-15 }"));
        assert!(unreachable.contains("no degree up to 64 reaches"), "{unreachable}");
        assert!(
            e(with("{ range = [0.1, 2.0], tolerance = 1e-7, sources = 1 }"))
                .contains("unknown field `sources`")
        );
        let hasenbusch = e(("flavors = 2\n", one.to_string()));
        assert!(hasenbusch.contains("hasenbusch: not with rational"), "{hasenbusch}");
        let without =
            e(("flavors = 2\nkappa = 0.24\nhasenbusch = [0.1, 0.2]\n", "flavors = 1\nkappa = 0.2\n".into()));
        assert!(without.contains("flavors = 1: without rational only 2"), "{without}");
    }
}
