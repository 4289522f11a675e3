#!/bin/sh
# e2e_store.sh — `dpoc store info|verify|dump|merge` against stores written
# by an independent implementation of the format (Python: sqlite3 with
# schemas/store.sql, numpy for the byte shuffle, the zstd command-line tool
# for the frames), so the documented layout is what dpoc reads. The dump is
# parsed back with Python's json and compared value for value.
. tests/lib.sh
PYTHON=${PYTHON:-/usr/bin/python3}

if ! "$PYTHON" -c 'import numpy, sqlite3' 2>/dev/null || ! command -v zstd >/dev/null 2>&1; then
    bad "oracle missing: $PYTHON with numpy and sqlite3, and the zstd tool, are required"
    summary
    exit 1
fi

cat >"$TMP/oracle.py" <<'EOF'
"""Writes dpoc stores from the documented format and checks dumps against
the values written. Usage:
  oracle.py write DB FP DESCRIPTION SEED,SEED,... [DB FP ...]   (one example per seed)
  oracle.py check DUMP PER_TOKEN FP:SEED,SEED ...   (expected lines in order)
  oracle.py corrupt DB ID COLUMN                    (flip the checksum's last bit)
  oracle.py sql DB STATEMENT"""
import json, os, sqlite3, subprocess, sys, tempfile
import numpy as np

SCHEMA = open("schemas/store.sql").read()

def example(seed):
    rng = np.random.default_rng(seed)
    n_prompt = int(rng.integers(0, 6)) if seed % 4 else 0     # some empty prompts
    n_chosen, n_rejected = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    return {
        "id": "ex%03d" % seed,
        "split": "eval" if seed % 3 == 0 else "train",
        "source": 'data/"odd" name\\%d.jsonl' % (seed % 2),
        "line": seed + 1, "ord": (seed * 7) % 11,
        "prompt_ids": rng.integers(0, 50257, n_prompt).astype("<i4"),
        "chosen_ids": rng.integers(0, 50257, n_chosen).astype("<i4"),
        "rejected_ids": rng.integers(0, 151936, n_rejected).astype("<i4"),
        "chosen_token_logps": np.log(rng.random(n_chosen)).astype("<f4"),
        "rejected_token_logps": (np.log(rng.random(n_rejected)) * 3).astype("<f4"),
    }

CACHE = {}

def blob(arr):
    key = arr.tobytes()
    if key not in CACHE:
        CACHE[key] = compress(arr)
    return CACHE[key]

def compress(arr):
    planes = arr.view(np.uint8).reshape(-1, 4).T.copy().tobytes()   # Blosc-style shuffle
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(planes)
    try:   # from a file, zstd records the content size; --check adds the checksum
        return subprocess.run(["zstd", "-q", "-c", "--check", f.name],
                              check=True, capture_output=True).stdout
    finally:
        os.unlink(f.name)

def write(db, fp, desc, seeds):
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    con.executescript(SCHEMA)
    con.execute("PRAGMA application_id = %d" % 0x64706F63)
    con.execute("PRAGMA user_version = 1")
    con.execute("INSERT OR IGNORE INTO refs VALUES (?, ?)", (fp, desc))
    for seed in seeds:
        e = example(seed)
        con.execute("INSERT OR IGNORE INTO examples VALUES (?, ?, ?, ?, ?)",
                    (e["id"], e["split"], e["source"], e["line"], e["ord"]))
        con.execute("INSERT INTO ref_rows VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
            e["id"], fp, len(e["prompt_ids"]), len(e["chosen_ids"]), len(e["rejected_ids"]),
            float(e["chosen_token_logps"].astype(np.float64).sum()),
            float(e["rejected_token_logps"].astype(np.float64).sum()),
            blob(e["prompt_ids"]), blob(e["chosen_ids"]), blob(e["rejected_ids"]),
            blob(e["chosen_token_logps"]), blob(e["rejected_token_logps"])))
    con.commit()
    con.close()

KEYS = ["id", "split", "source", "reference", "prompt_ids", "chosen_ids", "rejected_ids",
        "ref_chosen_logp", "ref_rejected_logp"]

def check(dump, per_token, specs):
    want = []
    for spec in specs:
        fp, seeds = spec.split(":")
        want += [(fp, int(s)) for s in seeds.split(",")]
    lines = open(dump).read().splitlines()
    problems = []
    if len(lines) != len(want):
        problems.append("%d lines, expected %d" % (len(lines), len(want)))
    for k, (line, (fp, seed)) in enumerate(zip(lines, want)):
        got, e = json.loads(line), example(seed)
        keys = KEYS + (["chosen_token_logps", "rejected_token_logps"] if per_token == "1" else [])
        if list(got) != keys:
            problems.append("line %d keys %s" % (k + 1, list(got)))
            continue
        for key in ["id", "split", "source"]:
            if got[key] != e[key]:
                problems.append("line %d %s %r != %r" % (k + 1, key, got[key], e[key]))
        if got["reference"] != fp:
            problems.append("line %d reference %r" % (k + 1, got["reference"]))
        for key in ["prompt_ids", "chosen_ids", "rejected_ids"]:
            if got[key] != e[key].tolist():
                problems.append("line %d %s" % (k + 1, key))
        for key in ["chosen", "rejected"]:
            v = e[key + "_token_logps"]
            if got["ref_%s_logp" % key] != float(v.astype(np.float64).sum()):
                problems.append("line %d ref_%s_logp %r" % (k + 1, key, got["ref_%s_logp" % key]))
            if per_token == "1" and not np.array_equal(np.array(got[key + "_token_logps"],
                                                                dtype=np.float32), v):
                problems.append("line %d %s_token_logps" % (k + 1, key))
    print("; ".join(problems) if problems else "ok")

def corrupt(db, ident, column):
    con = sqlite3.connect(db)
    (b,) = con.execute("SELECT %s FROM ref_rows WHERE example_id = ?" % column, (ident,)).fetchone()
    b = bytearray(b)
    b[-1] ^= 1
    con.execute("UPDATE ref_rows SET %s = ? WHERE example_id = ?" % column, (bytes(b), ident))
    con.commit()

cmd = sys.argv[1]
if cmd == "write":
    for k in range(2, len(sys.argv), 4):
        write(sys.argv[k], sys.argv[k + 1], sys.argv[k + 2], [int(s) for s in sys.argv[k + 3].split(",")])
elif cmd == "check":
    check(sys.argv[2], sys.argv[3], sys.argv[4:])
elif cmd == "corrupt":
    corrupt(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "sql":
    con = sqlite3.connect(sys.argv[2]); con.execute(sys.argv[3]); con.commit()
EOF
oracle() { "$PYTHON" "$TMP/oracle.py" "$@"; }
DESC='{"max_length":64,"model":"tiny"}'
FP=fp0123456789abcdef

# Store order is (ord, id) with ord = seed*7 mod 11: seeds 1..6 give ord
# 7,3,10,6,2,9 -> order 5,2,4,1,6,3; train = seeds not divisible by 3.
oracle write "$TMP/single.db" $FP "$DESC" 1,2,3,4,5,6 "$TMP/a.db" $FP "$DESC" 1,3,5 \
    "$TMP/b.db" $FP "$DESC" 2,4,6,3 "$TMP/c.db" fpB '{"model":"other"}' 2,5 \
    "$TMP/d.db" $FP '{"model":"big"}' 9

$DPOC store dump "$TMP/single.db" >"$TMP/single.jsonl"
expect_eq "dump exit" $? 0
expect_eq "dump values" "$(oracle check "$TMP/single.jsonl" 0 $FP:5,2,4,1,6,3)" ok
$DPOC store dump "$TMP/single.db" --per-token >"$TMP/pt.jsonl"
expect_eq "dump --per-token values" "$(oracle check "$TMP/pt.jsonl" 1 $FP:5,2,4,1,6,3)" ok
$DPOC store dump --split eval "$TMP/single.db" --per-token >"$TMP/eval.jsonl"
expect_eq "dump --split eval" "$(oracle check "$TMP/eval.jsonl" 1 $FP:6,3)" ok
$DPOC store dump "$TMP/single.db" --split train --reference $FP >"$TMP/train.jsonl"
expect_eq "dump --split train --reference" "$(oracle check "$TMP/train.jsonl" 0 $FP:5,2,4,1)" ok

# verify and info
expect_eq "verify" "$($DPOC store verify "$TMP/single.db")" "$TMP/single.db: ok, 6 reference rows checked"
$DPOC store info "$TMP/single.db" >"$TMP/info.txt"
expect_eq "info exit" $? 0
for field in "store" "schema version" "examples" "references" "reference $FP" "reference rows" \
    "tokens" "file bytes" "blob bytes" "raw bytes" "bytes per token" "compression ratio" "runs"; do
    grep -q "^$field: " "$TMP/info.txt" && ok || bad "info lacks '$field:'"
done
expect_eq "info examples" "$(sed -n 's/^examples: //p' "$TMP/info.txt")" "6 (train 4, eval 2)"
expect_eq "info reference" "$(sed -n "s/^reference $FP: //p" "$TMP/info.txt")" "$DESC"
want_tokens=$(sqlite3 "$TMP/single.db" "SELECT sum(n_prompt + n_chosen + n_rejected) FROM ref_rows")
expect_eq "info tokens" "$(sed -n 's/^tokens: //p' "$TMP/info.txt")" "$want_tokens"
want_raw=$(sqlite3 "$TMP/single.db" "SELECT sum(4 * (n_prompt + 2 * n_chosen + 2 * n_rejected)) FROM ref_rows")
expect_eq "info raw bytes" "$(sed -n 's/^raw bytes: //p' "$TMP/info.txt")" "$want_raw"

# merge of the shards equals the single store (b holds 3 again: kept once)
$DPOC store merge "$TMP/merged.db" "$TMP/a.db" "$TMP/b.db" >"$TMP/merge.txt"
expect_eq "merge exit" $? 0
expect_eq "merge counts" "$(cut -d: -f2 "$TMP/merge.txt" | tr '\n' '|')" \
    " 3 reference rows copied into $TMP/merged.db| 3 reference rows copied into $TMP/merged.db|"
$DPOC store dump --per-token "$TMP/merged.db" >"$TMP/merged.jsonl"
$DPOC store dump --per-token "$TMP/single.db" >"$TMP/single_pt.jsonl"
expect_eq "merge equals single" "$(cmp "$TMP/merged.jsonl" "$TMP/single_pt.jsonl" && echo same)" same
$DPOC store merge "$TMP/merged.db" "$TMP/b.db" >/dev/null
$DPOC store dump --per-token "$TMP/merged.db" >"$TMP/merged2.jsonl"
expect_eq "merge idempotent" "$(cmp "$TMP/merged2.jsonl" "$TMP/single_pt.jsonl" && echo same)" same
expect_eq "merged verify" "$($DPOC store verify "$TMP/merged.db")" "$TMP/merged.db: ok, 6 reference rows checked"

# a merge whose IN fails leaves no OUT behind; names SQLite would read as
# URIs or special names are plain files
expect_fail "merge missing IN" "$TMP/none.db: cannot open the store: No such file or directory" \
    $DPOC store merge "$TMP/never.db" "$TMP/a.db" "$TMP/none.db"
expect_eq "no OUT after failed merge" "$(ls "$TMP" | grep -c never)" 0
DPOC_ABS=$(cd "$(dirname "$DPOC")" && pwd)/$(basename "$DPOC")
(cd "$TMP" && cp a.db file:x.db && "$DPOC_ABS" store merge :memory: file:x.db >/dev/null)
expect_eq "odd names are files" "$($DPOC store verify "$TMP/:memory:")" "$TMP/:memory:: ok, 3 reference rows checked"

# a second reference: one line per example and reference
$DPOC store merge "$TMP/merged.db" "$TMP/c.db" >/dev/null
$DPOC store dump "$TMP/merged.db" >"$TMP/two.jsonl"
# (store order is example-major, references sorted: fp0... < fpB)
expect_eq "two references order" "$(oracle check "$TMP/two.jsonl" 0 $FP:5 fpB:5 $FP:2 fpB:2 $FP:4,1,6,3)" ok
$DPOC store dump "$TMP/merged.db" --reference fpB >"$TMP/fpb.jsonl"
expect_eq "dump --reference fpB" "$(oracle check "$TMP/fpb.jsonl" 0 fpB:5,2)" ok
expect_fail "dump unknown reference" "--reference nope: the store has no such reference (dpoc store info lists them)" \
    $DPOC store dump "$TMP/merged.db" --reference nope

# merge refusal: same fingerprint, other description; OUT unchanged
expect_fail "merge refusal" "$TMP/d.db: reference $FP has a different description than in $TMP/merged.db; refusing to merge" \
    $DPOC store merge "$TMP/merged.db" "$TMP/d.db"
$DPOC store dump --per-token "$TMP/merged.db" --reference $FP >"$TMP/merged3.jsonl"
expect_eq "refused merge left OUT intact" "$(cmp "$TMP/merged3.jsonl" "$TMP/single_pt.jsonl" && echo same)" same

# corruption and hostile stores
cp "$TMP/single.db" "$TMP/bad.db"
oracle corrupt "$TMP/bad.db" ex004 rejected_token_logps
expect_fail "verify corrupt blob" "$TMP/bad.db: example ex004, reference $FP: rejected_token_logps: corrupt zstd frame: Restored data doesn't match checksum" \
    $DPOC store verify "$TMP/bad.db"
expect_fail "dump corrupt blob" "$TMP/bad.db: example ex004, reference $FP: rejected_token_logps: corrupt zstd frame: Restored data doesn't match checksum" \
    $DPOC store dump "$TMP/bad.db"
cp "$TMP/single.db" "$TMP/nosize.db"
printf 'abcd' | zstd -q -c --check >"$TMP/frame.zst"
"$PYTHON" -c "
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute(\"UPDATE ref_rows SET n_chosen = 1, chosen_ids = ? WHERE example_id = 'ex001'\", (open(sys.argv[2], 'rb').read(),))
con.commit()" "$TMP/nosize.db" "$TMP/frame.zst"
expect_fail "frame without content size" "$TMP/nosize.db: example ex001, reference $FP: chosen_ids: zstd frame does not declare its content size, expected 4 bytes" \
    $DPOC store verify "$TMP/nosize.db"
cp "$TMP/single.db" "$TMP/names.db"
"$PYTHON" -c "
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute(\"UPDATE examples SET source = CAST(? AS TEXT) WHERE id = 'ex002'\", (b'caf\\xc3\\xa9\\t\\xff\\x01.jsonl',))
con.commit()" "$TMP/names.db"
$DPOC store dump "$TMP/names.db" --split train >"$TMP/names.jsonl"
expect_eq "source escaped as valid JSON" "$("$PYTHON" -c "
import json, sys
print([json.loads(l)['source'] for l in open(sys.argv[1])][1] == 'caf\\u00e9\\t\\ufffd\\x01.jsonl')" "$TMP/names.jsonl")" True
cp "$TMP/single.db" "$TMP/newer.db"
oracle sql "$TMP/newer.db" "PRAGMA user_version = 7"
expect_fail "newer schema" "$TMP/newer.db: schema version 7 is newer than this dpoc understands (1)" \
    $DPOC store info "$TMP/newer.db"
expect_fail "newer schema merge" "$TMP/newer.db: schema version 7 is newer than this dpoc understands (1)" \
    $DPOC store merge "$TMP/out.db" "$TMP/newer.db"
echo "not a database at all, but long enough to fill a header of one hundred bytes........." >"$TMP/text.db"
expect_fail "not sqlite" "$TMP/text.db: not a dpoc store: the file is not an SQLite database" \
    $DPOC store dump "$TMP/text.db"
expect_fail "missing store" "$TMP/none.db: cannot open the store: No such file or directory" \
    $DPOC store verify "$TMP/none.db"

# usage: --help everywhere, bad options exit 2
for sub in "" info verify dump merge; do
    $DPOC store $sub --help >"$TMP/help.txt"
    expect_eq "store $sub --help" "$?:$(head -c 6 "$TMP/help.txt")" "0:usage:"
done
$DPOC store dump --help | grep -q -- "--per-token" && ok || bad "dump --help lacks --per-token"
$DPOC store dump "$TMP/single.db" --split dev >/dev/null 2>&1
expect_eq "bad --split" $? 2
$DPOC store info >/dev/null 2>&1
expect_eq "info without STORE" $? 2
$DPOC store merge "$TMP/x.db" >/dev/null 2>&1
expect_eq "merge without IN" $? 2
$DPOC store frob >/dev/null 2>&1
expect_eq "unknown subcommand" $? 2

summary
