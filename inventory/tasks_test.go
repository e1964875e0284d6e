package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func openTaskTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "slate.db")
	s, err := Open(ctx, path, Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func taskTestMachine(t *testing.T, s *Store, name, mac string) Machine {
	t.Helper()
	var m Machine
	err := s.Update(context.Background(), func(tx *Tx) error {
		var err error
		m, err = tx.CreateMachine(context.Background(), NewMachine{Name: name, MACs: []string{mac}, State: "inspecting"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTaskLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _ := openTaskTestStore(t)
	m := taskTestMachine(t, s, "m1", "52:54:00:00:00:01")
	other := taskTestMachine(t, s, "m2", "52:54:00:00:00:02")

	if _, err := s.CreateTask(ctx, "alice", m.ID, "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty kind: want ErrInvalid, got %v", err)
	}
	if _, err := s.CreateTask(ctx, "alice", m.ID, "wipe", json.RawMessage(`{bad`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad params: want ErrInvalid, got %v", err)
	}
	if _, err := s.CreateTask(ctx, "alice", "m-nope", "inspect", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown machine: want ErrNotFound, got %v", err)
	}
	t1, err := s.CreateTask(ctx, "alice", m.ID, "inspect", nil)
	if err != nil {
		t.Fatal(err)
	}
	if t1.State != TaskPending || string(t1.Params) != "{}" {
		t.Fatalf("new task: %+v", t1)
	}
	t2, err := s.CreateTask(ctx, "alice", m.ID, "wait", json.RawMessage(`{"seconds": 1}`))
	if err != nil {
		t.Fatal(err)
	}

	// Another machine has nothing to claim.
	if _, ok, err := s.ClaimNextTask(ctx, other.ID, 3); err != nil || ok {
		t.Fatalf("claim for other machine: ok=%v err=%v", ok, err)
	}
	c, ok, err := s.ClaimNextTask(ctx, m.ID, 3)
	if err != nil || !ok || c.ID != t1.ID || c.State != TaskRunning || c.Attempts != 1 || c.StartedAt.IsZero() {
		t.Fatalf("claim: %+v ok=%v err=%v", c, ok, err)
	}

	// Progress: scoped to the owner, idempotent for log lines.
	lines := []TaskLogLine{{Seq: 1, Line: "one"}, {Seq: 2, Line: "two"}}
	if err := s.ReportTaskProgress(ctx, other.ID, t1.ID, 0.5, "x", lines); !errors.Is(err, ErrNotFound) {
		t.Fatalf("progress by another machine: want ErrNotFound, got %v", err)
	}
	if err := s.ReportTaskProgress(ctx, m.ID, t1.ID, 1.5, "x", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("progress 1.5: want ErrInvalid, got %v", err)
	}
	if err := s.ReportTaskProgress(ctx, m.ID, t2.ID, 0.5, "x", nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("progress of a pending task: want ErrConflict, got %v", err)
	}
	for range 2 {
		if err := s.ReportTaskProgress(ctx, m.ID, t1.ID, 0.5, "half", lines); err != nil {
			t.Fatal(err)
		}
	}
	logs, err := s.TaskLogs(ctx, t1.ID, 0, 0)
	if err != nil || len(logs) != 2 || logs[0].Line != "one" || logs[1].Line != "two" {
		t.Fatalf("logs: %+v %v", logs, err)
	}

	// Finish: hook runs once, repeats are harmless, contradictions refused.
	hookRuns := 0
	hook := func(ctx context.Context, tx *Tx, task Task) error { hookRuns++; return nil }
	out := TaskOutcome{State: TaskSucceeded, Message: "done", Result: json.RawMessage(`{"ok":true}`),
		Logs: []TaskLogLine{{Seq: 2, Line: "two"}, {Seq: 3, Line: "three"}}}
	if _, _, err := s.FinishTask(ctx, other.ID, t1.ID, out, hook); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finish by another machine: want ErrNotFound, got %v", err)
	}
	f, changed, err := s.FinishTask(ctx, m.ID, t1.ID, out, hook)
	if err != nil || !changed || f.State != TaskSucceeded || f.Progress != 1 || string(f.Result) != `{"ok":true}` {
		t.Fatalf("finish: %+v changed=%v err=%v", f, changed, err)
	}
	f2, changed, err := s.FinishTask(ctx, m.ID, t1.ID, out, hook)
	if err != nil || changed || f2.FinishedAt != f.FinishedAt {
		t.Fatalf("repeated finish: changed=%v err=%v", changed, err)
	}
	if hookRuns != 1 {
		t.Fatalf("hook ran %d times, want 1", hookRuns)
	}
	if _, _, err := s.FinishTask(ctx, m.ID, t1.ID, TaskOutcome{State: TaskFailed}, hook); !errors.Is(err, ErrConflict) {
		t.Fatalf("contradicting finish: want ErrConflict, got %v", err)
	}
	if _, _, err := s.FinishTask(ctx, m.ID, t2.ID, TaskOutcome{State: "maybe"}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("finish as maybe: want ErrInvalid, got %v", err)
	}
	if err := s.ReportTaskProgress(ctx, m.ID, t1.ID, 0.5, "late", nil); !errors.Is(err, ErrConflict) {
		t.Fatalf("progress after finish: want ErrConflict, got %v", err)
	}
	logs, _ = s.TaskLogs(ctx, t1.ID, 1, 0)
	if len(logs) != 2 || logs[1].Line != "three" {
		t.Fatalf("logs after seq 1: %+v", logs)
	}

	// A failing hook rolls the whole finish back.
	c2, _, _ := s.ClaimNextTask(ctx, m.ID, 3)
	if c2.ID != t2.ID {
		t.Fatalf("second claim got %s, want %s", c2.ID, t2.ID)
	}
	boom := errors.New("boom")
	if _, _, err := s.FinishTask(ctx, m.ID, t2.ID, TaskOutcome{State: TaskSucceeded}, func(context.Context, *Tx, Task) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("hook error: %v", err)
	}
	if g, _ := s.GetTask(ctx, t2.ID); g.State != TaskRunning {
		t.Fatalf("after failed hook the task is %s, want running", g.State)
	}

	list, err := s.ListTasks(ctx, m.ID, 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if l, _ := s.ListTasks(ctx, other.ID, 0); len(l) != 0 {
		t.Fatalf("other machine lists %d tasks", len(l))
	}
}

// A task handed out but never answered (lost reply, reboot) is handed out again, then failed.
func TestClaimRedeliversLostTasksThenFails(t *testing.T) {
	ctx := context.Background()
	s, _ := openTaskTestStore(t)
	m := taskTestMachine(t, s, "m1", "52:54:00:00:00:01")
	t1, _ := s.CreateTask(ctx, "lc", m.ID, "inspect", nil)
	t2, _ := s.CreateTask(ctx, "lc", m.ID, "reboot", nil)
	for i := 1; i <= 2; i++ {
		c, ok, err := s.ClaimNextTask(ctx, m.ID, 2)
		if err != nil || !ok || c.ID != t1.ID || c.Attempts != i {
			t.Fatalf("claim %d: %+v %v %v", i, c, ok, err)
		}
	}
	c, ok, err := s.ClaimNextTask(ctx, m.ID, 2)
	if err != nil || !ok || c.ID != t2.ID {
		t.Fatalf("after two lost attempts the next task should be %s: %+v %v", t2.ID, c, err)
	}
	g, _ := s.GetTask(ctx, t1.ID)
	if g.State != TaskFailed || g.Message == "" {
		t.Fatalf("lost task: %+v", g)
	}
}

// Concurrent claims (a retried long-poll racing the original) count every attempt and never
// put two tasks of one machine in running at once.
func TestClaimIsAtomic(t *testing.T) {
	ctx := context.Background()
	s, _ := openTaskTestStore(t)
	m := taskTestMachine(t, s, "m1", "52:54:00:00:00:01")
	for range 3 {
		if _, err := s.CreateTask(ctx, "lc", m.ID, "wait", nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := s.ClaimNextTask(ctx, m.ID, 10); err != nil || !ok {
				t.Errorf("claim: %v %v", ok, err)
			}
		}()
	}
	wg.Wait()
	list, _ := s.ListTasks(ctx, m.ID, 0)
	running, attempts := 0, 0
	for _, task := range list {
		if task.State == TaskRunning {
			running++
		}
		attempts += task.Attempts
	}
	if running != 1 || attempts != 5 {
		t.Fatalf("after 5 concurrent claims: %d running (want 1), %d attempts counted (want 5)", running, attempts)
	}
}

// A finished task survives a restart of Slate (the store reopened) and a retried report.
func TestFinishSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTaskTestStore(t)
	m := taskTestMachine(t, s, "m1", "52:54:00:00:00:01")
	t1, _ := s.CreateTask(ctx, "lc", m.ID, "inspect", nil)
	s.ClaimNextTask(ctx, m.ID, 3)
	if _, _, err := s.FinishTask(ctx, m.ID, t1.ID, TaskOutcome{State: TaskSucceeded}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(ctx, path, Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, changed, err := s2.FinishTask(ctx, m.ID, t1.ID, TaskOutcome{State: TaskSucceeded}, nil); err != nil || changed {
		t.Fatalf("retried finish after restart: changed=%v err=%v", changed, err)
	}
	if _, ok, _ := s2.ClaimNextTask(ctx, m.ID, 3); ok {
		t.Fatal("a finished task was handed out again after restart")
	}
	if _, err := s2.CancelTask(ctx, "bob", t1.ID, "x"); !errors.Is(err, ErrConflict) {
		t.Fatalf("cancel finished: %v", err)
	}
}

// An agent asks only for the kinds it runs: tasks queued in one transaction are taken in
// insertion order, and a node agent skips the deploy environment's tasks, leaving them for
// the next boot.
func TestClaimByKindInInsertionOrder(t *testing.T) {
	ctx := context.Background()
	s, _ := openTaskTestStore(t)
	m := taskTestMachine(t, s, "m1", "52:54:00:00:00:01")
	var plan, reboot Task
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		if plan, err = tx.CreateTask(ctx, "lc", m.ID, "wipe-plan", nil); err != nil {
			return err
		}
		reboot, err = tx.CreateTask(ctx, "lc", m.ID, "reboot", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.ClaimNextTask(ctx, m.ID, 3, "inspect"); ok {
		t.Fatal("an agent got a kind it did not ask for")
	}
	c, ok, err := s.ClaimNextTask(ctx, m.ID, 3, "reboot", "inspect", "poweroff", "wait")
	if err != nil || !ok || c.ID != reboot.ID {
		t.Fatalf("node claim: %+v %v %v, want the reboot", c, ok, err)
	}
	s.FinishTask(ctx, m.ID, c.ID, TaskOutcome{State: TaskSucceeded}, nil)
	if c, ok, _ := s.ClaimNextTask(ctx, m.ID, 3); !ok || c.ID != plan.ID {
		t.Fatalf("deploy environment claim: %+v, want the wipe plan", c)
	}
}
