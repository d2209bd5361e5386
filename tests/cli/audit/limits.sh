#!/usr/bin/env bash
# Bounded input and failed writes: a line longer than the 1 MiB entry cap is
# refused as corrupt without reading it into memory; a FIFO log is refused
# instead of blocking; an append over `ulimit -f` (EFBIG, SIGXFSZ ignored)
# leaves the log exactly as it was.
source "$KINA_CLI_LIB"
D="$TEST_TMP/d"; mkdir -p "$D"
T="timeout -k 2 60"
sum() { sha256sum "$1" | cut -d' ' -f1; }
L="$D/log.jsonl"
kina-audit --log "$L" append --tool t --action one >/dev/null

# A 50 MB line (no newline, then with one): corrupt, memory stays bounded.
cp "$L" "$D/big.jsonl"
head -c $((50 * 1024 * 1024)) /dev/zero | tr '\0' 'x' >> "$D/big.jsonl"
for nl in no yes; do
  [ "$nl" = yes ] && echo >> "$D/big.jsonl"
  expect_exit 1 $T kina-audit --log "$D/big.jsonl" verify
  assert_eq "$(jq_field "$OUT" .problem)" oversized "verify of a 50 MB line ($nl newline)"
  assert_eq "$(jq_field "$OUT" .entries)" 1
  expect_exit 65 $T kina-audit --log "$D/big.jsonl" show
  assert_contains "$ERR" "line 2"
  before=$(sum "$D/big.jsonl")
  expect_exit 65 $T kina-audit --log "$D/big.jsonl" append --tool t --action a
  assert_eq "$(sum "$D/big.jsonl")" "$before" "append to a log with a 50 MB line changed it"
done
if [ -x /usr/bin/time ]; then
  rss=$(/usr/bin/time -f %M -o "$D/rss" kina-audit --log "$D/big.jsonl" verify >/dev/null 2>&1 || true; cat "$D/rss" | tail -n1)
  [ "$rss" -lt 40000 ] || fail "verify of a 50 MB line used $rss KiB (the per-line cap is 1 MiB)"
  rss=$(/usr/bin/time -f %M -o "$D/rss" kina-audit --log "$D/big.jsonl" show >/dev/null 2>&1 || true; cat "$D/rss" | tail -n1)
  [ "$rss" -lt 40000 ] || fail "show of a 50 MB line used $rss KiB"
fi

# show holds no more than the rows it must print: a 60 MB log shown whole (to a
# pipe) or with -n 1 stays far below the log's size.
python3 -c '
import json, sys
for i in range(100000):
    sys.stdout.write(json.dumps({"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"bulk","target":"y"*500}) + "\n")' |
  kina-audit --log "$D/many.jsonl" append >/dev/null
if [ -x /usr/bin/time ]; then
  rss=$(/usr/bin/time -f %M -o "$D/rss" kina-audit --log "$D/many.jsonl" show -n 1 >/dev/null 2>&1; tail -n1 "$D/rss")
  [ "$rss" -lt 40000 ] || fail "show -n 1 of a 60 MB log used $rss KiB"
  rss=$(/usr/bin/time -f %M -o "$D/rss" kina-audit --log "$D/many.jsonl" show --format table >/dev/null 2>&1; tail -n1 "$D/rss")
  [ "$rss" -lt 40000 ] || fail "show of a 60 MB log used $rss KiB"
fi
assert_eq "$(kina-audit --log "$D/many.jsonl" show -n 2 | jq -r .seq | paste -sd, -)" "99998,99999"
assert_eq "$(kina-audit --log "$D/many.jsonl" show | wc -l)" 100000
rm -f "$D/many.jsonl"

# A FIFO as --log: refused at once (nothing ever writes it).
mkfifo "$D/fifo"
expect_exit 65 $T kina-audit --log "$D/fifo" verify
assert_contains "$ERR" "FIFO"
expect_exit 65 $T kina-audit --log "$D/fifo" show

# An append over the file size limit: EFBIG, the log truncated back, nothing torn.
python3 -c '
import json, sys
for i in range(2000):
    sys.stdout.write(json.dumps({"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"bulk","target":"x"*300}) + "\n")' > "$D/batch"
before=$(sum "$L"); blocks=$(( $(stat -c %s "$L") / 1024 + 8 ))
rc=0; ( ulimit -f "$blocks"; exec kina-audit --log "$L" append < "$D/batch" >/dev/null 2>"$D/err" ) || rc=$?
assert_eq "$rc" 73 "append over ulimit -f (not killed by SIGXFSZ, 153): $(cat "$D/err")"
assert_contains "$(cat "$D/err")" "File too large"
assert_eq "$(sum "$L")" "$before" "the log after a failed append"
# The same after a torn tail: the tail is put back, still repairable.
printf '{"seq":1,"time":"20' >> "$L"; before=$(sum "$L")
rc=0; ( ulimit -f "$blocks"; exec kina-audit --log "$L" append < "$D/batch" >/dev/null 2>"$D/err" ) || rc=$?
assert_eq "$rc" 73 "append over ulimit -f after a torn tail"
assert_eq "$(sum "$L")" "$before" "the torn tail is put back after a failed append"
expect_exit 0 kina-audit --log "$L" append --tool t --action two
expect_exit 0 kina-audit --log "$L" verify
assert_eq "$(jq_field "$OUT" .entries)" 3
ok "limits"
