package main

// cni.go: the CNI conflist kina-net writes for its own node, and the atomic
// write that puts it in place only when its content changes.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ConflistName is the file kina-net owns in the CNI config directory.
const ConflistName = "10-kina.conflist"

// IPAMStateDir is host-local's lease directory: under /run, so leases do not
// outlive a reboot of the node (kindnetd does the same).
const IPAMStateDir = "/run/cni-ipam-state"

type cniRange struct {
	Subnet string `json:"subnet"`
}
type cniRoute struct {
	Dst string `json:"dst"`
}
type cniIPAM struct {
	Type    string       `json:"type"`
	DataDir string       `json:"dataDir"`
	Ranges  [][]cniRange `json:"ranges"`
	Routes  []cniRoute   `json:"routes"`
}
type cniPlugin struct {
	Type         string          `json:"type"`
	IPMasq       *bool           `json:"ipMasq,omitempty"`
	MTU          int             `json:"mtu,omitempty"`
	IPAM         *cniIPAM        `json:"ipam,omitempty"`
	Capabilities map[string]bool `json:"capabilities,omitempty"`
}
type cniConflist struct {
	CNIVersion string      `json:"cniVersion"`
	Name       string      `json:"name"`
	Plugins    []cniPlugin `json:"plugins"`
}

// Conflist renders the conflist for a node's IPv4 pod CIDRs: ptp (no
// masquerade: kina-net's nftables table does it; mtu of the default-route
// interface, left out when 0) with host-local IPAM and a default route, then
// portmap for hostPort mappings.
func Conflist(podCIDRs []netip.Prefix, mtu int) ([]byte, error) {
	if len(podCIDRs) == 0 {
		return nil, errors.New("no pod CIDR")
	}
	if mtu < 0 || mtu > 65535 {
		return nil, fmt.Errorf("mtu %d out of range", mtu)
	}
	ranges := make([][]cniRange, 0, len(podCIDRs))
	for _, p := range podCIDRs {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("pod CIDR %s is not IPv4", p)
		}
		ranges = append(ranges, []cniRange{{Subnet: p.Masked().String()}})
	}
	f := false
	c := cniConflist{
		CNIVersion: "1.0.0",
		Name:       "kina",
		Plugins: []cniPlugin{
			{
				Type:   "ptp",
				IPMasq: &f,
				MTU:    mtu,
				IPAM: &cniIPAM{
					Type:    "host-local",
					DataDir: IPAMStateDir,
					Ranges:  ranges,
					Routes:  []cniRoute{{Dst: "0.0.0.0/0"}},
				},
			},
			{Type: "portmap", Capabilities: map[string]bool{"portMappings": true}},
		},
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// tempPrefix names kina-net's temporary files: the extension is not one the
// CNI loaders read (.conf, .conflist, .json), so a half-written file is never
// taken as a config.
const tempPrefix = "." + ConflistName + ".tmp-"

const maxConflistBytes = 1 << 20

// readBounded reads path without following a symlink, at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// WriteFileIfChanged puts data at dir/name (mode 0644) through a temporary
// file, fsync and rename, then fsyncs dir; it does nothing when the file
// already holds data. A symlink or a non-regular file at the target is
// replaced, never written through. Reports whether it wrote.
func WriteFileIfChanged(dir, name string, data []byte) (bool, error) {
	target := filepath.Join(dir, name)
	if old, err := readBounded(target, maxConflistBytes); err == nil && bytes.Equal(old, data) {
		if st, err := os.Lstat(target); err == nil && st.Mode().Perm() == 0o644 {
			return false, nil
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("%s: not a directory", dir)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return false, err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		os.Remove(tmp.Name())
		done = true
		return false, err
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}

// SweepTemp removes temporary files a killed kina-net left in dir.
func SweepTemp(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				removed = append(removed, e.Name())
			}
		}
	}
	return removed, nil
}
