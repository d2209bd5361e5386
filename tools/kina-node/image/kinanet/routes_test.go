package main

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, cidrs []string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Spec.PodCIDRs = cidrs
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

func infos(nodes ...*corev1.Node) []NodeInfo {
	var out []NodeInfo
	for _, n := range nodes {
		i, _ := NodeInfoFrom(n)
		out = append(out, i)
	}
	return out
}

func routeStrings(rs []Route) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	return strings.Join(s, "; ")
}

func rt(dst, gw string) Route {
	return Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw)}
}

func TestNodeInfoFrom(t *testing.T) {
	n := node("a", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, "10.89.0.2", "fd00::2")
	info, notes := NodeInfoFrom(n)
	if len(info.PodCIDRs) != 1 || info.PodCIDRs[0].String() != "10.244.1.0/24" {
		t.Errorf("pod CIDRs %v", info.PodCIDRs)
	}
	if len(info.InternalIPs) != 1 || info.InternalIPs[0].String() != "10.89.0.2" {
		t.Errorf("internal IPs %v", info.InternalIPs)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "not IPv4") {
		t.Errorf("notes %v", notes)
	}
	// legacy spec.podCIDR only
	legacy := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}}
	legacy.Spec.PodCIDR = "10.244.2.0/24"
	if info, _ := NodeInfoFrom(legacy); len(info.PodCIDRs) != 1 {
		t.Errorf("legacy podCIDR ignored")
	}
	bad := node("c", []string{"garbage"})
	if _, notes := NodeInfoFrom(bad); len(notes) != 1 || !strings.Contains(notes[0], "not a CIDR") {
		t.Errorf("notes %v", notes)
	}
}

func TestDesiredRoutes(t *testing.T) {
	connected := prefixes("10.89.0.0/24", "192.168.5.0/24")
	cases := []struct {
		name      string
		nodes     []NodeInfo
		want      string
		wantNotes []string
	}{
		{"three nodes", infos(
			node("self", []string{"10.244.0.0/24"}, "10.89.0.2"),
			node("w2", []string{"10.244.2.0/24"}, "10.89.0.4"),
			node("w1", []string{"10.244.1.0/24"}, "10.89.0.3"),
		), "10.244.1.0/24 via 10.89.0.3; 10.244.2.0/24 via 10.89.0.4", nil},
		{"no pod CIDR yet", infos(node("self", []string{"10.244.0.0/24"}, "10.89.0.2"), node("w1", nil, "10.89.0.3")),
			"", []string{"w1: no pod CIDR yet"}},
		{"not connected", infos(node("w1", []string{"10.244.1.0/24"}, "172.16.0.3")),
			"", []string{"172.16.0.3 is not on a directly connected subnet"}},
		{"no internal IP", infos(node("w1", []string{"10.244.1.0/24"})),
			"", []string{"no IPv4 InternalIP"}},
		{"second IP connected", infos(node("w1", []string{"10.244.1.0/24"}, "172.16.0.3", "192.168.5.7")),
			"10.244.1.0/24 via 192.168.5.7", nil},
		{"network address is not a gateway", infos(node("w1", []string{"10.244.1.0/24"}, "10.89.0.0")),
			"", []string{"not on a directly connected subnet"}},
		{"overlap with self", infos(node("self", []string{"10.244.0.0/24"}, "10.89.0.2"), node("w1", []string{"10.244.0.0/25"}, "10.89.0.3")),
			"", []string{"overlaps 10.244.0.0/24"}},
		{"duplicate pod CIDR: first by name wins", infos(node("w2", []string{"10.244.1.0/24"}, "10.89.0.4"), node("w1", []string{"10.244.1.0/24"}, "10.89.0.3")),
			"10.244.1.0/24 via 10.89.0.3", []string{"node w2: pod CIDR 10.244.1.0/24 overlaps"}},
		{"self only", infos(node("self", []string{"10.244.0.0/24"}, "10.89.0.2")), "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, notes := DesiredRoutes(c.nodes, "self", connected)
			if s := routeStrings(got); s != c.want {
				t.Errorf("routes %q, want %q", s, c.want)
			}
			if len(notes) != len(c.wantNotes) {
				t.Fatalf("notes %q, want %q", notes, c.wantNotes)
			}
			for i, w := range c.wantNotes {
				if !strings.Contains(notes[i], w) {
					t.Errorf("note %q does not contain %q", notes[i], w)
				}
			}
		})
	}
}

func TestDiffRoutes(t *testing.T) {
	cases := []struct {
		name                    string
		want, owned             []Route
		wantReplace, wantRemove string
	}{
		{"fresh", []Route{rt("10.244.1.0/24", "10.89.0.3")}, nil, "10.244.1.0/24 via 10.89.0.3", ""},
		{"steady", []Route{rt("10.244.1.0/24", "10.89.0.3")}, []Route{rt("10.244.1.0/24", "10.89.0.3")}, "", ""},
		{"node gone", []Route{rt("10.244.1.0/24", "10.89.0.3")},
			[]Route{rt("10.244.1.0/24", "10.89.0.3"), rt("10.244.2.0/24", "10.89.0.4")}, "", "10.244.2.0/24 via 10.89.0.4"},
		{"gateway moved", []Route{rt("10.244.1.0/24", "10.89.0.9")}, []Route{rt("10.244.1.0/24", "10.89.0.3")},
			"10.244.1.0/24 via 10.89.0.9", ""},
		{"stale duplicates", []Route{rt("10.244.1.0/24", "10.89.0.9")},
			[]Route{rt("10.244.1.0/24", "10.89.0.3"), rt("10.244.1.0/24", "10.89.0.9")}, "", "10.244.1.0/24 via 10.89.0.3"},
		{"all gone", nil, []Route{rt("10.244.2.0/24", "10.89.0.4"), rt("10.244.1.0/24", "10.89.0.3")},
			"", "10.244.1.0/24 via 10.89.0.3; 10.244.2.0/24 via 10.89.0.4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, rem := DiffRoutes(c.want, c.owned)
			if s := routeStrings(rep); s != c.wantReplace {
				t.Errorf("replace %q, want %q", s, c.wantReplace)
			}
			if s := routeStrings(rem); s != c.wantRemove {
				t.Errorf("remove %q, want %q", s, c.wantRemove)
			}
		})
	}
}
