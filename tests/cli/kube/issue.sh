# kina-kube pki issue: kubeadm's leaf profiles, checked field by field with
# openssl; each leaf verifies against its own CA and against no other.
source "$KINA_CLI_LIB"
P="$KINA_HOME/clusters/c1/pki"
kina-kube pki init --cluster c1 >/dev/null 2>&1
O="$TEST_TMP/out"

issue() { expect_exit 0 kina-kube pki issue --cluster c1 --out "$O" "$@"; }
ext() { openssl x509 -in "$O/$1.crt" -noout -ext "$2" 2>/dev/null | tail -n +2 | sed 's/^ *//' | paste -sd' '; }

# name CA usage(s) and other flags -> expected EKU text
issue --ca cluster --cn kube-apiserver --usage server --san kubernetes --san kubernetes.default --san 10.96.0.1 --san 127.0.0.1 --name apiserver
issue --ca cluster --cn kube-apiserver-kubelet-client --org system:masters --usage client --name apiserver-kubelet-client
issue --ca front-proxy --cn front-proxy-client --usage client --name front-proxy-client
issue --ca etcd --cn node1 --usage server --usage client --san localhost --san 127.0.0.1 --san ::1 --name etcd-server
issue --ca etcd --cn node1 --usage peer --san node1 --san 10.89.0.2 --name etcd-peer
issue --ca etcd --cn kube-etcd-healthcheck-client --usage client --name etcd-healthcheck-client
issue --ca etcd --cn kube-apiserver-etcd-client --usage client --name apiserver-etcd-client
assert_eq "$(jq_field "$OUT" .kind)" Certificate
assert_eq "$(jq_field "$OUT" .ca)" etcd
assert_eq "$(stat -c %a "$O/apiserver-etcd-client.key")" 600

declare -A ca_of=([apiserver]=ca [apiserver-kubelet-client]=ca [front-proxy-client]=front-proxy-ca
  [etcd-server]=etcd/ca [etcd-peer]=etcd/ca [etcd-healthcheck-client]=etcd/ca [apiserver-etcd-client]=etcd/ca)
for leaf in "${!ca_of[@]}"; do
  for ca in ca front-proxy-ca etcd/ca; do
    if [ "$ca" = "${ca_of[$leaf]}" ]; then
      openssl verify -CAfile "$P/$ca.crt" "$O/$leaf.crt" >/dev/null || fail "$leaf rejected by its CA $ca"
    else
      if openssl verify -CAfile "$P/$ca.crt" "$O/$leaf.crt" >/dev/null 2>&1; then fail "$leaf accepted by $ca"; fi
    fi
  done
  # The private key is the certificate's.
  assert_eq "$(openssl x509 -in "$O/$leaf.crt" -noout -pubkey)" "$(openssl pkey -in "$O/$leaf.key" -pubout)" "$leaf key"
  assert_eq "$(ext "$leaf" basicConstraints)" "CA:FALSE"
  assert_eq "$(ext "$leaf" keyUsage)" "Digital Signature, Key Encipherment"
done
ok "verify matrix"

assert_eq "$(openssl x509 -in "$O/apiserver.crt" -noout -subject)" "subject=CN = kube-apiserver"
assert_eq "$(ext apiserver extendedKeyUsage)" "TLS Web Server Authentication"
assert_eq "$(ext apiserver subjectAltName)" "DNS:kubernetes, DNS:kubernetes.default, IP Address:10.96.0.1, IP Address:127.0.0.1"
assert_eq "$(openssl x509 -in "$O/apiserver-kubelet-client.crt" -noout -subject)" "subject=O = system:masters, CN = kube-apiserver-kubelet-client"
assert_eq "$(ext apiserver-kubelet-client extendedKeyUsage)" "TLS Web Client Authentication"
assert_eq "$(ext apiserver-kubelet-client subjectAltName)" ""
assert_eq "$(ext etcd-server extendedKeyUsage)" "TLS Web Server Authentication, TLS Web Client Authentication"
assert_eq "$(ext etcd-server subjectAltName)" "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
assert_eq "$(ext etcd-peer extendedKeyUsage)" "TLS Web Server Authentication, TLS Web Client Authentication"
assert_eq "$(ext front-proxy-client extendedKeyUsage)" "TLS Web Client Authentication"
# The issuer's key identifier is the CA's subject key identifier.
assert_eq "$(ext etcd-peer authorityKeyIdentifier | sed 's/^keyid://')" "$(openssl x509 -in "$P/etcd/ca.crt" -noout -ext subjectKeyIdentifier | tail -1 | sed 's/^ *//')"
# Purpose checks as openssl sees them.
openssl verify -purpose sslserver -CAfile "$P/ca.crt" "$O/apiserver.crt" >/dev/null || fail "apiserver not a TLS server cert"
if openssl verify -purpose sslclient -CAfile "$P/ca.crt" "$O/apiserver.crt" >/dev/null 2>&1; then fail "apiserver usable as client"; fi
if openssl verify -purpose sslserver -CAfile "$P/ca.crt" "$O/apiserver-kubelet-client.crt" >/dev/null 2>&1; then fail "client usable as server"; fi
ok "fields"

# Validity: default one year; --ttl is honoured to the second.
expect_exit 0 kina-kube pki issue --cluster c1 --cn short --ttl 90m --out "$O"
end=$(date -d "$(openssl x509 -in "$O/short.crt" -noout -enddate | cut -d= -f2)" +%s)
d=$(( end - $(date +%s) - 5400 )); [ "$d" -le 1 ] && [ "$d" -ge -5 ] || fail "90m TTL is off by $d s"
assert_eq "$(jq_field "$OUT" .notAfter)" "$(date -u -d @"$end" +%Y-%m-%dT%H:%M:%S.000Z)"
expect_exit 0 kina-kube pki issue --cluster c1 --cn year --out "$O"
end=$(date -d "$(openssl x509 -in "$O/year.crt" -noout -enddate | cut -d= -f2)" +%s)
d=$(( end - $(date +%s) - 365*86400 )); [ "${d#-}" -le 5 ] || fail "default TTL is not 365d"
ok "validity"

# Bad input.
expect_exit 64 kina-kube pki issue --cluster c1 --cn x --ttl 10y --out "$O"
assert_contains "$ERR" "kina-kube: error: --ttl 10y: goes beyond the validity of the cluster CA (until "
[ ! -e "$O/x.crt" ] || fail "certificate written despite the TTL error"
expect_exit 64 kina-kube pki issue --cluster c1 --cn 'a,b' --org 'x/y' --san 'bad san' --usage admin --out "$O"
assert_contains "$ERR" 'invalid --cn "a,b"'
assert_contains "$ERR" 'invalid --org "x/y"'
assert_contains "$ERR" 'invalid --san "bad san"'
assert_contains "$ERR" 'unknown usage "admin"'
assert_eq "$(printf '%s\n' "$ERR" | wc -l)" 4 "one line per problem"
expect_exit 64 kina-kube pki issue --cluster c1 --ca kubelet --cn x --out "$O"
# Regression: an empty path was an uncaught exception (exit 70, "a bug").
expect_exit 64 kina-kube pki issue --cluster c1 --cn x --out ""
assert_eq "$ERR" 'kina-kube: error: invalid --out "": must not be empty'
expect_exit 66 kina-kube pki issue --cluster c9 --cn x --out "$O"
assert_eq "$ERR" "$(printf 'kina-kube: error: cluster "c9": has no PKI\nhint: create it with: kina-kube pki init --cluster c9')"
ok "bad input"

# The key and its certificate are written together or not at all (regression:
# the key was written first, and stayed when the certificate could not be).
mkdir -p "$O/blocked.crt/sub"
expect_exit 73 kina-kube pki issue --cluster c1 --cn blocked --out "$O"
assert_eq "$ERR" "kina-kube: error: cannot write $O/blocked.crt: exists and is not a regular file"
[ ! -e "$O/blocked.key" ] || fail "a key without its certificate was left behind"
ls -a "$O" | grep >/dev/null '^\.kina-kube\.tmp' && fail "temporary directory left behind"
# Reissuing replaces both files.
before=$(cat "$O/year.crt")
expect_exit 0 kina-kube pki issue --cluster c1 --cn year --out "$O"
[ "$(cat "$O/year.crt")" != "$before" ] || fail "reissue did not replace year.crt"
assert_eq "$(openssl x509 -in "$O/year.crt" -noout -pubkey)" "$(openssl pkey -in "$O/year.key" -pubout)" "reissued pair"
ok "issue all or nothing"
