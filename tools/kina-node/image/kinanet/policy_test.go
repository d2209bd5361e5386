package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// tpod: a pod of node, with IP, labels "k=v,k=v" and container ports
// "name/proto/number" ("http/TCP/8080").
func tpod(ns, name, node, ip, lbls string, ports ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{}}}
	p.Spec.NodeName = node
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	for _, kv := range strings.Split(lbls, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			p.Labels[k] = v
		}
	}
	c := corev1.Container{Name: "c"}
	for _, s := range ports {
		f := strings.Split(s, "/")
		var n int32
		for _, ch := range f[2] {
			n = n*10 + int32(ch-'0')
		}
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: f[0], Protocol: corev1.Protocol(f[1]), ContainerPort: n})
	}
	p.Spec.Containers = []corev1.Container{c}
	return p
}

func tns(name, lbls string) *corev1.Namespace {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/metadata.name": name}}}
	for _, kv := range strings.Split(lbls, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			n.Labels[k] = v
		}
	}
	return n
}

// tpol: a NetworkPolicy from YAML (the form of the Kubernetes docs).
func tpol(t *testing.T, y string) *networkingv1.NetworkPolicy {
	t.Helper()
	var np networkingv1.NetworkPolicy
	j, err := utilyaml.ToJSON([]byte(y))
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		err = dec.Decode(&np)
	}
	if err != nil {
		t.Fatalf("policy YAML: %v\n%s", err, y)
	}
	if np.Namespace == "" {
		np.Namespace = "default"
	}
	return &np
}

func TestComputePolicyRules(t *testing.T) {
	// The cluster: node "self" runs db (role=db, port 6379 named "redis"),
	// web (role=frontend, port "http" 8080) in default and api in prod;
	// node "other" runs fe2 in default, client in myproject, and a
	// hostNetwork pod.
	namespaces := []*corev1.Namespace{tns("default", ""), tns("prod", "env=prod"), tns("myproject", "project=myproject")}
	hostPod := tpod("kube-system", "hostnet", "self", "10.89.0.1", "app=h")
	hostPod.Spec.HostNetwork = true
	done := tpod("default", "job", "self", "10.244.0.9", "role=db")
	done.Status.Phase = corev1.PodSucceeded
	pods := []*corev1.Pod{
		tpod("default", "db", "self", "10.244.0.5", "role=db", "redis/TCP/6379"),
		tpod("default", "web", "self", "10.244.0.6", "role=frontend", "http/TCP/8080", "dns/UDP/53"),
		tpod("prod", "api", "self", "10.244.0.7", "app=api", "http/TCP/9090"),
		tpod("default", "fe2", "other", "10.244.1.5", "role=frontend", "http/TCP/80"),
		tpod("myproject", "client", "other", "10.244.1.6", "role=client"),
		hostPod, done,
	}
	cases := []struct {
		name     string
		policies []string
		want     []string
		notes    []string
	}{
		{name: "no policy: nothing filtered", want: nil},
		{
			name: "default deny all ingress (docs) isolates the namespace's pods of this node only",
			policies: []string{`
metadata: {name: default-deny-ingress}
spec:
  podSelector: {}
  policyTypes: [Ingress]`},
			want: []string{
				"default/db 10.244.0.5 ingress isolated by default/default-deny-ingress",
				"default/web 10.244.0.6 ingress isolated by default/default-deny-ingress",
			},
		},
		{
			name: "allow all ingress (docs): one rule, any peer",
			policies: []string{`
metadata: {name: allow-all-ingress}
spec:
  podSelector: {}
  ingress: [{}]
  policyTypes: [Ingress]`},
			want: []string{
				"default/db 10.244.0.5 ingress isolated by default/allow-all-ingress",
				"default/db 10.244.0.5 ingress allow from any all protocols",
				"default/web 10.244.0.6 ingress isolated by default/allow-all-ingress",
				"default/web 10.244.0.6 ingress allow from any all protocols",
			},
		},
		{
			name: "default deny egress (docs)",
			policies: []string{`
metadata: {name: default-deny-egress, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Egress]`},
			want: []string{"prod/api 10.244.0.7 egress isolated by prod/default-deny-egress"},
		},
		{
			name: "the docs' test-network-policy: ipBlock except, namespace and pod selectors, port; egress to a block",
			policies: []string{`
metadata: {name: test-network-policy}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
        - namespaceSelector: {matchLabels: {project: myproject}}
        - podSelector: {matchLabels: {role: frontend}}
      ports: [{protocol: TCP, port: 6379}]
  egress:
    - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
      ports: [{protocol: TCP, port: 5978}]`},
			want: []string{
				"default/db 10.244.0.5 ingress isolated by default/test-network-policy",
				"default/db 10.244.0.5 ingress allow from 10.244.0.6 tcp dport 6379",
				"default/db 10.244.0.5 ingress allow from 10.244.1.5 tcp dport 6379",
				"default/db 10.244.0.5 ingress allow from 10.244.1.6 tcp dport 6379",
				"default/db 10.244.0.5 ingress allow from 172.17.0.0/16 except 172.17.1.0/24 tcp dport 6379",
				"default/db 10.244.0.5 egress isolated by default/test-network-policy",
				"default/db 10.244.0.5 egress allow to 10.0.0.0/24 tcp dport 5978",
			},
		},
		{
			name: "namespaceSelector and podSelector in one peer: both must match",
			policies: []string{`
metadata: {name: and}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {project: myproject}}
          podSelector: {matchLabels: {role: frontend}}
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}
          podSelector: {matchLabels: {role: frontend}}`},
			want: []string{
				"default/db 10.244.0.5 ingress isolated by default/and",
				"default/db 10.244.0.5 ingress allow from 10.244.0.6 all protocols",
				"default/db 10.244.0.5 ingress allow from 10.244.1.5 all protocols",
			},
		},
		{
			name: "allow from all namespaces (empty namespaceSelector); hostNetwork and finished pods are no peers",
			policies: []string{`
metadata: {name: all-ns, namespace: prod}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 9090}]}]`},
			want: []string{
				"prod/api 10.244.0.7 ingress isolated by prod/all-ns",
				"prod/api 10.244.0.7 ingress allow from 10.244.0.5 tcp dport 9090",
				"prod/api 10.244.0.7 ingress allow from 10.244.0.6 tcp dport 9090",
				"prod/api 10.244.0.7 ingress allow from 10.244.0.7 tcp dport 9090",
				"prod/api 10.244.0.7 ingress allow from 10.244.1.5 tcp dport 9090",
				"prod/api 10.244.0.7 ingress allow from 10.244.1.6 tcp dport 9090",
			},
		},
		{
			name: "a selector matching no pod allows nothing",
			policies: []string{`
metadata: {name: nobody}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{podSelector: {matchLabels: {role: ghost}}}]}]`},
			want: []string{"default/db 10.244.0.5 ingress isolated by default/nobody"},
		},
		{
			name: "endPort, UDP and SCTP, a protocol without ports",
			policies: []string{`
metadata: {name: ranges, namespace: prod}
spec:
  podSelector: {}
  ingress:
    - ports:
        - {protocol: TCP, port: 32000, endPort: 32768}
        - {protocol: UDP, port: 53}
        - {protocol: SCTP}`},
			want: []string{
				"prod/api 10.244.0.7 ingress isolated by prod/ranges",
				"prod/api 10.244.0.7 ingress allow from any sctp all ports",
				"prod/api 10.244.0.7 ingress allow from any tcp dport 32000-32768",
				"prod/api 10.244.0.7 ingress allow from any udp dport 53",
			},
		},
		{
			name: "named ports on ingress are the selected pod's own; unresolved ones allow nothing",
			policies: []string{`
metadata: {name: named}
spec:
  podSelector: {}
  ingress:
    - ports: [{port: http}, {port: dns, protocol: UDP}, {port: dns}]`},
			want: []string{
				"default/db 10.244.0.5 ingress isolated by default/named",
				"default/web 10.244.0.6 ingress isolated by default/named",
				"default/web 10.244.0.6 ingress allow from any tcp dport 8080",
				"default/web 10.244.0.6 ingress allow from any udp dport 53",
			},
		},
		{
			name: "named ports on egress resolve on each destination pod",
			policies: []string{`
metadata: {name: egress-named, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{namespaceSelector: {}}]
      ports: [{port: http}]
    - to: [{ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.5/32]}}]
      ports: [{port: redis}]`},
			want: []string{
				"prod/api 10.244.0.7 egress isolated by prod/egress-named",
				"prod/api 10.244.0.7 egress allow to 10.244.0.6 tcp dport 8080",
				"prod/api 10.244.0.7 egress allow to 10.244.0.7 tcp dport 9090",
				"prod/api 10.244.0.7 egress allow to 10.244.1.5 tcp dport 80",
			},
		},
		{
			name: "no policyTypes: Ingress, and Egress when egress rules exist; policies add up",
			policies: []string{`
metadata: {name: a}
spec:
  podSelector: {matchLabels: {role: frontend}}
  egress: [{to: [{ipBlock: {cidr: 8.8.8.8/32}}], ports: [{port: 53, protocol: UDP}]}]`, `
metadata: {name: b}
spec:
  podSelector: {matchLabels: {role: frontend}}
  ingress: [{from: [{podSelector: {matchLabels: {role: db}}}]}]`},
			want: []string{
				"default/web 10.244.0.6 ingress isolated by default/a,default/b",
				"default/web 10.244.0.6 ingress allow from 10.244.0.5 all protocols",
				"default/web 10.244.0.6 egress isolated by default/a",
				"default/web 10.244.0.6 egress allow to 8.8.8.8 udp dport 53",
			},
		},
		{
			name: "ignored parts are noted",
			policies: []string{`
metadata: {name: odd, namespace: prod}
spec:
  podSelector: {}
  ingress:
    - from: [{ipBlock: {cidr: "fd00::/64"}}, {ipBlock: {cidr: 10.1.0.0/16}}]
      ports: [{protocol: ICMP, port: 1}, {port: 80}]`},
			want: []string{
				"prod/api 10.244.0.7 ingress isolated by prod/odd",
				"prod/api 10.244.0.7 ingress allow from 10.1.0.0/16 tcp dport 80",
			},
			notes: []string{
				"policy prod/odd: ipBlock fd00::/64 is IPv6: kina-net filters IPv4 only, peer ignored",
				`policy prod/odd: protocol "ICMP" is not TCP, UDP or SCTP: port ignored`,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var pols []*networkingv1.NetworkPolicy
			for _, y := range c.policies {
				pols = append(pols, tpol(t, y))
			}
			got, notes := ComputePolicyRules("self", pols, pods, namespaces)
			if text := got.Text(); !slices.Equal(text, c.want) {
				t.Errorf("rules:\n got %q\nwant %q", text, c.want)
			}
			if !slices.Equal(notes, c.notes) && !(len(notes) == 0 && len(c.notes) == 0) {
				t.Errorf("notes:\n got %q\nwant %q", notes, c.notes)
			}
		})
	}
}

// The pod list order, policy order and duplicates do not change the result.
func TestComputePolicyRulesStable(t *testing.T) {
	pods := []*corev1.Pod{tpod("default", "a", "self", "10.244.0.10", "x=1"), tpod("default", "b", "self", "10.244.0.9", "x=1")}
	p1 := tpol(t, "metadata: {name: p1}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}")
	p2 := tpol(t, "metadata: {name: p2}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}")
	a, _ := ComputePolicyRules("self", []*networkingv1.NetworkPolicy{p1, p2}, pods, nil)
	b, _ := ComputePolicyRules("self", []*networkingv1.NetworkPolicy{p2, p1}, []*corev1.Pod{pods[1], pods[0]}, nil)
	if !slices.Equal(a.Text(), b.Text()) {
		t.Fatalf("order matters:\n%q\n%q", a.Text(), b.Text())
	}
	want := []string{
		"default/b 10.244.0.9 ingress isolated by default/p1,default/p2",
		"default/b 10.244.0.9 ingress allow from any tcp dport 80",
		"default/a 10.244.0.10 ingress isolated by default/p1,default/p2",
		"default/a 10.244.0.10 ingress allow from any tcp dport 80",
	}
	if !slices.Equal(a.Text(), want) {
		t.Fatalf("got %q", a.Text())
	}
}

// The chains: base chains jump per pod and direction; each pod chain ends
// in drop; allowed peers return.
func TestPolicyChains(t *testing.T) {
	pods := []*corev1.Pod{tpod("default", "db", "self", "10.244.0.5", "role=db")}
	np := tpol(t, `
metadata: {name: p}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 80, endPort: 90}]}]`)
	pr, _ := ComputePolicyRules("self", []*networkingv1.NetworkPolicy{np}, pods, nil)
	chains := PolicyChains(pr)
	var names []string
	for _, c := range chains {
		names = append(names, PolicyChainSpec(c.Name, c.Hook))
	}
	wantNames := []string{
		"chain forward type filter hook forward priority 0 policy accept",
		"chain input type filter hook input priority 0 policy accept",
		"chain egress-10.244.0.5",
		"chain ingress-10.244.0.5",
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("chains %q", names)
	}
	comments := func(c NftPolicyChain) (out []string) {
		for _, r := range c.Rules {
			out = append(out, r.Comment)
		}
		return
	}
	if got := comments(chains[0]); !slices.Equal(got, []string{"kina-net: replies and related traffic", "kina-net: egress of default/db", "kina-net: ingress of default/db"}) {
		t.Errorf("forward: %q", got)
	}
	if got := comments(chains[1]); !slices.Equal(got, []string{"kina-net: replies and related traffic", "kina-net: egress of default/db"}) {
		t.Errorf("input: %q", got)
	}
	if got := comments(chains[2]); !slices.Equal(got, []string{"isolated by default/p"}) {
		t.Errorf("egress chain: %q", got)
	}
	if got := comments(chains[3]); !slices.Equal(got, []string{"allow from 10.0.0.0/8 except 10.1.0.0/16 tcp dport 80-90", "isolated by default/p"}) {
		t.Errorf("ingress chain: %q", got)
	}
	allow := ExprsText(chains[3].Rules[0].Exprs)
	for _, part := range []string{"Offset:12", "Op:0", "Op:1", "Range{Op:0", "FromData:[0 80] ToData:[0 90]", "Kind:-5"} {
		if !strings.Contains(allow, part) {
			t.Errorf("allow rule lacks %q: %s", part, allow)
		}
	}
	if d := ExprsText(chains[3].Rules[1].Exprs); !strings.Contains(d, "Verdict") || !strings.Contains(d, "Kind:0") {
		t.Errorf("last rule is not drop: %s", d)
	}
	// the same input gives the same text (the reconcile compares it)
	if !slices.Equal(PolicyText(chains), PolicyText(PolicyChains(pr))) {
		t.Error("PolicyText not deterministic")
	}
	// no pod isolated: the base chains alone
	if got := PolicyChains(PolicyRules{}); len(got) != 2 || len(got[0].Rules) != 1 {
		t.Errorf("empty rules: %d chains", len(got))
	}
}

func TestPolicyCommentBounded(t *testing.T) {
	if c := policyComment(strings.Repeat("x", 300)); len(c) > 120 || !strings.HasSuffix(c, "...") {
		t.Fatalf("comment %d bytes", len(c))
	}
}

func TestParseObjects(t *testing.T) {
	good := `{"kind":"List","items":[
	 {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod","labels":{"env":"prod"}}},
	 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"nodeName":"n1","containers":[{"name":"c"}]},"status":{"podIP":"10.244.0.5"}},
	 {"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny"},"spec":{"podSelector":{}}}]}`
	objs, err := ParseObjects([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Namespaces) != 1 || len(objs.Pods) != 1 || len(objs.Policies) != 1 || objs.Pods[0].Namespace != "default" || objs.Policies[0].Namespace != "default" {
		t.Fatalf("%+v", objs)
	}
	for _, c := range []struct{ in, err string }{
		{`[]`, "not a List in JSON"},
		{`{"kind":"PodList","items":[]}`, `kind "PodList" is not List`},
		{`{"kind":"List","items":[{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}]}`, `item 0: v1 "Service" is not`},
		{`{"kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{}}]}`, "item 0 (Pod) has no metadata.name"},
		{`{"kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":7}}]}`, "item 0 (Pod):"},
	} {
		if _, err := ParseObjects([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: got %v, want %q", c.in, err, c.err)
		}
	}
}
