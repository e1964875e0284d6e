package redfishtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"slate/internal/testenv"
	"slate/redfish/redfishtest"
)

// sushyScript drives the test server with python3-sushy (the client OpenStack Ironic uses), so
// the server's semantics are checked by a real Redfish client, not only by ours.
const sushyScript = `
import sys, sushy
url, user, pw, sysid, image = sys.argv[1:6]
s = sushy.Sushy(url, username=user, password=pw, verify=False)
sy = s.get_system(sysid)
assert sy.power_state == sushy.PowerState.ON, sy.power_state
sy.reset_system(sushy.ResetType.FORCE_OFF)
sy.refresh()
assert sy.power_state == sushy.PowerState.OFF, sy.power_state
sy.set_system_boot_options(sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE, mode=sushy.BootSourceOverrideMode.UEFI)
sy.refresh()
assert sy.boot.target == sushy.BootSource.PXE, sy.boot.target
try:
    sy.set_system_boot_options(sushy.BootSource.UEFI_HTTP, enabled=sushy.BootSourceOverrideEnabled.ONCE)
    raise SystemExit("UefiHttp accepted although not allowed")
except sushy.exceptions.InvalidParameterValueError:
    pass
bios = sy.bios
bios.set_attributes({"ProcHyperthreading": "Disabled"})
assert bios.pending_attributes["ProcHyperthreading"] == "Disabled"
try:
    bios.set_attributes({"NoSuchKnob": "x"})
    raise SystemExit("unknown BIOS attribute accepted")
except sushy.exceptions.BadRequestError as e:
    assert "PropertyUnknown" in str(e), str(e)
sy.reset_system(sushy.ResetType.ON)
sy.refresh()
bios.refresh()
assert sy.power_state == sushy.PowerState.ON
assert bios.attributes["ProcHyperthreading"] == "Disabled", bios.attributes
us = s.get_update_service()
tm = us.simple_update(image)
assert tm.is_processing
for _ in range(5):
    tm.refresh()
inv = {m.identity: m.version for m in us.firmware_inventory.get_members()}
assert inv["BMC"] == "9.9.9", inv
s._conn._session.close()
print("sushy OK")
`

func TestSushyDrivesServer(t *testing.T) {
	testenv.RequireCommand(t, "/usr/bin/python3", "python3-sushy")
	img := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "SLATEFW component=BMC version=9.9.9\n")
	}))
	defer img.Close()
	s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), TaskPolls: 1})
	cmd := exec.Command("/usr/bin/python3", "-c", sushyScript, s.URL, "admin", "password", s.SystemURI(), img.URL+"/bmc.bin")
	// requests lets a CA bundle from the environment override verify=False; the test
	// server's certificate is self-signed like a BMC's, so keep the environment out of it
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PYTHONWARNINGS=ignore"}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sushy OK") {
		t.Fatalf("sushy against the test server: %v\n%s", err, out)
	}
}

func TestRedfishtoolReadsServer(t *testing.T) {
	testenv.RequireCommand(t, "redfishtool", "redfishtool")
	s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PlainHTTP: true})
	host := strings.TrimPrefix(s.URL, "http://")
	out, err := exec.Command("redfishtool", "-r", host, "-S", "Never", "-u", "admin", "-p", "password", "Systems", "-I", "437XR1138R2", "get").CombinedOutput()
	if err != nil {
		t.Fatalf("redfishtool: %v\n%s", err, out)
	}
	var doc map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &doc); err != nil || doc["SerialNumber"] != "437XR1138R2" {
		t.Fatalf("redfishtool output not the system: %v\n%s", err, out)
	}
	out, err = exec.Command("redfishtool", "-r", host, "-S", "Never", "-u", "admin", "-p", "password", "Systems", "-I", "437XR1138R2", "reset", "ForceOff").CombinedOutput()
	if err != nil {
		t.Fatalf("redfishtool reset: %v\n%s", err, out)
	}
	if s.Get(s.SystemURI())["PowerState"] != "Off" {
		t.Fatalf("redfishtool reset did not power off: %s", out)
	}
}

func TestPatchSemantics(t *testing.T) {
	s := redfishtest.New(t, redfishtest.Options{Mockup: redfishtest.Rackmount(t), PlainHTTP: true})
	do := func(method, path, body string, hdr map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		req.SetBasicAuth("admin", "password")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	sys := s.SystemURI()
	resp, _ := do("GET", sys, "", nil)
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	for _, tc := range []struct {
		body, ifMatch string
		status        int
		msg           string
	}{
		{`{"Boot":{"BootSourceOverrideTarget":"Floppy"}}`, "", 400, "PropertyValueNotInList"},
		{`{"Boot":{"NoSuch":1}}`, "", 400, "PropertyUnknown"},
		{`{"PowerState":"Off"}`, "", 400, "PropertyNotWritable"},
		{`{"Boot":`, "", 400, "MalformedJSON"},
		{`{"AssetTag":"x"}`, `"stale"`, 412, "PreconditionFailed"},
		{`{"AssetTag":"rack-7"}`, etag, 204, ""},
	} {
		resp, b := do("PATCH", sys, tc.body, map[string]string{"If-Match": tc.ifMatch})
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.msg) {
			t.Errorf("PATCH %s: %d %s, want %d %s", tc.body, resp.StatusCode, b, tc.status, tc.msg)
		}
	}
	if got := s.Get(sys); got["AssetTag"] != "rack-7" || got["Boot"].(map[string]any)["BootSourceOverrideMode"] != "UEFI" {
		t.Fatalf("merge PATCH lost or failed to set fields: %v", got["Boot"])
	}
	resp, _ = do("GET", "/redfish/v1/Systems", "", map[string]string{"Authorization": "Basic eDp5"})
	if resp.StatusCode != 401 {
		t.Fatalf("wrong Basic credentials answered %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.URL+sys, nil)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 401 {
		t.Fatalf("unauthenticated GET answered %d", resp2.StatusCode)
	}
}
