#!/usr/bin/env bash
# Build a real kubeadm (v1.20.2, Debian bookworm's `kubernetes` source package,
# Go code vendored) for bench/kube/kubeadm-check.sh. Offline: only Debian's
# apt archive is needed. Run as root (apt). Idempotent where cheap: the
# deb-src entry, the source download and the GOPATH link are reused.
#
# usage: bench/kube/build-kubeadm.sh [SRC_DIR] [OUT_DIR]
#   SRC_DIR defaults to /tmp/kubeadm-src, OUT_DIR to /tmp/kubeadm-bin.
# Output: OUT_DIR/kubeadm, and OUT_DIR/kadmcheck (bench/kube/kadmcheck/main.go
# built inside the same tree: kubeadm's own Go code for the checks the binary
# cannot run offline). Measured on the shared 2-core dev machine (nice, -p 1,
# empty Go build cache): kubeadm 81 s and 108 s (two runs); the whole script
# from nothing (apt-get source included) 118 s. Reruns take seconds (cache).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=${1:-/tmp/kubeadm-src}
out=${2:-/tmp/kubeadm-bin}
version=v1.20.2

apt_retry() {  # apt may be locked by another user of the machine
    local _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        if DEBIAN_FRONTEND=noninteractive "$@"; then return 0; fi
        echo "build-kubeadm: apt busy or failed, retrying in 20s" >&2
        sleep 20
    done
    return 1
}

# 1. deb-src for the same mirror/suites as the existing deb822 entry
#    (nothing existing is modified or removed).
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ &&
   ! grep -qs '^deb-src' /etc/apt/sources.list; then
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    [ -n "$mirror" ] || { echo "build-kubeadm: no deb822 URIs line to take the mirror from" >&2; exit 1; }
    cat >/etc/apt/sources.list.d/debian-src.sources <<SRC
Types: deb-src
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt_retry apt-get update
fi

# 2. toolchain: Debian's Go 1.19 (the package's Build-Depends is just golang-go
#    for the Go part) and dpkg-dev for `apt-get source`.
if ! command -v go >/dev/null || ! command -v dpkg-source >/dev/null; then
    apt_retry apt-get install -y --no-install-recommends golang-go dpkg-dev
fi

# 3. source (orig tarball + Debian patches applied by dpkg-source)
mkdir -p "$src"
tree=$(find "$src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
if [[ -z $tree ]]; then
    (cd "$src" && apt-get source kubernetes)
    tree=$(find "$src" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
fi

# 4. GOPATH layout: $GOPATH/src/k8s.io/kubernetes -> the tree. Generated
#    files (zz_generated.*) are shipped in the tarball: no codegen step needed.
gopath=$src/gopath
mkdir -p "$gopath/src/k8s.io" "$out"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"

# 5. build kubeadm only; version stamped like hack/lib/version.sh does, so
#    kubeadm knows its own version (it uses it when it cannot reach dl.k8s.io).
pkg=k8s.io/kubernetes
ldflags="-s -w"
for k in component-base/version client-go/pkg/version; do
    ldflags+=" -X $pkg/vendor/k8s.io/$k.gitVersion=$version"
    ldflags+=" -X $pkg/vendor/k8s.io/$k.gitMajor=1 -X $pkg/vendor/k8s.io/$k.gitMinor=20"
    ldflags+=" -X $pkg/vendor/k8s.io/$k.gitTreeState=clean"
done
start=$(date +%s)
cd "$gopath/src/k8s.io/kubernetes"
GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS="" \
    nice -n 10 go build -p 1 -ldflags "$ldflags" -o "$out/kubeadm" k8s.io/kubernetes/cmd/kubeadm
echo "build-kubeadm: built $out/kubeadm in $(( $(date +%s) - start ))s" >&2
"$out/kubeadm" version -o short

# 6. the helper, compiled against the same vendored packages
mkdir -p "$tree/cmd/kina-kadmcheck"
cp "$here/kadmcheck/main.go" "$tree/cmd/kina-kadmcheck/main.go"
GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOFLAGS="" \
    nice -n 10 go build -p 1 -o "$out/kadmcheck" k8s.io/kubernetes/cmd/kina-kadmcheck
echo "build-kubeadm: built $out/kadmcheck" >&2
