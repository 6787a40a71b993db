//! `cargo bench --bench host`: the host interface's overhead on an 8^4 SU(3) HMC trajectory
//! (same code as the last lines of `flowhmc bench`).

fn main() {
    let u = flowhmc::bench::thermalised_su3(50);
    for t in flowhmc::bench::thread_counts() {
        flowhmc::bench::print(&flowhmc::bench::host::update_overhead(&u, t, 60));
    }
}
