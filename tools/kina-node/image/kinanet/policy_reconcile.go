package main

// policy_reconcile.go: one pass from the cluster's NetworkPolicies, Pods and
// Namespaces to table ip kina-net-policy on this node.

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// PolicyHost is what a policy pass reads from and changes on the node.
type PolicyHost interface {
	// PolicyNftState is the text form (PolicyText) of table ip
	// kina-net-policy as the kernel has it; nil when it does not exist.
	PolicyNftState() ([]string, error)
	// ApplyPolicyNft replaces the table with chains in one transaction.
	ApplyPolicyNft(chains []NftPolicyChain) error
}

// PolicyReconciler keeps what it last reported so that a steady state logs
// nothing.
type PolicyReconciler struct {
	NodeName string
	Host     PolicyHost
	Log      func(string)
	DryRun   bool

	lastNotes map[string]bool
	lastText  []string
}

// maxLoggedLines bounds the per-change log of rule lines.
const maxLoggedLines = 40

// Reconcile makes the node's policy table match the cluster state.
func (r *PolicyReconciler) Reconcile(policies []*networkingv1.NetworkPolicy, pods []*corev1.Pod, namespaces []*corev1.Namespace) error {
	rules, notes := ComputePolicyRules(r.NodeName, policies, pods, namespaces)
	seen := map[string]bool{}
	for _, n := range notes {
		seen[n] = true
		if !r.lastNotes[n] {
			r.Log(n)
		}
	}
	r.lastNotes = seen
	chains := PolicyChains(rules)
	want := PolicyText(chains)
	have, err := r.Host.PolicyNftState()
	if err != nil {
		return err
	}
	if slices.Equal(have, want) {
		r.lastText = rules.Text()
		return nil
	}
	if err := r.Host.ApplyPolicyNft(chains); err != nil {
		return err
	}
	verb := "write"
	if have != nil {
		verb = "rewrite"
	}
	prefix := ""
	if r.DryRun {
		prefix = "dry-run: would "
	}
	ing, eg := 0, 0
	for _, p := range rules.Pods {
		if p.IngressIsolated {
			ing++
		}
		if p.EgressIsolated {
			eg++
		}
	}
	r.Log(fmt.Sprintf("%s%s nftables table ip %s: %d pods of this node isolated for ingress, %d for egress", prefix, verb, NftPolicyTable, ing, eg))
	text := rules.Text()
	logged := 0
	for _, l := range text {
		if !slices.Contains(r.lastText, l) && logged < maxLoggedLines {
			r.Log("policy: " + l)
			logged++
		}
	}
	if logged == maxLoggedLines {
		r.Log("policy: (more lines not logged)")
	}
	r.lastText = text
	return nil
}
