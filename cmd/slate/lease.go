package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"slate/api"
	"slate/dhcp"
)

func leaseCommands() *command {
	return &command{name: "lease", summary: "DHCP leases and pool usage", subs: []*command{
		{name: "list", summary: "list DHCP leases, with each pool's usage and any rogue DHCP server", run: leaseList},
	}}
}

func leaseList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "lease list", "slate lease list [--interface I] [--mac M] [--state S] [--json]")
	server, asJSON := apiFlags(fs)
	iface := fs.String("interface", "", "only leases on this interface")
	mac := fs.String("mac", "", "only the lease of this MAC")
	state := fs.String("state", "", "only leases in this state ("+strings.Join(dhcp.ListStates(), ", ")+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	v := url.Values{}
	for k, s := range map[string]string{"interface": *iface, "mac": *mac, "state": *state} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if *asJSON {
		var raw json.RawMessage
		if err := c.do(ctx, "GET", "/leases", v, nil, &raw); err != nil {
			return err
		}
		_, err := env.stdout.Write(append(raw, '\n'))
		return err
	}
	var out api.LeaseList
	if err := c.do(ctx, "GET", "/leases", v, nil, &out); err != nil {
		return err
	}
	var st api.DHCPStatus
	if err := c.do(ctx, "GET", "/dhcp/status", nil, nil, &st); err != nil {
		return err
	}
	for _, w := range st.Warnings {
		fmt.Fprintln(env.stderr, "warning:", w)
	}
	for _, i := range st.Interfaces {
		if *iface != "" && i.Name != *iface {
			continue
		}
		for _, p := range i.Pools {
			warn := ""
			if p.Warning {
				warn = "  NEARLY EXHAUSTED"
			}
			fmt.Fprintf(env.stdout, "pool %s on %s: %d of %d used (%.0f %%), %d free, %d kept for known machines, %d fixed%s\n",
				p.Range, i.Name, p.Used, p.Size, p.Percent, p.Free, p.Reserve, p.Fixed, warn)
		}
		for _, r := range i.RogueServers {
			fmt.Fprintf(env.stdout, "ROGUE DHCP server on %s: %s (from %s, offered %s)\n", i.Name, r.ServerID, r.From, dash(r.OfferedIP))
		}
	}
	tw := table(env.stdout)
	fmt.Fprintln(tw, "IP\tMAC\tHOSTNAME\tSTATE\tINTERFACE\tEXPIRES")
	for _, l := range out.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.IP, dash(l.MAC), dash(l.Hostname), l.State, l.Interface,
			l.ExpiresAt.Local().Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
	fmt.Fprintf(env.stdout, "%d leases\n", out.Total)
	return nil
}
