// SU(3) gauge-field kernels in double precision, for molecular dynamics on the device.
//
// Storage (complex numbers as (re, im) pairs, sites x lexicographic with x0 fastest, extents
// l0..l3, the whole lattice of one rank, periodic):
//   links    u[((x * 4 + mu) * 3 + row) * 3 + col]   U_mu(x), row-major (as wilson.cu)
//   momenta  p[(x * 4 + mu) * 8 + a]                 P_mu(x) = sum_a p_a T_a, T_a = i lambda_a / 2
// (README, Conventions: tr(T_a T_b) = -delta_ab / 2, dU/dt = P U, a force is
// F_a = -d/dw S(exp(w T_a) U) at w = 0).
//
// The gauge action S = beta sum_x [c0 sum_{mu<nu} (1 - Re tr P_{mu nu}(x) / 3)
//                                 + c1 sum_{mu!=nu} (1 - Re tr R_{mu nu}(x) / 3)],
// R_{mu nu}(x) the 1x2 rectangle with its long side along mu, gives every link the force
// F_a = (beta / 3) Re tr(T_a U_mu(x) A), A = c0 (plaquette staples) + c1 (rectangle staples),
// the staples being the paths from x + mu back to x that close a loop with U_mu(x).
//
// Entry points (grid-stride loops, one thread per site or, for link_update and project, per
// link; blocks a power of two up to 256):
//   gauge_force(u, p, l0..l3, c_plaq, c_rect): p_a(x, mu) += Re tr(T_a U_mu(x) (c_plaq
//     plaquette staples + c_rect rectangle staples)); the caller folds beta / 3 and the step
//     size into the coefficients.
//   link_update(u, p, l0..l3, eps): U_mu(x) <- exp(eps P_mu(x)) U_mu(x), the exponential by
//     the Cayley-Hamilton theorem with the coefficients of Morningstar and Peardon
//     (hep-lat/0311018), as the CPU's Su3::exp.
//   project(u, links): every link projected back to SU(3) (the CPU's Su3::project).
//   loop_partial(u, l0..l3, rectangles, partial): partial[b] = block b's sum over its sites x
//     of sum_{mu<nu} Re tr P_{mu nu}(x) (rectangles = 0) or sum_{mu!=nu} Re tr R_{mu nu}(x)
//     (rectangles = 1); the sums in the fixed order of blas.cu.

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

// The site one step from x in direction mu (forward or backward), periodic.
__device__ inline long long step_site(long long x, const int dims[4], int mu, bool forward) {
    long long stride = 1;
    for (int nu = 0; nu < mu; ++nu) {
        stride *= dims[nu];
    }
    int c = (int)(x / stride % dims[mu]);
    if (forward) {
        return c == dims[mu] - 1 ? x - (dims[mu] - 1) * stride : x + stride;
    }
    return c == 0 ? x + (dims[mu] - 1) * stride : x - stride;
}

// A path of steps from site y: each step (mu, forward) multiplies by U_mu(y) forward or by
// U_mu(y - mu)^dagger backward; the product, and y moved to the path's end.
__device__ inline Su3 path_product(const double* u, long long& y, const int dims[4], const int* mus,
                                   const bool* forward, int steps) {
    Su3 m;
    for (int s = 0; s < steps; ++s) {
        Su3 link;
        if (forward[s]) {
            link = su3_load(u, y, mus[s]);
            y = step_site(y, dims, mus[s], true);
        } else {
            y = step_site(y, dims, mus[s], false);
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

// The staples of U_mu(x): plaquette (rect = false) or 1x2 rectangle (rect = true) paths from
// x + mu back to x, summed (the paths of the CPU's loops::rectangle_staple, in its order).
__device__ Su3 staples(const double* u, long long x, const int dims[4], int mu, bool rect) {
    Su3 a = su3_zero();
    long long start = step_site(x, dims, mu, true);
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
                su3_add(a, path_product(u, y, dims, mus, fw, 3));
                continue;
            }
            int paths[3][5] = {{mu, nu, mu, mu, nu}, {nu, mu, mu, nu, mu}, {nu, nu, mu, nu, nu}};
            bool dirs[3][5] = {{true, n, false, false, !n}, {n, false, false, !n, true}, {n, n, false, !n, !n}};
            for (int k = 0; k < 3; ++k) {
                long long y = start;
                su3_add(a, path_product(u, y, dims, paths[k], dirs[k], 5));
            }
        }
    }
    return a;
}

__device__ void gauge_force(const double* u, double* p, int l0, int l1, int l2, int l3, double c_plaq,
                            double c_rect) {
    const int dims[4] = {l0, l1, l2, l3};
    long long volume = (long long)l0 * l1 * l2 * l3;
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < volume;
         x += (long long)gridDim.x * blockDim.x) {
        for (int mu = 0; mu < 4; ++mu) {
            Su3 a = staples(u, x, dims, mu, false);
            for (int k = 0; k < 9; ++k) {
                a.e[k] = {c_plaq * a.e[k].re, c_plaq * a.e[k].im};
            }
            if (c_rect != 0.0) {
                Su3 r = staples(u, x, dims, mu, true);
                for (int k = 0; k < 9; ++k) {
                    a.e[k] = a.e[k] + Complex<double>{c_rect * r.e[k].re, c_rect * r.e[k].im};
                }
            }
            double f[8];
            re_tr_generators(su3_mul(su3_load(u, x, mu), false, a, false), f);
            for (int c = 0; c < 8; ++c) {
                p[(x * 4 + mu) * 8 + c] += f[c];
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

__device__ void link_update(double* u, const double* p, int l0, int l1, int l2, int l3, double eps) {
    long long links = (long long)l0 * l1 * l2 * l3 * 4;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < links;
         k += (long long)gridDim.x * blockDim.x) {
        // eps sum p_a (i lambda_a / 2) = i Q with Q = (eps / 2) sum p_a lambda_a
        Su3 e = exp_i_hermitian(hermitian_from_components(p + k * 8, 0.5 * eps));
        Su3 link = su3_load(u, k / 4, (int)(k % 4));
        Su3 updated = su3_mul(e, false, link, false);
        for (int c = 0; c < 9; ++c) {
            u[2 * (k * 9 + c)] = updated.e[c].re;
            u[2 * (k * 9 + c) + 1] = updated.e[c].im;
        }
    }
}

__device__ void loop_partial(const double* u, int l0, int l1, int l2, int l3, int rectangles, double* partial) {
    __shared__ double sums[FLOWHMC_BLOCK];
    const int dims[4] = {l0, l1, l2, l3};
    long long volume = (long long)l0 * l1 * l2 * l3;
    double acc = 0.0;
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < volume;
         x += (long long)gridDim.x * blockDim.x) {
        for (int mu = 0; mu < 4; ++mu) {
            for (int nu = 0; nu < 4; ++nu) {
                if (nu == mu || (!rectangles && nu < mu)) {
                    continue;
                }
                long long y = x;
                Su3 loop;
                if (rectangles) {
                    int mus[6] = {mu, mu, nu, mu, mu, nu};
                    bool fw[6] = {true, true, true, false, false, false};
                    loop = path_product(u, y, dims, mus, fw, 6);
                } else {
                    int mus[4] = {mu, nu, mu, nu};
                    bool fw[4] = {true, true, false, false};
                    loop = path_product(u, y, dims, mus, fw, 4);
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
__device__ void project_links(double* u, long long links) {
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < links;
         k += (long long)gridDim.x * blockDim.x) {
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

extern "C" __global__ void project_f64(double* u, long long links) { project_links(u, links); }

extern "C" __global__ void gauge_force_f64(const double* u, double* p, int l0, int l1, int l2, int l3, double c_plaq, double c_rect) {
    gauge_force(u, p, l0, l1, l2, l3, c_plaq, c_rect);
}
extern "C" __global__ void link_update_f64(double* u, const double* p, int l0, int l1, int l2, int l3, double eps) {
    link_update(u, p, l0, l1, l2, l3, eps);
}
extern "C" __global__ void loop_partial_f64(const double* u, int l0, int l1, int l2, int l3, int rectangles, double* partial) {
    loop_partial(u, l0, l1, l2, l3, rectangles, partial);
}
