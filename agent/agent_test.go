package agent

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/agent/agentproto"
)

func TestParseCmdline(t *testing.T) {
	c, err := ParseCmdline(`BOOT_IMAGE=vmlinuz initrd=initrd.gz console=ttyS0 slate.url=http://10.99.0.1:8080/ slate.token=sla_abc slate.machine="m-1" quiet` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "http://10.99.0.1:8080" || c.Token != "sla_abc" || c.Machine != "m-1" || c.Debug {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{
		"console=ttyS0",
		"slate.url=http://x",
		"slate.token=t",
		"slate.url=ftp://x slate.token=t",
		"slate.url=http:// slate.token=t",
		`slate.url=http://x slate.token="a b"`,
	} {
		if _, err := ParseCmdline(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func FuzzParseCmdline(f *testing.F) {
	f.Add(`slate.url=http://10.0.0.1 slate.token=x slate.machine=m`)
	f.Add(`a="b c" slate.url="http://h:1/" slate.token=t slate.debug`)
	f.Add(`"`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCmdline(s)
		if err == nil && (c.URL == "" || (c.Token == "" && !c.Media)) {
			t.Fatalf("accepted without url/token: %q", s)
		}
	})
}

// fakeAPI records what the loop reports.
type fakeAPI struct {
	mu       sync.Mutex
	tasks    []agentproto.Task
	results  map[string]agentproto.Result
	progress map[string][]agentproto.Progress
}

func (f *fakeAPI) Register(context.Context, agentproto.Register) (agentproto.RegisterReply, error) {
	return agentproto.RegisterReply{MachineID: "m-1"}, nil
}

func (f *fakeAPI) NextTask(ctx context.Context, wait time.Duration) (agentproto.Task, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tasks) == 0 {
		return agentproto.Task{}, false, nil
	}
	t := f.tasks[0]
	f.tasks = f.tasks[1:]
	return t, true, nil
}

func (f *fakeAPI) Progress(ctx context.Context, id string, p agentproto.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress[id] = append(f.progress[id], p)
	return nil
}

func (f *fakeAPI) Result(ctx context.Context, id string, r agentproto.Result) (agentproto.ResultReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[id] = r
	return agentproto.ResultReply{State: r.State}, nil
}

type recPower struct{ reboot, off int }

func (p *recPower) Reboot() error   { p.reboot++; return nil }
func (p *recPower) PowerOff() error { p.off++; return nil }

type panicInspector struct{}

func (panicInspector) Inspect(context.Context) (agentproto.Facts, error) {
	panic("nil map in a driver")
}

// A panicking task, an unknown kind, bad params: each fails its own task, and the loop goes on.
func TestLoopSurvivesBadTasks(t *testing.T) {
	api := &fakeAPI{results: map[string]agentproto.Result{}, progress: map[string][]agentproto.Progress{}, tasks: []agentproto.Task{
		{ID: "t1", Kind: "inspect"},
		{ID: "t2", Kind: "format-c"},
		{ID: "t3", Kind: "wait", Params: json.RawMessage(`{"seconds":"x"}`)},
		{ID: "t4", Kind: "wait", Params: json.RawMessage(`{"seconds":0.2}`)},
		{ID: "t5", Kind: "poweroff"},
		{ID: "t6", Kind: "wait", Params: json.RawMessage(`{"seconds":0,"fail":"drill"}`)},
	}}
	power := &recPower{}
	loop := &Loop{API: api, Registry: BuiltinRegistry(panicInspector{}, power), ProgressEvery: 20 * time.Millisecond}
	for range 6 {
		if err := loop.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"t1": "crashed", "t2": "cannot run", "t3": "params", "t4": "", "t5": "", "t6": "drill"}
	for id, msg := range want {
		r := api.results[id]
		if msg == "" {
			if r.State != "succeeded" {
				t.Errorf("%s: %+v", id, r)
			}
			continue
		}
		if r.State != "failed" || !strings.Contains(r.Message, msg) {
			t.Errorf("%s: want failed with %q, got %+v", id, msg, r)
		}
	}
	if power.off != 1 || power.reboot != 0 {
		t.Fatalf("power: %+v", power)
	}
	// The 0.2 s wait streamed progress and its log line reached Slate exactly once.
	lines := 0
	for _, p := range api.progress["t4"] {
		lines += len(p.Logs)
	}
	lines += len(api.results["t4"].Logs)
	if len(api.progress["t4"]) == 0 || lines != 1 {
		t.Fatalf("wait progress: %d reports, %d lines", len(api.progress["t4"]), lines)
	}
}
