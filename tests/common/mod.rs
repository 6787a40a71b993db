//! Checks shared by the integration tests: Gamma-method comparisons with exact values, and
//! the checks every flow model must pass.

// each test crate uses a part of this module
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use faer::Mat;
use flowhmc::analysis::gamma::GammaResult;
use flowhmc::flow::FlowModel;
use flowhmc::rng::{Purpose, StreamKey};

/// Asserts that a Gamma-method estimate `r` of `name` agrees with `expected` within 3 of its
/// standard errors.
pub fn assert_within_3_sigma(name: &str, r: &GammaResult, expected: f64) {
    assert!(
        (r.mean - expected).abs() < 3.0 * r.error,
        "{name}: {} +- {} (tau_int {:.2}) vs {expected}: {:.2} sigma",
        r.mean,
        r.error,
        r.tau_int,
        (r.mean - expected) / r.error
    );
}

/// The entries of a tensor as f64.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts that log|det df/dz| of the model's flow at the batch-1 input `z` equals the log of
/// the determinant of the central-difference Jacobian to 1e-6, with output differences taken
/// by `difference` (plain, or on the circle for angles), and that the flow is not volume
/// preserving there (so the check could tell a wrong log-Jacobian).
pub fn assert_log_jacobian_is_numerical(model: &FlowModel, z: &Tensor, difference: fn(f64, f64) -> f64) {
    let (_, log_det) = model.flow().forward(z).unwrap();
    let z0 = values(z);
    let n = z0.len();
    let h = 1e-6;
    let image = |v: &[f64]| {
        let t = Tensor::from_vec(v.to_vec(), z.shape(), &Device::Cpu).unwrap();
        values(&model.flow().forward(&t).unwrap().0)
    };
    let mut jacobian = Mat::<f64>::zeros(n, n);
    for j in 0..n {
        let (mut up, mut down) = (z0.clone(), z0.clone());
        up[j] += h;
        down[j] -= h;
        let (fu, fd) = (image(&up), image(&down));
        for i in 0..n {
            jacobian[(i, j)] = difference(fu[i], fd[i]) / (2.0 * h);
        }
    }
    let numerical = jacobian.determinant().abs().ln();
    let analytic = values(&log_det)[0];
    assert!((numerical - analytic).abs() < 1e-6, "numerical {numerical}, analytic {analytic}");
    assert!(analytic.abs() > 1e-2, "the test flow should not be volume preserving: {analytic}");
}

/// Asserts that f^-1(f(z)) = z within `tolerance` by `distance`, that the forward and inverse
/// log-Jacobians cancel, and that log q of the forward pass equals log q through the inverse.
pub fn assert_invertible(
    model: &FlowModel,
    z: &Tensor,
    tolerance: f64,
    distance: fn(&Tensor, &Tensor) -> f64,
) {
    let (x, log_det) = model.flow().forward(z).unwrap();
    let (back, log_det_inverse) = model.flow().inverse(&x).unwrap();
    let d = distance(z, &back);
    assert!(d < tolerance, "|f^-1(f(z)) - z| = {d:e}");
    for (a, b) in values(&log_det).iter().zip(values(&log_det_inverse)) {
        assert!((a + b).abs() < tolerance * 100.0, "log-Jacobians {a} {b}");
        assert!(a.abs() > 1e-2, "the test flow should not be volume preserving: {a}");
    }
    let keys: Vec<StreamKey> = (0..3).map(|i| StreamKey::new(2, Purpose::Test, i)).collect();
    let (x, log_q) = model.sample(&keys).unwrap();
    for (a, b) in values(&log_q).iter().zip(values(&model.log_density(&x).unwrap())) {
        assert!((a - b).abs() < tolerance * 1e3 * a.abs().max(1.0), "log q {a} vs {b}");
    }
}

/// A flow-Metropolis chain of `n` steps (after `thermalization`) with `model` for the Wilson
/// action at `beta` on `dims`, from a hot start: the plaquette history and the acceptance.
pub fn flow_metropolis_plaquettes<G: flowhmc::backend::cpu::PackedGroup>(
    model: FlowModel,
    dims: &[usize],
    beta: f64,
    (n, thermalization): (u64, u64),
) -> (Vec<f64>, f64) {
    use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
    use flowhmc::field::GaugeField;
    use flowhmc::update::{FlowMetropolis, MarkovStep};
    let monomials: Vec<Box<dyn Monomial<GaugeField<G>>>> =
        vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, beta))];
    let mut mh = FlowMetropolis::new(model, monomials, 11, 64);
    let lattice = std::sync::Arc::new(flowhmc::geometry::Lattice::new(dims).unwrap());
    let mut u = GaugeField::<G>::hot(lattice, 2);
    let (mut plaquettes, mut accepted) = (Vec::new(), 0);
    for k in 0..n + thermalization {
        let report = mh.step(&mut u, k).unwrap();
        if k >= thermalization {
            plaquettes.push(flowhmc::observables::average_plaquette(&u));
            accepted += usize::from(report.accepted);
        }
    }
    (plaquettes, accepted as f64 / n as f64)
}

/// HMC in the latent variables of `model` for the Wilson action at `beta` (batched by
/// `batch_action`) on `dims`, `steps` Omelyan steps per unit trajectory, from a hot start:
/// asserts that the first `checks` trajectories run back to their start within
/// `(dz, dh)`, then returns the plaquette and exp(-dH) histories of `n` trajectories after
/// `thermalization`.
pub fn flow_hmc_chain<G: flowhmc::backend::cpu::PackedGroup>(
    model: std::sync::Arc<FlowModel>,
    batch_action: fn(flowhmc::action::GaugeAction) -> Box<dyn flowhmc::flow::BatchAction>,
    (dims, beta, steps): (&[usize], f64, usize),
    (checks, dz_tolerance, dh_tolerance): (u64, f64, f64),
    (n, thermalization): (u64, u64),
) -> (Vec<f64>, Vec<f64>) {
    use flowhmc::action::{GaugeAction, GaugeActionKind};
    use flowhmc::field::GaugeField;
    use flowhmc::integrator::{Integrator, Scheme};
    use flowhmc::update::{FlowHmc, Hmc, MarkovStep, PulledBackAction};
    let action = GaugeAction::new(GaugeActionKind::Wilson, beta);
    let pulled_back = PulledBackAction::new(model.clone(), batch_action(action));
    let integrator = Integrator::single(Scheme::Omelyan, steps, 1).unwrap();
    let hmc = Hmc::new(vec![Box::new(pulled_back)], integrator, 1.0, 13).unwrap();
    let mut step = FlowHmc::new(model, hmc);
    let lattice = std::sync::Arc::new(flowhmc::geometry::Lattice::new(dims).unwrap());
    let mut u = GaugeField::<G>::hot(lattice, 2);
    step.set_reversibility_check(true);
    for k in 0..checks {
        let (dz, dh) = step.step(&mut u, k).unwrap().reversibility.unwrap();
        assert!(dz < dz_tolerance && dh < dh_tolerance, "trajectory {k}: |dz| = {dz:e}, |dH| = {dh:e}");
    }
    step.set_reversibility_check(false);
    let (mut plaquettes, mut boltzmann) = (Vec::new(), Vec::new());
    for k in 0..n + thermalization {
        let report = step.step(&mut u, checks + k).unwrap();
        if k >= thermalization {
            plaquettes.push(flowhmc::observables::average_plaquette(&u));
            boltzmann.push((-report.dh).exp());
        }
    }
    (plaquettes, boltzmann)
}

/// The parameter set of the 4D SU(3) host tests (two Wilson flavours, even/odd); cpp/c_host.c
/// builds the same set field by field.
pub const SU3_HOST_PARAMETERS: &str = r#"
[gauge]
group = "su3"
action = "wilson"
beta = 5.7
[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 8
[run]
seed = 11
threads = 1
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.12
boundary = "antiperiodic"
even_odd = true
solver = { kind = "cg", tolerance = 1e-11, max_iterations = 2000 }
"#;

/// The batch loss's gradient splits exactly into the path gradient and the score term (the
/// gradient of log q at fixed x, through the inverse map), weight by weight, for six samples
/// of `model` towards exp(-`action`).
pub fn assert_path_gradient_plus_score_is_total(model: &FlowModel, action: &dyn flowhmc::flow::BatchAction) {
    use flowhmc::flow::train::path_gradients;
    let keys: Vec<StreamKey> = (0..6).map(|i| StreamKey::new(4, Purpose::Test, i)).collect();
    let (x, log_q) = model.sample(&keys).unwrap();
    let total = (&log_q + action.batch_action(&x).unwrap()).unwrap().mean_all().unwrap().backward().unwrap();
    let path = path_gradients(model, action, &x).unwrap();
    let score = model.log_density(&x.detach()).unwrap().mean_all().unwrap().backward().unwrap();
    let mut largest = 0.0f64;
    for var in model.vars() {
        let part = |g: &candle_core::backprop::GradStore| values(g.get(&var).unwrap());
        for ((t, p), s) in part(&total).iter().zip(&part(&path)).zip(&part(&score)) {
            assert!((t - p - s).abs() < 1e-8 * t.abs().max(1.0), "{t} != {p} + {s}");
            largest = largest.max(p.abs()).max(s.abs());
        }
    }
    assert!(largest > 1e-3, "the gradients are all zero: nothing was tested");
}

/// Host-context parameters of the rank tests and the MPI host example: SU(3) Wilson beta 5.7,
/// Nf = 2 even/odd Wilson quarks at kappa 0.12 with a Hasenbusch mass, short trajectories.
pub const NF2_HOST_PARAMETERS: &str = "[gauge]\ngroup = \"su3\"\naction = \"wilson\"\nbeta = 5.7\n[update]\n\
    kind = \"hmc\"\ntrajectory_length = 0.3\nintegrator = \"omelyan\"\nsteps = 6\n[run]\nseed = 11\nthreads = 1\n\
    [[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.12\nboundary = \"antiperiodic\"\neven_odd = true\n\
    hasenbusch = [0.1]\nsolver = { kind = \"cg\", tolerance = 1e-11, max_iterations = 2000 }\n";

/// A host's cold 4D SU(3) field (every link the unit matrix) in flowhmc's own layout, on a
/// lattice of `volume` sites.
pub fn cold_su3_host_field(volume: usize) -> Vec<f64> {
    let mut b = vec![0.0; volume * 4 * 18];
    for link in b.chunks_exact_mut(18) {
        for k in 0..3 {
            link[2 * (3 * k + k)] = 1.0;
        }
    }
    b
}

/// A new empty directory `<temp dir>/<name>-<process id>` for a test's files (whatever an
/// earlier run left there is removed); the test removes it when it passes.
pub fn empty_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The run card of the device tests: 4^4 SU(3), Iwasaki at beta 2.3, Nf = 2 Wilson quarks
/// (kappa 0.12) split by Hasenbusch at 0.1 over two levels (the ratio on an Omelyan level of
/// `outer_steps` steps, the gauge action and the heavy term on a leapfrog level of 2 steps),
/// mixed CG to `tolerance`, `trajectories` of length 0.5 from a hot start with `seed`, written
/// to `dir`; `run_keys` are more lines of `[run]` (the device, a process grid).
pub fn hasenbusch_card(
    dir: &std::path::Path,
    outer_steps: usize,
    trajectories: usize,
    seed: u64,
    tolerance: f64,
    run_keys: &str,
) -> String {
    format!(
        r#"
[lattice]
dims = [4, 4, 4, 4]
[gauge]
group = "su3"
action = "iwasaki"
beta = 2.3
[[update.levels]]
integrator = "omelyan"
steps = {outer_steps}
monomials = ["fermions.1"]
[[update.levels]]
integrator = "leapfrog"
steps = 2
monomials = ["gauge", "fermions.0"]
[update]
kind = "hmc"
trajectory_length = 0.5
[run]
trajectories = {trajectories}
thermalization = 0
seed = {seed}
start = "hot"
checkpoint_every = 2
output = "{}"
{run_keys}
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.12
hasenbusch = [0.1]
solver = {{ kind = "mixed-cg", tolerance = {tolerance:e}, max_iterations = 1000 }}
"#,
        dir.display()
    )
}

/// Asserts that two runs' measurement records agree trajectory by trajectory: the acceptance
/// exactly, the plaquette within `plaquette` and dH within `dh`; `label` names the run.
pub fn assert_runs_agree(
    want: &[serde_json::Map<String, serde_json::Value>],
    got: &[serde_json::Map<String, serde_json::Value>],
    plaquette: f64,
    dh: f64,
    label: &str,
) {
    assert_eq!(got.len(), want.len(), "{label}: trajectories");
    let value = |r: &serde_json::Map<String, serde_json::Value>, key: &str| r[key].as_f64().unwrap();
    for (k, (a, b)) in want.iter().zip(got).enumerate() {
        assert_eq!(a["accepted"], b["accepted"], "{label}, trajectory {k}");
        let (p, q) = (value(a, "plaquette"), value(b, "plaquette"));
        assert!((p - q).abs() <= plaquette, "{label}, trajectory {k}: plaquette {q} against {p}");
        let (p, q) = (value(a, "dh"), value(b, "dh"));
        assert!((p - q).abs() <= dh, "{label}, trajectory {k}: dH {q} against {p}");
    }
}
