// The Wilson-Dirac operator on one rank's block of a 4D SU(3) lattice, one thread per output
// site:
//   out = M psi = psi - kappa H psi, or M^dagger psi = gamma5 M gamma5 psi with dagger != 0,
//   H psi(x) = sum_mu [(1 - gamma_mu) U_mu(x) psi(x+mu) + (1 + gamma_mu) U_mu(x-mu)^dagger psi(x-mu)]
// (README, Conventions), with the phase exp(i theta) on a forward hop that wraps around time
// and exp(-i theta) on a backward one (theta = pi: antiperiodic). H^dagger = gamma5 H gamma5
// swaps the signs of the projections.
//
// Storage, complex numbers as (re, im) pairs of reals, on the block of common.cuh's Block
// (every kernel takes it as l0..l3, cut, edges; time is mu = 3; block extents even, so that a
// block site's parity is its lattice site's):
//   links   u[((X * 4 + mu) * rows + row) * 3 + col]   U_mu at extended-box site X, row-major,
//           with rows = 3 (18 reals a link) or rows = 2 (12 reals, QUDA's reconstruct-12: the
//           third row is rebuilt as conj(row0 x row1), which holds for SU(3) links)
//   spinors psi[(x * 4 + spin) * 3 + color]           full fields, block site x
//   half fields of parity p (sites with x0 + x1 + x2 + x3 = p mod 2): index x / 2, which
//   numbers them in lexicographic order (l0 even), the even/odd order of the CPU fields.
//   ghosts  the spinors of the neighbouring blocks' faces, for the hops that leave the block
//           in a cut direction: ghost[(ghost_offset(mu, forward) + face_index) * 12 + ...],
//           face (mu, forward) holding the forward neighbour's sites with c_mu = 0 (the
//           backward one's with c_mu = l_mu - 1); pack_faces fills a rank's outgoing faces in
//           the same layout (a half field fills the face sites of its parity).
// Gammas: the DeGrand-Rossi basis, gamma_mu = [[0, A_mu], [A_mu^dagger, 0]], row r of A_mu has
// the phase i^PHASE[mu][r] in column COLUMN[mu][r] (the table of the CPU operator's
// dirac::gamma::BLOCKS_4D; the tests compare the two operators). A hop projects onto the two
// rows h_r = psi_up[r] -+ A psi_down, multiplies them by the link and adds back
// up[r] += chi_r, down[COLUMN[r]] -+= conj(i^PHASE[r]) chi_r (minus for 1 - gamma_mu).
//
// Entry points (_f64, _f32):
//   wilson_hop(u, rows, in, ghost, base, out, block, factor, cos theta, sin theta, dagger,
//     parity): out = base - factor H in (H^dagger with dagger; base may be null: 0; ghost
//     null when no direction is cut). parity -1: full
//     fields; parity p = 0 or 1: out is the half field of parity p and in that of 1 - p (the
//     block H_{p, 1-p} of H). M = wilson_hop(in = base = psi, factor kappa, parity -1); the
//     Schur operator 1 - kappa^2 H_eo H_oe is two half hops.
//   hopping_derivative (_f64 only): the force of a b^dagger H, see its comment.
//   pack_faces(in, parity, block, out): the outgoing faces of the field in (parity -1: full,
//     0 or 1: a half field of that parity) in the ghost layout: out's face (mu, forward) gets
//     this block's sites with c_mu = 0 (what its backward neighbour needs as its forward
//     ghost), face (mu, backward) those with c_mu = l_mu - 1.
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

// Where the neighbour of block site c in direction (mu, forward) is read: the site index y
// in `in` (full field: its block site; half field: block site / 2), or, across a cut face, in
// `ghost`; and whether the hop crosses the lattice's time boundary (the phase).
template <typename T>
__device__ inline const T* neighbour(const Block& b, const int c[4], int mu, bool forward, int parity, const T* in,
                                     const T* ghost, long long& y, bool& boundary) {
    bool leaves = forward ? c[mu] == b.l[mu] - 1 : c[mu] == 0;
    boundary = mu == 3 && leaves && ((b.edges >> (forward ? 1 : 0)) & 1);
    if (leaves && is_cut(b, mu)) {
        y = ghost_offset(b, mu, forward) + face_index(b, c, mu);
        return ghost;
    }
    int d[4] = {c[0], c[1], c[2], c[3]};
    d[mu] = forward ? (leaves ? 0 : c[mu] + 1) : (leaves ? b.l[mu] - 1 : c[mu] - 1);
    long long yl = block_site(b, d);
    y = parity < 0 ? yl : yl / 2;
    return in;
}

// out at output site x of block coordinates c (see the header)
template <typename T>
__device__ void hop_site(long long x, const int c[4], const T* u, int rows, const T* in, const T* ghost, const T* base,
                         T* out, const Block& b, T factor, T cos_theta, T sin_theta, int dagger, int parity) {
    long long X = extended_site(b, c);
    Complex<T> acc[4][3] = {};
    for (int mu = 0; mu < 4; ++mu) {
        for (int forward = 1; forward >= 0; --forward) {
            long long y;
            bool boundary;
            const T* from = neighbour(b, c, mu, forward != 0, parity, in, ghost, y, boundary);
            Complex<T> phase = {1, 0};
            if (boundary) {
                phase = {cos_theta, forward ? sin_theta : -sin_theta};
            }
            // 1 - gamma_mu forward, 1 + gamma_mu backward; swapped for H^dagger
            bool minus = (forward != 0) != (dagger != 0);
            Complex<T> h[2][3];
            for (int r = 0; r < 2; ++r) {
                for (int a = 0; a < 3; ++a) {
                    h[r][a] = projected(from, y, mu, r, a, minus);
                }
            }
            Complex<T> link[9];
            load_link(u, rows, (forward ? X : extended_step(b, X, mu, false)) * 4 + mu, link);
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

// The block coordinates of the x-th site of a field of parity `parity` (-1: a full field, x
// the block site; 0 or 1: x0 = 2 (x mod l0/2) + (x1 + x2 + x3 + parity) mod 2 on row x / (l0/2)).
__device__ inline void field_site_coords(const Block& b, long long x, int parity, int c[4]) {
    if (parity < 0) {
        block_coords(b, x, c);
        return;
    }
    int half_row = b.l[0] / 2;
    long long row = x / half_row;
    c[1] = (int)(row % b.l[1]);
    c[2] = (int)(row / b.l[1] % b.l[2]);
    c[3] = (int)(row / ((long long)b.l[1] * b.l[2]));
    c[0] = 2 * (int)(x % half_row) + ((c[1] + c[2] + c[3] + parity) & 1);
}

template <typename T>
__device__ void wilson_hop(const T* u, int rows, const T* in, const T* ghost, const T* base, T* out, const Block& b,
                           T factor, T cos_theta, T sin_theta, int dagger, int parity) {
    long long volume = block_volume(b);
    long long sites = parity < 0 ? volume : volume / 2;
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < sites;
         x += (long long)gridDim.x * blockDim.x) {
        int c[4];
        field_site_coords(b, x, parity, c);
        hop_site(x, c, u, rows, in, ghost, base, out, b, factor, cos_theta, sin_theta, dagger, parity);
    }
}

// The outgoing faces of `in` (see the header): one work item per face site and spinor real.
template <typename T>
__device__ void pack_faces(const T* in, int parity, const Block& b, T* out) {
    long long total = 0;
    for (int mu = 0; mu < 4; ++mu) {
        if (is_cut(b, mu)) {
            total += 2 * face_sites(b, mu);
        }
    }
    for (long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x; k < total * 24;
         k += (long long)gridDim.x * blockDim.x) {
        long long g = k / 24;
        // the face (mu, forward) and the site f on it
        int mu = 0;
        bool forward = false;
        long long f = g;
        for (int nu = 0; nu < 4; ++nu) {
            if (!is_cut(b, nu)) {
                continue;
            }
            long long n = face_sites(b, nu);
            if (f < 2 * n) {
                mu = nu;
                forward = f >= n;
                f -= forward ? n : 0;
                break;
            }
            f -= 2 * n;
        }
        int c[4];
        long long rest = f;
        for (int nu = 0; nu < 4; ++nu) {
            if (nu != mu) {
                c[nu] = (int)(rest % b.l[nu]);
                rest /= b.l[nu];
            }
        }
        c[mu] = forward ? 0 : b.l[mu] - 1;
        if (parity >= 0 && ((c[0] + c[1] + c[2] + c[3]) & 1) != parity) {
            continue;
        }
        long long x = block_site(b, c);
        out[k] = in[(parity < 0 ? x : x / 2) * 24 + k % 24];
    }
}

// p_a(x, mu) += c d/dw Re(a^dagger H b) for U_mu(x) -> exp(w T_a) U_mu(x), with a and b full
// fields given by their even and odd halves (half-field storage) and their ghost faces (both
// parities; null when no direction is cut): Re tr(T_a Z),
// Z = phase U C1 - conj(phase) C2 U^dagger, C1 = sum_r h_b(x+mu) h_a(x)^dagger,
// C2 = sum_r k_b(x) k_a(x+mu)^dagger, h and k the rows of the projections 1 - gamma_mu and
// 1 + gamma_mu (the CPU's WilsonOperator::add_hopping_derivative). Momenta p[(x * 4 + mu) * 8 + a].
__device__ void hopping_derivative(const double* u, int rows, const double* a_even, const double* a_odd,
                                   const double* a_ghost, const double* b_even, const double* b_odd,
                                   const double* b_ghost, double* p, const Block& blk, double c, double cos_theta,
                                   double sin_theta) {
    long long volume = block_volume(blk);
    for (long long x = (long long)blockIdx.x * blockDim.x + threadIdx.x; x < volume;
         x += (long long)gridDim.x * blockDim.x) {
        int cx[4];
        block_coords(blk, x, cx);
        long long X = extended_site(blk, cx);
        bool odd = ((cx[0] + cx[1] + cx[2] + cx[3]) & 1) != 0;
        const double* a_here = odd ? a_odd : a_even;
        const double* b_here = odd ? b_odd : b_even;
        const double* a_next = odd ? a_even : a_odd;
        const double* b_next = odd ? b_even : b_odd;
        for (int mu = 0; mu < 4; ++mu) {
            long long y;
            bool boundary;
            const double* b_there = neighbour(blk, cx, mu, true, 0, b_next, b_ghost, y, boundary);
            const double* a_there = neighbour(blk, cx, mu, true, 0, a_next, a_ghost, y, boundary);
            Complex<double> c1[9] = {}, c2[9] = {};
            for (int r = 0; r < 2; ++r) {
                for (int i = 0; i < 3; ++i) {
                    for (int j = 0; j < 3; ++j) {
                        Complex<double> hb = projected(b_there, y, mu, r, i, true);
                        Complex<double> ha = projected(a_here, x / 2, mu, r, j, true);
                        Complex<double> kb = projected(b_here, x / 2, mu, r, i, false);
                        Complex<double> ka = projected(a_there, y, mu, r, j, false);
                        c1[i * 3 + j] = c1[i * 3 + j] + conj_times(ha, hb);
                        c2[i * 3 + j] = c2[i * 3 + j] + conj_times(ka, kb);
                    }
                }
            }
            Complex<double> phase = {1, 0};
            if (boundary) {
                phase = {cos_theta, sin_theta};
            }
            Complex<double> link[9];
            load_link(u, rows, X * 4 + mu, link);
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

extern "C" __global__ void hopping_derivative_f64(const double* u, int rows, const double* a_even, const double* a_odd, const double* a_ghost, const double* b_even, const double* b_odd, const double* b_ghost, double* p, int l0, int l1, int l2, int l3, int cut, int edges, double c, double cos_theta, double sin_theta) {
    hopping_derivative(u, rows, a_even, a_odd, a_ghost, b_even, b_odd, b_ghost, p, make_block(l0, l1, l2, l3, cut, edges), c, cos_theta, sin_theta);
}

extern "C" __global__ void wilson_hop_f64(const double* u, int rows, const double* in, const double* ghost, const double* base, double* out, int l0, int l1, int l2, int l3, int cut, int edges, double factor, double cos_theta, double sin_theta, int dagger, int parity) {
    wilson_hop(u, rows, in, ghost, base, out, make_block(l0, l1, l2, l3, cut, edges), factor, cos_theta, sin_theta, dagger, parity);
}
extern "C" __global__ void wilson_hop_f32(const float* u, int rows, const float* in, const float* ghost, const float* base, float* out, int l0, int l1, int l2, int l3, int cut, int edges, float factor, float cos_theta, float sin_theta, int dagger, int parity) {
    wilson_hop(u, rows, in, ghost, base, out, make_block(l0, l1, l2, l3, cut, edges), factor, cos_theta, sin_theta, dagger, parity);
}

extern "C" __global__ void pack_faces_f64(const double* in, int parity, int l0, int l1, int l2, int l3, int cut, int edges, double* out) {
    pack_faces(in, parity, make_block(l0, l1, l2, l3, cut, edges), out);
}
extern "C" __global__ void pack_faces_f32(const float* in, int parity, int l0, int l1, int l2, int l3, int cut, int edges, float* out) {
    pack_faces(in, parity, make_block(l0, l1, l2, l3, cut, edges), out);
}
