//! Gauge fields and algebra-valued fields (forces, momenta) to and from host buffers.

use super::check_len;
use super::layout::ResolvedGaugeLayout;
use crate::backend::cpu::PackedGroup;
use crate::backend::cpu::packed::Real;
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use crate::geometry::Lattice;
use crate::group::LinkMatrix;
use std::sync::Arc;

/// Reads the links of a host buffer into a gauge field. Fails, naming the first offending
/// link, when the buffer has the wrong length, holds a non-finite value, or a link is farther
/// than `tolerance` from the group ([`crate::group::Group::unitarity_violation`]).
pub fn import_gauge<G: PackedGroup, R: Real>(
    layout: &ResolvedGaugeLayout,
    lattice: &Arc<Lattice>,
    buffer: &[R],
    tolerance: f64,
) -> Result<GaugeField<G>> {
    check_len("gauge field", buffer.len(), layout.len())?;
    let d = lattice.ndim();
    let finite = |l: usize| read_matrix::<G::Elem, R>(layout, l, buffer);
    let u = GaugeField::try_from_fn(lattice.clone(), |site, mu| finite(site * d + mu).ok_or(())).ok();
    let violation = u.as_ref().map(|u| u.max_unitarity_violation());
    match (u, violation) {
        (Some(u), Some(v)) if v <= tolerance => Ok(u),
        _ => {
            // the first offending link, named in a message that does not depend on the thread count
            let where_ = |l: usize| format!("the link at {:?} in direction {}", lattice.coords(l / d), l % d);
            let first = (0..lattice.volume() * d).find_map(|l| match finite(l) {
                None => Some(format!("gauge field: {} is not finite", where_(l))),
                Some(link) => {
                    let v = G::unitarity_violation(&link);
                    (v.is_nan() || v > tolerance).then(|| {
                        format!(
                            "gauge field: {} is not in {} (distance {v:.3e}, tolerance {tolerance:.1e}); \
                             reunitarize the field or raise the tolerance",
                            where_(l),
                            G::NAME
                        )
                    })
                }
            });
            // the packed and the scalar distance differ in rounding: a link right at the
            // tolerance may pass one and fail the other; then the packed check's verdict stands
            Err(Error::Host(first.unwrap_or_else(|| {
                format!("gauge field: a link is farther than {tolerance:.1e} from {}", G::NAME)
            })))
        }
    }
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

/// Writes `matrix(site, mu)` of every link into a host buffer; fails, without writing, when the
/// buffer has the wrong length.
fn write_links<M: LinkMatrix, R: Real>(
    what: &str,
    layout: &ResolvedGaugeLayout,
    lattice: &Lattice,
    buffer: &mut [R],
    matrix: impl Fn(usize, usize) -> M,
) -> Result<()> {
    check_len(what, buffer.len(), layout.len())?;
    let d = lattice.ndim();
    for l in 0..lattice.volume() * d {
        write_matrix(layout, l, &matrix(l / d, l % d), buffer);
    }
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
