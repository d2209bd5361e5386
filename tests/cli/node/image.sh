# node-image: `kina build node-image` builds the default node image (Kubernetes
# from the Go module at the default version), and two nodes booted from it
# under TCG are what a cluster needs: systemd running, containerd and kubelet
# enabled, the requested Kubernetes version, every image kubeadm names (plus
# CNI, storage and pause) already in containerd's k8s.io namespace, cgroup v2,
# the kernel modules, a machine-id of their own, nothing pulled.
# The build is cached under the user's cache directory ($KINA_CACHE_DIR, else
# ~/.cache/kina) by its inputs: the first run on a machine builds (about half
# an hour on 2 cores), later ones import the cached archive in seconds.
# Needs root, debootstrap, Go 1.25+ and the Debian mirror and Go module proxy.
real_home=$HOME
go_env=""
if command -v go >/dev/null 2>&1; then
  go_env=$(go env GOMODCACHE GOCACHE GOPATH | paste -sd' ')
fi
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/vm/vmlib.sh"

[ "$(id -u)" = 0 ] || { echo "skip: building a node image needs root"; exit 77; }
command -v debootstrap >/dev/null || { echo "skip: debootstrap is not installed"; exit 77; }
[ -n "$go_env" ] || { echo "skip: the Go toolchain is not installed"; exit 77; }
go_minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
[ "${go_minor:-0}" -ge 25 ] || { echo "skip: Go $(go env GOVERSION) is older than 1.25 (Kubernetes 1.37 needs it)"; exit 77; }
set -- $go_env
export GOMODCACHE=$1 GOCACHE=$2 GOPATH=$3
export KINA_CACHE_DIR="${KINA_CACHE_DIR:-${XDG_CACHE_HOME:-$real_home/.cache}/kina}"
VERSION=v1.37.2

# 1. Build (or reuse the cached build).
expect_exit 0 kina build node-image --kubernetes-version "$VERSION"
echo "$ERR" | grep -E 'step|built|cached' >&2 || true
assert_eq "$(jq_field "$OUT" .kind)" "Image"
assert_eq "$(jq_field "$OUT" .reference)" "kina.local/node:$VERSION"
assert_eq "$(jq_field "$OUT" '.labels["io.kina.kubernetes.version"]')" "$VERSION"
assert_eq "$(jq_field "$OUT" '.labels["io.kina.kubernetes.source"]')" "go"
containerd_label=$(jq_field "$OUT" '.labels["io.kina.component.containerd"]')
case "$containerd_label" in 2.*) ;; *) fail "containerd label '$containerd_label' is not 2.x" ;; esac
digest=$(jq_field "$OUT" .digest)
ok "node image $digest"

# 2. The same inputs again: the cached archive, the same digest, no step runs.
expect_exit 0 kina build node-image --kubernetes-version "$VERSION"
assert_contains "$ERR" "using the cached build"
assert_not_contains "$ERR" "step "
assert_eq "$(jq_field "$OUT" .digest)" "$digest" "digest of the second build"
ok "second build comes from the cache"

# 3. Two nodes from one image.
fetch_kernel
expect_exit 0 kina-image unpack "kina.local/node:$VERSION" --disk "$TEST_TMP/node.ext4" --disk-size 8Gi
for n in node-a node-b; do
  BOOT_TIMEOUT=900s boot_vm "$n" --disk "$TEST_TMP/node.ext4" --cpus 2 --memory 2Gi --ready systemd
done
ids=""
for n in node-a node-b; do
  expect_exit 0 kina-vm exec "$n" -- systemctl is-system-running
  case "$OUT" in running|degraded) ;; *) fail "$n: systemd is '$OUT'" ;; esac
  expect_exit 0 kina-vm exec "$n" -- systemctl is-enabled containerd kubelet
  assert_eq "$(echo "$OUT" | tr '\n' ' ')" "enabled enabled " "$n: containerd and kubelet enabled"
  expect_exit 0 kina-vm exec "$n" -- systemctl is-active containerd
  expect_exit 0 kina-vm exec "$n" -- cat /etc/machine-id
  echo "$OUT" | grep -Eqx '[0-9a-f]{32}' || fail "$n: machine-id '$OUT'"
  ids="$ids $OUT"
done
[ "$(echo $ids | tr ' ' '\n' | sort -u | wc -l)" = 2 ] || fail "the two nodes share a machine-id: $ids"
ok "two nodes: systemd up, containerd active, kubelet enabled, machine-ids differ"

n=node-a
expect_exit 0 kina-vm exec "$n" -- kubeadm version -o short
assert_eq "$OUT" "$VERSION" "kubeadm version"
expect_exit 0 kina-vm exec "$n" -- kubelet --version
assert_eq "$OUT" "Kubernetes $VERSION" "kubelet --version"
expect_exit 0 kina-vm exec "$n" -- kubectl version --client -o json
assert_eq "$(jq_field "$OUT" .clientVersion.gitVersion)" "$VERSION" "kubectl version"
expect_exit 0 kina-vm exec "$n" -- cat /kind/version
assert_eq "$OUT" "$VERSION" "/kind/version"
expect_exit 0 kina-vm exec "$n" -- sh -c 'grep -c "{{ .PodSubnet }}" /kind/manifests/default-cni.yaml; grep -c "is-default-class" /kind/manifests/default-storage.yaml'
expect_exit 0 kina-vm exec "$n" -- stat -fc %T /sys/fs/cgroup
assert_eq "$OUT" "cgroup2fs" "cgroup v2"
expect_exit 0 kina-vm exec "$n" -- sh -c 'modprobe br_netfilter && modprobe overlay && grep -Ew "^(br_netfilter|overlay)" /proc/modules | cut -d" " -f1 | sort | tr "\n" " "'
assert_eq "$OUT" "br_netfilter overlay " "modules"
ok "versions, kind layout, cgroup v2, modules"

# Every image kubeadm names, plus the CNI, storage and pause images, is in
# containerd's k8s.io namespace before kubelet ever ran.
expect_exit 0 kina-vm exec "$n" -- kubeadm config images list --kubernetes-version "$VERSION"
want=$(printf '%s\n' "$OUT" | sort)
expect_exit 0 kina-vm exec "$n" -- crictl images -o json
have=$(printf '%s\n' "$OUT" | jq -r '.images[].repoTags[]' | sort)
for ref in $want; do
  printf '%s\n' "$have" | grep -qx "$ref" || fail "crictl images lacks $ref: $have"
done
expect_exit 0 kina-vm exec "$n" -- cat /kind/kina-node-image.json
for ref in $(printf '%s\n' "$OUT" | jq -r '.images[]'); do
  printf '%s\n' "$have" | grep -qx "$ref" || fail "crictl images lacks $ref (in the image manifest)"
done
printf '%s\n' "$have" | grep -q '^kina.local/kina-net:' || fail "no CNI image: $have"
printf '%s\n' "$have" | grep -q '^kina.local/local-path-provisioner:' || fail "no storage image: $have"
# The sandbox image is the one kubeadm names, and it runs (a real pod sandbox
# needs kubelet; run pause through containerd directly).
expect_exit 0 kina-vm exec "$n" -- sh -c 'grep -o "registry.k8s.io/pause:[^'"'"']*" /etc/containerd/config.toml'
printf '%s\n' "$want" | grep -qx "$OUT" || fail "containerd's sandbox image $OUT is not kubeadm's"
expect_exit 0 kina-vm exec "$n" -- ctr -n k8s.io run --rm "$OUT" kina-pause-check /pause -v
assert_contains "$OUT" "pause (kina)"
expect_exit 0 kina-vm exec "$n" -- sh -c 'journalctl -u containerd --no-pager | grep -ci "PullImage" || true'
assert_eq "$OUT" "0" "pulls in containerd's log"
ok "every image preloaded, pause runs, nothing pulled"

for n in node-a node-b; do
  expect_exit 0 kina-vm stop "$n" --timeout 120s
  expect_exit 0 kina-vm rm "$n"
done
assert_eq "$(leftovers)" "" "processes left"
ok "nodes stopped"

# 4. The release source, against a release site on 127.0.0.1 serving the Go
# build's binaries in the upstream layout: the same files come back, checked
# against their sha512; a wrong sha512 is refused and nothing is kept.
gobuild=$("$KINA_SRC/tools/kina-node/image/steps/kubernetes" --version "$VERSION")
site="$TEST_TMP/site"
mkdir -p "$site/$VERSION/bin/linux/amd64"
for b in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  ln "$gobuild/$b" "$site/$VERSION/bin/linux/amd64/$b" 2>/dev/null || cp "$gobuild/$b" "$site/$VERSION/bin/linux/amd64/$b"
  sha512sum "$gobuild/$b" | cut -d' ' -f1 > "$site/$VERSION/bin/linux/amd64/$b.sha512"
done
python3 -c '
import functools, http.server, os, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
h.log_message = lambda *a: None
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1])); os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()' "$site" "$TEST_TMP/port" &
track_pid $!
for _ in $(seq 100); do [ -s "$TEST_TMP/port" ] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$TEST_TMP/port")"
expect_exit 0 env KINA_CACHE_DIR="$TEST_TMP/release-cache" "$KINA_SRC/tools/kina-node/image/steps/kubernetes" \
  --source release --release-url "$url" --version "$VERSION"
for b in kubeadm kubelet kube-apiserver; do cmp "$OUT/$b" "$gobuild/$b" || fail "release $b differs from the Go build"; done
echo 0000 > "$site/$VERSION/bin/linux/amd64/kube-proxy.sha512"
expect_exit 65 env KINA_CACHE_DIR="$TEST_TMP/release-cache2" "$KINA_SRC/tools/kina-node/image/steps/kubernetes" \
  --source release --release-url "$url" --version "$VERSION"
[ -z "$(ls -A "$TEST_TMP/release-cache2/kubernetes" | grep -v '^\.lock-')" ] || fail "a refused release download was kept"
ok "release source against a local release site"
