package vbmc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/redfish"
	"slate/internal/testenv"
)

// fakeMachine records what the BMC asked of it.
type fakeMachine struct {
	mu     sync.Mutex
	on     bool
	starts []BootSpec
	stops  int
	acpi   int
	media  []string
}

func (m *fakeMachine) Powered(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on, nil
}
func (m *fakeMachine) Start(_ context.Context, s BootSpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.on {
		return fmt.Errorf("start while on")
	}
	m.on = true
	m.starts = append(m.starts, s)
	return nil
}
func (m *fakeMachine) Stop(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = false
	m.stops++
	return nil
}
func (m *fakeMachine) Shutdown(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acpi++
	return nil
}
func (m *fakeMachine) ChangeMedium(_ context.Context, p string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.media = append(m.media, p)
	return nil
}
func (m *fakeMachine) snapshot() (bool, []BootSpec, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.on, append([]BootSpec(nil), m.starts...), m.stops
}

const user, pass = "admin", "s3cret-lab"

func newServer(t *testing.T, statePath string) (*BMC, *fakeMachine, *httptest.Server) {
	t.Helper()
	m := &fakeMachine{}
	b, err := New(Config{Name: "vm1", UUID: "6e1b2a50-0000-4000-8000-000000000001", MAC: "52:54:00:5a:00:01",
		Machine: m, StatePath: statePath, User: user, Password: pass, MediaDir: t.TempDir(), Default: DefaultState(true)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, m, srv
}

// files serves firmware and ISO images for the BMC to fetch.
func files(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bios-1.0.1.bin":
			w.Write(bytes.Repeat([]byte{0xa5}, 4096))
		case "/boot.iso":
			w.Write(bytes.Repeat([]byte{0}, 2048))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func sushyctl(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{"testdata/sushyctl.py", url, user, pass}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestSushy(t *testing.T) {
	testenv.RequireCommand(t, "/usr/bin/python3", "python3-sushy")
	b, m, srv := newServer(t, "")
	fs := files(t)

	out, err := sushyctl(t, srv.URL, "power")
	if err != nil || out != "Off" {
		t.Fatalf("power: %q %v", out, err)
	}
	if _, err := sushyctl(t, srv.URL, "reset", "On"); err != nil {
		t.Fatalf("reset On: %v", err)
	}
	on, starts, _ := m.snapshot()
	if !on || len(starts) != 1 || starts[0].Target != TargetNone || !starts[0].UEFI {
		t.Fatalf("after On: on=%v starts=%+v", on, starts)
	}
	if out, err := sushyctl(t, srv.URL, "power"); err != nil || out != "On" {
		t.Fatalf("power after On: %q %v", out, err)
	}

	// UefiHttp is accepted by sushy only because it is in the allowable values.
	out, err = sushyctl(t, srv.URL, "boot", "UefiHttp", "Once")
	if err != nil || out != "UefiHttp Once" {
		t.Fatalf("boot UefiHttp Once: %q %v", out, err)
	}
	out, err = sushyctl(t, srv.URL, "bios-set", "BootMode=LegacyBios", "ProcVirtualization=Disabled")
	if err != nil || !strings.Contains(out, `"BootMode": "LegacyBios"`) {
		t.Fatalf("bios-set: %q %v", out, err)
	}
	// Staged, not applied before the reset.
	if out, _ := sushyctl(t, srv.URL, "bios-get"); !strings.Contains(out, `"BootMode": "Uefi"`) {
		t.Fatalf("BIOS applied before reset: %s", out)
	}
	out, err = sushyctl(t, srv.URL, "update", fs.URL+"/bios-1.0.1.bin")
	if err != nil || out != "Completed" {
		t.Fatalf("update: %q %v", out, err)
	}
	if v := b.State().BiosVersion; v != "1.0.0" {
		t.Fatalf("BIOS version changed before reset: %s", v)
	}
	if _, err := sushyctl(t, srv.URL, "reset", "ForceRestart"); err != nil {
		t.Fatalf("reset ForceRestart: %v", err)
	}
	on, starts, stops := m.snapshot()
	if !on || len(starts) != 2 || stops != 1 {
		t.Fatalf("after ForceRestart: on=%v starts=%d stops=%d", on, len(starts), stops)
	}
	got := starts[1]
	if got.Target != TargetUefiHTTP || got.UEFI || got.Virtualization || got.BIOSVersion != "1.0.1" {
		t.Fatalf("boot after reset = %+v, want UefiHttp, legacy BIOS, no VT, version 1.0.1", got)
	}
	if out, _ := sushyctl(t, srv.URL, "bios-get"); !strings.Contains(out, `"BootMode": "LegacyBios"`) {
		t.Fatalf("BIOS not applied at reset: %s", out)
	}
	st := b.State()
	if st.BootEnabled != OverrideDisabled || st.BootTarget != TargetNone {
		t.Fatalf("Once override not consumed: %+v", st)
	}
	if _, err := sushyctl(t, srv.URL, "reset", "ForceOff"); err != nil {
		t.Fatalf("reset ForceOff: %v", err)
	}
	if on, _, _ := m.snapshot(); on {
		t.Fatal("machine still on after ForceOff")
	}
	// A value outside the allowable list must make sushy fail (the BMC answers 400).
	if out, err := sushyctl(t, srv.URL, "bios-set", "BootMode=Floppy"); err == nil {
		t.Fatalf("bios-set BootMode=Floppy succeeded: %s", out)
	}
	if out, err := sushyctl(t, srv.URL, "update", fs.URL+"/missing.bin"); err == nil || !strings.Contains(out, "Exception") {
		t.Fatalf("update from a missing image: %v %s", err, out)
	}
}

func redfishtool(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	cmd := exec.Command("redfishtool", append([]string{"-r", host, "-u", user, "-p", pass, "-S", "Never"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestRedfishtool(t *testing.T) {
	testenv.RequireCommand(t, "redfishtool", "redfishtool")
	b, m, srv := newServer(t, "")
	if out, err := redfishtool(t, srv.URL, "Systems", "-I", "1", "reset", "On"); err != nil {
		t.Fatalf("reset On: %v\n%s", err, out)
	}
	if on, _, _ := m.snapshot(); !on {
		t.Fatal("redfishtool reset On did not power on")
	}
	if out, err := redfishtool(t, srv.URL, "Systems", "-I", "1", "setBootOverride", "Once", "Pxe"); err != nil {
		t.Fatalf("setBootOverride: %v\n%s", err, out)
	}
	if st := b.State(); st.BootEnabled != OverrideOnce || st.BootTarget != TargetPxe {
		t.Fatalf("after setBootOverride: %+v", st)
	}
	if out, err := redfishtool(t, srv.URL, "raw", "PATCH", "/redfish/v1/Systems/1",
		"-d", `{"Boot":{"BootSourceOverrideTarget":"Hdd","BootSourceOverrideEnabled":"Continuous"}}`); err != nil {
		t.Fatalf("raw PATCH: %v\n%s", err, out)
	}
	if st := b.State(); st.BootEnabled != OverrideContinuous || st.BootTarget != TargetHdd {
		t.Fatalf("after raw PATCH: %+v", st)
	}
	if out, err := redfishtool(t, srv.URL, "raw", "PATCH", "/redfish/v1/Systems/1",
		"-d", `{"Boot":{"BootSourceOverrideTarget":"Usb"}}`); err == nil {
		t.Fatalf("raw PATCH with an invalid target succeeded:\n%s", out)
	}
	if out, err := redfishtool(t, srv.URL, "Systems", "-I", "1", "reset", "ForceOff"); err != nil {
		t.Fatalf("reset ForceOff: %v\n%s", err, out)
	}
	if on, _, _ := m.snapshot(); on {
		t.Fatal("redfishtool reset ForceOff left the machine on")
	}
}

func TestGofish(t *testing.T) {
	b, m, srv := newServer(t, "")
	fs := files(t)
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: srv.URL, Username: user, Password: pass, Insecure: true})
	if err != nil {
		t.Fatalf("gofish session login: %v", err)
	}
	defer c.Logout()
	systems, err := c.Service.Systems()
	if err != nil || len(systems) != 1 || systems[0].ID != "1" {
		t.Fatalf("systems: %v %v", systems, err)
	}
	sys := systems[0]
	if err := sys.Reset(redfish.OnResetType); err != nil {
		t.Fatalf("gofish reset (with If-Match): %v", err)
	}
	sys, _ = redfish.GetComputerSystem(c, "/redfish/v1/Systems/1")
	if sys.PowerState != redfish.OnPowerState {
		t.Fatalf("power state %s", sys.PowerState)
	}
	if err := sys.SetBoot(redfish.Boot{BootSourceOverrideTarget: redfish.PxeBootSourceOverrideTarget, BootSourceOverrideEnabled: redfish.OnceBootSourceOverrideEnabled}); err != nil {
		t.Fatalf("gofish SetBoot: %v", err)
	}
	bios, err := sys.Bios()
	if err != nil {
		t.Fatal(err)
	}
	if err := bios.UpdateBiosAttributes(redfish.SettingsAttributes{"SecureBoot": "Enabled"}); err != nil {
		t.Fatalf("gofish UpdateBiosAttributes: %v", err)
	}
	if st := b.State(); st.BiosPending["SecureBoot"] != "Enabled" || st.BootTarget != TargetPxe {
		t.Fatalf("state after gofish: %+v", st)
	}
	mgr, err := c.Service.Managers()
	if err != nil || len(mgr) != 1 {
		t.Fatal(err)
	}
	vms, err := mgr[0].VirtualMedia()
	if err != nil || len(vms) != 1 {
		t.Fatalf("virtual media: %v %v", vms, err)
	}
	if err := vms[0].EjectMedia(); err != nil {
		t.Fatalf("eject empty drive: %v", err)
	}
	if err := vms[0].InsertMedia(fs.URL+"/boot.iso", true, true); err != nil {
		t.Fatalf("insert: %v", err)
	}
	st := b.State()
	if !st.Media.Inserted || filepath.Base(st.Media.Path) != "vm1-cd.iso" {
		t.Fatalf("media after insert: %+v", st.Media)
	}
	vm, _ := redfish.GetVirtualMedia(c, vms[0].ODataID)
	if !vm.Inserted || vm.Image != fs.URL+"/boot.iso" {
		t.Fatalf("resource after insert: %+v", vm)
	}
	if err := vm.EjectMedia(); err != nil {
		t.Fatalf("eject: %v", err)
	}
	m.mu.Lock()
	media := append([]string(nil), m.media...)
	m.mu.Unlock()
	if len(media) != 2 || media[0] != st.Media.Path || media[1] != "" {
		t.Fatalf("medium changes on the running machine: %q", media)
	}
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	json.Unmarshal(data, &out)
	return resp, out
}

func basic() map[string]string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}

func errorID(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	infos, _ := e["@Message.ExtendedInfo"].([]any)
	if len(infos) == 0 {
		return ""
	}
	return infos[0].(map[string]any)["MessageId"].(string)
}

func TestProtocol(t *testing.T) {
	b, m, srv := newServer(t, "")
	u := srv.URL + "/redfish/v1"

	if resp, _ := do(t, "GET", u+"/", "", nil); resp.StatusCode != 200 {
		t.Fatalf("service root without auth: %d", resp.StatusCode)
	}
	if resp, body := do(t, "GET", u+"/Systems/1", "", nil); resp.StatusCode != 401 || errorID(body) == "" {
		t.Fatalf("system without auth: %d %v", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", u+"/Systems/1", "", map[string]string{"Authorization": "Basic YWRtaW46bm9wZQ=="}); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}

	// Sessions: 201, token, Location, GET, DELETE, then the token is dead.
	resp, _ := do(t, "POST", u+"/SessionService/Sessions", `{"UserName":"admin","Password":"s3cret-lab"}`, nil)
	tok, loc := resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
	if resp.StatusCode != 201 || tok == "" || !strings.HasPrefix(loc, "/redfish/v1/SessionService/Sessions/") {
		t.Fatalf("create session: %d token=%q location=%q", resp.StatusCode, tok, loc)
	}
	th := map[string]string{"X-Auth-Token": tok}
	if resp, body := do(t, "GET", srv.URL+loc, "", th); resp.StatusCode != 200 || body["UserName"] != "admin" {
		t.Fatalf("get session: %d %v", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", u+"/SessionService/Sessions", `{"UserName":"admin","Password":"x"}`, nil); resp.StatusCode != 401 {
		t.Fatalf("session with a wrong password: %d", resp.StatusCode)
	}

	// ETags: a stale If-Match is refused on PATCH and on actions.
	resp, _ = do(t, "GET", u+"/Systems/1", "", th)
	tag := resp.Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag on the system")
	}
	if resp, _ := do(t, "PATCH", u+"/Systems/1", `{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Once"}}`, map[string]string{"X-Auth-Token": tok, "If-Match": tag}); resp.StatusCode != 200 {
		t.Fatalf("PATCH with the current ETag: %d", resp.StatusCode)
	}
	if resp, body := do(t, "PATCH", u+"/Systems/1", `{"Boot":{"BootSourceOverrideTarget":"Hdd"}}`, map[string]string{"X-Auth-Token": tok, "If-Match": tag}); resp.StatusCode != 412 || !strings.HasSuffix(errorID(body), "PreconditionFailed") {
		t.Fatalf("PATCH with a stale ETag: %d %v", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", u+"/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, map[string]string{"X-Auth-Token": tok, "If-Match": tag}); resp.StatusCode != 412 {
		t.Fatalf("action with a stale ETag: %d", resp.StatusCode)
	}
	if st := b.State(); st.BootTarget != TargetCd || st.PoweredOn {
		t.Fatalf("a refused request changed the state: %+v", st)
	}

	// Invalid values: 400 with a Redfish error body naming the message.
	for _, c := range []struct{ method, path, body, id string }{
		{"PATCH", "/Systems/1", `{"Boot":{"BootSourceOverrideTarget":"Floppy"}}`, "PropertyValueNotInList"},
		{"PATCH", "/Systems/1", `{"Boot":{"BootSourceOverrideEnabled":7}}`, "PropertyValueTypeError"},
		{"PATCH", "/Systems/1", `{"PowerState":"On"}`, "PropertyNotWritable"},
		{"PATCH", "/Systems/1", `{"Boot":`, "MalformedJSON"},
		{"PATCH", "/Systems/1/Bios/Settings", `{"Attributes":{"Turbo":"On"}}`, "PropertyUnknown"},
		{"PATCH", "/Systems/1/Bios/Settings", `{"Attributes":{"SecureBoot":"Maybe"}}`, "PropertyValueNotInList"},
		{"POST", "/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"Explode"}`, "ActionParameterValueNotInList"},
		{"POST", "/Systems/1/Actions/ComputerSystem.Reset", `{}`, "ActionParameterMissing"},
		{"POST", "/UpdateService/Actions/UpdateService.SimpleUpdate", `{"ImageURI":"ftp://x/y"}`, "ActionParameterValueFormatError"},
		{"POST", "/Managers/1/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia", `{"Image":"file:///etc/shadow"}`, "ActionParameterValueFormatError"},
	} {
		resp, body := do(t, c.method, u+c.path, c.body, th)
		if resp.StatusCode != 400 || errorID(body) != msgPrefix+c.id {
			t.Errorf("%s %s %s: %d %s, want 400 %s", c.method, c.path, c.body, resp.StatusCode, errorID(body), c.id)
		}
	}

	// MultipartHttpPushUri: 202 + a task Location; the version moves only at the next reset.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	pw, _ := mw.CreateFormField("UpdateParameters")
	pw.Write([]byte(`{"Targets":[],"@Redfish.OperationApplyTime":"OnReset"}`))
	fw, _ := mw.CreateFormFile("UpdateFile", "bios.bin")
	fw.Write(bytes.Repeat([]byte{1}, 1000))
	mw.Close()
	resp, body := do(t, "POST", u+"/UpdateService/upload", buf.String(), map[string]string{"X-Auth-Token": tok, "Content-Type": mw.FormDataContentType()})
	if resp.StatusCode != 202 || resp.Header.Get("Location") == "" || body["TaskState"] != "Completed" {
		t.Fatalf("multipart push: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp, body := do(t, "GET", srv.URL+resp.Header.Get("Location"), "", th); resp.StatusCode != 200 || body["TaskState"] != "Completed" {
		t.Fatalf("task monitor: %d %v", resp.StatusCode, body)
	}
	if resp, _ := do(t, "POST", u+"/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"PowerCycle"}`, th); resp.StatusCode != 204 {
		t.Fatalf("PowerCycle: %d", resp.StatusCode)
	}
	if _, body := do(t, "GET", u+"/Systems/1", "", th); body["BiosVersion"] != "1.0.1" {
		t.Fatalf("BIOS version after reset: %v", body["BiosVersion"])
	}

	if resp, _ := do(t, "POST", u+"/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"GracefulShutdown"}`, th); resp.StatusCode != 204 {
		t.Fatalf("GracefulShutdown: %d", resp.StatusCode)
	}
	m.mu.Lock()
	acpi := m.acpi
	m.mu.Unlock()
	if acpi != 1 {
		t.Fatalf("GracefulShutdown pressed the power button %d times", acpi)
	}
	// The session table is bounded: the oldest session goes first.
	var firstTok string
	for i := 0; i < maxSessions; i++ { // with the one above: one more than the table holds
		resp, _ := do(t, "POST", u+"/SessionService/Sessions", `{"UserName":"admin","Password":"s3cret-lab"}`, nil)
		if i == 0 {
			firstTok = resp.Header.Get("X-Auth-Token")
		}
	}
	if resp, _ := do(t, "GET", u+"/Systems/1", "", map[string]string{"X-Auth-Token": firstTok}); resp.StatusCode != 200 {
		t.Fatalf("a recent session was dropped: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", u+"/Systems/1", "", th); resp.StatusCode != 401 {
		t.Fatalf("the oldest session survived a full table: %d", resp.StatusCode)
	}
	resp, _ = do(t, "POST", u+"/SessionService/Sessions", `{"UserName":"admin","Password":"s3cret-lab"}`, nil)
	tok, loc = resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
	th = map[string]string{"X-Auth-Token": tok}
	if resp, _ := do(t, "DELETE", srv.URL+loc, "", th); resp.StatusCode != 204 {
		t.Fatalf("delete session: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "GET", u+"/Systems/1", "", th); resp.StatusCode != 401 {
		t.Fatalf("deleted session still works: %d", resp.StatusCode)
	}
}

func TestStatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bmc.json")
	b, _, srv := newServer(t, path)
	if resp, _ := do(t, "PATCH", srv.URL+"/redfish/v1/Systems/1", `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Continuous"}}`, basic()); resp.StatusCode != 200 {
		t.Fatalf("patch: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "PATCH", srv.URL+"/redfish/v1/Systems/1/Bios/Settings", `{"Attributes":{"PxeDev1EnDis":"Disabled"}}`, basic()); resp.StatusCode != 200 {
		t.Fatalf("patch bios: %d", resp.StatusCode)
	}
	_ = b
	b2, err := New(Config{Machine: &fakeMachine{}, StatePath: path, User: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	st := b2.State()
	if st.BootEnabled != OverrideContinuous || st.BootTarget != TargetPxe || st.BiosPending["PxeDev1EnDis"] != "Disabled" {
		t.Fatalf("state not restored: %+v", st)
	}
	// A damaged state file is refused with a message saying what to do.
	if err := saveState(path, State{BootEnabled: "Sometimes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Machine: &fakeMachine{}, StatePath: path, User: user, Password: pass}); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("damaged state accepted: %v", err)
	}
}

// FuzzRequest throws arbitrary bodies at every writable endpoint: the BMC must answer with a
// 2xx or a 4xx Redfish error, never panic or 5xx.
func FuzzRequest(f *testing.F) {
	f.Add(0, `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`)
	f.Add(1, `{"Attributes":{"BootMode":"LegacyBios"}}`)
	f.Add(2, `{"ResetType":"ForceRestart"}`)
	f.Add(3, `{"UserName":"admin","Password":"s3cret-lab"}`)
	f.Add(4, `{"ImageURI":"http://127.0.0.1:1/x.bin","TransferProtocol":"HTTP"}`)
	f.Add(5, `{"Image":"http://127.0.0.1:1/x.iso","Inserted":true}`)
	f.Add(0, `{"Boot":[1,2]}`)
	f.Add(1, `{"Attributes":null}`)
	targets := []struct{ method, path string }{
		{"PATCH", sysPath}, {"PATCH", settingPath}, {"POST", sysPath + "/Actions/ComputerSystem.Reset"},
		{"POST", sessPath}, {"POST", updPath + "/Actions/UpdateService.SimpleUpdate"},
		{"POST", cdPath + "/Actions/VirtualMedia.InsertMedia"},
	}
	m := &fakeMachine{}
	b, err := New(Config{Machine: m, User: user, Password: pass, MediaDir: f.TempDir(),
		HTTPClient: &http.Client{Transport: failingTransport{}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which int, body string) {
		if which < 0 {
			which = -which
		}
		tg := targets[which%len(targets)]
		req := httptest.NewRequest(tg.method, tg.path, strings.NewReader(body))
		req.SetBasicAuth(user, pass)
		rec := httptest.NewRecorder()
		b.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", tg.method, tg.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("error body is not JSON: %s", rec.Body)
		}
	})
}

type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("no network in the fuzz test")
}

// FuzzLoadState: a damaged state file is refused with an error, never a panic or a state
// that fails its own validation.
func FuzzLoadState(f *testing.F) {
	good, _ := json.Marshal(DefaultState(true))
	f.Add(good)
	f.Add([]byte(`{"boot_enabled":"Once","boot_target":"Pxe","bios":{"BootMode":"Uefi"}}`))
	f.Add([]byte(`{`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "bmc.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := loadState(path, DefaultState(false))
		if err == nil {
			if verr := st.validate(); verr != nil {
				t.Fatalf("loaded an invalid state: %v", verr)
			}
		}
	})
}
