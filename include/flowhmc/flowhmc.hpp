// flowhmc.hpp -- the C++ interface of flowhmc: Hybrid Monte Carlo and flow-augmented Markov
// steps that a C++ lattice code applies to its own gauge field, in place.
//
// This header wraps the cxx bridge generated from src/ffi/cxx_bridge.rs (namespace
// flowhmc::bridge; its header "flowhmc/src/ffi/cxx_bridge.rs.h" and "rust/cxx.h" lie in
// target/cxxbridge/ after `cargo build --release`). Link the static library
// target/release/libflowhmc.a (see README.md for the whole link line).
//
// Every failure throws flowhmc::Error (a std::runtime_error) whose what() names the problem on
// one line, after its kind ("invalid run card: ", "host input: ", ...); a call that throws
// leaves every host buffer bit-identical and the chain where it was. No Rust panic crosses: it becomes
// an Error too. There is no global state: contexts are independent, each may be used from any
// thread, one call at a time, and several may run on different threads at once.
//
// Conventions (the same as flowhmc.h, which has them in full):
//  - directions x, y, (z,) t unless a layout puts time first; U_mu(x) goes from x to x + mu;
//    complex numbers are (re, im) pairs of reals; buffer lengths count reals;
//  - plaquette = average Re tr P / N (1 on a unit field; openQCD and MILC print 3x for SU(3));
//  - forces and momenta are the N x N matrices F = sum_a F_a T_a, T_a = i lambda_a / 2,
//    F_a = -d/dw S(exp(w T_a) U), in the gauge layout; dU/dt = P U, dP/dt = F, kinetic energy
//    (1/2) sum_a p_a^2;
//  - Wilson fermions M = 1 - kappa H with the time boundary phase of the parameters; 4D spinors
//    DeGrand-Rossi (gamma5 = gamma_x gamma_y gamma_z gamma_t = diag(1, 1, -1, -1)) or openQCD's
//    basis; solver residuals |b - A x| / |b| (CG: of the normal equations);
//  - every random number of update n derives from (seed, n): RandomState is the whole state.
#ifndef FLOWHMC_HPP
#define FLOWHMC_HPP

#include "rust/cxx.h"
#include "flowhmc/src/ffi/cxx_bridge.rs.h"

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace flowhmc {

/// Every failure of the library: bad parameters, bad host input, a solver that did not
/// converge, a missing or mismatched file, a flow model for another theory or lattice.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

using bridge::GammaBasis;
using bridge::GaugeLayout;
using bridge::LinkOrder;
using bridge::MatrixOrder;
using bridge::RandomState;
using bridge::SiteOrderKind;
using bridge::Sites;
using bridge::SolveReport;
using bridge::SpinorLayout;
using bridge::SpinorOrder;
using bridge::TrainingResult;

/// What one Markov step reports (Context::update, one per step of Context::trajectories):
///  - bool accepted: true if the proposal was accepted, and the host buffer then holds it;
///    false if it was rejected, and the buffer is bit-identical to before the step.
///  - double dh: H(proposal) - H(current), dimensionless (actions in units of kT; H = S plus
///    the kinetic energy (1/2) sum_a p_a^2 for MD steps); the step accepts with probability
///    min(1, exp(-dh)), and <exp(-dh)> = 1 in equilibrium. For a flow proposal,
///    dh = [S + log q](proposal) - [S + log q](current) with q the model's density.
///  - double plaquette: Re tr P / N averaged over all plaquettes of the field after the step
///    (1 on a unit field; N = 1 for U(1), 3 for SU(3); openQCD and MILC print 3x this).
///  - std::uint64_t solver_iterations: Krylov solver iterations of the step, all solves
///    summed (0 without fermions).
using bridge::UpdateReport;

/// Sites in lexicographic order (x fastest, or t fastest), optionally even sites first.
inline Sites lexicographic_sites(SiteOrderKind order, bool even_odd) {
    return Sites{order, even_odd, rust::Vec<std::size_t>()};
}

/// Sites by an explicit table: table[s] is the host index of flowhmc site
/// s = x + Lx (y + Ly (z + Lz t)).
inline Sites table_sites(const std::vector<std::size_t> &table) {
    rust::Vec<std::size_t> t;
    t.reserve(table.size());
    for (std::size_t i : table) t.push_back(i);
    return Sites{SiteOrderKind::Table, false, std::move(t)};
}

/// flowhmc's own layout: lexicographic x fastest, site-major, time last, row-major.
inline GaugeLayout native_layout() {
    return GaugeLayout{lexicographic_sites(SiteOrderKind::XFastest, false), LinkOrder::SiteMajor, false,
                       MatrixOrder::RowMajor};
}

/// MILC: site-major, even sites first, x fastest, time last, row-major.
inline GaugeLayout milc_layout() {
    return GaugeLayout{lexicographic_sites(SiteOrderKind::XFastest, true), LinkOrder::SiteMajor, false,
                       MatrixOrder::RowMajor};
}

/// QDP++/Chroma: direction-major, even sites first, x fastest, time last, row-major.
inline GaugeLayout qdp_layout() {
    return GaugeLayout{lexicographic_sites(SiteOrderKind::XFastest, true), LinkOrder::DirectionMajor, false,
                       MatrixOrder::RowMajor};
}

/// openQCD: links on odd sites, time first, row-major, with the host's ipt read in flowhmc's
/// site order (table[s] = ipt of flowhmc site s).
inline GaugeLayout openqcd_layout(const std::vector<std::size_t> &table) {
    return GaugeLayout{table_sites(table), LinkOrder::OpenQcd, true, MatrixOrder::RowMajor};
}

/// A parameter set built key by key: set("gauge.beta", "6.0"), set("update.kind",
/// "\"hmc\""); keys are dotted paths of the run-card schema, values TOML values (strings
/// quoted). A key set twice keeps the last value; the set is validated when a Context is made.
class Parameters {
  public:
    Parameters &set(const std::string &key, const std::string &value) {
        entries_[key] = value;
        return *this;
    }
    /// The set as TOML text (dotted keys).
    std::string toml() const {
        std::string text;
        for (const auto &e : entries_) text += e.first + " = " + e.second + "\n";
        return text;
    }

  private:
    std::map<std::string, std::string> entries_;
};

/// The Fortran handle of a host's MPI communicator (MPI_Comm_c2f(comm) in C); flowhmc/mpi.hpp
/// makes contexts from the MPI_Comm itself.
struct FortranComm {
    int handle;
};

/// A host's handle on flowhmc: one lattice, one parameter set, one chain.
class Context {
  public:
    /// A context for the lattice `dims` (x, y, (z,) t) and a parameter set in the run-card
    /// schema (TOML; [run] may be omitted, [run] seed and threads are used; [lattice] may be
    /// omitted or give only boundary = "open", openQCD's open boundaries in time).
    Context(const std::vector<std::size_t> &dims, const std::string &parameters)
        : handle_(call([&] {
              return bridge::create(rust::Slice<const std::size_t>(dims.data(), dims.size()), parameters);
          })) {}

    /// A context from a key-by-key parameter set.
    Context(const std::vector<std::size_t> &dims, const Parameters &parameters)
        : Context(dims, parameters.toml()) {}

    /// A context on the ranks of a host's MPI communicator (collective; needs a library built
    /// with the cargo feature mpi and MPI initialized with MPI_THREAD_SERIALIZED or more):
    /// `dims` are the global extents, `grid` the ranks per direction and `coords` this rank's
    /// place in it; every host buffer then holds this rank's block (extents dims / grid) in the
    /// context's layout, and every call is collective. An error on one rank is thrown on all.
    Context(const std::vector<std::size_t> &dims, const std::string &parameters, FortranComm comm,
            const std::vector<std::size_t> &grid, const std::vector<std::size_t> &coords)
        : handle_(call([&] {
              return bridge::create_on_ranks(rust::Slice<const std::size_t>(dims.data(), dims.size()),
                                             parameters, comm.handle,
                                             rust::Slice<const std::size_t>(grid.data(), grid.size()),
                                             rust::Slice<const std::size_t>(coords.data(), coords.size()));
          })) {}

    /// The library version and source revision.
    static std::string version() { return std::string(bridge::version()); }

    /// The parameter set in use, as a complete run card.
    std::string parameters() const { return std::string(handle_->parameters()); }

    /// Layout of host gauge (and force) buffers; flowhmc's own order until set.
    void set_gauge_layout(const GaugeLayout &layout) {
        call([&] { handle_->set_gauge_layout(layout); });
    }
    /// Layout of host spinor buffers ([site][spin][colour], DeGrand-Rossi until set).
    void set_spinor_layout(const SpinorLayout &layout) {
        call([&] { handle_->set_spinor_layout(layout); });
    }
    /// Largest accepted distance of a host link from the group (default 1e-10 for double,
    /// 1e-5 for float buffers).
    void set_unitarity_tolerance(double tolerance) {
        call([&] { handle_->set_unitarity_tolerance(tolerance); });
    }

    /// Reals in a gauge (or force) buffer and in a spinor buffer.
    std::size_t gauge_length() const { return handle_->gauge_length(); }
    std::size_t spinor_length() const { return handle_->spinor_length(); }

    /// One Markov step of the parameters' update on the host field, in place.
    UpdateReport update(double *gauge, std::size_t length) {
        return call([&] { return handle_->update(rust::Slice<double>(gauge, length)); });
    }
    UpdateReport update(float *gauge, std::size_t length) {
        return call([&] { return handle_->update_f32(rust::Slice<float>(gauge, length)); });
    }

    /// n Markov steps, the field copied in and out once.
    std::vector<UpdateReport> trajectories(double *gauge, std::size_t length, std::size_t n) {
        return to_vector(call([&] { return handle_->trajectories(rust::Slice<double>(gauge, length), n); }));
    }
    std::vector<UpdateReport> trajectories(float *gauge, std::size_t length, std::size_t n) {
        return to_vector(call([&] { return handle_->trajectories_f32(rust::Slice<float>(gauge, length), n); }));
    }

    /// Observables of the host field.
    double plaquette(const double *gauge, std::size_t length) const {
        return call([&] { return handle_->plaquette(in(gauge, length)); });
    }
    double plaquette(const float *gauge, std::size_t length) const {
        return call([&] { return handle_->plaquette_f32(rust::Slice<const float>(gauge, length)); });
    }
    /// (1/N) tr of the time-ordered product of time links, averaged over space: {re, im}.
    std::pair<double, double> polyakov_loop(const double *gauge, std::size_t length) const {
        auto l = call([&] { return handle_->polyakov_loop(in(gauge, length)); });
        return {l[0], l[1]};
    }
    /// Geometric charge in 2D U(1), clover charge of the unflowed field in 4D.
    double topological_charge(const double *gauge, std::size_t length) const {
        return call([&] { return handle_->topological_charge(in(gauge, length)); });
    }

    /// out = M in (lengths: spinor_length()), with the first fermion table's Wilson operator.
    void apply_dirac(const double *gauge, const double *input, double *out) const {
        call([&] {
            handle_->apply_dirac(in(gauge, gauge_length()), in(input, spinor_length()),
                                 rust::Slice<double>(out, spinor_length()));
        });
    }
    /// Solves M x = b with the first fermion table's solver.
    SolveReport solve(const double *gauge, const double *b, double *x) const {
        return call([&] {
            return handle_->solve(in(gauge, gauge_length()), in(b, spinor_length()),
                                  rust::Slice<double>(x, spinor_length()));
        });
    }

    /// For hosts with their own integrator: gauge force, pseudofermion heatbath (streams of
    /// the current update number), fermion force at the current pseudofermions, action.
    void gauge_force(const double *gauge, double *force) {
        call([&] { handle_->gauge_force(in(gauge, gauge_length()), rust::Slice<double>(force, gauge_length())); });
    }
    void refresh_pseudofermions(const double *gauge) {
        call([&] { handle_->refresh_pseudofermions(in(gauge, gauge_length())); });
    }
    void fermion_force(const double *gauge, double *force) {
        call([&] { handle_->fermion_force(in(gauge, gauge_length()), rust::Slice<double>(force, gauge_length())); });
    }
    double action(const double *gauge) const {
        return call([&] { return handle_->action(in(gauge, gauge_length())); });
    }

    /// Flow models: use a trained model file, replace the [update] table (e.g. HMC -> flow
    /// proposals), or train the parameters' [flow] model by its [train] table (an update with
    /// flow proposals then uses it; an HMC update stays HMC until set_update names it).
    void load_model(const std::string &path) {
        call([&] { handle_->load_model(path); });
    }
    void set_update(const std::string &update) {
        call([&] { handle_->set_update(update); });
    }
    TrainingResult train() {
        return call([&] { return handle_->train(); });
    }

    /// Save and restore the random state (next_update at most 2^63: updates stop there).
    RandomState rng_state() const { return handle_->rng_state(); }
    void set_rng_state(const RandomState &state) {
        call([&] { handle_->set_rng_state(state); });
    }

  private:
    rust::Box<bridge::Handle> handle_;

    static rust::Slice<const double> in(const double *p, std::size_t n) { return rust::Slice<const double>(p, n); }

    static std::vector<UpdateReport> to_vector(const rust::Vec<UpdateReport> &v) {
        return std::vector<UpdateReport>(v.begin(), v.end());
    }

    template <class F>
    static auto call(F &&f) -> decltype(f()) {
        try {
            return f();
        } catch (const rust::Error &e) {
            throw Error(e.what());
        }
    }
};

}  // namespace flowhmc

#endif  // FLOWHMC_HPP
