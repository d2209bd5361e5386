#!/usr/bin/env bash
# 8 processes x 500 appends at once give 4000 contiguous entries that verify.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
writers=8 per=500
for w in $(seq 1 $writers); do
  ( for i in $(seq 1 $per); do kina-audit append --tool "w$w" --action "a$i" >/dev/null || exit 1; done ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a writer failed"; done
expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" "true"
assert_eq "$(jq_field "$OUT" .entries)" "$((writers * per))"
assert_eq "$(jq_field "$OUT" .lastSeq)" "$((writers * per - 1))"
# Every writer's appends are all there, in its own order.
for w in 1 8; do
  got=$(jq -r "select(.tool==\"w$w\") | .action" "$LOG" | tr -d a | paste -sd, -)
  assert_eq "$got" "$(seq -s, 1 $per)" "order of writer $w"
done
ok "concurrency"
