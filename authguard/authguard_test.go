package authguard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"slate/inventory"
)

// fakeStore stands in for the inventory: Authenticate is the (instrumented) hasher; it knows
// one user, "tom", with password "right-pass".
type fakeStore struct {
	inFlight, peak, calls atomic.Int64
	gate                  chan struct{} // when set, every hash blocks until it is closed
	mu                    sync.Mutex
	recorded              []string // "user@remote" of each recorded failure
}

func (f *fakeStore) Authenticate(ctx context.Context, username, password string) (inventory.User, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	f.calls.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.gate != nil {
		<-f.gate
	}
	if username == "tom" && password == "right-pass" {
		return inventory.User{Username: "tom", Role: inventory.RoleOperator}, nil
	}
	return inventory.User{}, inventory.Errorf(inventory.ErrNotFound, "wrong username or password")
}

func (f *fakeStore) RecordLoginFailure(ctx context.Context, username, remote, via, reason string, lockAfter int) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, username+"@"+remote)
	return false, nil
}

func (f *fakeStore) ClearLoginFailures(context.Context, string) error { return nil }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time           { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration)      { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock                    { return &clock{t: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)} }
func throttled(err error) *ThrottledError { var th *ThrottledError; errors.As(err, &th); return th }

// TestParallelLoginsNeverHashMoreThanTheCap: 64 wrong logins at once (the attack that took
// the server from 2.2 to 4.2 GB) run at most MaxConcurrent hashes; the rest are refused at
// once with a retry time, without hashing.
func TestParallelLoginsNeverHashMoreThanTheCap(t *testing.T) {
	st := &fakeStore{gate: make(chan struct{})}
	g := New(st, Config{MaxConcurrent: 4}, newClock().now, nil)
	var wg sync.WaitGroup
	var refused atomic.Int64
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct users and addresses: only the concurrency bound can refuse them.
			_, err := g.Check(context.Background(), fmt.Sprintf("user%d", i), "wrong", fmt.Sprintf("10.0.0.%d", i), "api")
			if th := throttled(err); th != nil {
				if th.Seconds() < 1 {
					errs <- fmt.Errorf("429 without a usable Retry-After: %v", th)
				}
				refused.Add(1)
			} else if !errors.Is(err, inventory.ErrNotFound) {
				errs <- fmt.Errorf("unexpected answer: %v", err)
			}
		}()
	}
	// Wait until every login has either been refused or is hashing, then let the hashes end.
	deadline := time.Now().Add(10 * time.Second)
	for refused.Load()+st.inFlight.Load() < 64 && refused.Load() < 60 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(st.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := st.peak.Load(); p > 4 {
		t.Fatalf("%d password hashes ran at once; the cap is 4", p)
	}
	if refused.Load() != 60 || st.calls.Load() != 4 {
		t.Fatalf("refused %d, hashed %d: want 60 refused (429) and 4 hashed", refused.Load(), st.calls.Load())
	}
	// The slots come back: a login after the burst is checked again.
	if _, err := g.Check(context.Background(), "tom", "right-pass", "10.9.9.9", "api"); err != nil {
		t.Fatalf("after the burst a good login must pass: %v", err)
	}
}

// TestBackoffGrowsPerUserAndPerAddress: after the free failures each wrong password doubles
// the wait, the refusal comes before any hashing, and a good password does not get through a
// running back-off.
func TestBackoffGrowsPerUserAndPerAddress(t *testing.T) {
	st := &fakeStore{}
	clk := newClock()
	g := New(st, Config{FreeFailures: 3, BackoffBase: time.Second, BackoffMax: time.Minute}, clk.now, nil)
	ctx := context.Background()
	for i := range 3 {
		if _, err := g.Check(ctx, "tom", "wrong", "10.0.0.1", "api"); !errors.Is(err, inventory.ErrNotFound) {
			t.Fatalf("free failure %d: %v", i+1, err)
		}
	}
	// 3 failures are free; the next is checked; from then on each failure is followed by a wait.
	if _, err := g.Check(ctx, "tom", "wrong", "10.0.0.1", "api"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("4th attempt (not yet throttled): %v", err)
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		calls := st.calls.Load()
		_, err := g.Check(ctx, "tom", "right-pass", "10.0.0.1", "api")
		th := throttled(err)
		if th == nil || th.Wait != want {
			t.Fatalf("want a %s back-off, got %v", want, err)
		}
		if st.calls.Load() != calls {
			t.Fatal("a throttled login was hashed")
		}
		clk.add(want)
		if _, err := g.Check(ctx, "tom", "wrong", "10.0.0.1", "api"); !errors.Is(err, inventory.ErrNotFound) {
			t.Fatalf("after waiting %s the login must be checked: %v", want, err)
		}
	}
	// The cap holds.
	for range 10 {
		clk.add(time.Minute)
		g.Check(ctx, "tom", "wrong", "10.0.0.1", "api")
	}
	if th := throttled(func() error { _, e := g.Check(ctx, "tom", "x", "10.0.0.1", "api"); return e }()); th == nil || th.Wait != time.Minute {
		t.Fatalf("back-off must stop at backoff_max (1m): %v", th)
	}

	// The same user from another address is throttled too (per username)...
	if th := throttled(func() error { _, e := g.Check(ctx, "tom", "x", "10.0.0.2", "api"); return e }()); th == nil {
		t.Fatal("the user's back-off must hold from another address")
	}
	// ...and one address spraying unknown usernames is throttled (per address), with the same
	// answer a known username gets: no user enumeration.
	for i := range 4 {
		_, err := g.Check(ctx, fmt.Sprintf("ghost%d", i), "x", "10.0.0.3", "api")
		if !errors.Is(err, inventory.ErrNotFound) {
			t.Fatalf("unknown user %d: %v", i, err)
		}
	}
	if th := throttled(func() error { _, e := g.Check(ctx, "ghost-next", "x", "10.0.0.3", "api"); return e }()); th == nil || th.Wait != time.Second {
		t.Fatalf("an address spraying usernames must be throttled: %v", th)
	}
	if len(st.recorded) == 0 || st.recorded[len(st.recorded)-1] != "ghost3@10.0.0.3" {
		t.Fatalf("failures for unknown usernames must be recorded (audit) with the address: %v", st.recorded)
	}
	// A quiet address is forgotten after backoff_max.
	clk.add(2 * time.Minute)
	if _, err := g.Check(ctx, "ghost-late", "x", "10.0.0.3", "api"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("after a quiet backoff_max the address starts over: %v", err)
	}
}

// TestGoodLoginClearsTheUserBackoff: a technician who mistyped and then got it right starts
// from zero.
func TestGoodLoginClearsTheUserBackoff(t *testing.T) {
	st := &fakeStore{}
	clk := newClock()
	g := New(st, Config{FreeFailures: 1}, clk.now, nil)
	ctx := context.Background()
	g.Check(ctx, "tom", "wrong", "10.0.0.1", "api")
	g.Check(ctx, "tom", "wrong", "10.0.0.1", "api")
	clk.add(time.Second)
	if _, err := g.Check(ctx, "tom", "right-pass", "10.0.0.9", "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Check(ctx, "tom", "wrong", "10.0.0.9", "api"); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("after a good login the user's count starts over: %v", err)
	}
}

// TestTrackedStateIsBounded: failures from 5,000 random addresses and usernames keep at most max_tracked
// entries (random source addresses must not exhaust memory), and the newest are kept.
func TestTrackedStateIsBounded(t *testing.T) {
	st := &fakeStore{}
	clk := newClock()
	g := New(st, Config{MaxTracked: 100, FreeFailures: 1}, clk.now, nil)
	ctx := context.Background()
	for i := range 5000 {
		g.Check(ctx, fmt.Sprintf("user%d", i), "wrong", fmt.Sprintf("fd00::%x", i), "api")
		if g.Tracked() > 100 {
			t.Fatalf("after %d addresses the guard tracks %d entries; the bound is 100", i+1, g.Tracked())
		}
	}
	if st.calls.Load() != 5000 {
		t.Fatalf("only %d attempts were checked: the test did not exercise the bound", st.calls.Load())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Config{{MaxConcurrent: -1}, {LockoutAfter: -2}, {BackoffBase: time.Hour, BackoffMax: time.Minute}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v must be refused", bad)
		}
	}
}
