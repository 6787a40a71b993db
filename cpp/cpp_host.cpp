// A small C++ host code that replaces its update step with flowhmc's, first HMC and then
// flow-augmented (a gauge-equivariant flow it trains through the library), on 2D U(1).
//
// The host keeps its own field type (MILC layout: per site the two links as complex numbers,
// sites even-first, x fastest), its own plaquette routine and its own trajectory loop. After
// every step it checks its own plaquette against flowhmc's. Then it shows that bad input is
// refused with an exception and leaves its buffer bit-identical.
//
// Usage: cpp_host WORKDIR (the trained model is written to WORKDIR/u1.safetensors).
// Output: "trajectory N ACCEPTED DH PLAQUETTE" per step (%.17g, exact), then "ok"; exit code 0
// on success, 1 on a failed check.
//
// Build (see README.md):
//   c++ -std=c++17 -I include -I target/cxxbridge cpp/cpp_host.cpp target/release/libflowhmc.a
//       -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl
#include <flowhmc/flowhmc.hpp>

#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int L = 8;
constexpr int VOLUME = L * L;

struct Site {
    std::complex<double> link[2];  // U_x, U_t: MILC-style site-major storage
};

// MILC's node_index in 2D: lexicographic with x fastest, even sites first.
int node_index(int x, int t) {
    int i = x + L * t;
    return ((x + t) % 2 == 0) ? i / 2 : (i + VOLUME) / 2;
}

class HostField {
  public:
    HostField() : sites_(VOLUME) {
        for (Site &s : sites_) s.link[0] = s.link[1] = 1.0;
    }
    double *data() { return reinterpret_cast<double *>(sites_.data()); }
    std::size_t length() const { return sites_.size() * 4; }
    Site &at(int x, int t) { return sites_[node_index((x + L) % L, (t + L) % L)]; }
    std::vector<Site> &sites() { return sites_; }

    // The host's own plaquette: Re U_x(n) U_t(n + x) U_x(n + t)^* U_t(n)^*, averaged.
    double plaquette() {
        double sum = 0;
        for (int t = 0; t < L; t++)
            for (int x = 0; x < L; x++)
                sum += std::real(at(x, t).link[0] * at(x + 1, t).link[1] * std::conj(at(x, t + 1).link[0]) *
                                 std::conj(at(x, t).link[1]));
        return sum / VOLUME;
    }

  private:
    std::vector<Site> sites_;
};

int failures = 0;
void check(bool ok, const char *what) {
    if (!ok) {
        std::fprintf(stderr, "check failed: %s\n", what);
        failures++;
    }
}

std::string parameters(const std::string &model) {
    return "[gauge]\ngroup = \"u1\"\naction = \"wilson\"\nbeta = 2.0\n"
           "[update]\nkind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 10\n"
           "[run]\nseed = 3\nthreads = 1\n"
           "[flow]\nmodel = \"u1-equivariant\"\nlayers = 8\nhidden = [4]\n"
           "[train]\nsteps = 30\nbatch = 16\nlearning_rate = 0.003\nseed = 5\noutput = \"" +
           model + "\"\n";
}

// The host's trajectory loop: its update step is flowhmc's, whatever the context's update is.
void run(flowhmc::Context &ctx, HostField &field, int first, int count) {
    for (int n = first; n < first + count; n++) {
        flowhmc::UpdateReport r = ctx.update(field.data(), field.length());
        std::printf("trajectory %d %d %.17g %.17g\n", n, r.accepted ? 1 : 0, r.dh, r.plaquette);
        check(std::fabs(field.plaquette() - r.plaquette) < 1e-12, "host plaquette equals flowhmc's");
    }
}

// Expects `f` to throw flowhmc::Error whose message contains `message`.
template <class F>
void expect_error(F &&f, const char *message, const char *what) {
    try {
        f();
        check(false, what);
    } catch (const flowhmc::Error &e) {
        check(std::strstr(e.what(), message) != nullptr, what);
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: cpp_host WORKDIR\n");
        return 1;
    }
    const std::string model = std::string(argv[1]) + "/u1.safetensors";
    try {
        flowhmc::Context ctx({L, L}, parameters(model));
        ctx.set_gauge_layout(flowhmc::milc_layout());
        HostField field;
        check(ctx.gauge_length() == field.length(), "gauge buffer length");

        run(ctx, field, 0, 4);  // HMC
        flowhmc::TrainingResult t = ctx.train();
        check(std::isfinite(t.loss) && t.ess > 0, "training");
        ctx.set_update("kind = \"schedule\"\nhmc = 1\nflow = 2\ntrajectory_length = 1.0\n"
                       "integrator = \"omelyan\"\nsteps = 10\nbatch = 8\nmodel = \"" +
                       model + "\"\n");
        run(ctx, field, 4, 6);  // one HMC trajectory, then two flow proposals, twice

        // refusals: each throws and leaves the buffer bit-identical
        std::vector<Site> saved = field.sites();
        auto unchanged = [&] {
            return std::memcmp(saved.data(), field.sites().data(), saved.size() * sizeof(Site)) == 0;
        };
        expect_error([&] { ctx.update(field.data(), field.length() - 2); }, "the layout needs", "short buffer");
        field.at(3, 5).link[1] = std::complex<double>(NAN, 0.0);
        expect_error([&] { ctx.update(field.data(), field.length()); }, "not finite", "NaN link");
        field.at(3, 5).link[1] = saved[node_index(3, 5)].link[1];
        field.at(2, 2).link[0] *= 1.001;
        expect_error([&] { ctx.update(field.data(), field.length()); }, "is not in u1", "non-unitary link");
        field.at(2, 2).link[0] = saved[node_index(2, 2)].link[0];
        check(unchanged(), "buffer unchanged by refused updates");
        expect_error([&] { ctx.set_update("kind = \"sideways\""); }, "kind", "unknown update kind");

        flowhmc::Context larger({2 * L, 2 * L}, parameters(model));
        expect_error([&] { larger.load_model(model); }, "dims [8, 8]", "model for another lattice");
        flowhmc::Parameters su3_parameters;
        su3_parameters.set("gauge.group", "\"su3\"").set("gauge.action", "\"wilson\"").set("gauge.beta", "2.0");
        su3_parameters.set("update.kind", "\"hmc\"").set("update.trajectory_length", "1.0");
        su3_parameters.set("update.integrator", "\"omelyan\"").set("update.steps", "10");
        flowhmc::Context su3({L, L}, su3_parameters);
        expect_error([&] { su3.load_model(model); }, "the u1 theory", "model for another group");
        expect_error([&] { flowhmc::Context({L, L + 1}, parameters(model)); }, "not an even number",
                     "odd extent");

        // the chain goes on where it was: refusals did not advance it
        check(ctx.rng_state().next_update == 10, "rng state");
    } catch (const flowhmc::Error &e) {
        std::fprintf(stderr, "flowhmc: %s\n", e.what());
        return 1;
    }
    if (failures) return 1;
    std::printf("ok\n");
    return 0;
}
