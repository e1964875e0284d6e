package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"slate/agent/agentproto"
)

func TestBootedRelease(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "release.json")
	bootcJSON := `{"apiVersion":"org.containers.bootc/v1","status":{"booted":{"image":{"image":{"image":"reg/app:1"},"imageDigest":"sha256:aaa"}}}}`
	n := &Node{Bootc: "/usr/bin/bootc", ReleasePath: rel, Exec: func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name != "/usr/bin/bootc" || strings.Join(args, " ") != "status --format=json" {
			t.Fatalf("ran %s %v", name, args)
		}
		return []byte(bootcJSON), nil
	}}
	r, src, err := n.BootedRelease(context.Background())
	if err != nil || r != "sha256:aaa" || src != "bootc" {
		t.Fatalf("bootc: %q %q %v", r, src, err)
	}
	// bootc fails: fall back to the release file.
	n.Exec = func(context.Context, string, ...string) ([]byte, error) { return nil, errors.New("exit 1") }
	os.WriteFile(rel, []byte(`{"release":"web@1.4.0"}`), 0o644)
	if r, src, err = n.BootedRelease(context.Background()); err != nil || r != "web@1.4.0" || src != "release-file" {
		t.Fatalf("release file: %q %q %v", r, src, err)
	}
	os.WriteFile(rel, []byte(`{"release":"web@1.4.0","digest":"sha256:bbb"}`), 0o644)
	if r, _, _ = n.BootedRelease(context.Background()); r != "sha256:bbb" {
		t.Fatalf("digest should win: %q", r)
	}
	os.Remove(rel)
	if _, _, err = n.BootedRelease(context.Background()); err == nil {
		t.Fatal("no bootc, no file: want an error")
	}
	for _, bad := range []string{`{}`, `{"status":{"booted":null}}`, `nope`} {
		if _, err := ParseBootcStatus([]byte(bad)); err == nil {
			t.Errorf("bootc %q accepted", bad)
		}
	}
}

func FuzzParseBootcStatus(f *testing.F) {
	f.Add([]byte(`{"status":{"booted":{"image":{"imageDigest":"sha256:a"}}}}`))
	f.Add([]byte(`{"status":{"booted":{"image":null}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseBootcStatus(b); err == nil && d == "" {
			t.Fatal("empty digest accepted")
		}
	})
}

func FuzzParseReleaseFile(f *testing.F) {
	f.Add([]byte(`{"release":"web@1","digest":"sha256:b"}`))
	f.Add([]byte(`{"release":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseReleaseFile(b); err == nil && r == "" {
			t.Fatal("empty release accepted")
		}
	})
}

// Node mode against an HTTP peer: registers as a node, heartbeats the booted release, and
// follows the interval Slate asks for.
func TestNodeHeartbeats(t *testing.T) {
	var beats atomic.Int32
	var lastRelease atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case agentproto.PathPrefix + "/heartbeat":
			var hb agentproto.Heartbeat
			if err := decodeBody(r, &hb); err != nil || hb.Mode != "node" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			lastRelease.Store(hb.BootedRelease + "/" + hb.ReleaseSource)
			beats.Add(1)
			w.Write([]byte(`{"interval_seconds":1}`))
		case agentproto.PathPrefix + "/register":
			w.Write([]byte(`{"machine_id":"m-1"}`))
		case agentproto.PathPrefix + "/tasks/next":
			time.Sleep(50 * time.Millisecond)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	rel := filepath.Join(t.TempDir(), "release.json")
	os.WriteFile(rel, []byte(`{"release":"db@2.0.0"}`), 0o644)
	n := &Node{Client: &Client{Base: srv.URL, Token: "tok"}, Registry: NewRegistry(), ReleasePath: rel, Bootc: "",
		Exec: func(context.Context, string, ...string) ([]byte, error) { return nil, errors.New("no bootc") }, Interval: time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := n.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run: %v", err)
	}
	// Interval 1 s from Slate (not the hour configured): 2-3 heartbeats in 2.5 s.
	if b := beats.Load(); b < 2 || b > 4 {
		t.Fatalf("%d heartbeats", b)
	}
	if lastRelease.Load() != "db@2.0.0/release-file" {
		t.Fatalf("release: %v", lastRelease.Load())
	}
}

func decodeBody(r *http.Request, v any) error {
	return json.NewDecoder(r.Body).Decode(v)
}
