#!/usr/bin/env bash
# kina-audit: every numeric input has a checked range; out of range is one
# clear usage error (64) naming the flag, and nothing is written.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"

# Exit codes are 0-255: 300 or 2^32 was stored truncated (or as another code).
for c in 300 -1 4294967296 0x10 1e3; do
  expect_exit 64 kina-audit append --tool t --action a --exit-code="$c"
  assert_contains "$ERR" "--exit-code"
done
assert_contains "$ERR" '"1e3" is not an integer from 0 to 255'
# Durations: negative, absurd, overflowing.
for d in -5s 300000000y 9223372036854775807ms 11y; do
  expect_exit 64 kina-audit append --tool t --action a --duration="$d"
  assert_contains "$ERR" "invalid --duration \"$d\""
done
[ ! -e "$LOG" ] || fail "an out-of-range append wrote the log"
# The same bounds hold for records on stdin, checked before narrowing.
rec() { printf '{"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"a",%s}\n' "$1"; }
expect_exit 65 bash -c 'printf "%s\n" "$1" | kina-audit append' _ "$(rec '"exitCode":4294967296')"
assert_contains "$ERR" 'exitCode 4294967296 is not an exit status (0-255)'
expect_exit 65 bash -c 'printf "%s\n" "$1" | kina-audit append' _ "$(rec '"exitCode":-1')"
expect_exit 65 bash -c 'printf "%s\n" "$1" | kina-audit append' _ "$(rec '"durationMs":-5')"
assert_contains "$ERR" 'durationMs -5 is out of range'
[ ! -e "$LOG" ] || fail "an out-of-range record wrote the log"
ok "append bounds"

expect_exit 0 kina-audit append --tool t --action a --exit-code 255 --duration 10y
assert_contains "$(cat "$LOG")" "\"exitCode\":255"
expect_exit 0 kina-audit show -n 1
expect_exit 64 kina-audit show -n -5
assert_contains "$ERR" '-n: "-5" is not an integer from 1 to'
expect_exit 64 kina-audit show -n 0
expect_exit 64 kina-audit show --since 300000000y
assert_contains "$ERR" 'invalid --since "300000000y"'
expect_exit 64 kina-audit prove -1
assert_contains "$ERR" '"-1" is not an integer from 0 to'
expect_exit 64 kina-audit prove 18446744073709551615
ok "show and prove bounds"
