package appliance_test

import (
	"encoding/json"
	"strings"
	"testing"

	"slate/agent/agentproto"
	"slate/inventory"
)

// TestOnlyManualKindsAreQueuedByHand: POST /machines/{id}/tasks queues exactly the kinds
// agentproto marks Manual; a wipe, a wipe plan, an install or an unknown kind is refused with
// the list of what may be queued, and writes no task.
func TestOnlyManualKindsAreQueuedByHand(t *testing.T) {
	h := newHarness(t)
	op := h.tok["operator"]
	st, b := h.do("POST", "/api/v1/machines", op, map[string]any{"name": "hand", "macs": []string{"52:54:00:0a:0b:01"}, "serial": "HAND1"})
	if st != 201 {
		t.Fatalf("enroll: %d %s", st, b)
	}
	var m inventory.Machine
	json.Unmarshal(b, &m)
	for _, k := range agentproto.Kinds() {
		st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/tasks", op, map[string]any{"kind": string(k)})
		switch {
		case k.Manual() && st != 201:
			t.Errorf("%s: %d %s, want 201", k, st, b)
		case !k.Manual() && (st != 422 || !strings.Contains(string(b), "inspect, reboot, poweroff, wait")):
			t.Errorf("%s: %d %s, want 422 naming the kinds that may be queued", k, st, b)
		}
	}
	if st, b := h.do("POST", "/api/v1/machines/"+m.ID+"/tasks", op, map[string]any{"kind": "format-disk"}); st != 422 {
		t.Errorf("unknown kind: %d %s", st, b)
	}
	ts, err := h.a.Store.ListTasks(t.Context(), m.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, tk := range ts {
		queued[tk.Kind] = true
	}
	for _, k := range agentproto.Kinds() {
		if queued[string(k)] != k.Manual() {
			t.Errorf("%s queued = %v, want %v", k, queued[string(k)], k.Manual())
		}
	}
}
