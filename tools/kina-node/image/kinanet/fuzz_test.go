package main

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParsePodSubnets: whatever POD_SUBNET holds, the parser does not panic,
// and what it accepts is IPv4, canonical, non-overlapping, and parses again
// to the same list.
func FuzzParsePodSubnets(f *testing.F) {
	for _, s := range []string{"10.244.0.0/16", "10.244.0.0/16,10.250.0.0/16", "fd00::/64", "{{ .PodSubnet }}", " , ", "1.2.3.4/33", "::ffff:1.2.3.0/120"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParsePodSubnets(in)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		var parts []string
		for i, p := range got {
			if !p.Addr().Is4() || p.Masked() != p {
				t.Fatalf("accepted %s", p)
			}
			for _, q := range got[:i] {
				if q.Overlaps(p) {
					t.Fatalf("accepted overlapping %s %s", q, p)
				}
			}
			parts = append(parts, p.String())
		}
		again, err := ParsePodSubnets(strings.Join(parts, ","))
		if err != nil || len(again) != len(got) {
			t.Fatalf("round trip of %q: %v %v", in, again, err)
		}
	})
}

// FuzzParseNodeList: a node list file never panics the parser or the route
// computation that follows it.
func FuzzParseNodeList(f *testing.F) {
	f.Add(`{"kind":"NodeList","items":[{"metadata":{"name":"a"},"spec":{"podCIDRs":["10.244.1.0/24"]},"status":{"addresses":[{"type":"InternalIP","address":"10.89.0.3"}]}}]}`)
	f.Add(`{"items":[{"metadata":{"name":"a"},"spec":{"podCIDR":"x"}}]}`)
	f.Add(`{"kind":"NodeList","items":[]}`)
	f.Fuzz(func(t *testing.T, in string) {
		nodes, err := ParseNodeList([]byte(in))
		if err != nil {
			return
		}
		var infos []NodeInfo
		for _, n := range nodes {
			i, _ := NodeInfoFrom(n)
			infos = append(infos, i)
		}
		routes, _ := DesiredRoutes(infos, "a", prefixes("10.89.0.0/24"))
		for _, r := range routes {
			if !r.Dst.Addr().Is4() || !r.Gw.Is4() {
				t.Fatalf("non-IPv4 route %s", r)
			}
		}
	})
}

// FuzzParseObjects: an objects file never panics the parser, the policy
// computation or the nftables translation that follow it, and every rule
// they produce is IPv4 with a valid port range.
func FuzzParseObjects(f *testing.F) {
	f.Add(`{"kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"1"}},"spec":{"nodeName":"a","containers":[{"name":"c","ports":[{"name":"http","containerPort":80}]}]},"status":{"podIP":"10.244.0.5"}},{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p"},"spec":{"podSelector":{},"policyTypes":["Ingress","Egress"],"ingress":[{"from":[{"ipBlock":{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}},{"namespaceSelector":{}}],"ports":[{"port":"http"},{"port":1,"endPort":65535,"protocol":"SCTP"}]}],"egress":[{"to":[{"podSelector":{"matchExpressions":[{"key":"x","operator":"In","values":["1"]}]}}],"ports":[{"port":"http"}]}]}}]}`)
	f.Add(`{"kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n"}}]}`)
	f.Add(`{"kind":"List","items":[{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p"},"spec":{"podSelector":{"matchExpressions":[{"key":"x","operator":"Bogus"}]},"ingress":[{"ports":[{"port":70000,"endPort":2}]}]}}]}`)
	f.Fuzz(func(t *testing.T, in string) {
		objs, err := ParseObjects([]byte(in))
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		rules, _ := ComputePolicyRules("a", objs.Policies, objs.Pods, objs.Namespaces)
		for _, p := range rules.Pods {
			if !p.IP.Is4() {
				t.Fatalf("pod %s with IP %s", p.Pod, p.IP)
			}
			for _, r := range append(slices.Clone(p.Ingress), p.Egress...) {
				if !r.Peer.Any && !r.Peer.Net.Addr().Is4() {
					t.Fatalf("non-IPv4 peer %s", r)
				}
				if r.Port.From > r.Port.To || (r.Port.From == 0) != (r.Port.To == 0) || (r.Port.Proto == "" && r.Port.From != 0) {
					t.Fatalf("bad port %s", r)
				}
			}
		}
		_ = PolicyText(PolicyChains(rules))
	})
}
