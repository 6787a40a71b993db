//! Dynamical Wilson and clover fermions: the Schwinger model against the exact-determinant
//! reference and reweighting, and 4D SU(3) Nf = 2 with and without even/odd preconditioning
//! and Hasenbusch factorization.

use flowhmc::chain::card::Card;
use flowhmc::chain::run::{RunOptions, run_card};
use flowhmc::chain::summary::{Summary, read_measurements};
use flowhmc::dirac::Boundary;
use flowhmc::dirac::dense::ln_abs_det;
use flowhmc::group::U1;
use std::path::PathBuf;

fn output(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowhmc-fermions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `card` (TOML with OUTPUT standing for the output directory) and returns its summary
/// and the records.
fn run(card: &str, name: &str) -> (Summary, Vec<serde_json::Map<String, serde_json::Value>>) {
    let dir = output(name);
    let card = Card::parse(&card.replace("OUTPUT", dir.to_str().unwrap()), name).unwrap();
    let summary = run_card(&card, RunOptions { resume: false, quiet: true }).unwrap();
    let records = read_measurements(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (summary, records)
}

fn within(summary: &Summary, key: &str, reference: f64, reference_error: f64) -> (f64, f64, f64) {
    let o = &summary.observables[key];
    let sigma = (o.error * o.error + reference_error * reference_error).sqrt();
    (o.mean, o.error, (o.mean - reference) / sigma)
}

/// Schwinger model (2D U(1), Nf = 2 Wilson) at beta = 2, L = 8, kappa = 0.26, antiperiodic in
/// time: the HMC plaquette and chiral condensate agree with the exact-reweighting values of
/// an independent exact-reweighting reference (0.73178 +- 0.00097 and 1.75155 +- 0.00174, from
/// det(D^dagger D) of the dense Dirac matrix), <exp(-dH)> = 1, and the trajectories run back
/// to round-off.
#[test]
fn schwinger_model_matches_the_exact_determinant_reference() {
    let card = r#"
[lattice]
dims = [8, 8]
[gauge]
group = "u1"
action = "wilson"
beta = 2.0
[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 8
reversibility_check = 100
[run]
trajectories = 6000
thermalization = 100
seed = 11
start = "hot"
checkpoint_every = 10000
output = "OUTPUT"
threads = 1
[measure]
hadrons = { every = 20, noise = 4 }
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.26
boundary = "antiperiodic"
even_odd = true
solver = { kind = "cg", tolerance = 1e-11, max_iterations = 10000 }
"#;
    let (summary, records) = run(card, "schwinger");
    let (mean, error, z) = within(&summary, "plaquette", 0.73178, 0.00097);
    assert!(z.abs() < 3.0, "plaquette {mean} +- {error} vs 0.73178 +- 0.00097");
    let (pbp, pbp_err, zc) = within(&summary, "chiral_condensate", 1.75155, 0.00174);
    assert!(zc.abs() < 3.0, "(1/V) Re tr M^-1 = {pbp} +- {pbp_err} vs 1.75155 +- 0.00174");
    let pion = records.iter().find_map(|r| r.get("pion_correlator")).unwrap().as_array().unwrap();
    assert_eq!(pion.len(), 8);
    let (b, berr, zb) = within(&summary, "exp_minus_dh", 1.0, 0.0);
    assert!(zb.abs() < 3.0, "<exp(-dH)> = {b} +- {berr}");
    let checks: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| Some((r.get("reversibility_du")?.as_f64()?, r.get("reversibility_dh")?.as_f64()?)))
        .collect();
    assert!(checks.len() >= 50);
    for (du, dh) in checks {
        assert!(du < 1e-10 && dh < 1e-7, "reversibility |dU| {du}, |dH| {dh}");
    }
    assert!(summary.observables["solver_iterations"].mean > 0.0);
    println!("Schwinger plaquette {mean:.5} +- {error:.5}, acceptance {:.3}", summary.acceptance);
}

/// 4D SU(3) Nf = 2 on 4^4: the same plaquette with and without even/odd preconditioning and
/// with a Hasenbusch mass on its own level (they change the cost, not the answer).
#[test]
fn su3_nf2_plaquette_is_independent_of_even_odd_and_hasenbusch() {
    nf2_plaquette_is_independent_of_even_odd_and_hasenbusch("kind = \"wilson\"", "su3");
}

/// The same for clover quarks (c_sw = 1.769): with even/odd preconditioning the card adds the
/// odd-site determinant term `fermions.det` (placed on the gauge action's level), without it
/// the full operator's pseudofermions carry the whole determinant; the plaquettes agree.
#[test]
fn su3_nf2_clover_plaquette_is_independent_of_even_odd_and_hasenbusch() {
    nf2_plaquette_is_independent_of_even_odd_and_hasenbusch("kind = \"clover\"\ncsw = 1.769", "su3-clover");
}

fn nf2_plaquette_is_independent_of_even_odd_and_hasenbusch(kind: &str, name: &str) {
    let clover = kind.contains("clover");
    let card = |fermions: &str, update: &str| {
        format!(
            r#"
[lattice]
dims = [4, 4, 4, 4]
[gauge]
group = "su3"
action = "wilson"
beta = 5.6
[update]
kind = "hmc"
trajectory_length = 1.0
{update}
[run]
trajectories = 120
thermalization = 20
seed = 5
start = "cold"
checkpoint_every = 1000
output = "OUTPUT"
[[fermions]]
{kind}
flavors = 2
kappa = 0.13
{fermions}
solver = {{ kind = "cg", tolerance = 1e-10, max_iterations = 10000 }}
"#
        )
    };
    let single = "integrator = \"omelyan\"\nsteps = 6";
    let inner =
        if clover { r#"["gauge", "fermions.0", "fermions.det"]"# } else { r#"["gauge", "fermions.0"]"# };
    let nested = format!(
        r#"[[update.levels]]
integrator = "omelyan"
steps = 4
monomials = ["fermions.1"]
[[update.levels]]
integrator = "omelyan"
steps = 2
monomials = {inner}"#
    );
    let runs = [
        ("e/o", card("even_odd = true", single)),
        ("full", card("even_odd = false", single)),
        ("e/o + Hasenbusch", card("even_odd = true\nhasenbusch = [0.1]", &nested)),
    ];
    let results: Vec<(&str, f64, f64)> = runs
        .iter()
        .enumerate()
        .map(|(i, (label, text))| {
            let (s, _) = run(text, &format!("{name}-{i}"));
            let p = &s.observables["plaquette"];
            println!("{label}: plaquette {:.5} +- {:.5}, acceptance {:.3}", p.mean, p.error, s.acceptance);
            assert!(s.acceptance > 0.6, "{label}: acceptance {}", s.acceptance);
            (*label, p.mean, p.error)
        })
        .collect();
    for (a, pa, ea) in &results {
        for (b, pb, eb) in &results {
            let z = (pa - pb) / (ea * ea + eb * eb).sqrt();
            assert!(z.abs() < 3.0, "{a}: {pa} +- {ea} vs {b}: {pb} +- {eb}");
        }
    }
}

/// The pseudofermion weight is an unbiased estimate of the determinant ratio: with phi drawn
/// by the heatbath at U, <exp(-(S_pf(U') - S_pf(U)))> = det(M'^dagger M') / det(M^dagger M)
/// (divided by the same ratio of M_h for a Hasenbusch term), compared with the exact ratio from
/// dense LU determinants on a 4x4 Schwinger-model lattice.
#[test]
fn pseudofermion_weights_estimate_the_exact_determinant_ratio() {
    use flowhmc::action::Monomial;
    use flowhmc::action::fermion::{Pseudofermion, PseudofermionParams};
    use flowhmc::checkerboard::Checkerboard;
    use flowhmc::dirac::dense::ln_abs_det;
    use flowhmc::dirac::{Boundary, WilsonOperator};
    use flowhmc::field::GaugeField;
    use flowhmc::geometry::Lattice;
    use flowhmc::group::{Group, U1};
    use flowhmc::rng::{Purpose, StreamKey};
    use flowhmc::solver::SolverParams;
    use std::sync::Arc;

    let lat = Arc::new(Lattice::new(&[4, 4]).unwrap());
    let u = GaugeField::<U1>::hot(lat.clone(), 12);
    // U': every link angle scaled by 0.93 (a smoother field with a distinctly larger
    // determinant) plus a little noise
    let mut v = u.clone();
    let key = StreamKey::new(3, Purpose::Test, 0);
    for site in 0..lat.volume() {
        let mut rng = key.stream(site);
        for mu in 0..2 {
            let angle = u.link(site, mu).arg();
            v.set_link(site, mu, &U1::exp(&[0.93 * angle + 0.02 * rng.normal()], 1.0));
        }
    }
    let cb = Checkerboard::new(lat.clone()).unwrap();
    let ln_det = |field: &GaugeField<U1>, kappa: f64| {
        ln_abs_det(&WilsonOperator::<U1, 2>::new(field, &cb, kappa, Boundary::ANTIPERIODIC).unwrap())
    };
    let (kappa, kappa_heavy) = (0.2, 0.12);
    for (even_odd, heavy) in [(false, 0.0), (true, 0.0), (true, kappa_heavy)] {
        let exact = {
            let mut ln_ratio = 2.0 * (ln_det(&v, kappa) - ln_det(&u, kappa));
            if heavy > 0.0 {
                ln_ratio -= 2.0 * (ln_det(&v, heavy) - ln_det(&u, heavy));
            }
            ln_ratio.exp()
        };
        let params = PseudofermionParams {
            kappa,
            kappa_heavy: heavy,
            boundary: Boundary::ANTIPERIODIC,
            even_odd,
            solver: SolverParams { tolerance: 1e-12, max_iterations: 1000 },
            mixed_precision: false,
        };
        let mut term = Pseudofermion::<U1, 2>::new("pf", params, cb.clone(), 0);
        let n = 4000;
        let samples: Vec<f64> = (0..n)
            .map(|k| {
                term.refresh(&u, 21, k).unwrap();
                (term.action(&u).unwrap() - term.action(&v).unwrap()).exp()
            })
            .collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let err = (var / n as f64).sqrt();
        println!("e/o {even_odd} kappa_h {heavy}: <w> = {mean:.4} +- {err:.4}, exact {exact:.4}");
        assert!(err < 0.05 * exact, "the estimate is too noisy to test: {err}");
        assert!(
            ((mean - exact) / err).abs() < 3.5,
            "e/o {even_odd} kappa_h {heavy}: {mean} +- {err} vs {exact}"
        );
        assert!((exact - 1.0).abs() > 3.0 * err, "the test needs a ratio distinguishable from 1");
    }
}

/// An HMC chain with pseudofermions agrees with an independent exact-determinant sampler on
/// the same small lattice: quenched configurations reweighted with det(M^dagger M) from dense
/// LU (Schwinger model, 4x4, beta = 2, kappa = 0.24, antiperiodic in time). One thread: the
/// lattice is too small to share.
#[test]
fn hmc_agrees_with_exact_determinant_reweighting() {
    use flowhmc::action::fermion::Pseudofermion;
    use flowhmc::dirac::WilsonOperator;
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
        hmc_vs_reweighting(
            0.24,
            2.0,
            Boundary::ANTIPERIODIC,
            |cb, params| vec![Box::new(Pseudofermion::<U1, 2>::new("fermions", params, cb.clone(), 0)) as _],
            |q, cb, kappa| {
                let w = WilsonOperator::<U1, 2>::new(q, cb, kappa, Boundary::ANTIPERIODIC).unwrap();
                ln_abs_det(&w)
            },
        )
    });
}

/// The same for clover quarks with even/odd preconditioning (kappa = 0.23, c_sw = 3, three
/// times its tree-level value, so that the clover term matters: the plaquette moves from 0.731
/// to 0.759): the pseudofermions of the Schur operator and the determinant of the odd-site
/// blocks together sample |det M|^2 of the dense clover matrix. Without the determinant term
/// the chain drifts to fields where 1 + C is nearly singular and its solves fail.
#[test]
fn clover_hmc_agrees_with_exact_determinant_reweighting() {
    clover_hmc_vs_reweighting(Boundary::ANTIPERIODIC);
}

/// The same with openQCD's open boundaries in time (4x8, c_F = 1.3, c_G = 1): the quark
/// fields vanish on the boundary slices, the dense matrix is the identity there, and the
/// Schur pseudofermions with the odd-site determinant sample |det M|^2 of the bulk.
#[test]
fn open_boundary_clover_hmc_agrees_with_exact_determinant_reweighting() {
    clover_hmc_vs_reweighting(Boundary::Open { c_f: 1.3 });
}

fn clover_hmc_vs_reweighting(boundary: Boundary) {
    use flowhmc::action::clover::CloverDeterminant;
    use flowhmc::action::fermion::Pseudofermion;
    use flowhmc::dirac::{Clover, CloverOperator};
    let csw = 3.0;
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
        hmc_vs_reweighting(
            0.23,
            2.0,
            boundary,
            |cb, params| {
                let kappa = params.kappa;
                let clover = Clover::new(cb.clone(), boundary, csw);
                vec![
                    Box::new(Pseudofermion::<U1, 2, Clover>::with_discretization(
                        "fermions",
                        params,
                        clover.clone(),
                        0,
                    )) as _,
                    Box::new(CloverDeterminant::new("fermions.det", clover, kappa, 2)) as _,
                ]
            },
            |q, cb, kappa| {
                let m = CloverOperator::<U1, 2>::new(q, cb, kappa, csw, boundary).unwrap();
                ln_abs_det(&m)
            },
        )
    });
}

type Fermions = Vec<Box<dyn flowhmc::action::Monomial<flowhmc::field::GaugeField<U1>>>>;

/// The Schwinger model of the sampler tests: 4x4, beta = 2, fermions antiperiodic in time;
/// with open boundaries 4x8 (6 time slices in the bulk).
const SAMPLER_DIMS: [usize; 2] = [4, 4];

/// The sampler tests' lattice for fermions with `boundary`.
fn sampler_lattice(boundary: Boundary) -> flowhmc::geometry::Lattice {
    use flowhmc::geometry::Lattice;
    match boundary {
        Boundary::Open { .. } => Lattice::new(&[4, 8]).unwrap().open_in_time(),
        _ => Lattice::new(&SAMPLER_DIMS).unwrap(),
    }
}
const SAMPLER_BETA: f64 = 2.0;

/// The plaquette of an HMC chain (Omelyan, 6 steps, tau = 1, hot start, 200 + 12000
/// trajectories, seed 8) with the gauge action and the fermion monomials `fermions(cb, params)`
/// at `kappa` (even/odd, f64 CG to 1e-11), and its Gamma-method error.
fn hmc_plaquette(
    kappa: f64,
    boundary: Boundary,
    fermions: impl Fn(
        &flowhmc::checkerboard::Checkerboard,
        flowhmc::action::fermion::PseudofermionParams,
    ) -> Fermions,
) -> (f64, f64) {
    use flowhmc::action::fermion::PseudofermionParams;
    use flowhmc::action::{GaugeAction, GaugeActionKind};
    use flowhmc::analysis::gamma::{DEFAULT_S, gamma_method};
    use flowhmc::checkerboard::Checkerboard;
    use flowhmc::field::GaugeField;
    use flowhmc::integrator::{Integrator, Scheme};
    use flowhmc::observables::average_plaquette;
    use flowhmc::solver::SolverParams;
    use flowhmc::update::{Hmc, MarkovStep};
    use std::sync::Arc;

    let lat = Arc::new(sampler_lattice(boundary));
    let cb = Checkerboard::new(lat.clone()).unwrap();
    let params = PseudofermionParams {
        kappa,
        kappa_heavy: 0.0,
        boundary,
        even_odd: true,
        solver: SolverParams { tolerance: 1e-11, max_iterations: 1000 },
        mixed_precision: false,
    };
    let mut monomials: Fermions = vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, SAMPLER_BETA))];
    monomials.extend(fermions(&cb, params));
    let count = monomials.len();
    let mut hmc =
        Hmc::new(monomials, Integrator::single(Scheme::Omelyan, 6, count).unwrap(), 1.0, 8).unwrap();
    let mut u = GaugeField::<U1>::hot(lat.clone(), 8);
    let (therm, n) = (200, 12000);
    let mut plaq = Vec::with_capacity(n);
    for k in 0..therm + n as u64 {
        hmc.step(&mut u, k).unwrap();
        if k >= therm {
            plaq.push(average_plaquette(&u));
        }
    }
    let result = gamma_method(&plaq, DEFAULT_S).unwrap();
    (result.mean, result.error)
}

/// The plaquette of quenched configurations (200 + 40000 trajectories) reweighted with
/// |det M|^flavors = exp(flavors ln_det(U, cb, kappa)), its jackknife error (40 blocks, longer
/// than the autocorrelation) and the quenched plaquette.
fn reweighted_plaquette(
    kappa: f64,
    flavors: f64,
    boundary: Boundary,
    ln_det: impl Fn(&flowhmc::field::GaugeField<U1>, &flowhmc::checkerboard::Checkerboard, f64) -> f64,
) -> (f64, f64, f64) {
    use flowhmc::action::{GaugeAction, GaugeActionKind};
    use flowhmc::checkerboard::Checkerboard;
    use flowhmc::field::GaugeField;
    use flowhmc::integrator::{Integrator, Scheme};
    use flowhmc::observables::average_plaquette;
    use flowhmc::update::{Hmc, MarkovStep};
    use std::sync::Arc;

    let lat = Arc::new(sampler_lattice(boundary));
    let cb = Checkerboard::new(lat.clone()).unwrap();
    let gauge = Box::new(GaugeAction::new(GaugeActionKind::Wilson, SAMPLER_BETA));
    let mut quenched =
        Hmc::new(vec![gauge], Integrator::single(Scheme::Omelyan, 4, 1).unwrap(), 1.0, 9).unwrap();
    let mut q = GaugeField::<U1>::hot(lat.clone(), 9);
    let therm = 200;
    let (mut ln_w, mut pq) = (Vec::new(), Vec::new());
    for k in 0..therm + 40000 {
        quenched.step(&mut q, k).unwrap();
        if k >= therm {
            ln_w.push(flavors * ln_det(&q, &cb, kappa));
            pq.push(average_plaquette(&q));
        }
    }
    let top = ln_w.iter().cloned().fold(f64::MIN, f64::max);
    let w: Vec<f64> = ln_w.iter().map(|l| (l - top).exp()).collect();
    let blocks = 40;
    let len = w.len() / blocks;
    let ratio = |skip: Option<usize>| {
        let (mut num, mut den) = (0.0, 0.0);
        for (i, (wi, pi)) in w.iter().zip(&pq).enumerate().take(blocks * len) {
            if Some(i / len) != skip {
                num += wi * pi;
                den += wi;
            }
        }
        num / den
    };
    let full = ratio(None);
    let jack: Vec<f64> = (0..blocks).map(|b| ratio(Some(b))).collect();
    let jack_mean = jack.iter().sum::<f64>() / blocks as f64;
    let error = ((blocks - 1) as f64 / blocks as f64
        * jack.iter().map(|j| (j - jack_mean).powi(2)).sum::<f64>())
    .sqrt();
    (full, error, pq.iter().sum::<f64>() / pq.len() as f64)
}

/// HMC with the fermion monomials `fermions(cb, params)` at `kappa` ([`hmc_plaquette`])
/// against quenched configurations reweighted with |det M|^flavors ([`reweighted_plaquette`]):
/// the two agree within 3 sigma, and the fermions move the plaquette by more than 3 sigma.
fn hmc_vs_reweighting(
    kappa: f64,
    flavors: f64,
    boundary: Boundary,
    fermions: impl Fn(
        &flowhmc::checkerboard::Checkerboard,
        flowhmc::action::fermion::PseudofermionParams,
    ) -> Fermions,
    ln_det: impl Fn(&flowhmc::field::GaugeField<U1>, &flowhmc::checkerboard::Checkerboard, f64) -> f64,
) {
    let (hmc, hmc_err) = hmc_plaquette(kappa, boundary, fermions);
    let (reweighted, rw_err, quenched) = reweighted_plaquette(kappa, flavors, boundary, ln_det);
    let sigma = (hmc_err * hmc_err + rw_err * rw_err).sqrt();
    println!(
        "HMC {hmc:.5} +- {hmc_err:.5}, reweighted {reweighted:.5} +- {rw_err:.5}, quenched {quenched:.5}"
    );
    assert!(((hmc - reweighted) / sigma).abs() < 3.0);
    // the fermions must matter at this precision, or the test proves nothing
    assert!(((reweighted - quenched) / sigma).abs() > 3.0);
}

/// The rational pseudofermion term `name` (stream `stream`) of Wilson quarks with `params`,
/// approximating (M_hat^dagger M_hat)^{-1/2} to 1e-7 on the range the Schur operator cannot
/// leave in 2D: |Q_hat| in [1 - 16 kappa^2, 1 + 16 kappa^2] (|H_eo H_oe| <= 16).
fn rational_wilson(
    name: &str,
    cb: &flowhmc::checkerboard::Checkerboard,
    params: &flowhmc::action::fermion::PseudofermionParams,
    stream: u64,
) -> Box<dyn flowhmc::action::Monomial<flowhmc::field::GaugeField<U1>>> {
    use flowhmc::action::rational::{RationalParams, RationalPseudofermion};
    use flowhmc::dirac::Wilson;
    use flowhmc::rational::Zolotarev;
    let k2 = 16.0 * params.kappa * params.kappa;
    let approximation = Zolotarev::with_tolerance((1.0 - k2).powi(2), (1.0 + k2).powi(2), 1e-7).unwrap();
    let rational = RationalParams {
        kappa: params.kappa,
        boundary: params.boundary,
        even_odd: true,
        solver: params.solver,
        approximation,
    };
    Box::new(RationalPseudofermion::<U1, 2>::new(
        name,
        rational,
        Wilson::new(cb.clone(), params.boundary),
        stream,
    ))
}

/// One flavour by rational HMC agrees with the exact sampler of |det M| (dense LU on
/// quenched configurations): Schwinger model 4x4, beta = 2, kappa = 0.24, even/odd.
#[test]
fn one_flavour_rhmc_agrees_with_exact_determinant_reweighting() {
    use flowhmc::dirac::WilsonOperator;
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
        hmc_vs_reweighting(
            0.24,
            1.0,
            Boundary::ANTIPERIODIC,
            |cb, params| vec![rational_wilson("strange", cb, &params, 0)],
            |q, cb, kappa| {
                let w = WilsonOperator::<U1, 2>::new(q, cb, kappa, Boundary::ANTIPERIODIC).unwrap();
                ln_abs_det(&w)
            },
        )
    });
}

/// Rational HMC with alpha = 1, two rational pseudofermions of weight det(M^dagger M)^{1/2}
/// each, samples what the two-flavour pseudofermion of weight det(M^dagger M) samples: the
/// plaquettes of the two chains agree within 3 sigma (same setting as above).
#[test]
fn two_rational_flavours_agree_with_the_two_flavour_pseudofermion() {
    use flowhmc::action::fermion::Pseudofermion;
    rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
        let (rational, rational_err) = hmc_plaquette(0.24, Boundary::ANTIPERIODIC, |cb, params| {
            vec![rational_wilson("fermions.0", cb, &params, 0), rational_wilson("fermions.1", cb, &params, 1)]
        });
        let (doublet, doublet_err) = hmc_plaquette(0.24, Boundary::ANTIPERIODIC, |cb, params| {
            vec![Box::new(Pseudofermion::<U1, 2>::new("fermions", params, cb.clone(), 0)) as _]
        });
        let sigma = (rational_err * rational_err + doublet_err * doublet_err).sqrt();
        println!("two rational flavours {rational:.5} +- {rational_err:.5}, doublet {doublet:.5} +- {doublet_err:.5}");
        assert!(((rational - doublet) / sigma).abs() < 3.0);
    });
}

/// The 6x6 Schwinger-model card (beta = 2, kappa = 0.25) without even/odd preconditioning.
fn schwinger_6x6_card(extra: &str) -> String {
    format!(
        r#"
[lattice]
dims = [6, 6]
[gauge]
group = "u1"
action = "wilson"
beta = 2.0
[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 6
[run]
trajectories = 5000
thermalization = 100
seed = 21
start = "hot"
checkpoint_every = 100000
output = "OUTPUT"
threads = 1
[measure]
hadrons = {{ every = 25, noise = 4 }}
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.25
boundary = "antiperiodic"
even_odd = false
solver = {{ kind = "cg", tolerance = 1e-11, max_iterations = 10000 }}
{extra}"#
    )
}

/// The Schwinger model on 6x6 (beta = 2, kappa = 0.25, antiperiodic in time), where the lanes
/// of a packed vector mix parities and only the full operator runs: the pseudofermion HMC card
/// with `even_odd = false` gives the plaquette of an independent exact-determinant sampler
/// (quenched HMC proposals accepted with the ratio of det(M^dagger M) from the dense matrix, a
/// two-stage Metropolis chain with the same stationary distribution) within 3 sigma of the
/// combined Gamma-method errors, and the fermions move the plaquette by more than 3 sigma from
/// the quenched value. The card's chiral condensate (noise vectors, full solves) agrees with
/// (1/V) Re tr M^-1 from the dense inverse on the exact sampler's configurations.
#[test]
fn schwinger_6x6_without_even_odd_matches_the_exact_determinant_sampler() {
    use faer::linalg::solvers::DenseSolveCore;
    use flowhmc::action::exact_determinant::ExactDeterminant;
    use flowhmc::action::{GaugeAction, GaugeActionKind, Monomial};
    use flowhmc::analysis::gamma::{DEFAULT_S, gamma_method};
    use flowhmc::checkerboard::Checkerboard;
    use flowhmc::dirac::dense::dense_matrix;
    use flowhmc::dirac::{Boundary, WilsonOperator};
    use flowhmc::field::GaugeField;
    use flowhmc::geometry::Lattice;
    use flowhmc::group::U1;
    use flowhmc::integrator::{Integrator, Scheme};
    use flowhmc::observables::average_plaquette;
    use flowhmc::rng::{Purpose, StreamKey};
    use flowhmc::update::{Hmc, MarkovStep};
    use std::sync::Arc;

    let start = std::time::Instant::now();
    let (summary, records) = run(&schwinger_6x6_card(""), "schwinger-6x6");
    let hmc_seconds = start.elapsed().as_secs_f64();
    let p = &summary.observables["plaquette"];
    let pion = records.iter().find_map(|r| r.get("pion_correlator")).unwrap().as_array().unwrap();
    assert_eq!(pion.len(), 6);
    assert!(summary.observables["solver_iterations"].mean > 0.0);

    let (beta, kappa) = (2.0, 0.25);
    let lat = Arc::new(Lattice::new(&[6, 6]).unwrap());
    let cb = Checkerboard::for_fields(lat.clone(), false).unwrap();
    assert!(!cb.is_even_odd());
    let det = ExactDeterminant::<U1, 2>::new("det", kappa, Boundary::ANTIPERIODIC, cb.clone()).unwrap();
    let condensate = |u: &GaugeField<U1>| {
        let w = WilsonOperator::<U1, 2>::new(u, &cb, kappa, Boundary::ANTIPERIODIC).unwrap();
        let inverse = dense_matrix(&w).partial_piv_lu().inverse();
        (0..inverse.nrows()).map(|i| inverse[(i, i)].re).sum::<f64>() / 36.0
    };
    let start = std::time::Instant::now();
    let (reference, quenched, acceptance, reference_pbp) =
        rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| {
            let gauge = || -> Vec<Box<dyn Monomial<GaugeField<U1>>>> {
                vec![Box::new(GaugeAction::new(GaugeActionKind::Wilson, beta))]
            };
            let integrator = || Integrator::single(Scheme::Omelyan, 4, 1).unwrap();
            let (therm, n) = (200u64, 20000u64);
            // quenched HMC proposals, each accepted with min(1, det(M'^dagger M') / det(M^dagger M))
            let mut proposals = Hmc::new(gauge(), integrator(), 0.5, 31).unwrap();
            let mut u = GaugeField::<U1>::hot(lat.clone(), 31);
            let mut s_det = det.action(&u).unwrap();
            let (mut plaq, mut pbp, mut accepted) = (Vec::new(), Vec::new(), 0);
            for k in 0..therm + n {
                let mut v = u.clone();
                proposals.step(&mut v, k).unwrap();
                let s_new = det.action(&v).unwrap();
                let r = StreamKey::new(32, Purpose::Accept, k).stream(0).uniform();
                if r < (s_det - s_new).exp() {
                    u = v;
                    s_det = s_new;
                    accepted += u64::from(k >= therm);
                }
                if k >= therm {
                    plaq.push(average_plaquette(&u));
                    if k % 10 == 0 {
                        pbp.push(condensate(&u));
                    }
                }
            }
            // the quenched theory, for the size of the fermions' effect
            let mut hmc = Hmc::new(gauge(), integrator(), 1.0, 33).unwrap();
            let mut q = GaugeField::<U1>::hot(lat.clone(), 33);
            let mut pq = Vec::new();
            for k in 0..therm + n / 2 {
                hmc.step(&mut q, k).unwrap();
                if k >= therm {
                    pq.push(average_plaquette(&q));
                }
            }
            (
                gamma_method(&plaq, DEFAULT_S).unwrap(),
                gamma_method(&pq, DEFAULT_S).unwrap(),
                accepted as f64 / n as f64,
                gamma_method(&pbp, DEFAULT_S).unwrap(),
            )
        });
    let reference_seconds = start.elapsed().as_secs_f64();
    let sigma = (p.error * p.error + reference.error * reference.error).sqrt();
    println!(
        "6x6 Schwinger, even_odd = false: pseudofermion HMC plaquette {:.5} +- {:.5} (acceptance {:.3}, {hmc_seconds:.1} s), \
         exact-determinant sampler {:.5} +- {:.5} (det acceptance {acceptance:.3}), quenched {:.5} +- {:.5} ({reference_seconds:.1} s)",
        p.mean, p.error, summary.acceptance, reference.mean, reference.error, quenched.mean, quenched.error
    );
    assert!(summary.acceptance > 0.5, "HMC acceptance {}", summary.acceptance);
    assert!(acceptance > 0.1, "exact-determinant acceptance {acceptance}");
    assert!(
        ((p.mean - reference.mean) / sigma).abs() < 3.0,
        "pseudofermions {} +- {} vs exact determinant {} +- {}",
        p.mean,
        p.error,
        reference.mean,
        reference.error
    );
    // the fermions must matter at this precision, or the test proves nothing
    let (c, rc) = (&summary.observables["chiral_condensate"], &reference_pbp);
    println!(
        "chiral condensate: noise estimate {:.4} +- {:.4}, dense inverse {:.4} +- {:.4}",
        c.mean, c.error, rc.mean, rc.error
    );
    let sigma_c = (c.error * c.error + rc.error * rc.error).sqrt();
    assert!(((c.mean - rc.mean) / sigma_c).abs() < 3.0, "chiral condensate");
    let sigma_q = (reference.error * reference.error + quenched.error * quenched.error).sqrt();
    assert!(((reference.mean - quenched.mean) / sigma_q).abs() > 3.0);
}

/// Without even/odd preconditioning a card runs on any even extents (2x2 Schwinger, a 4D SU(3)
/// lattice with a time extent of 6), hadron measurements included; with it, a 6x6 card is
/// refused with the rule of each layout.
#[test]
fn cards_without_even_odd_run_on_any_even_extents() {
    let small = schwinger_6x6_card("")
        .replace("[6, 6]", "[2, 2]")
        .replace("trajectories = 5000", "trajectories = 5")
        .replace("thermalization = 100", "thermalization = 0")
        .replace("every = 25", "every = 1");
    let (summary, records) = run(&small, "schwinger-2x2");
    assert_eq!(records.len(), 5);
    for r in &records {
        assert!(r["plaquette"].as_f64().unwrap().is_finite());
        assert!(r["solver_iterations"].as_u64().unwrap() > 0);
        assert!(r["chiral_condensate"].as_f64().unwrap().is_finite());
        assert_eq!(r["pion_correlator"].as_array().unwrap().len(), 2);
    }
    assert!(summary.acceptance > 0.0);

    let su3 = r#"
[lattice]
dims = [2, 4, 2, 6]
[gauge]
group = "su3"
action = "wilson"
beta = 5.6
[update]
kind = "hmc"
trajectory_length = 0.5
integrator = "omelyan"
steps = 4
[run]
trajectories = 3
thermalization = 0
seed = 2
start = "hot"
checkpoint_every = 1000
output = "OUTPUT"
threads = 1
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.12
even_odd = false
hasenbusch = [0.06]
solver = { kind = "mixed-cg", tolerance = 1e-10, max_iterations = 10000 }
"#;
    let (_, records) = run(su3, "su3-2x4x2x6");
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r["dh"].as_f64().unwrap().abs() < 5.0 && r["solver_iterations"].as_u64().unwrap() > 0)
    );

    let e = Card::parse(&schwinger_6x6_card("").replace("even_odd = false", "even_odd = true"), "eo.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fermions[0].even_odd")
            && e.contains(
                "even/odd preconditioning (even_odd = true) needs the last two extents divisible by 4"
            )
            && e.contains("even_odd = false runs on any even extents"),
        "{e}"
    );
}
