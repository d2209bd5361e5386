# kina-kube sign: a kubeconfig for a user and groups, signed by the cluster CA,
# with a short default expiry; compared with a golden file and read by kubectl.
source "$KINA_CLI_LIB"
P="$KINA_HOME/clusters/c1/pki"
kina-kube pki init --cluster c1 >/dev/null 2>&1

expect_exit 0 kina-kube sign --cluster c1 --user alice --group dev --group system:viewers --server https://127.0.0.1:6443
rec=$OUT
F=$(jq_field "$rec" .path)
assert_eq "$F" "$KINA_HOME/clusters/c1/kubeconfigs/alice.kubeconfig"
assert_eq "$(jq -c '{kind,cluster,user,groups,context,server}' <<<"$rec")" \
  '{"kind":"Kubeconfig","cluster":"c1","user":"alice","groups":["dev","system:viewers"],"context":"kina-c1","server":"https://127.0.0.1:6443"}'
assert_eq "$(stat -c %a "$F")" 600
# Structure against the golden file (base64 data masked).
diff -u "$KINA_SRC/tests/cli/kube/golden/sign.kubeconfig" <(sed -E 's/(-data: ).*/\1<base64>/' "$F") || fail "kubeconfig differs from golden"
ok "golden"

# The embedded certificate: CN=user, O=groups, client only, signed by the cluster CA, 24h.
yq_data() { kubectl --kubeconfig "$F" config view --raw -o jsonpath="$1" | base64 -d; }
yq_data '{.users[0].user.client-certificate-data}' > "$TEST_TMP/alice.crt"
yq_data '{.users[0].user.client-key-data}' > "$TEST_TMP/alice.key"
yq_data '{.clusters[0].cluster.certificate-authority-data}' > "$TEST_TMP/ca.crt"
cmp -s "$TEST_TMP/ca.crt" "$P/ca.crt" || fail "embedded CA is not the cluster CA"
assert_eq "$(openssl x509 -in "$TEST_TMP/alice.crt" -noout -subject)" "subject=O = dev, O = system:viewers, CN = alice"
assert_eq "$(openssl x509 -in "$TEST_TMP/alice.crt" -noout -ext extendedKeyUsage | tail -1 | xargs)" "TLS Web Client Authentication"
openssl verify -CAfile "$P/ca.crt" "$TEST_TMP/alice.crt" >/dev/null || fail "not signed by the cluster CA"
if openssl verify -CAfile "$P/etcd/ca.crt" "$TEST_TMP/alice.crt" >/dev/null 2>&1; then fail "verifies against etcd CA"; fi
assert_eq "$(openssl x509 -in "$TEST_TMP/alice.crt" -noout -pubkey)" "$(openssl pkey -in "$TEST_TMP/alice.key" -pubout)" "key pair"
end=$(date -d "$(openssl x509 -in "$TEST_TMP/alice.crt" -noout -enddate | cut -d= -f2)" +%s)
d=$(( end - $(date +%s) - 86400 )); [ "${d#-}" -le 5 ] || fail "default TTL is not 24h (off by $d s)"
assert_eq "$(jq_field "$rec" .notAfter)" "$(date -u -d @"$end" +%Y-%m-%dT%H:%M:%S.000Z)"
ok "certificate"

# kubectl reads it back unchanged: view --raw gives the same data.
kubectl --kubeconfig "$F" config view --raw -o json > "$TEST_TMP/view.json"
assert_eq "$(jq -r '.["current-context"]' "$TEST_TMP/view.json")" kina-c1
assert_eq "$(jq -r '.users[0].name' "$TEST_TMP/view.json")" alice@kina-c1
assert_eq "$(jq -r '.clusters[0].cluster.server' "$TEST_TMP/view.json")" https://127.0.0.1:6443
kubectl --kubeconfig "$F" config view --raw > "$TEST_TMP/view.yaml"
expect_exit 0 kina-kube merge --from "$TEST_TMP/view.yaml" --kubeconfig "$TEST_TMP/roundtrip"
kubectl --kubeconfig "$TEST_TMP/roundtrip" config view --raw -o json | jq -S . > "$TEST_TMP/rt.json"
jq -S . "$TEST_TMP/view.json" | diff -u - "$TEST_TMP/rt.json" || fail "round trip through kubectl changed the config"
ok "kubectl round trip"

# RSA, a chosen file, a longer TTL said explicitly.
expect_exit 0 kina-kube sign --cluster c1 --user bob --ttl 30d --algorithm rsa-2048 --server https://10.0.0.1:6443 --out "$TEST_TMP/bob.yaml"
assert_eq "$(jq_field "$OUT" .path)" "$TEST_TMP/bob.yaml"
kubectl --kubeconfig "$TEST_TMP/bob.yaml" config view --raw -o jsonpath='{.users[0].user.client-key-data}' | base64 -d | openssl pkey -noout -text | grep >/dev/null 'Private-Key: (2048 bit' || fail "not an RSA key"
ok "rsa"

# Without --server, the fetched admin kubeconfig's server is used; without either, a clear error.
expect_exit 64 kina-kube sign --cluster c1 --user carol
assert_contains "$ERR" 'kina-kube: error: no API server known for cluster "c1": give --server https://HOST:PORT'
# Names that cannot go into a subject safely: every problem reported, nothing written.
for bad in 'a/b' 'a,b' 'a+b' 'a=b' 'a\b' 'a"b' "a'b" 'a b' "$(printf 'a\tb')" 'CN=x' ''; do
  expect_exit 64 kina-kube sign --cluster c1 --user "$bad" --server https://127.0.0.1:6443
  assert_contains "$ERR" "kina-kube: error: invalid user"
done
expect_exit 64 kina-kube sign --cluster c1 --user ok --group 'g1' --group 'x,O=system:masters' --server https://127.0.0.1:6443
assert_eq "$ERR" "kina-kube: error: invalid group \"x,O=system:masters\": ',' cannot go into a certificate subject safely (use letters, digits and . _ @ : -)"
expect_exit 64 kina-kube sign --cluster c1 --user ok --server http://plain:80
assert_contains "$ERR" 'invalid --server "http://plain:80"'
expect_exit 64 kina-kube sign --cluster c1 --user ok --ttl 10y --server https://127.0.0.1:6443
assert_contains "$ERR" 'goes beyond the validity of the cluster CA'
expect_exit 66 kina-kube sign --cluster nope --user ok --server https://127.0.0.1:6443
[ "$(ls "$KINA_HOME/clusters/c1/kubeconfigs")" = "alice.kubeconfig" ] || fail "a refused sign wrote a file"
assert_eq "$(jq -r 'select(.action=="sign" and .outcome=="ok") | .target' "$KINA_HOME/audit/log.jsonl" | paste -sd' ')" \
  "$KINA_HOME/clusters/c1/kubeconfigs/alice.kubeconfig $TEST_TMP/bob.yaml"
ok "bad input"
