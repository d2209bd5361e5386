package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

const conflistOne1500 = `{
  "cniVersion": "1.0.0",
  "name": "kina",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "ranges": [
          [
            {
              "subnet": "10.244.1.0/24"
            }
          ]
        ],
        "routes": [
          {
            "dst": "0.0.0.0/0"
          }
        ]
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`

func TestConflist(t *testing.T) {
	cases := []struct {
		name    string
		cidrs   []netip.Prefix
		mtu     int
		check   func(t *testing.T, out string)
		wantErr string
	}{
		{"one cidr, mtu", prefixes("10.244.1.0/24"), 1500, func(t *testing.T, out string) {
			if out != conflistOne1500 {
				t.Errorf("got\n%s\nwant\n%s", out, conflistOne1500)
			}
		}, ""},
		{"no mtu", prefixes("10.244.1.0/24"), 0, func(t *testing.T, out string) {
			if strings.Contains(out, "mtu") {
				t.Errorf("mtu 0 must be left out:\n%s", out)
			}
		}, ""},
		{"two cidrs", prefixes("10.244.1.0/24", "10.250.3.0/24"), 9000, func(t *testing.T, out string) {
			var v struct {
				Plugins []struct {
					MTU  int
					IPAM struct {
						Ranges [][]struct{ Subnet string }
					}
				}
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatal(err)
			}
			r := v.Plugins[0].IPAM.Ranges
			if len(r) != 2 || r[0][0].Subnet != "10.244.1.0/24" || r[1][0].Subnet != "10.250.3.0/24" || v.Plugins[0].MTU != 9000 {
				t.Errorf("ranges/mtu wrong: %+v", v)
			}
		}, ""},
		{"none", nil, 1500, nil, "no pod CIDR"},
		{"ipv6", prefixes("fd00::/64"), 1500, nil, "not IPv4"},
		{"bad mtu", prefixes("10.244.1.0/24"), 70000, nil, "mtu"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Conflist(c.cidrs, c.mtu)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("not JSON: %s", out)
			}
			c.check(t, string(out))
		})
	}
}

func TestWriteFileIfChanged(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, ConflistName)
	wrote, err := WriteFileIfChanged(dir, ConflistName, []byte("a\n"))
	if err != nil || !wrote {
		t.Fatalf("first write: %v %v", wrote, err)
	}
	st1, _ := os.Stat(target)
	if st1.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st1.Mode().Perm())
	}
	wrote, err = WriteFileIfChanged(dir, ConflistName, []byte("a\n"))
	if err != nil || wrote {
		t.Fatalf("same content must not be rewritten: %v %v", wrote, err)
	}
	st2, _ := os.Stat(target)
	if !os.SameFile(st1, st2) {
		t.Fatal("file replaced although content was the same")
	}
	wrote, err = WriteFileIfChanged(dir, ConflistName, []byte("b\n"))
	if err != nil || !wrote {
		t.Fatalf("changed content: %v %v", wrote, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "b\n" {
		t.Fatalf("content %q", b)
	}
	// A symlink at the target is replaced, never written through.
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o600)
	os.Remove(target)
	os.Symlink(victim, target)
	if _, err := WriteFileIfChanged(dir, ConflistName, []byte("c\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatal("wrote through a symlink")
	}
	if st, _ := os.Lstat(target); !st.Mode().IsRegular() {
		t.Fatal("symlink not replaced by a file")
	}
	// Same bytes but another mode: rewritten with 0644.
	os.Chmod(target, 0o600)
	if wrote, _ := WriteFileIfChanged(dir, ConflistName, []byte("c\n")); !wrote {
		t.Fatal("wrong mode not repaired")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left files behind: %v", entries)
	}
	if _, err := WriteFileIfChanged(filepath.Join(dir, "missing"), ConflistName, []byte("x")); err == nil {
		t.Fatal("missing dir accepted")
	}
}

func TestSweepTemp(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "99-other.conflist"), []byte("{}"), 0o644)
	removed, err := SweepTemp(dir)
	if err != nil || len(removed) != 1 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "99-other.conflist")); err != nil {
		t.Fatal("swept a file that is not kina-net's")
	}
}
