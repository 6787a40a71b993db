//! Host layouts: the field orders host codes (MILC, QDP++/Chroma, openQCD, in-house codes) use
//! in their own buffers, and the copies between those buffers and flowhmc's fields.
//!
//! A layout descriptor ([`GaugeLayout`], [`SpinorLayout`]) says how the host orders sites,
//! directions, links, matrix entries and spin components; resolved against a lattice it is a
//! table of offsets. Host buffers hold reals in f64 or f32 (any [`Real`]), complex numbers as
//! (re, im) pairs. Every copy into flowhmc checks the buffer's length, that every value is
//! finite and (for links) that every matrix is in the group within a tolerance, and names the
//! first offending site and direction; nothing is written to a host buffer unless the whole
//! copy can succeed.

pub mod gauge;
pub mod handover;
pub mod layout;
pub mod spinor;

pub use crate::backend::cpu::packed::Real;
pub use gauge::{export_algebra, export_gauge, import_gauge};
pub use layout::{
    GaugeLayout, LinkOrder, MatrixOrder, ResolvedGaugeLayout, ResolvedSpinorLayout, SiteOrder, SpinorLayout,
    SpinorOrder, host_directions,
};
pub use spinor::{export_spinor, import_spinor};

use crate::error::{Error, Result};

/// Checks that a host buffer has the `expected` number of reals.
pub(crate) fn check_len(what: &str, given: usize, expected: usize) -> Result<()> {
    if given != expected {
        return Err(Error::Host(format!(
            "{what}: the buffer holds {given} reals, the layout needs {expected}"
        )));
    }
    Ok(())
}
