/*
 * flowhmc.h -- the C interface of flowhmc (Hybrid Monte Carlo and flow-augmented Markov steps
 * for lattice gauge theory), for C hosts such as MILC and openQCD. C++ hosts may prefer
 * flowhmc.hpp (the cxx bridge, with exceptions).
 *
 * Everything hangs off a context handle; there is no global state, a host may hold several
 * contexts, and different contexts may be used from different threads at the same time (one
 * context: one call at a time). No Rust panic crosses this interface: an internal failure is
 * reported as FLOWHMC_ERROR_INTERNAL.
 *
 * Errors: every function returns a flowhmc_status; on failure flowhmc_last_error(ctx) gives a
 * message naming the problem (valid until the next call on that context): one line, without a
 * prefix for the kind of error (the status says it). A NULL where a pointer is required
 * (context, dims, parameters, structs, strings, a buffer's data, a required out-pointer) is
 * FLOWHMC_ERROR_NULL with a message naming the argument. A failing call changes nothing the
 * caller owns: a rejected input leaves the buffers, the out-values and the context's chain as
 * they were. Sizes too large for the machine (extents, step counts, update numbers) are
 * refused before anything is allocated; nothing is printed.
 *
 * Conventions that cross this interface:
 *  - Directions mu = 0..D-1 are x, y, (z,) t unless a layout says the host puts time first.
 *    Links U_mu(x) go from x to x + mu; complex numbers are (re, im) pairs of reals.
 *  - Plaquette: the average over all plaquettes of Re tr P / N (N = 1 for U(1), 3 for SU(3)),
 *    1 on a unit field. (openQCD prints 3x this for SU(3); MILC prints the sum over the 3
 *    colours too.)
 *  - Gauge action: S = beta sum_P (1 - Re tr P / N), improved actions add rectangles with
 *    c1 = -1/12 (Symanzik) or -0.331 (Iwasaki), c0 = 1 - 8 c1.
 *  - Momenta and forces: P = sum_a p_a T_a with anti-Hermitian generators, tr(T_a T_b) =
 *    -delta_ab / 2 (T_a = i lambda_a / 2; U(1): T = i). Kinetic energy (1/2) sum_a p_a^2.
 *    The MD equations are dU/dt = P U and dP/dt = F with F = sum_a F_a T_a,
 *    F_a = -d/dw S(exp(w T_a) U) at w = 0. Force buffers hold the N x N matrix F in the gauge
 *    layout.
 *  - Wilson fermions: M = 1 - kappa H, H psi(x) = sum_mu [(1 - gamma_mu) U_mu(x) psi(x + mu)
 *    + (1 + gamma_mu) U_mu(x - mu)^dagger psi(x - mu)], kappa = 1 / (2 m0 + 2 D). The time
 *    boundary phase is -1 (antiperiodic) or +1 as the parameters say, applied by the operator
 *    (links carry no phases).
 *  - Gamma basis: 4D spinors are in the DeGrand-Rossi basis (Chroma, QDP++, QUDA, MILC), with
 *    gamma5 = gamma_x gamma_y gamma_z gamma_t = diag(1, 1, -1, -1), or in openQCD's basis
 *    if the spinor layout says so. 2D: gamma_x = sigma_1, gamma_t = sigma_2,
 *    gamma5 = sigma_3.
 *  - Solver residual: relative, |b - A x| / |b|, recomputed from x; for CG it is that of the
 *    normal equations M^dagger M x = M^dagger b.
 *  - Randomness: every random number of update n derives from (seed, n); that pair is the
 *    whole random state (flowhmc_get_rng_state).
 *
 * Structs passed in carry their size (struct_size = sizeof the struct the host compiled
 * against): a host built against an older, shorter version keeps working, and fields it does
 * not know take their defaults.
 */
#ifndef FLOWHMC_H
#define FLOWHMC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Return codes. */
typedef enum {
    FLOWHMC_OK = 0,
    FLOWHMC_ERROR_PARAMETERS = 1, /**< malformed or invalid parameter set (run-card schema), or lattice extents too large */
    FLOWHMC_ERROR_HOST_INPUT = 2, /**< wrong buffer size, non-finite value, link outside the group, bad layout */
    FLOWHMC_ERROR_FILE = 3,       /**< a file (model, configuration) is missing, corrupt or mismatched */
    FLOWHMC_ERROR_NUMERICAL = 4,  /**< a solver did not converge, a non-finite energy, ... */
    FLOWHMC_ERROR_MODEL = 5,      /**< a flow model is malformed or belongs to another theory or lattice */
    FLOWHMC_ERROR_NULL = 6,       /**< a required pointer argument is NULL */
    FLOWHMC_ERROR_INTERNAL = 7,   /**< a bug in flowhmc, caught at the boundary: destroy the context */
    FLOWHMC_ERROR_DEVICE = 8      /**< a compute device is missing or failed (CUDA driver, GPU, kernel compilation) */
} flowhmc_status;

/** Precision of a host buffer of reals. */
typedef enum { FLOWHMC_F64 = 0, FLOWHMC_F32 = 1 } flowhmc_precision;

/** A host buffer: `length` reals of the given precision at `data`. */
typedef struct {
    void *data;
    size_t length;
    flowhmc_precision precision;
} flowhmc_field;

/** Where each site's links sit in a gauge buffer. */
typedef enum {
    FLOWHMC_SITE_MAJOR = 0,      /**< [site][mu][matrix] (MILC) */
    FLOWHMC_DIRECTION_MAJOR = 1, /**< [mu][site][matrix] (QDP++/Chroma, QUDA's QDP order) */
    FLOWHMC_OPENQCD_LINKS = 2    /**< openQCD: odd sites hold U(x,mu), U(x-mu,mu) at 8 (ix - V/2) + 2 mu (+1) */
} flowhmc_link_order;

/** How the host numbers sites. */
typedef enum {
    FLOWHMC_X_FASTEST = 0, /**< lexicographic, x fastest, time slowest */
    FLOWHMC_T_FASTEST = 1, /**< lexicographic, time fastest, x slowest ([x][y][z][t]) */
    FLOWHMC_SITE_TABLE = 2 /**< explicit table: site_table[s] = host index of flowhmc site s */
} flowhmc_site_order;

/** Entry order of colour matrices. */
typedef enum { FLOWHMC_ROW_MAJOR = 0, FLOWHMC_COLUMN_MAJOR = 1 } flowhmc_matrix_order;

/** Component order of spinors at a site. */
typedef enum { FLOWHMC_SPIN_COLOR = 0, FLOWHMC_COLOR_SPIN = 1 } flowhmc_spinor_order;

/** Gamma basis of 4D host spinors. */
typedef enum { FLOWHMC_DEGRAND_ROSSI = 0, FLOWHMC_OPENQCD_BASIS = 1 } flowhmc_gamma_basis;

/** How the host lays out its sites (shared by gauge and spinor layouts). flowhmc site s is
 *  the lexicographic index with x fastest: s = x + Lx (y + Ly (z + Lz t)). */
typedef struct {
    flowhmc_site_order order;
    int even_odd;             /**< with X/T_FASTEST: 1 puts all even sites first (MILC EVENFIRST) */
    const size_t *site_table; /**< with FLOWHMC_SITE_TABLE: `volume` entries, a permutation */
} flowhmc_sites;

/** A gauge-field layout. The default (flowhmc_gauge_layout_default) is flowhmc's own order. */
typedef struct {
    size_t struct_size;       /**< sizeof(flowhmc_gauge_layout) */
    flowhmc_sites sites;
    flowhmc_link_order links;
    int time_first;           /**< 1: the host's direction 0 is time, then x, y, z (openQCD) */
    flowhmc_matrix_order matrix;
} flowhmc_gauge_layout;

/** A spinor-field layout. */
typedef struct {
    size_t struct_size; /**< sizeof(flowhmc_spinor_layout) */
    flowhmc_sites sites;
    flowhmc_spinor_order order;
    flowhmc_gamma_basis basis;
} flowhmc_spinor_layout;

/** Gauge groups, actions and integrators of the field-by-field parameter set. */
typedef enum { FLOWHMC_U1 = 0, FLOWHMC_SU3 = 1 } flowhmc_group;
typedef enum { FLOWHMC_WILSON = 0, FLOWHMC_SYMANZIK = 1, FLOWHMC_IWASAKI = 2 } flowhmc_gauge_action;
typedef enum {
    FLOWHMC_LEAPFROG = 0,
    FLOWHMC_OMELYAN = 1,       /**< Omelyan 2MN, lambda = 0.1931833275037836 */
    FLOWHMC_OMELYAN4 = 2,      /**< Omelyan 4MN5FV */
    FLOWHMC_FORCE_GRADIENT = 3 /**< 4th-order force gradient */
} flowhmc_integrator;

/** The parameter set built field by field: HMC with one integrator level, and optionally two
 *  flavours of Wilson fermions. Richer sets (nested levels, Hasenbusch, flow updates) are
 *  given as TOML text to flowhmc_context_create. Fill with flowhmc_params_default first. */
typedef struct {
    size_t struct_size; /**< sizeof(flowhmc_params) */
    flowhmc_group group;
    flowhmc_gauge_action action;
    double beta;
    flowhmc_integrator integrator;
    int steps;                /**< integrator steps per trajectory, 1 to 100000 */
    double trajectory_length;
    uint64_t seed;
    int threads;              /**< worker threads of this context; 0: one per core */
    int fermions;             /**< 1: two flavours of Wilson fermions */
    double kappa;
    int antiperiodic;         /**< 1: antiperiodic in time (default), 0: periodic */
    int even_odd;             /**< 1: even/odd-preconditioned pseudofermion action (default) */
    double solver_tolerance;  /**< CG relative residual (default 1e-10) */
    int solver_max_iterations;
} flowhmc_params;

/** What one Markov step reports. */
typedef struct {
    int accepted;             /**< 1 if the proposal was accepted (the buffer then holds it), 0 if not (the buffer is unchanged) */
    double dh;                /**< H(proposal) - H(current), dimensionless (the action in units of kT); the step accepts with probability min(1, exp(-dh)). Flow proposals: [S + log q](proposal) - [S + log q](current) */
    double plaquette;         /**< Re tr P / N averaged over all plaquettes of the field after the step (1 on a unit field) */
    uint64_t solver_iterations; /**< Krylov solver iterations of the step, all solves summed (0 without fermions) */
} flowhmc_update_report;

/** The chain's random state. */
typedef struct {
    uint64_t seed;            /**< the run seed */
    uint64_t next_update;     /**< the number of the next update, at most 2^63: updates stop there */
} flowhmc_rng_state;

/** An opaque context. */
typedef struct flowhmc_context flowhmc_context;

/** The library version and source revision, e.g. "0.1.0 (a1b2c3d4e5f6)" (static storage). */
const char *flowhmc_version(void);

/** Creates a context for the lattice dims[0..ndim) (x, y, (z,) t) from a parameter set in the
 *  run-card schema (TOML; [run] may be omitted, and [lattice] too or give only boundary =
 *  "open" for openQCD's open boundaries in time, whose removed links the host holds as zero
 *  matrices). On failure *out is NULL (if out
 *  is not NULL) and, if error is not NULL, up to error_capacity bytes of the message are
 *  written there (NUL-terminated). Extents whose fields would not fit in memory are
 *  FLOWHMC_ERROR_PARAMETERS. */
flowhmc_status flowhmc_context_create(const size_t *dims, size_t ndim, const char *parameters,
                                      flowhmc_context **out, char *error, size_t error_capacity);

/** As flowhmc_context_create, on the ranks of a host's MPI communicator (collective over it;
 *  the library must be built with the cargo feature mpi, else FLOWHMC_ERROR_HOST_INPUT says so, and
 *  MPI initialized with MPI_Init_thread at MPI_THREAD_SERIALIZED or more). comm is the
 *  communicator's Fortran handle, MPI_Comm_c2f(comm) (an int in Open MPI and MPICH); dims are
 *  the global extents; grid[0..ndim) the ranks per direction (x first) and coords[0..ndim)
 *  this rank's place in it, which need not follow comm's rank numbering. Every host buffer
 *  of the context holds this rank's block (extents dims / grid) in the context's layout (a
 *  site table is the block's, as openQCD's local ipt), and every call on it is collective: an
 *  error on one rank is returned on all, with the same message. A grid that does not match
 *  the communicator, differs between ranks or gets the same coordinates twice is refused on
 *  every rank. Destroy the context before MPI_Finalize. */
flowhmc_status flowhmc_context_create_mpi(const size_t *dims, size_t ndim, const char *parameters, int comm,
                                          const size_t *grid, const size_t *coords, flowhmc_context **out,
                                          char *error, size_t error_capacity);

/** Fills *params with the defaults (SU(3) Wilson beta 6, Omelyan 10 steps, tau 1, seed 1,
 *  no fermions; kappa 0.125, antiperiodic, even/odd, tolerance 1e-10, 10000 iterations). */
void flowhmc_params_default(flowhmc_params *params);

/** As flowhmc_context_create, from a field-by-field parameter set. */
flowhmc_status flowhmc_context_create_from_params(const size_t *dims, size_t ndim, const flowhmc_params *params,
                                                  flowhmc_context **out, char *error, size_t error_capacity);

/** A parameter set built key by key: flowhmc_parameters_set(p, "gauge.beta", "6.0"),
 *  (p, "run.device", "\"cuda\"") for the CUDA backend (a build with the cargo feature cuda),
 *  with (p, "run.link_reals", "12") for its 12-real links,
 *  (p, "update.kind", "\"flow-mh\""), (p, "update.levels", "[{ integrator = \"omelyan\",
 *  steps = 4, monomials = [\"gauge\"] }]"), (p, "fermions", "[{ kind = \"wilson\", ... }]").
 *  Keys are dotted paths of the run-card schema, values TOML values; a key set twice keeps the
 *  last value. A malformed key or value fails at once (message: flowhmc_parameters_last_error);
 *  the whole set is validated by flowhmc_context_create_from_set. */
typedef struct flowhmc_parameters flowhmc_parameters;
flowhmc_parameters *flowhmc_parameters_create(void);
void flowhmc_parameters_destroy(flowhmc_parameters *p);
flowhmc_status flowhmc_parameters_set(flowhmc_parameters *p, const char *key, const char *value);
const char *flowhmc_parameters_last_error(const flowhmc_parameters *p);
/** As flowhmc_context_create, from a key-by-key parameter set (which stays the caller's). */
flowhmc_status flowhmc_context_create_from_set(const size_t *dims, size_t ndim, const flowhmc_parameters *p,
                                               flowhmc_context **out, char *error, size_t error_capacity);

/** Destroys a context (NULL is allowed). */
void flowhmc_context_destroy(flowhmc_context *ctx);

/** The message of the last failed call on ctx ("" if none). */
const char *flowhmc_last_error(const flowhmc_context *ctx);

/** Fills a layout with flowhmc's own order (x fastest, site-major, time last, row-major;
 *  spinors [site][spin][colour], DeGrand-Rossi). */
void flowhmc_gauge_layout_default(flowhmc_gauge_layout *layout);
void flowhmc_spinor_layout_default(flowhmc_spinor_layout *layout);

/** Sets the layouts of the host's gauge (and force) and spinor buffers. */
flowhmc_status flowhmc_set_gauge_layout(flowhmc_context *ctx, const flowhmc_gauge_layout *layout);
flowhmc_status flowhmc_set_spinor_layout(flowhmc_context *ctx, const flowhmc_spinor_layout *layout);

/** Largest accepted distance of a host link from the group (default 1e-10 for f64 buffers,
 *  1e-5 for f32 buffers). */
flowhmc_status flowhmc_set_unitarity_tolerance(flowhmc_context *ctx, double tolerance);

/** Reals in a gauge (or force) buffer and in a spinor buffer. */
size_t flowhmc_gauge_length(const flowhmc_context *ctx);
size_t flowhmc_spinor_length(const flowhmc_context *ctx);

/** One Markov step of the parameter set's update on the host field, in place. report may be
 *  NULL. */
flowhmc_status flowhmc_update(flowhmc_context *ctx, flowhmc_field gauge, flowhmc_update_report *report);

/** n Markov steps; reports (n entries) may be NULL. Steps that would pass update number 2^63
 *  are refused (FLOWHMC_ERROR_HOST_INPUT). */
flowhmc_status flowhmc_trajectories(flowhmc_context *ctx, flowhmc_field gauge, size_t n,
                                    flowhmc_update_report *reports);

/** Observables of the host field. */
flowhmc_status flowhmc_plaquette(flowhmc_context *ctx, flowhmc_field gauge, double *plaquette);
flowhmc_status flowhmc_polyakov_loop(flowhmc_context *ctx, flowhmc_field gauge, double *re, double *im);
/** Geometric charge in 2D U(1), clover charge of the unflowed field in 4D. */
flowhmc_status flowhmc_topological_charge(flowhmc_context *ctx, flowhmc_field gauge, double *q);

/** out = M in, with the Wilson operator of the parameter set's (first) fermions. */
flowhmc_status flowhmc_apply_dirac(flowhmc_context *ctx, flowhmc_field gauge, flowhmc_field in, flowhmc_field out);
/** Solves M x = b; iterations and residual may be NULL. */
flowhmc_status flowhmc_solve(flowhmc_context *ctx, flowhmc_field gauge, flowhmc_field b, flowhmc_field x,
                             uint64_t *iterations, double *residual);

/** For hosts with their own integrator: the gauge-action force, the pseudofermion heatbath
 *  (from the streams of the current update number), the fermion force at the current
 *  pseudofermions, and the whole action. */
flowhmc_status flowhmc_gauge_force(flowhmc_context *ctx, flowhmc_field gauge, flowhmc_field force);
flowhmc_status flowhmc_refresh_pseudofermions(flowhmc_context *ctx, flowhmc_field gauge);
flowhmc_status flowhmc_fermion_force(flowhmc_context *ctx, flowhmc_field gauge, flowhmc_field force);
flowhmc_status flowhmc_action(flowhmc_context *ctx, flowhmc_field gauge, double *action);

/** Uses the flow model at path (trained by `flowhmc train`) for the flow updates. */
flowhmc_status flowhmc_load_model(flowhmc_context *ctx, const char *path);

/** Replaces the [update] table of the parameter set (TOML text with the keys of a run card's
 *  [update], e.g. "kind = \"schedule\"\nhmc = 1\nflow = 4\n..."). On failure the old update
 *  stays. */
flowhmc_status flowhmc_set_update(flowhmc_context *ctx, const char *update);

/** Trains the model of the parameter set's [flow] and [train] tables (reverse KL, as
 *  `flowhmc train`; train.output must not exist). An update with flow proposals uses the new
 *  model from then on; an HMC update stays HMC until flowhmc_set_update names it. The last
 *  learning-curve point's loss, ESS per sample and in-batch acceptance are written to the
 *  non-NULL out-pointers. */
flowhmc_status flowhmc_train(flowhmc_context *ctx, double *loss, double *ess, double *acceptance);

/** Saves and restores the random state. A state with next_update above 2^63 is refused
 *  (FLOWHMC_ERROR_HOST_INPUT) and changes nothing. */
flowhmc_status flowhmc_get_rng_state(const flowhmc_context *ctx, flowhmc_rng_state *state);
flowhmc_status flowhmc_set_rng_state(flowhmc_context *ctx, const flowhmc_rng_state *state);

#ifdef __cplusplus
}
#endif

#endif /* FLOWHMC_H */
