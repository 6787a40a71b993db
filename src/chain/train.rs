//! `flowhmc train CARD`: builds the card's `[flow]` model (or starts from `train.init`),
//! trains it by reverse KL towards the card's theory, and writes
//! - `train.output`: the model (safetensors, with its theory, lattice, architecture and
//!   training record in the metadata), also every `save_every` steps while it trains, so that
//!   a killed run keeps the model it had reached (its record says `steps_done`);
//! - OUTPUT.training.jsonl: the learning-curve points (step, loss, ess, acceptance, mean and
//!   peak gradient norm, learning_rate, seconds), a line as each is made, so that a long run
//!   can be watched and a killed one keeps its curve;
//! - OUTPUT.curves.svg: loss, ESS per sample and acceptance against the training step.

use super::card::{GroupName, Theory, TrainCard, TrainingCard};
use super::progress::Progress;
use crate::action::{GaugeAction, Phi4Action};
use crate::analysis::plot::{Panel, svg};
use crate::error::{Error, Result, spelling};
use crate::flow::su3::Su3BatchAction;
use crate::flow::train::TrainingPoint;
use crate::flow::u1::U1BatchAction;
use crate::flow::{BatchAction, FlowModel, ModelInfo, TrainingReport, train};
use crate::io::write_atomically;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A path next to the model file: `model.safetensors` -> `model.SUFFIX`.
pub fn sibling(model: &Path, suffix: &str) -> PathBuf {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    model.with_file_name(format!("{stem}.{suffix}"))
}

/// The action of `theory` on batches of fields (what training and flow HMC differentiate), on
/// lattices of any dimension.
pub fn batch_action(theory: Theory<'_>) -> Result<Box<dyn BatchAction>> {
    Ok(match theory {
        Theory::Scalar(s) => Box::new(Phi4Action::new(s.m2, s.lambda)?),
        Theory::Gauge(g) => match g.group {
            GroupName::U1 => Box::new(U1BatchAction(GaugeAction::new(g.action, g.beta))),
            GroupName::Su3 => Box::new(Su3BatchAction(GaugeAction::new(g.action, g.beta))),
        },
    })
}

/// Trains the model of `card`; the output file must not exist yet. Returns the report.
pub fn train_card(card: &TrainingCard, quiet: bool) -> Result<TrainingReport> {
    let theory = card.theory()?;
    let action = batch_action(theory)?;
    let t = &card.train;
    if t.output.exists() {
        return Err(Error::Card(format!(
            "train.output = {:?} exists; remove it or choose another path",
            t.output.display()
        )));
    }
    let architecture = card.flow.architecture(&card.lattice.dims)?;
    let mut model = match &t.init {
        None => FlowModel::new(
            ModelInfo {
                architecture,
                precision: card.flow.precision,
                theory: theory.tag(),
                couplings: theory.couplings(),
                dims: card.lattice.dims.clone(),
                training: serde_json::Value::Null,
            },
            t.seed,
        )?,
        Some(path) => {
            let mut model = FlowModel::load(path, Some(&card.lattice.dims))?;
            let info = model.info();
            if info.theory != theory.tag()
                || info.architecture != architecture
                || info.precision != card.flow.precision
            {
                return Err(Error::Card(format!(
                    "train.init = {:?}: a {} {} model ({}), the card builds a {} {} model ({})",
                    path.display(),
                    spelling(&info.theory),
                    info.architecture.name(),
                    spelling(&info.precision),
                    spelling(&theory.tag()),
                    architecture.name(),
                    spelling(&card.flow.precision)
                )));
            }
            model.set_couplings(theory.couplings());
            model
        }
    };
    if let Some(dir) = t.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let curve_path = sibling(&t.output, "training.jsonl");
    let mut curve_file = std::fs::File::create(&curve_path).map_err(|e| Error::io(&curve_path, e))?;
    let mut failure: Option<Error> = None;
    let mut saved_at = 0;
    let mut progress = Progress::new(0, t.steps as u64);
    let mut show = |p: &TrainingPoint| {
        if failure.is_none() {
            failure = writeln!(curve_file, "{}", json!(p))
                .and_then(|()| curve_file.flush())
                .err()
                .map(|e| Error::io(&curve_path, e));
        }
        let save_due = t.save_every.is_some_and(|every| p.step / every > saved_at / every);
        if failure.is_none() && save_due && p.step < t.steps {
            failure = model.save_with_training(&t.output, &training_record(t, p, p.seconds, None)).err();
            saved_at = p.step;
        }
        if !quiet {
            let figures = format!(
                "loss {:.4} ess {:.3} acc {:.3} |grad| {:.3}",
                p.loss, p.ess, p.acceptance, p.grad_norm
            );
            progress.show("step", p.step as u64, &figures);
        }
    };
    let report = train(&model, action.as_ref(), &t.options(), &mut show)?;
    if let Some(e) = failure {
        return Err(e);
    }
    let last = report.curve.last().expect("at least one point");
    model.set_training(training_record(t, last, report.seconds, Some(report.skipped_steps)));
    model.save(&t.output)?;
    write_atomically(&sibling(&t.output, "curves.svg"), learning_curves(&report).as_bytes())?;
    Ok(report)
}

/// The training record a model file keeps: the `[train]` settings, the steps done and the
/// figures of the curve point `last`; `skipped` (the steps whose loss was not finite) is known
/// at the end of the run only.
fn training_record(
    t: &TrainCard,
    last: &TrainingPoint,
    seconds: f64,
    skipped: Option<usize>,
) -> serde_json::Value {
    json!({
        "steps": t.steps, "steps_done": last.step, "batch": t.batch, "learning_rate": t.learning_rate,
        "schedule": t.schedule, "seed": t.seed, "max_grad_norm": t.max_grad_norm,
        "path_gradient": t.path_gradient, "init": t.init, "seconds": seconds, "skipped_steps": skipped,
        "loss": last.loss, "ess": last.ess, "acceptance": last.acceptance,
    })
}

/// Loss, ESS and acceptance against the step.
fn learning_curves(report: &TrainingReport) -> String {
    let series = |f: fn(&TrainingPoint) -> f64| report.curve.iter().map(|p| (p.step as f64, f(p))).collect();
    let panels = [
        Panel {
            title: "loss mean(log q + S)".into(),
            x_label: "step",
            points: series(|p| p.loss),
            reference: None,
        },
        Panel {
            title: "ESS per sample".into(),
            x_label: "step",
            points: series(|p| p.ess),
            reference: Some(1.0),
        },
        Panel {
            title: "independence Metropolis acceptance".into(),
            x_label: "step",
            points: series(|p| p.acceptance),
            reference: Some(1.0),
        },
    ];
    svg(&panels)
}
