// Package agent is what runs on a machine: the deploy environment's PID 1 (network up, talk
// to Slate, run tasks) and node mode on an installed OS. Tasks are pluggable Runners in a
// Registry, keyed by agentproto.TaskKind: a new kind adds its runner without touching the loop,
// and its params and result structs in agentproto, which Slate encodes them from.
package agent

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// BootConfig is what the per-machine iPXE script put on the kernel command line.
type BootConfig struct {
	URL     string // slate.url: http(s) base of Slate, e.g. http://10.99.0.1:8080
	Token   string // slate.token: per-boot agent token
	Machine string // slate.machine: the machine id Slate expects us to be
	Debug   bool   // slate.debug
	// Media (slate.media): booted from Slate's deploy ISO, which carries no token; the agent
	// asks Slate for one by MAC once its network is up (MediaToken).
	Media bool
}

// ParseCmdline reads slate.* parameters from a kernel command line (/proc/cmdline). Values may
// be double-quoted, as the kernel allows. A missing url or token is an error that says what the
// iPXE script must pass.
func ParseCmdline(cmdline string) (BootConfig, error) {
	var c BootConfig
	for _, f := range splitCmdline(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "slate.url":
			c.URL = strings.TrimRight(v, "/")
		case "slate.token":
			c.Token = v
		case "slate.machine":
			c.Machine = v
		case "slate.media":
			c.Media = v == "" || v == "1" || v == "true"
		case "slate.debug":
			c.Debug = v == "" || v == "1" || v == "true"
		}
	}
	var missing []string
	if c.URL == "" {
		missing = append(missing, "slate.url")
	}
	if c.Token == "" && !c.Media {
		missing = append(missing, "slate.token")
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("kernel command line lacks %s: the boot script must pass slate.url=<http base of Slate> slate.token=<agent token> (or slate.media, from Slate's deploy ISO)", strings.Join(missing, " and "))
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("slate.url=%q is not an http(s) URL with a host", c.URL)
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return c, errors.New("slate.token contains white space")
	}
	return c, nil
}

// splitCmdline splits on blanks outside double quotes and drops the quotes, as the kernel does.
func splitCmdline(s string) []string {
	var out []string
	var b strings.Builder
	inQ, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQ, have = !inQ, true
		case !inQ && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if have {
				out = append(out, b.String())
				b.Reset()
				have = false
			}
		default:
			b.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, b.String())
	}
	return out
}
