#!/usr/bin/env bash
# kina-image -> kina-vm -> kina-kube on real parts: a node VM booted from an
# image pulled from a local registry holds /etc/kubernetes/admin.conf (signed
# by the cluster CA, server set to the node's own address as kubeadm writes
# it); kina-kube fetch reads it through the real kina-vm, points it at the
# published API port and merges it; kubectl reads the result; the audit log
# of the whole run verifies.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/vm/vmlib.sh"
cd "$TEST_TMP"

fetch_kernel

# The cluster PKI and the node's admin.conf (what kubeadm init leaves).
expect_exit 0 kina-kube pki init --cluster e2e
expect_exit 0 kina-kube sign --cluster e2e --user kubernetes-admin --group system:masters --ttl 1h \
  --server https://10.0.2.15:6443 --out "$TEST_TMP/admin.conf"
make_rootfs "$TEST_TMP/rootfs"
mkdir -p "$TEST_TMP/rootfs/etc/kubernetes"
cp "$TEST_TMP/admin.conf" "$TEST_TMP/rootfs/etc/kubernetes/admin.conf"
chmod 600 "$TEST_TMP/rootfs/etc/kubernetes/admin.conf"

# The image goes through a real registry: umoci packs, skopeo pushes, kina pulls and unpacks.
port=$(free_port)
cat > registry.yml <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $TEST_TMP/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve registry.yml > registry.log 2>&1 &
track_pid $!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
umoci init --layout oci >/dev/null
umoci new --image oci:node >/dev/null
umoci unpack --image oci:node bundle >/dev/null
cp -a "$TEST_TMP/rootfs/." bundle/rootfs/
umoci repack --image oci:node bundle >/dev/null
umoci config --image oci:node --config.entrypoint /bin/sh --config.cmd -c --config.cmd 'while :; do sleep 3600; done' >/dev/null
skopeo copy --quiet --dest-tls-verify=false oci:oci:node "docker://127.0.0.1:$port/e2e/node:1"

api=$(free_port)
kina-image pull "127.0.0.1:$port/e2e/node:1" --insecure-registry "127.0.0.1:$port" | kina-image unpack \
  | kina-vm boot --name cp1 --cluster e2e --accel tcg --timeout 180s --publish "127.0.0.1:$api:6443" > boot.jsonl
track_pid "$(cat "$(jq -r 'select(.kind=="Machine") | .dir' boot.jsonl)/supervisor.pid")"
machine=$(jq -c 'select(.kind=="Machine")' boot.jsonl)
assert_eq "$(jq_field "$machine" .state)" "running"
assert_eq "$(jq_field "$machine" '.ports[0].hostPort')" "$api"

# fetch through the real kina-vm (by name, and from the Machine record on stdin).
expect_exit 0 kina-kube fetch --machine cp1
assert_eq "$(jq_field "$OUT" .server)" "https://127.0.0.1:$api"
assert_eq "$(jq_field "$OUT" .cluster)" "e2e"
stored=$(jq_field "$OUT" .path)
assert_eq "$(stat -c %a "$stored")" "600" "fetched kubeconfig mode"
expect_exit 0 sh -c "printf '%s\n' '$machine' | kina-kube fetch"
assert_eq "$(jq_field "$OUT" .server)" "https://127.0.0.1:$api"

# The client certificate is the one the node holds, now under kina's names.
export KUBECONFIG="$TEST_TMP/kube/config"
expect_exit 0 sh -c "kina-kube fetch --machine cp1 | kina-kube merge"
kubectl config get-contexts -o name > contexts
assert_eq "$(cat contexts)" "kina-e2e"
assert_eq "$(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')" "https://127.0.0.1:$api"
want=$(grep client-certificate-data "$TEST_TMP/admin.conf" | awk '{print $2}')
got=$(kubectl config view --raw -o jsonpath='{.users[0].user.client-certificate-data}')
assert_eq "$got" "$want" "client certificate"
kubectl config view --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d \
  | openssl x509 -noout -subject | grep -q "CN = kubernetes-admin" || fail "unexpected subject"

expect_exit 0 kina-vm rm -f cp1
[ -z "$(leftovers)" ] || fail "processes left: $(leftovers)"
expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" "true"
for a in pki-init sign pull unpack boot fetch merge rm; do
  grep -q "\"action\":\"$a\"" "$KINA_HOME/audit/log.jsonl" || fail "no audit entry for $a"
done
ok "fetch from a real VM"
