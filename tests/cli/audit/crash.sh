#!/usr/bin/env bash
# kill -9 in the middle of appends, then append again: the log verifies, and a
# torn tail, if a kill left one, is cut and recorded.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
gen() { # a stream of AuditEvent records, big enough that a batch takes a while
  python3 -c '
import json, sys
for i in range(200000):
    sys.stdout.write(json.dumps({"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"bulk","target":"x"*200}) + "\n")'
}
for round in 1 2 3 4 5; do
  # Each writer runs in its own process group so the kill reaches only ours.
  setsid bash -c 'for i in $(seq 1 50); do kina-audit append --tool t --action single >/dev/null; done' &
  loop=$!
  setsid bash -c "$(declare -f gen); gen | kina-audit append >/dev/null" &
  batch=$!
  sleep "0.$((round * 17 % 9 + 1))"  # (a varying delay on purpose: the kill -9 lands at a different point each round)
  kill -9 -- "-$batch" "-$loop" 2>/dev/null || true
  wait 2>/dev/null || true
  expect_exit 0 kina-audit append --tool t --action after-crash
done
# A torn tail made by hand (what a kill -9 inside write(2) leaves: the start of
# the next entry) is repaired too; a tail that is not the next entry is not cut.
printf '{"seq":99999,"time":"20' >> "$LOG"
expect_exit 65 kina-audit append --tool t --action after-torn
truncate -s -23 "$LOG"
torn=$(printf '{"seq":%d,"time":"20' "$(wc -l < "$LOG")")
printf '%s' "$torn" >> "$LOG"
expect_exit 1 kina-audit verify
assert_eq "$(jq_field "$OUT" .problem)" "torn-tail"
expect_exit 0 kina-audit append --tool t --action after-torn
assert_eq "$(printf '%s\n' "$OUT" | head -n1 | jq -r .action)" "repair"
expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" "true"
repair=$(grep '"action":"repair"' "$LOG" | tail -n1)
assert_eq "$(jq_field "$repair" .details.truncatedBytes)" "${#torn}"
ok "crash"
