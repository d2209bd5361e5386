package main

// policy.go: NetworkPolicy semantics as a pure function, from the cluster's
// NetworkPolicies, Pods and Namespaces to what this node must filter: for
// each pod running here that a policy selects, the list of peers and ports
// it may receive from (ingress) or send to (egress). No side effects here;
// policy_nft.go turns the result into nftables chains.

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// PeerMatch is one set of addresses: every address (Any), or Net without
// the Except networks. A pod peer is its IP as a /32.
type PeerMatch struct {
	Any    bool
	Net    netip.Prefix
	Except []netip.Prefix
}

// PortMatch is one protocol and port range: Proto "" is every protocol and
// port; From == 0 is every port of Proto; From..To is inclusive.
type PortMatch struct {
	Proto    string // "tcp", "udp", "sctp" or ""
	From, To uint16
}

// AllowRule lets traffic with one peer on one port through.
type AllowRule struct {
	Peer PeerMatch
	Port PortMatch
}

// PodFilter is what this node enforces for one of its pods. A direction
// that is not isolated is not filtered at all; an isolated one allows only
// its rules (none: everything in that direction is dropped).
type PodFilter struct {
	Pod             string // namespace/name
	IP              netip.Addr
	IngressIsolated bool
	Ingress         []AllowRule
	EgressIsolated  bool
	Egress          []AllowRule
	IngressPolicies []string // namespace/name of the policies isolating it
	EgressPolicies  []string
}

// PolicyRules is the whole filter of one node, its pods sorted by IP. Only
// pods with at least one isolated direction are listed.
type PolicyRules struct {
	Pods []PodFilter
}

var protoNames = map[corev1.Protocol]string{corev1.ProtocolTCP: "tcp", corev1.ProtocolUDP: "udp", corev1.ProtocolSCTP: "sctp"}

func (p PeerMatch) String() string {
	if p.Any {
		return "any"
	}
	var b strings.Builder
	b.WriteString(prefixText(p.Net))
	for _, e := range p.Except {
		b.WriteString(" except " + prefixText(e))
	}
	return b.String()
}

// Contains says whether a is in the peer set.
func (p PeerMatch) Contains(a netip.Addr) bool {
	if p.Any {
		return true
	}
	if !p.Net.Contains(a) {
		return false
	}
	for _, e := range p.Except {
		if e.Contains(a) {
			return false
		}
	}
	return true
}

func (p PortMatch) String() string {
	switch {
	case p.Proto == "":
		return "all protocols"
	case p.From == 0:
		return p.Proto + " all ports"
	case p.From == p.To:
		return fmt.Sprintf("%s dport %d", p.Proto, p.From)
	default:
		return fmt.Sprintf("%s dport %d-%d", p.Proto, p.From, p.To)
	}
}

// String is the rule as kina-net logs it and puts in the nftables comment.
func (r AllowRule) String() string { return r.Peer.String() + " " + r.Port.String() }

// Text is the rule set in readable lines, one per pod direction and rule
// (what the tests compare and --status shows).
func (pr PolicyRules) Text() []string {
	var out []string
	for _, p := range pr.Pods {
		for _, dir := range []struct {
			name     string
			isolated bool
			rules    []AllowRule
			from     string
			policies []string
		}{
			{"ingress", p.IngressIsolated, p.Ingress, "from", p.IngressPolicies},
			{"egress", p.EgressIsolated, p.Egress, "to", p.EgressPolicies},
		} {
			if !dir.isolated {
				continue
			}
			head := fmt.Sprintf("%s %s %s", p.Pod, p.IP, dir.name)
			out = append(out, fmt.Sprintf("%s isolated by %s", head, strings.Join(dir.policies, ",")))
			for _, r := range dir.rules {
				out = append(out, fmt.Sprintf("%s allow %s %s", head, dir.from, r))
			}
		}
	}
	return out
}

// podIPv4 is the pod's IPv4 address, if it has one and is running or
// about to (pods that finished hold no address any more).
func podIPv4(p *corev1.Pod) (netip.Addr, bool) {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return netip.Addr{}, false
	}
	ips := []string{p.Status.PodIP}
	for _, i := range p.Status.PodIPs {
		ips = append(ips, i.IP)
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// policyTypes: the policy's types, defaulted as the API server does when the
// field is empty (Ingress, plus Egress when it has egress rules).
func policyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// policyInput is the cluster state ComputePolicyRules works on, indexed.
type policyInput struct {
	pods     []*corev1.Pod // with an IPv4 address, not hostNetwork
	nsLabels map[string]labels.Set
	notes    map[string]bool
}

func (in *policyInput) note(format string, a ...any) { in.notes[fmt.Sprintf(format, a...)] = true }

func (in *policyInput) labelsOfNamespace(ns string) labels.Set {
	if l, ok := in.nsLabels[ns]; ok {
		return l
	}
	// the API server gives every namespace this label
	return labels.Set{"kubernetes.io/metadata.name": ns}
}

func selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Nothing(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// peerPods: the pods a podSelector/namespaceSelector peer of a policy in
// namespace ns stands for.
func (in *policyInput) peerPods(ns string, peer networkingv1.NetworkPolicyPeer) ([]*corev1.Pod, error) {
	podSel := labels.Everything()
	if peer.PodSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
		if err != nil {
			return nil, err
		}
		podSel = s
	}
	var nsSel labels.Selector
	if peer.NamespaceSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil {
			return nil, err
		}
		nsSel = s
	}
	var out []*corev1.Pod
	for _, p := range in.pods {
		if nsSel == nil {
			if p.Namespace != ns {
				continue
			}
		} else if !nsSel.Matches(in.labelsOfNamespace(p.Namespace)) {
			continue
		}
		if podSel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out, nil
}

// peers turns a rule's from/to list into peer sets; an empty list is every
// address. A peer that cannot be understood matches nothing (noted).
func (in *policyInput) peers(np *networkingv1.NetworkPolicy, list []networkingv1.NetworkPolicyPeer) []PeerMatch {
	if len(list) == 0 {
		return []PeerMatch{{Any: true}}
	}
	name := np.Namespace + "/" + np.Name
	var out []PeerMatch
	for _, peer := range list {
		if peer.IPBlock != nil {
			p, err := netip.ParsePrefix(peer.IPBlock.CIDR)
			if err != nil {
				in.note("policy %s: ipBlock %q is not a CIDR: peer ignored", name, peer.IPBlock.CIDR)
				continue
			}
			if !p.Addr().Is4() {
				in.note("policy %s: ipBlock %s is IPv6: kina-net filters IPv4 only, peer ignored", name, p)
				continue
			}
			m := PeerMatch{Net: p.Masked()}
			for _, e := range peer.IPBlock.Except {
				ep, err := netip.ParsePrefix(e)
				if err != nil || !ep.Addr().Is4() {
					in.note("policy %s: ipBlock except %q is not an IPv4 CIDR: ignored", name, e)
					continue
				}
				m.Except = append(m.Except, ep.Masked())
			}
			out = append(out, m)
			continue
		}
		pods, err := in.peerPods(np.Namespace, peer)
		if err != nil {
			in.note("policy %s: bad selector in a peer (%v): peer ignored", name, err)
			continue
		}
		for _, p := range pods {
			a, _ := podIPv4(p)
			out = append(out, PeerMatch{Net: netip.PrefixFrom(a, 32)})
		}
	}
	return out
}

// namedPort resolves a port name on pod p for protocol proto.
func namedPort(p *corev1.Pod, name string, proto corev1.Protocol) (uint16, bool) {
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			pp := cp.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if cp.Name == name && pp == proto && cp.ContainerPort > 0 && cp.ContainerPort < 65536 {
				return uint16(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}

// ruleAllows expands one ingress or egress rule of policy np. For ingress,
// target is the pod the rule protects and named ports are its ports; for
// egress, named ports are resolved on each destination pod in the peer set.
func (in *policyInput) ruleAllows(np *networkingv1.NetworkPolicy, peerList []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, target *corev1.Pod, egress bool) []AllowRule {
	name := np.Namespace + "/" + np.Name
	peers := in.peers(np, peerList)
	if len(ports) == 0 {
		var out []AllowRule
		for _, pm := range peers {
			out = append(out, AllowRule{Peer: pm, Port: PortMatch{}})
		}
		return out
	}
	var out []AllowRule
	for _, port := range ports {
		proto := corev1.ProtocolTCP
		if port.Protocol != nil {
			proto = *port.Protocol
		}
		pn, ok := protoNames[proto]
		if !ok {
			in.note("policy %s: protocol %q is not TCP, UDP or SCTP: port ignored", name, proto)
			continue
		}
		if port.Port == nil {
			for _, pm := range peers {
				out = append(out, AllowRule{Peer: pm, Port: PortMatch{Proto: pn}})
			}
			continue
		}
		if port.Port.Type == 0 { // a number
			from := port.Port.IntVal
			to := from
			if port.EndPort != nil {
				to = *port.EndPort
			}
			if from < 1 || from > 65535 || to < from || to > 65535 {
				in.note("policy %s: port %d..%d is not a valid port range: port ignored", name, from, to)
				continue
			}
			for _, pm := range peers {
				out = append(out, AllowRule{Peer: pm, Port: PortMatch{Proto: pn, From: uint16(from), To: uint16(to)}})
			}
			continue
		}
		// a named port
		pname := port.Port.StrVal
		if !egress {
			if n, ok := namedPort(target, pname, proto); ok {
				for _, pm := range peers {
					out = append(out, AllowRule{Peer: pm, Port: PortMatch{Proto: pn, From: n, To: n}})
				}
			}
			continue
		}
		for _, dst := range in.pods {
			a, _ := podIPv4(dst)
			if !slices.ContainsFunc(peers, func(pm PeerMatch) bool { return pm.Contains(a) }) {
				continue
			}
			if n, ok := namedPort(dst, pname, proto); ok {
				out = append(out, AllowRule{Peer: PeerMatch{Net: netip.PrefixFrom(a, 32)}, Port: PortMatch{Proto: pn, From: n, To: n}})
			}
		}
	}
	return out
}

// ComputePolicyRules is the NetworkPolicy semantics for the pods of node
// nodeName (not hostNetwork, with an IPv4 address): a pod is isolated for
// ingress (egress) when a policy of its namespace selects it and has that
// policy type; then only the union of the matching rules of all such
// policies is allowed. The notes say what was ignored and why.
func ComputePolicyRules(nodeName string, policies []*networkingv1.NetworkPolicy, pods []*corev1.Pod, namespaces []*corev1.Namespace) (PolicyRules, []string) {
	in := &policyInput{nsLabels: map[string]labels.Set{}, notes: map[string]bool{}}
	for _, ns := range namespaces {
		in.nsLabels[ns.Name] = labels.Set(ns.Labels)
	}
	var local []*corev1.Pod
	for _, p := range pods {
		if p.Spec.HostNetwork {
			continue
		}
		if _, ok := podIPv4(p); !ok {
			continue
		}
		in.pods = append(in.pods, p)
		if p.Spec.NodeName == nodeName {
			local = append(local, p)
		}
	}
	sortedPolicies := slices.Clone(policies)
	slices.SortFunc(sortedPolicies, func(a, b *networkingv1.NetworkPolicy) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	var out PolicyRules
	for _, pod := range local {
		ip, _ := podIPv4(pod)
		f := PodFilter{Pod: pod.Namespace + "/" + pod.Name, IP: ip}
		for _, np := range sortedPolicies {
			if np.Namespace != pod.Namespace {
				continue
			}
			sel, err := selector(&np.Spec.PodSelector)
			if err != nil {
				in.note("policy %s/%s: bad podSelector (%v): policy ignored", np.Namespace, np.Name, err)
				continue
			}
			if !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			ing, eg := policyTypes(np)
			name := np.Namespace + "/" + np.Name
			if ing {
				f.IngressIsolated = true
				f.IngressPolicies = append(f.IngressPolicies, name)
				for _, r := range np.Spec.Ingress {
					f.Ingress = append(f.Ingress, in.ruleAllows(np, r.From, r.Ports, pod, false)...)
				}
			}
			if eg {
				f.EgressIsolated = true
				f.EgressPolicies = append(f.EgressPolicies, name)
				for _, r := range np.Spec.Egress {
					f.Egress = append(f.Egress, in.ruleAllows(np, r.To, r.Ports, pod, true)...)
				}
			}
		}
		if f.IngressIsolated || f.EgressIsolated {
			f.Ingress = normalizeRules(f.Ingress)
			f.Egress = normalizeRules(f.Egress)
			out.Pods = append(out.Pods, f)
		}
	}
	slices.SortFunc(out.Pods, func(a, b PodFilter) int { return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Pod, b.Pod)) })
	notes := make([]string, 0, len(in.notes))
	for n := range in.notes {
		notes = append(notes, n)
	}
	slices.Sort(notes)
	return out, notes
}

// normalizeRules sorts and deduplicates; a rule allowing every peer on
// every port makes all the others redundant.
func normalizeRules(rs []AllowRule) []AllowRule {
	for _, r := range rs {
		if r.Peer.Any && r.Port.Proto == "" {
			return []AllowRule{r}
		}
	}
	key := func(r AllowRule) string { return r.String() }
	slices.SortFunc(rs, func(a, b AllowRule) int { return cmp.Compare(key(a), key(b)) })
	return slices.CompactFunc(rs, func(a, b AllowRule) bool { return key(a) == key(b) })
}
