#!/usr/bin/env bash
# The kina front end records each of its own workflow verbs (create, delete)
# in the audit log: one event, the real outcome and exit code, secrets redacted.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
expect_exit 69 kina create cluster --name dev --token s3cr3t
assert_contains "$ERR" "not implemented"
[ -f "$LOG" ] || fail "kina create cluster recorded nothing"
assert_eq "$(wc -l < "$LOG")" 1 "one event per invocation"
ev=$(tail -n1 "$LOG")
assert_eq "$(jq_field "$ev" '[.tool, .action, .outcome, .exitCode] | join(" ")')" "kina create-cluster error 69"
assert_eq "$(jq_field "$ev" '.args | join(" ")')" "create cluster --name dev --token [redacted]"
expect_exit 69 kina delete cluster dev
assert_eq "$(jq_field "$(tail -n1 "$LOG")" '[.action, .exitCode] | join(" ")')" "delete-cluster 69"
# Pass-through commands are recorded by the tool itself, not twice.
expect_exit 0 kina audit append --tool t --action a
assert_eq "$(wc -l < "$LOG")" 3
expect_exit 0 kina audit verify
ok "front"
