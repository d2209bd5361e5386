#!/bin/bash
# kinanet-manifests: the node image's addon manifests parse (kubectl, no
# server), hold what the node image contract needs, and equal the golden
# files once rendered (pod subnet 10.244.0.0/16). UPDATE_GOLDEN=1 rewrites
# the golden files.
. "$KINA_NET_TESTLIB"
. "$KINA_CLI_LIB"
command -v kubectl >/dev/null || { echo "skip: kubectl not installed"; exit 77; }
GOLDEN="$KINA_SRC/tests/cli/net/golden"

# parse FILE: the objects of a manifest as one JSON array (kubectl's own
# decoder, offline: `label --local` needs no API server).
parse() {
  kubectl label --local -f "$1" kina-manifest-check=1 -o json >"$TEST_TMP/parsed.json" 2>"$TEST_TMP/parse.err" ||
    fail "kubectl cannot parse $1: $(head -c 400 "$TEST_TMP/parse.err")"
  jq -S -s 'map(del(.metadata.labels["kina-manifest-check"]) | if .metadata.labels == {} then del(.metadata.labels) else . end)' "$TEST_TMP/parsed.json"
}

cni_raw="$MANIFESTS/default-cni.yaml"
storage="$MANIFESTS/default-storage.yaml"

# Template fields: exactly one, {{ .PodSubnet }}, in the CNI manifest (the
# form kind's create renders, with kind's marker line); none in storage.
fields=$(grep -o '{{[^}]*}}' "$cni_raw" | sort -u | tr '\n' ' ')
assert_eq "$fields" "{{ .PodSubnet }} " "template fields of default-cni.yaml"
grep -q '^# would you kindly template this file$' "$cni_raw" || fail "default-cni.yaml lacks kind's template marker line"
if grep -q '{{' "$storage"; then fail "default-storage.yaml has a template field"; fi
grep -q 'NetworkPolicy is NOT enforced' "$cni_raw" && fail "default-cni.yaml still says NetworkPolicy is not enforced"
grep -q 'enforces NetworkPolicy' "$cni_raw" || fail "default-cni.yaml does not say kina-net enforces NetworkPolicy"
ok "template fields"

render_cni 10.244.0.0/16 > "$TEST_TMP/cni.yaml"
cni=$(parse "$TEST_TMP/cni.yaml")
sto=$(parse "$storage")

if [ -n "${UPDATE_GOLDEN:-}" ]; then
  printf '%s\n' "$cni" > "$GOLDEN/default-cni.json"
  printf '%s\n' "$sto" > "$GOLDEN/default-storage.json"
  echo "golden files rewritten"
fi
diff -u "$GOLDEN/default-cni.json" <(printf '%s\n' "$cni") || fail "rendered default-cni.yaml differs from golden/default-cni.json"
diff -u "$GOLDEN/default-storage.json" <(printf '%s\n' "$sto") || fail "default-storage.yaml differs from golden/default-storage.json"
ok "golden files"

# The contract, checked field by field (so a golden update cannot hide it).
q() { printf '%s\n' "$1" | jq -r "$2"; }
ds='.[] | select(.kind=="DaemonSet")'
assert_eq "$(q "$cni" '[.[].kind]|join(",")')" "ServiceAccount,ClusterRole,ClusterRoleBinding,DaemonSet" "CNI kinds"
assert_eq "$(q "$cni" "$ds | .metadata.namespace + \"/\" + .metadata.name")" "kube-system/kina-net" "DaemonSet"
assert_eq "$(q "$cni" "$ds | .spec.template.spec.hostNetwork")" true "hostNetwork"
assert_eq "$(q "$cni" "$ds | .spec.template.spec.tolerations|tojson")" '[{"operator":"Exists"}]' "tolerations"
assert_eq "$(q "$cni" "$ds | .spec.template.spec.priorityClassName")" system-node-critical "priorityClassName"
c="$ds | .spec.template.spec.containers[0]"
version=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' "$KINANET_SRC/config.go")
assert_eq "$(q "$cni" "$c | .image")" "kina.local/kina-net:$version" "kina-net image (tag = kina-net's Version)"
assert_eq "$(q "$cni" "$c | .imagePullPolicy")" IfNotPresent "imagePullPolicy"
assert_eq "$(q "$cni" "$c | .env[] | select(.name==\"POD_SUBNET\") | .value")" 10.244.0.0/16 "POD_SUBNET"
assert_eq "$(q "$cni" "$c | .env[] | select(.name==\"NODE_NAME\") | .valueFrom.fieldRef.fieldPath")" spec.nodeName "NODE_NAME"
assert_eq "$(q "$cni" "$c | .securityContext.capabilities.add|sort|join(\",\")")" "NET_ADMIN,NET_RAW" "capabilities"
assert_eq "$(q "$cni" "$c | .securityContext.privileged")" false "privileged"
assert_eq "$(q "$cni" "$ds | .spec.template.spec.volumes|map(.hostPath.path)|join(\",\")")" "/etc/cni/net.d,/lib/modules" "hostPaths"
assert_eq "$(q "$cni" "$c | .volumeMounts[] | select(.mountPath==\"/lib/modules\") | .readOnly")" true "/lib/modules read-only"
assert_eq "$(q "$cni" '.[] | select(.kind=="ClusterRole") | .rules|tojson')" '[{"apiGroups":[""],"resources":["nodes"],"verbs":["get","list","watch"]},{"apiGroups":[""],"resources":["pods","namespaces"],"verbs":["list","watch"]},{"apiGroups":["networking.k8s.io"],"resources":["networkpolicies"],"verbs":["list","watch"]}]' "ClusterRole (nodes; pods, namespaces and networkpolicies for NetworkPolicy)"
# a second subnet renders too (the value goes in unquoted: a CIDR list is a plain YAML scalar)
render_cni 10.244.0.0/16,10.250.0.0/16 > "$TEST_TMP/cni2.yaml"
assert_eq "$(q "$(parse "$TEST_TMP/cni2.yaml")" "$c | .env[] | select(.name==\"POD_SUBNET\") | .value")" 10.244.0.0/16,10.250.0.0/16 "two subnets"
ok "default-cni.yaml"

assert_eq "$(q "$sto" '[.[].kind]|join(",")')" "Namespace,ServiceAccount,Role,ClusterRole,RoleBinding,ClusterRoleBinding,Deployment,StorageClass,ConfigMap" "storage kinds"
sc='.[] | select(.kind=="StorageClass")'
assert_eq "$(q "$sto" "$sc | .metadata.name")" standard "StorageClass name"
assert_eq "$(q "$sto" "$sc | .metadata.annotations[\"storageclass.kubernetes.io/is-default-class\"]")" true "default class"
assert_eq "$(q "$sto" "$sc | .provisioner + \" \" + .volumeBindingMode + \" \" + .reclaimPolicy")" "rancher.io/local-path WaitForFirstConsumer Delete" "StorageClass"
dep='.[] | select(.kind=="Deployment") | .spec.template.spec.containers[0]'
assert_eq "$(q "$sto" "$dep | .image")" kina.local/local-path-provisioner:v0.0.30 "provisioner image"
assert_eq "$(q "$sto" "$dep | .imagePullPolicy")" IfNotPresent "provisioner pull policy"
cm='.[] | select(.kind=="ConfigMap") | .data'
assert_eq "$(q "$sto" "$cm | .[\"config.json\"] | fromjson | .nodePathMap[0].paths[0]")" /var/local-path-provisioner "data path"
helper=$(q "$sto" "$dep | .command | index(\"--helper-image\") as \$i | .[\$i+1]")
assert_eq "$helper" kina.local/local-path-helper:v0.1.0 "--helper-image"
# the helper pod spec (YAML inside the ConfigMap) names the same image
q "$sto" "$cm | .[\"helperPod.yaml\"]" > "$TEST_TMP/helper.yaml"
assert_eq "$(q "$(parse "$TEST_TMP/helper.yaml")" '.[0].spec.containers[0].image')" "$helper" "helper pod image"
# setup/teardown use only sh, mkdir and rm (what the helper image promises)
for s in setup teardown; do
  q "$sto" "$cm | .$s" > "$TEST_TMP/$s"
  cmds=$(grep -v '^#!' "$TEST_TMP/$s" | grep -v '^set -eu$' | awk '{print $1}' | sort -u | tr '\n' ' ')
  case "$s:$cmds" in "setup:mkdir "|"teardown:rm ") ;; *) fail "$s uses other commands: $cmds" ;; esac
done
# and they work with a POSIX sh
VOL_DIR="$TEST_TMP/vol/pvc-1" sh "$TEST_TMP/setup"
[ "$(stat -c %a "$TEST_TMP/vol/pvc-1")" = 777 ] || fail "setup: mode $(stat -c %a "$TEST_TMP/vol/pvc-1")"
VOL_DIR="$TEST_TMP/vol/pvc-1" sh "$TEST_TMP/teardown"
[ ! -e "$TEST_TMP/vol/pvc-1" ] || fail "teardown left the volume"
ok "default-storage.yaml"
