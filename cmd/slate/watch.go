package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"slate/inventory"
)

type machineView struct {
	inventory.Machine
	Why string `json:"why"`
}

// machineWatch follows one machine live: its state, what it waits for, its tasks' progress
// and new log lines, until it reaches a resting state (or Ctrl-C).
func machineWatch(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine watch", "slate machine watch <id|name> [--until STATE] [--timeout D]")
	server, _ := apiFlags(fs)
	until := fs.String("until", "", "stop when the machine reaches this state (default: deployed, ready, sanitized, retired or failed)")
	timeout := fs.Duration("timeout", 0, "give up after this long (0: never)")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	ref, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	var m machineView
	if err := c.do(ctx, "GET", "/machines/"+url.PathEscape(ref), nil, nil, &m); err != nil {
		return err
	}
	rest := map[string]bool{"deployed": true, "ready": true, "sanitized": true, "retired": true, "failed": true}
	if *until != "" {
		rest = map[string]bool{*until: true}
	}
	w := &watcher{c: c, env: env, id: m.ID, seenLog: map[string]int64{}, progress: map[string]string{}}
	events := make(chan struct{}, 1)
	go w.follow(ctx, events)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		state, err := w.show(ctx)
		if err != nil {
			return err
		}
		if rest[state] {
			if state == "failed" && *until != "failed" {
				return fmt.Errorf("machine %s failed", m.Name)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("machine %s did not reach %s within %s", m.Name, strings.Join(keys(rest), "/"), *timeout)
			}
			return nil
		case <-events:
		case <-tick.C:
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

type watcher struct {
	c                *client
	env              *cliEnv
	id               string
	lastState, lastW string
	seenLog          map[string]int64
	progress         map[string]string
}

// follow reads the server's event stream and signals each change of this machine.
func (w *watcher) follow(ctx context.Context, out chan<- struct{}) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", w.c.server+"/api/v1/events?machine="+url.QueryEscape(w.id), nil)
		req.Header.Set("Authorization", "Bearer "+w.c.token)
		resp, err := (&http.Client{}).Do(req)
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					select {
					case out <- struct{}{}:
					default:
					}
				}
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
}

func (w *watcher) show(ctx context.Context) (string, error) {
	var m machineView
	if err := w.c.do(ctx, "GET", "/machines/"+w.id, nil, nil, &m); err != nil {
		return "", err
	}
	now := time.Now().Format("15:04:05")
	if m.State != w.lastState {
		line := fmt.Sprintf("%s  %s → %s", now, m.Name, m.State)
		if m.State == "failed" {
			line += ": " + m.FailedReason
		}
		fmt.Fprintln(w.env.stdout, line)
		w.lastState = m.State
	}
	if m.Why != "" && m.Why != w.lastW {
		fmt.Fprintf(w.env.stdout, "%s  now: %s\n", now, m.Why)
		w.lastW = m.Why
	}
	var ts struct {
		Items []inventory.Task `json:"items"`
	}
	if err := w.c.do(ctx, "GET", "/machines/"+w.id+"/tasks", nil, nil, &ts); err != nil {
		return m.State, err
	}
	for i := len(ts.Items) - 1; i >= 0; i-- {
		t := ts.Items[i]
		p := fmt.Sprintf("%s %.0f%% %s", t.State, t.Progress*100, t.Message)
		if w.progress[t.ID] != p {
			fmt.Fprintf(w.env.stdout, "%s  task %s %s: %s\n", now, t.Kind, t.ID, p)
			w.progress[t.ID] = p
		}
		if t.State != "running" && !(t.Finished() && w.seenLog[t.ID] == 0) {
			continue
		}
		var tl struct {
			Logs []inventory.TaskLogLine `json:"logs"`
		}
		q := url.Values{"after": {fmt.Sprint(w.seenLog[t.ID])}}
		if err := w.c.do(ctx, "GET", "/tasks/"+t.ID, q, nil, &tl); err != nil {
			continue
		}
		for _, l := range tl.Logs {
			fmt.Fprintf(w.env.stdout, "          | %s\n", l.Line)
			w.seenLog[t.ID] = l.Seq
		}
		if len(tl.Logs) == 0 && t.Finished() {
			w.seenLog[t.ID] = -1
		}
	}
	return m.State, nil
}
