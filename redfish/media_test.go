package redfish_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

const iso = "http://192.0.2.1:8080/slate/deploy.iso"

func cd(t *testing.T, s *redfishtest.Server, uri string) map[string]any {
	t.Helper()
	d := s.Get(uri)
	if d == nil {
		t.Fatalf("no %s on the server", uri)
	}
	return d
}

// public-rackmount1 has virtual media under the system, without actions: PATCH is the only way.
func TestMediaRackmountByPatch(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	ctx := context.Background()
	if err := c.InsertMedia(ctx, iso); err != nil {
		t.Fatal(err)
	}
	d := cd(t, s, s.SystemURI()+"/VirtualMedia/CD1")
	if d["Image"] != iso || d["Inserted"] != true {
		t.Fatalf("CD1 %v", d)
	}
	if err := c.InsertMedia(ctx, iso); err != nil { // same image: nothing to do
		t.Fatal(err)
	}
	if err := c.EjectMedia(ctx); err != nil {
		t.Fatal(err)
	}
	d = cd(t, s, s.SystemURI()+"/VirtualMedia/CD1")
	if d["Inserted"] != false || d["Image"] != nil {
		t.Fatalf("after eject CD1 %v", d)
	}
}

// public-telemetry has Managers/1/VirtualMedia/CD1 with InsertMedia/EjectMedia and an image in.
func TestMediaTelemetryByAction(t *testing.T) {
	s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t)})
	c := connect(t, s, nil)
	if err := c.InsertMedia(context.Background(), iso); err != nil {
		t.Fatal(err)
	}
	if d := cd(t, s, "/redfish/v1/Managers/1/VirtualMedia/CD1"); d["Image"] != iso || d["Inserted"] != true {
		t.Fatalf("CD1 %v", d)
	}
	if n := len(bodies(s, "POST", "/Actions/VM.EjectMedia")); n != 1 {
		t.Fatalf("the inserted image was not ejected first (%d ejects)", n)
	}
	if n := len(bodies(s, "POST", "/Actions/VM.InsertMedia")); n != 1 {
		t.Fatalf("%d InsertMedia", n)
	}
}

func TestQuirkMedia(t *testing.T) {
	for _, tc := range []struct {
		name    string
		vendor  redfishtest.Vendor
		profile redfish.Vendor
		inserts int // InsertMedia POSTs needed
		patches int // PATCHes of the virtual media
	}{
		{"hpe-ilo4-rejects-inserted", redfishtest.HPE, redfish.HPE{}, 2, 0},
		{"supermicro-rejects-inserted-writeprotected", redfishtest.Supermicro, redfish.Supermicro{}, 2, 0},
		{"lenovo-by-patch", redfishtest.Lenovo, redfish.Lenovo{}, 0, 1},
		{"dell-action", redfishtest.Dell, redfish.Dell{}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rackmount(t, redfishtest.Options{Vendor: tc.vendor})
			c := connect(t, s, tc.profile)
			if err := c.InsertMedia(context.Background(), iso); err != nil {
				t.Fatal(err)
			}
			uri := s.ManagerURI() + "/VirtualMedia/CD1"
			if d := cd(t, s, uri); d["Image"] != iso || d["Inserted"] != true {
				t.Fatalf("CD1 %v", d)
			}
			if n := len(bodies(s, "POST", "VirtualMedia.InsertMedia")); n != tc.inserts {
				t.Errorf("InsertMedia POSTs %d, want %d", n, tc.inserts)
			}
			if n := len(bodies(s, "PATCH", uri)); n != tc.patches {
				t.Errorf("PATCHes %d, want %d", n, tc.patches)
			}
			if err := c.EjectMedia(context.Background()); err != nil {
				t.Fatal(err)
			}
			if d := cd(t, s, uri); d["Inserted"] != false {
				t.Fatalf("after eject %v", d)
			}
		})
	}
	// the generic profile fails against iLO 4 / Supermicro: the quirk is real in the server
	s := rackmount(t, redfishtest.Options{Vendor: redfishtest.Supermicro})
	err := connect(t, s, redfish.Generic{}).InsertMedia(context.Background(), iso)
	if e := requireBMCError(t, err, s.URL, "insert virtual media"); e.Status != 400 {
		t.Fatalf("want 400, got %v", err)
	}
}

func TestMediaBadImageURL(t *testing.T) {
	s := rackmount(t, redfishtest.Options{})
	c := connect(t, s, nil)
	for _, img := range []string{"", "deploy.iso", "ftp://x/y.iso", "http://"} {
		requireBMCError(t, c.InsertMedia(context.Background(), img), s.URL, "insert virtual media")
	}
	if len(bodies(s, "PATCH", "/VirtualMedia/CD1")) != 0 {
		t.Fatal("a bad image URL reached the BMC")
	}
}

// What the CD holds, read before and after Slate inserts and ejects: public-telemetry starts
// with a medium in, the insert replaces it, the eject empties the drive.
func TestMediaStatusTelemetry(t *testing.T) {
	s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Telemetry(t)})
	c := connect(t, s, nil)
	ctx := context.Background()
	st, err := c.MediaStatus(ctx)
	if err != nil || !st.Inserted || st.Device != "/redfish/v1/Managers/1/VirtualMedia/CD1" {
		t.Fatalf("%+v %v", st, err)
	}
	if err := c.InsertMedia(ctx, iso); err != nil {
		t.Fatal(err)
	}
	if st, err = c.MediaStatus(ctx); err != nil || st.Image != iso || !st.Inserted {
		t.Fatalf("after insert %+v %v", st, err)
	}
	if err := c.EjectMedia(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err = c.MediaStatus(ctx); err != nil || st.Inserted || st.Image != "" {
		t.Fatalf("after eject %+v %v", st, err)
	}
}

// Every DMTF public mockup with a virtual CD/DVD (under a manager or a system, with or without
// the InsertMedia action) takes the deploy ISO and gives it back; those without one say so
// with ErrUnsupported, nothing sent.
func TestEveryMockupVirtualMedia(t *testing.T) {
	dir := redfishtest.MockupDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var withCD []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "public-") {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			s := redfishtest.New(t, redfishtest.Options{Mockup: filepath.Join(dir, e.Name())})
			c := connect(t, s, nil)
			ctx := context.Background()
			st, err := c.MediaStatus(ctx)
			if errors.Is(err, redfish.ErrUnsupported) {
				if err := c.InsertMedia(ctx, iso); !errors.Is(err, redfish.ErrUnsupported) {
					t.Fatalf("insert without a CD: %v", err)
				}
				for _, r := range s.Requests() {
					if r.Method != "GET" && !strings.Contains(r.Path, "Sessions") {
						t.Fatalf("a mockup without a CD got %s %s", r.Method, r.Path)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			withCD = append(withCD, e.Name())
			if err := c.InsertMedia(ctx, iso); err != nil {
				t.Fatalf("insert (CD %s): %v", st.Device, err)
			}
			if got, err := c.MediaStatus(ctx); err != nil || got.Image != iso || !got.Inserted || got.Device != st.Device {
				t.Fatalf("after insert: %+v %v", got, err)
			}
			if err := c.EjectMedia(ctx); err != nil {
				t.Fatal(err)
			}
			if got, err := c.MediaStatus(ctx); err != nil || got.Inserted || got.Image != "" {
				t.Fatalf("after eject: %+v %v", got, err)
			}
		})
	}
	want := []string{"public-applications", "public-bladed-partitions", "public-mpf", "public-rackmount1", "public-smartnic", "public-telemetry"}
	if strings.Join(withCD, ",") != strings.Join(want, ",") {
		t.Errorf("mockups with a virtual CD: %v, want %v", withCD, want)
	}
}
