#!/bin/bash
# kube-rollback: a failure while `pki export` moves the files in (an immutable
# sa.key, last in line) swaps the files already moved back: the directory is
# as it was. Needs `chattr +i` on the test's file system (root, ext4/xfs/...):
# reported as a skip where it is not available.
source "$KINA_CLI_LIB"
export KINA_PASSPHRASE=test-passphrase-rollback
kina-kube pki init --cluster c1 >/dev/null 2>&1 || fail "pki init"
R="$TEST_TMP/rollback"
expect_exit 0 kina-kube pki export --cluster c1 --dir "$R"
kina-kube pki init --cluster c1 --force >/dev/null 2>&1 || fail "pki init --force"
if ! chattr +i "$R/sa.key" 2>/dev/null; then
  echo "skip: chattr +i is not available on $(df -T "$R" | awk 'NR==2{print $2}') here"
  exit 77
fi
before=$(cd "$R" && find . -type f | sort | xargs sha256sum)
rc=0; kina-kube pki export --cluster c1 --dir "$R" >/dev/null 2>"$TEST_TMP/err" || rc=$?
chattr -i "$R/sa.key"
assert_eq "$rc" 73 "exit status when a file cannot be replaced"
assert_contains "$(cat "$TEST_TMP/err")" "kina-kube: error: moving $R/sa.key into place: Operation not permitted"
assert_eq "$(cd "$R" && find . -type f | sort | xargs sha256sum)" "$before" "files after a rolled-back export"
ls -a "$R" | grep >/dev/null '^\.kina-kube\.tmp' && fail "temporary directory left behind"
ok "rollback"
