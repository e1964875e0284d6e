package ui

import (
	"strings"
	"testing"

	"slate/inventory"
	"slate/lifecycle"
)

// TestDescribeBMCFailures: a BMC failure reads as one plain sentence naming the BMC and what
// to check, the raw chain kept as the detail; a message about no BMC is left as it is.
func TestDescribeBMCFailures(t *testing.T) {
	for _, c := range []struct{ msg, plain string }{
		{`bmc https://10.0.0.21: connect: Get "https://10.0.0.21/redfish/v1/": dial tcp 10.0.0.21:443: i/o timeout (fix the BMC address)`,
			"BMC at 10.0.0.21 does not answer: check address, VLAN and credentials."},
		{`BMC power-on failed: bmc https://bmc-7.plant: connect: Get "https://bmc-7.plant/redfish/v1/": dial tcp: lookup bmc-7.plant on 127.0.0.53:53: no such host`,
			"BMC power-on failed: BMC at bmc-7.plant has a name that does not resolve (DNS): check the address."},
		{`Not enrolled: enroll by BMC: bmc https://127.0.0.1:1: connect: dial tcp 127.0.0.1:1: connect: connection refused (fix the BMC address)`,
			"Not enrolled: enroll by BMC: BMC at 127.0.0.1:1 refuses connections: check the address and port, and that Redfish is enabled on the BMC."},
		{`bmc https://10.0.0.5: login: POST /redfish/v1/SessionService/Sessions: HTTP 401: BMC refused the credentials (check the BMC user name, password and role)`,
			"BMC at 10.0.0.5 refused the user name or password: check the credentials and the account's role on the BMC."},
		// Slate's own words before the chain are not matched: "certificates" here is no TLS problem.
		{`retired: its certificates are under Certificates; powering it off through its BMC failed, power it off by hand: bmc https://10.0.0.9: force off: POST /x: HTTP 500`,
			"retired: its certificates are under Certificates; powering it off through its BMC failed, power it off by hand: BMC at 10.0.0.9 reported an error of its own: retry in a few minutes; if it persists, reset the BMC."},
	} {
		p := describe(c.msg)
		if p.Plain != c.plain || p.Detail != c.msg {
			t.Errorf("describe(%q)\n plain  %q\n want   %q\n detail %q", c.msg, p.Plain, c.plain, p.Detail)
		}
		for _, raw := range []string{"dial tcp", "i/o timeout", "HTTP 401", "lookup"} {
			if strings.Contains(p.Plain, raw) {
				t.Errorf("plain sentence carries the raw chain (%q): %q", raw, p.Plain)
			}
		}
	}
	// Not about a BMC: shown as written, no detail to hide.
	for _, msg := range []string{"Not moved: machine x is retired", "waiting for the deploy environment", ""} {
		if p := describe(msg); p.Plain != msg || p.Detail != "" {
			t.Errorf("describe(%q) = %+v, want it unchanged", msg, p)
		}
	}
}

// TestSummarizeFacts: the agent's facts become the lines a technician reads; a document the
// summary cannot decode still shows raw; no document is "not inspected".
func TestSummarizeFacts(t *testing.T) {
	raw := `{"schema":1,"collected_at":"2026-12-07T23:58:00Z","system":{"vendor":"Siemens","product":"IPC647E","serial":"S-123","arch":"x86_64"},
"bios":{"vendor":"AMI","version":"1.2"},"firmware":{"mode":"uefi","secure_boot":"enabled"},
"cpu":{"model":"Intel Xeon E-2278GE","sockets":1,"cores":8,"threads":16},
"memory":{"total_bytes":34359738368,"dimms":[{"locator":"A1","size_bytes":17179869184},{"locator":"B1","size_bytes":17179869184}]},
"disks":[{"name":"nvme0n1","model":"Samsung PM983","serial":"S4GNNX0M","size_bytes":960197124096,"transport":"nvme"}],
"nics":[{"name":"eno1","mac":"52:54:00:00:10:01","link":true,"speed_mbps":1000,"addresses":["10.99.0.20/24"]},{"name":"eno2","mac":"52:54:00:00:10:09","link":false}],
"tpm":{"present":true,"version":"2.0"},"errors":["dmi: permission denied"]}`
	v, err := summarizeFacts(raw)
	if err != nil || v == nil {
		t.Fatalf("summary: %v %v", v, err)
	}
	if v.CPU != "Intel Xeon E-2278GE · 1 socket, 8 cores, 16 threads" || v.Memory != "32.0 GiB in 2 DIMMs" ||
		v.Firmware != "UEFI · Secure Boot enabled" || v.TPM != "TPM 2.0" || v.System != "Siemens IPC647E · serial S-123" {
		t.Fatalf("summary lines: %+v", v)
	}
	if len(v.Disks) != 1 || v.Disks[0].Model != "Samsung PM983" || v.Disks[0].Serial != "S4GNNX0M" || v.Disks[0].Size != "894.3 GiB" {
		t.Fatalf("disks: %+v", v.Disks)
	}
	if len(v.NICs) != 2 || !v.NICs[0].Link || v.NICs[0].Speed != "1000 Mbit/s" || v.NICs[1].Link || v.NICs[1].MAC != "52:54:00:00:10:09" {
		t.Fatalf("nics: %+v", v.NICs)
	}
	if len(v.Errors) != 1 || !strings.Contains(v.Raw, `"serial": "S4GNNX0M"`) {
		t.Fatalf("errors %v, raw %.200s", v.Errors, v.Raw)
	}
	// A field of another type: the raw document is still shown, with a note.
	odd, err := summarizeFacts(`{"cpu":{"cores":"eight"}}`)
	if err != nil || odd == nil || odd.Raw == "" || len(odd.Errors) != 1 {
		t.Fatalf("odd document: %+v %v", odd, err)
	}
	if bad, err := summarizeFacts(`{not json`); err == nil || bad != nil {
		t.Fatalf("broken document: %+v %v", bad, err)
	}
	if none, err := summarizeFacts(""); err != nil || none != nil {
		t.Fatalf("no facts: %+v %v", none, err)
	}
}

// TestJourneyMarksSkippedSteps: a step the machine never was in is skipped, not done.
func TestJourneyMarksSkippedSteps(t *testing.T) {
	tr := func(from, to string) inventory.AuditEvent {
		return inventory.AuditEvent{Action: "machine.transition", Outcome: "ok", Details: map[string]any{"from": from, "to": to}}
	}
	// Enrolled by hand (never discovered), deployed without a BIOS profile (never configuring);
	// a refused move to configuring is no visit.
	ev := []inventory.AuditEvent{tr(lifecycle.Provisioning, lifecycle.Deployed), tr(lifecycle.Ready, lifecycle.Provisioning),
		{Action: "machine.transition", Outcome: "refused", Details: map[string]any{"from": lifecycle.Ready, "to": lifecycle.Configuring}},
		tr(lifecycle.Inspecting, lifecycle.Ready), tr(lifecycle.Enrolled, lifecycle.Inspecting),
		{Action: "machine.enroll", Outcome: "ok", Details: map[string]any{"state": lifecycle.Enrolled}}}
	got := map[string]string{}
	for _, s := range journey(inventory.Machine{State: lifecycle.Deployed}, ev, true) {
		got[s.State] = s.Class
	}
	want := map[string]string{lifecycle.Discovered: "skipped", lifecycle.Enrolled: "done", lifecycle.Inspecting: "done", lifecycle.Ready: "done",
		lifecycle.Configuring: "skipped", lifecycle.Provisioning: "done", lifecycle.Deployed: "current"}
	for st, cls := range want {
		if got[st] != cls {
			t.Errorf("%s: %q, want %q (journey %v)", st, got[st], cls, got)
		}
	}
	// A history cut short by the page's limit does not call early steps skipped.
	for _, s := range journey(inventory.Machine{State: lifecycle.Deployed}, ev[:1], false) {
		if s.Class == "skipped" {
			t.Errorf("incomplete history: %s marked skipped", s.State)
		}
	}
}

func TestDetailText(t *testing.T) {
	for in, want := range map[any]string{"plain words": "plain words", 3.0: "3", true: "true", nil: "—"} {
		if got := detailText(in); got != want {
			t.Errorf("detailText(%v) = %q, want %q", in, got, want)
		}
	}
	if got := detailText([]any{"52:54:00:00:10:01", "52:54:00:00:10:02"}); got != "52:54:00:00:10:01, 52:54:00:00:10:02" {
		t.Errorf("list of words: %q", got)
	}
	if got := detailText([]any{"a", 1.0}); got != `["a",1]` {
		t.Errorf("mixed list: %q", got)
	}
	if got := detailText(map[string]any{"name": "x"}); got != `{"name":"x"}` {
		t.Errorf("object: %q", got)
	}
}
