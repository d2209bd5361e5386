package main

// nft.go: the masquerade rules of table `ip kina-net`, as data (NftRule),
// their text form, their nftables expressions, and the way back from the
// expressions the kernel lists to the text (to compare the kernel's state with
// the wanted one). No side effects here.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"syscall"
)

// Names of kina-net's nftables objects.
const (
	NftTable = "kina-net"
	NftChain = "postrouting"
)

// NftChainSpec is the text form of the base chain kina-net wants.
const NftChainSpec = "chain postrouting type nat hook postrouting priority 100 policy accept"

// NftRule is one rule of kina-net's postrouting chain.
type NftRule struct {
	Match   string       // "daddr" or "saddr" (Prefix), or "fib-daddr-local"
	Prefix  netip.Prefix // for daddr/saddr
	Verdict string       // "return" or "masquerade"
	Comment string
}

// MasqRules is the rule set, kindnetd's behaviour in nftables form: packets
// to a pod subnet keep their source (pod to pod); packets to an address of
// this node are not touched (kindnetd: addrtype ! LOCAL); every other packet
// from a pod subnet is masqueraded to the address of the interface it leaves
// by (pods reach other nodes, the host and the outside through the node's
// address). Packets not from a pod subnet are left alone.
func MasqRules(podSubnets []netip.Prefix) []NftRule {
	var rules []NftRule
	for _, p := range podSubnets {
		rules = append(rules, NftRule{Match: "daddr", Prefix: p, Verdict: "return", Comment: "kina-net: to pods, no masquerade"})
	}
	rules = append(rules, NftRule{Match: "fib-daddr-local", Verdict: "return", Comment: "kina-net: to this node, no masquerade"})
	for _, p := range podSubnets {
		rules = append(rules, NftRule{Match: "saddr", Prefix: p, Verdict: "masquerade", Comment: "kina-net: pods to elsewhere, masquerade"})
	}
	return rules
}

// String is the rule in nft's list syntax.
func (r NftRule) String() string {
	var b strings.Builder
	switch r.Match {
	case "daddr", "saddr":
		fmt.Fprintf(&b, "ip %s %s ", r.Match, prefixText(r.Prefix))
	case "fib-daddr-local":
		b.WriteString("fib daddr type local ")
	default:
		b.WriteString("? ")
	}
	b.WriteString(r.Verdict)
	if r.Comment != "" {
		fmt.Fprintf(&b, " comment %q", r.Comment)
	}
	return b.String()
}

func prefixText(p netip.Prefix) string {
	if p.Bits() == 32 {
		return p.Addr().String()
	}
	return p.String()
}

// NftText is the text form of the wanted chain: its spec, then one line per rule.
func NftText(rules []NftRule) []string {
	out := []string{NftChainSpec}
	for _, r := range rules {
		out = append(out, r.String())
	}
	return out
}

// NftExprs gives the nftables expressions of one rule.
func NftExprs(r NftRule) ([]expr.Any, error) {
	var ex []expr.Any
	switch r.Match {
	case "daddr", "saddr":
		if !r.Prefix.Addr().Is4() {
			return nil, fmt.Errorf("nft rule: %s is not IPv4", r.Prefix)
		}
		off := uint32(16)
		if r.Match == "saddr" {
			off = 12
		}
		ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4})
		p := r.Prefix.Masked()
		if p.Bits() < 32 {
			mask := make([]byte, 4)
			binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
			ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
		}
		a := p.Addr().As4()
		ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
	case "fib-daddr-local":
		ex = append(ex,
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nativeUint32(syscall.RTN_LOCAL)})
	default:
		return nil, fmt.Errorf("nft rule: unknown match %q", r.Match)
	}
	switch r.Verdict {
	case "return":
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictReturn})
	case "masquerade":
		ex = append(ex, &expr.Masq{})
	default:
		return nil, fmt.Errorf("nft rule: unknown verdict %q", r.Verdict)
	}
	return ex, nil
}

// NftUserData carries the rule's comment the way nft stores it.
func NftUserData(r NftRule) []byte {
	if r.Comment == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, r.Comment)
}

func nativeUint32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

// NftRuleText turns expressions listed from the kernel back into the text of
// String; expressions kina-net never writes come out as "?" so that a table
// changed by hand never compares equal to the wanted one.
func NftRuleText(ex []expr.Any, udata []byte) string {
	var b strings.Builder
	i := 0
	next := func() expr.Any {
		if i < len(ex) {
			i++
			return ex[i-1]
		}
		return nil
	}
	switch e := next().(type) {
	case *expr.Payload:
		name := map[uint32]string{12: "saddr", 16: "daddr"}[e.Offset]
		if e.Base != expr.PayloadBaseNetworkHeader || e.Len != 4 || name == "" || e.DestRegister != 1 {
			return "?"
		}
		bits := 32
		n := next()
		if bw, ok := n.(*expr.Bitwise); ok {
			if len(bw.Mask) != 4 || !bytes.Equal(bw.Xor, make([]byte, 4)) {
				return "?"
			}
			m := binary.BigEndian.Uint32(bw.Mask)
			bits = 0
			for bits < 32 && m&(1<<(31-bits)) != 0 {
				bits++
			}
			if m != ^uint32(0)<<(32-bits) && bits != 32 {
				return "?"
			}
			if bits == 0 && m != 0 {
				return "?"
			}
			n = next()
		}
		c, ok := n.(*expr.Cmp)
		if !ok || c.Op != expr.CmpOpEq || len(c.Data) != 4 {
			return "?"
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte(c.Data)), bits)
		fmt.Fprintf(&b, "ip %s %s ", name, prefixText(p))
	case *expr.Fib:
		if !e.FlagDADDR || !e.ResultADDRTYPE || e.FlagSADDR || e.FlagIIF || e.FlagOIF || e.FlagMARK {
			return "?"
		}
		c, ok := next().(*expr.Cmp)
		if !ok || c.Op != expr.CmpOpEq || !bytes.Equal(c.Data, nativeUint32(syscall.RTN_LOCAL)) {
			return "?"
		}
		b.WriteString("fib daddr type local ")
	default:
		return "?"
	}
	switch e := next().(type) {
	case *expr.Verdict:
		if e.Kind != expr.VerdictReturn {
			return "?"
		}
		b.WriteString("return")
	case *expr.Masq:
		if e.Random || e.FullyRandom || e.Persistent || e.ToPorts {
			return "?"
		}
		b.WriteString("masquerade")
	default:
		return "?"
	}
	if i != len(ex) {
		return "?"
	}
	if c, ok := userdata.GetString(udata, userdata.TypeComment); ok && c != "" {
		fmt.Fprintf(&b, " comment %q", c)
	}
	return b.String()
}

// NftChainText is the text form of a chain listed from the kernel.
func NftChainText(c *nftables.Chain) string {
	if c == nil || c.Hooknum == nil || c.Priority == nil {
		return "?"
	}
	hook := map[nftables.ChainHook]string{*nftables.ChainHookPostrouting: "postrouting"}[*c.Hooknum]
	if hook == "" {
		hook = fmt.Sprint(*c.Hooknum)
	}
	policy := "accept"
	if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop {
		policy = "drop"
	}
	return fmt.Sprintf("chain %s type %s hook %s priority %d policy %s", c.Name, c.Type, hook, *c.Priority, policy)
}
