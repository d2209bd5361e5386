#!/usr/bin/env bash
# kina-audit verify: every kind of tampering is detected and named (exit 1), and
# the untouched log verifies (exit 0).
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
for i in $(seq 0 9); do kina-audit append --tool t --action "a$i" >/dev/null; done
cp "$LOG" "$TEST_TMP/orig"
restore() { cp "$TEST_TMP/orig" "$LOG"; }

expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" "true"

# expect_tamper SEQ KIND: verify exits 1 and names the first bad seq and the problem.
expect_tamper() {
  expect_exit 1 kina-audit verify
  assert_eq "$(jq_field "$OUT" .intact)" "false" "intact"
  assert_eq "$(jq_field "$OUT" .firstBadSeq)" "$1" "firstBadSeq"
  assert_eq "$(jq_field "$OUT" .problem)" "$2" "problem"
  assert_contains "$ERR" "NOT intact"
  restore
}

# A modified byte in every entry, first, middle and last (the last too: each entry carries its own hash).
for n in 1 5 10; do
  python3 - "$LOG" "$n" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
lines = open(path, 'rb').read().split(b'\n')
l = bytearray(lines[n-1]); i = l.index(b'"action":"') + 11; l[i] ^= 1
lines[n-1] = bytes(l); open(path, 'wb').write(b'\n'.join(lines))
PY
  expect_tamper $((n-1)) hash-mismatch
done
# A byte of the stored hash itself.
python3 - "$LOG" <<'PY'
import sys
p = sys.argv[1]; d = bytearray(open(p,'rb').read()); i = d.rindex(b'"hash":"') + 8
d[i] = ord('0') if d[i] != ord('0') else ord('1'); open(p,'wb').write(bytes(d))
PY
expect_tamper 9 hash-mismatch
# Deleted (middle), duplicated, reordered, inserted.
sed -i 4d "$LOG"; expect_tamper 3 sequence
sed -i '5p' "$LOG"; expect_tamper 5 sequence
python3 - "$LOG" <<'PY'
import sys
p = sys.argv[1]; l = open(p).read().splitlines(); l[2], l[6] = l[6], l[2]; open(p,'w').write('\n'.join(l) + '\n')
PY
expect_tamper 2 sequence
# An inserted entry built from another log (valid JSON, valid own hash, wrong chain).
KINA_AUDIT_LOG="$TEST_TMP/forge.jsonl" kina-audit append --tool t --action forged >/dev/null
for i in 1 2 3 4; do KINA_AUDIT_LOG="$TEST_TMP/forge.jsonl" kina-audit append --tool t --action forged >/dev/null; done
forged=$(sed -n 5p "$TEST_TMP/forge.jsonl")   # seq 4 with a foreign prev
python3 - "$LOG" "$forged" <<'PY'
import sys
p, f = sys.argv[1], sys.argv[2]; l = open(p).read().splitlines(); l[4] = f; open(p,'w').write('\n'.join(l) + '\n')
PY
expect_tamper 4 chain
# Garbage line.
sed -i '3s/.*/not json at all/' "$LOG"; expect_tamper 2 malformed
# Truncated last entry without a checkpoint is undetectable by the chain alone;
# a half-written line is reported as a torn tail.
head -c -30 "$TEST_TMP/orig" > "$LOG"
expect_exit 1 kina-audit verify
assert_eq "$(jq_field "$OUT" .problem)" "torn-tail"
restore
expect_exit 0 kina-audit verify
ok "tamper"
