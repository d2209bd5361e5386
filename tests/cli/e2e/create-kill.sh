# e2e-create-kill: `kina create cluster` killed with SIGKILL at several steps
# (while the nodes boot, during kubeadm init, during the join), then `kina
# delete cluster`: no process of the cluster (QEMU, supervisor, switch, a tool
# the create started), no file, no lease, no kubeconfig entry is left; and a
# create interrupted with SIGTERM cleans up by itself. Under TCG, slow: it
# runs alone.
real_home=$HOME
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

[ "$(id -u)" = 0 ] || { echo "skip: node VMs need root"; exit 77; }
export KINA_CACHE_DIR="${KINA_CACHE_DIR:-${XDG_CACHE_HOME:-$real_home/.cache}/kina}"
export KUBECONFIG="$TEST_TMP/kubeconfig"
C=kk
# (the test's own exit status survives the cleanup: _kina_cleanup exits with $?)
trap 'rc=$?; set +e; kina delete cluster --name "$C" >/dev/null 2>&1; (exit $rc); _kina_cleanup' EXIT
fetch_kernel

printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n' > "$TEST_TMP/cluster.yaml"

# Everything of cluster $C: its processes (by its directory or QEMU's -name),
# its directory, a kubeconfig context.
nothing_left() {
  local procs
  procs=$(pgrep -af "kina:$C/|$KINA_HOME/clusters/$C|kina-node (init|join|addons|wait)" | grep -v pgrep || true)
  [ -z "$procs" ] || { echo "processes left: $procs" >&2; return 1; }
  [ ! -e "$KINA_HOME/clusters/$C" ] || { echo "left: $(find "$KINA_HOME/clusters/$C" | head)" >&2; return 1; }
  if [ -f "$KUBECONFIG" ] && grep -q "kina-$C" "$KUBECONFIG"; then echo "kubeconfig entry left" >&2; return 1; fi
  for e in /proc/[0-9]*/environ; do
    if grep -qzF "KINA_CREATE_ID=$C-" "$e" 2>/dev/null; then echo "a process of the create left: $e" >&2; return 1; fi
  done
}

# kill_at WHAT CONDITION...: starts a create, waits for CONDITION, kills it
# with SIGKILL, deletes the cluster, checks nothing is left.
kill_at() {
  local what=$1; shift
  setsid kina create cluster --name "$C" --config "$TEST_TMP/cluster.yaml" > "$TEST_TMP/create-$what.log" 2>&1 &
  local pid=$!
  track_pid "$pid"
  wait_for 1800 "create to reach $what" "$@"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  expect_exit 0 kina delete cluster --name "$C"
  wait_for 30 "nothing of cluster $C left after a kill -9 during $what" nothing_left
  ok "kill -9 during $what, then delete: nothing left"
}

booting() { compgen -G "$KINA_HOME/clusters/$C/machines/*/booting" >/dev/null; }
in_init() { pgrep -f "kina-vm exec --cluster $C .*kubeadm init" >/dev/null; }
in_join() { pgrep -f "kina-vm exec --cluster $C .*kubeadm join" >/dev/null; }

kill_at "boot" booting
kill_at "kubeadm init" in_init
kill_at "kubeadm join" in_join

# SIGTERM: the create removes what it made by itself and says so.
setsid kina create cluster --name "$C" --config "$TEST_TMP/cluster.yaml" > "$TEST_TMP/create-term.log" 2>&1 &
pid=$!
track_pid "$pid"
wait_for 1800 "create to boot its nodes" booting
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
assert_eq "$rc" 143 "exit code of a create stopped with SIGTERM"
assert_contains "$(cat "$TEST_TMP/create-term.log")" "removing what it made"
wait_for 60 "nothing of cluster $C left after SIGTERM" nothing_left
expect_exit 0 kina-audit show --cluster "$C" --tool kina --format json
assert_contains "$(echo "$OUT" | jq -r 'select(.action=="create-cluster") | .exitCode' | tr '\n' ' ')" "143"
ok "SIGTERM: create cleans up by itself (143)"
