//! Progress of a run on stderr: a bar redrawn in place on a terminal, plain lines otherwise.

use crate::analysis::acceptance::{LOW_ACCEPTANCE, WINDOW, recent_acceptance};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Accept flags of the last [`WINDOW`] updates of this run segment (thermalization included),
/// for the warning of the progress line; the summary repeats it, with step advice, for the
/// measured updates.
#[derive(Clone, Debug, Default)]
pub struct RecentAcceptance {
    flags: Vec<bool>,
}

impl RecentAcceptance {
    /// Records the outcome of the latest update.
    pub fn push(&mut self, accepted: bool) {
        if self.flags.len() == WINDOW {
            self.flags.remove(0);
        }
        self.flags.push(accepted);
    }

    /// The warning the progress line carries once a full window has an acceptance below
    /// [`LOW_ACCEPTANCE`].
    pub fn warning(&self) -> Option<String> {
        let rate = recent_acceptance(&self.flags).filter(|_| self.flags.len() == WINDOW)?;
        (rate < LOW_ACCEPTANCE).then(|| {
            format!("WARNING: acceptance {rate:.2} over the last {WINDOW} (see README, Reading the warnings)")
        })
    }
}

/// Reports the count of work done (trajectories, training steps), a few figures and the
/// estimated time left.
pub struct Progress {
    total: u64,
    first: u64,
    started: Instant,
    terminal: bool,
    last_line: u64,
}

fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

impl Progress {
    /// Progress for updates `first..total` (a resumed run starts past 0).
    pub fn new(first: u64, total: u64) -> Self {
        Progress {
            total,
            first,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_line: first,
        }
    }

    /// Call after update `done` (1-based count of finished updates) with the acceptance so far
    /// and of the recent updates; `name` and `value` are the observable shown (the plaquette
    /// of a gauge field, |m| of a scalar field).
    pub fn update(&mut self, done: u64, acceptance: f64, recent: &RecentAcceptance, name: &str, value: f64) {
        let mut figures = format!("acc {acceptance:.3} {name} {value:.6}");
        if let Some(warning) = recent.warning() {
            figures += &format!(" {warning}");
        }
        self.show("trajectory", done, &figures);
    }

    /// Call after `done` of the total units of work (`unit`: "trajectory", "step"), with the
    /// figures to show after the count.
    pub fn show(&mut self, unit: &str, done: u64, figures: &str) {
        let fraction = done as f64 / self.total as f64;
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = (done - self.first) as f64 / elapsed.max(1e-9);
        let eta = Duration::from_secs_f64(((self.total - done) as f64 / rate.max(1e-9)).min(1e7));
        let text = format!("{unit} {done}/{} {figures} ETA {}", self.total, format_duration(eta));
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let width = 30;
            let filled = (fraction * width as f64).round() as usize;
            let _ = write!(err, "\r[{}{}] {text}  ", "#".repeat(filled), ".".repeat(width - filled));
            if done == self.total {
                let _ = writeln!(err);
            }
        } else if done == self.total || done - self.last_line >= (self.total / 20).max(1) {
            self.last_line = done;
            let _ = writeln!(err, "{text}");
        }
    }
}
