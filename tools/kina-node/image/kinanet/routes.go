package main

// routes.go: which routes to other nodes' pod CIDRs this node needs, from a
// node list, and the difference to the routes kina-net already owns.

import (
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// RouteProtocol marks the routes kina-net creates (rtnetlink's rtm_protocol;
// `ip route` shows "proto 115"). kina-net lists, replaces and deletes only
// routes carrying it, so routes made by anything else are never touched.
const RouteProtocol = 115

// Route is one route kina-net wants or owns: Dst via Gw.
type Route struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Gw.String() }

// NodeInfo is what kina-net uses of a Node.
type NodeInfo struct {
	Name        string
	PodCIDRs    []netip.Prefix // IPv4 only
	InternalIPs []netip.Addr   // IPv4 only
}

// NodeInfoFrom takes a Node's IPv4 pod CIDRs (spec.podCIDRs, else the legacy
// spec.podCIDR) and IPv4 InternalIP addresses; what it skips is in notes.
func NodeInfoFrom(n *corev1.Node) (NodeInfo, []string) {
	info := NodeInfo{Name: n.Name}
	var notes []string
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("node %s: pod CIDR %q is not a CIDR, ignored", n.Name, c))
		case !p.Addr().Is4():
			notes = append(notes, fmt.Sprintf("node %s: pod CIDR %s is not IPv4, ignored", n.Name, c))
		default:
			info.PodCIDRs = append(info.PodCIDRs, p.Masked())
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil || !ip.Unmap().Is4() {
			continue
		}
		info.InternalIPs = append(info.InternalIPs, ip.Unmap())
	}
	return info, notes
}

// DesiredRoutes gives, for every node but self, a route from each of its pod
// CIDRs via its first InternalIP that lies in one of the connected subnets.
// Nodes without a pod CIDR or without such an address get no route (a note
// says why). A pod CIDR that overlaps self's or one already routed is
// skipped. The result is sorted by destination.
func DesiredRoutes(nodes []NodeInfo, self string, connected []netip.Prefix) ([]Route, []string) {
	var notes []string
	sorted := append([]NodeInfo(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var taken []netip.Prefix
	for _, n := range sorted {
		if n.Name == self {
			taken = append(taken, n.PodCIDRs...)
		}
	}
	var routes []Route
	for _, n := range sorted {
		if n.Name == self {
			continue
		}
		if len(n.PodCIDRs) == 0 {
			notes = append(notes, fmt.Sprintf("node %s: no pod CIDR yet, no route", n.Name))
			continue
		}
		gw, ok := connectedAddr(n.InternalIPs, connected)
		if !ok {
			if len(n.InternalIPs) == 0 {
				notes = append(notes, fmt.Sprintf("node %s: no IPv4 InternalIP, no route", n.Name))
			} else {
				notes = append(notes, fmt.Sprintf("node %s: InternalIP %s is not on a directly connected subnet, no route", n.Name, n.InternalIPs[0]))
			}
			continue
		}
	cidrs:
		for _, p := range n.PodCIDRs {
			for _, t := range taken {
				if t.Overlaps(p) {
					notes = append(notes, fmt.Sprintf("node %s: pod CIDR %s overlaps %s, no route", n.Name, p, t))
					continue cidrs
				}
			}
			taken = append(taken, p)
			routes = append(routes, Route{Dst: p, Gw: gw})
		}
	}
	sort.Slice(routes, func(i, j int) bool { return lessRoute(routes[i], routes[j]) })
	return routes, notes
}

func connectedAddr(ips []netip.Addr, connected []netip.Prefix) (netip.Addr, bool) {
	for _, ip := range ips {
		for _, c := range connected {
			if c.Bits() < 32 && c.Contains(ip) && ip != c.Addr() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

func lessRoute(a, b Route) bool {
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c < 0
	}
	if a.Dst.Bits() != b.Dst.Bits() {
		return a.Dst.Bits() < b.Dst.Bits()
	}
	return a.Gw.Less(b.Gw)
}

// DiffRoutes compares the wanted routes with the ones kina-net owns now:
// replace holds each wanted route that is missing or has another gateway,
// remove each owned route whose destination is no longer wanted (and
// duplicates of a wanted destination with a stale gateway).
func DiffRoutes(want, owned []Route) (replace, remove []Route) {
	have := map[netip.Prefix][]Route{}
	for _, r := range owned {
		have[r.Dst] = append(have[r.Dst], r)
	}
	wanted := map[netip.Prefix]Route{}
	for _, w := range want {
		wanted[w.Dst] = w
		found := false
		for _, h := range have[w.Dst] {
			if h.Gw == w.Gw {
				found = true
			}
		}
		if !found {
			replace = append(replace, w)
		}
	}
	for _, h := range owned {
		w, ok := wanted[h.Dst]
		if !ok {
			remove = append(remove, h)
			continue
		}
		// RouteReplace swaps one route of that destination; any other
		// owned route of it with a stale gateway goes.
		if h.Gw != w.Gw && len(have[h.Dst]) > 1 {
			remove = append(remove, h)
		}
	}
	sort.Slice(replace, func(i, j int) bool { return lessRoute(replace[i], replace[j]) })
	sort.Slice(remove, func(i, j int) bool { return lessRoute(remove[i], remove[j]) })
	return replace, remove
}
