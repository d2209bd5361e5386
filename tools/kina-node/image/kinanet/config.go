package main

// config.go: the environment kina-net reads (NODE_NAME, POD_SUBNET), checked.

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Version is the tag of the kina-net image the manifest names
// (kina.local/kina-net:<Version>); a test checks the two agree.
const Version = "v0.1.0"

// Exit codes, the same table as kina's common/include/kina/exit.hpp.
const (
	exitOK          = 0
	exitUsage       = 64
	exitDataErr     = 65
	exitNoInput     = 66
	exitUnavailable = 69
	exitOSErr       = 71
	exitCantCreate  = 73
	exitTempFail    = 75
	exitConfig      = 78
)

// Config is what one kina-net process works with.
type Config struct {
	NodeName   string
	PodSubnets []netip.Prefix
}

var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ParseNodeName checks NODE_NAME: a Kubernetes node name (DNS-1123 subdomain).
func ParseNodeName(v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("NODE_NAME: not set (the DaemonSet sets it from spec.nodeName)")
	}
	if len(v) > 253 || !dns1123Subdomain.MatchString(v) {
		return "", fmt.Errorf("NODE_NAME: %q is not a valid node name (lower-case DNS-1123 subdomain, at most 253 characters)", v)
	}
	return v, nil
}

// ParsePodSubnets checks POD_SUBNET: comma-separated IPv4 networks. IPv6 is
// refused by name (not supported in this version), as is a template field the
// cluster create did not substitute.
func ParsePodSubnets(v string) ([]netip.Prefix, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, fmt.Errorf("POD_SUBNET: not set (the cluster create substitutes the cluster's pod subnet into the manifest)")
	}
	if strings.Contains(v, "{{") {
		return nil, fmt.Errorf("POD_SUBNET: %q is an unsubstituted template field: the cluster create must render the manifest", v)
	}
	var out []netip.Prefix
	for _, part := range strings.Split(v, ",") {
		s := strings.TrimSpace(part)
		if s == "" {
			return nil, fmt.Errorf("POD_SUBNET: %q has an empty entry", v)
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("POD_SUBNET: %q is not a network in CIDR notation", s)
		}
		if p.Addr().Is6() && !p.Addr().Is4In6() {
			return nil, fmt.Errorf("POD_SUBNET: %s is IPv6: kina-net supports IPv4 pod subnets only in this version", s)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("POD_SUBNET: %s is not an IPv4 network", s)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("POD_SUBNET: %s is not a network address (did you mean %s?)", s, p.Masked())
		}
		for _, q := range out {
			if q.Overlaps(p) {
				return nil, fmt.Errorf("POD_SUBNET: %s overlaps %s", p, q)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// LoadConfig reads the environment through getenv.
func LoadConfig(getenv func(string) string) (Config, error) {
	name, err := ParseNodeName(getenv("NODE_NAME"))
	if err != nil {
		return Config{}, err
	}
	subnets, err := ParsePodSubnets(getenv("POD_SUBNET"))
	if err != nil {
		return Config{}, err
	}
	return Config{NodeName: name, PodSubnets: subnets}, nil
}
