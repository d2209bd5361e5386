package main

// reconcile.go: one pass from a node list to the node's state: conflist,
// routes to other nodes' pod CIDRs, the masquerade table.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ErrNoPodCIDR: the own node has no IPv4 pod CIDR yet (the conflist waits).
var ErrNoPodCIDR = errors.New("no IPv4 pod CIDR assigned yet")

// ErrSelfMissing: the own node is not in the list.
var ErrSelfMissing = errors.New("not in the node list")

// Reconciler keeps what it last reported so that a steady state logs nothing.
type Reconciler struct {
	Cfg    Config
	Host   Host
	Log    func(string)
	DryRun bool

	lastNotes map[string]bool
	lastMTU   int
}

func (r *Reconciler) logf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if r.DryRun {
		msg = "dry-run: would " + msg
	}
	r.Log(msg)
}

// Reconcile makes the node match nodes. Each step runs even when an earlier
// one failed; the errors are joined. ErrNoPodCIDR / ErrSelfMissing (wrapped)
// say the conflist could not be written yet.
func (r *Reconciler) Reconcile(nodes []*corev1.Node) error {
	var errs []error
	var infos []NodeInfo
	notes := map[string]bool{}
	var self *NodeInfo
	for _, n := range nodes {
		info, ns := NodeInfoFrom(n)
		for _, s := range ns {
			notes[s] = true
		}
		infos = append(infos, info)
		if n.Name == r.Cfg.NodeName {
			i := info
			self = &i
		}
	}

	// 1. masquerade table
	if err := r.syncNft(); err != nil {
		errs = append(errs, err)
	}

	// 2. routes to the other nodes' pod CIDRs
	connected, err := r.Host.ConnectedSubnets()
	if err != nil {
		errs = append(errs, err)
	} else {
		want, ns := DesiredRoutes(infos, r.Cfg.NodeName, connected)
		for _, s := range ns {
			notes[s] = true
		}
		if err := r.syncRoutes(want, infos); err != nil {
			errs = append(errs, err)
		}
	}

	// 3. the conflist of this node
	if self == nil {
		errs = append(errs, fmt.Errorf("node %s: %w", r.Cfg.NodeName, ErrSelfMissing))
	} else if len(self.PodCIDRs) == 0 {
		msg := fmt.Sprintf("node %s: waiting for spec.podCIDRs", self.Name)
		notes[msg] = true
		errs = append(errs, fmt.Errorf("node %s: %w", self.Name, ErrNoPodCIDR))
	} else {
		for _, p := range self.PodCIDRs {
			if !slices.ContainsFunc(r.Cfg.PodSubnets, func(s netip.Prefix) bool { return s.Contains(p.Addr()) && s.Bits() <= p.Bits() }) {
				notes[fmt.Sprintf("node %s: pod CIDR %s is outside POD_SUBNET, its pods' traffic is not masqueraded", self.Name, p)] = true
			}
		}
		if err := r.syncConflist(self.PodCIDRs); err != nil {
			errs = append(errs, err)
		}
	}

	for n := range notes {
		if !r.lastNotes[n] {
			r.Log(n)
		}
	}
	r.lastNotes = notes
	return errors.Join(errs...)
}

func (r *Reconciler) syncNft() error {
	rules := MasqRules(r.Cfg.PodSubnets)
	want := NftText(rules)
	have, err := r.Host.NftState()
	if err != nil {
		return err
	}
	if slices.Equal(have, want) {
		return nil
	}
	if err := r.Host.ApplyNft(rules); err != nil {
		return err
	}
	what := "write"
	if have != nil {
		what = "rewrite"
	}
	subnets := make([]string, len(r.Cfg.PodSubnets))
	for i, p := range r.Cfg.PodSubnets {
		subnets[i] = p.String()
	}
	r.logf("%s nftables table ip %s: masquerade pods of %s leaving the pod network", what, NftTable, strings.Join(subnets, ","))
	return nil
}

func (r *Reconciler) syncRoutes(want []Route, infos []NodeInfo) error {
	owned, err := r.Host.OwnedRoutes()
	if err != nil {
		return err
	}
	replace, remove := DiffRoutes(want, owned)
	nodeOf := func(rt Route) string {
		for _, n := range infos {
			if slices.Contains(n.PodCIDRs, rt.Dst) {
				return n.Name
			}
		}
		return "gone"
	}
	var errs []error
	for _, rt := range remove {
		if err := r.Host.DeleteRoute(rt); err != nil {
			errs = append(errs, err)
			continue
		}
		r.logf("delete route %s proto %d (node %s)", rt, RouteProtocol, nodeOf(rt))
	}
	for _, rt := range replace {
		if err := r.Host.ReplaceRoute(rt); err != nil {
			errs = append(errs, err)
			continue
		}
		r.logf("add route %s proto %d (node %s)", rt, RouteProtocol, nodeOf(rt))
	}
	return errors.Join(errs...)
}

func (r *Reconciler) syncConflist(podCIDRs []netip.Prefix) error {
	mtu, err := r.Host.DefaultRouteMTU()
	if err != nil {
		return err
	}
	if mtu == 0 && r.lastMTU != -1 {
		r.Log("no IPv4 default route: the conflist leaves the MTU to the ptp plugin")
		r.lastMTU = -1
	} else if mtu != 0 {
		r.lastMTU = mtu
	}
	data, err := Conflist(podCIDRs, mtu)
	if err != nil {
		return err
	}
	wrote, err := r.Host.WriteConflist(data)
	if err != nil {
		return fmt.Errorf("writing %s: %w", ConflistName, err)
	}
	if wrote {
		cidrs := make([]string, len(podCIDRs))
		for i, p := range podCIDRs {
			cidrs[i] = p.String()
		}
		m := "kernel default"
		if mtu != 0 {
			m = fmt.Sprint(mtu)
		}
		r.logf("write CNI config %s (pod CIDR %s, mtu %s)", ConflistName, strings.Join(cidrs, ","), m)
	}
	return nil
}
