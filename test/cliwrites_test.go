package test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// fakeSlate answers the API as a Slate whose data directory is full (enrollment) and checks
// the decommission confirmation, recording what the CLI sent.
type fakeSlate struct {
	mu   sync.Mutex
	seen []string // "METHOD path body"
}

func (f *fakeSlate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path+" "+string(b))
	f.mu.Unlock()
	problem := func(status int, detail string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/machines":
		problem(http.StatusInsufficientStorage, "nothing was saved: Slate's data directory is full; free space on it (see Slate's log), then retry")
	case r.Method == "POST" && r.URL.Path == "/api/v1/machines/hmi-01/transition":
		var req struct {
			To, Reason  string
			ConfirmName string `json:"confirm_name"`
		}
		json.Unmarshal(b, &req)
		if req.To == "decommissioning" && req.ConfirmName != "hmi-01" {
			problem(http.StatusUnprocessableEntity, "confirm_name must be the machine's name (hmi-01) to decommission it: decommissioning wipes every disk")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"m-1","name":"hmi-01","state":"decommissioning"}`))
	default:
		problem(http.StatusNotFound, "not in this fake")
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestCLIFailsWhenNothingWasSaved: `slate machine enroll` against a Slate that could not
// commit (507) exits non-zero with Slate's message, never "Enrolled"; decommissioning from
// the CLI needs the machine's name typed again (--confirm), and is not even sent without it
// when no terminal can ask.
func TestCLIFailsWhenNothingWasSaved(t *testing.T) {
	f := &fakeSlate{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "SLATE_SERVER=" + srv.URL, "SLATE_TOKEN=slt_test"}

	out, err := run(t, env, "machine", "enroll", "--name", "hmi-02", "--mac", "52:54:00:ab:cd:02")
	if exitCode(err) != 1 || strings.Contains(out, "Enrolled") || !strings.Contains(out, "not enrolled") ||
		!strings.Contains(out, "data directory is full") || !strings.Contains(out, "HTTP 507") {
		t.Fatalf("enroll on a full Slate: exit %d\n%s", exitCode(err), out)
	}

	// No --confirm, stdin not a terminal: refused before anything is sent.
	f.seen = nil
	out, err = run(t, env, "machine", "transition", "hmi-01", "decommissioning", "--reason", "line rebuilt")
	if exitCode(err) != 1 || !strings.Contains(out, "--confirm") || len(f.seen) != 0 {
		t.Fatalf("decommission without --confirm: exit %d, sent %v\n%s", exitCode(err), f.seen, out)
	}
	// The wrong name: Slate's 422 is the CLI's error.
	out, err = run(t, env, "machine", "transition", "hmi-01", "decommissioning", "--reason", "line rebuilt", "--confirm", "hmi-02")
	if exitCode(err) != 1 || !strings.Contains(out, "confirm_name must be the machine's name (hmi-01)") {
		t.Fatalf("decommission with the wrong name: exit %d\n%s", exitCode(err), out)
	}
	out, err = run(t, env, "machine", "transition", "hmi-01", "decommissioning", "--reason", "line rebuilt", "--confirm", "hmi-01")
	if exitCode(err) != 0 || !strings.Contains(out, "hmi-01 is now decommissioning") {
		t.Fatalf("decommission confirmed: exit %d\n%s", exitCode(err), out)
	}
	if last := f.seen[len(f.seen)-1]; !strings.Contains(last, `"confirm_name":"hmi-01"`) {
		t.Fatalf("the CLI did not send the typed name: %s", last)
	}
}
