//! `cargo bench --bench gauge`: the pure-gauge figures of BENCHMARKS.md (same code as
//! `flowhmc bench`).

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads: Vec<usize> = if cores > 1 { vec![1, cores.min(2)] } else { vec![1] };
    flowhmc::bench::print(&flowhmc::bench::su3_pure_gauge(&threads, 150, 20));
}
