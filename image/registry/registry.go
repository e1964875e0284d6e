// Package registry is the appliance's embedded OCI registry (air-gapped plants push their
// bootc and disk images here): serving, scoped access, garbage collection and deletion. It is
// server-only: the agent writes images with slate/image/disk and never links this package
// (and with it the distribution, Redis and OpenTelemetry modules).
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
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

// Subject is who a request's credentials name and what they allow.
type Subject struct {
	Name   string // for logs and refusals: a username, or "agent:<machine id>"
	Access Access
	// Scoped subjects are machines: they pull only Images (and what those reference), never
	// list, never push. Users are not scoped: their role alone decides.
	Scoped bool
	// Images are "repo@sha256:<hex>" manifests a scoped subject may pull: the image of the task
	// its machine runs now.
	Images []string
	// Why says, for a scoped subject with nothing to pull, why not (for the refusal).
	Why string
}

// Authorizer decides what the credentials of a request allow (Slate's users and agent tokens).
type Authorizer interface {
	// Basic checks a username and password from the client at remote; Bearer a token. An
	// error with a RetryAfter() time.Duration method (a throttled login) is answered 429.
	Basic(ctx context.Context, user, password, remote string) (Subject, error)
	// Bearer checks a token presented by the TCP peer peer (a machine's token is bound to the
	// address that fetched its boot script, as on the agent API).
	Bearer(ctx context.Context, token, peer string) (Subject, error)
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
	// The manifests and blobs each image of a machine's scope covers, by "repo@digest".
	scopes map[string]scopeSet
	// inflight shares one password check among parallel requests with the same credentials
	// (a client pushing layers in parallel): checks are bounded by Slate's login guard, and
	// one client's parallel requests must not spend that bound, nor be refused by it.
	inflight map[[32]byte]*check
	now      func() time.Time
}

type check struct {
	done chan struct{}
	sub  Subject
	err  error
}

type cached struct {
	sub   Subject
	until time.Time
}

// NewRegistry stores images under dir (created if needed).
func NewRegistry(ctx context.Context, dir string, auth Authorizer, log *slog.Logger) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry storage %s: %w", dir, err)
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": dir},
			// Deletes are Slate's (DeleteManifest, GC), on their own storage handle; the
			// registry API itself never deletes.
			"delete": configuration.Parameters{"enabled": false},
		},
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "slate-embedded" // only signs upload state; uploads never cross instances
	app := handlers.NewApp(ctx, cfg)
	return &Registry{app: app, auth: auth, log: log, root: dir, cache: map[[32]byte]cached{}, scopes: map[string]scopeSet{},
		inflight: map[[32]byte]*check{}, now: time.Now}, nil
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

// ServeHTTP authenticates, authorises by method (reads pull, everything else pushes) and,
// for machines, by what their task needs, then hands over to the registry. Deletes are never
// served here: they go through Slate's audited admin path (DeleteManifest), which refuses
// images releases use.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	sub, err := r.authenticate(req)
	var th interface{ RetryAfter() time.Duration }
	if errors.As(err, &th) {
		secs := max(int(math.Ceil(th.RetryAfter().Seconds())), 1)
		r.log.Info("registry: login throttled", "method", req.Method, "path", req.URL.Path, "remote", clientaddr.From(req), "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		ociError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", err.Error())
		return
	}
	if err != nil {
		r.log.Info("registry: refused", "method", req.Method, "path", req.URL.Path, "remote", clientaddr.From(req), "reason", err)
		w.Header().Set("WWW-Authenticate", `Basic realm="slate registry"`)
		ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required: log in with a Slate user (operator or admin to push)")
		return
	}
	// Cancelling one's own upload in progress (DELETE …/blobs/uploads/<id>) deletes no content:
	// it stays a push.
	if req.Method == http.MethodDelete && !isUploadSession(req.URL.Path) {
		r.log.Warn("registry: delete refused", "path", req.URL.Path, "subject", sub.Name)
		ociError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "deleting through /v2/ is disabled: an admin deletes an image with `slate registry rm REPO@DIGEST` "+
			"(DELETE /api/v1/registry/manifests/{digest}?repo=REPO, or the releases page), which is audited and refuses images a release uses")
		return
	}
	want := needed(req)
	if sub.Scoped {
		if why := r.scopeRefusal(req, sub, want); why != "" {
			r.log.Warn("registry: machine credential refused", "method", req.Method, "path", req.URL.Path, "subject", sub.Name, "reason", why)
			ociError(w, http.StatusForbidden, "DENIED", why)
			return
		}
	} else if sub.Access < want {
		r.log.Info("registry: refused", "method", req.Method, "path", req.URL.Path, "subject", sub.Name, "reason", "insufficient role")
		status, code, msg := http.StatusForbidden, "DENIED", fmt.Sprintf("%s may not push: operator or admin role needed", sub.Name)
		if sub.Access == NoAccess {
			status, code, msg = http.StatusUnauthorized, "UNAUTHORIZED", "authentication required: log in with a Slate user (operator or admin to push)"
			w.Header().Set("WWW-Authenticate", `Basic realm="slate registry"`)
		}
		ociError(w, status, code, msg)
		return
	}
	if want == Push {
		release, ok := r.holdOffGC(w)
		if !ok {
			r.log.Info("registry: write refused during garbage collection", "method", req.Method, "path", req.URL.Path, "subject", sub.Name)
			return
		}
		defer release()
		r.log.Info("registry: write", "method", req.Method, "path", req.URL.Path, "subject", sub.Name, "remote", clientaddr.From(req))
	}
	r.app.ServeHTTP(w, req)
}

func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`+"\n", code, msg)
}

// scopeRefusal says why a machine's request is outside what its task needs ("" when it is
// inside): the API version check, and reads of the manifests it was given (by digest), the
// manifests those list (an index's children) and the blobs they reference, in the same
// repository. Tags, listings, referrers and writes are outside.
func (r *Registry) scopeRefusal(req *http.Request, sub Subject, want Access) string {
	if sub.Access < Pull || len(sub.Images) == 0 {
		why := sub.Why
		if why == "" {
			why = "nothing to pull"
		}
		return fmt.Sprintf("%s has no registry access: %s", sub.Name, why)
	}
	only := fmt.Sprintf("%s may pull only %s (the image of the task its machine runs)", sub.Name, strings.Join(sub.Images, ", "))
	if want != Pull {
		return only + ": machine credentials never write"
	}
	p := req.URL.Path
	if p == "/v2/" || p == "/v2" {
		return "" // the version check clients make before anything else
	}
	repo, kind, ref, ok := splitV2(p)
	if !ok || (kind != "manifests" && kind != "blobs") {
		return only + ": " + p + " is outside it"
	}
	if !strings.HasPrefix(ref, "sha256:") {
		return only + ": " + p + " is not by digest (tags are not in a machine's scope)"
	}
	for _, img := range sub.Images {
		irepo, idigest, _ := strings.Cut(img, "@")
		if irepo != repo {
			continue
		}
		manifests, blobs, err := r.closure(repo, idigest)
		if err != nil {
			r.log.Error("registry: read the scope of a machine credential", "subject", sub.Name, "image", img, "err", err)
			return only + ": its manifest cannot be read (" + err.Error() + ")"
		}
		if (kind == "manifests" && manifests[ref]) || (kind == "blobs" && blobs[ref]) {
			return ""
		}
	}
	return only + ": " + p + " is outside it"
}

// isUploadSession says whether p is /v2/<repo>/blobs/uploads/<id> (and not, say, a manifest of
// a repository whose name contains blobs/uploads).
func isUploadSession(p string) bool {
	parts := strings.Split(strings.TrimPrefix(p, "/v2/"), "/")
	n := len(parts)
	return strings.HasPrefix(p, "/v2/") && n >= 4 && parts[n-3] == "blobs" && parts[n-2] == "uploads" && parts[n-1] != ""
}

// splitV2 splits /v2/<repo>/<kind>/<ref> (kind: manifests, blobs, tags, referrers).
func splitV2(p string) (repo, kind, ref string, ok bool) {
	rest, found := strings.CutPrefix(p, "/v2/")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return "", "", "", false
	}
	kind, ref = parts[len(parts)-2], parts[len(parts)-1]
	repo = strings.Join(parts[:len(parts)-2], "/")
	return repo, kind, ref, repo != "" && ref != ""
}

// closure reads the manifest repo@digest from storage and returns it with the manifests it
// lists (recursively: an index's children) and every blob they reference (configs, layers,
// the manifests' own blobs). Manifests are content-addressed, so a result never changes and
// is remembered.
func (r *Registry) closure(repo, digest string) (map[string]bool, map[string]bool, error) {
	key := repo + "@" + digest
	r.mu.Lock()
	c, hit := r.scopes[key]
	r.mu.Unlock()
	if hit {
		return c.manifests, c.blobs, nil
	}
	manifests, blobs := map[string]bool{}, map[string]bool{}
	queue := []string{digest}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if manifests[d] {
			continue
		}
		ok, err := r.HasManifest(context.Background(), repo, d)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, fmt.Errorf("manifest %s@%s is not in the registry", repo, d)
		}
		b, err := os.ReadFile(r.BlobPath(d))
		if err != nil {
			return nil, nil, err
		}
		var m struct {
			Config    *struct{ Digest string }  `json:"config"`
			Layers    []struct{ Digest string } `json:"layers"`
			Manifests []struct{ Digest string } `json:"manifests"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, nil, fmt.Errorf("manifest %s@%s: %w", repo, d, err)
		}
		manifests[d], blobs[d] = true, true
		if m.Config != nil && m.Config.Digest != "" {
			blobs[m.Config.Digest] = true
		}
		for _, l := range m.Layers {
			blobs[l.Digest] = true
		}
		for _, c := range m.Manifests {
			queue = append(queue, c.Digest)
		}
	}
	r.mu.Lock()
	if len(r.scopes) > 256 {
		r.scopes = map[string]scopeSet{}
	}
	r.scopes[key] = scopeSet{manifests, blobs}
	r.mu.Unlock()
	return manifests, blobs, nil
}

type scopeSet struct{ manifests, blobs map[string]bool }

func (r *Registry) authenticate(req *http.Request) (Subject, error) {
	h := req.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return r.auth.Bearer(req.Context(), strings.TrimSpace(tok), tcpPeer(req))
	}
	user, pw, ok := req.BasicAuth()
	if !ok {
		return Subject{}, fmt.Errorf("no credentials")
	}
	key := sha256.Sum256([]byte(user + "\x00" + pw))
	r.mu.Lock()
	c, hit := r.cache[key]
	if hit && r.now().Before(c.until) {
		r.mu.Unlock()
		return c.sub, nil
	}
	if call, ok := r.inflight[key]; ok {
		r.mu.Unlock()
		select {
		case <-call.done:
			return call.sub, call.err
		case <-req.Context().Done():
			return Subject{}, req.Context().Err()
		}
	}
	call := &check{done: make(chan struct{})}
	r.inflight[key] = call
	r.mu.Unlock()
	call.sub, call.err = r.checkBasic(req, user, pw)
	r.mu.Lock()
	delete(r.inflight, key)
	// A machine's scope follows its task from request to request: never remembered.
	if call.err == nil && !call.sub.Scoped {
		if len(r.cache) > 1024 {
			r.cache = map[[32]byte]cached{}
		}
		r.cache[key] = cached{call.sub, r.now().Add(time.Minute)}
	}
	r.mu.Unlock()
	close(call.done)
	return call.sub, call.err
}

// checkBasic: a registry password may also be an API or agent token (as `podman login -p
// <token>` sends it, and bootc's auth.json does). Tokens are tried first: a token is looked up
// by its hash where a password costs an argon2id hash, and a token sent as a password must not
// count as a failed password (that would throttle and lock a client using its token).
func (r *Registry) checkBasic(req *http.Request, user, pw string) (Subject, error) {
	if sub, err := r.auth.Bearer(req.Context(), pw, tcpPeer(req)); err == nil {
		return sub, nil
	}
	return r.auth.Basic(req.Context(), user, pw, clientaddr.From(req))
}

// tcpPeer is the request's TCP peer address (never a header): what machine tokens are bound to.
func tcpPeer(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr
	}
	return host
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
