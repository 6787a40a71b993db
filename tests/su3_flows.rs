//! Gauge-equivariant SU(3) spectral flows: log-Jacobian against the numerical Jacobian on the
//! group (2D and 3D), invertibility and gauge equivariance (2D and 4D), the batched gauge
//! action (2D and 4D), and exactness of flow Metropolis and flow HMC with untrained models
//! against the exact 2D SU(3) plaquette.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{assert_invertible, assert_within_3_sigma, flow_hmc_chain, flow_metropolis_plaquettes, values};
use faer::Mat;
use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
use flowhmc::analysis::gamma::{DEFAULT_S, gamma_method};
use flowhmc::field::GaugeField;
use flowhmc::flow::gauge::HaarPrior;
use flowhmc::flow::su3::{Su3BatchAction, Su3SpectralArchitecture};
use flowhmc::flow::{
    Architecture, BatchAction, FlowField, FlowModel, ModelInfo, Precision, Prior, TheoryTag,
};
use flowhmc::geometry::Lattice;
use flowhmc::group::{Group, LinkMatrix, Su3};
use flowhmc::reference::su3_2d_plaquette;
use flowhmc::rng::{Purpose, StreamKey};
use std::collections::BTreeMap;
use std::sync::Arc;

fn su3_model(dims: &[usize], precision: Precision, layers: usize, seed: u64) -> FlowModel {
    su3_model_with_kernel(dims, precision, layers, 3, seed)
}

fn su3_model_with_kernel(
    dims: &[usize],
    precision: Precision,
    layers: usize,
    kernel: usize,
    seed: u64,
) -> FlowModel {
    let architecture = Su3SpectralArchitecture { layers, hidden: vec![4, 4], kernel, ..Default::default() };
    let info = ModelInfo {
        architecture: Architecture::Su3Spectral(architecture),
        precision,
        theory: TheoryTag::Su3,
        couplings: BTreeMap::from([("beta".into(), 2.0)]),
        dims: dims.to_vec(),
        training: serde_json::Value::Null,
    };
    FlowModel::new(info, seed).unwrap()
}

fn haar_batch(model: &FlowModel, n: u64, dtype: DType) -> Tensor {
    let keys: Vec<StreamKey> = (0..n).map(|i| StreamKey::new(9, Purpose::Test, i)).collect();
    HaarPrior::<Su3>::new().sample(model.lattice(), &keys, dtype, &Device::Cpu).unwrap()
}

fn max_distance(a: &Tensor, b: &Tensor) -> f64 {
    values(a).iter().zip(values(b)).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn fields(x: &Tensor, lattice: &Arc<Lattice>) -> Vec<GaugeField<Su3>> {
    GaugeField::<Su3>::from_batch(x, lattice).unwrap()
}

fn batch(fields: &[GaugeField<Su3>]) -> Tensor {
    GaugeField::to_batch(&fields.iter().collect::<Vec<_>>(), DType::F64, &Device::Cpu).unwrap()
}

/// log|det df/dU| with respect to the Haar measure of every link, against the determinant
/// of the central-difference Jacobian in the coordinates U = exp(w_a T_a) U_0 of each link
/// (input) and X = exp(w'_b T_b) f(U_0) (output, w'_b = -2 Re tr(T_b X f(U_0)^dagger)); at
/// w = 0 the Haar density in these coordinates is the same everywhere. In 2D, and in 3D with
/// 1x1x1 convolutions (the masks are the same for any kernel; this keeps the batch small).
#[test]
fn su3_flow_log_jacobian_matches_the_numerical_jacobian() {
    check_log_jacobian(&[4, 4], 8, 3);
    check_log_jacobian(&[4, 4, 4], 12, 1);
}

/// Perturbed fields per forward pass of the numerical Jacobian.
const JACOBIAN_CHUNK: usize = 128;

fn check_log_jacobian(dims: &[usize], layers: usize, kernel: usize) {
    let model = su3_model_with_kernel(dims, Precision::F64, layers, kernel, 3);
    let lattice = model.lattice().clone();
    let d = lattice.ndim();
    let z = haar_batch(&model, 1, DType::F64);
    let (x, log_det) = model.flow().forward(&z).unwrap();
    let (base_in, base_out) = (&fields(&z, &lattice)[0], &fields(&x, &lattice)[0]);
    let links = d * lattice.volume();
    let n = 8 * links;
    let h = 1e-5;
    let mut perturbed = Vec::with_capacity(2 * n);
    for column in 0..n {
        let (link, a) = (column / 8, column % 8);
        let (site, mu) = (link % lattice.volume(), link / lattice.volume());
        for sign in [1.0, -1.0] {
            let mut p = [0.0; 8];
            p[a] = sign * h;
            let mut all = base_in.to_links();
            all[site * d + mu] = Su3::exp(&p, 1.0).mul(&base_in.link(site, mu));
            perturbed.push(GaugeField::from_links(lattice.clone(), all).unwrap());
        }
    }
    // in chunks: the 3072 perturbed 4^3 fields through 12 layers at once took 9 GB
    let images: Vec<GaugeField<Su3>> = perturbed
        .chunks(JACOBIAN_CHUNK)
        .flat_map(|chunk| fields(&model.flow().forward(&batch(chunk)).unwrap().0, &lattice))
        .collect();
    let mut jacobian = Mat::<f64>::zeros(n, n);
    for column in 0..n {
        let (up, down) = (&images[2 * column], &images[2 * column + 1]);
        for link in 0..links {
            let (site, mu) = (link % lattice.volume(), link / lattice.volume());
            let reference = base_out.link(site, mu);
            let w = |f: &GaugeField<Su3>| Su3::re_tr_generators(&f.link(site, mu).mul_adj(&reference));
            let (wu, wd) = (w(up), w(down));
            for b in 0..8 {
                jacobian[(8 * link + b, column)] = -2.0 * (wu[b] - wd[b]) / (2.0 * h);
            }
        }
    }
    let numerical = jacobian.determinant().abs().ln();
    let analytic = values(&log_det)[0];
    assert!((numerical - analytic).abs() < 1e-6, "{dims:?}: numerical {numerical}, analytic {analytic}");
    assert!(analytic.abs() > 1e-2, "the test flow should not be volume preserving: {analytic}");
}

/// f^-1(f(z)) = z to 1e-10 in f64 and 1e-5 in f32, the log-Jacobians cancel, and log q of
/// the forward pass equals log q through the inverse, in 2D and 4D.
#[test]
fn su3_flow_is_invertible() {
    for dims in [vec![8, 4], vec![4, 4, 4, 4]] {
        for (precision, tolerance) in [(Precision::F64, 1e-10), (Precision::F32, 1e-5)] {
            let model = su3_model(&dims, precision, 16, 4);
            assert_invertible(&model, &haar_batch(&model, 2, precision.dtype()), tolerance, max_distance);
        }
    }
}

/// A gauge transformation U_mu(x) -> Omega(x) U_mu(x) Omega(x + mu)^dagger of the input
/// transforms the output the same way and leaves the log-Jacobian unchanged, in 2D and 4D.
#[test]
fn su3_flow_is_gauge_equivariant() {
    for dims in [vec![8, 4], vec![4, 4, 8, 4]] {
        check_gauge_equivariance(&dims);
    }
}

fn check_gauge_equivariance(dims: &[usize]) {
    let model = su3_model(dims, Precision::F64, 16, 5);
    let lattice = model.lattice().clone();
    let d = lattice.ndim();
    let z = haar_batch(&model, 2, DType::F64);
    let omega = GaugeField::<Su3>::hot(lattice.clone(), 17); // the mu = 0 links serve as Omega(x)
    let transform = |t: &Tensor| {
        let transformed: Vec<GaugeField<Su3>> = fields(t, &lattice)
            .iter()
            .map(|u| {
                let mut links = u.to_links();
                for site in 0..lattice.volume() {
                    for mu in 0..d {
                        let g = omega.link(site, 0);
                        let g_next = omega.link(lattice.fwd(site, mu), 0);
                        links[site * d + mu] = g.mul(&u.link(site, mu)).mul_adj(&g_next);
                    }
                }
                GaugeField::from_links(lattice.clone(), links).unwrap()
            })
            .collect();
        batch(&transformed)
    };
    let (x, log_det) = model.flow().forward(&z).unwrap();
    let (xg, log_det_g) = model.flow().forward(&transform(&z)).unwrap();
    let distance = max_distance(&transform(&x), &xg);
    assert!(distance < 1e-11, "{dims:?}: {distance}");
    for (a, b) in values(&log_det).iter().zip(values(&log_det_g)) {
        assert!((a - b).abs() < 1e-10, "{dims:?}: {a} {b}");
    }
    let moved = max_distance(&x, &z);
    // equivariance is not a trivial identity: the links move by far more than the tolerance
    assert!(moved > 0.01, "{dims:?}: the flow should move the links, max |x - z| = {moved}");
}

/// The batched SU(3) action equals the field code's action for every gauge action, in 2D
/// and 4D.
#[test]
fn batched_su3_action_matches_the_field_code() {
    for dims in [vec![6, 4], vec![4, 2, 2, 6]] {
        let lattice = Arc::new(Lattice::new(&dims).unwrap());
        let fields: Vec<GaugeField<Su3>> = (0..3).map(|s| GaugeField::hot(lattice.clone(), s)).collect();
        let x = batch(&fields);
        for kind in [GaugeActionKind::Wilson, GaugeActionKind::Symanzik, GaugeActionKind::Iwasaki] {
            let action = GaugeAction::new(kind, 3.1);
            let batched = values(&Su3BatchAction(action.clone()).batch_action(&x).unwrap());
            for (u, b) in fields.iter().zip(batched) {
                let s = action.action(u).unwrap();
                assert!((s - b).abs() < 1e-11 * s.abs(), "{dims:?} {kind:?}: {s} vs {b}");
            }
        }
    }
}

/// Flow Metropolis with an untrained SU(3) model is exact: the plaquette agrees with the
/// exact value within 3 sigma (4 x 4 lattice, beta = 2).
#[test]
fn su3_flow_metropolis_with_an_untrained_model_is_exact() {
    let (dims, beta) = ([4usize, 4], 2.0);
    let model = su3_model(&dims, Precision::F64, 8, 8);
    let (plaquettes, acceptance) = flow_metropolis_plaquettes::<Su3>(model, &dims, beta, (4000, 100));
    assert!(acceptance > 0.02 && acceptance < 0.95, "acceptance {acceptance}");
    assert_within_3_sigma(
        "plaquette",
        &gamma_method(&plaquettes, DEFAULT_S).unwrap(),
        su3_2d_plaquette(beta),
    );
}

/// HMC in the latent variables of an untrained SU(3) flow: trajectories are reversible, and
/// the chain gives <exp(-dH)> = 1 and the exact plaquette within 3 sigma (4 x 4, beta = 2).
#[test]
fn su3_flow_hmc_is_reversible_and_exact() {
    let (dims, beta) = ([4usize, 4], 2.0);
    let model = Arc::new(su3_model(&dims, Precision::F64, 8, 12));
    let batch_action = |a: GaugeAction| -> Box<dyn BatchAction> { Box::new(Su3BatchAction(a)) };
    let (plaquettes, boltzmann) =
        flow_hmc_chain::<Su3>(model, batch_action, (&dims, beta, 3), (2, 1e-9, 1e-8), (400, 10));
    let exact = su3_2d_plaquette(beta);
    for (name, samples, expected) in [("plaquette", plaquettes, exact), ("exp(-dH)", boltzmann, 1.0)] {
        assert_within_3_sigma(name, &gamma_method(&samples, DEFAULT_S).unwrap(), expected);
    }
}

/// An SU(3) card trains an su3-spectral model and samples with it by flow-mh and flow-hmc.
#[test]
fn su3_flow_cards_end_to_end() {
    use flowhmc::chain::{Card, RunOptions, TrainingCard, run_card, train_card};
    let dir = common::empty_dir("flowhmc-su3-cards");
    let model = dir.join("su3.safetensors");
    let text = format!(
        "[lattice]\ndims = [4, 4]\n[gauge]\ngroup = \"su3\"\naction = \"wilson\"\nbeta = 2.0\n[flow]\n\
         model = \"su3-spectral\"\nlayers = 8\nhidden = [4]\nmodes = 2\n[train]\nsteps = 20\nbatch = 16\n\
         learning_rate = 0.003\nseed = 1\noutput = {model:?}\nlog_every = 10\n[update]\nkind = \"flow-mh\"\n\
         model = {model:?}\n[run]\ntrajectories = 100\nthermalization = 10\nseed = 2\nstart = \"hot\"\n\
         checkpoint_every = 50\noutput = {:?}\n",
        dir.join("mh")
    );
    let report = train_card(&TrainingCard::parse(&text, "train.toml").unwrap(), true).unwrap();
    assert!(report.curve[1].loss < report.curve[0].loss, "{:?}", report.curve);
    let quiet = RunOptions { resume: false, quiet: true };
    let summary = run_card(&Card::parse(&text, "mh.toml").unwrap(), quiet).unwrap();
    assert!(summary.acceptance > 0.0 && summary.observables.contains_key("plaquette"));
    let hmc_text = text
        .replace(
            "kind = \"flow-mh\"",
            "kind = \"flow-hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 4",
        )
        .replace("/mh", "/hmc");
    let summary = run_card(&Card::parse(&hmc_text, "hmc.toml").unwrap(), quiet).unwrap();
    assert!(summary.acceptance > 0.5, "flow-hmc acceptance {}", summary.acceptance);
    let e = TrainingCard::parse(&text.replace("modes = 2", "modes = 9"), "t.toml").unwrap_err().to_string();
    assert!(e.contains("modes = 9"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Path-gradient training needs a differentiable inverse; the spectral flow's is not, so the
/// run is refused before any step.
#[test]
fn su3_path_gradient_training_is_refused() {
    use flowhmc::flow::train::{Schedule, TrainingOptions, train};
    let model = su3_model(&[4, 4], Precision::F64, 8, 1);
    let before: Vec<Vec<f64>> = model.vars().iter().map(|v| values(v.as_tensor())).collect();
    let options = TrainingOptions {
        steps: 2,
        batch: 2,
        learning_rate: 1e-3,
        schedule: Schedule::Constant,
        seed: 1,
        log_every: 1,
        max_grad_norm: None,
        path_gradient: true,
    };
    let action = Su3BatchAction(GaugeAction::new(GaugeActionKind::Wilson, 1.0));
    let e = train(&model, &action, &options, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("path_gradient") && e.contains("su3-spectral"), "{e}");
    let after: Vec<Vec<f64>> = model.vars().iter().map(|v| values(v.as_tensor())).collect();
    assert_eq!(before, after);
}
