package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunCLI(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"kind":"PodList","items":[]}`), 0o644)
	good := map[string]string{"NODE_NAME": "n1", "POD_SUBNET": "10.244.0.0/16"}
	nodes := filepath.Join(dir, "nodes.json")
	os.WriteFile(nodes, []byte(`{"kind":"NodeList","items":[]}`), 0o644)
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"--help"}, nil, 0, "enforces NetworkPolicy", ""},
		{"help test inputs", []string{"--help"}, nil, 0, "--objects-file FILE", ""},
		{"objects-file without nodes-file", []string{"--once", "--objects-file", bad}, good, 64, "", "--objects-file: only with --once and --nodes-file"},
		{"objects-file and no-network-policy", []string{"--once", "--nodes-file", bad, "--objects-file", bad, "--no-network-policy"}, good, 64, "", "give one of them"},
		{"version", []string{"--version"}, nil, 0, "kina-net " + Version, ""},
		{"unknown option", []string{"--bogus"}, nil, 64, "", "kina-net: error: unknown option: --bogus"},
		{"argument", []string{"extra"}, nil, 64, "", `unexpected argument "extra"`},
		{"nodes-file without once", []string{"--nodes-file", bad}, good, 64, "", "--nodes-file: only with --once"},
		{"no env", []string{"--once", "--nodes-file", bad}, map[string]string{}, 78, "", "kina-net: error: NODE_NAME: not set"},
		{"ipv6", []string{"--once", "--nodes-file", bad}, map[string]string{"NODE_NAME": "n1", "POD_SUBNET": "fd00::/56"}, 78, "", "POD_SUBNET: fd00::/56 is IPv6"},
		{"conf dir missing", []string{"--once", "--nodes-file", bad, "--cni-conf-dir", filepath.Join(dir, "nope")}, good, 66, "", "not a directory"},
		{"nodes file missing", []string{"--once", "--nodes-file", filepath.Join(dir, "nope.json"), "--cni-conf-dir", dir}, good, 66, "", "no such file"},
		{"nodes file wrong kind", []string{"--once", "--nodes-file", bad, "--cni-conf-dir", dir}, good, 65, "", `kind "PodList" is not NodeList`},
		{"objects file missing", []string{"--once", "--nodes-file", nodes, "--objects-file", filepath.Join(dir, "nope.json"), "--cni-conf-dir", dir}, good, 66, "", "--objects-file"},
		{"objects file wrong kind", []string{"--once", "--nodes-file", nodes, "--objects-file", bad, "--cni-conf-dir", dir}, good, 65, "", `kind "PodList" is not List`},
		{"kubeconfig missing", []string{"--once", "--kubeconfig", filepath.Join(dir, "kc"), "--cni-conf-dir", dir}, good, 66, "", "--kubeconfig"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, func(k string) string { return c.env[k] }, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errb.String())
			}
			if !strings.Contains(out.String(), c.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), c.stdout)
			}
			if !strings.Contains(errb.String(), c.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), c.stderr)
			}
			if c.code != 0 && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("error is not one line: %q", errb.String())
			}
		})
	}
}

func TestParseNodeList(t *testing.T) {
	nodes, err := ParseNodeList([]byte(`{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"a"},"spec":{"podCIDRs":["10.244.1.0/24"]}}]}`))
	if err != nil || len(nodes) != 1 || nodes[0].Spec.PodCIDRs[0] != "10.244.1.0/24" {
		t.Fatalf("%v %v", nodes, err)
	}
	for _, bad := range []string{`[]`, `{"kind":"NodeList","items":[{"metadata":{}}]}`, `{`} {
		if _, err := ParseNodeList([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
