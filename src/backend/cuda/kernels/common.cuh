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

// One rank's block of a 4D lattice in the kernels' storage. Sites of the block are numbered
// lexicographically (x0 fastest) over its extents l; directions the process grid cuts (bit mu
// of `cut`) have neighbours on other ranks. The links live on the extended box of extents
// e = l + 2 h, the block padded by FLOWHMC_LINK_HALO layers in every cut direction (h = 0 in
// the others, which stay periodic in the box), so that the staples of rectangles and the
// backward hops read their links there; the site with block coordinates c has extended
// coordinates c + h. Bit 0 of `edges` says that the block's lower time face is the lattice's
// time boundary, bit 1 the upper face (both for a block that holds all of time).
#define FLOWHMC_LINK_HALO 2

struct Block {
    int l[4], h[4], e[4];
    int cut, edges;
};

__device__ inline Block make_block(int l0, int l1, int l2, int l3, int cut, int edges) {
    Block b;
    const int l[4] = {l0, l1, l2, l3};
    for (int mu = 0; mu < 4; ++mu) {
        b.l[mu] = l[mu];
        b.h[mu] = (cut >> mu) & 1 ? FLOWHMC_LINK_HALO : 0;
        b.e[mu] = l[mu] + 2 * b.h[mu];
    }
    b.cut = cut;
    b.edges = edges;
    return b;
}

__device__ inline long long block_volume(const Block& b) { return (long long)b.l[0] * b.l[1] * b.l[2] * b.l[3]; }

__device__ inline bool is_cut(const Block& b, int mu) { return ((b.cut >> mu) & 1) != 0; }

// The block coordinates of site x.
__device__ inline void block_coords(const Block& b, long long x, int c[4]) {
    for (int mu = 0; mu < 4; ++mu) {
        c[mu] = (int)(x % b.l[mu]);
        x /= b.l[mu];
    }
}

// The site of block coordinates c.
__device__ inline long long block_site(const Block& b, const int c[4]) {
    return c[0] + (long long)b.l[0] * (c[1] + (long long)b.l[1] * (c[2] + (long long)b.l[2] * c[3]));
}

// The extended-box index of block coordinates c.
__device__ inline long long extended_site(const Block& b, const int c[4]) {
    int d[4];
    for (int mu = 0; mu < 4; ++mu) {
        d[mu] = c[mu] + b.h[mu];
    }
    return d[0] + (long long)b.e[0] * (d[1] + (long long)b.e[1] * (d[2] + (long long)b.e[2] * d[3]));
}

// The extended-box site one step from X in direction mu, periodic in the box.
__device__ inline long long extended_step(const Block& b, long long X, int mu, bool forward) {
    long long stride = 1;
    for (int nu = 0; nu < mu; ++nu) {
        stride *= b.e[nu];
    }
    int c = (int)(X / stride % b.e[mu]);
    if (forward) {
        return c == b.e[mu] - 1 ? X - (b.e[mu] - 1) * stride : X + stride;
    }
    return c == 0 ? X + (b.e[mu] - 1) * stride : X - stride;
}

// The sites of the block's face normal to mu.
__device__ inline long long face_sites(const Block& b, int mu) { return block_volume(b) / b.l[mu]; }

// The index on the face normal to mu of block coordinates c: the other three lexicographic.
__device__ inline long long face_index(const Block& b, const int c[4], int mu) {
    long long index = 0, stride = 1;
    for (int nu = 0; nu < 4; ++nu) {
        if (nu != mu) {
            index += c[nu] * stride;
            stride *= b.l[nu];
        }
    }
    return index;
}

// The first site of ghost face (mu, forward) in a buffer of ghost faces: the faces of the cut
// directions in order, backward then forward, each face_sites(mu) sites of one spinor.
__device__ inline long long ghost_offset(const Block& b, int mu, bool forward) {
    long long offset = 0;
    for (int nu = 0; nu < mu; ++nu) {
        if (is_cut(b, nu)) {
            offset += 2 * face_sites(b, nu);
        }
    }
    return offset + (forward ? face_sites(b, mu) : 0);
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
