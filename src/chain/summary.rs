//! summary.json and plots, recomputed from measurements.jsonl (`flowhmc analyze DIR`).
//!
//! summary.json: `flowhmc` (version and revision), `acceptance`, `trajectories` (measured), `seconds_per_trajectory` (when the
//! run recorded it) and `observables`: for every numeric key of the records, plus
//! `exp_minus_dh` = exp(-dH), with a charge `topological_susceptibility` = Q^2 / V and with a
//! magnetization m (scalar fields) `susceptibility` = V m^2, the
//! Gamma-method `mean`, `error`, `tau_int`, `tau_int_error`, `window` and `samples`.
//! plots/NAME.svg shows the history and the normalised autocorrelation function of each.

use super::card::Card;
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
}

/// Keys of a record that are bookkeeping, not observables.
const NOT_OBSERVABLES: [&str; 3] = ["trajectory", "accepted", "dh"];

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
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                let bad =
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("line {}: {e}", i + 1));
                Error::io(&path, bad)
            })
        })
        .collect()
}

/// Recomputes the summary of run directory `dir`, writes summary.json and plots/, and
/// returns it. `seconds_per_trajectory` overrides the value kept in an existing summary.
pub fn analyze(dir: &Path, seconds_per_trajectory: Option<f64>) -> Result<Summary> {
    let card = Card::load(&dir.join("card.toml"))?;
    let volume: usize = card.lattice.dims.iter().product();
    let records = read_measurements(dir)?;
    if records.is_empty() {
        return Err(Error::Config(format!("{}: no measurements yet", dir.display())));
    }
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut accepted = 0usize;
    for r in &records {
        accepted += usize::from(r.get("accepted").and_then(Value::as_bool).unwrap_or(false));
        if let Some(dh) = r.get("dh").and_then(Value::as_f64) {
            series.entry("exp_minus_dh".into()).or_default().push((-dh).exp());
        }
        for (k, v) in r {
            if let (false, Some(x)) = (NOT_OBSERVABLES.contains(&k.as_str()), v.as_f64()) {
                series.entry(k.clone()).or_default().push(x);
            }
        }
    }
    if let Some(q) = series.get("topological_charge") {
        let chi = q.iter().map(|q| q * q / volume as f64).collect();
        series.insert("topological_susceptibility".into(), chi);
    }
    if let Some(m) = series.get("magnetization") {
        let chi = m.iter().map(|m| volume as f64 * m * m).collect();
        series.insert("susceptibility".into(), chi);
    }
    let observables: BTreeMap<String, GammaResult> =
        series.iter().filter_map(|(k, v)| Some((k.clone(), gamma_method(v, DEFAULT_S)?))).collect();
    let previous = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Summary>(&b).ok())
        .and_then(|s| s.seconds_per_trajectory);
    let summary = Summary {
        flowhmc: crate::VERSION.to_string(),
        acceptance: accepted as f64 / records.len() as f64,
        trajectories: records.len(),
        seconds_per_trajectory: seconds_per_trajectory.or(previous),
        observables,
    };
    let json = serde_json::to_vec_pretty(&summary).expect("summary serialises");
    write_atomically(&dir.join("summary.json"), &json)?;
    write_plots(dir, &series, &summary)?;
    Ok(summary)
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
                title: format!("{name}: {:.6} +- {:.6}", result.mean, result.error),
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

impl Summary {
    /// The results table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = format!("{:<28} {:>14} {:>12} {:>9}\n", "observable", "mean", "error", "tau_int");
        for (name, r) in &self.observables {
            out += &format!("{name:<28} {:>14.8} {:>12.8} {:>9.2}\n", r.mean, r.error, r.tau_int);
        }
        out += &format!("acceptance {:.4} over {} measured trajectories", self.acceptance, self.trajectories);
        if let Some(s) = self.seconds_per_trajectory {
            out += &format!(", {s:.4} s per trajectory");
        }
        out
    }
}
