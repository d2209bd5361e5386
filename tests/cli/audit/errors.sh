#!/usr/bin/env bash
# kina-audit: bad input gets one clear line and a distinct exit code; nothing is written.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"

expect_exit 64 kina-audit
expect_exit 64 kina-audit frobnicate
assert_contains "$ERR" "kina-audit: error: usage:"
expect_exit 64 kina-audit append --tool kina </dev/null
assert_contains "$ERR" "--tool and --action go together"
expect_exit 64 kina-audit append --tool "Bad Tool" --action x
assert_eq "$ERR" 'kina-audit: error: invalid audit tool "Bad Tool": use lower-case letters, digits and - _ . /'
expect_exit 64 kina-audit append --tool t --action a --cluster Dev_1
assert_contains "$ERR" 'invalid cluster name "Dev_1"'
expect_exit 64 kina-audit append --tool t --action a --outcome maybe
expect_exit 64 kina-audit append --tool t --action a --detail novalue
assert_contains "$ERR" 'invalid --detail "novalue": expected KEY=VALUE'
expect_exit 64 kina-audit append --tool t --action a --duration 5parsecs
[ ! -e "$LOG" ] || fail "a failed append created the log"

# Records: malformed JSON, wrong apiVersion, missing fields -> 65 naming the line; nothing appended.
expect_exit 65 sh -c 'printf "%s\n" "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"AuditEvent\",\"tool\":\"a\",\"action\":\"b\"}" "{not json" | kina-audit append'
assert_contains "$ERR" "<stdin>:2"
expect_exit 65 sh -c 'echo "{\"apiVersion\":\"kina/v2\",\"kind\":\"AuditEvent\"}" | kina-audit append'
assert_eq "$ERR" 'kina-audit: error: reading record at <stdin>:1: unsupported apiVersion "kina/v2" (this tool reads kina/v1alpha1)'
expect_exit 65 sh -c 'echo "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"AuditEvent\",\"tool\":\"a\"}" | kina-audit append'
assert_contains "$ERR" 'missing field "action"'
expect_exit 65 sh -c 'echo "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"AuditEvent\",\"tool\":\"a\",\"action\":\"b\",\"args\":\"x\"}" | kina-audit append'
[ ! -e "$LOG" ] || fail "a failed batch wrote to the log"

# A missing log is 66 for verify.
expect_exit 66 kina-audit verify
assert_contains "$ERR" "the log does not exist"

# A closed stdout is an I/O error (74), not a silent success.
kina-audit append --tool t --action a >/dev/null
rc=0
kina-audit show 2>"$TEST_TMP/err" | true || rc=$?
# (the pipeline's status is true's; run again with a closed fd to see ours)
rc=0; kina-audit show >&- 2>"$TEST_TMP/err" || rc=$?
assert_eq "$rc" "74" "exit on closed stdout"
rc=0; kina-audit show >/dev/full 2>"$TEST_TMP/err" || rc=$?
assert_eq "$rc" "74" "exit on full disk"
assert_contains "$(cat "$TEST_TMP/err")" "No space left on device"

# prove without a checkpoint, checkpoint without a key.
expect_exit 66 kina-audit prove 0
assert_contains "$ERR" "no checkpoint"
expect_exit 66 kina-audit checkpoint
assert_contains "$ERR" "kina-audit keygen"
# keygen twice without --force refuses and keeps the first key.
expect_exit 0 kina-audit keygen
vk1=$(jq_field "$OUT" .vkey)
expect_exit 73 kina-audit keygen
assert_eq "$(cat "$KINA_HOME/keys/audit.vkey")" "$vk1" "vkey after refused keygen"
expect_exit 64 kina-audit keygen --force --name "has space"
ok "errors"
