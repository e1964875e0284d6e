package ui_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
)

// A wipe plan whose drives differ from inspection shows the technician every discrepancy
// above the confirm button; a plan that matches shows none.
func TestWipePlanShowsDiscrepancies(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	cl := formClient(t, s, "tom", "tech-pass-01")
	m, _ := s.a.Store.GetMachine(ctx, "press-01")
	if _, err := s.a.Lifecycle.Transition(ctx, m.ID, lifecycle.Decommissioning, "tom", "end of life"); err != nil {
		t.Fatal(err)
	}
	page := func(p wipe.Plan) string {
		t.Helper()
		pj, _ := json.Marshal(p)
		task, err := s.a.Store.CreateTask(ctx, "test", m.ID, string(agentproto.KindWipePlan), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.a.Store.ClaimNextTask(ctx, m.ID, 3); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.a.Store.FinishTask(ctx, m.ID, task.ID, inventory.TaskOutcome{State: inventory.TaskSucceeded, Result: pj}, nil); err != nil {
			t.Fatal(err)
		}
		r, _ := cl.Get(s.srv.URL + "/machines/" + m.ID)
		return html.UnescapeString(readAll(r))
	}
	p, err := wipe.MakePlan(m.ID, []wipe.DriveInfo{{Name: "sdz", Path: "/dev/sdz", Transport: wipe.TransportATA, Media: wipe.MediaHDD,
		Serial: "FAKE-1TB", SizeBytes: 1 << 40, LogicalBlockSize: 512, PhysicalBlockSize: 512}}, wipe.DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good := page(p)
	if strings.Contains(good, "wipe-discrepancies") || !strings.Contains(good, "FAKE-1TB") {
		t.Fatalf("a plan without discrepancies: %.2000s", good)
	}
	p.Drives[0].Discrepancy = `inspection (facts version 1) saw no disk with serial "FAKE-1TB" and 1099511627776 bytes`
	p.Discrepancies = []string{`inspection saw disk vda (serial "VD-1", 68719476736 bytes), which the plan does not list: it would not be wiped`}
	bad := page(p)
	box := between(bad, `id="wipe-discrepancies"`, `</div>`)
	if !strings.Contains(box, `saw no disk with serial "FAKE-1TB"`) || !strings.Contains(box, "it would not be wiped") {
		t.Fatalf("discrepancies not shown: %q", box)
	}
}

// A technician resolves an identity mismatch on the machine page: the corrected serial is
// kept as the operator's; a UUID resubmitted unchanged stays inspection's; an auditor cannot.
func TestIdentityFormCorrectsSerial(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	m, _ := s.a.Store.GetMachine(ctx, "press-01")
	uuid := "4c4c4544-0000-1111-2222-333344445555"
	if err := s.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		_, _, err := tx.PutFacts(ctx, m.ID, json.RawMessage(`{"schema":1}`), inventory.FactFields{SystemUUID: uuid})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	post := func(user, pw string) int {
		t.Helper()
		cl := &http.Client{Jar: &cookieJar{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		r, _ := cl.Get(s.srv.URL + "/login")
		csrf := between(readAll(r), `name="csrf" value="`, `"`)
		r, _ = cl.PostForm(s.srv.URL+"/login", url.Values{"csrf": {csrf}, "username": {user}, "password": {pw}})
		r.Body.Close()
		r, _ = cl.Get(s.srv.URL + "/machines/" + m.ID)
		page := readAll(r)
		csrf = between(page, `name="csrf" value="`, `"`)
		r, _ = cl.PostForm(s.srv.URL+"/machines/"+m.ID+"/identity", url.Values{"csrf": {csrf}, "serial": {"PRESS-01-LABEL"}, "system_uuid": {uuid}})
		r.Body.Close()
		return r.StatusCode
	}
	if st := post("aud", "audit-pass-1"); st == http.StatusSeeOther {
		t.Fatal("an auditor changed a machine's identity")
	}
	if got, _ := s.a.Store.GetMachine(ctx, m.ID); got.Serial != "SN-press-01" {
		t.Fatalf("serial after the auditor's attempt: %q", got.Serial)
	}
	if st := post("tom", "tech-pass-01"); st != http.StatusSeeOther {
		t.Fatalf("technician's correction: %d", st)
	}
	got, _ := s.a.Store.GetMachine(ctx, m.ID)
	if got.Serial != "PRESS-01-LABEL" || !got.SerialByOperator || got.SystemUUID != uuid || got.SystemUUIDByOperator {
		t.Fatalf("after the correction: %+v", got)
	}
}
