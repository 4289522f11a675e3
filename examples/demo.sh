#!/bin/sh
# demo.sh [DPOC] — the embedded default end to end, on the default pipeline.yaml:
# sft a byte-level model from random weights on both responses of the
# sentiment task (stage zero), cache its log-probabilities (stage one), DPO
# over a few β against the cache (stage two), evaluate (judge score and KL
# from samples), report, and show what changed: completions of a few eval
# prompts from the reference and the best policy, with their judge scores.
# It runs the default pipeline.yaml: everything goes to runs/ and cache/; a
# rerun resumes where the last one stopped (remove runs/ and cache/ to start
# over). About 1-2 minutes on 2 cores.
set -eu
DPOC=${1:-build/dpoc}
case $DPOC in /*) ;; *) DPOC=$(pwd)/$DPOC ;; esac
cd "$(dirname "$0")/.."
CFG=pipeline.yaml
OUT=runs/dpo                 # train.output of pipeline.yaml
PROMPTS=4                    # eval prompts shown at the end
SAMPLES=$OUT/eval_samples.jsonl  # every eval sample, with its judge score
start=$(date +%s)

step() { printf '\n== %s\n' "$*"; }
has() { "$DPOC" --help | grep -q "^  $1 "; }

# show NAME: the first sample of each of the first $PROMPTS eval prompts of
# model NAME in $SAMPLES (dpoc eval --dump-samples), with the judge score dpoc
# eval gave it.
show() {
    sed -n "s/^{\"model\":\"$1\",\"prompt_index\":\([0-9]*\),\"sample\":0,.*\"completion\":\"\(.*\)\",\"judge\":\(-\{0,1\}[0-9]*\),.*/\1 \3 \2/p" \
        "$SAMPLES" | while read -r i score text; do
        if [ "$i" -lt "$PROMPTS" ]; then printf '   %+d  %s\n' "$score" "$text"; fi
    done
}

# field FILE KEY: a number from a flat JSON object
field() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }

step "stage zero: dpoc sft — a 2-layer byte-level GPT-2 from random weights, on chosen and rejected responses"
"$DPOC" sft -c "$CFG"
step "stage one: dpoc precompute — the reference's log-probabilities into the store"
"$DPOC" precompute -c "$CFG"
step "stage two: dpoc sweep — DPO for each β against the cache"
"$DPOC" sweep -c "$CFG"

step "dpoc eval — judge score and KL(policy||reference) from sampled completions"
"$DPOC" eval -c "$CFG" --dump-samples "$SAMPLES"
# the policy with the highest judge score
best="" best_score=-1000
for f in "$OUT"/*/eval.json; do
    [ -f "$f" ] || continue
    s=$(field "$f" judge_score)
    if awk -v a="$s" -v b="$best_score" 'BEGIN { exit !(a > b) }'; then
        best_score=$s best=$(dirname "$f")
    fi
done
[ -n "$best" ] || best=$(ls -d "$OUT"/*/model 2>/dev/null | head -n 1 | xargs -r dirname)
if has report; then
    step "dpoc report — curves, the judge/KL frontier and a summary table"
    "$DPOC" report -c "$CFG"
fi

step "before and after: $PROMPTS eval prompts, one sample each (the same random stream for both)"
echo " reference:"
show reference
echo " policy $(basename "$best"):"
show "$(basename "$best")"
r=$(field "$OUT/reference_eval.json" judge_score)
p=$(field "$best/eval.json" judge_score)
kl=$(field "$best/eval.json" kl)
n=$(field "$best/eval.json" n_samples)
printf '\njudge score (mean over %s samples of the eval prompts; -2 all negative .. +2 all positive):\n' "$n"
printf '  reference %.2f  ->  DPO %s %.2f   (KL %.2f nats)\n' "$r" "$(basename "$best")" "$p" "$kl"
[ -f "$OUT/report/report.md" ] && echo "report: $OUT/report/report.md"
echo "demo: done in $(( $(date +%s) - start )) s"
