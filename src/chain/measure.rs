//! The per-trajectory measurement record (one JSON object per line of measurements.jsonl).
//!
//! Keys: `trajectory` (global update number, 1-based, thermalization included), `accepted`,
//! `dh`, `plaquette`, `rectangle`, `polyakov_loop_re`, `polyakov_loop_abs` (not on a lattice
//! open in time, where no loop winds around time; there the plaquette and rectangle are
//! openQCD's weighted averages, and the flow's E and Q sum the bulk slices); for 2D U(1)
//! `topological_charge` (geometric); with a reversibility check `reversibility_du` and
//! `reversibility_dh`; with dynamical fermions `solver_iterations` (Krylov iterations of the
//! trajectory, all pseudofermion terms); with Wilson-flow measurements `flow_t0` (null if t^2 E < 0.3 up to
//! t_max), `flow_energy` (E at t_max), `flow_topological_charge` (clover Q at t_max) and the
//! curve t^2 E(t) as the arrays `flow_times` and `flow_t2e`; with hadron measurements
//! `chiral_condensate`, `hadron_solver_iterations` and the arrays `pion_correlator`,
//! `pion_effective_mass` (the summary analyses the scalars only).
//!
//! A scalar field's record has `trajectory`, `accepted`, `dh` (and the reversibility keys),
//! then `magnetization` (m = sum_x phi(x) / V), `abs_magnetization` (|m|) and `phi_squared`
//! (sum_x phi(x)^2 / V); the summary adds the two-point susceptibility estimator V m^2.

use super::card::{FermionCard, FlowCard, HadronCard};
use crate::backend::cpu::PackedGroup;
use crate::checkerboard::Checkerboard;
use crate::dirac::{Discretization, WilsonOperator};
use crate::error::Result;
use crate::field::GaugeField;
use crate::group::U1;
use crate::observables::hadrons::{chiral_condensate, effective_mass, pion_correlator};
use crate::observables::{
    average_plaquette, average_rectangle, polyakov_loop, topological_charge_u1_2d, wilson_flow,
};
use crate::rng::{Purpose, StreamKey};
use crate::scalar::ScalarField;
use crate::update::StepReport;
use serde_json::{Map, Value, json};
use std::any::Any;

/// The geometric charge when the field is 2D U(1), else `None`.
pub fn geometric_charge<G: PackedGroup>(u: &GaugeField<G>) -> Option<f64> {
    let u1 = (u as &dyn Any).downcast_ref::<GaugeField<U1>>()?;
    (u1.lattice().ndim() == 2).then(|| topological_charge_u1_2d(u1))
}

/// The keys every record has: `trajectory`, `accepted`, `dh`; when the step checked it,
/// `reversibility_du` and `reversibility_dh`; for a flow proposal `flow_accepted` and
/// `flow_nonfinite` (1 when the proposal's log-density or action was not finite, else 0).
fn step_record(report: &StepReport, trajectory: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("trajectory".into(), json!(trajectory));
    m.insert("accepted".into(), json!(report.accepted));
    m.insert("dh".into(), json!(report.dh));
    if let Some((du, dh)) = report.reversibility {
        m.insert("reversibility_du".into(), json!(du));
        m.insert("reversibility_dh".into(), json!(dh));
    }
    if let Some(finite) = report.flow_proposal {
        m.insert("flow_accepted".into(), json!(u8::from(report.accepted)));
        m.insert("flow_nonfinite".into(), json!(u8::from(!finite)));
    }
    m
}

/// Measures the scalar field `phi` after update `trajectory`.
pub fn measure_scalar(phi: &ScalarField, report: &StepReport, trajectory: u64) -> Map<String, Value> {
    let mut m = step_record(report, trajectory);
    let volume = phi.lattice().volume() as f64;
    let magnetization = phi.magnetization() / volume;
    m.insert("magnetization".into(), json!(magnetization));
    m.insert("abs_magnetization".into(), json!(magnetization.abs()));
    let values = phi.values();
    m.insert("phi_squared".into(), json!(phi.sum_by(|x| values[x] * values[x]) / volume));
    m
}

/// Measures `u` after update `trajectory`; `flow` is given on trajectories that measure it.
pub fn measure<G: PackedGroup>(
    u: &GaugeField<G>,
    report: &StepReport,
    trajectory: u64,
    flow: Option<&FlowCard>,
    has_fermions: bool,
) -> Map<String, Value> {
    let mut m = step_record(report, trajectory);
    m.insert("plaquette".into(), json!(average_plaquette(u)));
    m.insert("rectangle".into(), json!(average_rectangle(u)));
    if !u.lattice().is_open_in_time() {
        let p = polyakov_loop(u);
        m.insert("polyakov_loop_re".into(), json!(p.re));
        m.insert("polyakov_loop_abs".into(), json!(p.norm()));
    }
    if let Some(q) = geometric_charge(u) {
        m.insert("topological_charge".into(), json!(q));
    }
    if has_fermions {
        m.insert("solver_iterations".into(), json!(report.solver_iterations));
    }
    if let Some(f) = flow {
        let result = wilson_flow(u, f.epsilon, f.t_max);
        m.insert("flow_t0".into(), json!(result.t0));
        m.insert("flow_energy".into(), json!(result.energy.last()));
        m.insert("flow_topological_charge".into(), json!(result.charge));
        let t2e: Vec<f64> = result.times.iter().zip(&result.energy).map(|(t, e)| t * t * e).collect();
        m.insert("flow_times".into(), json!(result.times));
        m.insert("flow_t2e".into(), json!(t2e));
    }
    m
}

/// Chiral condensate (`chiral_condensate`, per flavour, `noise` vectors), point-source pion
/// correlator (`pion_correlator`, `pion_effective_mass`) and their solver iterations
/// (`hadron_solver_iterations`), with the operator of `fermions` on `u`.
pub fn measure_hadrons<G: PackedGroup>(
    u: &GaugeField<G>,
    fermions: &FermionCard,
    hadrons: &HadronCard,
    seed: u64,
    update: u64,
) -> Result<Map<String, Value>> {
    match u.lattice().ndim() {
        2 => hadrons_with_spins::<G, 2>(u, fermions, hadrons, seed, update),
        _ => hadrons_with_spins::<G, 4>(u, fermions, hadrons, seed, update),
    }
}

fn hadrons_with_spins<G: PackedGroup, const S: usize>(
    u: &GaugeField<G>,
    fermions: &FermionCard,
    hadrons: &HadronCard,
    seed: u64,
    update: u64,
) -> Result<Map<String, Value>> {
    let cb = Checkerboard::for_fields(u.lattice().clone(), fermions.even_odd)?;
    let (kappa, boundary) = (fermions.kappa, fermions.time_boundary());
    let (method, solver) = (fermions.solver_method(), fermions.solver_params());
    let key = StreamKey::new(seed, Purpose::Noise, update);
    let (condensate, pion) = match fermions.clover(&cb) {
        Some(clover) => {
            let w = Discretization::<G, S>::operator(&clover, u, kappa)?;
            (
                chiral_condensate(&w, hadrons.noise, &key, method, &solver)?,
                pion_correlator(&w, method, &solver)?,
            )
        }
        _ => {
            let w = WilsonOperator::<G, S>::new(u, &cb, kappa, boundary)?;
            (
                chiral_condensate(&w, hadrons.noise, &key, method, &solver)?,
                pion_correlator(&w, method, &solver)?,
            )
        }
    };
    let mut m = Map::new();
    m.insert("chiral_condensate".into(), json!(condensate.value));
    m.insert("pion_effective_mass".into(), json!(effective_mass(&pion.value)));
    m.insert("pion_correlator".into(), json!(pion.value));
    m.insert("hadron_solver_iterations".into(), json!(condensate.iterations + pion.iterations));
    Ok(m)
}
