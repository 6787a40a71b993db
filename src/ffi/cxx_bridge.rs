//! The C++ API: a `#[cxx::bridge]` over [`Context`]. C++ hosts include
//! `include/flowhmc/flowhmc.hpp`, which wraps the generated bridge (namespace
//! `flowhmc::bridge`) in a documented `flowhmc::Context` class. Every failure becomes a C++
//! exception carrying the message; panics are caught here and become exceptions too.

use super::context::{Context, HostSlice, HostSliceMut, RngState};
use crate::dirac::gamma::SpinBasis;
use crate::host::{self, SiteOrder};
use std::panic::{AssertUnwindSafe, catch_unwind};

#[cxx::bridge(namespace = "flowhmc::bridge")]
mod bridge {
    /// Where each site's links sit in a gauge buffer.
    #[derive(Debug)]
    enum LinkOrder {
        /// `[site][mu][matrix]` (MILC).
        SiteMajor,
        /// `[mu][site][matrix]` (QDP++/Chroma).
        DirectionMajor,
        /// openQCD: odd sites hold U(x, mu), U(x - mu, mu).
        OpenQcd,
    }

    /// How the host numbers sites.
    #[derive(Debug)]
    enum SiteOrderKind {
        /// Lexicographic, x fastest.
        XFastest,
        /// Lexicographic, time fastest.
        TFastest,
        /// An explicit table.
        Table,
    }

    /// Entry order of colour matrices.
    #[derive(Debug)]
    enum MatrixOrder {
        /// `[row][col]`.
        RowMajor,
        /// `[col][row]`.
        ColumnMajor,
    }

    /// Component order of spinors at a site.
    #[derive(Debug)]
    enum SpinorOrder {
        /// `[spin][colour]`.
        SpinColor,
        /// `[colour][spin]`.
        ColorSpin,
    }

    /// Gamma basis of 4D host spinors.
    #[derive(Debug)]
    enum GammaBasis {
        /// DeGrand-Rossi (Chroma, QDP++, QUDA, MILC).
        DegrandRossi,
        /// openQCD's.
        OpenQcd,
    }

    /// The host's site numbering.
    #[derive(Debug)]
    struct Sites {
        /// The rule.
        order: SiteOrderKind,
        /// With a lexicographic rule: even sites first.
        even_odd: bool,
        /// With `Table`: entry s is the host index of flowhmc site s.
        table: Vec<usize>,
    }

    /// A gauge-field layout.
    #[derive(Debug)]
    struct GaugeLayout {
        /// Site numbering.
        sites: Sites,
        /// Link placement.
        links: LinkOrder,
        /// The host's direction 0 is time (openQCD).
        time_first: bool,
        /// Matrix entry order.
        matrix: MatrixOrder,
    }

    /// A spinor-field layout.
    #[derive(Debug)]
    struct SpinorLayout {
        /// Site numbering.
        sites: Sites,
        /// Component order.
        order: SpinorOrder,
        /// Gamma basis (4D).
        basis: GammaBasis,
    }

    /// What one Markov step reports (its fields are documented in flowhmc.hpp).
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct UpdateReport {
        /// Whether the proposal was accepted (the host buffer then holds it; else unchanged).
        accepted: bool,
        /// H(proposal) - H(current), dimensionless; accepted with probability min(1, exp(-dh)).
        dh: f64,
        /// Re tr P / N averaged over all plaquettes after the step (1 on a unit field).
        plaquette: f64,
        /// Krylov solver iterations of the step, all solves summed (0 without fermions).
        solver_iterations: u64,
    }

    /// What a solve reports.
    #[derive(Debug, Clone, Copy)]
    struct SolveReport {
        /// Krylov iterations.
        iterations: u64,
        /// Final relative residual.
        residual: f64,
    }

    /// The chain's random state.
    #[derive(Debug, Clone, Copy)]
    struct RandomState {
        /// Run seed.
        seed: u64,
        /// Next update number.
        next_update: u64,
    }

    /// The last learning-curve point of a training run.
    #[derive(Debug, Clone, Copy)]
    struct TrainingResult {
        /// Mean reverse-KL loss.
        loss: f64,
        /// ESS per sample.
        ess: f64,
        /// In-batch independence-Metropolis acceptance.
        acceptance: f64,
    }

    extern "Rust" {
        /// A context (see `flowhmc::Context` in flowhmc.hpp).
        type Handle;
        fn version() -> String;
        fn create(dims: &[usize], parameters: &str) -> Result<Box<Handle>>;
        fn create_on_ranks(
            dims: &[usize],
            parameters: &str,
            comm: i32,
            grid: &[usize],
            coords: &[usize],
        ) -> Result<Box<Handle>>;
        fn parameters(self: &Handle) -> String;
        fn set_gauge_layout(self: &mut Handle, layout: &GaugeLayout) -> Result<()>;
        fn set_spinor_layout(self: &mut Handle, layout: &SpinorLayout) -> Result<()>;
        fn set_unitarity_tolerance(self: &mut Handle, tolerance: f64) -> Result<()>;
        fn gauge_length(self: &Handle) -> usize;
        fn spinor_length(self: &Handle) -> usize;
        fn update(self: &mut Handle, gauge: &mut [f64]) -> Result<UpdateReport>;
        fn update_f32(self: &mut Handle, gauge: &mut [f32]) -> Result<UpdateReport>;
        fn trajectories(self: &mut Handle, gauge: &mut [f64], n: usize) -> Result<Vec<UpdateReport>>;
        fn trajectories_f32(self: &mut Handle, gauge: &mut [f32], n: usize) -> Result<Vec<UpdateReport>>;
        fn plaquette(self: &Handle, gauge: &[f64]) -> Result<f64>;
        fn plaquette_f32(self: &Handle, gauge: &[f32]) -> Result<f64>;
        fn polyakov_loop(self: &Handle, gauge: &[f64]) -> Result<[f64; 2]>;
        fn topological_charge(self: &Handle, gauge: &[f64]) -> Result<f64>;
        fn apply_dirac(self: &Handle, gauge: &[f64], input: &[f64], out: &mut [f64]) -> Result<()>;
        fn solve(self: &Handle, gauge: &[f64], b: &[f64], x: &mut [f64]) -> Result<SolveReport>;
        fn gauge_force(self: &mut Handle, gauge: &[f64], force: &mut [f64]) -> Result<()>;
        fn refresh_pseudofermions(self: &mut Handle, gauge: &[f64]) -> Result<()>;
        fn fermion_force(self: &mut Handle, gauge: &[f64], force: &mut [f64]) -> Result<()>;
        fn action(self: &Handle, gauge: &[f64]) -> Result<f64>;
        fn load_model(self: &mut Handle, path: &str) -> Result<()>;
        fn set_update(self: &mut Handle, update: &str) -> Result<()>;
        fn train(self: &mut Handle) -> Result<TrainingResult>;
        fn rng_state(self: &Handle) -> RandomState;
        fn set_rng_state(self: &mut Handle, state: &RandomState) -> Result<()>;
    }
}

use bridge::{GaugeLayout, RandomState, SolveReport, SpinorLayout, TrainingResult, UpdateReport};

/// The context behind the C++ API.
pub struct Handle(Context);

/// Runs `f`, turning a panic into an error so that it never unwinds into C++. The message
/// keeps the error's kind ("invalid run card: ...", "host input: ..."), which C++ has no status
/// code for, on one line.
fn guard<T>(f: impl FnOnce() -> crate::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| super::one_line(&e.to_string())),
        Err(panic) => {
            Err(super::one_line(&format!("internal error: {}", super::c_api::panic_message(&panic))))
        }
    }
}

fn version() -> String {
    crate::VERSION.to_string()
}

fn create(dims: &[usize], parameters: &str) -> Result<Box<Handle>, String> {
    guard(|| Context::new(dims, parameters).map(|c| Box::new(Handle(c))))
}

fn create_on_ranks(
    dims: &[usize],
    parameters: &str,
    comm: i32,
    grid: &[usize],
    coords: &[usize],
) -> Result<Box<Handle>, String> {
    guard(|| {
        // SAFETY: the C++ caller passes MPI_Comm_c2f of a live communicator (flowhmc/mpi.hpp)
        let comm = unsafe { super::host_comm(comm, grid, coords) }?;
        Context::on_ranks(dims, parameters, comm).map(|c| Box::new(Handle(c)))
    })
}

fn sites(s: &bridge::Sites, ndim: usize) -> crate::Result<SiteOrder> {
    use bridge::SiteOrderKind as K;
    Ok(match s.order {
        K::XFastest => SiteOrder::x_fastest(ndim, s.even_odd),
        K::TFastest => SiteOrder::t_fastest(ndim, s.even_odd),
        K::Table => SiteOrder::Table(s.table.clone()),
        _ => return Err(crate::Error::Host("sites.order: not a SiteOrderKind value".into())),
    })
}

fn unknown(what: &str) -> crate::Error {
    crate::Error::Host(format!("{what}: not one of its enum's values"))
}

impl Handle {
    fn ndim(&self) -> usize {
        self.0.card().lattice.dims.len()
    }

    fn parameters(&self) -> String {
        self.0.card().to_toml()
    }

    fn set_gauge_layout(&mut self, l: &GaugeLayout) -> Result<(), String> {
        guard(|| {
            let d = self.ndim();
            let layout = host::GaugeLayout {
                sites: sites(&l.sites, d)?,
                links: match l.links {
                    bridge::LinkOrder::SiteMajor => host::LinkOrder::SiteMajor,
                    bridge::LinkOrder::DirectionMajor => host::LinkOrder::DirectionMajor,
                    bridge::LinkOrder::OpenQcd => host::LinkOrder::OpenQcd,
                    _ => return Err(unknown("links")),
                },
                directions: host::host_directions(d, l.time_first),
                matrix: match l.matrix {
                    bridge::MatrixOrder::RowMajor => host::MatrixOrder::RowMajor,
                    bridge::MatrixOrder::ColumnMajor => host::MatrixOrder::ColumnMajor,
                    _ => return Err(unknown("matrix")),
                },
            };
            self.0.set_gauge_layout(&layout)
        })
    }

    fn set_spinor_layout(&mut self, l: &SpinorLayout) -> Result<(), String> {
        guard(|| {
            let layout = host::SpinorLayout {
                sites: sites(&l.sites, self.ndim())?,
                order: match l.order {
                    bridge::SpinorOrder::SpinColor => host::SpinorOrder::SpinColor,
                    bridge::SpinorOrder::ColorSpin => host::SpinorOrder::ColorSpin,
                    _ => return Err(unknown("order")),
                },
                basis: match l.basis {
                    bridge::GammaBasis::DegrandRossi => SpinBasis::DegrandRossi,
                    bridge::GammaBasis::OpenQcd => SpinBasis::OpenQcd,
                    _ => return Err(unknown("basis")),
                },
            };
            self.0.set_spinor_layout(&layout)
        })
    }

    fn set_unitarity_tolerance(&mut self, tolerance: f64) -> Result<(), String> {
        guard(|| self.0.set_unitarity_tolerance(tolerance))
    }

    fn gauge_length(&self) -> usize {
        self.0.gauge_len()
    }

    fn spinor_length(&self) -> usize {
        self.0.spinor_len()
    }

    fn trajectories_in(&mut self, gauge: HostSliceMut<'_>, n: usize) -> Result<Vec<UpdateReport>, String> {
        guard(|| {
            Ok(self
                .0
                .trajectories(gauge, n)?
                .iter()
                .map(|r| UpdateReport {
                    accepted: r.accepted,
                    dh: r.dh,
                    plaquette: r.plaquette,
                    solver_iterations: r.solver_iterations as u64,
                })
                .collect())
        })
    }

    fn update(&mut self, gauge: &mut [f64]) -> Result<UpdateReport, String> {
        self.trajectories_in(HostSliceMut::F64(gauge), 1).map(|r| r[0])
    }

    fn update_f32(&mut self, gauge: &mut [f32]) -> Result<UpdateReport, String> {
        self.trajectories_in(HostSliceMut::F32(gauge), 1).map(|r| r[0])
    }

    fn trajectories(&mut self, gauge: &mut [f64], n: usize) -> Result<Vec<UpdateReport>, String> {
        self.trajectories_in(HostSliceMut::F64(gauge), n)
    }

    fn trajectories_f32(&mut self, gauge: &mut [f32], n: usize) -> Result<Vec<UpdateReport>, String> {
        self.trajectories_in(HostSliceMut::F32(gauge), n)
    }

    fn plaquette(&self, gauge: &[f64]) -> Result<f64, String> {
        guard(|| self.0.plaquette(HostSlice::F64(gauge)))
    }

    fn plaquette_f32(&self, gauge: &[f32]) -> Result<f64, String> {
        guard(|| self.0.plaquette(HostSlice::F32(gauge)))
    }

    fn polyakov_loop(&self, gauge: &[f64]) -> Result<[f64; 2], String> {
        guard(|| self.0.polyakov_loop(HostSlice::F64(gauge)).map(|z| [z.re, z.im]))
    }

    fn topological_charge(&self, gauge: &[f64]) -> Result<f64, String> {
        guard(|| self.0.topological_charge(HostSlice::F64(gauge)))
    }

    fn apply_dirac(&self, gauge: &[f64], input: &[f64], out: &mut [f64]) -> Result<(), String> {
        guard(|| self.0.apply_dirac(HostSlice::F64(gauge), HostSlice::F64(input), HostSliceMut::F64(out)))
    }

    fn solve(&self, gauge: &[f64], b: &[f64], x: &mut [f64]) -> Result<SolveReport, String> {
        guard(|| {
            let r = self.0.solve(HostSlice::F64(gauge), HostSlice::F64(b), HostSliceMut::F64(x))?;
            Ok(SolveReport { iterations: r.iterations as u64, residual: r.residual })
        })
    }

    fn gauge_force(&mut self, gauge: &[f64], force: &mut [f64]) -> Result<(), String> {
        guard(|| self.0.gauge_force(HostSlice::F64(gauge), HostSliceMut::F64(force)))
    }

    fn refresh_pseudofermions(&mut self, gauge: &[f64]) -> Result<(), String> {
        guard(|| self.0.refresh_pseudofermions(HostSlice::F64(gauge)))
    }

    fn fermion_force(&mut self, gauge: &[f64], force: &mut [f64]) -> Result<(), String> {
        guard(|| self.0.fermion_force(HostSlice::F64(gauge), HostSliceMut::F64(force)))
    }

    fn action(&self, gauge: &[f64]) -> Result<f64, String> {
        guard(|| self.0.action(HostSlice::F64(gauge)))
    }

    fn load_model(&mut self, path: &str) -> Result<(), String> {
        guard(|| self.0.load_model(path))
    }

    fn set_update(&mut self, update: &str) -> Result<(), String> {
        guard(|| self.0.set_update(update))
    }

    fn train(&mut self) -> Result<TrainingResult, String> {
        guard(|| {
            let p = self.0.train()?;
            Ok(TrainingResult { loss: p.loss, ess: p.ess, acceptance: p.acceptance })
        })
    }

    fn rng_state(&self) -> RandomState {
        let s = self.0.rng_state();
        RandomState { seed: s.seed, next_update: s.next_update }
    }

    fn set_rng_state(&mut self, state: &RandomState) -> Result<(), String> {
        guard(|| self.0.set_rng_state(RngState { seed: state.seed, next_update: state.next_update }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error_for_the_cxx_exception() {
        let r: Result<(), String> = super::guard(|| panic!("injected fault"));
        assert_eq!(r.unwrap_err(), "internal error: injected fault");
        let e = super::guard(|| Err::<(), _>(crate::Error::Host("bad".into()))).unwrap_err();
        assert_eq!(e, "host input: bad");
        let e = super::guard(|| Err::<(), _>(crate::Error::Card("line 1\n  |\n1 | x\nproblem".into())));
        assert_eq!(e.unwrap_err(), "invalid run card: line 1; problem");
    }
}
