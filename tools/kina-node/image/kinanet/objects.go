package main

// objects.go: the objects of the policy pass (NetworkPolicies, Pods,
// Namespaces), from the API server (informers in daemon mode, one list with
// --once) or, for tests, from a List file (--objects-file).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/tools/cache"
)

const maxObjectsFileBytes = 64 << 20

// PolicyObjects is the cluster state the policy pass works on.
type PolicyObjects struct {
	Policies   []*networkingv1.NetworkPolicy
	Pods       []*corev1.Pod
	Namespaces []*corev1.Namespace
}

// ParseObjects reads a List (kubectl get -o json's form) whose items are
// NetworkPolicies, Pods and Namespaces, in JSON. Any other kind is refused.
func ParseObjects(data []byte) (PolicyObjects, error) {
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	var out PolicyObjects
	if err := json.Unmarshal(data, &list); err != nil {
		return out, fmt.Errorf("not a List in JSON: %v", err)
	}
	if list.Kind != "List" {
		return out, fmt.Errorf("kind %q is not List", list.Kind)
	}
	for i, raw := range list.Items {
		var tm metav1.TypeMeta
		if err := json.Unmarshal(raw, &tm); err != nil {
			return out, fmt.Errorf("item %d: %v", i, err)
		}
		var obj interface{ GetName() string }
		switch {
		case tm.Kind == "NetworkPolicy" && tm.APIVersion == "networking.k8s.io/v1":
			p := &networkingv1.NetworkPolicy{}
			out.Policies, obj = append(out.Policies, p), p
		case tm.Kind == "Pod" && tm.APIVersion == "v1":
			p := &corev1.Pod{}
			out.Pods, obj = append(out.Pods, p), p
		case tm.Kind == "Namespace" && tm.APIVersion == "v1":
			n := &corev1.Namespace{}
			out.Namespaces, obj = append(out.Namespaces, n), n
		default:
			return out, fmt.Errorf("item %d: %s %q is not a v1 Pod, v1 Namespace or networking.k8s.io/v1 NetworkPolicy", i, tm.APIVersion, tm.Kind)
		}
		if err := json.Unmarshal(raw, obj); err != nil {
			return out, fmt.Errorf("item %d (%s): %v", i, tm.Kind, err)
		}
		if obj.GetName() == "" {
			return out, fmt.Errorf("item %d (%s) has no metadata.name", i, tm.Kind)
		}
	}
	for _, p := range out.Policies {
		if p.Namespace == "" {
			p.Namespace = "default"
		}
	}
	for _, p := range out.Pods {
		if p.Namespace == "" {
			p.Namespace = "default"
		}
	}
	return out, nil
}

func readObjectsFile(path string) (PolicyObjects, error) {
	data, err := readInput(path, maxObjectsFileBytes)
	if errors.Is(err, os.ErrNotExist) {
		return PolicyObjects{}, fail(exitNoInput, "--objects-file %s: no such file", path)
	} else if err != nil {
		return PolicyObjects{}, fail(exitNoInput, "--objects-file %s: %v", path, err)
	}
	objs, err := ParseObjects(data)
	if err != nil {
		return PolicyObjects{}, fail(exitDataErr, "--objects-file %s: %v", path, err)
	}
	return objs, nil
}

// listObjects: one list of each kind from the API server (--once).
func listObjects(ctx context.Context, c clients, server string) (PolicyObjects, error) {
	var out PolicyObjects
	pols, err := c.net.NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, fail(exitUnavailable, "API server %s: listing networkpolicies: %v", server, err)
	}
	pods, err := c.core.Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, fail(exitUnavailable, "API server %s: listing pods: %v", server, err)
	}
	nss, err := c.core.Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return out, fail(exitUnavailable, "API server %s: listing namespaces: %v", server, err)
	}
	for i := range pols.Items {
		out.Policies = append(out.Policies, &pols.Items[i])
	}
	for i := range pods.Items {
		out.Pods = append(out.Pods, &pods.Items[i])
	}
	for i := range nss.Items {
		out.Namespaces = append(out.Namespaces, &nss.Items[i])
	}
	return out, nil
}

// trimPod keeps what the policy pass reads of a pod (the informer's cache
// then holds small objects).
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	t := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, UID: p.UID, ResourceVersion: p.ResourceVersion},
		Spec:       corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork},
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
	for _, c := range p.Spec.Containers {
		if len(c.Ports) > 0 {
			t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	return t, nil
}

// podChanged: only what trimPod keeps matters (resourceVersion aside).
func podChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*corev1.Pod)
	n, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	oc, nc := *o, *n
	oc.ResourceVersion, nc.ResourceVersion = "", ""
	a, _ := json.Marshal(&oc)
	b, _ := json.Marshal(&nc)
	return string(a) != string(b)
}

func nsChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*corev1.Namespace)
	n, ok2 := newObj.(*corev1.Namespace)
	if !ok1 || !ok2 {
		return true
	}
	a, _ := json.Marshal(o.Labels)
	b, _ := json.Marshal(n.Labels)
	return string(a) != string(b)
}

// policyLoop keeps informers on NetworkPolicies, Pods and Namespaces and
// runs a policy pass on every relevant change and every resync period;
// failed passes are retried with a growing delay, as in watchLoop.
func policyLoop(ctx context.Context, core corev1client.CoreV1Interface, netc networkingv1client.NetworkingV1Interface, caps any, rec *PolicyReconciler, logLine func(string)) error {
	trigger := make(chan struct{}, 1)
	kick := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	handler := func(changed func(o, n any) bool) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { kick() },
			DeleteFunc: func(any) { kick() },
			UpdateFunc: func(o, n any) {
				if changed(o, n) {
					kick()
				}
			},
		}
	}
	mk := func(lw *cache.ListWatch, obj runtime.Object, changed func(o, n any) bool, transform cache.TransformFunc) (cache.SharedIndexInformer, error) {
		inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, caps), obj, 0, cache.Indexers{})
		if transform != nil {
			if err := inf.SetTransform(transform); err != nil {
				return nil, err
			}
		}
		_, err := inf.AddEventHandler(handler(changed))
		return inf, err
	}
	always := func(o, n any) bool { return true }
	polInf, err := mk(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return netc.NetworkPolicies("").List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return netc.NetworkPolicies("").Watch(ctx, o)
		},
	}, &networkingv1.NetworkPolicy{}, always, nil)
	if err != nil {
		return fail(exitOSErr, "networkpolicy informer: %v", err)
	}
	podInf, err := mk(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Pods("").List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return core.Pods("").Watch(ctx, o)
		},
	}, &corev1.Pod{}, podChanged, trimPod)
	if err != nil {
		return fail(exitOSErr, "pod informer: %v", err)
	}
	nsInf, err := mk(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Namespaces().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return core.Namespaces().Watch(ctx, o)
		},
	}, &corev1.Namespace{}, nsChanged, nil)
	if err != nil {
		return fail(exitOSErr, "namespace informer: %v", err)
	}
	for _, inf := range []cache.SharedIndexInformer{polInf, podInf, nsInf} {
		go inf.RunWithContext(ctx)
	}
	if !cache.WaitForCacheSync(ctx.Done(), polInf.HasSynced, podInf.HasSynced, nsInf.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fail(exitUnavailable, "policy informers did not sync")
	}
	const resync = 30 * time.Second
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	rs := retrier{log: logLine, resync: resync}
	for {
		var objs PolicyObjects
		for _, o := range polInf.GetStore().List() {
			if p, ok := o.(*networkingv1.NetworkPolicy); ok {
				objs.Policies = append(objs.Policies, p)
			}
		}
		for _, o := range podInf.GetStore().List() {
			if p, ok := o.(*corev1.Pod); ok {
				objs.Pods = append(objs.Pods, p)
			}
		}
		for _, o := range nsInf.GetStore().List() {
			if n, ok := o.(*corev1.Namespace); ok {
				objs.Namespaces = append(objs.Namespaces, n)
			}
		}
		err := rec.Reconcile(objs.Policies, objs.Pods, objs.Namespaces)
		retry := rs.pass(err, "policy pass", nil)
		select {
		case <-ctx.Done():
			return nil
		case <-trigger:
		case <-retry:
		case <-ticker.C:
		}
	}
}
