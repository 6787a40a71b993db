//! The `flowhmc` command: run cards, analyse runs, benchmark.
//!
//! Built with the cargo feature `mpi`, it runs on the ranks `mpirun` starts: `run` (and the
//! default run) on all of them, rank 0 printing; the other commands on one process. An error
//! reaches every rank, rank 0 prints it, and all exit with status 2.

use flowhmc::chain::run::remove_run_directory;
use flowhmc::chain::run::run_card_on;
use flowhmc::chain::summary::{AnalysisOptions, analyze_with};
use flowhmc::chain::{Card, DEFAULT_CARD, RunOptions, TrainingCard, analyze, train_card};
use flowhmc::comm::{Comm, agreed, on_root};
use flowhmc::io::FileFormat;
use flowhmc::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage:
  flowhmc                       run the built-in default card (2D U(1) HMC) into runs/default
  flowhmc run CARD [--resume]   run a TOML run card (or continue it from its checkpoint);
                                with the mpi feature: mpirun -np N flowhmc run CARD
  flowhmc train CARD            train the card's [flow] model by reverse KL ([train] table)
  flowhmc analyze DIR           recompute DIR/summary.json and DIR/plots from the measurements
          [--no-tail]           (without the tail correction of slow modes)
  flowhmc convert IN OUT FORMAT a 4D SU(3) configuration (flowhmc checkpoint, NERSC, ILDG or
          [--open]              openQCD, detected) into FORMAT: nersc, ildg, openqcd or flowhmc
                                (--open: a field with open boundaries in time)
  flowhmc bench [--quick]       benchmarks: pure gauge (SU(3) Wilson 8^4), memory bandwidth,
                                Wilson operator, CG, HMC with fermions, host-interface
                                overhead, flow models (BENCHMARKS.md)
  flowhmc bench --ranks         16^4 kernels on 2 ranks x 1 thread against 1 rank x 2 threads
                                (ranks as threads; under mpirun -np 2, the MPI ranks alone)
  flowhmc bench --device cuda   the CUDA backend against the CPU: Wilson operator on 32^4 (and
                                its bandwidth), CG, Nf = 2 trajectories on 8^4 and 16^4
                                (feature cuda; cuda-emulated: the same on 4^4, kernels on the CPU)";

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
    let failure = match world() {
        // rank 0 prints before the world ends (MPI_Finalize waits for every rank), so that no
        // rank's exit can cut the message short
        Ok(world) => dispatch(&args, &world).err().inspect(|f| report(f, world.rank() == 0)),
        Err(e) => Some(Failure::Library(e)).inspect(|f| report(f, true)),
    };
    if failure.is_some() { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

/// Prints the one error line of a failure (on rank 0; the other ranks hold the same one).
fn report(failure: &Failure, root: bool) {
    if root {
        match failure {
            Failure::Usage(m) => eprintln!("flowhmc: error: {m}"),
            Failure::Library(e) => eprintln!("flowhmc: error: {e}"),
        }
    }
}

/// The ranks this program runs on: the MPI world (feature `mpi`), else this process alone.
fn world() -> Result<Arc<dyn Comm>> {
    #[cfg(feature = "mpi")]
    let world: Arc<dyn Comm> = Arc::new(flowhmc::comm::mpi::MpiComm::world()?);
    #[cfg(not(feature = "mpi"))]
    let world: Arc<dyn Comm> = Arc::new(flowhmc::comm::Single::new(1));
    Ok(world)
}

fn dispatch(args: &[String], world: &Arc<dyn Comm>) -> std::result::Result<(), Failure> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let on_ranks = matches!(words.as_slice(), [] | ["run", ..] | ["bench", "--ranks"]);
    if world.size() > 1 && !on_ranks {
        return Err(Failure::Usage(format!(
            "flowhmc {} runs on one process ({} were started); only run uses many ranks",
            words.join(" "),
            world.size()
        )));
    }
    match words.as_slice() {
        [] => Ok(run_default(world)?),
        ["run", card] => Ok(run(Path::new(card), false, world)?),
        ["run", card, "--resume"] | ["run", "--resume", card] => Ok(run(Path::new(card), true, world)?),
        ["train", card] => Ok(train(Path::new(card))?),
        ["analyze", dir] => {
            println!("{}", analyze(Path::new(dir), None)?.table());
            Ok(())
        }
        ["analyze", dir, "--no-tail"] | ["analyze", "--no-tail", dir] => {
            println!("{}", analyze_with(Path::new(dir), None, AnalysisOptions { tail: false })?.table());
            Ok(())
        }
        ["convert", input, output, format] => {
            Ok(convert(Path::new(input), Path::new(output), format, false)?)
        }
        ["convert", input, output, format, "--open"] => {
            Ok(convert(Path::new(input), Path::new(output), format, true)?)
        }
        ["convert", ..] => Err(Failure::Usage(
            "convert: give the input, the output and its format, e.g. flowhmc convert run/checkpoint.cfg \
             cnfg.lime ildg"
                .into(),
        )),
        ["bench"] => Ok(bench(150, 20)?),
        ["bench", "--quick"] => Ok(bench(10, 3)?),
        ["bench", "--ranks"] => Ok(bench_ranks(world)?),
        ["bench", "--device", kind] => bench_device(kind),
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

/// Runs a card file on every rank: rank 0 reads it, every rank parses the same text.
fn run(card_path: &Path, resume: bool, world: &Arc<dyn Comm>) -> Result<()> {
    let text = on_root(world.as_ref(), || std::fs::read(card_path).map_err(|e| Error::io(card_path, e)))?;
    let text = world.broadcast(text.unwrap_or_default());
    let text =
        String::from_utf8(text).map_err(|_| Error::Card(format!("{}: not UTF-8 text", card_path.display())));
    let card = agreed(world.as_ref(), text.and_then(|t| Card::parse(&t, &card_path.display().to_string())))?;
    if let Some(summary) = run_card_on(&card, RunOptions { resume, quiet: false }, world)? {
        println!("{}", summary.table());
        println!("results in {}", card.run.output.display());
    }
    Ok(())
}

/// Converts a 4D SU(3) configuration file into another format, printing what it read; `open`:
/// the field lives on a lattice open in time (its removed links zero).
fn convert(input: &Path, output: &Path, format: &str, open: bool) -> Result<()> {
    let Some(to) = FileFormat::named(format) else {
        return Err(Error::Config(format!("convert: format {format:?}: nersc, ildg, openqcd or flowhmc")));
    };
    let from = FileFormat::detect(input)?;
    let u = flowhmc::io::read_su3_whole(input, open)?;
    flowhmc::io::write_su3(&u, output, to)?;
    println!(
        "{} ({}, dims {:?}, plaquette {:.15}) -> {} ({})",
        input.display(),
        from.name(),
        u.lattice().global_dims(),
        flowhmc::observables::average_plaquette(&u),
        output.display(),
        to.name()
    );
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
fn run_default(world: &Arc<dyn Comm>) -> Result<()> {
    let card = Card::parse(DEFAULT_CARD, "built-in default card")?;
    let out = PathBuf::from(&card.run.output);
    let root = world.rank() == 0;
    on_root(world.as_ref(), || {
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
        Ok(())
    })?;
    if root {
        println!("flowhmc: built-in default card (2D U(1), L = 16, beta = 3, HMC); see README for run cards");
    }
    let Some(summary) = run_card_on(&card, RunOptions::default(), world)? else { return Ok(()) };
    println!("{}", summary.table());
    let volume: usize = card.lattice.dims.iter().product();
    let beta = card.gauge.as_ref().expect("the default card is a gauge theory").beta;
    let plaquette = flowhmc::reference::u1_2d_plaquette(beta, volume);
    let chi = flowhmc::reference::u1_2d_charge_squared(beta, volume) / volume as f64;
    println!("exact (character expansion): plaquette {plaquette:.8}, topological_susceptibility {chi:.8}");
    println!("results in {}", out.display());
    Ok(())
}

/// Domain decomposition against threads: in-process ranks beside threads on one process, the
/// MPI ranks alone on two.
fn bench_ranks(world: &Arc<dyn Comm>) -> Result<()> {
    use flowhmc::bench::{print, ranks};
    match world.size() {
        1 => print(&ranks::ranks_against_threads(9)),
        _ => print(&ranks::on_world_ranks(world, 3)?),
    }
    Ok(())
}

/// The CUDA backend against the CPU (`kind`: "cuda", or "cuda-emulated" on small lattices).
#[cfg(feature = "cuda")]
fn bench_device(kind: &str) -> std::result::Result<(), Failure> {
    use flowhmc::backend::cuda::device::Device;
    use flowhmc::bench::{device::device_against_cpu, print};
    let figures = match kind {
        "cuda" => device_against_cpu(&Device::gpu(0)?, [32; 4], &[[8; 4], [16; 4]], 20)?,
        "cuda-emulated" => device_against_cpu(&Device::emulated(), [4; 4], &[[4; 4]], 2)?,
        _ => {
            return Err(Failure::Usage(format!(
                "bench --device {kind}: the devices are cuda and cuda-emulated"
            )));
        }
    };
    print(&figures);
    Ok(())
}

/// Without the CUDA backend there is no device to bench.
#[cfg(not(feature = "cuda"))]
fn bench_device(kind: &str) -> std::result::Result<(), Failure> {
    Err(Failure::Usage(format!(
        "bench --device {kind}: this flowhmc is built without the CUDA backend (cargo build --release --features cuda)"
    )))
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
