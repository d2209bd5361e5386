#!/bin/bash
# kinanet-netns: kina-net --once against the real kernel in a network
# namespace of its own (unshare -n): a veth with 10.89.0.1/24 stands for the
# node's network; the node list comes from --nodes-file. Checks the routes
# (proto 115), the nftables table, the conflist; then a node goes away and
# only its kina-net route goes, routes of other protocols stay.
. "$KINA_NET_TESTLIB"
. "$KINA_CLI_LIB"
have_go || { echo "skip: go not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces)"; exit 77; }
command -v unshare >/dev/null && command -v ip >/dev/null || { echo "skip: unshare or ip missing"; exit 77; }
unshare -n true 2>/dev/null || { echo "skip: unshare -n not permitted here"; exit 77; }
unshare -n ip link add t0 type veth peer name t1 2>/dev/null || { echo "skip: no veth support in this kernel"; exit 77; }

build_kinanet "$TEST_TMP/kina-net"
export KN="$TEST_TMP/kina-net" CONF="$TEST_TMP/cni" NODES="$TEST_TMP/nodes.json" NODES_WITHOUT_W2="$TEST_TMP/nodes-without-w2.json"
mkdir -p "$CONF"

node_json() { # NAME PODCIDR IP
  printf '{"metadata":{"name":"%s"},"spec":{"podCIDR":"%s","podCIDRs":["%s"]},"status":{"addresses":[{"type":"InternalIP","address":"%s"},{"type":"Hostname","address":"%s"}]}}' "$1" "$2" "$2" "$3" "$1"
}
nodes_file() { # OUT NODE-JSON...
  local out=$1; shift
  local IFS=,
  printf '{"apiVersion":"v1","kind":"NodeList","items":[%s]}\n' "$*" > "$out"
}
CP=$(node_json kina-control-plane 10.244.0.0/24 10.89.0.1)
W1=$(node_json kina-worker 10.244.1.0/24 10.89.0.3)
W2=$(node_json kina-worker2 10.244.2.0/24 10.89.0.4)
FAR=$(node_json kina-far 10.244.3.0/24 172.31.0.9)
nodes_file "$NODES" "$CP" "$W1" "$W2" "$FAR"
nodes_file "$TEST_TMP/nodes-without-w2.json" "$CP" "$W1" "$FAR"
# a temp file as a kill -9 during a write would leave it
printf 'half' > "$CONF/.10-kina.conflist.tmp-12345"

# Everything below runs in one new network namespace: it disappears with the
# shell, taking routes, links and the nftables table with it.
export NODE_NAME=kina-control-plane POD_SUBNET=10.244.0.0/16
unshare -n bash -euo pipefail -c '
  trap '\''echo "FAIL: netns: line $LINENO: $BASH_COMMAND" >&2'\'' ERR
  fail() { echo "FAIL: netns: $*" >&2; exit 1; }
  has() { case "$1" in *"$2"*) ;; *) fail "$3: no \"$2\" in: $1" ;; esac; }
  hasnt() { case "$1" in *"$2"*) fail "$3: \"$2\" in: $1" ;; *) ;; esac; }
  # kn ARGS: runs kina-net, its stderr in $err; a failure shows it.
  kn() { local rc=0; err=$("$KN" "$@" 2>&1) || rc=$?; [ "$rc" = 0 ] || fail "kina-net $* exited $rc: $err"; }
  ip link set lo up
  ip link add eth0 type veth peer name eth0p
  ip addr add 10.89.0.1/24 dev eth0
  ip link set eth0 mtu 1450 up; ip link set eth0p up
  ip route add default via 10.89.0.254
  # routes somebody else made: one elsewhere, one to a pod CIDR of a node
  ip route add 10.99.0.0/24 via 10.89.0.7 proto static
  ip route add 10.244.2.0/24 via 10.89.0.8 proto static metric 50

  # --dry-run changes nothing
  kn --once --dry-run --nodes-file "$NODES" --cni-conf-dir "$CONF"
  has "$err" "dry-run: would add route 10.244.1.0/24 via 10.89.0.3 proto 115" "dry-run log"
  [ -z "$(ip route show proto 115)" ] || fail "dry-run added routes"
  [ ! -e "$CONF/10-kina.conflist" ] || fail "dry-run wrote the conflist"
  st=$("$KN" --status --cni-conf-dir "$CONF")
  has "$st" "nft table ip kina-net: absent" "dry-run nft"
  echo "ok: --dry-run changes nothing"

  kn --once --nodes-file "$NODES" --cni-conf-dir "$CONF"
  printf "%s\n" "$err"
  has "$err" "removed .10-kina.conflist.tmp-12345" "sweep log"
  [ ! -e "$CONF/.10-kina.conflist.tmp-12345" ] || fail "temp file left"
  routes=$(ip route show proto 115)
  has "$routes" "10.244.1.0/24 via 10.89.0.3 dev eth0" "worker route"
  has "$routes" "10.244.2.0/24 via 10.89.0.4 dev eth0" "worker2 route"
  hasnt "$routes" "10.244.3.0" "node not on a connected subnet"
  hasnt "$routes" "10.244.0.0" "own pod CIDR"
  has "$err" "node kina-far: InternalIP 172.31.0.9 is not on a directly connected subnet" "far node note"
  [ "$(ip route show proto 115 | wc -l)" = 2 ] || fail "route count: $routes"
  echo "ok: routes proto 115"

  st=$("$KN" --status --cni-conf-dir "$CONF")
  has "$st" "nft chain postrouting type nat hook postrouting priority 100 policy accept" "nft chain"
  has "$st" "nft ip daddr 10.244.0.0/16 return" "nft pod rule"
  has "$st" "nft fib daddr type local return" "nft local rule"
  has "$st" "nft ip saddr 10.244.0.0/16 masquerade" "nft masquerade rule"
  if command -v nft >/dev/null 2>&1; then
    t=$(nft list table ip kina-net)
    has "$t" "type nat hook postrouting priority srcnat; policy accept;" "nft list chain"
    has "$t" "ip daddr 10.244.0.0/16 return" "nft list"
    has "$t" "ip saddr 10.244.0.0/16 masquerade" "nft list"
    echo "ok: nft list table ip kina-net"
  else
    echo "note: nft not installed; table checked through kina-net --status (netlink)"
  fi

  c="$CONF/10-kina.conflist"
  [ "$(stat -c %a "$c")" = 644 ] || fail "conflist mode $(stat -c %a "$c")"
  [ "$(jq -r .cniVersion "$c")" = 1.0.0 ] || fail "cniVersion"
  [ "$(jq -r "[.plugins[].type]|join(\",\")" "$c")" = ptp,portmap ] || fail "plugins"
  [ "$(jq -r ".plugins[0].ipMasq" "$c")" = false ] || fail "ipMasq"
  [ "$(jq -r ".plugins[0].mtu" "$c")" = 1450 ] || fail "mtu: $(cat "$c")"
  [ "$(jq -r ".plugins[0].ipam.type" "$c")" = host-local ] || fail "ipam"
  [ "$(jq -c ".plugins[0].ipam.ranges" "$c")" = "[[{\"subnet\":\"10.244.0.0/24\"}]]" ] || fail "ranges"
  [ "$(jq -c ".plugins[0].ipam.routes" "$c")" = "[{\"dst\":\"0.0.0.0/0\"}]" ] || fail "ipam routes"
  [ "$(jq -c ".plugins[1].capabilities" "$c")" = "{\"portMappings\":true}" ] || fail "portmap"
  echo "ok: conflist"

  # same input: no change, no log line, conflist not rewritten
  ino=$(stat -c %i "$c")
  kn --once --nodes-file "$NODES" --cni-conf-dir "$CONF"
  hasnt "$err" "add route" "second pass"; hasnt "$err" "write" "second pass"
  [ "$(stat -c %i "$c")" = "$ino" ] || fail "conflist rewritten with the same content"
  echo "ok: second pass changes nothing"

  # the table changed by hand is repaired
  "$KN" --status --cni-conf-dir "$CONF" >/dev/null
  if command -v nft >/dev/null 2>&1; then
    nft flush chain ip kina-net postrouting
    kn --once --nodes-file "$NODES" --cni-conf-dir "$CONF"
    has "$err" "rewrite nftables table ip kina-net" "repair"
    echo "ok: flushed chain repaired"
  fi

  # kina-worker2 leaves: its proto-115 route goes, the static ones stay
  kn --once --nodes-file "$NODES_WITHOUT_W2" --cni-conf-dir "$CONF"
  has "$err" "delete route 10.244.2.0/24 via 10.89.0.4 proto 115" "delete log"
  all=$(ip route)
  hasnt "$all" "10.244.2.0/24 via 10.89.0.4" "route of the gone node"
  has "$all" "10.244.2.0/24 via 10.89.0.8 dev eth0 proto static metric 50" "static route to the same CIDR"
  has "$all" "10.99.0.0/24 via 10.89.0.7 dev eth0 proto static" "static route"
  has "$all" "10.244.1.0/24 via 10.89.0.3 dev eth0 proto 115" "remaining worker route"
  echo "ok: gone node route removed, foreign routes kept"

  # own node without a pod CIDR: 75, routes still done
  sed "s|\"podCIDR\":\"10.244.0.0/24\",\"podCIDRs\":\\[\"10.244.0.0/24\"\\]|\"podCIDRs\":[]|" "$NODES" > "$NODES.nocidr"
  rc=0; err=$("$KN" --once --nodes-file "$NODES.nocidr" --cni-conf-dir "$CONF" 2>&1) || rc=$?
  [ "$rc" = 75 ] || fail "no pod CIDR: exit $rc: $err"
  has "$err" "waiting for spec.podCIDRs" "no pod CIDR"
  # own node missing: 66
  rc=0; err=$(NODE_NAME=nobody "$KN" --once --nodes-file "$NODES" --cni-conf-dir "$CONF" 2>&1) || rc=$?
  [ "$rc" = 66 ] || fail "missing node: exit $rc: $err"
  echo "ok: exit codes 75 and 66"
'
ok "kina-net in a network namespace"

# The data path: a "pod" namespace behind the node's namespace, an "outside"
# namespace on the node network that also holds a pod of another node
# (10.244.1.7, its pod CIDR routed by kina-net via 10.89.0.254). A
# connection to the outside arrives from the node's address (masqueraded);
# one to the other node's pod arrives from the pod's own address.
command -v python3 >/dev/null || { ok "data path not checked: python3 missing"; exit 0; }
NS_NODE="kinanet-$$-node" NS_POD="kinanet-$$-pod" NS_OUT="kinanet-$$-out"
cleanup_ns() { for n in "$NS_NODE" "$NS_POD" "$NS_OUT"; do ip netns del "$n" 2>/dev/null || true; done; }
trap 'rc=$?; set +e; cleanup_ns; (exit $rc); _kina_cleanup' EXIT
for n in "$NS_NODE" "$NS_POD" "$NS_OUT"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add vpod netns "$NS_POD" type veth peer name vnode netns "$NS_NODE"
ip link add eth0 netns "$NS_NODE" type veth peer name eth0 netns "$NS_OUT"
ip -n "$NS_POD" addr add 10.244.0.5/24 dev vpod; ip -n "$NS_POD" link set vpod up
ip -n "$NS_POD" route add default via 10.244.0.1
ip -n "$NS_NODE" addr add 10.244.0.1/24 dev vnode; ip -n "$NS_NODE" link set vnode up
ip -n "$NS_NODE" addr add 10.89.0.1/24 dev eth0; ip -n "$NS_NODE" link set eth0 up
ip netns exec "$NS_NODE" sysctl -qw net.ipv4.ip_forward=1
ip -n "$NS_OUT" addr add 10.89.0.254/24 dev eth0; ip -n "$NS_OUT" link set eth0 up
ip -n "$NS_OUT" addr add 10.244.1.7/32 dev lo
# the other node routes this node's pod CIDR back (its kina-net would)
ip -n "$NS_OUT" route add 10.244.0.0/24 via 10.89.0.1
nodes_file "$TEST_TMP/dp.json" "$CP" "$(node_json kina-worker 10.244.1.0/24 10.89.0.254)"
ip netns exec "$NS_NODE" "$KN" --once --nodes-file "$TEST_TMP/dp.json" --cni-conf-dir "$CONF" 2>"$TEST_TMP/dp.err" ||
  fail "kina-net in $NS_NODE: $(cat "$TEST_TMP/dp.err")"
assert_contains "$(ip -n "$NS_NODE" route show proto 115)" "10.244.1.0/24 via 10.89.0.254" "data path route"

# peer_of ADDR: the source address a connection from the pod to ADDR arrives with.
peer_of() {
  local port; port=$(free_port)
  rm -f "$TEST_TMP/peer"
  ip netns exec "$NS_OUT" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(60)
c, a = s.accept(); open(sys.argv[3], "w").write(a[0]); c.close()' "$1" "$port" "$TEST_TMP/peer" &
  local srv=$!; track_pid "$srv"
  local i
  for i in $(seq 1 100); do
    ip netns exec "$NS_POD" python3 -c '
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()' "$1" "$port" 2>/dev/null && break
    sleep 0.1
  done
  wait "$srv" || fail "no connection from the pod to $1 arrived"
  cat "$TEST_TMP/peer"
}
assert_eq "$(peer_of 10.89.0.254)" 10.89.0.1 "source seen outside the pod network (masqueraded)"
assert_eq "$(peer_of 10.244.1.7)" 10.244.0.5 "source seen by another node's pod (not masqueraded)"
ok "data path: masquerade to the outside, pod to pod unchanged"
