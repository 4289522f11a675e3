/* model_cmd — `dpoc model info DIR [--tokens N] [--lora-r R] [--budget SIZE]
 * [--ranks N] [--check]`: what a Hugging Face model directory holds (family, sizes,
 * parameter count) from config.json and the safetensors headers alone (any
 * size, at once), the memory training it would take (full and with LoRA),
 * the plans for a budget, and with --check whether every weight is finite; `dpoc model init DIR [--seed N]` writes random weights
 * (N(0, 0.02)) for the config.json in DIR; `dpoc model merge BASE ADAPTER
 * OUT` folds a LoRA adapter into its base and writes a plain model. Info also
 * names the special tokens and the file each came from (tokenizer.h). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "stage_util.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dpoc model info DIR [--tokens N] [--lora-r R] [--budget SIZE] [--ranks N]\n"
            "                       [--check]\n"
            "       dpoc model init DIR [--seed N] [--bf16]\n"
            "       dpoc model merge BASE ADAPTER OUT [--bf16]\n"
            "  info         family, sizes, parameter count, training memory; loads the\n"
            "               weights when DIR holds any, to check them\n"
            "  init         writes DIR/model.safetensors with random weights for\n"
            "               DIR/config.json (and rewrites config.json)\n"
            "  merge        writes OUT, the model BASE with the LoRA adapter directory\n"
            "               ADAPTER (PEFT layout) folded in (W + scale * B A), and BASE's\n"
            "               tokenizer files\n"
            "  DIR          a Hugging Face model directory\n"
            "  --tokens N   token budget of one packed batch for the activation estimate\n"
            "               (default 2048)\n"
            "  --lora-r R   rank for the LoRA estimate (default 16; all-linear targets)\n"
            "  --check      also read every weight (NaN and Inf refused); without it only\n"
            "               config.json and the safetensors headers are read\n"
            "  --budget SIZE  the plans precompute, full training and LoRA would make to\n"
            "               fit SIZE (e.g. 4GiB), as memory.budget does\n"
            "  --ranks N    also the memory per rank of full training under mpirun -np N\n"
            "               (optimizer state and reduced gradients sharded, ZeRO stage 2)\n"
            "  --seed N     random seed for init (default 0)\n"
            "  --bf16       init and merge write BF16 instead of F32\n"
            "  --help       this text\n");
}

static int has_weights(const char *dir) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!stat(p, &st)) return 1;
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    return !stat(p, &st);
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    if (!v || (*out = strtol(v, &end, 10), *end) || !*v || *out < lo || *out > hi) {
        char q[DP_QUOTE_CAP];
        fprintf(stderr, "dpoc model: %s: expected an integer in [%ld, %ld], got %s\n", opt, lo, hi,
                dp_quote(q, v ? v : "", (size_t)-1));
        return -1;
    }
    return 0;
}

/* The tokenizer's special tokens, stop ids and chat template, with the
 * file each came from; nothing when DIR has no tokenizer.json. */
static int print_tokens(const char *dir, dp_err *err) {
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    if (stat(p, &st)) return 0;
    tokenizer *t;
    if (tok_load(&t, dir, err)) return -1;
    printf("special tokens:\n");
    for (int k = 0; k < tok_special_count(); k++) {
        const char *src, *s = tok_special(t, k, &src);
        if (!s) continue;
        char q[DP_QUOTE_CAP];
        int id = tok_token_id(t, s, strlen(s));
        printf("  %-12s %s (id %d) from %s\n", tok_special_name(k), dp_quote(q, s, (size_t)-1), id, src);
    }
    const int32_t *stop;
    size_t n = tok_stop_ids(t, &stop);
    printf("stop ids:    ");
    for (size_t i = 0; i < n; i++) printf(" %d", stop[i]);
    printf("%s\n", n ? "" : " none");
    printf("chat template: %s\n", tok_chat_template(t) ? tok_chat_template_source(t) : "none");
    tok_free(t);
    return 0;
}

static void print_bytes(const char *what, size_t bytes) {
    printf("  %-12s %10.1f MiB\n", what, (double)bytes / (1024.0 * 1024.0));
}

/* dpoc model merge BASE ADAPTER OUT [--bf16] */
static int merge_cmd(int argc, char **argv) {
    const char *pos[3];
    int n = 0, bf16 = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--bf16")) {
            bf16 = 1;
        } else if (argv[i][0] == '-' || n == 3) {
            char q[DP_QUOTE_CAP];
            fprintf(stderr, "dpoc model merge: unexpected argument %s\n", dp_quote(q, argv[i], (size_t)-1));
            return 2;
        } else {
            pos[n++] = argv[i];
        }
    }
    if (n != 3) {
        usage(stderr);
        return 2;
    }
    model_options o = {.training = 0, .prefix_sharing = 1, .threads = 0, .max_tokens = 1};
    model *m = NULL;
    dp_err err;
    int rc = model_load(&m, pos[0], &o, &err);
    if (!rc) rc = model_lora_load(m, pos[1], &err);
    if (!rc) rc = model_lora_merge(m, &err);
    if (!rc) rc = su_mkdirs(pos[2], &err);
    if (!rc) rc = model_save(m, pos[2], bf16, &err);
    if (!rc) rc = su_copy_tokenizer_files(pos[0], pos[2], &err);
    model_free(m);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("%s: %s with %s folded in\n", pos[2], pos[0], pos[1]);
    return 0;
}

int cmd_model(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    int info = argc >= 2 && !strcmp(argv[1], "info"), init = argc >= 2 && !strcmp(argv[1], "init");
    if (argc >= 2 && !strcmp(argv[1], "merge")) return merge_cmd(argc, argv);
    if (argc < 3 || (!info && !init)) {
        usage(stderr);
        return 2;
    }
    const char *dir = NULL;
    long tokens = 2048, seed = 0, lora_r = 16, ranks = 0;
    size_t budget = 0;
    int check = 0;
    int bf16 = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (info && !strcmp(argv[i], "--tokens")) {
            if (parse_long("--tokens", i + 1 < argc ? argv[i + 1] : NULL, 1, 1L << 30, &tokens)) return 2;
            i++;
        } else if (info && !strcmp(argv[i], "--lora-r")) {
            if (parse_long("--lora-r", i + 1 < argc ? argv[i + 1] : NULL, 1, 4096, &lora_r)) return 2;
            i++;
        } else if (info && !strcmp(argv[i], "--ranks")) {
            if (parse_long("--ranks", i + 1 < argc ? argv[i + 1] : NULL, 1, 1L << 20, &ranks)) return 2;
            i++;
        } else if (info && !strcmp(argv[i], "--check")) {
            check = 1;
        } else if (info && !strcmp(argv[i], "--budget")) {
            dp_err e;
            if (i + 1 >= argc || su_parse_size(argv[i + 1], "--budget", &budget, &e)) {
                fprintf(stderr, "dpoc model: %s\n", i + 1 < argc ? e.msg : "--budget needs a size");
                return 2;
            }
            i++;
        } else if (init && !strcmp(argv[i], "--seed")) {
            if (parse_long("--seed", i + 1 < argc ? argv[i + 1] : NULL, 0, INT64_MAX, &seed)) return 2;
            i++;
        } else if (init && !strcmp(argv[i], "--bf16")) {
            bf16 = 1;
        } else if (argv[i][0] == '-' || dir) {
            char q[DP_QUOTE_CAP];
            fprintf(stderr, "dpoc model: unexpected argument %s\n", dp_quote(q, argv[i], (size_t)-1));
            usage(stderr);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    model_config c;
    dp_err err;
    if (init) {
        model_options o = {.training = 0, .prefix_sharing = 1, .threads = 0, .max_tokens = 1};
        model *m = NULL;
        if (model_init_random(&m, path, (uint64_t)seed, &o, &err) || model_save(m, dir, bf16, &err)) {
            if (m) model_free(m);
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        size_t n;
        model_params(m, &n);
        printf("%s: %s with %zu random parameters (seed %ld)\n", dir, model_get_config(m)->model_type,
               n, seed);
        model_free(m);
        return 0;
    }
    if (model_read_config(&c, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char *weights = "none (config.json only)";
    int wb = 4;
    if (has_weights(dir)) {
        /* names, shapes and dtypes from the headers: any size, at once */
        model_options o = {.training = 0, .prefix_sharing = 1, .threads = 1, .max_tokens = 1,
                           .headers_only = !check};
        model *m;
        if (model_load(&m, dir, &o, &err) || model_peek(dir, NULL, &wb, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        model_free(m);
        weights = wb == 2 ? "half precision (kept so when frozen)" : "float32";
        if (check) weights = wb == 2 ? "half precision, every value finite" : "float32, every value finite";
    } else {
        /* no weights yet: the dtype config.json announces */
        json_t *root = json_load_file(path, 0, NULL);
        const char *dt = json_string_value(json_object_get(root, "torch_dtype"));
        if (dt && (!strcmp(dt, "bfloat16") || !strcmp(dt, "float16"))) wb = 2;
        json_decref(root);
    }
    model_memory mm = model_memory_estimate(&c, (int)tokens);
    printf("model:        %s\n", dir);
    printf("family:       %s\n", c.model_type);
    printf("layers:       %d\n", c.n_layer);
    printf("heads:        %d (kv heads %d, head dim %d)\n", c.n_head, c.n_kv_head, c.head_dim);
    printf("width:        %d\n", c.d_model);
    printf("ff:           %d\n", c.d_ff);
    printf("vocab:        %d\n", c.vocab);
    printf("positions:    %d\n", c.max_pos);
    printf("lm_head:      %s\n", c.tie_embeddings ? "tied" : "untied");
    if (c.rope_type == 3)
        printf("rope scaling: longrope (original context %d, attention factor %g)\n",
               c.rope_original_max_pos, (double)c.rope_attn_factor);
    else if (c.rope_type)
        printf("rope scaling: %s x%g%s\n", c.rope_type == 1 ? "linear" : "llama3",
               (double)c.rope_factor, c.rope_local_theta > 0 ? " (global layers)" : "");
    if (c.rope_local_theta > 0)
        printf("rope bases:   %g global, %g sliding layers\n", (double)c.rope_theta,
               (double)c.rope_local_theta);
    if (c.rope_dim > 0 && c.rope_dim != c.head_dim)
        printf("rotary dims:  %d of %d per head\n", c.rope_dim, c.head_dim);
    if (c.sliding_window && c.sliding_pattern > 0)
        printf("window:       %d on layers i with (i + 1) %% %d != 0\n", c.sliding_window,
               c.sliding_pattern);
    else if (c.sliding_window)
        printf("window:       %d\n", c.sliding_window);
    if (c.fused) printf("projections:  fused qkv_proj, gate_up_proj\n");
    if (c.gemma)
        printf("gemma:        norms scale by 1 + w, embeddings x sqrt(%d), GeGLU (tanh)%s\n",
               c.d_model, c.post_norms ? ", post norms" : "");
    if (c.query_pre_attn_scalar > 0)
        printf("attn scale:   query_pre_attn_scalar %g\n", (double)c.query_pre_attn_scalar);
    if (c.attn_softcap > 0 || c.final_softcap > 0)
        printf("soft-caps:    attention %g, logits %g (0: none)\n", (double)c.attn_softcap,
               (double)c.final_softcap);
    printf("parameters:   %zu (%.2f M)\n", mm.n_params, (double)mm.n_params / 1e6);
    printf("training memory (fp32, AdamW, %ld tokens per batch):\n", tokens);
    print_bytes("weights", mm.weights);
    print_bytes("gradients", mm.grads);
    print_bytes("adamw", mm.adam);
    print_bytes("activations", mm.activations);
    print_bytes("total", mm.weights + mm.grads + mm.adam + mm.activations);
    printf("with train.recompute: true (layers recomputed in backward):\n");
    print_bytes("activations", mm.activations_recompute);
    print_bytes("total", mm.weights + mm.grads + mm.adam + mm.activations_recompute);
    /* LoRA: the base frozen (no gradients, no AdamW state); the adapters
     * carry weights, gradients and two moments, 16 bytes a parameter. */
    size_t n_lora = model_lora_param_count(&c, (int)lora_r, model_lora_family_targets(c.model_type));
    printf("with LoRA r %ld on all-linear targets (%zu trainable parameters, %.2f%%):\n", lora_r,
           n_lora, 100.0 * (double)n_lora / (double)mm.n_params);
    print_bytes("weights", mm.weights);
    print_bytes("adapters", n_lora * 16);
    print_bytes("activations", mm.activations);
    print_bytes("total", mm.weights + n_lora * 16 + mm.activations);
    if (ranks) {
        /* Each rank keeps the weights and backward's full gradient array, and
         * 1/N of the reduced gradient and of the AdamW moments; activations
         * are those of its own micro-batch. */
        size_t n = (size_t)ranks;
        size_t slice = mm.grads / n + (mm.grads % n != 0), adam = mm.adam / n + (mm.adam % n != 0);
        printf("full training, per rank with %ld ranks (ZeRO: gradients reduce-scattered, AdamW "
               "state sharded; %.1f MiB per step on the wire per rank and direction):\n",
               ranks, (double)mm.grads * (double)(n - 1) / (double)n / (1024.0 * 1024.0));
        print_bytes("weights", mm.weights);
        print_bytes("gradients", mm.grads);
        if (ranks > 1) print_bytes("grad slice", slice);
        print_bytes("adamw slice", adam);
        print_bytes("activations", mm.activations);
        print_bytes("total", mm.weights + mm.grads + (ranks > 1 ? slice : 0) + adam + mm.activations);
    }
    printf("weights:      %s\n", weights);
    if (budget) {
        static const char *const what[] = {"precompute", "full training", "LoRA"};
        printf("plans for a budget of %.2f GiB (%ld tokens per batch or fewer):\n",
               (double)budget / (double)(1u << 30), tokens);
        for (int j = 0; j < 3; j++) {
            model_plan p;
            char line[400];
            dp_err e;
            int min = tokens < 256 ? (int)tokens : 256; /* a pair of 127-token sides */
            if (model_plan_fit(&p, &c, (model_job)j, wb, (int)tokens, min, 0,
                               budget, (int)lora_r, model_lora_family_targets(c.model_type), &e)) {
                printf("  %-14s does not fit: %s\n", what[j], e.msg);
                continue;
            }
            model_plan_describe(&p, line, sizeof line);
            printf("  %-14s %s\n", what[j], line);
        }
    }
    if (print_tokens(dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("blas:         OpenBLAS %s\n", model_blas_corename());
    return 0;
}
