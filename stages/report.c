/* dpoc report — pictures and a short summary of training runs.
 *
 * Recipe: load config → find the runs (<train.output>/metrics.jsonl, and
 * <train.output>/<name>/metrics.jsonl for each point of the sweep grid) →
 * read their metrics and any eval.json left by `dpoc eval` → write the data
 * files and one gnuplot script into the report directory → run gnuplot there
 * → write report.md linking the images.
 *
 * Figures: per run, a 2x2 panel of loss, reward accuracy, reward margin and
 * chosen/rejected rewards (train and eval on the same axes); with two runs
 * or more, every run's eval loss and eval reward accuracy overlaid; when
 * eval.json files exist, judge score versus KL, one point per run plus the
 * reference (<train.output>/reference_eval.json). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "plot.h"
#include "stage_util.h"

/* The metrics a report reads, by their TRL names (eval lines add "eval_"). */
enum { M_LOSS, M_ACC, M_MARGIN, M_CHOSEN, M_REJECTED, M_TPS, N_METRICS };
static const char *const metric_key[N_METRICS] = {
    "loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
    "tokens_per_sec"};

typedef struct point {
    long step;
    double v[N_METRICS];   /* NAN where the line did not carry the metric */
} point;

typedef struct series {
    point *p;
    size_t n, cap;
} series;

/* The figures `dpoc eval` writes to eval.json. */
typedef struct eval_figures {
    int present;
    double judge, kl, loss, acc;   /* loss and acc NAN when absent */
} eval_figures;

typedef struct run {
    char name[512];    /* its directory's name, e.g. "beta=0.05" */
    char stem[560];    /* its files in the report: "run-beta=0.05" */
    char dir[4700];    /* <train.output>/<name> */
    series train, eval;
    eval_figures ev;
} run;

typedef struct report {
    const config *cfg;
    char base[4096];   /* train.output */
    char out[4200];    /* the report directory */
    run *runs;
    int n_runs;
    char *missing;     /* sweep points without metrics, ", "-separated; malloc'd or NULL */
    eval_figures ref;
    plot_terminal term;
} report;

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
#define TRAIN_COLOR "#1f77b4"
#define EVAL_COLOR "#ff7f0e"
#define CHOSEN_COLOR "#2ca02c"
#define REJECTED_COLOR "#d62728"

/* ---- reading -------------------------------------------------------------- */

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static int series_push(series *s, const point *p, dp_err *err) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        point *q = realloc(s->p, cap * sizeof *q);
        if (!q) return dp_fail(err, "out of memory");
        s->p = q, s->cap = cap;
    }
    s->p[s->n++] = *p;
    return 0;
}

/* One parsed line O (line LINENO of PATH) into the run's train and/or eval
 * series: a line is a train point if it carries any train metric, an eval
 * point if it carries any eval_ metric. */
static int take_line(const json_t *o, const char *path, long lineno, run *r, dp_err *err) {
    if (!json_is_object(o))
        return dp_fail(err, "%s:%ld: expected a JSON object, got %s", path, lineno, json_kind(o));
    const json_t *s = json_object_get(o, "step");
    if (!json_is_integer(s))
        return dp_fail(err, "%s:%ld: step: expected an integer, got %s", path, lineno,
                       s ? json_kind(s) : "nothing");
    point tp = {.step = (long)json_integer_value(s)}, ep = tp;
    int has_train = 0, has_eval = 0;
    for (int m = 0; m < N_METRICS; m++) {
        for (int e = 0; e < 2; e++) {
            char key[64];
            snprintf(key, sizeof key, "%s%s", e ? "eval_" : "", metric_key[m]);
            const json_t *v = json_object_get(o, key);
            double x = NAN;
            if (v && !json_is_null(v)) {
                if (!json_is_number(v))
                    return dp_fail(err, "%s:%ld: %s: expected a number, got %s", path, lineno, key,
                                   json_kind(v));
                x = json_number_value(v);
                *(e ? &has_eval : &has_train) = 1;
            }
            (e ? &ep : &tp)->v[m] = x;
        }
    }
    if (has_train && series_push(&r->train, &tp, err)) return -1;
    if (has_eval && series_push(&r->eval, &ep, err)) return -1;
    return 0;
}

/* Reads PATH (metrics.jsonl: one JSON object per line, blank lines allowed). */
static int read_metrics(const char *path, run *r, dp_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long len;
    long lineno = 0;
    int rc = 0;
    while (!rc && (len = su_getline(&line, &cap, f, path, lineno + 1, err)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o) {
            rc = dp_fail(err, "%s:%ld:%d: invalid JSON: %s", path, lineno, je.column, je.text);
            break;
        }
        rc = take_line(o, path, lineno, r, err);
        json_decref(o);
    }
    if (len == -2) rc = -1;
    if (!rc && ferror(f)) rc = dp_fail(err, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

/* KEY of O as a number into *x: NAN when absent or null unless REQUIRED. */
static int eval_number(const json_t *o, const char *key, int required, const char *path,
                       double *x, dp_err *err) {
    const json_t *v = json_object_get(o, key);
    *x = NAN;
    if ((!v || json_is_null(v)) && !required) return 0;
    if (!json_is_number(v))
        return dp_fail(err, "%s: %s: expected a number, got %s", path, key,
                       v ? json_kind(v) : "nothing");
    *x = json_number_value(v);
    return 0;
}

/* Reads PATH (eval.json) if it exists; ev->present says whether it did. */
static int read_eval_json(const char *path, eval_figures *ev, dp_err *err) {
    memset(ev, 0, sizeof *ev);
    if (access(path, F_OK) != 0) return 0;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) return dp_fail(err, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
    int rc = 0;
    if (!json_is_object(o)) rc = dp_fail(err, "%s: expected a JSON object, got %s", path, json_kind(o));
    if (!rc) rc = eval_number(o, "judge_score", 1, path, &ev->judge, err);
    if (!rc) rc = eval_number(o, "kl", 1, path, &ev->kl, err);
    if (!rc) rc = eval_number(o, "eval_loss", 0, path, &ev->loss, err);
    if (!rc) rc = eval_number(o, "eval_accuracy", 0, path, &ev->acc, err);
    json_decref(o);
    ev->present = !rc;
    return rc;
}

/* ---- finding the runs ----------------------------------------------------- */

static int has_metrics(const char *dir) {
    char path[4800];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    return access(path, F_OK) == 0;
}

static int add_run(report *rp, const char *name, const char *dir, dp_err *err) {
    run *q = realloc(rp->runs, (size_t)(rp->n_runs + 1) * sizeof *q);
    if (!q) return dp_fail(err, "out of memory");
    rp->runs = q;
    run *r = &rp->runs[rp->n_runs++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    /* file names: the run's name with anything unusual made '_' */
    size_t k = (size_t)snprintf(r->stem, sizeof r->stem, "run-");
    for (const char *s = name; *s && k + 1 < sizeof r->stem; s++) {
        int plain = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                    (*s >= '0' && *s <= '9') || strchr("._=,+-", *s);
        r->stem[k++] = plain ? *s : '_';
    }
    r->stem[k] = '\0';
    return 0;
}

static int note_missing(report *rp, const char *name, dp_err *err) {
    size_t old = rp->missing ? strlen(rp->missing) : 0;
    char *m = realloc(rp->missing, old + strlen(name) + 3);
    if (!m) return dp_fail(err, "out of memory");
    sprintf(m + old, "%s%s", old ? ", " : "", name);
    rp->missing = m;
    return 0;
}

/* Sweep point I's directory name, the keys' leaf names and values joined
 * with ',' in the grid's key order, or in reverse order when REVERSED. The
 * points are enumerated as dpoc sweep does: the last key varies fastest. */
static void sweep_name(const config *c, long i, int reversed, char *buf, size_t size) {
    int keys = cfg_sweep_keys(c), pick[64];
    for (int k = keys - 1; k >= 0; k--) {
        int len = cfg_sweep_len(c, k);
        pick[k] = (int)(i % len);
        i /= len;
    }
    size_t n = 0;
    buf[0] = '\0';
    for (int t = 0; t < keys && n < size; t++) {
        int k = reversed ? keys - 1 - t : t;
        const char *key = cfg_sweep_key(c, k), *leaf = strrchr(key, '.');
        n += (size_t)snprintf(buf + n, size - n, "%s%s=%s", t ? "," : "", leaf ? leaf + 1 : key,
                              cfg_sweep_value(c, k, pick[k]));
    }
}

/* The runs: <base> itself if it holds metrics.jsonl, then each sweep point's
 * directory that does (points without one are noted as not run). */
static int find_runs(report *rp, dp_err *err) {
    const config *c = rp->cfg;
    if (has_metrics(rp->base)) {
        const char *name = su_basename(rp->base);
        if (add_run(rp, name[0] ? name : "run", rp->base, err)) return -1;
    }
    int keys = cfg_sweep_keys(c);
    if (keys > 64) return dp_fail(err, "sweep: at most 64 keys, got %d", keys);
    long combos = keys ? 1 : 0;
    for (int k = 0; k < keys; k++) combos *= cfg_sweep_len(c, k);
    for (long i = 0; i < combos; i++) {
        char name[512], dir[4700];
        int found = 0;
        for (int reversed = 0; reversed < 2 && !found; reversed++) {
            sweep_name(c, i, reversed, name, sizeof name);
            snprintf(dir, sizeof dir, "%s/%s", rp->base, name);
            found = has_metrics(dir);
        }
        if (found) {
            if (add_run(rp, name, dir, err)) return -1;
        } else {
            sweep_name(c, i, 0, name, sizeof name);
            if (note_missing(rp, name, err)) return -1;
        }
    }
    if (!rp->n_runs)
        return dp_fail(err, "%s: no runs found (no metrics.jsonl there or in a sweep point's "
                            "directory); run `dpoc train` or `dpoc sweep` first",
                       rp->base);
    return 0;
}

/* ---- writing the data and the script ------------------------------------- */

static FILE *create(const report *rp, const char *name, dp_err *err) {
    char path[4900];
    snprintf(path, sizeof path, "%s/%s", rp->out, name);
    FILE *f = fopen(path, "w");
    if (!f) dp_fail(err, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

static int finish(FILE *f, const report *rp, const char *name, dp_err *err) {
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad) return dp_fail(err, "%s/%s: write error: %s", rp->out, name, strerror(errno));
    return 0;
}

static void put_number(FILE *f, double x) {
    if (isnan(x)) fputs(" NaN", f);
    else fprintf(f, " %.9g", x);
}

/* Columns: step, then metric m in column m + 2. */
static int write_series(const report *rp, const series *s, const char *name, dp_err *err) {
    FILE *f = create(rp, name, err);
    if (!f) return -1;
    fprintf(f, "# step");
    for (int m = 0; m < N_METRICS; m++) fprintf(f, " %s", metric_key[m]);
    fputc('\n', f);
    for (size_t i = 0; i < s->n; i++) {
        fprintf(f, "%ld", s->p[i].step);
        for (int m = 0; m < N_METRICS; m++) put_number(f, s->p[i].v[m]);
        fputc('\n', f);
    }
    return finish(f, rp, name, err);
}

static int has_values(const series *s, int m) {
    for (size_t i = 0; i < s->n; i++)
        if (!isnan(s->p[i].v[m])) return 1;
    return 0;
}

static void quoted(FILE *g, const char *text) {
    char buf[1200];
    plot_quote(text, buf, sizeof buf);
    fputs(buf, g);
}

typedef struct curve {
    const series *s;
    const char *file;
    int metric;
    const char *title, *color;
    int eval;   /* drawn dashed with points: evaluations are few */
} curve;

/* One panel: the curves that have data, or a "no data" placeholder. */
static void panel(FILE *g, const char *title, const char *key_pos, const curve *c, int n) {
    fputs("set title ", g);
    quoted(g, title);
    fprintf(g, "\nset key %s\n", key_pos);
    int drawn = 0;
    for (int i = 0; i < n; i++) {
        if (!has_values(c[i].s, c[i].metric)) continue;
        fputs(drawn ? ", \\\n     " : "plot ", g);
        quoted(g, c[i].file);
        fprintf(g, " using 1:%d with %s lw 2 lc rgb '%s' title ", c[i].metric + 2,
                c[i].eval ? "linespoints dt 2 pt 7 ps 0.8" : "lines", c[i].color);
        quoted(g, c[i].title);
        drawn++;
    }
    if (drawn) fputc('\n', g);
    else fputs("set label 1 'no data logged' at graph 0.5,0.5 center\n"
               "plot [0:1][0:1] 2 notitle\nunset label 1\n", g);
}

static void terminal(FILE *g, const report *rp, int width, int height, const char *file) {
    char cmd[256], name[600];
    plot_terminal_command(&rp->term, width, height, cmd, sizeof cmd);
    snprintf(name, sizeof name, "%s.%s", file, rp->term.ext);
    fprintf(g, "%s\nset output ", cmd);
    quoted(g, name);
    fputc('\n', g);
}

static void run_figure(FILE *g, const report *rp, const run *r) {
    char tf[600], ef[600], title[600];
    snprintf(tf, sizeof tf, "%s.train.dat", r->stem);
    snprintf(ef, sizeof ef, "%s.eval.dat", r->stem);
    terminal(g, rp, 1200, 900, r->stem);
    snprintf(title, sizeof title, "training curves: %s", r->name);
    fputs("set multiplot layout 2,2 title ", g);
    quoted(g, title);
    fputs("\nset xlabel 'step'\nset ylabel ''\n", g);
    const series *t = &r->train, *e = &r->eval;
    curve loss[] = {{t, tf, M_LOSS, "train", TRAIN_COLOR, 0}, {e, ef, M_LOSS, "eval", EVAL_COLOR, 1}};
    panel(g, "loss", "top right", loss, 2);
    curve acc[] = {{t, tf, M_ACC, "train", TRAIN_COLOR, 0}, {e, ef, M_ACC, "eval", EVAL_COLOR, 1}};
    fputs("set yrange [-0.02:1.02]\n", g);
    panel(g, "reward accuracy (chosen reward > rejected)", "bottom right", acc, 2);
    fputs("set autoscale y\n", g);
    curve margin[] = {{t, tf, M_MARGIN, "train", TRAIN_COLOR, 0},
                      {e, ef, M_MARGIN, "eval", EVAL_COLOR, 1}};
    panel(g, "reward margin (chosen - rejected)", "top left", margin, 2);
    curve rewards[] = {{t, tf, M_CHOSEN, "train chosen", CHOSEN_COLOR, 0},
                       {t, tf, M_REJECTED, "train rejected", REJECTED_COLOR, 0},
                       {e, ef, M_CHOSEN, "eval chosen", CHOSEN_COLOR, 1},
                       {e, ef, M_REJECTED, "eval rejected", REJECTED_COLOR, 1}};
    panel(g, "rewards: beta * log(policy / reference)", "top left", rewards, 4);
    fputs("unset multiplot\nset output\n\n", g);
}

/* Every run's eval loss and reward accuracy (train's, if no run has eval). */
static void sweep_figure(FILE *g, const report *rp, int use_eval) {
    const char *which = use_eval ? "eval" : "train";
    terminal(g, rp, 1400, 560, "sweep");
    fprintf(g, "set multiplot layout 1,2 title 'all runs: %s loss and reward accuracy'\n"
               "set xlabel 'step'\nset ylabel ''\n", which);
    curve *c = calloc((size_t)rp->n_runs, sizeof *c);
    char (*files)[600] = calloc((size_t)rp->n_runs, sizeof *files);
    if (!c || !files) {
        fputs("# out of memory\n", g);
        free(c);
        free(files);
        return;
    }
    for (int i = 0; i < rp->n_runs; i++) {
        const run *r = &rp->runs[i];
        snprintf(files[i], sizeof files[i], "%s.%s.dat", r->stem, which);
        c[i] = (curve){use_eval ? &r->eval : &r->train, files[i], M_LOSS, r->name,
                       palette[i % 8], use_eval};
    }
    char title[64];
    snprintf(title, sizeof title, "%s loss", which);
    panel(g, title, "top right", c, rp->n_runs);
    for (int i = 0; i < rp->n_runs; i++) c[i].metric = M_ACC;
    snprintf(title, sizeof title, "%s reward accuracy", which);
    fputs("set yrange [-0.02:1.02]\n", g);
    panel(g, title, "bottom right", c, rp->n_runs);
    fputs("set autoscale y\nunset multiplot\nset output\n\n", g);
    free(c);
    free(files);
}

static int cmp_kl(const void *a, const void *b) {
    const run *x = *(const run *const *)a, *y = *(const run *const *)b;
    return (x->ev.kl > y->ev.kl) - (x->ev.kl < y->ev.kl);
}

static void data_label(FILE *f, const char *name) {
    fputc('"', f);
    for (const char *s = name; *s; s++) fputc(*s == '"' || *s == '\n' ? '\'' : *s, f);
    fputc('"', f);
}

/* frontier.dat (runs with eval.json, by KL) and reference.dat, then the
 * figure: judge score against KL, each point labelled. */
static int frontier_figure(FILE *g, const report *rp, dp_err *err) {
    const run **by_kl = calloc((size_t)rp->n_runs, sizeof *by_kl);
    if (!by_kl) return dp_fail(err, "out of memory");
    int n = 0;
    for (int i = 0; i < rp->n_runs; i++)
        if (rp->runs[i].ev.present) by_kl[n++] = &rp->runs[i];
    qsort(by_kl, (size_t)n, sizeof *by_kl, cmp_kl);
    FILE *f = create(rp, "frontier.dat", err);
    if (!f) {
        free(by_kl);
        return -1;
    }
    fputs("# kl judge_score run\n", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%.9g %.9g ", by_kl[i]->ev.kl, by_kl[i]->ev.judge);
        data_label(f, by_kl[i]->name);
        fputc('\n', f);
    }
    free(by_kl);
    if (finish(f, rp, "frontier.dat", err)) return -1;
    if (rp->ref.present) {
        if (!(f = create(rp, "reference.dat", err))) return -1;
        fprintf(f, "# kl judge_score\n%.9g %.9g \"reference\"\n", rp->ref.kl, rp->ref.judge);
        if (finish(f, rp, "reference.dat", err)) return -1;
    }
    terminal(g, rp, 900, 650, "frontier");
    fputs("set title 'judge score versus KL from the reference (one point per run)'\n"
          "set xlabel 'KL(policy || reference), sequence-level (nats)'\n"
          "set ylabel 'judge score (mean over sampled completions)'\n"
          "set key top left\nset offsets graph 0.05, graph 0.15, graph 0.15, graph 0.15\n"
          "plot 'frontier.dat' using 1:2 with linespoints lw 2 pt 7 ps 1.5 lc rgb '" TRAIN_COLOR
          "' title 'trained policies', \\\n"
          /* Slanted, and alternately above and below in KL order: policies
           * a sweep puts close together keep readable labels. */
          "     '' every 2 using 1:2:3 with labels rotate by 40 left offset char 0.6,0.6 notitle, \\\n"
          "     '' every 2::1 using 1:2:3 with labels rotate by -40 left offset char 0.6,-0.6 "
          "notitle",
          g);
    if (rp->ref.present)
        fputs(", \\\n     'reference.dat' using 1:2 with points pt 5 ps 2 lc rgb '" REJECTED_COLOR
              "' title 'reference', \\\n"
              "     '' using 1:2:3 with labels offset char 0,-1.2 notitle",
              g);
    fputs("\nset offsets 0, 0, 0, 0\nset output\n", g);
    return 0;
}

/* ---- report.md ------------------------------------------------------------ */

static const char *fmt(char *buf, size_t size, double x, const char *format) {
    if (isnan(x)) snprintf(buf, size, "-");
    else snprintf(buf, size, format, x);
    return buf;
}

static double last(const series *s, int m) { return s->n ? s->p[s->n - 1].v[m] : NAN; }

static void md_cell(FILE *f, const char *text) {
    fputs("| ", f);
    for (const char *s = text; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc(' ', f);
}

static int write_markdown(const report *rp, int n_eval_json, int sweep_fig, int frontier_fig,
                          dp_err *err) {
    FILE *f = create(rp, "report.md", err);
    if (!f) return -1;
    const char *ext = rp->term.ext;
    char a[64], b[64], c[64], d[64], e[64], j[64], k[64], t[64];
    fprintf(f, "# dpoc report\n\n%d run%s from `%s`.\n\n", rp->n_runs, rp->n_runs == 1 ? "" : "s",
            rp->base);
    fputs("| run | steps | train loss | eval loss | eval reward accuracy | eval margin "
          "| judge score | KL | tokens/s |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n", f);
    for (int i = 0; i < rp->n_runs; i++) {
        const run *r = &rp->runs[i];
        long steps = r->train.n ? r->train.p[r->train.n - 1].step
                   : r->eval.n  ? r->eval.p[r->eval.n - 1].step : 0;
        /* no eval lines logged: dpoc eval's figures, if any */
        double eval_loss = last(&r->eval, M_LOSS), eval_acc = last(&r->eval, M_ACC);
        if (isnan(eval_loss) && r->ev.present) eval_loss = r->ev.loss;
        if (isnan(eval_acc) && r->ev.present) eval_acc = r->ev.acc;
        md_cell(f, r->name);
        fprintf(f, "| %ld | %s | %s | %s | %s | %s | %s | %s |\n", steps,
                fmt(a, 64, last(&r->train, M_LOSS), "%.4f"), fmt(b, 64, eval_loss, "%.4f"),
                fmt(c, 64, eval_acc, "%.3f"),
                fmt(d, 64, last(&r->eval, M_MARGIN), "%.4f"),
                fmt(j, 64, r->ev.present ? r->ev.judge : NAN, "%.3f"),
                fmt(k, 64, r->ev.present ? r->ev.kl : NAN, "%.3f"),
                fmt(t, 64, last(&r->train, M_TPS), "%.0f"));
    }
    if (rp->ref.present)
        fprintf(f, "| reference | - | - | %s | %s | - | %s | %s | - |\n",
                fmt(b, 64, rp->ref.loss, "%.4f"), fmt(c, 64, rp->ref.acc, "%.3f"),
                fmt(j, 64, rp->ref.judge, "%.3f"), fmt(e, 64, rp->ref.kl, "%.3f"));
    fputs("\nTrain loss and tokens/s are the last logged step's; eval figures are the last "
          "evaluation's in metrics.jsonl (else `eval.json`'s); judge score (mean over sampled "
          "completions) and KL(policy || reference) come from each run's `eval.json`.\n\n", f);
    if (!n_eval_json)
        fputs("**No `eval.json` in any run directory**, so there are no judge scores, KL or "
              "frontier plot yet: run `dpoc eval` with this configuration, then `dpoc report` "
              "again.\n\n", f);
    else if (n_eval_json < rp->n_runs) {
        fputs("No `eval.json` (not evaluated yet) for: ", f);
        for (int i = 0, n = 0; i < rp->n_runs; i++)
            if (!rp->runs[i].ev.present) fprintf(f, "%s%s", n++ ? ", " : "", rp->runs[i].name);
        fputs(".\n\n", f);
    }
    if (n_eval_json && !rp->ref.present)
        fputs("No `reference_eval.json`: the frontier plot lacks the reference point.\n\n", f);
    if (rp->missing) fprintf(f, "Sweep points not run yet (no metrics.jsonl): %s.\n\n", rp->missing);
    if (sweep_fig || frontier_fig) fputs("## All runs\n\n", f);
    if (sweep_fig) fprintf(f, "![loss and reward accuracy of every run](sweep.%s)\n\n", ext);
    if (frontier_fig)
        fprintf(f, "![judge score versus KL, one point per run](frontier.%s)\n\n", ext);
    fputs("## Training curves\n\n", f);
    for (int i = 0; i < rp->n_runs; i++) {
        const run *r = &rp->runs[i];
        fprintf(f, "### %s\n\n", r->name);
        if (r->train.n + r->eval.n) fprintf(f, "![training curves of %s](%s.%s)\n\n", r->name, r->stem, ext);
        else fputs("No metrics logged yet.\n\n", f);
    }
    return finish(f, rp, "report.md", err);
}

/* ---- the stage ------------------------------------------------------------ */

static int make_report(report *rp, const char *out, dp_err *err) {
    snprintf(rp->base, sizeof rp->base, "%s", cfg_str(rp->cfg, "train.output"));
    if (out) snprintf(rp->out, sizeof rp->out, "%s", out);
    else snprintf(rp->out, sizeof rp->out, "%s/report", rp->base);
    if (find_runs(rp, err)) return -1;
    int n_eval_json = 0, any_eval = 0;
    for (int i = 0; i < rp->n_runs; i++) {
        run *r = &rp->runs[i];
        char path[4800];
        snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
        if (read_metrics(path, r, err)) return -1;
        snprintf(path, sizeof path, "%s/eval.json", r->dir);
        if (read_eval_json(path, &r->ev, err)) return -1;
        n_eval_json += r->ev.present;
        any_eval |= r->eval.n > 0;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/reference_eval.json", rp->base);
    if (read_eval_json(path, &rp->ref, err)) return -1;

    if (su_mkdirs(rp->out, err)) return -1;
    if (plot_find_terminal(rp->out, &rp->term, err)) return -1;
    for (int i = 0; i < rp->n_runs; i++) {
        const run *r = &rp->runs[i];
        char name[600];
        snprintf(name, sizeof name, "%s.train.dat", r->stem);
        if (write_series(rp, &r->train, name, err)) return -1;
        snprintf(name, sizeof name, "%s.eval.dat", r->stem);
        if (write_series(rp, &r->eval, name, err)) return -1;
    }
    FILE *g = create(rp, "report.gp", err);
    if (!g) return -1;
    fputs("# written by dpoc report; run in this directory: gnuplot report.gp\n"
          "set datafile missing 'NaN'\nset grid lc rgb '#dddddd'\nset key samplen 3\n\n", g);
    int figures = 0;
    for (int i = 0; i < rp->n_runs; i++)
        if (rp->runs[i].train.n + rp->runs[i].eval.n) run_figure(g, rp, &rp->runs[i]), figures++;
    int sweep_fig = rp->n_runs >= 2, frontier_fig = n_eval_json > 0;
    if (sweep_fig) sweep_figure(g, rp, any_eval), figures++;
    if (frontier_fig && frontier_figure(g, rp, err)) {
        fclose(g);
        return -1;
    }
    figures += frontier_fig;
    if (finish(g, rp, "report.gp", err)) return -1;
    if (figures && plot_run(rp->out, "report.gp", err)) return -1;
    if (write_markdown(rp, n_eval_json, sweep_fig, frontier_fig, err)) return -1;
    su_log("report: %d run%s, %d figure%s (%s) in %s/report.md", rp->n_runs,
           rp->n_runs == 1 ? "" : "s", figures, figures == 1 ? "" : "s", rp->term.name, rp->out);
    return 0;
}

int cmd_report(int argc, char **argv) {
    cli_option opts[] = {
        {"--out", 1, "report directory (default <train.output>/report)", NULL},
    };
    config *c;
    int rc = cli_parse(argc, argv,
                       "Plots of the training runs under train.output (curves per run; for a sweep\n"
                       "all runs overlaid and, after dpoc eval, judge score versus KL) and a\n"
                       "summary table, in report.md.",
                       opts, 1, &c);
    if (rc || !c) return rc;
    report rp;
    memset(&rp, 0, sizeof rp);
    rp.cfg = c;
    dp_err err;
    rc = make_report(&rp, opts[0].value, &err);
    if (rc) cli_error(err.msg);
    for (int i = 0; i < rp.n_runs; i++) {
        free(rp.runs[i].train.p);
        free(rp.runs[i].eval.p);
    }
    free(rp.runs);
    free(rp.missing);
    cfg_free(c);
    return rc ? 1 : 0;
}
