// Package test holds end-to-end tests that drive the real binaries.
package test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"slate/inventory"
)

// buildSlate compiles cmd/slate once per test binary run.
var buildOnce sync.Once
var slateBin string
var buildErr error

func slate(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "slate-bin")
		if err != nil {
			buildErr = err
			return
		}
		slateBin = filepath.Join(dir, "slate")
		out, err := exec.Command("go", "build", "-o", slateBin, "../cmd/slate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return slateBin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type server struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
	log     *bytes.Buffer
}

func startServe(t *testing.T, dataDir string, extraEnv ...string) *server {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(slate(t), "serve", "--listen", addr, "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), extraEnv...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, addr: addr, dataDir: dataDir, log: &log}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get("http://" + addr + "/healthz"); err == nil {
			r.Body.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("slate serve did not come up:\n%s", log.String())
	return nil
}

func apiToken(t *testing.T, addr, user, pw string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	r, err := http.Post("http://"+addr+"/api/v1/auth/token", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var out struct{ Token string }
	json.NewDecoder(r.Body).Decode(&out)
	if out.Token == "" {
		t.Fatalf("login as %s failed: %d", user, r.StatusCode)
	}
	return out.Token
}

// TestKillDashNineLosesNoCommittedRecord kills slate serve while clients enroll machines as
// fast as they can, then checks that every acknowledged enrollment survived, with its audit
// event, and that the database and the chain are intact.
func TestKillDashNineLosesNoCommittedRecord(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "SLATE_ADMIN_PASSWORD=kill-test-pw")
	tok := apiToken(t, s.addr, "admin", "kill-test-pw")

	var acked sync.Map // machine id → name
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("k-%d-%d", w, i)
				body := fmt.Sprintf(`{"name":%q,"macs":["02:00:00:%02x:%02x:%02x"],"serial":%q}`, name, w, (i>>8)&0xff, i&0xff, "SN-"+name)
				req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+s.addr+"/api/v1/machines", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					return
				}
				var m inventory.Machine
				json.NewDecoder(resp.Body).Decode(&m)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					acked.Store(m.ID, name)
					n.Add(1)
				}
			}
		}()
	}
	for n.Load() < 150 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
	cancel()
	wg.Wait()

	st, err := inventory.Open(context.Background(), filepath.Join(dir, "slate.db"), inventory.Options{})
	if err != nil {
		t.Fatalf("reopen after kill -9: %v", err)
	}
	defer st.Close()
	if err := st.IntegrityCheck(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep, err := st.VerifyAudit(context.Background())
	if err != nil || !rep.OK {
		t.Fatalf("audit chain after kill -9: %+v %v", rep, err)
	}
	count := 0
	acked.Range(func(k, v any) bool {
		count++
		m, err := st.GetMachine(context.Background(), k.(string))
		if err != nil || m.Name != v.(string) || len(m.MACs) != 1 {
			t.Errorf("acknowledged machine %s (%s) lost or incomplete after kill -9: %+v %v", k, v, m, err)
		}
		ev, _ := st.ListAudit(context.Background(), inventory.AuditFilter{Subject: k.(string)})
		if len(ev) != 1 || ev[0].Action != "machine.enroll" {
			t.Errorf("machine %s has audit %+v, want its enroll event", k, ev)
		}
		return true
	})
	// No half-written record: every machine row has its MAC and its audit event.
	db, _ := sql.Open("sqlite", filepath.Join(dir, "slate.db"))
	defer db.Close()
	var orphans int
	db.QueryRow(`SELECT COUNT(*) FROM machines m WHERE NOT EXISTS (SELECT 1 FROM machine_macs x WHERE x.machine_id = m.id)
		OR NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.subject = m.id)`).Scan(&orphans)
	if orphans != 0 {
		t.Fatalf("%d half-written machines after kill -9", orphans)
	}
	t.Logf("killed slate serve after %d acknowledged enrollments; all present, chain of %d events intact", count, rep.Events)

	// And the appliance starts again on the same data.
	s2 := startServe(t, dir)
	apiToken(t, s2.addr, "admin", "kill-test-pw")
}

func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(slate(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCLIAgainstServer drives the CLI as a technician would, and the offline tamper check.
func TestCLIAgainstServer(t *testing.T) {
	dir := t.TempDir()
	// A low lockout threshold (and no back-off before it) so the CLI's unlock is exercised fast.
	cfgPath := filepath.Join(t.TempDir(), "slate.yaml")
	os.WriteFile(cfgPath, []byte("login:\n  lockout_after: 2\n  free_failures: 5\n"), 0o600)
	s := startServe(t, dir, "SLATE_CONFIG="+cfgPath)
	pwb, err := os.ReadFile(filepath.Join(dir, "initial-admin-password"))
	if err != nil {
		t.Fatalf("no initial-admin-password file: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "initial-admin-password")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("initial-admin-password has mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "secret.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key has mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(s.log.String(), "Created user admin with password "+strings.TrimSpace(string(pwb))) {
		t.Fatalf("the generated password was not printed once:\n%s", s.log.String())
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, pwb, 0o600)
	env := []string{"XDG_CONFIG_HOME=" + t.TempDir(), "SLATE_SERVER=http://" + s.addr}
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(t, env, args...)
		if err != nil {
			t.Fatalf("slate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := mustRun("login", "--username", "admin", "--password-file", pwFile)
	if !strings.Contains(out, "Logged in") {
		t.Fatal(out)
	}
	if _, err := os.Stat(filepath.Join(dir, "initial-admin-password")); !os.IsNotExist(err) {
		t.Fatalf("the initial admin password file must be removed at the admin's first login: %v", err)
	}
	out = mustRun("machine", "enroll", "--name", "hmi-01", "--mac", "52:54:00:ab:cd:01", "--serial", "SER-01", "--label", "line=2")
	if !strings.Contains(out, "Enrolled hmi-01") {
		t.Fatal(out)
	}
	out = mustRun("machine", "transition", "hmi-01", "inspecting", "--reason", "first boot")
	if !strings.Contains(out, "hmi-01 is now inspecting") {
		t.Fatal(out)
	}
	out = mustRun("machine", "list")
	if !strings.Contains(out, "hmi-01") || !strings.Contains(out, "inspecting") || !strings.Contains(out, "52:54:00:ab:cd:01") {
		t.Fatalf("table:\n%s", out)
	}
	out = mustRun("machine", "list", "--json", "--state", "inspecting")
	var l struct {
		Total int
		Items []inventory.Machine
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || l.Total != 1 || l.Items[0].Serial != "SER-01" {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	out = mustRun("machine", "show", "hmi-01")
	if !strings.Contains(out, "line=2") || !strings.Contains(out, "SER-01") {
		t.Fatal(out)
	}
	// The technician powers it on by hand: its network boot is announced, shown, audited.
	if out := mustRun("machine", "show", "hmi-01"); strings.Contains(out, "Boot expected") {
		t.Fatalf("a boot nobody announced is shown as expected:\n%s", out)
	}
	if out := mustRun("machine", "expect-boot", "hmi-01"); !strings.Contains(out, "Network boot of hmi-01 expected until") {
		t.Fatal(out)
	}
	if out := mustRun("machine", "show", "hmi-01"); !strings.Contains(out, "Boot expected") || !strings.Contains(out, "by admin") {
		t.Fatalf("machine show does not say the boot is expected:\n%s", out)
	}
	out, err = run(t, env, "machine", "transition", "hmi-01", "deployed", "--reason", "skip")
	if err == nil || !strings.Contains(out, "from inspecting to deployed") {
		t.Fatalf("a refused transition must fail with both states named: %v\n%s", err, out)
	}
	userPw := filepath.Join(t.TempDir(), "upw")
	os.WriteFile(userPw, []byte("auditor-pw-1\n"), 0o600)
	mustRun("user", "add", "ana", "--role", "auditor", "--password-file", userPw)
	if out := mustRun("user", "list"); !strings.Contains(out, "ana") || !strings.Contains(out, "auditor") {
		t.Fatal(out)
	}
	// Two wrong passwords lock ana (lockout_after: 2); the CLI shows it and an admin unlocks.
	for i := range 2 {
		b, _ := json.Marshal(map[string]string{"username": "ana", "password": "guess-pw-" + strconv.Itoa(i)})
		r, err := http.Post("http://"+s.addr+"/api/v1/auth/token", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}
	if out := mustRun("user", "list"); !strings.Contains(out, "LOCKED (slate user unlock ana)") {
		t.Fatalf("user list must show the lock:\n%s", out)
	}
	if out := mustRun("user", "unlock", "ana"); !strings.Contains(out, "Unlocked ana") {
		t.Fatal(out)
	}
	apiToken(t, s.addr, "ana", "auditor-pw-1")
	// When no admin can log in, root on the appliance unlocks in the database directly.
	for i := range 2 {
		b, _ := json.Marshal(map[string]string{"username": "ana", "password": "guess-again-" + strconv.Itoa(i)})
		r, err := http.Post("http://"+s.addr+"/api/v1/auth/token", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
	}
	b, _ := json.Marshal(map[string]string{"username": "ana", "password": "auditor-pw-1"})
	if r, err := http.Post("http://"+s.addr+"/api/v1/auth/token", "application/json", bytes.NewReader(b)); err != nil || r.StatusCode != http.StatusForbidden {
		t.Fatalf("ana must be locked again: %v %v", err, r)
	} else {
		r.Body.Close()
	}
	if out := mustRun("user", "unlock", "ana", "--data-dir", dir); !strings.Contains(out, "Unlocked ana") {
		t.Fatal(out)
	}
	apiToken(t, s.addr, "ana", "auditor-pw-1")
	out = mustRun("audit", "list")
	for _, want := range []string{"machine.enroll", "machine.transition", "user.create", "refused", "boot.expected"} {
		if !strings.Contains(out, want) {
			t.Fatalf("audit list lacks %s:\n%s", want, out)
		}
	}
	if out := mustRun("audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatal(out)
	}
	if out, err := run(t, env, "--help"); err != nil || !strings.Contains(out, "machine") || !strings.Contains(out, "serve") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	if out, _ := run(t, env, "machine", "enroll", "--help"); !strings.Contains(out, "--bmc-address") {
		t.Fatalf("machine enroll --help:\n%s", out)
	}

	// Tamper with the database as someone with file access would, then verify offline.
	s.cmd.Process.Kill()
	s.cmd.Wait()
	db, err := sql.Open("sqlite", filepath.Join(dir, "slate.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER audit_no_update`, `UPDATE audit_events SET actor = 'nobody' WHERE action = 'machine.enroll'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var seq int
	db.QueryRow(`SELECT seq FROM audit_events WHERE action = 'machine.enroll'`).Scan(&seq)
	db.Close()
	out, err = run(t, env, "audit", "verify", "--data-dir", dir)
	if err == nil || !strings.Contains(out, fmt.Sprintf("BROKEN at event %d", seq)) || !strings.Contains(out, "edited") {
		t.Fatalf("slate audit verify must fail naming event %d: %v\n%s", seq, err, out)
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "slate.yaml")
	cases := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"unknown key", "listen: \":0\"\nlistenn: x\n", nil, "line 2: key listenn is not a configuration key"},
		{"bad value", "listen: \":0\"\ntoken_ttl: soon\n", nil, "line 2"},
		{"invalid value", "listen: \":0\"\nlog_format: xml\n", nil, "line 2: configuration key log_format"},
		{"bad listen", "listen: nowhere\n", nil, "line 1: configuration key listen"},
		{"empty auto-enroll rule", "listen: \":0\"\nauto_enroll:\n  - vendor: \"\"\n", nil, "auto_enroll[0]"},
		{"unknown auto-enroll field", "listen: \":0\"\nauto_enroll:\n  - vendr: Dell\n", nil, "vendr"},
		{"boot timeout too short", "listen: \":0\"\nboot_timeout: 5s\n", nil, "boot_timeout"},
		{"unknown env", "", []string{"SLATE_LISTN=:1"}, "SLATE_LISTN is not a Slate setting"},
		{"bad env value", "", []string{"SLATE_LOG_LEVEL=loud"}, "log_level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.WriteFile(cfg, []byte(c.yaml), 0o644)
			out, err := run(t, append(c.env, "SLATE_DATA_DIR="+filepath.Join(dir, "data")), "serve", "--config", cfg)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("want failure mentioning %q, got %v:\n%s", c.want, err, out)
			}
		})
	}
}

// TestWatchFollowsLive: `slate machine watch` prints a change made by someone else as it
// happens and stops at the state asked for.
func TestWatchFollowsLive(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, "SLATE_ADMIN_PASSWORD=watch-pw-0001")
	tok := apiToken(t, s.addr, "admin", "watch-pw-0001")
	env := []string{"SLATE_TOKEN=" + tok, "SLATE_SERVER=http://" + s.addr, "XDG_CONFIG_HOME=" + t.TempDir()}
	if out, err := run(t, env, "machine", "enroll", "--name", "w1", "--mac", "52:54:00:77:00:01"); err != nil {
		t.Fatal(out)
	}
	cmd := exec.Command(slate(t), "machine", "watch", "w1", "--until", "inspecting", "--timeout", "30s")
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if o, err := run(t, env, "machine", "transition", "w1", "inspecting", "--reason", "watch test"); err != nil {
		t.Fatal(o)
	}
	start := time.Now()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watch: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "w1 → enrolled") || !strings.Contains(out.String(), "w1 → inspecting") {
		t.Fatalf("watch output:\n%s", out.String())
	}
	if time.Since(start) > 4*time.Second {
		t.Fatalf("watch took %s to see the change: not live", time.Since(start))
	}
}
