// Package lab is the QEMU lab: a network namespace with a bridge, N virtual machines booting
// from the network, a virtual Redfish BMC per machine, and Slate itself serving inside the
// namespace. End-to-end tests run in it, and technicians rehearse a rollout in it before they
// touch the plant. Nothing here is needed in production.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"slate/lab/vbmc"
)

// Firmware choices for `--firmware`.
const (
	FirmwareBIOS  = "bios"
	FirmwareUEFI  = "uefi"
	FirmwareMixed = "mixed" // odd VMs UEFI, even VMs BIOS
)

// Options describe a lab. The zero value of each field takes the default shown.
type Options struct {
	Namespace string // "slatelab"
	Bridge    string // "br0"
	// Address and Address6 are the bridge's addresses: Slate, the BMCs and the router advert
	// live there (10.99.0.1/24, fd00:99::1/64).
	Address, Address6 netip.Prefix
	VMs               int      // 2
	Firmware          string   // "uefi"; or "bios", "mixed"
	Disks             []string // ["nvme"]; kinds: nvme, sata, virtio
	DiskSize          string   // "8G" (sparse)
	MemoryMB          int      // 1024
	CPUs              int      // 1
	StateDir          string   // "/var/lib/slate-lab"
	// Accel is "auto" (KVM only when a probe guest really boots under it), "tcg" or "kvm".
	Accel string
	// PowerOn powers every VM on at Up; VMs whose restored state says they were on are
	// powered on either way.
	PowerOn bool
	// SlateBinary, when set, is run inside the namespace as `slate serve --config …`.
	SlateBinary string
	// SlatePort is where Slate listens on the bridge address (8080).
	SlatePort int
	// SlateSettings are extra top-level keys of the `slate serve` configuration (e.g.
	// auto_enroll_mac_prefixes, wipe: {auto_confirm: true}), for rehearsals and tests.
	SlateSettings map[string]any
	// SlateEnv is extra environment for `slate serve` (e.g. SLATE_ADMIN_PASSWORD=…).
	SlateEnv []string
	// HostUI is a host address (127.0.0.1:8080) forwarded to Slate's port in the namespace;
	// "-" disables the forwarder.
	HostUI string
	// HostBMCBase, when set, forwards 127.0.0.1:HostBMCBase+i to VM i's BMC, so Redfish
	// clients on the host reach the BMCs too (0: no forwarding).
	HostBMCBase int
	// HostLink adds a veth from the host into the bridge (host side slatelab-h, address
	// 10.99.0.2/24), for attaching a Slate that runs on the host instead of in the lab.
	HostLink bool
	// BMCPortBase: VM i's BMC listens on Address:BMCPortBase+i (6230).
	BMCPortBase int
	BMCUser     string // "admin"; the password is generated once and kept in the state dir
	// Keep (for Down) keeps disks, firmware variables, BMC state and logs for the next Up.
	Keep bool
	Log  *slog.Logger
	// QEMU, QEMUImg, OVMFCode, OVMFVars, IPXELkrn locate the tools (Debian's paths).
	QEMU, QEMUImg, OVMFCode, OVMFVars, IPXELkrn string
}

func (o *Options) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.Namespace, "slatelab")
	def(&o.Bridge, "br0")
	def(&o.Firmware, FirmwareUEFI)
	def(&o.DiskSize, "8G")
	def(&o.StateDir, "/var/lib/slate-lab")
	def(&o.Accel, "auto")
	def(&o.HostUI, "127.0.0.1:8080")
	def(&o.BMCUser, "admin")
	def(&o.QEMU, "qemu-system-x86_64")
	def(&o.QEMUImg, "qemu-img")
	def(&o.OVMFCode, "/usr/share/OVMF/OVMF_CODE.fd")
	def(&o.OVMFVars, "/usr/share/OVMF/OVMF_VARS.fd")
	def(&o.IPXELkrn, "/usr/lib/ipxe/ipxe.lkrn")
	if !o.Address.IsValid() {
		o.Address = netip.MustParsePrefix("10.99.0.1/24")
	}
	if !o.Address6.IsValid() {
		o.Address6 = netip.MustParsePrefix("fd00:99::1/64")
	}
	if o.VMs == 0 {
		o.VMs = 2
	}
	if len(o.Disks) == 0 {
		o.Disks = []string{DiskNVMe}
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.SlatePort == 0 {
		o.SlatePort = 8080
	}
	if o.BMCPortBase == 0 {
		o.BMCPortBase = 6230
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func (o Options) validate() error {
	if o.VMs < 1 || o.VMs > 50 {
		return fmt.Errorf("--vms %d: the lab runs 1 to 50 VMs", o.VMs)
	}
	switch o.Firmware {
	case FirmwareBIOS, FirmwareUEFI, FirmwareMixed:
	default:
		return fmt.Errorf("--firmware %q: use bios, uefi or mixed", o.Firmware)
	}
	seen := map[string]bool{}
	for _, d := range o.Disks {
		switch d {
		case DiskNVMe, DiskSATA, DiskVirtio:
		default:
			return fmt.Errorf("--disks: unknown disk kind %q (use nvme, sata, virtio)", d)
		}
		if seen[d] {
			return fmt.Errorf("--disks: %s is listed twice", d)
		}
		seen[d] = true
	}
	switch o.Accel {
	case "auto", "tcg", "kvm":
	default:
		return fmt.Errorf("accel %q: use auto, tcg or kvm", o.Accel)
	}
	if len(o.Namespace) > 15 || strings.ContainsAny(o.Namespace, "/ ") || o.Namespace == "" {
		return fmt.Errorf("namespace name %q is not usable (at most 15 characters, no / or spaces)", o.Namespace)
	}
	if !o.Address.Addr().Is4() || !o.Address6.Addr().Is6() {
		return fmt.Errorf("lab addresses %s / %s: need an IPv4 and an IPv6 prefix", o.Address, o.Address6)
	}
	return nil
}

func (o Options) uefi(i int) bool {
	switch o.Firmware {
	case FirmwareBIOS:
		return false
	case FirmwareMixed:
		return i%2 == 1
	}
	return true
}

// VMInfo is what the lab tells about one VM.
type VMInfo struct {
	Name      string `json:"name"`
	MAC       string `json:"mac"`
	UUID      string `json:"uuid"`
	Tap       string `json:"tap"`
	Firmware  string `json:"firmware"`
	BMC       string `json:"bmc"`                // Redfish base URL, reachable inside the namespace
	HostBMC   string `json:"host_bmc,omitempty"` // the same BMC forwarded to the host's loopback
	Dir       string `json:"dir"`
	SerialLog string `json:"serial_log"`
	QEMULog   string `json:"qemu_log"`
	PIDFile   string `json:"pid_file"`
}

// Info is the lab as recorded in <state dir>/lab.json.
type Info struct {
	Namespace     string   `json:"namespace"`
	Bridge        string   `json:"bridge"`
	SupervisorPID int      `json:"supervisor_pid"`
	Ready         bool     `json:"ready"`
	Accel         string   `json:"accel"`
	UI            string   `json:"ui"`      // Slate's address inside the namespace
	HostUI        string   `json:"host_ui"` // the forwarded address on the host, if any
	SlatePID      int      `json:"slate_pid,omitempty"`
	SlateLog      string   `json:"slate_log,omitempty"`
	SlateConfig   string   `json:"slate_config,omitempty"`
	SlateDataDir  string   `json:"slate_data_dir,omitempty"`
	SlateError    string   `json:"slate_error,omitempty"`
	HostLink      string   `json:"host_link,omitempty"`
	BMCUser       string   `json:"bmc_user"`
	BMCPassword   string   `json:"bmc_password"`
	VMs           []VMInfo `json:"vms"`
	Warnings      []string `json:"warnings,omitempty"`
}

const (
	infoFile     = "lab.json"
	passwordFile = "bmc-password"
	hostLinkName = "slatelab-h"
)

// ReadInfo reads the lab record from the state dir.
func ReadInfo(stateDir string) (*Info, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, infoFile))
	if err != nil {
		return nil, err
	}
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w (run `slate lab down` to clean up)", filepath.Join(stateDir, infoFile), err)
	}
	return &in, nil
}

func writeInfo(stateDir string, in *Info) error {
	b, _ := json.MarshalIndent(in, "", "  ")
	tmp := filepath.Join(stateDir, infoFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(stateDir, infoFile))
}

// Lab is a running lab, owned by the process that called Up: the BMCs, the router advert and
// the forwarder live in this process.
type Lab struct {
	opts   Options
	info   Info
	cancel context.CancelFunc
	vms    []*vm
	bmcs   []*vbmc.BMC
	srvs   []*http.Server
	slate  *exec.Cmd
	log    *slog.Logger
	once   sync.Once
}

// Info returns the lab's description.
func (l *Lab) Info() Info { return l.info }

// BMC returns VM i's BMC (0-based).
func (l *Lab) BMC(i int) *vbmc.BMC { return l.bmcs[i] }

// QEMUPID returns VM i's QEMU process id, 0 when it is off.
func (l *Lab) QEMUPID(i int) int { return l.vms[i].pid() }

// Preflight checks what Up needs and says which Debian package provides what is missing.
func Preflight(o Options) error {
	o.defaults()
	if err := o.validate(); err != nil {
		return err
	}
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("the lab needs root (network namespaces, taps, QEMU): run it with sudo"))
	}
	for _, t := range []struct{ cmd, pkg string }{{"ip", "iproute2"}, {o.QEMU, "qemu-system-x86"}, {o.QEMUImg, "qemu-utils"}} {
		if _, err := exec.LookPath(t.cmd); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing: apt-get install %s (or `make deps`)", t.cmd, t.pkg))
		}
	}
	files := []struct{ path, pkg string }{
		{"/usr/lib/ipxe/qemu/pxe-virtio.rom", "ipxe-qemu"},
		{"/usr/lib/ipxe/qemu/efi-virtio.rom", "ipxe-qemu"},
		{o.IPXELkrn, "ipxe"},
		{"/usr/lib/ipxe/undionly.kpxe", "ipxe"},
		{"/usr/share/seabios/bios-256k.bin", "seabios"},
	}
	if o.Firmware != FirmwareBIOS {
		files = append(files, struct{ path, pkg string }{o.OVMFCode, "ovmf"}, struct{ path, pkg string }{o.OVMFVars, "ovmf"})
	}
	for _, f := range files {
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s is missing: apt-get install %s (or `make deps`)", f.path, f.pkg))
		}
	}
	if netnsExists(o.Namespace) {
		errs = append(errs, fmt.Errorf("network namespace %s already exists: a lab is running (`slate lab status`) or was left behind (`slate lab down`)", o.Namespace))
	}
	return errors.Join(errs...)
}

// DetectAccel returns "kvm" only when a probe guest really boots under KVM.
func DetectAccel(ctx context.Context, o Options) string {
	o.defaults()
	if o.Accel != "auto" {
		return o.Accel
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg"
	}
	ok, _, err := bootProbe(ctx, o.QEMU, o.IPXELkrn, "kvm", 10*time.Second)
	if err != nil || !ok {
		o.Log.Info("lab: KVM does not boot a probe guest; using TCG", "err", err)
		return "tcg"
	}
	return "kvm"
}

func vmName(i int) string { return fmt.Sprintf("vm%d", i+1) }

// Up builds the lab and returns it running. On error everything it created is removed.
func Up(ctx context.Context, o Options) (_ *Lab, err error) {
	o.defaults()
	if err := Preflight(o); err != nil {
		return nil, err
	}
	log := o.Log
	_, statErr := os.Stat(filepath.Join(o.StateDir, ".slate-lab"))
	restored := statErr == nil
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	// A marker, so Down only ever deletes a directory the lab made.
	if err := os.WriteFile(filepath.Join(o.StateDir, ".slate-lab"), []byte("state of `slate lab`\n"), 0o600); err != nil {
		return nil, err
	}
	password, err := bmcPassword(o.StateDir)
	if err != nil {
		return nil, err
	}
	accel := DetectAccel(ctx, o)
	lctx, cancel := context.WithCancel(context.Background())
	l := &Lab{opts: o, cancel: cancel, log: log}
	l.info = Info{
		Namespace: o.Namespace, Bridge: o.Bridge, SupervisorPID: os.Getpid(), Accel: accel,
		UI:      fmt.Sprintf("http://%s", net.JoinHostPort(o.Address.Addr().String(), strconv.Itoa(o.SlatePort))),
		BMCUser: o.BMCUser, BMCPassword: password,
	}
	defer func() {
		if err != nil {
			l.teardown(context.Background())
			// A failed start must not cost the disks and BMC state of a restored lab.
			o.Keep = o.Keep || restored
			cleanFiles(o)
		}
	}()
	var taps []string
	for i := 0; i < o.VMs; i++ {
		taps = append(taps, fmt.Sprintf("tap%d", i))
	}
	if err := writeInfo(o.StateDir, &l.info); err != nil {
		return nil, err
	}
	if err := setupNetwork(ctx, o, taps); err != nil {
		return l, err
	}
	if o.HostLink {
		if err := addHostLink(ctx, o); err != nil {
			return l, err
		}
		l.info.HostLink = hostLinkName
	}
	if err := runRouterAdverts(lctx, o.Namespace, o.Bridge, o.Address6.Masked(), log); err != nil {
		return l, err
	}
	if o.SlateBinary != "" {
		if err := l.startSlate(ctx); err != nil {
			// Slate not coming up must not keep the VMs and BMCs from the technician: say so.
			l.info.SlateError = err.Error()
			l.info.Warnings = append(l.info.Warnings, "Slate did not start: "+err.Error())
			log.Warn("lab: slate serve did not start", "err", err)
		}
	}
	httpClient := &http.Client{Timeout: 30 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, o.Namespace, network, addr)
		},
	}}
	for i := 0; i < o.VMs; i++ {
		if err := l.addVM(ctx, i, taps[i], accel, password, httpClient); err != nil {
			return l, err
		}
	}
	if o.HostUI != "-" {
		hl, err := net.Listen("tcp", o.HostUI)
		if err != nil {
			l.info.Warnings = append(l.info.Warnings, fmt.Sprintf("cannot forward %s to the UI: %v (use `ip netns exec %s` to reach %s)", o.HostUI, err, o.Namespace, l.info.UI))
		} else {
			forward(lctx, hl, o.Namespace, net.JoinHostPort(o.Address.Addr().String(), strconv.Itoa(o.SlatePort)), log)
			l.info.HostUI = "http://" + hl.Addr().String()
		}
	}
	if o.HostBMCBase > 0 {
		for i := range l.info.VMs {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.HostBMCBase+i+1))
			hl, err := net.Listen("tcp", addr)
			if err != nil {
				l.info.Warnings = append(l.info.Warnings, fmt.Sprintf("cannot forward %s to the BMC of %s: %v", addr, vmName(i), err))
				continue
			}
			forward(lctx, hl, o.Namespace, strings.TrimPrefix(l.info.VMs[i].BMC, "http://"), log)
			l.info.VMs[i].HostBMC = "http://" + addr
		}
	}
	for i, b := range l.bmcs {
		if o.PowerOn || b.State().PoweredOn {
			if err := b.PowerOn(ctx); err != nil {
				return l, fmt.Errorf("power on %s: %w", vmName(i), err)
			}
		}
	}
	l.info.Ready = true
	if err := writeInfo(o.StateDir, &l.info); err != nil {
		return l, err
	}
	log.Info("lab: up", "vms", o.VMs, "accel", accel, "namespace", o.Namespace)
	return l, nil
}

func bmcPassword(dir string) (string, error) {
	p := filepath.Join(dir, passwordFile)
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 9)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(buf)
	return pw, os.WriteFile(p, []byte(pw+"\n"), 0o600)
}

func addHostLink(ctx context.Context, o Options) error {
	peer := "slatelab-n"
	host := netip.PrefixFrom(o.Address.Addr().Next(), o.Address.Bits())
	steps := [][]string{
		{"link", "add", hostLinkName, "type", "veth", "peer", "name", peer, "netns", o.Namespace},
		{"addr", "add", host.String(), "dev", hostLinkName},
		{"link", "set", hostLinkName, "up"},
		{"-n", o.Namespace, "link", "set", peer, "master", o.Bridge},
		{"-n", o.Namespace, "link", "set", peer, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, "ip", s...); err != nil {
			return fmt.Errorf("host link: %w", err)
		}
	}
	return nil
}

func (l *Lab) addVM(ctx context.Context, i int, tap, accel, password string, hc *http.Client) error {
	o := l.opts
	name := vmName(i)
	dir := filepath.Join(o.StateDir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfg := vmConfig{
		Name: name, MAC: fmt.Sprintf("52:54:00:5a:%02x:%02x", (i+1)>>8, (i+1)&0xff),
		UUID:   fmt.Sprintf("5a1a7e00-0000-4000-8000-%012x", i+1),
		Serial: fmt.Sprintf("SLATELAB%04d", i+1),
		Tap:    tap, Netns: o.Namespace, Dir: dir, Disks: o.Disks, Memory: o.MemoryMB, CPUs: o.CPUs,
		Accel: accel, QEMU: o.QEMU, OVMFCode: o.OVMFCode,
	}
	for _, kind := range o.Disks {
		if _, err := os.Stat(cfg.diskFile(kind)); err == nil {
			continue // a restored lab keeps its disks
		}
		if _, err := run(ctx, o.QEMUImg, "create", "-q", "-f", "raw", cfg.diskFile(kind), o.DiskSize); err != nil {
			return fmt.Errorf("create %s disk of %s: %w", kind, name, err)
		}
	}
	if _, err := os.Stat(cfg.varsFile()); err != nil {
		if err := copyFile(o.OVMFVars, cfg.varsFile()); err != nil {
			return fmt.Errorf("OVMF variables of %s: %w", name, err)
		}
	}
	v := newVM(cfg, l.log)
	uefi := o.uefi(i)
	b, err := vbmc.New(vbmc.Config{
		Name: name, UUID: cfg.UUID, Serial: cfg.Serial, MAC: cfg.MAC, Machine: v,
		StatePath: filepath.Join(dir, "bmc.json"), Default: vbmc.DefaultState(uefi),
		User: o.BMCUser, Password: password, HTTPClient: hc, MediaDir: dir, Log: l.log,
	})
	if err != nil {
		return err
	}
	v.onExit = func(reason string) {
		// With -no-reboot every reset ends QEMU: the guest's own ("guest-reset") and a QMP
		// system_reset ("host-qmp-system-reset"). Both boot again; anything else is power off.
		if strings.Contains(reason, "reset") {
			if err := b.GuestReset(context.Background()); err != nil {
				l.log.Error("lab: reboot after guest reset failed", "machine", name, "err", err)
			}
			return
		}
		b.GuestPoweredOff()
	}
	addr := net.JoinHostPort(o.Address.Addr().String(), strconv.Itoa(o.BMCPortBase+i+1))
	ln, err := listenIn(o.Namespace, addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	l.vms = append(l.vms, v)
	l.bmcs = append(l.bmcs, b)
	l.srvs = append(l.srvs, srv)
	fw := "uefi"
	if b.State().Bios["BootMode"] == "LegacyBios" {
		fw = "bios"
	}
	l.info.VMs = append(l.info.VMs, VMInfo{
		Name: name, MAC: cfg.MAC, UUID: cfg.UUID, Tap: tap, Firmware: fw, BMC: "http://" + addr,
		Dir: dir, SerialLog: cfg.serialLog(), QEMULog: cfg.qemuLog(), PIDFile: cfg.pidFile(),
	})
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// slateConfig is the configuration the lab hands `slate serve`. The dhcp part follows
// dhcp.Config's YAML keys; it is a plain map so the lab does not depend on the DHCP package.
type slateConfig struct {
	Listen    string         `yaml:"listen"`
	DataDir   string         `yaml:"data_dir"`
	PublicURL string         `yaml:"public_url"`
	DHCP      map[string]any `yaml:"dhcp,omitempty"`
	Boot      map[string]any `yaml:"boot,omitempty"`
	Extra     map[string]any `yaml:",inline"`
}

func (l *Lab) slateConfig() slateConfig {
	o := l.opts
	base := o.Address.Masked().Addr().As4()
	first := netip.AddrFrom4([4]byte{base[0], base[1], base[2], 100})
	last := netip.AddrFrom4([4]byte{base[0], base[1], base[2], 199})
	mask := net.IP(net.CIDRMask(o.Address.Bits(), 32)).String()
	return slateConfig{
		Listen:    net.JoinHostPort(o.Address.Addr().String(), strconv.Itoa(o.SlatePort)),
		DataDir:   filepath.Join(o.StateDir, "slate"),
		PublicURL: l.info.UI,
		DHCP: map[string]any{"interfaces": []any{map[string]any{
			"name":           o.Bridge,
			"mode":           "authoritative",
			"server_address": o.Address.Addr().String(),
			"discovery":      true,
			"pool": map[string]any{
				"range":   first.String() + "-" + last.String(),
				"netmask": mask,
			},
			"boot": map[string]any{"boot_url": l.info.UI},
		}}},
		// TFTP for UEFI PXE clients (BIOS VMs run QEMU's iPXE ROM and go straight to HTTP).
		Boot:  map[string]any{"tftp_listen": net.JoinHostPort(o.Address.Addr().String(), "69")},
		Extra: o.SlateSettings,
	}
}

// startSlate runs `slate serve` inside the namespace and waits until it accepts connections.
// A Slate built before its configuration had a dhcp section refuses the key; the lab then
// starts it without DHCP and says so, rather than leaving the technician without a UI.
func (l *Lab) startSlate(ctx context.Context) error {
	cfg := l.slateConfig()
	err := l.startSlateWith(ctx, cfg)
	if err == nil || !l.slateRefusedDHCP() {
		return err
	}
	cfg.DHCP, cfg.Boot = nil, nil
	if err := l.startSlateWith(ctx, cfg); err != nil {
		return err
	}
	l.info.Warnings = append(l.info.Warnings, "this slate binary has no `dhcp` configuration yet: Slate runs without DHCP, so VMs get no address")
	return nil
}

func (l *Lab) slateRefusedDHCP() bool {
	b, _ := os.ReadFile(l.info.SlateLog)
	return strings.Contains(string(b), "key dhcp is not a configuration key")
}

func (l *Lab) startSlateWith(ctx context.Context, cfg slateConfig) error {
	o := l.opts
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(o.StateDir, "slate.yaml")
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append([]byte("# written by `slate lab up`; regenerated at each start\n"), b...), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(o.StateDir, "slate.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", o.Namespace, o.SlateBinary, "serve", "--config", path)
	cmd.Env = append(os.Environ(), o.SlateEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	l.info.SlateLog, l.info.SlateConfig, l.info.SlateDataDir = logPath, path, cfg.DataDir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s serve: %w", o.SlateBinary, err)
	}
	l.slate = cmd
	l.info.SlatePID = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			l.info.SlatePID = 0
			return fmt.Errorf("slate serve exited (%v): see %s", err, logPath)
		case <-time.After(200 * time.Millisecond):
		}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := dialIn(dctx, o.Namespace, "tcp", cfg.Listen)
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("slate serve does not listen on %s after 30 s: see %s", cfg.Listen, logPath)
}

// Close stops everything this lab runs and removes what it created; with Options.Keep the
// disks, variables, BMC state and logs stay for the next Up.
func (l *Lab) Close(ctx context.Context) error { return l.shutdown(ctx, l.opts.Keep) }

// Stop stops the lab but keeps its state for the next Up, as if the host restarted.
func (l *Lab) Stop(ctx context.Context) error { return l.shutdown(ctx, true) }

func (l *Lab) shutdown(ctx context.Context, keep bool) error {
	var err error
	l.once.Do(func() {
		err = l.teardown(ctx)
		if err == nil {
			o := l.opts
			o.Keep = keep
			err = cleanFiles(o)
		}
	})
	return err
}

func (l *Lab) teardown(ctx context.Context) error {
	l.cancel()
	for _, s := range l.srvs {
		s.Close()
	}
	for _, v := range l.vms {
		v.Stop(ctx)
	}
	if l.slate != nil && l.slate.Process != nil {
		stopProcessGroup(l.slate.Process.Pid, 10*time.Second)
	}
	return removeNetwork(ctx, l.opts)
}

// stopProcessGroup sends SIGTERM to a process group, then SIGKILL after grace.
func stopProcessGroup(pid int, grace time.Duration) {
	if pid <= 0 {
		return
	}
	syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
}

// alive reports whether pid runs (a zombie counts as gone).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// removeNetwork kills whatever still runs in the namespace and deletes it (taps and bridge go
// with it) and the host link.
func removeNetwork(ctx context.Context, o Options) error {
	if _, err := os.Stat("/sys/class/net/" + hostLinkName); err == nil {
		run(ctx, "ip", "link", "del", hostLinkName)
	}
	if !netnsExists(o.Namespace) {
		return nil
	}
	if out, err := exec.Command("ip", "netns", "pids", o.Namespace).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	var err error
	for i := 0; i < 20; i++ {
		if _, err = run(ctx, "ip", "netns", "del", o.Namespace); err == nil || !netnsExists(o.Namespace) {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("remove network namespace %s: %w", o.Namespace, err)
}

// cleanFiles removes the state dir, or with Keep only what is meaningless after a restart.
func cleanFiles(o Options) error {
	if o.Keep {
		for _, pat := range []string{"*/qmp.sock", "*/qemu.pid", infoFile} {
			m, _ := filepath.Glob(filepath.Join(o.StateDir, pat))
			for _, f := range m {
				os.Remove(f)
			}
		}
		return nil
	}
	return removeStateDir(o.StateDir)
}

func removeStateDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ".slate-lab")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
		return fmt.Errorf("%s does not look like a lab state dir (no .slate-lab marker): not deleting it", dir)
	}
	return os.RemoveAll(dir)
}

// Down removes a lab, whoever runs it: it asks the process running the lab to stop, then kills
// what is left (VMs, Slate), deletes the namespace (its taps and bridge with it) and the
// state dir (unless Keep).
func Down(ctx context.Context, o Options) error {
	o.defaults()
	in, err := ReadInfo(o.StateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		o.Log.Warn("lab: lab record unreadable; cleaning up by name", "err", err)
	}
	if in != nil {
		if in.Namespace != "" {
			o.Namespace = in.Namespace
		}
		if pid := in.SupervisorPID; pid > 0 && pid != os.Getpid() && alive(pid) {
			syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(60 * time.Second)
			for alive(pid) && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if in.SlatePID > 0 && alive(in.SlatePID) {
			stopProcessGroup(in.SlatePID, 10*time.Second)
		}
	}
	// QEMU processes the lab recorded (they also die with the namespace's pids below).
	pidFiles, _ := filepath.Glob(filepath.Join(o.StateDir, "*", "qemu.pid"))
	for _, pf := range pidFiles {
		if b, err := os.ReadFile(pf); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if err := removeNetwork(ctx, o); err != nil {
		return err
	}
	return cleanFiles(o)
}

// Status describes a lab from its record and what is really running.
type Status struct {
	Info
	NamespaceExists bool  `json:"namespace_exists"`
	SupervisorAlive bool  `json:"supervisor_alive"`
	SlateAlive      bool  `json:"slate_alive"`
	QEMUPIDs        []int `json:"qemu_pids"` // per VM, 0 when off
}

// GetStatus reads the lab's record and checks the processes it names.
func GetStatus(o Options) (*Status, error) {
	o.defaults()
	in, err := ReadInfo(o.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		if netnsExists(o.Namespace) {
			return nil, fmt.Errorf("no lab record in %s, but namespace %s exists: `slate lab down` cleans it up", o.StateDir, o.Namespace)
		}
		return nil, fmt.Errorf("no lab is running (no %s in %s): start one with `slate lab up`", infoFile, o.StateDir)
	}
	if err != nil {
		return nil, err
	}
	st := &Status{Info: *in, NamespaceExists: netnsExists(in.Namespace), SupervisorAlive: alive(in.SupervisorPID), SlateAlive: alive(in.SlatePID)}
	for _, v := range in.VMs {
		pid := 0
		if b, err := os.ReadFile(v.PIDFile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(p) {
				pid = p
			}
		}
		st.QEMUPIDs = append(st.QEMUPIDs, pid)
	}
	return st, nil
}

// SerialOffset is the current length of VM i's serial log: pass it to WaitSerial to look only
// at what a boot prints from now on.
func (l *Lab) SerialOffset(i int) int64 {
	fi, err := os.Stat(l.info.VMs[i].SerialLog)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// WaitSerial waits until VM i's serial log, from offset on, contains want, and returns that
// part of the log. End-to-end tests use it for boot markers.
func (l *Lab) WaitSerial(ctx context.Context, i int, offset int64, want string) (string, error) {
	path := l.info.VMs[i].SerialLog
	var seg string
	for {
		if b, err := os.ReadFile(path); err == nil && int64(len(b)) > offset {
			seg = string(b[offset:])
			if strings.Contains(seg, want) {
				return seg, nil
			}
		}
		select {
		case <-ctx.Done():
			if len(seg) > 2000 {
				seg = seg[len(seg)-2000:]
			}
			return seg, fmt.Errorf("%q not on %s's serial log (%s): %w; its end:\n%s", want, l.info.VMs[i].Name, path, ctx.Err(), seg)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
