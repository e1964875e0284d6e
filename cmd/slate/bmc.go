package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"slate/redfish"
)

// bmcCommands talk to a BMC directly, without the appliance: for checking an address and
// credentials before enrolling, and for an operator at the rack when the appliance is down.
func bmcCommands() *command {
	return &command{name: "bmc", summary: "talk to a BMC directly over Redfish (probe, power, boot)", subs: []*command{
		{name: "probe", summary: "read a BMC's system, NICs, firmware and certificate fingerprint (and every system behind it, where it has several)", run: bmcProbe},
		{name: "power", summary: "power a machine on, off, cycle it, or show its state", usage: "on|off|cycle|status", run: bmcPower},
		{name: "boot", summary: "set a one-time boot override (pxe, http, cd, disk)", run: bmcBoot},
	}}
}

type bmcFlags struct {
	address, user, passwordFile, vendor, fingerprint, system *string
	timeout                                                  *time.Duration
}

func addBMCFlags(fs *flag.FlagSet) bmcFlags {
	return bmcFlags{
		address:      fs.String("address", "", "BMC address: host, host:port or https://host:port"),
		user:         fs.String("user", "", "BMC user name"),
		passwordFile: fs.String("password-file", "", "file holding the BMC password (else $SLATE_BMC_PASSWORD)"),
		vendor:       fs.String("vendor", "auto", "vendor profile: auto, generic, openbmc, dell, hpe, supermicro, lenovo, sushy"),
		fingerprint:  fs.String("fingerprint", "", "pinned TLS fingerprint (sha256:…); empty trusts the certificate presented now"),
		timeout:      fs.Duration("timeout", 20*time.Second, "timeout of one request"),
		system:       fs.String("system", "", "computer system by URI or id, where the BMC has several (blades, multi-node); empty: the first"),
	}
}

func (f bmcFlags) connect(ctx context.Context, env *cliEnv) (*redfish.Client, error) {
	if *f.address == "" || *f.user == "" {
		return nil, errors.New("--address and --user are required")
	}
	password := env.getenv("SLATE_BMC_PASSWORD")
	if *f.passwordFile != "" {
		b, err := os.ReadFile(*f.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("reading the BMC password: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	if password == "" {
		return nil, errors.New("no BMC password: give --password-file or set SLATE_BMC_PASSWORD")
	}
	v, err := redfish.VendorByName(*f.vendor)
	if err != nil {
		return nil, err
	}
	c, err := redfish.Connect(ctx, redfish.Config{Address: *f.address, Username: *f.user, Password: password, Vendor: v,
		Fingerprint: *f.fingerprint, System: *f.system, Timeout: *f.timeout, Logger: newLogger("text", "warn")})
	if err != nil {
		return nil, err
	}
	if *f.fingerprint == "" && c.Fingerprint() != "" {
		fmt.Fprintf(env.stderr, "trusting the certificate on first use: %s (pass it as --fingerprint from now on)\n", c.Fingerprint())
	}
	return c, nil
}

func bmcProbe(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "bmc probe", "slate bmc probe --address A --user U [--password-file F] [--vendor V] [--fingerprint FP]")
	f := addBMCFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := f.connect(ctx, env)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	inv, err := c.Inventory(ctx)
	if err != nil {
		return err
	}
	fw, err := c.Firmware(ctx)
	if err != nil {
		fmt.Fprintln(env.stderr, "firmware inventory unavailable:", err)
	}
	// a blade chassis or multi-node server: list every system, so the one to enroll
	// (slate machine enroll --system ID) can be chosen
	systems, err := c.Systems(ctx, false)
	if err != nil {
		fmt.Fprintln(env.stderr, "computer systems unavailable:", err)
	}
	if len(systems) < 2 {
		systems = nil
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		redfish.Inventory
		Firmware []redfish.Firmware   `json:"firmware,omitempty"`
		Systems  []redfish.SystemInfo `json:"systems,omitempty"`
	}{inv, fw, systems})
}

func bmcPower(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "bmc power", "slate bmc power --address A --user U [flags] [--force] on|off|cycle|status")
	f := addBMCFlags(fs)
	force := fs.Bool("force", false, "power a running machine off or cycle it (interrupts what runs there)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage{"give one of on, off, cycle, status"}
	}
	c, err := f.connect(ctx, env)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	switch fs.Arg(0) {
	case "off", "cycle":
		if err := refuseRunning(ctx, c, *force, "power "+fs.Arg(0)); err != nil {
			return err
		}
	}
	switch fs.Arg(0) {
	case "on":
		err = c.PowerOn(ctx)
	case "off":
		err = c.PowerOff(ctx)
	case "cycle":
		err = c.PowerCycle(ctx)
	case "status":
	default:
		return errUsage{fmt.Sprintf("unknown power action %q: give on, off, cycle or status", fs.Arg(0))}
	}
	if err != nil {
		return err
	}
	st, err := c.PowerState(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, st)
	return nil
}

func bmcBoot(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "bmc boot", "slate bmc boot --address A --user U --target pxe|http|cd|disk [--mode uefi|legacy] [--uri U] [--now]")
	f := addBMCFlags(fs)
	target := fs.String("target", "pxe", "pxe, http (UEFI HTTP), cd or disk")
	mode := fs.String("mode", "", "uefi or legacy (empty keeps the current mode)")
	uri := fs.String("uri", "", "UEFI HTTP boot URI, where the BMC supports HttpBootUri")
	now := fs.Bool("now", false, "power the machine on into the override (a running one only with --force)")
	force := fs.Bool("force", false, "with --now: restart a running machine into the override (interrupts what runs there)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	targets := map[string]redfish.BootTarget{"pxe": redfish.BootPXE, "http": redfish.BootHTTP, "cd": redfish.BootCD, "disk": redfish.BootDisk}
	modes := map[string]redfish.BootMode{"": "", "uefi": redfish.ModeUEFI, "legacy": redfish.ModeLegacy}
	t, ok := targets[strings.ToLower(*target)]
	if !ok {
		return errUsage{fmt.Sprintf("unknown boot target %q: give pxe, http, cd or disk", *target)}
	}
	m, ok := modes[strings.ToLower(*mode)]
	if !ok {
		return errUsage{fmt.Sprintf("unknown boot mode %q: give uefi or legacy", *mode)}
	}
	c, err := f.connect(ctx, env)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	o := redfish.BootOverride{Target: t, Mode: m, URI: *uri}
	if *now {
		if err := refuseRunning(ctx, c, *force, "boot --now"); err != nil {
			return err
		}
	}
	if *now {
		err = c.BootOnceNow(ctx, o)
	} else {
		err = c.SetBootOnce(ctx, o)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "next boot: %s once\n", t)
	return nil
}

// refuseRunning stops a power action that would interrupt a running machine unless the
// operator gave --force: a BMC command is no reason to take a production machine down.
func refuseRunning(ctx context.Context, c *redfish.Client, force bool, action string) error {
	if force {
		return nil
	}
	ps, err := c.PowerState(ctx)
	if err != nil {
		return err
	}
	if ps == redfish.PowerOff {
		return nil
	}
	return fmt.Errorf("%s: the machine is running (power %q); nothing was changed. Give --force to interrupt it", action, ps)
}
