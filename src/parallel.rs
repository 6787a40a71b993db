//! Thread-count-independent parallel reductions.
//!
//! Floating-point addition is not associative, so a sum split by rayon's adaptive scheduler
//! could change in the last bit with the number of threads and make chains irreproducible.
//! Here the index range is cut into blocks of a fixed size, each block is summed in order, and
//! the block sums are added in order: the result is the same for any thread count.

use rayon::prelude::*;

/// Indices per block of a deterministic reduction.
const BLOCK: usize = 512;

/// sum_{i < n} f(i), bit-identical for any number of threads.
pub fn deterministic_sum<F>(n: usize, f: F) -> f64
where
    F: Fn(usize) -> f64 + Sync,
{
    let blocks: Vec<f64> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| (b * BLOCK..((b + 1) * BLOCK).min(n)).map(&f).sum())
        .collect();
    blocks.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
