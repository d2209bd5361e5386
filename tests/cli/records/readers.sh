#!/bin/bash
# records-readers: every variant in tests/records/KIND.jsonl is accepted by the
# tools that read KIND. The readers go on to act on it and fail later (no such
# machine, no such rootfs): what is checked is that they fail there, never at
# the record.
source "$KINA_CLI_LIB"
R="$KINA_SRC/tests/records"

# read_ok WHAT CMD...: stdin is given; the command may fail, but not with 65 at the record.
read_ok() {
  local what=$1; shift
  local rc=0
  "$@" >/dev/null 2>"$TEST_TMP/err" || rc=$?
  if grep -q "record <stdin>" "$TEST_TMP/err"; then
    fail "$what: the reader refused the record: $(cat "$TEST_TMP/err")"
  fi
  [ "$rc" -ne 70 ] || fail "$what: internal error: $(cat "$TEST_TMP/err")"
}

# Machine -> kina-kube fetch (with kina-vm on PATH, it then asks for the machine).
n=0
while IFS= read -r line; do
  n=$((n + 1))
  printf '%s\n' "$line" | read_ok "Machine variant $n" kina-kube fetch
done < "$R/Machine.jsonl"
ok "kina-kube fetch reads every Machine variant"

# Image + Rootfs -> kina-vm boot (it then looks for the root and stops there).
n=0
while IFS= read -r line; do
  n=$((n + 1))
  { cat "$R/Image.jsonl"; printf '%s\n' "$line"; } | read_ok "Rootfs variant $n" kina-vm boot --name r$n --accel tcg
  [ ! -e "$KINA_HOME/clusters/default/machines/r$n" ] || fail "a refused boot left its machine directory"
done < "$R/Rootfs.jsonl"
ok "kina-vm boot reads every Image and Rootfs variant"

# And the check itself: a record that breaks the contract is caught.
bad='{"apiVersion":"kina/v1alpha1","kind":"Machine","name":5}'
rc=0; printf '%s\n' "$bad" | kina-kube fetch >/dev/null 2>"$TEST_TMP/err" || rc=$?
assert_eq "$rc" 65 "a Machine whose name is a number"
assert_contains "$(cat "$TEST_TMP/err")" 'record <stdin>:1 (Machine): field "name" is not a string'
rc=0; printf '%s\n' "$bad" | python3 "$R/check.py" Machine 2>/dev/null || rc=$?
assert_eq "$rc" 1 "check.py on a record that breaks the contract"
ok "contract violations are caught"
