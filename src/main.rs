//! The `flowhmc` command: run cards, analyse runs, benchmark.

use flowhmc::chain::run::remove_run_directory;
use flowhmc::chain::summary::{AnalysisOptions, analyze_with};
use flowhmc::chain::{Card, DEFAULT_CARD, RunOptions, TrainingCard, analyze, run_card, train_card};
use flowhmc::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage:
  flowhmc                       run the built-in default card (2D U(1) HMC) into runs/default
  flowhmc run CARD [--resume]   run a TOML run card (or continue it from its checkpoint)
  flowhmc train CARD            train the card's [flow] model by reverse KL ([train] table)
  flowhmc analyze DIR           recompute DIR/summary.json and DIR/plots from the measurements
          [--no-tail]           (without the tail correction of slow modes)
  flowhmc bench [--quick]       benchmarks: pure gauge (SU(3) Wilson 8^4), memory bandwidth,
                                Wilson operator, CG, HMC with fermions, host-interface
                                overhead, flow models (BENCHMARKS.md)";

/// Why the command failed: a command line it does not understand, or the library's error.
enum Failure {
    Usage(String),
    Library(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Library(e)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("flowhmc: error: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Library(e)) => {
            eprintln!("flowhmc: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(args: &[String]) -> std::result::Result<(), Failure> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => Ok(run_default()?),
        ["run", card] => Ok(run(Path::new(card), false)?),
        ["run", card, "--resume"] | ["run", "--resume", card] => Ok(run(Path::new(card), true)?),
        ["train", card] => Ok(train(Path::new(card))?),
        ["analyze", dir] => {
            println!("{}", analyze(Path::new(dir), None)?.table());
            Ok(())
        }
        ["analyze", dir, "--no-tail"] | ["analyze", "--no-tail", dir] => {
            println!("{}", analyze_with(Path::new(dir), None, AnalysisOptions { tail: false })?.table());
            Ok(())
        }
        ["bench"] => Ok(bench(150, 20)?),
        ["bench", "--quick"] => Ok(bench(10, 3)?),
        ["--version" | "-V"] => {
            println!("flowhmc {}", flowhmc::VERSION);
            Ok(())
        }
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        ["run" | "train"] => {
            Err(Failure::Usage(format!("{0}: give the run card, e.g. flowhmc {0} card.toml", words[0])))
        }
        ["analyze"] => {
            Err(Failure::Usage("analyze: give the run directory, e.g. flowhmc analyze runs/u1".into()))
        }
        _ => Err(Failure::Usage(format!(
            "unrecognised arguments \"{}\" (flowhmc help lists the commands)",
            words.join(" ")
        ))),
    }
}

fn run(card_path: &Path, resume: bool) -> Result<()> {
    let card = Card::load(card_path)?;
    let summary = run_card(&card, RunOptions { resume, quiet: false })?;
    println!("{}", summary.table());
    println!("results in {}", card.run.output.display());
    Ok(())
}

fn train(card_path: &Path) -> Result<()> {
    let card = TrainingCard::load(card_path)?;
    let report = train_card(&card, false)?;
    let last = report.curve.last().expect("a training run records its last step");
    println!(
        "trained {} steps in {:.1} s ({:.1} steps/s): loss {:.4}, ESS per sample {:.3}, acceptance {:.3}",
        card.train.steps,
        report.seconds,
        card.train.steps as f64 / report.seconds,
        last.loss,
        last.ess,
        last.acceptance
    );
    println!("model in {}", card.train.output.display());
    Ok(())
}

/// Runs the built-in card, replacing an earlier default run (and nothing else): a directory
/// is an earlier default run if it holds a flowhmc run whose card writes to that directory,
/// whatever version of the built-in card made it, and only files a run writes.
fn run_default() -> Result<()> {
    let card = Card::parse(DEFAULT_CARD, "built-in default card")?;
    let out = PathBuf::from(&card.run.output);
    if out.exists() {
        let previous = Card::load(&out.join("card.toml")).ok();
        if previous.map(|p| p.run.output) != Some(card.run.output.clone()) {
            return Err(Error::Card(format!(
                "{} exists and is not a default run; move it away",
                out.display()
            )));
        }
        remove_run_directory(&out)?;
    }
    println!("flowhmc: built-in default card (2D U(1), L = 16, beta = 3, HMC); see README for run cards");
    let summary = run_card(&card, RunOptions::default())?;
    println!("{}", summary.table());
    let volume: usize = card.lattice.dims.iter().product();
    let beta = card.gauge.as_ref().expect("the default card is a gauge theory").beta;
    let plaquette = flowhmc::reference::u1_2d_plaquette(beta, volume);
    let chi = flowhmc::reference::u1_2d_charge_squared(beta, volume) / volume as f64;
    println!("exact (character expansion): plaquette {plaquette:.8}, topological_susceptibility {chi:.8}");
    println!("results in {}", out.display());
    Ok(())
}

fn bench(thermalization: u64, trajectories: u64) -> Result<()> {
    use flowhmc::bench::{fermions, print, su3_pure_gauge_on, thermalised_su3, thread_counts};
    let threads = thread_counts();
    let u = thermalised_su3(thermalization);
    print(&su3_pure_gauge_on(&u, &threads, thermalization, trajectories));
    for &t in &threads {
        print(&fermions::all(&u, t, trajectories));
    }
    for &t in &threads {
        print(&flowhmc::bench::host::update_overhead(&u, t, trajectories));
    }
    print(&flowhmc::bench::flows::all(trajectories / 2, 8 * trajectories));
    Ok(())
}
