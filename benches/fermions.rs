//! `cargo bench --bench fermions`: the fermion figures of BENCHMARKS.md (same code as
//! `flowhmc bench`).

use flowhmc::bench::{fermions, print, thermalised_su3, thread_counts};

fn main() {
    let u = thermalised_su3(150);
    for t in thread_counts() {
        print(&[fermions::memory_bandwidth(t, 256, 5)]);
        for l in [8, 16] {
            print(&fermions::wilson_operator(l, t, if l == 8 { 50 } else { 10 }));
        }
        print(&fermions::cg_solves(&u, 0.150, t, 3));
        print(&fermions::fermion_trajectories(&u, t, 7));
    }
}
