//! The speed of the flow models (the figures of issue 4 in BENCHMARKS.md), on one thread and
//! with fresh weights: the cost of a step does not depend on the weights' values (only the
//! acceptance does). For each model, the seconds per training step (reverse KL, batch 64)
//! and per symmetrized flow-mh update (proposals in the default blocks, log q of the proposal
//! and of its reflection by inverse passes), and for U(1) the seconds per HMC trajectory on
//! the same lattice, the figure a flow proposal has to beat.

use super::{Figure, pure_gauge_hmc, spread, timed};
use crate::action::{GaugeAction, GaugeActionKind, Monomial, Phi4Action};
use crate::chain::run::DEFAULT_PROPOSAL_BATCH;
use crate::field::GaugeField;
use crate::flow::real_nvp::RealNvpArchitecture;
use crate::flow::su3::{Su3BatchAction, Su3SpectralArchitecture};
use crate::flow::u1::{U1BatchAction, U1EquivariantArchitecture};
use crate::flow::{
    Architecture, BatchAction, FlowField, FlowModel, ModelInfo, Precision, TheoryTag, TrainingOptions, train,
};
use crate::group::{Su3, U1};
use crate::integrator::Scheme;
use crate::phase_space::PhaseSpace;
use crate::rng::{Purpose, StreamKey};
use crate::update::{FlowMetropolis, MarkovStep};
use std::collections::BTreeMap;

/// The figures of every model: `steps` timed training steps and `updates` timed flow-mh
/// updates each (after one untimed step and one untimed block of proposals).
pub fn all(steps: u64, updates: u64) -> Vec<Figure> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("thread pool");
    pool.install(|| {
        let phi4 = Phi4Action::new(-4.0, 8.0).expect("phi^4 couplings");
        let mut figures = model_figures::<crate::scalar::ScalarField>(
            "real NVP (16 layers, hidden [8, 8]), phi^4 L = 8",
            info(
                Architecture::RealNvp(RealNvpArchitecture::default()),
                TheoryTag::Scalar,
                &[8, 8],
                [("m2", -4.0), ("lambda", 8.0)],
            ),
            &phi4,
            || vec![Box::new(phi4)],
            (steps, updates),
        );
        let u1 = U1EquivariantArchitecture { layers: 32, hidden: vec![8, 8], kernel: 3, components: 6 };
        for l in [8, 16] {
            let wilson = GaugeAction::new(GaugeActionKind::Wilson, 6.0);
            figures.extend(model_figures::<GaugeField<U1>>(
                &format!("U(1) equivariant (32 layers, hidden [8, 8], 6 components), beta = 6, L = {l}"),
                info(Architecture::U1Equivariant(u1.clone()), TheoryTag::U1, &[l, l], [("beta", 6.0)]),
                &U1BatchAction(wilson.clone()),
                || vec![Box::new(wilson.clone())],
                (steps, updates),
            ));
            figures.extend(u1_hmc(l, 10 * updates));
        }
        let wilson = GaugeAction::new(GaugeActionKind::Wilson, 4.0);
        figures.extend(model_figures::<GaugeField<Su3>>(
            "SU(3) spectral (16 layers, hidden [8, 8]), beta = 4, L = 8",
            info(
                Architecture::Su3Spectral(Su3SpectralArchitecture::default()),
                TheoryTag::Su3,
                &[8, 8],
                [("beta", 4.0)],
            ),
            &Su3BatchAction(wilson.clone()),
            || vec![Box::new(wilson.clone())],
            (steps, updates),
        ));
        figures
    })
}

/// The description of a fresh f32 model.
fn info<const N: usize>(
    architecture: Architecture,
    theory: TheoryTag,
    dims: &[usize],
    couplings: [(&str, f64); N],
) -> ModelInfo {
    ModelInfo {
        architecture,
        precision: Precision::F32,
        theory,
        couplings: couplings.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>(),
        dims: dims.to_vec(),
        training: serde_json::Value::Null,
    }
}

/// Seconds per training step (batch 64) and per symmetrized flow-mh update of the model
/// `info` for the target exp(-`action`) (the same action as `monomials` for the chain).
fn model_figures<C: PhaseSpace + FlowField + PartialEq>(
    name: &str,
    info: ModelInfo,
    action: &dyn BatchAction,
    monomials: impl Fn() -> Vec<Box<dyn Monomial<C>>>,
    (steps, updates): (u64, u64),
) -> Vec<Figure> {
    let model = FlowModel::new(info, 1).expect("fresh model");
    let options = TrainingOptions {
        steps: 1,
        batch: 64,
        learning_rate: 1e-3,
        schedule: Default::default(),
        seed: 1,
        log_every: 1,
        max_grad_norm: None,
        path_gradient: false,
    };
    let train_step = |k: u64| {
        train(&model, action, &TrainingOptions { seed: k, ..options }, &mut |_| {}).expect("training step");
    };
    train_step(steps);
    let mut figures =
        spread(&format!("{name}: training step, batch 64"), &timed(steps, train_step), 1.0, "s").to_vec();
    let batch = DEFAULT_PROPOSAL_BATCH as u64;
    let mut field: C = model.propose(&[StreamKey::new(2, Purpose::Test, 0)]).expect("a sample").remove(0);
    let mut chain = FlowMetropolis::new(model, monomials(), 3, DEFAULT_PROPOSAL_BATCH).symmetrized(true);
    for k in 0..batch {
        chain.step(&mut field, k).expect("flow-mh update");
    }
    // blocks of proposals are drawn every `batch` updates: time whole blocks
    let blocks = updates.div_ceil(batch).max(1);
    let times = timed(blocks, |b| {
        for k in (b + 1) * batch..(b + 2) * batch {
            chain.step(&mut field, k).expect("flow-mh update");
        }
    });
    figures.extend(spread(
        &format!("{name}: symmetrized flow-mh update, blocks of {batch}"),
        &times,
        1.0 / batch as f64,
        "s",
    ));
    figures
}

/// Seconds per HMC trajectory (Omelyan, 10 steps, tau = 1) of U(1) Wilson at beta = 6 on an
/// L x L lattice, `trajectories` timed after as many untimed from a hot start.
fn u1_hmc(l: usize, trajectories: u64) -> [Figure; 2] {
    let lattice = std::sync::Arc::new(crate::geometry::Lattice::new(&[l, l]).expect("lattice"));
    let mut hmc = pure_gauge_hmc::<U1>(Scheme::Omelyan, 10);
    let mut u = GaugeField::<U1>::hot(lattice, 1);
    for k in 0..trajectories {
        hmc.step(&mut u, k).expect("trajectory");
    }
    let times = timed(trajectories, |k| {
        hmc.step(&mut u, trajectories + k).expect("trajectory");
    });
    spread(&format!("U(1) HMC trajectory (Omelyan, 10 steps), beta = 6, L = {l}"), &times, 1.0, "s")
}
