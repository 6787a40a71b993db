//! Molecular-dynamics integrators with nested time scales.
//!
//! Notation: P(h) is the kick p <- p + h F(U) with the forces of one level's monomials, and
//! Q(h) the drift: U <- exp(h P) U on the innermost level, or h units of MD time of the next
//! level. Level 0 is the outermost (slowest, most expensive force, fewest steps); each level
//! makes `steps` steps per drift of its parent, so level k has step size
//! tau / (n_0 n_1 ... n_k).
//!
//! Schemes for one step of size e:
//! - leapfrog: P(e/2) Q(e) P(e/2);
//! - omelyan (2MN): P(l e) Q(e/2) P((1-2l) e) Q(e/2) P(l e), l = 0.1931833275037836
//!   (Omelyan, Mryglod, Folk 2003);
//! - omelyan4 (4MN5FV, 4th order, openQCD's OMF4): P(v e) Q(r e) P(l e) Q(t e) P(m e)
//!   Q((1-2(t+r)) e) P(m e) Q(t e) P(l e) Q(r e) P(v e), m = (1-2(l+v))/2, with
//!   r = 0.2539785108410595, t = -0.03230286765269967, v = 0.08398315262876693,
//!   l = 0.6822365335719091 (Omelyan, Mryglod, Folk 2003); five forces per step;
//! - force-gradient (4th order): P(e/6) Q(e/2) P~(2e/3) Q(e/2) P(e/6), where P~ evaluates the
//!   force at the displaced field exp(e^2/24 F(U)) U (Yin and Mawhinney, arXiv:1111.5059;
//!   Clark, Joo, Kennedy, Silva, arXiv:1108.1828).
//!
//! Consecutive kicks of a level (the last of one step and the first of the next) are merged
//! into one force evaluation.

use crate::action::Monomial;
use crate::error::{Error, Result};
use crate::phase_space::PhaseSpace;

/// Omelyan's 2MN parameter lambda.
pub const OMELYAN_LAMBDA: f64 = 0.193_183_327_503_783_6;

/// Omelyan's 4MN5FV parameters (rho, theta, vartheta, lambda).
pub const OMELYAN4: (f64, f64, f64, f64) =
    (0.253_978_510_841_059_5, -0.032_302_867_656_699_67, 0.083_983_152_628_766_93, 0.682_236_533_571_909);

/// The most steps a level may make per drift of its parent: its schedule holds up to 11
/// operations a step, built before the first trajectory.
pub const MAX_STEPS: usize = 100_000;

/// An integration scheme for one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Second order, one force per step.
    Leapfrog,
    /// Second-order minimum norm (2MN), two forces per step.
    Omelyan,
    /// Fourth-order minimum norm with five forces per step (4MN5FV, openQCD's OMF4).
    Omelyan4,
    /// Fourth-order force-gradient, three forces per step (one at a displaced field).
    ForceGradient,
}

impl Scheme {
    /// Order p of the scheme: dH per trajectory scales as e^p.
    pub fn order(self) -> u32 {
        match self {
            Scheme::Leapfrog | Scheme::Omelyan => 2,
            Scheme::Omelyan4 | Scheme::ForceGradient => 4,
        }
    }

    fn step(self, e: f64) -> Vec<Op> {
        match self {
            Scheme::Leapfrog => vec![Op::Kick(e / 2.0), Op::Drift(e), Op::Kick(e / 2.0)],
            Scheme::Omelyan => {
                let l = OMELYAN_LAMBDA;
                vec![
                    Op::Kick(l * e),
                    Op::Drift(e / 2.0),
                    Op::Kick((1.0 - 2.0 * l) * e),
                    Op::Drift(e / 2.0),
                    Op::Kick(l * e),
                ]
            }
            Scheme::Omelyan4 => {
                let (r, t, v, l) = OMELYAN4;
                let m = 0.5 * (1.0 - 2.0 * (l + v));
                vec![
                    Op::Kick(v * e),
                    Op::Drift(r * e),
                    Op::Kick(l * e),
                    Op::Drift(t * e),
                    Op::Kick(m * e),
                    Op::Drift((1.0 - 2.0 * (t + r)) * e),
                    Op::Kick(m * e),
                    Op::Drift(t * e),
                    Op::Kick(l * e),
                    Op::Drift(r * e),
                    Op::Kick(v * e),
                ]
            }
            Scheme::ForceGradient => vec![
                Op::Kick(e / 6.0),
                Op::Drift(e / 2.0),
                Op::DisplacedKick { h: 2.0 * e / 3.0, displacement: e * e / 24.0 },
                Op::Drift(e / 2.0),
                Op::Kick(e / 6.0),
            ],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Kick(f64),
    Drift(f64),
    DisplacedKick { h: f64, displacement: f64 },
}

/// One time scale: which monomials it integrates, its step count and scheme.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// Indices into the monomial list handed to [`Integrator::integrate`].
    pub monomials: Vec<usize>,
    /// Steps per drift of the parent level (per trajectory for level 0).
    pub steps: usize,
    /// The scheme of this level.
    pub scheme: Scheme,
}

/// A nested multi-time-scale integrator.
#[derive(Clone, Debug, PartialEq)]
pub struct Integrator {
    levels: Vec<Level>,
    programs: Vec<Vec<Op>>,
}

impl Integrator {
    /// Builds the integrator; every level needs 1 to [`MAX_STEPS`] steps. Each monomial index
    /// must be below `n_monomials` and appear on exactly one level.
    pub fn new(levels: Vec<Level>, n_monomials: usize) -> Result<Self> {
        if levels.is_empty() {
            return Err(Error::Card("the integrator needs at least one level".into()));
        }
        let mut seen = vec![0usize; n_monomials];
        for (i, level) in levels.iter().enumerate() {
            if !(1..=MAX_STEPS).contains(&level.steps) {
                return Err(Error::Card(format!(
                    "integrator level {i}: steps = {}: must be 1 to {MAX_STEPS}",
                    level.steps
                )));
            }
            for &m in &level.monomials {
                if m >= n_monomials {
                    return Err(Error::Card(format!("integrator level {i}: no monomial {m}")));
                }
                seen[m] += 1;
            }
        }
        if let Some(m) = seen.iter().position(|&c| c != 1) {
            return Err(Error::Card(format!(
                "monomial {m} is placed on {} integrator levels; it must be on exactly one",
                seen[m]
            )));
        }
        let programs = levels.iter().map(|l| program(l.scheme, l.steps)).collect();
        Ok(Integrator { levels, programs })
    }

    /// A single level integrating every monomial.
    pub fn single(scheme: Scheme, steps: usize, n_monomials: usize) -> Result<Self> {
        Self::new(vec![Level { monomials: (0..n_monomials).collect(), steps, scheme }], n_monomials)
    }

    /// The levels.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Integrates (U, P) over MD time `tau`. Fails when a force fails (a solver that does not
    /// converge); U and P are then partly evolved.
    pub fn integrate<C: PhaseSpace>(
        &self,
        monomials: &[Box<dyn Monomial<C>>],
        u: &mut C,
        p: &mut C::Momentum,
        tau: f64,
    ) -> Result<()> {
        self.run_level(0, monomials, u, p, tau)
    }

    fn run_level<C: PhaseSpace>(
        &self,
        level: usize,
        monomials: &[Box<dyn Monomial<C>>],
        u: &mut C,
        p: &mut C::Momentum,
        tau: f64,
    ) -> Result<()> {
        let kick = |u: &C, h: f64, p: &mut C::Momentum| -> Result<()> {
            for &m in &self.levels[level].monomials {
                monomials[m].add_force(u, h, p)?;
            }
            Ok(())
        };
        for op in &self.programs[level] {
            match *op {
                Op::Kick(h) => kick(u, h * tau, p)?,
                Op::Drift(h) if level + 1 < self.levels.len() => {
                    self.run_level(level + 1, monomials, u, p, h * tau)?
                }
                Op::Drift(h) => u.drift(p, h * tau),
                Op::DisplacedKick { h, displacement } => {
                    let mut force = u.zero_momenta();
                    kick(u, 1.0, &mut force)?;
                    let mut displaced = u.clone();
                    displaced.drift(&force, displacement * tau * tau);
                    kick(&displaced, h * tau, p)?;
                }
            }
        }
        Ok(())
    }
}

/// The operations of `steps` steps over unit time, with adjacent kicks merged. Coefficients
/// are fractions of the level's time span: drifts and kicks scale with it linearly, the
/// force-gradient displacement quadratically.
fn program(scheme: Scheme, steps: usize) -> Vec<Op> {
    let e = 1.0 / steps as f64;
    let mut ops: Vec<Op> = Vec::new();
    for _ in 0..steps {
        for op in scheme.step(e) {
            match (ops.last_mut(), op) {
                (Some(Op::Kick(a)), Op::Kick(b)) => *a += b,
                _ => ops.push(op),
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_cover_unit_time() {
        for scheme in [Scheme::Leapfrog, Scheme::Omelyan, Scheme::Omelyan4, Scheme::ForceGradient] {
            for steps in [1, 3, 7] {
                let ops = program(scheme, steps);
                let (mut kicks, mut drifts) = (0.0, 0.0);
                for op in &ops {
                    match op {
                        Op::Kick(h) | Op::DisplacedKick { h, .. } => kicks += h,
                        Op::Drift(h) => drifts += h,
                    }
                }
                assert!((kicks - 1.0).abs() < 1e-14 && (drifts - 1.0).abs() < 1e-14);
                // merged kicks: no two kicks in a row
                assert!(ops.windows(2).all(|w| !matches!(w, [Op::Kick(_), Op::Kick(_)])));
            }
        }
        // leapfrog with n steps needs n + 1 force evaluations, omelyan 2n + 1
        assert_eq!(program(Scheme::Leapfrog, 10).iter().filter(|o| matches!(o, Op::Kick(_))).count(), 11);
        assert_eq!(program(Scheme::Omelyan, 10).iter().filter(|o| matches!(o, Op::Kick(_))).count(), 21);
        // omelyan4 with n steps: 5n + 1
        assert_eq!(program(Scheme::Omelyan4, 4).iter().filter(|o| matches!(o, Op::Kick(_))).count(), 21);
    }

    #[test]
    fn rejects_bad_levels() {
        assert!(Integrator::single(Scheme::Omelyan, 0, 1).is_err());
        let e = Integrator::single(Scheme::Leapfrog, MAX_STEPS + 1, 1).unwrap_err().to_string();
        assert!(e.contains("steps = 100001: must be 1 to 100000"), "{e}");
        assert!(Integrator::single(Scheme::Leapfrog, MAX_STEPS, 1).is_ok());
        let l = |m: Vec<usize>| Level { monomials: m, steps: 2, scheme: Scheme::Leapfrog };
        assert!(Integrator::new(vec![l(vec![0]), l(vec![0])], 1).is_err());
        assert!(Integrator::new(vec![l(vec![0]), l(vec![])], 2).is_err());
        assert!(Integrator::new(vec![l(vec![1]), l(vec![0])], 2).is_ok());
    }
}
