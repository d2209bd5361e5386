package main

// kube.go: the API client, and the node list, from the API server (a watch
// in daemon mode, one list with --once) or, for tests, from a NodeList file.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const maxNodesFileBytes = 64 << 20

// readInput reads an input file (symlinks and pipes allowed), at most limit bytes.
func readInput(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, errors.New("is a directory")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// ParseNodeList reads a NodeList (or a List of Nodes) in JSON.
func ParseNodeList(data []byte) ([]*corev1.Node, error) {
	var list corev1.NodeList
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("not a NodeList in JSON: %v", err)
	}
	if list.Kind != "" && list.Kind != "NodeList" && list.Kind != "List" {
		return nil, fmt.Errorf("kind %q is not NodeList", list.Kind)
	}
	out := make([]*corev1.Node, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].Name == "" {
			return nil, fmt.Errorf("item %d has no metadata.name", i)
		}
		out = append(out, &list.Items[i])
	}
	return out, nil
}

func onceNodes(o options, getenv func(string) string) ([]*corev1.Node, error) {
	if o.nodesFile != "" {
		data, err := readInput(o.nodesFile, maxNodesFileBytes)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fail(exitNoInput, "--nodes-file %s: no such file", o.nodesFile)
		} else if err != nil {
			return nil, fail(exitNoInput, "--nodes-file %s: %v", o.nodesFile, err)
		}
		nodes, err := ParseNodeList(data)
		if err != nil {
			return nil, fail(exitDataErr, "--nodes-file %s: %v", o.nodesFile, err)
		}
		return nodes, nil
	}
	client, server, err := newClient(o.kubeconfig, getenv, func(string) {})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.core.Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fail(exitUnavailable, "API server %s: listing nodes: %v", server, err)
	}
	nodes := make([]*corev1.Node, 0, len(list.Items))
	for i := range list.Items {
		nodes = append(nodes, &list.Items[i])
	}
	return nodes, nil
}

// newClient: the kubeconfig file when given, else the in-cluster service
// account, with CONTROL_PLANE_ENDPOINT (host:port) as the server when it
// answers (kind's convention: no wait for kube-proxy's service rules).
func newClient(kubeconfig string, getenv func(string) string, logLine func(string)) (clients, string, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		if _, serr := os.Stat(kubeconfig); serr != nil {
			return clients{}, "", fail(exitNoInput, "--kubeconfig %s: no such file", kubeconfig)
		}
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return clients{}, "", fail(exitConfig, "--kubeconfig %s: %v", kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return clients{}, "", fail(exitConfig, "in-cluster config: %v (outside a pod, give --kubeconfig)", err)
		}
		if ep := getenv("CONTROL_PLANE_ENDPOINT"); ep != "" {
			if _, _, err := net.SplitHostPort(ep); err != nil {
				return clients{}, "", fail(exitConfig, "CONTROL_PLANE_ENDPOINT: %q is not host:port", ep)
			}
			if c, err := net.DialTimeout("tcp", ep, 2*time.Second); err == nil {
				c.Close()
				cfg.Host = "https://" + ep
			} else {
				logLine(fmt.Sprintf("CONTROL_PLANE_ENDPOINT %s does not answer (%v): using %s", ep, err, cfg.Host))
			}
		}
	}
	cfg.UserAgent = "kina-net/" + Version
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return clients{}, "", fail(exitConfig, "API client: %v", err)
	}
	netc, err := networkingv1client.NewForConfig(cfg)
	if err != nil {
		return clients{}, "", fail(exitConfig, "API client: %v", err)
	}
	return clients{core: core, net: netc}, cfg.Host, nil
}

// clients: the API groups kina-net reads.
type clients struct {
	core corev1client.CoreV1Interface
	net  networkingv1client.NetworkingV1Interface
}

// nodeChanged: only a node's pod CIDRs and addresses matter to kina-net.
func nodeChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*corev1.Node)
	n, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	return o.Spec.PodCIDR != n.Spec.PodCIDR || !slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) ||
		!slices.Equal(o.Status.Addresses, n.Status.Addresses)
}

// watchLoop keeps a node informer and reconciles on every relevant change,
// and every resync period to repair what something else changed. Failed
// passes are retried with a growing delay; an error is logged when it
// differs from the last one.
// caps is the client object that may say it cannot stream a watch list
// (the fake clientset of the tests does); for a real client, client itself.
func watchLoop(ctx context.Context, client corev1client.CoreV1Interface, caps any, rec *Reconciler, logLine func(string)) error {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return client.Nodes().List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return client.Nodes().Watch(ctx, opts)
		},
	}
	// The wrapper tells the reflector when a client cannot stream a watch
	// list (the fake clients of the tests); real API servers can.
	informer := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, caps), &corev1.Node{}, 0, cache.Indexers{})
	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		DeleteFunc: func(any) { kick() },
		UpdateFunc: func(o, n any) {
			if nodeChanged(o, n) {
				kick()
			}
		},
	})
	if err != nil {
		return fail(exitOSErr, "node informer: %v", err)
	}
	go informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fail(exitUnavailable, "node informer did not sync")
	}
	const resync = 30 * time.Second
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	rs := retrier{log: logLine, resync: resync}
	for {
		var nodes []*corev1.Node
		for _, obj := range informer.GetStore().List() {
			if n, ok := obj.(*corev1.Node); ok {
				nodes = append(nodes, n)
			}
		}
		err := rec.Reconcile(nodes)
		retry := rs.pass(err, "reconcile", func(err error) bool { return errors.Is(err, ErrNoPodCIDR) })
		select {
		case <-ctx.Done():
			logLine("stopping: signal received")
			return nil
		case <-trigger:
		case <-retry:
		case <-ticker.C:
		}
	}
}

// retrier is the retry state of a reconcile loop: after a failed pass it
// says when to try again (doubling from 1 s up to resync) and logs a failure
// once, not at every retry, and the recovery; `quiet` failures are not logged.
type retrier struct {
	log     func(string)
	resync  time.Duration
	backoff time.Duration
	lastErr string
}

func (r *retrier) pass(err error, what string, quiet func(error) bool) <-chan time.Time {
	if r.backoff == 0 {
		r.backoff = time.Second
	}
	if err == nil {
		if r.lastErr != "" {
			r.log(what + " ok")
		}
		r.lastErr = ""
		r.backoff = time.Second
		return nil
	}
	msg := oneLine(err.Error())
	if msg != r.lastErr && (quiet == nil || !quiet(err)) {
		r.log(what + " failed, retrying: " + msg)
	}
	r.lastErr = msg
	retry := time.After(r.backoff)
	r.backoff = min(r.backoff*2, r.resync)
	return retry
}
