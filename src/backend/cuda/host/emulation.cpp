// The kernel sources of ../kernels compiled as host C++ (with cuda_host.hpp for the CUDA
// built-ins) and one entry point, flowhmc_emulate_launch, that launches a kernel by name with
// its arguments packed as for the driver's cuLaunchKernel: an array of pointers to the values.

#include "cuda_host.hpp"

#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../kernels/common.cuh"
#include "../kernels/blas.cu"
#include "../kernels/gauge.cu"
#include "../kernels/wilson.cu"

namespace {

// Calls kernel k with the values args[0], args[1], ... point to, converted to its parameters.
template <typename... A, std::size_t... I>
void call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

// Runs kernel k on a grid of `grid` blocks of `block` threads (x only).
template <typename... A>
void launch(void (*k)(A...), unsigned grid, unsigned block, void** args) {
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> barrier(block);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([=] {
                blockIdx = dim3{b, 0, 0};
                threadIdx = dim3{t, 0, 0};
                call(k, args, std::index_sequence_for<A...>{});
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
        block_barrier = nullptr;
    }
}

struct Entry {
    const char* name;
    void (*run)(unsigned, unsigned, void**);
};

#define FLOWHMC_KERNEL(k) Entry{#k, [](unsigned g, unsigned b, void** a) { launch(k, g, b, a); }}

const Entry kernels[] = {
    FLOWHMC_KERNEL(axpy_f64),
    FLOWHMC_KERNEL(axpy_f32),
    FLOWHMC_KERNEL(caxpy_f64),
    FLOWHMC_KERNEL(caxpy_f32),
    FLOWHMC_KERNEL(cxpay_f64),
    FLOWHMC_KERNEL(cxpay_f32),
    FLOWHMC_KERNEL(dot_partial_f64),
    FLOWHMC_KERNEL(dot_partial_f32),
    FLOWHMC_KERNEL(cdot_partial_f64),
    FLOWHMC_KERNEL(cdot_partial_f32),
    FLOWHMC_KERNEL(caxpy_norm_partial_f64),
    FLOWHMC_KERNEL(caxpy_norm_partial_f32),
    FLOWHMC_KERNEL(lower_scaled_f64),
    FLOWHMC_KERNEL(add_lower_f64),
    FLOWHMC_KERNEL(wilson_hop_f64),
    FLOWHMC_KERNEL(wilson_hop_f32),
    FLOWHMC_KERNEL(hopping_derivative_f64),
    FLOWHMC_KERNEL(gauge_force_f64),
    FLOWHMC_KERNEL(link_update_f64),
    FLOWHMC_KERNEL(loop_partial_f64),
    FLOWHMC_KERNEL(project_f64),
    FLOWHMC_KERNEL(scale_f64),
    FLOWHMC_KERNEL(gamma5_f64),
    FLOWHMC_KERNEL(gamma5_f32),
    FLOWHMC_KERNEL(two_rows_f64),
    FLOWHMC_KERNEL(two_rows_f32),
    FLOWHMC_KERNEL(pack_faces_f64),
    FLOWHMC_KERNEL(pack_faces_f32),
    FLOWHMC_KERNEL(link_slab_f64),
};

}  // namespace

// Launches the kernel `name` (0), or returns 1 for an unknown name and 2 when the launch threw.
// One launch at a time: the launch geometry and the block's barrier are process-wide.
extern "C" int flowhmc_emulate_launch(const char* name, unsigned grid, unsigned block, void** args) {
    static std::mutex one_launch;
    std::lock_guard<std::mutex> lock(one_launch);
    for (const Entry& e : kernels) {
        if (std::strcmp(e.name, name) == 0) {
            try {
                e.run(grid, block, args);
                return 0;
            } catch (...) {
                return 2;
            }
        }
    }
    return 1;
}
