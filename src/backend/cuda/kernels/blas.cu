// BLAS-1 kernels on arrays of n reals (a complex or spinor field is its reals in storage
// order). Entry points come in pairs, _f64 and _f32, instantiating one template.
//
// Launch contract: blockDim.x == FLOWHMC_BLOCK (256), any gridDim.x; indices run over the grid
// with stride gridDim.x * FLOWHMC_BLOCK.
//
// Reductions are deterministic: thread t of block b sums the elements i = b * FLOWHMC_BLOCK + t
// + k * gridDim.x * FLOWHMC_BLOCK in increasing k, in double precision; the block then adds
// its threads pairwise in a fixed tree (t += t + w for w = 128, 64, ..., 1) and writes
// partial[b]. The caller sums the gridDim.x partials in block order. For one launch geometry
// the result is the same bits on every run.

#define FLOWHMC_BLOCK 256

// y = a x + y, rounded once (fused multiply-add)
template <typename T>
__device__ void axpy(long long n, T a, const T* x, T* y) {
    long long stride = (long long)gridDim.x * FLOWHMC_BLOCK;
    for (long long i = (long long)blockIdx.x * FLOWHMC_BLOCK + threadIdx.x; i < n; i += stride) {
        y[i] = fma(a, x[i], y[i]);
    }
}

// partial[b] = sum over block b's elements of x[i] y[i] (see the header for the order)
template <typename T>
__device__ void dot_partial(long long n, const T* x, const T* y, double* partial) {
    __shared__ double sums[FLOWHMC_BLOCK];
    long long stride = (long long)gridDim.x * FLOWHMC_BLOCK;
    double acc = 0.0;
    for (long long i = (long long)blockIdx.x * FLOWHMC_BLOCK + threadIdx.x; i < n; i += stride) {
        acc += (double)x[i] * (double)y[i];
    }
    sums[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned w = FLOWHMC_BLOCK / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) {
            sums[threadIdx.x] += sums[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = sums[0];
    }
}

extern "C" __global__ void axpy_f64(long long n, double a, const double* x, double* y) { axpy(n, a, x, y); }
extern "C" __global__ void axpy_f32(long long n, float a, const float* x, float* y) { axpy(n, a, x, y); }

extern "C" __global__ void dot_partial_f64(long long n, const double* x, const double* y, double* partial) {
    dot_partial(n, x, y, partial);
}
extern "C" __global__ void dot_partial_f32(long long n, const float* x, const float* y, double* partial) {
    dot_partial(n, x, y, partial);
}
