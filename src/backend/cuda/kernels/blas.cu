// BLAS-1 kernels on arrays of n reals or n complex numbers (a complex number is a (re, im)
// pair of reals; a spinor field is its complex components in storage order). Entry points come
// in pairs, _f64 and _f32, instantiating one template, except the f64-only scale_f64 and the
// mixed-precision conversions lower_scaled_f64 and add_lower_f64.
//
// Launch contract: blockDim.x a power of two up to FLOWHMC_BLOCK (256, common.cuh), any gridDim.x; indices
// run over the grid with stride gridDim.x * blockDim.x.
//
// Reductions are deterministic: thread t of block b sums the elements i = b * blockDim.x + t +
// k * gridDim.x * blockDim.x in increasing k, in double precision; the block then adds its
// threads pairwise in a fixed tree (tree_sum in common.cuh) and writes
// partial[b] (a complex sum: partial[2 b] and partial[2 b + 1]). The caller sums the gridDim.x
// partials in block order. For one launch geometry the result is the same bits on every run.

__device__ inline long long first_index() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }

__device__ inline long long grid_stride() { return (long long)gridDim.x * blockDim.x; }

// y = a x + y on reals, rounded once (fused multiply-add)
template <typename T>
__device__ void axpy(long long n, T a, const T* x, T* y) {
    for (long long i = first_index(); i < n; i += grid_stride()) {
        y[i] = fma(a, x[i], y[i]);
    }
}

// y = a x + y on n complex numbers, a = (a_re, a_im)
template <typename T>
__device__ void caxpy(long long n, T a_re, T a_im, const T* x, T* y) {
    for (long long i = first_index(); i < n; i += grid_stride()) {
        T xr = x[2 * i], xi = x[2 * i + 1];
        y[2 * i] = fma(a_re, xr, fma(-a_im, xi, y[2 * i]));
        y[2 * i + 1] = fma(a_re, xi, fma(a_im, xr, y[2 * i + 1]));
    }
}

// y = x + a y on n complex numbers, a = (a_re, a_im)
template <typename T>
__device__ void cxpay(long long n, const T* x, T a_re, T a_im, T* y) {
    for (long long i = first_index(); i < n; i += grid_stride()) {
        T yr = y[2 * i], yi = y[2 * i + 1];
        y[2 * i] = fma(a_re, yr, fma(-a_im, yi, x[2 * i]));
        y[2 * i + 1] = fma(a_re, yi, fma(a_im, yr, x[2 * i + 1]));
    }
}

// partial[b] = sum over block b's elements of x[i] y[i] on reals (see the header for the
// order): Re <x, y> of complex arrays, |x|^2 with y = x
template <typename T>
__device__ void dot_partial(long long n, const T* x, const T* y, double* partial) {
    __shared__ double sums[FLOWHMC_BLOCK];
    double acc = 0.0;
    for (long long i = first_index(); i < n; i += grid_stride()) {
        acc += (double)x[i] * (double)y[i];
    }
    sums[threadIdx.x] = acc;
    tree_sum(sums);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = sums[0];
    }
}

// partial[2 b], partial[2 b + 1] = Re, Im of the sum over block b's elements of conj(x_i) y_i
// on n complex numbers
template <typename T>
__device__ void cdot_partial(long long n, const T* x, const T* y, double* partial) {
    __shared__ double sums[FLOWHMC_BLOCK];
    double re = 0.0, im = 0.0;
    for (long long i = first_index(); i < n; i += grid_stride()) {
        double xr = x[2 * i], xi = x[2 * i + 1], yr = y[2 * i], yi = y[2 * i + 1];
        re += xr * yr + xi * yi;
        im += xr * yi - xi * yr;
    }
    sums[threadIdx.x] = re;
    tree_sum(sums);
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x] = sums[0];
    }
    __syncthreads();
    sums[threadIdx.x] = im;
    tree_sum(sums);
    if (threadIdx.x == 0) {
        partial[2 * blockIdx.x + 1] = sums[0];
    }
}

// y = a x + y on n complex numbers as caxpy, and partial[b] = block b's part of |y|^2 after
// the update (one pass over y)
template <typename T>
__device__ void caxpy_norm_partial(long long n, T a_re, T a_im, const T* x, T* y, double* partial) {
    __shared__ double sums[FLOWHMC_BLOCK];
    double acc = 0.0;
    for (long long i = first_index(); i < n; i += grid_stride()) {
        T xr = x[2 * i], xi = x[2 * i + 1];
        T yr = fma(a_re, xr, fma(-a_im, xi, y[2 * i]));
        T yi = fma(a_re, xi, fma(a_im, xr, y[2 * i + 1]));
        y[2 * i] = yr;
        y[2 * i + 1] = yi;
        acc += (double)yr * (double)yr;
        acc += (double)yi * (double)yi;
    }
    sums[threadIdx.x] = acc;
    tree_sum(sums);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = sums[0];
    }
}

// Mixed precision (the reliable updates of mixed-precision CG): low = (float)(s high), and
// high += a (double)low, rounded once, on n reals
__device__ void lower_scaled(long long n, double s, const double* high, float* low) {
    for (long long i = first_index(); i < n; i += grid_stride()) {
        low[i] = (float)(s * high[i]);
    }
}

__device__ void add_lower(long long n, double a, const float* low, double* high) {
    for (long long i = first_index(); i < n; i += grid_stride()) {
        high[i] = fma(a, (double)low[i], high[i]);
    }
}

extern "C" __global__ void lower_scaled_f64(long long n, double s, const double* high, float* low) {
    lower_scaled(n, s, high, low);
}
extern "C" __global__ void add_lower_f64(long long n, double a, const float* low, double* high) {
    add_lower(n, a, low, high);
}

// y = a y on n reals
template <typename T>
__device__ void scale(long long n, T a, T* y) {
    for (long long i = first_index(); i < n; i += grid_stride()) {
        y[i] = a * y[i];
    }
}

extern "C" __global__ void scale_f64(long long n, double a, double* y) { scale(n, a, y); }

extern "C" __global__ void axpy_f64(long long n, double a, const double* x, double* y) { axpy(n, a, x, y); }
extern "C" __global__ void axpy_f32(long long n, float a, const float* x, float* y) { axpy(n, a, x, y); }

extern "C" __global__ void caxpy_f64(long long n, double a_re, double a_im, const double* x, double* y) {
    caxpy(n, a_re, a_im, x, y);
}
extern "C" __global__ void caxpy_f32(long long n, float a_re, float a_im, const float* x, float* y) {
    caxpy(n, a_re, a_im, x, y);
}

extern "C" __global__ void cxpay_f64(long long n, const double* x, double a_re, double a_im, double* y) {
    cxpay(n, x, a_re, a_im, y);
}
extern "C" __global__ void cxpay_f32(long long n, const float* x, float a_re, float a_im, float* y) {
    cxpay(n, x, a_re, a_im, y);
}

extern "C" __global__ void dot_partial_f64(long long n, const double* x, const double* y, double* partial) {
    dot_partial(n, x, y, partial);
}
extern "C" __global__ void dot_partial_f32(long long n, const float* x, const float* y, double* partial) {
    dot_partial(n, x, y, partial);
}

extern "C" __global__ void cdot_partial_f64(long long n, const double* x, const double* y, double* partial) {
    cdot_partial(n, x, y, partial);
}
extern "C" __global__ void cdot_partial_f32(long long n, const float* x, const float* y, double* partial) {
    cdot_partial(n, x, y, partial);
}

extern "C" __global__ void caxpy_norm_partial_f64(long long n, double a_re, double a_im, const double* x, double* y,
                                                  double* partial) {
    caxpy_norm_partial(n, a_re, a_im, x, y, partial);
}
extern "C" __global__ void caxpy_norm_partial_f32(long long n, float a_re, float a_im, const float* x, float* y,
                                                  double* partial) {
    caxpy_norm_partial(n, a_re, a_im, x, y, partial);
}
