# tests/cli/net/netlib.sh: sourced by the kina-net tests before lib.sh.
# lib.sh gives each test its own HOME; Go's module and build caches stay the
# caller's (taken before HOME changes), so tests build offline and warm.
KINANET_SRC="$KINA_SRC/tools/kina-node/image/kinanet"
MANIFESTS="$KINA_SRC/tools/kina-node/image/manifests"
if command -v go >/dev/null 2>&1; then
  GOMODCACHE=$(go env GOMODCACHE); GOCACHE=$(go env GOCACHE); GOPATH=$(go env GOPATH)
  export GOMODCACHE GOCACHE GOPATH
  export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
fi
# have_go: 0 when go is on PATH; callers exit 77 otherwise.
have_go() { command -v go >/dev/null 2>&1; }

# build_kinanet OUT: the lead's build command (static, stripped) into OUT.
build_kinanet() {
  (cd "$KINANET_SRC" && go build -trimpath -ldflags '-s -w' -o "$1" .)
}

# render_cni SUBNET: default-cni.yaml with its template field substituted,
# the way the cluster create does.
render_cni() {
  sed "s|{{ \.PodSubnet }}|$1|" "$MANIFESTS/default-cni.yaml"
}
