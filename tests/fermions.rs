//! Dynamical Wilson fermions through run cards: the Schwinger model against the
//! exact-determinant reference, and 4D SU(3) Nf = 2 with and without even/odd
//! preconditioning and Hasenbusch factorization.

use flowhmc::chain::card::Card;
use flowhmc::chain::run::{RunOptions, run_card};
use flowhmc::chain::summary::{Summary, read_measurements};
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
/// ../shared/reference/README.md section 6 (0.73178 +- 0.00097 and 1.75155 +- 0.00174, from
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
trajectories = 160
thermalization = 30
seed = 5
start = "cold"
checkpoint_every = 1000
output = "OUTPUT"
[[fermions]]
kind = "wilson"
flavors = 2
kappa = 0.13
{fermions}
solver = {{ kind = "cg", tolerance = 1e-10, max_iterations = 10000 }}
"#
        )
    };
    let single = "integrator = \"omelyan\"\nsteps = 6";
    let nested = r#"[[update.levels]]
integrator = "omelyan"
steps = 4
monomials = ["fermions.1"]
[[update.levels]]
integrator = "omelyan"
steps = 2
monomials = ["gauge", "fermions.0"]"#;
    let runs = [
        ("e/o", card("even_odd = true", single)),
        ("full", card("even_odd = false", single)),
        ("e/o + Hasenbusch", card("even_odd = true\nhasenbusch = [0.1]", nested)),
    ];
    let results: Vec<(&str, f64, f64)> = runs
        .iter()
        .enumerate()
        .map(|(i, (label, text))| {
            let (s, _) = run(text, &format!("su3-{i}"));
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
