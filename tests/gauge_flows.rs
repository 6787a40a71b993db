//! Gauge-equivariant U(1) flows: log-Jacobian against the numerical Jacobian, invertibility,
//! gauge equivariance, the batched gauge action (in 2D, 3D and 4D), and exactness of flow
//! Metropolis and of flow HMC with untrained models against the exact 2D U(1) plaquette and,
//! in 4D, against HMC.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    assert_invertible, assert_log_jacobian_is_numerical, assert_path_gradient_plus_score_is_total,
    assert_within_3_sigma, flow_hmc_chain, flow_metropolis_plaquettes, values,
};
use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
use flowhmc::analysis::gamma::{DEFAULT_S, gamma_method};
use flowhmc::field::GaugeField;
use flowhmc::flow::gauge::HaarPrior;
use flowhmc::flow::u1::{U1BatchAction, U1EquivariantArchitecture};
use flowhmc::flow::{
    Architecture, BatchAction, FlowField, FlowModel, ModelInfo, Precision, Prior, TheoryTag,
};
use flowhmc::geometry::Lattice;
use flowhmc::group::U1;
use flowhmc::reference::u1_2d_plaquette;
use flowhmc::rng::{Purpose, StreamKey};
use std::collections::BTreeMap;
use std::f64::consts::{PI, TAU};
use std::sync::Arc;

fn u1_model(dims: &[usize], precision: Precision, layers: usize, seed: u64) -> FlowModel {
    u1_model_with_kernel(dims, precision, layers, 3, seed)
}

fn u1_model_with_kernel(
    dims: &[usize],
    precision: Precision,
    layers: usize,
    kernel: usize,
    seed: u64,
) -> FlowModel {
    let architecture = U1EquivariantArchitecture { layers, hidden: vec![4, 4], kernel, ..Default::default() };
    let info = ModelInfo {
        architecture: Architecture::U1Equivariant(architecture),
        precision,
        theory: TheoryTag::U1,
        couplings: BTreeMap::from([("beta".into(), 2.0)]),
        dims: dims.to_vec(),
        training: serde_json::Value::Null,
    };
    FlowModel::new(info, seed).unwrap()
}

fn haar_batch(model: &FlowModel, n: u64, dtype: DType) -> Tensor {
    let keys: Vec<StreamKey> = (0..n).map(|i| StreamKey::new(9, Purpose::Test, i)).collect();
    HaarPrior::<U1>::new().sample(model.lattice(), &keys, dtype, &Device::Cpu).unwrap()
}

/// a - b as an angle in (-pi, pi].
fn angle_difference(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(TAU);
    if d > PI { d - TAU } else { d }
}

fn max_angle_distance(a: &Tensor, b: &Tensor) -> f64 {
    values(a).iter().zip(values(b)).fold(0.0, |m, (x, y)| m.max(angle_difference(*x, y).abs()))
}

/// log|det df/dtheta| against the determinant of the central-difference Jacobian in the
/// link angles (differences taken on the circle), in 2D and 3D.
#[test]
fn u1_flow_log_jacobian_matches_the_numerical_jacobian() {
    for (dims, layers) in [(vec![4, 4], 8), (vec![4, 4, 4], 12)] {
        let model = u1_model(&dims, Precision::F64, layers, 3);
        assert_log_jacobian_is_numerical(&model, &haar_batch(&model, 1, DType::F64), angle_difference);
    }
}

/// f^-1(f(z)) = z to 1e-10 in f64 and 1e-5 in f32 (on the circle), the log-Jacobians cancel,
/// and log q of the forward pass equals log q through the inverse, in 2D and 4D.
#[test]
fn u1_flow_is_invertible() {
    for dims in [vec![8, 8], vec![4, 4, 4, 4]] {
        for (precision, tolerance) in [(Precision::F64, 1e-10), (Precision::F32, 1e-5)] {
            let model = u1_model(&dims, precision, 16, 4);
            assert_invertible(
                &model,
                &haar_batch(&model, 4, precision.dtype()),
                tolerance,
                max_angle_distance,
            );
        }
    }
}

/// A gauge transformation theta_mu(x) -> theta_mu(x) + alpha(x) - alpha(x + mu) of the input
/// transforms the output the same way and leaves the log-Jacobian unchanged, in 2D and 4D.
#[test]
fn u1_flow_is_gauge_equivariant() {
    for dims in [vec![8, 4], vec![4, 8, 4, 4]] {
        check_gauge_equivariance(&dims);
    }
}

fn check_gauge_equivariance(dims: &[usize]) {
    let (d, volume) = (dims.len(), dims.iter().product::<usize>());
    let model = u1_model(dims, Precision::F64, 16, 5);
    let z = haar_batch(&model, 3, DType::F64);
    let alpha: Vec<f64> =
        (0..3 * volume).map(|i| TAU * StreamKey::new(4, Purpose::Test, 0).stream(i).uniform()).collect();
    let mut shape = vec![3, 1];
    shape.extend(dims.iter().rev());
    shape.push(1);
    let alpha = Tensor::from_vec(alpha, shape, &Device::Cpu).unwrap();
    // shift by +1 in direction mu: dimension 1 + D - mu of [batch, D, L_{D-1}, ..., L_0, 1]
    let transform = |t: &Tensor| {
        let links: Vec<Tensor> = (0..d)
            .map(|mu| {
                let up = alpha.roll(-1, 1 + d - mu).unwrap();
                (t.narrow(1, mu, 1).unwrap() + (&alpha - up).unwrap()).unwrap()
            })
            .collect();
        Tensor::cat(&links, 1).unwrap()
    };
    let (x, log_det) = model.flow().forward(&z).unwrap();
    let (xg, log_det_g) = model.flow().forward(&transform(&z)).unwrap();
    let d = max_angle_distance(&transform(&x), &xg);
    assert!(d < 1e-11, "{d}");
    for (a, b) in values(&log_det).iter().zip(values(&log_det_g)) {
        assert!((a - b).abs() < 1e-10, "{a} {b}");
    }
    // the flow moves the links: equivariance is not a trivial identity
    assert!(max_angle_distance(&x, &z) > 0.1);
}

/// The batched U(1) action equals the field code's action for every gauge action, in 2D, 3D
/// and 4D.
#[test]
fn batched_u1_action_matches_the_field_code() {
    for dims in [vec![6, 4], vec![4, 2, 6], vec![4, 2, 2, 6]] {
        let lattice = Arc::new(Lattice::new(&dims).unwrap());
        let fields: Vec<GaugeField<U1>> = (0..3).map(|s| GaugeField::hot(lattice.clone(), s)).collect();
        let x = GaugeField::to_batch(&fields.iter().collect::<Vec<_>>(), DType::F64, &Device::Cpu).unwrap();
        for kind in [GaugeActionKind::Wilson, GaugeActionKind::Symanzik, GaugeActionKind::Iwasaki] {
            let action = GaugeAction::new(kind, 1.7);
            let batch = values(&U1BatchAction(action.clone()).batch_action(&x).unwrap());
            for (u, b) in fields.iter().zip(batch) {
                let s = action.action(u).unwrap();
                assert!((s - b).abs() < 1e-11 * s.abs(), "{dims:?} {kind:?}: {s} vs {b}");
            }
        }
    }
}

/// Flow Metropolis with an untrained U(1) model is exact: the plaquette agrees with the exact
/// finite-volume value within 3 sigma (4 x 4 lattice, beta = 1).
#[test]
fn u1_flow_metropolis_with_an_untrained_model_is_exact() {
    let (dims, beta) = ([4usize, 4], 1.0);
    let model = u1_model(&dims, Precision::F64, 8, 8);
    let (plaquettes, acceptance) = flow_metropolis_plaquettes::<U1>(model, &dims, beta, (6000, 200));
    assert!(acceptance > 0.02 && acceptance < 0.9, "acceptance {acceptance}");
    assert_within_3_sigma(
        "plaquette",
        &gamma_method(&plaquettes, DEFAULT_S).unwrap(),
        u1_2d_plaquette(beta, 16),
    );
}

/// A 4D U(1) card (4^4, beta = 0.1, 1x1 convolutions to keep the test fast) trains a
/// u1-equivariant model briefly, and its flow-mh chain gives the plaquette of the card's HMC
/// chain within 3 combined sigma.
#[test]
fn u1_flow_cards_in_4d_agree_with_hmc() {
    use flowhmc::chain::{Card, RunOptions, TrainingCard, run_card, train_card};
    let dir = common::empty_dir("flowhmc-u1-4d");
    let model = dir.join("u1-4d.safetensors");
    let text = format!(
        "[lattice]\ndims = [4, 4, 4, 4]\n[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 0.1\n[flow]\n\
         model = \"u1-equivariant\"\nlayers = 16\nhidden = [4]\nkernel = 1\n[train]\nsteps = 100\nbatch = 32\n\
         learning_rate = 0.01\nseed = 1\noutput = {model:?}\nlog_every = 25\n[update]\nkind = \"flow-mh\"\n\
         model = {model:?}\n[run]\ntrajectories = 2000\nthermalization = 100\nseed = 2\nstart = \"hot\"\n\
         checkpoint_every = 1000\noutput = {:?}\n",
        dir.join("mh")
    );
    let report = train_card(&TrainingCard::parse(&text, "train.toml").unwrap(), true).unwrap();
    assert!(report.curve[3].loss < report.curve[0].loss, "{:?}", report.curve);
    let quiet = RunOptions { resume: false, quiet: true };
    let flow = run_card(&Card::parse(&text, "mh.toml").unwrap(), quiet).unwrap();
    assert!(flow.acceptance > 0.05, "flow-mh acceptance {}", flow.acceptance);
    let hmc_text = text
        .replace(
            "kind = \"flow-mh\"",
            "kind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 6",
        )
        .replace(&format!("model = {model:?}\n[run]"), "[run]")
        .replace("/mh", "/hmc");
    let hmc = run_card(&Card::parse(&hmc_text, "hmc.toml").unwrap(), quiet).unwrap();
    let (a, b) = (&flow.observables["plaquette"], &hmc.observables["plaquette"]);
    let sigma = a.error.hypot(b.error);
    assert!(
        (a.mean - b.mean).abs() < 3.0 * sigma,
        "flow {} +- {}, HMC {} +- {}",
        a.mean,
        a.error,
        b.mean,
        b.error
    );
    // the coupling is visible: the plaquette is about beta/2 in strong coupling
    assert!(b.mean > 0.04, "HMC plaquette {} +- {}", b.mean, b.error);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// HMC in the latent variables of an untrained U(1) flow: trajectories are reversible, and the
/// chain gives <exp(-dH)> = 1 and the exact plaquette within 3 sigma (4 x 4, beta = 1).
#[test]
fn u1_flow_hmc_is_reversible_and_exact() {
    let (dims, beta) = ([4usize, 4], 1.0);
    let model = Arc::new(u1_model(&dims, Precision::F64, 8, 12));
    let batch_action = |a: GaugeAction| -> Box<dyn BatchAction> { Box::new(U1BatchAction(a)) };
    let (plaquettes, boltzmann) =
        flow_hmc_chain::<U1>(model, batch_action, (&dims, beta, 2), (3, 1e-10, 1e-9), (1000, 20));
    let exact = u1_2d_plaquette(beta, 16);
    for (name, samples, expected) in [("plaquette", plaquettes, exact), ("exp(-dH)", boltzmann, 1.0)] {
        assert_within_3_sigma(name, &gamma_method(&samples, DEFAULT_S).unwrap(), expected);
    }
}

/// A U(1) card trains a u1-equivariant model and samples with it by flow-mh and by flow-hmc;
/// cards the flows cannot serve are refused with the reason.
#[test]
fn u1_flow_cards_end_to_end() {
    use flowhmc::chain::{Card, RunOptions, TrainingCard, run_card, train_card};
    let dir = common::empty_dir("flowhmc-u1-cards");
    let model = dir.join("u1.safetensors");
    let text = format!(
        "[lattice]\ndims = [4, 4]\n[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 1.0\n[flow]\n\
         model = \"u1-equivariant\"\nlayers = 8\nhidden = [4]\n[train]\nsteps = 20\nbatch = 16\n\
         learning_rate = 0.003\nseed = 1\noutput = {model:?}\nlog_every = 10\n[update]\nkind = \"flow-mh\"\n\
         model = {model:?}\n[run]\ntrajectories = 100\nthermalization = 10\nseed = 2\nstart = \"hot\"\n\
         checkpoint_every = 50\noutput = {:?}\n",
        dir.join("mh")
    );
    let report = train_card(&TrainingCard::parse(&text, "train.toml").unwrap(), true).unwrap();
    assert!(report.curve[1].loss < report.curve[0].loss, "{:?}", report.curve);
    let quiet = RunOptions { resume: false, quiet: true };
    let summary = run_card(&Card::parse(&text, "mh.toml").unwrap(), quiet).unwrap();
    assert!(summary.acceptance > 0.0 && summary.observables.contains_key("topological_charge"));
    let hmc_text = text
        .replace(
            "kind = \"flow-mh\"",
            "kind = \"flow-hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 4",
        )
        .replace("/mh", "/hmc");
    let summary = run_card(&Card::parse(&hmc_text, "hmc.toml").unwrap(), quiet).unwrap();
    assert!(summary.acceptance > 0.5, "flow-hmc acceptance {}", summary.acceptance);
    let refused = |text: &str| Card::parse(text, "bad.toml").map(|_| ()).unwrap_err().to_string();
    let e = refused(&hmc_text.replace("steps = 4", "steps = 4\nbatch = 8"));
    assert!(e.contains("flow-hmc draws no proposals"), "{e}");
    let fermions = "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.2\nboundary = \"antiperiodic\"\n\
                    even_odd = false\nhasenbusch = []\nsolver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }\n";
    let e = refused(&format!("{hmc_text}{fermions}"));
    assert!(e.contains("[[fermions]]"), "{e}");
    let e = TrainingCard::parse(&text.replace("dims = [4, 4]", "dims = [6, 4]"), "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("divisible by 4"), "{e}");
    let su3 = text
        .replace("\"u1\"", "\"su3\"")
        .replace(&format!("{model:?}"), &format!("{:?}", dir.join("su3.safetensors")));
    let e = train_card(&TrainingCard::parse(&su3, "su3.toml").unwrap(), true).unwrap_err().to_string();
    assert!(e.contains("u1-equivariant model cannot sample the su3 theory"), "{e}");
    let e = TrainingCard::parse(&text.replace("hidden = [4]", "hidden = [4]\nmodes = 2"), "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("modes is a key of su3-spectral, not of u1-equivariant"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The Schwinger model (2D U(1), Nf = 2 Wilson, 4 x 4, beta = 1, kappa = 0.2): flow-mh with
/// a pure-gauge model briefly trained at the same beta, once with the exact determinant in the
/// Metropolis test and once at fixed pseudofermions refreshed by a heatbath before every
/// proposal, gives the plaquette of the pseudofermion HMC chain within 3 sigma.
#[test]
fn schwinger_model_flow_chains_agree_with_hmc() {
    use flowhmc::chain::{Card, RunOptions, TrainingCard, run_card, train_card};
    let dir = common::empty_dir("flowhmc-u1-fermions");
    let model = dir.join("u1.safetensors");
    let theory = "[lattice]\ndims = [4, 4]\n[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 1.0\n";
    let training = format!(
        "{theory}[flow]\nmodel = \"u1-equivariant\"\nlayers = 8\nhidden = [8]\n[train]\nsteps = 300\nbatch = 64\n\
         learning_rate = 0.003\nseed = 1\noutput = {model:?}\n"
    );
    train_card(&TrainingCard::parse(&training, "train.toml").unwrap(), true).unwrap();
    let card = |update: &str, exact: bool, name: &str| {
        let text = format!(
            "{theory}[update]\n{update}\n\
             [run]\ntrajectories = 6000\nthermalization = 200\nseed = 3\nstart = \"hot\"\ncheckpoint_every = 10000\n\
             output = {:?}\n[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.2\nboundary = \"antiperiodic\"\n\
             exact_determinant = {exact}\nsolver = {{ kind = \"cg\", tolerance = 1e-12, max_iterations = 1000 }}\n",
            dir.join(name)
        );
        Card::parse(&text, name).unwrap()
    };
    let flow = format!("kind = \"flow-mh\"\nmodel = {model:?}");
    let runs = [
        (
            "hmc",
            card(
                "kind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 5",
                false,
                "hmc",
            ),
        ),
        ("flow-mh exact", card(&flow, true, "exact")),
        ("flow-mh pseudofermions", card(&flow, false, "pf")),
    ];
    let quiet = RunOptions { resume: false, quiet: true };
    let results: Vec<(&str, f64, f64)> = runs
        .iter()
        .map(|(label, card)| {
            let s = run_card(card, quiet).unwrap();
            let p = &s.observables["plaquette"];
            println!(
                "{label}: plaquette {:.5} +- {:.5} (tau_int {:.1}), acceptance {:.3}",
                p.mean, p.error, p.tau_int, s.acceptance
            );
            assert!(s.acceptance > 0.01, "{label}: acceptance {}", s.acceptance);
            (*label, p.mean, p.error)
        })
        .collect();
    let (_, hmc, hmc_error) = results[0];
    for (label, p, e) in &results[1..] {
        let z = (p - hmc) / (e * e + hmc_error * hmc_error).sqrt();
        assert!(z.abs() < 3.0, "{label}: {p} +- {e} vs HMC {hmc} +- {hmc_error}");
    }
    let e = Card::parse(
        &std::fs::read_to_string(dir.join("hmc/card.toml"))
            .unwrap()
            .replace("exact_determinant = false", "exact_determinant = true"),
        "bad.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no MD force"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The batch loss's gradient is the path gradient plus the score term; the path gradient of
/// the identity flow vanishes at beta = 0, where q = exp(-S) / Z.
#[test]
fn u1_path_gradient_plus_score_is_the_reparameterization_gradient() {
    use flowhmc::flow::train::path_gradients;
    let action = U1BatchAction(GaugeAction::new(GaugeActionKind::Wilson, 2.0));
    assert_path_gradient_plus_score_is_total(&u1_model(&[4, 4], Precision::F64, 8, 3), &action);
    let identity = u1_model(&[4, 4], Precision::F64, 8, 3);
    for var in identity.vars() {
        var.set(&var.zeros_like().unwrap()).unwrap();
    }
    let keys: Vec<StreamKey> = (0..6).map(|i| StreamKey::new(4, Purpose::Test, i)).collect();
    let (x, _) = identity.sample(&keys).unwrap();
    let haar = U1BatchAction(GaugeAction::new(GaugeActionKind::Wilson, 0.0));
    let path = path_gradients(&identity, &haar, &x).unwrap();
    for var in identity.vars() {
        assert!(values(path.get(&var).unwrap()).iter().all(|g| g.abs() < 1e-10));
    }
}
