//! Runs that cannot be right say so: a stuck chain is told how many MD steps it needs, an
//! observable that never changed is not reported as measured, a chain still thermalizing is
//! flagged as drifting, slow topology widens the errors (tail correction), and a malformed
//! record is an error naming its line and key (README, "Reading the warnings").

use flowhmc::analysis::drift::{DRIFT_SIGMA, drift};
use flowhmc::chain::summary::{AnalysisOptions, analyze_with};
use flowhmc::chain::{Card, RunOptions, Summary, analyze, run_card};
use flowhmc::reference::u1_2d_plaquette;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// An empty scratch directory for test `name`.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowhmc-warnings-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A card: `theory` ([lattice], the theory and [update]) with a [run] table writing to
/// `output` on one thread.
fn card(theory: &str, trajectories: u64, thermalization: u64, seed: u64, start: &str, output: &Path) -> Card {
    let run = format!(
        "[run]\ntrajectories = {trajectories}\nthermalization = {thermalization}\nseed = {seed}\n\
         start = {start:?}\ncheckpoint_every = 1000000\noutput = {:?}\nthreads = 1\n",
        output.display().to_string()
    );
    Card::parse(&format!("{theory}{run}"), "test card").unwrap()
}

/// Runs `card` quietly and prints how long it took.
fn run(name: &str, card: &Card) -> Summary {
    let started = Instant::now();
    let summary = run_card(card, RunOptions { resume: false, quiet: true }).unwrap();
    println!("{name}: {:.1} s\n{}", started.elapsed().as_secs_f64(), summary.table());
    summary
}

/// 2D U(1) with HMC (leapfrog or omelyan).
fn u1(l: usize, beta: f64, integrator: &str, steps: usize, trajectory_length: f64) -> String {
    format!(
        "[lattice]\ndims = [{l}, {l}]\n[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = {beta:?}\n\
         [update]\nkind = \"hmc\"\ntrajectory_length = {trajectory_length:?}\nintegrator = {integrator:?}\n\
         steps = {steps}\n"
    )
}

/// The series of `key` in the measurements of `dir`.
fn series(dir: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(dir.join("measurements.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[key].as_f64())
        .collect()
}

#[test]
fn stuck_chain_is_told_how_many_steps_it_needs() {
    // leapfrog with eps = 2/3 on a hot 2D U(1) start: no trajectory is accepted
    let dir = scratch("stuck");
    let stuck = run("stuck", &card(&u1(16, 3.0, "leapfrog", 3, 2.0), 100, 20, 1, "hot", &dir.join("stuck")));
    assert_eq!(stuck.acceptance, 0.0, "premise: the chain never moves");
    let warning = stuck.warnings.iter().find(|w| w.contains("stuck")).expect("a stuck-chain warning");
    // the field never changed, so nothing was measured (dH differs between the proposals)
    for (name, r) in stuck.observables.iter().filter(|(name, _)| *name != "exp_minus_dh") {
        assert!(r.constant, "{name} never changed but is reported as measured: {r:?}");
    }
    let table = stuck.table();
    let plaquette = table.lines().find(|l| l.starts_with("plaquette")).unwrap();
    assert!(plaquette.contains("not measured (never changed)"), "{plaquette}");
    assert!(table.contains(&format!("warning: {warning}")));
    // the advice, taken, unsticks the chain
    let steps: usize =
        warning.split("(steps = ").nth(1).and_then(|s| s.split(')').next()).unwrap().parse().unwrap();
    assert!(steps > 3, "{warning}");
    let advised =
        run("advised", &card(&u1(16, 3.0, "leapfrog", steps, 2.0), 100, 20, 1, "hot", &dir.join("advised")));
    assert!(advised.acceptance > 0.5, "{steps} steps accept {}", advised.acceptance);
    assert!(!advised.warnings.iter().any(|w| w.contains("stuck")), "{:?}", advised.warnings);
    // summary.json has the new fields; a summary written before them still loads
    let text = std::fs::read_to_string(dir.join("stuck/summary.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["warnings"][0], serde_json::json!(warning));
    assert_eq!(json["observables"]["plaquette"]["constant"], serde_json::json!(true));
    json.as_object_mut().unwrap().remove("warnings");
    for r in json["observables"].as_object_mut().unwrap().values_mut() {
        r.as_object_mut().unwrap().remove("constant");
    }
    let old: Summary = serde_json::from_value(json).unwrap();
    assert!(old.warnings.is_empty() && !old.observables["plaquette"].constant);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `card` and the records `lines` (one JSON object each) as the run directory `dir`.
fn synthetic_run(dir: &Path, card: &str, lines: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("card.toml"), card).unwrap();
    std::fs::write(
        dir.join("measurements.jsonl"),
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// A plaquette-like value of record `i` that changes from record to record.
fn wiggle(i: usize) -> f64 {
    0.6 + 0.01 * ((i * 7919) % 101) as f64 / 101.0
}

#[test]
fn rejected_flow_proposals_get_the_warning_without_step_advice() {
    let dir = scratch("flow-mh");
    let model = dir.join("model.safetensors");
    std::fs::write(&model, b"stands in for a model: analyze does not load it").unwrap();
    let theory = format!(
        "[lattice]\ndims = [8, 8]\n[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 2.0\n\
         [update]\nkind = \"flow-mh\"\nmodel = {:?}\n",
        model.display().to_string()
    );
    let card = card(&theory, 80, 0, 1, "hot", &dir.join("run")).to_toml();
    // accepted early, then 2 of the last 50
    let lines: Vec<String> = (0..80)
        .map(|i| {
            let accepted = i < 30 || i % 20 == 0;
            format!(
                r#"{{"trajectory":{},"accepted":{accepted},"dh":4.0,"flow_accepted":{},"flow_nonfinite":0,"plaquette":{}}}"#,
                i + 1,
                u8::from(accepted),
                wiggle(i)
            )
        })
        .collect();
    synthetic_run(&dir.join("run"), &card, &lines);
    let summary = analyze(&dir.join("run"), None).unwrap();
    println!("{}", summary.table());
    let warning = summary.warnings.iter().find(|w| w.contains("stuck")).expect("a stuck-chain warning");
    assert!(warning.contains("acceptance 0.04 over the last 50"), "{warning}");
    assert!(warning.contains("flow model") && !warning.contains("steps"), "{warning}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hot_start_drift_is_flagged_and_the_continued_chain_is_not() {
    // 8^4 SU(3) at beta = 6 from a hot start: after 100 trajectories the plaquette still
    // climbs for about 150 more
    let su3 = "[lattice]\ndims = [8, 8, 8, 8]\n[gauge]\ngroup = \"su3\"\naction = \"wilson\"\nbeta = 6.0\n\
               [update]\nkind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 5\n";
    let dir = scratch("drift");
    let hot = run("hot", &card(su3, 300, 100, 1, "hot", &dir.join("hot")));
    let warning = hot.warnings.iter().find(|w| w.starts_with("plaquette drifts")).expect("plaquette drifts");
    let suggested: u64 =
        warning.split("thermalization = ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(suggested > 100, "{warning}");
    // the same chain continued from its last configuration (400 trajectories in) does not drift
    let start = dir.join("hot/checkpoint.cfg").display().to_string();
    let continued = run("continued", &card(su3, 200, 0, 2, &start, &dir.join("continued")));
    assert!(!continued.warnings.iter().any(|w| w.contains("drifts")), "{:?}", continued.warnings);
    // the parts' differences in units of their error, for the record: whether one of three
    // exceeds 2 sigma in a stationary chain is a property of the sample (a few in ten chains),
    // not of the detector, so nothing is asserted about them
    let sigmas: Vec<(&str, f64)> = ["plaquette", "rectangle", "polyakov_loop_abs"]
        .into_iter()
        .map(|k| (k, drift(&series(&dir.join("continued"), k), None).unwrap().sigma))
        .collect();
    println!("continued chain: drift sigma {sigmas:?} (threshold {DRIFT_SIGMA})");
    assert!(sigmas.iter().all(|(_, s)| s.abs() < DRIFT_SIGMA), "{sigmas:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tail_corrected_error_covers_the_exact_plaquette_under_frozen_topology() {
    // 2D U(1) at beta = 6, L = 12: tau_int of the charge is about a thousand trajectories, and the
    // plaquette, through its coupling to the charge, carries that slow mode with a small
    // amplitude that Wolff's window does not see
    let (beta, l) = (6.0, 12);
    let dir = scratch("frozen");
    let summary = run("frozen", &card(&u1(l, beta, "omelyan", 10, 1.0), 100_000, 1_000, 1, "hot", &dir));
    let p = summary.observables["plaquette"];
    let (error_tail, exact) = (p.error_tail.unwrap(), u1_2d_plaquette(beta, l * l));
    println!(
        "plaquette {} +- {} (tail {error_tail}), exact {exact}: {:.2} plain sigma, {:.2} tail sigma",
        p.mean,
        p.error,
        (p.mean - exact) / p.error,
        (p.mean - exact) / error_tail
    );
    assert!(summary.observables["topological_charge"].tau_int > 200.0, "premise: the charge is slow");
    assert!(error_tail > 2.0 * p.error, "tail {error_tail} vs plain {}", p.error);
    assert!((p.mean - exact).abs() < 2.0 * error_tail);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `flowhmc analyze dir`: exit code and stderr.
fn analyze_command(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowhmc")).arg("analyze").arg(dir).output().unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn a_malformed_record_is_an_error_naming_line_and_key() {
    let dir = scratch("records");
    let card = card(&u1(8, 2.0, "omelyan", 10, 1.0), 40, 0, 1, "hot", &dir).to_toml();
    // flow measurements every 4th record (t0 not reached on every 8th), a curve, and a charge
    let good: Vec<String> = (0..40)
        .map(|i| {
            let flow = match i % 8 {
                0 => r#","flow_t0":null,"flow_energy":0.5,"flow_t2e":[0.1,0.2]"#,
                4 => r#","flow_t0":1.5,"flow_energy":0.4,"flow_t2e":[0.1,0.3]"#,
                _ => "",
            };
            format!(
                r#"{{"trajectory":{},"accepted":true,"dh":0.1,"plaquette":{},"topological_charge":{}{flow}}}"#,
                i + 1,
                wiggle(i),
                (i % 3) as f64 - 1.0
            )
        })
        .collect();
    synthetic_run(&dir, &card, &good);
    let summary = analyze(&dir, None).unwrap();
    let samples = |k: &str| summary.observables[k].samples;
    assert_eq!((samples("plaquette"), samples("flow_energy"), samples("flow_t0")), (40, 10, 5));
    assert!(!summary.observables.contains_key("flow_t2e"));
    // the tail correction is on by default with a charge, and can be turned off
    assert!(summary.observables["plaquette"].error_tail.is_some());
    let plain = analyze_with(&dir, None, AnalysisOptions { tail: false }).unwrap();
    assert!(plain.observables.values().all(|r| r.error_tail.is_none() && r.tau_int_tail.is_none()));
    for (key, bad) in
        [("plaquette", "null"), ("plaquette", "\"0.59\""), ("topological_charge", "true"), ("dh", "\"x\"")]
    {
        let mut lines = good.clone();
        lines[2] = lines[2].replacen(&format!("\"{key}\":"), &format!("\"{key}\":{bad},\"was\":"), 1);
        synthetic_run(&dir, &card, &lines);
        let (code, stderr) = analyze_command(&dir);
        assert_eq!(code, Some(2), "{key} = {bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("measurements.jsonl")
                && stderr.contains("line 3")
                && stderr.contains(&format!("\"{key}\"")),
            "{key} = {bad}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
