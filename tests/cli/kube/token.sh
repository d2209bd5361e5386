# kina-kube token: a bootstrap token from a CSPRNG and the discovery hash of the
# cluster CA (ECDSA and RSA); the secret goes down a pipe, never to a terminal.
source "$KINA_CLI_LIB"

for alg in ecdsa-p256 rsa-2048; do
  kina-kube pki init --cluster "t-${alg%%-*}" --algorithm "$alg" >/dev/null 2>&1
  P="$KINA_HOME/clusters/t-${alg%%-*}/pki"
  expect_exit 0 kina-kube token --cluster "t-${alg%%-*}"
  assert_eq "$(jq_field "$OUT" .kind)" JoinToken
  tok=$(jq_field "$OUT" .token)
  [[ "$tok" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || fail "token has the wrong shape"
  assert_eq "$(jq_field "$OUT" .tokenID)" "${tok%%.*}"
  # kubeadm's hash: sha256 over the DER SubjectPublicKeyInfo (the usual openssl recipe).
  want=$(openssl x509 -pubkey -in "$P/ca.crt" -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)
  assert_eq "$(jq_field "$OUT" '.caCertHashes[0]')" "sha256:$want"
  exp=$(date -d "$(jq_field "$OUT" .expires)" +%s)
  d=$(( exp - $(date +%s) - 86400 )); [ "${d#-}" -le 5 ] || fail "default token TTL is not 24h"
  # The secret is not in the audit log.
  grep -q "${tok#*.}" "$KINA_HOME/audit/log.jsonl" && fail "token secret in the audit log"
done
ok "shape and hash"

# 200 tokens: all distinct, every character of the alphabet shows up.
for _ in $(seq 200); do kina-kube token --cluster t-ecdsa --ttl 1h; done | jq -r .token > "$TEST_TMP/tokens"
assert_eq "$(sort -u "$TEST_TMP/tokens" | wc -l)" 200
assert_eq "$(tr -d '.\n' < "$TEST_TMP/tokens" | fold -w1 | sort -u | paste -sd '')" "0123456789abcdefghijklmnopqrstuvwxyz"
ok "randomness"

# On a terminal: refused, nothing printed.
if command -v script >/dev/null; then
  rc=0
  script -qec "kina-kube token --cluster t-ecdsa" "$TEST_TMP/tty.log" >/dev/null 2>&1 || rc=$?
  assert_eq "$rc" 80 "exit status on a terminal"
  assert_contains "$(cat "$TEST_TMP/tty.log")" "refusing to print a bootstrap token on a terminal"
  assert_not_contains "$(cat "$TEST_TMP/tty.log")" '"token"'
  ok "terminal refused"
fi

# Regression: a redirection under umask 022 left the token in a world-readable file.
rc=0; ( umask 022; exec kina-kube token --cluster t-ecdsa > "$TEST_TMP/tok.json" ) 2>"$TEST_TMP/err" || rc=$?
assert_eq "$rc" 80 "exit status into a 0644 file"
assert_eq "$(cat "$TEST_TMP/err" | head -1)" "kina-kube: error: refusing to write a bootstrap token into a file that others can read: stdout is a file with mode 0644"
[ ! -s "$TEST_TMP/tok.json" ] || fail "token written into a world-readable file"
( umask 077; exec kina-kube token --cluster t-ecdsa > "$TEST_TMP/tok2.json" )
[[ "$(jq -r .token "$TEST_TMP/tok2.json")" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || fail "no token in a 0600 file"
ok "world-readable file refused"

expect_exit 66 kina-kube token --cluster nopki
assert_contains "$ERR" 'cluster "nopki": has no PKI'
expect_exit 64 kina-kube token --cluster t-ecdsa --ttl 0s
