#!/bin/bash
# kinanet-netpol: kina-net's NetworkPolicy enforcement against the real
# kernel. Network namespaces made here stand for one node ("node", where
# kina-net --once runs with --nodes-file and --objects-file), two pods of it
# wired the way the ptp plugin wires them (a veth each, routed through the
# node: "client" 10.244.0.5 and "server" 10.244.0.6, which listens on TCP
# 8080, named "http", and 8081), and a pod of another node ("remote"
# 10.244.1.7 in namespace blue, behind 10.89.0.254). Each step writes the
# cluster's objects, runs kina-net --once and checks which TCP connections
# get through. A blocked connection is one whose SYN is dropped: the client
# gives up after its timeout (a slow machine only makes that surer).
. "$KINA_NET_TESTLIB"
. "$KINA_CLI_LIB"
have_go || { echo "skip: go not installed"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null && command -v python3 >/dev/null || { echo "skip: ip or python3 missing"; exit 77; }
unshare -n true 2>/dev/null || { echo "skip: network namespaces not permitted here"; exit 77; }
unshare -n ip link add t0 type veth peer name t1 2>/dev/null || { echo "skip: no veth support in this kernel"; exit 77; }

# the interpreter itself, not a wrapper script that may outlive a signal
PY=$(python3 -c 'import sys; print(sys.executable)')
build_kinanet "$TEST_TMP/kina-net"
KN="$TEST_TMP/kina-net" CONF="$TEST_TMP/cni" OBJ="$TEST_TMP/objects.json" NODES="$TEST_TMP/nodes.json"
mkdir -p "$CONF"
printf '%s\n' '{"apiVersion":"v1","kind":"NodeList","items":[
 {"metadata":{"name":"kina-control-plane"},"spec":{"podCIDR":"10.244.0.0/24","podCIDRs":["10.244.0.0/24"]},"status":{"addresses":[{"type":"InternalIP","address":"10.89.0.1"}]}},
 {"metadata":{"name":"kina-worker"},"spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]},"status":{"addresses":[{"type":"InternalIP","address":"10.89.0.254"}]}}]}' > "$NODES"
export NODE_NAME=kina-control-plane POD_SUBNET=10.244.0.0/16

P="kinanet-np-$$"
NS_NODE="$P-node" NS_CLIENT="$P-client" NS_SERVER="$P-server" NS_REMOTE="$P-remote"
cleanup_ns() { for n in "$NS_NODE" "$NS_CLIENT" "$NS_SERVER" "$NS_REMOTE"; do ip netns del "$n" 2>/dev/null || true; done; }
trap 'rc=$?; set +e; cleanup_ns; (exit $rc); _kina_cleanup' EXIT
for n in "$NS_NODE" "$NS_CLIENT" "$NS_SERVER" "$NS_REMOTE"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip netns exec "$NS_NODE" sysctl -qw net.ipv4.ip_forward=1
# pod POD-NS IP HOST-VETH: the ptp plugin's wiring (gateway 10.244.0.1 on
# the node side of every pod's veth, a /32 route to the pod).
pod() {
  ip link add eth0 netns "$1" type veth peer name "$3" netns "$NS_NODE"
  ip -n "$1" addr add "$2/32" dev eth0; ip -n "$1" link set eth0 up
  ip -n "$1" route add 10.244.0.1 dev eth0; ip -n "$1" route add default via 10.244.0.1 dev eth0
  ip -n "$NS_NODE" addr add 10.244.0.1/32 dev "$3"; ip -n "$NS_NODE" link set "$3" up
  ip -n "$NS_NODE" route add "$2/32" dev "$3"
}
pod "$NS_CLIENT" 10.244.0.5 vclient
pod "$NS_SERVER" 10.244.0.6 vserver
# the node network: the other node (and its pod 10.244.1.7) at 10.89.0.254
ip link add eth0 netns "$NS_NODE" type veth peer name eth0 netns "$NS_REMOTE"
ip -n "$NS_NODE" addr add 10.89.0.1/24 dev eth0; ip -n "$NS_NODE" link set eth0 up
ip -n "$NS_REMOTE" addr add 10.89.0.254/24 dev eth0; ip -n "$NS_REMOTE" link set eth0 up
ip -n "$NS_REMOTE" addr add 10.244.1.7/32 dev lo
ip -n "$NS_REMOTE" route add 10.244.0.0/24 via 10.89.0.1 src 10.244.1.7

# the server: accepts on 8080 and 8081 until killed
# (it writes its own pid: `ip netns exec` may run it as a child, and the
# interpreter must be stopped, not only its parent)
ip netns exec "$NS_SERVER" "$PY" -c '
import os, socket, sys, threading
open(sys.argv[1], "w").write(str(os.getpid()))
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.close()
for p in (8081,):
    threading.Thread(target=serve, args=(p,), daemon=True).start()
serve(8080)' "$TEST_TMP/server.pid" &
track_pid $!
wait_for 30 "the server to start" test -s "$TEST_TMP/server.pid"
track_pid "$(cat "$TEST_TMP/server.pid")"

# connects FROM-NS PORT: 0 when a TCP connection from FROM-NS to the server
# is established (the SYN-ACK came back), 1 when it is refused or times out.
connects() {
  ip netns exec "$1" "$PY" -c '
import socket, sys
try:
    socket.create_connection(("10.244.0.6", int(sys.argv[1])), timeout=3).close()
except OSError:
    sys.exit(1)' "$2"
}
# expect NAME FROM-NS PORT open|blocked
expect() {
  if [ "$4" = open ]; then
    local i
    for i in 1 2 3 4 5; do connects "$2" "$3" && return 0; done
    fail "$1: connection from $2 to 10.244.0.6:$3 blocked, expected open"
  fi
  ! connects "$2" "$3" || fail "$1: connection from $2 to 10.244.0.6:$3 open, expected blocked"
}
wait_for 30 "the server to listen" connects "$NS_CLIENT" 8080

# objects POLICY-JSON...: the cluster's namespaces and pods, and the policies.
objects() {
  local IFS=,
  printf '{"apiVersion":"v1","kind":"List","items":[
 {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","labels":{"kubernetes.io/metadata.name":"default"}}},
 {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"blue","labels":{"kubernetes.io/metadata.name":"blue","team":"blue"}}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"client","namespace":"default","labels":{"role":"client"}},"spec":{"nodeName":"kina-control-plane","containers":[{"name":"c"}]},"status":{"phase":"Running","podIP":"10.244.0.5"}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"server","namespace":"default","labels":{"role":"server"}},"spec":{"nodeName":"kina-control-plane","containers":[{"name":"c","ports":[{"name":"http","containerPort":8080},{"name":"alt","containerPort":8081}]}]},"status":{"phase":"Running","podIP":"10.244.0.6"}},
 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"remote","namespace":"blue","labels":{"role":"client"}},"spec":{"nodeName":"kina-worker","containers":[{"name":"c"}]},"status":{"phase":"Running","podIP":"10.244.1.7"}}%s%s]}\n' "${1:+,}" "$*" > "$OBJ"
}
# kn: kina-net --once in the node namespace; its stderr in $KNLOG. Then a
# second pass over the same input must find the kernel's table equal to the
# wanted one (kina-net reads its rules back) and write nothing.
kn() {
  local rc=0 again
  KNLOG=$(ip netns exec "$NS_NODE" "$KN" --once --nodes-file "$NODES" --objects-file "$OBJ" --cni-conf-dir "$CONF" 2>&1) || rc=$?
  [ "$rc" = 0 ] || fail "kina-net --once exited $rc: $KNLOG"
  again=$(ip netns exec "$NS_NODE" "$KN" --once --nodes-file "$NODES" --objects-file "$OBJ" --cni-conf-dir "$CONF" 2>&1) ||
    fail "kina-net --once (second pass) failed: $again"
  assert_not_contains "$again" "nftables table ip kina-net-policy" "second pass over the same objects"
}
pol() { # NAME SPEC-JSON
  printf '{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"%s","namespace":"default"},"spec":%s}' "$1" "$2"
}

# 1. no policy: everything open, the table holds only the base chains
objects; kn
assert_contains "$KNLOG" "write nftables table ip kina-net-policy: 0 pods of this node isolated for ingress, 0 for egress" "first pass"
assert_contains "$(ip netns exec "$NS_NODE" "$KN" --status --cni-conf-dir "$CONF")" "policy chain forward type filter hook forward priority 0 policy accept" "--status"
expect "no policy" "$NS_CLIENT" 8080 open
expect "no policy, remote" "$NS_REMOTE" 8080 open
ok "no policy: not filtered"

# 2. deny all ingress to the server
DENY=$(pol deny-ingress '{"podSelector":{"matchLabels":{"role":"server"}},"policyTypes":["Ingress"]}')
objects "$DENY"; kn
assert_contains "$KNLOG" "policy: default/server 10.244.0.6 ingress isolated by default/deny-ingress" "deny log"
expect "deny-all ingress" "$NS_CLIENT" 8080 blocked
expect "deny-all ingress, remote" "$NS_REMOTE" 8080 blocked
# the pod's own node always reaches it
ip netns exec "$NS_NODE" "$PY" -c 'import socket; socket.create_connection(("10.244.0.6", 8080), timeout=3).close()' ||
  fail "the node cannot reach its own pod under deny-all ingress"
ok "deny-all ingress: pods blocked, node allowed"

# 3. allow from pods labelled role=client in this namespace, on the named port
ALLOW=$(pol allow-client '{"podSelector":{"matchLabels":{"role":"server"}},"ingress":[{"from":[{"podSelector":{"matchLabels":{"role":"client"}}}],"ports":[{"port":"http"}]}]}')
objects "$DENY" "$ALLOW"; kn
assert_contains "$KNLOG" "policy: default/server 10.244.0.6 ingress allow from 10.244.0.5 tcp dport 8080" "allow log"
expect "allow client on http" "$NS_CLIENT" 8080 open
expect "allow client on http, other port" "$NS_CLIENT" 8081 blocked
expect "allow client (this namespace), remote in blue" "$NS_REMOTE" 8080 blocked
ok "allow from pod label on a named port"

# 4. allow from namespace team=blue (the remote pod), port range
ALLOW_NS=$(pol allow-blue '{"podSelector":{},"ingress":[{"from":[{"namespaceSelector":{"matchLabels":{"team":"blue"}}}],"ports":[{"port":8080,"endPort":8081}]}]}')
objects "$DENY" "$ALLOW_NS"; kn
expect "allow namespace blue" "$NS_REMOTE" 8081 open
expect "allow namespace blue, client in default" "$NS_CLIENT" 8080 blocked
ok "allow from namespace, endPort"

# 5. ipBlock with except: the pod network but the client
ALLOW_BLOCK=$(pol allow-block '{"podSelector":{},"ingress":[{"from":[{"ipBlock":{"cidr":"10.244.0.0/16","except":["10.244.0.5/32"]}}]}]}')
objects "$DENY" "$ALLOW_BLOCK"; kn
expect "ipBlock" "$NS_REMOTE" 8080 open
expect "ipBlock except" "$NS_CLIENT" 8080 blocked
ok "ipBlock with except"

# 6. egress: the server allows everyone, the client may not send
OPEN=$(pol allow-all '{"podSelector":{},"ingress":[{}]}')
EGRESS=$(pol client-egress '{"podSelector":{"matchLabels":{"role":"client"}},"policyTypes":["Egress"],"egress":[{"to":[{"podSelector":{"matchLabels":{"role":"server"}}}],"ports":[{"port":"alt"}]}]}')
objects "$DENY" "$OPEN"; kn
expect "allow all ingress" "$NS_CLIENT" 8080 open
objects "$DENY" "$OPEN" "$EGRESS"; kn
assert_contains "$KNLOG" "policy: default/client 10.244.0.5 egress allow to 10.244.0.6 tcp dport 8081" "egress log"
expect "egress: named port of the destination" "$NS_CLIENT" 8081 open
expect "egress: other port" "$NS_CLIENT" 8080 blocked
expect "egress of the client does not limit the remote pod" "$NS_REMOTE" 8080 open
ok "egress isolation with a named port of the destination"

# 7. a table flushed by hand is repaired; policies gone: open again
if command -v nft >/dev/null 2>&1; then
  objects "$DENY"; kn
  ip netns exec "$NS_NODE" nft flush chain ip kina-net-policy "ingress-10.244.0.6"
  expect "flushed by hand" "$NS_CLIENT" 8080 open
  kn
  assert_contains "$KNLOG" "rewrite nftables table ip kina-net-policy" "repair"
  expect "repaired" "$NS_CLIENT" 8080 blocked
  ok "hand-edited table repaired"
fi
objects; kn
expect "policies removed" "$NS_CLIENT" 8080 open
st=$(ip netns exec "$NS_NODE" "$KN" --status --cni-conf-dir "$CONF")
assert_not_contains "$st" "ingress-10.244.0.6" "--status after removal"
ok "policies removed: open again"

# --no-network-policy leaves the table alone
objects "$DENY"; kn
rc=0; out=$(ip netns exec "$NS_NODE" "$KN" --once --no-network-policy --nodes-file "$NODES" --cni-conf-dir "$CONF" 2>&1) || rc=$?
assert_eq "$rc" 0 "--no-network-policy exit ($out)"
expect "--no-network-policy keeps the table" "$NS_CLIENT" 8080 blocked
ok "--no-network-policy"
