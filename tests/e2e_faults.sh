#!/bin/sh
# e2e_faults.sh — faults and hostile inputs on the real binary: a full disk
# (simulated with a file-size limit, `ulimit -f`, in a subshell: past it a
# write fails with EFBIG, and dpoc, which ignores SIGXFSZ, must report it)
# during precompute and train; NaN/Inf weights; compressed data files that
# are not what their extension says; a fresh store left behind by bad data;
# stores that only a full read would find bad, which `store verify` must
# find first; untrusted text echoed into errors. Each failure: exit status
# 1, exactly the expected one-line error as the last line of stderr, printed
# once; existing data byte-identical afterwards, and a rerun without the
# fault completes with the numbers of a run that never failed.
# Runs in $TMP so messages name short relative paths.
. tests/lib.sh
ROOT=$(pwd)
case "$DPOC" in /*) ;; *) DPOC="$ROOT/$DPOC" ;; esac
if ! "$PYTHON" -c 'import sqlite3, struct, json' 2>/dev/null || ! command -v gzip >/dev/null 2>&1; then
    bad "oracle tools missing: $PYTHON with sqlite3, and gzip, are required"
    summary
    exit 1
fi

# fault NAME MESSAGE CMD...: exit status 1, MESSAGE as the last stderr line,
# printed once. fault_like: MESSAGE is a shell pattern (for a row id that
# depends on when SQLite's page cache spills).
fault_check() {
    like=$1 name=$2 msg=$3
    shift 3
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    got=$(tail -n 1 "$TMP/err")
    if [ "$like" = 1 ]; then
        case "$got" in $msg) match=1 ;; *) match=0 ;; esac
    else
        [ "$got" = "$msg" ] && match=1 || match=0
    fi
    if [ "$match" = 1 ] && [ "$rc" -eq 1 ]; then ok
    else bad "$name: exit $rc, stderr [$got], expected exit 1 and [$msg]"; fi
    n=$(grep -cxF -- "$got" "$TMP/err")
    [ "$n" -le 1 ] || bad "$name: the message is printed $n times"
}
fault() { fault_check 0 "$@"; }
fault_like() { fault_check 1 "$@"; }
# limited BLOCKS CMD...: CMD with files limited to BLOCKS 512-byte blocks.
limited() {
    blocks=$1
    shift
    (ulimit -f "$blocks" && exec "$@")
}
dump() { "$DPOC" store dump "$1" --per-token | sort; }

tiny_pipeline
cat >>"$P" <<YAML
precompute:
  commit_seconds: 3600
YAML
head -n 24 examples/data/train.jsonl >"$TMP/data/train.jsonl"
cd "$TMP" || exit 1

# ------------------------------------------------------------ full disk: precompute
"$DPOC" precompute -c p.yaml 2>/dev/null; expect_eq "precompute 24+16 rows" $? 0
cp store.sqlite before.sqlite
head -n 48 "$ROOT/examples/data/train.jsonl" >data/train.jsonl
# 64 blocks: the WAL index (32 KiB) fits, the WAL's second 16 KiB page does not.
fault_like "precompute, disk full, existing store" 'store.sqlite: *: disk I/O error (File too large)' \
    limited 64 "$DPOC" precompute -c p.yaml
cmp -s store.sqlite before.sqlite && ok || bad "the existing store changed under a full disk"
[ ! -e store.sqlite-wal ] || [ ! -s store.sqlite-wal ] && ok || bad "a WAL with frames was left behind"
"$DPOC" store verify store.sqlite >/dev/null 2>&1; expect_eq "the store still verifies" $? 0
"$DPOC" precompute -c p.yaml 2>pre.log; expect_eq "precompute rerun without the limit" $? 0
grep -q "24 computed, 40 reused" pre.log && ok || bad "the rerun resumes: $(tail -n 1 pre.log)"
# The same two runs without the fault (the second run's windows differ from
# the first's, so only this comparison is bit-exact).
cp before.sqlite straight.sqlite
"$DPOC" precompute -c p.yaml --set store=straight.sqlite 2>/dev/null
expect_eq "straight precompute" $? 0
[ "$(dump store.sqlite)" = "$(dump straight.sqlite)" ] && ok \
    || bad "resumed store == the runs that never failed"

fault "precompute, disk full, new store" 's2.sqlite: creating the store: disk I/O error (File too large)' \
    limited 64 "$DPOC" precompute -c p.yaml --set store=s2.sqlite
ls s2.sqlite* >/dev/null 2>&1 && bad "a failed precompute left $(ls s2.sqlite*)" || ok

# ------------------------------------------------------------ full disk: train
"$DPOC" train -c p.yaml --set train.max_steps=2 --set train.save_every=1 2>/dev/null
expect_eq "train 2 steps" $? 0
cp -r run/checkpoint checkpoint.before
# The store takes the metrics first: its WAL hits the limit.
fault "train, disk full, metrics" 'store.sqlite: recording metrics: disk I/O error (File too large)' \
    limited 64 "$DPOC" train -c p.yaml --set train.max_steps=4 --set train.save_every=1
diff -r run/checkpoint checkpoint.before >/dev/null && ok || bad "the checkpoint changed (metrics)"
# 2000 blocks (1,024,000 bytes): the metrics fit, the checkpoint's weights
# (1,095,128 bytes) do not.
fault "train, disk full, checkpoint" \
    'run/checkpoint.tmp/model.safetensors.tmp: write failed: File too large' \
    limited 2000 "$DPOC" train -c p.yaml --set train.max_steps=4 --set train.save_every=1
diff -r run/checkpoint checkpoint.before >/dev/null && ok || bad "the checkpoint changed (weights)"
[ ! -e run/checkpoint.tmp ] && ok || bad "a partial run/checkpoint.tmp was left behind"
grep -q '"step": 2,' run/checkpoint/state.json && ok || bad "the checkpoint of step 2 is kept"
"$DPOC" train -c p.yaml --set train.max_steps=4 --set train.save_every=1 2>train.log
expect_eq "train rerun without the limit" $? 0
grep -q "resuming from run/checkpoint at step 2" train.log && ok || bad "the rerun resumes at step 2"
"$DPOC" train -c p.yaml --set train.max_steps=4 --set train.output=straight 2>/dev/null
expect_eq "straight train" $? 0
cmp -s run/model/model.safetensors straight/model/model.safetensors && ok \
    || bad "resumed training == a run that never failed (bit-identical weights)"

# ------------------------------------------------------------ NaN / Inf weights
# Element 123 of h.0.attn.c_attn.weight made NaN (F32, memory-mapped), element
# 5 of wte -Inf (BF16, converted), element 7 of ln_f.bias +Inf.
cp -r model nan && cp -r model inf && mkdir bf && cp model/*.json bf/
"$DPOC" model init bf --seed 1 --bf16 >/dev/null 2>&1; expect_eq "model init --bf16" $? 0
cat >poke.py <<'EOF'
import json, struct, sys
path, name, index, bits = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4], 16)
d = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", d[:8])[0]
t = json.loads(d[8:8 + n])[name]
size = {"F32": 4, "BF16": 2}[t["dtype"]]
at = 8 + n + t["data_offsets"][0] + index * size
d[at:at + size] = bits.to_bytes(size, "little")
open(path, "wb").write(bytes(d))
EOF
"$PYTHON" poke.py nan/model.safetensors transformer.h.0.attn.c_attn.weight 123 7fc00000
"$PYTHON" poke.py inf/model.safetensors transformer.ln_f.bias 7 7f800000
"$PYTHON" poke.py bf/model.safetensors transformer.wte.weight 5 ff80
fault "NaN weight" 'nan/model.safetensors: tensor transformer.h.0.attn.c_attn.weight: element 123 is NaN' \
    "$DPOC" model info nan --check
fault "Inf weight" 'inf/model.safetensors: tensor transformer.ln_f.bias: element 7 is Inf' \
    "$DPOC" model info inf --check
fault "-Inf weight (BF16)" 'bf/model.safetensors: tensor transformer.wte.weight: element 5 is -Inf' \
    "$DPOC" model info bf --check
mkdir zero && ln -s /dev/zero zero/config.json
fault "endless config.json" 'zero/config.json: larger than 16777216 bytes, expected a config.json' \
    "$DPOC" model info zero
fault "precompute with a NaN reference" \
    'nan/model.safetensors: tensor transformer.h.0.attn.c_attn.weight: element 123 is NaN' \
    "$DPOC" precompute -c p.yaml --set reference.model=nan --set store=nan.sqlite
[ ! -e nan.sqlite ] && ok || bad "a precompute refused for its reference left a store"

# ------------------------------------------------------------ compressed data
head -n 4 "$ROOT/examples/data/train.jsonl" >small.jsonl
cp small.jsonl plain.jsonl.gz
cp small.jsonl plain.jsonl.zst
gzip -c small.jsonl >real.jsonl.gz
fault "not gzip" 'plain.jsonl.gz: not a gzip file (first bytes 7b 22 70 72, expected 1f 8b)' \
    "$DPOC" precompute -c p.yaml --set data.train=plain.jsonl.gz --set data.eval= --set store=gz.sqlite
fault "not zstd" 'plain.jsonl.zst: not a zstd file (first bytes 7b 22 70 72, expected 28 b5 2f fd)' \
    "$DPOC" precompute -c p.yaml --set data.train=plain.jsonl.zst --set data.eval= --set store=gz.sqlite
printf '\037' >one_byte.jsonl.gz
fault "one byte gzip" 'one_byte.jsonl.gz: not a gzip file (first bytes 1f, expected 1f 8b)' \
    "$DPOC" precompute -c p.yaml --set data.train=one_byte.jsonl.gz --set data.eval= --set store=gz.sqlite
[ ! -e gz.sqlite ] && ok || bad "a refused data file left a store"
"$DPOC" precompute -c p.yaml --set data.train=real.jsonl.gz --set data.eval= --set store=gz.sqlite \
    2>gz.log
expect_eq "a real .gz is read" $? 0
grep -q "4 computed" gz.log && ok || bad "the .gz rows: $(tail -n 1 gz.log)"

# ------------------------------------------------------------ bad data and fresh stores
printf '{"prompt": "a", "chosen": "b", "rejected": \n' >bad.jsonl
fault "bad first row, new store" 'bad.jsonl:1: invalid JSON: unexpected token near end of file at column 43' \
    "$DPOC" precompute -c p.yaml --set data.train=bad.jsonl --set data.eval= --set store=fresh.sqlite
ls fresh.sqlite* >/dev/null 2>&1 && bad "bad data left $(ls fresh.sqlite*)" || ok
cp store.sqlite kept.sqlite
cp kept.sqlite kept.before
fault "bad first row, existing store" 'bad.jsonl:1: invalid JSON: unexpected token near end of file at column 43' \
    "$DPOC" precompute -c p.yaml --set data.train=bad.jsonl --set data.eval= --set store=kept.sqlite
cmp -s kept.sqlite kept.before && ok || bad "bad data changed an existing store"
# A bad row after good ones: the good ones' values are kept for a rerun.
{ head -n 2 small.jsonl; cat bad.jsonl; } >late_bad.jsonl
fault "bad third row, new store" 'late_bad.jsonl:3: invalid JSON: unexpected token near end of file at column 43' \
    "$DPOC" precompute -c p.yaml --set data.train=late_bad.jsonl --set data.eval= --set store=late.sqlite
expect_eq "rows before the bad one are kept" "$("$DPOC" store dump late.sqlite 2>/dev/null | wc -l)" 2

# ------------------------------------------------------------ stores only a full read finds bad
# verify must refuse what dump (and train) would, with the same message.
cat >edit_store.py <<'EOF'
import shutil, sqlite3, sys
shutil.copy(sys.argv[1], sys.argv[2])
c = sqlite3.connect(sys.argv[2])
c.execute("PRAGMA ignore_check_constraints = 1")
for q in sys.argv[3:]:
    c.execute(q)
c.commit()
c.close()
EOF
first=$("$PYTHON" -c "
import sqlite3; c = sqlite3.connect('straight.sqlite')
print(c.execute('SELECT id FROM examples ORDER BY ord, id LIMIT 1').fetchone()[0])")
fp=$("$PYTHON" -c "
import sqlite3; print(sqlite3.connect('straight.sqlite').execute('SELECT fingerprint FROM refs').fetchone()[0])")
"$PYTHON" edit_store.py straight.sqlite inf_sum.sqlite \
    "UPDATE ref_rows SET ref_rejected_logp = 1e999 WHERE example_id = '$first'"
"$PYTHON" edit_store.py straight.sqlite newline_id.sqlite \
    "INSERT INTO examples VALUES ('a' || char(10) || 'b', 'eval', 'x.jsonl', 3, -1)"
"$PYTHON" edit_store.py straight.sqlite bad_split.sqlite "UPDATE examples SET split = 'test' WHERE id = '$first'"
"$PYTHON" edit_store.py straight.sqlite bad_line.sqlite "UPDATE examples SET line = 0 WHERE id = '$first'"
for cmd in verify dump; do
    fault "store $cmd: Inf summed log-prob" \
        "inf_sum.sqlite: example $first, reference $fp: ref_rejected_logp is inf, expected a finite log-probability" \
        "$DPOC" store $cmd inf_sum.sqlite
    fault "store $cmd: id with a newline (quoted)" \
        'newline_id.sqlite: example id "a\nb": expected only [0-9A-Za-z_.:-], found byte 0x0a' \
        "$DPOC" store $cmd newline_id.sqlite
    fault "store $cmd: bad split" \
        "bad_split.sqlite: example $first: split: expected \"train\" or \"eval\", got \"test\"" \
        "$DPOC" store $cmd bad_split.sqlite
    fault "store $cmd: line 0" "bad_line.sqlite: example $first: line: expected an integer >= 1" \
        "$DPOC" store $cmd bad_line.sqlite
done

# ------------------------------------------------------------ untrusted text in errors
# A role with a newline, shown quoted and escaped.
printf '{"prompt": [{"role": "us\\ner", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}\n' >role.jsonl
fault "role with a newline" \
    'role.jsonl:1: field "prompt": mistral template: message 0: roles must alternate user/assistant, expected "user", got "us\ner"' \
    "$DPOC" precompute -c p.yaml --set data.train=role.jsonl --set data.eval= --set data.chat_template=mistral \
    --set store=role.sqlite
fault "store path with a newline" '"no\nsuch.sqlite": cannot open the store: No such file or directory' \
    "$DPOC" store verify "$(printf 'no\nsuch.sqlite')"
fault "model directory with a newline" '"no\nmodel/config.json": cannot open: No such file or directory' \
    "$DPOC" model info "$(printf 'no\nmodel')"

# ------------------------------------------------------------ endless lines
# A line that never ends is refused at 64 MiB, not read into memory whole.
"$PYTHON" -c 'import sys; sys.stdout.write("x" * (65 << 20))' >"$TMP/endless"
fault "tokenize, endless line" 'stdin:1: line longer than 67108864 bytes' \
    sh -c '"$1" tokenize --tokenizer "$2" <"$3"' _ "$DPOC" "$ROOT/examples/tiny/model/tokenizer.json" "$TMP/endless"
fault "sample, endless line" 'stdin:1: line longer than 67108864 bytes' \
    sh -c '"$1" sample --model "$2" --max-new-tokens 1 <"$3"' _ "$DPOC" "$MODEL" "$TMP/endless"
mkdir -p endless_run && { echo '{"step": 1, "loss": 0.5}'; cat "$TMP/endless"; } >endless_run/metrics.jsonl
fault "report, endless metrics line" 'endless_run/metrics.jsonl:2: line longer than 67108864 bytes' \
    "$DPOC" report -c p.yaml --set train.output=endless_run --out endless_report
rm -f "$TMP/endless"

summary
