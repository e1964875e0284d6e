package lifecycle

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"slate/inventory"
)

type countingNotifier struct{ ids []string }

func (c *countingNotifier) MachineChanged(id string) { c.ids = append(c.ids, id) }

func setup(t *testing.T) (*inventory.Store, *Machines, *countingNotifier) {
	t.Helper()
	s, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "db"), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	n := &countingNotifier{}
	return s, New(s, n), n
}

// newMachine stores a machine in a given state (as if it had got there).
func newMachine(t *testing.T, s *inventory.Store, name, state string) inventory.Machine {
	t.Helper()
	var m inventory.Machine
	err := s.Update(context.Background(), func(tx *inventory.Tx) error {
		var err error
		m, err = tx.CreateMachine(context.Background(), inventory.NewMachine{Name: name, State: state})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTableCoversEveryStateAndTheDesignedJourney(t *testing.T) {
	tbl := Table()
	for _, st := range States() {
		if _, ok := tbl[st]; !ok {
			t.Errorf("state %s missing from the table", st)
		}
	}
	journey := []string{Discovered, Enrolled, Inspecting, Ready, Configuring, Provisioning, Deployed, Updating, Deployed,
		RollingBack, Deployed, Decommissioning, Sanitized, Retired}
	for i := 0; i+1 < len(journey); i++ {
		if !Allowed(journey[i], journey[i+1]) {
			t.Errorf("DESIGN.md journey step %s → %s is not allowed", journey[i], journey[i+1])
		}
	}
	for _, st := range States() {
		if st != Retired && st != Decommissioning && st != Sanitized && st != Failed && !Allowed(st, Decommissioning) {
			t.Errorf("%s → decommissioning should be allowed (any → decommissioning)", st)
		}
		if st != Retired && st != Failed && !Allowed(st, Failed) {
			t.Errorf("%s → failed should be allowed", st)
		}
	}
	for _, bad := range [][2]string{{Discovered, Deployed}, {Retired, Enrolled}, {Retired, Decommissioning}, {Enrolled, Provisioning},
		{Deployed, Provisioning}, {Sanitized, Deployed}, {Failed, Ready}} {
		if Allowed(bad[0], bad[1]) {
			t.Errorf("%s → %s must be refused", bad[0], bad[1])
		}
	}
}

func TestTransitionRefusedNamesBothStatesAndWritesOnlyTheRefusal(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	m := newMachine(t, s, "x", Enrolled)
	_, err := l.Transition(ctx, m.ID, Deployed, "op", "skip ahead")
	var te *TransitionError
	if !errors.As(err, &te) || !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "from enrolled to deployed") {
		t.Fatalf("got %v", err)
	}
	got, _ := s.GetMachine(ctx, m.ID)
	if got.State != Enrolled {
		t.Fatalf("state changed to %s by a refused move", got.State)
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID})
	if len(ev) != 1 || ev[0].Outcome != "refused" || ev[0].Details["to"] != Deployed {
		t.Fatalf("want exactly one refused audit event, got %+v", ev)
	}
	if _, err := l.Transition(ctx, m.ID, "bogus", "op", "r"); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("unknown state: %v", err)
	}
}

func TestFailKeepsReasonAndRetryGoesBack(t *testing.T) {
	s, l, n := setup(t)
	ctx := context.Background()
	m := newMachine(t, s, "x", Enrolled)
	if _, err := l.Transition(ctx, m.ID, Inspecting, "op", "go"); err != nil {
		t.Fatal(err)
	}
	f, err := l.Fail(ctx, m.ID, "agent", "disk /dev/sda not found", "t-123")
	if err != nil {
		t.Fatal(err)
	}
	if f.State != Failed || f.FailedReason != "disk /dev/sda not found" || f.FailedTask != "t-123" || f.FailedFrom != Inspecting {
		t.Fatalf("failed machine: %+v", f)
	}
	if _, err := l.Transition(ctx, m.ID, Ready, "op", "skip"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("leaving failed for ready without retry: %v", err)
	}
	r, err := l.Retry(ctx, m.ID, "op", "disk replaced")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != Inspecting || r.FailedReason != "" {
		t.Fatalf("after retry: %+v", r)
	}
	if _, err := l.Retry(ctx, m.ID, "op", "again"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("retry of a machine that is not failed: %v", err)
	}
	ev, _ := s.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID})
	var actions []string
	for _, e := range ev {
		actions = append(actions, e.Action+":"+e.Outcome)
	}
	slices.Reverse(actions)
	// inspecting, failed, (refused: ready), retry, (refused: retry again)
	want := "machine.transition:ok machine.transition:ok machine.transition:refused machine.retry:ok machine.transition:refused"
	if strings.Join(actions, " ") != want {
		t.Fatalf("audit trail:\n got %s\nwant %s", strings.Join(actions, " "), want)
	}
	if len(n.ids) != 3 {
		t.Fatalf("notifier heard %d changes, want 3 (committed moves only)", len(n.ids))
	}
}

func TestEnrollAcceptsDiscoveredMachine(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	s.Update(ctx, func(tx *inventory.Tx) error {
		_, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: "disc", MACs: []string{"52:54:00:00:00:99"}, State: Discovered})
		return err
	})
	m, err := l.Enroll(ctx, nil, "op", EnrollRequest{Name: "press-7", MACs: []string{"52-54-00-00-00-99"}, Serial: "P7"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "press-7" || m.State != Enrolled || m.Serial != "P7" {
		t.Fatalf("accepted machine: %+v", m)
	}
	_, total, _ := s.ListMachines(ctx, inventory.MachineFilter{})
	if total != 1 {
		t.Fatalf("enrolling a discovered machine created a second one (%d)", total)
	}
	if _, err := l.Enroll(ctx, nil, "op", EnrollRequest{MACs: []string{"52:54:00:00:00:99"}}); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("enrolling an enrolled MAC again: %v", err)
	}
	if _, err := l.Enroll(ctx, nil, "op", EnrollRequest{}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("empty enroll: %v", err)
	}
}

func TestSanitizedOnlyByAVerifiedWipe(t *testing.T) {
	s, l, _ := setup(t)
	ctx := context.Background()
	m := newMachine(t, s, "x", Decommissioning)
	if _, err := l.Transition(ctx, m.ID, Sanitized, "op", "trust me"); !errors.Is(err, inventory.ErrConflict) || !strings.Contains(err.Error(), "verified") {
		t.Fatalf("manual sanitized: %v", err)
	}
	if got, _ := s.GetMachine(ctx, m.ID); got.State != Decommissioning {
		t.Fatalf("state changed to %s", got.State)
	}
}
