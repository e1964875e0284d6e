package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"slate/agent/agentproto"
)

// Power is how the reboot and poweroff tasks end the machine's run (the real one syncs disks and
// calls reboot(2); tests record the call).
type Power interface {
	Reboot() error
	PowerOff() error
}

// Inspector collects the hardware facts.
type Inspector interface {
	Inspect(ctx context.Context) (agentproto.Facts, error)
}

// BuiltinRegistry returns the registry with the tasks every agent runs, deploy environment and
// node alike: inspect, reboot, poweroff, wait (agentproto.KindInspect …).
func BuiltinRegistry(insp Inspector, power Power) *Registry {
	r := NewRegistry()
	r.Register(agentproto.KindInspect, RunnerFunc(func(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
		rep.Progress(0.1, "reading hardware")
		f, err := insp.Inspect(ctx)
		if err != nil {
			return Outcome{}, fmt.Errorf("inspect: %w", err)
		}
		for _, e := range f.Errors {
			rep.Logf("not read: %s", e)
		}
		rep.Logf("inspected: %d CPU threads, %d MiB, %d disks, %d NICs, firmware %s", f.CPU.Threads, f.Memory.TotalBytes>>20, len(f.Disks), len(f.NICs), f.Firmware.Mode)
		rep.Progress(0.9, "reporting facts")
		return Outcome{Facts: &f}, nil
	}))
	r.Register(agentproto.KindReboot, RunnerFunc(func(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
		rep.Logf("rebooting once Slate has this result")
		return Outcome{After: func(context.Context) error { return power.Reboot() }}, nil
	}))
	r.Register(agentproto.KindPowerOff, RunnerFunc(func(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
		rep.Logf("powering off once Slate has this result")
		return Outcome{After: func(context.Context) error { return power.PowerOff() }}, nil
	}))
	r.Register(agentproto.KindWait, RunnerFunc(runWait))
	return r
}

func runWait(ctx context.Context, t agentproto.Task, rep Reporter) (Outcome, error) {
	var p agentproto.WaitParams
	if len(t.Params) > 0 {
		dec := json.NewDecoder(bytes.NewReader(t.Params))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return Outcome{}, fmt.Errorf("wait: params must be {\"seconds\": N}: %w", err)
		}
	}
	if p.Seconds < 0 || p.Seconds > 24*3600 {
		return Outcome{}, fmt.Errorf("wait: seconds must be between 0 and 86400, not %v", p.Seconds)
	}
	total := time.Duration(p.Seconds * float64(time.Second))
	rep.Logf("waiting %s", total)
	start := time.Now()
	tick := time.NewTicker(max(total/10, 10*time.Millisecond))
	defer tick.Stop()
	deadline := time.NewTimer(total)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return Outcome{}, fmt.Errorf("wait: interrupted: %w", ctx.Err())
		case <-tick.C:
			rep.Progress(float64(time.Since(start))/float64(max(total, 1)), "waiting")
		case <-deadline.C:
			if p.Fail != "" {
				return Outcome{}, fmt.Errorf("wait: %s", p.Fail)
			}
			res, err := json.Marshal(agentproto.WaitResult{WaitedSeconds: p.Seconds})
			if err != nil {
				return Outcome{}, fmt.Errorf("wait: encode the result: %w", err)
			}
			return Outcome{Result: res}, nil
		}
	}
}
