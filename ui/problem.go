package ui

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// problem is a failure as a technician reads it: one plain sentence that says what is wrong
// and what to check, and the error chain behind it (for whoever debugs it, in a <details>).
type problem struct {
	Plain  string
	Detail string // "" when Plain already is the whole message
}

// bmcCause is what an error chain says (any of needles, lower case) and what the technician
// should check then.
type bmcCause struct {
	needles []string
	says    string
}

// bmcCauses maps what a Go/Redfish error chain says to what the technician should check, most
// specific first. The match is on the text because the error reaches the page as text (a
// failure reason, an audit detail, the reconciler's explanation), not as an error value.
func bmcCauses() []bmcCause {
	return []bmcCause{
		{[]string{"fingerprint changed"}, "presented another TLS certificate than the one Slate pinned: if the BMC was replaced or its certificate renewed, re-pin it; otherwise something else answers at its address"},
		{[]string{"refused the credentials", "http 401", "http 403"}, "refused the user name or password: check the credentials and the account's role on the BMC"},
		{[]string{"no such host", "server misbehaving"}, "has a name that does not resolve (DNS): check the address"},
		{[]string{"connection refused"}, "refuses connections: check the address and port, and that Redfish is enabled on the BMC"},
		{[]string{"x509:", "tls:", "certificate"}, "does not speak the expected TLS: check that the address is the BMC's HTTPS port"},
		{[]string{"i/o timeout", "deadline exceeded", "no route to host", "network is unreachable", "host is unreachable", "timeout", "connection reset", "eof"},
			"does not answer: check address, VLAN and credentials"},
		{[]string{"http 500", "http 502", "http 503", "http 504"}, "reported an error of its own: retry in a few minutes; if it persists, reset the BMC"},
	}
}

// describe turns a message into a problem. A message about a BMC gets a plain sentence
// ("BMC at 10.0.0.21 does not answer: check address, VLAN and credentials"), what came before
// the BMC's error chain ("Not enrolled:", "BMC power-on failed:") kept in front, and the whole
// message as the detail. Any other message is shown as it is.
func describe(msg string) problem {
	// The BMC an error is about: the redfish client's "bmc ADDRESS: …" and lifecycle's
	// "BMC ADDRESS: …" (the address runs up to the colon before a space).
	loc := regexp.MustCompile(`(?i)\bbmc (\S+): `).FindStringSubmatchIndex(msg)
	if loc == nil {
		return problem{Plain: msg}
	}
	addr := msg[loc[2]:loc[3]]
	for _, p := range []string{"https://", "http://"} {
		addr = strings.TrimPrefix(addr, p)
	}
	addr = strings.TrimSuffix(addr, "/")
	// Only the chain is matched: the words before it are Slate's own.
	lower := strings.ToLower(msg[loc[0]:])
	says := "failed: the detail below says why; check the BMC's address, network and credentials"
	for _, c := range bmcCauses() {
		found := false
		for _, n := range c.needles {
			if strings.Contains(lower, n) {
				found = true
				break
			}
		}
		if found {
			says = c.says
			break
		}
	}
	plain := "BMC at " + addr + " " + says + "."
	if prefix := strings.TrimRight(msg[:loc[0]], " ("); prefix != "" {
		plain = prefix + " " + plain
	}
	return problem{Plain: plain, Detail: msg}
}

// detailText is one audit detail's value as text: strings as they are, anything else
// (numbers, lists, objects) as compact JSON.
func detailText(v any) string {
	switch x := v.(type) {
	case nil:
		return "—"
	case string:
		return x
	case []any:
		// A list of words (MACs, tags) reads as a list, not as JSON.
		words := make([]string, 0, len(x))
		for _, e := range x {
			w, ok := e.(string)
			if !ok {
				words = nil
				break
			}
			words = append(words, w)
		}
		if words != nil {
			return strings.Join(words, ", ")
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
