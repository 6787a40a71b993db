/*
 * A small C host code in MILC style that hands its update step to flowhmc through the C ABI.
 *
 * It keeps its own SU(3) gauge field (MILC layout: one struct per site holding the four links,
 * sites even-first, x fastest), its own plaquette routine and its own trajectory loop; the
 * Markov step itself (HMC with two flavours of Wilson fermions) is flowhmc's, applied to the
 * host's buffer in place. After every step it checks its own plaquette against flowhmc's.
 * It then shows that bad input is refused and leaves the buffer bit-identical. Finally it does
 * the same with a 2D U(1) field, whose update step goes from HMC to flow proposals after it
 * has trained a gauge-equivariant flow through the library.
 *
 * Usage: c_host WORKDIR (the flow model is written to WORKDIR/c_host_u1.safetensors).
 * Output: one line "trajectory N ACCEPTED DH PLAQUETTE" per SU(3) step (%.17g, exact), one
 * "u1 trajectory ..." line per U(1) step, then "ok". Exit code 0 on success, 1 on any failed
 * check.
 *
 * Build (see README.md): cc -std=c11 -I include cpp/c_host.c -L target/release -lflowhmc -lm
 */
#include <flowhmc/flowhmc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L 4
#define VOLUME (L * L * L * L)

typedef struct { double real, imag; } complex;
typedef struct { complex e[3][3]; } su3_matrix;
typedef struct { su3_matrix link[4]; } site;

static site lattice[VOLUME];

/* MILC's node_index: lexicographic index with x fastest, even sites first. */
static int node_index(int x, int y, int z, int t) {
    int i = x + L * (y + L * (z + L * t));
    return ((x + y + z + t) % 2 == 0) ? i / 2 : (i + VOLUME) / 2;
}

static void mult_su3_nn(const su3_matrix *a, const su3_matrix *b, su3_matrix *c) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            double re = 0, im = 0;
            for (int k = 0; k < 3; k++) {
                re += a->e[i][k].real * b->e[k][j].real - a->e[i][k].imag * b->e[k][j].imag;
                im += a->e[i][k].real * b->e[k][j].imag + a->e[i][k].imag * b->e[k][j].real;
            }
            c->e[i][j].real = re;
            c->e[i][j].imag = im;
        }
}

/* Re tr(a b^dagger) */
static double realtrace_su3_na(const su3_matrix *a, const su3_matrix *b) {
    double s = 0;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) s += a->e[i][k].real * b->e[i][k].real + a->e[i][k].imag * b->e[i][k].imag;
    return s;
}

/* The host's own plaquette: Re tr P / 3 averaged over sites and planes. */
static double host_plaquette(void) {
    double sum = 0;
    int c[4];
    for (c[3] = 0; c[3] < L; c[3]++)
        for (c[2] = 0; c[2] < L; c[2]++)
            for (c[1] = 0; c[1] < L; c[1]++)
                for (c[0] = 0; c[0] < L; c[0]++) {
                    const site *s = &lattice[node_index(c[0], c[1], c[2], c[3])];
                    for (int mu = 0; mu < 4; mu++)
                        for (int nu = mu + 1; nu < 4; nu++) {
                            int a[4], b[4];
                            memcpy(a, c, sizeof a);
                            memcpy(b, c, sizeof b);
                            a[mu] = (a[mu] + 1) % L;
                            b[nu] = (b[nu] + 1) % L;
                            const site *sa = &lattice[node_index(a[0], a[1], a[2], a[3])];
                            const site *sb = &lattice[node_index(b[0], b[1], b[2], b[3])];
                            su3_matrix left, right;
                            mult_su3_nn(&s->link[mu], &sa->link[nu], &left);
                            mult_su3_nn(&s->link[nu], &sb->link[mu], &right);
                            sum += realtrace_su3_na(&left, &right);
                        }
                }
    return sum / (3.0 * 6.0 * VOLUME);
}

static int failures = 0;
static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "check failed: %s\n", what);
        failures++;
    }
}

/* The 2D U(1) part: an 8 x 8 field of phases in MILC layout, [site][mu] (re, im). */
#define L2 8
typedef struct { complex link[2]; } u1_site;
static u1_site u1_lattice[L2 * L2];

static int u1_index(int x, int t) {
    x = (x + L2) % L2;
    t = (t + L2) % L2;
    int i = x + L2 * t;
    return ((x + t) % 2 == 0) ? i / 2 : (i + L2 * L2) / 2;
}

/* Re of U_x(n) U_t(n + x) conj(U_x(n + t)) conj(U_t(n)), averaged. */
static double u1_plaquette(void) {
    double sum = 0;
    for (int t = 0; t < L2; t++)
        for (int x = 0; x < L2; x++) {
            complex a = u1_lattice[u1_index(x, t)].link[0], b = u1_lattice[u1_index(x + 1, t)].link[1];
            complex c = u1_lattice[u1_index(x, t + 1)].link[0], d = u1_lattice[u1_index(x, t)].link[1];
            double abr = a.real * b.real - a.imag * b.imag, abi = a.real * b.imag + a.imag * b.real;
            double cdr = c.real * d.real - c.imag * d.imag, cdi = c.real * d.imag + c.imag * d.real;
            sum += abr * cdr + abi * cdi; /* Re(ab conj(cd)) */
        }
    return sum / (L2 * L2);
}

static flowhmc_field gauge_field(void *data, size_t length) {
    flowhmc_field f = {data, length, FLOWHMC_F64};
    return f;
}

/* HMC, training, then a schedule of one HMC trajectory and two flow proposals. */
static int u1_part(const char *workdir) {
    char update[1024], model[512], quoted[600], error[512];
    snprintf(model, sizeof model, "%s/c_host_u1.safetensors", workdir);
    snprintf(quoted, sizeof quoted, "\"%s\"", model);
    /* this part builds its parameters key by key */
    const char *keys[][2] = {
        {"gauge.group", "\"u1\""},           {"gauge.action", "\"wilson\""},
        {"gauge.beta", "2.0"},                {"update.kind", "\"hmc\""},
        {"update.trajectory_length", "1.0"},  {"update.integrator", "\"omelyan\""},
        {"update.steps", "10"},               {"run.seed", "4"},
        {"run.threads", "1"},                 {"flow.model", "\"u1-equivariant\""},
        {"flow.layers", "8"},                 {"flow.hidden", "[4]"},
        {"train.steps", "30"},                {"train.batch", "16"},
        {"train.learning_rate", "0.003"},     {"train.seed", "6"},
        {"train.output", quoted},
    };
    flowhmc_parameters *parameters = flowhmc_parameters_create();
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        check(flowhmc_parameters_set(parameters, keys[k][0], keys[k][1]) == FLOWHMC_OK, "parameter key");
    check(flowhmc_parameters_set(parameters, "gauge.beta", "two") == FLOWHMC_ERROR_PARAMETERS, "malformed value");
    check(strstr(flowhmc_parameters_last_error(parameters), "gauge.beta") != NULL, "malformed value message");
    const size_t dims[2] = {L2, L2};
    flowhmc_context *ctx = NULL;
    int created = flowhmc_context_create_from_set(dims, 2, parameters, &ctx, error, sizeof error);
    flowhmc_parameters_destroy(parameters);
    if (created != FLOWHMC_OK) {
        fprintf(stderr, "flowhmc (U(1)): %s\n", error);
        return 1;
    }
    flowhmc_gauge_layout layout;
    flowhmc_gauge_layout_default(&layout);
    layout.sites.even_odd = 1; /* MILC order; site-major is the default */
    check(flowhmc_set_gauge_layout(ctx, &layout) == FLOWHMC_OK, "U(1) layout");
    for (int i = 0; i < L2 * L2; i++) u1_lattice[i].link[0].real = u1_lattice[i].link[1].real = 1.0;
    const size_t length = L2 * L2 * 2 * 2;
    check(flowhmc_gauge_length(ctx) == length, "U(1) buffer length");
    int flow_accepted = 0;
    for (int n = 0; n < 10; n++) {
        if (n == 4) { /* train a flow, then let it propose */
            double loss, ess;
            check(flowhmc_train(ctx, &loss, &ess, NULL) == FLOWHMC_OK, "training");
            snprintf(update, sizeof update,
                     "kind = \"schedule\"\nhmc = 1\nflow = 2\ntrajectory_length = 1.0\n"
                     "integrator = \"omelyan\"\nsteps = 10\nbatch = 8\nmodel = \"%s\"\n",
                     model);
            check(flowhmc_set_update(ctx, update) == FLOWHMC_OK, "switch to flow proposals");
        }
        flowhmc_update_report r;
        if (flowhmc_update(ctx, gauge_field(u1_lattice, length), &r) != FLOWHMC_OK) {
            fprintf(stderr, "flowhmc_update (U(1)): %s\n", flowhmc_last_error(ctx));
            return 1;
        }
        printf("u1 trajectory %d %d %.17g %.17g\n", n, r.accepted, r.dh, r.plaquette);
        check(fabs(u1_plaquette() - r.plaquette) < 1e-12, "host U(1) plaquette equals flowhmc's");
        /* in the schedule, updates 5, 6, 8, 9 are flow proposals */
        if (n >= 4 && (n - 4) % 3 != 0) flow_accepted += r.accepted;
    }
    check(flow_accepted > 0, "a flow proposal was accepted");
    flowhmc_context_destroy(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: c_host WORKDIR\n");
        return 1;
    }
    const size_t dims[4] = {L, L, L, L};
    flowhmc_params params;
    flowhmc_params_default(&params);
    params.beta = 5.7;
    params.steps = 8;
    params.seed = 11;
    params.threads = 1;
    params.fermions = 1;
    params.kappa = 0.12;
    params.solver_tolerance = 1e-11;
    params.solver_max_iterations = 2000;

    char error[512];
    flowhmc_context *ctx = NULL;
    if (flowhmc_context_create_from_params(dims, 4, &params, &ctx, error, sizeof error) != FLOWHMC_OK) {
        fprintf(stderr, "flowhmc: %s\n", error);
        return 1;
    }

    /* MILC's layout; this host was compiled against a header whose layout struct ended
     * before `matrix`, so it declares the shorter size and gets the default (row-major). */
    flowhmc_gauge_layout layout;
    flowhmc_gauge_layout_default(&layout);
    layout.struct_size = offsetof(flowhmc_gauge_layout, matrix);
    layout.sites.order = FLOWHMC_X_FASTEST;
    layout.sites.even_odd = 1;
    layout.links = FLOWHMC_SITE_MAJOR;
    check(flowhmc_set_gauge_layout(ctx, &layout) == FLOWHMC_OK, "set MILC layout");

    const size_t length = VOLUME * 4 * 18; /* reals */
    check(flowhmc_gauge_length(ctx) == length, "gauge buffer length");

    /* cold start */
    for (int i = 0; i < VOLUME; i++)
        for (int mu = 0; mu < 4; mu++) {
            memset(&lattice[i].link[mu], 0, sizeof(su3_matrix));
            for (int k = 0; k < 3; k++) lattice[i].link[mu].e[k][k].real = 1.0;
        }

    /* the host's trajectory loop, with flowhmc's Markov step */
    for (int n = 0; n < 3; n++) {
        flowhmc_update_report r;
        if (flowhmc_update(ctx, gauge_field(lattice, length), &r) != FLOWHMC_OK) {
            fprintf(stderr, "flowhmc_update: %s\n", flowhmc_last_error(ctx));
            return 1;
        }
        printf("trajectory %d %d %.17g %.17g\n", n, r.accepted, r.dh, r.plaquette);
        double mine = host_plaquette();
        check(fabs(mine - r.plaquette) < 1e-12, "host plaquette equals flowhmc's");
        check(r.solver_iterations > 0, "the fermions were solved for");
    }
    double plaq = 0;
    check(flowhmc_plaquette(ctx, gauge_field(lattice, length), &plaq) == FLOWHMC_OK, "plaquette call");
    check(fabs(plaq - host_plaquette()) < 1e-12, "plaquette call equals the host's");

    /* refusals: each leaves the buffer bit-identical */
    static site saved[VOLUME];
    memcpy(saved, lattice, sizeof lattice);
    check(flowhmc_update(ctx, gauge_field(lattice, length - 1), NULL) == FLOWHMC_ERROR_HOST_INPUT, "short buffer");
    check(strstr(flowhmc_last_error(ctx), "the layout needs") != NULL, "short buffer message");
    lattice[5].link[2].e[1][1].imag = NAN;
    check(flowhmc_update(ctx, gauge_field(lattice, length), NULL) == FLOWHMC_ERROR_HOST_INPUT, "NaN link");
    check(strstr(flowhmc_last_error(ctx), "not finite") != NULL, "NaN message");
    lattice[5].link[2] = saved[5].link[2];
    lattice[9].link[0].e[0][0].real *= 1.01;
    check(flowhmc_update(ctx, gauge_field(lattice, length), NULL) == FLOWHMC_ERROR_HOST_INPUT, "non-unitary link");
    lattice[9].link[0] = saved[9].link[0];
    check(memcmp(saved, lattice, sizeof lattice) == 0, "buffer unchanged by refused calls");
    layout.struct_size = sizeof layout;
    layout.links = 7;
    check(flowhmc_set_gauge_layout(ctx, &layout) == FLOWHMC_ERROR_HOST_INPUT, "unknown link order");
    check(flowhmc_update(ctx, (flowhmc_field){lattice, length, 5}, NULL) == FLOWHMC_ERROR_HOST_INPUT, "bad precision");
    check(flowhmc_update(NULL, gauge_field(lattice, length), NULL) == FLOWHMC_ERROR_NULL, "NULL context");
    check(flowhmc_update(ctx, gauge_field(NULL, length), NULL) == FLOWHMC_ERROR_NULL, "NULL data");
    check(strcmp(flowhmc_last_error(ctx), "gauge.data: NULL pointer") == 0, "NULL data message");
    check(memcmp(saved, lattice, sizeof lattice) == 0, "buffer still unchanged");

    /* an update number past the limit is refused and leaves the chain where it was */
    flowhmc_rng_state past = {11, UINT64_MAX};
    check(flowhmc_set_rng_state(ctx, &past) == FLOWHMC_ERROR_HOST_INPUT, "update number past 2^63");
    check(strstr(flowhmc_last_error(ctx), "next_update") != NULL, "update number message");

    /* a bad parameter set names its key */
    flowhmc_context *bad = NULL;
    const char *negative_beta = "[gauge]\ngroup = \"su3\"\naction = \"wilson\"\nbeta = -1.0\n"
                                "[update]\nkind = \"hmc\"\ntrajectory_length = 1.0\nintegrator = \"omelyan\"\nsteps = 4\n";
    check(flowhmc_context_create(dims, 4, negative_beta, &bad, error, sizeof error) == FLOWHMC_ERROR_PARAMETERS &&
              bad == NULL,
          "negative beta refused");
    check(strstr(error, "beta") != NULL && strchr(error, '\n') == NULL, "negative beta message");
    check(flowhmc_context_create(NULL, 4, negative_beta, &bad, error, sizeof error) == FLOWHMC_ERROR_NULL &&
              strstr(error, "dims") != NULL,
          "NULL dims");

    flowhmc_rng_state state;
    check(flowhmc_get_rng_state(ctx, &state) == FLOWHMC_OK && state.seed == 11 && state.next_update == 3, "rng state");

    flowhmc_context_destroy(ctx);
    if (u1_part(argv[1]) != 0) return 1;
    if (failures) return 1;
    printf("ok\n");
    return 0;
}
