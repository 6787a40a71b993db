//! The run loop: start or resume, update, measure, checkpoint, summarise.
//!
//! Output directory layout: `card.toml` (the card as run), `measurements.jsonl`,
//! `checkpoint.cfg` (native field file whose metadata holds `next_update` and `measured`),
//! `summary.json` and `plots/`. A checkpoint is written after the measurements it covers are
//! synced to disk, and atomically, so a run killed at any moment resumes from its last
//! checkpoint and reproduces the uninterrupted chain exactly: every random number derives
//! from the seed and the update number alone.
//!
//! On many ranks ([`run_card_on`]) every rank runs the chain on its block; rank 0 alone
//! prints, writes card.toml, the measurements, the summary and the plots, and checkpoints
//! and start files go through rank 0 one time slice at a time ([`crate::io::slices`]), so
//! no rank ever holds the whole field. What only rank 0 does (files) is agreed on before the
//! next collective step ([`crate::comm::agreed`]): an error on rank 0 is the error of every
//! rank, and no rank waits for one that stopped. A chain does not depend on the process grid
//! or the thread counts, so a run resumes on another grid.

use super::card::{Card, DeviceKind, GaugeCard, GroupName, Theory, UpdateKind};
use super::fields::{ChainField, card_model};
use super::progress::{Progress, RecentAcceptance};
use super::summary::{Summary, analyze};
use super::train::batch_action;
use crate::comm::{Comm, Single, agreed, check_grid, choose_grid, on_root};
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::geometry::Lattice;
use crate::group::{Su3, U1};
use crate::io::{native, remove_stale_temporaries, write_atomically};
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

/// Runs the chain a (validated) card describes on this process and returns its summary.
pub fn run_card(card: &Card, options: RunOptions) -> Result<Summary> {
    let summary = run_card_on(card, options, &(Arc::new(Single::new(1)) as Arc<dyn Comm>))?;
    Ok(summary.expect("rank 0 analyses the run"))
}

/// Runs the chain a card describes on the ranks of `world` (each rank calls this with the same
/// card) and returns its summary on rank 0 (`None` on the others). The ranks are arranged as `run.process_grid`,
/// or as [`choose_grid`] chooses when the card names none. Flow updates and phi^4 run on one
/// rank only, for now.
pub fn run_card_on(card: &Card, options: RunOptions, world: &Arc<dyn Comm>) -> Result<Option<Summary>> {
    card.validate()?;
    let (dims, size) = (&card.lattice.dims, world.size());
    if size > 1 {
        let one_rank = match card.theory()? {
            Theory::Scalar(_) => Some("phi^4 ([scalar])"),
            Theory::Gauge(_) if card.update.kind.uses_flow() => Some("flow updates"),
            Theory::Gauge(_) => None,
        };
        if let Some(what) = one_rank {
            return Err(Error::Card(format!("{what} run on one rank for now; this run has {size}")));
        }
    }
    let grid = match &card.run.process_grid {
        Some(grid) => grid.clone(),
        None => choose_grid(dims, size)?,
    };
    check_grid(dims, &grid, size)?;
    let comm = world.arrange(&grid)?;
    comm.agree(card.check_memory_on(&grid))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(card.run.threads)
        .build()
        .map_err(|e| Error::Card(format!("run.threads = {}: {e}", card.run.threads)));
    let pool = agreed(comm.as_ref(), pool)?;
    pool.install(|| match card.theory()? {
        Theory::Gauge(GaugeCard { group: GroupName::U1, .. }) => run::<GaugeField<U1>>(card, options, comm),
        Theory::Gauge(GaugeCard { group: GroupName::Su3, .. }) => run::<GaugeField<Su3>>(card, options, comm),
        Theory::Scalar(_) => run::<ScalarField>(card, options, comm),
    })
}

/// A fresh run: the output directory must be new or empty; everything that can fail on bad
/// input fails before it is created.
fn fresh_state<C: ChainField>(card: &Card, lattice: &Arc<Lattice>, dir: &Path) -> Result<C> {
    let comm = lattice.comm().as_ref();
    on_root(comm, || {
        if dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false) {
            return Err(Error::Card(format!(
                "run.output = {:?} already holds files; resume it with --resume or choose another output",
                dir.display()
            )));
        }
        Ok(())
    })?;
    let u = C::start(card, lattice)?;
    on_root(comm, || {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomically(&dir.join("card.toml"), card.to_toml().as_bytes())?;
        write_atomically(&dir.join(MEASUREMENTS), b"")
    })?;
    Ok(u)
}

/// Keys of `[run]` a resumed run may change: the chain does not depend on them.
const RESUMABLE_KEYS: [&str; 3] = ["trajectories", "threads", "process_grid"];

/// The dotted key of the first value in which two cards differ, apart from the
/// [`RESUMABLE_KEYS`] of `[run]`.
fn first_difference(stored: &Card, card: &Card) -> Option<String> {
    fn walk(a: &toml::Value, b: &toml::Value, key: &str) -> Option<String> {
        match (a, b) {
            (toml::Value::Table(x), toml::Value::Table(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                    match (x.get(k), y.get(k)) {
                        (Some(p), Some(q)) => walk(p, q, &sub),
                        _ => Some(sub),
                    }
                })
            }
            (toml::Value::Array(x), toml::Value::Array(y)) if x.len() == y.len() => {
                x.iter().zip(y).enumerate().find_map(|(i, (p, q))| walk(p, q, &format!("{key}[{i}]")))
            }
            _ => (a != b).then(|| key.to_string()),
        }
    }
    let comparable = |c: &Card| {
        let mut value = toml::Value::try_from(c).expect("a card is a TOML table");
        if let Some(run) = value.get_mut("run").and_then(toml::Value::as_table_mut) {
            RESUMABLE_KEYS.iter().for_each(|k| _ = run.remove(*k));
        }
        value
    };
    walk(&comparable(stored), &comparable(card), "")
}

/// A resumed run: the card must match the one the run started with but for
/// [`RESUMABLE_KEYS`] (card.toml is rewritten with the new values); measurements past the
/// checkpoint are dropped. A run that stopped before its first checkpoint starts again from
/// its first update, as it would have the first time. Returns the field, the next update and
/// the number of measurements kept.
fn resume_state<C: ChainField>(card: &Card, lattice: &Arc<Lattice>, dir: &Path) -> Result<(C, u64, u64)> {
    let comm = lattice.comm().as_ref();
    let stored_path = dir.join("card.toml");
    let path = dir.join(CHECKPOINT);
    let checkpointed = on_root(comm, || {
        let stored = Card::load(&stored_path)?;
        if let Some(key) = first_difference(&stored, card) {
            return Err(Error::Card(format!(
                "{key} differs from {} of the run being resumed (only run.trajectories, run.threads and \
                 run.process_grid may change)",
                stored_path.display()
            )));
        }
        remove_stale_temporaries(dir)?;
        Ok(vec![u8::from(path.is_file())])
    })?;
    if comm.broadcast(checkpointed.unwrap_or_default()) == [0] {
        let u = C::start(card, lattice)?;
        on_root(comm, || {
            write_atomically(&stored_path, card.to_toml().as_bytes())?;
            write_atomically(&dir.join(MEASUREMENTS), b"")
        })?;
        return Ok((u, 0, 0));
    }
    // every check before the first write: a refused resume leaves the run as it was
    let (u, meta) = native::read_into::<C>(&path, lattice)?;
    let field = |k: &str| {
        meta.get(k)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| Error::Config(format!("{}: metadata lacks {k}", path.display())))
    };
    let (next_update, measured) = (field("next_update")?, field("measured")?);
    if measured != next_update.saturating_sub(card.run.thermalization) {
        return Err(Error::Config(format!(
            "{}: metadata next_update = {next_update} and measured = {measured} disagree with \
             run.thermalization = {}",
            path.display(),
            card.run.thermalization
        )));
    }
    if card.run.trajectories < measured {
        return Err(Error::Card(format!(
            "run.trajectories = {}: the run being resumed has measured {measured} already",
            card.run.trajectories
        )));
    }
    on_root(comm, || {
        let records = read_measurements_prefix(dir, measured as usize)?;
        write_atomically(&dir.join(MEASUREMENTS), records.as_bytes())?;
        write_atomically(&stored_path, card.to_toml().as_bytes())
    })?;
    Ok((u, next_update, measured))
}

/// Files a run writes into its output directory (plots/ holds only .svg files).
const RUN_FILES: [&str; 4] = ["card.toml", MEASUREMENTS, CHECKPOINT, "summary.json"];

/// Removes an earlier run's output directory `dir` when it holds only what a run writes
/// (card.toml, measurements.jsonl, checkpoint.cfg, summary.json, plots/*.svg, temporaries of
/// [`write_atomically`]); anything else there is the user's, and then nothing is removed and
/// the error names it.
pub fn remove_run_directory(dir: &Path) -> Result<()> {
    let listing = |d: &Path| -> Result<Vec<std::fs::DirEntry>> {
        let entries = std::fs::read_dir(d).map_err(|e| Error::io(d, e))?;
        entries.collect::<std::io::Result<_>>().map_err(|e| Error::io(d, e))
    };
    let plots = dir.join("plots");
    let ours = |entry: &std::fs::DirEntry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        (is_file && (RUN_FILES.contains(&name.as_str()) || crate::io::is_temporary(&name)))
            || (name == "plots" && entry.file_type().is_ok_and(|t| t.is_dir()))
    };
    let mut foreign = listing(dir)?.into_iter().filter(|e| !ours(e)).map(|e| e.path()).collect::<Vec<_>>();
    if plots.is_dir() {
        let svg = |e: &std::fs::DirEntry| {
            e.file_type().is_ok_and(|t| t.is_file()) && e.path().extension().is_some_and(|x| x == "svg")
        };
        foreign.extend(listing(&plots)?.into_iter().filter(|e| !svg(e)).map(|e| e.path()));
    }
    if let Some(first) = foreign.first() {
        return Err(Error::Config(format!(
            "{} holds {}, which no flowhmc run wrote; move it away",
            dir.display(),
            first.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
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
    if card.run.device != DeviceKind::Cpu {
        return device_update(card, lattice);
    }
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

/// The card's HMC on its device ([`super::device`]), for a chain of SU(3) fields.
#[cfg(feature = "cuda")]
fn device_update<C: ChainField>(card: &Card, lattice: &Arc<Lattice>) -> Result<Box<dyn MarkovStep<C>>> {
    let step: Box<dyn std::any::Any> = Box::new(super::device::device_hmc(card, lattice)?);
    step.downcast::<Box<dyn MarkovStep<C>>>()
        .map(|step| *step)
        .map_err(|_| Error::Card("run.device: the CUDA backend runs SU(3) gauge fields".into()))
}

/// Without the CUDA backend a card cannot name a device (its validation says so first).
#[cfg(not(feature = "cuda"))]
fn device_update<C: ChainField>(_card: &Card, _lattice: &Arc<Lattice>) -> Result<Box<dyn MarkovStep<C>>> {
    Err(Error::Card("run.device: this flowhmc is built without the CUDA backend".into()))
}

/// Flow proposals drawn per model evaluation when the card does not say. Larger blocks do not
/// pay: the convolutions' gathered windows of 64 proposals on a 16^2 lattice (4.7 MB) fall
/// out of the cache, and a flow-mh update there costs 1.4 times what it costs in blocks of 8
/// (BENCHMARKS.md, session 11). The chain does not depend on it: proposal n is drawn from the
/// streams of update n in any block.
pub const DEFAULT_PROPOSAL_BATCH: usize = 8;

fn run<C: ChainField>(card: &Card, options: RunOptions, comm: Arc<dyn Comm>) -> Result<Option<Summary>> {
    let dir = card.run.output.as_path();
    let lattice = Arc::new(card.lattice.lattice(comm.clone())?);
    let root = comm.rank() == 0;
    let mut markov = build_update::<C>(card, &lattice)?;
    let (mut u, first, mut measured) = if options.resume {
        resume_state::<C>(card, &lattice, dir)?
    } else {
        (fresh_state::<C>(card, &lattice, dir)?, 0, 0)
    };
    let therm = card.run.thermalization;
    let total = therm + card.run.trajectories;
    let report_checks = |u: &C, update: u64| -> Result<()> {
        for line in u.check_approximations(card, update)? {
            if root && (!options.quiet || line.contains("WARNING")) {
                eprintln!("{line}");
            }
        }
        Ok(())
    };
    report_checks(&u, first)?;
    let path = dir.join(MEASUREMENTS);
    let mut file = on_root(comm.as_ref(), || {
        std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))
    })?;
    let mut progress = Progress::new(first, total);
    let (mut accepted, mut steps) = (0u64, 0u64);
    let mut recent = RecentAcceptance::default();
    let started = Instant::now();
    for update in first..total {
        let check = card.update.reversibility_check;
        markov.set_reversibility_check(check > 0 && (update + 1).is_multiple_of(check));
        markov.set_metropolis_test(update >= card.run.thermalization_no_accept);
        let report = markov.step(&mut u, update)?;
        steps += 1;
        accepted += u64::from(report.accepted);
        recent.push(report.accepted);
        let checkpoint = (update + 1).is_multiple_of(card.run.checkpoint_every) || update + 1 == total;
        if update >= therm {
            let record = u.measure(card, &report, update)?;
            measured += 1;
            on_root(comm.as_ref(), || {
                let file = file.as_mut().expect("rank 0 holds the measurements");
                writeln!(file, "{}", serde_json::Value::Object(record)).map_err(|e| Error::io(&path, e))
            })?;
        }
        if checkpoint {
            on_root(comm.as_ref(), || {
                let file = file.as_mut().expect("rank 0 holds the measurements");
                file.flush().and_then(|_| file.sync_data()).map_err(|e| Error::io(&path, e))
            })?;
            let meta = json!({"next_update": update + 1, "measured": measured});
            native::write(&u, meta, &dir.join(CHECKPOINT))?;
        }
        if !options.quiet {
            // collective (a global observable), printed by rank 0
            let (name, value) = u.headline();
            if root {
                progress.update(update + 1, accepted as f64 / steps as f64, &recent, name, value);
            }
        }
    }
    let seconds = (steps > 0).then(|| started.elapsed().as_secs_f64() / steps as f64);
    if steps > 0 {
        report_checks(&u, total)?;
    }
    on_root(comm.as_ref(), || {
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
    })
}
