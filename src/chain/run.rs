//! The run loop: start or resume, update, measure, checkpoint, summarise.
//!
//! Output directory layout: `card.toml` (the card as run), `measurements.jsonl`,
//! `checkpoint.cfg` (native gauge file whose metadata holds `next_update` and `measured`),
//! `summary.json` and `plots/`. A checkpoint is written after the measurements it covers are
//! synced to disk, and atomically, so a run killed at any moment resumes from its last
//! checkpoint and reproduces the uninterrupted chain exactly: every random number derives
//! from the seed and the update number alone.

use super::card::{Card, GroupName, SolverKind, Start};
use super::measure::{measure, measure_hadrons};
use super::progress::Progress;
use super::summary::{Summary, analyze};
use crate::action::fermion::{Pseudofermion, PseudofermionParams};
use crate::action::{GaugeAction, Monomial};
use crate::checkerboard::Checkerboard;
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{Group, Su3, U1};
use crate::io::{native, nersc, read_file, write_atomically};
use crate::update::{Hmc, MarkovStep};
use serde_json::json;
use std::any::Any;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// How `run_card` treats the output directory and the terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Continue the run in the output directory from its last checkpoint.
    pub resume: bool,
    /// No progress output.
    pub quiet: bool,
}

const CHECKPOINT: &str = "checkpoint.cfg";
const MEASUREMENTS: &str = "measurements.jsonl";

/// Runs the chain a (validated) card describes and returns its summary.
pub fn run_card(card: &Card, options: RunOptions) -> Result<Summary> {
    card.validate()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(card.run.threads)
        .build()
        .map_err(|e| Error::Card(format!("run.threads = {}: {e}", card.run.threads)))?;
    pool.install(|| match card.gauge.group {
        GroupName::U1 => run::<U1>(card, options),
        GroupName::Su3 => run::<Su3>(card, options),
    })
}

/// Loads a start configuration (NERSC for 4D SU(3), or native) and checks its extents.
pub fn load_configuration<G: Group>(path: &Path, lattice: &Lattice) -> Result<GaugeField<G>> {
    let bytes = read_file(path)?;
    // the same messages as nersc::read and native::read, without reading the file again
    let field: GaugeField<G> = if nersc::is_nersc(&bytes) {
        let su3: Box<dyn Any> = Box::new(
            nersc::parse(&bytes).map_err(|m| Error::Config(format!("{} (NERSC): {m}", path.display())))?,
        );
        *su3.downcast::<GaugeField<G>>().map_err(|_| {
            Error::Config(format!(
                "{}: a NERSC file holds SU(3) links, the card asks for {}",
                path.display(),
                G::NAME
            ))
        })?
    } else if native::is_native(&bytes) {
        native::parse::<G>(&bytes).map_err(|m| Error::Config(format!("{}: {m}", path.display())))?.0
    } else {
        return Err(Error::Config(format!("{}: neither a NERSC nor a flowhmc gauge file", path.display())));
    };
    if field.lattice().dims() != lattice.dims() {
        return Err(Error::Config(format!(
            "{}: the configuration has dims {:?}, the card says {:?}",
            path.display(),
            field.lattice().dims(),
            lattice.dims()
        )));
    }
    Ok(field)
}

/// A fresh run: the output directory must be new or empty; everything that can fail on bad
/// input fails before it is created.
fn fresh_state<G: Group>(card: &Card, lattice: &Arc<Lattice>, dir: &Path) -> Result<GaugeField<G>> {
    if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(Error::Card(format!(
            "run.output = {:?} already holds files; resume it with --resume or choose another output",
            dir.display()
        )));
    }
    let u = match card.start() {
        Start::Hot => GaugeField::hot(lattice.clone(), card.run.seed),
        Start::Cold => GaugeField::cold(lattice.clone()),
        Start::File(path) => load_configuration(&path, lattice)?,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomically(&dir.join("card.toml"), card.to_toml().as_bytes())?;
    write_atomically(&dir.join(MEASUREMENTS), b"")?;
    Ok(u)
}

/// A resumed run: the card must match the one the run started with (the number of measured
/// trajectories may grow); measurements past the checkpoint are dropped.
fn resume_state<G: Group>(card: &Card, dir: &Path) -> Result<(GaugeField<G>, u64, u64)> {
    let stored = Card::load(&dir.join("card.toml"))?;
    let mut comparable = stored.clone();
    comparable.run.trajectories = card.run.trajectories;
    if comparable != *card {
        return Err(Error::Card(format!(
            "{}: the card differs from the one this run started with (only run.trajectories may change)",
            dir.join("card.toml").display()
        )));
    }
    let path = dir.join(CHECKPOINT);
    if !path.is_file() {
        return Err(Error::Config(format!("{}: no checkpoint to resume from", dir.display())));
    }
    let (u, meta) = native::read::<G>(&path)?;
    let field = |k: &str| {
        meta.get(k)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| Error::Config(format!("{}: metadata lacks {k}", path.display())))
    };
    let (next_update, measured) = (field("next_update")?, field("measured")?);
    let records = read_measurements_prefix(dir, measured as usize)?;
    write_atomically(&dir.join(MEASUREMENTS), records.as_bytes())?;
    if card.lattice.dims != u.lattice().dims() {
        return Err(Error::Config(format!("{}: checkpoint dims differ from the card", path.display())));
    }
    Ok((u, next_update, measured))
}

/// The first `n` lines of measurements.jsonl (a kill can leave a partial last line).
fn read_measurements_prefix(dir: &Path, n: usize) -> Result<String> {
    let path = dir.join(MEASUREMENTS);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let lines: Vec<&str> = text.lines().take(n).collect();
    if lines.len() < n {
        return Err(Error::Config(format!(
            "{}: {} lines, the checkpoint covers {n}",
            path.display(),
            lines.len()
        )));
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// The monomials of the card, in the order of [`Card::monomial_names`].
pub fn build_monomials<G: Group>(
    card: &Card,
    lattice: &Arc<Lattice>,
) -> Result<Vec<Box<dyn Monomial<GaugeField<G>>>>> {
    let mut monomials: Vec<Box<dyn Monomial<GaugeField<G>>>> =
        vec![Box::new(GaugeAction::new(card.gauge.action, card.gauge.beta))];
    if card.fermions.is_empty() {
        return Ok(monomials);
    }
    let cb = Checkerboard::new(lattice.clone())?;
    let mut stream = 0;
    for (i, f) in card.fermions.iter().enumerate() {
        let (boundary, solver) = (f.boundary_phase(), f.solver_params());
        for (name, (kappa, kappa_heavy)) in f.term_names(i).iter().zip(f.term_kappas()) {
            let params = PseudofermionParams {
                kappa,
                kappa_heavy,
                boundary,
                even_odd: f.even_odd,
                solver,
                mixed_precision: f.solver.kind == SolverKind::MixedCg,
            };
            monomials.push(match lattice.ndim() {
                2 => Box::new(Pseudofermion::<G, 2>::new(name, params, cb.clone(), stream)),
                _ => Box::new(Pseudofermion::<G, 4>::new(name, params, cb.clone(), stream)),
            });
            stream += 1;
        }
    }
    Ok(monomials)
}

fn run<G: Group>(card: &Card, options: RunOptions) -> Result<Summary> {
    let dir = card.run.output.as_path();
    let lattice = Arc::new(Lattice::new(&card.lattice.dims)?);
    let monomials = build_monomials::<G>(card, &lattice)?;
    let mut hmc = Hmc::new(monomials, card.integrator()?, card.update.trajectory_length, card.run.seed)?;
    let (mut u, first, mut measured) = if options.resume {
        resume_state::<G>(card, dir)?
    } else {
        (fresh_state::<G>(card, &lattice, dir)?, 0, 0)
    };
    let therm = card.run.thermalization;
    let total = therm + card.run.trajectories;
    let path = dir.join(MEASUREMENTS);
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
    let mut progress = Progress::new(first, total);
    let (mut accepted, mut steps) = (0u64, 0u64);
    let started = Instant::now();
    for update in first..total {
        let check = card.update.reversibility_check;
        hmc.set_reversibility_check(check > 0 && (update + 1).is_multiple_of(check));
        let report = hmc.step(&mut u, update)?;
        steps += 1;
        accepted += u64::from(report.accepted);
        let plaquette = if update >= therm {
            let flow = card.measure.flow.as_ref().filter(|f| (update - therm).is_multiple_of(f.every));
            let mut record = measure(&u, &report, update + 1, flow, !card.fermions.is_empty());
            if let Some(h) =
                card.measure.hadrons.as_ref().filter(|h| (update - therm).is_multiple_of(h.every))
            {
                record.extend(measure_hadrons(&u, &card.fermions[0], h, card.run.seed, update)?);
            }
            let plaquette = record["plaquette"].as_f64();
            writeln!(file, "{}", serde_json::Value::Object(record)).map_err(|e| Error::io(&path, e))?;
            measured += 1;
            plaquette
        } else {
            None
        };
        if (update + 1).is_multiple_of(card.run.checkpoint_every) || update + 1 == total {
            file.flush().and_then(|_| file.sync_data()).map_err(|e| Error::io(&path, e))?;
            let meta = json!({"next_update": update + 1, "measured": measured});
            native::write(&u, meta, &dir.join(CHECKPOINT))?;
        }
        if !options.quiet {
            let plaquette = plaquette.unwrap_or_else(|| crate::observables::average_plaquette(&u));
            progress.update(update + 1, accepted as f64 / steps as f64, plaquette);
        }
    }
    let seconds = (steps > 0).then(|| started.elapsed().as_secs_f64() / steps as f64);
    let summary = analyze(dir, seconds)?;
    // all measured lines must be there (a resume of a finished run re-analyses them)
    if summary.trajectories as u64 != measured {
        return Err(Error::Config(format!(
            "{}: {} records, expected {measured}",
            path.display(),
            summary.trajectories
        )));
    }
    Ok(summary)
}
