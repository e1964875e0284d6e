package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/lab/vbmc"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// The rackmount mockup's firmware inventory (DMTF public-rackmount1).
const (
	mockBMC  = "1.45.455b66-rev4"
	mockBIOS = "P79 v1.45"
)

// fastDialer opens real Redfish clients with short waits: the test BMCs answer at once.
func fastDialer(ctx context.Context, address, user, password, profile, fingerprint, system string) (BMC, error) {
	v, err := redfish.VendorByName(profile)
	if err != nil {
		return nil, err
	}
	c, err := redfish.Connect(ctx, redfish.Config{Address: address, Username: user, Password: password, Vendor: v, Fingerprint: fingerprint, System: system,
		Timeout: 5 * time.Second, Retries: 1, RetryBackoff: 5 * time.Millisecond, PowerOffGrace: 100 * time.Millisecond,
		PowerWait: 2 * time.Second, TaskTimeout: 5 * time.Second, BIOSVerifyTimeout: time.Second, PollInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// imageServer serves firmware images on loopback, as Slate serves them to BMCs.
func imageServer(t *testing.T, files map[string]string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(b))
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// baseline is a release's firmware_baseline as an author writes it.
func baseline(name string, comps ...[3]string) map[string]any {
	var cs []any
	for _, c := range comps {
		cs = append(cs, map[string]any{"component": c[0], "version": c[1], "image_uri": c[2]})
	}
	b := map[string]any{"components": cs}
	if name != "" {
		b["name"] = name
	}
	return b
}

// fwJourney is one machine enrolled by its BMC, ready, with an approved disk release.
type fwJourney struct {
	s   *inventory.Store
	r   *Reconciler
	m   inventory.Machine
	rel inventory.Release
}

func newFWJourney(t *testing.T, bmcURL string, fw, bios map[string]any) *fwJourney {
	t.Helper()
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(fastDialer)
	j := &fwJourney{s: s}
	err := s.Update(ctx, func(tx *inventory.Tx) error {
		var err error
		j.rel, err = tx.CreateRelease(ctx, inventory.Release{Name: "hmi", Version: "1", Kind: KindDisk, ImageRef: "plant/hmi",
			ImageDigest: "sha256:" + strings.Repeat("cd", 32), BIOSProfile: bios, FirmwareBaseline: fw, CreatedBy: "olga"})
		if err != nil {
			return err
		}
		return tx.SetReleaseState(ctx, j.rel.ID, ReleaseApproved, "omar")
	})
	if err != nil {
		t.Fatal(err)
	}
	req := EnrollRequest{Name: "fw-1", MACs: []string{"52:54:00:00:f1:01"}}
	if bmcURL != "" {
		req.BMCAddress, req.BMCUsername, req.BMCPassword = bmcURL, "admin", "password"
	}
	j.m, err = l.Enroll(ctx, box, "op", req)
	if err != nil {
		t.Fatal(err)
	}
	ref := "hmi@1"
	err = s.Update(ctx, func(tx *inventory.Tx) error {
		if err := tx.SetMachineState(ctx, j.m.ID, Ready, "", "", ""); err != nil {
			return err
		}
		_, err := tx.UpdateMachine(ctx, j.m.ID, inventory.MachinePatch{DesiredRelease: &ref})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	j.r = NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	j.r.Installer = &Installer{Releases: s, Images: fakeImages{}, PublicURL: "http://slate"}
	return j
}

// run takes one reconcile pass and waits for the machine to reach want, collecting every
// explanation the page would have shown on the way.
func (j *fwJourney) run(t *testing.T, want string) (inventory.Machine, []string) {
	t.Helper()
	ctx := context.Background()
	if err := j.r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var whys []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		if w := j.r.Why(j.m.ID); len(whys) == 0 || whys[len(whys)-1] != w {
			whys = append(whys, w)
		}
		got, err := j.s.GetMachine(ctx, j.m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == want {
			return got, whys
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine %s (%s), want %s; explanations %q", got.State, got.FailedReason, want, whys)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (j *fwJourney) audits(t *testing.T, action string) []inventory.AuditEvent {
	t.Helper()
	evs, err := j.s.ListAudit(context.Background(), inventory.AuditFilter{Subject: j.m.ID, Action: action, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// auditedComponents reads the components of a firmware.apply event back as the page would.
func auditedComponents(t *testing.T, ev inventory.AuditEvent) map[string]map[string]any {
	t.Helper()
	list, _ := ev.Details["components"].([]any)
	out := map[string]map[string]any{}
	for _, c := range list {
		m, _ := c.(map[string]any)
		out[fmt.Sprint(m["component"])] = m
	}
	return out
}

func simpleUpdates(s *redfishtest.Server) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "UpdateService.SimpleUpdate") {
			n++
		}
	}
	return n
}

// TestFirmwareBaselineUpdatesWhatDiffers: a baseline with one component behind is applied
// through the machine's BMC (DMTF mockup), verified and audited, and the machine goes on to
// its install with the progress explained on the way.
func TestFirmwareBaselineUpdatesWhatDiffers(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bmc.bin": "SLATEFW component=BMC version=1.46.0\npayload", "/fw/bios.bin": "unused"})
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), TaskPolls: 20})
	j := newFWJourney(t, bmc.URL, baseline("2026-11", [3]string{"BMC", "1.46.0", img + "/fw/bmc.bin"}, [3]string{"BIOS", mockBIOS, img + "/fw/bios.bin"}), nil)

	got, whys := j.run(t, Provisioning)
	if _, ok, _ := j.s.LatestTask(context.Background(), got.ID, string(agentproto.KindInstallImage)); !ok {
		t.Fatal("no install task after the firmware baseline")
	}
	if v := bmc.Get("/redfish/v1/UpdateService/FirmwareInventory/BMC")["Version"]; v != "1.46.0" {
		t.Fatalf("BMC firmware %v after configure, want 1.46.0", v)
	}
	if n := simpleUpdates(bmc); n != 1 {
		t.Fatalf("%d SimpleUpdate requests, want 1 (only the component that differs)", n)
	}
	progress := "updating firmware BMC " + mockBMC + " → 1.46.0 (1 of 1)"
	if !strings.Contains(strings.Join(whys, "\n"), progress) {
		t.Fatalf("the page never said %q; it said %q", progress, whys)
	}
	evs := j.audits(t, "firmware.apply")
	if len(evs) != 1 || evs[0].Outcome != "ok" || evs[0].Details["baseline"] != "2026-11" || evs[0].Details["updated"] != float64(1) {
		t.Fatalf("firmware.apply audit: %+v", evs)
	}
	comps := auditedComponents(t, evs[0])
	if c := comps["BMC"]; c["state"] != fwUpdated || c["before"] != mockBMC || c["after"] != "1.46.0" {
		t.Fatalf("BMC audited as %v", c)
	}
	if c := comps["BIOS"]; c["state"] != fwCurrent || c["after"] != mockBIOS {
		t.Fatalf("BIOS audited as %v", c)
	}
}

// TestFirmwareBaselineAlreadyMet: nothing is sent to a machine already at its baseline; that
// is audited, and the BIOS profile of the same release is still applied before the install.
func TestFirmwareBaselineAlreadyMet(t *testing.T) {
	img := "http://127.0.0.1:1" // never fetched
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
	j := newFWJourney(t, bmc.URL, baseline("", [3]string{"BMC", mockBMC, img + "/bmc.bin"}, [3]string{"BIOS", mockBIOS, img + "/bios.bin"}),
		map[string]any{"ProcHyperthreading": "Disabled"})

	j.run(t, Provisioning)
	if n := simpleUpdates(bmc); n != 0 {
		t.Fatalf("%d firmware updates sent to a machine at its baseline", n)
	}
	evs := j.audits(t, "firmware.apply")
	if len(evs) != 1 || evs[0].Outcome != "ok" || evs[0].Details["updated"] != float64(0) || evs[0].Details["baseline"] != "hmi@1" {
		t.Fatalf("firmware.apply audit: %+v", evs)
	}
	for name, c := range auditedComponents(t, evs[0]) {
		if c["state"] != fwCurrent {
			t.Fatalf("%s audited as %v, want current", name, c)
		}
	}
	if evs := j.audits(t, "bios.apply"); len(evs) != 1 {
		t.Fatalf("bios.apply audits: %+v", evs)
	}
	if attrs, _ := bmc.Get("/redfish/v1/Systems/437XR1138R2/Bios")["Attributes"].(map[string]any); attrs["ProcHyperthreading"] != "Disabled" {
		t.Fatalf("BIOS after configure: %v", attrs["ProcHyperthreading"])
	}
}

// TestFirmwareUpdateFailureFailsTheMachine: an update the BMC refuses or fails, or a component
// it does not have, fails the machine naming the component and the versions; nothing is
// installed.
func TestFirmwareUpdateFailureFailsTheMachine(t *testing.T) {
	img := imageServer(t, map[string]string{"/fw/bmc.bin": "SLATEFW component=BMC version=1.46.0\n", "/fw/bad.bin": "garbage"})
	for _, tc := range []struct {
		name    string
		comps   [][3]string
		fault   *redfishtest.Fault
		reason  []string
		updates int
	}{
		{name: "refused", comps: [][3]string{{"BMC", "1.46.0", img + "/fw/bmc.bin"}},
			fault:  &redfishtest.Fault{Method: http.MethodPost, Path: "/redfish/v1/UpdateService/Actions", Kind: redfishtest.FaultStatus, Status: http.StatusBadRequest},
			reason: []string{"BMC not updated from " + mockBMC + " to 1.46.0", "injected 400"}, updates: 1},
		{name: "task failed", comps: [][3]string{{"BMC", "1.46.0", img + "/fw/bad.bin"}},
			reason: []string{"BMC not updated from " + mockBMC + " to 1.46.0", "not a firmware image"}, updates: 1},
		{name: "unknown component", comps: [][3]string{{"BMC", "1.46.0", img + "/fw/bmc.bin"}, {"NIC9", "2.0", img + "/fw/nic.bin"}},
			reason: []string{"no firmware component NIC9", "wants 2.0"}, updates: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t)})
			if tc.fault != nil {
				bmc.Inject(*tc.fault)
			}
			j := newFWJourney(t, bmc.URL, baseline("2026-11", tc.comps...), nil)
			got, _ := j.run(t, Failed)
			for _, want := range tc.reason {
				if !strings.Contains(got.FailedReason, want) {
					t.Fatalf("failed reason %q does not say %q", got.FailedReason, want)
				}
			}
			if got.FailedFrom != Configuring {
				t.Fatalf("failed from %s, want configuring", got.FailedFrom)
			}
			if n := simpleUpdates(bmc); n != tc.updates {
				t.Fatalf("%d SimpleUpdate requests, want %d", n, tc.updates)
			}
			if _, ok, _ := j.s.LatestTask(context.Background(), got.ID, string(agentproto.KindInstallImage)); ok {
				t.Fatal("installed despite the failed firmware baseline")
			}
			evs := j.audits(t, "firmware.apply")
			if len(evs) != 1 || evs[0].Outcome != "failed" || !strings.Contains(fmt.Sprint(evs[0].Details["error"]), tc.reason[0]) {
				t.Fatalf("firmware.apply audit: %+v", evs)
			}
		})
	}
}

// TestFirmwareWithoutBMC: a machine without a BMC is installed without configuring; the page
// says the baseline was not applied and why, and the skip is audited once.
func TestFirmwareWithoutBMC(t *testing.T) {
	j := newFWJourney(t, "", baseline("2026-11", [3]string{"BMC", "1.46.0", "http://127.0.0.1:1/bmc.bin"}), nil)
	got, _ := j.run(t, Provisioning)
	if why := j.r.Why(got.ID); !strings.Contains(why, "firmware baseline 2026-11 not applied: the machine has no BMC") {
		t.Fatalf("why: %q", why)
	}
	j.r.ReconcileOnce(context.Background())
	evs := j.audits(t, "firmware.skip")
	if len(evs) != 1 || evs[0].Details["reason"] != "the machine has no BMC" || evs[0].Details["baseline"] != "2026-11" {
		t.Fatalf("firmware.skip audits: %+v", evs)
	}
	if evs := j.audits(t, "firmware.apply"); len(evs) != 0 {
		t.Fatalf("firmware.apply without a BMC: %+v", evs)
	}
}

// labMachine stands in for the QEMU VM behind the lab's virtual BMC.
type labMachine struct {
	mu     sync.Mutex
	on     bool
	starts int
}

func (m *labMachine) Powered(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on, nil
}

func (m *labMachine) Start(context.Context, vbmc.BootSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.on {
		return errors.New("start while on")
	}
	m.on = true
	m.starts++
	return nil
}

func (m *labMachine) Stop(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	return nil
}

func (m *labMachine) Shutdown(ctx context.Context) error         { return m.Stop(ctx) }
func (m *labMachine) ChangeMedium(context.Context, string) error { return nil }

// TestFirmwareStagedUntilReset: the lab's virtual BMC (another Redfish implementation) stages
// BIOS firmware until the next reset, as real BMCs do; the configure step resets the machine
// once, verifies the new version, then installs.
func TestFirmwareStagedUntilReset(t *testing.T) {
	vm := &labMachine{on: true}
	b, err := vbmc.New(vbmc.Config{Name: "vm1", UUID: "6E1B2A50-0000-4000-8000-0000000000f1", Serial: "LAB-00F1", MAC: "52:54:00:00:f1:01",
		Machine: vm, User: "admin", Password: "password", MediaDir: t.TempDir(), Default: vbmc.DefaultState(true),
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(b)
	t.Cleanup(srv.Close)
	img := imageServer(t, map[string]string{"/fw/bios.bin": strings.Repeat("\xa5", 4096)})
	// The lab BMC's rule: an accepted image raises the last version number (1.0.0 → 1.0.1).
	j := newFWJourney(t, srv.URL, baseline("lab", [3]string{"BIOS", "1.0.1", img + "/fw/bios.bin"}), nil)

	j.run(t, Provisioning)
	vm.mu.Lock()
	starts := vm.starts
	vm.mu.Unlock()
	if starts != 1 {
		t.Fatalf("the machine was started %d times, want one reset to activate the staged firmware", starts)
	}
	evs := j.audits(t, "firmware.apply")
	if len(evs) != 1 || evs[0].Outcome != "ok" {
		t.Fatalf("firmware.apply audit: %+v", evs)
	}
	if c := auditedComponents(t, evs[0])["BIOS"]; c["state"] != fwUpdated || c["before"] != "1.0.0" || c["after"] != "1.0.1" {
		t.Fatalf("BIOS audited as %v", c)
	}
}

// TestReleaseRefusesMalformedBaseline: a baseline that could never be applied is refused when
// the release is created, naming the bad field; a good one (its name taken from the release)
// is accepted.
func TestReleaseRefusesMalformedBaseline(t *testing.T) {
	s, _, _ := setup(t)
	rs := NewReleases(s, nil, false)
	ctx := context.Background()
	comp := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	good := comp("component", "BMC", "version", "1.46.0", "image_uri", "http://10.99.0.1:8080/fw/bmc.bin")
	for _, tc := range []struct {
		name string
		fw   map[string]any
		want string
	}{
		{"component map instead of a list", map[string]any{"BMC": comp("version", "1.46.0", "image", "http://x/bmc.bin")}, `unknown field "BMC"`},
		{"no components", map[string]any{"name": "2026-11"}, "no components"},
		{"version not a string", map[string]any{"components": []any{comp("component", "BMC", "version", 1.46, "image_uri", "http://x/b")}}, "components.version"},
		{"no image", map[string]any{"components": []any{comp("component", "BMC", "version", "1.46.0")}}, "component BMC: image_uri"},
		{"ftp image", map[string]any{"components": []any{comp("component", "BMC", "version", "1.46.0", "image_uri", "ftp://x/b")}}, "image_uri \"ftp://x/b\""},
		{"twice", map[string]any{"components": []any{good, good}}, "component BMC listed twice"},
		{"no version", map[string]any{"components": []any{comp("component", "BMC", "image_uri", "http://x/b")}}, "component BMC has no version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rs.Create(ctx, "olga", NewRelease{Name: "hmi", Version: "2", Kind: KindDisk, FirmwareBaseline: tc.fw})
			if !errors.Is(err, inventory.ErrInvalid) || !strings.Contains(err.Error(), "firmware_baseline") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an invalid-input error naming %q", err, tc.want)
			}
		})
	}
	rel, err := rs.Create(ctx, "olga", NewRelease{Name: "hmi", Version: "3", Kind: KindDisk, FirmwareBaseline: map[string]any{"components": []any{good}}})
	if err != nil {
		t.Fatal(err)
	}
	if b, ok, err := releaseBaseline(rel); !ok || err != nil || b.Name != "hmi@3" || b.Components[0].Version != "1.46.0" {
		t.Fatalf("stored baseline %+v %t %v", b, ok, err)
	}
}
