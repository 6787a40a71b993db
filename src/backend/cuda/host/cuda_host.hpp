// Stand-ins for the CUDA built-ins, so that a kernel source of ../kernels compiles as host C++
// and runs on the CPU (the backend's CPU tests of kernel arithmetic and indexing).
//
// Execution model: a launch runs the blocks of its grid one after the other; the threads of a
// block run as host threads, started together, and __syncthreads() is a barrier among them.
// __shared__ variables are static: one block runs at a time, and all its threads see them.
// threadIdx and blockIdx are per host thread, blockDim and gridDim per launch (one launch runs
// at a time).

#pragma once

#include <barrier>
#include <cmath>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline std::barrier<>* block_barrier = nullptr;

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

using std::fma;

#define __global__
#define __device__
#define __shared__ static
