//! Run cards: the TOML description of a run, parsed strictly and validated before anything
//! is written.
//!
//! ```toml
//! [lattice]
//! dims = [16, 16]            # x, y, (z,) t; every extent even
//! [gauge]
//! group = "u1"               # "u1" | "su3"
//! action = "wilson"          # "wilson" | "symanzik" | "iwasaki"
//! beta = 3.0
//! [update]
//! kind = "hmc"
//! trajectory_length = 1.0
//! integrator = "omelyan"     # "leapfrog" | "omelyan" | "omelyan4" | "force-gradient"
//! steps = 10
//! reversibility_check = 0    # every n-th trajectory also runs back (0: never)
//! [run]
//! trajectories = 2000        # measured trajectories, after thermalization
//! thermalization = 200
//! seed = 1
//! start = "hot"              # "hot" | "cold" | path to a NERSC or flowhmc gauge file
//! checkpoint_every = 100
//! output = "runs/u1"
//! threads = 0                # 0: all cores
//! [measure]                  # optional
//! flow = { epsilon = 0.02, t_max = 3.0, every = 10 }   # Wilson flow, 4D only
//! hadrons = { every = 10, noise = 4 }   # condensate and pion, needs [[fermions]]
//! ```
//!
//! Nested time scales replace `integrator` and `steps` by a list of levels, outermost first;
//! every monomial ("gauge" for the gauge action) sits on exactly one level:
//! ```toml
//! [[update.levels]]
//! integrator = "omelyan"
//! steps = 4
//! monomials = ["gauge"]
//! ```
//! Unknown keys, wrong types and invalid values are errors that name the key.

use crate::action::GaugeActionKind;
use crate::checkerboard::Checkerboard;
use crate::dirac::{Boundary, Method};
use crate::error::{Error, Result};
use crate::geometry::Lattice;
use crate::integrator::{Integrator, Level, Scheme};
use crate::solver::SolverParams;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole run card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// `[lattice]`.
    pub lattice: LatticeCard,
    /// `[gauge]`.
    pub gauge: GaugeCard,
    /// `[update]`.
    pub update: UpdateCard,
    /// `[run]`.
    pub run: RunCard,
    /// `[measure]` (optional).
    #[serde(default)]
    pub measure: MeasureCard,
    /// `[[fermions]]`: dynamical fermion species (none: pure gauge).
    #[serde(default)]
    pub fermions: Vec<FermionCard>,
}

/// Fermion discretisations a card can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FermionKind {
    /// Wilson fermions (r = 1).
    Wilson,
}

/// Fermion boundary conditions in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundaryName {
    /// psi(t + L_t) = -psi(t).
    #[default]
    Antiperiodic,
    /// psi(t + L_t) = psi(t).
    Periodic,
}

/// Krylov solvers a card can name for the pseudofermion solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverKind {
    /// Conjugate gradient on the normal equations.
    Cg,
    /// The same with f32 iterations and f64 reliable updates to the f64 tolerance.
    #[serde(rename = "mixed-cg")]
    MixedCg,
}

/// `solver = { kind, tolerance, max_iterations }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverCard {
    /// The method.
    pub kind: SolverKind,
    /// Target relative residual.
    pub tolerance: f64,
    /// Most iterations per solve.
    pub max_iterations: usize,
}

/// One `[[fermions]]` table: a doublet of mass-degenerate Wilson quarks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FermionCard {
    /// Monomial name (default "fermions", "fermions2", ... by position); with Hasenbusch
    /// masses the terms are NAME.0 (heaviest) .. NAME.n (the ratio that reaches `kappa`).
    pub name: Option<String>,
    /// The discretisation.
    pub kind: FermionKind,
    /// Number of flavours (2).
    pub flavors: u32,
    /// Hopping parameter.
    pub kappa: f64,
    /// Boundary condition in time.
    #[serde(default)]
    pub boundary: BoundaryName,
    /// Even/odd preconditioning (default true).
    #[serde(default = "yes")]
    pub even_odd: bool,
    /// Hopping parameters of the heavier Hasenbusch operators, increasing, all below `kappa`.
    #[serde(default)]
    pub hasenbusch: Vec<f64>,
    /// The solver of the pseudofermion terms.
    pub solver: SolverCard,
}

fn yes() -> bool {
    true
}

impl FermionCard {
    /// The boundary phase of the fermions in time.
    pub fn boundary_phase(&self) -> Boundary {
        match self.boundary {
            BoundaryName::Antiperiodic => Boundary::ANTIPERIODIC,
            BoundaryName::Periodic => Boundary::PERIODIC,
        }
    }

    /// The Krylov method of the solves (CG on the normal equations, in f64 or mixed precision).
    pub fn solver_method(&self) -> Method {
        match self.solver.kind {
            SolverKind::Cg => Method::Cg,
            SolverKind::MixedCg => Method::MixedCg,
        }
    }

    /// The stopping rule of the solves.
    pub fn solver_params(&self) -> SolverParams {
        SolverParams { tolerance: self.solver.tolerance, max_iterations: self.solver.max_iterations }
    }

    /// The monomial names of this table's terms, `index` its position among the tables.
    pub fn term_names(&self, index: usize) -> Vec<String> {
        let base = self.name.clone().unwrap_or_else(|| {
            if index == 0 { "fermions".to_string() } else { format!("fermions{}", index + 1) }
        });
        if self.hasenbusch.is_empty() {
            vec![base]
        } else {
            (0..=self.hasenbusch.len()).map(|i| format!("{base}.{i}")).collect()
        }
    }

    /// (kappa, kappa_heavy) of each term, in the order of [`FermionCard::term_names`]: the
    /// heaviest two-flavour term first (kappa_heavy = 0), then the ratios.
    pub fn term_kappas(&self) -> Vec<(f64, f64)> {
        let mut chain = self.hasenbusch.clone();
        chain.push(self.kappa);
        let mut heavier = 0.0;
        chain
            .into_iter()
            .map(|k| {
                let pair = (k, heavier);
                heavier = k;
                pair
            })
            .collect()
    }
}

/// `[lattice]`: the extents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatticeCard {
    /// Extents x, y, (z,) t.
    pub dims: Vec<usize>,
}

/// The gauge groups a card can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupName {
    /// U(1).
    U1,
    /// SU(3).
    Su3,
}

/// `[gauge]`: group, action and coupling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaugeCard {
    /// The group.
    pub group: GroupName,
    /// The gauge action.
    pub action: GaugeActionKind,
    /// The coupling beta (> 0).
    pub beta: f64,
}

/// The update kinds (flow-based kinds come with the flow models).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateKind {
    /// Hybrid Monte Carlo.
    Hmc,
}

/// One `[[update.levels]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelCard {
    /// The scheme.
    pub integrator: Scheme,
    /// Steps per drift of the enclosing level.
    pub steps: usize,
    /// Names of the monomials integrated on this level.
    pub monomials: Vec<String>,
}

/// `[update]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateCard {
    /// The update kind.
    pub kind: UpdateKind,
    /// MD time per trajectory.
    pub trajectory_length: f64,
    /// Scheme of the single level (when `levels` is absent).
    pub integrator: Option<Scheme>,
    /// Steps of the single level (when `levels` is absent).
    pub steps: Option<usize>,
    /// Nested levels, outermost first.
    pub levels: Option<Vec<LevelCard>>,
    /// Every n-th trajectory is also integrated back to check reversibility (0: never).
    #[serde(default)]
    pub reversibility_check: u64,
}

/// How a run starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// Haar-random links.
    Hot,
    /// Unit links.
    Cold,
    /// A configuration file (NERSC or native).
    File(PathBuf),
}

/// `[run]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCard {
    /// Measured trajectories after thermalization.
    pub trajectories: u64,
    /// Trajectories discarded first.
    pub thermalization: u64,
    /// Seed of every random stream.
    pub seed: u64,
    /// "hot", "cold" or a path.
    pub start: String,
    /// Write a checkpoint every this many trajectories (>= 1).
    pub checkpoint_every: u64,
    /// Output directory.
    pub output: PathBuf,
    /// Worker threads (0: one per core).
    #[serde(default)]
    pub threads: usize,
}

/// `[measure]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureCard {
    /// Wilson-flow measurements (4D only).
    pub flow: Option<FlowCard>,
    /// Fermionic measurements with the first `[[fermions]]` table's operator.
    pub hadrons: Option<HadronCard>,
}

/// `[measure] hadrons = {...}`: chiral condensate and pion correlator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HadronCard {
    /// Measure every this many measured trajectories.
    pub every: u64,
    /// Noise vectors of the chiral-condensate estimate.
    pub noise: usize,
}

/// `[measure] flow = {...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowCard {
    /// Flow step size.
    pub epsilon: f64,
    /// Largest flow time; the charge is measured there.
    pub t_max: f64,
    /// Measure every this many measured trajectories.
    pub every: u64,
}

/// The monomial name of the gauge action.
pub const GAUGE_MONOMIAL: &str = "gauge";

impl Card {
    /// Parses and validates a card given as TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Card> {
        let card: Card = toml::from_str(text).map_err(|e| Error::Card(format!("{origin}: {e}")))?;
        card.validate().map_err(|e| match e {
            Error::Card(m) => Error::Card(format!("{origin}: {m}")),
            other => other,
        })?;
        Ok(card)
    }

    /// Reads, parses and validates a card file.
    pub fn load(path: &Path) -> Result<Card> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The card as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a card serialises")
    }

    /// Checks every value (the parser has already checked keys and types).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Card(m));
        Lattice::new(&self.lattice.dims)?;
        if !(self.gauge.beta > 0.0 && self.gauge.beta.is_finite()) {
            return bad(format!("gauge.beta = {}: must be a positive number", self.gauge.beta));
        }
        let u = &self.update;
        if !(u.trajectory_length > 0.0 && u.trajectory_length.is_finite()) {
            return bad(format!("update.trajectory_length = {}: must be positive", u.trajectory_length));
        }
        self.integrator()?;
        let r = &self.run;
        if r.checkpoint_every == 0 {
            return bad("run.checkpoint_every = 0: must be at least 1".into());
        }
        if r.trajectories == 0 {
            return bad("run.trajectories = 0: must be at least 1".into());
        }
        if let Start::File(path) = self.start()
            && !path.is_file()
        {
            return bad(format!("run.start = {:?}: no such file", path.display()));
        }
        for (i, f) in self.fermions.iter().enumerate() {
            let at = format!("fermions[{i}]");
            let d = self.lattice.dims.len();
            if d != 2 && d != 4 {
                return bad(format!("{at}: Wilson fermions need a 2D or 4D lattice"));
            }
            Checkerboard::check_dims(&self.lattice.dims).or_else(|e| bad(format!("{at}: {}", strip(e))))?;
            if f.flavors != 2 {
                return bad(format!(
                    "{at}.flavors = {}: only 2 (a degenerate doublet) is supported",
                    f.flavors
                ));
            }
            if !(f.kappa > 0.0 && f.kappa.is_finite()) {
                return bad(format!("{at}.kappa = {}: must be a positive number", f.kappa));
            }
            let mut previous = 0.0;
            for &k in &f.hasenbusch {
                if !(k > previous && k < f.kappa) {
                    return bad(format!(
                        "{at}.hasenbusch = {:?}: need increasing values between 0 and kappa = {}",
                        f.hasenbusch, f.kappa
                    ));
                }
                previous = k;
            }
            if !(f.solver.tolerance > 0.0 && f.solver.tolerance < 1.0) || f.solver.max_iterations == 0 {
                return bad(format!("{at}.solver: need 0 < tolerance < 1 and max_iterations > 0"));
            }
        }
        let names = self.monomial_names();
        if let Some(dup) = names.iter().enumerate().find_map(|(i, n)| names[..i].contains(n).then_some(n)) {
            return bad(format!("fermions: monomial name {dup:?} is used twice"));
        }
        if let Some(h) = &self.measure.hadrons {
            if self.fermions.is_empty() {
                return bad(
                    "measure.hadrons: needs a [[fermions]] table (its kappa and boundary are used)".into()
                );
            }
            if h.every == 0 || h.noise == 0 {
                return bad("measure.hadrons: need every >= 1 and noise >= 1".into());
            }
        }
        if let Some(f) = &self.measure.flow {
            if self.lattice.dims.len() != 4 {
                return bad("measure.flow: the Wilson-flow measurements need a 4D lattice".into());
            }
            if !(f.epsilon > 0.0 && f.t_max >= f.epsilon && f.every >= 1) {
                return bad("measure.flow: need epsilon > 0, t_max >= epsilon, every >= 1".into());
            }
        }
        Ok(())
    }

    /// The start of the chain.
    pub fn start(&self) -> Start {
        match self.run.start.as_str() {
            "hot" => Start::Hot,
            "cold" => Start::Cold,
            path => Start::File(PathBuf::from(path)),
        }
    }

    /// Names of the monomials, in the order the update builds them: "gauge", then the terms
    /// of each `[[fermions]]` table.
    pub fn monomial_names(&self) -> Vec<String> {
        let mut names = vec![GAUGE_MONOMIAL.to_string()];
        for (i, f) in self.fermions.iter().enumerate() {
            names.extend(f.term_names(i));
        }
        names
    }

    /// The integrator the card describes (single level or nested levels).
    pub fn integrator(&self) -> Result<Integrator> {
        let u = &self.update;
        let names = self.monomial_names();
        match (&u.levels, u.integrator, u.steps) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Error::Card(
                "update: give either integrator and steps, or [[update.levels]], not both".into(),
            )),
            (None, Some(scheme), Some(steps)) => Integrator::single(scheme, steps, names.len())
                .map_err(|e| Error::Card(format!("update: {}", strip(e)))),
            (None, _, _) => {
                Err(Error::Card("update: missing integrator and steps (or [[update.levels]])".into()))
            }
            (Some(levels), None, None) => {
                let mut built = Vec::new();
                for (i, l) in levels.iter().enumerate() {
                    let mut monomials = Vec::new();
                    for m in &l.monomials {
                        let idx = names.iter().position(|n| n == m).ok_or_else(|| {
                            Error::Card(format!(
                                "update.levels[{i}]: unknown monomial {m:?} (known: {names:?})"
                            ))
                        })?;
                        monomials.push(idx);
                    }
                    built.push(Level { monomials, steps: l.steps, scheme: l.integrator });
                }
                Integrator::new(built, names.len())
                    .map_err(|e| Error::Card(format!("update.levels: {}", strip(e))))
            }
        }
    }
}

/// The message of an error without its kind, for repeating it under a card key.
fn strip(e: Error) -> String {
    match e {
        Error::Card(m) | Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// The built-in default card of `flowhmc` without arguments: a short 2D U(1) HMC run.
pub const DEFAULT_CARD: &str = r#"[lattice]
dims = [16, 16]

[gauge]
group = "u1"
action = "wilson"
beta = 3.0

[update]
kind = "hmc"
trajectory_length = 1.0
integrator = "omelyan"
steps = 10

[run]
trajectories = 10000
thermalization = 200
seed = 1
start = "hot"
checkpoint_every = 2000
output = "runs/default"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn with(replace: &str, by: &str) -> Result<Card> {
        assert!(DEFAULT_CARD.contains(replace), "{replace}");
        Card::parse(&DEFAULT_CARD.replacen(replace, by, 1), "card.toml")
    }

    fn err(replace: &str, by: &str) -> String {
        with(replace, by).unwrap_err().to_string()
    }

    #[test]
    fn default_card_is_valid_and_round_trips() {
        let card = Card::parse(DEFAULT_CARD, "default").unwrap();
        assert_eq!(Card::parse(&card.to_toml(), "again").unwrap(), card);
        assert_eq!(card.start(), Start::Hot);
    }

    #[test]
    fn bad_cards_name_the_problem() {
        assert!(err("beta = 3.0", "beta = 3.0\ncolour = 3").contains("unknown field `colour`"));
        assert!(err("beta = 3.0", "beta = \"three\"").contains("beta"));
        assert!(err("dims = [16, 16]", "dims = [16, 15]").contains("extent 15"));
        assert!(err("beta = 3.0", "beta = -1.0").contains("gauge.beta = -1"));
        assert!(err("group = \"u1\"", "group = \"su2\"").contains("su2"));
        assert!(err("start = \"hot\"", "start = \"/no/such/file\"").contains("no such file"));
        assert!(err("checkpoint_every = 2000", "checkpoint_every = 0").contains("checkpoint_every"));
        assert!(err("steps = 10", "").contains("missing integrator"));
        assert!(err("integrator = \"omelyan\"", "integrator = \"rk4\"").contains("rk4"));
        let e = err(
            "steps = 10\n",
            "steps = 10\n[[update.levels]]\nintegrator = \"leapfrog\"\nsteps = 2\nmonomials = [\"gauge\"]\n",
        );
        assert!(e.contains("not both"), "{e}");
        assert!(
            err("[run]", "[measure]\nflow = { epsilon = 0.1, t_max = 1.0, every = 1 }\n[run]").contains("4D")
        );
        assert!(err("[lattice]", "[lattice]\n[lattice]").contains("card.toml"));
        let hadrons = err("[run]", "[measure]\nhadrons = { every = 1, noise = 1 }\n[run]");
        assert!(hadrons.contains("needs a [[fermions]] table"), "{hadrons}");
    }

    #[test]
    fn nested_levels() {
        let levels = "integrator = \"omelyan\"\nsteps = 10\n";
        let nested =
            "[[update.levels]]\nintegrator = \"force-gradient\"\nsteps = 3\nmonomials = [\"gauge\"]\n";
        let card = with(levels, nested).unwrap();
        let integrator = card.integrator().unwrap();
        assert_eq!(integrator.levels().len(), 1);
        assert_eq!(integrator.levels()[0].scheme, Scheme::ForceGradient);
        let unknown = nested.replace("[\"gauge\"]", "[\"fermion\"]");
        assert!(err(levels, &unknown).contains("unknown monomial \"fermion\""));
        let twice = format!("{nested}{}", nested.replace("steps = 3", "steps = 2"));
        assert!(err(levels, &twice).contains("exactly one"));
    }

    /// A [[fermions]] table appended to the default card, with `edit` applied to it.
    fn fermions(edit: (&str, &str)) -> Result<Card> {
        let table = "[[fermions]]\nkind = \"wilson\"\nflavors = 2\nkappa = 0.24\nhasenbusch = [0.1, 0.2]\n\
                     solver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 1000 }\n";
        assert!(table.contains(edit.0), "{}", edit.0);
        Card::parse(&format!("{DEFAULT_CARD}{}", table.replacen(edit.0, edit.1, 1)), "card.toml")
    }

    #[test]
    fn fermion_tables() {
        let card = fermions(("", "")).unwrap();
        assert_eq!(card.monomial_names(), ["gauge", "fermions.0", "fermions.1", "fermions.2"]);
        assert_eq!(card.fermions[0].term_kappas(), [(0.1, 0.0), (0.2, 0.1), (0.24, 0.2)]);
        assert!(card.fermions[0].even_odd);
        assert_eq!(card.fermions[0].boundary, BoundaryName::Antiperiodic);
        let plain = fermions(("hasenbusch = [0.1, 0.2]\n", "name = \"quarks\"\n")).unwrap();
        assert_eq!(plain.monomial_names(), ["gauge", "quarks"]);
        assert_eq!(plain.fermions[0].term_kappas(), [(0.24, 0.0)]);
        assert_eq!(plain.fermions[0].solver_method(), Method::Cg);
        let mixed = fermions(("kind = \"cg\"", "kind = \"mixed-cg\"")).unwrap();
        assert_eq!(mixed.fermions[0].solver_method(), Method::MixedCg);
        let e = |edit| fermions(edit).unwrap_err().to_string();
        assert!(e(("flavors = 2", "flavors = 1")).contains("flavors = 1"));
        assert!(e(("kappa = 0.24", "kappa = -0.24")).contains("kappa = -0.24"));
        assert!(e(("[0.1, 0.2]", "[0.2, 0.1]")).contains("increasing"));
        assert!(e(("[0.1, 0.2]", "[0.1, 0.3]")).contains("increasing"));
        assert!(e(("kind = \"cg\"", "kind = \"gmres\"")).contains("gmres"));
        assert!(e(("tolerance = 1e-10", "tolerance = 2.0")).contains("tolerance"));
        assert!(e(("kind = \"wilson\"", "kind = \"staggered\"")).contains("staggered"));
        let dims = Card::parse(
            &format!(
                "{}{}",
                DEFAULT_CARD.replace("[16, 16]", "[6, 6]"),
                "[[fermions]]\nkind = \"wilson\"\n\
             flavors = 2\nkappa = 0.2\nsolver = { kind = \"cg\", tolerance = 1e-10, max_iterations = 10 }\n"
            ),
            "card.toml",
        );
        assert!(dims.unwrap_err().to_string().contains("divisible by 4"));
    }
}
