// kina-net: kina's default CNI daemon. One instance per node (a hostNetwork
// DaemonSet) writes the node's CNI conflist, routes the other nodes' pod
// CIDRs via their InternalIP, masquerades pod traffic leaving the pod
// network and enforces NetworkPolicy for the pods of its node (nftables).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const usage = `Usage: kina-net [--once] [--kubeconfig FILE] [--cni-conf-dir DIR] [--dry-run]
                [--no-network-policy]
       kina-net --status [--cni-conf-dir DIR]
       kina-net --help | --version

kina's default CNI daemon (the role kindnetd has in kind's node images). Runs
as the DaemonSet kube-system/kina-net with hostNetwork on every node and:
  - writes DIR/10-kina.conflist (CNI 1.0.0: ptp with host-local IPAM over this
    node's spec.podCIDRs and a default route, MTU of the default-route
    interface; then portmap) once the node has a pod CIDR, atomically and only
    when its content changes;
  - routes every other node's pod CIDR via that node's InternalIP when the IP
    is on a directly connected subnet (routes carry "proto 115"; kina-net only
    ever changes or deletes routes with that protocol, and deletes them when
    their node is gone);
  - keeps the nftables table "ip kina-net": packets from a pod subnet to
    anything but a pod subnet or an address of this node are masqueraded;
  - enforces NetworkPolicy (networking.k8s.io/v1) for the pods of this node
    in the nftables table "ip kina-net-policy", from informers on
    NetworkPolicies, Pods and Namespaces: ingress to and egress from each
    selected pod per policyTypes, podSelector, namespaceSelector, ipBlock
    with except, ports (numbers, endPort ranges, named ports) over TCP, UDP
    and SCTP. Replies and related packets of allowed connections pass; a pod
    no policy selects is not filtered; traffic from a pod's own node to the
    pod is always allowed (it is not forwarded), as the API specifies.
NOT done in this version: hostNetwork pods are neither filtered nor matched
as peers by pod or namespace selectors (only by ipBlock, as their node's
address); IPv6 traffic and IPv6 ipBlocks are not filtered (IPv6 and
dual-stack pod subnets are refused); AdminNetworkPolicy is not supported.

Environment:
  NODE_NAME    this node's name (the DaemonSet sets it from spec.nodeName)
  POD_SUBNET   the cluster's pod subnet(s), comma-separated IPv4 CIDRs
  CONTROL_PLANE_ENDPOINT  optional host:port of the API server, used instead
               of the in-cluster service address when it answers

Options:
  --once              one reconcile pass from the current node list (and,
                      unless --no-network-policy, the current policies, pods
                      and namespaces), then exit
  --kubeconfig FILE   talk to the API server with FILE instead of the
                      in-cluster service account (testing outside a cluster)
  --cni-conf-dir DIR  where the conflist goes (default /etc/cni/net.d)
  --dry-run           log what would change, change nothing
  --no-network-policy do not enforce NetworkPolicy (table ip kina-net-policy
                      is left as it is; delete it with nft to lift it)
  --status            print what kina-net owns on this node (routes with
                      proto 115, the nftables tables, the conflist) and exit
  --version           print the version and exit
  --help              this text
Test inputs (for kina's tests, not for clusters; only with --once):
  --nodes-file FILE   a NodeList in JSON instead of the API server's nodes
  --objects-file FILE a List in JSON of Pods, Namespaces and NetworkPolicies
                      instead of the API server's (needs --nodes-file)

Logs go to stderr, one line per change. Exit status: 0 ok; 64 usage; 65 bad
node list or objects file; 66 own node not found or input file missing; 69 API
server unreachable; 71 a kernel or file operation failed; 75 (--once) the node
has no pod CIDR yet; 78 bad environment.
`

type options struct {
	once, dryRun, status, version, help, noPolicy bool
	kubeconfig, confDir, nodesFile, objectsFile   string
}

type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, a ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

func parseArgs(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("kina-net", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.once, "once", false, "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	fs.BoolVar(&o.status, "status", false, "")
	fs.BoolVar(&o.version, "version", false, "")
	fs.BoolVar(&o.help, "help", false, "")
	fs.BoolVar(&o.help, "h", false, "")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "")
	fs.StringVar(&o.confDir, "cni-conf-dir", "/etc/cni/net.d", "")
	fs.BoolVar(&o.noPolicy, "no-network-policy", false, "")
	// Test inputs: a NodeList / a List of policy objects (JSON) read instead
	// of the API server; only with --once.
	fs.StringVar(&o.nodesFile, "nodes-file", "", "")
	fs.StringVar(&o.objectsFile, "objects-file", "", "")
	if err := fs.Parse(args); err != nil {
		msg := strings.Replace(err.Error(), "flag provided but not defined: -", "unknown option: --", 1)
		return o, fail(exitUsage, "%s (see --help)", msg)
	}
	if fs.NArg() > 0 {
		return o, fail(exitUsage, "unexpected argument %q (see --help)", fs.Arg(0))
	}
	if o.nodesFile != "" && !o.once {
		return o, fail(exitUsage, "--nodes-file: only with --once")
	}
	if o.objectsFile != "" && o.nodesFile == "" {
		return o, fail(exitUsage, "--objects-file: only with --once and --nodes-file")
	}
	if o.objectsFile != "" && o.noPolicy {
		return o, fail(exitUsage, "--objects-file and --no-network-policy: give one of them")
	}
	if o.nodesFile != "" && o.kubeconfig != "" {
		return o, fail(exitUsage, "--nodes-file and --kubeconfig: give one of them")
	}
	if o.confDir == "" {
		return o, fail(exitUsage, "--cni-conf-dir: empty")
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err == nil {
		err = runOpts(o, getenv, stdout, stderr)
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintf(stderr, "kina-net: error: %s\n", oneLine(ee.msg))
		return ee.code
	}
	fmt.Fprintf(stderr, "kina-net: error: %s\n", oneLine(err.Error()))
	return exitOSErr
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func runOpts(o options, getenv func(string) string, stdout, stderr io.Writer) error {
	if o.help {
		_, err := io.WriteString(stdout, usage)
		return err
	}
	if o.version {
		_, err := fmt.Fprintf(stdout, "kina-net %s\n", Version)
		return err
	}
	logLine := func(s string) { fmt.Fprintf(stderr, "kina-net: %s\n", s) }
	kh := &kernelHost{confDir: o.confDir}
	if o.status {
		return printStatus(kh, stdout)
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return fail(exitConfig, "%v", err)
	}
	if st, err := os.Stat(o.confDir); err != nil || !st.IsDir() {
		return fail(exitNoInput, "--cni-conf-dir %s: not a directory", o.confDir)
	}
	var host Host = kh
	if o.dryRun {
		host = &dryRunHost{*kh}
	} else if removed, err := SweepTemp(o.confDir); err == nil {
		for _, n := range removed {
			logLine("removed " + n + " left by an interrupted write")
		}
	}
	rec := &Reconciler{Cfg: cfg, Host: host, Log: logLine, DryRun: o.dryRun}
	var polHost PolicyHost = kh
	if o.dryRun {
		polHost = &dryRunHost{*kh}
	}
	prec := &PolicyReconciler{NodeName: cfg.NodeName, Host: polHost, Log: logLine, DryRun: o.dryRun}

	if o.once {
		nodes, err := onceNodes(o, getenv)
		if err != nil {
			return err
		}
		var objs *PolicyObjects
		if !o.noPolicy && o.objectsFile != "" {
			got, err := readObjectsFile(o.objectsFile)
			if err != nil {
				return err
			}
			objs = &got
		} else if !o.noPolicy && o.nodesFile == "" {
			client, server, err := newClient(o.kubeconfig, getenv, func(string) {})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			got, err := listObjects(ctx, client, server)
			cancel()
			if err != nil {
				return err
			}
			objs = &got
		}
		nodeErr := rec.Reconcile(nodes)
		var polErr error
		if objs != nil {
			polErr = prec.Reconcile(objs.Policies, objs.Pods, objs.Namespaces)
		}
		if nodeErr == nil && polErr != nil {
			return fail(exitOSErr, "network policy: %v", polErr)
		}
		return onceResult(nodeErr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	client, server, err := newClient(o.kubeconfig, getenv, logLine)
	if err != nil {
		return err
	}
	enforce := "enforcing NetworkPolicy"
	if o.noPolicy {
		enforce = "NOT enforcing NetworkPolicy (--no-network-policy)"
	}
	logLine(fmt.Sprintf("%s starting on node %s, pod subnet %s, API server %s, %s", Version, cfg.NodeName, getenv("POD_SUBNET"), server, enforce))
	if !o.noPolicy {
		go func() {
			if err := policyLoop(ctx, client.core, client.net, client.core, prec, logLine); err != nil {
				logLine("NetworkPolicy enforcement stopped: " + oneLine(err.Error()))
			}
		}()
	}
	return watchLoop(ctx, client.core, client.core, rec, logLine)
}

func onceResult(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrSelfMissing):
		return fail(exitNoInput, "%v", err)
	case errors.Is(err, ErrNoPodCIDR):
		return fail(exitTempFail, "%v", err)
	default:
		return fail(exitOSErr, "%v", err)
	}
}

func printStatus(h *kernelHost, stdout io.Writer) error {
	routes, err := h.OwnedRoutes()
	if err != nil {
		return fail(exitOSErr, "%v", err)
	}
	for _, r := range routes {
		fmt.Fprintf(stdout, "route %s proto %d\n", r, RouteProtocol)
	}
	state, err := h.NftState()
	if err != nil {
		return fail(exitOSErr, "%v", err)
	}
	if state == nil {
		fmt.Fprintf(stdout, "nft table ip %s: absent\n", NftTable)
	} else {
		fmt.Fprintf(stdout, "nft table ip %s\n", NftTable)
		for _, l := range state {
			fmt.Fprintf(stdout, "nft %s\n", l)
		}
	}
	pol, err := h.PolicyNftState()
	if err != nil {
		return fail(exitOSErr, "%v", err)
	}
	if pol == nil {
		fmt.Fprintf(stdout, "nft table ip %s: absent\n", NftPolicyTable)
	} else {
		fmt.Fprintf(stdout, "nft table ip %s\n", NftPolicyTable)
		for _, l := range PolicyStatusLines(pol) {
			fmt.Fprintf(stdout, "policy %s\n", l)
		}
	}
	path := filepath.Join(h.confDir, ConflistName)
	if _, err := os.Lstat(path); err == nil {
		fmt.Fprintf(stdout, "conflist %s\n", path)
	} else {
		fmt.Fprintf(stdout, "conflist %s: absent\n", path)
	}
	return nil
}
