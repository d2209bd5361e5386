#!/usr/bin/env bash
# kina-kube: --server is a plain https://HOST[:PORT][/PATH] (no userinfo, whose
# password reached the audit log, no query, no fragment, a port 1-65535);
# --san never turns a bad IPv4 address into a DNS name; merge refuses an empty
# file or one that is not a kubeconfig instead of doing nothing.
source "$KINA_CLI_LIB"
kina-kube pki init --cluster c1 >/dev/null 2>&1
LOG="$KINA_HOME/audit/log.jsonl"
O="$TEST_TMP/out.yaml"

sign() { kina-kube sign --cluster c1 --user u --out "$O" "$@"; }
for bad in https://127.0.0.1:65536 https://127.0.0.1:0 https://127.0.0.1:99999999999999999999 https://h:6443x \
           https://h: https://h:-1 'https://h:6443?x=1' 'https://h:6443/#frag' https://:6443 https:// \
           https://256.1.1.1:6443 https://fd00::1:6443 'https://[fd00::1' 'https://[10.0.0.1]:6443' \
           https://-bad-.example:6443 'https://h/a b' http://h:6443; do
  expect_exit 64 sign --server "$bad"
  assert_contains "$ERR" "kina-kube: error: invalid --server"
done
expect_exit 64 sign --server https://127.0.0.1:65536
assert_eq "$ERR" 'kina-kube: error: invalid --server "https://127.0.0.1:65536": port "65536" is not a number from 1 to 65535'
expect_exit 64 sign --server 'https://127.0.0.1:6443?x=1'
assert_contains "$ERR" 'must not have a query'
expect_exit 64 sign --server 'https://h:6443/#frag'
assert_contains "$ERR" 'must not have a fragment'
# Userinfo: refused, and the password appears neither in the error nor in the audit log.
expect_exit 64 sign --server https://admin:hunter2@127.0.0.1:6443
assert_contains "$ERR" 'must not hold a user name or password'
assert_not_contains "$ERR" hunter2
expect_exit 64 sign --server=https://admin:hunter2@127.0.0.1:6443/x
assert_not_contains "$ERR" hunter2
assert_not_contains "$(cat "$LOG")" hunter2 "the audit log"
assert_contains "$(cat "$LOG")" 'https://[redacted]@127.0.0.1:6443' "the audit log"
[ ! -e "$O" ] || fail "a refused --server wrote a kubeconfig"
for good in https://127.0.0.1:6443 https://10.0.0.1 'https://[fd00::1]:6443' 'https://[::1]' \
            https://api.example.com:443/k8s/clusters/c-1 https://localhost:1; do
  expect_exit 0 sign --server "$good"
  assert_eq "$(jq -r .server <<<"$OUT")" "$good"
done
ok "--server"

issue() { kina-kube pki issue --cluster c1 --cn x --out "$TEST_TMP/certs" "$@"; }
for bad in 256.1.1.1 1.2.3 010.0.0.1 1.2.3.4.5 10.0.0.1.2 '*' '*.*.example.com' 'a.*.example.com' 'a*.example.com' \
           '*.' example.com. -a.example.com 'a_b.example.com' "$(printf 'a%.0s' $(seq 64)).com" fd00::g ::1::; do
  expect_exit 64 issue --san "$bad"
  assert_contains "$ERR" "invalid --san"
done
expect_exit 64 issue --san 256.1.1.1
assert_eq "$ERR" 'kina-kube: error: invalid --san "256.1.1.1": looks like an IPv4 address but is not a valid one (four decimal numbers 0-255, no leading zeros)'
expect_exit 64 issue --san 'a.*.example.com'
assert_contains "$ERR" 'a wildcard is allowed only as the whole leftmost label'
[ ! -e "$TEST_TMP/certs" ] || fail "a refused --san wrote a certificate"
expect_exit 0 issue --san '*.example.com' --san 10.0.0.1 --san node-1 --san 1a.example.com --san fd00::1 --san 0.0.0.0
sans=$(openssl x509 -in "$TEST_TMP/certs/x.crt" -noout -ext subjectAltName | tail -n +2)
assert_contains "$sans" 'DNS:*.example.com'
assert_contains "$sans" 'IP Address:10.0.0.1'
ok "--san"

# merge: an empty file, or YAML that is not a kubeconfig, is bad data (65) naming the file.
K="$TEST_TMP/kubeconfig"
: > "$TEST_TMP/empty"
printf 'apiVersion: apps/v1\nkind: Deployment\n' > "$TEST_TMP/deploy.yaml"
printf 'foo: bar\n' > "$TEST_TMP/values.yaml"
printf 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n' > "$TEST_TMP/hollow.yaml"
expect_exit 65 kina-kube merge --kubeconfig "$K" --from "$TEST_TMP/empty"
assert_eq "$ERR" "kina-kube: error: reading kubeconfig $TEST_TMP/empty: the file is empty"
expect_exit 65 kina-kube merge --kubeconfig "$K" --from "$TEST_TMP/deploy.yaml"
assert_contains "$ERR" "$TEST_TMP/deploy.yaml"
expect_exit 65 kina-kube merge --kubeconfig "$K" --from "$TEST_TMP/values.yaml"
assert_eq "$ERR" "kina-kube: error: reading kubeconfig $TEST_TMP/values.yaml: holds no clusters, users or contexts (not a kubeconfig)"
expect_exit 65 kina-kube merge --kubeconfig "$K" --from "$TEST_TMP/hollow.yaml"
# The same through a Kubeconfig record that points at an empty file.
expect_exit 65 sh -c 'printf "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"Kubeconfig\",\"cluster\":\"c1\",\"path\":\"%s\"}\n" "$1" | kina-kube merge --kubeconfig "$2"' _ "$TEST_TMP/empty" "$K"
assert_contains "$ERR" "$TEST_TMP/empty: the file is empty"
[ ! -e "$K" ] || fail "a refused merge wrote the kubeconfig"
# A real kubeconfig still merges, and an empty target is still an empty config.
: > "$K"
expect_exit 0 kina-kube merge --kubeconfig "$K" --from "$O"
ok "merge refuses empty and foreign files"
