# kina-kube pki init / export: the three CAs and the service-account pair,
# sealed at rest, exported in kubeadm's layout; refusals leave nothing behind.
source "$KINA_CLI_LIB"
export KINA_PASSPHRASE=test-passphrase-pki
P="$KINA_HOME/clusters/c1/pki"

expect_exit 0 kina-kube pki init --cluster c1
assert_eq "$(jq_field "$OUT" .kind)" PKI
assert_eq "$(jq_field "$OUT" .algorithm)" ecdsa-p256
assert_eq "$(jq_field "$OUT" '[.cas[].subject]|join(" ")')" "CN=kubernetes CN=front-proxy-ca CN=etcd-ca"
for f in ca front-proxy-ca etcd/ca; do
  openssl x509 -in "$P/$f.crt" -noout -ext basicConstraints,keyUsage | grep >/dev/null 'CA:TRUE' || fail "$f is not a CA"
  openssl x509 -in "$P/$f.crt" -noout -ext keyUsage | grep >/dev/null 'Certificate Sign' || fail "$f cannot sign"
  openssl verify -CAfile "$P/$f.crt" "$P/$f.crt" >/dev/null || fail "$f does not verify against itself"
  openssl x509 -in "$P/$f.crt" -noout -text | grep >/dev/null 'id-ecPublicKey' || fail "$f is not ECDSA"
  # Keys at rest: sealed, never PEM, mode 0600.
  assert_eq "$(stat -c %a "$P/$f.key.sealed")" 600
  head -c 6 "$P/$f.key.sealed" | grep >/dev/null 'PRIVATE' && fail "$f key is stored in clear"
  [ ! -e "$P/$f.key" ] || fail "clear key $f.key in the PKI dir"
done
grep -rq 'PRIVATE KEY' "$P" && fail "a clear private key in $P"
# CA validity: 10 years by default (checked to the day).
end=$(date -d "$(openssl x509 -in "$P/ca.crt" -noout -enddate | cut -d= -f2)" +%s)
want=$(( $(date +%s) + 3650*86400 ))
[ $(( end - want )) -lt 86400 ] && [ $(( want - end )) -lt 86400 ] || fail "CA notAfter $end is not 10y from now"
# The record's hash is sha256 of the DER SubjectPublicKeyInfo.
hash=$(openssl x509 -in "$P/ca.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
assert_eq "$(jq_field "$OUT" .caCertHash)" "sha256:$hash"
ok "init"

# A second init is refused and changes nothing; --force replaces.
before=$(sha256sum "$P/ca.crt")
expect_exit 73 kina-kube pki init --cluster c1
assert_contains "$ERR" 'kina-kube: error: cluster "c1": already has a PKI in'
assert_contains "$ERR" 'hint: pass --force'
assert_eq "$(sha256sum "$P/ca.crt")" "$before"
expect_exit 0 kina-kube pki init --cluster c1 --force --algorithm rsa-2048 --ca-ttl 2y
[ "$(sha256sum "$P/ca.crt")" != "$before" ] || fail "--force did not replace the CA"
openssl x509 -in "$P/ca.crt" -noout -text | grep >/dev/null 'Public-Key: (2048 bit)' || fail "not RSA 2048"
openssl x509 -in "$P/ca.crt" -noout -text | grep >/dev/null 'rsaEncryption' || fail "not RSA"
ls -a "$KINA_HOME/clusters/c1" | grep >/dev/null '^\.pki' && fail "temporary directories left behind"
ok "refuse and force"

# Bad input: one-line errors, nothing written.
expect_exit 64 kina-kube pki init --cluster c2 --algorithm dsa-1024
assert_eq "$ERR" 'kina-kube: error: unknown algorithm "dsa-1024": use ecdsa-p256 or rsa-2048'
[ ! -e "$KINA_HOME/clusters/c2/pki" ] || fail "pki written for a bad algorithm"
expect_exit 64 kina-kube pki init --cluster Bad_Name
assert_contains "$ERR" 'invalid cluster name "Bad_Name"'
expect_exit 64 kina-kube pki init --cluster c2 --ca-ttl 10q
assert_contains "$ERR" 'invalid duration "10q"'
expect_exit 66 kina-kube pki export --cluster nopki --dir "$TEST_TMP/x"
assert_contains "$ERR" 'cluster "nopki": has no PKI'
ok "bad input"

# Export: kubeadm's layout, keys 0600 and matching their certificates.
expect_exit 0 kina-kube pki export --cluster c1 --dir "$TEST_TMP/pki"
assert_eq "$(jq_field "$OUT" .kind)" PKIExport
for f in ca front-proxy-ca etcd/ca; do
  assert_eq "$(stat -c %a "$TEST_TMP/pki/$f.key")" 600
  cmp -s "$TEST_TMP/pki/$f.crt" "$P/$f.crt" || fail "$f.crt differs from the stored one"
  a=$(openssl x509 -in "$TEST_TMP/pki/$f.crt" -noout -pubkey)
  b=$(openssl pkey -in "$TEST_TMP/pki/$f.key" -pubout)
  assert_eq "$a" "$b" "$f key matches cert"
done
assert_eq "$(stat -c %a "$TEST_TMP/pki/sa.key")" 600
assert_eq "$(openssl pkey -in "$TEST_TMP/pki/sa.key" -pubout)" "$(cat "$TEST_TMP/pki/sa.pub")" "sa pair"
ok "export"

# Opening the sealed keys needs the same passphrase.
KINA_PASSPHRASE=wrong expect_exit 80 kina-kube pki export --cluster c1 --dir "$TEST_TMP/pki2"
assert_contains "$ERR" 'wrong passphrase'
[ ! -e "$TEST_TMP/pki2" ] || fail "export wrote with a wrong passphrase"

# Every mutating command left an audit event (the failed ones too).
log="$KINA_HOME/audit/log.jsonl"
assert_eq "$(jq -r 'select(.tool=="kina-kube" and .action=="pki-init") | .outcome' "$log" | sort | uniq -c | tr -s ' ' | xargs)" "4 error 2 ok"
assert_eq "$(jq -r 'select(.action=="pki-export" and .outcome=="ok") | .target' "$log")" "$TEST_TMP/pki"
ok "audit"
