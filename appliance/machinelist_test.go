package appliance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"slate/api"
	"slate/inventory"
)

// TestMachineListAPIOptions: sort, dir, limit, offset, state, q and include_retired reach
// the store; retired machines are hidden unless asked for; the total is in the body and in
// X-Total-Count; a bad parameter is a 400 that names it.
func TestMachineListAPIOptions(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if err := h.a.Store.Update(ctx, func(tx *inventory.Tx) error {
		for i := range 12 {
			st := "ready"
			if i%4 == 0 {
				st = "retired"
			}
			if _, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: fmt.Sprintf("line-%02d", i), State: st,
				Labels: map[string]string{"ip": fmt.Sprintf("10.1.0.%d", 10+i)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list := func(q string) (int, api.MachineList, string, string) {
		t.Helper()
		st, body, hdr := h.raw("GET", "/api/v1/machines"+q, h.tok["auditor"], "", nil)
		var out api.MachineList
		json.Unmarshal(body, &out)
		return st, out, string(body), hdr.Get("X-Total-Count")
	}
	names := func(l api.MachineList) string {
		var n []string
		for _, m := range l.Items {
			n = append(n, m.Name)
		}
		return strings.Join(n, ",")
	}
	// Default: retired (0, 4, 8) hidden; 9 others.
	st, out, body, hdr := list("")
	if st != 200 || out.Total != 9 || hdr != "9" || strings.Contains(names(out), "line-00") {
		t.Fatalf("default list: %d total %d header %q %s", st, out.Total, hdr, body)
	}
	// Page 2 of 3, newest name first: line-11,10,09 | line-07,06,05.
	st, out, body, _ = list("?sort=name&dir=desc&limit=3&offset=3")
	if st != 200 || names(out) != "line-07,line-06,line-05" {
		t.Fatalf("page 2 desc: %d %s", st, body)
	}
	// With retired, by IP ascending: 10.1.0.10 (line-00) first.
	st, out, body, hdr = list("?include_retired=true&sort=ip&limit=2")
	if st != 200 || out.Total != 12 || hdr != "12" || names(out) != "line-00,line-01" {
		t.Fatalf("include_retired by ip: %d %s", st, body)
	}
	// state=retired lists them without the toggle; q narrows.
	if st, out, body, _ = list("?state=retired&q=line-0"); st != 200 || names(out) != "line-00,line-04,line-08" {
		t.Fatalf("state=retired: %d %s", st, body)
	}
	for q, field := range map[string]string{
		"?sort=serial":          "sort",
		"?sort=name%3Bdrop":     "sort",
		"?dir=up":               "dir",
		"?include_retired=yes!": "include_retired",
		"?limit=5000":           "limit",
		"?offset=-1":            "offset",
		"?state=gone":           "state",
	} {
		st, _, body, _ := list(q)
		if st != 400 || !strings.Contains(body, field) {
			t.Errorf("machines%s: %d %s (want 400 naming %s)", q, st, body, field)
		}
	}
}
