package main

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// fakeHost records every change; its routes are the owned ones only.
type fakeHost struct {
	connected []netip.Prefix
	mtu       int
	routes    []Route
	nft       []string
	conflist  []byte
	changes   []string
	failNft   error
}

func (f *fakeHost) ConnectedSubnets() ([]netip.Prefix, error) { return f.connected, nil }
func (f *fakeHost) DefaultRouteMTU() (int, error)             { return f.mtu, nil }
func (f *fakeHost) OwnedRoutes() ([]Route, error)             { return slices.Clone(f.routes), nil }
func (f *fakeHost) ReplaceRoute(r Route) error {
	f.changes = append(f.changes, "replace "+r.String())
	f.routes = slices.DeleteFunc(f.routes, func(x Route) bool { return x.Dst == r.Dst })
	f.routes = append(f.routes, r)
	return nil
}
func (f *fakeHost) DeleteRoute(r Route) error {
	f.changes = append(f.changes, "delete "+r.String())
	f.routes = slices.DeleteFunc(f.routes, func(x Route) bool { return x == r })
	return nil
}
func (f *fakeHost) NftState() ([]string, error) { return f.nft, nil }
func (f *fakeHost) ApplyNft(rules []NftRule) error {
	if f.failNft != nil {
		return f.failNft
	}
	f.changes = append(f.changes, "nft")
	f.nft = NftText(rules)
	return nil
}
func (f *fakeHost) WriteConflist(data []byte) (bool, error) {
	if string(data) == string(f.conflist) {
		return false, nil
	}
	f.changes = append(f.changes, "conflist")
	f.conflist = data
	return true, nil
}

func TestReconcile(t *testing.T) {
	cfg := Config{NodeName: "self", PodSubnets: prefixes("10.244.0.0/16")}
	host := &fakeHost{connected: prefixes("10.89.0.0/24"), mtu: 1400}
	// a route with kina-net's protocol left from a node that is gone
	host.routes = []Route{rt("10.244.9.0/24", "10.89.0.9")}
	var logs []string
	rec := &Reconciler{Cfg: cfg, Host: host, Log: func(s string) { logs = append(logs, s) }}
	nodes := []*corev1.Node{
		node("self", []string{"10.244.0.0/24"}, "10.89.0.2"),
		node("w1", []string{"10.244.1.0/24"}, "10.89.0.3"),
		node("w2", []string{"10.244.2.0/24"}, "10.89.0.4"),
	}

	steps := []struct {
		name        string
		nodes       []*corev1.Node
		mutate      func()
		wantChanges string
		wantLogs    int
		wantErr     error
	}{
		{"first pass", nodes, nil, "nft; delete 10.244.9.0/24 via 10.89.0.9; replace 10.244.1.0/24 via 10.89.0.3; replace 10.244.2.0/24 via 10.89.0.4; conflist", 5, nil},
		{"steady state: nothing", nodes, nil, "", 0, nil},
		{"w2 gone", nodes[:2], nil, "delete 10.244.2.0/24 via 10.89.0.4", 1, nil},
		{"table flushed by hand", nodes[:2], func() { host.nft = nil }, "nft", 1, nil},
		{"rule changed by hand", nodes[:2], func() { host.nft = append(slices.Clone(host.nft[:2]), "?") }, "nft", 1, nil},
		{"mtu changed", nodes[:2], func() { host.mtu = 9000 }, "conflist", 1, nil},
		{"self loses pod CIDR", []*corev1.Node{node("self", nil, "10.89.0.2"), nodes[1]}, nil, "", 1, ErrNoPodCIDR},
		{"self missing", nodes[1:2], nil, "", 0, ErrSelfMissing},
	}
	for _, s := range steps {
		host.changes = nil
		logs = nil
		if s.mutate != nil {
			s.mutate()
		}
		err := rec.Reconcile(s.nodes)
		if s.wantErr == nil && err != nil || s.wantErr != nil && !errors.Is(err, s.wantErr) {
			t.Errorf("%s: error %v, want %v", s.name, err, s.wantErr)
		}
		if got := strings.Join(host.changes, "; "); got != s.wantChanges {
			t.Errorf("%s: changes %q, want %q", s.name, got, s.wantChanges)
		}
		if len(logs) != s.wantLogs {
			t.Errorf("%s: %d log lines, want %d: %q", s.name, len(logs), s.wantLogs, logs)
		}
	}
	if !strings.Contains(string(host.conflist), `"mtu": 9000`) || !strings.Contains(string(host.conflist), "10.244.0.0/24") {
		t.Errorf("conflist %s", host.conflist)
	}
}

func TestReconcileKeepsGoingAfterAFailure(t *testing.T) {
	cfg := Config{NodeName: "self", PodSubnets: prefixes("10.244.0.0/16")}
	host := &fakeHost{connected: prefixes("10.89.0.0/24"), failNft: errors.New("nf_tables missing")}
	rec := &Reconciler{Cfg: cfg, Host: host, Log: func(string) {}}
	err := rec.Reconcile([]*corev1.Node{node("self", []string{"10.244.0.0/24"}, "10.89.0.2"), node("w1", []string{"10.244.1.0/24"}, "10.89.0.3")})
	if err == nil || !strings.Contains(err.Error(), "nf_tables missing") {
		t.Fatalf("error %v", err)
	}
	if got := strings.Join(host.changes, "; "); got != "replace 10.244.1.0/24 via 10.89.0.3; conflist" {
		t.Fatalf("changes %q", got)
	}
}
