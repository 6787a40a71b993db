//! The `flowhmc` command: bad input, resume identity (also after kill -9), thread-count
//! independence, starting from a NERSC file, and `analyze`.

use flowhmc::field::GaugeField;
use flowhmc::geometry::Lattice;
use flowhmc::group::Su3;
use flowhmc::io::nersc;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowhmc-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn flowhmc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowhmc")).args(args).output().unwrap()
}

/// The command started in the background (to be killed), its progress output discarded.
fn spawn_flowhmc(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_flowhmc"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A small SU(3) 4D card writing into `output`.
fn card(output: &Path, trajectories: u64, threads: usize, start: &str) -> String {
    format!(
        r#"[lattice]
dims = [4, 4, 4, 4]
[gauge]
group = "su3"
action = "wilson"
beta = 5.8
[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 8
[run]
trajectories = {trajectories}
thermalization = 5
seed = 3
start = "{start}"
checkpoint_every = 4
output = "{}"
threads = {threads}
"#,
        output.display()
    )
}

fn write_card(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run_ok(card: &Path, extra: &[&str]) {
    let mut args = vec!["run", card.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = flowhmc(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn measurements(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("measurements.jsonl")).unwrap()
}

#[test]
fn bad_input_exits_2_with_a_clear_error_and_writes_nothing() {
    let dir = scratch("bad");
    let out_dir = dir.join("out");
    let good = card(&out_dir, 10, 1, "hot");
    // a corrupt and a mismatched configuration file
    let lat = Arc::new(Lattice::new(&[4, 4, 4, 6]).unwrap());
    let other_dims = dir.join("six.nersc");
    nersc::write(&GaugeField::<Su3>::hot(lat, 1), &other_dims, nersc::Storage::Full, nersc::Precision::F64)
        .unwrap();
    // a file of the card's extents whose only fault is a damaged byte
    let corrupt = dir.join("corrupt.nersc");
    let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
    nersc::write(&GaugeField::<Su3>::hot(lat, 1), &corrupt, nersc::Storage::Full, nersc::Precision::F64)
        .unwrap();
    let mut bytes = std::fs::read(&corrupt).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (good.replace("beta = 5.8", "beta = 5.8\nbeat = 1"), "unknown field `beat`"),
        (good.replace("steps = 8", "steps = \"eight\""), "steps"),
        (good.replace("dims = [4, 4, 4, 4]", "dims = [4, 4, 5, 4]"), "extent 5"),
        (good.replace("beta = 5.8", "beta = -5.8"), "gauge.beta = -5.8"),
        (good.replace("start = \"hot\"", "start = \"/nonexistent/cfg\""), "no such file"),
        (good.replace("start = \"hot\"", &format!("start = \"{}\"", corrupt.display())), "checksum mismatch"),
        (
            good.replace("start = \"hot\"", &format!("start = \"{}\"", other_dims.display())),
            "dims [4, 4, 4, 6]",
        ),
        (
            good.replace("group = \"su3\"", "group = \"u1\"")
                .replace("start = \"hot\"", &format!("start = \"{}\"", other_dims.display())),
            "SU(3)",
        ),
    ];
    for (text, expected) in cases {
        let path = write_card(&dir, "bad.toml", &text);
        let out = flowhmc(&["run", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
        assert_eq!(err.trim().lines().count().min(8), err.trim().lines().count(), "short message");
        assert!(!out_dir.exists(), "output directory created for: {expected}");
    }
    let out = flowhmc(&["run", dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    for (args, expected) in [
        (&["frobnicate"][..], "unrecognised arguments \"frobnicate\""),
        (&["run"][..], "run: give the run card"),
        (&["analyze"][..], "analyze: give the run directory"),
    ] {
        let out = flowhmc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected) && err.trim().lines().count() == 1, "{err}");
    }
    // a directory as the start configuration, an empty output path (which wrote into the
    // working directory), and kind names as a card spells them
    let here = scratch("bad-cwd");
    let dir_start = good.replace("start = \"hot\"", &format!("start = \"{}\"", dir.display()));
    let empty_output = good.replace(&format!("output = \"{}\"", out_dir.display()), "output = \"\"");
    let flow_keys = good.replace("steps = 8", "steps = 8\nmodel = \"m\"");
    for (text, expected) in [
        (dir_start, "a directory, not a configuration file"),
        (empty_output, "run.output = \"\": name the directory"),
        (flow_keys, "kind \"hmc\" has none"),
    ] {
        let path = write_card(&dir, "bad.toml", &text);
        let out = Command::new(env!("CARGO_BIN_EXE_flowhmc"))
            .args(["run", path.to_str().unwrap()])
            .current_dir(&here)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
        assert_eq!(std::fs::read_dir(&here).unwrap().count(), 0, "files written into the working directory");
    }
    std::fs::remove_dir_all(&here).unwrap();
    // an existing run is not overwritten without --resume
    run_ok(&write_card(&dir, "good.toml", &good), &[]);
    let again = flowhmc(&["run", dir.join("good.toml").to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resumed_and_killed_runs_reproduce_the_uninterrupted_chain() {
    let dir = scratch("resume");
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    // uninterrupted reference, 2 threads
    run_ok(&write_card(&dir, "a.toml", &card(&a, 60, 2, "hot")), &[]);
    let reference = measurements(&a);
    assert_eq!(reference.lines().count(), 60);

    // stopped after 20 measured trajectories (1 thread), then extended to 60 with --resume on
    // 2 threads; card.toml then says what the run is
    run_ok(&write_card(&dir, "b.toml", &card(&b, 20, 1, "hot")), &[]);
    let b60 = write_card(&dir, "b.toml", &card(&b, 60, 2, "hot"));
    run_ok(&b60, &["--resume"]);
    assert_eq!(measurements(&b), reference, "stop + resume differs");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["trajectories"], 60);
    let stored = std::fs::read_to_string(b.join("card.toml")).unwrap();
    assert!(stored.contains("trajectories = 60") && stored.contains("threads = 2"), "{stored}");
    // fewer trajectories than the run has measured is an error, not a silent success
    let b30 = write_card(&dir, "b30.toml", &card(&b, 30, 2, "hot"));
    let out = flowhmc(&["run", b30.to_str().unwrap(), "--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run.trajectories = 30: the run being resumed has measured 60 already"), "{err}");
    assert_eq!(measurements(&b), reference);

    // killed before its first checkpoint: --resume starts it again, and the temporary file
    // of a checkpoint write that a kill interrupted is removed
    let d = dir.join("d");
    let d_card = write_card(
        &dir,
        "d.toml",
        &card(&d, 60, 1, "hot").replace("checkpoint_every = 4", "checkpoint_every = 1000"),
    );
    let mut child = spawn_flowhmc(&["run", d_card.to_str().unwrap()]);
    let t = Instant::now();
    while std::fs::read_to_string(d.join("measurements.jsonl")).map(|m| m.lines().count()).unwrap_or(0) < 3 {
        assert!(t.elapsed() < Duration::from_secs(120), "run too slow to interrupt");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!d.join("checkpoint.cfg").exists(), "the kill came after the only checkpoint");
    let stale = d.join(".checkpoint.cfg.tmp4194305"); // above Linux's pid_max: no such writer
    std::fs::write(&stale, b"partial").unwrap();
    run_ok(&d_card, &["--resume"]);
    assert_eq!(measurements(&d), reference, "a resume without checkpoint differs");
    assert!(!stale.exists(), "the stale temporary file is still there");

    // killed with SIGKILL between checkpoints, then resumed
    let c_card = write_card(&dir, "c.toml", &card(&c, 60, 1, "hot"));
    let mut child = spawn_flowhmc(&["run", c_card.to_str().unwrap()]);
    let t = Instant::now();
    while std::fs::read_to_string(c.join("measurements.jsonl")).map(|m| m.lines().count()).unwrap_or(0) < 14 {
        assert!(t.elapsed() < Duration::from_secs(120), "run too slow to interrupt");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = measurements(&c);
    assert!(before.lines().count() < 60, "the kill came too late to test anything");
    let checkpoint = std::fs::read(c.join("checkpoint.cfg")).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&checkpoint[..checkpoint.iter().position(|&b| b == b'\n').unwrap()]).unwrap();
    let measured = header["metadata"]["measured"].as_u64().unwrap() as usize;
    assert!(measured >= 8, "a checkpoint was written before the kill");
    assert_eq!(
        before.lines().take(measured).collect::<Vec<_>>(),
        reference.lines().take(measured).collect::<Vec<_>>()
    );
    run_ok(&c_card, &["--resume"]);
    assert_eq!(measurements(&c), reference, "kill -9 + resume differs");

    // a different card cannot resume the run
    let changed = write_card(&dir, "c2.toml", &card(&c, 60, 1, "hot").replace("beta = 5.8", "beta = 5.9"));
    let out = flowhmc(&["run", changed.to_str().unwrap(), "--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("gauge.beta differs from"), "{err}");

    // analyze recomputes the same summary
    let before = std::fs::read_to_string(a.join("summary.json")).unwrap();
    std::fs::remove_file(a.join("summary.json")).unwrap();
    let out = flowhmc(&["analyze", a.to_str().unwrap()]);
    assert!(out.status.success());
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(after["observables"], before["observables"]);
    assert!(a.join("plots/plaquette.svg").is_file());
    // the unfinished last record of a killed run is left out
    let complete = measurements(&a);
    std::fs::write(a.join("measurements.jsonl"), format!("{complete}{{\"trajectory\": 61, \"acc")).unwrap();
    assert!(flowhmc(&["analyze", a.to_str().unwrap()]).status.success());
    let partial: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(partial["observables"], before["observables"]);
    // a corrupt record inside the file is an error that names the file and the line
    let mut lines: Vec<&str> = complete.lines().collect();
    lines[2] = "{not json";
    std::fs::write(a.join("measurements.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = flowhmc(&["analyze", a.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("measurements.jsonl: line 3:"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn runs_start_from_nersc_and_native_files() {
    let dir = scratch("start");
    let lat = Arc::new(Lattice::new(&[4, 4, 4, 4]).unwrap());
    let cfg = dir.join("start.nersc");
    nersc::write(&GaugeField::<Su3>::hot(lat, 9), &cfg, nersc::Storage::TwoRow, nersc::Precision::F64)
        .unwrap();
    let out_nersc = dir.join("from-nersc");
    run_ok(&write_card(&dir, "n.toml", &card(&out_nersc, 4, 1, cfg.to_str().unwrap())), &[]);
    // the checkpoint of that run is a native file and starts another run
    let native = out_nersc.join("checkpoint.cfg");
    let out_native = dir.join("from-native");
    run_ok(&write_card(&dir, "m.toml", &card(&out_native, 4, 1, native.to_str().unwrap())), &[]);
    assert_eq!(measurements(&out_native).lines().count(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `flowhmc convert` takes a run's checkpoint through ILDG, openQCD and NERSC and back to a
/// native file with the same links, each file starting a run that repeats the first one's
/// chain; a bad format or input exits 2 naming it.
#[test]
fn convert_moves_a_field_through_every_format_and_each_starts_the_same_chain() {
    let dir = scratch("convert");
    let first = dir.join("first");
    run_ok(&write_card(&dir, "first.toml", &card(&first, 2, 1, "hot")), &[]);
    let checkpoint = first.join("checkpoint.cfg");
    let mut previous = checkpoint.clone();
    let mut chains = Vec::new();
    for (name, format) in
        [("cnfg.lime", "ildg"), ("cnfg.oqcd", "openqcd"), ("cnfg.nersc", "nersc"), ("back.cfg", "flowhmc")]
    {
        let path = dir.join(name);
        let out = flowhmc(&["convert", previous.to_str().unwrap(), path.to_str().unwrap(), format]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains("dims [4, 4, 4, 4]") && said.contains(&format!("({format})")), "{said}");
        let run = dir.join(format!("from-{format}"));
        run_ok(&write_card(&dir, &format!("{format}.toml"), &card(&run, 2, 1, path.to_str().unwrap())), &[]);
        chains.push(measurements(&run));
        previous = path;
    }
    assert!(chains.iter().all(|c| c == &chains[0]), "every format starts the same chain");
    let want = flowhmc::io::read_su3_whole(&checkpoint, false).unwrap();
    let back = flowhmc::io::read_su3_whole(&previous, false).unwrap();
    assert!(want.max_distance(&back) == 0.0, "the links survive every format");
    let bad = flowhmc(&["convert", checkpoint.to_str().unwrap(), dir.join("x").to_str().unwrap(), "milc"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("format \"milc\": nersc, ildg, openqcd or flowhmc")
    );
    let card_file = dir.join("first.toml");
    let bad = flowhmc(&["convert", card_file.to_str().unwrap(), dir.join("x").to_str().unwrap(), "ildg"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a configuration file"), "{:?}", bad);
    assert!(!dir.join("x").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flow_measurements_reach_records_and_summary() {
    let dir = scratch("flow");
    let out = dir.join("out");
    let text = card(&out, 4, 1, "hot")
        .replace("[run]", "[measure]\nflow = { epsilon = 0.05, t_max = 0.5, every = 2 }\n[run]");
    run_ok(&write_card(&dir, "flow.toml", &text), &[]);
    let records: Vec<serde_json::Value> =
        measurements(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // measured trajectories 0 and 2 of the 4 carry the flow
    let flowed: Vec<_> = records.iter().filter(|r| r.get("flow_t2e").is_some()).collect();
    assert_eq!(flowed.len(), 2);
    for r in flowed {
        let t2e = r["flow_t2e"].as_array().unwrap();
        let times = r["flow_times"].as_array().unwrap();
        assert_eq!((t2e.len(), times.len()), (11, 11));
        assert_eq!(t2e[0].as_f64().unwrap(), 0.0);
        let e_max = r["flow_energy"].as_f64().unwrap();
        assert!((t2e[10].as_f64().unwrap() - 0.25 * e_max).abs() < 1e-12);
        assert!(r["flow_topological_charge"].is_number());
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["observables"]["flow_energy"]["samples"], 2);
    assert!(summary["observables"].get("flow_t2e").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The lines of README's example output of the default run (the code block after "The default
/// run"), without the elision "...".
fn readme_default_output() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = &readme[readme.find("The default run").expect("README describes the default run")..];
    let block = after.split("```").nth(1).expect("a code block follows");
    block.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "...").map(String::from).collect()
}

#[test]
fn default_run_prints_readmes_example_and_replaces_only_itself() {
    let dir = scratch("default");
    let expected = readme_default_output();
    assert!(expected.len() >= 3, "{expected:?}");
    for round in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_flowhmc")).current_dir(&dir).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for line in &expected {
            assert!(stdout.lines().any(|l| l.trim() == line), "README's line {line:?} is not in:\n{stdout}");
        }
        if round == 0 {
            // a file of the user's inside the default run: neither removed nor replaced
            let notes = dir.join("runs/default/notes.txt");
            std::fs::write(&notes, "mine").unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_flowhmc")).current_dir(&dir).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("notes.txt, which no flowhmc run wrote"), "{err}");
            assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
            assert!(dir.join("runs/default/summary.json").is_file());
            std::fs::remove_file(notes).unwrap();
        }
    }
    // a directory that is not a flowhmc run is never replaced
    let foreign = scratch("default-foreign");
    std::fs::create_dir_all(foreign.join("runs/default")).unwrap();
    std::fs::write(foreign.join("runs/default/notes.txt"), "mine").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowhmc")).current_dir(&foreign).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(foreign.join("runs/default/notes.txt")).unwrap(), "mine");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&foreign).unwrap();
}

/// `train.save_every` writes the model while it trains: a training killed with SIGKILL leaves
/// a model file that loads, with the steps it had done in its record; `save_every = 0` is
/// refused.
#[test]
fn killed_trainings_keep_their_last_saved_model() {
    use flowhmc::flow::FlowModel;
    let dir = scratch("train-kill");
    let model = dir.join("m.safetensors");
    let card = format!(
        "[lattice]\ndims = [4, 4]\n[scalar]\nm2 = 1.0\nlambda = 0.5\n[flow]\nmodel = \"real-nvp\"\nlayers = 2\n\
         hidden = [4]\n[train]\nsteps = 1000000\nbatch = 4\nlearning_rate = 0.001\nseed = 1\noutput = {model:?}\n\
         log_every = 2\nsave_every = 4\n"
    );
    let path = write_card(&dir, "train.toml", &card);
    let mut child = spawn_flowhmc(&["train", path.to_str().unwrap()]);
    let t = Instant::now();
    while !model.is_file() {
        assert!(t.elapsed() < Duration::from_secs(120), "no model written within 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let saved = FlowModel::load(&model, None).unwrap();
    let done = saved.info().training["steps_done"].as_u64().unwrap();
    assert!(done >= 4 && done.is_multiple_of(2) && done < 1_000_000, "steps_done = {done}");
    assert!(saved.info().training["skipped_steps"].is_null());
    let zero = write_card(&dir, "zero.toml", &card.replace("save_every = 4", "save_every = 0"));
    let out = flowhmc(&["train", zero.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("save_every"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Extents whose volume overflows, or whose fields exceed the machine, are refused before
/// anything is allocated, with the memory the run would need.
#[test]
fn huge_lattices_are_refused_with_the_memory_they_need() {
    let dir = scratch("huge");
    let out_dir = dir.join("out");
    let good = card(&out_dir, 10, 1, "hot");
    for (dims, expected) in [
        (
            "[65536, 65536, 65536, 65536]",
            "1.845e19 sites, a lattice may have at most 4294967295 (it would need about",
        ),
        ("[100000, 100000, 2, 2]", "4.000e10 sites"),
        ("[256, 256, 256, 64]", "TiB of memory, this machine has"),
    ] {
        let path = write_card(&dir, "huge.toml", &good.replace("[4, 4, 4, 4]", dims));
        let out = flowhmc(&["run", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(dims) && err.contains(expected), "expected {expected:?} in: {err}");
        assert!(!out_dir.exists());
    }
    // 32^3 x 16 SU(3) needs about 1.6 GiB: refused under a 1 GiB address-space limit
    let path = write_card(&dir, "limited.toml", &good.replace("[4, 4, 4, 4]", "[32, 32, 32, 16]"));
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -v 1048576 && exec {} run {}", env!("CARGO_BIN_EXE_flowhmc"), path.display()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("GiB of memory, this machine has 1.000 GiB available"), "{err}");
    assert!(!out_dir.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cold 8^4 SU(3) start at beta = 6 with 10 Omelyan steps is rejected forever (dH = 13.5):
/// the progress line says so; thermalization without the Metropolis test moves the chain.
#[test]
fn stuck_chains_warn_and_thermalization_without_test_moves_them() {
    let dir = scratch("stuck");
    let cold = |out: &Path, thermalization: &str| {
        card(out, 60, 0, "cold")
            .replace("[4, 4, 4, 4]", "[8, 8, 8, 8]")
            .replace("beta = 5.8", "beta = 6.0")
            .replace("steps = 8", "steps = 10")
            .replace("thermalization = 5", thermalization)
            .replace("checkpoint_every = 4", "checkpoint_every = 100")
    };
    let stuck = write_card(&dir, "stuck.toml", &cold(&dir.join("stuck"), "thermalization = 0"));
    let out = flowhmc(&["run", stuck.to_str().unwrap()]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{progress}");
    let warned = progress.lines().filter(|l| l.contains("WARNING: acceptance 0.00 over the last 50")).count();
    assert!(warned >= 1, "{progress}");
    let text = cold(&dir.join("moving"), "thermalization = 10\nthermalization_no_accept = 10");
    let out = flowhmc(&["run", write_card(&dir, "moving.toml", &text).to_str().unwrap()]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !progress.contains("WARNING"), "{progress}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("moving/summary.json")).unwrap()).unwrap();
    let plaquette = summary["observables"]["plaquette"]["mean"].as_f64().unwrap();
    assert!(summary["acceptance"].as_f64().unwrap() > 0.5 && plaquette < 0.7, "{summary}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// ILDG files read by an independent reader, the PyPI package lyncs-io (its LIME reader and
/// ILDG XML parser; it needs numpy < 2): the array it returns, indexed (t, z, y, x, mu, a, b),
/// holds this crate's links U_mu(x)[a][b], exactly in f64 and to f32 round-off in f32. CI
/// installs lyncs-io into target/lyncs and sets FLOWHMC_REQUIRE_LYNCS=1; elsewhere the test
/// says it was skipped when python3 cannot import lyncs_io.
#[test]
fn ildg_files_are_read_by_lyncs_io() {
    use flowhmc::io::ildg;
    let dir = scratch("lyncs");
    let script = "import sys, lyncs_io\n\
                  a = lyncs_io.load(sys.argv[1], format='lime')\n\
                  print(a.shape, a.dtype)\n\
                  a.astype('<c16').tofile(sys.argv[2])\n";
    let dims = [4, 4, 6, 8];
    let u = GaugeField::<Su3>::hot(Arc::new(Lattice::new(&dims).unwrap()), 12);
    for (precision, tolerance) in [(nersc::Precision::F64, 0.0), (nersc::Precision::F32, 1e-7)] {
        let (file, raw) = (dir.join(format!("{precision:?}.lime")), dir.join(format!("{precision:?}.raw")));
        ildg::write(&u, &file, precision).unwrap();
        let out = Command::new("python3").args(["-c", script]).arg(&file).arg(&raw).output().unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(std::env::var_os("FLOWHMC_REQUIRE_LYNCS").is_none(), "lyncs-io failed: {err}");
            println!("skipped: python3 cannot read ILDG files with lyncs_io here ({err})");
            return;
        }
        let said = String::from_utf8_lossy(&out.stdout);
        let dtype = if precision == nersc::Precision::F64 { ">c16" } else { ">c8" };
        assert_eq!(said.trim(), format!("(8, 6, 4, 4, 4, 3, 3) {dtype}"));
        let bytes = std::fs::read(&raw).unwrap();
        let values: Vec<f64> =
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(values.len(), u.lattice().volume() * 4 * 9 * 2);
        for (site, chunk) in values.chunks_exact(4 * 18).enumerate() {
            for mu in 0..4 {
                let link = u.link(site, mu);
                for k in 0..9 {
                    let (re, im) = (chunk[mu * 18 + 2 * k], chunk[mu * 18 + 2 * k + 1]);
                    let z = link.0[k];
                    assert!(
                        (re - z.re).abs() <= tolerance && (im - z.im).abs() <= tolerance,
                        "{precision:?}: site {site} mu {mu} entry {k}: ({re}, {im}) against {z}"
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
