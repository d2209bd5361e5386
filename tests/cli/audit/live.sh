#!/usr/bin/env bash
# verify, show and checkpoint while other processes append: every run reads a
# consistent snapshot (up to the last complete entry, taken under the shared
# lock), so none reports tampering or a torn tail.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
kina-audit append --tool t --action first >/dev/null
batch() { # N AuditEvent records on stdout: one large write per append
  python3 -c '
import json, sys
for i in range(int(sys.argv[1])):
    sys.stdout.write(json.dumps({"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"bulk","target":"x"*400}) + "\n")' "$1"
}
batch 500 > "$TEST_TMP/batch"
( for i in $(seq 1 30); do kina-audit append < "$TEST_TMP/batch" >/dev/null || exit 1; done ) &
writer1=$!; track_pid "$writer1"
( for i in $(seq 1 150); do kina-audit append --tool t --action single >/dev/null || exit 1; done ) &
writer2=$!; track_pid "$writer2"
# verify (and show, checkpoint-free) as long as a writer runs, at least 5 times.
runs=0
while kill -0 "$writer1" 2>/dev/null || kill -0 "$writer2" 2>/dev/null || [ "$runs" -lt 5 ]; do
  runs=$((runs + 1))
  rc=0; out=$(kina-audit verify 2>"$TEST_TMP/err") || rc=$?
  [ "$rc" -eq 0 ] || { cat "$TEST_TMP/err" >&2; fail "verify run $runs while appending: exit $rc: $(jq -c '.problems' <<<"$out")"; }
  rc=0; kina-audit show -n 1 >/dev/null 2>"$TEST_TMP/err" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$TEST_TMP/err" >&2; fail "show run $runs while appending: exit $rc"; }
done
wait "$writer1" || fail "the batch writer failed"
wait "$writer2" || fail "the single writer failed"
expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .entries)" "$((1 + 30 * 500 + 150))"
ok "live: $runs verify runs during appends, all intact"
