// Package authguard is the one place Slate checks a password (API login, web login, registry
// Basic auth). argon2id costs 64 MiB and a noticeable slice of CPU per check by design, so the
// guard bounds how many run at once, slows down a username or a source address after
// failures, and locks an account after repeated failures (in the database, so a restart does
// not unlock it; an admin unlocks it).
package authguard

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"slate/inventory"
)

// Config tunes the guard; zero fields take the defaults.
type Config struct {
	// MaxConcurrent bounds password hashes running at once (default 4); a login beyond it is
	// answered 429 at once, without hashing.
	MaxConcurrent int `yaml:"max_concurrent"`
	// LockoutAfter locks an account after this many consecutive failures (default 10).
	LockoutAfter int `yaml:"lockout_after"`
	// FreeFailures are failures (per username and per source address) before back-off starts
	// (default 3): a technician who mistypes is not slowed down.
	FreeFailures int `yaml:"free_failures"`
	// BackoffBase is the first wait after the free failures; each further failure doubles it
	// up to BackoffMax (defaults 1s and 15m). A key quiet for BackoffMax is forgotten.
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// MaxTracked bounds the usernames and addresses remembered (default 10000, least recently
	// failed forgotten first), so random usernames or addresses cannot exhaust memory.
	MaxTracked int `yaml:"max_tracked"`
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 4
	}
	if c.LockoutAfter == 0 {
		c.LockoutAfter = 10
	}
	if c.FreeFailures == 0 {
		c.FreeFailures = 3
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 15 * time.Minute
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = 10000
	}
	return c
}

// Validate names the first bad field (by its configuration key under login.).
func (c Config) Validate() error {
	switch {
	case c.MaxConcurrent < 0 || c.MaxConcurrent > 256:
		return fmt.Errorf("max_concurrent %d must be between 1 and 256 (each check holds 64 MiB)", c.MaxConcurrent)
	case c.LockoutAfter < 0 || c.LockoutAfter > 1000:
		return fmt.Errorf("lockout_after %d must be between 1 and 1000", c.LockoutAfter)
	case c.FreeFailures < 0 || c.FreeFailures > 100:
		return fmt.Errorf("free_failures %d must be between 1 and 100", c.FreeFailures)
	case c.BackoffBase < 0 || c.BackoffMax < 0 || (c.BackoffMax != 0 && c.BackoffBase > c.BackoffMax):
		return fmt.Errorf("backoff_base %s and backoff_max %s must be positive, base <= max", c.BackoffBase, c.BackoffMax)
	case c.MaxTracked < 0:
		return fmt.Errorf("max_tracked %d must not be negative", c.MaxTracked)
	}
	return nil
}

// Store is what the guard needs from the inventory: the password check itself (which hashes
// for unknown usernames too, so they cost the same) and the failure count behind lockout.
type Store interface {
	Authenticate(ctx context.Context, username, password string) (inventory.User, error)
	RecordLoginFailure(ctx context.Context, username, remote, via, reason string, lockAfter int) (bool, error)
	ClearLoginFailures(ctx context.Context, username string) error
}

// ThrottledError refuses a login without checking the password; retry after RetryAfter.
type ThrottledError struct {
	Wait   time.Duration
	Reason string
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s: try again in %d s", e.Reason, e.Seconds())
}

// RetryAfter is how long to wait.
func (e *ThrottledError) RetryAfter() time.Duration { return e.Wait }

// Seconds is the Retry-After header's value (rounded up, at least 1).
func (e *ThrottledError) Seconds() int {
	s := int(math.Ceil(e.Wait.Seconds()))
	return max(s, 1)
}

// Guard checks passwords. Safe for concurrent use.
type Guard struct {
	cfg   Config
	store Store
	log   *slog.Logger
	now   func() time.Time
	sem   chan struct{}
	// OnSuccess runs after each good password check (e.g. removing the initial admin
	// password file); set before use.
	OnSuccess func(ctx context.Context, u inventory.User, remote, via string)

	mu    sync.Mutex
	lru   *list.List // of *entry, most recently failed first
	index map[string]*list.Element
}

type entry struct {
	key   string
	fails int
	until time.Time // no check before this
	last  time.Time // last failure
}

// New builds a guard over store. now nil is time.Now; log nil discards.
func New(store Store, cfg Config, now func() time.Time, log *slog.Logger) *Guard {
	cfg = cfg.WithDefaults()
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Guard{cfg: cfg, store: store, log: log, now: now, sem: make(chan struct{}, cfg.MaxConcurrent),
		lru: list.New(), index: map[string]*list.Element{}}
}

// Config returns the effective configuration.
func (g *Guard) Config() Config { return g.cfg }

// Check verifies username and password for a client at remote, arriving via ("api", "ui",
// "registry"). Errors: *ThrottledError (429, nothing was hashed), inventory.ErrLocked,
// inventory.ErrNotFound (wrong username or password), or a store failure.
func (g *Guard) Check(ctx context.Context, username, password, remote, via string) (inventory.User, error) {
	userKey, addrKey := "user:"+username, "addr:"+remote
	if wait := g.wait(userKey, addrKey); wait > 0 {
		g.log.Info("login throttled", "user", username, "remote", remote, "via", via, "retry_after", wait)
		return inventory.User{}, &ThrottledError{Wait: wait, Reason: "too many failed logins for this user or from this address"}
	}
	select {
	case g.sem <- struct{}{}:
	default:
		g.log.Warn("login refused: password checks at their limit", "limit", g.cfg.MaxConcurrent, "user", username, "remote", remote, "via", via)
		return inventory.User{}, &ThrottledError{Wait: time.Second, Reason: "too many logins in progress"}
	}
	u, err := g.store.Authenticate(ctx, username, password)
	<-g.sem
	switch {
	case err == nil:
		g.forget(userKey)
		if cerr := g.store.ClearLoginFailures(ctx, username); cerr != nil {
			g.log.Error("login: could not reset the failed-login count", "user", username, "err", cerr)
		}
		if g.OnSuccess != nil {
			g.OnSuccess(ctx, u, remote, via)
		}
		return u, nil
	case errors.Is(err, inventory.ErrNotFound), errors.Is(err, inventory.ErrLocked):
		g.fail(userKey, addrKey)
		reason := "wrong username or password"
		if errors.Is(err, inventory.ErrLocked) {
			reason = "account locked"
		}
		locked, rerr := g.store.RecordLoginFailure(ctx, username, remote, via, reason, g.cfg.LockoutAfter)
		if rerr != nil {
			// The refusal stands; the audit record and the lockout count are what failed.
			g.log.Error("login: could not record a failed login (audit and lockout count)", "user", username, "remote", remote, "err", rerr)
		}
		if locked {
			g.log.Warn("account locked after repeated failed logins", "user", username, "remote", remote, "failures", g.cfg.LockoutAfter)
			return inventory.User{}, inventory.Errorf(inventory.ErrLocked, "account %q is now locked after %d failed logins: ask an admin to unlock it (slate user unlock %s, or Unlock on the Users page)", username, g.cfg.LockoutAfter, username)
		}
		return inventory.User{}, err
	case errors.Is(err, inventory.ErrDisabled):
		// The right password for a disabled account: said only now, so a guesser learns nothing.
		g.log.Info("login refused: account disabled", "user", username, "remote", remote, "via", via)
		return inventory.User{}, err
	default:
		return inventory.User{}, fmt.Errorf("check the password of %q: %w", username, err)
	}
}

func (g *Guard) wait(keys ...string) time.Duration {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var w time.Duration
	for _, k := range keys {
		if el, ok := g.index[k]; ok {
			e := el.Value.(*entry)
			if now.Sub(e.last) > g.cfg.BackoffMax {
				g.remove(el)
				continue
			}
			w = max(w, e.until.Sub(now))
		}
	}
	return w
}

func (g *Guard) fail(keys ...string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		el, ok := g.index[k]
		if ok && now.Sub(el.Value.(*entry).last) > g.cfg.BackoffMax {
			g.remove(el) // quiet long enough: start over
			ok = false
		}
		if !ok {
			for g.lru.Len() >= g.cfg.MaxTracked {
				g.remove(g.lru.Back())
			}
			el = g.lru.PushFront(&entry{key: k})
			g.index[k] = el
		}
		g.lru.MoveToFront(el)
		e := el.Value.(*entry)
		e.fails++
		e.last = now
		if n := e.fails - g.cfg.FreeFailures; n > 0 {
			d := g.cfg.BackoffMax
			if n-1 < 30 {
				d = min(g.cfg.BackoffBase<<(n-1), g.cfg.BackoffMax)
			}
			e.until = now.Add(d)
		}
	}
}

func (g *Guard) forget(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.index[key]; ok {
		g.remove(el)
	}
}

func (g *Guard) remove(el *list.Element) {
	delete(g.index, el.Value.(*entry).key)
	g.lru.Remove(el)
}

// Tracked is how many usernames and addresses the guard remembers (for tests and metrics).
func (g *Guard) Tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lru.Len()
}

// Unlocked drops a username's back-off after an admin unlocked the account: the admin's
// decision lets the person in now, not after the remaining wait.
func (g *Guard) Unlocked(username string) { g.forget("user:" + username) }
