//! Gauge fields and algebra-valued fields (forces, momenta) to and from host buffers.

use super::check_len;
use super::handover;
use super::layout::ResolvedGaugeLayout;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::comm::{Comm, agreed};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::geometry::Lattice;
use crate::group::LinkMatrix;
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;

/// Reads the links of a host buffer into a gauge field (this rank's block on a cut lattice).
/// Fails, naming the first offending link by its global coordinates, when the buffer has the
/// wrong length, holds a non-finite value, or a link is farther than `tolerance` from the
/// group ([`crate::group::Group::unitarity_violation`]). Collective: a rank's failure is every
/// rank's, agreed on before the field's halo is exchanged.
pub fn import_gauge<G: PackedGroup, R: Real>(
    layout: &ResolvedGaugeLayout,
    lattice: &Arc<Lattice>,
    buffer: &[R],
    tolerance: f64,
) -> Result<GaugeField<G>> {
    let comm = lattice.comm().as_ref();
    let d = lattice.ndim();
    let where_ = |l: usize| format!("the link at {:?} in direction {}", lattice.global_coords(l / d), l % d);
    agreed(comm, check_len("gauge field", buffer.len(), layout.len()))?;
    let buffer = with_handovers(layout, comm, buffer);
    let links: Vec<Option<G::Elem>> = (0..lattice.volume() * d)
        .into_par_iter()
        .map(|l| read_matrix::<G::Elem, R>(layout, l, &buffer))
        .collect();
    let links = match links.iter().position(Option::is_none) {
        Some(l) => Err(Error::Host(format!("gauge field: {} is not finite", where_(l)))),
        None => Ok(links),
    };
    let links = agreed(comm, links)?;
    let u = GaugeField::try_from_fn(lattice.clone(), |site, mu| links[site * d + mu].ok_or(()))
        .expect("every link was read");
    let violation = u.max_unitarity_violation();
    if violation <= tolerance {
        return Ok(u);
    }
    // the first offending link, named in a message that does not depend on the thread count
    let first = (0..lattice.volume() * d).find_map(|l| {
        let v = G::unitarity_violation(&u.link(l / d, l % d));
        (v.is_nan() || v > tolerance).then(|| {
            format!(
                "gauge field: {} is not in {} (distance {v:.3e}, tolerance {tolerance:.1e}); \
                 reunitarize the field or raise the tolerance",
                where_(l),
                G::NAME
            )
        })
    });
    // the packed and the scalar distance differ in rounding: a link right at the tolerance may
    // pass one and fail the other; then the packed check's verdict stands
    comm.agree(first.map_or(Ok(()), |m| Err(Error::Host(m))))?;
    Err(Error::Host(format!("gauge field: a link is farther than {tolerance:.1e} from {}", G::NAME)))
}

/// Writes the links of `u` into a host buffer (rounded to R). Fails, without writing, when the
/// buffer has the wrong length.
pub fn export_gauge<G: PackedGroup, R: Real>(
    layout: &ResolvedGaugeLayout,
    u: &GaugeField<G>,
    buffer: &mut [R],
) -> Result<()> {
    write_links("gauge field", layout, u.lattice(), buffer, |site, mu| u.link(site, mu))
}

/// Writes an algebra-valued field (a force or momentum) into a host buffer laid out like the
/// gauge field: each entry is the N x N matrix sum_a p_a T_a of [`crate::group`] (anti-Hermitian
/// and, for SU(3), traceless). Fails, without writing, when the buffer has the wrong length.
pub fn export_algebra<G: PackedGroup, R: Real>(
    layout: &ResolvedGaugeLayout,
    lattice: &Lattice,
    p: &MomentumField<G>,
    buffer: &mut [R],
) -> Result<()> {
    write_links("force field", layout, lattice, buffer, |site, mu| G::alg_matrix(&p.at(lattice, site, mu)))
}

/// The host buffer with the links the block above holds for this block appended (openQCD's
/// layout on a cut lattice, collective: see [`super::handover`]); the buffer itself otherwise.
fn with_handovers<'a, R: Real>(
    layout: &ResolvedGaugeLayout,
    comm: &dyn Comm,
    buffer: &'a [R],
) -> Cow<'a, [R]> {
    if layout.handovers().is_empty() {
        return Cow::Borrowed(buffer);
    }
    let appended = handover::receive_own(comm, layout.handovers(), buffer, layout.reals_per_link());
    Cow::Owned([buffer, &appended].concat())
}

/// Writes `matrix(site, mu)` of every link into a host buffer; fails, without writing, when the
/// buffer has the wrong length (collective: the length is agreed on, and with openQCD's layout
/// on a cut lattice the links across the faces move between the ranks).
fn write_links<M: LinkMatrix, R: Real>(
    what: &str,
    layout: &ResolvedGaugeLayout,
    lattice: &Lattice,
    buffer: &mut [R],
    matrix: impl Fn(usize, usize) -> M,
) -> Result<()> {
    let comm = lattice.comm().as_ref();
    agreed(comm, check_len(what, buffer.len(), layout.len()))?;
    let d = lattice.ndim();
    if layout.handovers().is_empty() {
        for l in 0..lattice.volume() * d {
            write_matrix(layout, l, &matrix(l / d, l % d), buffer);
        }
        return Ok(());
    }
    // the links held by the block above are written after the buffer, then sent there
    let reals = layout.reals_per_link();
    let appended: usize = layout.handovers().iter().map(|h| h.held.len()).sum();
    let mut extended = [&buffer[..], &vec![R::ZERO; appended * reals]].concat();
    for l in 0..lattice.volume() * d {
        write_matrix(layout, l, &matrix(l / d, l % d), &mut extended);
    }
    let (local, own) = extended.split_at(buffer.len());
    buffer.copy_from_slice(local);
    handover::send_own(comm, layout.handovers(), own, buffer, reals);
    Ok(())
}

/// The matrix of link `l` (flowhmc order `site * D + mu`), or `None` if an entry is not finite.
fn read_matrix<M: LinkMatrix, R: Real>(layout: &ResolvedGaugeLayout, l: usize, buffer: &[R]) -> Option<M> {
    let base = layout.offset(l);
    let entries = layout.entries();
    let mut reals = [0.0; 18];
    for (k, &e) in entries.iter().enumerate() {
        let z = &buffer[base + e..base + e + 2];
        reals[2 * k] = z[0].to_f64();
        reals[2 * k + 1] = z[1].to_f64();
    }
    let reals = &reals[..2 * entries.len()];
    reals.iter().all(|x| x.is_finite()).then(|| M::read_reals(reals))
}

fn write_matrix<M: LinkMatrix, R: Real>(layout: &ResolvedGaugeLayout, l: usize, m: &M, buffer: &mut [R]) {
    let entries = layout.entries();
    let mut reals = [0.0; 18];
    m.write_reals(&mut reals[..2 * entries.len()]);
    let base = layout.offset(l);
    for (k, &e) in entries.iter().enumerate() {
        let z = &mut buffer[base + e..base + e + 2];
        z[0] = R::from_f64(reals[2 * k]);
        z[1] = R::from_f64(reals[2 * k + 1]);
    }
}
