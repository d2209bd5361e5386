# A real etcd (Debian's etcd-server) on 127.0.0.1 with server and peer
# certificates from the etcd CA and --client-cert-auth: etcdctl with a client
# certificate from `pki issue --ca etcd` reads and writes; other CAs are refused.
source "$KINA_CLI_LIB"
command -v etcd >/dev/null && command -v etcdctl >/dev/null || fail "etcd and etcdctl are needed (packages etcd-server, etcd-client)"
kina-kube pki init --cluster c1 >/dev/null 2>&1
kina-kube pki init --cluster c2 >/dev/null 2>&1
P="$KINA_HOME/clusters/c1/pki"
C="$TEST_TMP/certs"
iss() { kina-kube pki issue --out "$C" "$@" >/dev/null || fail "pki issue $*"; }
iss --cluster c1 --ca etcd --cn n1 --usage server --usage client --san localhost --san 127.0.0.1 --name server
iss --cluster c1 --ca etcd --cn n1 --usage peer --san 127.0.0.1 --name peer
iss --cluster c1 --ca etcd --cn kube-apiserver-etcd-client --usage client --name client
iss --cluster c1 --ca etcd --cn kube-etcd-healthcheck-client --usage client --name healthcheck
iss --cluster c2 --ca etcd --cn kube-apiserver-etcd-client --usage client --name foreign
iss --cluster c1 --ca cluster --cn kube-apiserver-etcd-client --usage client --name wrong-ca
iss --cluster c1 --ca etcd --cn not-a-client --usage server --name server-only

{ read -r cport; read -r pport; } < <(free_ports 2)
etcd --name n1 --data-dir "$TEST_TMP/etcd" \
  --listen-client-urls "https://127.0.0.1:$cport" --advertise-client-urls "https://127.0.0.1:$cport" \
  --listen-peer-urls "https://127.0.0.1:$pport" --initial-advertise-peer-urls "https://127.0.0.1:$pport" \
  --initial-cluster "n1=https://127.0.0.1:$pport" \
  --cert-file "$C/server.crt" --key-file "$C/server.key" --trusted-ca-file "$P/etcd/ca.crt" --client-cert-auth \
  --peer-cert-file "$C/peer.crt" --peer-key-file "$C/peer.key" --peer-trusted-ca-file "$P/etcd/ca.crt" --peer-client-cert-auth \
  > "$TEST_TMP/etcd.log" 2>&1 &
track_pid $!

ctl() {
  local name=$1; shift
  ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$cport" --cacert "$P/etcd/ca.crt" \
    --cert "$C/$name.crt" --key "$C/$name.key" --dial-timeout 2s --command-timeout 4s "$@"
}
for _ in $(seq 1 100); do
  ctl healthcheck endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
ctl healthcheck endpoint health >/dev/null 2>&1 || { cat "$TEST_TMP/etcd.log" >&2; fail "etcd did not become healthy"; }
ok "etcd up with kina's server and peer certificates"

expect_exit 0 ctl client put /kina/test "hello from kina"
expect_exit 0 ctl client get /kina/test --print-value-only
assert_eq "$OUT" "hello from kina"
ok "client certificate from the etcd CA reads and writes"

for bad in foreign wrong-ca server-only; do
  rc=0
  ctl "$bad" get /kina/test --print-value-only > "$TEST_TMP/out" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || fail "etcd accepted the $bad certificate"
  assert_not_contains "$(cat "$TEST_TMP/out")" "hello from kina"
done
grep -Eq 'bad certificate|unknown certificate authority|certificate signed by unknown authority|rejected connection' "$TEST_TMP/etcd.log" \
  || fail "etcd log does not show the refused handshakes"
ok "certificates from another cluster, another CA, or without clientAuth are refused"
