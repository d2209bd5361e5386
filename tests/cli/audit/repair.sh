#!/usr/bin/env bash
# append repairs only what an interrupted append left, and only in kina's own
# log: a file that is not the log is refused untouched (65); a log whose last
# entry lost its newline keeps that entry; a non-entry tail is refused; a cut
# is recorded (length and SHA-256) and shown by verify.
source "$KINA_CLI_LIB"
D="$TEST_TMP/d"; mkdir -p "$D"
sum() { sha256sum "$1" | cut -d' ' -f1; }

# 1. A file without a final newline that is not an audit log (issue 8, item 3).
printf 'secret' > "$D/f"
expect_exit 65 kina-audit --log "$D/f" append --tool t --action a
assert_contains "$ERR" "$D/f"
assert_eq "$(cat "$D/f")" "secret" "a non-log file is left untouched"
printf 'line one\nsecret' > "$D/g"; before=$(sum "$D/g")
expect_exit 65 kina-audit --log "$D/g" append --tool t --action a
assert_contains "$ERR" "not the first entry of a kina audit log"
assert_eq "$(sum "$D/g")" "$before" "a non-log file is left untouched"
printf '{"seq":0,"time":"2026-01-01T00:00:00.000Z"}\n' > "$D/h"; before=$(sum "$D/h")
expect_exit 65 kina-audit --log "$D/h" append --tool t --action a
assert_eq "$(sum "$D/h")" "$before" "a look-alike without hashes is left untouched"

# 2. A real log whose final newline was deleted: the last entry survives.
L="$D/log.jsonl"
for i in 1 2 3; do kina-audit --log "$L" append --tool t --action "a$i" >/dev/null; done
truncate -s -1 "$L"
expect_exit 0 kina-audit --log "$L" append --tool t --action a4
assert_eq "$(jq -r .action "$L" | paste -sd, -)" "a1,a2,a3,repair,a4" "the last entry was kept"
expect_exit 0 kina-audit --log "$L" verify
assert_eq "$(jq_field "$OUT" .intact)" true
assert_eq "$(jq_field "$OUT" .entries)" 5
assert_eq "$(jq_field "$OUT" '.repairs[0].truncatedBytes')" 0

# 3. A tail that is not the start of the next entry is refused untouched.
printf 'not an entry' >> "$L"; before=$(sum "$L")
expect_exit 65 kina-audit --log "$L" append --tool t --action a5
assert_eq "$(sum "$L")" "$before" "a foreign tail is left untouched"
truncate -s -12 "$L"
# Nor is a whole line that is not an entry (the last entry must be valid and chain).
printf '{"seq":5}\n' >> "$L"; before=$(sum "$L")
expect_exit 65 kina-audit --log "$L" append --tool t --action a5
assert_eq "$(sum "$L")" "$before"
truncate -s -10 "$L"

# 4. A torn entry is cut, and the cut is recorded so that verify can tell.
size=$(stat -c %s "$L")
kina-audit --log "$L" append --tool t --action a5 >/dev/null
full=$(stat -c %s "$L")
truncate -s $(( (size + full) / 2 )) "$L"        # half of entry 5 is left
tail -c +$((size + 1)) "$L" > "$D/cut"
expect_exit 1 kina-audit --log "$L" verify
assert_eq "$(jq_field "$OUT" .problem)" torn-tail
expect_exit 0 kina-audit --log "$L" append --tool t --action a6
assert_eq "$(printf '%s\n' "$OUT" | head -n1 | jq -r .action)" repair
expect_exit 0 kina-audit --log "$L" verify
assert_eq "$(jq_field "$OUT" .intact)" true
assert_eq "$(jq_field "$OUT" '.repairs[1].seq')" 5
assert_eq "$(jq_field "$OUT" '.repairs[1].truncatedBytes')" "$(stat -c %s "$D/cut")"
assert_eq "$(jq_field "$OUT" '.repairs[1].truncatedSha256')" "$(sum "$D/cut")"
assert_contains "$ERR" "cut $(stat -c %s "$D/cut") bytes" "verify says what was cut"
ok "repair"
