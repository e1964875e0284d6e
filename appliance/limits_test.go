package appliance_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"slate/appliance"
	"slate/internal/httplimit"
)

// TestServeCutsSlowClientsButNotStreams runs Slate's own server (Serve, not a test server)
// with short limits: a trickled API request is cut at the read timeout, while the event stream
// stays open past the write timeout and still delivers an event.
func TestServeCutsSlowClientsButNotStreams(t *testing.T) {
	cfg := appliance.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.HTTP = httplimit.Limits{ReadHeader: 500 * time.Millisecond, Read: 700 * time.Millisecond, Write: 700 * time.Millisecond,
		Idle: 500 * time.Millisecond, Stall: 5 * time.Second}
	a, err := appliance.New(context.Background(), cfg, appliance.Options{AdminPassword: "first-pass-01"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()

	// The slow client: 1 byte of its login every 300 ms.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"username":"admin","password":"first-pass-01"}`
	fmt.Fprintf(c, "POST /api/v1/auth/token HTTP/1.1\r\nHost: slate\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	go func() {
		for i := range len(body) {
			if _, err := c.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, _ := io.ReadAll(c)
	if took := time.Since(start); took > 3*time.Second || bytes.Contains(reply, []byte(`"token"`)) {
		t.Fatalf("trickled login: %q after %s; want the connection cut at the 700ms read timeout", reply, took)
	}

	// A prompt client logs in, then follows the event stream past the write timeout.
	resp, err := http.Post(base+"/api/v1/auth/token", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	ev, err := http.DefaultClient.Do(req)
	if err != nil || ev.StatusCode != 200 {
		t.Fatalf("events: %v %v", ev, err)
	}
	defer ev.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(ev.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(1500 * time.Millisecond) // twice the write timeout
	enroll, _ := json.Marshal(map[string]any{"name": "m1", "macs": []string{"52:54:00:00:00:01"}})
	req, _ = http.NewRequest("POST", base+"/api/v1/machines", bytes.NewReader(enroll))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 201 {
		t.Fatalf("enroll: %v %v", r, err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the event stream was cut")
			}
			if l == "event: machine" {
				return
			}
		case <-deadline:
			t.Fatal("no event on a stream older than the write timeout")
		}
	}
}
