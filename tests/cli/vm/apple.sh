# vm-apple: contract tests of the apple backend against a scripted `container`
# (tests/cli/vm/apple/container) answering each recorded JSON shape
# (0.5, 0.9-0.12, 1.x) of `container list` and `container network list`, and
# running cp's tar streams against a directory standing in for the container's
# filesystem, and answering --ready systemd's `systemctl is-system-running`
# from a state the test sets. Nothing here runs Apple's real CLI.
source "$KINA_CLI_LIB"
FAKE_DIR=$(cd "$(dirname "$KINA_VM_TESTLIB")/apple" && pwd)
export PATH="$FAKE_DIR:$PATH"
FAKE="$TEST_TMP/fake"   # = $KINA_HOME/../fake, where the fake container looks
mkdir -p "$FAKE"
FAKE_CONTAINER_LOG="$FAKE/log"
# fake_env FIXTURE [STOPPED] [EXEC_STATUS]
fake_env() {
  printf 'FAKE_CONTAINER_FIXTURE=%q\nFAKE_CONTAINER_STOPPED=%q\nFAKE_EXEC_STATUS=%q\n' "$1" "${2:-}" "${3:-0}" > "$FAKE/env"
}
REF="registry.local/node@sha256:aaaa"

for version in 0.5 0.10 1.0; do
  fake_env "$FAKE_DIR/list-$version.json"
  : > "$FAKE_CONTAINER_LOG"
  expect_exit 0 kina-vm boot --backend apple --name n1 --cluster c1 --image "$REF" --cpus 2 --memory 2Gi \
    --publish 127.0.0.1:6443:6443 --env A=1 --mount /tmp/x:/x:ro -- /sbin/init </dev/null
  assert_eq "$(jq_field "$OUT" .backend)" "apple" "$version backend"
  check_records Machine "$OUT"
  assert_eq "$(jq_field "$OUT" .state)" "running" "$version state"
  assert_eq "$(jq_field "$OUT" .ip)" "192.168.64.3" "$version ip"
  assert_eq "$(jq_field "$OUT" .container)" "kina-c1-n1" "$version container id"
  assert_eq "$(sed -n 1p "$FAKE_CONTAINER_LOG")" "system status"
  assert_eq "$(sed -n 2p "$FAKE_CONTAINER_LOG")" \
    "run -d --name kina-c1-n1 --cpus 2 --memory 2048M --label kina.cluster=c1 --label kina.machine=n1 --publish 127.0.0.1:6443:6443/tcp --volume /tmp/x:/x:ro --env A=1 --cap-add ALL --masked-path NONE --read-only-path NONE $REF /sbin/init"
  assert_eq "$(sed -n 3p "$FAKE_CONTAINER_LOG")" "list --all --format json"

  expect_exit 0 kina-vm ls --cluster c1
  assert_eq "$(jq_field "$OUT" .ip)" "192.168.64.3" "$version ls ip"
  fake_env "$FAKE_DIR/list-$version.json" "" 3
  expect_exit 3 kina-vm exec -e K=V -w /tmp -u 0 n1 -- uname -r
  assert_eq "$OUT" "exec: --env K=V --workdir /tmp --user 0 kina-c1-n1 uname -r"
  expect_exit 0 kina-vm logs n1
  assert_eq "$OUT" "console of kina-c1-n1"

  expect_exit 0 kina-vm stop n1 --timeout 10s
  assert_eq "$(jq_field "$OUT" .state)" "exited" "$version state after stop"
  assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "stop --time 10 kina-c1-n1"
  # start: the kept container runs again (`container start ID`); a running one is left alone.
  expect_exit 0 kina-vm start n1
  assert_eq "$(jq_field "$OUT" .state)" "running" "$version state after start"
  assert_eq "$(jq_field "$OUT" .ip)" "192.168.64.3" "$version ip after start"
  assert_eq "$(grep -c '^start ' "$FAKE_CONTAINER_LOG")" "1" "$version container start calls"
  assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "start kina-c1-n1"
  expect_exit 0 kina-vm start n1
  assert_eq "$(grep -c '^start ' "$FAKE_CONTAINER_LOG")" "1" "$version container start calls after a start of a running machine"
  expect_exit 0 kina-vm start n1 --ready systemd
  assert_eq "$(grep -c '^start ' "$FAKE_CONTAINER_LOG")" "1" "$version container start calls after start --ready systemd of a running machine"
  expect_exit 0 kina-vm stop n1 --timeout 10s
  expect_exit 0 kina-vm rm n1
  assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "delete kina-c1-n1"
  [ ! -e "$KINA_HOME/clusters/c1/machines/n1" ] || fail "rm left the machine directory"
  ok "container $version: boot, ls, exec, logs, stop, start, rm"
done

# The image from an Image record on stdin (reference@digest); other records forwarded.
fake_env "$FAKE_DIR/list-1.0.json"
: > "$FAKE_CONTAINER_LOG"
printf '%s\n' '{"apiVersion":"kina/v1alpha1","kind":"Image","reference":"registry.local/node:v1","digest":"sha256:bbbb"}' \
  '{"apiVersion":"kina/v1alpha1","kind":"Other","x":1}' > "$TEST_TMP/records"
expect_exit 0 kina-vm boot --backend apple --name n2 --cluster c1 < "$TEST_TMP/records"
assert_eq "$(printf '%s\n' "$OUT" | sed -n 1p | jq -r .kind)" "Other" "forwarded record"
assert_eq "$(printf '%s\n' "$OUT" | sed -n 2p | jq -r .kind)" "Machine"
assert_contains "$(sed -n 2p "$FAKE_CONTAINER_LOG")" " registry.local/node:v1@sha256:bbbb"
expect_exit 0 kina-vm rm -f n2
assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "delete --force kina-c1-n2"
ok "image from the Image record"

# A stopped container system: 69 naming the command that starts it; nothing left.
fake_env "$FAKE_DIR/list-1.0.json" 1
expect_exit 69 kina-vm boot --backend apple --name n3 --cluster c1 --image "$REF" </dev/null
assert_contains "$ERR" "kina-vm: error: the apple backend: the container system is not running"
assert_contains "$ERR" "hint: start it with: container system start"
[ ! -e "$KINA_HOME/clusters/c1/machines/n3" ] || fail "a refused boot left files"
ok "stopped container system"

# --- --ready systemd: `container exec ID systemctl is-system-running` until running or degraded
fake_env "$FAKE_DIR/list-1.0.json"
SYSTEMD_ASK="exec kina-c1-s1 systemctl is-system-running"
asked() { grep -c "^exec .* systemctl is-system-running$" "$FAKE_CONTAINER_LOG" || true; }
printf 'starting\nstarting\nrunning\n' > "$FAKE/systemd"
: > "$FAKE_CONTAINER_LOG"
expect_exit 0 kina-vm boot --backend apple --name s1 --cluster c1 --image "$REF" --ready systemd --timeout 60s </dev/null
assert_eq "$(jq_field "$OUT" '[.state,.ready]|join(" ")')" "running systemd" "boot --ready systemd record"
check_records Machine "$OUT"
assert_eq "$(asked)" "3" "systemctl questions until running"
assert_eq "$(grep "systemctl" "$FAKE_CONTAINER_LOG" | sort -u)" "$SYSTEMD_ASK" "the exact container exec argv"
assert_eq "$(sed -n 3p "$FAKE_CONTAINER_LOG")" "list --all --format json" "systemd is asked after the container runs"
assert_eq "$(jq -r .ready "$KINA_HOME/clusters/c1/machines/s1/machine.json")" "systemd" "ready in machine.json"
expect_exit 0 kina-vm inspect s1
assert_eq "$(jq_field "$OUT" .ready)" "systemd" "inspect after boot --ready systemd"
ok "boot --ready systemd: waits through starting, record says ready systemd"

# start --ready systemd: degraded counts as ready; a systemd that never gets
# there is 69 naming the machine and its last state, and the machine is left
# stopped, its container and directory kept.
expect_exit 0 kina-vm stop s1 --timeout 10s
printf 'degraded\n' > "$FAKE/systemd"
expect_exit 0 kina-vm start s1 --ready systemd --timeout 60s
assert_eq "$(jq_field "$OUT" '[.state,.ready]|join(" ")')" "running systemd" "start --ready systemd (degraded)"
expect_exit 0 kina-vm stop s1 --timeout 10s
printf 'offline\nstarting\n' > "$FAKE/systemd"
: > "$FAKE_CONTAINER_LOG"
expect_exit 69 kina-vm start s1 --ready systemd --timeout 3s
assert_contains "$ERR" "kina-vm: error: starting s1: systemd did not reach running or degraded within 3s (its last state: starting)"
assert_contains "$ERR" "the machine was stopped again, its container kept"
[ "$(asked)" -ge 2 ] || fail "start asked systemd $(asked) times"
assert_eq "$(tail -n 1 "$FAKE_CONTAINER_LOG")" "stop kina-c1-s1" "a failed start stops the container"
[ -e "$KINA_HOME/clusters/c1/machines/s1/machine.json" ] || fail "a failed start removed the machine"
expect_exit 0 kina-vm inspect s1
assert_eq "$(jq_field "$OUT" '[.state,(.ready // "-")]|join(" ")')" "exited -" "a machine whose start failed"
expect_exit 0 kina-vm rm -f s1
ok "start --ready systemd: degraded is ready; a timeout is 69 and leaves the machine stopped"

# boot: a timeout, a failed unit (maintenance: at once) and a container
# without systemctl are 69; the container is deleted and nothing is left.
for case in "starting:69:systemd did not reach running or degraded within 2s (its last state: starting)" \
  "maintenance:69:systemd is in state maintenance" \
  "no-systemctl:69:--ready systemd: systemctl cannot be run in the container (exec failed: systemctl: executable file not found)"; do
  state=${case%%:*} rest=${case#*:} want=${rest%%:*} msg=${rest#*:}
  printf '%s\n' "$state" > "$FAKE/systemd"
  : > "$FAKE_CONTAINER_LOG"
  expect_exit "$want" kina-vm boot --backend apple --name s2 --cluster c1 --image "$REF" --ready systemd --timeout 2s </dev/null
  assert_contains "$ERR" "kina-vm: error: booting s2: $msg"
  assert_eq "$(tail -n 1 "$FAKE_CONTAINER_LOG")" "delete --force kina-c1-s2" "$state: the container is deleted"
  [ ! -e "$KINA_HOME/clusters/c1/machines/s2" ] || fail "$state: a failed boot --ready systemd left the machine directory"
  assert_eq "$OUT" "" "$state: no record"
done
[ "$(asked)" -eq 1 ] || fail "no-systemctl was asked $(asked) times"
# SIGTERM while boot waits for systemd: 143, the container deleted first.
printf 'starting\n' > "$FAKE/systemd"
: > "$FAKE_CONTAINER_LOG"
kina-vm boot --backend apple --name s3 --cluster c1 --image "$REF" --ready systemd --timeout 120s </dev/null >/dev/null 2>&1 &
kpid=$!
track_pid "$kpid"
wait_for 60 "boot to ask systemd" grep -q "systemctl is-system-running" "$FAKE_CONTAINER_LOG"
kill -TERM "$kpid"
rc=0; wait "$kpid" || rc=$?
assert_eq "$rc" "143" "exit of boot --ready systemd after SIGTERM"
assert_eq "$(tail -n 1 "$FAKE_CONTAINER_LOG")" "delete --force kina-c1-s3" "SIGTERM: the container is deleted"
[ ! -e "$KINA_HOME/clusters/c1/machines/s3" ] || fail "SIGTERM during boot --ready systemd left the machine directory"
rm "$FAKE/systemd"
ok "boot --ready systemd: timeout, maintenance, no systemctl, SIGTERM: 69 (143), container deleted, nothing left"

# --- networks: container network create/list/delete, boot --network ---------------------
for version in 0.5 0.10 1.0; do
  fake_env "$FAKE_DIR/list-$version.json"
  : > "$FAKE_CONTAINER_LOG"
  : > "$FAKE/networks"
  if [ "$version" = 0.5 ]; then
    # 0.5 has no --subnet: container's refusal is a 69 and nothing is left.
    expect_exit 69 kina-vm network create net1 --cluster c1 --backend apple --subnet 10.50.0.0/24
    assert_contains "$ERR" "Unknown option '--subnet'"
    [ ! -e "$KINA_HOME/clusters/c1/networks/net1" ] || fail "$version: a refused network create left files"
    : > "$FAKE_CONTAINER_LOG"
    expect_exit 0 kina-vm network create net1 --cluster c1 --backend apple
    assert_eq "$(sed -n 2p "$FAKE_CONTAINER_LOG")" "network create kina-c1-net1"
    subnet=192.168.65.0/24 gateway=192.168.65.1
  else
    expect_exit 0 kina-vm network create net1 --cluster c1 --backend apple --subnet 10.50.0.0/24
    assert_eq "$(sed -n 2p "$FAKE_CONTAINER_LOG")" "network create --subnet 10.50.0.0/24 kina-c1-net1"
    subnet=10.50.0.0/24 gateway=10.50.0.1
  fi
  assert_eq "$(sed -n 1p "$FAKE_CONTAINER_LOG")" "system status"
  assert_eq "$(sed -n 3p "$FAKE_CONTAINER_LOG")" "network list --format json"
  assert_eq "$(jq_field "$OUT" '[.kind,.name,.cluster,.backend,.subnet,.gateway,.container,.state]|join(" ")')" \
    "Network net1 c1 apple $subnet $gateway kina-c1-net1 running" "$version Network record"
  check_records Network "$OUT"
  expect_exit 73 kina-vm network create net1 --cluster c1 --backend apple
  expect_exit 64 kina-vm network create net2 --cluster c1 --backend apple --subnet 10.50.0.0/8
  expect_exit 0 kina-vm network ls --cluster c1
  assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 1 "$version network ls count"
  assert_eq "$(jq_field "$OUT" '[.name,.backend,.subnet,.gateway,.state]|join(" ")')" "net1 apple $subnet $gateway running" "$version ls"

  # boot --network: the container network's id goes to `container run --network`.
  : > "$FAKE_CONTAINER_LOG"
  expect_exit 0 kina-vm boot --backend apple --name n1 --cluster c1 --image "$REF" --network net1 </dev/null
  assert_eq "$(sed -n 2p "$FAKE_CONTAINER_LOG")" \
    "run -d --name kina-c1-n1 --cpus 1 --memory 512M --label kina.cluster=c1 --label kina.machine=n1 --network kina-c1-net1 --cap-add ALL --masked-path NONE --read-only-path NONE $REF"
  assert_eq "$(jq_field "$OUT" .network)" "net1" "$version machine network"
  # A qemu network (its network.json as the qemu backend writes it) is not one for apple.
  mkdir -p "$KINA_HOME/clusters/c1/networks/qnet"
  printf '{"subnet":"10.213.0.0/24"}\n' > "$KINA_HOME/clusters/c1/networks/qnet/network.json"
  expect_exit 64 kina-vm boot --backend apple --name n9 --cluster c1 --image "$REF" --network qnet </dev/null
  assert_contains "$ERR" "network qnet: it does not belong to the apple backend"
  rm -r "$KINA_HOME/clusters/c1/networks/qnet"
  expect_exit 66 kina-vm boot --backend apple --name n9 --cluster c1 --image "$REF" --network nosuch </dev/null
  assert_contains "$ERR" "network nosuch: no such network in cluster c1"
  [ ! -e "$KINA_HOME/clusters/c1/machines/n9" ] || fail "$version: boot on a missing network left files"
  assert_not_contains "$(cat "$FAKE_CONTAINER_LOG")" "kina-c1-n9"

  # rm refuses while a machine uses it; then deletes it in container.
  expect_exit 64 kina-vm network rm net1 --cluster c1
  assert_contains "$ERR" "machines are attached: n1"
  expect_exit 0 kina-vm rm -f n1
  : > "$FAKE_CONTAINER_LOG"
  expect_exit 0 kina-vm network rm net1 --cluster c1
  assert_eq "$(cat "$FAKE_CONTAINER_LOG")" "network delete kina-c1-net1"
  [ ! -e "$KINA_HOME/clusters/c1/networks/net1" ] || fail "$version: network rm left files"
  [ ! -s "$FAKE/networks" ] || fail "$version: the container network is still there"
  expect_exit 0 kina-vm network ls --cluster c1
  assert_eq "$OUT" "" "$version network ls after rm"

  # A network container no longer has: ls says missing; rm needs -f.
  expect_exit 0 kina-vm network create net2 --cluster c1 --backend apple
  : > "$FAKE/networks"
  expect_exit 0 kina-vm network ls --cluster c1
  assert_eq "$(jq_field "$OUT" .state)" "missing" "$version state of a vanished network"
  expect_exit 69 kina-vm network rm net2 --cluster c1
  assert_contains "$ERR" "network kina-c1-net2 not found"
  assert_contains "$ERR" "hint: network rm -f removes kina's record anyway"
  [ -e "$KINA_HOME/clusters/c1/networks/net2" ] || fail "$version: a failed network rm removed kina's record"
  expect_exit 0 kina-vm network rm -f net2 --cluster c1
  [ ! -e "$KINA_HOME/clusters/c1/networks/net2" ] || fail "$version: network rm -f left files"
  ok "container $version: network create (subnet $subnet), ls, boot --network, rm"
done

# --- cp: tar streams through container exec, both directions ------------------------------
fake_env "$FAKE_DIR/list-1.0.json"
: > "$FAKE/networks"
rm -rf "$FAKE/guest"; mkdir -p "$FAKE/guest/opt" "$FAKE/guest/etc"
expect_exit 0 kina-vm boot --backend apple --name n1 --cluster c1 --image "$REF" </dev/null
SRC="$TEST_TMP/src"
mkdir -p "$SRC/tree/d/e"
printf 'alpha\n' > "$SRC/tree/a"
head -c 200000 /dev/urandom > "$SRC/tree/d/blob"
printf 'deep\n' > "$SRC/tree/d/e/f"
ln -s a "$SRC/tree/l"
chmod 0640 "$SRC/tree/a"; chmod 0750 "$SRC/tree/d"; chmod 0711 "$SRC/tree/d/e"; chmod 0755 "$SRC/tree"
if [ "$(id -u)" = 0 ]; then chown 1234:5678 "$SRC/tree/a"; chown -h 4321:8765 "$SRC/tree/l"; chown 99:98 "$SRC/tree/d"; fi
# "path mode uid gid size link" of every entry, and every file's checksum.
manifest() { (cd "$1" && find . -printf '%p %m %U %G %s %l\n' | LC_ALL=C sort && find . -type f -exec md5sum {} + | LC_ALL=C sort -k2); }
WANT=$(manifest "$SRC/tree")

: > "$FAKE_CONTAINER_LOG"
expect_exit 0 kina-vm cp "$SRC/tree" n1:/opt
assert_eq "$(cat "$FAKE_CONTAINER_LOG")" "exec -i kina-c1-n1 sh -c <script> kina-cp /opt tree" "cp in argv"
assert_eq "$(manifest "$FAKE/guest/opt/tree")" "$WANT" "tree copied into an existing guest directory"
expect_exit 0 kina-vm cp "$SRC/tree/" n1:/opt/renamed/
assert_eq "$(manifest "$FAKE/guest/opt/renamed")" "$WANT" "tree copied to a new guest name"
expect_exit 0 kina-vm cp "$SRC/tree/a" n1:/etc/a-copy
assert_eq "$(stat -c '%a %s' "$FAKE/guest/etc/a-copy")" "640 6" "a file copied to a new guest name"
assert_eq "$(ls -A "$FAKE/guest/opt" | tr '\n' ' ')" "renamed tree " "no temporary directory left in the guest"
expect_exit 66 kina-vm cp "$SRC/tree" n1:/nope/x
assert_contains "$ERR" "no such directory"
[ ! -e "$FAKE/guest/nope" ] || fail "a failed cp created the guest parent"
expect_exit 66 kina-vm cp "$TEST_TMP/absent" n1:/opt
expect_exit 64 kina-vm cp "$SRC/tree" n1:relative
ok "cp into the container: exact exec argv, modes, owners, symlink, 200 kB file, new names"

: > "$FAKE_CONTAINER_LOG"
expect_exit 0 kina-vm cp n1:/opt/tree "$TEST_TMP/out"
assert_eq "$(cat "$FAKE_CONTAINER_LOG")" "exec kina-c1-n1 tar -c -f - -C /opt tree" "cp out argv"
assert_eq "$(manifest "$TEST_TMP/out")" "$WANT" "tree copied out to a new name"
mkdir "$TEST_TMP/outdir"
expect_exit 0 kina-vm cp n1:/opt/tree/ "$TEST_TMP/outdir"
assert_eq "$(manifest "$TEST_TMP/outdir/tree")" "$WANT" "tree copied out into an existing directory"
printf 'changed\n' > "$FAKE/guest/opt/tree/d/e/f"
expect_exit 0 kina-vm cp n1:/opt/tree "$TEST_TMP/outdir"
assert_eq "$(cat "$TEST_TMP/outdir/tree/d/e/f")" "changed" "a second copy into the same directory merges"
assert_eq "$(stat -c %a "$TEST_TMP/outdir/tree/d/e")" "711" "mode kept through a merge"
expect_exit 0 kina-vm cp n1:/etc/a-copy "$TEST_TMP/one"
assert_eq "$(cat "$TEST_TMP/one")" "alpha" "a single file copied out"
expect_exit 66 kina-vm cp n1:/opt/absent "$TEST_TMP/never"
[ ! -e "$TEST_TMP/never" ] || fail "a failed cp out created its destination"
expect_exit 66 kina-vm cp n1:/opt/tree "$TEST_TMP/no/such/dir"
assert_eq "$(ls -A "$TEST_TMP" | grep -c '^\.kina-cp' || true)" "0" "no temporary directory left on the host"
expect_exit 0 kina-vm rm -f n1
ok "cp out of the container: exact exec argv, modes, owners, symlink, merge into an existing directory, errors"

# --- on a terminal: exec -i/-t and logs -f are the terminal's foreground job ---------------
# (ptyrun.py runs kina-vm on a pseudo-terminal as an interactive shell would.)
PTYRUN="$(dirname "$KINA_VM_TESTLIB")/ptyrun.py"
fake_env "$FAKE_DIR/list-1.0.json"
expect_exit 0 kina-vm boot --backend apple --name n1 --cluster c1 --image "$REF" </dev/null
# `container exec` reads the terminal: in a background process group it
# would be stopped by SIGTTIN for ever (ptyrun's timeout then fails this).
expect_exit 0 python3 "$PTYRUN" --timeout 60 --send $'typed line\n' -- kina-vm exec -i -t n1 -- readline
assert_contains "$OUT" "got: typed line" "exec -it on a terminal"
ok "exec -i -t reads the terminal"
# What the container printed is escaped on a terminal, as the qemu console is.
printf '\033]0;owned\007\033[2Jafter\r\n' > "$FAKE/console"
expect_exit 0 python3 "$PTYRUN" --timeout 60 -- kina-vm logs n1
assert_not_contains "$OUT" $'\033' "apple logs on a terminal"
assert_contains "$OUT" '\x1b]0;owned\x07\x1b[2Jafter'
expect_exit 0 python3 "$PTYRUN" --timeout 60 -- kina-vm logs --raw n1
assert_contains "$OUT" $'\033]0;owned\007' "apple logs --raw on a terminal"
rm "$FAKE/console"
ok "logs escapes the container's control characters on a terminal"

# gone PIDFILE: the process it names has ended (a zombie counts as ended).
gone() {
  local pid
  pid=$(cat "$1")
  [ ! -e "/proc/$pid/stat" ] || sed 's/.*) //' "/proc/$pid/stat" | grep -q '^[ZX]' ||
    fail "process $pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)) is still running"
}
# Ctrl-C during logs -f and exec stops `container` as well, and kina-vm exits.
for cmd in "logs -f n1" "exec n1 -- wait-forever"; do
  rm -f "$FAKE/child.pid"
  rc=0
  # shellcheck disable=SC2086
  OUT=$(python3 "$PTYRUN" --timeout 60 --ctrl-c-when "$FAKE/child.pid" -- kina-vm $cmd) || rc=$?
  [ "$rc" -ne 124 ] || fail "kina-vm $cmd did not end after Ctrl-C"
  [ "$rc" -ne 0 ] || fail "kina-vm $cmd exited 0 after Ctrl-C"
  gone "$FAKE/child.pid"
  ok "Ctrl-C during kina-vm $cmd (exit $rc): container stopped too"
done
# SIGTERM to kina-vm (no terminal) is passed on to the child.
rm -f "$FAKE/child.pid"
kina-vm exec n1 -- wait-forever </dev/null >/dev/null 2>&1 &
kpid=$!
track_pid "$kpid"
for _ in $(seq 1 1200); do [ -s "$FAKE/child.pid" ] && break; sleep 0.05; done
[ -s "$FAKE/child.pid" ] || fail "the exec child did not start"
kill -TERM "$kpid"
rc=0; wait "$kpid" || rc=$?
assert_eq "$rc" "143" "exit of exec after SIGTERM"
gone "$FAKE/child.pid"
ok "SIGTERM during exec: passed on to container exec"

# Output that cannot be written (/dev/full: a full disk) is an error (74),
# as with QEMU, not lost by `container`; and it ends a command that writes
# for ever, and logs.
into_full_device kina-vm exec n1 -- uname -r
into_full_device kina-vm exec n1 -- flood
into_full_device kina-vm logs n1
expect_exit 0 kina-vm rm -f n1
ok "exec and logs into a full device: 74, the command ended"
