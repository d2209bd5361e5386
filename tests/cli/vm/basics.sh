# vm-basics: kernel, boot (TCG, busybox root), exec (status, signals, stdin,
# env, workdir, user, 4 at once), cp both ways, ls/inspect/logs, stop, rm.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
expect_exit 0 kina-vm kernel
assert_eq "$(jq_field "$OUT" .version)" "$KERNEL_VERSION" "kernel record"
assert_eq "$(jq_field "$OUT" .kind)" "Kernel"
ok "kernel $KERNEL_VERSION"

make_rootfs "$TEST_TMP/rootfs"
mkdir -p "$TEST_TMP/share" "$TEST_TMP/ro"
echo "from the host" > "$TEST_TMP/share/h.txt"
echo "read only" > "$TEST_TMP/ro/r.txt"
boot_vm n1 --rootfs "$TEST_TMP/rootfs" --env GREETING=hello --cpus 2 --memory 384Mi \
  --mount "$TEST_TMP/share:/mnt/share" --mount "$TEST_TMP/ro:/mnt/ro:ro" -- "${IDLE[@]}"
assert_eq "$(jq_field "$OUT" .kind)" "Machine"
check_records Machine "$OUT"
assert_eq "$(jq_field "$OUT" .state)" "running"
assert_eq "$(jq_field "$OUT" .cpus)" "2"
assert_eq "$(jq_field "$OUT" .memoryMiB)" "384"
DIR=$(jq_field "$OUT" .dir)
ok "boot"

expect_exit 0 kina-vm exec n1 -- uname -r
assert_eq "$OUT" "$KERNEL_VERSION" "uname -r in the guest"
expect_exit 0 kina-vm exec n1 -- hostname
assert_eq "$OUT" "n1" "hostname"
expect_exit 0 kina-vm exec n1 -- nproc
assert_eq "$OUT" "2" "nproc"
expect_exit 0 kina-vm exec n1 -- sh -c 'cat /proc/1/environ | tr "\0" "\n" | grep GREETING'
assert_eq "$OUT" "GREETING=hello" "workload env"
expect_exit 0 kina-vm exec n1 -- sh -c 'ls /lib/modules/$(uname -r)/kernel >/dev/null && grep -c . /lib/modules/$(uname -r)/modules.dep'
[ "$OUT" -gt 100 ] || fail "modules.dep in the guest has $OUT lines"
expect_exit 0 kina-vm exec n1 -- sh -c 'ip route | grep default'
assert_contains "$OUT" "default via 10.0.2.2"
ok "guest: kernel, hostname, cpus, env, modules, route"

# --mount: virtiofs shares, one read-write, one read-only.
assert_eq "$(jq_field "$(kina-vm inspect n1)" '.mounts | join(" ")')" "$TEST_TMP/share:/mnt/share $TEST_TMP/ro:/mnt/ro:ro"
expect_exit 0 kina-vm exec n1 -- sh -c 'cat /mnt/share/h.txt /mnt/ro/r.txt; echo from the guest > /mnt/share/g.txt'
assert_eq "$OUT" "$(printf 'from the host\nread only')"
assert_eq "$(cat "$TEST_TMP/share/g.txt")" "from the guest"
expect_exit 1 kina-vm exec n1 -- sh -c 'echo x > /mnt/ro/x'
assert_contains "$ERR" "Read-only file system"
[ ! -e "$TEST_TMP/ro/x" ] || fail "a write through the :ro mount reached the host"
ok "--mount rw and ro"
# :ro is enforced on the host: guest root remounting its side read-write
# still cannot write through virtiofsd.
expect_exit 0 kina-vm exec n1 -- sh -c 'mount -o remount,rw /mnt/ro && grep " /mnt/ro " /proc/mounts'
assert_contains "$OUT" " rw" "the guest remounted /mnt/ro read-write"
expect_exit 1 kina-vm exec n1 -- sh -c 'echo changed > /mnt/ro/r.txt'
expect_exit 1 kina-vm exec n1 -- sh -c 'echo x > /mnt/ro/x'
expect_exit 1 kina-vm exec n1 -- rm /mnt/ro/r.txt
expect_exit 1 kina-vm exec n1 -- mkdir /mnt/ro/d
assert_eq "$(cat "$TEST_TMP/ro/r.txt")" "read only" "host file behind the :ro mount"
assert_eq "$(ls -A "$TEST_TMP/ro")" "r.txt" "host directory behind the :ro mount"
expect_exit 0 kina-vm exec n1 -- cat /mnt/ro/r.txt
assert_eq "$OUT" "read only"
# The read-only bind mount lives only in virtiofsd's mount namespace.
touch "$TEST_TMP/ro/host-can-write" || fail "the host directory became read-only on the host"
rm "$TEST_TMP/ro/host-can-write"
ok ":ro holds after a read-write remount in the guest"

# The guest clock came from the host.
expect_exit 0 kina-vm exec n1 -- date +%s
host_now=$(date +%s)
[ $((host_now - OUT)) -lt 30 ] && [ $((OUT - host_now)) -lt 30 ] || fail "guest clock $OUT vs host $host_now"

expect_exit 7 kina-vm exec n1 -- sh -c 'echo out; echo err >&2; exit 7'
assert_eq "$OUT" "out"
assert_eq "$ERR" "err"
expect_exit 137 kina-vm exec n1 -- sh -c 'kill -KILL $$'
expect_exit 127 kina-vm exec n1 -- /no/such/program
assert_contains "$ERR" "No such file or directory"
ok "exit status, stderr, 128+signal, 127"

# A signal to the exec client reaches the command.
kina-vm exec n1 -- sh -c 'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done' > "$TEST_TMP/sig.out" &
cpid=$!
for _ in $(seq 100); do grep -q ready "$TEST_TMP/sig.out" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$cpid"
rc=0; wait "$cpid" || rc=$?
assert_eq "$rc" "42" "status after SIGTERM to the client"
ok "signals pass through"

expect_exit 0 sh -c 'printf "line1\nline2\n" | kina-vm exec -i n1 -- sh -c "wc -l"'
assert_eq "$(echo $OUT)" "2" "stdin lines"
expect_exit 0 kina-vm exec -e FOO=bar -w /tmp n1 -- sh -c 'echo $FOO $(pwd)'
assert_eq "$OUT" "bar /tmp"
expect_exit 0 kina-vm exec -u user n1 -- sh -c 'id -u; pwd'
assert_eq "$(echo $OUT)" "1000 /home/user"
expect_exit 0 kina-vm exec -u 1234:55 n1 -- sh -c 'id -u; id -g'
assert_eq "$(echo $OUT)" "1234 55"
expect_exit 126 kina-vm exec -u nosuchuser n1 -- true
assert_contains "$ERR" "unknown user nosuchuser"
# 5 MB through stdin and back through stdout, byte for byte.
head -c 5000000 /dev/urandom > "$TEST_TMP/r5"
kina-vm exec -i n1 -- cat < "$TEST_TMP/r5" > "$TEST_TMP/r5.back"
cmp "$TEST_TMP/r5" "$TEST_TMP/r5.back" || fail "5 MB stdin/stdout round trip differs"
ok "stdin, env, workdir, user, 5 MB round trip"

# -t: a terminal in the guest (the client's stdin is not one here).
expect_exit 0 kina-vm exec -t n1 -- sh -c 'test -t 0 && test -t 1 && echo tty'
assert_contains "$OUT" "tty"

# Four concurrent sessions, each with its own output and status. They meet:
# each marks its arrival and waits (up to 60 s) for the other three, so
# sessions served one after another fail with 99 instead of passing slowly.
kina-vm exec n1 -- rm -rf /tmp/meet
for i in 1 2 3 4; do
  kina-vm exec n1 -- sh -c "mkdir -p /tmp/meet && touch /tmp/meet/$i
    n=0; while [ \$(ls /tmp/meet | wc -l) -lt 4 ]; do n=\$((n+1)); [ \$n -gt 600 ] && exit 99; sleep 0.1; done
    echo session$i; exit $i" > "$TEST_TMP/c$i.out" &
  eval "p$i=\$!"
done
for i in 1 2 3 4; do
  rc=0; eval "wait \$p$i" || rc=$?
  assert_eq "$rc" "$i" "concurrent exec $i status"
  assert_eq "$(cat "$TEST_TMP/c$i.out")" "session$i"
done
ok "4 concurrent execs"

# cp in and out: a tree with modes, owners, a symlink and a binary file.
mkdir -p "$TEST_TMP/src/sub"
echo one > "$TEST_TMP/src/a.txt"
head -c 200000 /dev/urandom > "$TEST_TMP/src/sub/blob"
chmod 0751 "$TEST_TMP/src/sub"; chmod 0640 "$TEST_TMP/src/a.txt"
chown 1234:99 "$TEST_TMP/src/a.txt"
ln -s a.txt "$TEST_TMP/src/link"
expect_exit 0 kina-vm cp "$TEST_TMP/src" n1:/tmp
expect_exit 0 kina-vm exec n1 -- stat -c '%a %u %g %s' /tmp/src/a.txt /tmp/src/sub /tmp/src/sub/blob
assert_eq "$(echo $OUT)" "640 1234 99 4 751 0 0 4096 644 0 0 200000"
expect_exit 0 kina-vm exec n1 -- readlink /tmp/src/link
assert_eq "$OUT" "a.txt"
mkdir "$TEST_TMP/back"
expect_exit 0 kina-vm cp n1:/tmp/src "$TEST_TMP/back"
cmp "$TEST_TMP/src/sub/blob" "$TEST_TMP/back/src/sub/blob" || fail "blob differs after the round trip"
assert_eq "$(stat -c '%a %u %g' "$TEST_TMP/back/src/a.txt")" "640 1234 99"
assert_eq "$(readlink "$TEST_TMP/back/src/link")" "a.txt"
expect_exit 0 kina-vm cp n1:/etc/passwd "$TEST_TMP/passwd.copy"
assert_contains "$(cat "$TEST_TMP/passwd.copy")" "user:x:1000"
expect_exit 66 kina-vm cp n1:/no/such/file "$TEST_TMP/x"
assert_contains "$ERR" "No such file or directory"
[ ! -e "$TEST_TMP/x" ] || fail "a failed cp left a file"
expect_exit 64 kina-vm cp "$TEST_TMP/src" "$TEST_TMP/elsewhere"
ok "cp both ways"

# cp out keeps a sparse file sparse (holes are not written) and stops at
# --max-bytes, leaving nothing behind.
expect_exit 0 kina-vm exec n1 -- sh -c 'echo tail | dd of=/tmp/sparse bs=1M seek=16 2>/dev/null'
expect_exit 0 kina-vm cp n1:/tmp/sparse "$TEST_TMP/sparse"
assert_eq "$(stat -c %s "$TEST_TMP/sparse")" "$((16 * 1024 * 1024 + 5))"
[ "$(du -k "$TEST_TMP/sparse" | cut -f1)" -lt 1024 ] || fail "the sparse file was written dense: $(du -k "$TEST_TMP/sparse")"
assert_eq "$(tail -c 5 "$TEST_TMP/sparse")" "tail"
expect_exit 65 kina-vm cp --max-bytes 64Ki n1:/tmp/src "$TEST_TMP/capped"
assert_contains "$ERR" "--max-bytes"
[ ! -e "$TEST_TMP/capped" ] || fail "a capped cp left its output"
ls -a "$TEST_TMP" | grep -q '^\.kina-cp' && fail "a temporary file was left"
ok "cp out: holes kept, --max-bytes cap"

# The console goes through the supervisor (console.fifo), which appends it to
# console.log under a cap: a guest writing a lot to it is not slowed down to
# a stall, and every byte arrives.
[ -p "$DIR/console.fifo" ] || fail "console.fifo is not a FIFO"
grep -q -- '-chardev file,id=con,path=console.fifo' <(jq -r '.qemuArgv | join(" ")' "$DIR/machine.json") \
  || fail "QEMU does not write the console into console.fifo"
before=$(stat -c %s "$DIR/console.log")
t0=$(date +%s)
expect_exit 0 timeout 300 kina-vm exec n1 -- sh -c 'head -c 1048576 /dev/zero | tr "\0" k > /dev/ttyS0'
echo "# 1 MiB through the guest's serial console in $(( $(date +%s) - t0 )) s"
# (runs of 64 or more: a kernel message may have a k here and there)
[ "$(tail -c +$((before + 1)) "$DIR/console.log" | grep -ao 'k\{64,\}' | tr -cd k | wc -c)" -eq 1048576 ] ||
  fail "console.log did not get the 1 MiB"
# Past the cap (8 MiB) console.log becomes console.old.log and starts over:
# neither passes the cap, and `logs` shows both, in order.
expect_exit 0 timeout 600 kina-vm exec n1 -- sh -c 'head -c 9437184 /dev/zero | tr "\0" K > /dev/ttyS0; echo console-end > /dev/ttyS0'
[ -f "$DIR/console.old.log" ] || fail "no console.old.log after 10 MiB of console"
for f in console.log console.old.log; do
  [ "$(stat -c %s "$DIR/$f")" -le 8388608 ] || fail "$f is past the cap: $(stat -c %s "$DIR/$f") bytes"
done
expect_exit 0 kina-vm logs n1
assert_eq "$(printf '%s' "$OUT" | grep -ao 'k\{64,\}' | tr -cd k | wc -c)" 1048576 "the first MiB, in logs"
assert_eq "$(printf '%s' "$OUT" | grep -ao 'K\{64,\}' | tr -cd K | wc -c)" 9437184 "the next 9 MiB, in logs"
assert_contains "$(printf '%s' "$OUT" | tail -c 200)" "console-end"
ok "console through the supervisor: capped at 8 MiB per file"

expect_exit 0 kina-vm ls
assert_eq "$(jq_field "$OUT" .name)" "n1"
expect_exit 0 kina-vm inspect n1
assert_eq "$(jq_field "$OUT" .state)" "running"
expect_exit 0 kina-vm logs n1
assert_contains "$OUT" "kina-init: starting /bin/sh"
expect_exit 66 kina-vm inspect nosuch
ok "ls, inspect, logs"
# Output that cannot be written (/dev/full: a full disk) is 74 naming the
# cause, and ends a command that writes for ever (the session is closed).
into_full_device kina-vm exec n1 -- /bin/echo hi
into_full_device kina-vm exec n1 -- /bin/yes
into_full_device kina-vm logs n1
expect_exit 0 kina-vm exec n1 -- /bin/echo still-up
ok "exec and logs into a full device: 74, the command ended"

expect_exit 0 kina-vm stop n1
assert_eq "$(jq_field "$OUT" .state)" "exited"
assert_eq "$(jq_field "$OUT" .reason)" "stopped"
assert_eq "$(leftovers)" "" "processes after stop"
assert_eq "$(ps -eo args | grep -F "source=$TEST_TMP" | grep -v grep || true)" "" "virtiofsd after stop"
expect_exit 69 kina-vm exec n1 -- true
assert_contains "$ERR" "not running"
expect_exit 0 timeout 10 kina-vm logs -f n1
assert_contains "$OUT" "reboot: Power down"
expect_exit 0 kina-vm rm n1
[ ! -e "$DIR" ] || fail "rm left $DIR"
expect_exit 0 kina-vm ls
assert_eq "$OUT" ""
ok "stop, rm"

# Every mutating command left an audit event.
expect_exit 0 kina-audit show --tool kina-vm --format json
for action in kernel boot exec cp stop rm; do
  assert_contains "$OUT" "\"action\":\"$action\"" "audit log"
done
ok "audit events"
