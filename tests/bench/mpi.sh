#!/bin/sh
# mpi.sh OUT — the data-parallel rows of `make bench` (issue 16): GPT-2 124M
# (random weights, tests/bench/configs/gpt2-124m.json) DPO training with
# `dpoc train`, one process × 2 threads against `mpirun -np 2` × 1 thread,
# the same global batch (4 pairs of ~600 tokens, grad_accum 2: each rank
# runs exactly one of one process's two micro-batches). Steady state: steps
# 2..N (step 1 warms up), from metrics.jsonl. Prints the table and writes
# OUT/mpi.json. Run from the repository root; DPOC is the binary.
set -u
OUT=${1:?usage: mpi.sh OUT}
DPOC=$(realpath "${DPOC:-build/dpoc}")
PYTHON=${PYTHON:-/usr/bin/python3}
STEPS=${MPI_BENCH_STEPS:-4}
command -v mpirun >/dev/null 2>&1 || { echo "mpi.sh: mpirun not found (make deps)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_plm=isolated OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl_tcp_if_include=lo
D=$OUT/mpi
rm -rf "$D"
mkdir -p "$D/model" "$D/data"
# GPT-2 124M's shapes with the byte-level tokenizer of examples/tiny (its
# <|endoftext|> is id 256)
sed 's/"\(bos\|eos\)_token_id": 50256/"\1_token_id": 256/' tests/bench/configs/gpt2-124m.json \
    >"$D/model/config.json"
cp examples/tiny/model/tokenizer.json examples/tiny/model/tokenizer_config.json "$D/model/"
"$DPOC" model init "$D/model" --seed 1 >/dev/null || exit 1
# 16 pairs of ~300-byte prompts and ~150-byte responses from examples/data
"$PYTHON" - "$D/data/train.jsonl" <<'PY' || exit 1
import json, sys
rows = [json.loads(l) for l in open("examples/data/train.jsonl")]
with open(sys.argv[1], "w") as f:
    for i in range(16):
        r = [rows[(4 * i + k) % len(rows)] for k in range(4)]
        f.write(json.dumps({"prompt": " ".join(x["prompt"] for x in r)[:300],
                            "chosen": " ".join(x["chosen"] for x in r)[:150],
                            "rejected": " ".join(x["rejected"] for x in r)[:150]}) + "\n")
PY
cat >"$D/p.yaml" <<YAML
store: store.sqlite
reference:
  model: model
data:
  train: data/train.jsonl
  max_length: 512
  max_prompt_length: 320
train:
  batch_size: 4
  grad_accum: 2
  learning_rate: 1.0e-5
  max_steps: $STEPS
  log_every: 1
  save_every: 0
  shuffle: false
  resume: never
YAML
"$DPOC" precompute -c "$D/p.yaml" 2>"$D/precompute.log" || { tail -n 3 "$D/precompute.log" >&2; exit 1; }
"$DPOC" train -c "$D/p.yaml" --set train.output="$D/one" --set train.threads=2 2>"$D/one.log" ||
    { tail -n 3 "$D/one.log" >&2; exit 1; }
timeout 1800 mpirun -np 2 "$DPOC" train -c "$D/p.yaml" --set train.output="$D/two" >"$D/two.log" 2>&1 ||
    { tail -n 3 "$D/two.log" >&2; exit 1; }
"$PYTHON" - "$D" <<'PY'
import json, re, sys
d = sys.argv[1]
def steady(run):
    m = [json.loads(l) for l in open(f"{d}/{run}/metrics.jsonl") if '"loss"' in l]
    secs = [x["num_tokens"] / x["tokens_per_sec"] for x in m]
    return (m[-1]["num_tokens"] - m[0]["num_tokens"]) / (secs[-1] - secs[0]), len(m) - 1
one, n = steady("one")
two, _ = steady("two")
log = open(f"{d}/two.log").read()
c = re.search(r"([0-9.]+) s of the steps' ([0-9.]+) s in communication \(([0-9.]+)%\)", log)
share = float(c.group(3)) if c else None
res = {"model": "gpt2-124m", "steps_measured": n, "one_process_2_threads_tokens_per_sec": one,
       "mpirun_np2_1_thread_tokens_per_sec": two, "ratio": two / one,
       "communication_share_percent": share}
json.dump(res, open(f"{d}/../mpi.json", "w"), indent=1)
print(f"data parallel, GPT-2 124M DPO train, 4 pairs/step (grad_accum 2), steady state over {n} steps:")
print(f"  1 process x 2 threads     {one:8.1f} tokens/s")
print(f"  mpirun -np 2 x 1 thread   {two:8.1f} tokens/s   ({two / one:.2f}x; target >= 0.9x)")
print(f"  communication             {share}% of the 2-rank run's step time")
PY
