package pxe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/template"
	"time"
)

// Action is what a machine's iPXE script makes it do. lifecycle/ chooses it.
type Action string

// Actions a Planner may choose.
const (
	ActionDeploy    Action = "deploy"     // boot the deploy environment (slate-agent)
	ActionLocalDisk Action = "local-disk" // boot the installed system from the local disk
	ActionPowerOff  Action = "poweroff"   // say why, then power off (retired machines)
	ActionNone      Action = "none"       // say why, then leave it to the firmware's next boot device
)

// Firmware kinds, as iPXE's ${platform} names them once normalised.
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// Plan is lifecycle's answer to "what should the machine with this MAC boot now?".
type Plan struct {
	MachineID string
	State     string // lifecycle state, shown on the console and in logs
	Action    Action
	Task      string // the task the deploy environment is booted for, if any
	Message   string // shown on the machine's console (why it powers off, what to do…)
	// Firmware is what the inventory believes ("bios", "uefi" or empty); the booting iPXE's
	// own ${platform} wins when it reports one.
	Firmware string
}

// Planner is what pxe needs of lifecycle/: the boot plan for a MAC. It returns an error
// wrapping ErrUnknownMachine for a MAC no machine has.
type Planner interface {
	BootPlan(ctx context.Context, mac string) (Plan, error)
}

// ErrUnknownMachine is what a Planner wraps for a MAC it does not know.
var ErrUnknownMachine = errors.New("unknown machine")

// TokenIssuer issues the per-boot agent token: random, bound to one machine and to the
// address src that fetched the script, expiring, and only for a network boot Slate expects
// (the expectation is consumed). It wraps ErrNoBootExpected when no boot is expected and
// ErrSourceNotLeased when src is not the address Slate leased to mac; then nothing may have
// been written. appliance/ adapts the inventory store to it.
type TokenIssuer interface {
	IssueBootToken(ctx context.Context, machineID, mac string, src netip.Addr, ttl time.Duration) (string, error)
}

// ErrNoBootExpected: Slate did not start, and no technician announced, this machine's boot
// (or its one token was already handed out).
var ErrNoBootExpected = errors.New("no network boot of this machine is expected")

// ErrSourceNotLeased: the script was fetched from another address than the one Slate's DHCP
// leased to the machine's MAC.
var ErrSourceNotLeased = errors.New("script fetched from an address Slate did not lease to this MAC")

// scriptData is everything a template may print. Every field is checked by safeScriptValue or
// cleaned by consoleText before it gets here: a script is code, and these come from the
// database and the network.
type scriptData struct {
	Base       string // public URL, no trailing slash
	MAC        string
	MachineID  string
	State      string
	Action     Action
	Task       string
	Token      string
	Firmware   string // bios, uefi, or "" (decided at boot time by iPXE)
	KernelArgs string
	Message    string
}

// The generic script every iPXE client gets from DHCP. It asks for the machine's own script,
// naming the firmware it runs on, and retries forever (a machine left waiting is better than
// one that boots something wrong). --autofree frees each fetched script after it ran.
const autoTemplate = `#!ipxe
# Slate: generic boot script. It fetches this machine's own script, chosen by its lifecycle state.
:start
echo Slate: asking {{.Base}} what to boot for ${netX/mac} (${platform} ${buildarch})
chain --autofree {{.Base}}/boot/machine/${netX/mac}.ipxe?platform=${platform}&buildarch=${buildarch} || goto retry
exit
:retry
echo Slate: could not get this machine's boot script from {{.Base}}; retrying in 10 s
sleep 10
goto start
`

// The per-machine script. On UEFI the kernel line must name its initrd (initrd=initrd.gz):
// Debian's 2019 iPXE cannot hand the initrd over through LoadFile2, so the kernel's EFI stub
// loads it by that name; BIOS ignores it.
const machineTemplate = `#!ipxe
# Slate: machine {{.MachineID}} ({{.MAC}}) is {{.State}}: {{.Action}}{{if .Firmware}} ({{.Firmware}}){{end}}
{{- if .Message}}
echo Slate: {{.Message}}
{{- end}}
{{- if eq .Action "deploy"}}
echo Slate: booting the deploy environment for machine {{.MachineID}}{{if .Task}}, task {{.Task}}{{end}}
kernel {{.Base}}/boot/deploy/vmlinuz initrd=initrd.gz slate.url={{.Base}} slate.token={{.Token}} slate.machine={{.MachineID}}{{if .Task}} slate.task={{.Task}}{{end}} {{.KernelArgs}} || goto failed
initrd {{.Base}}/boot/deploy/initrd.gz || goto failed
boot || goto failed
:failed
echo Slate: booting the deploy environment failed; asking Slate again in 10 s
sleep 10
exit 1
{{- else if eq .Action "local-disk"}}
echo Slate: booting machine {{.MachineID}} from its local disk
{{- if eq .Firmware "bios"}}
sanboot --no-describe --drive 0x80 || goto failed
{{- else if eq .Firmware "uefi"}}
exit
{{- else}}
iseq ${platform} efi && goto uefi || goto bios
:uefi
exit
:bios
sanboot --no-describe --drive 0x80 || goto failed
{{- end}}
{{- if ne .Firmware "uefi"}}
:failed
echo Slate: the local disk of machine {{.MachineID}} did not boot; asking Slate again in 30 s
sleep 30
exit 1
{{- end}}
{{- else if eq .Action "poweroff"}}
echo Slate: powering machine {{.MachineID}} off
poweroff || goto halt
:halt
echo Slate: this iPXE cannot power off: power machine {{.MachineID}} off with its BMC or by hand
sleep 3600
goto halt
{{- else}}
echo Slate: nothing to boot from the network for this machine; trying the next boot device in 10 s
sleep 10
exit
{{- end}}
`

// The script for a machine whose plan is to deploy while the deploy environment has not been
// built: say what to do on the console, and ask again later.
const noDeployEnvTemplate = `#!ipxe
# Slate: machine {{.MachineID}} ({{.MAC}}) is {{.State}}: deploy, but the deploy environment is missing
echo Slate: {{.Message}}
sleep 60
exit 1
`

// The script for a machine whose plan is to deploy while Slate hands it no agent token (no
// boot expected, or the fetch came from the wrong address): say why and what to do on the
// console, and ask again later (the generic script retries), so the boot goes on by itself
// once a technician announces it.
const noTokenTemplate = `#!ipxe
# Slate: machine {{.MachineID}} ({{.MAC}}) is {{.State}}: deploy, but Slate gives this boot no agent token
echo Slate: {{.Message}}
sleep 60
exit 1
`

type scripts struct {
	auto, machine, noDeployEnv, noToken *template.Template
}

func parseScripts() (*scripts, error) {
	var s scripts
	var err error
	for _, x := range []struct {
		t    **template.Template
		name string
		text string
	}{{&s.auto, "auto.ipxe", autoTemplate}, {&s.machine, "machine.ipxe", machineTemplate}, {&s.noDeployEnv, "nodeployenv.ipxe", noDeployEnvTemplate},
		{&s.noToken, "notoken.ipxe", noTokenTemplate}} {
		if *x.t, err = template.New(x.name).Option("missingkey=error").Parse(x.text); err != nil {
			return nil, fmt.Errorf("parse iPXE template %s: %w", x.name, err)
		}
	}
	return &s, nil
}

func render(t *template.Template, d scriptData) ([]byte, error) {
	for name, v := range map[string]string{"public URL": d.Base, "machine id": d.MachineID, "MAC": d.MAC,
		"state": d.State, "task": d.Task, "token": d.Token, "action": string(d.Action)} {
		if v != "" && !safeScriptValue(v) {
			return nil, fmt.Errorf("render iPXE script %s: the %s %q has characters a script cannot carry safely", t.Name(), name, v)
		}
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("render iPXE script %s: %w", t.Name(), err)
	}
	return b.Bytes(), nil
}

// safeScriptValue accepts what may be printed into an iPXE command line without changing its
// meaning: no spaces, no ${} expansion, no && / || operators, no quotes, no comments.
func safeScriptValue(s string) bool {
	if s == "" || len(s) > 2048 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._~:/=+,@%-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// consoleText makes free text (a lifecycle message) safe for an echo line: one line,
// printable ASCII, no characters iPXE would expand or treat as operators.
func consoleText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		case strings.ContainsRune("$&|#\"'\\;`", r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
		if b.Len() >= 400 {
			break
		}
	}
	return strings.TrimSpace(b.String())
}

// normFirmware maps iPXE's ${platform} ("efi", "pcbios") or an inventory value to bios/uefi.
func normFirmware(s string) string {
	switch strings.ToLower(s) {
	case "efi", "uefi":
		return FirmwareUEFI
	case "pcbios", "bios", "legacy":
		return FirmwareBIOS
	}
	return ""
}
