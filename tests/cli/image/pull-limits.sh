#!/bin/bash
# Unbounded input from a registry (issue 8, items 5, 7, 13): a manifest that
# declares a huge layer is refused against the download cap before anything is
# fetched; a body larger than its descriptor or cut short leaves nothing in
# ingest/; a trickling registry ends in a stall timeout (75); SIGTERM removes
# the partial blob and is audited; what a kill -9 left is swept by the next pull.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

python3 "$HERE/layouts.py" image oci 50 img
python3 "$HERE/layouts.py" image oci 3 other
huge=$(python3 "$HERE/layouts.py" huge oci huge $((1 << 50)))
{ read -r port; read -r blobport; } < <(free_ports 2)
reg="127.0.0.1:$port"
python3 "$HERE/fake_registry.py" oci "$port" "$blobport" "$TEST_TMP/server.log" &
track_pid $!
for _ in $(seq 100); do grep -q ready server.log 2>/dev/null && break; sleep 0.1; done
mkdir -p "$HOME/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$reg" "$(printf user:secret | base64)" >"$HOME/.docker/config.json"
export KINA_AUDIT_LOG="$TEST_TMP/audit.jsonl"
pull() { local s=$1; shift; kina-image --store "$TEST_TMP/$s" pull --insecure-registry "$reg" "$@"; }
ingest_empty() { assert_eq "$(ls -A "$TEST_TMP/$1/ingest")" "" "leftovers in $1/ingest"; }
last_audit() { kina-audit --log "$KINA_AUDIT_LOG" show -n 1 | jq -r "$1"; }

# A layer declared at 1 PiB: refused before any blob request, naming the cap.
: >server.log
expect_exit 65 pull huge "$reg/test/img:huge"
assert_contains "$ERR" "over the download cap of 68719476736 bytes"
grep -q "^blob /data/$huge" server.log && fail "the huge layer was requested"
ingest_empty huge
assert_eq "$(last_audit .exitCode)" 65
# The cap is configurable (flag and environment); raised, the stream that
# never reaches its declared size is cut off and nothing stays.
KINA_IMAGE_MAX_DOWNLOAD=100 expect_exit 65 pull small "$reg/test/img:img"
assert_contains "$ERR" "over the download cap of 100 bytes"
expect_exit 64 pull small "$reg/test/img:img" --max-download lots
expect_exit 69 pull huge2 "$reg/test/img:huge" --max-download 2Pi
ingest_empty huge2
ok "download cap checked against the descriptors; partial removed"

# A body larger than its descriptor: 65, and no byte of it kept.
touch server.log.oversize
expect_exit 65 pull over "$reg/test/img:img"
rm server.log.oversize
assert_contains "$ERR" "larger than the size in its descriptor"
ingest_empty over
ok "oversize body"

# 1 byte a second: a stall, exit 75, within the configured timeout.
touch server.log.trickle
KINA_IMAGE_STALL_TIMEOUT=2s expect_exit 75 pull slow "$reg/test/img:img"
assert_contains "$ERR" "stalled: less than 1024 bytes/s for 2 s"
ingest_empty slow
expect_exit 64 pull slow "$reg/test/img:img" --stall-timeout 0s
ok "stall timeout"

# SIGTERM while a blob trickles in: the partial goes, exit 143, audited.
wait_partial() {
  for _ in $(seq 300); do compgen -G "$TEST_TMP/$1/ingest/*.partial" >/dev/null && return 0; sleep 0.05; done
  fail "no partial blob appeared in $1"
}
kina-image --store "$TEST_TMP/term" pull --insecure-registry "$reg" "$reg/test/img:img" >/dev/null 2>&1 &
pid=$!
track_pid $pid
wait_partial term
kill -TERM $pid
rc=0; wait $pid || rc=$?
assert_eq "$rc" 143 "exit status after SIGTERM"
ingest_empty term
assert_eq "$(last_audit '.action + " " + .outcome + " " + (.exitCode|tostring)')" "pull error 143"
ok "SIGTERM removes the partial blob and is audited"

# kill -9 leaves the partial (nothing can run); the next pull sweeps it.
kina-image --store "$TEST_TMP/killed" pull --insecure-registry "$reg" "$reg/test/img:img" >/dev/null 2>&1 &
pid=$!
track_pid $pid
wait_partial killed
kill -KILL $pid
wait $pid || true
compgen -G "$TEST_TMP/killed/ingest/*.partial" >/dev/null || fail "kill -9 left nothing to sweep"
rm server.log.trickle
expect_exit 0 pull killed "$reg/test/img:other"
ingest_empty killed
ok "the next pull sweeps what kill -9 left"
