package main

// policy_nft.go: PolicyRules as the nftables table `ip kina-net-policy`
// (separate from the masquerade table), as data; and a text form of
// expressions, the same for the wanted rules and for what the kernel lists,
// to tell whether the kernel's table is the wanted one. No side effects.
//
// The table:
//   chain forward  (filter hook forward priority 0, policy accept)
//   chain input    (filter hook input priority 0, policy accept)
//     ct state established,related accept
//     ip saddr POD jump egress-POD     (each egress-isolated pod of this node)
//     ip daddr POD jump ingress-POD    (forward only: each ingress-isolated pod)
//   chain ingress-POD / egress-POD
//     <peer> <port> return             (one per allowed peer and port)
//     drop
// A packet between two pods of this node passes both the sender's egress
// chain and the receiver's ingress chain (an allowed packet returns to the
// base chain). Traffic the node itself sends to a pod takes the output hook
// and is never filtered (NetworkPolicy always allows a pod's own node);
// input only holds the egress jumps (a pod's traffic to its node's
// addresses).

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"syscall"
)

// Names of the policy table and its base chains.
const (
	NftPolicyTable = "kina-net-policy"
)

// NftPolicyRule is one rule: its expressions and its comment.
type NftPolicyRule struct {
	Exprs   []expr.Any
	Comment string
}

// NftPolicyChain is one chain of the policy table; Hook nil for a regular
// chain (a jump target).
type NftPolicyChain struct {
	Name  string
	Hook  *nftables.ChainHook
	Rules []NftPolicyRule
}

var l4Numbers = map[string]byte{"tcp": syscall.IPPROTO_TCP, "udp": syscall.IPPROTO_UDP, "sctp": syscall.IPPROTO_SCTP}

// addrMatch: ip saddr/daddr (op) prefix.
func addrMatch(daddr bool, p netip.Prefix, op expr.CmpOp) []expr.Any {
	off := uint32(12)
	if daddr {
		off = 16
	}
	ex := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}}
	p = p.Masked()
	if p.Bits() < 32 {
		mask := make([]byte, 4)
		binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
		ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
	}
	a := p.Addr().As4()
	return append(ex, &expr.Cmp{Op: op, Register: 1, Data: a[:]})
}

func portMatch(pm PortMatch) []expr.Any {
	if pm.Proto == "" {
		return nil
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4Numbers[pm.Proto]}},
	}
	if pm.From == 0 {
		return ex
	}
	ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	from := binary.BigEndian.AppendUint16(nil, pm.From)
	if pm.From == pm.To {
		return append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: from})
	}
	to := binary.BigEndian.AppendUint16(nil, pm.To)
	return append(ex, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: from, ToData: to})
}

// allowExprs: the expressions of one allow rule; the peer is the source
// (ingress) or the destination (egress).
func allowExprs(r AllowRule, egress bool) []expr.Any {
	var ex []expr.Any
	if !r.Peer.Any {
		ex = append(ex, addrMatch(egress, r.Peer.Net, expr.CmpOpEq)...)
		for _, e := range r.Peer.Except {
			ex = append(ex, addrMatch(egress, e, expr.CmpOpNeq)...)
		}
	}
	ex = append(ex, portMatch(r.Port)...)
	return append(ex, &expr.Verdict{Kind: expr.VerdictReturn})
}

func establishedExprs() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED),
			Xor:  make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// policyComment keeps a comment within what nftables stores (128 bytes).
func policyComment(s string) string {
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// PolicyChains is the policy table for rules, chain by chain, base chains
// first.
func PolicyChains(pr PolicyRules) []NftPolicyChain {
	est := NftPolicyRule{Exprs: establishedExprs(), Comment: "kina-net: replies and related traffic"}
	forward := NftPolicyChain{Name: "forward", Hook: nftables.ChainHookForward, Rules: []NftPolicyRule{est}}
	input := NftPolicyChain{Name: "input", Hook: nftables.ChainHookInput, Rules: []NftPolicyRule{est}}
	var per []NftPolicyChain
	for _, p := range pr.Pods {
		if p.EgressIsolated {
			name := "egress-" + p.IP.String()
			jump := NftPolicyRule{
				Exprs:   append(addrMatch(false, netip.PrefixFrom(p.IP, 32), expr.CmpOpEq), &expr.Verdict{Kind: expr.VerdictJump, Chain: name}),
				Comment: policyComment("kina-net: egress of " + p.Pod),
			}
			forward.Rules = append(forward.Rules, jump)
			input.Rules = append(input.Rules, jump)
			per = append(per, podChain(name, p, p.Egress, true))
		}
	}
	for _, p := range pr.Pods {
		if p.IngressIsolated {
			name := "ingress-" + p.IP.String()
			forward.Rules = append(forward.Rules, NftPolicyRule{
				Exprs:   append(addrMatch(true, netip.PrefixFrom(p.IP, 32), expr.CmpOpEq), &expr.Verdict{Kind: expr.VerdictJump, Chain: name}),
				Comment: policyComment("kina-net: ingress of " + p.Pod),
			})
			per = append(per, podChain(name, p, p.Ingress, false))
		}
	}
	return append([]NftPolicyChain{forward, input}, per...)
}

func podChain(name string, p PodFilter, rules []AllowRule, egress bool) NftPolicyChain {
	c := NftPolicyChain{Name: name}
	dir, policies := "from", p.IngressPolicies
	if egress {
		dir, policies = "to", p.EgressPolicies
	}
	for _, r := range rules {
		c.Rules = append(c.Rules, NftPolicyRule{Exprs: allowExprs(r, egress), Comment: policyComment("allow " + dir + " " + r.String())})
	}
	c.Rules = append(c.Rules, NftPolicyRule{
		Exprs:   []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}},
		Comment: policyComment("isolated by " + strings.Join(policies, ",")),
	})
	return c
}

// PolicyChainSpec is the text form of a chain's kind.
func PolicyChainSpec(name string, hook *nftables.ChainHook) string {
	if hook == nil {
		return "chain " + name
	}
	h := map[nftables.ChainHook]string{*nftables.ChainHookForward: "forward", *nftables.ChainHookInput: "input"}[*hook]
	if h == "" {
		h = fmt.Sprint(*hook)
	}
	return fmt.Sprintf("chain %s type filter hook %s priority 0 policy accept", name, h)
}

// ExprsText is a canonical text of expressions: their Go types and fields.
// The wanted rules and the rules listed back from the kernel give the same
// text when they are the same rule.
func ExprsText(ex []expr.Any) string {
	parts := make([]string, len(ex))
	for i, e := range ex {
		parts[i] = strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr.") + strings.TrimPrefix(fmt.Sprintf("%+v", e), "&")
	}
	return strings.Join(parts, " ")
}

// PolicyText is the text form of the wanted table: per chain its spec, then
// one line per rule (expressions and comment).
func PolicyText(chains []NftPolicyChain) []string {
	var out []string
	for _, c := range chains {
		out = append(out, PolicyChainSpec(c.Name, c.Hook))
		for _, r := range c.Rules {
			out = append(out, fmt.Sprintf("  %s comment %q", ExprsText(r.Exprs), r.Comment))
		}
	}
	return out
}

// PolicyStatusLines shortens PolicyText lines for --status: chain specs as
// they are, each rule as its comment.
func PolicyStatusLines(text []string) []string {
	out := make([]string, 0, len(text))
	for _, l := range text {
		if !strings.HasPrefix(l, "  ") {
			out = append(out, l)
			continue
		}
		c := "?"
		if i := strings.LastIndex(l, ` comment "`); i >= 0 {
			if s, err := strconv.Unquote(l[i+len(" comment "):]); err == nil && s != "" {
				c = s
			}
		}
		out = append(out, "  "+c)
	}
	return out
}
