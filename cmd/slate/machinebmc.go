package main

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"strings"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish"
)

const machineBMCUsage = `slate machine bmc <id|name> [--address A] [--user U] [--password-file F] [--vendor V] [--repin [--confirm-fingerprint SHA256]] [--json]

Change the BMC Slate drives a machine through: its address, user name, password, vendor
profile, and the TLS certificate pinned for it. Flags left out keep the stored value.

Slate first connects to the BMC with the new settings and shows the certificate it presents
beside the pinned one. A different certificate (a firmware update, a reset to defaults, a new
BMC) is pinned only with --repin and a confirmation that names it: typed on a terminal, or
--confirm-fingerprint with the fingerprint you checked on the BMC itself. The change is audited
(machine.bmc). A machine that failed because of its BMC can then be retried:
slate machine transition <machine> retry --reason "BMC re-pinned".`

// machineBMC changes a machine's BMC in two steps: probe (what does the BMC present now?), then
// store with the fingerprint the operator confirmed.
func machineBMC(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine bmc", machineBMCUsage)
	server, asJSON := apiFlags(fs)
	address := fs.String("address", "", "new BMC address, e.g. https://10.0.0.21 (default: keep)")
	user := fs.String("user", "", "new BMC user name (default: keep)")
	pwFile := fs.String("password-file", "", "file holding the new BMC password (default: keep the stored one)")
	vendor := fs.String("vendor", "", "new vendor profile: generic, openbmc, dell, hpe, supermicro, lenovo, sushy (default: keep)")
	repin := fs.Bool("repin", false, "pin the certificate the BMC presents now, if it differs from the pinned one (needs a confirmation)")
	confirm := fs.String("confirm-fingerprint", "", "with --repin: the new certificate's fingerprint as checked on the BMC (sha256:…); asked for on a terminal when not given")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	id, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	ch := lifecycle.BMCChange{Address: *address, Username: *user, VendorProfile: *vendor}
	if *pwFile != "" {
		if ch.Password, err = readSecret(env, *pwFile, ""); err != nil {
			return fmt.Errorf("reading the BMC password: %w", err)
		}
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	path := "/machines/" + url.PathEscape(id) + "/bmc"
	var p lifecycle.BMCProbe
	if err := c.do(ctx, "POST", path+"/probe", nil, ch, &p); err != nil {
		return fmt.Errorf("BMC of %s not changed: %w", id, err)
	}
	fmt.Fprintf(env.stderr, "BMC %s\n  pinned certificate:    %s\n  presented certificate: %s\n", p.Address, dash(p.Pinned), dash(p.Presented))
	if *confirm != "" && !*repin {
		return errUsage{"--confirm-fingerprint goes with --repin"}
	}
	if p.Changed {
		if !*repin {
			return fmt.Errorf("BMC of %s not changed: the BMC presents a different certificate (fingerprint %s, pinned %s): "+
				"if it was replaced on purpose, check the new fingerprint on the BMC itself, then run this again with --repin", id, dash(p.Presented), dash(p.Pinned))
		}
		got := *confirm
		if got == "" {
			if !isTerminal(env.stdin) {
				return fmt.Errorf("BMC of %s not changed: re-pinning needs a confirmation: check the fingerprint on the BMC itself, then give --confirm-fingerprint %s", id, p.Presented)
			}
			fmt.Fprintf(env.stderr, "Pin %s for %s? Check it on the BMC itself, then type yes: ", p.Presented, id)
			line, err := bufio.NewReader(env.stdin).ReadString('\n')
			if err != nil && line == "" || strings.TrimSpace(strings.ToLower(line)) != "yes" {
				return fmt.Errorf("BMC of %s not changed: not confirmed", id)
			}
			got = p.Presented
		}
		if redfish.NormalizeFingerprint(got) != p.Presented {
			return fmt.Errorf("BMC of %s not changed: --confirm-fingerprint %s is not the certificate the BMC presents (%s): "+
				"if the BMC shows %s, something else answers at %s", id, got, p.Presented, got, p.Address)
		}
		ch.TLSFingerprint = p.Presented
	} else if *address == "" && *user == "" && *pwFile == "" && *vendor == "" {
		fmt.Fprintf(env.stdout, "Nothing to change: the BMC of %s presents the pinned certificate.\n", id)
		return nil
	}
	var m inventory.Machine
	if err := c.do(ctx, "PUT", path, nil, ch, &m); err != nil {
		return fmt.Errorf("BMC of %s not changed: %w", id, err)
	}
	if *asJSON {
		return printJSON(env.stdout, m)
	}
	if m.BMC != nil {
		fmt.Fprintf(env.stdout, "BMC of %s: %s (%s, user %s), certificate %s", m.Name, m.BMC.Address, m.BMC.VendorProfile, m.BMC.Username, dash(m.BMC.TLSFingerprint))
		if p.Changed {
			fmt.Fprintf(env.stdout, " pinned (was %s)", dash(p.Pinned))
		}
		fmt.Fprintln(env.stdout, ".")
	}
	if m.State == lifecycle.Failed {
		fmt.Fprintf(env.stdout, "%s failed while %s (%s): once the cause is fixed, retry it: slate machine transition %s retry --reason \"BMC changed\"\n",
			m.Name, m.FailedFrom, m.FailedReason, m.Name)
	}
	return nil
}
