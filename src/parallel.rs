//! Thread-count-independent parallel reductions and schedules.
//!
//! Floating-point addition is not associative, so a sum split by rayon's adaptive scheduler
//! could change in the last bit with the number of threads and make chains irreproducible.
//! Reductions here add per-site terms into [`ExactSum`]s, whose result does not depend on the
//! order of the terms, so any split among threads (and, merged the same way, among ranks)
//! gives the same bits. Likewise [`for_each_slice_in_phases`] fixes the order in which
//! scattered contributions reach a site.

use crate::comm::Comm;
use crate::exact_sum::ExactSum;
use rayon::prelude::*;

/// Indices per block of a reduction: each block fills its own accumulators, and the blocks'
/// accumulators are merged.
const BLOCK: usize = 256;

/// K exact sums over the indices i < n: `add(i, sums)` adds the terms of index i (the values
/// of the sites it stands for, each computed the same way on any layout) to the K accumulators.
pub fn exact_sums<const K: usize>(n: usize, add: impl Fn(usize, &mut [ExactSum; K]) + Sync) -> [ExactSum; K] {
    let block = |b: usize| {
        let mut sums = [ExactSum::new(); K];
        (b * BLOCK..((b + 1) * BLOCK).min(n)).for_each(|i| add(i, &mut sums));
        sums
    };
    if n <= BLOCK {
        return block(0);
    }
    (0..n.div_ceil(BLOCK)).into_par_iter().map(block).reduce(|| [ExactSum::new(); K], merged)
}

/// K exact sums over the elements of `data`, which `visit(i, element i, sums)` may change while
/// it adds the element's terms (a vector update fused with a norm).
pub fn exact_sums_mut<T: Send, const K: usize>(
    data: &mut [T],
    visit: impl Fn(usize, &mut T, &mut [ExactSum; K]) + Sync,
) -> [ExactSum; K] {
    let block = |(b, chunk): (usize, &mut [T])| {
        let mut sums = [ExactSum::new(); K];
        chunk.iter_mut().enumerate().for_each(|(j, t)| visit(b * BLOCK + j, t, &mut sums));
        sums
    };
    if data.len() <= BLOCK {
        return block((0, data));
    }
    data.par_chunks_mut(BLOCK).enumerate().map(block).reduce(|| [ExactSum::new(); K], merged)
}

/// The K exact sums of two blocks, merged accumulator by accumulator.
fn merged<const K: usize>(mut a: [ExactSum; K], b: [ExactSum; K]) -> [ExactSum; K] {
    a.iter_mut().zip(&b).for_each(|(a, b)| a.merge(b));
    a
}

/// [`exact_sums`] over this rank's indices, summed over all ranks of `comm` (collective): the
/// same bits on every rank and for every process grid.
pub fn global_sums<const K: usize>(
    comm: &dyn Comm,
    n: usize,
    add: impl Fn(usize, &mut [ExactSum; K]) + Sync,
) -> [ExactSum; K] {
    let mut sums = exact_sums(n, add);
    comm.sum_exact(&mut sums);
    sums
}

/// sum_{i < n} f(i) over this rank's indices and all ranks of `comm`, exact (rounded once).
pub fn global_sum(comm: &dyn Comm, n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    let [sum] = global_sums(comm, n, |i, [s]| s.add(f(i)));
    sum.value()
}

/// sum_{i < n} f(i), exact (rounded once), for per-site terms f(i).
pub fn exact_sum(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    let [sum] = exact_sums(n, |i, [s]| s.add(f(i)));
    sum.value()
}

/// Runs `work(s)` for the slices s = 0..n of a periodic chain, where the work on slice s may
/// write to slices s and s + 1 (mod n) only. Slices run in parallel within phases whose slices
/// are at least two apart (the even ones, then the odd ones, then the last one alone when n
/// is odd), so no two concurrent tasks write the same slice, and every slice receives its
/// writes in the same order for any thread count.
pub fn for_each_slice_in_phases<F>(n: usize, work: F)
where
    F: Fn(usize) + Sync,
{
    for p in 0..PHASES {
        (0..n).into_par_iter().filter(|&s| phase_of(n, s) == p).for_each(&work);
    }
}

/// Number of phases of [`for_each_slice_in_phases`].
const PHASES: usize = 3;

/// The phase in which slice s of n runs.
fn phase_of(n: usize, s: usize) -> usize {
    if n % 2 == 1 && s == n - 1 { 2 } else { s % 2 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn phases_never_run_neighbouring_slices_together() {
        for n in 1..10 {
            // every slice runs once, in phase order
            let log = Mutex::new(Vec::new());
            for_each_slice_in_phases(n, |s| log.lock().unwrap().push(s));
            let order = log.into_inner().unwrap();
            assert!(order.windows(2).all(|w| phase_of(n, w[0]) <= phase_of(n, w[1])));
            let mut seen = order.clone();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
            // slices of one phase write disjoint slice sets
            let writes = |s: usize| [s, (s + 1) % n];
            for a in 0..n {
                assert!(phase_of(n, a) < PHASES);
                for b in (0..n).filter(|&b| b != a && phase_of(n, b) == phase_of(n, a)) {
                    assert!(writes(a).iter().all(|w| !writes(b).contains(w)), "n {n}: slices {a}, {b}");
                }
            }
        }
    }

    #[test]
    fn same_sum_for_one_and_two_threads() {
        let f = |i: usize| ((i as f64) * 0.37).sin() * 1e3 + 1e-9 * i as f64;
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| exact_sum(100_003, f))
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.to_bits(), b.to_bits());
        let mut serial = ExactSum::new();
        (0..100_003).for_each(|i| serial.add(f(i)));
        assert_eq!(a.to_bits(), serial.value().to_bits());
    }
}
