//! `cargo bench --bench fermions`: the fermion figures of BENCHMARKS.md (same code as
//! `flowhmc bench`).

use flowhmc::bench::{fermions, print, thermalised_su3, thread_counts};

fn main() {
    let u = thermalised_su3(150);
    for t in thread_counts() {
        print(&fermions::all(&u, t, 20));
    }
}
