// SU(3) gauge-field kernels in double precision, for molecular dynamics on the device.
//
// Storage (complex numbers as (re, im) pairs; one rank's block, see Block in common.cuh,
// given to every kernel as l0..l3, cut, edges):
//   links    u[((X * 4 + mu) * 3 + row) * 3 + col]   U_mu at extended-box site X, row-major
//   momenta  p[(x * 4 + mu) * 8 + a]                 P_mu(x) = sum_a p_a T_a, T_a = i lambda_a / 2,
//                                                    x the block site
// (README, Conventions: tr(T_a T_b) = -delta_ab / 2, dU/dt = P U, a force is
// F_a = -d/dw S(exp(w T_a) U) at w = 0).
//
// The gauge action S = beta sum_x [c0 sum_{mu<nu} (1 - Re tr P_{mu nu}(x) / 3)
//                                 + c1 sum_{mu!=nu} (1 - Re tr R_{mu nu}(x) / 3)],
// R_{mu nu}(x) the 1x2 rectangle with its long side along mu, gives every link the force
// F_a = (beta / 3) Re tr(T_a U_mu(x) A), A = c0 (plaquette staples) + c1 (rectangle staples),
// the staples being the paths from x + mu back to x that close a loop with U_mu(x).
//
// Entry points (grid-stride loops, one thread per block site or, for link_update and
// project, per link of the block; blocks a power of two up to 256). Staples and loops read the
// halo layers of the extended box, which the caller keeps current (link_slab); the updates
// write the block's own links only:
//   gauge_force(u, p, block, c_plaq, c_rect): p_a(x, mu) += Re tr(T_a U_mu(x) (c_plaq
//     plaquette staples + c_rect rectangle staples)); the caller folds beta / 3 and the step
//     size into the coefficients.
//   link_update(u, p, block, eps): U_mu(x) <- exp(eps P_mu(x)) U_mu(x), the exponential by
//     the Cayley-Hamilton theorem with the coefficients of Morningstar and Peardon
//     (hep-lat/0311018), as the CPU's Su3::exp.
//   project(u, block): every link projected back to SU(3) (the CPU's Su3::project).
//   loop_partial(u, block, rectangles, partial): partial[b] = block b's sum over its sites x
//     of sum_{mu<nu} Re tr P_{mu nu}(x) (rectangles = 0) or sum_{mu!=nu} Re tr R_{mu nu}(x)
//     (rectangles = 1); the sums in the fixed order of blas.cu.
//   link_slab(u, block, mu, start, buffer, unpack): the slab of the extended box with
//     extended coordinate X_mu in [start, start + FLOWHMC_LINK_HALO) (all coordinates of the
//     box in the other directions, x0 fastest, 72 reals a site) copied into buffer (unpack = 0)
//     or from it (unpack = 1): the halo exchange, direction by direction, so that corners
//     arrive through the faces.

__device__ inline Su3 su3_load(const double* u, long long x, int mu) {
    Su3 m;
    for (int k = 0; k < 9; ++k) {
        m.e[k] = load(u, (x * 4 + mu) * 9 + k);
    }
    return m;
}

// a b, a^dagger b, a b^dagger (dagger flags)
__device__ inline Su3 su3_mul(const Su3& a, bool adj_a, const Su3& b, bool adj_b) {
    Su3 c;
    for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
            Complex<double> sum = {0, 0};
            for (int k = 0; k < 3; ++k) {
                Complex<double> x = adj_a ? Complex<double>{a.e[k * 3 + i].re, -a.e[k * 3 + i].im} : a.e[i * 3 + k];
                Complex<double> y = adj_b ? Complex<double>{b.e[j * 3 + k].re, -b.e[j * 3 + k].im} : b.e[k * 3 + j];
                sum = sum + times(x, y);
            }
            c.e[i * 3 + j] = sum;
        }
    }
    return c;
}

__device__ inline Su3 su3_zero() {
    Su3 m;
    for (int k = 0; k < 9; ++k) {
        m.e[k] = {0, 0};
    }
    return m;
}

__device__ inline void su3_add(Su3& a, const Su3& b) {
    for (int k = 0; k < 9; ++k) {
        a.e[k] = a.e[k] + b.e[k];
    }
}

// A path of steps from site y: each step (mu, forward) multiplies by U_mu(y) forward or by
// U_mu(y - mu)^dagger backward; the product, and y moved to the path's end.
__device__ inline Su3 path_product(const double* u, long long& y, const Block& b, const int* mus,
                                   const bool* forward, int steps) {
    Su3 m;
    for (int s = 0; s < steps; ++s) {
        Su3 link;
        if (forward[s]) {
            link = su3_load(u, y, mus[s]);
            y = extended_step(b, y, mus[s], true);
        } else {
            y = extended_step(b, y, mus[s], false);
            Su3 l = su3_load(u, y, mus[s]);
            for (int i = 0; i < 3; ++i) {
                for (int j = 0; j < 3; ++j) {
                    link.e[i * 3 + j] = {l.e[j * 3 + i].re, -l.e[j * 3 + i].im};
                }
            }
        }
        m = s == 0 ? link : su3_mul(m, false, link, false);
    }
    return m;
}

// The staples of U_mu at extended site X: plaquette (rect = false) or 1x2 rectangle (rect =
// true) paths from X + mu back to X, summed (the paths of the CPU's loops::rectangle_staple,
// in its order).
__device__ Su3 staples(const double* u, long long X, const Block& b, int mu, bool rect) {
    Su3 a = su3_zero();
    long long start = extended_step(b, X, mu, true);
    for (int nu = 0; nu < 4; ++nu) {
        if (nu == mu) {
            continue;
        }
        for (int side = 1; side >= 0; --side) {
            bool n = side != 0;
            if (!rect) {
                int mus[3] = {nu, mu, nu};
                bool fw[3] = {n, false, !n};
                long long y = start;
                su3_add(a, path_product(u, y, b, mus, fw, 3));
                continue;
            }
            int paths[3][5] = {{mu, nu, mu, mu, nu}, {nu, mu, mu, nu, mu}, {nu, nu, mu, nu, nu}};
            bool dirs[3][5] = {{true, n, false, false, !n}, {n, false, false, !n, true}, {n, n, false, !n, !n}};
            for (int k = 0; k < 3; ++k) {
                long long y = start;
                su3_add(a, path_product(u, y, b, paths[k], dirs[k], 5));
            }
        }
    }
    return a;
}

__device__ void gauge_force(const double* u, double* p, const Block& b, double c_plaq, double c_rect) {
    long long volume = block_volume(b);
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < volume;
         x += (long long)gridDim.x * blockDim.x) {
        int c[4];
        block_coords(b, x, c);
        long long X = extended_site(b, c);
        for (int mu = 0; mu < 4; ++mu) {
            Su3 a = staples(u, X, b, mu, false);
            for (int k = 0; k < 9; ++k) {
                a.e[k] = {c_plaq * a.e[k].re, c_plaq * a.e[k].im};
            }
            if (c_rect != 0.0) {
                Su3 r = staples(u, X, b, mu, true);
                for (int k = 0; k < 9; ++k) {
                    a.e[k] = a.e[k] + Complex<double>{c_rect * r.e[k].re, c_rect * r.e[k].im};
                }
            }
            double f[8];
            re_tr_generators(su3_mul(su3_load(u, X, mu), false, a, false), f);
            for (int k = 0; k < 8; ++k) {
                p[(x * 4 + mu) * 8 + k] += f[k];
            }
        }
    }
}

// sin(w)/w with its series near zero (as the CPU's)
__device__ inline double sinc(double w) {
    if (fabs(w) < 0.05) {
        double w2 = w * w;
        return 1.0 - w2 / 6.0 * (1.0 - w2 / 20.0 * (1.0 - w2 / 42.0 * (1.0 - w2 / 72.0)));
    }
    return sin(w) / w;
}

__device__ inline Complex<double> cdiv(Complex<double> a, double d) { return {a.re / d, a.im / d}; }

__device__ inline Complex<double> cscale(double s, Complex<double> a) { return {s * a.re, s * a.im}; }

// exp(i Q) for Hermitian traceless Q (Morningstar and Peardon, eqs. 29-34, as the CPU's)
__device__ Su3 exp_i_hermitian(const Su3& q) {
    Su3 q2 = su3_mul(q, false, q, false);
    double c1 = 0.5 * (q2.e[0].re + q2.e[4].re + q2.e[8].re);
    Su3 out = su3_zero();
    if (c1 == 0.0) {
        out.e[0] = out.e[4] = out.e[8] = {1, 0};
        return out;
    }
    // det Q, real for Hermitian Q
    Complex<double> m0 = times(q.e[4], q.e[8]) - times(q.e[5], q.e[7]);
    Complex<double> m1 = times(q.e[3], q.e[8]) - times(q.e[5], q.e[6]);
    Complex<double> m2 = times(q.e[3], q.e[7]) - times(q.e[4], q.e[6]);
    double c0_signed = (times(q.e[0], m0) - times(q.e[1], m1) + times(q.e[2], m2)).re;
    double c0 = fabs(c0_signed);
    double c0_max = 2.0 * pow(c1 / 3.0, 1.5);
    double ratio = fmin(fmax(c0 / c0_max, -1.0), 1.0);
    double theta = acos(ratio);
    double uu = sqrt(c1 / 3.0) * cos(theta / 3.0);
    double w = sqrt(c1) * sin(theta / 3.0);
    double u2 = uu * uu, w2 = w * w;
    double xi0 = sinc(w);
    double cw = cos(w);
    Complex<double> e2iu = {cos(2.0 * uu), sin(2.0 * uu)};
    Complex<double> emiu = {cos(-uu), sin(-uu)};
    Complex<double> h0 = cscale(u2 - w2, e2iu) +
                         times(emiu, Complex<double>{8.0 * u2 * cw, 2.0 * uu * (3.0 * u2 + w2) * xi0});
    Complex<double> h1 = cscale(2.0 * uu, e2iu) - times(emiu, Complex<double>{2.0 * uu * cw, -(3.0 * u2 - w2) * xi0});
    Complex<double> h2 = e2iu - times(emiu, Complex<double>{cw, 3.0 * uu * xi0});
    double denom = 9.0 * u2 - w2;
    Complex<double> f0 = cdiv(h0, denom), f1 = cdiv(h1, denom), f2 = cdiv(h2, denom);
    if (c0_signed < 0.0) {
        // f_j(-c0) = (-1)^j conj(f_j(c0))
        f0 = {f0.re, -f0.im};
        f1 = {-f1.re, f1.im};
        f2 = {f2.re, -f2.im};
    }
    for (int k = 0; k < 9; ++k) {
        Complex<double> diag = k % 4 == 0 ? f0 : Complex<double>{0, 0};
        out.e[k] = diag + times(f1, q.e[k]) + times(f2, q2.e[k]);
    }
    return out;
}

// The Hermitian Q = scale sum_a p_a lambda_a (the CPU's hermitian_from_components)
__device__ inline Su3 hermitian_from_components(const double* p, double scale) {
    double q[8];
    for (int a = 0; a < 8; ++a) {
        q[a] = p[a] * scale;
    }
    double d8 = q[7] * FLOWHMC_INV_SQRT3;
    Su3 h;
    h.e[0] = {q[2] + d8, 0.0};
    h.e[1] = {q[0], -q[1]};
    h.e[2] = {q[3], -q[4]};
    h.e[3] = {q[0], q[1]};
    h.e[4] = {-q[2] + d8, 0.0};
    h.e[5] = {q[5], -q[6]};
    h.e[6] = {q[3], q[4]};
    h.e[7] = {q[5], q[6]};
    h.e[8] = {-2.0 * d8, 0.0};
    return h;
}

// The extended-box link index (X * 4 + mu) of the block's link k = x * 4 + mu.
__device__ inline long long extended_link(const Block& b, long long k) {
    int c[4];
    block_coords(b, k / 4, c);
    return extended_site(b, c) * 4 + k % 4;
}

__device__ void link_update(double* u, const double* p, const Block& b, double eps) {
    long long links = block_volume(b) * 4;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < links;
         k += (long long)gridDim.x * blockDim.x) {
        // eps sum p_a (i lambda_a / 2) = i Q with Q = (eps / 2) sum p_a lambda_a
        Su3 e = exp_i_hermitian(hermitian_from_components(p + k * 8, 0.5 * eps));
        long long K = extended_link(b, k);
        Su3 link = su3_load(u, K / 4, (int)(K % 4));
        Su3 updated = su3_mul(e, false, link, false);
        for (int c = 0; c < 9; ++c) {
            u[2 * (K * 9 + c)] = updated.e[c].re;
            u[2 * (K * 9 + c) + 1] = updated.e[c].im;
        }
    }
}

__device__ void loop_partial(const double* u, const Block& b, int rectangles, double* partial) {
    __shared__ double sums[FLOWHMC_BLOCK];
    long long volume = block_volume(b);
    double acc = 0.0;
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < volume;
         x += (long long)gridDim.x * blockDim.x) {
        int c[4];
        block_coords(b, x, c);
        long long X = extended_site(b, c);
        for (int mu = 0; mu < 4; ++mu) {
            for (int nu = 0; nu < 4; ++nu) {
                if (nu == mu || (!rectangles && nu < mu)) {
                    continue;
                }
                long long y = X;
                Su3 loop;
                if (rectangles) {
                    int mus[6] = {mu, mu, nu, mu, mu, nu};
                    bool fw[6] = {true, true, true, false, false, false};
                    loop = path_product(u, y, b, mus, fw, 6);
                } else {
                    int mus[4] = {mu, nu, mu, nu};
                    bool fw[4] = {true, true, false, false};
                    loop = path_product(u, y, b, mus, fw, 4);
                }
                acc += loop.e[0].re + loop.e[4].re + loop.e[8].re;
            }
        }
    }
    sums[threadIdx.x] = acc;
    tree_sum(sums);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = sums[0];
    }
}

// Every link projected back to SU(3) (the CPU's Su3::project): the first row normalised,
// the second orthogonalised to it and normalised, the third their conjugate cross product.
__device__ void project_links(double* u, const Block& blk) {
    long long links = block_volume(blk) * 4;
    for (long long l = (long long)blockIdx.x * blockDim.x + threadIdx.x; l < links;
         l += (long long)gridDim.x * blockDim.x) {
        long long k = extended_link(blk, l);
        Complex<double> a[3], b[3];
        for (int c = 0; c < 3; ++c) {
            a[c] = load(u, k * 9 + c);
            b[c] = load(u, k * 9 + 3 + c);
        }
        double n = sqrt(a[0].re * a[0].re + a[0].im * a[0].im + a[1].re * a[1].re + a[1].im * a[1].im +
                        a[2].re * a[2].re + a[2].im * a[2].im);
        for (int c = 0; c < 3; ++c) {
            a[c] = cdiv(a[c], n);
        }
        Complex<double> overlap = conj_times(a[0], b[0]) + conj_times(a[1], b[1]) + conj_times(a[2], b[2]);
        for (int c = 0; c < 3; ++c) {
            b[c] = b[c] - times(overlap, a[c]);
        }
        n = sqrt(b[0].re * b[0].re + b[0].im * b[0].im + b[1].re * b[1].re + b[1].im * b[1].im + b[2].re * b[2].re +
                 b[2].im * b[2].im);
        for (int c = 0; c < 3; ++c) {
            b[c] = cdiv(b[c], n);
        }
        Complex<double> third[3] = {
            times(a[1], b[2]) - times(a[2], b[1]),
            times(a[2], b[0]) - times(a[0], b[2]),
            times(a[0], b[1]) - times(a[1], b[0]),
        };
        for (int c = 0; c < 3; ++c) {
            u[2 * (k * 9 + c)] = a[c].re;
            u[2 * (k * 9 + c) + 1] = a[c].im;
            u[2 * (k * 9 + 3 + c)] = b[c].re;
            u[2 * (k * 9 + 3 + c) + 1] = b[c].im;
            u[2 * (k * 9 + 6 + c)] = third[c].re;
            u[2 * (k * 9 + 6 + c) + 1] = -third[c].im;
        }
    }
}

__device__ void link_slab(double* u, const Block& b, int mu, int start, double* buffer, int unpack) {
    long long sites = FLOWHMC_LINK_HALO;
    for (int nu = 0; nu < 4; ++nu) {
        if (nu != mu) {
            sites *= b.e[nu];
        }
    }
    long long n = sites * 72;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (long long)gridDim.x * blockDim.x) {
        // slab site s: the coordinates of the box with X_mu = start + (depth coordinate)
        long long s = k / 72, rest = s, X = 0, stride = 1;
        for (int nu = 0; nu < 4; ++nu) {
            int extent = nu == mu ? FLOWHMC_LINK_HALO : b.e[nu];
            int c = (int)(rest % extent);
            rest /= extent;
            X += (nu == mu ? start + c : c) * stride;
            stride *= b.e[nu];
        }
        long long at = X * 72 + k % 72;
        if (unpack) {
            u[at] = buffer[k];
        } else {
            buffer[k] = u[at];
        }
    }
}

extern "C" __global__ void project_f64(double* u, int l0, int l1, int l2, int l3, int cut, int edges) {
    project_links(u, make_block(l0, l1, l2, l3, cut, edges));
}

extern "C" __global__ void gauge_force_f64(const double* u, double* p, int l0, int l1, int l2, int l3, int cut, int edges, double c_plaq, double c_rect) {
    gauge_force(u, p, make_block(l0, l1, l2, l3, cut, edges), c_plaq, c_rect);
}
extern "C" __global__ void link_update_f64(double* u, const double* p, int l0, int l1, int l2, int l3, int cut, int edges, double eps) {
    link_update(u, p, make_block(l0, l1, l2, l3, cut, edges), eps);
}
extern "C" __global__ void loop_partial_f64(const double* u, int l0, int l1, int l2, int l3, int cut, int edges, int rectangles, double* partial) {
    loop_partial(u, make_block(l0, l1, l2, l3, cut, edges), rectangles, partial);
}
extern "C" __global__ void link_slab_f64(double* u, int l0, int l1, int l2, int l3, int cut, int edges, int mu, int start, double* buffer, int unpack) {
    link_slab(u, make_block(l0, l1, l2, l3, cut, edges), mu, start, buffer, unpack);
}
