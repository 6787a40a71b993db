//! Communication between the ranks of a process grid: the [`Comm`] trait, its single-process
//! implementation [`Single`] (the default build, no MPI), [`threads::ThreadComm`] (ranks as
//! threads of one process, for tests) and, with the cargo feature `mpi`, `mpi::MpiComm` on the
//! MPI world.
//!
//! Conventions: the process grid has one entry per lattice direction (x first, time last),
//! the number of ranks along that direction; rank r sits at grid coordinates with the first
//! direction fastest, r = c_0 + P_0 (c_1 + P_1 (c_2 + ...)), like lexicographic sites. The grid
//! is periodic: the neighbour one step forward of the last rank in a direction is the first.
//! Every operation is collective unless it says otherwise: all ranks call it, in the same
//! order, or the program hangs.
//!
//! - Global sums are exact ([`ExactSum`]): the accumulators of all ranks are merged limb by
//!   limb, so the result is the same bits on every rank and for every process grid.
//! - A face exchange comes in two halves so that interior work overlaps it: start sends a
//!   buffer to the neighbour one step in direction (mu, forward) and posts the receive from
//!   the opposite neighbour; finish waits and returns what arrived.
//! - Errors found on one rank reach all of them through [`Comm::agree`] before the next
//!   communication, so that no rank waits forever on one that stopped.

#[cfg(feature = "mpi")]
pub mod mpi;
pub mod threads;

use crate::error::{Error, Result};
use crate::exact_sum::ExactSum;
use std::fmt::Debug;
use std::sync::Arc;

/// A face exchange started by [`Comm::start_exchange`]; [`PendingExchange::finish`] waits for
/// it and returns the received bytes.
pub trait PendingExchange: Send {
    /// Waits until the send has left and the receive has arrived; the received bytes.
    fn finish(self: Box<Self>) -> Vec<u8>;
}

/// The ranks of a process grid and the collective operations between them (see the module
/// docs for the conventions).
pub trait Comm: Send + Sync + Debug {
    /// This rank, 0..size (not collective).
    fn rank(&self) -> usize;

    /// Number of ranks (not collective).
    fn size(&self) -> usize;

    /// Ranks per direction (not collective).
    fn grid(&self) -> &[usize];

    /// This rank's coordinates in the process grid (not collective).
    fn coords(&self) -> &[usize];

    /// The rank one step forward (or backward) in direction mu, periodic (not collective).
    fn neighbour(&self, mu: usize, forward: bool) -> usize {
        let (grid, mut c) = (self.grid(), self.coords().to_vec());
        c[mu] = if forward { (c[mu] + 1) % grid[mu] } else { (c[mu] + grid[mu] - 1) % grid[mu] };
        rank_of(grid, &c)
    }

    /// Replaces every rank's accumulators by their exact sum over all ranks.
    fn sum_exact(&self, sums: &mut [ExactSum]);

    /// The largest x over all ranks (NaN if any rank has one).
    fn max(&self, x: f64) -> f64;

    /// Rank 0's bytes on every rank.
    fn broadcast(&self, data: Vec<u8>) -> Vec<u8>;

    /// Ok on every rank when every rank passes Ok; otherwise the error of the lowest failing
    /// rank, as one message, on every rank.
    fn agree(&self, result: Result<()>) -> Result<()>;

    /// Starts sending `send` to the neighbour one step in direction (mu, forward) and receiving
    /// `receive_len` bytes from the opposite neighbour.
    fn start_exchange(
        &self,
        mu: usize,
        forward: bool,
        send: Vec<u8>,
        receive_len: usize,
    ) -> Box<dyn PendingExchange>;

    /// Every rank's bytes, in rank order, on rank 0 (None on the others).
    fn gather(&self, data: Vec<u8>) -> Option<Vec<Vec<u8>>>;

    /// Part r of rank 0's `parts` on rank r (`parts` is read on rank 0 only and must hold one
    /// part per rank there).
    fn scatter(&self, parts: Option<Vec<Vec<u8>>>) -> Vec<u8>;

    /// The same ranks arranged as process grid `grid`: every rank keeps its number and gets
    /// the coordinates `grid` gives it. A program starts on its ranks in a one-direction grid
    /// and arranges them once the lattice is known. Not collective; an error naming the grid
    /// unless [`check_ranks`] accepts it.
    fn arrange(&self, grid: &[usize]) -> Result<Arc<dyn Comm>>;
}

/// `result` agreed on every rank ([`Comm::agree`]): its value when no rank failed, else the
/// lowest failing rank's error on every rank. Collective.
pub fn agreed<T>(comm: &dyn Comm, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => comm.agree(Ok(())).map(|()| value),
        Err(e) => Err(comm.agree(Err(e)).expect_err("a failing rank fails the agreement")),
    }
}

/// `work()` on rank 0 alone, its outcome agreed on every rank ([`agreed`]): its value on rank 0
/// (`None` on the others) when it succeeded, else its error on every rank. Collective; for
/// what only rank 0 does (files), so that no rank goes on when rank 0 has failed.
pub fn on_root<T>(comm: &dyn Comm, work: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    agreed(comm, (comm.rank() == 0).then(work).transpose())
}

/// Checks that process grid `grid` has `size` ranks and no empty direction.
pub fn check_ranks(grid: &[usize], size: usize) -> Result<()> {
    let ranks: usize = grid.iter().product();
    if ranks != size || grid.is_empty() {
        return Err(Error::Card(format!(
            "run.process_grid = {grid:?}: needs {ranks} ranks, the program runs on {size}"
        )));
    }
    Ok(())
}

/// The rank at grid coordinates `coords` (first direction fastest).
pub fn rank_of(grid: &[usize], coords: &[usize]) -> usize {
    coords.iter().zip(grid).rev().fold(0, |r, (&c, &p)| r * p + c)
}

/// The grid coordinates of `rank` (inverse of [`rank_of`]).
pub fn coords_of(grid: &[usize], mut rank: usize) -> Vec<usize> {
    grid.iter()
        .map(|&p| {
            let c = rank % p;
            rank /= p;
            c
        })
        .collect()
}

/// One process holding the whole lattice: a process grid of ones, collective operations that
/// return their input, and exchanges that deliver a rank's message to itself (its own
/// neighbour in every direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Single {
    grid: Vec<usize>,
    coords: Vec<usize>,
}

impl Single {
    /// The single rank of a `ndim`-dimensional process grid.
    pub fn new(ndim: usize) -> Self {
        Single { grid: vec![1; ndim], coords: vec![0; ndim] }
    }
}

/// An exchange that is already complete (a message to oneself, or a blocking transfer): its
/// bytes.
pub(crate) struct Completed(pub(crate) Vec<u8>);

impl PendingExchange for Completed {
    fn finish(self: Box<Self>) -> Vec<u8> {
        self.0
    }
}

impl Comm for Single {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn grid(&self) -> &[usize] {
        &self.grid
    }

    fn coords(&self) -> &[usize] {
        &self.coords
    }

    fn sum_exact(&self, _sums: &mut [ExactSum]) {}

    fn max(&self, x: f64) -> f64 {
        x
    }

    fn broadcast(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    fn agree(&self, result: Result<()>) -> Result<()> {
        result
    }

    fn start_exchange(
        &self,
        _mu: usize,
        _forward: bool,
        send: Vec<u8>,
        receive_len: usize,
    ) -> Box<dyn PendingExchange> {
        assert_eq!(send.len(), receive_len, "a rank that is its own neighbour receives what it sends");
        Box::new(Completed(send))
    }

    fn gather(&self, data: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        Some(vec![data])
    }

    fn scatter(&self, parts: Option<Vec<Vec<u8>>>) -> Vec<u8> {
        parts.and_then(|p| p.into_iter().next()).unwrap_or_default()
    }

    fn arrange(&self, grid: &[usize]) -> Result<Arc<dyn Comm>> {
        check_ranks(grid, 1)?;
        Ok(Arc::new(Single::new(grid.len())))
    }
}

/// Checks a process grid for a lattice: one entry per direction, each at least 1 and dividing
/// the extent, and the number of ranks it needs equal to `size`.
pub fn check_grid(dims: &[usize], grid: &[usize], size: usize) -> Result<()> {
    let bad = |m: String| Err(Error::Card(format!("run.process_grid = {grid:?}: {m}")));
    if grid.len() != dims.len() {
        return bad(format!("needs {} entries, one per direction of lattice.dims = {dims:?}", dims.len()));
    }
    if let Some((mu, (&p, &l))) =
        grid.iter().zip(dims).enumerate().find(|(_, (p, l))| **p == 0 || **l % **p != 0)
    {
        return bad(format!("{p} ranks in direction {mu} do not divide its extent {l}"));
    }
    check_ranks(grid, size)
}

/// The process grid of `size` ranks for a lattice of extents `dims` when a card names none:
/// the prime factors of `size`, largest first, each cut the direction with the largest local
/// extent that stays even (preferring cuts that keep the last two local extents multiples of
/// 4, as the even/odd layout needs, and the later direction on a tie, time first). This keeps
/// the blocks near cubic, so their faces, and the halo traffic, small. An error when no
/// direction can take a factor.
pub fn choose_grid(dims: &[usize], size: usize) -> Result<Vec<usize>> {
    let mut grid = vec![1; dims.len()];
    let mut factors = Vec::new();
    let (mut rest, mut p) = (size.max(1), 2);
    while rest > 1 {
        while rest.is_multiple_of(p) {
            factors.push(p);
            rest /= p;
        }
        p += 1;
    }
    let d = dims.len();
    for &p in factors.iter().rev() {
        let local = |mu: usize| dims[mu] / grid[mu];
        let keeps_layout = |mu: usize| mu + 2 < d || (local(mu) / p).is_multiple_of(4);
        let best = (0..d)
            .filter(|&mu| local(mu).is_multiple_of(2 * p))
            .max_by_key(|&mu| (keeps_layout(mu), local(mu), mu))
            .ok_or_else(|| {
                Error::Card(format!(
                    "lattice.dims = {dims:?} cannot be cut into blocks with even extents for {size} ranks; \
                     give run.process_grid"
                ))
            })?;
        grid[best] *= p;
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_coordinates_are_inverse_with_periodic_neighbours() {
        let grid = [2, 1, 3, 2];
        for rank in 0..12 {
            let c = coords_of(&grid, rank);
            assert_eq!(rank_of(&grid, &c), rank);
        }
        assert_eq!(coords_of(&grid, 1), vec![1, 0, 0, 0], "the first direction is fastest");
        let single = Single::new(4);
        for mu in 0..4 {
            assert_eq!((single.neighbour(mu, true), single.neighbour(mu, false)), (0, 0));
        }
        assert_eq!((single.rank(), single.size(), single.grid()), (0, 1, &[1, 1, 1, 1][..]));
    }

    #[test]
    fn single_rank_collectives_return_their_input() {
        let single = Single::new(2);
        let mut sums = [ExactSum::new(), ExactSum::new()];
        sums[0].add(1.5);
        single.sum_exact(&mut sums);
        assert_eq!((sums[0].value(), sums[1].value()), (1.5, 0.0));
        assert_eq!(single.max(-2.0), -2.0);
        assert_eq!(single.broadcast(vec![1, 2]), vec![1, 2]);
        assert_eq!(single.gather(vec![3]), Some(vec![vec![3]]));
        assert_eq!(single.scatter(Some(vec![vec![4, 5]])), vec![4, 5]);
        assert_eq!(single.start_exchange(1, false, vec![6, 7], 2).finish(), vec![6, 7]);
        let e = single.agree(Err(Error::Card("bad".into()))).unwrap_err().to_string();
        assert!(e.contains("bad"), "{e}");
    }

    #[test]
    fn chosen_grids_cut_the_longest_directions_into_even_blocks() {
        assert_eq!(choose_grid(&[8, 8, 8, 8], 1).unwrap(), [1, 1, 1, 1]);
        assert_eq!(choose_grid(&[8, 8, 8, 8], 4).unwrap(), [1, 1, 2, 2]);
        assert_eq!(choose_grid(&[8, 8, 8, 16], 2).unwrap(), [1, 1, 1, 2]);
        assert_eq!(choose_grid(&[16, 16, 16, 32], 8).unwrap(), [1, 1, 2, 4]);
        // a cut of z or a second of t would leave a 2 in the last two directions, which the
        // even/odd layout cannot use: y takes it
        assert_eq!(choose_grid(&[4, 4, 4, 8], 4).unwrap(), [1, 2, 1, 2]);
        assert_eq!(choose_grid(&[12, 12], 6).unwrap(), [2, 3]);
        assert!(choose_grid(&[32, 32], 3).unwrap_err().to_string().contains("give run.process_grid"));
        for (dims, size) in [(vec![8, 8, 8, 8], 16), (vec![12, 12, 12, 24], 12), (vec![16, 16], 8)] {
            let grid = choose_grid(&dims, size).unwrap();
            assert!(check_grid(&dims, &grid, size).is_ok(), "{dims:?} {size}: {grid:?}");
            assert!(dims.iter().zip(&grid).all(|(l, p)| (l / p) % 2 == 0), "{dims:?} {size}: {grid:?}");
        }
    }

    #[test]
    fn process_grids_must_divide_the_lattice() {
        assert!(check_grid(&[8, 8, 8, 16], &[1, 1, 2, 2], 4).is_ok());
        let e = check_grid(&[8, 8, 8, 12], &[1, 1, 1, 5], 5).unwrap_err().to_string();
        assert!(e.contains("5 ranks in direction 3 do not divide its extent 12"), "{e}");
        let e = check_grid(&[8, 8], &[1, 2], 4).unwrap_err().to_string();
        assert!(e.contains("needs 2 ranks, the program runs on 4"), "{e}");
        assert!(check_grid(&[8, 8], &[2], 2).is_err());
        assert!(check_grid(&[8, 8], &[0, 1], 1).is_err());
    }
}
