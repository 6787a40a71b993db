// Helpers shared by the kernel sources: complex numbers, SU(3) matrices with the trace
// projection onto the generators, and the fixed-order block reduction. The backend prepends
// this file to every source (NVRTC compiles each source alone, without include paths), and the
// CPU emulation includes it once before them.

#ifndef FLOWHMC_COMMON_CUH
#define FLOWHMC_COMMON_CUH

// Most threads per block of every kernel (the reductions' shared arrays).
#define FLOWHMC_BLOCK 256

// 1 / sqrt(3), of the generator T_8.
#define FLOWHMC_INV_SQRT3 0.57735026918962576451

template <typename T>
struct Complex {
    T re, im;
};

template <typename T>
__device__ inline Complex<T> operator+(Complex<T> a, Complex<T> b) { return {a.re + b.re, a.im + b.im}; }

template <typename T>
__device__ inline Complex<T> operator-(Complex<T> a, Complex<T> b) { return {a.re - b.re, a.im - b.im}; }

// a b
template <typename T>
__device__ inline Complex<T> times(Complex<T> a, Complex<T> b) {
    return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

// conj(a) b
template <typename T>
__device__ inline Complex<T> conj_times(Complex<T> a, Complex<T> b) {
    return {a.re * b.re + a.im * b.im, a.re * b.im - a.im * b.re};
}

// conj(a)
template <typename T>
__device__ inline Complex<T> conj(Complex<T> a) { return {a.re, -a.im}; }

// i^k z
template <typename T>
__device__ inline Complex<T> times_i_power(int k, Complex<T> z) {
    switch (k & 3) {
        case 0: return z;
        case 1: return {-z.im, z.re};
        case 2: return {-z.re, -z.im};
        default: return {z.im, -z.re};
    }
}

template <typename T>
__device__ inline Complex<T> load(const T* p, long long k) { return {p[2 * k], p[2 * k + 1]}; }

// The block's fixed-order tree over sums[0 .. blockDim.x) (blockDim.x a power of two), left in
// sums[0]: sums[t] += sums[t + w] for w = blockDim.x / 2, ..., 1.
__device__ inline void tree_sum(double* sums) {
    __syncthreads();
    for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
        if (threadIdx.x < w) {
            sums[threadIdx.x] += sums[threadIdx.x + w];
        }
        __syncthreads();
    }
}

// An SU(3) matrix (or any 3x3 complex one), row-major.
struct Su3 {
    Complex<double> e[9];
};

// r_a = Re tr(T_a X) = -Im tr(lambda_a X) / 2, from the entries (k = 3 row + col): the CPU's
// Su3::re_tr_generators.
__device__ inline void re_tr_generators(const Su3& x, double r[8]) {
    r[0] = -0.5 * (x.e[1].im + x.e[3].im);
    r[1] = -0.5 * (x.e[1].re - x.e[3].re);
    r[2] = -0.5 * (x.e[0].im - x.e[4].im);
    r[3] = -0.5 * (x.e[2].im + x.e[6].im);
    r[4] = -0.5 * (x.e[2].re - x.e[6].re);
    r[5] = -0.5 * (x.e[5].im + x.e[7].im);
    r[6] = -0.5 * (x.e[5].re - x.e[7].re);
    r[7] = -0.5 * FLOWHMC_INV_SQRT3 * (x.e[0].im + x.e[4].im - 2.0 * x.e[8].im);
}

#endif
