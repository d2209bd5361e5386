package main

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePodSubnets(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"10.244.0.0/16", []string{"10.244.0.0/16"}, ""},
		{" 10.244.0.0/16 , 10.245.0.0/16 ", []string{"10.244.0.0/16", "10.245.0.0/16"}, ""},
		{"", nil, "POD_SUBNET: not set"},
		{"{{ .PodSubnet }}", nil, "unsubstituted template field"},
		{"fd00:10:244::/56", nil, "fd00:10:244::/56 is IPv6"},
		{"10.244.0.0/16,fd00::/64", nil, "fd00::/64 is IPv6"},
		{"10.244.0.0", nil, "not a network in CIDR notation"},
		{"10.244.1.5/16", nil, "did you mean 10.244.0.0/16"},
		{"10.244.0.0/16,", nil, "empty entry"},
		{"10.244.0.0/16,10.244.128.0/17", nil, "overlaps"},
		{"::ffff:10.0.0.0/104", nil, "not an IPv4 network"},
	}
	for _, c := range cases {
		got, err := ParsePodSubnets(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParsePodSubnets(%q) error = %v, want %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePodSubnets(%q): %v", c.in, err)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if strings.Join(gs, ",") != strings.Join(c.want, ",") {
			t.Errorf("ParsePodSubnets(%q) = %v, want %v", c.in, gs, c.want)
		}
	}
}

func TestParseNodeName(t *testing.T) {
	cases := []struct {
		in string
		ok bool
	}{
		{"kina-control-plane", true},
		{"node1.example", true},
		{"", false},
		{"Node1", false},
		{"-a", false},
		{"a/b", false},
		{strings.Repeat("a", 254), false},
	}
	for _, c := range cases {
		_, err := ParseNodeName(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseNodeName(%q) error = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"NODE_NAME": "n1", "POD_SUBNET": "10.244.0.0/16"}
	cfg, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.NodeName != "n1" || len(cfg.PodSubnets) != 1 || cfg.PodSubnets[0] != netip.MustParsePrefix("10.244.0.0/16") {
		t.Fatalf("LoadConfig = %+v, %v", cfg, err)
	}
	delete(env, "NODE_NAME")
	if _, err := LoadConfig(func(k string) string { return env[k] }); err == nil || !strings.HasPrefix(err.Error(), "NODE_NAME:") {
		t.Fatalf("LoadConfig without NODE_NAME: %v", err)
	}
}
