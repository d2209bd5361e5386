package main

// host.go: the side effects kina-net has on its node, behind one interface so
// that the reconcile pass is tested with a fake (reconcile_test.go) and run
// against the kernel (netlink.go) or in --dry-run mode (which only reads).

import "net/netip"

// Host is what a reconcile pass reads from and changes on the node.
type Host interface {
	// ConnectedSubnets lists the IPv4 networks of this node's addresses.
	ConnectedSubnets() ([]netip.Prefix, error)
	// DefaultRouteMTU is the MTU of the interface of the IPv4 default
	// route with the lowest metric; 0 when there is no default route.
	DefaultRouteMTU() (int, error)
	// OwnedRoutes lists the main-table IPv4 routes with RouteProtocol.
	OwnedRoutes() ([]Route, error)
	// ReplaceRoute installs r with RouteProtocol (netlink RouteReplace).
	ReplaceRoute(r Route) error
	// DeleteRoute removes the owned route r; a route already gone is no error.
	DeleteRoute(r Route) error
	// NftState is the text form (NftText) of table ip kina-net's chain as
	// the kernel has it; nil when the table does not exist.
	NftState() ([]string, error)
	// ApplyNft replaces table ip kina-net with the chain and rules in one
	// transaction (a table that did not exist is created).
	ApplyNft(rules []NftRule) error
	// WriteConflist puts data at the conflist path when it differs.
	WriteConflist(data []byte) (bool, error)
}
