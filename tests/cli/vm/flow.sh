# vm-flow: per-session flow control. An exec whose client stops reading must
# not make the supervisor buffer without bound; its output arrives complete
# once the client resumes, and other sessions keep working meanwhile.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
boot_vm f1 --rootfs "$TEST_TMP/rootfs" --cpus 2 --memory 256Mi -- "${IDLE[@]}"
DIR=$(jq_field "$OUT" .dir)
SUP=$(cat "$DIR/supervisor.pid")
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

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
for _ in $(seq 100); do [ -s "$TEST_TMP/big.out" ] && break; sleep 0.1; done
[ -s "$TEST_TMP/big.out" ] || fail "the stream did not start"
kill -STOP "$cpid"
max=0
for _ in $(seq 10); do
  sleep 0.5
  r=$(rss_kib "$SUP")
  [ "$r" -gt "$max" ] && max=$r
done
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
kina-vm exec f1 -- sh -c "yes" > /dev/null &
ypid=$!
sleep 1
kill -STOP "$ypid"; sleep 1; kill -KILL "$ypid"; wait "$ypid" 2>/dev/null || true
expect_exit 0 timeout 30 kina-vm exec f1 -- sh -c 'sleep 1; pgrep -x yes || echo gone'
assert_eq "$OUT" "gone" "the abandoned command was killed"
ok "abandoned stream ends"

expect_exit 0 kina-vm rm -f f1
assert_eq "$(leftovers)" "" "processes left"
