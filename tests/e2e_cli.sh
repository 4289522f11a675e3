#!/bin/sh
# e2e_cli — the binary's command line: help, exit codes, dpoc config.
. tests/lib.sh

"$DPOC" --help >"$TMP/help" 2>&1; expect_eq "dpoc --help exits 0" $? 0
for cmd in precompute train sweep report tokenize store config model; do
    grep -q "^  $cmd " "$TMP/help" && ok || bad "dpoc --help lists $cmd"
done
"$DPOC" frobnicate >/dev/null 2>&1; expect_eq "unknown command exits 2" $? 2
"$DPOC" config --help >"$TMP/h" 2>&1; expect_eq "config --help exits 0" $? 0
grep -q -- "--set KEY=VALUE" "$TMP/h" && ok || bad "config --help lists --set"
"$DPOC" train --bogus >/dev/null 2>&1; expect_eq "unknown option exits 2" $? 2

# The resolved configuration reloads to itself.
"$DPOC" config -c pipeline.yaml --set train.beta=0.25 >"$TMP/resolved.yaml"
expect_eq "config exits 0" $? 0
grep -q "^  beta: 0.25$" "$TMP/resolved.yaml" && ok || bad "--set applied in config output"
"$DPOC" config -c "$TMP/resolved.yaml" >"$TMP/again.yaml"
expect_eq "resolved config reloads identically" "$(cat "$TMP/again.yaml")" "$(cat "$TMP/resolved.yaml")"

"$DPOC" config --explain >"$TMP/explain"; expect_eq "explain exits 0" $? 0
# every leaf key of the schema appears in --explain
# (a leaf is a key whose next line is its type; sections nest, e.g. train.lora.r)
keys=$(awk 'match($0, /^ *[a-z_]+:$/) { d = index($0, substr($1, 1, 1)) - 1; path[d / 2] = substr($1, 1, length($1) - 1); depth = d / 2; next }
            /^ *type:/ { k = path[0]; for (i = 1; i <= depth; i++) k = k "." path[i]; print k }' schemas/pipeline.schema.yaml)
for k in $keys; do grep -qx "$k" "$TMP/explain" && ok || bad "--explain lists $k"; done

printf 'train:\n  beta: fast\n' >"$TMP/p.yaml"
expect_fail "wrong type" "$TMP/p.yaml:2:9: train.beta: expected a number > 0, got \"fast\"" \
    "$DPOC" config -c "$TMP/p.yaml"
expect_fail "missing file" "$TMP/none.yaml: cannot open: No such file or directory" \
    "$DPOC" config -c "$TMP/none.yaml"
expect_fail "bad --set" "--set #1: train.beta: expected a number > 0, got -3" \
    "$DPOC" config -c pipeline.yaml --set train.beta=-3
summary
