package redfish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"slate/redfish"
	"slate/redfish/redfishtest"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fastConfig keeps every bounded wait short: the test server answers at once.
func fastConfig(t *testing.T, s *redfishtest.Server, v redfish.Vendor) redfish.Config {
	return redfish.Config{
		Address: s.URL, Username: "admin", Password: "password", Vendor: v,
		Timeout: 2 * time.Second, Retries: 2, RetryBackoff: 5 * time.Millisecond,
		PowerOffGrace: 40 * time.Millisecond, PowerWait: 100 * time.Millisecond, TaskTimeout: 500 * time.Millisecond,
		BIOSVerifyTimeout: 50 * time.Millisecond, PollInterval: 10 * time.Millisecond, Logger: testLogger(t),
	}
}

func connect(t *testing.T, s *redfishtest.Server, v redfish.Vendor) *redfish.Client {
	t.Helper()
	c, err := redfish.Connect(context.Background(), fastConfig(t, s, v))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func rackmount(t *testing.T, o redfishtest.Options) *redfishtest.Server {
	t.Helper()
	o.Mockup = redfishtest.Rackmount(t)
	return redfishtest.New(t, o)
}

// requireBMCError checks the error names the BMC and the operation, as every failure must.
func requireBMCError(t *testing.T, err error, addr, op string) *redfish.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: expected an error, got none", op)
	}
	var e *redfish.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %T %v is not a *redfish.Error", op, err, err)
	}
	if e.BMC != addr || !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name the BMC %s: %v", addr, err)
	}
	if e.Op != op || !strings.Contains(err.Error(), op) {
		t.Errorf("error does not name the operation %q: %v", op, err)
	}
	return e
}

// posts returns the JSON bodies POSTed or PATCHed to paths with the given suffix.
func bodies(s *redfishtest.Server, method, suffix string) []map[string]any {
	var out []map[string]any
	for _, r := range s.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			var m map[string]any
			_ = json.Unmarshal(r.Body, &m)
			out = append(out, m)
		}
	}
	return out
}

// imageServer serves firmware images on loopback, as Slate's artifact server would.
func imageServer(t *testing.T, files map[string]string) *httptest.Server {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader([]byte(b)))
	}))
	t.Cleanup(hs.Close)
	return hs
}
