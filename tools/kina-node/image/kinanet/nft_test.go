package main

import (
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func TestMasqRules(t *testing.T) {
	cases := []struct {
		subnets []string
		want    []string
	}{
		{[]string{"10.244.0.0/16"}, []string{
			NftChainSpec,
			`ip daddr 10.244.0.0/16 return comment "kina-net: to pods, no masquerade"`,
			`fib daddr type local return comment "kina-net: to this node, no masquerade"`,
			`ip saddr 10.244.0.0/16 masquerade comment "kina-net: pods to elsewhere, masquerade"`,
		}},
		{[]string{"10.244.0.0/16", "10.250.0.0/16"}, []string{
			NftChainSpec,
			`ip daddr 10.244.0.0/16 return comment "kina-net: to pods, no masquerade"`,
			`ip daddr 10.250.0.0/16 return comment "kina-net: to pods, no masquerade"`,
			`fib daddr type local return comment "kina-net: to this node, no masquerade"`,
			`ip saddr 10.244.0.0/16 masquerade comment "kina-net: pods to elsewhere, masquerade"`,
			`ip saddr 10.250.0.0/16 masquerade comment "kina-net: pods to elsewhere, masquerade"`,
		}},
	}
	for _, c := range cases {
		got := NftText(MasqRules(prefixes(c.subnets...)))
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%v:\ngot\n%s\nwant\n%s", c.subnets, strings.Join(got, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// The expressions kina-net writes read back to the same text, which is how
// the daemon finds the kernel's table up to date.
func TestNftRoundTrip(t *testing.T) {
	rules := MasqRules(prefixes("10.244.0.0/16", "10.1.2.3/32", "0.0.0.0/0"))
	for _, r := range rules {
		ex, err := NftExprs(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := NftRuleText(ex, NftUserData(r)); got != r.String() {
			t.Errorf("round trip: got %q, want %q", got, r.String())
		}
	}
}

func TestNftRuleTextForeign(t *testing.T) {
	base, _ := NftExprs(NftRule{Match: "saddr", Prefix: prefixes("10.244.0.0/16")[0], Verdict: "masquerade"})
	cases := []struct {
		name string
		ex   []expr.Any
	}{
		{"empty", nil},
		{"counter", []expr.Any{&expr.Counter{}}},
		{"random masquerade", append(append([]expr.Any{}, base[:3]...), &expr.Masq{Random: true})},
		{"accept verdict", append(append([]expr.Any{}, base[:3]...), &expr.Verdict{Kind: expr.VerdictAccept})},
		{"trailing counter", append(append([]expr.Any{}, base...), &expr.Counter{})},
		{"other offset", append([]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 4}}, base[1:]...)},
		{"neq", append(append([]expr.Any{}, base[:2]...), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{10, 244, 0, 0}}, base[3])},
		{"holey mask", append([]expr.Any{base[0], &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 255, 0}, Xor: make([]byte, 4)}}, base[2:]...)},
		{"fib saddr", []expr.Any{&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nativeUint32(2)}, &expr.Verdict{Kind: expr.VerdictReturn}}},
	}
	for _, c := range cases {
		if got := NftRuleText(c.ex, nil); got != "?" {
			t.Errorf("%s: got %q, want ?", c.name, got)
		}
	}
}

func TestNftExprsErrors(t *testing.T) {
	if _, err := NftExprs(NftRule{Match: "daddr", Prefix: prefixes("fd00::/64")[0], Verdict: "return"}); err == nil {
		t.Error("IPv6 accepted")
	}
	if _, err := NftExprs(NftRule{Match: "oif", Verdict: "return"}); err == nil {
		t.Error("unknown match accepted")
	}
	if _, err := NftExprs(NftRule{Match: "fib-daddr-local", Verdict: "drop"}); err == nil {
		t.Error("unknown verdict accepted")
	}
}

func TestNftChainText(t *testing.T) {
	_, c := nftObjects()
	if got := NftChainText(c); got != NftChainSpec {
		t.Errorf("chain text %q, want %q", got, NftChainSpec)
	}
	drop := nftables.ChainPolicyDrop
	c.Policy = &drop
	if got := NftChainText(c); got == NftChainSpec {
		t.Error("drop policy compares equal")
	}
	if NftChainText(nil) != "?" {
		t.Error("nil chain")
	}
}
