# vm-errors: bad inputs give one clear error with the right exit code and
# leave nothing behind; a guest that does not answer in time is removed (69).
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

make_rootfs "$TEST_TMP/rootfs"
nothing_left() {
  assert_eq "$(ls "$KINA_HOME/clusters/default/machines" 2>/dev/null)" "" "machine directories after: $1"
  assert_eq "$(leftovers)" "" "processes after: $1"
}

expect_exit 66 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --accel tcg </dev/null
assert_contains "$ERR" "kina-vm: error: no kernel"
assert_contains "$ERR" "kina-vm kernel --fetch"
nothing_left "missing kernel"
expect_exit 66 kina-vm kernel --kernel "$TEST_TMP/nope" --modules "$TEST_TMP"
assert_contains "$ERR" "no such file"
ok "missing kernel"

# A fetch unpacks the kernel package (about 100 MiB) into
# kernel/.unpack-PID.XXXXXX, then renames it: SIGTERM meanwhile removes it
# (143); what a kill -9 left is removed by the next fetch.
unpacks() { ls -d "$KINA_HOME"/kernel/.unpack-* 2>/dev/null || true; }
unpacking() { [ -n "$(unpacks)" ]; }
for sig in TERM KILL; do
  rm -rf "$KINA_HOME/kernel"
  kina-vm kernel --fetch >/dev/null 2>"$TEST_TMP/fetch.err" & p=$!
  track_pid "$p"
  wait_for 60 "an unpack to begin" unpacking
  kill -$sig "$p"
  rc=0; wait "$p" || rc=$?
  if [ $sig = TERM ]; then
    assert_eq "$rc" 143 "kernel --fetch on SIGTERM ($(cat "$TEST_TMP/fetch.err"))"
    assert_eq "$(unpacks)" "" "unpacks after SIGTERM"
  else
    [ -n "$(unpacks)" ] || fail "kill -9 during the unpack left no .unpack-* (the test reproduced nothing)"
  fi
done
fetch_kernel
assert_eq "$(unpacks)" "" "unpacks after the fetch that followed a kill -9"
[ -f "$(jq_field "$OUT" .path)" ] || fail "no kernel after the fetch that followed a kill -9"
ok "kernel --fetch: SIGTERM removes its unpack, the next fetch removes what a kill -9 left"

expect_exit 66 kina-vm boot --name n1 --rootfs "$TEST_TMP/missing" --accel tcg </dev/null
assert_eq "$ERR" "kina-vm: error: rootfs $TEST_TMP/missing: no such directory"
nothing_left "missing rootfs"
expect_exit 64 kina-vm boot --name n1 --accel tcg </dev/null
assert_contains "$ERR" "give --rootfs DIR or --disk FILE"
ok "missing rootfs"

for bad in "80" "1.2.3:80:80" "0:80" "80:99999" "127.0.0.1:80:80/sctp" "a:b" "127.0.0.1:8080:80:1"; do
  expect_exit 64 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --publish "$bad" --accel tcg </dev/null
  assert_contains "$ERR" "kina-vm: error: invalid --publish"
done
nothing_left "bad --publish"
expect_exit 64 kina-vm boot --name N_1 --rootfs "$TEST_TMP/rootfs" </dev/null
expect_exit 64 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --memory 12 </dev/null
expect_exit 64 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --kernel-arg "a b" </dev/null
expect_exit 64 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --env NOEQUALS </dev/null
expect_exit 66 kina-vm boot --name n1 --network nonet --rootfs "$TEST_TMP/rootfs" </dev/null
expect_exit 66 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --mount "$TEST_TMP/nodir:/x" </dev/null
assert_contains "$ERR" "is not a directory"
for bad in "$TEST_TMP" "$TEST_TMP:relative" "$TEST_TMP:/"; do
  expect_exit 64 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --mount "$bad" </dev/null
  assert_contains "$ERR" "kina-vm: error: invalid --mount"
done
nothing_left "bad flags"
ok "bad flags"

# A guest that does not answer in time: killed, removed, console shown.
expect_exit 69 kina-vm boot --name slow --rootfs "$TEST_TMP/rootfs" --accel tcg --timeout 1500ms -- /bin/true </dev/null
assert_contains "$ERR" "kina-vm: error: booting slow: the guest agent did not answer within 1500ms"
nothing_left "boot timeout"
# A workload that cannot start: QEMU powers off, the console says why.
expect_exit 69 kina-vm boot --name broken --rootfs "$TEST_TMP/rootfs" --accel tcg -- /no/such/init </dev/null
assert_contains "$ERR" "kina-init: fatal: exec /no/such/init: No such file or directory"
assert_contains "$ERR" "booting broken: powered off before the guest agent answered"
nothing_left "broken workload"
ok "boot failures clean up"

# A taken name; --accel auto says once on stderr when it falls back to TCG.
expect_exit 0 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --accel auto -- "${IDLE[@]}" </dev/null
track_pid "$(cat "$KINA_HOME/clusters/default/machines/n1/supervisor.pid")"
accel=$(jq_field "$OUT" .accel)
if [ -e /dev/kvm ] && [ "$accel" = tcg ]; then
  assert_eq "$(printf '%s\n' "$ERR" | grep -c 'using TCG')" "1" "fallback warning"
fi
expect_exit 73 kina-vm boot --name n1 --rootfs "$TEST_TMP/rootfs" --accel tcg </dev/null
assert_contains "$ERR" "kina-vm: error: machine n1: the name is taken in cluster default"
expect_exit 0 kina-vm exec n1 -- true
ok "taken name, accel auto"

# A supervisor killed with SIGKILL takes its QEMU along; ls says so; rm cleans.
QPID=$(jq_field "$(kina-vm inspect n1)" .pid)
kill -KILL "$(cat "$KINA_HOME/clusters/default/machines/n1/supervisor.pid")"
for _ in $(seq 50); do [ -e "/proc/$QPID" ] || break; sleep 0.1; done
[ ! -e "/proc/$QPID" ] || fail "QEMU outlived its supervisor"
expect_exit 0 kina-vm inspect n1
assert_eq "$(jq_field "$OUT" .state)" "exited"
assert_eq "$(jq_field "$OUT" .reason)" "the supervisor is gone"
expect_exit 0 kina-vm rm n1
nothing_left "rm after the supervisor died"
ok "supervisor killed"

# Several Rootfs records on stdin boot one machine each (NAME, NAME2), with
# their records printed once all answer; all or nothing.
rootfs_rec() { printf '{"apiVersion":"kina/v1alpha1","kind":"Rootfs","image":"sha256:%s","path":"%s"}\n' "$1" "$TEST_TMP/rootfs"; }
{ rootfs_rec aaaa; rootfs_rec bbbb; } > "$TEST_TMP/two"
expect_exit 0 kina-vm boot --name w --accel tcg -- "${IDLE[@]}" < "$TEST_TMP/two"
for n in w w2; do track_pid "$(cat "$KINA_HOME/clusters/default/machines/$n/supervisor.pid")"; done
assert_eq "$(printf '%s\n' "$OUT" | jq -r .name | tr '\n' ' ')" "w w2 " "Machine records"
expect_exit 0 kina-vm exec w2 -- hostname
assert_eq "$OUT" "w2"
expect_exit 0 kina-vm rm -f w
expect_exit 0 kina-vm rm -f w2
nothing_left "two machines from two records"
# The second name is taken: the first machine is removed again, the taken one untouched.
boot_vm q2 --rootfs "$TEST_TMP/rootfs" -- "${IDLE[@]}"
expect_exit 73 kina-vm boot --name q --accel tcg -- "${IDLE[@]}" < "$TEST_TMP/two"
assert_contains "$ERR" "machine q2: the name is taken"
assert_eq "$OUT" "" "no Machine record printed"
assert_eq "$(ls "$KINA_HOME/clusters/default/machines")" "q2" "machines after the failed boot"
expect_exit 0 kina-vm exec q2 -- true
expect_exit 0 kina-vm rm -f q2
nothing_left "a failed boot of two"
ok "several Rootfs records: one machine each, all or nothing"
