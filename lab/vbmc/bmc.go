package vbmc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Config is one BMC.
type Config struct {
	// Name is the machine's name (vm1), used in logs and resource names.
	Name string
	// UUID and Serial are what the system resource reports.
	UUID, Serial string
	// MAC is the machine's first NIC, reported on the system's EthernetInterfaces.
	MAC     string
	Machine Machine
	// StatePath is where the state is kept across restarts; empty keeps it in memory.
	StatePath string
	// Default is the state when StatePath holds none yet.
	Default State
	// User and Password are the one account (Basic auth and sessions).
	User, Password string
	// HTTPClient fetches SimpleUpdate and InsertMedia images. In the lab it dials inside the
	// lab's network namespace, where those URLs point.
	HTTPClient *http.Client
	// MediaDir is where fetched virtual media images are kept.
	MediaDir string
	// MaxImageBytes bounds a fetched or uploaded image (default 4 GiB).
	MaxImageBytes int64
	Log           *slog.Logger
	Now           func() time.Time
	Rand          io.Reader
}

// BMC is a virtual BMC; it is an http.Handler serving /redfish.
type BMC struct {
	cfg Config
	log *slog.Logger

	// opMu serialises what changes the machine, so a reset never interleaves with a power on.
	opMu sync.Mutex
	// mu guards the fields below; it is never held while the machine is being driven.
	mu       sync.Mutex
	state    State
	sessions map[string]*session // by token
	tasks    map[string]*task
	nextID   int
}

type session struct {
	ID, User, Token string
	Created         time.Time
	seq             int // creation order
}

type task struct {
	ID, Name, State, Status string
	Percent                 int
	Start, End              time.Time
	Messages                []string
}

// New loads the BMC's state (or starts from cfg.Default) and returns it, not yet serving.
func New(cfg Config) (*BMC, error) {
	if cfg.Machine == nil {
		return nil, errors.New("vbmc: Config.Machine is required")
	}
	if cfg.User == "" || cfg.Password == "" {
		return nil, errors.New("vbmc: Config.User and Config.Password are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
	if cfg.MaxImageBytes == 0 {
		cfg.MaxImageBytes = 4 << 30
	}
	if cfg.Default.Bios == nil {
		cfg.Default = DefaultState(true)
	}
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	st, err := loadState(cfg.StatePath, cfg.Default.clone())
	if err != nil {
		return nil, err
	}
	b := &BMC{
		cfg:      cfg,
		log:      cfg.Log.With("machine", cfg.Name, "mac", cfg.MAC),
		state:    st,
		sessions: map[string]*session{},
		tasks:    map[string]*task{},
	}
	return b, nil
}

// State returns a copy of the current state.
func (b *BMC) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.clone()
}

// update changes the state under the lock and persists it.
func (b *BMC) update(fn func(*State)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := b.state.clone()
	fn(&next)
	if err := saveState(b.cfg.StatePath, next); err != nil {
		b.log.Error("vbmc: cannot persist state", "err", err)
		return err
	}
	b.state = next
	return nil
}

// PowerOn powers the machine on if it is off (the lab calls it to restore power after a
// restart).
func (b *BMC) PowerOn(ctx context.Context) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	on, err := b.cfg.Machine.Powered(ctx)
	if err != nil {
		return err
	}
	if on {
		return nil
	}
	return b.bootLocked(ctx)
}

// PowerOff pulls the plug (the lab calls it on the way down).
func (b *BMC) PowerOff(ctx context.Context) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	return b.stopLocked(ctx, true)
}

// GuestReset is called when the guest rebooted itself (the VM runs with -no-reboot, so that
// reboot stopped QEMU): the BMC boots it again, applying what waits for the next reset.
func (b *BMC) GuestReset(ctx context.Context) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.log.Info("vbmc: guest reset; booting again")
	return b.bootLocked(ctx)
}

// GuestPoweredOff records a power off the guest chose (ACPI shutdown or halt).
func (b *BMC) GuestPoweredOff() {
	_ = b.update(func(s *State) { s.PoweredOn = false })
}

func (b *BMC) stopLocked(ctx context.Context, record bool) error {
	on, err := b.cfg.Machine.Powered(ctx)
	if err != nil {
		return err
	}
	if on {
		if err := b.cfg.Machine.Stop(ctx); err != nil {
			return fmt.Errorf("power off %s: %w", b.cfg.Name, err)
		}
	}
	if record {
		return b.update(func(s *State) { s.PoweredOn = false })
	}
	return nil
}

// bootLocked is what a real BMC does at power on or reset: the firmware applies pending BIOS
// settings and firmware, consumes a one-time boot override, then boots.
func (b *BMC) bootLocked(ctx context.Context) error {
	var spec BootSpec
	err := b.update(func(s *State) {
		for k, v := range s.BiosPending {
			s.Bios[k] = v
		}
		s.BiosPending = nil
		if s.Firmware != nil {
			b.log.Info("vbmc: firmware applied at reset", "from", s.BiosVersion, "to", s.Firmware.Version)
			s.BiosVersion = s.Firmware.Version
			s.Firmware = nil
		}
		target := TargetNone
		if s.BootEnabled != OverrideDisabled {
			target = s.BootTarget
		}
		if s.BootEnabled == OverrideOnce {
			s.BootEnabled, s.BootTarget = OverrideDisabled, TargetNone
		}
		spec = BootSpec{
			Target:         target,
			UEFI:           s.Bios["BootMode"] == "Uefi",
			SecureBoot:     s.Bios["SecureBoot"] == "Enabled",
			PXEEnabled:     s.Bios["PxeDev1EnDis"] == "Enabled",
			Virtualization: s.Bios["ProcVirtualization"] == "Enabled",
			BIOSVersion:    s.BiosVersion,
		}
		if s.Media.Inserted {
			spec.MediaPath = s.Media.Path
		}
		s.PoweredOn = true
		s.Boots++
	})
	if err != nil {
		return err
	}
	b.log.Info("vbmc: powering on", "target", spec.Target, "uefi", spec.UEFI, "bios_version", spec.BIOSVersion)
	if err := b.cfg.Machine.Start(ctx, spec); err != nil {
		_ = b.update(func(s *State) { s.PoweredOn = false })
		return fmt.Errorf("power on %s: %w", b.cfg.Name, err)
	}
	return nil
}

// reset carries out ComputerSystem.Reset.
func (b *BMC) reset(ctx context.Context, kind string) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	on, err := b.cfg.Machine.Powered(ctx)
	if err != nil {
		return err
	}
	b.log.Info("vbmc: reset", "type", kind, "was_on", on)
	switch kind {
	case "On", "ForceOn":
		if on {
			return nil
		}
		return b.bootLocked(ctx)
	case "ForceOff":
		return b.stopLocked(ctx, true)
	case "GracefulShutdown":
		if !on {
			return nil
		}
		return b.cfg.Machine.Shutdown(ctx)
	case "ForceRestart", "PowerCycle":
		if err := b.stopLocked(ctx, false); err != nil {
			return err
		}
		return b.bootLocked(ctx)
	}
	return fmt.Errorf("reset type %q is not supported", kind)
}

func (b *BMC) powered(ctx context.Context) bool {
	on, err := b.cfg.Machine.Powered(ctx)
	if err != nil {
		b.log.Warn("vbmc: cannot read power state", "err", err)
		return false
	}
	return on
}

func (b *BMC) newID() string {
	b.nextID++
	return fmt.Sprint(b.nextID)
}

func (b *BMC) randomToken() (string, error) {
	buf := make([]byte, 24)
	if _, err := io.ReadFull(b.cfg.Rand, buf); err != nil {
		return "", err
	}
	return hex.EncodeToString(buf), nil
}

// newTask records a task and returns its id.
func (b *BMC) newTask(name string) *task {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &task{ID: b.newID(), Name: name, State: "Running", Status: "OK", Start: b.cfg.Now()}
	b.tasks[t.ID] = t
	return t
}

func (b *BMC) finishTask(t *task, err error, msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t.End = b.cfg.Now()
	t.Percent = 100
	if err != nil {
		t.State, t.Status = "Exception", "Critical"
		t.Messages = append(t.Messages, err.Error())
		return
	}
	t.State = "Completed"
	t.Messages = append(t.Messages, msg)
}

// stageFirmware reads an image to the end, so a truncated transfer is refused, and stages it
// for the next reset.
func (b *BMC) stageFirmware(source string, r io.Reader) (*Firmware, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, b.cfg.MaxImageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read firmware image %s: %w", source, err)
	}
	if n > b.cfg.MaxImageBytes {
		return nil, fmt.Errorf("firmware image %s is larger than %d bytes", source, b.cfg.MaxImageBytes)
	}
	if n == 0 {
		return nil, fmt.Errorf("firmware image %s is empty", source)
	}
	var fw *Firmware
	err = b.update(func(s *State) {
		base := s.BiosVersion
		if s.Firmware != nil {
			base = s.Firmware.Version
		}
		fw = &Firmware{Source: source, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Version: bumpVersion(base)}
		s.Firmware = fw
	})
	return fw, err
}

// fetchMedia downloads a virtual media image to MediaDir and returns its path.
func (b *BMC) fetchMedia(ctx context.Context, uri string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", err
	}
	resp, err := b.cfg.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch %s: HTTP %s", uri, resp.Status)
	}
	dir := b.cfg.MediaDir
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, b.cfg.Name+"-cd.iso")
	tmp := path + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, b.cfg.MaxImageBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > b.cfg.MaxImageBytes {
		err = fmt.Errorf("image is larger than %d bytes", b.cfg.MaxImageBytes)
	}
	if err == nil && resp.ContentLength > 0 && n != resp.ContentLength {
		err = fmt.Errorf("got %d of %d bytes", n, resp.ContentLength)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("fetch %s: %w", uri, err)
	}
	return path, os.Rename(tmp, path)
}
