#!/bin/sh
# e2e_report — dpoc report on synthetic runs: one run, and a 3-point beta
# sweep with eval.json files; the images are real PNGs of the planned size,
# report.md's table holds exactly the synthetic figures, bad input fails
# with one line naming file:line, a missing or failing gnuplot is reported.
. tests/lib.sh
case "$DPOC" in /*) ;; *) DPOC="$PWD/$DPOC" ;; esac   # runs from $TMP below

# gen DIR K: metrics.jsonl with 19 generated train steps (eval every 5) and
# a literal step 20, whose figures are the ones report.md must show.
gen() {
    mkdir -p "$1"
    awk -v k="$2" 'BEGIN {
      for (s = 1; s <= 19; s++) {
        l = 0.6931 * exp(-k * s / 12); a = 0.5 + 0.45 * (1 - exp(-k * s / 6)); m = 2 * k * (1 - exp(-s / 8))
        printf "{\"step\": %d, \"loss\": %.4f, \"rewards/chosen\": %.4f, \"rewards/rejected\": %.4f, \"rewards/accuracies\": %.4f, \"rewards/margins\": %.4f, \"logps/chosen\": -40, \"logps/rejected\": -50, \"logits/chosen\": 0.1, \"logits/rejected\": 0.2, \"grad_norm\": 1.5, \"learning_rate\": 0.0005, \"epoch\": %.3f, \"num_tokens\": %d, \"tokens_per_sec\": 1000.0}\n", s, l, 0.4 * m, -0.6 * m, a, m, s / 20, s * 800
        if (s % 5 == 0)
          printf "{\"step\": %d, \"eval_loss\": %.4f, \"eval_rewards/chosen\": %.4f, \"eval_rewards/rejected\": %.4f, \"eval_rewards/accuracies\": %.4f, \"eval_rewards/margins\": %.4f, \"eval_logps/chosen\": -41, \"eval_logps/rejected\": -52}\n", s, l + 0.05, 0.3 * m, -0.5 * m, a - 0.05, 0.8 * m
      } }' >"$1/metrics.jsonl"
    # blank lines are allowed
    printf '\n' >>"$1/metrics.jsonl"
}
# last DIR LOSS EVAL_LOSS EVAL_ACC EVAL_MARGIN TOKENS_PER_SEC
last() {
    printf '{"step": 20, "loss": %s, "rewards/chosen": 0.5, "rewards/rejected": -0.7, "rewards/accuracies": 0.9, "rewards/margins": 1.2, "grad_norm": 1.1, "learning_rate": 0.0001, "epoch": 1, "num_tokens": 16000, "tokens_per_sec": %s}\n' "$2" "$6" >>"$1/metrics.jsonl"
    printf '{"step": 20, "eval_loss": %s, "eval_rewards/chosen": 0.4, "eval_rewards/rejected": -0.8, "eval_rewards/accuracies": %s, "eval_rewards/margins": %s}\n' "$3" "$4" "$5" >>"$1/metrics.jsonl"
}
# evaljson FILE JUDGE KL EVAL_LOSS EVAL_ACC
evaljson() {
    printf '{"model": "m", "judge_score": %s, "kl": %s, "eval_loss": %s, "eval_accuracy": %s}\n' \
        "$2" "$3" "$4" "$5" >"$1"
}
# is_png NAME FILE WIDTH HEIGHT: PNG signature, IHDR size, more than 8 KiB
is_png() {
    sig=$(od -An -tx1 -N8 "$2" 2>/dev/null | tr -d ' \n')
    expect_eq "$1: PNG signature" "$sig" 89504e470d0a1a0a
    set -- "$1" "$2" "$3" "$4" $(od -An -tu1 -j16 -N8 "$2" 2>/dev/null)
    expect_eq "$1: PNG size" "$(( ($5 << 24) + ($6 << 16) + ($7 << 8) + $8 ))x$(( ($9 << 24) + (${10} << 16) + (${11} << 8) + ${12} ))" "$3x$4"
    [ "$(wc -c <"$2")" -gt 8192 ] && ok || bad "$1: only $(wc -c <"$2") bytes"
}
row() { grep -F "| $1 |" "$2"; }
HEADER='| run | steps | train loss | eval loss | eval reward accuracy | eval margin | judge score | KL | tokens/s |'

cd "$TMP" || exit 1

# --- one run, no eval.json ---------------------------------------------------
gen single 1.0
last single 0.4123 0.5012 0.875 1.2345 1234.2
printf 'train:\n  output: single\n' >single.yaml
"$DPOC" report -c single.yaml 2>err; expect_eq "single: exit 0" $? 0
R=single/report
is_png "single run curves" "$R/run-single.png" 1200 900
md="$R/report.md"
expect_eq "single: table header" "$(grep -F '| run |' "$md")" "$HEADER"
expect_eq "single: row" "$(row single "$md")" "| single | 20 | 0.4123 | 0.5012 | 0.875 | 1.2345 | - | - | 1234 |"
expect_eq "single: one row" "$(grep -c '^| ' "$md")" 2
grep -qF '**No `eval.json` in any run directory**' "$md" && ok || bad "single: says there is no eval.json"
grep -qxF '![training curves of single](run-single.png)' "$md" && ok || bad "single: image linked"
[ ! -e "$R/sweep.png" ] && [ ! -e "$R/frontier.png" ] && ok || bad "single: no sweep/frontier figure"
expect_eq "single: data file rows" "$(grep -vc '^#' "$R/run-single.train.dat")" 20
expect_eq "single: eval rows" "$(grep -vc '^#' "$R/run-single.eval.dat")" 4
expect_eq "single: eval data line" "$(tail -n 1 "$R/run-single.eval.dat")" "20 0.5012 0.875 1.2345 0.4 -0.8 NaN"

# --- a 3-point beta sweep with eval.json and the reference -----------------
gen sweep/beta=0.05 1.0; last sweep/beta=0.05 0.3011 0.4102 0.8125 2.5 980.4
gen sweep/beta=0.1 1.5;  last sweep/beta=0.1 0.3512 0.4403 0.75 1.75 1010.0
gen sweep/beta=0.5 2.0;  last sweep/beta=0.5 0.4623 0.5104 0.625 0.5 995.7
evaljson sweep/beta=0.05/eval.json 0.734 2.345 0.41 0.81
evaljson sweep/beta=0.1/eval.json 0.61 0.9 0.44 0.75
evaljson sweep/beta=0.5/eval.json 0.52 0.25 0.51 0.62
evaljson sweep/reference_eval.json 0.41 0 0.6931 0.5
printf 'train:\n  output: sweep\nsweep:\n  train.beta: [0.05, 0.1, 0.5]\n' >sweep.yaml
"$DPOC" report -c sweep.yaml 2>err; expect_eq "sweep: exit 0" $? 0
R=sweep/report md=sweep/report/report.md
for b in 0.05 0.1 0.5; do is_png "beta=$b curves" "$R/run-beta=$b.png" 1200 900; done
is_png "sweep overlay" "$R/sweep.png" 1400 560
is_png "frontier" "$R/frontier.png" 900 650
expect_eq "sweep: rows" "$(grep '^| [^r-]' "$md")" "\
| beta=0.05 | 20 | 0.3011 | 0.4102 | 0.812 | 2.5000 | 0.734 | 2.345 | 980 |
| beta=0.1 | 20 | 0.3512 | 0.4403 | 0.750 | 1.7500 | 0.610 | 0.900 | 1010 |
| beta=0.5 | 20 | 0.4623 | 0.5104 | 0.625 | 0.5000 | 0.520 | 0.250 | 996 |"
expect_eq "sweep: reference row" "$(row reference "$md")" "| reference | - | - | 0.6931 | 0.500 | - | 0.410 | 0.000 | - |"
grep -qxF '![judge score versus KL, one point per run](frontier.png)' "$md" && ok || bad "frontier linked"
grep -qxF '![loss and reward accuracy of every run](sweep.png)' "$md" && ok || bad "sweep figure linked"
grep -q 'No `eval.json`\|No `reference_eval.json`' "$md" && bad "sweep: claims a missing eval.json" || ok
# the frontier's points go by KL, labelled with the runs' names
expect_eq "frontier data" "$(grep -v '^#' "$R/frontier.dat")" '0.25 0.52 "beta=0.5"
0.9 0.61 "beta=0.1"
2.345 0.734 "beta=0.05"'

# one run not evaluated, one grid point not run
rm sweep/beta=0.1/eval.json sweep/reference_eval.json
printf 'train:\n  output: sweep\nsweep:\n  train.beta: [0.05, 0.1, 0.5, 1.0]\n' >sweep4.yaml
"$DPOC" report -c sweep4.yaml 2>/dev/null; expect_eq "partial sweep: exit 0" $? 0
expect_eq "not evaluated row" "$(row beta=0.1 "$md")" "| beta=0.1 | 20 | 0.3512 | 0.4403 | 0.750 | 1.7500 | - | - | 1010 |"
grep -qxF 'No `eval.json` (not evaluated yet) for: beta=0.1.' "$md" && ok || bad "names the run without eval.json"
grep -qxF 'Sweep points not run yet (no metrics.jsonl): beta=1.0.' "$md" && ok || bad "names the missing sweep point"
grep -qxF 'No `reference_eval.json`: the frontier plot lacks the reference point.' "$md" && ok || bad "says the reference is missing"
expect_eq "no reference row" "$(row reference "$md")" ""

# two keys: a run directory named in either key order is found
gen two/beta=0.1,learning_rate=1e-06 1.0
gen two/learning_rate=1e-06,beta=0.2 1.0
printf 'train:\n  output: two\nsweep:\n  train.beta: [0.1, 0.2]\n  train.learning_rate: [1e-06]\n' >two.yaml
"$DPOC" report -c two.yaml 2>/dev/null; expect_eq "two keys: exit 0" $? 0
expect_eq "two keys: runs" "$(grep -o '^| [a-z_]*=[^ ]*' two/report/report.md)" "| beta=0.1,learning_rate=1e-06
| learning_rate=1e-06,beta=0.2"

# a run logging only the loss and a run with nothing logged yet
mkdir -p thin/beta=1 thin/beta=2
printf '{"step": 1, "loss": 0.7}\n{"step": 2, "loss": 0.6}\n' >thin/beta=1/metrics.jsonl
: >thin/beta=2/metrics.jsonl
printf 'train:\n  output: thin\nsweep:\n  train.beta: [1, 2]\n' >thin.yaml
evaljson thin/beta=1/eval.json 0.55 0.125 0.625 0.6875
"$DPOC" report -c thin.yaml 2>/dev/null; expect_eq "thin runs: exit 0" $? 0
# without eval lines in metrics.jsonl, eval.json's eval_loss and eval_accuracy
expect_eq "thin rows" "$(grep '^| beta' thin/report/report.md)" "| beta=1 | 2 | 0.6000 | 0.6250 | 0.688 | - | 0.550 | 0.125 | - |
| beta=2 | 0 | - | - | - | - | - | - | - |"
is_png "loss-only curves" "thin/report/run-beta=1.png" 1200 900
is_png "train-only overlay" "thin/report/sweep.png" 1400 560
grep -qx 'No metrics logged yet.' thin/report/report.md && ok || bad "says a run logged nothing"
[ ! -e thin/report/run-beta=2.png ] && ok || bad "no figure for an empty run"

printf 'train:\n  output: bad\n' >bad.yaml
# SVG when gnuplot has no PNG terminal (a wrapper hides them)
mkdir -p svgbin
printf '#!/bin/sh\ncase "$*" in *GPVAL_TERMINALS*) echo " dumb svg unknown"; exit 0;; esac\nexec %s "$@"\n' \
    "$(command -v gnuplot)" >svgbin/gnuplot
chmod +x svgbin/gnuplot
# (and --out, --set)
PATH="$TMP/svgbin:$PATH" "$DPOC" report -c bad.yaml --set train.output=single --out svg 2>/dev/null
expect_eq "svg: exit 0" $? 0
grep -q '<svg' svg/run-single.svg 2>/dev/null && ok || bad "svg: run-single.svg is SVG"
grep -qxF '![training curves of single](run-single.svg)' svg/report.md && ok || bad "svg: linked"

# --- errors: one line naming the file and line ---------------------------
mkdir -p bad
# bad_metrics NAME LINE3 MESSAGE: single's metrics.jsonl with its line 3
# replaced by LINE3 as bad/metrics.jsonl; report fails with MESSAGE.
bad_metrics() {
    awk -v line="$2" 'NR == 3 { $0 = line } { print }' single/metrics.jsonl >bad/metrics.jsonl
    expect_fail "$1" "$3" "$DPOC" report -c bad.yaml
}
# bad_eval_json NAME TEXT MESSAGE: bad/eval.json holds TEXT (printf %b
# escapes); report fails with MESSAGE.
bad_eval_json() {
    printf '%b' "$2" >bad/eval.json
    expect_fail "$1" "$3" "$DPOC" report -c bad.yaml
}
bad_metrics "invalid JSON line" '{"step": 3, "loss": }' "bad/metrics.jsonl:3:21: invalid JSON: unexpected token near '}'"
bad_metrics "not an object" '[1, 2]' "bad/metrics.jsonl:3: expected a JSON object, got an array"
bad_metrics "no step" '{"loss": 0.5}' "bad/metrics.jsonl:3: step: expected an integer, got nothing"
bad_metrics "metric not a number" '{"step": 3, "eval_rewards/margins": "wide"}' \
    "bad/metrics.jsonl:3: eval_rewards/margins: expected a number, got a string"
cp single/metrics.jsonl bad/metrics.jsonl
bad_eval_json "eval.json without judge_score" '{"model": "m", "kl": 1}\n' \
    "bad/eval.json: judge_score: expected a number, got nothing"
bad_eval_json "eval.json not JSON" '{"model": "m",\n "kl": 1,,}\n' \
    "bad/eval.json:2:10: invalid JSON: string or '}' expected near ','"
rm bad/eval.json
printf 'train:\n  output: nothing\nsweep:\n  train.beta: [0.1]\n' >none.yaml
expect_fail "no runs" "nothing: no runs found (no metrics.jsonl there or in a sweep point's directory); run \`dpoc train\` or \`dpoc sweep\` first" \
    "$DPOC" report -c none.yaml
mkdir -p emptybin
expect_fail "gnuplot missing" "gnuplot: not found on PATH; install it with \`apt-get install gnuplot-nox\` (\`make deps\` does)" \
    env PATH="$TMP/emptybin" "$DPOC" report -c bad.yaml
mkdir -p failbin
printf '#!/bin/sh\necho "warming up"\necho "line 1: cannot draw" >&2\nexit 3\n' >failbin/gnuplot
chmod +x failbin/gnuplot
expect_fail "gnuplot fails" "gnuplot failed on its list of terminals (exit 3): line 1: cannot draw (output in bad/report/gnuplot.log)" \
    env PATH="$TMP/failbin:$PATH" "$DPOC" report -c bad.yaml
# a script error inside gnuplot is reported with its line
printf '#!/bin/sh\ncase "$*" in *GPVAL_TERMINALS*) exec %s "$@";; esac\nexec %s -e "undefined_command_x" "$@"\n' \
    "$(command -v gnuplot)" "$(command -v gnuplot)" >failbin/gnuplot
expect_fail "gnuplot script error" "gnuplot failed on bad/report/report.gp (exit 1): line 0: invalid command (output in bad/report/gnuplot.log)" \
    env PATH="$TMP/failbin:$PATH" "$DPOC" report -c bad.yaml

"$DPOC" report --help >help 2>&1; expect_eq "--help exits 0" $? 0
grep -q -- '--out VALUE' help && ok || bad "--help lists --out"
"$DPOC" report --bogus >/dev/null 2>&1; expect_eq "unknown option exits 2" $? 2
summary
