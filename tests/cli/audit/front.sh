#!/usr/bin/env bash
# The kina front end records each of its own workflow verbs (create, delete)
# in the audit log: one event, the real outcome and exit code, secrets redacted
# (here a refused create: an unknown flag that looks like a secret).
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
expect_exit 64 kina create cluster --name dev --token s3cr3t
assert_contains "$ERR" "unknown flag '--token'"
[ -f "$LOG" ] || fail "kina create cluster recorded nothing"
assert_eq "$(wc -l < "$LOG")" 1 "one event per invocation"
ev=$(tail -n1 "$LOG")
assert_eq "$(jq_field "$ev" '[.tool, .action, .outcome, .exitCode] | join(" ")')" "kina create-cluster error 64"
assert_eq "$(jq_field "$ev" '.args | join(" ")')" "create cluster --name dev --token [redacted]"
assert_not_contains "$(cat "$LOG")" "s3cr3t"
expect_exit 64 kina delete cluster dev
assert_eq "$(jq_field "$(tail -n1 "$LOG")" '[.action, .exitCode] | join(" ")')" "delete-cluster 64"
# Pass-through commands are recorded by the tool itself, not twice.
expect_exit 0 kina audit append --tool t --action a
assert_eq "$(wc -l < "$LOG")" 3
expect_exit 0 kina audit verify
ok "front"
