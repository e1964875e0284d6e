// Package httplimit bounds how long and how many HTTP clients may hold Slate's server: a slow
// or idle client (a trickled upload, a half-sent header, an idle keep-alive) is cut, and the
// number of open connections is capped.
//
// A global http.Server WriteTimeout or ReadTimeout would also cut what must run long: the
// deploy environment's kernel and initrd over a slow link, registry blob pulls and pushes,
// server-sent event streams, the agent's long-poll. So the whole-request deadlines apply per
// route, and streaming routes get a minimum-progress rule instead: each read or write must
// move within Stall, however long the transfer takes in all.
package httplimit

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits are the HTTP server's timeouts and connection cap (configuration key http).
type Limits struct {
	// ReadHeader bounds reading a request's line and headers (default 10s).
	ReadHeader time.Duration `yaml:"read_header_timeout"`
	// Read bounds reading a whole request, body included, on ordinary routes (default 60s).
	Read time.Duration `yaml:"read_timeout"`
	// Write bounds writing a whole response on ordinary routes (default 60s).
	Write time.Duration `yaml:"write_timeout"`
	// Idle is how long a keep-alive connection may wait for its next request (default 60s).
	Idle time.Duration `yaml:"idle_timeout"`
	// Stall is how long a streaming route (downloads, uploads, event streams, long-polls)
	// may go without a byte moving, in either direction (default 30s).
	Stall time.Duration `yaml:"stall_timeout"`
	// MaxConns caps the connections open at once; more wait in the listen backlog until one
	// closes (default 1024).
	MaxConns int `yaml:"max_connections"`
}

// WithDefaults fills the zero fields.
func (l Limits) WithDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.ReadHeader, 10*time.Second)
	def(&l.Read, time.Minute)
	def(&l.Write, time.Minute)
	def(&l.Idle, time.Minute)
	def(&l.Stall, 30*time.Second)
	if l.MaxConns == 0 {
		l.MaxConns = 1024
	}
	return l
}

// Validate names the first bad field by its configuration key (under http.).
func (l Limits) Validate() error {
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"read_header_timeout", l.ReadHeader}, {"read_timeout", l.Read}, {"write_timeout", l.Write}, {"idle_timeout", l.Idle}, {"stall_timeout", l.Stall}} {
		if f.d < 0 || f.d > 24*time.Hour {
			return fmt.Errorf("http.%s: %s must be between 0 (default) and 24h", f.key, f.d)
		}
	}
	if l.MaxConns < 0 {
		return fmt.Errorf("http.max_connections: %d must not be negative (0: default 1024)", l.MaxConns)
	}
	return nil
}

// Server is an http.Server for h with the limits; streaming says which requests are
// streaming routes. Serve it on Listener(ln).
func (l Limits) Server(h http.Handler, streaming func(*http.Request) bool) *http.Server {
	l = l.WithDefaults()
	// No ReadTimeout or WriteTimeout here: Handler sets them per route.
	return &http.Server{Handler: l.Handler(h, streaming), ReadHeaderTimeout: l.ReadHeader, IdleTimeout: l.Idle}
}

// Listener caps the connections accepted from ln at MaxConns.
func (l Limits) Listener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, l.WithDefaults().MaxConns)
}

// Handler applies the per-route deadlines around h.
func (l Limits) Handler(h http.Handler, streaming func(*http.Request) bool) http.Handler {
	l = l.WithDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		if streaming == nil || !streaming(r) {
			// Errors only mean a writer without deadlines (a test recorder): nothing to bound.
			_ = rc.SetReadDeadline(now.Add(l.Read))
			_ = rc.SetWriteDeadline(now.Add(l.Write))
			h.ServeHTTP(w, r)
			return
		}
		// The connection may carry the deadlines of an earlier request (the server resets
		// none when it has no timeouts of its own): a stale read deadline would cancel this
		// request once the body is read; a stale write deadline would fail its first write.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(now.Add(l.Stall))
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &progressReader{body: r.Body, rc: rc, stall: l.Stall}
		}
		h.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, stall: l.Stall}, r)
		// What the handler left buffered is written after it returns.
		_ = rc.SetWriteDeadline(time.Now().Add(l.Stall))
	})
}

// progressReader gives every read of a streaming body Stall to return: a body that stops
// moving is cut, one that keeps moving may take as long as it needs.
type progressReader struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	stall time.Duration
}

func (p *progressReader) Read(b []byte) (int, error) {
	_ = p.rc.SetReadDeadline(time.Now().Add(p.stall))
	n, err := p.body.Read(b)
	if err != nil {
		// The body is done: drop the deadline, or the server's background read of the idle
		// connection would hit it and cancel a stream that is still writing.
		_ = p.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (p *progressReader) Close() error { return p.body.Close() }

// progressWriter gives every write of a streaming response Stall to complete: a client that
// stops reading is cut. The time between writes (an event stream waiting for news) is free.
type progressWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (p *progressWriter) Write(b []byte) (int, error) {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.stall))
	return p.ResponseWriter.Write(b)
}

// chunk is how much a ReadFrom (sendfile for boot files) sends per deadline.
const chunk = 1 << 20

// ReadFrom keeps the server's sendfile path for downloads, one deadline per chunk. Each chunk
// goes down as one *io.LimitedReader straight over the source: net's sendfile looks through
// exactly one LimitedReader to find the *os.File (http.ServeContent already adds one).
func (p *progressWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{p}, src)
	}
	outer, _ := src.(*io.LimitedReader)
	inner := src
	if outer != nil {
		inner = outer.R
	}
	var total int64
	for {
		n := int64(chunk)
		if outer != nil {
			if outer.N <= 0 {
				return total, nil
			}
			n = min(n, outer.N)
		}
		_ = p.rc.SetWriteDeadline(time.Now().Add(p.stall))
		m, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: n})
		total += m
		if outer != nil {
			outer.N -= m
		}
		if err != nil || m < n {
			return total, err
		}
	}
}

// Flush and Unwrap keep event streams and http.ResponseController working through the wrapper.
func (p *progressWriter) Flush() {
	_ = p.rc.SetWriteDeadline(time.Now().Add(p.stall))
	_ = p.rc.Flush()
}

func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
