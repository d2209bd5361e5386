# node-lock: `kina-node lock --fd N` takes an flock(2) on a descriptor the
# calling shell opened and leaves it held by that shell after it exits (what
# the front end uses instead of util-linux's flock(1), absent on macOS): a
# second shell then waits and gets 75 at --timeout, the same lock as
# flock(1)'s, and gets it once the holder is gone; bad descriptors and
# timeouts are 64. And `kina-node lb --detach` starts a session of its own
# (what the front end uses instead of setsid(1)), keeping its pid.
source "$KINA_CLI_LIB"
f=$TEST_TMP/cluster.lock
: > "$f"

# A holder: a shell that locks through kina-node, then lives on.
( exec 9>>"$f"; kina-node lock --fd 9 --timeout 5s || exit 1; : > "$TEST_TMP/held"; exec sleep 60 ) &
holder=$!; track_pid $holder
wait_for 30 "the holder" test -e "$TEST_TMP/held"

exec 8>>"$f"
expect_exit 75 kina-node lock --fd 8 --timeout 1s
assert_contains "$ERR" "locking --fd 8"
assert_contains "$ERR" "still held by another process after 1s"
ok "held by the holder's shell after kina-node exited: another gets 75 at --timeout"
if command -v flock > /dev/null; then
  expect_exit 1 flock -n "$f" true
  ok "the same lock as flock(1)'s"
fi

# Released when the holder's shell is gone; a waiting caller gets it then.
( sleep 1; kill -TERM $holder ) &
expect_exit 0 kina-node lock --fd 8 --timeout 30s
ok "a waiting caller gets the lock once the holder is gone"
if command -v flock > /dev/null; then
  expect_exit 1 flock -n "$f" true
  ok "now held by this shell, for flock(1) too"
fi
exec 8>&-

# Bad input: 64, naming the flag.
expect_exit 64 kina-node lock --fd 7 --timeout 1s
assert_contains "$ERR" "invalid --fd 7"
exec 7< "$TEST_TMP"
expect_exit 64 kina-node lock --fd 7
assert_contains "$ERR" "not open on a regular file"
exec 7<&-
exec 7>>"$f"
expect_exit 64 kina-node lock --fd 7 --timeout 300y
assert_contains "$ERR" "--timeout"
expect_exit 64 kina-node lock --fd 7 --timeout -1s
exec 7>&-
expect_exit 64 kina-node lock
ok "a descriptor that is not open or not on a regular file, a bad --timeout, no --fd: 64"

# lb --detach: a session of its own, the same pid as the shell's $!.
plb=$(free_port)
kina-node lb --detach --listen "127.0.0.1:$plb" --backend "127.0.0.1:1" 2>"$TEST_TMP/lb.err" &
lb=$!; track_pid $lb
wait_for 30 "the balancer" grep -q "listening on" "$TEST_TMP/lb.err"
sid=$(ps -o sid= -p "$lb" | tr -d ' ')
[ "$sid" = "$lb" ] || fail "lb --detach: session $sid, not its own ($lb)"
[ "$(ps -o sid= -p $$ | tr -d ' ')" != "$sid" ] || fail "lb --detach stayed in the test's session"
ok "lb --detach leads a session of its own (sid $sid = its pid)"

# The front end's balancer helpers (tools/kina/cluster.sh), as create and
# start use them for several control planes: lb_start starts `kina-node lb
# --detach` on the plan's API address with the bootstrap node as backend,
# lb_pid finds it (it once looked for `lb --listen` and missed the
# --detach, so every create of several control planes failed at "Starting
# the load balancer"), lb_add adds a joined control plane, lb_stop ends it.
papi=$(free_port) pb1=$(free_port) pb2=$(free_port)
cdir=$TEST_TMP/fe-cluster
mkdir -p "$cdir"
{ printf '{"kind":"ClusterPlan","controlPlanes":2,"networking":{"apiServerAddress":"127.0.0.1","apiServerPort":%s}}\n' "$papi"
  printf '{"kind":"NodePlan","name":"c-control-plane","role":"control-plane","bootstrap":true,"extraPortMappings":[{"containerPort":6443,"hostPort":%s}]}\n' "$pb1"
  printf '{"kind":"NodePlan","name":"c-control-plane2","role":"control-plane","bootstrap":false,"extraPortMappings":[{"containerPort":6443,"hostPort":%s}]}\n' "$pb2"
} > "$cdir/plan.jsonl"
(
  me=kina kina_dir=$KINA_SRC/tools/kina
  . "$kina_dir/cluster.sh"
  lb_start || fail "lb_start: exit $? ($(cat "$cdir/lb.log" 2>/dev/null))"
  p=$(lb_pid) || fail "lb_pid does not find the balancer lb_start started: $(cat "$cdir/lb.pid"): $(ps -o args= -p "$(cat "$cdir/lb.pid")")"
  echo "$p" > "$TEST_TMP/fe-lb.pid"
  assert_eq "$(cat "$cdir/lb-backends")" "127.0.0.1:$pb1" "backends after lb_start"
  lb_start || fail "a second lb_start: exit $?"
  assert_eq "$(lb_pid)" "$p" "a second lb_start starts no second balancer"
  lb_add c-control-plane2
  assert_eq "$(cat "$cdir/lb-backends")" "$(printf '127.0.0.1:%s\n127.0.0.1:%s' "$pb1" "$pb2")" "backends after lb_add"
  lb_stop
  ! lb_pid >/dev/null || fail "lb_pid still finds a balancer after lb_stop"
) || { kill -TERM "$(cat "$cdir/lb.pid" 2>/dev/null)" 2>/dev/null; exit 1; }  # a balancer lb_pid missed
lbp=$(cat "$TEST_TMP/fe-lb.pid")
track_pid "$lbp"
for _ in $(seq 50); do kill -0 "$lbp" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$lbp" 2>/dev/null || fail "the balancer still runs after lb_stop"
ok "the front end's balancer: lb_start, lb_pid (with --detach), lb_add, lb_stop"
