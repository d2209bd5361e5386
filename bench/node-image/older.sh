#!/bin/bash
# bench/node-image/older.sh BUILD_DIR [VERSION]: build a node image of an older
# Kubernetes minor (default v1.35.4) and boot it: proves the version-dependent
# parts (kubeadm's image list, etcd and CoreDNS tags, pause tag, crictl).
# Slow on a machine's first run (a second Kubernetes build); needs root.
set -eu -o pipefail
BUILD=${1:?usage: older.sh BUILD_DIR [VERSION]}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${2:-v1.35.4}
export PATH="$BUILD/tools/kina-vm:$BUILD/tools/kina-image:$BUILD/tools/kina-audit:$SRC/tools/kina:$PATH"
export KINA_KERNEL_CACHE="${KINA_KERNEL_CACHE:-/tmp/kina-kernel-cache}"
TMP=$(mktemp -d /var/tmp/kina-bench-older.XXXXXX)
export KINA_HOME="$TMP/home"
cleanup() { kina-vm rm -f old >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT
t0=$(date +%s)
kina build node-image --kubernetes-version "$VERSION" > "$TMP/image.json"
echo "build $VERSION: $(( $(date +%s) - t0 )) s; labels:"
jq -r '.labels | to_entries[] | "  \(.key)=\(.value)"' "$TMP/image.json"
kina-image unpack "kina.local/node:$VERSION" --disk "$TMP/node.ext4" --disk-size 8Gi > /dev/null
kina-vm kernel --fetch > /dev/null
kina-vm boot --name old --disk "$TMP/node.ext4" --cpus 2 --memory 2Gi --accel tcg --ready systemd --timeout 900s </dev/null > /dev/null
echo "systemd: $(kina-vm exec old -- systemctl is-system-running || true)"
echo "kubeadm: $(kina-vm exec old -- kubeadm version -o short); kubelet: $(kina-vm exec old -- kubelet --version)"
want=$(kina-vm exec old -- kubeadm config images list --kubernetes-version "$VERSION" | sort)
have=$(kina-vm exec old -- crictl images -o json | jq -r '.images[].repoTags[]' | sort)
missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$have"))
echo "kubeadm's images: $(printf '%s\n' "$want" | wc -l), missing from containerd: ${missing:-none}"
kina-vm stop old --timeout 120s > /dev/null
