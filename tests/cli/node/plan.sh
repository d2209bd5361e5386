#!/bin/bash
# node-plan: `kina-node plan` on real config files: golden plans (kind's
# defaults, every kind.x-k8s.io/v1alpha4 field, kina/v1alpha1's additions, an
# HA cluster with --name and --image), strict reading (unknown fields and wrong
# types named by path, what kina cannot do refused by name), and the cluster
# policy (every refusal reported at once, exit 80; symlinks do not bypass it).
# KINA_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing.
source "$KINA_CLI_LIB"
G="$KINA_SRC/tests/cli/node/golden"
W=$(realpath "$TEST_TMP")/cfg
mkdir -p "$W/src" "$HOME/.ssh" "$KINA_HOME/clusters"
ln -s src "$W/link"
cp "$G"/*.yaml "$W/"
ROOMY=(--policy "$W/roomy-policy.yaml")

# golden NAME ARGS...: the plan of ARGS, paths under $W shown as @DIR@, equals golden/plan-NAME.jsonl.
golden() {
  local name=$1; shift
  expect_exit 0 kina-node plan "$@"
  local got; got=$(printf '%s\n' "$OUT" | sed "s|$W|@DIR@|g")
  if [ -n "${KINA_UPDATE_GOLDEN:-}" ]; then
    printf '%s\n' "$got" > "$G/plan-$name.jsonl"
  else
    diff -u "$G/plan-$name.jsonl" <(printf '%s\n' "$got") || fail "plan $name differs from golden/plan-$name.jsonl"
  fi
  [ -z "$ERR" ] || fail "plan $name wrote to stderr: $ERR"
  check_records ClusterPlan "$OUT"
  check_records NodePlan "$OUT"
}

golden default "${ROOMY[@]}"
golden kind-full --config "$W/plan-kind-full.yaml" "${ROOMY[@]}"
golden kina --config "$W/plan-kina.yaml" "${ROOMY[@]}"
golden ha --config "$W/plan-ha.yaml" --name ha --image example.org/node:v1 "${ROOMY[@]}"
ok "golden plans: default, every v1alpha4 field, kina/v1alpha1, HA with --name and --image"

# Every v1alpha4 field, one by one, as the plan has it.
expect_exit 0 kina-node plan --config "$W/plan-kind-full.yaml" "${ROOMY[@]}"
C=$(printf '%s\n' "$OUT" | head -1)
N=$(printf '%s\n' "$OUT" | tail -n +2)
q() { jq -c "$1"; }
assert_eq "$(printf '%s' "$C" | q '[.name,.configApiVersion,.controlPlanes,.workers,.nodes]')" \
  '["full","kind.x-k8s.io/v1alpha4",1,2,["full-control-plane","full-worker","full-worker2"]]' "name, nodes"
assert_eq "$(printf '%s' "$C" | q .networking)" \
  '{"ipFamily":"ipv4","apiServerAddress":"127.0.0.1","apiServerPort":6443,"podSubnet":"10.200.0.0/16","serviceSubnet":"10.201.0.0/16","disableDefaultCNI":true,"kubeProxyMode":"nftables","dnsSearch":["example.com","corp.example"]}' "networking"
assert_eq "$(printf '%s' "$C" | q .featureGates)" '{"InPlacePodVerticalScaling":true,"SomeAlphaGate":false}' "featureGates"
assert_eq "$(printf '%s' "$C" | q .runtimeConfig)" '{"api/alpha":"false","batch/v2alpha1":"true"}' "runtimeConfig"
assert_eq "$(printf '%s' "$C" | q '.kubeadmConfigPatches[0]')" '"kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    v: \"4\"\n"' "kubeadmConfigPatches"
assert_eq "$(printf '%s' "$C" | q '.kubeadmConfigPatchesJSON6902[0] | [.group,.version,.kind]')" '["kubeadm.k8s.io","v1beta3","ClusterConfiguration"]' "kubeadmConfigPatchesJSON6902"
assert_contains "$(printf '%s' "$C" | q '.containerdConfigPatches[0]')" 'config_path = \"/etc/containerd/certs.d\"' "containerdConfigPatches"
assert_eq "$(printf '%s' "$C" | q '.containerdConfigPatchesJSON6902')" '["- op: remove\n  path: /version\n"]' "containerdConfigPatchesJSON6902"
cp=$(printf '%s\n' "$N" | sed -n 1p); w1=$(printf '%s\n' "$N" | sed -n 2p); w2=$(printf '%s\n' "$N" | sed -n 3p)
assert_eq "$(printf '%s' "$cp" | q '[.role,.bootstrap,.image,.labels]')" \
  '["control-plane",true,"kindest/node:v1.31.0@sha256:0000000000000000000000000000000000000000000000000000000000000000",{"example.com/zone":"a","ingress-ready":"true"}]' "control plane"
assert_eq "$(printf '%s' "$cp" | q .extraPortMappings)" \
  '[{"listenAddress":"127.0.0.1","hostPort":6443,"containerPort":6443,"protocol":"TCP"},{"listenAddress":"127.0.0.1","hostPort":8080,"containerPort":80,"protocol":"TCP"},{"listenAddress":"127.0.0.1","hostPort":5353,"containerPort":53,"protocol":"UDP"},{"listenAddress":"127.0.0.1","hostPort":0,"containerPort":30000,"protocol":"TCP"}]' "ports (API server first, kina's loopback default)"
assert_eq "$(printf '%s' "$cp" | q '.kubeadmConfigPatches | length')" 1 "node kubeadmConfigPatches"
assert_eq "$(printf '%s' "$w1" | q .extraMounts)" \
  "[{\"hostPath\":\"$W/src\",\"containerPath\":\"/src\",\"readOnly\":false,\"selinuxRelabel\":false,\"propagation\":\"None\"},{\"hostPath\":\"$W/src\",\"containerPath\":\"/linked\",\"readOnly\":true,\"selinuxRelabel\":false,\"propagation\":\"HostToContainer\"},{\"hostPath\":\"/absent/dir\",\"containerPath\":\"/absent\",\"readOnly\":false,\"selinuxRelabel\":false,\"propagation\":\"Bidirectional\"}]" "mounts (relative to the config, links resolved)"
assert_eq "$(printf '%s' "$w1" | q '.kubeadmConfigPatchesJSON6902[0] | [.group,.version,.kind]')" '["","","JoinConfiguration"]' "node JSON6902"
assert_eq "$(printf '%s' "$w2" | q '.extraPortMappings[0].hostPort')" 0 "hostPort -1 means pick one"
ok "every v1alpha4 field reaches the plan"

# The same config on stdin: the same plan, source "-"; relative paths from the working directory.
(cd "$W" && expect_exit 0 kina-node plan --config - "${ROOMY[@]}" < "$W/plan-kind-full.yaml"
 printf '%s\n' "$OUT" > "$TEST_TMP/stdin.jsonl")
expect_exit 0 kina-node plan --config "$W/plan-kind-full.yaml" "${ROOMY[@]}"
diff <(sed 's|"source":"-"|"source":"X"|' "$TEST_TMP/stdin.jsonl") <(printf '%s\n' "$OUT" | sed "s|\"source\":\"$W/plan-kind-full.yaml\"|\"source\":\"X\"|") ||
  fail "--config - differs from the file"
ok "--config - reads stdin"

# ---- strict reading: exit 65, every problem named by its path, nothing on stdout ----
# bad65 TEXT NEEDLE...: the config TEXT is refused with 65 and stderr has each NEEDLE.
bad65() {
  local text=$1; shift
  printf '%s' "$text" > "$TEST_TMP/bad.yaml"
  expect_exit 65 kina-node plan --config "$TEST_TMP/bad.yaml" "${ROOMY[@]}"
  [ -z "$OUT" ] || fail "a refused config printed records: $OUT"
  local n
  for n in "$@"; do assert_contains "$ERR" "$n" "stderr"; done
}
H=$'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n'
bad65 "$H"$'nmae: x\nnodes:\n- role: control-plane\n- role: worker\n  extraMounts:\n  - hostpath: /tmp\n    containerPath: /x\nnetworking:\n  podsubnet: 10.0.0.0/16\n' \
  'config '"$TEST_TMP"'/bad.yaml:3: nmae: unknown field "nmae"; did you mean "name"?' \
  'nodes[1].extraMounts[0].hostpath: unknown field "hostpath"; did you mean "hostPath"?' \
  'nodes[1].extraMounts[0].hostPath: missing' \
  'networking.podsubnet: unknown field "podsubnet"; did you mean "podSubnet"?'
[ "$(printf '%s\n' "$ERR" | grep -c 'error:')" = 4 ] || fail "want 4 problems, got: $ERR"
bad65 "$H"$'nodes:\n- role: control-plane\n  cpus: 2\n  memory: 2Gi\nbackend: qemu\n' \
  'nodes[0].cpus: unknown field "cpus" (a kina/v1alpha1 field; set apiVersion: kina/v1alpha1)' \
  'nodes[0].memory: unknown field "memory" (a kina/v1alpha1 field' 'backend: unknown field "backend" (a kina/v1alpha1 field'
bad65 "$H"$'kubeadmConfigPatchesJSON6902:\n- group: g\n  nmae: x\n  patch: "[]"\n' \
  'kubeadmConfigPatchesJSON6902[0].nmae: unknown field "nmae"' 'kubeadmConfigPatchesJSON6902[0].kind: missing'
ok "unknown fields are named by their path, with did-you-mean"

bad65 "$H"$'nodes: {role: worker}\n' 'nodes: expected a list, found a mapping'
bad65 "$H"$'networking:\n  apiServerPort: "6443"\n  disableDefaultCNI: "yes"\n' \
  'networking.apiServerPort: expected an integer, found "6443"' 'networking.disableDefaultCNI: expected true or false, found "yes"'
bad65 "$H"$'featureGates:\n  Foo: maybe\nnodes:\n- extraPortMappings:\n  - containerPort: 70000\n    hostPort: -2\n' \
  'featureGates.Foo: expected true or false, found "maybe"' 'nodes[0].extraPortMappings[0].containerPort: 70000 is out of range (1 to 65535)' \
  'nodes[0].extraPortMappings[0].hostPort: -2 is out of range (-1 to 65535)'
bad65 "$H"$'nodes:\n- extraMounts:\n  - hostPath: /tmp\n    containerPath: relative\n    propagation: hosttocontainer\n' \
  'containerPath: "relative" is not an absolute path' 'propagation: "hosttocontainer" is not one of None, HostToContainer, Bidirectional; did you mean "HostToContainer"?'
bad65 "$H"$'name: a\nname: b\n' 'duplicate key "name"'
bad65 "$H"$'nodes:\n- role: worker\n' 'nodes: no control-plane node'
bad65 "$H"$'nodes:\n- role: master\n' 'nodes[0].role: "master" is not a node role'
bad65 "$H"$'name: My_Cluster\n' 'name: "My_Cluster" must consist of lower-case letters'
bad65 "$H""name: $(printf 'a%.0s' $(seq 48))"$'\n' 'must be at most 47 characters'
bad65 "$H"$'nodes:\n- labels:\n    "bad key!": x\n    good: "has space"\n' 'nodes[0].labels.bad key!: invalid label key' 'nodes[0].labels.good: invalid label value "has space"'
bad65 "$H"$'runtimeConfig:\n  "api/all": "true,extra=1"\n' 'runtimeConfig.api/all: "true,extra=1": a value has letters, digits and . _ / - only'
bad65 "$H"$'kubeadmConfigPatches:\n- "just a string"\n- "a: [b"\n' 'kubeadmConfigPatches[0]: a patch must be a YAML mapping' 'kubeadmConfigPatches[1]: not YAML'
bad65 $'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n' 'apiVersion: "kind.x-k8s.io/v1alpha3" is not supported'
bad65 $'apiVersion: kina/v1alpha1\nkind: Policy\n' 'kind: "Policy" is not Cluster (a policy file goes to --policy)'
bad65 $'kind: Cluster\n' 'apiVersion: missing'
bad65 '' 'the config is empty'
bad65 "$H"$'nodes:\n- [\n' 'line'
ok "wrong types, duplicate keys, bad names and values are refused with their path"

bad65 "$H"$'networking:\n  ipFamily: ipv6\n' 'networking.ipFamily: ipv6: kina supports only ipv4 clusters so far'
bad65 "$H"$'networking:\n  ipFamily: dual\n  podSubnet: 10.244.0.0/16,fd00::/56\n' 'ipFamily: dual: kina supports only ipv4' 'podSubnet: "10.244.0.0/16,fd00::/56": several subnets mean dual-stack'
bad65 "$H"$'networking:\n  kubeProxyMode: ipvs\n' 'networking.kubeProxyMode: ipvs: kina'"'"'s node image has no IPVS support'
bad65 "$H"$'networking:\n  podSubnet: 10.96.0.0/12\n' 'networking.serviceSubnet: 10.96.0.0/16 overlaps the pod subnet 10.96.0.0/12'
bad65 "$H"$'nodes:\n- extraPortMappings:\n  - containerPort: 9\n    protocol: SCTP\n    listenAddress: "::1"\n' 'protocol: SCTP: port mappings over SCTP are not supported' 'listenAddress: "::1": IPv6 addresses are not supported'
bad65 "$H"$'nodes:\n- extraMounts:\n  - {hostPath: /tmp, containerPath: /t, selinuxRelabel: true}\n  gpus: all\n' 'selinuxRelabel: true: SELinux relabelling' 'nodes[0].gpus: "all": GPUs are not supported'
ok "what kina cannot do is refused by name"

head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' '#' > "$TEST_TMP/big.yaml"
expect_exit 65 kina-node plan --config "$TEST_TMP/big.yaml"
assert_contains "$ERR" "larger than 1048576 bytes"
expect_exit 66 kina-node plan --config "$TEST_TMP/missing.yaml"
expect_exit 65 kina-node plan --config "$TEST_TMP"
assert_contains "$ERR" "directory"
mkfifo "$TEST_TMP/fifo"
expect_exit 65 kina-node plan --config "$TEST_TMP/fifo"
expect_exit 64 kina-node plan --name Bad_Name
assert_contains "$ERR" 'invalid --name "Bad_Name"'
expect_exit 64 kina-node plan --image 'has space'
expect_exit 64 kina-node plan --bogus
expect_exit 64 kina-node plna
assert_contains "$ERR" 'did you mean "plan"'
ok "size cap, missing file (66), directory and FIFO (65), bad flags (64)"

# ---- policy: exit 80, every refusal at once ----
ln -s /etc "$W/etc-link"
cat > "$W/risky.yaml" <<YAML
kind: Cluster
apiVersion: kina/v1alpha1
networking:
  apiServerAddress: 0.0.0.0
nodes:
- role: control-plane
  cpus: 1024
  memory: 4Ti
  extraMounts:
  - {hostPath: /etc, containerPath: /a}
  - {hostPath: /etc, containerPath: /b, readOnly: true}
  - {hostPath: ./etc-link, containerPath: /c}
  - {hostPath: ./etc-link/not-yet/there, containerPath: /d}
  - {hostPath: $HOME, containerPath: /e}
  - {hostPath: $KINA_HOME/clusters, containerPath: /f}
  - {hostPath: /var/run/docker.sock, containerPath: /g}
  - {hostPath: /proc, containerPath: /h}
  - {hostPath: /, containerPath: /i}
  - {hostPath: ./src, containerPath: /j}
  extraPortMappings:
  - {containerPort: 80, hostPort: 8080, listenAddress: 0.0.0.0}
- role: worker
  extraPortMappings:
  - {containerPort: 80, hostPort: 8080}
  - {containerPort: 81, hostPort: 8081}
  - {containerPort: 82, hostPort: 8081}
YAML
expect_exit 80 kina-node plan --config "$W/risky.yaml"
[ -z "$OUT" ] || fail "a refused plan printed records"
for n in \
  'policy: nodes[0].extraMounts[0].hostPath: "/etc" is "/etc" (the host'"'"'s configuration) and is mounted read-write' \
  "nodes[0].extraMounts[2].hostPath: \"./etc-link\" (resolves to \"/etc\") is \"/etc\"" \
  "nodes[0].extraMounts[3].hostPath: \"./etc-link/not-yet/there\" (resolves to \"/etc/not-yet/there\") lies inside \"/etc\"" \
  "nodes[0].extraMounts[4].hostPath: \"$HOME\" contains \"$HOME/.ssh\" (your SSH keys)" \
  "nodes[0].extraMounts[5].hostPath: \"$KINA_HOME/clusters\" lies inside \"$KINA_HOME\" (kina's own state (KINA_HOME))" \
  'nodes[0].extraMounts[6].hostPath: "/var/run/docker.sock"' \
  'nodes[0].extraMounts[7].hostPath: "/proc" is "/proc"' \
  'nodes[0].extraMounts[8].hostPath: "/" is "/" (the host'"'"'s root)' \
  'networking.apiServerAddress: listen address "0.0.0.0" is not a loopback address' \
  'nodes[0].extraPortMappings[0]: listen address "0.0.0.0" is not a loopback address' \
  'nodes[1].extraPortMappings[0]: 127.0.0.1:8080/TCP is already mapped by nodes[0].extraPortMappings[0]' \
  'nodes[1].extraPortMappings[2]: 127.0.0.1:8081/TCP is already mapped by nodes[1].extraPortMappings[1]' \
  'nodes[0].cpus: 1024 CPUs is more than the host'"'"'s' \
  'nodes[0].memory: 4194304Mi is more than the host'"'"'s memory' \
  'nodes: the nodes'"'"' memory adds up to 4196352Mi, more than the host'"'"'s memory'; do
  assert_contains "$ERR" "$n" "stderr"
done
assert_not_contains "$ERR" "extraMounts[1]" "stderr (a read-only mount of /etc is fine)"
assert_not_contains "$ERR" "extraMounts[9]" "stderr (./src is fine)"
[ "$(printf '%s\n' "$ERR" | grep -c '^kina-node: error: policy: ')" = 15 ] || fail "want 15 policy problems, one line each, got: $ERR"
ok "every policy refusal at once (exit 80), symlinks resolved"

# --allow-public lifts the address refusals only; a policy file allows paths and raises ceilings.
expect_exit 80 kina-node plan --config "$W/risky.yaml" --allow-public
assert_not_contains "$ERR" "loopback"
assert_contains "$ERR" "already mapped"
cat > "$W/allow.yaml" <<YAML
apiVersion: kina/v1alpha1
kind: Policy
allowedHostPaths: [/etc]
allowPublicPorts: true
YAML
expect_exit 80 kina-node plan --config "$W/risky.yaml" --policy "$W/allow.yaml"
assert_not_contains "$ERR" '"/etc" is "/etc"'
assert_not_contains "$ERR" 'etc-link'
assert_not_contains "$ERR" 'loopback'
assert_contains "$ERR" '"/proc" is "/proc"'
ok "--allow-public and a policy file's allowedHostPaths"

# deniedHostPaths add to the defaults; a config's policy block cannot loosen.
printf '%s\n' 'apiVersion: kina/v1alpha1' 'kind: Policy' 'deniedHostPaths: [src]' > "$W/deny.yaml"
printf '%s\n' 'kind: Cluster' 'apiVersion: kind.x-k8s.io/v1alpha4' 'nodes:' '- extraMounts:' '  - {hostPath: ./src/sub, containerPath: /s}' > "$W/src-mount.yaml"
expect_exit 0 kina-node plan --config "$W/src-mount.yaml" "${ROOMY[@]}"
expect_exit 80 kina-node plan --config "$W/src-mount.yaml" --policy "$W/deny.yaml"
assert_contains "$ERR" "lies inside \"$W/src\" (denied by the policy: deniedHostPaths); no mount of it is allowed, read-only or not"
printf '%s\n' 'kind: Cluster' 'apiVersion: kind.x-k8s.io/v1alpha4' 'nodes:' '- extraMounts:' '  - {hostPath: ./src, containerPath: /s, readOnly: true}' > "$W/src-ro.yaml"
expect_exit 80 kina-node plan --config "$W/src-ro.yaml" --policy "$W/deny.yaml"
assert_contains "$ERR" 'read-only or not'
cat > "$W/loosen.yaml" <<YAML
kind: Cluster
apiVersion: kina/v1alpha1
policy:
  allowedHostPaths: [/etc]
  allowPublicPorts: true
  maxCpusPerNode: 1000
nodes:
- extraMounts:
  - {hostPath: /etc, containerPath: /e}
YAML
expect_exit 80 kina-node plan --config "$W/loosen.yaml"
assert_contains "$ERR" 'policy.allowedHostPaths: "/etc": a config cannot allow host paths'
assert_contains "$ERR" 'policy.allowPublicPorts: true: a config cannot allow public ports'
assert_contains "$ERR" 'policy.maxCpusPerNode: 1000 is above the policy'"'"'s '
assert_contains "$ERR" 'nodes[0].extraMounts[0].hostPath: "/etc" is "/etc"'
ok "deniedHostPaths, and a config's policy block only tightens"

printf '%s\n' 'apiVersion: kina/v1alpha1' 'kind: Policy' 'allowedHostPath: [/etc]' > "$W/typo.yaml"
expect_exit 65 kina-node plan --policy "$W/typo.yaml"
assert_contains "$ERR" 'policy '"$W"'/typo.yaml:3: allowedHostPath: unknown field "allowedHostPath"; did you mean "allowedHostPaths"?'
expect_exit 66 kina-node plan --policy "$W/none.yaml"
ok "policy files are read strictly"

# kind's rule: with disableDefaultCNI and no podSubnet, the plan has none (kubeadm then allocates no node CIDRs).
printf '%s\n' 'kind: Cluster' 'apiVersion: kind.x-k8s.io/v1alpha4' 'networking:' '  disableDefaultCNI: true' > "$W/nocni.yaml"
expect_exit 0 kina-node plan --config "$W/nocni.yaml" "${ROOMY[@]}"
assert_eq "$(printf '%s\n' "$OUT" | head -1 | jq -r .networking.podSubnet)" "" "podSubnet without the default CNI"
ok "disableDefaultCNI leaves the pod subnet unset, as kind does"
