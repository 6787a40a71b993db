//! `cargo bench --bench flows`: training steps and flow-mh updates of each flow model on one
//! thread (same code as the last lines of `flowhmc bench`).

fn main() {
    flowhmc::bench::print(&flowhmc::bench::flows::all(10, 160));
}
