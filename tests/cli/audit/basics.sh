#!/usr/bin/env bash
# kina-audit: append from flags and from records, forwarding, redaction, show, help and version.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"

expect_exit 0 kina-audit --version
assert_eq "$OUT" "kina-audit 0.1.0" "version"
expect_exit 0 kina-audit --help
assert_contains "$OUT" "verify-proof"
expect_exit 0 kina-audit verify --help
assert_contains "$OUT" "--checkpoint"

# One event from flags; the printed AuditEntry names seq 0 and the leaf hash.
expect_exit 0 kina-audit append --tool kina --action create-cluster --cluster dev --target dev \
  --duration 1500ms --exit-code 0 --detail nodes=3 --detail bootstrap-token=abcdef.0123456789abcdef \
  -- kina create cluster --name dev --token s3cr3t --password=hunter2
assert_eq "$(jq_field "$OUT" .kind)" "AuditEntry"
assert_eq "$(jq_field "$OUT" .seq)" "0"
hash0=$(jq_field "$OUT" .hash)
[ "${#hash0}" -eq 64 ] || fail "hash is not 64 hex digits: $hash0"
line=$(head -n1 "$LOG")
assert_eq "$(jq_field "$line" .hash)" "$hash0" "stored hash"
assert_eq "$(jq_field "$line" .durationMs)" "1500"
assert_eq "$(jq_field "$line" .cluster)" "dev"
assert_eq "$(jq_field "$line" .user)" "$(id -un)"
assert_eq "$(jq_field "$line" .uid)" "$(id -u)"
assert_eq "$(jq_field "$line" '.args | join(" ")')" "kina create cluster --name dev --token [redacted] --password=[redacted]"
assert_eq "$(jq_field "$line" '.details["bootstrap-token"]')" "[redacted]"
assert_not_contains "$(cat "$LOG")" "s3cr3t" "log"
assert_not_contains "$(cat "$LOG")" "hunter2" "log"
assert_not_contains "$(cat "$LOG")" "0123456789abcdef" "log"
# The log and its directory are private.
assert_eq "$(stat -c %a "$LOG")" "600" "log mode"
assert_eq "$(stat -c %a "$KINA_HOME/audit")" "700" "audit dir mode"

# Records on stdin: AuditEvents appended as one batch, other records forwarded first and unchanged.
other='{"apiVersion":"kina/v1alpha1","kind":"Image","reference":"alpine","extra":{"k":[1,2]}}'
expect_exit 0 sh -c "printf '%s\n' '{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"AuditEvent\",\"tool\":\"kina-image\",\"action\":\"pull\",\"target\":\"alpine\",\"details\":{\"password\":\"x\"}}' '$other' '{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"AuditEvent\",\"tool\":\"kina-vm\",\"action\":\"boot\",\"outcome\":\"error\",\"exitCode\":69}' | kina-audit append"
first=$(printf '%s\n' "$OUT" | head -n1)
assert_eq "$first" "$other" "forwarded record"
assert_eq "$(printf '%s\n' "$OUT" | jq -s -r '[.[] | select(.kind=="AuditEntry") | .seq] | join(",")')" "1,2"
assert_eq "$(sed -n 3p "$LOG" | jq -r .outcome)" "error"
assert_eq "$(sed -n 3p "$LOG" | jq -r .exitCode)" "69"
assert_eq "$(sed -n 2p "$LOG" | jq -r .details.password)" "[redacted]"

# show: JSON records by default off a terminal, filters, -n, table format.
expect_exit 0 kina-audit show
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" "3"
assert_eq "$(printf '%s\n' "$OUT" | head -n1 | jq -r .apiVersion)" "kina/v1alpha1"
expect_exit 0 kina-audit show --tool kina-vm
assert_eq "$(jq_field "$OUT" .action)" "boot"
expect_exit 0 kina-audit show --cluster dev
assert_eq "$(jq_field "$OUT" .seq)" "0"
expect_exit 0 kina-audit show -n 1
assert_eq "$(jq_field "$OUT" .seq)" "2"
expect_exit 0 kina-audit show --since 1h
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" "3"
expect_exit 0 kina-audit show --since 2999-01-01T00:00:00Z
assert_eq "$OUT" ""
expect_exit 0 kina-audit show --format table
assert_contains "$OUT" "SEQ"
assert_contains "$OUT" "create-cluster"

# --log PATH and KINA_AUDIT_LOG choose another log.
expect_exit 0 kina-audit --log "$TEST_TMP/other.jsonl" append --tool t --action a
[ -f "$TEST_TMP/other.jsonl" ] || fail "--log not honoured"
expect_exit 0 env KINA_AUDIT_LOG="$TEST_TMP/third.jsonl" kina-audit append --tool t --action a
[ -f "$TEST_TMP/third.jsonl" ] || fail "KINA_AUDIT_LOG not honoured"

expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" "true"
assert_eq "$(jq_field "$OUT" .entries)" "3"
ok "basics"
