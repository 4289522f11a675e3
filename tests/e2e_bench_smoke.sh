#!/bin/sh
# e2e_bench_smoke.sh — the benchmark suite's tiny-shape mode
# (tests/bench/run.sh --smoke) runs to the end and its results.json has every
# field, each measured (a number) where the smoke run measures it. Asserts
# nothing about speed: benchmarks are never timed tests.
. tests/lib.sh
BUILD=${BUILD:-build}

BENCH_OUT="$TMP/bench" BUILD="$BUILD" PYTHON="$PYTHON" sh tests/bench/run.sh --smoke \
    >"$TMP/stdout" 2>"$TMP/stderr"
rc=$?
expect_eq "run.sh --smoke exit status" "$rc" 0
[ $rc = 0 ] || { tail -n 30 "$TMP/stderr" >&2; }
expect_eq "results.json written" "$(test -s "$TMP/bench/results.json" && echo yes)" yes
expect_eq "table printed" "$(grep -c 'precompute, sharing' "$TMP/stdout")" 4
expect_eq "LoRA rows printed" "$(grep -c 'LoRA r16 step' "$TMP/stdout")" 4
expect_eq "big-checkpoint rows printed" "$(grep -c '^  Llama-.* \(precompute\|step\)' "$TMP/stdout")" 5
"$PYTHON" -c "
import json, sys
rows = json.load(open(sys.argv[1]))['rows']
assert len(rows) == 5 and all(r['peak_rss_bytes'] > 0 and r['bytes_read'] > 0 for r in rows)
" "$TMP/bench/big.json"; expect_eq "big.json has every row, measured" $? 0

cat >"$TMP/check.py" <<'PY'
"""Prints one line per missing or unmeasured field of results.json."""
import json, sys
r = json.load(open(sys.argv[1]))
problems = []

def need(obj, path, keys, measured=True):
    if not isinstance(obj, dict):
        problems.append("%s: expected an object, found %r" % (path, obj))
        return
    for k in keys:
        if k not in obj:
            problems.append("%s.%s: missing" % (path, k))
        elif measured and not isinstance(obj[k], (int, float)):
            problems.append("%s.%s: expected a number, found %r" % (path, k, obj[k]))

need(r, "", ["mode", "threads", "blas_core", "environment", "counting", "sgemm", "torch",
             "tokenizer", "runs"], measured=False)
need(r["environment"], "environment", ["load_average_start", "load_average_end", "nproc"])
need(r, "", ["threads"])
need(r["sgemm"], "sgemm", ["n", "reps", "gflops"])
need(r["tokenizer"], "tokenizer", ["corpus_bytes", "tokens", "seconds", "mb_per_s", "tokens_per_s"])
torch = r["torch"].get("available") is True
if not torch:
    need(r["torch"], "torch", ["reason"], measured=False)
runs = {(x["model"], x["dist"]): x for x in r["runs"]}
want = [(m, d) for m in ("gpt2-tiny", "llama-tiny") for d in ("hh", "uf")]
if sorted(runs) != sorted(want):
    problems.append("runs: expected %s, found %s" % (want, sorted(runs)))
ours_pre = ["pairs", "batches", "max_batch_tokens", "seq_tokens", "packed_tokens", "seconds",
            "tokens_per_s", "pairs_per_s", "gflops_per_s", "peak_rss_bytes", "mfu"]
ours_train = ["batch_pairs", "timed_steps", "max_batch_tokens", "seconds_per_step",
              "warmup_seconds", "tokens_per_s", "pairs_per_s", "gflops_per_s", "peak_rss_bytes", "mfu"]
torch_pre = ["pairs", "batch_pairs", "seq_tokens", "padded_tokens", "seconds", "tokens_per_s",
             "pairs_per_s", "peak_rss_bytes"]
torch_train = ["batch_pairs", "timed_steps", "seconds_per_step", "reference_seconds_per_step",
               "tokens_per_s", "pairs_per_s", "policy_only_tokens_per_s", "padded_tokens",
               "peak_rss_bytes"]
for key, x in sorted(runs.items()):
    p = "runs[%s/%s]" % key
    pre, tr, mem = x.get("precompute"), x.get("train"), x.get("memory")
    need(pre, p + ".precompute", ["ours_sharing", "ours_no_sharing", "torch", "ratio_sharing",
                                   "ratio_no_sharing"], measured=False)
    need(pre, p + ".precompute", ["store_logp_bytes_per_token", "store_bytes_per_token"])
    need(pre["ours_sharing"], p + ".precompute.ours_sharing", ours_pre)
    need(pre["ours_no_sharing"], p + ".precompute.ours_no_sharing", ours_pre)
    need(tr, p + ".train", ["ours_sharing", "ours_no_sharing", "torch", "ratio_sharing",
                             "ratio_no_sharing", "ratio_vs_torch_policy_only"], measured=False)
    need(tr["ours_sharing"], p + ".train.ours_sharing", ours_train)
    need(mem, p + ".memory", ["n_params", "train_tokens", "precompute_peak_rss_bytes",
                              "train_peak_rss_bytes", "estimate_bytes", "estimate_activation_bytes",
                              "online_dpo_bytes", "target_bytes", "train_peak_over_target"])
    need(mem, p + ".memory", ["torch_precompute_peak_rss_bytes", "torch_train_peak_rss_bytes"],
         measured=torch)
    lo = x.get("train_lora")
    need(lo, p + ".train_lora", ["ours", "torch"], measured=False)
    need(lo["ours"], p + ".train_lora.ours", ours_train + ["lora_r", "lora_params", "estimate_bytes"])
    need(lo, p + ".train_lora", ["step_over_full_step"])
    if torch:
        need(lo["torch"], p + ".train_lora.torch", ["seconds_per_step", "tokens_per_s", "peak_rss_bytes"])
        need(lo, p + ".train_lora", ["ratio"])
        need(pre["torch"], p + ".precompute.torch", torch_pre)
        need(tr["torch"], p + ".train.torch", torch_train)
        need(pre, p + ".precompute", ["ratio_sharing", "ratio_no_sharing"])
        need(tr, p + ".train", ["ratio_sharing", "ratio_vs_torch_policy_only"])
    elif pre["torch"] is not None or tr["torch"] is not None:
        problems.append(p + ": torch unavailable, yet torch results present")
for line in problems:
    print(line)
PY
if [ -s "$TMP/bench/results.json" ]; then
    "$PYTHON" "$TMP/check.py" "$TMP/bench/results.json" >"$TMP/problems" 2>&1
    expect_eq "every results.json field present and measured" "$(cat "$TMP/problems")" ""
fi
summary
