// Package agentapi is the server side of the agent protocol (slate/agent/agentproto): the
// endpoints slate-agent calls under /agent/v1/. It is separate from the user API and every
// request is scoped by its bearer token to one machine: an agent can neither read nor change
// another machine's tasks, facts or state.
//
// It is a plain http.Handler built from small interfaces, so `slate serve` mounts it as
//
//	mux.Handle(agentproto.PathPrefix+"/", agentapi.New(store, agentapi.Options{...}))
//
// (no prefix stripping: the handler matches full paths).
package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"slate/agent/agentproto"
	"slate/inventory"
	"slate/lifecycle"

	"slate/internal/clientaddr"
)

// Store is what the agent API needs of the inventory (*inventory.Store implements it).
type Store interface {
	AuthenticateAgentToken(ctx context.Context, tok string, remote netip.Addr) (inventory.AgentToken, error)
	AgentTokenInfo(ctx context.Context, tok string) (inventory.AgentToken, error)
	GetMachine(ctx context.Context, idOrName string) (inventory.Machine, error)
	ClaimNextTask(ctx context.Context, machineID string, maxAttempts int, kinds ...string) (inventory.Task, bool, error)
	ReportTaskProgress(ctx context.Context, machineID, taskID string, progress float64, message string, lines []inventory.TaskLogLine) error
	FinishTask(ctx context.Context, machineID, taskID string, o inventory.TaskOutcome, hook inventory.FinishHook) (inventory.Task, bool, error)
	Update(ctx context.Context, fn func(*inventory.Tx) error) error
}

// Notifier hears about changes for live pages (task progress, a machine that moved).
type Notifier interface {
	TaskChanged(machineID, taskID string)
	MachineChanged(machineID string)
}

// Lifecycle decides what a finished task means for the machine's state, inside the
// transaction that records the result. The default (LifecycleHook) moves an inspecting
// machine to ready when its inspection succeeded and to failed when it failed.
type Lifecycle interface {
	TaskFinished(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) error
}

// LifecycleHook is the default Lifecycle.
type LifecycleHook struct{}

// TaskFinished implements Lifecycle.
func (LifecycleHook) TaskFinished(ctx context.Context, tx *inventory.Tx, m inventory.Machine, task inventory.Task) error {
	if agentproto.TaskKind(task.Kind) != agentproto.KindInspect || m.State != lifecycle.Inspecting {
		return nil
	}
	if task.State == inventory.TaskSucceeded {
		_, err := lifecycle.TransitionTx(ctx, tx, m.ID, lifecycle.Ready, "agent", "inspection finished", task.ID)
		return err
	}
	_, err := lifecycle.TransitionTx(ctx, tx, m.ID, lifecycle.Failed, "agent", "inspection failed: "+task.Message, task.ID)
	return err
}

// Options tune the handler; zero values are fine.
type Options struct {
	Log       *slog.Logger
	Notify    Notifier
	Lifecycle Lifecycle // default LifecycleHook{}
	// MaxWait caps the long-poll of /tasks/next (default 30 s); PollEvery is how often the store
	// is looked at meanwhile (default 1 s; Wake answers at once).
	MaxWait, PollEvery time.Duration
	// MaxAttempts is how often a task is handed out without a result before it fails (default 3).
	MaxAttempts int
	// HeartbeatInterval is what nodes are told (default 60 s).
	HeartbeatInterval time.Duration
	Now               func() time.Time
}

// Seen is the last word heard from a machine's agent.
type Seen struct {
	At            time.Time `json:"at"`
	Mode          string    `json:"mode"`
	BootID        string    `json:"boot_id,omitempty"`
	AgentVersion  string    `json:"agent_version,omitempty"`
	Addresses     []string  `json:"addresses,omitempty"`
	BootedRelease string    `json:"booted_release,omitempty"`
}

// Handler serves the agent API.
type Handler struct {
	store Store
	opt   Options
	mux   *patternMux

	mu   sync.Mutex
	wake map[string]chan struct{}
	seen map[string]Seen
	// lastRefusal is the last refused release claim per machine: a node left with an old
	// token repeats it every heartbeat, and one audit event says it (each new claim or reason
	// is audited again).
	lastRefusal map[string]string
}

// New builds the handler.
func New(store Store, opt Options) *Handler {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Lifecycle == nil {
		opt.Lifecycle = LifecycleHook{}
	}
	if opt.MaxWait <= 0 {
		opt.MaxWait = 30 * time.Second
	}
	if opt.PollEvery <= 0 {
		opt.PollEvery = time.Second
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 3
	}
	if opt.HeartbeatInterval <= 0 {
		opt.HeartbeatInterval = 60 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	h := &Handler{store: store, opt: opt, mux: &patternMux{ServeMux: http.NewServeMux()}, wake: map[string]chan struct{}{}, seen: map[string]Seen{},
		lastRefusal: map[string]string{}}
	p := agentproto.PathPrefix
	h.mux.HandleFunc("POST "+p+"/register", h.auth(h.register))
	h.mux.HandleFunc("GET "+p+"/tasks/next", h.auth(h.next))
	h.mux.HandleFunc("POST "+p+"/tasks/{id}/progress", h.auth(h.progress))
	h.mux.HandleFunc("POST "+p+"/tasks/{id}/result", h.auth(h.result))
	h.mux.HandleFunc("PUT "+p+"/facts", h.auth(h.facts))
	h.mux.HandleFunc("POST "+p+"/heartbeat", h.auth(h.heartbeat))
	h.mux.HandleFunc("POST "+p+"/tasks/{id}/node-token", h.auth(h.nodeToken))
	h.mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no agent API endpoint %s %s", r.Method, r.URL.Path))
	})
	return h
}

// patternMux is a ServeMux that remembers what it serves, so tests can require a case for
// every endpoint (a new one without a test fails them).
type patternMux struct {
	*http.ServeMux
	patterns []string
}

func (m *patternMux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, f)
}

// Endpoints lists the served patterns ("METHOD /agent/v1/…"), the catch-all included.
func (h *Handler) Endpoints() []string { return slices.Clone(h.mux.patterns) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Wake ends a waiting long-poll of the machine's agent at once (call it after queuing a task).
func (h *Handler) Wake(machineID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.wake[machineID]; ok {
		close(ch)
		delete(h.wake, machineID)
	}
}

func (h *Handler) wakeChan(machineID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, ok := h.wake[machineID]
	if !ok {
		ch = make(chan struct{})
		h.wake[machineID] = ch
	}
	return ch
}

// LastSeen returns when the machine's agent last called (kept in memory: it is liveness, not
// a record).
func (h *Handler) LastSeen(machineID string) (Seen, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.seen[machineID]
	return s, ok
}

func (h *Handler) touch(machineID string, fn func(*Seen)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.seen[machineID]
	s.At = h.opt.Now().UTC()
	if fn != nil {
		fn(&s)
	}
	h.seen[machineID] = s
}

// auth resolves the bearer token to the one machine this request may touch.
func (h *Handler) auth(next func(w http.ResponseWriter, r *http.Request, machineID string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(tok) == "" {
			writeErr(w, http.StatusUnauthorized, "missing agent token: send Authorization: Bearer <slate.token from the kernel command line>")
			return
		}
		remote := remoteAddr(r)
		at, err := h.store.AuthenticateAgentToken(r.Context(), strings.TrimSpace(tok), remote)
		var se *inventory.TokenSourceError
		if errors.As(err, &se) {
			// A per-boot token is bound to the address that fetched the boot script: from
			// anywhere else it is a stolen (or guessed) token.
			h.opt.Log.Warn("agent API: token used from another address than it was issued to; refused", "machine", se.MachineID,
				"remote", r.RemoteAddr, "bound", se.Bound.String(), "path", r.URL.Path)
			if aerr := h.store.Update(r.Context(), func(tx *inventory.Tx) error {
				_, e := tx.Audit(r.Context(), "agent@"+remote.String(), "agent.token-refused", se.MachineID, "suspicious",
					map[string]any{"remote": remote.String(), "bound": se.Bound.String(), "path": r.URL.Path})
				return e
			}); aerr != nil {
				h.opt.Log.Error("agent API: audit the refused token", "machine", se.MachineID, "err", aerr)
			}
			writeErr(w, http.StatusUnauthorized, "this agent token belongs to the address that fetched the boot script, not "+remote.String()+": power-cycle the machine through Slate to get a new one")
			return
		}
		if err != nil {
			h.opt.Log.Warn("agent API: token refused", "remote", clientaddr.From(r), "path", r.URL.Path, "err", err)
			if errors.Is(err, inventory.ErrNotFound) {
				writeErr(w, http.StatusUnauthorized, "agent token unknown or expired: power-cycle the machine to get a new one")
				return
			}
			writeErr(w, http.StatusInternalServerError, "token check failed")
			return
		}
		id := at.MachineID
		h.touch(id, nil)
		next(w, r, id)
	}
}

// remoteAddr is the TCP peer of the request (agents talk to Slate directly; a forwarding
// header could be forged). Invalid when unreadable: a bound token then never matches.
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, agentproto.Error{Error: msg})
}

// storeErr maps inventory errors to statuses; another machine's task is 404, as if absent.
func (h *Handler) storeErr(w http.ResponseWriter, machineID, op string, err error) {
	if errors.Is(err, inventory.ErrStorage) {
		// Nothing was saved: say so with a status the agent retries on (5xx), and tell the
		// operator in the log that the disk, not the agent, is the problem.
		h.opt.Log.Error("agent API: "+op+" not saved: storage failure", "machine", machineID, "disk_full", inventory.IsDiskFull(err), "err", err)
		status := http.StatusServiceUnavailable
		if inventory.IsDiskFull(err) {
			status = http.StatusInsufficientStorage
		}
		writeErr(w, status, op+" not saved: Slate's data directory cannot take writes; the agent will retry")
		return
	}
	if !errors.Is(err, inventory.ErrNotFound) && !errors.Is(err, inventory.ErrConflict) && !errors.Is(err, inventory.ErrInvalid) &&
		!errors.Is(err, lifecycle.ErrNotAllowed) {
		h.opt.Log.Error("agent API: "+op, "machine", machineID, "err", err)
		writeErr(w, http.StatusInternalServerError, op+" failed; the agent will retry")
		return
	}
	h.opt.Log.Warn("agent API: "+op+" refused", "machine", machineID, "err", err)
	switch {
	case errors.Is(err, inventory.ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	case errors.Is(err, inventory.ErrConflict):
		writeErr(w, http.StatusConflict, err.Error())
	case errors.Is(err, inventory.ErrInvalid), errors.Is(err, lifecycle.ErrNotAllowed):
		writeErr(w, http.StatusBadRequest, err.Error())
	}
}

const maxBody = 8 << 20

// decode reads a JSON body; a bad one is answered 400 and logged with the machine.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, machineID string, v any) bool {
	fail := func(status int, msg string) bool {
		h.opt.Log.Warn("agent API: bad request", "machine", machineID, "path", r.URL.Path, "err", msg)
		writeErr(w, status, msg)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fail(http.StatusBadRequest, "read body: "+err.Error())
	}
	if len(body) > maxBody {
		return fail(http.StatusRequestEntityTooLarge, "body larger than 8 MiB")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fail(http.StatusBadRequest, "body is not valid JSON for this endpoint: "+err.Error())
	}
	return true
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request, id string) {
	var in agentproto.Register
	if !h.decode(w, r, id, &in) {
		return
	}
	var macs []string
	for _, raw := range in.MACs {
		mac, err := inventory.NormalizeMAC(raw)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err.Error())
			return
		}
		macs = append(macs, mac)
	}
	var m inventory.Machine
	err := h.store.Update(r.Context(), func(tx *inventory.Tx) error {
		var err error
		if m, err = tx.GetMachine(r.Context(), id); err != nil {
			return err
		}
		// MACs are learnt from the agent only for a machine that has none yet (enrolled by
		// serial or BMC): a machine's known MACs are the operator's, not the agent's, to change.
		if len(m.MACs) == 0 && len(macs) > 0 {
			if m, err = tx.UpdateMachine(r.Context(), id, inventory.MachinePatch{MACs: &macs}); err != nil {
				return err
			}
		}
		_, err = tx.Audit(r.Context(), "agent", "agent.register", id, "ok",
			map[string]any{"mode": in.Mode, "boot_id": in.BootID, "version": in.AgentVersion, "addresses": in.Addresses})
		return err
	})
	if err != nil {
		h.storeErr(w, id, "register", err)
		return
	}
	h.touch(id, func(s *Seen) {
		s.Mode, s.BootID, s.AgentVersion, s.Addresses = in.Mode, in.BootID, in.AgentVersion, in.Addresses
	})
	h.opt.Log.Info("agent registered", "machine", id, "mode", in.Mode, "addresses", in.Addresses)
	writeJSON(w, http.StatusOK, agentproto.RegisterReply{MachineID: m.ID, Name: m.Name, State: m.State})
}

func (h *Handler) next(w http.ResponseWriter, r *http.Request, id string) {
	wait := time.Duration(0)
	if s := r.URL.Query().Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("wait=%q is not a duration like 25s", s))
			return
		}
		wait = min(d, h.opt.MaxWait)
	}
	// kinds=a,b: the agent runs only these (a node agent is not the deploy environment).
	var kinds []string
	if k := r.URL.Query().Get("kinds"); k != "" {
		kinds = strings.Split(k, ",")
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		// Take the wake channel before looking, so a task queued in between is not missed.
		wake := h.wakeChan(id)
		t, ok, err := h.store.ClaimNextTask(r.Context(), id, h.opt.MaxAttempts, kinds...)
		if err != nil {
			h.storeErr(w, id, "claim task", err)
			return
		}
		if ok {
			h.opt.Log.Info("task handed to agent", "machine", id, "task", t.ID, "kind", t.Kind, "attempt", t.Attempts)
			if h.opt.Notify != nil {
				h.opt.Notify.TaskChanged(id, t.ID)
			}
			writeJSON(w, http.StatusOK, agentproto.Task{ID: t.ID, Kind: agentproto.TaskKind(t.Kind), Params: t.Params, Attempts: t.Attempts})
			return
		}
		poll := time.NewTimer(h.opt.PollEvery)
		select {
		case <-r.Context().Done():
			poll.Stop()
			return
		case <-deadline.C:
			poll.Stop()
			w.WriteHeader(http.StatusNoContent)
			return
		case <-wake:
		case <-poll.C:
		}
		poll.Stop()
	}
}

func logLines(in []agentproto.LogLine) []inventory.TaskLogLine {
	out := make([]inventory.TaskLogLine, 0, len(in))
	for _, l := range in {
		out = append(out, inventory.TaskLogLine{Seq: l.Seq, At: l.At, Line: l.Line})
	}
	return out
}

func (h *Handler) progress(w http.ResponseWriter, r *http.Request, id string) {
	var in agentproto.Progress
	if !h.decode(w, r, id, &in) {
		return
	}
	taskID := r.PathValue("id")
	if err := h.store.ReportTaskProgress(r.Context(), id, taskID, in.Progress, in.Message, logLines(in.Logs)); err != nil {
		h.storeErr(w, id, "task progress", err)
		return
	}
	if h.opt.Notify != nil {
		h.opt.Notify.TaskChanged(id, taskID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// factFields picks the indexed machine columns out of a facts document.
func factFields(f *agentproto.Facts) inventory.FactFields {
	return inventory.FactFields{SystemUUID: f.System.UUID, Serial: f.System.Serial, Vendor: f.System.Vendor,
		Model: f.System.Product, Arch: f.System.Arch, FirmwareMode: f.Firmware.Mode}
}

func (h *Handler) result(w http.ResponseWriter, r *http.Request, id string) {
	var in agentproto.Result
	if !h.decode(w, r, id, &in) {
		return
	}
	taskID := r.PathValue("id")
	var factsDoc []byte
	if in.Facts != nil {
		var err error
		if factsDoc, err = json.Marshal(in.Facts); err != nil {
			writeErr(w, http.StatusBadRequest, "facts: "+err.Error())
			return
		}
	}
	hook := func(ctx context.Context, tx *inventory.Tx, task inventory.Task) error {
		if agentproto.TaskKind(task.Kind) == agentproto.KindInspect && task.State == inventory.TaskSucceeded && in.Facts == nil {
			return fmt.Errorf("%w: an inspect task succeeds only with its facts", inventory.ErrInvalid)
		}
		if in.Facts != nil {
			refused, err := h.identityRefused(ctx, tx, id, taskID, factFields(in.Facts))
			if err != nil || refused != "" {
				// The machine is failed and the refusal audited in this transaction: what
				// the task would otherwise mean (inspecting → ready) does not happen.
				return err
			}
			if _, warn, err := tx.PutFacts(ctx, id, factsDoc, factFields(in.Facts)); err != nil {
				return err
			} else if len(warn) > 0 {
				h.opt.Log.Warn("facts stored with warnings", "machine", id, "task", taskID, "warnings", warn)
			}
		}
		m, err := tx.GetMachine(ctx, id)
		if err != nil {
			return err
		}
		return h.opt.Lifecycle.TaskFinished(ctx, tx, m, task)
	}
	task, changed, err := h.store.FinishTask(r.Context(), id, taskID,
		inventory.TaskOutcome{State: in.State, Message: in.Message, Result: in.Result, Logs: logLines(in.Logs)}, hook)
	if err != nil {
		h.storeErr(w, id, "task result", err)
		return
	}
	h.opt.Log.Info("task finished", "machine", id, "task", taskID, "kind", task.Kind, "state", task.State, "duplicate", !changed)
	if changed && h.opt.Notify != nil {
		h.opt.Notify.TaskChanged(id, taskID)
		h.opt.Notify.MachineChanged(id)
	}
	writeJSON(w, http.StatusOK, agentproto.ResultReply{State: task.State, Duplicate: !changed})
}

func (h *Handler) facts(w http.ResponseWriter, r *http.Request, id string) {
	var in agentproto.Facts
	if !h.decode(w, r, id, &in) {
		return
	}
	if in.Schema != agentproto.FactsSchema {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("facts schema %d is not the one this Slate reads (%d): update Slate or the agent", in.Schema, agentproto.FactsSchema))
		return
	}
	doc, _ := json.Marshal(in)
	var out agentproto.FactsReply
	var refused string
	err := h.store.Update(r.Context(), func(tx *inventory.Tx) error {
		var err error
		if refused, err = h.identityRefused(r.Context(), tx, id, "", factFields(&in)); err != nil || refused != "" {
			return err
		}
		out.Version, out.Warnings, err = tx.PutFacts(r.Context(), id, doc, factFields(&in))
		return err
	})
	if err != nil {
		h.storeErr(w, id, "store facts", err)
		return
	}
	if refused != "" {
		if h.opt.Notify != nil {
			h.opt.Notify.MachineChanged(id)
		}
		writeErr(w, http.StatusConflict, "facts refused: "+refused)
		return
	}
	if h.opt.Notify != nil {
		h.opt.Notify.MachineChanged(id)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) heartbeat(w http.ResponseWriter, r *http.Request, id string) {
	var in agentproto.Heartbeat
	if !h.decode(w, r, id, &in) {
		return
	}
	changed := false
	if in.BootedRelease != "" {
		var refused string
		err := h.store.Update(r.Context(), func(tx *inventory.Tx) error {
			m, err := tx.GetMachine(r.Context(), id)
			if err != nil {
				return err
			}
			if refused, err = h.releaseReporterRefused(r, tx, id); err != nil {
				return err
			}
			if refused != "" {
				if !h.newRefusal(id, refused+"\x00"+in.BootedRelease+"\x00"+in.ImageDigest) {
					return nil
				}
				_, err = tx.Audit(r.Context(), "agent", "machine.booted_release", id, "refused",
					map[string]any{"reason": refused, "claimed_release": in.BootedRelease, "claimed_digest": in.ImageDigest, "remote": r.RemoteAddr})
				return err
			}
			if m.BootedRelease == in.BootedRelease && m.BootedDigest == in.ImageDigest {
				return nil
			}
			rel, digest := in.BootedRelease, in.ImageDigest
			if _, err := tx.UpdateMachine(r.Context(), id, inventory.MachinePatch{BootedRelease: &rel, BootedDigest: &digest}); err != nil {
				return err
			}
			changed = true
			outcome := "ok"
			details := map[string]any{"from": m.BootedRelease, "to": rel, "source": in.ReleaseSource, "digest": digest}
			if in.InstalledRelease != "" && in.InstalledRelease != rel {
				// The disk says one release was installed, the running system is another: it
				// did not boot what Slate wrote (another disk first in the boot order?).
				outcome = "mismatch"
				details["installed_release"] = in.InstalledRelease
			}
			_, err = tx.Audit(r.Context(), "agent", "machine.booted_release", id, outcome, details)
			return err
		})
		if err != nil {
			h.storeErr(w, id, "heartbeat", err)
			return
		}
		if refused != "" {
			h.opt.Log.Warn("agent API: booted release refused", "machine", id, "remote", r.RemoteAddr, "reason", refused)
			writeErr(w, http.StatusForbidden, "booted release refused: "+refused)
			return
		}
	}
	h.touch(id, func(s *Seen) {
		s.Mode, s.BootID = in.Mode, in.BootID
		if in.BootedRelease != "" {
			s.BootedRelease = in.BootedRelease
		}
	})
	if changed && h.opt.Notify != nil {
		h.opt.Notify.MachineChanged(id)
	}
	writeJSON(w, http.StatusOK, agentproto.HeartbeatReply{IntervalSeconds: int(h.opt.HeartbeatInterval.Seconds())})
}

// newRefusal records a refused release claim and says whether it differs from the last one.
func (h *Handler) newRefusal(machineID, key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastRefusal[machineID] == key {
		return false
	}
	h.lastRefusal[machineID] = key
	return true
}

// releaseReporterRefused says why the caller may not report a booted release ("" if it may):
// only an installed system's node token, issued to an install task of this machine that
// succeeded, speaks for what the machine runs — a deploy environment's token (or a stolen one)
// could otherwise mark any machine as running any release.
func (h *Handler) releaseReporterRefused(r *http.Request, tx *inventory.Tx, machineID string) (string, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	info, err := h.store.AgentTokenInfo(r.Context(), strings.TrimSpace(tok))
	if errors.Is(err, inventory.ErrNotFound) {
		return "the token is unknown or expired", nil
	}
	if err != nil {
		return "", err
	}
	if info.MachineID != machineID {
		return "the token belongs to another machine", nil
	}
	if info.Kind != "node" {
		return fmt.Sprintf("a %s token cannot report a booted release: only an installed system's node token can", info.Kind), nil
	}
	if info.TaskID == "" {
		return "the node token names no install task: re-install the machine so Slate issues one tied to its install", nil
	}
	t, err := tx.GetTask(r.Context(), info.TaskID)
	if errors.Is(err, inventory.ErrNotFound) {
		return fmt.Sprintf("the node token's install task %s no longer exists", info.TaskID), nil
	}
	if err != nil {
		return "", err
	}
	if t.MachineID != machineID || !agentproto.TaskKind(t.Kind).Installs() || t.State != inventory.TaskSucceeded {
		return fmt.Sprintf("the node token's task %s (%s, %s) is not a succeeded install of this machine", t.ID, t.Kind, t.State), nil
	}
	return "", nil
}

// identityRefused fails the machine when inspected facts contradict operator-entered identity
// (serial, system UUID), audits it naming both values, and returns the reason ("" if the
// facts may be stored). The operator's values are kept; a technician resolves it.
func (h *Handler) identityRefused(ctx context.Context, tx *inventory.Tx, machineID, taskID string, f inventory.FactFields) (string, error) {
	m, err := tx.GetMachine(ctx, machineID)
	if err != nil {
		return "", err
	}
	conflicts := inventory.IdentityConflicts(m, f)
	if len(conflicts) == 0 {
		return "", nil
	}
	reason := strings.Join(conflicts, "; ")
	if _, err := tx.Audit(ctx, "agent", "machine.identity_mismatch", machineID, "refused",
		map[string]any{"task": taskID, "conflicts": conflicts, "operator_serial": m.Serial, "inspected_serial": f.Serial,
			"operator_system_uuid": m.SystemUUID, "inspected_system_uuid": f.SystemUUID}); err != nil {
		return "", err
	}
	if m.State != lifecycle.Failed {
		if _, err := lifecycle.TransitionTx(ctx, tx, machineID, lifecycle.Failed, "agent", reason, taskID); err != nil && !errors.Is(err, lifecycle.ErrNotAllowed) {
			return "", err
		}
	}
	h.opt.Log.Warn("agent API: inspected identity differs from the operator's", "machine", machineID, "task", taskID, "reason", reason)
	return reason, nil
}

// nodeToken issues the installed system's token to the machine's running install task: a
// deploy environment doing anything else cannot mint long-lived credentials.
func (h *Handler) nodeToken(w http.ResponseWriter, r *http.Request, id string) {
	taskID := r.PathValue("id")
	var tok string
	err := h.store.Update(r.Context(), func(tx *inventory.Tx) error {
		t, err := tx.GetTask(r.Context(), taskID)
		if err != nil {
			return err
		}
		if t.MachineID != id {
			return inventory.Errorf(inventory.ErrNotFound, "task %s is not this machine's", taskID)
		}
		// Only an install leaves a system behind that will report with the token.
		if !agentproto.TaskKind(t.Kind).Installs() || t.State != inventory.TaskRunning {
			return inventory.Errorf(inventory.ErrConflict, "task %s is a %s task in state %s: only a running install task gets a node token", taskID, t.Kind, t.State)
		}
		if tok, err = tx.IssueNodeToken(r.Context(), id, taskID); err != nil {
			return err
		}
		_, err = tx.Audit(r.Context(), "agent", "agent.node_token", id, "ok", map[string]any{"task": taskID})
		return err
	})
	if err != nil {
		h.storeErr(w, id, "node token", err)
		return
	}
	writeJSON(w, http.StatusOK, agentproto.NodeToken{Token: tok, MachineID: id})
}
