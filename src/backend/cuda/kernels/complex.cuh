// Complex arithmetic shared by the kernel sources: the backend prepends this file to every
// source that uses it (NVRTC compiles each source alone, without include paths), and the CPU
// emulation includes it once before them.

#ifndef FLOWHMC_COMPLEX_CUH
#define FLOWHMC_COMPLEX_CUH

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

#endif
