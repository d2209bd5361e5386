# vm-flow: per-session flow control. An exec or cp whose client stops reading
# must not make the supervisor buffer without bound; its output arrives
# complete once the client resumes, and other sessions keep working meanwhile.
# Input a command does not read is held back in the client, not buffered.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
boot_vm f1 --rootfs "$TEST_TMP/rootfs" --cpus 2 --memory 256Mi -- "${IDLE[@]}"
DIR=$(jq_field "$OUT" .dir)
SUP=$(cat "$DIR/supervisor.pid")
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# The guest's busybox has no pgrep: `running ARGS` prints the pid of the guest
# process whose whole command line is ARGS (so `sleep 300` is not the idle
# workload's `sleep 3600`).
GUEST_LIB='running() { for c in /proc/[0-9]*/cmdline; do [ "$(tr "\000" " " < "$c" 2>/dev/null)" = "$1 " ] && { p=${c#/proc/}; echo "${p%/cmdline}"; return 0; }; done; return 1; }; '
# in_guest SCRIPT: polls SCRIPT (a guest shell condition) inside the guest,
# every 0.1 s for up to 60 s; prints "yes" once it holds, "no" if it never did.
in_guest() {
  kina-vm exec f1 -- sh -c "$GUEST_LIB for i in \$(seq 600); do if $1; then echo yes; exit; fi; sleep 0.1; done; echo no"
}
# guest_has ARGS: the command ARGS runs in the guest (polled, 60 s).
guest_has() { [ "$(in_guest "running '$1' >/dev/null")" = yes ]; }
# guest_lacks ARGS: the command ARGS is no longer running in the guest (polled, 60 s).
guest_lacks() { [ "$(in_guest "! running '$1' >/dev/null")" = yes ]; }
# input_held PID: the exec client PID has stopped reading its stdin (its read
# position is the same over half a second), having read some of it.
input_held() {
  local a b
  a=$(awk '/^pos:/ {print $2}' "/proc/$1/fdinfo/0" 2>/dev/null) || return 1
  sleep 0.5
  b=$(awk '/^pos:/ {print $2}' "/proc/$1/fdinfo/0" 2>/dev/null) || return 1
  [ -n "$a" ] && [ "$a" -gt 0 ] && [ "$a" = "$b" ]
}
# stop_client_when_started PID FILE: once FILE has data, stops PID and samples
# the supervisor's RSS for 5 s; the peak is left in $max.
# FILE may be a directory: then any non-empty file in it (cp writes a file
# under a temporary name, renamed when complete).
# Polled every 10 ms with shell builtins only: under KVM the whole 48 MiB can
# arrive within a few tenths of a second, and a client that is already done
# cannot be stopped.
stop_client_when_started() {
  started() {
    local f
    if [ -d "$1" ]; then
      for f in "$1"/* "$1"/.[!.]*; do [ -f "$f" ] && [ -s "$f" ] && return 0; done
      return 1
    fi
    [ -s "$1" ]
  }
  for _ in $(seq 1000); do started "$2" && break; sleep 0.01; done
  started "$2" || fail "the transfer into $2 did not start"
  kill -STOP "$1" 2>/dev/null || fail "the client ended before it could be stopped (the transfer was too quick to observe; rerun)"
  max=0
  for _ in $(seq 10); do
    sleep 0.5  # (the sampling period of the 5 s measurement, not a wait)
    r=$(rss_kib "$SUP")
    if [ "$r" -gt "$max" ]; then max=$r; fi
  done
}

# A known stream: 48 MiB of "0123456789abcdef\n" lines, checksummed on both ends.
SIZE=$((48 * 1024 * 1024))
GEN="yes 0123456789abcdef | head -c $SIZE"
want=$(sh -c "$GEN" | sha256sum | cut -d' ' -f1)
expect_exit 0 kina-vm exec f1 -- true
rss0=$(rss_kib "$SUP")

kina-vm exec f1 -- sh -c "$GEN" > "$TEST_TMP/big.out" 2> "$TEST_TMP/big.err" &
cpid=$!
track_pid "$cpid"
# Let the stream start, then stop the client for a few seconds.
stop_client_when_started "$cpid" "$TEST_TMP/big.out"
# Other sessions are not held up by the stopped one.
expect_exit 0 timeout 30 kina-vm exec f1 -- echo still here
assert_eq "$OUT" "still here" "a second session while the first client is stopped"
expect_exit 0 timeout 30 sh -c 'echo piped | kina-vm exec -i f1 -- cat'
assert_eq "$OUT" "piped"
r=$(rss_kib "$SUP"); [ "$r" -gt "$max" ] && max=$r
got_while_stopped=$(stat -c %s "$TEST_TMP/big.out")
kill -CONT "$cpid"
rc=0; wait "$cpid" || rc=$?
assert_eq "$rc" "0" "exit status of the streaming exec (stderr: $(cat "$TEST_TMP/big.err"))"
assert_eq "$(stat -c %s "$TEST_TMP/big.out")" "$SIZE" "bytes received"
assert_eq "$(sha256sum < "$TEST_TMP/big.out" | cut -d' ' -f1)" "$want" "checksum of the stream"
growth=$((max - rss0))
echo "supervisor VmRSS: ${rss0} KiB before, at most ${max} KiB while the client was stopped (+${growth} KiB); client had ${got_while_stopped} of ${SIZE} bytes when stopped"
# The window is 512 KiB per session plus socket buffers; without flow control
# the supervisor holds everything the guest produced during the pause.
[ "$growth" -lt 8192 ] || fail "supervisor RSS grew by ${growth} KiB while a client was stopped"
ok "stopped client: supervisor RSS bounded (+${growth} KiB), stream complete and correct, other sessions served"

# A client that disconnects while the agent is held back by the window: the
# session is dropped and the VM keeps serving.
kina-vm exec f1 -- yes > /dev/null &
ypid=$!
track_pid "$ypid"
guest_has yes || fail "yes never started in the guest"
kill -STOP "$ypid"
# Held back: with its client stopped, the guest's yes stops using CPU (it is
# blocked writing into the full window).
held='p=$(running yes) && a=$(cut -d" " -f14,15 /proc/$p/stat) && sleep 0.5 && [ "$a" = "$(cut -d" " -f14,15 /proc/$p/stat)" ]'
[ "$(in_guest "$held")" = yes ] ||
  fail "the guest's yes was never held back by the window of its stopped client"
kill -KILL "$ypid"; wait "$ypid" 2>/dev/null || true
guest_lacks yes || fail "the abandoned command was not killed"
ok "abandoned stream ends"

# cp out of the guest: the transfer has the same window. A stopped cp client
# holds back only its own transfer; the copy is complete when it resumes.
expect_exit 0 kina-vm exec f1 -- sh -c "mkdir -p /big/sub && $GEN > /big/sub/stream && echo small > /big/a"
rss0=$(rss_kib "$SUP")
mkdir "$TEST_TMP/cpout"
kina-vm cp f1:/big "$TEST_TMP/cpout" 2> "$TEST_TMP/cp.err" &
cpid=$!
track_pid "$cpid"
stop_client_when_started "$cpid" "$TEST_TMP/cpout/big/sub"
expect_exit 0 timeout 30 kina-vm exec f1 -- echo served during cp
assert_eq "$OUT" "served during cp" "an exec while a cp client is stopped"
got_while_stopped=$(find "$TEST_TMP/cpout/big/sub" -type f -printf '%s\n' | head -1)
kill -CONT "$cpid"
rc=0; wait "$cpid" || rc=$?
assert_eq "$rc" "0" "exit status of cp (stderr: $(cat "$TEST_TMP/cp.err"))"
assert_eq "$(sha256sum < "$TEST_TMP/cpout/big/sub/stream" | cut -d' ' -f1)" "$want" "checksum of the copied file"
assert_eq "$(cat "$TEST_TMP/cpout/big/a")" "small"
growth=$((max - rss0))
echo "cp out: supervisor VmRSS +${growth} KiB while the client was stopped; it had ${got_while_stopped} of ${SIZE} bytes"
[ "$growth" -lt 8192 ] || fail "supervisor RSS grew by ${growth} KiB while a cp client was stopped"
ok "stopped cp client: supervisor RSS bounded (+${growth} KiB), copy complete and correct, other sessions served"

# stdin into a command that does not read it yet: the client reads its input
# only as the command takes it (a window in the agent, socket buffers), and
# everything arrives once the command reads.
head -c "$SIZE" /dev/zero > "$TEST_TMP/zeros"
# The command reads only once /tmp/wc.go exists (a gate, not a guessed sleep),
# so the client's position is sampled when it has stopped reading.
kina-vm exec -i f1 -- sh -c 'touch /tmp/wc.started; while [ ! -e /tmp/wc.go ]; do sleep 0.1; done; wc -c' \
  < "$TEST_TMP/zeros" > "$TEST_TMP/wc.out" 2> "$TEST_TMP/wc.err" &
cpid=$!
track_pid "$cpid"
[ "$(in_guest "[ -e /tmp/wc.started ]")" = yes ] || fail "the stdin command never started: $(cat "$TEST_TMP/wc.err")"
wait_for 60 "the exec client to stop reading input the command does not take" input_held "$cpid"
pos=$(awk '/^pos:/ {print $2}' "/proc/$cpid/fdinfo/0" 2>/dev/null || echo gone)
expect_exit 0 kina-vm exec f1 -- touch /tmp/wc.go
rc=0; wait "$cpid" || rc=$?
assert_eq "$rc" "0" "exit status of the stdin exec (stderr: $(cat "$TEST_TMP/wc.err"))"
assert_eq "$(tr -d ' ' < "$TEST_TMP/wc.out")" "$SIZE" "bytes the command read"
echo "stdin: the client had read ${pos} of ${SIZE} bytes of its input while the command waited"
[ "$pos" != gone ] && [ "$pos" -lt $((8 * 1024 * 1024)) ] || fail "the client read ${pos} bytes of input the command had not taken"
ok "stdin held back until the command reads (${pos} bytes in flight), then complete"

# A client whose input is held back and that is interrupted twice gives up and
# disconnects; the command is killed.
# (sleep 300: a command that never reads its input; it is killed long before.)
kina-vm exec -i f1 -- sleep 300 < "$TEST_TMP/zeros" 2> "$TEST_TMP/int.err" &
cpid=$!
track_pid "$cpid"
guest_has "sleep 300" || fail "the command never started: $(cat "$TEST_TMP/int.err")"
wait_for 60 "the exec client to hold its input back" input_held "$cpid"
kill -TERM "$cpid"
# The second signal must come after the client took the first (two pending
# SIGTERMs would merge into one): wait until none is pending.
term_pending() {
  local m
  for m in $(awk '/^(SigPnd|ShdPnd):/ {print $2}' "/proc/$1/status" 2>/dev/null); do
    (( 0x$m & (1 << 14) )) && return 0
  done
  return 1
}
term_taken() { ! term_pending "$1"; }
wait_for 30 "the exec client to take the first SIGTERM" term_taken "$cpid"
kill -TERM "$cpid"
# (what counts is that it ends, not how fast: 60 s, as the whole machine may
# be busy with other guests; it failed once at 10 s under CI's load)
rc=0; timeout 60 tail --pid="$cpid" -f /dev/null || rc=$?
assert_eq "$rc" "0" "the client ended after the second signal"
assert_contains "$(cat "$TEST_TMP/int.err")" "could not be delivered"
guest_lacks "sleep 300" || fail "the command of the abandoned session was not killed"
ok "signal behind held-back input: the client disconnects, the command is killed"

expect_exit 0 kina-vm rm -f f1
assert_eq "$(leftovers)" "" "processes left"
