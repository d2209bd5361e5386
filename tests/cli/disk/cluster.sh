#!/usr/bin/env bash
# full-disk-cluster: `kina create cluster` (the front end and kina-node's
# steps: the plan, the PKI, the Secrets encryption key, the nodes' records,
# the kubeconfig merge) and `kina delete cluster` on a real full disk
# (disklib.sh), with no VM: the apple backend against the scripted
# `container` of vm-apple, whose own state lives off the full file system.
# First kina-vm's apple backend alone (boot, cp out of a container). Each
# failed run must exit 73 or 74 naming "No space left on device" on each
# error line (one per node at most), print nothing on stdout, leave every
# file on the disk as it was (the kubeconfig with its other cluster, no
# cluster directory, no temporary) and no container or network; the run
# that succeeds must leave a cluster that answers `kina get nodes`, its
# context merged next to the other one.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/disk/disklib.sh"
VM_FAKE_DIR=$(cd "$KINA_SRC/tests/cli/vm/apple" && pwd)
disk_setup 64m
# The fake container keeps its state in $KINA_HOME/../fake: a symlink to a
# directory off the tmpfs (the snapshot lists the link, never its target).
FAKE="$TEST_TMP/fake"
mkdir -p "$FAKE"
ln -s "$FAKE" "$FS/fake"
export PATH="$VM_FAKE_DIR:$PATH"
export KUBECONFIG="$HOME/.kube/config"
printf 'FAKE_CONTAINER_FIXTURE=%q\nFAKE_EXEC_GUEST=%q\nFAKE_KUBEADM_STATUS=0\n' \
  "$VM_FAKE_DIR/list-1.0.json" "$KINA_SRC/tests/cli/node/apple/guest" > "$FAKE/env"
echo running > "$FAKE/systemd"
# no_containers WHY [CLUSTER]: no container or network of CLUSTER (default
# two, the one swept) in the fake's state.
no_containers() {
  local c=${2:-two} left
  left=$(ls "$FAKE/containers" 2>/dev/null | grep "^kina-$c-" || true)
  [ -z "$left" ] || fail "$1: containers of $c left: $left"
  left=$(grep "kina-$c-" "$FAKE/networks" 2>/dev/null || true)
  [ -z "$left" ] || fail "$1: networks of $c left: $left"
}

# A node image in kina's store (as in node-apple: only /kind/version).
root=$TEST_TMP/node-root
mkdir -p "$root/kind" "$root/sbin"
echo v1.37.2 > "$root/kind/version"
IMG=kina.test/node:v1.37.2
expect_exit 0 kina-image build --rootfs "$root" --tag "$IMG" --entrypoint /sbin/init
printf 'kind: Cluster\napiVersion: kina/v1alpha1\nbackend: apple\nnodes:\n- role: control-plane\n- role: worker\n' > "$TEST_TMP/cluster.yaml"

# kina-vm's apple backend alone: boot (its machine directory; a failed one
# removes its container) and cp out of a container (the fake's `tar -c`
# into kina-vm's temporary directory on the full disk, renamed into place).
REF=registry.local/node@sha256:aaaa
no_container_a() { no_containers "$1" c9; }
booted_a1() { [ "$(jq -r .state < "$TEST_TMP/out")" = running ] && [ -n "$(ls "$FAKE/containers" | grep '^kina-c9-a1$')" ]; }
SWEEP_FAILED=no_container_a
sweep "kina-vm boot --backend apple" booted_a1 kina-vm boot --backend apple --name a1 --cluster c9 --image "$REF"
mkdir -p "$FAKE/guest/opt/tree/d"
for i in 1 2 3 4 5 6; do head -c $((i * 7000)) /dev/urandom > "$FAKE/guest/opt/tree/f$i"; done
head -c 50000 /dev/urandom > "$FAKE/guest/opt/tree/d/big"
ln -s d/big "$FAKE/guest/opt/tree/link"
copied_a() { diff -r --no-dereference "$FAKE/guest/opt/tree" "$HOME/tree" >/dev/null; }
SWEEP_FAILED=
sweep "kina-vm cp out of an apple container" copied_a kina-vm cp --cluster c9 a1:/opt/tree "$HOME/tree"
rm -rf "${HOME:?}/tree"
expect_exit 0 kina-vm rm -f --cluster c9 a1
no_containers "after kina-vm rm" c9

# The balancer of several control planes (the front end's lb_start, as
# create and start run it; only QEMU clusters have one, so no create here
# reaches it): on a full disk it fails naming the cause (74), its list of
# backends or its pid file unwritten, and no balancer is left running; with
# room it runs.
papi=$(free_port) pb1=$(free_port)
lbdir=$KINA_HOME/clusters/lb
mkdir -p "$lbdir"
{ printf '{"kind":"ClusterPlan","controlPlanes":2,"networking":{"apiServerAddress":"127.0.0.1","apiServerPort":%s}}\n' "$papi"
  printf '{"kind":"NodePlan","name":"lb-control-plane","role":"control-plane","bootstrap":true,"extraPortMappings":[{"containerPort":6443,"hostPort":%s}]}\n' "$pb1"
} > "$lbdir/plan.jsonl"
lb_try() ( me=kina kina_dir=$KINA_SRC/tools/kina cdir=$lbdir; . "$kina_dir/cluster.sh"; lb_start )
lb_running() { pgrep -f -- "--backends-file $lbdir/lb-backends" >/dev/null; }
k=0
while :; do
  fill "$k"
  rc=0; lb_try >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
  rm -f "$FS/filler"
  [ "$rc" = 0 ] && break
  assert_eq "$rc" 74 "lb_start with $k free pages: $(cat "$TEST_TMP/err")"
  assert_contains "$(grep ': error: ' "$TEST_TMP/err")" "No space left on device"
  for _ in $(seq 20); do lb_running || break; sleep 0.1; done
  ! lb_running || fail "lb_start with $k free pages left a balancer running"
  k=$((k + 1))
  [ "$k" -le 20 ] || fail "lb_start never succeeded"
done
[ "$k" -gt 1 ] || fail "lb_start failed only $k times (the test reproduced less than its two writes)"
track_pid "$(cat "$lbdir/lb.pid")"
lb_running || fail "lb_start succeeded with $k free pages, but no balancer runs"
kill -TERM "$(cat "$lbdir/lb.pid")"
rm -rf "$lbdir"
ok "the front end's balancer on a full disk: 74 with 0 to $((k - 1)) free pages, no balancer left; runs with $k"

# A first cluster, made with room: its context in the kubeconfig and its
# directory must come through every failed create of the second unchanged.
expect_exit 0 kina create cluster --name one --config "$TEST_TMP/cluster.yaml" --image "$IMG"
assert_contains "$(kubectl config get-contexts -o name)" kina-one

created_two() {
  grep -q 'Set kubectl context to "kina-two"' "$TEST_TMP/err" || return 1
  [ "$(kina get nodes --name two)" = "$(printf 'two-control-plane\ntwo-worker')" ] || return 1
  [ "$(kubectl config get-contexts -o name | sort | tr '\n' ' ')" = "kina-one kina-two " ] || return 1
  [ -s "$FAKE/nodes/kina-two-two-control-plane/etc/kubernetes/encryption/config.yaml" ]
}
# After each failure: nothing of two left in the fake, and the step that
# failed (its ✗ line; none when a write of the front end itself failed).
failed_at() {
  no_containers "$1"
  failed_step
}
SWEEP_GROW=linear SWEEP_FAILED=failed_at SWEEP_ERRORS=each
sweep "kina create cluster" created_two kina create cluster --name two --config "$TEST_TMP/cluster.yaml" --image "$IMG"
ok "the steps that failed on the full disk: $(failed_steps)"

# export logs onto the full disk: everything is tried, each write that
# failed is named, and the export fails (74) saying its directory is
# incomplete; with room it succeeds.
mkdir "$HOME/logs"
fill 0
rc=0; kina export logs "$HOME/logs" --name one >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
rm -f "$FS/filler"
assert_eq "$rc" 74 "exit of export logs on a full disk: $(cat "$TEST_TMP/err")"
[ ! -s "$TEST_TMP/out" ] || fail "export logs on a full disk printed its directory"
assert_contains "$(grep ": error: " "$TEST_TMP/err")" "export logs: $HOME/logs is incomplete: "
assert_contains "$(grep ': error: ' "$TEST_TMP/err")" "No space left on device"
assert_contains "$(cat "$TEST_TMP/err")" "warning: export logs: one-worker/journal.log: "
rm -rf "${HOME:?}/logs"
expect_exit 0 kina export logs "$HOME/logs" --name one
[ -s "$HOME/logs/one-worker/journal.log" ] || fail "export logs with room: no journal.log"
rm -rf "${HOME:?}/logs"
ok "kina export logs on a full disk: 74, the incomplete directory named; with room, complete"

# stop and start on a full disk: neither can be undone once a node has
# stopped or started, so each either completes or fails naming the cause
# (74 at most: the cluster's state file), and the same verb with room
# completes it.
for verb in stop start; do
  want=$([ $verb = stop ] && echo stopped || echo running)
  fill 0
  rc=0; kina $verb cluster --name one >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
  rm -f "$FS/filler"
  if [ "$rc" != 0 ]; then
    [ "$rc" = 73 ] || [ "$rc" = 74 ] || fail "kina $verb cluster on a full disk: exit $rc: $(cat "$TEST_TMP/err")"
    ! grep ': error: ' "$TEST_TMP/err" | grep -qv 'No space left on device' ||
      fail "kina $verb cluster on a full disk: an error that does not name the cause: $(cat "$TEST_TMP/err")"
    expect_exit 0 kina $verb cluster --name one
  fi
  assert_eq "$(cat "$KINA_HOME/clusters/one/state")" "$want" "state after kina $verb cluster"
  assert_eq "$(kina-vm ls --cluster one | jq -r .state | sort -u)" "$([ $verb = stop ] && echo exited || echo running)"
  ok "kina $verb cluster on a full disk: exit $rc, then $want"
done

# delete on a full disk: its machines and network go; removing its
# kubeconfig entries rewrites the kubeconfig, which needs room: more than
# the machines gave back once the kubeconfig holds a large entry of its own
# (400 KB). Then delete fails saying so and keeps the cluster's directory
# (and with it what unmerge needs), and a delete with room finishes.
head -c 300000 /dev/urandom > "$TEST_TMP/big-ca"
kubectl config set-cluster big --server https://127.0.0.1:1 --certificate-authority "$TEST_TMP/big-ca" --embed-certs >/dev/null ||
  fail "could not add a large entry to the kubeconfig"
fill 0
rc=0; kina delete cluster --name two >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
rm -f "$FS/filler"
no_containers "delete on a full disk"
[ "$rc" = 73 ] || [ "$rc" = 74 ] || fail "delete on a full disk: exit $rc (the kubeconfig then has: $(kubectl config get-contexts -o name | tr '\n' ' ')): $(cat "$TEST_TMP/err")"
assert_contains "$(cat "$TEST_TMP/err")" "No space left on device"
assert_contains "$(cat "$TEST_TMP/err")" "its directory is kept for the next 'kina delete cluster --name two'"
assert_contains "$(kubectl config get-contexts -o name)" kina-two
[ -e "$KINA_HOME/clusters/two/plan.jsonl" ] || fail "a failed delete did not keep clusters/two"
expect_exit 0 kina delete cluster --name two
assert_not_contains "$(kubectl config get-contexts -o name)" kina-two
[ ! -e "$KINA_HOME/clusters/two" ] || fail "the second delete left clusters/two"
assert_contains "$(kubectl config get-contexts -o name)" kina-one
[ -n "$(kubectl config view --raw -o jsonpath='{.clusters[?(@.name=="big")].cluster.certificate-authority-data}')" ] ||
  fail "the kubeconfig lost its other entry"
ok "kina delete cluster on a full disk: exit $rc, the cluster kept for the next delete, which removes it all; one untouched"
expect_exit 0 kina delete cluster --name one
no_containers "after delete" two
no_containers "after delete" one
[ ! -e "$KINA_HOME/clusters/one" ] && [ ! -e "$KINA_HOME/clusters/two" ] || fail "delete left $(ls "$KINA_HOME/clusters")"
