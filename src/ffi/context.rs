//! The context a host code holds: lattice, parameters, layouts, the Markov step and its
//! position in the chain. Both bridges (C++ and C) are thin shells around [`Context`]; a Rust
//! host can use it directly.
//!
//! Every call that takes a host gauge buffer copies it in (checking length, finiteness and
//! unitarity), works on flowhmc's own field, and copies back only what changed and only when
//! everything succeeded: a failed call leaves every host buffer bit-identical.
//!
//! All random numbers derive from the seed and the update number (README, Output), so the pair
//! ([`RngState`]) is the whole state of the chain's randomness: restoring it replays the chain.

use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::chain::card::{Card, GAUGE_MONOMIAL, GroupName, Theory, TrainingCard};
use crate::chain::fields::ChainField;
use crate::chain::run::build_update;
use crate::chain::train_card;
use crate::checkerboard::Checkerboard;
use crate::comm::{Comm, Single, agreed};
use crate::dirac::{Boundary, FermionOperator, WilsonOperator, solve};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::flow::train::TrainingPoint;
use crate::geometry::Lattice;
use crate::group::{Su3, U1};
use crate::host::{
    GaugeLayout, ResolvedGaugeLayout, ResolvedSpinorLayout, SpinorLayout, SpinorOrder, export_algebra,
    export_gauge, export_spinor, import_gauge, import_spinor,
};
use crate::observables::flow::topological_charge_clover;
use crate::observables::{average_plaquette, polyakov_loop, topological_charge_u1_2d};
use crate::solver::SolveReport;
use crate::update::MarkovStep;
use num_complex::Complex64;
use std::any::Any;
use std::sync::Arc;

/// A host buffer of reals, read only.
#[derive(Clone, Copy, Debug)]
pub enum HostSlice<'a> {
    /// Double precision.
    F64(&'a [f64]),
    /// Single precision.
    F32(&'a [f32]),
}

/// A host buffer of reals that a call writes.
#[derive(Debug)]
pub enum HostSliceMut<'a> {
    /// Double precision.
    F64(&'a mut [f64]),
    /// Single precision.
    F32(&'a mut [f32]),
}

impl HostSliceMut<'_> {
    fn as_slice(&self) -> HostSlice<'_> {
        match self {
            HostSliceMut::F64(b) => HostSlice::F64(b),
            HostSliceMut::F32(b) => HostSlice::F32(b),
        }
    }
}

/// What one Markov step on a host field reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateReport {
    /// Whether the proposal was accepted (the host buffer then holds the new field).
    pub accepted: bool,
    /// H(proposal) - H(current).
    pub dh: f64,
    /// The average plaquette Re tr P / N of the field after the step (1 on a cold field).
    pub plaquette: f64,
    /// Krylov iterations the step took (0 without fermions).
    pub solver_iterations: usize,
}

/// The chain's random state: every random number of update n derives from (seed, n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    /// The run seed.
    pub seed: u64,
    /// The number of the next update.
    pub next_update: u64,
}

/// Update numbers stay at or below 2^63 (the largest count a TOML card holds): a state past it
/// is refused, and so are steps that would pass it.
pub const UPDATE_LIMIT: u64 = 1 << 63;

/// Refuses `n` steps from update `first` if they would pass [`UPDATE_LIMIT`].
fn check_steps(first: u64, n: usize) -> Result<()> {
    match (n as u64).checked_add(first) {
        Some(last) if last <= UPDATE_LIMIT => Ok(()),
        _ => Err(Error::Host(format!(
            "n = {n}: the chain is at update {first} and update numbers stop at 2^63 = {UPDATE_LIMIT}"
        ))),
    }
}

/// Default largest distance of a host link from the group (see
/// [`crate::group::Group::unitarity_violation`]) for f64 buffers.
pub const DEFAULT_TOLERANCE_F64: f64 = 1e-10;
/// The same for f32 buffers (single-precision rounding alone reaches a few 1e-7).
pub const DEFAULT_TOLERANCE_F32: f64 = 1e-5;

/// Parses a parameter set: a run card whose `[lattice]` table may be omitted or give only
/// `boundary` (the extents come from the host; if given they must agree) and whose `[run]`
/// table may be omitted or
/// give only some keys (`seed`, default 1, and `threads`, default 0 = all cores, are the ones a
/// host context uses).
pub fn parse_parameters(dims: &[usize], text: &str) -> Result<Card> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| Error::Card(format!("parameters: {e}")))?;
    let given: toml::Value = dims.iter().map(|&l| toml::Value::Integer(l as i64)).collect::<Vec<_>>().into();
    // the host's extents go into the lattice table, beside its other keys (boundary)
    let lattice = table.entry("lattice").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let lattice =
        lattice.as_table_mut().ok_or_else(|| Error::Card("parameters: lattice must be a table".into()))?;
    match lattice.get("dims") {
        Some(d) if *d != given => {
            return Err(Error::Card(format!(
                "parameters: lattice.dims = {d} but the host lattice is {dims:?}"
            )));
        }
        Some(_) => {}
        None => {
            lattice.insert("dims".into(), given);
        }
    }
    let run = table.entry("run").or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let run = run.as_table_mut().ok_or_else(|| Error::Card("parameters: run must be a table".into()))?;
    for (key, value) in [
        ("trajectories", toml::Value::Integer(1)),
        ("thermalization", toml::Value::Integer(0)),
        ("seed", toml::Value::Integer(1)),
        ("start", toml::Value::String("cold".into())),
        ("checkpoint_every", toml::Value::Integer(1)),
        ("output", toml::Value::String(".".into())),
    ] {
        run.entry(key).or_insert(value);
    }
    Card::parse(&table.to_string(), "parameters")
}

/// A parameter set built key by key: `set("gauge.beta", "6.0")`, `set("update.kind",
/// "\"flow-mh\"")`, `set("fermions", "[{ kind = \"wilson\", ... }]")`. Keys are dotted paths
/// of the run-card schema, values TOML values; the whole set is validated when a context is
/// made from it ([`ParameterSet::to_toml`] is its text).
#[derive(Clone, Debug, Default)]
pub struct ParameterSet {
    table: toml::Table,
}

impl ParameterSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (a dotted path such as "gauge.beta") to the TOML value `value`; a key set
    /// twice keeps the last value. Fails, changing nothing, on a malformed key or value or a
    /// key below a value that is not a table.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |m: String| Error::Card(format!("parameter {key:?}: {m}"));
        let parsed: toml::Table =
            toml::from_str(&format!("value = {value}")).map_err(|e| bad(format!("value {value:?}: {e}")))?;
        let value = parsed.get("value").cloned().ok_or_else(|| bad(format!("value {value:?} is empty")))?;
        let path: Vec<&str> = key.split('.').collect();
        if path.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
            return Err(bad("keys are dotted paths of names such as gauge.beta".into()));
        }
        let mut table = self.table.clone();
        let mut node = &mut table;
        for part in &path[..path.len() - 1] {
            let entry = node.entry(*part).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = entry.as_table_mut().ok_or_else(|| bad(format!("{part} is a value, not a table")))?;
        }
        node.insert(path[path.len() - 1].to_string(), value);
        self.table = table;
        Ok(())
    }

    /// The set as TOML text (what [`Context::new`] takes).
    pub fn to_toml(&self) -> String {
        self.table.to_string()
    }
}

/// A host code's handle: one lattice, one parameter set, one chain. Independent of every other
/// context; `Send`, so it may move between threads (calls on one context are sequential).
pub struct Context {
    inner: Box<dyn Session>,
}

impl Context {
    /// A context for the lattice `dims` (x, y, (z,) t) and the parameter set `parameters`
    /// ([`parse_parameters`]). Host buffers start in flowhmc's own layout (lexicographic, x
    /// fastest, site-major, time last, row-major; spinors `[site][spin][colour]` in the internal
    /// basis) until set otherwise.
    pub fn new(dims: &[usize], parameters: &str) -> Result<Context> {
        Context::on_ranks(dims, parameters, Arc::new(Single::new(dims.len())))
    }

    /// A context on the ranks of `comm` (collective: every rank calls it with the same `dims`,
    /// the global extents, and `parameters`): each rank's host buffers hold its own block of
    /// the lattice (local extents dims / grid, at the origin its grid coordinates give), in the
    /// host layout resolved on the block (an explicit site table is the block's, as openQCD's
    /// local `ipt`). Every call on the context is collective, and an error on one rank is the
    /// error of every rank. Flow updates are refused on more than one rank.
    pub fn on_ranks(dims: &[usize], parameters: &str, comm: Arc<dyn Comm>) -> Result<Context> {
        let made = || -> Result<Context> {
            let card = parse_parameters(dims, parameters)?;
            card.check_memory_on(comm.grid())?;
            refuse_flows_on_ranks(&card, comm.as_ref())?;
            let inner: Box<dyn Session> = match card.theory()? {
                Theory::Gauge(g) if g.group == GroupName::U1 => {
                    Box::new(GroupSession::<U1>::new(card, comm.clone())?)
                }
                Theory::Gauge(_) => Box::new(GroupSession::<Su3>::new(card, comm.clone())?),
                Theory::Scalar(_) => {
                    return Err(Error::Card(
                        "parameters: host contexts sample gauge fields; [scalar] is not one".into(),
                    ));
                }
            };
            Ok(Context { inner })
        };
        agreed(comm.as_ref(), made())
    }

    /// `result` agreed on every rank of the context (see [`agreed`]).
    fn together<T>(&self, result: Result<T>) -> Result<T> {
        agreed(self.inner.comm().as_ref(), result)
    }

    /// The parameter set in use, as a complete run card.
    pub fn card(&self) -> &Card {
        self.inner.card()
    }

    /// Sets the layout of host gauge buffers (and of force buffers).
    pub fn set_gauge_layout(&mut self, layout: &GaugeLayout) -> Result<()> {
        let result = self.inner.set_gauge_layout(layout);
        self.together(result)
    }

    /// Sets the layout of host spinor buffers.
    pub fn set_spinor_layout(&mut self, layout: &SpinorLayout) -> Result<()> {
        let result = self.inner.set_spinor_layout(layout);
        self.together(result)
    }

    /// Sets the largest distance from the group a host link may have (default
    /// [`DEFAULT_TOLERANCE_F64`] or [`DEFAULT_TOLERANCE_F32`] by the buffer's precision).
    pub fn set_unitarity_tolerance(&mut self, tolerance: f64) -> Result<()> {
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return Err(Error::Host(format!("unitarity tolerance {tolerance}: must be a positive number")));
        }
        self.inner.set_tolerance(Some(tolerance));
        Ok(())
    }

    /// Reals in a host gauge (or force) buffer: volume x D x 2 N^2.
    pub fn gauge_len(&self) -> usize {
        self.inner.gauge_len()
    }

    /// Reals in a host spinor buffer: volume x spins x 2 N.
    pub fn spinor_len(&self) -> usize {
        self.inner.spinor_len()
    }

    /// One Markov step of the parameter set's update on the host field, in place.
    pub fn update(&mut self, gauge: HostSliceMut<'_>) -> Result<UpdateReport> {
        Ok(self.trajectories(gauge, 1)?.remove(0))
    }

    /// `n` Markov steps on the host field, copied in and out once; one report per step.
    /// Refused, changing nothing, if they would pass update number [`UPDATE_LIMIT`].
    pub fn trajectories(&mut self, gauge: HostSliceMut<'_>, n: usize) -> Result<Vec<UpdateReport>> {
        check_steps(self.rng_state().next_update, n)?;
        let result = self.inner.trajectories(gauge, n);
        self.together(result)
    }

    /// The average plaquette Re tr P / N (1 on a cold field).
    pub fn plaquette(&self, gauge: HostSlice<'_>) -> Result<f64> {
        self.together(self.inner.plaquette(gauge))
    }

    /// The Polyakov loop averaged over space, (1/N) tr of the product of time links.
    pub fn polyakov_loop(&self, gauge: HostSlice<'_>) -> Result<Complex64> {
        self.together(self.inner.polyakov_loop(gauge))
    }

    /// The topological charge: the geometric charge (1/2 pi) sum arg P in 2D U(1), the clover
    /// charge of the unflowed field in 4D; undefined (an error) in 2D SU(3).
    pub fn topological_charge(&self, gauge: HostSlice<'_>) -> Result<f64> {
        self.together(self.inner.topological_charge(gauge))
    }

    /// out = M in with the first `[[fermions]]` table's Wilson operator M = 1 - kappa H.
    pub fn apply_dirac(
        &self,
        gauge: HostSlice<'_>,
        input: HostSlice<'_>,
        out: HostSliceMut<'_>,
    ) -> Result<()> {
        self.together(self.inner.dirac(gauge, input, out, None))
    }

    /// Solves M x = b with the first `[[fermions]]` table's operator, solver and even/odd
    /// choice; the residual reported is the solver's (see [`crate::dirac::Method`]).
    pub fn solve(&self, gauge: HostSlice<'_>, b: HostSlice<'_>, x: HostSliceMut<'_>) -> Result<SolveReport> {
        let mut report = None;
        self.together(self.inner.dirac(gauge, b, x, Some(&mut report)))?;
        Ok(report.expect("a solve reports"))
    }

    /// The force of the gauge action, F = sum_a F_a T_a with F_a = -dS/dw_a for
    /// U -> exp(w_a T_a) U, written in the gauge layout (see [`export_algebra`]).
    pub fn gauge_force(&mut self, gauge: HostSlice<'_>, force: HostSliceMut<'_>) -> Result<()> {
        let result = self.inner.force(gauge, force, true);
        self.together(result)
    }

    /// Draws the pseudofermions of every fermion term on the host field (heatbath), from the
    /// streams of the current update number.
    pub fn refresh_pseudofermions(&mut self, gauge: HostSlice<'_>) -> Result<()> {
        let result = self.inner.refresh(gauge);
        self.together(result)
    }

    /// The force of every fermion term at the current pseudofermions (as [`Self::gauge_force`]).
    pub fn fermion_force(&mut self, gauge: HostSlice<'_>, force: HostSliceMut<'_>) -> Result<()> {
        let result = self.inner.force(gauge, force, false);
        self.together(result)
    }

    /// The whole action S(U) (gauge plus fermion terms at the current pseudofermions).
    pub fn action(&self, gauge: HostSlice<'_>) -> Result<f64> {
        self.together(self.inner.action(gauge))
    }

    /// Replaces `update.model` by the flow model at `path` (checked to belong to this theory
    /// and lattice) and rebuilds the Markov step.
    pub fn load_model(&mut self, path: &str) -> Result<()> {
        let result = self.inner.load_model(path);
        self.together(result)
    }

    /// Replaces the `[update]` table of the parameter set (TOML, the keys of a run card's
    /// `[update]`), e.g. to move from HMC to flow proposals once a model is trained. On failure
    /// the old update stays.
    pub fn set_update(&mut self, update: &str) -> Result<()> {
        let table: toml::Table = toml::from_str(update).map_err(|e| Error::Card(format!("update: {e}")))?;
        let mut card = self.card().clone();
        card.update = table.try_into().map_err(|e: toml::de::Error| Error::Card(format!("update: {e}")))?;
        let result = self.inner.rebuild(card);
        self.together(result)
    }

    /// Trains the flow model of the parameter set's `[flow]` and `[train]` tables (reverse KL,
    /// as `flowhmc train`; `train.output` must not exist yet). If the update has flow
    /// proposals it uses the new model from then on; an HMC update stays HMC until
    /// [`Self::set_update`] names the model. Returns the last learning-curve point.
    pub fn train(&mut self) -> Result<TrainingPoint> {
        let card = self.card().clone();
        if self.inner.comm().size() > 1 {
            return Err(Error::Host(format!(
                "train: flow models train on one rank; this context has {}",
                self.inner.comm().size()
            )));
        }
        let training = TrainingCard::parse(&card.to_toml(), "parameters")?;
        let report = train_card(&training, true)?;
        let point =
            report.curve.last().cloned().ok_or_else(|| Error::Model("training made no steps".into()))?;
        if card.update.kind.uses_flow() {
            let mut with_model = card;
            with_model.update.model = Some(training.train.output.clone());
            self.inner.rebuild(with_model)?;
        }
        Ok(point)
    }

    /// The random state of the chain.
    pub fn rng_state(&self) -> RngState {
        self.inner.rng_state()
    }

    /// Restores a random state: the following updates replay the chain from there. A state
    /// past [`UPDATE_LIMIT`] is refused and changes nothing.
    pub fn set_rng_state(&mut self, state: RngState) -> Result<()> {
        if state.next_update > UPDATE_LIMIT {
            return Err(Error::Host(format!(
                "next_update = {}: must be at most 2^63 = {UPDATE_LIMIT}",
                state.next_update
            )));
        }
        let result = self.inner.set_rng_state(state);
        self.together(result)
    }
}

/// Flow updates run on one rank for now: refused with one message on more.
fn refuse_flows_on_ranks(card: &Card, comm: &dyn Comm) -> Result<()> {
    if card.update.kind.uses_flow() && comm.size() > 1 {
        return Err(Error::Card(format!(
            "update.kind: flow updates run on one rank for now; this context has {} ranks",
            comm.size()
        )));
    }
    Ok(())
}

/// What a context does for one gauge group.
trait Session: Send {
    fn card(&self) -> &Card;
    fn comm(&self) -> &Arc<dyn Comm>;
    fn set_gauge_layout(&mut self, layout: &GaugeLayout) -> Result<()>;
    fn set_spinor_layout(&mut self, layout: &SpinorLayout) -> Result<()>;
    fn set_tolerance(&mut self, tolerance: Option<f64>);
    fn gauge_len(&self) -> usize;
    fn spinor_len(&self) -> usize;
    fn trajectories(&mut self, gauge: HostSliceMut<'_>, n: usize) -> Result<Vec<UpdateReport>>;
    fn plaquette(&self, gauge: HostSlice<'_>) -> Result<f64>;
    fn polyakov_loop(&self, gauge: HostSlice<'_>) -> Result<Complex64>;
    fn topological_charge(&self, gauge: HostSlice<'_>) -> Result<f64>;
    fn dirac(
        &self,
        gauge: HostSlice<'_>,
        input: HostSlice<'_>,
        out: HostSliceMut<'_>,
        solve: Option<&mut Option<SolveReport>>,
    ) -> Result<()>;
    fn force(&mut self, gauge: HostSlice<'_>, force: HostSliceMut<'_>, gauge_term: bool) -> Result<()>;
    fn refresh(&mut self, gauge: HostSlice<'_>) -> Result<()>;
    fn action(&self, gauge: HostSlice<'_>) -> Result<f64>;
    fn load_model(&mut self, path: &str) -> Result<()>;
    fn rebuild(&mut self, card: Card) -> Result<()>;
    fn rng_state(&self) -> RngState;
    fn set_rng_state(&mut self, state: RngState) -> Result<()>;
}

struct GroupSession<G: PackedGroup> {
    card: Card,
    lattice: Arc<Lattice>,
    pool: rayon::ThreadPool,
    gauge_layout: ResolvedGaugeLayout,
    spinor_layout: ResolvedSpinorLayout,
    tolerance: Option<f64>,
    /// The field layout of the Dirac calls, built once: even/odd where the first fermion table
    /// preconditions or the extents admit it, else natural (`None` when the extents do not
    /// admit the layout the table asks for; the calls then report why).
    checkerboard: Option<Checkerboard>,
    markov: Step<G>,
    /// The card's monomials, for hosts that integrate themselves (separate from the Markov
    /// step's, so their pseudofermions do not disturb the chain).
    monomials: Monomials<G>,
    next_update: u64,
}

/// A context's Markov step.
type Step<G> = Box<dyn MarkovStep<GaugeField<G>>>;
/// A context's own monomials.
type Monomials<G> = Vec<Box<dyn crate::action::Monomial<GaugeField<G>>>>;

/// The Markov step of a card and, separately, its monomials (for hosts that integrate
/// themselves), built on the context's threads.
fn build_steps<G: PackedGroup>(
    pool: &rayon::ThreadPool,
    card: &Card,
    lattice: &Arc<Lattice>,
) -> Result<(Step<G>, Monomials<G>)> {
    pool.install(|| {
        Ok((build_update::<GaugeField<G>>(card, lattice)?, GaugeField::<G>::monomials(card, lattice)?))
    })
}

fn spins(lattice: &Lattice) -> usize {
    if lattice.ndim() == 2 { 2 } else { 4 }
}

impl<G: PackedGroup> GroupSession<G> {
    fn new(card: Card, comm: Arc<dyn Comm>) -> Result<Self> {
        let lattice = Arc::new(card.lattice.lattice(comm)?);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(card.run.threads)
            .build()
            .map_err(|e| Error::Card(format!("run.threads = {}: {e}", card.run.threads)))?;
        let (markov, monomials) = build_steps(&pool, &card, &lattice)?;
        let d = lattice.ndim();
        let own_spinors = SpinorLayout {
            sites: crate::host::SiteOrder::x_fastest(d, false),
            order: SpinorOrder::SpinColor,
            basis: crate::dirac::gamma::SpinBasis::DegrandRossi,
        };
        Ok(GroupSession {
            gauge_layout: ResolvedGaugeLayout::new(&own_gauge_layout(d), &lattice, G::NC)?,
            spinor_layout: ResolvedSpinorLayout::new(&own_spinors, &lattice, spins(&lattice), G::NC)?,
            next_update: 0,
            tolerance: None,
            checkerboard: Checkerboard::for_fields(
                lattice.clone(),
                card.fermions.first().is_some_and(|f| f.even_odd),
            )
            .ok(),
            card,
            lattice,
            pool,
            markov,
            monomials,
        })
    }

    fn tolerance<R: Real>(&self) -> f64 {
        self.tolerance.unwrap_or(if R::NAME == "f32" { DEFAULT_TOLERANCE_F32 } else { DEFAULT_TOLERANCE_F64 })
    }

    fn import(&self, gauge: HostSlice<'_>) -> Result<GaugeField<G>> {
        self.pool.install(|| match gauge {
            HostSlice::F64(b) => import_gauge(&self.gauge_layout, &self.lattice, b, self.tolerance::<f64>()),
            HostSlice::F32(b) => import_gauge(&self.gauge_layout, &self.lattice, b, self.tolerance::<f32>()),
        })
    }

    fn checkerboard(&self) -> Result<&Checkerboard> {
        match &self.checkerboard {
            Some(cb) => Ok(cb),
            None => Err(Checkerboard::check_block(&self.lattice)
                .expect_err("the checkerboard fails only on its extents")),
        }
    }

    fn fermion_operator(&self) -> Result<(&crate::chain::card::FermionCard, Boundary)> {
        let f = self.card.fermions.first().ok_or_else(|| {
            Error::Host("the parameters have no [[fermions]] table: there is no Dirac operator".into())
        })?;
        Ok((f, f.time_boundary()))
    }

    fn dirac_in<const S: usize>(
        &self,
        u: &GaugeField<G>,
        input: HostSlice<'_>,
        out: HostSliceMut<'_>,
        report: Option<&mut Option<SolveReport>>,
    ) -> Result<()> {
        let (f, boundary) = self.fermion_operator()?;
        let cb = self.checkerboard()?;
        let w = WilsonOperator::<G, S>::new(u, cb, f.kappa, boundary)?;
        let layout = &self.spinor_layout;
        let x: crate::spinor::SpinorField<G, S> = match input {
            HostSlice::F64(b) => import_spinor(layout, cb, b)?,
            HostSlice::F32(b) => import_spinor(layout, cb, b)?,
        };
        let out_len = crate::host::check_len("output spinor field", out.as_slice().len(), layout.len());
        agreed(self.lattice.comm().as_ref(), out_len)?;
        let y = match report {
            None => {
                let mut y = crate::spinor::SpinorField::full(cb);
                w.apply(false, &x, &mut y);
                y
            }
            Some(report) => {
                let (y, r) = solve(&w, &x, None, f.solver_method(), f.even_odd, &f.solver_params())?;
                *report = Some(r);
                y
            }
        };
        match out {
            HostSliceMut::F64(b) => export_spinor(layout, cb, &y, b),
            HostSliceMut::F32(b) => export_spinor(layout, cb, &y, b),
        }
    }
}

impl HostSlice<'_> {
    fn len(&self) -> usize {
        match self {
            HostSlice::F64(b) => b.len(),
            HostSlice::F32(b) => b.len(),
        }
    }
}

/// flowhmc's own order as a host layout: lexicographic x fastest, site-major, time last.
fn own_gauge_layout(ndim: usize) -> GaugeLayout {
    GaugeLayout { sites: crate::host::SiteOrder::x_fastest(ndim, false), ..GaugeLayout::milc(ndim) }
}

fn write_gauge<G: PackedGroup>(
    layout: &ResolvedGaugeLayout,
    u: &GaugeField<G>,
    out: HostSliceMut<'_>,
) -> Result<()> {
    match out {
        HostSliceMut::F64(b) => export_gauge(layout, u, b),
        HostSliceMut::F32(b) => export_gauge(layout, u, b),
    }
}

impl<G: PackedGroup> Session for GroupSession<G> {
    fn card(&self) -> &Card {
        &self.card
    }

    fn comm(&self) -> &Arc<dyn Comm> {
        self.lattice.comm()
    }

    fn set_gauge_layout(&mut self, layout: &GaugeLayout) -> Result<()> {
        self.gauge_layout = ResolvedGaugeLayout::new(layout, &self.lattice, G::NC)?;
        Ok(())
    }

    fn set_spinor_layout(&mut self, layout: &SpinorLayout) -> Result<()> {
        self.spinor_layout = ResolvedSpinorLayout::new(layout, &self.lattice, spins(&self.lattice), G::NC)?;
        Ok(())
    }

    fn set_tolerance(&mut self, tolerance: Option<f64>) {
        self.tolerance = tolerance;
    }

    fn gauge_len(&self) -> usize {
        self.gauge_layout.len()
    }

    fn spinor_len(&self) -> usize {
        self.spinor_layout.len()
    }

    fn trajectories(&mut self, gauge: HostSliceMut<'_>, n: usize) -> Result<Vec<UpdateReport>> {
        let mut u = self.import(gauge.as_slice())?;
        let (markov, first) = (&mut self.markov, self.next_update);
        let reports = self.pool.install(|| {
            (first..first + n as u64)
                .map(|update| {
                    let r = markov.step(&mut u, update)?;
                    Ok(UpdateReport {
                        accepted: r.accepted,
                        dh: r.dh,
                        plaquette: average_plaquette(&u),
                        solver_iterations: r.solver_iterations,
                    })
                })
                .collect::<Result<Vec<_>>>()
        })?;
        self.next_update += n as u64;
        // a rejected step leaves the field as it was: nothing to write
        if reports.iter().any(|r| r.accepted) {
            write_gauge(&self.gauge_layout, &u, gauge)?;
        }
        Ok(reports)
    }

    fn plaquette(&self, gauge: HostSlice<'_>) -> Result<f64> {
        let u = self.import(gauge)?;
        Ok(self.pool.install(|| average_plaquette(&u)))
    }

    fn polyakov_loop(&self, gauge: HostSlice<'_>) -> Result<Complex64> {
        Ok(polyakov_loop(&self.import(gauge)?))
    }

    fn topological_charge(&self, gauge: HostSlice<'_>) -> Result<f64> {
        let u = self.import(gauge)?;
        if self.lattice.ndim() == 4 {
            return Ok(self.pool.install(|| topological_charge_clover(&u)));
        }
        match (&u as &dyn Any).downcast_ref::<GaugeField<U1>>() {
            Some(u1) if self.lattice.ndim() == 2 => Ok(topological_charge_u1_2d(u1)),
            _ => Err(Error::Host(format!(
                "topological charge: defined for 2D U(1) and for 4D fields, not for {}D {}",
                self.lattice.ndim(),
                G::NAME
            ))),
        }
    }

    fn dirac(
        &self,
        gauge: HostSlice<'_>,
        input: HostSlice<'_>,
        out: HostSliceMut<'_>,
        report: Option<&mut Option<SolveReport>>,
    ) -> Result<()> {
        let u = self.import(gauge)?;
        self.pool.install(|| match spins(&self.lattice) {
            2 => self.dirac_in::<2>(&u, input, out, report),
            _ => self.dirac_in::<4>(&u, input, out, report),
        })
    }

    fn force(&mut self, gauge: HostSlice<'_>, force: HostSliceMut<'_>, gauge_term: bool) -> Result<()> {
        let u = self.import(gauge)?;
        let force_len =
            crate::host::check_len("force field", force.as_slice().len(), self.gauge_layout.len());
        agreed(self.lattice.comm().as_ref(), force_len)?;
        let (monomials, lattice) = (&self.monomials, &self.lattice);
        let p = self.pool.install(|| -> Result<MomentumField<G>> {
            let mut p = MomentumField::zeros(lattice);
            for m in monomials.iter().filter(|m| (m.name() == GAUGE_MONOMIAL) == gauge_term) {
                m.add_force(&u, 1.0, &mut p)?;
            }
            Ok(p)
        })?;
        match force {
            HostSliceMut::F64(b) => export_algebra(&self.gauge_layout, lattice, &p, b),
            HostSliceMut::F32(b) => export_algebra(&self.gauge_layout, lattice, &p, b),
        }
    }

    fn refresh(&mut self, gauge: HostSlice<'_>) -> Result<()> {
        let u = self.import(gauge)?;
        let (seed, update) = (self.card.run.seed, self.next_update);
        let monomials = &mut self.monomials;
        self.pool.install(|| monomials.iter_mut().try_for_each(|m| m.refresh(&u, seed, update).map(drop)))
    }

    fn action(&self, gauge: HostSlice<'_>) -> Result<f64> {
        let u = self.import(gauge)?;
        self.pool.install(|| self.monomials.iter().map(|m| m.action(&u)).sum())
    }

    fn load_model(&mut self, path: &str) -> Result<()> {
        let mut card = self.card.clone();
        card.update.model = Some(path.into());
        // checked here too: an HMC update would not load it
        crate::chain::fields::card_model(&card)?;
        self.rebuild(card)
    }

    /// Rebuilds the Markov step and the monomials for a changed card; on failure nothing
    /// changes.
    fn rebuild(&mut self, card: Card) -> Result<()> {
        card.validate()?;
        refuse_flows_on_ranks(&card, self.lattice.comm().as_ref())?;
        let (markov, monomials) = build_steps(&self.pool, &card, &self.lattice)?;
        (self.card, self.markov, self.monomials) = (card, markov, monomials);
        Ok(())
    }

    fn rng_state(&self) -> RngState {
        RngState { seed: self.card.run.seed, next_update: self.next_update }
    }

    fn set_rng_state(&mut self, state: RngState) -> Result<()> {
        if state.seed != self.card.run.seed {
            let mut card = self.card.clone();
            card.run.seed = state.seed;
            self.rebuild(card)?;
        }
        self.next_update = state.next_update;
        Ok(())
    }
}
