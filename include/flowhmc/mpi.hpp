// flowhmc/mpi.hpp -- flowhmc contexts on the ranks of an MPI communicator, for C++ hosts that
// include <mpi.h> (flowhmc.hpp itself does not need MPI). The library must be built with the
// cargo feature mpi, and MPI initialized with MPI_Init_thread(..., MPI_THREAD_SERIALIZED, ...)
// or more: flowhmc calls MPI from its worker threads, one at a time.
#ifndef FLOWHMC_MPI_HPP
#define FLOWHMC_MPI_HPP

#include <mpi.h>

#include "flowhmc/flowhmc.hpp"

namespace flowhmc {

/// A context on the ranks of `comm` (collective over it): `dims` are the global extents,
/// `grid` the ranks per direction (x first) and `coords` this rank's place in the grid, which
/// need not follow comm's rank numbering. Each rank's host buffers hold its own block.
inline Context context_on(MPI_Comm comm, const std::vector<std::size_t> &dims, const std::string &parameters,
                          const std::vector<std::size_t> &grid, const std::vector<std::size_t> &coords) {
    return Context(dims, parameters, FortranComm{static_cast<int>(MPI_Comm_c2f(comm))}, grid, coords);
}

}  // namespace flowhmc

#endif
