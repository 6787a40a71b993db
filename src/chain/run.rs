//! The run loop: start or resume, update, measure, checkpoint, summarise.
//!
//! Output directory layout: `card.toml` (the card as run), `measurements.jsonl`,
//! `checkpoint.cfg` (native field file whose metadata holds `next_update` and `measured`),
//! `summary.json` and `plots/`. A checkpoint is written after the measurements it covers are
//! synced to disk, and atomically, so a run killed at any moment resumes from its last
//! checkpoint and reproduces the uninterrupted chain exactly: every random number derives
//! from the seed and the update number alone.

use super::card::{Card, GaugeCard, GroupName, Theory, UpdateKind};
use super::fields::{ChainField, card_model};
use super::progress::Progress;
use super::summary::{Summary, analyze};
use super::train::batch_action;
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{Su3, U1};
use crate::io::{native, write_atomically};
use crate::scalar::ScalarField;
use crate::update::{FlowHmc, FlowMetropolis, Hmc, MarkovStep, PulledBackAction, Schedule};
use serde_json::json;
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
    pool.install(|| match card.theory()? {
        Theory::Gauge(GaugeCard { group: GroupName::U1, .. }) => run::<GaugeField<U1>>(card, options),
        Theory::Gauge(GaugeCard { group: GroupName::Su3, .. }) => run::<GaugeField<Su3>>(card, options),
        Theory::Scalar(_) => run::<ScalarField>(card, options),
    })
}

/// A fresh run: the output directory must be new or empty; everything that can fail on bad
/// input fails before it is created.
fn fresh_state<C: ChainField>(card: &Card, lattice: &Arc<Lattice>, dir: &Path) -> Result<C> {
    if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(Error::Card(format!(
            "run.output = {:?} already holds files; resume it with --resume or choose another output",
            dir.display()
        )));
    }
    let u = C::start(card, lattice)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_atomically(&dir.join("card.toml"), card.to_toml().as_bytes())?;
    write_atomically(&dir.join(MEASUREMENTS), b"")?;
    Ok(u)
}

/// A resumed run: the card must match the one the run started with (the number of measured
/// trajectories may grow); measurements past the checkpoint are dropped.
fn resume_state<C: ChainField>(card: &Card, dir: &Path) -> Result<(C, u64, u64)> {
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
    let (u, meta) = native::read::<C>(&path)?;
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

/// The Markov step of the card: HMC, flow Metropolis or a schedule of both.
pub fn build_update<C: ChainField>(card: &Card, lattice: &Arc<Lattice>) -> Result<Box<dyn MarkovStep<C>>> {
    let seed = card.run.seed;
    let hmc = || -> Result<Box<dyn MarkovStep<C>>> {
        let monomials = C::monomials(card, lattice)?;
        Ok(Box::new(Hmc::new(monomials, card.integrator()?, card.trajectory_length()?, seed)?))
    };
    let flow = || -> Result<Box<dyn MarkovStep<C>>> {
        let batch = card.update.batch.unwrap_or(DEFAULT_PROPOSAL_BATCH);
        let mh = FlowMetropolis::new(card_model(card)?, C::monomials(card, lattice)?, seed, batch);
        Ok(Box::new(mh.symmetrized(card.update.symmetrize)))
    };
    match card.update.kind {
        UpdateKind::Hmc => hmc(),
        UpdateKind::FlowMh => flow(),
        UpdateKind::FlowHmc => {
            let model = Arc::new(card_model(card)?);
            let action = PulledBackAction::new(model.clone(), batch_action(card.theory()?)?);
            let hmc = Hmc::new(vec![Box::new(action)], card.integrator()?, card.trajectory_length()?, seed)?;
            Ok(Box::new(FlowHmc::new(model, hmc)))
        }
        UpdateKind::Schedule => {
            let (h, f) = (card.update.hmc.unwrap_or(1), card.update.flow.unwrap_or(1));
            Ok(Box::new(Schedule::new(vec![(hmc()?, h), (flow()?, f)])?))
        }
    }
}

/// Flow proposals drawn per model evaluation when the card does not say. Larger blocks do not
/// pay: the convolutions' gathered windows of 64 proposals on a 16^2 lattice (4.7 MB) fall
/// out of the cache, and a flow-mh update there costs 1.4 times what it costs in blocks of 8
/// (BENCHMARKS.md, session 11). The chain does not depend on it: proposal n is drawn from the
/// streams of update n in any block.
pub const DEFAULT_PROPOSAL_BATCH: usize = 8;

fn run<C: ChainField>(card: &Card, options: RunOptions) -> Result<Summary> {
    let dir = card.run.output.as_path();
    let lattice = Arc::new(Lattice::new(&card.lattice.dims)?);
    let mut markov = build_update::<C>(card, &lattice)?;
    let (mut u, first, mut measured) = if options.resume {
        resume_state::<C>(card, dir)?
    } else {
        (fresh_state::<C>(card, &lattice, dir)?, 0, 0)
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
        markov.set_reversibility_check(check > 0 && (update + 1).is_multiple_of(check));
        let report = markov.step(&mut u, update)?;
        steps += 1;
        accepted += u64::from(report.accepted);
        if update >= therm {
            let record = u.measure(card, &report, update)?;
            writeln!(file, "{}", serde_json::Value::Object(record)).map_err(|e| Error::io(&path, e))?;
            measured += 1;
        }
        if (update + 1).is_multiple_of(card.run.checkpoint_every) || update + 1 == total {
            file.flush().and_then(|_| file.sync_data()).map_err(|e| Error::io(&path, e))?;
            let meta = json!({"next_update": update + 1, "measured": measured});
            native::write(&u, meta, &dir.join(CHECKPOINT))?;
        }
        if !options.quiet {
            let (name, value) = u.headline();
            progress.update(update + 1, accepted as f64 / steps as f64, name, value);
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
