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

	"slate/inventory"
	"slate/lab/vbmc"
	"slate/redfish"
	"slate/redfish/redfishtest"
)

// cdMachine is the VM behind the lab BMC, remembering how it was started.
type cdMachine struct {
	labMachine
	mu    sync.Mutex
	specs []vbmc.BootSpec
}

func (m *cdMachine) Start(ctx context.Context, s vbmc.BootSpec) error {
	m.mu.Lock()
	m.specs = append(m.specs, s)
	m.mu.Unlock()
	return m.labMachine.Start(ctx, s)
}

func mediaAudits(t *testing.T, s *inventory.Store, id, action string) []inventory.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), inventory.AuditFilter{Subject: id, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []inventory.AuditEvent
	for _, e := range evs {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// The lab's virtual BMC: "boot from virtual media" inserts the deploy ISO Slate serves (the
// BMC fetches it), boots the machine once from CD with that medium, arms the expected boot
// (so the media-booted agent gets its token), and audits both steps; eject empties the drive.
func TestMediaBootThroughTheLabBMC(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(fastDialer)
	var fetched []string
	slate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched = append(fetched, r.URL.Path)
		if r.URL.Path != DeployISOPath {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(strings.Repeat("\x00", 4096)))
	}))
	t.Cleanup(slate.Close)
	l.SetMediaBase(slate.URL + "/")
	vm := &cdMachine{}
	b, err := vbmc.New(vbmc.Config{Name: "vm1", UUID: "6E1B2A50-0000-4000-8000-0000000000c1", Serial: "LAB-00C1", MAC: "52:54:00:00:c1:01",
		Machine: vm, User: "admin", Password: "password", MediaDir: t.TempDir(), Default: vbmc.DefaultState(false),
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	bmcSrv := httptest.NewTLSServer(b)
	t.Cleanup(bmcSrv.Close)
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "cd-1", BMCAddress: bmcSrv.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.MediaStatus(ctx, box, s, m.ID)
	if err != nil || st.Inserted {
		t.Fatalf("before: %+v %v", st, err)
	}
	res, err := l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: DeployImage, Boot: true})
	if err != nil {
		t.Fatal(err)
	}
	iso := slate.URL + DeployISOPath
	if !res.Booted || !res.Inserted || res.Image != iso || len(fetched) != 1 {
		t.Fatalf("result %+v, fetched %v", res, fetched)
	}
	vm.mu.Lock()
	specs := vm.specs
	vm.mu.Unlock()
	if len(specs) != 1 || specs[0].Target != vbmc.TargetCd || specs[0].MediaPath == "" {
		t.Fatalf("the machine was started %+v, want once from the CD with the ISO in it", specs)
	}
	if _, ok, _ := s.BootExpected(ctx, m.ID); !ok {
		t.Fatal("the media boot is not expected: its agent would get no token")
	}
	if evs := mediaAudits(t, s, m.ID, "bmc.media-insert"); len(evs) != 1 || evs[0].Outcome != "ok" || evs[0].Actor != "olga" || evs[0].Details["image"] != iso {
		t.Fatalf("insert audits %+v", evs)
	}
	if evs := mediaAudits(t, s, m.ID, "bmc.boot-once"); len(evs) != 1 || evs[0].Details["target"] != "Cd" {
		t.Fatalf("boot audits %+v", evs)
	}
	if res, err = l.EjectMedia(ctx, box, s, "olga", m.ID); err != nil || res.Inserted {
		t.Fatalf("eject: %+v %v", res, err)
	}
	if evs := mediaAudits(t, s, m.ID, "bmc.media-eject"); len(evs) != 1 || evs[0].Outcome != "ok" {
		t.Fatalf("eject audits %+v", evs)
	}
}

// DMTF's public-telemetry mockup (a manager's CD with InsertMedia/EjectMedia, a medium in):
// a running machine is not booted without force, and nothing is inserted then; with force it
// is restarted from CD. Images Slate does not serve are refused before the BMC is touched.
func TestMediaRunningMachineAndForeignImages(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(fastDialer)
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "On"})
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "tel-1", MACs: []string{"52:54:00:00:c1:02"}, BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	// without public_url there is no URL a BMC could fetch
	if _, err := l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: DeployImage}); !errors.Is(err, ErrNoPublicURL) {
		t.Fatalf("no public_url: %v", err)
	}
	l.SetMediaBase("http://10.99.0.1:8080")
	before := len(bmc.Requests())
	for _, img := range []string{"http://evil.example/x.iso", "http://10.99.0.1:8080/api/v1/users", "http://10.99.0.1:8080.evil/boot/x.iso", "http://10.99.0.1:8080/boot/../api"} {
		if _, err := l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: img}); !errors.Is(err, inventory.ErrInvalid) {
			t.Fatalf("%s: %v", img, err)
		}
	}
	if len(bmc.Requests()) != before {
		t.Fatal("a refused image reached the BMC")
	}
	cd := "/redfish/v1/Managers/1/VirtualMedia/CD1"
	old := bmc.Get(cd)["Image"]
	_, err = l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: DeployImage, Boot: true})
	if !errors.Is(err, ErrMachineRunning) || !strings.Contains(err.Error(), "force") {
		t.Fatalf("running machine: %v", err)
	}
	if bmc.Get(cd)["Image"] != old || len(bmc.Boots()) != 0 {
		t.Fatal("a refused boot changed the CD or the boot override")
	}
	res, err := l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: DeployImage, Boot: true, Force: true})
	if err != nil || !res.Booted || res.Image != "http://10.99.0.1:8080"+DeployISOPath {
		t.Fatalf("forced: %+v %v", res, err)
	}
	if boots := bmc.Boots(); len(boots) != 1 || boots[0] != string(redfish.BootCD) {
		t.Fatalf("boots %v", boots)
	}
	// a machine without a BMC: a clear refusal
	bare, _ := l.Enroll(ctx, box, "op", EnrollRequest{Name: "bare", MACs: []string{"52:54:00:00:c1:03"}})
	if _, err := l.MediaStatus(ctx, box, s, bare.ID); !errors.Is(err, inventory.ErrConflict) || !strings.Contains(err.Error(), "has no BMC") {
		t.Fatalf("no BMC: %v", err)
	}
}

// A machine on a segment without network boot: the operator leaves the deploy ISO in its
// virtual CD, and the boots Slate starts itself (the reconciler's power-on for inspection) go
// to the CD instead of PXE, audited with why. With the CD ejected, Slate boots from the network
// again.
func TestReconcilerBootsFromTheDeployISOLeftInTheCD(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(fastDialer)
	l.SetMediaBase("http://10.99.0.1:8080")
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "Off"})
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "cd-2", MACs: []string{"52:54:00:00:c1:04"}, BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: DeployImage}); err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	if err := r.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if boots := bmc.Boots(); len(boots) != 1 || boots[0] != "Cd" {
		t.Fatalf("boots %v, want one from the CD", boots)
	}
	evs := mediaAudits(t, s, m.ID, "bmc.boot-once")
	if len(evs) != 1 || evs[0].Details["target"] != "Cd" || !strings.Contains(fmt.Sprint(evs[0].Details["via"]), "deploy ISO") {
		t.Fatalf("boot audit %+v", evs)
	}
	// Ejected: the next boot Slate starts is a network boot.
	s2, l2, _ := setup(t)
	l2.SetBMCDialer(fastDialer)
	l2.SetMediaBase("http://10.99.0.1:8080")
	bmc2 := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "Off"})
	m2, err := l2.Enroll(ctx, box, "op", EnrollRequest{Name: "cd-3", MACs: []string{"52:54:00:00:c1:05"}, BMCAddress: bmc2.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.EjectMedia(ctx, box, s2, "olga", m2.ID); err != nil {
		t.Fatal(err)
	}
	if err := NewReconciler(s2, l2, box, slog.New(slog.DiscardHandler), 0).ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if boots := bmc2.Boots(); len(boots) != 1 || boots[0] != "Pxe" {
		t.Fatalf("boots %v after eject, want one from the network", boots)
	}
}

// The reconciler's "next boot" settings with the deploy ISO in the CD: the deploy environment
// next (before an update) is the CD, not the network; the disk next (after an install) also
// ejects the ISO, audited as Slate's, so a later power cut cannot start it again from a CD
// first in the boot order.
func TestBootNextUsesAndThenEjectsTheDeployISO(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	box, _ := inventory.NewSecretBox(make([]byte, 32))
	l.SetBMCDialer(fastDialer)
	l.SetMediaBase("http://10.99.0.1:8080")
	bmc := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t), PowerState: "On"})
	m, err := l.Enroll(ctx, box, "op", EnrollRequest{Name: "cd-4", MACs: []string{"52:54:00:00:c1:06"}, BMCAddress: bmc.URL, BMCUsername: "admin", BMCPassword: "password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.InsertMedia(ctx, box, s, "olga", m.ID, MediaRequest{Image: DeployImage}); err != nil {
		t.Fatal(err)
	}
	m, _ = s.GetMachine(ctx, m.ID)
	r := NewReconciler(s, l, box, slog.New(slog.DiscardHandler), 0)
	override := func() any {
		b, _ := bmc.Get(bmc.SystemURI())["Boot"].(map[string]any)
		return b["BootSourceOverrideTarget"]
	}
	cd := "/redfish/v1/Managers/1/VirtualMedia/CD1"
	r.bootNext(ctx, m, redfish.BootPXE)
	if got := override(); got != "Cd" || bmc.Get(cd)["Inserted"] != true {
		t.Fatalf("next boot before an update: %v, CD %v", got, bmc.Get(cd))
	}
	r.bootNext(ctx, m, redfish.BootDisk)
	if got := override(); got != "Hdd" || bmc.Get(cd)["Inserted"] != false {
		t.Fatalf("next boot after the install: %v, CD %v", got, bmc.Get(cd))
	}
	evs := mediaAudits(t, s, m.ID, "bmc.media-eject")
	if len(evs) != 1 || evs[0].Actor != "slate" || evs[0].Outcome != "ok" {
		t.Fatalf("eject audits %+v", evs)
	}
	// Another image in the CD (not Slate's deploy ISO) is left alone.
	bmc.Set(cd, map[string]any{"Image": "http://10.99.0.1:8080/boot/artifacts/tools.iso", "Inserted": true})
	r.bootNext(ctx, m, redfish.BootDisk)
	if bmc.Get(cd)["Inserted"] != true || len(mediaAudits(t, s, m.ID, "bmc.media-eject")) != 1 {
		t.Fatal("an operator's own ISO was ejected")
	}
}
