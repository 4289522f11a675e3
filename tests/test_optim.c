/* test_optim — AdamW and SGD steps, Hugging Face learning-rate schedules and
 * gradient clipping against PyTorch (tests/oracles/optim_oracle.py); exact
 * save/restore of the optimizer state; thread-count independence; errors;
 * sharded (ZeRO) steps and state equal to one optimizer's. */
#include "optim.h"

#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static double urand(void) { return check_urand(&rng_state); }

static const char *sched_name(optim_schedule s) {
    return s == SCHED_CONSTANT ? "constant" : s == SCHED_LINEAR ? "linear" : "cosine";
}

/* One oracle run serves the three torch comparisons (torch's import is the
 * slow part): the prepare_* functions draw the inputs and append them to
 * oracle_in, start_oracle runs the oracle, and the tests read its answers in
 * the same order. */
static char *oracle_in;
static size_t oracle_used, oracle_cap = 1 << 20;
static FILE *oracle_out;
static char oracle_path[] = "/tmp/dpoc_optim_oracle_XXXXXX";

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(oracle_in + oracle_used, oracle_cap - oracle_used, fmt, ap);
    va_end(ap);
    if (w > 0 && (size_t)w < oracle_cap - oracle_used) oracle_used += (size_t)w;
}

static void start_oracle(void) {
    int fd = mkstemp(oracle_path);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    fwrite(oracle_in, 1, oracle_used, f);
    fclose(f);
    const char *py = getenv("PYTHON");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s tests/oracles/optim_oracle.py < %s", py && *py ? py : "/usr/bin/python3",
             oracle_path);
    oracle_out = popen(cmd, "r");
}

/* Reads the oracle's next number; 0 when there is none. */
static int next(double *v) { return oracle_out && fscanf(oracle_out, "%lf", v) == 1; }

static void test_oracle_ran(void) {
    CHECK_MSG(oracle_out != NULL, "could not start tests/oracles/optim_oracle.py");
    if (!oracle_out) return;
    double extra;
    CHECK_MSG(fscanf(oracle_out, "%lf", &extra) != 1, "oracle printed more values than read");
    int status = pclose(oracle_out);
    oracle_out = NULL;
    unlink(oracle_path);
    CHECK_MSG(status == 0, "optim oracle exited with status %d (is torch installed?)", status);
}

static int close_rel(double a, double b, double rel) {
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-12;
}

#define NP 37
#define STEPS 5

typedef struct optcase {
    optim_config c;
    size_t lo, hi; /* [lo, hi) exempt from weight decay */
    float p0[NP];
    float g[STEPS][NP];
} optcase;

static void fill_case(optcase *k, optim_kind kind, optim_schedule s, double lr, double wd,
                      double mom, long warmup, long total) {
    optim_config_default(&k->c);
    k->c.kind = kind;
    k->c.schedule = s;
    k->c.lr = lr;
    k->c.weight_decay = wd;
    k->c.momentum = mom;
    k->c.warmup_steps = warmup;
    k->c.total_steps = total;
    for (int i = 0; i < NP; i++) k->p0[i] = (float)((urand() - 0.5) * 4);
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < NP; i++)
            /* a few tiny gradients exercise AdamW's eps */
            k->g[t][i] = (float)((urand() - 0.5) * (i % 9 == 0 ? 2e-7 : 2));
}

enum { NCASE = 7 };
static optcase opt_cases[NCASE];

static void prepare_optimizers(void) {
    optcase *cases = opt_cases;
    fill_case(&cases[0], OPTIM_ADAMW, SCHED_CONSTANT, 1e-2, 0.01, 0, 0, 0);
    fill_case(&cases[1], OPTIM_ADAMW, SCHED_LINEAR, 3e-2, 0.1, 0, 2, 5);
    fill_case(&cases[2], OPTIM_ADAMW, SCHED_COSINE, 1e-3, 0.0, 0, 1, 6);
    fill_case(&cases[3], OPTIM_SGD, SCHED_CONSTANT, 0.05, 0.0, 0.0, 0, 0);
    fill_case(&cases[4], OPTIM_SGD, SCHED_CONSTANT, 0.05, 0.01, 0.9, 0, 0);
    fill_case(&cases[5], OPTIM_SGD, SCHED_COSINE, 0.1, 0.0, 0.5, 1, 5);
    cases[2].c.beta1 = 0.8, cases[2].c.beta2 = 0.95, cases[2].c.eps = 1e-6;
    /* Hugging Face's Trainer exempts biases and norm weights from decay. */
    cases[1].lo = 5, cases[1].hi = 17;
    cases[4].lo = 0, cases[4].hi = 9;
    cases[6] = cases[1];
    cases[6].lo = 30, cases[6].hi = NP;
    for (int k = 0; k < NCASE; k++) {
        const optim_config *c = &cases[k].c;
        emit("opt %s %s %.17g %.17g %.17g %.17g %.17g %.17g %ld %ld %d %d %zu %zu\n",
             c->kind == OPTIM_ADAMW ? "adamw" : "sgd", sched_name(c->schedule), c->lr, c->weight_decay,
             c->beta1, c->beta2, c->eps, c->momentum, c->warmup_steps, c->total_steps, STEPS, NP,
             cases[k].lo, cases[k].hi);
        for (int i = 0; i < NP; i++) emit("%.9g ", cases[k].p0[i]);
        emit("\n");
        for (int t = 0; t < STEPS; t++) {
            for (int i = 0; i < NP; i++) emit("%.9g ", cases[k].g[t][i]);
            emit("\n");
        }
    }
}

/* 5 steps of AdamW (with weight decay, under each schedule) and SGD (with and
 * without momentum) against torch.optim with LambdaLR. */
static void test_optimizers_match_torch(void) {
    int compared = 0;
    double worst = 0;
    for (int k = 0; k < NCASE; k++) {
        optim o;
        dp_err err;
        CHECK(optim_init(&o, &opt_cases[k].c, NP, &err) == 0);
        CHECK(optim_exclude_from_decay(&o, opt_cases[k].lo, opt_cases[k].hi - opt_cases[k].lo, &err) == 0);
        float params[NP];
        memcpy(params, opt_cases[k].p0, sizeof params);
        int ok = 1;
        for (int t = 0; t < STEPS && ok; t++) {
            double lr = optim_step(&o, params, opt_cases[k].g[t]);
            double olr;
            if (!next(&olr)) ok = 0;
            CHECK_MSG(ok && close_rel(lr, olr, 1e-15), "case %d step %d lr %.17g vs torch %.17g", k, t, lr,
                      olr);
            double ov;
            for (int i = 0; ok && i < NP && (ok = next(&ov)); i++) {
                double d = fabs(params[i] - ov) / fmax(fabs(ov), 1e-30);
                if (d > worst) worst = d;
                CHECK_MSG(close_rel(params[i], ov, 1e-6), "case %d step %d param %d: %.9g vs torch %.9g", k,
                          t, i, params[i], ov);
            }
        }
        optim_free(&o);
        compared += ok;
    }
    CHECK_MSG(compared == NCASE, "oracle answered %d of %d cases", compared, NCASE);
    if (getenv("VERBOSE")) printf("worst relative parameter difference vs torch: %.3g\n", worst);
}

static const struct { optim_schedule s; long warmup, total; } sched_cases[] = {
    {SCHED_CONSTANT, 3, 10}, {SCHED_LINEAR, 3, 10}, {SCHED_COSINE, 3, 10},
    {SCHED_CONSTANT, 0, 0},  {SCHED_LINEAR, 0, 7},  {SCHED_COSINE, 0, 7},
    {SCHED_LINEAR, 4, 4},    {SCHED_COSINE, 1, 2},
};
enum { NSCHED = sizeof sched_cases / sizeof sched_cases[0], SCHED_COUNT = 14 };
static const double sched_lr = 5e-6;

static void prepare_schedules(void) {
    for (int k = 0; k < NSCHED; k++)
        emit("sched %s %.17g %ld %ld %d\n", sched_name(sched_cases[k].s), sched_lr, sched_cases[k].warmup,
             sched_cases[k].total, SCHED_COUNT);
}

/* optim_lr against torch's LambdaLR driven by Hugging Face's lambdas. */
static void test_schedules_match_torch_lambdalr(void) {
    int compared = 0;
    for (int k = 0; k < NSCHED; k++) {
        optim_config c;
        optim_config_default(&c);
        c.lr = sched_lr, c.schedule = sched_cases[k].s;
        c.warmup_steps = sched_cases[k].warmup, c.total_steps = sched_cases[k].total;
        int ok = 1;
        double o;
        for (int s = 0; s < SCHED_COUNT && (ok = next(&o)); s++)
            CHECK_MSG(close_rel(optim_lr(&c, s), o, 1e-13), "%s warmup %ld total %ld step %d: %.17g vs %.17g",
                      sched_name(c.schedule), c.warmup_steps, c.total_steps, s, optim_lr(&c, s), o);
        compared += ok;
    }
    CHECK(compared == NSCHED);
    /* A few values by hand: warm-up ramps from 0; linear reaches 0 at total. */
    optim_config c;
    optim_config_default(&c);
    c.lr = 1.0, c.warmup_steps = 4, c.total_steps = 12;
    CHECK(optim_lr(&c, 0) == 0.0);
    CHECK_NEAR(optim_lr(&c, 2), 0.5, 1e-15);
    CHECK_NEAR(optim_lr(&c, 8), 0.5, 1e-15);
    CHECK(optim_lr(&c, 12) == 0.0);
    c.schedule = SCHED_COSINE;
    CHECK_NEAR(optim_lr(&c, 8), 0.5, 1e-15);
    CHECK_NEAR(optim_lr(&c, 4), 1.0, 1e-15);
}

enum { NCLIP_N = 50, NCLIP = 3 };
static const double clip_max[NCLIP] = {1.0, 1000.0, 0.05};
static float clip_g[NCLIP][NCLIP_N];

static void prepare_clipping(void) {
    for (int k = 0; k < NCLIP; k++) {
        emit("clip %.17g %d\n", clip_max[k], NCLIP_N);
        for (int i = 0; i < NCLIP_N; i++) {
            clip_g[k][i] = (float)((urand() - 0.5) * 3);
            emit("%.9g ", clip_g[k][i]);
        }
        emit("\n");
    }
}

/* optim_clip against torch.nn.utils.clip_grad_norm_. */
static void test_clipping_matches_torch(void) {
    int compared = 0;
    for (int k = 0; k < NCLIP; k++) {
        float *g = clip_g[k];
        float before[NCLIP_N];
        memcpy(before, g, sizeof before);
        double norm = optim_clip(g, NCLIP_N, clip_max[k]);
        double on;
        if (!next(&on)) break;
        CHECK_MSG(close_rel(norm, on, 1e-6), "clip %d: norm %.9g vs torch %.9g", k, norm, on);
        int ok = 1;
        double o;
        for (int i = 0; i < NCLIP_N && (ok = next(&o)); i++)
            CHECK_MSG(close_rel(g[i], o, 1e-6), "clip %d grad %d: %.9g vs torch %.9g", k, i, g[i], o);
        if (norm < clip_max[k]) CHECK(memcmp(before, g, sizeof before) == 0);
        else CHECK_NEAR(optim_grad_norm(g, NCLIP_N), clip_max[k], 1e-5 * clip_max[k]);
        compared += ok;
    }
    CHECK(compared == NCLIP);
    float z[3] = {3, 4, 0};
    CHECK(optim_clip(z, 3, 0) == 5.0 && z[0] == 3); /* max_norm <= 0: measure only */
}

static void test_grad_norm_thread_independent(void) {
    size_t n = 300001;
    float *g = malloc(n * sizeof *g);
    double ref = 0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (float)(urand() - 0.5);
        ref += (double)g[i] * g[i];
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double one = optim_grad_norm(g, n);
    omp_set_num_threads(2);
    double two = optim_grad_norm(g, n);
    omp_set_num_threads(saved);
    CHECK(one == two);
    CHECK_NEAR(one, sqrt(ref), 1e-12 * sqrt(ref));
    free(g);
}

/* Steps a fresh optimizer through `steps` updates of deterministic gradients. */
static void run_steps(optim *o, float *p, size_t n, long from, long to) {
    float *g = malloc(n * sizeof *g);
    for (long t = from; t < to; t++) {
        for (size_t i = 0; i < n; i++) g[i] = (float)sin(0.37 * (double)i + 1.3 * (double)t);
        optim_step(o, p, g);
    }
    free(g);
}

static void resume_case(optim_kind kind, double mom) {
    const size_t n = 1000;
    optim_config c;
    optim_config_default(&c);
    c.kind = kind, c.momentum = mom, c.lr = 1e-2, c.weight_decay = 0.01;
    c.schedule = SCHED_COSINE, c.warmup_steps = 2, c.total_steps = 8;
    dp_err err;
    optim a, b;
    float *pa = malloc(n * sizeof *pa), *pb = malloc(n * sizeof *pb);
    for (size_t i = 0; i < n; i++) pa[i] = pb[i] = (float)cos((double)i);
    CHECK(optim_init(&a, &c, n, &err) == 0);
    run_steps(&a, pa, n, 0, 8);

    CHECK(optim_init(&b, &c, n, &err) == 0);
    run_steps(&b, pb, n, 0, 3);
    size_t size = optim_state_size(&b);
    void *blob = malloc(size);
    optim_state_save(&b, blob);
    optim_free(&b);
    optim c2;
    CHECK(optim_init(&c2, &c, n, &err) == 0);
    CHECK(optim_state_load(&c2, blob, size, &err) == 0);
    CHECK(c2.step == 3);
    run_steps(&c2, pb, n, 3, 8);
    CHECK(memcmp(pa, pb, n * sizeof *pa) == 0);
    if (a.m) CHECK(memcmp(a.m, c2.m, (kind == OPTIM_ADAMW ? 2 : 1) * n * sizeof(float)) == 0);
    optim_free(&a);
    optim_free(&c2);
    free(blob);
    free(pa);
    free(pb);
}

static void test_state_save_restore_is_exact(void) {
    resume_case(OPTIM_ADAMW, 0);
    resume_case(OPTIM_SGD, 0.9);
    resume_case(OPTIM_SGD, 0);
}

static void test_state_load_errors(void) {
    optim_config c;
    optim_config_default(&c);
    c.schedule = SCHED_CONSTANT;
    dp_err err;
    optim a, b;
    CHECK(optim_init(&a, &c, 10, &err) == 0);
    size_t size = optim_state_size(&a);
    CHECK(size == 40 + 20 * sizeof(float));
    unsigned char *blob = malloc(size);
    optim_state_save(&a, blob);

    CHECK(optim_init(&b, &c, 11, &err) == 0);
    CHECK(optim_state_load(&b, blob, size, &err) == -1);
    CHECK_STR(err.msg, "optimizer state: expected 11 parameters, found 10");
    optim_free(&b);

    CHECK(optim_state_load(&a, blob, size - 4, &err) == -1);
    CHECK_STR(err.msg, "optimizer state: expected 120 bytes, found 116");

    optim_config s = c;
    s.kind = OPTIM_SGD, s.momentum = 0.9;
    CHECK(optim_init(&b, &s, 10, &err) == 0);
    CHECK(optim_state_load(&b, blob, size, &err) == -1);
    CHECK_STR(err.msg, "optimizer state: expected sgd state, found adamw");
    optim_free(&b);

    blob[0] = 'X';
    CHECK(optim_state_load(&a, blob, size, &err) == -1);
    CHECK_STR(err.msg, "optimizer state: expected a dpoc optimizer state (magic DPOCOPT1), found 120 bytes without it");
    optim_free(&a);
    free(blob);
}

static void test_validation_messages(void) {
    optim_config c;
    optim o;
    dp_err err;
    optim_config_default(&c);
    c.lr = -1;
    CHECK(optim_init(&o, &c, 4, &err) == -1);
    CHECK_STR(err.msg, "train.learning_rate: expected a finite number >= 0, got -1");
    CHECK(o.m == NULL);
    optim_config_default(&c);
    CHECK(optim_validate(&c, &err) == -1); /* linear decay without total_steps */
    CHECK_STR(err.msg, "train.lr_schedule: linear decay needs the total number of steps > 0, got 0");
    c.total_steps = 10, c.beta2 = 1.0;
    CHECK(optim_validate(&c, &err) == -1);
    CHECK_STR(err.msg, "train.adam_beta2: expected a number in [0, 1), got 1");
    c.beta2 = 0.999, c.warmup_steps = -2;
    CHECK(optim_validate(&c, &err) == -1);
    CHECK_STR(err.msg, "train.warmup_steps: expected an integer >= 0, got -2");
    c.warmup_steps = 0, c.weight_decay = NAN;
    CHECK(optim_validate(&c, &err) == -1);
    CHECK_STR(err.msg, "train.weight_decay: expected a finite number >= 0, got nan");
    c.weight_decay = 0, c.kind = OPTIM_SGD, c.momentum = -0.5;
    CHECK(optim_validate(&c, &err) == -1);
    CHECK_STR(err.msg, "train.momentum: expected a finite number >= 0, got -0.5");
    c.momentum = 0;
    CHECK(optim_init(&o, &c, 4, &err) == 0);
    CHECK(o.m == NULL && o.v == NULL && optim_state_size(&o) == 40);
    /* no-decay ranges: any order, no overlap, within n */
    CHECK(optim_exclude_from_decay(&o, 2, 1, &err) == 0);
    CHECK(optim_exclude_from_decay(&o, 0, 1, &err) == 0);
    CHECK(optim_exclude_from_decay(&o, 3, 0, &err) == 0);
    CHECK(o.n_no_decay == 2 && o.no_decay[0] == 0 && o.no_decay[1] == 1 && o.no_decay[2] == 2);
    CHECK(optim_exclude_from_decay(&o, 1, 2, &err) == -1);
    CHECK_STR(err.msg, "optimizer: no-decay range [1, 3) overlaps one already set");
    CHECK(optim_exclude_from_decay(&o, 3, 2, &err) == -1);
    CHECK_STR(err.msg, "optimizer: no-decay range [3, 5) runs past the 4 parameters");
    optim_free(&o);
    optim_free(&o); /* idempotent */
}

/* ZeRO's pieces: an optimizer over each of 3 slices (no-decay ranges cut to
 * the slice and shifted), clipped with the whole gradient's norm, steps to
 * the same bits as one optimizer over everything; the slices' Σg² add up to
 * the whole's; the header plus every slice's m then every slice's v is one
 * optimizer's state blob, byte for byte. */
static void sharded_case(optim_kind kind, double momentum) {
    enum { N = 70001, PARTS = 3 };
    static const size_t nd[2][2] = {{100, 300}, {23000, 50000}}; /* no-decay [lo, hi) */
    optim_config c;
    optim_config_default(&c);
    c.kind = kind, c.momentum = momentum, c.lr = 0.01, c.weight_decay = 0.1, c.total_steps = 10;
    dp_err err;
    float *p1 = malloc(N * sizeof *p1), *p3 = malloc(N * sizeof *p3), *g = malloc(N * sizeof *g);
    float *g3 = malloc(N * sizeof *g3);
    for (size_t i = 0; i < N; i++) p1[i] = p3[i] = (float)(urand() - 0.5);
    optim one, part[PARTS];
    size_t off[PARTS + 1];
    CHECK(optim_init(&one, &c, N, &err) == 0);
    for (int r = 0; r < 2; r++) CHECK(optim_exclude_from_decay(&one, nd[r][0], nd[r][1] - nd[r][0], &err) == 0);
    for (int k = 0; k <= PARTS; k++) off[k] = (size_t)N * (size_t)k / PARTS;
    for (int k = 0; k < PARTS; k++) {
        CHECK(optim_init(&part[k], &c, off[k + 1] - off[k], &err) == 0);
        for (int r = 0; r < 2; r++) {
            size_t lo = nd[r][0] > off[k] ? nd[r][0] : off[k];
            size_t hi = nd[r][1] < off[k + 1] ? nd[r][1] : off[k + 1];
            if (lo < hi) CHECK(optim_exclude_from_decay(&part[k], lo - off[k], hi - lo, &err) == 0);
        }
    }
    for (int step = 0; step < 3; step++) {
        for (size_t i = 0; i < N; i++) g[i] = g3[i] = (float)(urand() - 0.5);
        double whole = optim_grad_sumsq(g, N), sum = 0;
        for (int k = 0; k < PARTS; k++) sum += optim_grad_sumsq(g3 + off[k], off[k + 1] - off[k]);
        CHECK(fabs(sum - whole) <= 1e-12 * whole);
        double norm = sqrt(whole);
        CHECK(norm == optim_grad_norm(g, N));
        optim_clip_to(g, N, 1.0, norm);
        optim_step(&one, p1, g);
        for (int k = 0; k < PARTS; k++) {
            optim_clip_to(g3 + off[k], off[k + 1] - off[k], 1.0, norm);
            optim_step(&part[k], p3 + off[k], g3 + off[k]);
        }
    }
    CHECK(memcmp(p1, p3, N * sizeof *p1) == 0);
    size_t size = optim_state_size(&one);
    unsigned char *blob = malloc(size), *cat = malloc(size);
    optim_state_save(&one, blob);
    optim_state_header(&part[0].cfg, N, part[0].step, cat);
    size_t at = OPTIM_STATE_HEADER;
    for (int a = 0; a < optim_state_arrays(&c); a++)
        for (int k = 0; k < PARTS; k++) {
            size_t len = off[k + 1] - off[k];
            memcpy(cat + at, (a ? part[k].v : part[k].m), len * sizeof(float));
            at += len * sizeof(float);
        }
    CHECK(at == size);
    CHECK(memcmp(blob, cat, size) == 0);
    long step = -1;
    CHECK(optim_state_check(&c, N, cat, size, &step, &err) == 0 && step == 3);
    CHECK(optim_state_check(&c, N + 1, cat, size, &step, &err) == -1);
    CHECK_STR(err.msg, "optimizer state: expected 70002 parameters, found 70001");
    optim_free(&one);
    for (int k = 0; k < PARTS; k++) optim_free(&part[k]);
    free(blob);
    free(cat);
    free(p1);
    free(p3);
    free(g);
    free(g3);
}

static void test_sharded_steps_match_one(void) {
    CHECK(optim_state_arrays(&(optim_config){.kind = OPTIM_ADAMW}) == 2);
    CHECK(optim_state_arrays(&(optim_config){.kind = OPTIM_SGD, .momentum = 0.9}) == 1);
    CHECK(optim_state_arrays(&(optim_config){.kind = OPTIM_SGD}) == 0);
    sharded_case(OPTIM_ADAMW, 0);
    sharded_case(OPTIM_SGD, 0.9);
    sharded_case(OPTIM_SGD, 0);
}

int main(void) {
    oracle_in = malloc(oracle_cap);
    prepare_optimizers();
    prepare_schedules();
    prepare_clipping();
    start_oracle();
    free(oracle_in);
    RUN(test_optimizers_match_torch);
    RUN(test_schedules_match_torch_lambdalr);
    RUN(test_clipping_matches_torch);
    RUN(test_oracle_ran);
    RUN(test_grad_norm_thread_independent);
    RUN(test_state_save_restore_is_exact);
    RUN(test_state_load_errors);
    RUN(test_sharded_steps_match_one);
    RUN(test_validation_messages);
    return check_summary();
}
