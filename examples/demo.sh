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
JUDGE=examples/judge.words   # eval.judge of pipeline.yaml
PROMPTS=4                    # eval prompts shown at the end
start=$(date +%s)

step() { printf '\n== %s\n' "$*"; }
has() { "$DPOC" --help | grep -q "^  $1 "; }

# judge: reads {"prompt": ..., "completion": ...} lines from dpoc sample and
# prints each completion with its score (+1 per positive word of the list,
# -1 per negative one, whole words, any case), then "mean N".
judge() {
    awk -v words="$JUDGE" '
        BEGIN { while ((getline l < words) > 0) if (l ~ /^[+-] /) w[tolower(substr(l, 3))] = (substr(l, 1, 1) == "+") ? 1 : -1 }
        {
            c = $0; sub(/^.*"completion": *"/, "", c); sub(/",? *"ids".*$/, "", c); sub(/"}? *$/, "", c)
            s = 0; t = tolower(c); gsub(/[^a-z]+/, " ", t); n = split(t, tok, " ")
            for (i = 1; i <= n; i++) if (tok[i] in w) s += w[tok[i]]
            printf "   %+d  %s\n", s, c; total += s; k++
        }
        END { printf "mean %.2f\n", k ? total / k : 0 }'
}

# field FILE KEY: a number from a flat JSON object
field() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }

step "stage zero: dpoc sft — a 2-layer byte-level GPT-2 from random weights, on chosen and rejected responses"
"$DPOC" sft -c "$CFG"
step "stage one: dpoc precompute — the reference's log-probabilities into the store"
"$DPOC" precompute -c "$CFG"
step "stage two: dpoc sweep — DPO for each β against the cache"
"$DPOC" sweep -c "$CFG"

best=""
if has eval; then
    step "dpoc eval — judge score and KL(policy||reference) from sampled completions"
    "$DPOC" eval -c "$CFG"
    # the policy with the highest judge score
    best_score=-1000
    for f in "$OUT"/*/eval.json; do
        [ -f "$f" ] || continue
        s=$(field "$f" judge_score)
        if awk -v a="$s" -v b="$best_score" 'BEGIN { exit !(a > b) }'; then
            best_score=$s best=$(dirname "$f")
        fi
    done
else
    step "dpoc eval is not in this build: skipping evaluation"
fi
[ -n "$best" ] || best=$(ls -d "$OUT"/*/model 2>/dev/null | head -n 1 | xargs -r dirname)
if has report; then
    step "dpoc report — curves, the judge/KL frontier and a summary table"
    "$DPOC" report -c "$CFG"
fi

step "before and after: $PROMPTS eval prompts, one sample each (temperature 1, same seed)"
ref=runs/sft/model
for who in reference "policy $(basename "$best")"; do
    case $who in reference) dir=$ref ;; *) dir=$best/model ;; esac
    echo " $who:"
    head -n "$PROMPTS" examples/data/eval.jsonl |
        "$DPOC" sample --model "$dir" --seed 7 --max-new-tokens 48 2>/dev/null | judge | sed '$d'
done
if [ -f "$OUT/reference_eval.json" ] && [ -f "$best/eval.json" ]; then
    r=$(field "$OUT/reference_eval.json" judge_score)
    p=$(field "$best/eval.json" judge_score)
    kl=$(field "$best/eval.json" kl)
    n=$(field "$best/eval.json" n_samples)
    printf '\njudge score (mean over %s samples of the eval prompts; -2 all negative .. +2 all positive):\n' "$n"
    printf '  reference %.2f  ->  DPO %s %.2f   (KL %.2f nats)\n' "$r" "$(basename "$best")" "$p" "$kl"
else
    for who in reference policy; do
        case $who in reference) dir=$ref ;; *) dir=$best/model ;; esac
        m=$("$DPOC" sample --model "$dir" --seed 7 --max-new-tokens 48 <examples/data/eval.jsonl 2>/dev/null |
            judge | tail -n 1)
        echo "judge score of the $who over the eval prompts: $m"
    done
fi
[ -f "$OUT/report/report.md" ] && echo "report: $OUT/report/report.md"
echo "demo: done in $(( $(date +%s) - start )) s"
