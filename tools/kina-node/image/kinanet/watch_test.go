package main

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// lockedHost lets the test read the fake while the watch loop changes it.
type lockedHost struct {
	mu sync.Mutex
	f  *fakeHost
}

func (l *lockedHost) with(fn func(*fakeHost)) { l.mu.Lock(); defer l.mu.Unlock(); fn(l.f) }
func (l *lockedHost) ConnectedSubnets() (p []netip.Prefix, e error) {
	l.with(func(f *fakeHost) { p, e = f.ConnectedSubnets() })
	return
}
func (l *lockedHost) DefaultRouteMTU() (m int, e error) {
	l.with(func(f *fakeHost) { m, e = f.DefaultRouteMTU() })
	return
}
func (l *lockedHost) OwnedRoutes() (r []Route, e error) {
	l.with(func(f *fakeHost) { r, e = f.OwnedRoutes() })
	return
}
func (l *lockedHost) ReplaceRoute(r Route) (e error) {
	l.with(func(f *fakeHost) { e = f.ReplaceRoute(r) })
	return
}
func (l *lockedHost) DeleteRoute(r Route) (e error) {
	l.with(func(f *fakeHost) { e = f.DeleteRoute(r) })
	return
}
func (l *lockedHost) NftState() (s []string, e error) {
	l.with(func(f *fakeHost) { s, e = f.NftState() })
	return
}
func (l *lockedHost) ApplyNft(r []NftRule) (e error) {
	l.with(func(f *fakeHost) { e = f.ApplyNft(r) })
	return
}
func (l *lockedHost) WriteConflist(d []byte) (w bool, e error) {
	l.with(func(f *fakeHost) { w, e = f.WriteConflist(d) })
	return
}

// The daemon path: the informer sees nodes come and go through a (fake) API
// server and each change reaches the host; the loop stops on cancel.
func TestWatchLoop(t *testing.T) {
	client := fake.NewSimpleClientset()
	host := &lockedHost{f: &fakeHost{connected: prefixes("10.89.0.0/24"), mtu: 1500}}
	var logMu sync.Mutex
	var logs []string
	logLine := func(s string) { logMu.Lock(); logs = append(logs, s); logMu.Unlock() }
	rec := &Reconciler{Cfg: Config{NodeName: "self", PodSubnets: prefixes("10.244.0.0/16")}, Host: host, Log: logLine}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- watchLoop(ctx, client.CoreV1(), client, rec, logLine) }()

	nodes := client.CoreV1().Nodes()
	for _, n := range []struct{ name, cidr, ip string }{{"self", "10.244.0.0/24", "10.89.0.2"}, {"w1", "10.244.1.0/24", "10.89.0.3"}} {
		if _, err := nodes.Create(ctx, node(n.name, []string{n.cidr}, n.ip), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func(f *fakeHost) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			ok := false
			host.with(func(f *fakeHost) { ok = cond(f) })
			if ok {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("timed out waiting for %s; log: %q", what, logs)
	}
	waitFor("route to w1 and conflist", func(f *fakeHost) bool {
		return routeStrings(f.routes) == "10.244.1.0/24 via 10.89.0.3" && strings.Contains(string(f.conflist), "10.244.0.0/24")
	})
	if _, err := nodes.Create(ctx, node("w2", []string{"10.244.2.0/24"}, "10.89.0.4"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("route to w2", func(f *fakeHost) bool { return len(f.routes) == 2 })
	if err := nodes.Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("w1's route gone", func(f *fakeHost) bool { return routeStrings(f.routes) == "10.244.2.0/24 via 10.89.0.4" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watchLoop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("watchLoop did not stop on cancel")
	}
}
