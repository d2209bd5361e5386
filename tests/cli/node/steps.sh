# node-image-steps: the node-image build's inputs and failures, fast (no
# Kubernetes build): usage errors, a version no source has, an unreachable
# module proxy or release site (69, naming it), the release source against a
# local HTTP server (sha512 checked: a wrong one is refused with 65 and nothing
# is kept), an interrupted download and a full disk (nothing half-built kept,
# the next run starts clean and sweeps what kill -9 left).
source "$KINA_CLI_LIB"
STEPS="$KINA_SRC/tools/kina-node/image/steps"
export KINA_CACHE_DIR="$TEST_TMP/cache"
V=v1.37.2

# Usage.
expect_exit 64 kina build node-image --kubernetes-version 1.37
assert_contains "$ERR" "--kubernetes-version 1.37: not a Kubernetes release version"
expect_exit 64 kina build node-image --source nope
expect_exit 69 kina build node-image --source debian
assert_contains "$ERR" "not implemented"
expect_exit 64 kina build node-image --source release
assert_contains "$ERR" "--release-url"
expect_exit 64 kina build cluster-image
expect_exit 64 "$STEPS/kubernetes" --version v1.37.2 --release-url http://127.0.0.1:1
expect_exit 0 kina audit show
assert_contains "$OUT" '"action":"build-node-image"'
ok "usage errors (and the failed build is in the audit log)"

# A release site on 127.0.0.1 laid out like the upstream one, with stand-in
# binaries (the download and the checks are under test here; node-image
# serves the real Go-built binaries the same way).
site="$TEST_TMP/site"
bin="$site/$V/bin/linux/amd64"
mkdir -p "$bin"
for b in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  printf '#!/bin/sh\n# stand-in for %s\n[ "$1 $2 $3" = "version -o short" ] && echo %s\nhead -c 300000 /dev/zero | tr "\\0" x >/dev/null\n' "$b" "$V" > "$bin/$b"
  head -c 2000000 /dev/urandom >> "$bin/$b.pad" && cat "$bin/$b.pad" >> "$bin/$b" && rm "$bin/$b.pad"
  sha512sum "$bin/$b" | cut -d' ' -f1 > "$bin/$b.sha512"
done
# serve_site PORTFILE DELAY: the site over HTTP, each answer DELAY seconds late.
serve_site() {
  python3 - "$site" "$1" "$2" <<'PY' &
import functools, http.server, os, sys, time
class Slow(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        time.sleep(float(sys.argv[3]))
        super().do_GET()
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Slow, directory=sys.argv[1]))
open(sys.argv[2] + ".tmp", "w").write(str(srv.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
srv.serve_forever()
PY
  track_pid $!
  wait_for 10 "the release site on 127.0.0.1" test -s "$1"
}
serve_site "$TEST_TMP/port" 0
url="http://127.0.0.1:$(cat "$TEST_TMP/port")"
# The same site, slow (the interrupt cases must land during a download).
serve_site "$TEST_TMP/slowport" 0.5
slow="http://127.0.0.1:$(cat "$TEST_TMP/slowport")"

expect_exit 0 "$STEPS/kubernetes" --source release --release-url "$url" --version "$V"
dir=$OUT
for b in kubeadm kubelet kube-proxy; do cmp "$dir/$b" "$bin/$b" || fail "$b differs from the release site's"; done
[ -x "$dir/kubelet" ] || fail "kubelet is not executable"
expect_exit 0 "$STEPS/kubernetes" --source release --release-url "$url" --version "$V"
assert_eq "$OUT" "$dir" "second run"
assert_not_contains "$ERR" "step download" "second run"
ok "release source: downloaded, checked, cached"

# A file:// site works the same.
expect_exit 0 env KINA_CACHE_DIR="$TEST_TMP/cache-file" "$STEPS/kubernetes" --source release --release-url "file://$site" --version "$V"
ok "release source from a directory"

# Wrong sha512: refused, nothing kept.
export KINA_CACHE_DIR="$TEST_TMP/cache2"
sha512sum /etc/hostname | cut -d' ' -f1 > "$bin/kubelet.sha512"
expect_exit 65 "$STEPS/kubernetes" --source release --release-url "$url" --version "$V"
assert_contains "$ERR" "kubelet: sha512"
assert_contains "$ERR" "does not match"
[ -z "$(ls -A "$KINA_CACHE_DIR/kubernetes" | grep -v '^\.lock-')" ] || fail "a refused download left: $(ls -A "$KINA_CACHE_DIR/kubernetes")"
sha512sum "$bin/kubelet" | cut -d' ' -f1 > "$bin/kubelet.sha512"
ok "a wrong sha512 is refused (65) and nothing is kept"

# Missing version on the site; site unreachable.
expect_exit 66 "$STEPS/kubernetes" --source release --release-url "$url" --version v1.37.3
assert_contains "$ERR" "not found on the release site"
expect_exit 69 "$STEPS/kubernetes" --source release --release-url "http://127.0.0.1:1" --version "$V"
assert_contains "$ERR" "http://127.0.0.1:1/$V/bin/linux/amd64/"
assert_contains "$ERR" "cannot be reached"
ok "missing version (66), unreachable site (69)"

# A full disk (a file size limit) while downloading: an error, nothing kept.
rc=0
(ulimit -f 1000; exec "$STEPS/kubernetes" --source release --release-url "$url" --version "$V") 2>"$TEST_TMP/full.err" || rc=$?
[ "$rc" -eq 74 ] || fail "a download over the file size limit: exit $rc, not 74: $(cat "$TEST_TMP/full.err")"
grep -q "cannot write the download" "$TEST_TMP/full.err" || fail "full disk message: $(cat "$TEST_TMP/full.err")"
[ -z "$(ls -A "$KINA_CACHE_DIR/kubernetes" | grep -v '^\.lock-')" ] || fail "a failed download left: $(ls -A "$KINA_CACHE_DIR/kubernetes")"
ok "full disk: exit $rc, nothing kept ($(head -1 "$TEST_TMP/full.err"))"

# kill -9 in the middle leaves a temporary directory; the next run sweeps it
# and builds clean.
# start_download: the release step against the slow site, in the background
# ($pid), once its temporary directory exists.
start_download() {
  "$STEPS/kubernetes" --source release --release-url "$slow" --version "$V" >/dev/null 2>&1 &
  pid=$!
  wait_for 30 "the step's temporary directory" test -d "$KINA_CACHE_DIR/kubernetes/.tmp.$pid"
}
start_download
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
[ -d "$KINA_CACHE_DIR/kubernetes/.tmp.$pid" ] || fail "kill -9 left no temporary directory to sweep"
expect_exit 0 "$STEPS/kubernetes" --source release --release-url "$url" --version "$V"
[ -z "$(ls -d "$KINA_CACHE_DIR"/kubernetes/.tmp.* 2>/dev/null)" ] || fail "kill -9 leftovers were not swept"
ok "kill -9 leftovers are swept"

# SIGTERM during a download: exit 143, nothing kept.
export KINA_CACHE_DIR="$TEST_TMP/cache3"
start_download
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
assert_eq "$rc" "143" "exit code after SIGTERM"
[ -z "$(ls -A "$KINA_CACHE_DIR/kubernetes" | grep -v '^\.lock-')" ] || fail "SIGTERM left: $(ls -A "$KINA_CACHE_DIR/kubernetes")"
ok "SIGTERM: nothing kept"

# The go source: a version no module proxy has (66) and an unreachable proxy
# (69), with an empty module cache so nothing local answers.
if command -v go >/dev/null 2>&1; then
  export GOMODCACHE="$TEST_TMP/gomod" GOFLAGS=-modcacherw
  expect_exit 69 env GOPROXY=http://127.0.0.1:1 "$STEPS/kubernetes" --version v1.36.3
  assert_contains "$ERR" "the Go module proxy (http://127.0.0.1:1) cannot be reached"
  if go list -m -versions k8s.io/kubernetes >/dev/null 2>&1; then
    expect_exit 66 "$STEPS/kubernetes" --version v1.99.0
    assert_contains "$ERR" "k8s.io/kubernetes@v1.99.0: no such module version"
  else
    echo "note: the Go module proxy does not answer here: the missing-version case is not run"
  fi
  rm -rf "$GOMODCACHE"
  ok "go source: unreachable proxy (69), missing version (66)"
else
  echo "note: no Go toolchain: the go source cases are not run"
fi

# SIGTERM while debootstrap runs: the step ends its whole process group (a
# shell alone would wait for debootstrap to finish first), exits 143 and
# keeps nothing.
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null 2>&1; then
  export KINA_CACHE_DIR="$TEST_TMP/cache4"
  "$STEPS/rootfs" > /dev/null 2> "$TEST_TMP/rootfs.err" &
  pid=$!
  for _ in $(seq 600); do
    pgrep -f "debootstrap.*$KINA_CACHE_DIR" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  pgrep -f "debootstrap.*$KINA_CACHE_DIR" >/dev/null 2>&1 || fail "debootstrap did not start: $(cat "$TEST_TMP/rootfs.err")"
  kill -TERM "$pid"
  rc=0
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "the rootfs step did not end within a minute of SIGTERM"
  wait "$pid" || rc=$?
  assert_eq "$rc" "143" "rootfs exit code after SIGTERM"
  for _ in $(seq 100); do pgrep -f "$KINA_CACHE_DIR" >/dev/null 2>&1 || break; sleep 0.1; done
  [ -z "$(pgrep -af "$KINA_CACHE_DIR" || true)" ] || fail "processes left: $(pgrep -af "$KINA_CACHE_DIR")"
  [ -z "$(ls -A "$KINA_CACHE_DIR/rootfs" | grep -v '^\.lock')" ] || fail "SIGTERM left: $(ls -A "$KINA_CACHE_DIR/rootfs")"
  ok "SIGTERM during debootstrap: the step and its children end, nothing kept"
else
  echo "note: not root or no debootstrap: the interrupted-rootfs case is not run"
fi

# Bad --image and --archive are refused before anything is built.
export KINA_CACHE_DIR="$TEST_TMP/cache5"
expect_exit 64 kina build node-image --image 'Bad Ref'
assert_contains "$ERR" "--image Bad Ref: invalid image reference"
mkdir "$TEST_TMP/adir"
expect_exit 73 kina build node-image --archive "$TEST_TMP/adir"
ln -s /dev/null "$TEST_TMP/alink"
expect_exit 73 kina build node-image --archive "$TEST_TMP/alink"
[ ! -e "$KINA_CACHE_DIR/rootfs" ] || fail "a refused build started building"
ok "bad --image (64) and --archive (73) refused up front"
