//! Thread-count-independent parallel reductions and schedules.
//!
//! Floating-point addition is not associative, so a sum split by rayon's adaptive scheduler
//! could change in the last bit with the number of threads and make chains irreproducible.
//! Here the index range is cut into blocks of a fixed size, each block is summed in order, and
//! the block sums are added in order: the result is the same for any thread count. Likewise
//! [`for_each_slice_in_phases`] fixes the order in which scattered contributions reach a site.

use rayon::prelude::*;

/// Indices per block of a deterministic reduction.
const BLOCK: usize = 512;

/// sum_{i < n} f(i) (real or complex), bit-identical for any number of threads.
pub fn deterministic_sum<T, F>(n: usize, f: F) -> T
where
    T: Send + Copy + std::iter::Sum<T>,
    F: Fn(usize) -> T + Sync,
{
    let blocks: Vec<T> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| (b * BLOCK..((b + 1) * BLOCK).min(n)).map(&f).sum())
        .collect();
    blocks.iter().copied().sum()
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
                .install(|| deterministic_sum(100_003, f))
        };
        let (a, b) = (run(1), run(2));
        assert_eq!(a.to_bits(), b.to_bits());
        let serial: f64 = (0..100_003).map(f).sum();
        assert!((a - serial).abs() < 1e-6 * serial.abs().max(1.0));
    }
}
