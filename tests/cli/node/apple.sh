# node-apple: `kina create cluster` on the apple backend (a kina/v1alpha1
# config's `backend: apple`) through the whole flow, against the scripted
# `container` of vm-apple (tests/cli/vm/apple/container, 1.0's JSON shapes)
# whose containers' insides are tests/cli/node/apple/guest (it answers
# kubeadm, kubectl and the files kina-node writes the way a node would).
# Shown: the node image loaded into container from kina's store, an apple
# network, one container per node run by REF@DIGEST with its ports on that
# network, readiness through `container exec`, the PKI and the kubeadm config
# (with the container's address) written into the node, kubeadm init and join,
# the manifests applied, the kubeconfig merged; get nodes, load image-archive,
# stop, start and delete; a failed kubeadm removes every container and the
# network; several control planes are refused before anything is made.
# The front end runs as on macOS: flock(1) and setsid(1) are stubs that fail
# and log any use, and `date` answers %N as BSD date does (not a number).
# Nothing here runs Apple's real CLI or a real node (docs/backends.md).
source "$KINA_CLI_LIB"
VM_FAKE_DIR=$(cd "$(dirname "$KINA_VM_TESTLIB")/apple" && pwd)
MACOS_BIN=$TEST_TMP/macos-bin
mkdir -p "$MACOS_BIN"
for t in flock setsid; do
  printf '#!/bin/sh\necho "%s $*" >> "%s/used"\nexit 127\n' "$t" "$MACOS_BIN" > "$MACOS_BIN/$t"
done
real_date=$(command -v date)
printf '#!/bin/sh\ncase "$*" in *%%*N*) echo "date $*" >> "%s/date-N"; exec %s "$(printf %%s "$1" | sed "s/%%3N/3N/g; s/%%N/N/g")" ;; esac\nexec %s "$@"\n' \
  "$MACOS_BIN" "$real_date" "$real_date" > "$MACOS_BIN/date"
chmod +x "$MACOS_BIN"/*
case $("$MACOS_BIN/date" +%s%3N) in *[0-9]3N) ;; *) fail "the BSD-like date stub: $("$MACOS_BIN/date" +%s%3N)" ;; esac
rm -f "$MACOS_BIN/date-N"
export PATH="$MACOS_BIN:$VM_FAKE_DIR:$PATH"
export KUBECONFIG="$TEST_TMP/kubeconfig"
FAKE="$TEST_TMP/fake"   # = $KINA_HOME/../fake, where the fake container looks
mkdir -p "$FAKE"
LOG="$FAKE/log"
# fake_env [KUBEADM_STATUS]
fake_env() {
  printf 'FAKE_CONTAINER_FIXTURE=%q\nFAKE_EXEC_GUEST=%q\nFAKE_KUBEADM_STATUS=%q\n' \
    "$VM_FAKE_DIR/list-1.0.json" "$KINA_SRC/tests/cli/node/apple/guest" "${1:-0}" > "$FAKE/env"
}
echo running > "$FAKE/systemd"   # what `systemctl is-system-running` answers in every container
no_containers() { [ -z "$(ls -A "$FAKE/containers" 2>/dev/null)" ] || fail "containers left: $(ls "$FAKE/containers")"; }

# A node image in kina's store (the real one is built for the host's
# architecture by `kina build node-image`; this one only has /kind/version).
root=$TEST_TMP/node-root
mkdir -p "$root/kind" "$root/sbin"
echo v1.37.2 > "$root/kind/version"
IMG=kina.test/node:v1.37.2
expect_exit 0 kina-image build --rootfs "$root" --tag "$IMG" --entrypoint /sbin/init
DIGEST=$(kina-image inspect "$IMG" | jq -r 'select(.kind=="Image") | .digest')
[ -n "$DIGEST" ] || fail "no digest for $IMG"

# 1. Several control planes: refused before anything is made.
fake_env
: > "$LOG"
printf 'kind: Cluster\napiVersion: kina/v1alpha1\nbackend: apple\nnodes:\n- role: control-plane\n- role: control-plane\n- role: control-plane\n' > "$TEST_TMP/ha.yaml"
expect_exit 69 kina create cluster --name ha --config "$TEST_TMP/ha.yaml" --image "$IMG"
assert_contains "$ERR" "several control planes on the apple backend: not supported yet"
[ ! -e "$KINA_HOME/clusters/ha" ] || fail "a refused create left clusters/ha"
[ ! -s "$LOG" ] || fail "a refused create called container: $(cat "$LOG")"
ok "several control planes refused (69) before anything is made"

# 2. Create.
hostport=$(free_port)
cat > "$TEST_TMP/cluster.yaml" <<EOF
kind: Cluster
apiVersion: kina/v1alpha1
backend: apple
nodes:
- role: control-plane
  extraPortMappings:
  - {containerPort: 30080, hostPort: $hostport, listenAddress: 127.0.0.1}
- role: worker
EOF
expect_exit 0 kina create cluster --name ac --config "$TEST_TMP/cluster.yaml" --image "$IMG" --wait 2m
assert_contains "$ERR" "✓ Loading the node image into container"
assert_not_contains "$ERR" "node kernel"
assert_not_contains "$ERR" "node disk"
assert_contains "$ERR" "✓ Waiting for the nodes to be Ready"
CP=kina-ac-ac-control-plane W=kina-ac-ac-worker
# the image: kina-image's OCI archive of exactly that digest, loaded once
assert_eq "$(grep -c '^image load --input ' "$LOG")" "1" "image loads"
tar -xOf "$FAKE/loaded-image.tar" index.json | grep -q "$DIGEST" || fail "the loaded archive's index does not name $DIGEST"
assert_contains "$(cat "$LOG")" "network create kina-ac-net"
cpport=$(jq -r 'select(.kind=="NodePlan" and .bootstrap) | .extraPortMappings[] | select(.containerPort == 6443) | .hostPort' "$KINA_HOME/clusters/ac/plan.jsonl")
run_cp=$(grep "^run -d --name $CP " "$LOG") || fail "no container run for the control plane"
for want in "--network kina-ac-net" "--publish 127.0.0.1:$cpport:6443/tcp" "--publish 127.0.0.1:$hostport:30080/tcp" \
  "--label kina.cluster=ac" "--label kina.machine=ac-control-plane"; do
  assert_contains "$run_cp" " $want "
done
case $run_cp in *" $IMG@$DIGEST") ;; *) fail "the control plane does not run $IMG@$DIGEST: $run_cp" ;; esac
grep -q "^run -d --name $W .* --network kina-ac-net .* $IMG@$DIGEST\$" "$LOG" || fail "no container run for the worker"
# readiness through container exec, before kubeadm
grep -n "" "$LOG" > "$TEST_TMP/log.n"
ready_at=$(grep -m1 "exec $CP systemctl is-system-running" "$TEST_TMP/log.n" | cut -d: -f1)
init_at=$(grep -m1 "exec $CP kubeadm init --config /kina/kubeadm.yaml" "$TEST_TMP/log.n" | cut -d: -f1)
[ -n "$ready_at" ] && [ -n "$init_at" ] && [ "$ready_at" -lt "$init_at" ] || fail "no systemd readiness check before kubeadm init"
grep -q "^exec $W kubeadm join --config /kina/kubeadm.yaml" "$LOG" || fail "no kubeadm join on the worker"
# what was written into the nodes: the PKI (kina-vm cp), the kubeadm configs with the containers' addresses
[ -s "$FAKE/guest/etc/kubernetes/pki/ca.crt" ] && [ -s "$FAKE/guest/etc/kubernetes/pki/etcd/ca.key" ] || fail "the cluster PKI was not copied in"
cp_ip=$(kina-vm ls --cluster ac | jq -r 'select(.name=="ac-control-plane") | .ip')
w_ip=$(kina-vm ls --cluster ac | jq -r 'select(.name=="ac-worker") | .ip')
[ -n "$cp_ip" ] && [ "$cp_ip" != "$w_ip" ] || fail "the nodes' addresses: '$cp_ip' '$w_ip'"
assert_contains "$(cat "$FAKE/nodes/$CP/kina/kubeadm.yaml")" "advertiseAddress: \"$cp_ip\""
assert_contains "$(cat "$FAKE/nodes/$W/kina/kubeadm.yaml")" "apiServerEndpoint: $cp_ip:6443"
assert_contains "$(cat "$FAKE/nodes/$W/kina/kubeadm.yaml")" "caCertHashes"
assert_contains "$(cat "$FAKE/nodes/$W/kina/kubeadm.yaml")" "value: \"$w_ip\""
[ -s "$FAKE/nodes/$CP/etc/kubernetes/encryption/config.yaml" ] || fail "no Secrets encryption config on the control plane"
assert_contains "$(cat "$FAKE"/applied/*.yaml)" "kina:cluster-admins"
assert_contains "$(cat "$FAKE"/applied/*.yaml)" 'podSubnet: "10.244.0.0/16"'
# the kubeconfig: kina's admin through the control plane's published port
assert_eq "$(kubectl config view -o jsonpath='{.clusters[?(@.name=="kina-ac")].cluster.server}')" "https://127.0.0.1:$cpport"
ok "create: image loaded, network, two containers by digest, readiness, PKI, configs with the containers' addresses, init, join, kubeconfig"

expect_exit 0 kina get nodes --name ac
assert_eq "$OUT" "$(printf 'ac-control-plane\nac-worker')"
printf 'not really an image' > "$TEST_TMP/archive.tar"
expect_exit 0 kina load image-archive "$TEST_TMP/archive.tar" --name ac
cmp -s "$TEST_TMP/archive.tar" "$FAKE/imported-$CP.tar" && cmp -s "$TEST_TMP/archive.tar" "$FAKE/imported-$W.tar" \
  || fail "load image-archive did not stream the archive to ctr in both nodes"
ok "get nodes, load image-archive"

# export logs: the plan, the Machine records, per node the journal, kubelet's
# and containerd's units, the version, the containers, the pod logs; the
# cluster's audit events. A command a node lacks is a warning, not a failure.
touch "$FAKE/no-crictl-kina-ac-ac-worker"
expect_exit 0 kina export logs "$TEST_TMP/logs" --name ac
rm -f "$FAKE/no-crictl-kina-ac-ac-worker"
assert_eq "$OUT" "$TEST_TMP/logs"
assert_contains "$ERR" "warning: export logs: ac-worker/containers.txt: exec failed: crictl: executable file not found"
cmp -s "$TEST_TMP/logs/plan.jsonl" "$KINA_HOME/clusters/ac/plan.jsonl" || fail "export logs: plan.jsonl differs"
assert_eq "$(jq -r 'select(.kind=="Machine") | .name' "$TEST_TMP/logs/machines.jsonl" | sort | tr '\n' ' ')" "ac-control-plane ac-worker "
for n in ac-control-plane ac-worker; do
  assert_contains "$(cat "$TEST_TMP/logs/$n/journal.log")" "-- journal of kina-ac-$n --"
  assert_contains "$(cat "$TEST_TMP/logs/$n/kubelet.log")" "-- kubelet on kina-ac-$n --"
  assert_eq "$(cat "$TEST_TMP/logs/$n/kubernetes-version.txt")" v1.37.2
  assert_eq "$(tar -xOf "$TEST_TMP/logs/$n/pod-logs.tar" pods/p1/0.log)" "pod log of kina-ac-$n"
done
assert_contains "$(cat "$TEST_TMP/logs/ac-control-plane/containers.txt")" CONTAINER
assert_contains "$(jq -r .action "$TEST_TMP/logs/audit.jsonl" | sort -u | tr '\n' ' ')" "create-cluster"
ok "export logs: plan, machines, journals, version, containers, pod logs, audit events; a missing crictl is a warning"

# 3. Stop and start.
expect_exit 0 kina stop cluster --name ac
assert_contains "$(cat "$LOG")" "stop --time 180 $W"
assert_contains "$(cat "$LOG")" "stop --time 180 $CP"
assert_eq "$(kina-vm ls --cluster ac | jq -r .state | sort -u)" "exited"
: > "$LOG"
expect_exit 0 kina start cluster --name ac --wait 2m
assert_contains "$(cat "$LOG")" "start $CP"
assert_contains "$(cat "$LOG")" "start $W"
grep -q "^exec $W systemctl is-system-running" "$LOG" || fail "start did not wait for systemd in the worker"
assert_eq "$(kina-vm ls --cluster ac | jq -r .state | sort -u)" "running"
ok "stop and start"

# 4. Delete: every container, the network, the directory, the kubeconfig entries.
: > "$LOG"
expect_exit 0 kina delete cluster --name ac
assert_contains "$(cat "$LOG")" "delete --force $CP"
assert_contains "$(cat "$LOG")" "delete --force $W"
assert_contains "$(cat "$LOG")" "network delete kina-ac-net"
no_containers
[ ! -s "$FAKE/networks" ] || fail "networks left: $(cat "$FAKE/networks")"
[ ! -e "$KINA_HOME/clusters/ac" ] || fail "delete left clusters/ac"
assert_not_contains "$(kubectl config get-contexts -o name)" "kina-ac"
ok "delete leaves no container, network, directory or context"

# 5. A failed kubeadm init: three attempts, then everything removed.
fake_env 1
: > "$LOG"
rm -rf "$FAKE/applied" "$FAKE/nodes"
expect_exit 69 kina create cluster --name bad --config "$TEST_TMP/cluster.yaml" --image "$IMG"
assert_contains "$ERR" "fake kubeadm: init failed"
assert_contains "$ERR" "create failed (exit 69): removing what it made"
assert_eq "$(grep -c "^exec kina-bad-bad-control-plane kubeadm init " "$LOG")" "3" "kubeadm init attempts"
assert_eq "$(grep -c "^exec kina-bad-bad-control-plane kubeadm reset -f" "$LOG")" "2" "kubeadm resets"
no_containers
[ ! -s "$FAKE/networks" ] || fail "networks left: $(cat "$FAKE/networks")"
[ ! -e "$KINA_HOME/clusters/bad" ] || fail "a failed create left clusters/bad"
ok "a failed kubeadm init removes every container and the network"

expect_exit 0 kina-audit verify
assert_contains "$(kina-audit show --cluster ac)" "create-cluster"
ok "audit log intact"

[ ! -e "$MACOS_BIN/used" ] || fail "the front end ran tools macOS lacks: $(cat "$MACOS_BIN/used")"
[ -s "$MACOS_BIN/date-N" ] || fail "the front end never asked date for %N: the BSD date path was not exercised"
ok "no flock(1) or setsid(1) used; step times with a date that has no %N"
