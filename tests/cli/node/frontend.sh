# node-frontend: the `kina` cluster verbs without VMs: refusals happen before
# anything is made (bad config 65, policy 80, bad name 64, unknown flag 64),
# leave no cluster behind, and are recorded in the audit log with their exit
# code; reading verbs on no clusters; delete of an unknown cluster is a no-op.
source "$KINA_CLI_LIB"
export KUBECONFIG="$TEST_TMP/kubeconfig"

leaves_nothing() {
  [ -z "$(ls -A "$KINA_HOME/clusters" 2>/dev/null)" ] || fail "left behind: $(ls -A "$KINA_HOME/clusters")"
  [ ! -e "$KUBECONFIG" ] || fail "a kubeconfig was written"
}

# 1. Reading verbs on nothing.
expect_exit 0 kina get clusters
assert_eq "$OUT" ""
assert_contains "$ERR" "No kina clusters found."
expect_exit 0 kina get nodes --name nope
assert_contains "$ERR" "No kina nodes found"
expect_exit 66 kina get kubeconfig --name nope
assert_contains "$ERR" "cluster 'nope' does not exist"
expect_exit 66 kina export kubeconfig --name nope
expect_exit 66 kina stop cluster --name nope
expect_exit 66 kina load image-archive /etc/hostname --name nope
expect_exit 0 kina delete cluster --name nope
assert_contains "$ERR" "Deleting cluster \"nope\""
ok "reading verbs and delete on no cluster"

# 2. Refusals before anything is made.
printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraMounts:\n  - hostpath: /tmp\n' > "$TEST_TMP/bad.yaml"
expect_exit 65 kina create cluster --config "$TEST_TMP/bad.yaml"
assert_contains "$ERR" 'nodes[0].extraMounts[0].hostpath'
leaves_nothing
printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraMounts:\n  - {hostPath: /etc, containerPath: /host-etc}\n  extraPortMappings:\n  - {containerPort: 80, hostPort: 8080, listenAddress: 0.0.0.0}\n' > "$TEST_TMP/policy.yaml"
expect_exit 80 kina create cluster --config "$TEST_TMP/policy.yaml"
assert_contains "$ERR" "/etc"
assert_contains "$ERR" "0.0.0.0"
leaves_nothing
expect_exit 64 kina create cluster --name 'Bad_Name'
assert_contains "$ERR" "invalid cluster name"
expect_exit 64 env KIND_CLUSTER_NAME=-x kina create cluster
expect_exit 64 kina create cluster --frobnicate
assert_contains "$ERR" "unknown flag '--frobnicate'"
leaves_nothing
expect_exit 64 kina create nodes
expect_exit 64 kina get pods
ok "bad config 65, policy 80, bad names and flags 64; nothing made"

# 3. Every refusal of a mutating verb is in the audit log with its code.
expect_exit 0 kina-audit show --tool kina --format json
codes=$(echo "$OUT" | jq -r 'select(.action == "create-cluster") | .exitCode' | tr '\n' ' ')
assert_eq "$codes" "65 80 64 64 64 "
expect_exit 0 kina-audit verify
assert_eq "$(jq_field "$OUT" .intact)" true
ok "create refusals recorded: $codes"

# 4. --help of the verbs.
expect_exit 0 kina create cluster --help
assert_contains "$OUT" "--retain"
expect_exit 0 kina --help
assert_contains "$OUT" "kina create cluster"
ok "help"
