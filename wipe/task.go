package wipe

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// The decommission runs in two agent tasks with a human in between:
//   1. "wipe-plan": PlanTask probes and plans; the plan (JSON) goes to Slate, which shows it.
//   2. The technician confirms; Slate audits it and builds the Authorization (task id, machine,
//      plan digest, user) into the "wipe" task's params.
//   3. "wipe": RunTask executes and returns the results (no key on the machine being wiped).
//   4. Slate, on receiving the results, checks them (CheckResult, Certifiable) and signs the
//      certificates with its own Ed25519 key (slate/wipe/cert: never linked by the agent).

// PlanTask probes every disk (or the named ones) and makes the plan.
func PlanTask(ctx context.Context, machineID string, policy Policy, log *slog.Logger, now time.Time, names ...string) (Plan, error) {
	drives, err := Probe(ctx, log, names...)
	if err != nil {
		return Plan{}, err
	}
	if len(drives) == 0 {
		return Plan{}, fmt.Errorf("machine %s: no disks found to sanitize", machineID)
	}
	return MakePlan(machineID, drives, policy, now)
}

// TaskParams are the "wipe" task's params: the plan as confirmed and its authorization.
type TaskParams struct {
	Plan          Plan          `json:"plan"`
	Authorization Authorization `json:"authorization"`
}

// TaskResult is the "wipe" task's result document.
type TaskResult struct {
	MachineID  string   `json:"machine_id"`
	PlanDigest string   `json:"plan_digest"`
	Results    []Result `json:"results"`
	// Sanitized is true when every drive is sanitized (the machine may go to `sanitized`).
	Sanitized bool `json:"sanitized"`
}

// RunTask decodes the params, executes, and summarizes. A drive that failed makes the task's
// result not Sanitized, but the per-drive results are still returned for the report.
func RunTask(ctx context.Context, params json.RawMessage, opts Options) (TaskResult, error) {
	var p TaskParams
	dec := json.NewDecoder(strings.NewReader(string(params)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return TaskResult{}, fmt.Errorf("wipe task params: %w", err)
	}
	res, err := Execute(ctx, p.Authorization, p.Plan, opts)
	if err != nil {
		return TaskResult{}, err
	}
	tr := TaskResult{MachineID: p.Plan.MachineID, PlanDigest: p.Authorization.PlanDigest, Results: res, Sanitized: len(res) > 0}
	for _, r := range res {
		if r.Status != StatusSanitized {
			tr.Sanitized = false
		}
	}
	return tr, nil
}

// ProgressAggregator turns per-drive progress into one fraction and message for the task
// (the agent's Reporter.Progress): drives weigh equally; within a drive the purge/overwrite
// counts for 60 % and verification for 40 %.
type ProgressAggregator struct {
	mu     sync.Mutex
	drives map[string]float64
	last   map[string]Progress
	report func(fraction float64, message string)
}

// NewProgressAggregator starts every planned drive at 0.
func NewProgressAggregator(plan Plan, report func(fraction float64, message string)) *ProgressAggregator {
	a := &ProgressAggregator{drives: map[string]float64{}, last: map[string]Progress{}, report: report}
	for _, d := range plan.Drives {
		a.drives[d.Drive.Path] = 0
	}
	return a
}

// Progress is an Options.Progress callback.
func (a *ProgressAggregator) Progress(p Progress) {
	a.mu.Lock()
	f := p.Fraction
	switch p.Phase {
	case "sample-before":
		f = 0
	case "purge", "overwrite":
		f = 0.6 * f
	case "verify":
		f = 0.6 + 0.4*f
	case "done", "failed":
		f = 1
	}
	a.drives[p.Drive] = f
	a.last[p.Drive] = p
	var sum float64
	var parts []string
	for d, v := range a.drives {
		sum += v
		lp := a.last[d]
		s := fmt.Sprintf("%s %s %.0f%%", d, lp.Phase, 100*lp.Fraction)
		if lp.ETA > 0 {
			s += fmt.Sprintf(" ETA %s", time.Duration(lp.ETA*float64(time.Second)).Round(time.Second))
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	total := 0.0
	if len(a.drives) > 0 {
		total = sum / float64(len(a.drives))
	}
	report := a.report
	a.mu.Unlock()
	report(total, strings.Join(parts, "; "))
}
