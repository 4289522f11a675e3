#!/bin/sh
# e2e_store_hostile.sh — a store from elsewhere is untrusted input. A real
# store (the tiny pipeline's precompute) is altered by hand with the sqlite3
# tool: views over endless recursive CTEs in place of each table, an extra
# trigger, an extra view, a table with an extra column, a wrong
# application_id. Every command that opens a store (info, verify, dump,
# merge, precompute into it, train) must refuse each one with one line
# naming the file and the object, exit status 1, within seconds (`timeout`
# turns a hang into a failure). A refused merge leaves its OUT byte for byte
# as it was, including when the IN opens fine but fails SQLite's integrity check.
. tests/lib.sh
command -v sqlite3 >/dev/null 2>&1 || { bad "sqlite3 tool missing"; summary; exit 1; }
tiny_pipeline
cd "$TMP" || exit 1
case "$DPOC" in /*) ;; *) DPOC="$OLDPWD/$DPOC" ;; esac
"$DPOC" precompute -c p.yaml >/dev/null 2>&1; expect_eq "precompute" $? 0
"$DPOC" store verify store.sqlite >/dev/null; expect_eq "the real store verifies" $? 0

# Endless views with the columns of the table they replace.
ENDLESS='WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c)'
# altered NAME SQL: a copy of the real store with SQL applied.
altered() {
    cp store.sqlite "$1.sqlite"
    sqlite3 "$1.sqlite" "$2" || bad "altering $1 failed"
}
altered view_examples "DROP TABLE examples; CREATE VIEW examples AS $ENDLESS
    SELECT printf('ex%d', n) AS id, 'train' AS split, 'x' AS source, n AS line, n AS ord FROM c;"
altered view_ref_rows "DROP TABLE ref_rows; CREATE VIEW ref_rows AS $ENDLESS
    SELECT printf('ex%d', n) AS example_id, 'fp' AS fingerprint, 0 AS n_prompt, 1 AS n_chosen,
    1 AS n_rejected, 0.0 AS ref_chosen_logp, 0.0 AS ref_rejected_logp, x'' AS prompt_ids,
    x'' AS chosen_ids, x'' AS rejected_ids, x'' AS chosen_token_logps,
    x'' AS rejected_token_logps FROM c;"
altered view_refs "DROP TABLE refs; CREATE VIEW refs AS $ENDLESS
    SELECT printf('fp%d', n) AS fingerprint, '{}' AS description FROM c;"
altered trigger "CREATE TRIGGER spy AFTER INSERT ON ref_rows BEGIN
    INSERT INTO meta (key, value) SELECT 'n' || n, '' FROM ($ENDLESS SELECT n FROM c); END;"
altered extra_view "CREATE VIEW endless AS $ENDLESS SELECT n FROM c;"
altered extra_column "ALTER TABLE examples ADD COLUMN note TEXT;"
altered app_id "PRAGMA application_id = 1;"

why() {
    case $1 in
        view_examples) echo "examples is a view, not the table dpoc writes; refusing a store that was altered" ;;
        view_ref_rows) echo "ref_rows is a view, not the table dpoc writes; refusing a store that was altered" ;;
        view_refs) echo "refs is a view, not the table dpoc writes; refusing a store that was altered" ;;
        trigger) echo "trigger spy is not part of a dpoc store; refusing a store that was altered" ;;
        extra_view) echo "view endless is not part of a dpoc store; refusing a store that was altered" ;;
        extra_column) echo "table examples: column note is not in the one dpoc writes; refusing a store that was altered" ;;
        app_id) echo "not a dpoc store: application_id is 0x1, expected 0x64706f63" ;;
    esac
}

# refused NAME MESSAGE CMD...: exit 1 within 20 s, MESSAGE as the only
# stderr line; the slowest refusal is reported.
slowest=0 slowest_name=""
refused() {
    name=$1 msg=$2; shift 2
    t0=$(date +%s%N)
    expect_fail "$name" "$msg" timeout 20 "$@"
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ "$rc" -eq 1 ] || bad "$name: exit $rc, expected 1 (124: timed out)"
    n=$(wc -l <"$TMP/err")
    [ "$n" -eq 1 ] || bad "$name: $n lines on stderr, expected 1"
    if [ "$ms" -gt "$slowest" ]; then slowest=$ms slowest_name=$name; fi
}

cp store.sqlite out.sqlite
sum_before=$(cksum <out.sqlite)
for s in view_examples view_ref_rows view_refs trigger extra_view extra_column app_id; do
    m="$s.sqlite: $(why $s)"
    refused "info $s" "$m" "$DPOC" store info "$s.sqlite"
    refused "verify $s" "$m" "$DPOC" store verify "$s.sqlite"
    refused "dump $s" "$m" "$DPOC" store dump "$s.sqlite"
    refused "merge $s into a new store" "$m" "$DPOC" store merge "new_$s.sqlite" "$s.sqlite"
    ls "new_$s.sqlite"* >/dev/null 2>&1 && bad "merge $s: a refused merge created its OUT"
    refused "merge $s into a store" "$m" "$DPOC" store merge out.sqlite "$s.sqlite"
    refused "merge a store into $s" "$m" "$DPOC" store merge "$s.sqlite" store.sqlite
    refused "precompute into $s" "$m" "$DPOC" precompute -c p.yaml --set store="$s.sqlite"
    refused "train on $s" "$m" "$DPOC" train -c p.yaml --set store="$s.sqlite"
done
expect_eq "refused merges left OUT as it was" "$(cksum <out.sqlite)" "$sum_before"
echo "slowest refusal: $slowest ms ($slowest_name)"
[ "$slowest" -lt 5000 ] && ok || bad "slowest refusal took $slowest ms ($slowest_name), expected < 5 s"

# An IN with exactly the right schema but a damaged page: merge checks it
# whole (integrity_check) before OUT is touched.
cp store.sqlite damaged.sqlite
page=$(sqlite3 store.sqlite "PRAGMA page_size")
root=$(sqlite3 store.sqlite "SELECT rootpage FROM sqlite_schema WHERE name = 'ref_rows'")
printf '\377\377\377\377\377\377\377\377\377\377\377\377' |
    dd of=damaged.sqlite bs=1 seek=$(( (root - 1) * page + 3 )) conv=notrunc 2>/dev/null
"$DPOC" store merge out.sqlite damaged.sqlite >/dev/null 2>"$TMP/err"
expect_eq "merge of a damaged store exit" $? 1
grep -q '^damaged.sqlite: integrity check failed: ' "$TMP/err" && ok ||
    bad "merge of a damaged store: $(tail -n 1 "$TMP/err")"
expect_eq "refused merge of a damaged store left OUT as it was" "$(cksum <out.sqlite)" "$sum_before"
"$DPOC" store verify damaged.sqlite >/dev/null 2>"$TMP/err"
expect_eq "verify of a damaged store exit" $? 1

# The real store still works with everything (nothing above broke it).
"$DPOC" train -c p.yaml >/dev/null 2>&1; expect_eq "train on the real store" $? 0
"$DPOC" store merge out2.sqlite store.sqlite >/dev/null; expect_eq "merge of the real store" $? 0
summary
