// Package image owns OS images: the appliance's embedded OCI registry (air-gapped plants push
// their bootc and disk images here), and, on the agent side, pulling and installing them.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the only driver an appliance needs

	"slate/internal/clientaddr"
)

// Access is what a registry caller may do.
type Access int

// Access levels.
const (
	NoAccess Access = iota
	Pull
	Push
)

// Authorizer decides what the credentials of a request allow (Slate's users and agent tokens).
type Authorizer interface {
	// Basic checks a username and password from the client at remote; Bearer a token. Each
	// returns the subject's name (for logs) and its access. An error with a
	// RetryAfter() time.Duration method (a throttled login) is answered 429.
	Basic(ctx context.Context, user, password, remote string) (string, Access, error)
	Bearer(ctx context.Context, token string) (string, Access, error)
}

// Registry is the embedded OCI distribution registry behind Slate's authentication.
type Registry struct {
	app  http.Handler
	auth Authorizer
	log  *slog.Logger
	root string

	// Write requests hold it shared, a garbage collection exclusively: see GC.
	gcMu sync.RWMutex

	// Clients send credentials with every request; argon2id is deliberately slow, so a
	// verified (user, password) pair is remembered briefly by its hash.
	mu    sync.Mutex
	cache map[[32]byte]cached
	// inflight shares one password check among parallel requests with the same credentials
	// (a client pushing layers in parallel): checks are bounded by Slate's login guard, and
	// one client's parallel requests must not spend that bound, nor be refused by it.
	inflight map[[32]byte]*check
	now      func() time.Time
}

type check struct {
	done   chan struct{}
	name   string
	access Access
	err    error
}

type cached struct {
	name   string
	access Access
	until  time.Time
}

// NewRegistry stores images under dir (created if needed).
func NewRegistry(ctx context.Context, dir string, auth Authorizer, log *slog.Logger) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry storage %s: %w", dir, err)
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			"delete":     configuration.Parameters{"enabled": true},
		},
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "slate-embedded" // only signs upload state; uploads never cross instances
	app := handlers.NewApp(ctx, cfg)
	return &Registry{app: app, auth: auth, log: log, root: dir, cache: map[[32]byte]cached{}, inflight: map[[32]byte]*check{}, now: time.Now}, nil
}

// Root is the storage folder.
func (r *Registry) Root() string { return r.root }

func needed(req *http.Request) Access {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return Pull
	}
	return Push
}

// ServeHTTP authenticates, authorises by method (reads pull, everything else pushes) and
// hands over to the registry.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name, access, err := r.authenticate(req)
	want := needed(req)
	var th interface{ RetryAfter() time.Duration }
	if errors.As(err, &th) {
		secs := max(int(math.Ceil(th.RetryAfter().Seconds())), 1)
		r.log.Info("registry: login throttled", "method", req.Method, "path", req.URL.Path, "remote", clientaddr.From(req), "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":%q}]}`+"\n", err.Error())
		return
	}
	if err != nil || access < want {
		if err != nil {
			r.log.Info("registry: refused", "method", req.Method, "path", req.URL.Path, "remote", clientaddr.From(req), "reason", err)
		} else {
			r.log.Info("registry: refused", "method", req.Method, "path", req.URL.Path, "subject", name, "reason", "insufficient role")
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="slate registry"`)
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusUnauthorized
		code, msg := "UNAUTHORIZED", "authentication required: log in with a Slate user (operator or admin to push)"
		if err == nil && access > NoAccess {
			status, code, msg = http.StatusForbidden, "DENIED", fmt.Sprintf("%s may not push: operator or admin role needed", name)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`+"\n", code, msg)
		return
	}
	if want == Push {
		release, ok := r.holdOffGC(w)
		if !ok {
			r.log.Info("registry: write refused during garbage collection", "method", req.Method, "path", req.URL.Path, "subject", name)
			return
		}
		defer release()
		r.log.Info("registry: write", "method", req.Method, "path", req.URL.Path, "subject", name, "remote", clientaddr.From(req))
	}
	r.app.ServeHTTP(w, req)
}

func (r *Registry) authenticate(req *http.Request) (string, Access, error) {
	h := req.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return r.auth.Bearer(req.Context(), strings.TrimSpace(tok))
	}
	user, pw, ok := req.BasicAuth()
	if !ok {
		return "", NoAccess, fmt.Errorf("no credentials")
	}
	key := sha256.Sum256([]byte(user + "\x00" + pw))
	r.mu.Lock()
	c, hit := r.cache[key]
	if hit && r.now().Before(c.until) {
		r.mu.Unlock()
		return c.name, c.access, nil
	}
	if call, ok := r.inflight[key]; ok {
		r.mu.Unlock()
		select {
		case <-call.done:
			return call.name, call.access, call.err
		case <-req.Context().Done():
			return "", NoAccess, req.Context().Err()
		}
	}
	call := &check{done: make(chan struct{})}
	r.inflight[key] = call
	r.mu.Unlock()
	call.name, call.access, call.err = r.checkBasic(req, user, pw)
	r.mu.Lock()
	delete(r.inflight, key)
	if call.err == nil {
		if len(r.cache) > 1024 {
			r.cache = map[[32]byte]cached{}
		}
		r.cache[key] = cached{call.name, call.access, r.now().Add(time.Minute)}
	}
	r.mu.Unlock()
	close(call.done)
	return call.name, call.access, call.err
}

func (r *Registry) checkBasic(req *http.Request, user, pw string) (string, Access, error) {
	// A registry password may also be an API token (as `podman login -p <token>` sends it).
	// The token is tried first: it is a cheap lookup, and a token sent as a password must not
	// count as a failed password (that would throttle and lock a client using its token).
	if n, a, e := r.auth.Bearer(req.Context(), pw); e == nil {
		return n, a, nil
	}
	return r.auth.Basic(req.Context(), user, pw, clientaddr.From(req))
}

// BlobPath is where the filesystem driver keeps a blob (for tests and garbage collection).
func (r *Registry) BlobPath(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	if len(hex) < 2 {
		return ""
	}
	return filepath.Join(r.root, "docker", "registry", "v2", "blobs", algo, hex[:2], hex, "data")
}

// HasManifest reports whether repo holds a manifest with this digest, and its blob.
func (r *Registry) HasManifest(ctx context.Context, repo, digest string) (bool, error) {
	algo, hex, ok := strings.Cut(digest, ":")
	if !ok || algo != "sha256" || len(hex) != 64 || strings.Contains(repo, "..") {
		return false, nil
	}
	link := filepath.Join(r.root, "docker", "registry", "v2", "repositories", filepath.FromSlash(repo), "_manifests", "revisions", algo, hex, "link")
	if _, err := os.Stat(link); err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	_, err := os.Stat(r.BlobPath(digest))
	if os.IsNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

// DiskLayer reads a disk-image release's manifest from the registry's storage and returns
// its single layer (the raw disk image) and that layer's compression.
func (r *Registry) DiskLayer(ctx context.Context, repo, manifestDigest string) (string, string, error) {
	ok, err := r.HasManifest(ctx, repo, manifestDigest)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", fmt.Errorf("manifest %s@%s is not in the registry", repo, manifestDigest)
	}
	b, err := os.ReadFile(r.BlobPath(manifestDigest))
	if err != nil {
		return "", "", err
	}
	var m struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", "", fmt.Errorf("manifest %s: %w", manifestDigest, err)
	}
	if len(m.Layers) != 1 {
		return "", "", fmt.Errorf("manifest %s has %d layers: a disk-image release has exactly one (the raw image)", manifestDigest, len(m.Layers))
	}
	comp := ""
	switch {
	case strings.HasSuffix(m.Layers[0].MediaType, "gzip"):
		comp = "gzip"
	case strings.HasSuffix(m.Layers[0].MediaType, "zstd"):
		comp = "zstd"
	}
	return m.Layers[0].Digest, comp, nil
}
