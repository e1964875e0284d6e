package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func readSecret(env *cliEnv, file string, prompt string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if prompt != "" {
		fmt.Fprint(env.stderr, prompt)
	}
	line, err := bufio.NewReader(env.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no password on standard input (use --password-file FILE)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func loginCommand() *command {
	return &command{name: "login", summary: "log in to a Slate and cache the token", run: func(ctx context.Context, env *cliEnv, args []string) error {
		fs := newFlagSet(env, "login", "slate login [--server URL] [--username NAME] [--password-file FILE]  (password read from stdin otherwise)")
		server := fs.String("server", "", "Slate URL, e.g. http://10.0.0.5:8080 (default: SLATE_SERVER, the cached one, or http://127.0.0.1:8080)")
		user := fs.String("username", "admin", "user name")
		pwFile := fs.String("password-file", "", "read the password from this file")
		if err := fs.Parse(args); err != nil {
			return err
		}
		cred := loadCredentials(env)
		srv := strings.TrimRight(firstNonEmpty(*server, env.getenv("SLATE_SERVER"), cred.Server, "http://127.0.0.1:8080"), "/")
		pw, err := readSecret(env, *pwFile, "Password for "+*user+": ")
		if err != nil {
			return err
		}
		c := &client{server: srv, http: &http.Client{Timeout: 30 * time.Second}}
		var out struct {
			Token string `json:"token"`
			Role  string `json:"role"`
		}
		if err := c.do(ctx, "POST", "/auth/token", nil, map[string]string{"username": *user, "password": pw}, &out); err != nil {
			return fmt.Errorf("login to %s: %w", srv, err)
		}
		if err := saveCredentials(env, credentials{Server: srv, Token: out.Token, User: *user}); err != nil {
			return fmt.Errorf("save token: %w", err)
		}
		fmt.Fprintf(env.stdout, "Logged in to %s as %s (%s). Token cached in %s.\n", srv, *user, out.Role, credentialsPath(env))
		return nil
	}}
}

// apiFlags adds the flags every API command shares.
func apiFlags(fs *flag.FlagSet) (server *string, asJSON *bool) {
	return fs.String("server", "", "Slate URL (default: SLATE_SERVER or the one `slate login` cached)"),
		fs.Bool("json", false, "print JSON for scripts")
}

func machineCommands() *command {
	return &command{name: "machine", summary: "list, show, enroll and move machines", subs: []*command{
		{name: "list", summary: "list machines", run: machineList},
		{name: "show", summary: "show one machine", run: machineShow},
		{name: "enroll", summary: "enroll a machine by MAC, serial and/or BMC", run: machineEnroll},
		{name: "transition", summary: "move a machine to another state (or retry a failed one)", run: machineTransition},
		{name: "expect-boot", summary: "announce that you will power a machine on by hand: its network boot gets an agent token", run: machineExpectBoot},
		{name: "media", summary: "insert (and boot once from) or eject the virtual CD through the machine's BMC: status, insert [deploy|URL] [--boot [--force]], eject", run: machineMedia},
		{name: "provision", summary: "set the release a machine should run (installs, updates or rolls back)", run: machineProvision},
		{name: "watch", summary: "follow a machine live: state, what it waits for, task progress and logs", run: machineWatch},
		{name: "identity", summary: "correct a machine's serial or system UUID (they then count as entered by an operator; \"\" hands them back to inspection)", run: machineIdentity},
		{name: "bmc", summary: "change a machine's BMC address, credentials or vendor profile, or re-pin its certificate (--repin)", run: machineBMC},
		{name: "wipe-plan", summary: "show a decommissioning machine's wipe plan and how it differs from inspection", run: machineWipePlan},
		{name: "wipe-confirm", summary: "confirm a wipe plan (typing the machine's name) and say who performs it: starts the erasure", run: machineWipeConfirm},
	}}
}

func machineList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine list", "slate machine list [--state S] [--label k=v] [-q TEXT] [--sort KEY] [--desc] [--all] [--limit N] [--offset N] [--json]")
	server, asJSON := apiFlags(fs)
	state := fs.String("state", "", "only machines in this state ("+strings.Join(lifecycle.States(), ", ")+")")
	label := fs.String("label", "", "only machines with this label (key or key=value)")
	q := fs.String("q", "", "free text: name, serial, MAC, vendor, model")
	limit := fs.Int("limit", 100, "at most this many")
	offset := fs.Int("offset", 0, "skip this many")
	sortKey := fs.String("sort", "", "order by name, state, release, ip or updated (default name)")
	desc := fs.Bool("desc", false, "reverse the order")
	all := fs.Bool("all", false, "include retired machines (hidden by default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	v := url.Values{}
	for k, s := range map[string]string{"state": *state, "label": *label, "q": *q, "sort": *sortKey} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if *desc {
		v.Set("dir", "desc")
	}
	if *all {
		v.Set("include_retired", "true")
	}
	v.Set("limit", strconv.Itoa(*limit))
	v.Set("offset", strconv.Itoa(*offset))
	var out struct {
		Items    []inventory.Machine `json:"items"`
		Total    int                 `json:"total"`
		Warnings []string            `json:"warnings"`
	}
	if *asJSON {
		var raw json.RawMessage
		if err := c.do(ctx, "GET", "/machines", v, nil, &raw); err != nil {
			return err
		}
		_, err := env.stdout.Write(append(raw, '\n'))
		return err
	}
	if err := c.do(ctx, "GET", "/machines", v, nil, &out); err != nil {
		return err
	}
	for _, w := range out.Warnings {
		fmt.Fprintln(env.stderr, "warning:", w)
	}
	tw := table(env.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tRELEASE\tIP\tMAC\tSERIAL\tVENDOR/MODEL\tUPDATED")
	for _, m := range out.Items {
		mac := ""
		if len(m.MACs) > 0 {
			mac = m.MACs[0]
			if len(m.MACs) > 1 {
				mac += fmt.Sprintf(" (+%d)", len(m.MACs)-1)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Name, m.State, dash(m.DesiredRelease), dash(m.Labels["ip"]), dash(mac), dash(m.Serial),
			dash(strings.TrimSpace(m.Vendor+" "+m.Model)), m.UpdatedAt.Local().Format("2006-01-02 15:04"))
	}
	tw.Flush()
	hidden := ""
	if !*all && *state == "" {
		hidden = " (retired hidden: --all lists them)"
	}
	fmt.Fprintf(env.stdout, "%d of %d machines%s\n", len(out.Items), out.Total, hidden)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneArg(fs *flag.FlagSet, what string) (string, error) {
	if fs.NArg() != 1 {
		return "", fmt.Errorf("give exactly one %s (see --help)", what)
	}
	return fs.Arg(0), nil
}

// parseInterleaved parses flags that may come after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func machineShow(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine show", "slate machine show <id|name> [--json]")
	server, asJSON := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	id, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var view struct {
		inventory.Machine
		BootExpected *inventory.BootExpectation `json:"boot_expected"`
	}
	if err := c.do(ctx, "GET", "/machines/"+url.PathEscape(id), nil, nil, &view); err != nil {
		return err
	}
	m := view.Machine
	var facts json.RawMessage
	_ = c.do(ctx, "GET", "/machines/"+url.PathEscape(m.ID)+"/facts", nil, nil, &facts)
	if *asJSON {
		return printJSON(env.stdout, struct {
			inventory.Machine
			Facts json.RawMessage `json:"facts,omitempty"`
		}{m, facts})
	}
	tw := table(env.stdout)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, dash(v)) }
	row("ID", m.ID)
	row("Name", m.Name)
	if m.State == lifecycle.Adopted {
		row("State", "adopted: runs an unmanaged system (Slate does not touch its power; move it to inspecting or, with a desired release, provisioning)")
	} else {
		row("State", m.State)
	}
	if m.State == lifecycle.Failed {
		row("Failed in", m.FailedFrom)
		row("Reason", m.FailedReason)
		row("Task", m.FailedTask)
	}
	if e := view.BootExpected; e != nil {
		row("Boot expected", fmt.Sprintf("until %s (%s, by %s)", e.ExpiresAt.Local().Format("15:04:05"), e.Reason, e.Actor))
	}
	row("MACs", strings.Join(m.MACs, ", "))
	// Operator-entered identity is kept against inspection: say which values are.
	byOp := func(v string, entered bool) string {
		if entered && v != "" {
			return v + " (entered by an operator)"
		}
		return v
	}
	row("Serial", byOp(m.Serial, m.SerialByOperator))
	row("System UUID", byOp(m.SystemUUID, m.SystemUUIDByOperator))
	row("Vendor", m.Vendor)
	row("Model", m.Model)
	row("Arch", m.Arch)
	row("Firmware", m.FirmwareMode)
	row("Site", m.Site)
	row("Segment", m.Segment)
	row("Labels", strings.Join(inventory.SortedLabels(m.Labels), " "))
	if m.BMC != nil {
		row("BMC", m.BMC.Address+" ("+m.BMC.VendorProfile+", user "+m.BMC.Username+")")
		if m.BMC.SystemID != "" {
			row("BMC system", m.BMC.SystemID)
		}
		row("BMC certificate", m.BMC.TLSFingerprint)
	}
	row("Desired release", m.DesiredRelease)
	row("Booted release", m.BootedRelease)
	row("Booted digest", m.BootedDigest)
	row("Created", m.CreatedAt.Local().Format(time.RFC3339))
	row("Updated", m.UpdatedAt.Local().Format(time.RFC3339))
	tw.Flush()
	if len(facts) > 0 && string(facts) != "null" {
		fmt.Fprintln(env.stdout, "\nFacts:")
		var v any
		if json.Unmarshal(facts, &v) == nil {
			_ = printJSON(env.stdout, v)
		}
	}
	return nil
}

func machineEnroll(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine enroll", "slate machine enroll [--name N] [--mac MAC]... [--serial S] [--bmc-address A --bmc-user U --bmc-password-file F [--system ID|--system-uuid U|--all-systems] [--power-on [--force]|--adopt]] [--label k=v]...\n\n"+
		"Exit status 3: enrolled, but not powered on as --power-on asked (the machine runs and was left alone,\n"+
		"or the BMC failed the power-on): the warning says why and what to do. 1: not enrolled.")
	server, asJSON := apiFlags(fs)
	var macs, labels multi
	name := fs.String("name", "", "machine name (default: generated)")
	fs.Var(&macs, "mac", "a MAC address (repeatable)")
	serial := fs.String("serial", "", "serial number")
	site := fs.String("site", "", "site")
	segment := fs.String("segment", "", "network segment")
	fs.Var(&labels, "label", "a label key=value (repeatable)")
	bmcAddr := fs.String("bmc-address", "", "BMC address, e.g. https://10.0.0.21")
	bmcUser := fs.String("bmc-user", "", "BMC user name")
	bmcPwFile := fs.String("bmc-password-file", "", "file holding the BMC password (else read from stdin when --bmc-address is given)")
	bmcVendor := fs.String("bmc-vendor", "auto", "BMC vendor profile: auto (detect), generic, dell, hpe, supermicro, lenovo, sushy")
	powerOn := fs.Bool("power-on", false, "with --bmc-address: set a one-time PXE boot and power the machine on (a running machine is left alone without --force)")
	force := fs.Bool("force", false, "with --power-on: restart the machine into the network boot even if it is running (interrupts what runs there)")
	system := fs.String("system", "", "with --bmc-address: the computer system behind the BMC to enroll (its id), where it has several (blade chassis); --mac, --serial or --system-uuid pick one by match instead")
	systemUUID := fs.String("system-uuid", "", "with --bmc-address: pick the computer system with this SMBIOS UUID")
	allSystems := fs.Bool("all-systems", false, "with --bmc-address: enroll every computer system behind the BMC, one machine each, named --name + \"-\" + system id")
	adopt := fs.Bool("adopt", false, "with --bmc-address: adopt a running machine as it is: read its inventory, never power it or set a boot (state adopted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req := lifecycle.EnrollRequest{Name: *name, MACs: macs, Serial: *serial, Site: *site, Segment: *segment,
		BMCAddress: *bmcAddr, BMCUsername: *bmcUser, BMCVendor: *bmcVendor, PowerOn: *powerOn, Force: *force,
		SystemID: *system, SystemUUID: *systemUUID, AllSystems: *allSystems, Adopt: *adopt}
	if len(labels) > 0 {
		req.Labels = map[string]string{}
		for _, kv := range labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--label %q: want key=value", kv)
			}
			req.Labels[k] = v
		}
	}
	if *bmcAddr != "" {
		pw, err := readSecret(env, *bmcPwFile, "BMC password: ")
		if err != nil {
			return err
		}
		req.BMCPassword = pw
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	if *allSystems {
		return enrollAllSystems(ctx, env, c, req, *asJSON)
	}
	var m struct {
		inventory.Machine
		Warning     string `json:"warning,omitempty"`
		WarningCode string `json:"warning_code,omitempty"`
	}
	if err := c.do(ctx, "POST", "/machines", nil, req, &m); err != nil {
		// Non-zero exit: a 5xx means nothing was stored (e.g. Slate's disk is full).
		return fmt.Errorf("not enrolled: %w", err)
	}
	if *asJSON {
		if err := printJSON(env.stdout, m); err != nil {
			return err
		}
	} else if m.State == lifecycle.Adopted {
		fmt.Fprintf(env.stdout, "Adopted %s (%s), state adopted: runs an unmanaged system; Slate leaves its power alone.\n", m.Name, m.ID)
	} else {
		fmt.Fprintf(env.stdout, "Enrolled %s (%s), state %s.\n", m.Name, m.ID, m.State)
	}
	if m.Warning != "" {
		// Enrolled, but not powered on as asked: a script must not take this for success.
		return errWarning{enrollWarning(m.Name, m.WarningCode, m.Warning)}
	}
	return nil
}

// enrollAllSystems enrolls every computer system behind one BMC (--all-systems).
func enrollAllSystems(ctx context.Context, env *cliEnv, c *client, req lifecycle.EnrollRequest, asJSON bool) error {
	var out struct {
		Machines []inventory.Machine `json:"machines"`
		Warning  string              `json:"warning"`
	}
	if err := c.do(ctx, "POST", "/machines", nil, req, &out); err != nil {
		return fmt.Errorf("not enrolled (none of the systems): %w", err)
	}
	if asJSON {
		if err := printJSON(env.stdout, out); err != nil {
			return err
		}
	} else {
		for _, m := range out.Machines {
			sys := ""
			if m.BMC != nil {
				sys = m.BMC.SystemID
			}
			fmt.Fprintf(env.stdout, "Enrolled %s (%s), system %s, state %s.\n", m.Name, m.ID, sys, m.State)
		}
	}
	if out.Warning != "" {
		// enrolled, but what was asked besides failed: a partial failure is not a success
		// (exit status 3, as for one machine)
		return errWarning{fmt.Sprintf("enrolled %d machines, but not every one was powered on as --power-on asked: %s", len(out.Machines), out.Warning)}
	}
	return nil
}

// enrollWarning says in plain words why an enrolled machine was not powered on and what to
// do, with Slate's detail after it.
func enrollWarning(name, code, detail string) string {
	if code == lifecycle.WarningMachineRunning {
		return fmt.Sprintf("%s is enrolled but NOT powered into a network boot: it is running, so Slate left it alone "+
			"(no boot override set, not restarted). Slate powers it into inspection by itself once it is off: shut it down in a "+
			"maintenance window (or now, interrupting what runs: slate bmc power off --force --address … --user …), or adopt it as it runs (slate machine transition %s adopted --reason …). Detail: %s", name, name, detail)
	}
	return fmt.Sprintf("%s is enrolled but NOT powered on: the power-on through its BMC failed, so nothing boots it yet. "+
		"Fix what the detail names (slate machine bmc %s changes the BMC's address, credentials or pinned certificate), "+
		"then power it on yourself, announced with slate machine expect-boot %s. Detail: %s", name, name, name, detail)
}

// isTerminal says whether r is an interactive terminal (prompts are shown only there;
// scripts must pass flags).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	// A character device is not enough (/dev/null is one): ask for the terminal's settings.
	var tio syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio)))
	return errno == 0
}

func machineIdentity(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine identity", "slate machine identity <id|name> [--serial S] [--system-uuid U]")
	server, asJSON := apiFlags(fs)
	serial := fs.String("serial", "", "the serial on the machine's label")
	uuid := fs.String("system-uuid", "", "the system UUID")
	clearSerial := fs.Bool("clear-serial", false, "forget the serial: the next inspection fills it")
	clearUUID := fs.Bool("clear-system-uuid", false, "forget the system UUID: the next inspection fills it")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	id, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	p := map[string]string{}
	if *serial != "" || *clearSerial {
		p["serial"] = *serial
	}
	if *uuid != "" || *clearUUID {
		p["system_uuid"] = *uuid
	}
	if len(p) == 0 {
		return errors.New("give --serial, --system-uuid, --clear-serial or --clear-system-uuid")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var m inventory.Machine
	if err := c.do(ctx, "PATCH", "/machines/"+url.PathEscape(id), nil, p, &m); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, m)
	}
	fmt.Fprintf(env.stdout, "%s: serial %s, system UUID %s. Retry a machine failed on an identity mismatch with `slate machine transition %s retry --reason ...`.\n",
		m.Name, dash(m.Serial), dash(m.SystemUUID), m.Name)
	return nil
}

func machineWipePlan(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine wipe-plan", "slate machine wipe-plan <id|name> [--json]")
	server, asJSON := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	id, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var out struct {
		Plan            wipe.Plan `json:"plan"`
		Digest          string    `json:"digest"`
		Runnable        bool      `json:"runnable"`
		Discrepancies   []string  `json:"discrepancies"`
		AutoConfirmable bool      `json:"auto_confirmable"`
	}
	if *asJSON {
		var raw json.RawMessage
		if err := c.do(ctx, "GET", "/machines/"+url.PathEscape(id)+"/wipe-plan", nil, nil, &raw); err != nil {
			return err
		}
		_, err := env.stdout.Write(append(raw, '\n'))
		return err
	}
	if err := c.do(ctx, "GET", "/machines/"+url.PathEscape(id)+"/wipe-plan", nil, nil, &out); err != nil {
		return err
	}
	tw := table(env.stdout)
	fmt.Fprintln(tw, "DRIVE\tSERIAL\tBYTES\tLEVEL\tMETHOD / BLOCKED")
	for _, d := range out.Plan.Drives {
		what := string(d.Method)
		if d.Blocked {
			what = "BLOCKED: " + d.Reason + " (" + d.Remedy + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.Drive.Path, dash(d.Drive.Serial), d.Drive.SizeBytes, dash(string(d.Level)), what)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Plan %s, runnable: %v\n", out.Digest, out.Runnable)
	if len(out.Discrepancies) > 0 {
		fmt.Fprintln(env.stdout, "This plan differs from what inspection saw (check the drives; a pre-approved policy will not confirm it):")
		for _, d := range out.Discrepancies {
			fmt.Fprintln(env.stdout, "  - "+d)
		}
	}
	return nil
}

func machineTransition(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine transition", "slate machine transition <id|name> <state|retry> --reason TEXT [--confirm NAME]")
	server, asJSON := apiFlags(fs)
	reason := fs.String("reason", "", "why (goes in the audit log; required)")
	confirm := fs.String("confirm", "", "to decommission: the machine's name, typed again (asked for on a terminal when not given)")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("give a machine and a target state (see --help)")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	body := map[string]string{"to": fs.Arg(1), "reason": *reason}
	if fs.Arg(1) == lifecycle.Decommissioning {
		// Decommissioning ends in wiping every disk: the name is typed, as in the web UI.
		name := *confirm
		if name == "" {
			if !isTerminal(env.stdin) {
				return fmt.Errorf("decommissioning %s wipes every disk: confirm with --confirm <the machine's name>", fs.Arg(0))
			}
			fmt.Fprintf(env.stderr, "Decommissioning wipes every disk of %s. Type the machine's name to confirm: ", fs.Arg(0))
			line, err := bufio.NewReader(env.stdin).ReadString('\n')
			if err != nil && line == "" {
				return errors.New("not decommissioned: no name typed")
			}
			name = strings.TrimSpace(line)
		}
		body["confirm_name"] = name
	}
	var m inventory.Machine
	if err := c.do(ctx, "POST", "/machines/"+url.PathEscape(fs.Arg(0))+"/transition", nil, body, &m); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, m)
	}
	fmt.Fprintf(env.stdout, "%s is now %s.\n", m.Name, m.State)
	return nil
}

func machineExpectBoot(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine expect-boot", "slate machine expect-boot <id|name> [--json]\n\n"+
		"Announce that you will power the machine on by hand (no BMC, or at the rack): its next network\n"+
		"boot within the boot window gets the agent token it needs. A boot Slate did not start and nobody\n"+
		"announced gets none.")
	server, asJSON := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	id, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var e inventory.BootExpectation
	if err := c.do(ctx, "POST", "/machines/"+url.PathEscape(id)+"/expect-boot", nil, nil, &e); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, e)
	}
	fmt.Fprintf(env.stdout, "Network boot of %s expected until %s: power it on now.\n", id, e.ExpiresAt.Local().Format("15:04:05"))
	return nil
}

func machineProvision(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine provision", "slate machine provision <id|name> <release name@version>")
	server, asJSON := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("give a machine and a release (name@version; see slate release list)")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var m inventory.Machine
	if err := c.do(ctx, "PATCH", "/machines/"+url.PathEscape(fs.Arg(0)), nil,
		map[string]string{"desired_release": fs.Arg(1)}, &m); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, m)
	}
	if m.State == lifecycle.Adopted {
		// an adopted machine runs what it runs until an operator asks: do not promise more
		fmt.Fprintf(env.stdout, "%s is adopted: %s is its desired release, installed only when you move it to provisioning (this restarts it): slate machine transition %s provisioning --reason \"…\"\n", m.Name, m.DesiredRelease, m.Name)
		return nil
	}
	fmt.Fprintf(env.stdout, "%s should now run %s (it is %s; follow it with: slate machine watch %s).\n", m.Name, m.DesiredRelease, m.State, m.Name)
	return nil
}

func auditCommands() *command {
	return &command{name: "audit", summary: "read and verify the tamper-evident audit log", subs: []*command{
		{name: "list", summary: "list audit events, newest first", run: auditList},
		{name: "verify", summary: "walk the hash chain and name the first broken link", run: auditVerify},
	}}
}

func auditList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "audit list", "slate audit list [--subject ID] [--actor U] [--action PREFIX] [--limit N] [--json]")
	server, asJSON := apiFlags(fs)
	subject := fs.String("subject", "", "only events about this subject (e.g. a machine id)")
	actorF := fs.String("actor", "", "only events by this actor")
	action := fs.String("action", "", "only actions starting with this")
	limit := fs.Int("limit", 50, "at most this many")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	v := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, s := range map[string]string{"subject": *subject, "actor": *actorF, "action": *action} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out struct {
		Items []inventory.AuditEvent `json:"items"`
	}
	if err := c.do(ctx, "GET", "/audit", v, nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, out.Items)
	}
	tw := table(env.stdout)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tSUBJECT\tOUTCOME\tDETAILS")
	for _, e := range out.Items {
		d, _ := json.Marshal(e.Details)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Subject, e.Outcome, d)
	}
	return tw.Flush()
}

func auditVerify(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "audit verify", "slate audit verify [--data-dir DIR | --server URL] [--json]")
	server, asJSON := apiFlags(fs)
	dataDir := fs.String("data-dir", "", "verify the database in this data directory directly (offline), instead of asking the server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rep inventory.AuditReport
	if *dataDir != "" {
		st, err := inventory.Open(ctx, filepath.Join(*dataDir, "slate.db"), inventory.Options{})
		if err != nil {
			return err
		}
		defer st.Close()
		if rep, err = st.VerifyAudit(ctx); err != nil {
			return err
		}
	} else {
		c, err := newClient(env, *server)
		if err != nil {
			return err
		}
		if err := c.do(ctx, "GET", "/audit/verify", nil, nil, &rep); err != nil {
			return err
		}
	}
	if *asJSON {
		if err := printJSON(env.stdout, rep); err != nil {
			return err
		}
	} else if rep.OK {
		fmt.Fprintf(env.stdout, "audit chain intact: %d events, head %s\n", rep.Events, rep.Head)
	}
	if !rep.OK {
		return fmt.Errorf("audit chain BROKEN at event %d: %s", rep.BrokenSeq, rep.Problem)
	}
	return nil
}

func userCommands() *command {
	return &command{name: "user", summary: "manage users (admin)", subs: []*command{
		{name: "add", summary: "add a user", run: userAdd},
		{name: "list", summary: "list users with role, state and last login", run: userList},
		{name: "disable", summary: "disable a user: no login, its tokens stop working at once", run: userSetDisabled(true)},
		{name: "enable", summary: "enable a disabled user", run: userSetDisabled(false)},
		{name: "delete", summary: "delete a user (the audit log keeps the name)", run: userDelete},
		{name: "passwd", summary: "change your password, or (admin) set another user's", run: userPasswd},
		{name: "revoke-tokens", summary: "revoke all your other tokens, or (admin) all of a user's", run: userRevokeTokens},
		{name: "unlock", summary: "unlock an account locked after repeated failed logins", run: userUnlock},
	}}
}

func userAdd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user add", "slate user add <username> --role admin|operator|auditor [--full-name N] [--password-file F]  (password read from stdin otherwise)")
	server, asJSON := apiFlags(fs)
	role := fs.String("role", "operator", "admin, operator (technician) or auditor (read-only)")
	full := fs.String("full-name", "", "the person's name")
	pwFile := fs.String("password-file", "", "read the initial password from this file")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	name, err := oneArg(fs, "username")
	if err != nil {
		return err
	}
	pw, err := readSecret(env, *pwFile, "Initial password for "+name+": ")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var u inventory.User
	if err := c.do(ctx, "POST", "/users", nil, map[string]string{"username": name, "password": pw, "role": *role, "full_name": *full}, &u); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, u)
	}
	fmt.Fprintf(env.stdout, "Added %s (%s).\n", u.Username, u.Role)
	return nil
}

func userList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user list", "slate user list [--json]")
	server, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var out struct {
		Items []inventory.User `json:"items"`
	}
	if err := c.do(ctx, "GET", "/users", nil, nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, out.Items)
	}
	tw := table(env.stdout)
	fmt.Fprintln(tw, "USER\tROLE\tSTATE\tNAME\tCREATED\tLAST LOGIN")
	for _, u := range out.Items {
		state, last := "enabled", "never"
		if u.Disabled {
			state = "disabled"
		}
		if u.Locked {
			state += ", LOCKED (slate user unlock " + u.Username + ")"
		}
		if !u.LastLoginAt.IsZero() {
			last = u.LastLoginAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, state, dash(u.FullName), u.CreatedAt.Local().Format("2006-01-02"), last)
	}
	return tw.Flush()
}

func userUnlock(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user unlock", "slate user unlock <username> [--data-dir DIR]  (an account locked after repeated failed logins logs in again)")
	server, asJSON := apiFlags(fs)
	dataDir := fs.String("data-dir", "", "unlock in the database of this data directory directly (on the appliance, as root), for when no admin can log in")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	name, err := oneArg(fs, "username")
	if err != nil {
		return err
	}
	if *dataDir != "" {
		// The way back in when every admin is locked: whoever can write the database file
		// already holds everything, so this asks no password; it is audited as the console.
		st, err := inventory.Open(ctx, filepath.Join(*dataDir, "slate.db"), inventory.Options{})
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.UnlockUser(ctx, "console", name); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "Unlocked %s in %s: they can log in again (a running Slate may keep a back-off of up to login.backoff_max for them).\n", name, *dataDir)
		return nil
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do(ctx, "POST", "/users/"+url.PathEscape(name)+"/unlock", nil, nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "Unlocked %s: they can log in again.\n", name)
	return nil
}
