# vm-node-boot: a systemd root carrying kind's container-only quirks boots as
# two VMs (boot --ready systemd) and each gets what Docker would have given it
# (docs/backends.md, "Booting node images"): its own machine-id and product
# UUID (also the DMI one), /etc/hostname and /etc/hosts, /kind/product_* for
# kind's containerd hook, the nft iptables alternatives, a kubelet unit whose
# kind cgroup script is replaced so it starts, and the /kubelet cgroup.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

R="$TEST_TMP/rootfs"
systemd_rootfs "$R"
fetch_kernel

# --- kind's quirks, as a kind node image has them --------------------------
mkdir -p "$R/kind/bin"
# The createContainer hook: copies the product files into a container's
# root and fails without them (here the bundle directory is an argument).
cat > "$R/kind/bin/mount-product-files.sh" <<'EOF'
#!/bin/sh
set -eu
bundle=$1
mkdir -p "$bundle/rootfs"
cp /kind/product_uuid /kind/product_name "$bundle/rootfs/"
EOF
# kind's check: refuses a root cgroup that holds processes.
cat > "$R/kind/bin/create-kubelet-cgroup-v2.sh" <<'EOF'
#!/bin/sh
if [ -n "$(cat /sys/fs/cgroup/cgroup.procs)" ]; then
  echo 'ERROR: /sys/fs/cgroup/cgroup.procs is not empty' >&2
  exit 1
fi
mkdir -p /sys/fs/cgroup/kubelet
EOF
chmod 0755 "$R/kind/bin/"*.sh
cat > "$R/etc/systemd/system/kubelet.service" <<'EOF'
[Unit]
Description=a stand-in kubelet
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$R/etc/systemd/system/kubelet.service.d"
cat > "$R/etc/systemd/system/kubelet.service.d/11-kind.conf" <<'EOF'
[Service]
ExecStartPre=/bin/sh -euc "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then /kind/bin/create-kubelet-cgroup-v2.sh; fi"
EOF
cat > "$R/etc/systemd/system/containerd.service" <<'EOF'
[Unit]
Description=a stand-in containerd
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/kubelet.service "$R/etc/systemd/system/multi-user.target.wants/kubelet.service"
ln -s /etc/systemd/system/containerd.service "$R/etc/systemd/system/multi-user.target.wants/containerd.service"
# Debian's iptables alternatives, pointing at legacy (iptables itself is not
# in the cached root: each tool is a script naming its backend).
mkdir -p "$R/etc/alternatives"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  nft=$(printf '%s' "$t" | sed 's/^\(ip6*tables\)/\1-nft/') legacy=$(printf '%s' "$t" | sed 's/^\(ip6*tables\)/\1-legacy/')
  printf '#!/bin/sh\necho nft\n' > "$R/usr/sbin/$nft"
  printf '#!/bin/sh\necho legacy\n' > "$R/usr/sbin/$legacy"
  chmod 0755 "$R/usr/sbin/$nft" "$R/usr/sbin/$legacy"
  ln -s "/usr/sbin/$legacy" "$R/etc/alternatives/$t"
  ln -s "/etc/alternatives/$t" "$R/usr/sbin/$t"
done
# An image's identity files that must not be kept or written through.
# The cached root's machine-id is a valid one, which every machine booted
# from the image would share (the unit test covers empty and "uninitialized").
IMAGE_MID=$(cat "$R/etc/machine-id")
printf '10.9.9.9\timage-host\n' > "$R/etc/hosts.image"
ln -s /etc/hosts.image "$R/etc/hosts"
: > "$R/etc/resolv.conf"  # as a kind image has it: Docker provides one
ok "a root with kind's quirks"

expect_exit 0 kina-vm network create nodes --subnet 10.78.0.0/24
track_pid "$(cat "$KINA_HOME/clusters/default/networks/nodes/switch.pid")"
export BOOT_TIMEOUT=900s
for n in node1 node2; do
  boot_vm "$n" --network nodes --rootfs "$R" --cpus 2 --memory 768Mi --ready systemd
  assert_eq "$(jq_field "$OUT" .ready)" "systemd" "$n ready"
  check_records Machine "$OUT"
  declare "IP_$n=$(jq_field "$OUT" .ip)"
  # Right after boot returns: no retry.
  state=$(guest_state "$n")
  case "$state" in running|degraded) ;; *) fail "$n: systemctl is-system-running right after boot: '$state'" ;; esac
done
ok "two machines booted with --ready systemd"

for n in node1 node2; do
  ip_var="IP_$n"
  expect_exit 0 kina-vm exec "$n" -- cat /etc/machine-id
  printf '%s\n' "$OUT" | grep -qxE '[0-9a-f]{32}' || fail "$n: machine-id '$OUT'"
  [ "$OUT" != "$IMAGE_MID" ] || fail "$n kept the image's machine-id"
  declare "MID_$n=$OUT"
  expect_exit 0 kina-vm exec "$n" -- cat /etc/hostname
  assert_eq "$OUT" "$n" "$n /etc/hostname"
  expect_exit 0 kina-vm exec "$n" -- hostname
  assert_eq "$OUT" "$n" "$n hostname"
  expect_exit 0 kina-vm exec "$n" -- sh -c 'test -f /etc/hosts && ! test -L /etc/hosts && cat /etc/hosts'
  printf '%s\n' "$OUT" | grep -qxP '127\.0\.0\.1\tlocalhost' || fail "$n: no localhost line in /etc/hosts: $OUT"
  printf '%s\n' "$OUT" | grep -qxF "$(printf '%s\t%s' "${!ip_var}" "$n")" || fail "$n: no '${!ip_var} $n' in /etc/hosts: $OUT"
  assert_not_contains "$OUT" "image-host" "$n /etc/hosts"
  expect_exit 0 kina-vm exec "$n" -- grep -x 'nameserver 10.0.2.3' /etc/resolv.conf
  expect_exit 0 kina-vm exec "$n" -- cat /etc/hosts.image
  assert_eq "$OUT" "$(printf '10.9.9.9\timage-host')" "$n: the symlink's target"
  expect_exit 0 kina-vm exec "$n" -- cat /kind/product_uuid /kind/product_name
  uuid=$(printf '%s\n' "$OUT" | sed -n 1p)
  assert_eq "$(printf '%s\n' "$OUT" | sed -n 2p)" "kina" "$n product_name"
  printf '%s\n' "$uuid" | grep -qxE '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}' || fail "$n: product_uuid '$uuid'"
  declare "UUID_$n=$uuid"
  expect_exit 0 kina-vm exec "$n" -- cat /sys/class/dmi/id/product_uuid
  assert_eq "$OUT" "$uuid" "$n DMI product_uuid"
  # kind's hook, run as containerd would run it for a container.
  expect_exit 0 kina-vm exec "$n" -- /kind/bin/mount-product-files.sh /tmp/bundle
  expect_exit 0 kina-vm exec "$n" -- cat /tmp/bundle/rootfs/product_uuid
  assert_eq "$OUT" "$uuid" "$n: the hook's copy"
  expect_exit 0 kina-vm exec "$n" -- systemctl is-active kubelet containerd
  assert_eq "$OUT" "$(printf 'active\nactive')" "$n kubelet, containerd"
  expect_exit 0 kina-vm exec "$n" -- cat /sys/fs/cgroup/kubelet/cgroup.subtree_control
  for c in cpu memory pids; do
    printf '%s\n' "$OUT" | tr ' ' '\n' | grep -qx "$c" || fail "$n: $c not enabled in /kubelet: $OUT"
  done
  expect_exit 0 kina-vm exec "$n" -- sh -c 'readlink /etc/alternatives/iptables /etc/alternatives/ip6tables-restore; iptables; iptables-save'
  assert_eq "$OUT" "$(printf '/usr/sbin/iptables-nft\n/usr/sbin/ip6tables-nft-restore\nnft\nnft')" "$n iptables"
  expect_exit 0 kina-vm exec "$n" -- cat /proc/cmdline
  assert_contains "$OUT" "net.ifnames=0"
  expect_exit 0 kina-vm exec "$n" -- ls /sys/class/net
  for nic in eth0 eth1; do printf '%s\n' "$OUT" | grep -qx "$nic" || fail "$n: no $nic in: $OUT"; done
  expect_exit 0 kina-vm exec "$n" -- awk '$2 == "00000000" { print $1, $3 }' /proc/net/route
  assert_eq "$OUT" "eth0 0202000A" "$n default route"
done
[ "$MID_node1" != "$MID_node2" ] || fail "both machines have machine-id $MID_node1"
[ "$UUID_node1" != "$UUID_node2" ] || fail "both machines have product_uuid $UUID_node1"
ok "identity, hosts, product files and hook, kubelet and /kubelet, iptables nft, eth0"

# The ids are the machine's: kept in its machine.json (for a later boot of it).
dir1=$(kina-vm inspect node1 | jq -r .dir)
assert_eq "$(jq -r .machineID "$dir1/machine.json")" "$MID_node1" "machine.json machineID"
assert_eq "$(jq -r .uuid "$dir1/machine.json")" "$UUID_node1" "machine.json uuid"

for n in node1 node2; do
  expect_exit 0 kina-vm stop "$n" --timeout 120s
  assert_eq "$(jq_field "$OUT" .state)" "exited"
  expect_exit 0 kina-vm rm "$n"
done
expect_exit 0 kina-vm network rm nodes
assert_eq "$(leftovers)" "" "processes left"
assert_eq "$(ls "$KINA_HOME/clusters/default/machines")" "" "machine directories left"
ok "stop, rm, network rm leave nothing"
