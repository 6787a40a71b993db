// A C++ host code on MPI ranks that replaces its update step with flowhmc's (4D SU(3), two
// Wilson flavours): each rank keeps its own block of the gauge field, and flowhmc works on the
// blocks through the host's communicator.
//
// The host cuts time over its ranks, and numbers its blocks backwards (rank r holds the block
// at time coordinate size - 1 - r): flowhmc takes the grid coordinates the host gives, not the
// communicator's rank order. Each rank's buffer is its block in flowhmc's own layout (x fastest,
// site-major, row-major 3x3 matrices of (re, im) pairs). After the updates it shows that a grid
// the communicator does not match is refused on every rank, with the same message.
//
// Usage: mpirun -np N mpi_host PARAMETERS_FILE (a parameter set in the run-card schema; N must
// divide 8). Output on rank 0: "update N ACCEPTED DH PLAQUETTE ITERATIONS" per update (%.17g,
// exact), "plaquette P", "refused: MESSAGE", then "ok"; exit code 0 on success, 1 on a failed
// check.
//
// Build: a library built with `cargo build --release --features mpi`, then
//   mpicxx -std=c++17 -I include -I target/cxxbridge cpp/mpi_host.cpp target/release/libflowhmc.a
//       -lstdc++ -lgcc_s -lutil -lrt -lpthread -lm -ldl
#include <flowhmc/mpi.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

const std::vector<std::size_t> DIMS = {4, 4, 4, 8};

// A cold block: every link the unit matrix.
std::vector<double> cold_block(std::size_t sites) {
    std::vector<double> block(sites * 4 * 18, 0.0);
    for (std::size_t link = 0; link < sites * 4; link++)
        for (int k = 0; k < 3; k++) block[link * 18 + 2 * (3 * k + k)] = 1.0;
    return block;
}

int run(int rank, int size, const std::string &parameters) {
    const std::vector<std::size_t> grid = {1, 1, 1, static_cast<std::size_t>(size)};
    const std::vector<std::size_t> coords = {0, 0, 0, static_cast<std::size_t>(size - 1 - rank)};
    flowhmc::Context ctx = flowhmc::context_on(MPI_COMM_WORLD, DIMS, parameters, grid, coords);
    std::vector<double> block = cold_block(4 * 4 * 4 * (8 / size));
    if (ctx.gauge_length() != block.size()) {
        std::fprintf(stderr, "rank %d: gauge length %zu, the block has %zu reals\n", rank, ctx.gauge_length(),
                     block.size());
        return 1;
    }
    for (int n = 0; n < 3; n++) {
        flowhmc::UpdateReport r = ctx.update(block.data(), block.size());
        if (rank == 0)
            std::printf("update %d %d %.17g %.17g %llu\n", n, r.accepted ? 1 : 0, r.dh, r.plaquette,
                        static_cast<unsigned long long>(r.solver_iterations));
    }
    double plaquette = ctx.plaquette(block.data(), block.size());
    if (rank == 0) std::printf("plaquette %.17g\n", plaquette);
    // every rank claims the same coordinates: refused on all of them
    try {
        flowhmc::Context bad = flowhmc::context_on(MPI_COMM_WORLD, DIMS, parameters, grid, {0, 0, 0, 0});
        (void)bad;
        if (size > 1) {
            std::fprintf(stderr, "rank %d: a grid with one block twice was accepted\n", rank);
            return 1;
        }
    } catch (const flowhmc::Error &e) {
        if (rank == 0) std::printf("refused: %s\n", e.what());
    }
    if (rank == 0) std::printf("ok\n");
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int status = 1;
    if (argc != 2) {
        if (rank == 0) std::fprintf(stderr, "usage: mpirun -np N mpi_host PARAMETERS_FILE\n");
    } else {
        std::ifstream file(argv[1]);
        std::stringstream text;
        text << file.rdbuf();
        try {
            status = run(rank, size, text.str());
        } catch (const flowhmc::Error &e) {
            std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
        }
    }
    MPI_Finalize();
    return status;
}
