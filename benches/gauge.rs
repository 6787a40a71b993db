//! `cargo bench --bench gauge`: the pure-gauge figures of BENCHMARKS.md (same code as
//! `flowhmc bench`).

fn main() {
    flowhmc::bench::print(&flowhmc::bench::su3_pure_gauge(&flowhmc::bench::thread_counts(), 150, 20));
}
