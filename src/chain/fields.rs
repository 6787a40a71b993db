//! The fields a chain can sample, and what the run loop needs of each: how a fresh run starts,
//! the monomials of the card's action, the measurement record and the number the progress
//! line shows. Gauge fields of every group (with or without fermions) and real scalar fields
//! (phi^4) implement it.

use super::card::{Card, GAUGE_MONOMIAL, Start, Theory};
use super::measure::{measure, measure_hadrons, measure_scalar};
use super::rational::{measure_reweighting, rational_terms, spectral_check};
use crate::action::clover::CloverDeterminant;
use crate::action::exact_determinant::ExactDeterminant;
use crate::action::fermion::{Pseudofermion, PseudofermionParams};
use crate::action::{Monomial, Phi4Action};
use crate::backend::cpu::PackedGroup;
use crate::checkerboard::Checkerboard;
use crate::dirac::Clover;
use crate::error::{Error, Result};
use crate::field::GaugeField;
use crate::flow::{FlowField, FlowModel, LatentField};
use crate::geometry::Lattice;
use crate::group::Su3;
use crate::io::native::{self, NativeField};
use crate::io::{FileFormat, read_su3_as};
use crate::observables::average_plaquette;
use crate::rng::{Purpose, StreamKey};
use crate::scalar::ScalarField;
use crate::update::StepReport;
use serde_json::{Map, Value};
use std::any::{Any, TypeId};
use std::path::Path;
use std::sync::Arc;

/// A field the run loop samples: a phase space that checkpoints in the native format and
/// that flow models act on.
pub trait ChainField: LatentField + NativeField + PartialEq + 'static {
    /// The field a fresh run starts from (`run.start`); a start file must match the lattice.
    fn start(card: &Card, lattice: &Arc<Lattice>) -> Result<Self>;
    /// The monomials of the card's action, in the order of [`Card::monomial_names`].
    fn monomials(card: &Card, lattice: &Arc<Lattice>) -> Result<Vec<Box<dyn Monomial<Self>>>>;
    /// The record of the measurements after update `update` (0-based; measured trajectory
    /// `update - thermalization`).
    fn measure(&self, card: &Card, report: &StepReport, update: u64) -> Result<Map<String, Value>>;
    /// The observable the progress line shows: its short name and its value.
    fn headline(&self) -> (&'static str, f64);
    /// Checks of the card's approximations on this field before update `update` (collective):
    /// the lines to print (the spectral-range check of rational tables,
    /// [`super::rational::spectral_check`]); none by default.
    fn check_approximations(&self, _card: &Card, _update: u64) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Loads a start configuration onto `lattice`, whose extents it must have: native files of
/// any field, NERSC, ILDG and openQCD files of 4D SU(3) fields (the format detected from the
/// file, [`FileFormat::detect`]); collective on a cut lattice, with the same error on every
/// rank.
pub fn load_configuration<F: NativeField + 'static>(path: &Path, lattice: &Arc<Lattice>) -> Result<F> {
    let format = FileFormat::detect_on_root(path, lattice.comm().as_ref(), |format| {
        if format != FileFormat::Native && TypeId::of::<F>() != TypeId::of::<GaugeField<Su3>>() {
            return Err(Error::Config(format!(
                "{}: a {} file holds SU(3) links, the card asks for {}",
                path.display(),
                format.name(),
                F::kind()
            )));
        }
        Ok(())
    })?;
    if format == FileFormat::Native {
        Ok(native::read_into::<F>(path, lattice)?.0)
    } else {
        let su3: Box<dyn Any> = Box::new(read_su3_as(format, path, lattice)?);
        Ok(*su3.downcast::<F>().expect("F is GaugeField<Su3>"))
    }
}

/// A sample of the card's flow model: the hot start of chains with flow updates. An
/// independence sampler started far from where its model puts weight (a Gaussian field in a
/// near-critical phi^4 theory) keeps rejecting for a very long time; a model sample is a
/// typical start.
/// The pseudofermion term `name` with `params` of clover quarks `clover` (shared by the
/// table's terms), or Wilson quarks on the layout `cb` (`clover` None), on an
/// `ndim`-dimensional lattice.
fn pseudofermion<G: PackedGroup>(
    clover: Option<&Clover>,
    name: &str,
    params: PseudofermionParams,
    cb: &Checkerboard,
    stream: u64,
    ndim: usize,
) -> Box<dyn Monomial<GaugeField<G>>> {
    let cb = cb.clone();
    match (clover, ndim) {
        (Some(clover), 2) => {
            Box::new(Pseudofermion::<G, 2, Clover>::with_discretization(name, params, clover.clone(), stream))
        }
        (Some(clover), _) => {
            Box::new(Pseudofermion::<G, 4, Clover>::with_discretization(name, params, clover.clone(), stream))
        }
        (None, 2) => Box::new(Pseudofermion::<G, 2>::new(name, params, cb, stream)),
        (None, _) => Box::new(Pseudofermion::<G, 4>::new(name, params, cb, stream)),
    }
}

fn model_sample<F: FlowField>(card: &Card) -> Result<F> {
    let key = StreamKey::new(card.run.seed, Purpose::HotStart, 0);
    Ok(card_model(card)?.propose::<F>(&[key])?.pop().expect("one proposal per key"))
}

/// The model `update.model` of the card, checked to sample the card's theory and lattice.
pub fn card_model(card: &Card) -> Result<FlowModel> {
    let path = card.update.model.as_ref().ok_or_else(|| Error::Card("update: no model".into()))?;
    let model = FlowModel::load(path, None)?;
    model
        .check_matches(card.theory()?.tag(), &card.lattice.dims)
        .map_err(|e| Error::Card(format!("update.model = {:?}: {e}", path.display())))?;
    Ok(model)
}

fn gauge_card(card: &Card) -> Result<&super::card::GaugeCard> {
    match card.theory()? {
        Theory::Gauge(g) => Ok(g),
        Theory::Scalar(_) => Err(Error::Card("the card has [scalar], a gauge field was asked for".into())),
    }
}

impl<G: PackedGroup> ChainField for GaugeField<G> {
    fn start(card: &Card, lattice: &Arc<Lattice>) -> Result<Self> {
        Ok(match card.start() {
            Start::Hot if card.update.kind.uses_flow() => model_sample(card)?,
            Start::Hot => GaugeField::hot(lattice.clone(), card.run.seed),
            Start::Cold => GaugeField::cold(lattice.clone()),
            Start::File(path) => load_configuration(&path, lattice)?,
        })
    }

    fn monomials(card: &Card, lattice: &Arc<Lattice>) -> Result<Vec<Box<dyn Monomial<Self>>>> {
        let gauge = gauge_card(card)?;
        let mut monomials: Vec<Box<dyn Monomial<Self>>> = vec![Box::new(gauge.action())];
        debug_assert_eq!(monomials[0].name(), GAUGE_MONOMIAL);
        if card.fermions.is_empty() {
            return Ok(monomials);
        }
        // the even/odd layout where a table preconditions (the card checked the extents) or
        // the extents admit it, else the natural one (full fields on any even extents)
        let cb = Checkerboard::for_fields(lattice.clone(), card.fermions.iter().any(|f| f.even_odd))?;
        let mut stream = 0;
        for (i, f) in card.fermions.iter().enumerate() {
            let (boundary, solver) = (f.time_boundary(), f.solver_params());
            if f.exact_determinant {
                let name = &f.term_names(i)[0];
                monomials.push(match lattice.ndim() {
                    2 => Box::new(ExactDeterminant::<G, 2>::new(name, f.kappa, boundary, cb.clone())?),
                    _ => Box::new(ExactDeterminant::<G, 4>::new(name, f.kappa, boundary, cb.clone())?),
                });
                continue;
            }
            // one set of clover terms per gauge field for the table's pseudofermions and determinant
            let clover = f.clover(&cb);
            if f.rational.is_some() {
                let terms = rational_terms::<G>(f, i, &cb, clover.as_ref(), lattice.ndim(), stream)?;
                stream += terms.len() as u64;
                monomials.extend(terms.into_iter().map(|t| t as Box<dyn Monomial<Self>>));
            } else {
                for (name, (kappa, kappa_heavy)) in f.term_names(i).iter().zip(f.term_kappas()) {
                    let params = PseudofermionParams {
                        kappa,
                        kappa_heavy,
                        boundary,
                        even_odd: f.even_odd,
                        solver,
                        mixed_precision: f.solver.kind == super::card::SolverKind::MixedCg,
                    };
                    monomials.push(pseudofermion::<G>(
                        clover.as_ref(),
                        name,
                        params,
                        &cb,
                        stream,
                        lattice.ndim(),
                    ));
                    stream += 1;
                }
            }
            if let (Some(name), Some(clover)) = (f.determinant_name(i), clover) {
                monomials.push(Box::new(CloverDeterminant::new(&name, clover, f.kappa, f.flavors)));
            }
        }
        Ok(monomials)
    }

    fn measure(&self, card: &Card, report: &StepReport, update: u64) -> Result<Map<String, Value>> {
        let measured = update - card.run.thermalization;
        let flow = card.measure.flow.as_ref().filter(|f| measured.is_multiple_of(f.every));
        let mut record = measure(self, report, update + 1, flow, !card.fermions.is_empty());
        if let Some(h) = card.measure.hadrons.as_ref().filter(|h| measured.is_multiple_of(h.every)) {
            record.extend(measure_hadrons(self, &card.fermions[0], h, card.run.seed, update)?);
        }
        record.extend(measure_reweighting(card, self, update)?);
        Ok(record)
    }

    fn headline(&self) -> (&'static str, f64) {
        ("plaq", average_plaquette(self))
    }

    fn check_approximations(&self, card: &Card, update: u64) -> Result<Vec<String>> {
        spectral_check(card, self, update)
    }
}

impl ChainField for ScalarField {
    fn start(card: &Card, lattice: &Arc<Lattice>) -> Result<Self> {
        Ok(match card.start() {
            Start::Hot if card.update.kind.uses_flow() => model_sample(card)?,
            Start::Hot => {
                ScalarField::gaussian(lattice.clone(), &StreamKey::new(card.run.seed, Purpose::HotStart, 0))
            }
            Start::Cold => ScalarField::zeros(lattice.clone()),
            Start::File(path) => load_configuration(&path, lattice)?,
        })
    }

    fn monomials(card: &Card, _lattice: &Arc<Lattice>) -> Result<Vec<Box<dyn Monomial<Self>>>> {
        match card.theory()? {
            Theory::Scalar(s) => Ok(vec![Box::new(Phi4Action::new(s.m2, s.lambda)?)]),
            Theory::Gauge(_) => Err(Error::Card("the card has [gauge], a scalar field was asked for".into())),
        }
    }

    fn measure(&self, _card: &Card, report: &StepReport, update: u64) -> Result<Map<String, Value>> {
        Ok(measure_scalar(self, report, update + 1))
    }

    fn headline(&self) -> (&'static str, f64) {
        ("|m|", (self.magnetization() / self.lattice().volume() as f64).abs())
    }
}
