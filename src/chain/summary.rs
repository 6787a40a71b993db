//! summary.json and plots, recomputed from measurements.jsonl (`flowhmc analyze DIR`).
//!
//! summary.json: `flowhmc` (version and revision), `acceptance`, `trajectories` (measured), `seconds_per_trajectory` (when the
//! run recorded it), `observables` and `warnings`. `observables` has, for every numeric key of
//! the records, plus `exp_minus_dh` = exp(-dH), with a charge `topological_susceptibility` =
//! Q^2 / V and with a magnetization m (scalar fields) `susceptibility` = V m^2, the
//! Gamma-method `mean`, `error`, `tau_int`, `tau_int_error`, `window`, `samples` and
//! `constant` (the value never changed: not measured); with a topological charge also
//! `error_tail` and `tau_int_tail`, the tail correction with tau_exp = the larger tau_int of
//! the charge and its square ([`AnalysisOptions`]). `warnings` says in words what makes the
//! run suspect (README, "Reading the warnings").
//! plots/NAME.svg shows the history and the normalised autocorrelation function of each.
//!
//! A record key holds a number (an observable), an array (a curve, not analysed) or, for
//! the bookkeeping keys, `trajectory` a number and `accepted` true or false. Null stands for a
//! number serde_json cannot write (NaN, infinity) and is allowed for [`NULLABLE`] keys only;
//! any other value is an error naming the file, line and key.

use super::card::Card;
use crate::analysis::acceptance::{
    LOW_ACCEPTANCE, TARGET_ACCEPTANCE, WINDOW, dh_for_acceptance, recent_acceptance, step_factor,
};
use crate::analysis::drift::drift;
use crate::analysis::gamma::{DEFAULT_S, GammaResult, autocorrelation, gamma_method};
use crate::analysis::plot::{Panel, svg};
use crate::error::{Error, Result};
use crate::io::write_atomically;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The analysed results of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// flowhmc version and source revision that wrote the summary.
    pub flowhmc: String,
    /// Fraction of accepted measured trajectories.
    pub acceptance: f64,
    /// Number of measured trajectories.
    pub trajectories: usize,
    /// Wall-clock seconds per trajectory of the last run segment, if recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seconds_per_trajectory: Option<f64>,
    /// Gamma-method results per observable.
    pub observables: BTreeMap<String, GammaResult>,
    /// What makes the run suspect, one sentence with advice each (README, "Reading the
    /// warnings"); empty for a clean run and in summaries written before warnings existed.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// How [`analyze_with`] analyses a run.
#[derive(Clone, Copy, Debug)]
pub struct AnalysisOptions {
    /// Add the tail of the slowest mode to every error when the records have a
    /// `topological_charge` (Schaefer, Sommer, Virotta; [`GammaResult::with_tail`]), with
    /// tau_exp the larger tau_int of the charge and of its square. On by default.
    pub tail: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions { tail: true }
    }
}

/// Keys of a record that are bookkeeping, not observables.
const NOT_OBSERVABLES: [&str; 3] = ["trajectory", "accepted", "dh"];

/// Keys whose value may be null: dH and the reversibility distances when they were not finite,
/// and `flow_t0` when t^2 E(t) did not reach 0.3 by t_max.
pub const NULLABLE: [&str; 4] = ["dh", "reversibility_du", "reversibility_dh", "flow_t0"];

/// Observables whose mean a symmetry of the action fixes at 0 (centre symmetry, parity of the
/// charge, phi -> -phi): they move between sectors on a time scale that no thermalization
/// shortens, so a difference between the parts of their chain is tunnelling, not drift, and
/// they are not tested; their even partners (`polyakov_loop_abs`, `topological_susceptibility`,
/// `abs_magnetization`, `susceptibility`) are.
const SECTOR_ODD: [&str; 4] =
    ["polyakov_loop_re", "topological_charge", "flow_topological_charge", "magnetization"];

/// Reads measurements.jsonl of `dir`. A last line without its newline is a record that a
/// killed run was still writing: it is left out, as a resume drops it.
pub fn read_measurements(dir: &Path) -> Result<Vec<Map<String, Value>>> {
    let path = dir.join("measurements.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    // everything up to the last newline
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete
        .lines()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| bad_line(&path, i, e)))
        .collect()
}

/// The error for line `index + 1` of `path`.
fn bad_line(path: &Path, index: usize, what: impl std::fmt::Display) -> Error {
    let bad = std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {}: {what}", index + 1));
    Error::io(path, bad)
}

/// What one measured update did: accepted, its dH (`None` when not finite) and whether it
/// was a flow proposal (records with `flow_accepted`) rather than an MD trajectory.
struct Step {
    accepted: bool,
    dh: Option<f64>,
    flow: bool,
}

/// The time series of a run's records, checked key by key.
struct Records {
    steps: Vec<Step>,
    series: BTreeMap<String, Vec<f64>>,
}

/// Splits the records of `path` into steps and observable series. A key with a value of the
/// wrong kind is an error naming line and key; keys absent from some records (measurements
/// taken every n-th update) have shorter series.
fn split_records(records: &[Map<String, Value>], path: &Path) -> Result<Records> {
    let mut steps = Vec::with_capacity(records.len());
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let accepted = match r.get("accepted") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad_line(path, i, format!("\"accepted\" is {other}, not true or false")));
            }
        };
        let mut dh = None;
        for (k, v) in r {
            if k == "accepted" {
                continue;
            }
            let x = match v {
                Value::Number(n) => n.as_f64(),
                Value::Array(_) if !NOT_OBSERVABLES.contains(&k.as_str()) => None,
                Value::Null if NULLABLE.contains(&k.as_str()) => None,
                _ => return Err(bad_line(path, i, format!("\"{k}\" is {v}, where a number is expected"))),
            };
            match (k.as_str(), x) {
                ("dh", _) => dh = x,
                (_, Some(x)) if !NOT_OBSERVABLES.contains(&k.as_str()) => {
                    series.entry(k.clone()).or_default().push(x)
                }
                _ => {}
            }
        }
        if let Some(dh) = dh {
            series.entry("exp_minus_dh".into()).or_default().push((-dh).exp());
        }
        steps.push(Step { accepted, dh, flow: r.contains_key("flow_accepted") });
    }
    Ok(Records { steps, series })
}

/// Recomputes the summary of run directory `dir` with the default [`AnalysisOptions`].
pub fn analyze(dir: &Path, seconds_per_trajectory: Option<f64>) -> Result<Summary> {
    analyze_with(dir, seconds_per_trajectory, AnalysisOptions::default())
}

/// Recomputes the summary of run directory `dir`, writes summary.json and plots/, and
/// returns it. `seconds_per_trajectory` overrides the value kept in an existing summary.
pub fn analyze_with(
    dir: &Path,
    seconds_per_trajectory: Option<f64>,
    options: AnalysisOptions,
) -> Result<Summary> {
    let card = Card::load(&dir.join("card.toml"))?;
    let volume: usize = card.lattice.dims.iter().product();
    let records = read_measurements(dir)?;
    if records.is_empty() {
        return Err(Error::Config(format!("{}: no measurements yet", dir.display())));
    }
    let Records { steps, mut series } = split_records(&records, &dir.join("measurements.jsonl"))?;
    if let Some(q) = series.get("topological_charge") {
        let chi = q.iter().map(|q| q * q / volume as f64).collect();
        series.insert("topological_susceptibility".into(), chi);
    }
    if let Some(m) = series.get("magnetization") {
        let chi = m.iter().map(|m| volume as f64 * m * m).collect();
        series.insert("susceptibility".into(), chi);
    }
    let mut observables: BTreeMap<String, GammaResult> =
        series.iter().filter_map(|(k, v)| Some((k.clone(), gamma_method(v, DEFAULT_S)?))).collect();
    let tau_exp = options.tail.then(|| slowest_mode(&observables)).flatten();
    if let Some(tau_exp) = tau_exp {
        for (name, result) in observables.iter_mut() {
            *result = result.with_tail(&series[name], tau_exp);
        }
    }
    let previous = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Summary>(&b).ok())
        .and_then(|s| s.seconds_per_trajectory);
    let accepted = steps.iter().filter(|s| s.accepted).count();
    let summary = Summary {
        flowhmc: crate::VERSION.to_string(),
        acceptance: accepted as f64 / records.len() as f64,
        trajectories: records.len(),
        seconds_per_trajectory: seconds_per_trajectory.or(previous),
        warnings: warnings(&card, &steps, &series, &observables, tau_exp),
        observables,
    };
    let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
    write_atomically(&dir.join("summary.json"), &json)?;
    write_plots(dir, &series, &summary)?;
    Ok(summary)
}

/// tau_exp for the tail correction: the larger tau_int of `topological_charge` and
/// `topological_susceptibility`, when the charge was measured and changed.
fn slowest_mode(observables: &BTreeMap<String, GammaResult>) -> Option<f64> {
    ["topological_charge", "topological_susceptibility"]
        .iter()
        .filter_map(|k| observables.get(*k).filter(|r| !r.constant))
        .map(|r| r.tau_int)
        .reduce(f64::max)
}

/// The warnings of a run (README, "Reading the warnings"): a stuck chain (acceptance of the
/// last [`WINDOW`] measured updates below [`LOW_ACCEPTANCE`]) with step advice for its MD
/// trajectories, and every observable (but the [`SECTOR_ODD`] ones) whose first quarter drifts
/// from its last half ([`crate::analysis::drift`], with the tail of the slow mode `tau_exp` when
/// the analysis has one).
fn warnings(
    card: &Card,
    steps: &[Step],
    series: &BTreeMap<String, Vec<f64>>,
    observables: &BTreeMap<String, GammaResult>,
    tau_exp: Option<f64>,
) -> Vec<String> {
    let mut out = Vec::new();
    let accepted: Vec<bool> = steps.iter().map(|s| s.accepted).collect();
    if let Some(a) = recent_acceptance(&accepted).filter(|&a| a < LOW_ACCEPTANCE) {
        let window = &steps[steps.len().saturating_sub(WINDOW)..];
        out.push(format!(
            "acceptance {a:.2} over the last {} measured updates (below {LOW_ACCEPTANCE}): the chain is stuck.{}",
            window.len(),
            stuck_advice(card, window)
        ));
    }
    let thermalization = card.run.thermalization;
    for (name, data) in series {
        if SECTOR_ODD.contains(&name.as_str()) || observables.get(name).is_none_or(|r| r.constant) {
            continue;
        }
        if let Some(d) = drift(data, tau_exp).filter(|d| d.drifts()) {
            out.push(format!(
                "{name} drifts: the first {} measurements differ from the last {} by {:.1} sigma; \
                 thermalize longer (thermalization = {} or more)",
                d.first,
                d.last,
                d.sigma,
                thermalization + (data.len() - d.last) as u64
            ));
        }
    }
    out
}

/// What to do about the stuck `window`: step advice from the \<dH> of its MD trajectories
/// ([`crate::analysis::acceptance`]), and a remark on its flow proposals.
fn stuck_advice(card: &Card, window: &[Step]) -> String {
    let mut out = String::new();
    let md: Vec<&Step> = window.iter().filter(|s| !s.flow).collect();
    let integrator = card.integrator().ok().filter(|_| card.update.kind.uses_md());
    if let (false, Some(integrator)) = (md.is_empty(), integrator) {
        let finite: Vec<f64> = md.iter().filter_map(|s| s.dh).collect();
        let levels = integrator.levels();
        let order = levels.iter().map(|l| l.scheme.order()).min().unwrap_or(2);
        let mean_dh = finite.iter().sum::<f64>() / finite.len() as f64;
        let target = dh_for_acceptance(TARGET_ACCEPTANCE);
        out += &if finite.len() < md.len() {
            format!(
                " dH was not finite in {} of the {} MD trajectories there: the integrator is unstable at \
                 this step size; use several times as many steps.",
                md.len() - finite.len(),
                md.len()
            )
        } else if mean_dh <= target {
            format!(" <dH> = {mean_dh:.3} there is small: the step size is not the cause.")
        } else {
            let factor = step_factor(mean_dh, order);
            let steps = (levels[0].steps as f64 * factor).ceil();
            let outermost = if levels.len() > 1 { " on the outermost level" } else { "" };
            format!(
                " <dH> = {mean_dh:.3} there; it grows as eps^{} with this order-{order} integrator, so \
                 acceptance {TARGET_ACCEPTANCE} (<dH> = {target:.2}) needs about {factor:.1} times as many \
                 steps (steps = {steps}{outermost}).",
                2 * order
            )
        };
    }
    if window.iter().any(|s| s.flow) {
        out += " The flow model's proposals are rarely accepted: train it longer, or mix in HMC \
                (kind = \"schedule\").";
    }
    out
}

fn write_plots(dir: &Path, series: &BTreeMap<String, Vec<f64>>, summary: &Summary) -> Result<()> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    for (name, data) in series {
        let Some(result) = summary.observables.get(name) else {
            continue;
        };
        let t_max = (5 * result.window).max(20).min(data.len().saturating_sub(1));
        let panels = [
            Panel {
                title: match (result.constant, result.error_tail) {
                    (true, _) => format!("{name}: {:.6}, never changed (not measured)", result.mean),
                    (false, None) => format!("{name}: {:.6} +- {:.6}", result.mean, result.error),
                    (false, Some(e)) => {
                        format!("{name}: {:.6} +- {:.6} (with tail +- {e:.6})", result.mean, result.error)
                    }
                },
                x_label: "measurement",
                points: data.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect(),
                reference: Some(result.mean),
            },
            Panel {
                title: format!(
                    "normalised autocorrelation, tau_int = {:.2} (W = {})",
                    result.tau_int, result.window
                ),
                x_label: "t",
                points: autocorrelation(data, t_max)
                    .into_iter()
                    .enumerate()
                    .map(|(t, r)| (t as f64, r))
                    .collect(),
                reference: Some(0.0),
            },
        ];
        write_atomically(&plots.join(format!("{name}.svg")), svg(&panels).as_bytes())?;
    }
    Ok(())
}

/// `x` right-aligned in `width` characters with 8 decimals, or in scientific notation when
/// those would show a nonzero number as 0 (an error of 1e-74 is not an error of 0).
fn fixed_or_scientific(x: f64, width: usize) -> String {
    if x != 0.0 && x.abs() < 5e-9 { format!("{x:>width$.3e}") } else { format!("{x:>width$.8}") }
}

impl Summary {
    /// The results table printed at the end of a run: mean, error and tau_int of each
    /// observable (with their tail-corrected values when the analysis made them; "not
    /// measured" for one that never changed), the acceptance, then one line per warning.
    pub fn table(&self) -> String {
        let tail = self.observables.values().any(|r| r.error_tail.is_some());
        let mut out = format!("{:<28} {:>14} {:>12} {:>9}", "observable", "mean", "error", "tau_int");
        if tail {
            out += &format!(" {:>12} {:>12}", "error_tail", "tau_int_tail");
        }
        out += "\n";
        for (name, r) in &self.observables {
            if r.constant {
                out += &format!("{name:<28} {:>14.8}   not measured (never changed)\n", r.mean);
                continue;
            }
            let (mean, error) = (fixed_or_scientific(r.mean, 14), fixed_or_scientific(r.error, 12));
            out += &format!("{name:<28} {mean} {error} {:>9.2}", r.tau_int);
            if let (Some(e), Some(t)) = (r.error_tail, r.tau_int_tail) {
                out += &format!(" {} {t:>12.2}", fixed_or_scientific(e, 12));
            }
            out += "\n";
        }
        out += &format!("acceptance {:.4} over {} measured trajectories", self.acceptance, self.trajectories);
        if let Some(s) = self.seconds_per_trajectory {
            out += &format!(", {s:.4} s per trajectory");
        }
        for w in &self.warnings {
            out += &format!("\nwarning: {w}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_errors_are_printed_as_what_they_are() {
        assert_eq!(fixed_or_scientific(0.5, 12), "  0.50000000");
        assert_eq!(fixed_or_scientific(0.0, 12), "  0.00000000");
        // exp(-dH) of a stuck chain: 8 decimals would print an error of 0
        assert_eq!(fixed_or_scientific(2.5e-74, 12), "   2.500e-74");
        assert_eq!(fixed_or_scientific(-3e-9, 12), "   -3.000e-9");
    }
}
