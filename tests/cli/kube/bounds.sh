#!/usr/bin/env bash
# kina-kube: every duration flag has its own range (docs/cli.md, "Numeric
# bounds"); out of range is one usage error (64) naming the flag, and nothing
# is written. Before, 300y made the lock wait overflow and fail at once, and a
# TTL of INT64_MAX ms wrapped into an expiry in the past.
source "$KINA_CLI_LIB"
kina-kube pki init --cluster c1 >/dev/null 2>&1
S=https://127.0.0.1:6443
T="$TEST_TMP/kubeconfig"
kina-kube sign --cluster c1 --user alice --server "$S" --out "$TEST_TMP/alice.yaml" > "$TEST_TMP/alice.rec"

expect_exit 64 kina-kube merge --kubeconfig "$T" --lock-timeout 300y < "$TEST_TMP/alice.rec"
assert_eq "$ERR" 'kina-kube: error: invalid --lock-timeout "300y": must be at most 1h'
expect_exit 64 kina-kube merge --kubeconfig "$T" --lock-timeout=-5s < "$TEST_TMP/alice.rec"
assert_eq "$ERR" 'kina-kube: error: invalid --lock-timeout "-5s": must not be negative'
expect_exit 64 kina-kube unmerge --cluster c1 --kubeconfig "$T" --lock-timeout 2h
assert_contains "$ERR" 'invalid --lock-timeout "2h": must be at most 1h'
[ ! -e "$T" ] || fail "a refused merge wrote the kubeconfig"
expect_exit 0 kina-kube merge --kubeconfig "$T" --lock-timeout 1h < "$TEST_TMP/alice.rec"
ok "lock timeouts"

tok() { kina-kube token --cluster c1 "$@" | cat; }
expect_exit 64 tok --ttl 9223372036854775807ms
assert_eq "$ERR" 'kina-kube: error: invalid --ttl "9223372036854775807ms": too large (at most 10000y)'
expect_exit 64 tok --ttl 999999y
expect_exit 64 tok --ttl 2y
assert_eq "$ERR" 'kina-kube: error: invalid --ttl "2y": must be at most 1y'
expect_exit 64 tok --ttl 0s
assert_contains "$ERR" 'invalid --ttl "0s": must be at least 1s'
expect_exit 0 tok --ttl 1y
exp=$(jq -r .expires <<<"$OUT")
[[ "$exp" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$ ]] || fail "expires is not RFC 3339: $exp"
[ "$(date -u -d "$exp" +%s)" -gt "$(date +%s)" ] || fail "a 1y token expires in the past: $exp"
ok "token ttl"

expect_exit 64 kina-kube sign --cluster c1 --user bob --server "$S" --ttl 9223372036854775807ms --out "$TEST_TMP/b.yaml"
assert_contains "$ERR" 'invalid --ttl "9223372036854775807ms"'
expect_exit 64 kina-kube sign --cluster c1 --user bob --server "$S" --ttl 11y --out "$TEST_TMP/b.yaml"
assert_eq "$ERR" 'kina-kube: error: invalid --ttl "11y": must be at most 10y'
expect_exit 64 kina-kube pki issue --cluster c1 --cn x --ttl 999999y --out "$TEST_TMP/o"
assert_contains "$ERR" 'invalid --ttl "999999y"'
[ ! -e "$TEST_TMP/b.yaml" ] && [ ! -e "$TEST_TMP/o" ] || fail "a refused TTL wrote a file"
expect_exit 64 kina-kube pki init --cluster c2 --ca-ttl 999999y
assert_contains "$ERR" 'invalid --ca-ttl "999999y": too large (at most 10000y)'
expect_exit 64 kina-kube pki init --cluster c2 --ca-ttl 23h
assert_eq "$ERR" 'kina-kube: error: invalid --ca-ttl "23h": must be at least 1d'
[ ! -e "$KINA_HOME/clusters/c2/pki" ] || fail "pki written for a bad CA TTL"
ok "certificate ttls"
