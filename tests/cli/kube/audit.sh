#!/usr/bin/env bash
# kube-audit: every mutating kina-kube invocation appends exactly one audit
# event with its real outcome and exit code, a command line CLI11 refuses (an
# unknown flag, a missing required one) included, with the cluster when it was
# read; read-only invocations (--help, --version) record nothing.
source "$KINA_CLI_LIB"
cd "$TEST_TMP"
audited 0 "kina-kube pki-init ok 0 c1" kina-kube pki init --cluster c1
audited 64 "kina-kube pki-init error 64 c1" kina-kube pki init --cluster c1 --no-such-flag
audited 64 "kina-kube pki-export error 64 c1" kina-kube pki export --cluster c1
audited 64 "kina-kube sign error 64 -" kina-kube sign --cluster c1 --user u --server https://127.0.0.1:6443 --ttl
audited 64 "kina-kube token error 64 -" kina-kube token
audited 64 "kina-kube merge error 64 -" kina-kube merge --kubeconfig
audited 64 "kina-kube unmerge error 64 c1" kina-kube unmerge --cluster c1 extra-word
ok "refused command lines are recorded with their exit code and the cluster read"

before=$(audit_events)
expect_exit 0 kina-kube --version
expect_exit 0 kina-kube sign --help
expect_exit 64 kina-kube pkk init --cluster c1
assert_contains "$ERR" 'did you mean "pki"'
assert_eq "$(audit_events)" "$before" "events after --version, --help and an unknown subcommand"
expect_exit 0 kina-audit verify
ok "read-only invocations record nothing; the log verifies"
