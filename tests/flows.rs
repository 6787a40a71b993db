//! Flow models: log-Jacobians against numerical Jacobians, invertibility, translation
//! equivariance, save/load, refusals of wrong models, and exactness of flow Metropolis with an
//! untrained model.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{assert_invertible, assert_log_jacobian_is_numerical, assert_within_3_sigma, values};
use flowhmc::action::{Monomial, Phi4Action};
use flowhmc::analysis::gamma::{DEFAULT_S, GammaResult, gamma_method};
use flowhmc::flow::real_nvp::RealNvpArchitecture;
use flowhmc::flow::scalar::GaussianPrior;
use flowhmc::flow::{Architecture, FlowField, FlowModel, ModelInfo, Precision, Prior, TheoryTag};
use flowhmc::geometry::Lattice;
use flowhmc::integrator::{Integrator, Scheme};
use flowhmc::reference::free_scalar_phi_squared;
use flowhmc::rng::{Purpose, StreamKey};
use flowhmc::scalar::ScalarField;
use flowhmc::update::{FlowMetropolis, Hmc, MarkovStep, Schedule};
use std::collections::BTreeMap;
use std::sync::Arc;

fn scalar_model(dims: &[usize], precision: Precision, seed: u64) -> FlowModel {
    let architecture = RealNvpArchitecture { layers: 4, hidden: vec![4, 4], kernel: 3 };
    let info = ModelInfo {
        architecture: Architecture::RealNvp(architecture),
        precision,
        theory: TheoryTag::Scalar,
        couplings: BTreeMap::from([("m2".into(), -4.0), ("lambda".into(), 8.0)]),
        dims: dims.to_vec(),
        training: serde_json::Value::Null,
    };
    FlowModel::new(info, seed).unwrap()
}

fn prior_batch(model: &FlowModel, n: u64, dtype: DType) -> Tensor {
    let keys: Vec<StreamKey> = (0..n).map(|i| StreamKey::new(9, Purpose::Test, i)).collect();
    GaussianPrior.sample(model.lattice(), &keys, dtype, &Device::Cpu).unwrap()
}

/// log|det df/dz| of the model against the determinant of the central-difference Jacobian,
/// in 2D and 4D.
#[test]
fn real_nvp_log_jacobian_matches_the_numerical_jacobian() {
    for dims in [vec![4, 4], vec![2, 4, 2, 4]] {
        let model = scalar_model(&dims, Precision::F64, 3);
        assert_log_jacobian_is_numerical(&model, &prior_batch(&model, 1, DType::F64), |a, b| a - b);
    }
}

/// f^-1(f(z)) = z to 1e-10 in f64 and 1e-5 in f32, and the two log-Jacobians cancel, in 2D
/// and 4D.
#[test]
fn real_nvp_is_invertible() {
    for dims in [vec![8, 6], vec![4, 2, 4, 6]] {
        for (precision, tolerance) in [(Precision::F64, 1e-10), (Precision::F32, 1e-5)] {
            let model = scalar_model(&dims, precision, 4);
            let distance = |a: &Tensor, b: &Tensor| {
                values(a).iter().zip(values(b)).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
            };
            assert_invertible(&model, &prior_batch(&model, 5, precision.dtype()), tolerance, distance);
        }
    }
}

/// Translating the input by an even lattice vector translates the output (checkerboard masks
/// are invariant under even shifts) and leaves the log-Jacobian unchanged.
#[test]
fn real_nvp_is_translation_equivariant() {
    let model = scalar_model(&[6, 4], Precision::F64, 5);
    let z = prior_batch(&model, 2, DType::F64);
    let shift = |t: &Tensor| t.roll(2, 3).unwrap().roll(-2, 2).unwrap();
    let (x, log_det) = model.flow().forward(&z).unwrap();
    let (xs, log_det_s) = model.flow().forward(&shift(&z)).unwrap();
    let d = values(&shift(&x)).iter().zip(values(&xs)).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 1e-12, "{d}");
    for (a, b) in values(&log_det).iter().zip(values(&log_det_s)) {
        assert!((a - b).abs() < 1e-10, "{a} {b}");
    }
}

#[test]
fn models_save_load_and_refuse_the_wrong_theory() {
    let dir = std::env::temp_dir().join(format!("flowhmc-flows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let model = scalar_model(&[8, 8], Precision::F32, 6);
    model.save(&path).unwrap();
    let loaded = FlowModel::load(&path, None).unwrap();
    assert_eq!(loaded.info(), model.info());
    let z = prior_batch(&model, 2, DType::F32);
    assert_eq!(values(&model.flow().forward(&z).unwrap().0), values(&loaded.flow().forward(&z).unwrap().0));
    loaded.check_matches(TheoryTag::Scalar, &[8, 8]).unwrap();
    let theory = loaded.check_matches(TheoryTag::U1, &[8, 8]).unwrap_err().to_string();
    assert!(theory.contains("the scalar theory, the card asks for u1"), "{theory}");
    assert!(
        loaded.check_matches(TheoryTag::Scalar, &[16, 16]).unwrap_err().to_string().contains("dims [8, 8]")
    );
    // the same weights act on a larger lattice
    let larger = FlowModel::load(&path, Some(&[16, 16])).unwrap();
    larger.check_matches(TheoryTag::Scalar, &[16, 16]).unwrap();
    // corrupt files name the problem
    std::fs::write(&path, b"not a model").unwrap();
    assert!(FlowModel::load(&path, None).unwrap_err().to_string().contains("not a safetensors file"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Proposals are the samples as fields, and their log q through the inverse of one field
/// agrees with the log q of the batched forward pass.
#[test]
fn untrained_models_give_finite_log_densities() {
    let model = scalar_model(&[8, 8], Precision::F32, 7);
    let keys: Vec<StreamKey> = (0..4).map(|i| StreamKey::new(1, Purpose::Test, i)).collect();
    let proposals = model.propose::<ScalarField>(&keys).unwrap();
    let (x, log_q) = model.sample(&keys).unwrap();
    assert_eq!(proposals, ScalarField::from_batch(&x, model.lattice()).unwrap());
    for (phi, log_q) in proposals.iter().zip(values(&log_q)) {
        let again = model.log_density_of(phi).unwrap();
        assert!(log_q.is_finite() && (log_q - again).abs() < 1e-3 * log_q.abs().max(1.0), "{log_q} {again}");
    }
}

fn phi4(m2: f64, lambda: f64) -> Vec<Box<dyn Monomial<ScalarField>>> {
    vec![Box::new(Phi4Action::new(m2, lambda).unwrap())]
}

/// Runs `step` for `n` updates after `n / 10` of thermalization from phi = 0: Gamma-method
/// <phi^2> and the acceptance.
fn chain(step: &mut dyn MarkovStep<ScalarField>, l: usize, n: u64) -> (GammaResult, f64) {
    let mut phi = ScalarField::zeros(Arc::new(Lattice::new(&[l, l]).unwrap()));
    let (mut samples, mut accepted) = (Vec::new(), 0);
    for k in 0..n + n / 10 {
        let report = step.step(&mut phi, k).unwrap();
        if k >= n / 10 {
            samples.push(phi.values().iter().map(|v| v * v).sum::<f64>() / (l * l) as f64);
            accepted += usize::from(report.accepted);
        }
    }
    (gamma_method(&samples, DEFAULT_S).unwrap(), accepted as f64 / n as f64)
}

/// Flow Metropolis with an untrained model is exact: the free field's <phi^2> within 3 sigma.
/// (The lattice is 2 x 2 so that an untrained model,
/// whose samples are about as wide as its N(0, 1) prior, overlaps the target enough to be
/// accepted now and then.)
#[test]
fn flow_metropolis_with_an_untrained_model_is_exact() {
    let (l, m2) = (2, 1.0);
    let exact = free_scalar_phi_squared(&[l, l], m2);
    let mut mh = FlowMetropolis::new(scalar_model(&[l, l], Precision::F64, 8), phi4(m2, 0.0), 11, 64);
    let (r, acceptance) = chain(&mut mh, l, 20000);
    assert!(acceptance > 0.02 && acceptance < 0.9, "acceptance {acceptance}");
    assert_within_3_sigma("<phi^2>", &r, exact);
}

/// Flow Metropolis with proposals symmetrized under phi -> -phi (q_R(x) = [q(x) + q(-x)] / 2)
/// is exact too, and it is a different chain from the plain one.
#[test]
fn symmetrized_flow_metropolis_is_exact() {
    let (l, m2) = (2, 1.0);
    let exact = free_scalar_phi_squared(&[l, l], m2);
    let new_chain = || FlowMetropolis::new(scalar_model(&[l, l], Precision::F64, 8), phi4(m2, 0.0), 11, 64);
    let (plain, _) = chain(&mut new_chain(), l, 2000);
    let (r, acceptance) = chain(&mut new_chain().symmetrized(true), l, 20000);
    assert!(acceptance > 0.02 && acceptance < 0.9, "acceptance {acceptance}");
    assert_within_3_sigma("<phi^2>", &r, exact);
    let (short, _) = chain(&mut new_chain().symmetrized(true), l, 2000);
    assert_ne!(plain.mean, short.mean, "symmetrize changes the proposals");
}

/// A schedule of one HMC trajectory and three flow proposals is exact too. (The trajectory
/// length 0.5 keeps omega tau of every free mode, omega^2 = 2 (m^2 + p^2), away from pi,
/// where fixed-length HMC on a free field stops being ergodic.)
#[test]
fn schedules_of_hmc_and_flow_proposals_are_exact() {
    let (l, m2) = (2, 1.0);
    let exact = free_scalar_phi_squared(&[l, l], m2);
    let hmc = Hmc::new(phi4(m2, 0.0), Integrator::single(Scheme::Omelyan, 5, 1).unwrap(), 0.5, 12).unwrap();
    let mh = FlowMetropolis::new(scalar_model(&[l, l], Precision::F32, 9), phi4(m2, 0.0), 12, 16);
    let mut schedule = Schedule::new(vec![(Box::new(hmc), 1), (Box::new(mh), 3)]).unwrap();
    let (r, _) = chain(&mut schedule, l, 8000);
    assert_within_3_sigma("<phi^2>", &r, exact);
}

/// A flow chain restarted at any update from the field it had there continues identically
/// (proposals are drawn per update, log q recomputed from the field), and drawing the
/// proposals in other blocks gives the same chain.
#[test]
fn flow_chains_resume_exactly() {
    let lattice = Arc::new(Lattice::new(&[2, 2]).unwrap());
    let chain_in_blocks_of =
        |batch| FlowMetropolis::new(scalar_model(&[2, 2], Precision::F32, 10), phi4(1.0, 0.0), 13, batch);
    let new_chain = || chain_in_blocks_of(8);
    // a start typical of the target (<phi^2> = 0.19), not its mode phi = 0 where an
    // independence sampler with a poor model stays for long
    let mut phi = ScalarField::gaussian(lattice, &StreamKey::new(1, Purpose::Test, 0));
    phi.values_mut().iter_mut().for_each(|v| *v *= 0.4);
    let mut first = new_chain();
    let mut at_137 = None;
    let mut reports = Vec::new();
    for k in 0..300 {
        if k == 137 {
            at_137 = Some(phi.clone());
        }
        reports.push(first.step(&mut phi, k).unwrap());
    }
    let (mut second, mut resumed) = (new_chain(), at_137.clone().unwrap());
    for k in 137..300 {
        assert_eq!(second.step(&mut resumed, k).unwrap(), reports[k as usize], "update {k}");
    }
    assert_eq!(resumed, phi);
    assert!(reports.iter().filter(|r| r.accepted).count() > 3, "too few acceptances to test anything");
    let (mut third, mut reblocked) = (chain_in_blocks_of(3), at_137.unwrap());
    for k in 137..300 {
        assert_eq!(third.step(&mut reblocked, k).unwrap(), reports[k as usize], "update {k}, blocks of 3");
    }
}

/// `train_card` writes a model with its learning curves; a `flow-mh` card samples with it and
/// records the flow acceptance; a gauge card refuses the scalar model; an existing output is
/// not overwritten.
#[test]
fn training_and_flow_cards_end_to_end() {
    use flowhmc::chain::{Card, RunOptions, TrainingCard, run_card, train_card};
    let dir = common::empty_dir("flowhmc-flow-cards");
    let model = dir.join("phi4.safetensors");
    let text = format!(
        "[lattice]\ndims = [4, 4]\n[scalar]\nm2 = 1.0\nlambda = 0.5\n[flow]\nmodel = \"real-nvp\"\nlayers = 2\n\
         hidden = [4]\n[train]\nsteps = 30\nbatch = 16\nlearning_rate = 0.003\nseed = 1\noutput = {model:?}\n\
         log_every = 10\n[update]\nkind = \"flow-mh\"\nmodel = {model:?}\nbatch = 32\n[run]\ntrajectories = 200\n\
         thermalization = 20\nseed = 2\nstart = \"hot\"\ncheckpoint_every = 100\noutput = {:?}\n",
        dir.join("run")
    );
    let training = TrainingCard::parse(&text, "train.toml").unwrap();
    let report = train_card(&training, true).unwrap();
    assert_eq!(report.curve.len(), 3);
    assert!(report.curve[2].loss < report.curve[0].loss, "{:?}", report.curve);
    assert!(dir.join("phi4.curves.svg").is_file());
    let lines = std::fs::read_to_string(dir.join("phi4.training.jsonl")).unwrap();
    let steps: Vec<u64> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [10, 20, 30]);
    assert!(report.curve.iter().all(|p| p.grad_norm > 0.0 && p.peak_grad_norm >= p.grad_norm));
    let saved = FlowModel::load(&model, None).unwrap();
    assert_eq!(saved.info().training["steps_done"], 30);
    assert_eq!(saved.info().training["skipped_steps"], 0);
    let again = train_card(&training, true).unwrap_err().to_string();
    assert!(again.contains("exists"), "{again}");
    let card = Card::parse(&text, "run.toml").unwrap();
    let summary = run_card(&card, RunOptions { resume: false, quiet: true }).unwrap();
    let flow_acceptance = &summary.observables["flow_accepted"];
    assert!((flow_acceptance.mean - summary.acceptance).abs() < 1e-12 && summary.acceptance > 0.0);
    assert!(summary.observables["flow_nonfinite"].mean == 0.0);
    let gauge = text.replace(
        "[scalar]\nm2 = 1.0\nlambda = 0.5",
        "[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 1.0",
    );
    let wrong =
        run_card(&Card::parse(&gauge, "gauge.toml").unwrap(), RunOptions { resume: false, quiet: true });
    let wrong = wrong.unwrap_err().to_string();
    assert!(wrong.contains("the scalar theory"), "{wrong}");
    let e = Card::parse(&text.replace("kind = \"flow-mh\"", "kind = \"hmc\""), "hmc.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("trajectory_length"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// HMC in the latent variables of an untrained real-NVP flow: reversible trajectories,
/// <exp(-dH)> = 1 and the free field's <phi^2> within 3 sigma.
#[test]
fn flow_hmc_is_reversible_and_exact() {
    use flowhmc::update::{FlowHmc, PulledBackAction};
    let (l, m2) = (2, 1.0);
    let model = Arc::new(scalar_model(&[l, l], Precision::F64, 14));
    let pulled_back = PulledBackAction::new(model.clone(), Box::new(Phi4Action::new(m2, 0.0).unwrap()));
    let integrator = Integrator::single(Scheme::Omelyan, 3, 1).unwrap();
    let hmc = Hmc::new(vec![Box::new(pulled_back)], integrator, 0.5, 15).unwrap();
    let mut step = FlowHmc::new(model, hmc);
    step.set_reversibility_check(true);
    let mut phi = ScalarField::zeros(Arc::new(Lattice::new(&[l, l]).unwrap()));
    for k in 0..3 {
        let (dz, dh) = step.step(&mut phi, k).unwrap().reversibility.unwrap();
        assert!(dz < 1e-10 && dh < 1e-9, "trajectory {k}: |dz| = {dz:e}, |dH| = {dh:e}");
    }
    step.set_reversibility_check(false);
    let (mut squares, mut boltzmann) = (Vec::new(), Vec::new());
    for k in 0..2000 {
        let report = step.step(&mut phi, 3 + k).unwrap();
        squares.push(phi.values().iter().map(|v| v * v).sum::<f64>() / (l * l) as f64);
        boltzmann.push((-report.dh).exp());
    }
    let exact = free_scalar_phi_squared(&[l, l], m2);
    assert_within_3_sigma("<phi^2>", &gamma_method(&squares, DEFAULT_S).unwrap(), exact);
    assert_within_3_sigma("<exp(-dH)>", &gamma_method(&boltzmann, DEFAULT_S).unwrap(), 1.0);
}

/// A model whose density is NaN never moves the chain (every proposal is rejected and
/// reported as non-finite), and training it stops with an error that says why.
#[test]
fn non_finite_models_are_rejected_and_stop_training() {
    use flowhmc::flow::train::{MAX_NONFINITE_STEPS, Schedule as LearningRateSchedule};
    use flowhmc::flow::{TrainingOptions, train};
    let model = scalar_model(&[4, 4], Precision::F64, 16);
    for var in model.vars() {
        let nan = Tensor::full(f64::NAN, var.shape(), &Device::Cpu).unwrap();
        var.set(&nan).unwrap();
    }
    let start =
        ScalarField::gaussian(Arc::new(Lattice::new(&[4, 4]).unwrap()), &StreamKey::new(1, Purpose::Test, 0));
    let mut phi = start.clone();
    let mut mh = FlowMetropolis::new(model, phi4(1.0, 0.0), 17, 4);
    for k in 0..6 {
        let report = mh.step(&mut phi, k).unwrap();
        assert!(!report.accepted && report.flow_proposal == Some(false), "{report:?}");
    }
    assert_eq!(phi, start);
    let model = scalar_model(&[4, 4], Precision::F64, 16);
    model
        .vars()
        .iter()
        .for_each(|v| v.set(&Tensor::full(f64::NAN, v.shape(), &Device::Cpu).unwrap()).unwrap());
    let options = TrainingOptions {
        steps: 50,
        batch: 4,
        learning_rate: 1e-3,
        schedule: LearningRateSchedule::Constant,
        seed: 1,
        log_every: 10,
        max_grad_norm: None,
        path_gradient: false,
    };
    let e =
        train(&model, &Phi4Action::new(1.0, 0.0).unwrap(), &options, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains(&format!("{MAX_NONFINITE_STEPS} consecutive steps")), "{e}");
}

/// Real NVP: the batch loss's gradient is the path gradient plus the score term.
#[test]
fn real_nvp_path_gradient_plus_score_is_the_reparameterization_gradient() {
    let model = scalar_model(&[4, 4], Precision::F64, 5);
    common::assert_path_gradient_plus_score_is_total(&model, &Phi4Action::new(-4.0, 8.0).unwrap());
}
