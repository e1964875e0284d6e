package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"slate/agent/agentproto"
)

// Outcome is what a successful task produced.
type Outcome struct {
	Result json.RawMessage   // the task's output document, stored with the task
	Facts  *agentproto.Facts // inspect: stored as the machine's facts in the same transaction
	// After runs once Slate has acknowledged the result (reboot, power off): a machine must
	// never go down with its result unreported.
	After func(ctx context.Context) error
}

// Reporter is how a running task streams progress and log lines to Slate.
type Reporter interface {
	// Progress sets how far the task is (0..1) with a short message.
	Progress(fraction float64, message string)
	// Logf adds a line to the task's log.
	Logf(format string, args ...any)
}

// Runner runs one kind of task. Params is the task's JSON; a Runner validates it and returns a
// clear error for bad params.
type Runner interface {
	Run(ctx context.Context, task agentproto.Task, rep Reporter) (Outcome, error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, task agentproto.Task, rep Reporter) (Outcome, error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, task agentproto.Task, rep Reporter) (Outcome, error) {
	return f(ctx, task, rep)
}

// Registry maps task kinds to runners: the deploy environment registers the built-in kinds and
// the install and wipe kinds, node mode only the built-in ones (inspect, reboot, poweroff, wait).
type Registry struct {
	runners map[agentproto.TaskKind]Runner
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{runners: map[agentproto.TaskKind]Runner{}} }

// Register adds (or replaces) the runner of a kind.
func (r *Registry) Register(kind agentproto.TaskKind, run Runner) { r.runners[kind] = run }

// Kinds lists the registered kinds.
func (r *Registry) Kinds() []agentproto.TaskKind {
	out := make([]agentproto.TaskKind, 0, len(r.runners))
	for k := range r.runners {
		out = append(out, k)
	}
	return out
}

// API is what the loop needs of Slate (the Client; tests may fake it).
type API interface {
	Register(ctx context.Context, r agentproto.Register) (agentproto.RegisterReply, error)
	NextTask(ctx context.Context, wait time.Duration) (agentproto.Task, bool, error)
	Progress(ctx context.Context, taskID string, p agentproto.Progress) error
	Result(ctx context.Context, taskID string, r agentproto.Result) (agentproto.ResultReply, error)
}

// Loop fetches tasks, runs them, and reports their results, forever (until ctx ends).
type Loop struct {
	API      API
	Registry *Registry
	Log      *slog.Logger
	Register agentproto.Register
	// PollWait is the long-poll duration asked of Slate (default 25 s).
	PollWait time.Duration
	// ProgressEvery batches progress and log lines (default 1 s).
	ProgressEvery time.Duration
	// ErrorPause is how long to wait after an error the client did not retry itself (default 5 s).
	ErrorPause time.Duration
	Now        func() time.Time
	Sleep      func(ctx context.Context, d time.Duration) error
}

func (l *Loop) defaults() {
	if l.PollWait <= 0 {
		l.PollWait = 25 * time.Second
	}
	if l.ProgressEvery <= 0 {
		l.ProgressEvery = time.Second
	}
	if l.ErrorPause <= 0 {
		l.ErrorPause = 5 * time.Second
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.Sleep == nil {
		l.Sleep = sleepCtx
	}
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
}

// Run registers, then serves tasks until ctx ends. It returns only ctx's error.
func (l *Loop) Run(ctx context.Context) error {
	l.defaults()
	for {
		reg, err := l.API.Register(ctx, l.Register)
		if err == nil {
			l.Log = l.Log.With("machine", reg.MachineID)
			l.Log.Info("registered with Slate", "name", reg.Name, "state", reg.State)
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.Log.Error("register failed; retrying", "err", err)
		if err := l.Sleep(ctx, l.ErrorPause); err != nil {
			return err
		}
	}
	for {
		if err := l.Step(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.Log.Error("task loop", "err", err)
			if err := l.Sleep(ctx, l.ErrorPause); err != nil {
				return err
			}
		}
	}
}

// Step asks for one task and, if there is one, runs it and reports its result.
func (l *Loop) Step(ctx context.Context) error {
	l.defaults()
	task, ok, err := l.API.NextTask(ctx, l.PollWait)
	if err != nil {
		return fmt.Errorf("ask for the next task: %w", err)
	}
	if !ok {
		return nil
	}
	log := l.Log.With("task", task.ID, "kind", task.Kind)
	log.Info("task received", "attempt", task.Attempts)
	// The task runs under its own context: an operator cancelling it in Slate (seen as a 409
	// on a progress report) stops it without stopping the agent.
	taskCtx, cancelTask := context.WithCancel(ctx)
	defer cancelTask()
	rep := newReporter(l, task.ID, log)
	rep.cancel = cancelTask
	stop := rep.start(ctx)
	out, runErr := l.runSafely(taskCtx, task, rep)
	stop()
	res := agentproto.Result{State: "succeeded", Result: out.Result, Facts: out.Facts, Logs: rep.drain()}
	if runErr != nil {
		res = agentproto.Result{State: "failed", Message: runErr.Error(), Logs: rep.drain()}
		log.Error("task failed", "err", runErr)
	} else {
		log.Info("task succeeded")
	}
	// The result is retried by the client until Slate records it; a refusal here is final.
	reply, err := l.API.Result(ctx, task.ID, res)
	if IsStatus(err, http.StatusConflict) {
		// Slate already holds a final state (the task was cancelled): nothing to retry.
		log.Warn("Slate refused the result: the task already ended there", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("report result of task %s: %w", task.ID, err)
	}
	if reply.Duplicate {
		log.Info("Slate already had this result")
	}
	if runErr == nil && out.After != nil {
		if err := out.After(ctx); err != nil {
			return fmt.Errorf("after task %s: %w", task.ID, err)
		}
	}
	return nil
}

// runSafely runs the task's runner, turning a panic into the task's failure: PID 1 must
// never die because one task had a bug.
func (l *Loop) runSafely(ctx context.Context, task agentproto.Task, rep Reporter) (out Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			l.Log.Error("task panicked", "task", task.ID, "panic", r, "stack", string(debug.Stack()))
			out, err = Outcome{}, fmt.Errorf("task %s (%s) crashed: %v", task.ID, task.Kind, r)
		}
	}()
	run, ok := l.Registry.runners[task.Kind]
	if !ok {
		return Outcome{}, fmt.Errorf("this agent cannot run %q tasks (it knows %v): update the deploy environment", task.Kind, l.Registry.Kinds())
	}
	if len(task.Params) > 0 && !json.Valid(task.Params) {
		return Outcome{}, errors.New("task params are not valid JSON")
	}
	return run.Run(ctx, task, rep)
}

// reporter batches progress and log lines and sends them every ProgressEvery.
type reporter struct {
	l      *Loop
	taskID string
	log    *slog.Logger

	cancel func()

	mu       sync.Mutex
	seq      int64
	pending  []agentproto.LogLine
	progress float64
	message  string
	dirty    bool
}

func newReporter(l *Loop, taskID string, log *slog.Logger) *reporter {
	return &reporter{l: l, taskID: taskID, log: log}
}

func (r *reporter) Progress(fraction float64, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress = min(max(fraction, 0), 1)
	r.message = message
	r.dirty = true
}

func (r *reporter) Logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.log.Info(line)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.pending = append(r.pending, agentproto.LogLine{Seq: r.seq, At: r.l.Now().UTC(), Line: line})
	r.dirty = true
}

// drain takes the lines not yet sent (they go with the result).
func (r *reporter) drain() []agentproto.LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.pending
	r.pending = nil
	return out
}

func (r *reporter) flush(ctx context.Context) {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return
	}
	p := agentproto.Progress{Progress: r.progress, Message: r.message, Logs: r.pending}
	r.dirty = false
	r.mu.Unlock()
	if err := r.l.API.Progress(ctx, r.taskID, p); err != nil {
		if IsStatus(err, http.StatusConflict) && r.cancel != nil {
			r.log.Warn("task ended in Slate (cancelled?): stopping it", "err", err)
			r.cancel()
			return
		}
		if ctx.Err() == nil {
			r.log.Warn("progress not delivered (the lines go with the result)", "err", err)
		}
		return
	}
	r.mu.Lock()
	// Drop what was delivered; lines added meanwhile stay pending.
	if len(r.pending) >= len(p.Logs) {
		r.pending = r.pending[len(p.Logs):]
	}
	r.mu.Unlock()
}

// start sends progress in the background until the returned stop is called.
func (r *reporter) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.l.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.flush(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}
