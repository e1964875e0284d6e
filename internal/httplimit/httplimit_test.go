package httplimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// All on loopback, with timeouts short enough for a test.
var testLimits = Limits{ReadHeader: 300 * time.Millisecond, Read: 600 * time.Millisecond, Write: 600 * time.Millisecond,
	Idle: 300 * time.Millisecond, Stall: 400 * time.Millisecond, MaxConns: 50}

type bodyResult struct {
	n   int
	err error
	at  time.Duration
}

// serve runs a server with l on loopback: /stream/… are streaming routes, the rest ordinary.
// /…/upload reads the body and reports what it got on the returned channel.
func serve(t *testing.T, l Limits, extra map[string]http.HandlerFunc) (string, chan bodyResult) {
	t.Helper()
	got := make(chan bodyResult, 4)
	mux := http.NewServeMux()
	upload := func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		b, err := io.ReadAll(r.Body)
		got <- bodyResult{len(b), err, time.Since(start)}
		fmt.Fprintf(w, "got %d", len(b))
	}
	mux.HandleFunc("/api/upload", upload)
	mux.HandleFunc("/stream/upload", upload)
	mux.HandleFunc("/api/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	for p, h := range extra {
		mux.HandleFunc(p, h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := l.Server(mux, func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/stream/") })
	go srv.Serve(l.Listener(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), got
}

// trickle sends a request whose body of n bytes arrives one byte per every.
func trickle(t *testing.T, addr, path string, n int, every time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: slate\r\nContent-Length: %d\r\n\r\n", path, n)
	go func() {
		for range n {
			time.Sleep(every)
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	return c
}

func wait(t *testing.T, ch chan bodyResult, within time.Duration) bodyResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(within):
		t.Fatalf("the handler still reads after %s", within)
		return bodyResult{}
	}
}

// TestTricklingUploadCut: the report's slow client, 1 byte every 200 ms. On an ordinary route
// the whole request has Read (600 ms); on a streaming route a client that stops moving for
// longer than Stall is cut; a streaming upload that keeps moving runs past both.
func TestTricklingUploadCut(t *testing.T) {
	addr, got := serve(t, testLimits, nil)
	t.Run("ordinary route: cut at the read timeout", func(t *testing.T) {
		trickle(t, addr, "/api/upload", 100, 200*time.Millisecond)
		r := wait(t, got, 3*time.Second)
		if r.err == nil || r.n >= 100 || r.at > 1500*time.Millisecond {
			t.Fatalf("trickled upload: %d bytes, err %v, after %s; want cut after ~600ms", r.n, r.err, r.at)
		}
	})
	t.Run("streaming route: cut when it stalls", func(t *testing.T) {
		trickle(t, addr, "/stream/upload", 10, time.Second)
		r := wait(t, got, 3*time.Second)
		if r.err == nil || r.n != 0 {
			t.Fatalf("stalled upload: %d bytes, err %v after %s; want cut after 400ms of silence", r.n, r.err, r.at)
		}
	})
	t.Run("streaming route: moving upload runs long", func(t *testing.T) {
		c := trickle(t, addr, "/stream/upload", 15, 100*time.Millisecond) // 1.5 s > Read, each gap < Stall
		r := wait(t, got, 5*time.Second)
		if r.err != nil || r.n != 15 {
			t.Fatalf("moving upload: %d bytes, err %v", r.n, r.err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response after a long upload: %v %v", resp, err)
		}
	})
}

// TestSlowHeaderCut: a client that sends its headers a byte at a time is cut at ReadHeader.
func TestSlowHeaderCut(t *testing.T) {
	addr, _ := serve(t, testLimits, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	go func() {
		for _, b := range []byte("GET /api/hello HTTP/1.1\r\nHost: slate\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if took := time.Since(start); took > 2*time.Second || strings.Contains(string(b), "hello") {
		t.Fatalf("slow header: answered %q after %s; want the connection cut after ~300ms", b, took)
	}
}

// TestIdleKeepAliveClosed: a keep-alive connection that sends nothing after its request is
// closed at Idle.
func TestIdleKeepAliveClosed(t *testing.T) {
	addr, _ := serve(t, testLimits, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /api/hello HTTP/1.1\r\nHost: slate\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	io.ReadAll(resp.Body)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the server)", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Fatalf("idle connection closed after %s, want ~300ms", took)
	}
}

// TestLongStreamsNotCut: a download and an event stream that keep moving run far past the
// write timeout on streaming routes (gaps between events longer than Stall included); the
// same slow download on an ordinary route is cut at Write.
func TestLongStreamsNotCut(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for range 15 { // 1.5 s
			w.Write(make([]byte, 64<<10))
			http.NewResponseController(w).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}
	events := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 4 { // 4 × 500 ms: each gap longer than Stall
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(500 * time.Millisecond)
		}
	}
	addr, _ := serve(t, testLimits, map[string]http.HandlerFunc{"/stream/kernel": slow, "/api/kernel": slow, "/stream/events": events})
	get := func(path string) (int, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return len(b), err
	}
	if n, err := get("/stream/kernel"); err != nil || n != 15*64<<10 {
		t.Fatalf("long download on a streaming route: %d bytes, %v", n, err)
	}
	if n, err := get("/api/kernel"); err == nil && n == 15*64<<10 {
		t.Fatal("a 1.5 s download on an ordinary route was not cut at the 600ms write timeout")
	}
	resp, err := http.Get("http://" + addr + "/stream/events")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "data: ") != 4 {
		t.Fatalf("event stream: %q, %v", b, err)
	}
}

// TestStalledDownloadCut: a client that stops reading a streaming download is cut after
// Stall, rather than holding the handler (and a file, and a connection) for ever.
func TestStalledDownloadCut(t *testing.T) {
	done := make(chan error, 1)
	big := func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 1<<20)
		for range 512 {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}
	addr, _ := serve(t, testLimits, map[string]http.HandlerFunc{"/stream/big": big})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /stream/big HTTP/1.1\r\nHost: slate\r\n\r\n") // and never read
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("512 MiB written to a client that reads nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler still writes to a client that stopped reading")
	}
}

// TestConnectionCap: past MaxConns, a new connection waits until one closes.
func TestConnectionCap(t *testing.T) {
	l := testLimits
	l.MaxConns, l.Idle = 2, 10*time.Second
	addr, _ := serve(t, l, nil)
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /api/hello HTTP/1.1\r\nHost: slate\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		held = append(held, c) // kept open, idle
	}
	third := make(chan error, 1)
	go func() {
		cl := &http.Client{Timeout: 5 * time.Second}
		resp, err := cl.Get("http://" + addr + "/api/hello")
		if err == nil {
			resp.Body.Close()
		}
		third <- err
	}()
	select {
	case err := <-third:
		t.Fatalf("a third connection was served past max_connections=2 (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	held[0].Close()
	select {
	case err := <-third:
		if err != nil {
			t.Fatalf("the waiting connection, once a slot freed: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the waiting connection was not served after a slot freed")
	}
}

func TestValidate(t *testing.T) {
	for _, l := range []Limits{{Read: -time.Second}, {Stall: 48 * time.Hour}, {MaxConns: -1}} {
		if err := l.Validate(); err == nil || !strings.HasPrefix(err.Error(), "http.") {
			t.Errorf("%+v: %v", l, err)
		}
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if d := (Limits{}).WithDefaults(); d.ReadHeader != 10*time.Second || d.Stall != 30*time.Second || d.MaxConns != 1024 || d.Write != time.Minute {
		t.Fatalf("defaults %+v", d)
	}
}

// readFromRecorder implements io.ReaderFrom like net/http's ResponseWriter and records what
// each call was handed: for sendfile, a single *io.LimitedReader over the *os.File.
type readFromRecorder struct {
	http.ResponseWriter
	srcs []string
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	kind := fmt.Sprintf("%T", src)
	if lr, ok := src.(*io.LimitedReader); ok {
		kind += fmt.Sprintf("(%T)", lr.R)
	}
	r.srcs = append(r.srcs, kind)
	return io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
}

// TestDownloadsKeepSendfile: a streaming route's download is handed to the server's ReadFrom
// in 1 MiB chunks, each a LimitedReader directly over the file, as sendfile needs.
func TestDownloadsKeepSendfile(t *testing.T) {
	p := t.TempDir() + "/kernel"
	if err := os.WriteFile(p, make([]byte, 2*chunk+100), 0o600); err != nil {
		t.Fatal(err)
	}
	h := testLimits.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		http.ServeContent(w, r, "kernel", time.Time{}, f)
	}), func(*http.Request) bool { return true })
	rec := &readFromRecorder{ResponseWriter: httptest.NewRecorder()}
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boot/kernel", nil))
	body := rec.ResponseWriter.(*httptest.ResponseRecorder).Body.Len()
	if body != 2*chunk+100 || len(rec.srcs) != 3 {
		t.Fatalf("%d bytes in %d ReadFrom calls %v; want %d in 3", body, len(rec.srcs), rec.srcs, 2*chunk+100)
	}
	for _, s := range rec.srcs {
		if s != "*io.LimitedReader(*os.File)" {
			t.Fatalf("ReadFrom got %v; want each a LimitedReader over the *os.File", rec.srcs)
		}
	}
}
