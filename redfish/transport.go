package redfish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxReply bounds what Slate reads from a BMC: a Redfish document is kilobytes.
const maxReply = 16 << 20

// transport is the HTTP layer under every operation: TLS pinning, sessions, timeouts, retries.
// gofish's APIClient binds one context at connect time and has no re-login or pinning, so the
// wire is ours; gofish supplies the resource models the replies are decoded into.
type transport struct {
	addr     string // as configured, for errors
	base     string // scheme://host[:port]
	hc       *http.Client
	user     string
	password string
	timeout  time.Duration
	retries  int
	backoff  time.Duration
	sleep    func(context.Context, time.Duration) error
	log      *slog.Logger

	loginMu     sync.Mutex // one re-login at a time; the others reuse its token
	mu          sync.Mutex
	pinned      string // the fingerprint to hold the BMC to ("" until first seen)
	seen        string // the fingerprint presented on the last handshake
	token       string
	sessionURI  string
	sessionsURI string // where to log in; "" means Basic auth
	basic       bool
}

// Fingerprint formats a certificate's SHA-256 the way Slate stores it.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func normalizeFingerprint(fp string) string {
	fp = strings.ToLower(strings.TrimSpace(fp))
	if fp == "" {
		return ""
	}
	fp = strings.TrimPrefix(fp, "sha256:")
	fp = strings.ReplaceAll(fp, ":", "")
	return "sha256:" + fp
}

type fingerprintError struct {
	addr, pinned, seen string
}

func (e *fingerprintError) Error() string {
	return fmt.Sprintf("TLS certificate %s presented but %s is pinned: %v; if the BMC's certificate was replaced on purpose "+
		"(firmware update, reset to defaults, new certificate), confirm the new fingerprint on the BMC itself, then re-pin it "+
		"(an enrolled machine: slate machine bmc M --repin; slate bmc: pass it as --fingerprint); otherwise something else answers at this address",
		e.seen, e.pinned, ErrFingerprintChanged)
}

func (e *fingerprintError) Unwrap() error { return ErrFingerprintChanged }

// FingerprintMismatch says whether err is a refused certificate, and if so which fingerprint
// the BMC presented and which one was pinned: a caller that can re-pin names both.
func FingerprintMismatch(err error) (presented, pinned string, ok bool) {
	var fe *fingerprintError
	if !errors.As(err, &fe) {
		return "", "", false
	}
	return fe.seen, fe.pinned, true
}

// NormalizeFingerprint writes a fingerprint the way Slate stores it ("sha256:" and lower-case
// hex without colons), whichever of the usual forms an operator typed or pasted.
func NormalizeFingerprint(fp string) string { return normalizeFingerprint(fp) }

func (t *transport) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("bmc %s presented no TLS certificate", t.addr)
	}
	fp := Fingerprint(cs.PeerCertificates[0].Raw)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen = fp
	if t.pinned == "" {
		// trust on first use: from now on this client holds the BMC to this certificate
		t.pinned = fp
		return nil
	}
	if fp != t.pinned {
		return &fingerprintError{addr: t.addr, pinned: t.pinned, seen: fp}
	}
	return nil
}

func newTransport(addr, base, user, password, pin string, timeout time.Duration, retries int, backoff time.Duration,
	sleep func(context.Context, time.Duration) error, log *slog.Logger) *transport {
	t := &transport{addr: addr, base: base, user: user, password: password, pinned: normalizeFingerprint(pin),
		timeout: timeout, retries: retries, backoff: backoff, sleep: sleep, log: log}
	tr := &http.Transport{
		Proxy:               nil, // a BMC is on the plant network: never through a proxy
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     60 * time.Second,
		// BMCs present self-signed certificates: the chain is not verified, the pinned
		// fingerprint is (VerifyConnection runs on every handshake, resumed ones included).
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, VerifyConnection: t.verifyConnection, MinVersion: tls.VersionTLS12}, //nolint:gosec
	}
	t.hc = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		// some BMCs redirect /redfish/v1 to /redfish/v1/; never follow one to another host
		if len(via) >= 3 || req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return t
}

// reply is a fully read HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// request is one call; body is a function so a retry can send it again.
type request struct {
	op      string
	method  string
	path    string
	body    func() (io.Reader, int64, error)
	ctype   string
	header  map[string]string
	noAuth  bool
	noRetry bool          // a POST that may have taken effect is not repeated blindly
	timeout time.Duration // overrides the per-attempt timeout (an image upload takes longer)
}

func jsonBody(v any) (func() (io.Reader, int64, error), error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return func() (io.Reader, int64, error) { return bytes.NewReader(b), int64(len(b)), nil }, nil
}

func (t *transport) fail(rq *request, status int, body []byte, err error) *Error {
	e := &Error{BMC: t.addr, Op: rq.op, Method: rq.method, Path: rq.path, Status: status, Err: err, Hint: hintFor(status)}
	if len(body) > 0 {
		e.MessageID, e.Message = parseErrorBody(body)
	}
	var fe *fingerprintError
	if errors.As(err, &fe) {
		e.Method, e.Path, e.Hint, e.Err = "", "", "", fe
	}
	return e
}

func retryable(status int) bool {
	return status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout || status == http.StatusTooManyRequests
}

// do sends a request with a timeout per attempt, bounded retries on transient failures, and
// one re-login when a session expired.
func (t *transport) do(ctx context.Context, rq *request) (*reply, error) {
	relogged := false
	var last *Error
	for attempt := 0; attempt <= t.retries; attempt++ {
		if attempt > 0 {
			wait := t.backoff * time.Duration(1<<(attempt-1))
			if last != nil && last.Status != 0 {
				if ra, err := strconv.Atoi(last.retryAfter); err == nil && ra >= 0 {
					wait = min(time.Duration(ra)*time.Second, 10*time.Second)
				}
			}
			if err := t.sleep(ctx, wait); err != nil {
				return nil, t.fail(rq, 0, nil, fmt.Errorf("giving up after %d attempts: %w (last: %v)", attempt, err, last))
			}
		}
		sentWith := t.currentToken()
		rep, err := t.once(ctx, rq)
		if err == nil {
			if rep.status == http.StatusUnauthorized && !rq.noAuth && !relogged && t.usesSession() {
				relogged = true
				if lerr := t.relogin(ctx, rq.op, sentWith); lerr != nil {
					return nil, lerr
				}
				attempt-- // a re-login is not a retry
				continue
			}
			if rep.status < 300 {
				return rep, nil
			}
			last = t.fail(rq, rep.status, rep.body, nil)
			last.retryAfter = rep.header.Get("Retry-After")
			if rep.status == http.StatusUnauthorized {
				last.Err = ErrUnauthorized
				return nil, last
			}
			if retryable(rep.status) && attempt < t.retries {
				t.log.Warn("bmc busy, retrying", "op", rq.op, "status", rep.status, "attempt", attempt+1)
				continue
			}
			return nil, last
		}
		last = t.fail(rq, 0, nil, err)
		var fe *fingerprintError
		if errors.As(err, &fe) || ctx.Err() != nil {
			return nil, last
		}
		if rq.noRetry || attempt == t.retries {
			return nil, last
		}
		t.log.Warn("bmc request failed, retrying", "op", rq.op, "err", err, "attempt", attempt+1)
	}
	return nil, last
}

func (t *transport) currentToken() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.token
}

// relogin replaces an expired session, unless a concurrent call already did.
func (t *transport) relogin(ctx context.Context, op, expired string) error {
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if t.currentToken() != expired {
		return nil
	}
	t.log.Info("bmc session expired, logging in again", "op", op)
	return t.login(ctx)
}

func (t *transport) usesSession() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.basic && t.sessionsURI != ""
}

func (t *transport) once(ctx context.Context, rq *request) (*reply, error) {
	limit := t.timeout
	if rq.timeout > 0 {
		limit = rq.timeout
	}
	actx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var body io.Reader
	length := int64(0)
	if rq.body != nil {
		b, n, err := rq.body()
		if err != nil {
			return nil, err
		}
		body, length = b, n
	}
	path := rq.path
	if strings.Contains(path, "://") {
		// a link given as a full URL: only its path is used, never another host
		u, err := url.Parse(path)
		if err != nil {
			return nil, fmt.Errorf("link %q: %w", path, ErrBadReply)
		}
		path = u.RequestURI()
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("link %q is not a path: %w", path, ErrBadReply)
	}
	req, err := http.NewRequestWithContext(actx, rq.method, t.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		// always a known length: some BMCs reject chunked transfer encoding outright
		req.ContentLength = length
		if length == 0 {
			req.Body = http.NoBody
		}
		ct := rq.ctype
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	if !rq.noAuth {
		t.mu.Lock()
		tok, basic := t.token, t.basic
		t.mu.Unlock()
		switch {
		case tok != "":
			req.Header.Set("X-Auth-Token", tok)
		case basic:
			req.SetBasicAuth(t.user, t.password)
		}
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("no answer within %s: %w", limit, ErrTimeout)
		}
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("reply not complete within %s: %w", limit, ErrTimeout)
		}
		return nil, fmt.Errorf("reading the reply: %w", err)
	}
	if len(b) > maxReply {
		return nil, fmt.Errorf("reply larger than %d bytes: %w", maxReply, ErrBadReply)
	}
	return &reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// login opens a Redfish session, or falls back to Basic auth when the BMC has no session service.
func (t *transport) login(ctx context.Context) error {
	t.mu.Lock()
	uri := t.sessionsURI
	t.mu.Unlock()
	if uri == "" {
		t.mu.Lock()
		t.basic = true
		t.mu.Unlock()
		return nil
	}
	body, err := jsonBody(map[string]string{"UserName": t.user, "Password": t.password})
	if err != nil {
		return err
	}
	// a lost reply would leave a session behind on the BMC (it expires there), so only
	// "busy" answers are retried, not network errors
	rq := &request{op: "log in", method: http.MethodPost, path: uri, body: body, noAuth: true, noRetry: true}
	rep, err := t.do(ctx, rq)
	var e *Error
	switch {
	case err == nil:
	case errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Status == http.StatusMethodNotAllowed):
		t.log.Info("bmc has no usable session service, using Basic auth")
		t.mu.Lock()
		t.basic, t.token = true, ""
		t.mu.Unlock()
		return nil
	case errors.As(err, &e) && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden):
		e.Err = ErrUnauthorized
		return e
	default:
		return err
	}
	tok := rep.header.Get("X-Auth-Token")
	if tok == "" {
		return t.fail(rq, rep.status, nil, fmt.Errorf("session created without an X-Auth-Token header: %w", ErrBadReply))
	}
	loc := rep.header.Get("Location")
	if loc == "" {
		var s struct {
			ID string `json:"@odata.id"`
		}
		_ = json.Unmarshal(rep.body, &s)
		loc = s.ID
	}
	if u, err := url.Parse(loc); err == nil && u.Path != "" {
		loc = u.Path
	}
	t.mu.Lock()
	t.token, t.sessionURI, t.basic = tok, loc, false
	t.mu.Unlock()
	return nil
}

// logout deletes the session; errors are reported but the client is closed anyway.
func (t *transport) logout(ctx context.Context) error {
	t.mu.Lock()
	uri := t.sessionURI
	t.mu.Unlock()
	defer t.hc.CloseIdleConnections()
	if uri == "" {
		return nil
	}
	_, err := t.do(ctx, &request{op: "log out", method: http.MethodDelete, path: uri})
	t.mu.Lock()
	t.token, t.sessionURI = "", ""
	t.mu.Unlock()
	return err
}

// checkDocument is the reply check every GET goes through: the body must be a JSON object,
// and when it names itself (@odata.id) it must be the resource asked for — a BMC under load
// has been seen answering with another resource's document.
func checkDocument(path string, body []byte) error { return checkDocumentAllow(path, body, nil) }

func checkDocumentAllow(path string, body []byte, allow func(asked, got string) bool) error {
	var head struct {
		ID *string `json:"@odata.id"`
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fmt.Errorf("empty reply: %w", ErrBadReply)
	}
	if !json.Valid(body) {
		return fmt.Errorf("malformed JSON: %w", ErrBadReply)
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("reply is not a JSON object: %w", ErrBadReply)
	}
	if head.ID != nil && !samePath(*head.ID, path) && (allow == nil || !allow(path, *head.ID)) {
		return fmt.Errorf("reply is for %q, not for the resource asked for: %w", *head.ID, ErrBadReply)
	}
	return nil
}

func samePath(a, b string) bool {
	clean := func(s string) string {
		if u, err := url.Parse(s); err == nil {
			s = u.Path
		}
		return strings.TrimRight(s, "/")
	}
	return clean(a) == clean(b)
}
