#!/bin/bash
# Local inputs and temporaries of kina-image (issue 8, items 5, 7, 10, 13):
# layout blobs that are FIFOs, devices or symlinks are refused; an invalid
# image name is an error naming it; a tar of 1100 members imports under
# ulimit -n 256; unpack temporaries go on SIGTERM and are swept after kill -9;
# every invocation of a mutating command, a bad one included, is audited once.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"
export KINA_AUDIT_LOG="$TEST_TMP/audit.jsonl"
events() { kina-audit --log "$KINA_AUDIT_LOG" show 2>/dev/null | wc -l; }
last_audit() { kina-audit --log "$KINA_AUDIT_LOG" show -n 1 | jq -r '.tool + " " + .action + " " + .outcome + " " + (.exitCode|tostring)'; }

# --- audit: input errors are events with their real exit code -----------------
audited() {  # audited WANT-EXIT ACTION CMD...
  local want=$1 action=$2; shift 2
  local before; before=$(events)
  expect_exit "$want" "$@"
  assert_eq "$(events)" "$((before + 1))" "audit events after: $*"
  assert_eq "$(last_audit)" "kina-image $action error $want" "audit event of: $*"
}
python3 "$HERE/layouts.py" image small 3
kina-image import small >/dev/null
audited 64 pull kina-image pull 'Bad Ref'
audited 64 export kina-image export sha256:0000000000000000000000000000000000000000000000000000000000000000 --out x.tar --format zip
audited 64 pull kina-image pull alpine --jobs 99
audited 64 import kina-image import small --tag 'Bad Tag'
audited 64 unpack kina-image unpack small --max-bytes lots
audited 66 rm kina-image rm example.com/not/there:1
ok "bad invocations of mutating commands are audited with their exit code"

# --- layout blobs: regular files only --------------------------------------------
python3 "$HERE/layouts.py" image lay 3
layer=$(jq -r '.layers[0].digest' "lay/blobs/sha256/$(jq -r '.manifests[0].digest' lay/index.json | cut -d: -f2)")
cp -a lay fifo && rm "fifo/blobs/sha256/${layer#sha256:}" && mkfifo "fifo/blobs/sha256/${layer#sha256:}"
expect_exit 65 timeout 20 kina-image --store "$TEST_TMP/s1" import fifo
assert_contains "$ERR" "${layer#sha256:}: not a regular file"
cp -a lay dev && ln -sf /dev/zero "dev/blobs/sha256/${layer#sha256:}"
expect_exit 65 timeout 20 kina-image --store "$TEST_TMP/s1" import dev
assert_contains "$ERR" "a symlink or not a directory on the way"
mkdir -p outside && mv lay/blobs outside/ && ln -s "$TEST_TMP/outside/blobs" lay/blobs
expect_exit 65 timeout 20 kina-image --store "$TEST_TMP/s1" import lay
rm -f small/index.json && mkfifo small/index.json
expect_exit 65 timeout 20 kina-image --store "$TEST_TMP/s1" import small
assert_eq "$(ls -A s1/ingest)" ""
# The credentials file is read only if it is a regular file (a FIFO blocked the pull).
mkdir -p dockercfg && mkfifo dockercfg/config.json
DOCKER_CONFIG="$TEST_TMP/dockercfg" expect_exit 69 timeout 20 kina-image --store "$TEST_TMP/s1" pull 127.0.0.1:1/x/y:1 --insecure-registry 127.0.0.1:1
ok "FIFO, device and symlinked layout blobs and credential files refused"

# --- names: an invalid org.opencontainers.image.ref.name is an error naming it ----
for name in 'bad name' 'example.com/Bad/Repo:1' '-x'; do
  rm -rf named && python3 "$HERE/layouts.py" image named 2 "$name"
  expect_exit 65 kina-image --store "$TEST_TMP/s2" import named
  assert_contains "$ERR" "$(printf '%s' "$name" | jq -R .)"
done
touch s2/.index.json.tmp.AbCdEf  # what a writer of index.json killed by kill -9 leaves
expect_exit 0 kina-image --store "$TEST_TMP/s2" import named --tag example.com/fixed:1
assert_eq "$(jq_field "$OUT" .reference)" "example.com/fixed:1"
[ ! -e s2/.index.json.tmp.AbCdEf ] || fail "stale index.json temporary kept"
rm -rf named && python3 "$HERE/layouts.py" image named 2 "v1.0"
expect_exit 0 kina-image --store "$TEST_TMP/s2" import named
ok "invalid image names are errors naming them"

# --- a tar of 1100 members under ulimit -n 256 -----------------------------------
python3 "$HERE/layouts.py" tar many.tar 1100
expect_exit 0 bash -c 'ulimit -n 256 && exec kina-image --store "$1" import "$2"' _ "$TEST_TMP/s3" many.tar
assert_eq "$(ls -A s3/ingest)" ""
ok "import keeps one descriptor, not one per member"

# --- unpack: SIGTERM cleans up, kill -9 is swept by the next unpack ---------------
python3 "$HERE/layouts.py" image big 40000
kina-image --store "$TEST_TMP/s4" import big --tag big:1 >/dev/null
wait_tmp() {
  for _ in $(seq 1000); do compgen -G "$TEST_TMP/.root.kina-tmp.*" >/dev/null && return 0; sleep 0.01; done
  fail "no unpack temporary appeared"
}
kina-image --store "$TEST_TMP/s4" unpack big:1 --rootfs "$TEST_TMP/root" >/dev/null 2>&1 &
pid=$!
track_pid $pid
wait_tmp
kill -TERM $pid
rc=0; wait $pid || rc=$?
assert_eq "$rc" 143 "exit status after SIGTERM"
compgen -G "$TEST_TMP/.root.kina-tmp.*" >/dev/null && fail "SIGTERM left $(ls -d .root.kina-tmp.*)"
[ ! -e root ] || fail "SIGTERM left a root"
assert_eq "$(last_audit)" "kina-image unpack error 143"
kina-image --store "$TEST_TMP/s4" unpack big:1 --rootfs "$TEST_TMP/root" >/dev/null 2>&1 &
pid=$!
track_pid $pid
wait_tmp
kill -KILL $pid
wait $pid || true
compgen -G "$TEST_TMP/.root.kina-tmp.*" >/dev/null || fail "the unpack finished before kill -9: nothing to sweep"
expect_exit 0 kina-image --store "$TEST_TMP/s4" unpack big:1 --rootfs "$TEST_TMP/root"
compgen -G "$TEST_TMP/.root.kina-tmp.*" >/dev/null && fail "the next unpack did not sweep $(ls -d .root.kina-tmp.*)"
[ -f root/d39/f39999 ] || fail "unpacked root incomplete"
ok "unpack temporaries: SIGTERM removes them, the next run sweeps kill -9 leftovers"
