package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingAuth is a slow password check (as argon2id is) that counts its calls; "bob" is
// throttled.
type countingAuth struct {
	calls   atomic.Int64
	release chan struct{}
}

type throttle struct{}

func (throttle) Error() string             { return "too many failed logins" }
func (throttle) RetryAfter() time.Duration { return 2500 * time.Millisecond }

func (a *countingAuth) Basic(_ context.Context, user, _, _ string) (Subject, error) {
	a.calls.Add(1)
	if user == "bob" {
		return Subject{}, throttle{}
	}
	<-a.release
	return Subject{Name: user, Access: Push}, nil
}
func (a *countingAuth) Bearer(context.Context, string, string) (Subject, error) {
	return Subject{}, errors.New("no such token")
}

// TestParallelRequestsShareOnePasswordCheck: a client pushing layers in parallel sends the
// same Basic credentials on each request; they are checked once (the login guard bounds
// concurrent checks, and one client must neither spend that bound nor be refused by it). A
// throttled check is answered 429 with Retry-After, not 401.
func TestParallelRequestsShareOnePasswordCheck(t *testing.T) {
	a := &countingAuth{release: make(chan struct{})}
	reg, err := NewRegistry(context.Background(), t.TempDir(), a, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
			req.SetBasicAuth("tom", "pw")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	time.Sleep(200 * time.Millisecond) // let every request reach the check
	close(a.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Fatalf("status %d, want 200", c)
		}
	}
	if n := a.calls.Load(); n != 1 {
		t.Fatalf("16 parallel requests with the same credentials ran %d password checks, want 1", n)
	}

	req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
	req.SetBasicAuth("bob", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("a throttled login: %d Retry-After %q, want 429 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
