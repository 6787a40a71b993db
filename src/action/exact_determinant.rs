//! The two-flavour Wilson fermion weight computed exactly, for small lattices: with the dense
//! Wilson matrix M (kappa, boundary phase in time) the action is
//!
//!   S = -ln det(M^dagger M) = -2 ln|det M|,
//!
//! the weight a pseudofermion term estimates stochastically. Updates without MD use it: flow
//! proposals with the exact determinant in the Metropolis test (arXiv 2106.05934). It has no
//! MD force (a dense derivative would cost V times the determinant).

use super::Monomial;
use crate::backend::cpu::PackedGroup;
use crate::checkerboard::Checkerboard;
use crate::dirac::dense::ln_abs_det;
use crate::dirac::{Boundary, WilsonOperator};
use crate::error::{Error, Result};
use crate::field::{GaugeField, MomentumField};
use std::marker::PhantomData;

/// Largest dense Wilson matrix (rows) the exact determinant accepts: an LU of this size takes
/// a few seconds.
pub const MAX_DENSE_ROWS: usize = 3072;

/// The exact two-flavour determinant term (see the module docs), S spin components.
pub struct ExactDeterminant<G: PackedGroup, const S: usize> {
    name: String,
    kappa: f64,
    boundary: Boundary,
    cb: Checkerboard,
    group: PhantomData<G>,
}

impl<G: PackedGroup, const S: usize> ExactDeterminant<G, S> {
    /// The term of M(kappa) with `boundary` on the lattice of `cb`, named `name`; refused for
    /// a lattice whose dense matrix exceeds [`MAX_DENSE_ROWS`].
    pub fn new(name: &str, kappa: f64, boundary: Boundary, cb: Checkerboard) -> Result<Self> {
        let rows = cb.lattice().volume() * S * G::NC;
        if rows > MAX_DENSE_ROWS {
            return Err(Error::Card(format!(
                "{name}: the exact determinant needs a dense {rows} x {rows} matrix, at most {MAX_DENSE_ROWS} rows are \
                 allowed; use pseudofermions on this lattice"
            )));
        }
        Ok(ExactDeterminant { name: name.into(), kappa, boundary, cb, group: PhantomData })
    }
}

impl<G: PackedGroup, const S: usize> Monomial<GaugeField<G>> for ExactDeterminant<G, S> {
    fn name(&self) -> &str {
        &self.name
    }

    fn action(&self, u: &GaugeField<G>) -> Result<f64> {
        let m = WilsonOperator::<G, S>::new(u, &self.cb, self.kappa, self.boundary)?;
        Ok(-2.0 * ln_abs_det(&m))
    }

    fn add_force(&self, _u: &GaugeField<G>, _h: f64, _p: &mut MomentumField<G>) -> Result<()> {
        Err(Error::Card(format!(
            "{}: the exact determinant has no MD force; use it with kind = \"flow-mh\"",
            self.name
        )))
    }
}
