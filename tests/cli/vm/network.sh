# vm-network: two VMs on one network ping each other by IP; a guest HTTP
# server is reached through --publish; kill -9 of QEMU shows `exited`; rm and
# network rm leave no QEMU, vde_switch or supervisor process and no files.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
mkdir -p "$TEST_TMP/rootfs/www"
echo "hello from the guest" > "$TEST_TMP/rootfs/www/index.html"

expect_exit 0 kina-vm network create net1 --cluster c1 --subnet 10.77.0.0/24
assert_eq "$(jq_field "$OUT" .kind)" "Network"
check_records Network "$OUT"
assert_eq "$(jq_field "$OUT" .subnet)" "10.77.0.0/24"
assert_eq "$(jq_field "$OUT" .state)" "running"
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
expect_exit 73 kina-vm network create net1 --cluster c1
expect_exit 64 kina-vm network create net2 --cluster c1 --subnet 10.77.0.1/24
assert_contains "$ERR" "host bits are set"
[ ! -e "$KINA_HOME/clusters/c1/networks/net2" ] || fail "a refused network left a directory"
expect_exit 0 kina-vm network ls --cluster c1
assert_eq "$(jq_field "$OUT" .name)" "net1"
ok "network create, ls"

PORT=$(free_port)
boot_vm a --cluster c1 --network net1 --rootfs "$TEST_TMP/rootfs" --publish "127.0.0.1:$PORT:80" \
  -- /bin/sh -c 'httpd -p 80 -h /www; while :; do sleep 3600; done'
IP_A=$(jq_field "$OUT" .ip)
assert_eq "$(jq_field "$OUT" '.ports[0] | "\(.hostIP):\(.hostPort):\(.guestPort)/\(.protocol)"')" "127.0.0.1:$PORT:80/tcp"
# b from a Rootfs record on stdin (the pipeline form); other records go first, unchanged.
printf '%s\n' '{"apiVersion":"kina/v1alpha1","kind":"Note","text":"passed through"}' \
  "{\"apiVersion\":\"kina/v1alpha1\",\"kind\":\"Rootfs\",\"image\":\"sha256:1234\",\"path\":\"$TEST_TMP/rootfs\"}" > "$TEST_TMP/records"
expect_exit 0 kina-vm boot --name b --cluster c1 --network net1 --accel tcg -- "${IDLE[@]}" < "$TEST_TMP/records"
assert_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" '{"apiVersion":"kina/v1alpha1","kind":"Note","text":"passed through"}' "forwarded record"
OUT=$(printf '%s\n' "$OUT" | sed -n 2p)
track_pid "$(cat "$(jq_field "$OUT" .dir)/supervisor.pid")"
assert_eq "$(jq_field "$OUT" .image)" "sha256:1234"
IP_B=$(jq_field "$OUT" .ip)
assert_eq "$IP_A" "10.77.0.2"
assert_eq "$IP_B" "10.77.0.3"
# One shared base disk for both machines (an overlay each).
assert_eq "$(ls "$KINA_HOME/disks" | grep -c '^base-.*\.ext4$')" "1" "base disks"
ok "boot two machines on net1"

expect_exit 0 kina-vm exec a -- ping -c 2 -W 5 "$IP_B"
assert_contains "$OUT" "2 packets received"
expect_exit 0 kina-vm exec b -- ping -c 2 -W 5 "$IP_A"
assert_contains "$OUT" "2 packets received"
ok "a and b ping each other"

body=""
for _ in $(seq 50); do
  body=$(curl -s --max-time 5 "http://127.0.0.1:$PORT/index.html" || true)
  [ -n "$body" ] && break
  sleep 0.2
done
assert_eq "$body" "hello from the guest" "published port"
ok "published port reaches the guest's httpd"

# Network removal is refused while machines are attached.
expect_exit 64 kina-vm network rm net1 --cluster c1
assert_contains "$ERR" "machines are attached"

QPID=$(jq_field "$(kina-vm inspect a)" .pid)
kill -KILL "$QPID"
for _ in $(seq 50); do
  state=$(jq_field "$(kina-vm inspect a)" .state)
  [ "$state" = exited ] && break
  sleep 0.1
done
expect_exit 0 kina-vm ls --cluster c1
assert_contains "$OUT" '"reason":"QEMU was killed by signal 9'
assert_eq "$(jq_field "$(kina-vm inspect a)" .state)" "exited"
expect_exit 0 kina-vm rm a
[ ! -e "$KINA_HOME/clusters/c1/machines/a" ] || fail "rm left the machine directory"
ok "kill -9 of QEMU shows exited; rm cleans up"

expect_exit 64 kina-vm rm b
assert_contains "$ERR" "it is running"
expect_exit 0 kina-vm rm -f b
expect_exit 0 kina-vm network rm net1 --cluster c1
assert_eq "$(leftovers)" "" "processes left"
assert_eq "$(ls "$KINA_HOME/clusters/c1/machines")" "" "machine files left"
[ ! -e "$KINA_HOME/clusters/c1/networks/net1" ] || fail "network rm left files"
ok "rm -f, network rm: nothing left"

# Six networks created at once, in three clusters and two per cluster, with the
# default subnet: six different subnets (choosing one and writing it down is
# one step under $KINA_HOME/locks/subnets.lock; before, creates at once all
# saw the same free 10.213.0.0/24).
pids=()
for c in p1 p2 p3; do
  for n in n1 n2; do
    kina-vm network create "$n" --cluster "$c" > "$TEST_TMP/net-$c-$n" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent network create failed: $(cat "$TEST_TMP"/net-*)"; done
for c in p1 p2 p3; do
  for n in n1 n2; do track_pid "$(cat "$KINA_HOME/clusters/$c/networks/$n/switch.pid")"; done
done
subnets=$(cat "$TEST_TMP"/net-* | jq -r .subnet | sort)
assert_eq "$(printf '%s\n' "$subnets" | sort -u | wc -l)" 6 "distinct subnets of 6 concurrent creates: $(echo $subnets)"
for c in p1 p2 p3; do
  for n in n1 n2; do expect_exit 0 kina-vm network rm "$n" --cluster "$c"; done
done
assert_eq "$(leftovers)" "" "processes left"
ok "concurrent network creates take different subnets"
