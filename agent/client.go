package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"slate/agent/agentproto"
)

// Client talks to Slate's agent API. Every call retries with capped exponential back-off
// (and jitter) while Slate is unreachable, answers 5xx, or answers something that is not the
// JSON it should be: a restart of Slate or a flaky link must never cost a task. Answers that
// retrying cannot fix (401, 404, 409, 400) are returned as *StatusError.
type Client struct {
	Base  string // http://host:port (no trailing slash)
	Token string
	HTTP  *http.Client
	Log   *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults 500 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Sleep waits d or until ctx ends; tests inject a fast one.
	Sleep func(ctx context.Context, d time.Duration) error
	// Kinds, when set, are the only task kinds asked for (an installed system's node agent).
	Kinds []agentproto.TaskKind
}

// StatusError is a final (not retried) refusal from Slate.
type StatusError struct {
	Op     string
	Status int
	Msg    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: Slate answered %d: %s", e.Op, e.Status, e.Msg)
}

// IsStatus reports whether err is a StatusError with that HTTP status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) logger() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// do sends one request, retrying until it gets a usable answer, a final refusal, or ctx ends.
// out may be nil; a 204 leaves it untouched and returns noContent=true.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) (noContent bool, err error) {
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return false, fmt.Errorf("%s: encode request: %w", op, err)
		}
	}
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 30 * time.Second
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	wait := minB
	for attempt := 1; ; attempt++ {
		nc, final, err := c.once(ctx, hc, op, method, path, body, out)
		if err == nil || final {
			return nc, err
		}
		if ctx.Err() != nil {
			return false, fmt.Errorf("%s: %w (last error: %v)", op, ctx.Err(), err)
		}
		// Jitter keeps a rack of machines rebooted together from hammering Slate in step.
		d := wait/2 + rand.N(wait/2+1)
		c.logger().Warn("Slate not usable, retrying", "op", op, "attempt", attempt, "in", d.Round(time.Millisecond), "err", err)
		if err := sleep(ctx, d); err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
		wait = min(wait*2, maxB)
	}
}

func (c *Client) once(ctx context.Context, hc *http.Client, op, method, path string, body []byte, out any) (noContent, final bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+agentproto.PathPrefix+path, rd)
	if err != nil {
		return false, true, fmt.Errorf("%s: %w (is slate.url right?)", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return false, false, fmt.Errorf("read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return true, false, nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out == nil {
			return false, false, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return false, false, fmt.Errorf("answer is not the expected JSON (%v): %.80q", err, data)
		}
		return false, false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return false, false, fmt.Errorf("status %d: %.200s", resp.StatusCode, strings.TrimSpace(string(data)))
	default:
		var e agentproto.Error
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return false, true, &StatusError{Op: op, Status: resp.StatusCode, Msg: msg}
	}
}

// Register tells Slate this agent is up.
func (c *Client) Register(ctx context.Context, r agentproto.Register) (agentproto.RegisterReply, error) {
	var out agentproto.RegisterReply
	_, err := c.do(ctx, "register", http.MethodPost, "/register", r, &out)
	return out, err
}

// NextTask long-polls for work; ok is false when there is none yet.
func (c *Client) NextTask(ctx context.Context, wait time.Duration) (t agentproto.Task, ok bool, err error) {
	q := "/tasks/next?wait=" + url.QueryEscape(wait.String())
	if len(c.Kinds) > 0 {
		kinds := make([]string, len(c.Kinds))
		for i, k := range c.Kinds {
			kinds[i] = string(k)
		}
		q += "&kinds=" + url.QueryEscape(strings.Join(kinds, ","))
	}
	nc, err := c.do(ctx, "next task", http.MethodGet, q, nil, &t)
	if err != nil || nc {
		return t, false, err
	}
	if t.ID == "" || t.Kind == "" {
		return t, false, fmt.Errorf("next task: Slate sent a task without id or kind")
	}
	return t, true, nil
}

// Progress reports how far a task is.
func (c *Client) Progress(ctx context.Context, taskID string, p agentproto.Progress) error {
	_, err := c.do(ctx, "progress of task "+taskID, http.MethodPost, "/tasks/"+taskID+"/progress", p, nil)
	return err
}

// Result ends a task; it is safe to repeat.
func (c *Client) Result(ctx context.Context, taskID string, r agentproto.Result) (agentproto.ResultReply, error) {
	var out agentproto.ResultReply
	_, err := c.do(ctx, "result of task "+taskID, http.MethodPost, "/tasks/"+taskID+"/result", r, &out)
	return out, err
}

// PutFacts uploads a facts document outside a task.
func (c *Client) PutFacts(ctx context.Context, f agentproto.Facts) (agentproto.FactsReply, error) {
	var out agentproto.FactsReply
	_, err := c.do(ctx, "facts", http.MethodPut, "/facts", f, &out)
	return out, err
}

// Heartbeat says the agent is alive and what it booted.
func (c *Client) Heartbeat(ctx context.Context, h agentproto.Heartbeat) (agentproto.HeartbeatReply, error) {
	var out agentproto.HeartbeatReply
	_, err := c.do(ctx, "heartbeat", http.MethodPost, "/heartbeat", h, &out)
	return out, err
}

// NodeToken asks for the token the installed system will use; only while an install task of
// this machine runs.
func (c *Client) NodeToken(ctx context.Context, taskID string) (agentproto.NodeToken, error) {
	var out agentproto.NodeToken
	_, err := c.do(ctx, "node token", "POST", "/tasks/"+taskID+"/node-token", struct{}{}, &out)
	return out, err
}
