# e2e-cluster: `kina create cluster` from a kind config with one control plane
# and one worker, under TCG, with real Kubernetes from the node image:
# nodes Ready and kube-system Running; an HTTP image built here and loaded with
# `kina load image-archive` serves as a Deployment on the worker, reached from
# a pod on the control plane by its Service DNS name and from the host through
# extraPortMappings; a deny-all NetworkPolicy blocks the pod-to-pod call; a PVC
# of the default StorageClass binds; a least-privilege kubeconfig is refused
# until a RoleBinding grants reads in one namespace; a Secret is encrypted in
# etcd's files; stop and start bring the cluster back; delete leaves no
# process, file or lease; the audit log is intact and lists every step.
# Slow (about 15 minutes on 2 cores under TCG): it runs alone, after node-image,
# whose cached build it reuses.
real_home=$HOME
go_env=""
if command -v go >/dev/null 2>&1; then go_env=$(go env GOMODCACHE GOCACHE GOPATH | paste -sd' '); fi
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

[ "$(id -u)" = 0 ] || { echo "skip: node VMs and the node image build need root"; exit 77; }
command -v kubectl >/dev/null || { echo "skip: kubectl is not installed"; exit 77; }
[ -x /bin/busybox ] || { echo "skip: busybox-static is not installed (the test image's HTTP server)"; exit 77; }
if [ -n "$go_env" ]; then set -- $go_env; export GOMODCACHE=$1 GOCACHE=$2 GOPATH=$3; fi
export KINA_CACHE_DIR="${KINA_CACHE_DIR:-${XDG_CACHE_HOME:-$real_home/.cache}/kina}"
export KUBECONFIG="$TEST_TMP/kubeconfig"
C=e2e
K="kubectl --context kina-$C"

cleanup_cluster() { kina delete cluster --name "$C" >/dev/null 2>&1 || true; }
# (the test's own exit status survives the cleanup: _kina_cleanup exits with $?)
trap 'rc=$?; set +e; cleanup_cluster; (exit $rc); _kina_cleanup' EXIT

fetch_kernel

# An HTTP server image: busybox httpd serving one page on 8080.
root=$TEST_TMP/http-root
mkdir -p "$root/bin" "$root/www" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in sh wget cat echo ls sleep mkdir; do ln -s busybox "$root/bin/$a"; done
echo "hello from kina" > "$root/www/index.html"
expect_exit 0 kina-image build --rootfs "$root" --tag kina.test/http:1 \
  --entrypoint /bin/busybox --cmd httpd --cmd -f --cmd -p --cmd 8080 --cmd -h --cmd /www
expect_exit 0 kina-image export kina.test/http:1 --out "$TEST_TMP/http.tar"

hostport=$(free_port)
cat > "$TEST_TMP/cluster.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 30080
    hostPort: $hostport
    listenAddress: 127.0.0.1
- role: worker
EOF

# 1. Create.
expect_exit 0 kina create cluster --name "$C" --config "$TEST_TMP/cluster.yaml" --wait 20m
echo "$ERR" >&2
assert_contains "$ERR" "✓ Booting nodes"
assert_contains "$ERR" "✓ Starting the control plane"
assert_contains "$ERR" "✓ Joining worker nodes"
expect_exit 0 kina get clusters
assert_eq "$OUT" "$C"
expect_exit 0 kina get nodes --name "$C"
assert_eq "$(echo "$OUT" | sort | tr '\n' ' ')" "$C-control-plane $C-worker "
ok "cluster created"

# 2. Nodes Ready, kube-system Running.
expect_exit 0 $K get nodes -o json
assert_eq "$(jq_field "$OUT" '[.items[] | select(.status.conditions[] | .type == "Ready" and .status == "True")] | length')" 2 "Ready nodes"
all_running() {
  out=$($K get pods -A -o json) || return 1
  n=$(printf '%s' "$out" | jq '[.items[] | select(.status.phase != "Running")] | length')
  [ "$n" = 0 ] || return 1
  for app in coredns kube-proxy kina-net local-path-provisioner; do
    printf '%s' "$out" | jq -e --arg a "$app" '[.items[] | select(.metadata.name | startswith($a))] | length > 0' >/dev/null || return 1
  done
}
wait_for 900 "every pod Running" all_running
ok "nodes Ready, kube-system Running (CoreDNS, kube-proxy, kina-net, local-path)"

# 3. An image loaded from an archive runs on the worker; DNS and the pod network across nodes.
expect_exit 0 kina load image-archive "$TEST_TMP/http.tar" --name "$C"
cat > "$TEST_TMP/web.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: $C-worker}
      containers:
      - {name: web, image: kina.test/http:1, imagePullPolicy: Never, ports: [{containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeSelector: {kubernetes.io/hostname: $C-control-plane}
  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
  containers:
  - {name: client, image: kina.test/http:1, imagePullPolicy: Never, command: [/bin/busybox, sleep, "100000"]}
EOF
expect_exit 0 $K apply -f "$TEST_TMP/web.yaml"
expect_exit 0 $K rollout status deployment/web --timeout=600s
expect_exit 0 $K wait --for=condition=Ready pod/client --timeout=600s
# (busybox's own `wget -T` crashes in Debian's busybox-static 1.35: its timeout applet instead)
fetch_web() { $K exec client -- /bin/busybox timeout 10 /bin/busybox wget -q -O - http://web.default.svc.cluster.local/ 2>/dev/null | grep -q "hello from kina"; }
wait_for 300 "the client pod on the control plane reaches web by its Service name" fetch_web
ok "pod on $C-control-plane -> Service web -> pod on $C-worker"
host_fetch() { curl -sf --max-time 5 "http://127.0.0.1:$hostport/" | grep -q "hello from kina"; }
wait_for 300 "the host reaches web through the port mapping" host_fetch
ok "host 127.0.0.1:$hostport -> NodePort 30080"

# 4. A deny-all ingress NetworkPolicy blocks the pod-to-pod call.
cat > "$TEST_TMP/deny.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress]
EOF
expect_exit 0 $K apply -f "$TEST_TMP/deny.yaml"
blocked() { ! $K exec client -- /bin/busybox timeout 5 /bin/busybox wget -q -O - http://web.default.svc.cluster.local/ >/dev/null 2>&1; }
wait_for 120 "the deny-all policy to block client -> web" blocked
sleep 5
blocked || fail "client reached web again with the deny-all policy in place"
expect_exit 0 $K delete networkpolicy deny-all
wait_for 120 "client -> web once the policy is gone" fetch_web
ok "deny-all NetworkPolicy blocks pod-to-pod traffic, and only while it exists"

# 5. A PVC of the default StorageClass binds; a pod writes and reads it.
cat > "$TEST_TMP/pvc.yaml" <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  restartPolicy: Never
  containers:
  - name: w
    image: kina.test/http:1
    imagePullPolicy: Never
    command: [/bin/busybox, sh, -c, "echo persisted > /data/f && cat /data/f"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
EOF
expect_exit 0 $K apply -f "$TEST_TMP/pvc.yaml"
writer_done() { [ "$($K get pod writer -o jsonpath='{.status.phase}')" = Succeeded ]; }
wait_for 600 "the PVC writer pod to succeed" writer_done
expect_exit 0 $K logs writer
assert_eq "$OUT" "persisted"
expect_exit 0 $K get pvc data -o jsonpath='{.status.phase} {.spec.storageClassName}'
assert_eq "$OUT" "Bound standard"
ok "PVC of StorageClass standard bound, written and read"

# 6. A least-privilege kubeconfig.
expect_exit 0 kina get kubeconfig --name "$C" --user dev --group devs --ttl 1h
printf '%s\n' "$OUT" > "$TEST_TMP/dev.kubeconfig"
D="kubectl --kubeconfig $TEST_TMP/dev.kubeconfig"
expect_exit 0 $K create namespace team
expect_exit 0 $K -n team create secret generic team-secret --from-literal=k=v
expect_exit 1 $D create clusterrolebinding dev-admin --clusterrole=cluster-admin --group=devs
assert_contains "$ERR" "forbidden"
expect_exit 1 $D -n team get secrets
assert_contains "$ERR" "forbidden"
expect_exit 0 $K -n team create role reader --verb=get,list --resource=secrets,pods
expect_exit 0 $K -n team create rolebinding devs-read --role=reader --group=devs
readable() { $D -n team get secrets team-secret >/dev/null 2>&1; }
wait_for 60 "dev to read secrets in team" readable
expect_exit 1 $D -n default get secrets
assert_contains "$ERR" "forbidden"
expect_exit 1 $D create clusterrolebinding dev-admin --clusterrole=cluster-admin --group=devs
ok "dev/devs: refused cluster-wide, reads only namespace team once bound"
# The admin kubeconfig create merged is not system:masters.
expect_exit 0 kubectl config view --raw -o jsonpath="{.users[?(@.name==\"kina-admin@kina-$C\")].user.client-certificate-data}"
echo "$OUT" | base64 -d > "$TEST_TMP/admin.crt"
subject=$(openssl x509 -in "$TEST_TMP/admin.crt" -noout -subject)
assert_contains "$subject" "kina:cluster-admins"
assert_not_contains "$subject" "system:masters"
ok "the merged admin kubeconfig is group kina:cluster-admins ($subject)"

# 7. Secrets are encrypted in etcd's files.
expect_exit 0 $K create secret generic raw-check --from-literal=k=kina-plaintext-canary-7f3a
# (the pattern goes on stdin: kina-vm exec records its argv in the audit log,
# which the last check searches for the Secret's value)
etcd_has() { printf '%s\n' "$1" | kina-vm exec -i --cluster "$C" "$C-control-plane" -- sh -c "grep -rl -a -F -f - /var/lib/etcd | head -n 1"; }
encrypted_seen() { [ -n "$(etcd_has 'k8s:enc:secretbox:v1:kina-1')" ]; }
wait_for 120 "the secretbox prefix in etcd's files" encrypted_seen
expect_exit 0 etcd_has kina-plaintext-canary-7f3a
assert_eq "$OUT" "" "files of /var/lib/etcd holding the Secret's value in clear"
expect_exit 0 $K get secret raw-check -o jsonpath='{.data.k}'
assert_eq "$(echo "$OUT" | base64 -d)" "kina-plaintext-canary-7f3a"
ok "Secrets are stored encrypted (secretbox) in etcd and read back in clear through the API"

# 8. Stop and start: the cluster comes back and the Deployment still serves.
expect_exit 0 kina stop cluster --name "$C"
expect_exit 0 kina-vm ls --cluster "$C"
assert_eq "$(echo "$OUT" | jq -r .state | sort -u)" "exited"
expect_exit 0 kina start cluster --name "$C" --wait 20m
expect_exit 0 $K get nodes -o json
assert_eq "$(jq_field "$OUT" '[.items[] | select(.status.conditions[] | .type == "Ready" and .status == "True")] | length')" 2 "Ready nodes after start"
wait_for 1200 "web to serve through the port mapping after start (the control plane and kina-net routes come back first)" host_fetch
ok "stop + start: nodes Ready, web serves"

# 9. Delete: nothing left.
expect_exit 0 kina delete cluster --name "$C"
[ ! -e "$KINA_HOME/clusters/$C" ] || fail "$KINA_HOME/clusters/$C is still there"
if pgrep -f "kina:$C/" >/dev/null; then fail "a QEMU of cluster $C still runs"; fi
if pgrep -f "$KINA_HOME/clusters/$C" >/dev/null; then fail "a process of cluster $C still runs: $(pgrep -af "$KINA_HOME/clusters/$C")"; fi
expect_exit 0 kina get clusters
assert_eq "$OUT" ""
expect_exit 0 kubectl config get-contexts -o name
assert_not_contains "$OUT" "kina-$C"
ok "delete: no process, file, lease or kubeconfig context left"

# 10. The audit log: intact, every step there with the cluster's name.
expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" "true"
expect_exit 0 kina-audit show --cluster "$C" --format json
actions=$(echo "$OUT" | jq -r '"\(.tool)/\(.action)"' | sort -u | tr '\n' ' ')
for a in kina/create-cluster kina-kube/pki-init kina-vm/network-create kina-vm/boot kina-node/init kina-node/addons \
         kina-node/join kina-node/wait kina-kube/sign kina/load-image-archive kina/get-kubeconfig kina/stop-cluster \
         kina/start-cluster kina/delete-cluster; do
  assert_contains "$actions" "$a"
done
assert_not_contains "$OUT" "kina-plaintext-canary"
ok "audit log intact with every step: $actions"
