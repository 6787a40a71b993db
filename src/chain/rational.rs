//! Fermion tables with `rational` in a run: their terms (one rational pseudofermion per
//! flavour, [`crate::action::rational`]), the check of the approximation's range against the
//! spectrum of M^dagger M at the start and end of a run, and the reweighting factor of the
//! approximation's error measured with the records (columns NAME.rw).

use super::card::{Card, FermionCard};
use crate::action::rational::{RationalParams, RationalPseudofermion, RationalTerm};
use crate::backend::cpu::PackedGroup;
use crate::checkerboard::Checkerboard;
use crate::dirac::{Clover, Wilson};
use crate::error::Result;
use crate::field::GaugeField;
use crate::rng::{Purpose, StreamKey};
use serde_json::{Map, Value, json};

/// The relative tolerance of the Lanczos estimates of the spectrum's ends.
const LANCZOS_TOLERANCE: f64 = 1e-4;
/// Most Lanczos steps of the spectral check.
const LANCZOS_ITERATIONS: usize = 2000;

/// The rational terms of table `f` (`rational` set) on the layout `cb` of an `ndim`-dimensional
/// lattice, with the table's clover fermions `clover` ([`FermionCard::clover`]; None for
/// Wilson quarks), named by [`FermionCard::term_names`] with `index` the table's position; the
/// pseudofermion streams count on from `stream`.
pub fn rational_terms<G: PackedGroup>(
    f: &FermionCard,
    index: usize,
    cb: &Checkerboard,
    clover: Option<&Clover>,
    ndim: usize,
    stream: u64,
) -> Result<Vec<Box<dyn RationalTerm<G>>>> {
    let rational = f.rational.as_ref().expect("a table with rational");
    let params = RationalParams {
        kappa: f.kappa,
        boundary: f.time_boundary(),
        even_odd: f.even_odd,
        solver: f.solver_params(),
        approximation: rational.approximation()?,
    };
    let term = |name: &str, stream: u64| -> Box<dyn RationalTerm<G>> {
        let (p, cb, boundary) = (params.clone(), cb.clone(), params.boundary);
        match (clover, ndim) {
            (Some(clover), 2) => {
                Box::new(RationalPseudofermion::<G, 2, Clover>::new(name, p, clover.clone(), stream))
            }
            (Some(clover), _) => {
                Box::new(RationalPseudofermion::<G, 4, Clover>::new(name, p, clover.clone(), stream))
            }
            (None, 2) => {
                Box::new(RationalPseudofermion::<G, 2>::new(name, p, Wilson::new(cb, boundary), stream))
            }
            (None, _) => {
                Box::new(RationalPseudofermion::<G, 4>::new(name, p, Wilson::new(cb, boundary), stream))
            }
        }
    };
    Ok(f.term_names(index).iter().zip(stream..).map(|(name, s)| term(name, s)).collect())
}

/// A rational table of the card: its name, its card and one of its terms (every flavour has the
/// same operator and approximation).
struct Table<'c, G: PackedGroup> {
    name: String,
    card: &'c FermionCard,
    term: Box<dyn RationalTerm<G>>,
}

/// The rational tables of the card, on the layout of the card's fermions.
fn rational_tables<'c, G: PackedGroup>(card: &'c Card, u: &GaugeField<G>) -> Result<Vec<Table<'c, G>>> {
    let lattice = u.lattice();
    let cb = Checkerboard::for_fields(lattice.clone(), card.fermions.iter().any(|f| f.even_odd))?;
    let mut tables = Vec::new();
    for (i, f) in card.fermions.iter().enumerate().filter(|(_, f)| f.rational.is_some()) {
        let term = rational_terms::<G>(f, i, &cb, f.clover(&cb).as_ref(), lattice.ndim(), 0)?.remove(0);
        tables.push(Table { name: f.base_name(i), card: f, term });
    }
    Ok(tables)
}

/// The spectral-range check of the card's rational tables on the gauge field `u` (collective):
/// for each table, the ends of the spectrum of |Q| found by Lanczos (its start vector drawn
/// for `update`) against the table's range; the lines to print, a warning where the spectrum
/// reaches outside the range (the approximation then misweighs the configurations whose
/// eigenvalues lie there). Lanczos approaches the ends from inside, so a spectrum reaching just
/// past an end by less than the tolerance 1e-4 can pass unseen.
pub fn spectral_check<G: PackedGroup>(card: &Card, u: &GaugeField<G>, update: u64) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (k, table) in rational_tables(card, u)?.iter().enumerate() {
        let key = StreamKey::new(card.run.seed, Purpose::SpectralCheck, update).derive(k as u64);
        let bounds = table.term.spectral_bounds(u, &key, LANCZOS_TOLERANCE, LANCZOS_ITERATIONS)?;
        let approximation = table.term.approximation();
        let (a, b) = approximation.range;
        let [ra, rb] = table.card.rational.as_ref().expect("a rational table").range;
        let verdict = if bounds.min >= a && bounds.max <= b { "inside" } else { "WARNING: outside" };
        lines.push(format!(
            "{}: |Q| spans [{:.5}, {:.5}] (Lanczos, {} steps), {verdict} rational.range = [{ra}, {rb}] \
             (degree {}, delta {:.1e})",
            table.name,
            bounds.min.sqrt(),
            bounds.max.sqrt(),
            bounds.iterations,
            approximation.degree(),
            approximation.delta,
        ));
    }
    Ok(lines)
}

/// The reweighting factors of the card's rational tables with `reweight_sources > 0` after
/// update `update` (collective): NAME.rw, the factor of the whole table, W^n for n flavours,
/// estimated as the product over the flavours of independent means over `reweight_sources`
/// estimates of [`RationalTerm::reweighting_factor`].
pub fn measure_reweighting<G: PackedGroup>(
    card: &Card,
    u: &GaugeField<G>,
    update: u64,
) -> Result<Map<String, Value>> {
    let mut record = Map::new();
    for (k, table) in rational_tables(card, u)?.iter().enumerate() {
        let sources = table.card.rational.as_ref().expect("a rational table").reweight_sources;
        if sources == 0 {
            continue;
        }
        let key = StreamKey::new(card.run.seed, Purpose::Reweighting, update).derive(k as u64);
        let mut factor = 1.0;
        for flavor in 0..table.card.flavors as u64 {
            let mut sum = 0.0;
            for s in 0..sources {
                sum += table.term.reweighting_factor(u, &key.derive(flavor).derive(s))?;
            }
            factor *= sum / sources as f64;
        }
        record.insert(format!("{}.rw", table.name), json!(factor));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::card::DEFAULT_CARD;
    use crate::geometry::Lattice;
    use crate::group::U1;
    use std::sync::Arc;

    /// The default card on 8x8 with one rational flavour of Wilson quarks at kappa = 0.2, whose
    /// Schur operator keeps |Q_hat| in [1 - 16 kappa^2, 1 + 16 kappa^2] = [0.36, 1.64].
    fn card(rational: &str) -> Card {
        let table = format!(
            "[[fermions]]\nname = \"strange\"\nkind = \"wilson\"\nflavors = 1\nkappa = 0.2\nrational = {rational}\n\
             solver = {{ kind = \"cg\", tolerance = 1e-12, max_iterations = 1000 }}\n"
        );
        Card::parse(&format!("{}{table}", DEFAULT_CARD.replace("[16, 16]", "[8, 8]")), "card.toml").unwrap()
    }

    #[test]
    fn the_spectral_check_warns_only_outside_the_range() {
        let u = GaugeField::<U1>::hot(Arc::new(Lattice::new(&[8, 8]).unwrap()), 3);
        let safe = spectral_check(&card("{ range = [0.36, 1.64], tolerance = 1e-7 }"), &u, 0).unwrap();
        assert_eq!(safe.len(), 1);
        assert!(
            safe[0].starts_with("strange: |Q| spans [") && safe[0].contains(", inside rational.range"),
            "{safe:?}"
        );
        let narrow = spectral_check(&card("{ range = [0.9, 1.1], tolerance = 1e-7 }"), &u, 0).unwrap();
        assert!(narrow[0].contains("WARNING: outside rational.range = [0.9, 1.1]"), "{narrow:?}");
        // the same ends, whichever range is checked
        let ends = |line: &str| line.split(']').next().unwrap().to_string();
        assert_eq!(ends(&safe[0]), ends(&narrow[0]));
    }

    /// NAME.rw is near 1 for an accurate approximation and moves away for a crude one; tables
    /// without sources add nothing.
    #[test]
    fn reweighting_columns_follow_the_accuracy() {
        let u = GaugeField::<U1>::hot(Arc::new(Lattice::new(&[8, 8]).unwrap()), 3);
        let factor = |rational: &str| {
            let record = measure_reweighting(&card(rational), &u, 4).unwrap();
            record["strange.rw"].as_f64().unwrap()
        };
        let accurate = factor("{ range = [0.36, 1.64], tolerance = 1e-9, reweight_sources = 2 }");
        assert!((accurate - 1.0).abs() < 1e-6, "{accurate}");
        let crude = factor("{ range = [0.36, 1.64], degree = 1, reweight_sources = 2 }");
        assert!((crude - 1.0).abs() > 1e-4, "{crude}");
        let none = measure_reweighting(&card("{ range = [0.36, 1.64], degree = 1 }"), &u, 4).unwrap();
        assert!(none.is_empty());
    }
}
