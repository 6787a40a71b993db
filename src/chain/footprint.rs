//! The memory a run needs, estimated from its card before anything is allocated, so that a
//! card the machine cannot hold is refused with the figure instead of aborting in an
//! allocation (or, where sizes wrap, running on an empty lattice).
//!
//! The estimate counts the fields a run keeps, in the layout they have (f64, packed):
//! - the lattice tables ([`Lattice::table_bytes`]);
//! - a gauge field of V D links, held [`GAUGE_COPIES`] times (the field, the copy an HMC
//!   trajectory starts from, the Wilson-flow and measurement copies), and momenta and forces
//!   in the algebra ([`ALGEBRA_COPIES`] fields);
//! - a scalar field of V reals, [`SCALAR_COPIES`] times;
//! - per fermion monomial (a `[[fermions]]` table has 1 + its Hasenbusch masses), the
//!   operator's links in hop order (2 D V links) and [`SPINOR_FIELDS`] full spinor fields
//!   (pseudofermion, solution, Krylov vectors, force sources).
//!
//! Flow models are not counted: they run on the small lattices they were trained on.
//!
//! Measured peak resident memory against the estimate (one trajectory, 16^4 SU(3), Wilson-flow
//! measurement): pure gauge 164 MB against 210 MB; Nf = 2 with one Hasenbusch mass 453 MB
//! against 613 MB. The estimate errs on the large side by about a third.

use super::card::{Card, GroupName, Theory};
use crate::backend::cpu::PackedGroup;
use crate::error::Result;
use crate::geometry::Lattice;
use crate::geometry::halo::DEPTH;
use crate::group::{Su3, U1};
use crate::memory::check_available;

/// Gauge-link fields a run holds at once.
pub const GAUGE_COPIES: u128 = 4;
/// Algebra fields (momenta, forces) a run holds at once.
pub const ALGEBRA_COPIES: u128 = 3;
/// Scalar fields a phi^4 run holds at once.
pub const SCALAR_COPIES: u128 = 4;
/// Full spinor fields per fermion monomial.
pub const SPINOR_FIELDS: u128 = 10;

/// Bytes of one link and of one algebra element of the card's group, and its colours.
fn group_sizes(group: GroupName) -> (u128, u128, u128) {
    fn sizes<G: PackedGroup>() -> (u128, u128) {
        (size_of::<G::Elem>() as u128, size_of::<G::Alg>() as u128)
    }
    let ((link, alg), colors) = match group {
        GroupName::U1 => (sizes::<U1>(), 1),
        GroupName::Su3 => (sizes::<Su3>(), 3),
    };
    (link, alg, colors)
}

impl Card {
    /// Estimated bytes of memory a run of this card needs (see the module notes); computed in
    /// 128 bits from the extents, so it cannot overflow for extents that fit in memory at all.
    pub fn memory_need(&self) -> u128 {
        let dims = &self.lattice.dims;
        let d = dims.len() as u128;
        let volume: u128 = dims.iter().map(|&l| l as u128).product();
        let tables = Lattice::table_bytes(dims);
        let fields = match self.theory() {
            Ok(Theory::Gauge(g)) => {
                let (link, alg, colors) = group_sizes(g.group);
                let gauge = volume * d * (GAUGE_COPIES * link + ALGEBRA_COPIES * alg);
                let spins = if d == 2 { 2 } else { 4 };
                let monomials: u128 = self.fermions.iter().map(|f| 1 + f.hasenbusch.len() as u128).sum();
                let per_monomial = volume * (2 * d * link + SPINOR_FIELDS * spins * colors * 16);
                gauge + monomials * per_monomial
            }
            Ok(Theory::Scalar(_)) | Err(_) => volume * SCALAR_COPIES * 8,
        };
        tables + fields
    }

    /// Estimated bytes of memory each rank of process grid `grid` needs: [`Card::memory_need`]
    /// scaled to the sites a rank holds, its block and its halo ([`DEPTH`] sites deeper in
    /// every cut direction).
    pub fn memory_need_on(&self, grid: &[usize]) -> u128 {
        let dims = &self.lattice.dims;
        let volume: u128 = dims.iter().map(|&l| l as u128).product();
        let held: u128 = dims
            .iter()
            .zip(grid)
            .map(|(&l, &p)| (l / p.max(1) + if p > 1 { 2 * DEPTH } else { 0 }) as u128)
            .product();
        (self.memory_need() * held).div_ceil(volume.max(1))
    }

    /// Refuses the card when [`Card::memory_need`] exceeds the memory the machine has
    /// available ([`crate::memory::available_bytes`]), naming both.
    pub fn check_memory(&self) -> Result<()> {
        self.check_memory_on(&vec![1; self.lattice.dims.len()])
    }

    /// [`Card::check_memory`] for one rank of process grid `grid` ([`Card::memory_need_on`]).
    /// Ranks that share a machine each see its whole available memory.
    pub fn check_memory_on(&self, grid: &[usize]) -> Result<()> {
        let dims = &self.lattice.dims;
        let what = if grid.iter().all(|&p| p == 1) {
            format!("lattice.dims = {dims:?} with this card's fields")
        } else {
            format!("lattice.dims = {dims:?} on process grid {grid:?} with this card's fields, per rank")
        };
        check_available(&what, self.memory_need_on(grid))
    }
}
