package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// fakePolicyHost keeps the applied table as text.
type fakePolicyHost struct {
	mu      sync.Mutex
	state   []string
	applies int
}

func (f *fakePolicyHost) PolicyNftState() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.state), nil
}

func (f *fakePolicyHost) ApplyPolicyNft(chains []NftPolicyChain) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = PolicyText(chains)
	f.applies++
	return nil
}

// The daemon path of the policy pass: policies, pods and namespaces come
// through a (fake) API server; each change reaches the table, a steady state
// rewrites nothing.
func TestPolicyLoop(t *testing.T) {
	client := fake.NewSimpleClientset()
	host := &fakePolicyHost{}
	var logMu sync.Mutex
	var logs []string
	logLine := func(s string) { logMu.Lock(); logs = append(logs, s); logMu.Unlock() }
	rec := &PolicyReconciler{NodeName: "self", Host: host, Log: logLine}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- policyLoop(ctx, client.CoreV1(), client.NetworkingV1(), client, rec, logLine) }()

	waitFor := func(what string, cond func(state string) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			s, _ := host.PolicyNftState()
			if cond(strings.Join(s, "\n")) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("timed out waiting for %s; log: %q", what, logs)
	}
	waitFor("the empty table", func(s string) bool { return strings.Contains(s, "chain forward") })
	if _, err := client.CoreV1().Namespaces().Create(ctx, tns("default", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{tpod("default", "db", "self", "10.244.0.5", "role=db"), tpod("default", "web", "other", "10.244.1.5", "role=web")} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	np := tpol(t, "metadata: {name: db}\nspec: {podSelector: {matchLabels: {role: db}}, ingress: [{from: [{podSelector: {matchLabels: {role: web}}}]}]}")
	if _, err := client.NetworkingV1().NetworkPolicies("default").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("db isolated, web allowed", func(s string) bool {
		return strings.Contains(s, "chain ingress-10.244.0.5") && strings.Contains(s, `"allow from 10.244.1.5 all protocols"`)
	})
	// web's label changes: it is no longer a peer
	web, _ := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	web.Labels["role"] = "other"
	if _, err := client.CoreV1().Pods("default").Update(ctx, web, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("web no longer allowed", func(s string) bool {
		return strings.Contains(s, "chain ingress-10.244.0.5") && !strings.Contains(s, "10.244.1.5")
	})
	if err := client.NetworkingV1().NetworkPolicies("default").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("policy gone", func(s string) bool { return strings.Contains(s, "chain forward") && !strings.Contains(s, "ingress-") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("policyLoop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("policyLoop did not stop on cancel")
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !slices.ContainsFunc(logs, func(l string) bool {
		return strings.Contains(l, "policy: default/db 10.244.0.5 ingress allow from 10.244.1.5 all protocols")
	}) {
		t.Errorf("change not logged: %q", logs)
	}
}

// A second pass over the same state changes nothing and logs nothing.
func TestPolicyReconcileSteady(t *testing.T) {
	host := &fakePolicyHost{}
	var logs []string
	rec := &PolicyReconciler{NodeName: "self", Host: host, Log: func(s string) { logs = append(logs, s) }}
	pods := []*corev1.Pod{tpod("default", "db", "self", "10.244.0.5", "role=db")}
	np := tpol(t, "metadata: {name: deny}\nspec: {podSelector: {}, policyTypes: [Ingress]}")
	for i := 0; i < 2; i++ {
		if err := rec.Reconcile([]*networkingv1.NetworkPolicy{np}, pods, nil); err != nil {
			t.Fatal(err)
		}
	}
	if host.applies != 1 {
		t.Errorf("%d applies", host.applies)
	}
	if len(logs) != 2 || !strings.Contains(logs[0], "write nftables table ip kina-net-policy: 1 pods of this node isolated for ingress, 0 for egress") {
		t.Errorf("logs %q", logs)
	}
	// the table changed behind kina-net's back is rewritten
	host.state = host.state[:1]
	if err := rec.Reconcile([]*networkingv1.NetworkPolicy{np}, pods, nil); err != nil {
		t.Fatal(err)
	}
	if host.applies != 2 || !strings.Contains(logs[len(logs)-1], "rewrite nftables table") {
		t.Errorf("not repaired: %d applies, logs %q", host.applies, logs)
	}
}
