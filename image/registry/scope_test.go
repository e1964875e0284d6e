package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// machineAuth knows one machine token, whose images the test changes between requests, and
// counts the password checks.
type machineAuth struct {
	mu        sync.Mutex
	images    []string
	passwords int
}

func (a *machineAuth) Basic(context.Context, string, string, string) (Subject, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.passwords++
	return Subject{}, errors.New("wrong username or password")
}

func (a *machineAuth) Bearer(_ context.Context, tok, _ string) (Subject, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tok != "sla_machine" {
		return Subject{}, errors.New("unknown token")
	}
	s := Subject{Name: "boot-token:m1", Scoped: true, Images: a.images, Why: "no install task running"}
	if len(s.Images) > 0 {
		s.Access = Pull
	}
	return s, nil
}

// TestMachineCredentialsAreNeverCached: a machine's token sent as a Basic password (as bootc
// does) is looked up as a token, without a password hash, on every request, so its access
// ends the moment its task does — where a user's answer is remembered for a minute.
func TestMachineCredentialsAreNeverCached(t *testing.T) {
	auth := &machineAuth{images: []string{"plant/hmi@sha256:" + strings.Repeat("ab", 32)}}
	reg, err := NewRegistry(context.Background(), t.TempDir(), auth, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg) // loopback
	t.Cleanup(srv.Close)
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
		req.SetBasicAuth("slate-agent", "sla_machine")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for range 3 {
		if st, b := get(); st != 200 {
			t.Fatalf("during the task: %d %s", st, b)
		}
	}
	auth.mu.Lock()
	auth.images = nil // the task finished
	auth.mu.Unlock()
	if st, b := get(); st != 403 || !strings.Contains(b, "no install task running") {
		t.Fatalf("after the task: %d %s", st, b)
	}
	if auth.passwords != 0 {
		t.Fatalf("a machine token sent as a password cost %d password checks", auth.passwords)
	}
}

// TestIsUploadSession: only an upload session's own URL escapes the /v2/ delete refusal, not a
// manifest of a repository named to look like one.
func TestIsUploadSession(t *testing.T) {
	for p, want := range map[string]bool{
		"/v2/plant/hmi/blobs/uploads/0b1c-uuid":                                 true,
		"/v2/plant/hmi/blobs/uploads/":                                          false,
		"/v2/plant/blobs/uploads/x/manifests/sha256:" + strings.Repeat("a", 64): false,
		"/v2/plant/hmi/manifests/sha256:" + strings.Repeat("a", 64):             false,
		"/v2/plant/hmi/blobs/sha256:" + strings.Repeat("a", 64):                 false,
	} {
		if isUploadSession(p) != want {
			t.Errorf("isUploadSession(%q) = %v, want %v", p, !want, want)
		}
	}
}
