package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpClient speaks QEMU's machine protocol over its unix socket: one command at a time, with
// events passed to onEvent as they arrive.
type qmpClient struct {
	conn    net.Conn
	mu      sync.Mutex // one command in flight
	replies chan qmpMessage
	done    chan struct{}
	onEvent func(name string, data json.RawMessage)
}

type qmpMessage struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	QMP   json.RawMessage `json:"QMP"`
}

// dialQMP connects, waits for the greeting and leaves capabilities negotiation done. QEMU
// creates the socket shortly after it starts, so the dial is retried until ctx ends.
func dialQMP(ctx context.Context, path string, onEvent func(string, json.RawMessage)) (*qmpClient, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to QMP socket %s: %w", path, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	q := &qmpClient{conn: conn, replies: make(chan qmpMessage, 1), done: make(chan struct{}), onEvent: onEvent}
	r := bufio.NewReader(conn)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("QMP greeting on %s: %w", path, err)
	}
	var greet qmpMessage
	if json.Unmarshal(line, &greet) != nil || greet.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("QMP socket %s did not greet with QMP: %q", path, line)
	}
	conn.SetReadDeadline(time.Time{})
	go q.readLoop(r)
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) readLoop(r *bufio.Reader) {
	defer close(q.done)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			continue
		}
		if m.Event != "" {
			if q.onEvent != nil {
				q.onEvent(m.Event, m.Data)
			}
			continue
		}
		select {
		case q.replies <- m:
		default: // a reply nobody waits for (its caller gave up)
		}
	}
}

// execute runs one command and returns its "return" value.
func (q *qmpClient) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", cmd, err)
	}
	select {
	case m := <-q.replies:
		if m.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s: %s", cmd, m.Error.Class, m.Error.Desc)
		}
		return m.Return, nil
	case <-q.done:
		return nil, fmt.Errorf("QMP %s: %w", cmd, errQMPClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("QMP %s: %w", cmd, ctx.Err())
	}
}

var errQMPClosed = errors.New("QEMU closed the QMP connection")

// status is QEMU's run state ("running", "paused", "shutdown", …).
func (q *qmpClient) status(ctx context.Context) (string, error) {
	raw, err := q.execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var s struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("QMP query-status: %w", err)
	}
	return s.Status, nil
}

func (q *qmpClient) Close() error { return q.conn.Close() }
