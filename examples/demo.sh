#!/bin/sh
# demo.sh DPOC — the embedded default end to end: precompute the reference's
# log-probabilities, train against them, show the store and the result.
set -eu
DPOC=${1:-build/dpoc}
cd "$(dirname "$0")/.."
if [ ! -f examples/tiny/model/model.safetensors ]; then
    echo "demo: making the tiny reference model (random initialisation)"
    "$DPOC" model init examples/tiny/model --seed 1
fi
"$DPOC" precompute -c pipeline.yaml
"$DPOC" store info cache/store.sqlite
"$DPOC" train -c pipeline.yaml
