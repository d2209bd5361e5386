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
assert_contains "$ERR" 'invalid --ca-ttl "10q"'
# Regression: a CA ending after year 9999 was written with an invalid notAfter.
expect_exit 64 kina-kube pki init --cluster c2 --ca-ttl 9000y
assert_eq "$ERR" 'kina-kube: error: --ca-ttl 9000y: ends after 9999-12-31, the last date X.509 can express'
[ ! -e "$KINA_HOME/clusters/c2/pki" ] || fail "pki written for a CA TTL past 9999"
expect_exit 66 kina-kube pki export --cluster nopki --dir "$TEST_TMP/x"
assert_contains "$ERR" 'cluster "nopki": has no PKI'
# Regression: an empty path was an uncaught exception (exit 70, "a bug").
expect_exit 64 kina-kube pki export --cluster c1 --dir ""
assert_eq "$ERR" 'kina-kube: error: invalid --dir "": must not be empty'
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
assert_eq "$(jq -r 'select(.tool=="kina-kube" and .action=="pki-init") | .outcome' "$log" | sort | uniq -c | tr -s ' ' | xargs)" "5 error 2 ok"
assert_eq "$(jq -r 'select(.action=="pki-export" and .outcome=="ok") | .target' "$log")" "$TEST_TMP/pki"
ok "audit"

# Key PEM types as kubeadm writes them (its v1.20 certificate download refuses
# PKCS#8 ECDSA keys), and an RSA service-account key whatever the CAs' algorithm
# (its check before join --control-plane refuses any other); checked against a
# real kubeadm v1.20.2 by bench/kube/kubeadm-check.sh.
expect_exit 0 kina-kube pki init --cluster e1 --algorithm ecdsa-p256
expect_exit 0 kina-kube pki export --cluster e1 --dir "$TEST_TMP/e1"
for f in ca front-proxy-ca etcd/ca; do
  assert_eq "$(head -n1 "$TEST_TMP/e1/$f.key")" "-----BEGIN EC PRIVATE KEY-----" "$f.key of an ecdsa-p256 PKI"
  assert_eq "$(head -n1 "$TEST_TMP/pki/$f.key")" "-----BEGIN RSA PRIVATE KEY-----" "$f.key of an rsa-2048 PKI"
done
for d in e1 pki; do
  assert_eq "$(head -n1 "$TEST_TMP/$d/sa.key")" "-----BEGIN RSA PRIVATE KEY-----" "sa.key ($d)"
  assert_contains "$(openssl pkey -in "$TEST_TMP/$d/sa.key" -noout -text)" "Private-Key: (2048 bit" "sa.key size ($d)"
done
ok "key formats: SEC1/PKCS#1 as kubeadm writes them, RSA service-account key"

# Export is all or nothing (regression: it wrote file by file, so a failure
# midway left the certificates without their keys).
# A write that fails midway: under a 1536-byte file size limit the RSA
# certificates fit and the RSA keys do not.
kina-kube pki init --cluster r1 --algorithm rsa-2048 >/dev/null 2>&1
rc=0
( trap '' XFSZ; exec prlimit --fsize=1536 kina-kube pki export --cluster r1 --dir "$TEST_TMP/rsa" ) >/dev/null 2>"$TEST_TMP/err" || rc=$?
[ "$rc" -eq 74 ] || fail "export under a file size limit: exit $rc: $(cat "$TEST_TMP/err")"
grep >/dev/null 'kina-kube: error: writing .*File too large' "$TEST_TMP/err" || fail "error: $(cat "$TEST_TMP/err")"
[ ! -e "$TEST_TMP/rsa" ] || fail "a failed export left files: $(find "$TEST_TMP/rsa" | xargs)"
ls -a "$TEST_TMP" | grep >/dev/null '^\.rsa\.tmp' && fail "a failed export left its temporary directory"
# An existing directory where one target cannot be replaced: nothing in it changes.
mkdir -p "$TEST_TMP/pre/sa.key/sub"
echo old >"$TEST_TMP/pre/ca.crt"
expect_exit 73 kina-kube pki export --cluster c1 --dir "$TEST_TMP/pre"
assert_eq "$ERR" "kina-kube: error: cannot write $TEST_TMP/pre/sa.key: exists and is not a regular file"
assert_eq "$(cat "$TEST_TMP/pre/ca.crt")" old "ca.crt after a refused export"
assert_eq "$(find "$TEST_TMP/pre" | sort | xargs)" "$TEST_TMP/pre $TEST_TMP/pre/ca.crt $TEST_TMP/pre/sa.key $TEST_TMP/pre/sa.key/sub"
# Exporting over an earlier export replaces every file, modes kept, no leftovers.
expect_exit 0 kina-kube pki export --cluster r1 --dir "$TEST_TMP/pki"
cmp -s "$TEST_TMP/pki/ca.crt" "$KINA_HOME/clusters/r1/pki/ca.crt" || fail "ca.crt not replaced"
cmp -s "$TEST_TMP/pki/etcd/ca.crt" "$KINA_HOME/clusters/r1/pki/etcd/ca.crt" || fail "etcd/ca.crt not replaced"
assert_eq "$(openssl pkey -in "$TEST_TMP/pki/sa.key" -pubout)" "$(cat "$TEST_TMP/pki/sa.pub")" "sa pair after re-export"
assert_eq "$(stat -c %a "$TEST_TMP/pki/etcd/ca.key") $(stat -c %a "$TEST_TMP/pki/ca.crt") $(stat -c %a "$TEST_TMP/pki")" "600 644 700"
assert_eq "$(ls -A "$TEST_TMP/pki" | xargs)" "ca.crt ca.key etcd front-proxy-ca.crt front-proxy-ca.key sa.key sa.pub"
# A trailing slash names the same directory (regression: it made the rename fail).
expect_exit 0 kina-kube pki export --cluster c1 --dir "$TEST_TMP/slash/"
assert_eq "$(jq_field "$OUT" .dir)" "$TEST_TMP/slash"
assert_eq "$(ls -A "$TEST_TMP/slash" | xargs)" "ca.crt ca.key etcd front-proxy-ca.crt front-proxy-ca.key sa.key sa.pub"
ok "export all or nothing"

# Concurrent exports into one DIR run one at a time (DIR's lock, install.hpp):
# each round starts six exports of two clusters at once, into a DIR that does
# not exist yet in the first round; afterwards DIR holds one cluster's set
# whole (keys matching their certificates), never a mix, and no leftovers.
one_set() {
  local d=$1 c f
  for c in c1 r1; do
    cmp -s "$d/ca.crt" "$KINA_HOME/clusters/$c/pki/ca.crt" || continue
    for f in front-proxy-ca.crt etcd/ca.crt sa.pub; do cmp -s "$d/$f" "$KINA_HOME/clusters/$c/pki/$f" || return 1; done
    for f in ca front-proxy-ca etcd/ca; do
      [ "$(openssl x509 -in "$d/$f.crt" -noout -pubkey)" = "$(openssl pkey -in "$d/$f.key" -pubout)" ] || return 1
    done
    [ "$(openssl pkey -in "$d/sa.key" -pubout)" = "$(cat "$d/sa.pub")" ]
    return
  done
  return 1
}
for round in 1 2 3 4 5; do
  pids=()
  for i in 1 2 3 4 5 6; do
    c=c1; [ $((i % 2)) = 0 ] && c=r1
    kina-kube pki export --cluster "$c" --dir "$TEST_TMP/shared" >/dev/null 2>"$TEST_TMP/shared.$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "round $round: a concurrent export failed: $(cat "$TEST_TMP"/shared.*.err)"; done
  one_set "$TEST_TMP/shared" || fail "round $round: $TEST_TMP/shared holds a mix of two clusters' files"
  assert_eq "$(ls -A "$TEST_TMP/shared" | xargs)" "ca.crt ca.key etcd front-proxy-ca.crt front-proxy-ca.key sa.key sa.pub"
  assert_eq "$(find "$TEST_TMP" -maxdepth 1 -name '.shared.tmp.*' | wc -l)" 0 "staging directories left beside DIR"
done
ok "concurrent exports into one directory: one at a time, never a mix"

# The rollback of a failed export is tests/cli/kube/rollback.sh (it needs chattr +i).

# Regression: exporting into $KINA_HOME (the sealed PKI directory itself, say)
# put the CA keys there in clear.
expect_exit 80 kina-kube pki export --cluster c1 --dir "$P"
assert_eq "$(head -1 <<<"$ERR")" "kina-kube: error: refusing to export keys in clear into $P: it is inside KINA_HOME ($KINA_HOME), where keys are kept sealed"
expect_exit 80 kina-kube pki export --cluster c1 --dir "$KINA_HOME/../home/x"
grep -rq 'PRIVATE KEY' "$KINA_HOME/clusters" && fail "a clear private key inside KINA_HOME"
[ ! -e "$KINA_HOME/x" ] || fail "export created a directory inside KINA_HOME"
ok "no clear keys inside KINA_HOME"
