// The Wilson-Dirac operator on a whole 4D SU(3) lattice, one thread per output site:
//   out = M psi = psi - kappa H psi, or M^dagger psi = gamma5 M gamma5 psi with dagger != 0,
//   H psi(x) = sum_mu [(1 - gamma_mu) U_mu(x) psi(x+mu) + (1 + gamma_mu) U_mu(x-mu)^dagger psi(x-mu)]
// (README, Conventions), with the phase exp(i theta) on a forward hop that wraps around time
// and exp(-i theta) on a backward one (theta = pi: antiperiodic). H^dagger = gamma5 H gamma5
// swaps the signs of the projections.
//
// Storage, complex numbers as (re, im) pairs of reals, sites x lexicographic with x0 fastest
// (extents l0, l1, l2, l3; time is mu = 3):
//   links   u[((x * 4 + mu) * rows + row) * 3 + col]   U_mu(x), row-major, with rows = 3 (18
//           reals a link) or rows = 2 (12 reals, QUDA's reconstruct-12: the third row is
//           rebuilt as conj(row0 x row1), which holds for SU(3) links)
//   spinors psi[(x * 4 + spin) * 3 + color]           full fields, index x
//   half fields of parity p (sites with x0 + x1 + x2 + x3 = p mod 2): index x / 2, which
//   numbers them in lexicographic order (l0 even), the even/odd order of the CPU fields.
// Gammas: the DeGrand-Rossi basis, gamma_mu = [[0, A_mu], [A_mu^dagger, 0]], row r of A_mu has
// the phase i^PHASE[mu][r] in column COLUMN[mu][r] (the table of the CPU operator's
// dirac::gamma::BLOCKS_4D; the tests compare the two operators). A hop projects onto the two
// rows h_r = psi_up[r] -+ A psi_down, multiplies them by the link and adds back
// up[r] += chi_r, down[COLUMN[r]] -+= conj(i^PHASE[r]) chi_r (minus for 1 - gamma_mu).
//
// Entry points (_f64, _f32):
//   wilson_hop(u, rows, in, base, out, l0..l3, factor, cos theta, sin theta, dagger, parity):
//     out = base - factor H in (H^dagger with dagger; base may be null: 0). parity -1: full
//     fields; parity p = 0 or 1: out is the half field of parity p and in that of 1 - p (the
//     block H_{p, 1-p} of H). M = wilson_hop(in = base = psi, factor kappa, parity -1); the
//     Schur operator 1 - kappa^2 H_eo H_oe is two half hops.
//   hopping_derivative (_f64 only): the force of a b^dagger H, see its comment.
//   gamma5(sites, psi): psi <- gamma5 psi on any number of sites.
//   two_rows(links, u, out): the first two rows of `links` 3x3 links (the 12-real storage).
// Launch: any grid and block size (a grid-stride loop over the output sites).

__device__ inline int gamma_column(int mu, int r) {
    const int column[4][2] = {{1, 0}, {1, 0}, {0, 1}, {0, 1}};
    return column[mu][r];
}

__device__ inline int gamma_phase(int mu, int r) {
    const int phase[4][2] = {{1, 1}, {2, 0}, {1, 3}, {0, 0}};
    return phase[mu][r];
}

// The link of index `link` (x * 4 + mu) of links stored with `rows` rows (see the header).
template <typename T>
__device__ inline void load_link(const T* u, int rows, long long link, Complex<T> m[9]) {
    const T* p = u + 2 * 3 * rows * link;
    for (int k = 0; k < 3 * rows; ++k) {
        m[k] = load(p, k);
    }
    if (rows == 2) {
        m[6] = conj(times(m[1], m[5]) - times(m[2], m[4]));
        m[7] = conj(times(m[2], m[3]) - times(m[0], m[5]));
        m[8] = conj(times(m[0], m[4]) - times(m[1], m[3]));
    }
}

// chi = U h (adjoint: U^dagger h)
template <typename T>
__device__ inline void link_times(const Complex<T> u[9], bool adjoint, const Complex<T> h[3], Complex<T> chi[3]) {
    for (int a = 0; a < 3; ++a) {
        Complex<T> sum = {0, 0};
        for (int b = 0; b < 3; ++b) {
            sum = sum + (adjoint ? conj_times(u[b * 3 + a], h[b]) : times(u[a * 3 + b], h[b]));
        }
        chi[a] = sum;
    }
}

// The half spinor row r of the projection (1 -+ gamma_mu) psi at site index y of psi
// (minus for 1 - gamma_mu): psi_up[r] -+ A_mu psi_down, colour a.
template <typename T>
__device__ inline Complex<T> projected(const T* psi, long long y, int mu, int r, int a, bool minus) {
    Complex<T> up = load(psi, (y * 4 + r) * 3 + a);
    Complex<T> down = times_i_power(gamma_phase(mu, r), load(psi, (y * 4 + 2 + gamma_column(mu, r)) * 3 + a));
    return minus ? up - down : up + down;
}

// The coordinates c and lexicographic strides of site xl.
__device__ inline void site_coordinates(long long xl, const int dims[4], int c[4], long long stride[4]) {
    long long rest = xl;
    for (int mu = 0; mu < 4; ++mu) {
        c[mu] = (int)(rest % dims[mu]);
        rest /= dims[mu];
        stride[mu] = mu == 0 ? 1 : stride[mu - 1] * dims[mu - 1];
    }
}

// out at output site x of lexicographic index xl (see the header)
template <typename T>
__device__ void hop_site(long long x, long long xl, const T* u, int rows, const T* in, const T* base, T* out, const int dims[4],
                         T factor, T cos_theta, T sin_theta, int dagger, int parity) {
    int c[4];
    long long stride[4];
    site_coordinates(xl, dims, c, stride);
    Complex<T> acc[4][3] = {};
    for (int mu = 0; mu < 4; ++mu) {
        for (int forward = 1; forward >= 0; --forward) {
            // the neighbour's site, and the phase of a hop around time
            bool wraps = forward ? c[mu] == dims[mu] - 1 : c[mu] == 0;
            long long step = forward ? stride[mu] : -stride[mu];
            long long yl = xl + step - (wraps ? step * dims[mu] : 0);
            long long y = parity < 0 ? yl : yl / 2;
            Complex<T> phase = {1, 0};
            if (mu == 3 && wraps) {
                phase = {cos_theta, forward ? sin_theta : -sin_theta};
            }
            // 1 - gamma_mu forward, 1 + gamma_mu backward; swapped for H^dagger
            bool minus = (forward != 0) != (dagger != 0);
            Complex<T> h[2][3];
            for (int r = 0; r < 2; ++r) {
                for (int a = 0; a < 3; ++a) {
                    h[r][a] = projected(in, y, mu, r, a, minus);
                }
            }
            Complex<T> link[9];
            load_link(u, rows, forward ? xl * 4 + mu : yl * 4 + mu, link);
            for (int r = 0; r < 2; ++r) {
                Complex<T> chi[3];
                link_times(link, forward == 0, h[r], chi);
                int k = gamma_column(mu, r);
                int conj_phase = 4 - gamma_phase(mu, r);
                for (int a = 0; a < 3; ++a) {
                    Complex<T> v = times(phase, chi[a]);
                    Complex<T> down = times_i_power(conj_phase, v);
                    acc[r][a] = acc[r][a] + v;
                    acc[2 + k][a] = minus ? acc[2 + k][a] - down : acc[2 + k][a] + down;
                }
            }
        }
    }
    for (int s = 0; s < 4; ++s) {
        for (int a = 0; a < 3; ++a) {
            long long k = (x * 4 + s) * 3 + a;
            T re = base ? base[2 * k] : (T)0;
            T im = base ? base[2 * k + 1] : (T)0;
            out[2 * k] = re - factor * acc[s][a].re;
            out[2 * k + 1] = im - factor * acc[s][a].im;
        }
    }
}

template <typename T>
__device__ void wilson_hop(const T* u, int rows, const T* in, const T* base, T* out, int l0, int l1, int l2, int l3, T factor,
                           T cos_theta, T sin_theta, int dagger, int parity) {
    const int dims[4] = {l0, l1, l2, l3};
    long long volume = (long long)l0 * l1 * l2 * l3;
    long long sites = parity < 0 ? volume : volume / 2;
    int half_row = l0 / 2;
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < sites;
         x += (long long)gridDim.x * blockDim.x) {
        long long xl = x;
        if (parity >= 0) {
            // the x-th site of parity `parity`: x0 = 2 (x mod l0/2) + (x1 + x2 + x3 + parity) mod 2
            long long row = x / half_row;  // (x1, x2, x3) lexicographic
            int sum = (int)(row % l1) + (int)(row / l1 % l2) + (int)(row / ((long long)l1 * l2));
            int x0 = 2 * (int)(x % half_row) + ((sum + parity) & 1);
            xl = x0 + (long long)l0 * row;
        }
        hop_site(x, xl, u, rows, in, base, out, dims, factor, cos_theta, sin_theta, dagger, parity);
    }
}


// p_a(x, mu) += c d/dw Re(a^dagger H b) for U_mu(x) -> exp(w T_a) U_mu(x), with a and b full
// fields given by their even and odd halves (half-field storage): Re tr(T_a Z),
// Z = phase U C1 - conj(phase) C2 U^dagger, C1 = sum_r h_b(x+mu) h_a(x)^dagger,
// C2 = sum_r k_b(x) k_a(x+mu)^dagger, h and k the rows of the projections 1 - gamma_mu and
// 1 + gamma_mu (the CPU's WilsonOperator::add_hopping_derivative). Momenta p[(x * 4 + mu) * 8 + a].
__device__ void hopping_derivative(const double* u, int rows, const double* a_even, const double* a_odd, const double* b_even,
                                   const double* b_odd, double* p, int l0, int l1, int l2, int l3, double c,
                                   double cos_theta, double sin_theta) {
    const int dims[4] = {l0, l1, l2, l3};
    long long volume = (long long)l0 * l1 * l2 * l3;
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < volume;
         x += (long long)gridDim.x * blockDim.x) {
        int cx[4];
        long long stride[4];
        site_coordinates(x, dims, cx, stride);
        bool odd = ((cx[0] + cx[1] + cx[2] + cx[3]) & 1) != 0;
        const double* a_here = odd ? a_odd : a_even;
        const double* b_here = odd ? b_odd : b_even;
        const double* a_next = odd ? a_even : a_odd;
        const double* b_next = odd ? b_even : b_odd;
        for (int mu = 0; mu < 4; ++mu) {
            bool wraps = cx[mu] == dims[mu] - 1;
            long long y = x + stride[mu] - (wraps ? stride[mu] * dims[mu] : 0);
            Complex<double> c1[9] = {}, c2[9] = {};
            for (int r = 0; r < 2; ++r) {
                for (int i = 0; i < 3; ++i) {
                    for (int j = 0; j < 3; ++j) {
                        Complex<double> hb = projected(b_next, y / 2, mu, r, i, true);
                        Complex<double> ha = projected(a_here, x / 2, mu, r, j, true);
                        Complex<double> kb = projected(b_here, x / 2, mu, r, i, false);
                        Complex<double> ka = projected(a_next, y / 2, mu, r, j, false);
                        c1[i * 3 + j] = c1[i * 3 + j] + conj_times(ha, hb);
                        c2[i * 3 + j] = c2[i * 3 + j] + conj_times(ka, kb);
                    }
                }
            }
            Complex<double> phase = {1, 0};
            if (mu == 3 && wraps) {
                phase = {cos_theta, sin_theta};
            }
            Complex<double> link[9];
            load_link(u, rows, x * 4 + mu, link);
            // Z = phase U C1 - conj(phase) C2 U^dagger
            Su3 z;
            for (int i = 0; i < 3; ++i) {
                for (int j = 0; j < 3; ++j) {
                    Complex<double> f = {0, 0}, b = {0, 0};
                    for (int k = 0; k < 3; ++k) {
                        f = f + times(link[i * 3 + k], c1[k * 3 + j]);
                        b = b + conj_times(link[j * 3 + k], c2[i * 3 + k]);
                    }
                    z.e[i * 3 + j] = times(phase, f) - conj_times(phase, b);
                }
            }
            double r[8];
            re_tr_generators(z, r);
            for (int k = 0; k < 8; ++k) {
                p[(x * 4 + mu) * 8 + k] += c * r[k];
            }
        }
    }
}

// psi <- gamma5 psi on `sites` sites (gamma5 = diag(1, 1, -1, -1) in the DeGrand-Rossi basis:
// the lower spin half changes sign)
template <typename T>
__device__ void gamma5(long long sites, T* psi) {
    long long n = sites * 12;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (long long)gridDim.x * blockDim.x) {
        if ((k / 3) % 4 >= 2) {
            psi[2 * k] = -psi[2 * k];
            psi[2 * k + 1] = -psi[2 * k + 1];
        }
    }
}

// out[(l * 2 + row) * 3 + col] = u[(l * 3 + row) * 3 + col] for rows 0 and 1
template <typename T>
__device__ void two_rows(long long links, const T* u, T* out) {
    long long n = links * 12;
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < n; k += (long long)gridDim.x * blockDim.x) {
        out[k] = u[k / 12 * 18 + k % 12];
    }
}

extern "C" __global__ void two_rows_f64(long long links, const double* u, double* out) { two_rows(links, u, out); }
extern "C" __global__ void two_rows_f32(long long links, const float* u, float* out) { two_rows(links, u, out); }

extern "C" __global__ void gamma5_f64(long long sites, double* psi) { gamma5(sites, psi); }
extern "C" __global__ void gamma5_f32(long long sites, float* psi) { gamma5(sites, psi); }

extern "C" __global__ void hopping_derivative_f64(const double* u, int rows, const double* a_even, const double* a_odd, const double* b_even, const double* b_odd, double* p, int l0, int l1, int l2, int l3, double c, double cos_theta, double sin_theta) {
    hopping_derivative(u, rows, a_even, a_odd, b_even, b_odd, p, l0, l1, l2, l3, c, cos_theta, sin_theta);
}

extern "C" __global__ void wilson_hop_f64(const double* u, int rows, const double* in, const double* base, double* out, int l0, int l1, int l2, int l3, double factor, double cos_theta, double sin_theta, int dagger, int parity) {
    wilson_hop(u, rows, in, base, out, l0, l1, l2, l3, factor, cos_theta, sin_theta, dagger, parity);
}
extern "C" __global__ void wilson_hop_f32(const float* u, int rows, const float* in, const float* base, float* out, int l0, int l1, int l2, int l3, float factor, float cos_theta, float sin_theta, int dagger, int parity) {
    wilson_hop(u, rows, in, base, out, l0, l1, l2, l3, factor, cos_theta, sin_theta, dagger, parity);
}
