package main

// netlink.go: Host on the real kernel: rtnetlink for addresses and routes,
// nf_tables for the masquerade table, the filesystem for the conflist.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
)

type kernelHost struct {
	confDir string
}

func (h *kernelHost) ConnectedSubnets() ([]netip.Prefix, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if a.IPNet == nil || a.IP.IsLoopback() {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, bits).Masked())
	}
	return out, nil
}

func (h *kernelHost) DefaultRouteMTU() (int, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: syscall.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return 0, fmt.Errorf("listing routes: %w", err)
	}
	var defaults []netlink.Route
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified() && onesOf(r.Dst.Mask) == 0) && r.LinkIndex > 0 {
			defaults = append(defaults, r)
		}
	}
	if len(defaults) == 0 {
		return 0, nil
	}
	sort.SliceStable(defaults, func(i, j int) bool { return defaults[i].Priority < defaults[j].Priority })
	link, err := netlink.LinkByIndex(defaults[0].LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("default route interface %d: %w", defaults[0].LinkIndex, err)
	}
	return link.Attrs().MTU, nil
}

func onesOf(m net.IPMask) int { n, _ := m.Size(); return n }

func (h *kernelHost) OwnedRoutes() ([]Route, error) {
	filter := &netlink.Route{Table: syscall.RT_TABLE_MAIN, Protocol: RouteProtocol}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var out []Route
	for _, r := range routes {
		if r.Protocol != RouteProtocol || r.Dst == nil {
			continue
		}
		dst, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok {
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw.To4())
		out = append(out, Route{Dst: netip.PrefixFrom(dst, onesOf(r.Dst.Mask)), Gw: gw})
	}
	return out, nil
}

func toNetlink(r Route) *netlink.Route {
	dst := r.Dst.Masked()
	a := dst.Addr().As4()
	g := r.Gw.As4()
	return &netlink.Route{
		Dst:      &net.IPNet{IP: net.IP(a[:]), Mask: net.CIDRMask(dst.Bits(), 32)},
		Gw:       net.IP(g[:]),
		Protocol: RouteProtocol,
		Table:    syscall.RT_TABLE_MAIN,
	}
}

func (h *kernelHost) ReplaceRoute(r Route) error {
	if err := netlink.RouteReplace(toNetlink(r)); err != nil {
		return fmt.Errorf("route %s: %w", r, err)
	}
	return nil
}

func (h *kernelHost) DeleteRoute(r Route) error {
	if err := netlink.RouteDel(toNetlink(r)); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("route %s: %w", r, err)
	}
	return nil
}

func nftObjects() (*nftables.Table, *nftables.Chain) {
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: NftTable}
	policy := nftables.ChainPolicyAccept
	c := &nftables.Chain{
		Name:     NftChain,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
		Policy:   &policy,
	}
	return t, c
}

// findTable opens nftables and finds IPv4 table `name` (nil when it does not exist).
func findTable(name string) (*nftables.Conn, *nftables.Table, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: listing tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name {
			return conn, t, nil
		}
	}
	return conn, nil, nil
}

func (h *kernelHost) NftState() ([]string, error) {
	conn, table, err := findTable(NftTable)
	if err != nil || table == nil {
		return nil, err
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing chains: %w", err)
	}
	var out []string
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != NftTable {
			continue
		}
		out = append(out, NftChainText(c))
		rules, err := conn.GetRules(table, c)
		if err != nil {
			return nil, fmt.Errorf("nftables: listing rules: %w", err)
		}
		for _, r := range rules {
			out = append(out, NftRuleText(r.Exprs, r.UserData))
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func (h *kernelHost) ApplyNft(rules []NftRule) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t, c := nftObjects()
	// One batch: make sure the table exists, delete it with everything in
	// it, create it again with the chain and rules. The kernel applies the
	// batch as one transaction, so there is no moment without the rules.
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	conn.AddChain(c)
	for _, r := range rules {
		ex, err := NftExprs(r)
		if err != nil {
			return err
		}
		conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: ex, UserData: NftUserData(r)})
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables: writing table ip %s: %w", NftTable, err)
	}
	return nil
}

func (h *kernelHost) WriteConflist(data []byte) (bool, error) {
	return WriteFileIfChanged(h.confDir, ConflistName, data)
}

// dryRunHost reads through to the kernel and changes nothing.
type dryRunHost struct{ kernelHost }

func (h *dryRunHost) ReplaceRoute(Route) error { return nil }
func (h *dryRunHost) DeleteRoute(Route) error  { return nil }
func (h *dryRunHost) ApplyNft([]NftRule) error { return nil }
func (h *dryRunHost) WriteConflist(data []byte) (bool, error) {
	old, err := readBounded(filepath.Join(h.confDir, ConflistName), maxConflistBytes)
	return err != nil || !bytes.Equal(old, data), nil
}

// PolicyNftState is the text form (PolicyText) of table ip kina-net-policy
// as the kernel has it; nil when the table does not exist.
func (h *kernelHost) PolicyNftState() ([]string, error) {
	conn, table, err := findTable(NftPolicyTable)
	if err != nil || table == nil {
		return nil, err
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("nftables: listing chains: %w", err)
	}
	out := []string{}
	for _, c := range chains {
		if c.Table == nil || c.Table.Name != NftPolicyTable {
			continue
		}
		spec := PolicyChainSpec(c.Name, c.Hooknum)
		if c.Hooknum != nil && (c.Type != nftables.ChainTypeFilter || c.Priority == nil || *c.Priority != 0 ||
			c.Policy == nil || *c.Policy != nftables.ChainPolicyAccept) {
			spec += " (changed)"
		}
		out = append(out, spec)
		rules, err := conn.GetRules(table, c)
		if err != nil {
			return nil, fmt.Errorf("nftables: listing rules: %w", err)
		}
		for _, r := range rules {
			comment, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			out = append(out, fmt.Sprintf("  %s comment %q", ExprsText(r.Exprs), comment))
		}
	}
	return out, nil
}

// ApplyPolicyNft replaces table ip kina-net-policy with chains in one
// transaction (as ApplyNft does for the masquerade table).
func (h *kernelHost) ApplyPolicyNft(chains []NftPolicyChain) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: NftPolicyTable}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	// every chain first: the base chains' rules jump to the others
	made := make([]*nftables.Chain, len(chains))
	for i, c := range chains {
		nc := &nftables.Chain{Name: c.Name, Table: t}
		if c.Hook != nil {
			policy := nftables.ChainPolicyAccept
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = nftables.ChainTypeFilter, c.Hook, nftables.ChainPriorityFilter, &policy
		}
		made[i] = conn.AddChain(nc)
	}
	for i, c := range chains {
		for _, r := range c.Rules {
			conn.AddRule(&nftables.Rule{Table: t, Chain: made[i], Exprs: r.Exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment)})
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables: writing table ip %s: %w", NftPolicyTable, err)
	}
	return nil
}

func (h *dryRunHost) ApplyPolicyNft([]NftPolicyChain) error { return nil }
