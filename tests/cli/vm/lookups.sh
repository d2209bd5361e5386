# vm-lookups: a command that looks up a machine or a network of a cluster that
# has none (network rm, network rm -f, inspect, stop, start, rm, exec, cp, logs,
# ls, network ls) creates nothing under $KINA_HOME/clusters and exits 66 for
# "not found" (ls and network ls: 0, printing nothing). No VM is booted.
source "$KINA_CLI_LIB"

# nothing_created CLUSTER: no trace of it under $KINA_HOME/clusters.
nothing_created() {
  [ ! -e "$KINA_HOME/clusters/$1" ] || fail "looking up cluster $1 created $(find "$KINA_HOME/clusters/$1" | tr '\n' ' ')"
}
n=0
for cmd in "network rm nosuch" "network rm -f nosuch" "inspect m1" "stop m1" "start m1" "rm m1" "rm -f m1" \
  "logs m1" "exec m1 -- true" "cp m1:/etc/hostname $TEST_TMP/out" "cp $TEST_TMP m1:/tmp"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  expect_exit 66 kina-vm $cmd --cluster "c$n"
  assert_contains "$ERR" "no such"
  nothing_created "c$n"
done
[ ! -e "$TEST_TMP/out" ] || fail "a failed cp created its destination"
ok "lookups of a missing machine or network: 66, nothing created"

for cmd in ls "network ls"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  expect_exit 0 kina-vm $cmd --cluster "c$n"
  assert_eq "$OUT" "" "$cmd of an empty cluster"
  nothing_created "c$n"
done
ok "ls and network ls of a cluster with nothing: no output, nothing created"
