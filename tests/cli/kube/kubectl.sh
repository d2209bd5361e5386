# kubectl (Debian's kubernetes-client) against kina's kubeconfigs: it reads a
# merged config (view, get-contexts, use-context), and `get --raw /` reaches an
# `openssl s_server -Verify` serving an apiserver leaf from `pki issue`: the
# handshake succeeds with the signed client certificate, fails with an expired
# or a foreign one.
source "$KINA_CLI_LIB"
kina-kube pki init --cluster c1 >/dev/null 2>&1
kina-kube pki init --cluster c2 >/dev/null 2>&1
P="$KINA_HOME/clusters/c1/pki"
port=$(free_port)
S="https://127.0.0.1:$port"

kina-kube pki issue --cluster c1 --cn kube-apiserver --usage server --san kubernetes --san 127.0.0.1 --out "$TEST_TMP/srv" --name apiserver >/dev/null 2>&1
openssl s_server -accept "127.0.0.1:$port" -cert "$TEST_TMP/srv/apiserver.crt" -key "$TEST_TMP/srv/apiserver.key" \
  -CAfile "$P/ca.crt" -Verify 1 -verify_return_error -www -quiet > "$TEST_TMP/s_server.log" 2>&1 < /dev/null &
track_pid $!
serving() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
wait_for 30 "openssl s_server to listen on 127.0.0.1:$port" serving

# A merged config with another cluster in it.
cat > "$HOME/other.yaml" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: other-user
  user: {token: abc}
contexts:
- name: other
  context: {cluster: other, user: other-user, namespace: team}
current-context: other
YAML
kina-kube merge --from "$HOME/other.yaml" >/dev/null 2>&1
kina-kube sign --cluster c1 --user alice --group dev --server "$S" 2>/dev/null | kina-kube merge >/dev/null 2>&1

expect_exit 0 kubectl config get-contexts
OUT=$(tr -s ' ' <<<"$OUT")
assert_contains "$OUT" "* kina-c1 kina-c1 alice@kina-c1"
assert_contains "$OUT" " other other other-user team"
expect_exit 0 kubectl config view -o jsonpath='{.contexts[?(@.name=="kina-c1")].context.user}'
assert_eq "$OUT" alice@kina-c1
expect_exit 0 kubectl config view
assert_contains "$OUT" "client-key-data: DATA+OMITTED"
expect_exit 0 kubectl config use-context other
assert_eq "$(kubectl config current-context)" other
expect_exit 0 kubectl config use-context kina-c1
ok "kubectl reads the merged config"

# The handshake: the signed client certificate gets through to s_server's page.
expect_exit 0 kubectl get --raw / --request-timeout 10s
assert_contains "$OUT" "s_server"
assert_not_contains "$OUT" "no client certificate available"
ok "signed client certificate accepted"

# Expired: a 1s certificate, used after it ran out.
kina-kube sign --cluster c1 --user late --ttl 1s --server "$S" --out "$TEST_TMP/expired.yaml" >/dev/null 2>&1
kubectl --kubeconfig "$TEST_TMP/expired.yaml" config view --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d > "$TEST_TMP/expired.crt"
# The certificate must run out first (time has to pass): poll until openssl
# says it has, instead of sleeping a guessed 2.2 s.
expired() { v=$(openssl verify -CAfile "$P/ca.crt" "$TEST_TMP/expired.crt" 2>&1 || true); [[ $v == *"certificate has expired"* ]]; }
wait_for 30 "the 1s certificate to expire ($(openssl x509 -noout -enddate < "$TEST_TMP/expired.crt"))" expired
assert_contains "$v" "certificate has expired"
expect_exit 1 kubectl --kubeconfig "$TEST_TMP/expired.yaml" get --raw / --request-timeout 10s
assert_not_contains "$OUT" "s_server"
assert_contains "$ERR" "certificate"
ok "expired client certificate refused"

# Foreign: a client certificate from another cluster's CA (the server CA is right).
kina-kube sign --cluster c2 --user alice --server "$S" --out "$TEST_TMP/foreign.yaml" >/dev/null 2>&1
ca1=$(base64 -w0 < "$P/ca.crt")
sed -i "s|certificate-authority-data: .*|certificate-authority-data: $ca1|" "$TEST_TMP/foreign.yaml"
expect_exit 1 kubectl --kubeconfig "$TEST_TMP/foreign.yaml" get --raw / --request-timeout 10s
assert_not_contains "$OUT" "s_server"
ok "foreign client certificate refused"

# And kubectl refuses a server whose certificate is not from the kubeconfig's CA.
sed -i "s|certificate-authority-data: .*|certificate-authority-data: $(base64 -w0 < "$KINA_HOME/clusters/c2/pki/ca.crt")|" "$TEST_TMP/foreign.yaml"
expect_exit 1 kubectl --kubeconfig "$TEST_TMP/foreign.yaml" get --raw / --request-timeout 10s
assert_contains "$ERR" "certificate signed by unknown authority"
ok "server from another CA refused by kubectl"
grep -Eq 'certificate expired|certificate has expired' "$TEST_TMP/s_server.log" || fail "s_server log does not show the expired certificate"
