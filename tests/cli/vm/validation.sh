# vm-validation: network create refuses special-purpose, user-NIC and
# overlapping subnets (65, naming them); logs escapes a guest's control
# characters on a terminal; a lease file that cannot be read or parsed stops
# a boot instead of handing out addresses twice; image Env and WorkingDir
# cannot add lines to the guest's config. Nothing is sent to any address.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"
PTYRUN="$(dirname "$KINA_VM_TESTLIB")/ptyrun.py"

# --- subnets -------------------------------------------------------------------------------
nothing_left() { [ ! -e "$KINA_HOME/clusters/$1/networks/$2" ] || fail "a refused network left $1/$2"; }
for bad in "127.0.0.0/24:loopback" "127.5.0.0/16:loopback" "224.0.0.0/24:multicast" "239.1.1.0/24:multicast" \
  "0.0.0.0/24:this network" "169.254.0.0/24:link-local" "240.0.0.0/24:reserved" "255.255.255.0/24:reserved" \
  "10.0.2.0/24:user-mode NIC" "10.0.0.0/16:user-mode NIC" "10.0.2.8/29:user-mode NIC"; do
  subnet=${bad%%:*} why=${bad#*:}
  expect_exit 65 kina-vm network create bad --cluster c1 --subnet "$subnet"
  assert_contains "$ERR" "kina-vm: error: invalid --subnet \"$subnet\": it overlaps"
  assert_contains "$ERR" "$why"
  nothing_left c1 bad
done
ok "reserved and user-NIC subnets refused with 65"

expect_exit 0 kina-vm network create net1 --cluster c1 --subnet 10.79.0.0/24
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
for subnet in 10.79.0.0/24 10.79.0.128/25 10.79.0.0/16; do
  for cluster in c1 c2; do
    expect_exit 65 kina-vm network create other --cluster "$cluster" --subnet "$subnet"
    assert_contains "$ERR" "it overlaps network net1 of cluster c1 (10.79.0.0/24)"
    nothing_left "$cluster" other
  done
done
# Without --subnet: the first 10.213.N.0/24 no network uses.
expect_exit 0 kina-vm network create d1 --cluster c1
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/d1/switch.pid")"
expect_exit 0 kina-vm network create d2 --cluster c2
track_pid "$(cat "$KINA_HOME/clusters/c2/networks/d2/switch.pid")"
assert_eq "$(jq_field "$OUT" .subnet)" "10.213.1.0/24" "default subnet of a second network"
expect_exit 0 kina-vm network rm d1 --cluster c1
expect_exit 0 kina-vm network rm d2 --cluster c2
ok "overlapping subnets refused in any cluster; the default skips used ones"

# --- logs on a terminal ---------------------------------------------------------------------------
M=$KINA_HOME/clusters/c1/machines/con
mkdir -p "$M"
printf '{"name":"con","cluster":"c1","backend":"qemu","qemuArgv":["qemu-system-x86_64"]}\n' > "$M/machine.json"
printf 'boot ok\r\n\033]0;owned title\007\033[2Jcleared\tx \xe2\x9c\x93 \xc2\x9b31m \xff\r\n' > "$M/console.log"
expect_exit 0 python3 "$PTYRUN" --timeout 60 -- kina-vm logs con
assert_not_contains "$OUT" $'\033' "logs on a terminal"
assert_not_contains "$OUT" $'\007' "logs on a terminal"
assert_not_contains "$OUT" $'\xc2\x9b' "logs on a terminal (C1 CSI)"
assert_contains "$OUT" 'boot ok'
assert_contains "$OUT" '\x1b]0;owned title\x07\x1b[2Jcleared'
assert_contains "$OUT" $'cleared\tx \xe2\x9c\x93 \\xc2\\x9b31m \\xff'
expect_exit 0 python3 "$PTYRUN" --timeout 60 -- kina-vm logs --raw con
assert_contains "$OUT" $'\033]0;owned title\007' "logs --raw on a terminal"
expect_exit 0 kina-vm logs con
assert_eq "$OUT" "$(cat "$M/console.log")" "logs to a pipe: the bytes as they are"
rm -rf "$M"
ok "logs escapes control characters on a terminal; --raw and pipes get the bytes"

# --- leases and guest config (refused before any VM starts) ---------------------------------------
fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
MACHINES=$KINA_HOME/clusters/c1/machines
LEASES=$KINA_HOME/clusters/c1/networks/net1/leases
printf '10.79.0.2 a\nthis is not a lease\n' > "$LEASES"
expect_exit 65 kina-vm boot --name l1 --cluster c1 --network net1 --accel tcg --rootfs "$TEST_TMP/rootfs" </dev/null
assert_contains "$ERR" "reading $LEASES: line 2"
[ ! -e "$MACHINES/l1" ] || fail "a boot refused for its lease file left its directory"
assert_eq "$(cat "$LEASES")" "$(printf '10.79.0.2 a\nthis is not a lease')" "the bad lease file is left for repair"
printf '10.79.0.2 a\n10.79.0.3 b' > "$LEASES"
expect_exit 65 kina-vm boot --name l1 --cluster c1 --network net1 --accel tcg --rootfs "$TEST_TMP/rootfs" </dev/null
assert_contains "$ERR" "line 2 is cut short"
rm "$LEASES"; mkdir "$LEASES"
expect_exit 65 kina-vm boot --name l1 --cluster c1 --network net1 --accel tcg --rootfs "$TEST_TMP/rootfs" </dev/null
assert_contains "$ERR" "reading $LEASES: it is a directory, not a regular file"
rmdir "$LEASES"
[ ! -e "$MACHINES/l1" ] || fail "a boot refused for its lease file left its directory"
ok "an unreadable or unparsable lease file is an error"

image() {  # image ENV_JSON WORKDIR_JSON: an Image and its Rootfs record
  printf '{"apiVersion":"kina/v1alpha1","kind":"Image","reference":"r/x:1","digest":"sha256:%064d","env":%s,"workingDir":%s}\n' 1 "$1" "$2"
  printf '{"apiVersion":"kina/v1alpha1","kind":"Rootfs","path":"%s","image":"sha256:%064d"}\n' "$TEST_TMP/rootfs" 1
}
for case in env-newline env-cr workdir; do
  case $case in
    env-newline) image '["A=1\nhostname evil"]' '"/"' ;;
    env-cr) image '["A=1\rroot /dev/vdb"]' '"/"' ;;
    workdir) image '["A=1"]' '"/\narg /bin/sh"' ;;
  esac > "$TEST_TMP/records"
  expect_exit 65 kina-vm boot --name inj --cluster c1 --accel tcg < "$TEST_TMP/records"
  assert_contains "$ERR" "of image sha256:"
  assert_contains "$ERR" "must not contain a newline"
  [ ! -e "$MACHINES/inj" ] || fail "a refused image left a machine directory"
done
assert_eq "$(leftovers | grep -v vde_switch || true)" "" "processes after the refused boots"
expect_exit 0 kina-vm network rm net1 --cluster c1
ok "image Env and WorkingDir with line breaks are refused before anything is created"
