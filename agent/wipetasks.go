package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"slate/agent/agentproto"
	"slate/wipe"
)

// RegisterWipe adds the NIST SP 800-88 tasks: wipe-plan probes every drive and proposes a
// plan (nothing is written); wipe executes a plan Slate had confirmed, with the authorization
// Slate built after that audited confirmation.
func RegisterWipe(r *Registry, machineID, version string, log *slog.Logger) {
	r.Register(agentproto.KindWipePlan, RunnerFunc(func(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
		var p agentproto.WipePlanParams
		if len(t.Params) > 0 && string(t.Params) != "{}" {
			dec := json.NewDecoder(bytes.NewReader(t.Params))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&p); err != nil {
				return Outcome{}, fmt.Errorf("wipe-plan: params: %w", err)
			}
		}
		policy := wipe.DefaultPolicy()
		if p.Policy != nil {
			policy = *p.Policy
		}
		rep.Progress(0.1, "probing drives")
		plan, err := wipe.PlanTask(ctx, machineID, policy, log, time.Now().UTC())
		if err != nil {
			return Outcome{}, fmt.Errorf("wipe-plan: %w", err)
		}
		for _, d := range plan.Drives {
			if d.Blocked {
				rep.Logf("%s %s: BLOCKED: %s (%s)", d.Drive.Path, d.Drive.Serial, d.Reason, d.Remedy)
			} else {
				rep.Logf("%s %s: %s by %s, verified by %s", d.Drive.Path, d.Drive.Serial, d.Level, d.Method, d.Verification)
			}
		}
		res, err := json.Marshal(plan)
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Result: res}, nil
	}))
	r.Register(agentproto.KindWipe, RunnerFunc(func(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
		var p agentproto.WipeParams
		if err := json.Unmarshal(t.Params, &p); err != nil {
			return Outcome{}, fmt.Errorf("wipe: params: %w", err)
		}
		if p.Authorization.TaskID != t.ID || p.Authorization.MachineID != machineID {
			return Outcome{}, fmt.Errorf("wipe: the authorization is for task %s on machine %s, not task %s on this machine (%s): refusing",
				p.Authorization.TaskID, p.Authorization.MachineID, t.ID, machineID)
		}
		agg := wipe.NewProgressAggregator(p.Plan, rep.Progress)
		tr, err := wipe.RunTask(ctx, t.Params, wipe.Options{Log: log, Progress: agg.Progress, Tool: "Slate " + version})
		if err != nil {
			return Outcome{}, fmt.Errorf("wipe: %w", err)
		}
		for _, r := range tr.Results {
			rep.Logf("%s %s: %s (%s)", r.Drive.Path, r.Drive.Serial, r.Status, r.Method)
		}
		res, err := json.Marshal(tr)
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Result: res}, nil
	}))
}
