# tests/cli/lib.sh: sourced by every CLI test script.
# Gives each test its own KINA_HOME under a temporary directory, stops every
# process it registers, names the failing line, and offers small assertions.
set -eu -o pipefail

: "${KINA_BUILD:?run through meson test}"
: "${KINA_SRC:?run through meson test}"

TEST_NAME=$(basename "$0" .sh)
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kina-test-${TEST_NAME}.XXXXXX")
export KINA_HOME="$TEST_TMP/home"
mkdir -m 0700 -p "$KINA_HOME"
export HOME="$TEST_TMP/userhome"
mkdir -p "$HOME"
unset KINA_PASSPHRASE KINA_PASSPHRASE_FILE KINA_KEYSTORE KINA_AUDIT_LOG KUBECONFIG || true

export PATH="$KINA_BUILD/tools/kina-audit:$KINA_BUILD/tools/kina-kube:$KINA_BUILD/tools/kina-image:$KINA_BUILD/tools/kina-vm:$KINA_BUILD/tools/kina-node:$KINA_SRC/tools/kina:$PATH"

_kina_pids=()
_kina_mounts=()
# mount_tmpfs DIR SIZE: a tmpfs of SIZE (a real file system that can fill up)
# at DIR, unmounted at exit. Needs root; the caller skips otherwise.
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0700" kina-test "$1"
  _kina_mounts+=("$1")
}
# Registers a background process (or process group leader) to stop at exit.
track_pid() { _kina_pids+=("$1"); }

_kina_cleanup() {
  local rc=$?
  for pid in "${_kina_pids[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${_kina_pids[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for m in "${_kina_mounts[@]:-}"; do
    [ -n "$m" ] && umount -l "$m" 2>/dev/null || true
  done
  if [ "$rc" -eq 0 ] || [ -z "${KEEP_TEST_TMP:-}" ]; then rm -rf "$TEST_TMP"; fi
  exit "$rc"
}
trap _kina_cleanup EXIT
trap 'echo "FAIL: $TEST_NAME: line $LINENO: $BASH_COMMAND" >&2' ERR

fail() { echo "FAIL: $TEST_NAME: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# expect_exit CODE CMD...: runs CMD, checks its exit status; output in $OUT, $ERR.
expect_exit() {
  local want=$1; shift
  local rc=0
  OUT=$("$@" 2>"$TEST_TMP/.stderr") || rc=$?
  ERR=$(cat "$TEST_TMP/.stderr")
  if [ "$rc" -ne "$want" ]; then
    echo "--- stdout:" >&2; printf '%s\n' "$OUT" >&2
    echo "--- stderr:" >&2; printf '%s\n' "$ERR" >&2
    fail "expected exit $want, got $rc from: $*"
  fi
}

# assert_contains HAYSTACK NEEDLE [what]
assert_contains() {
  case "$1" in *"$2"*) ;; *) fail "${3:-output} does not contain '$2': $1" ;; esac
}
assert_not_contains() {
  case "$1" in *"$2"*) fail "${3:-output} contains '$2'" ;; *) ;; esac
}
assert_eq() { [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"; }

# into_full_device CMD...: CMD, its stdout on /dev/full (every write fails
# as on a full disk), must exit 74 with "writing stdout: No space left on
# device" within 120 s (a command that writes for ever must be ended).
into_full_device() {
  local rc=0
  timeout 120 "$@" </dev/null >/dev/full 2>"$TEST_TMP/full.err" || rc=$?
  assert_eq "$rc" 74 "exit of $* into /dev/full ($(cat "$TEST_TMP/full.err"))"
  assert_contains "$(cat "$TEST_TMP/full.err")" "writing stdout: No space left on device"
}

# wait_for SECONDS WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails
# naming WHAT when SECONDS pass first. Waits in tests poll the condition they
# stand for (a process started, a file appeared, a server answers), never a
# fixed sleep.
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || fail "gave up after ${limit}s waiting for $what"
    sleep 0.1
  done
}

# jq_field JSON FILTER: one value from a record (jq is a test dependency).
jq_field() { printf '%s\n' "$1" | jq -r "$2"; }

# devnull_intact WHAT: tests that aim output at /dev/null check it is still
# the device (a regression would turn it into a regular file: put it back, as
# root, and fail) and that no /dev/null.lock appeared.
devnull_intact() {
  if [ ! -c /dev/null ]; then
    if [ "$(id -u)" = 0 ]; then rm -f /dev/null; mknod -m 0666 /dev/null c 1 3; fi
    fail "/dev/null was replaced: $1"
  fi
  [ ! -e /dev/null.lock ] || { rm -f /dev/null.lock; fail "/dev/null.lock was created: $1"; }
}

# check_records KIND TEXT: the KIND records in TEXT keep the contract of
# tests/records/KIND.jsonl (fields, their types; see tests/records/check.py).
check_records() {
  printf '%s\n' "$2" | python3 "$KINA_SRC/tests/records/check.py" "$1" ||
    fail "$1 record does not match tests/records/$1.jsonl"
}

# free_ports N: N distinct free ports on 127.0.0.1, one per line (bound at
# once, so two calls of free_port cannot hand out the same port twice).
free_ports() {
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print("\n".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
# A free TCP port on 127.0.0.1.
free_port() { free_ports 1; }

# Audit events ($KINA_AUDIT_LOG or $KINA_HOME's log): how many there are, and
# "tool action outcome exitCode cluster" of the newest ("-" for no cluster).
audit_events() { { kina-audit show 2>/dev/null || true; } | wc -l; }
last_audit_event() { kina-audit show -n 1 | jq -r '[.tool, .action, .outcome, (.exitCode|tostring), (.cluster // "-")] | join(" ")'; }
# audited WANT_EXIT WANT_EVENT CMD...: CMD exits WANT_EXIT and appends exactly
# one audit event, WANT_EVENT.
audited() {
  local want=$1 event=$2 before; shift 2
  before=$(audit_events)
  expect_exit "$want" "$@"
  assert_eq "$(audit_events)" "$((before + 1))" "audit events appended by: $*"
  assert_eq "$(last_audit_event)" "$event" "the audit event of: $*"
}
