package pxe

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"slate/internal/clientaddr"
)

// HTTP serves the /boot/ tree: iPXE binaries (UEFI HTTP boot), the generic and per-machine
// iPXE scripts, the deploy environment and artifacts. Mount it at "/boot/" of a plain
// net/http server; it sees full paths ("/boot/auto.ipxe").
//
// Large files go out with sendfile: the ResponseWriter handed to ServeHTTP must implement
// io.ReaderFrom (net/http's own does). A wrapping middleware that hides it (echo's Response
// does) turns every download into read+write copies through user space; the handler logs
// that once. Mount it on the net/http mux in front of echo, not behind it.
type HTTP struct {
	cfg     Config
	log     *slog.Logger
	bins    *binarySet
	planner Planner
	tokens  TokenIssuer
	scripts *scripts
	now     func() time.Time

	sendfileWarned atomic.Bool

	isoMu sync.Mutex
	iso   isoIndex // where the deploy ISO's placeholder sits (see iso.go)
}

// NewHTTP builds the handler. planner gives the boot decision and tokens issues per-boot agent
// tokens; appliance adapts lifecycle and the inventory store to them.
func NewHTTP(cfg Config, planner Planner, tokens TokenIssuer, log *slog.Logger, opts ...Option) (*HTTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if planner == nil || tokens == nil {
		return nil, errors.New("pxe.NewHTTP: a Planner and a TokenIssuer are required (appliance wires lifecycle and the inventory store)")
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	bins, err := loadBinaries(o.ipxe)
	if err != nil {
		return nil, err
	}
	sc, err := parseScripts()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "httpboot")
	if len(bins.missing) > 0 {
		log.Warn("iPXE binaries missing from this build; they will be refused", "missing", bins.missing,
			"fix", "run `make assets` (Debian package ipxe) and rebuild")
	}
	return &HTTP{cfg: cfg, log: log, bins: bins, planner: planner, tokens: tokens, scripts: sc, now: o.now}, nil
}

// DeployEnvDir is where the deploy environment's vmlinuz and initrd.gz are read from.
func (c Config) DeployEnvDir() string {
	if c.DeployEnv != "" {
		return c.DeployEnv
	}
	return filepath.Join(c.DataDir, "deployenv")
}

// ArtifactsDir is the folder served under /boot/artifacts/.
func (c Config) ArtifactsDir() string { return filepath.Join(c.DataDir, "artifacts") }

// Deploy environment file names, as served and as expected in DeployEnvDir.
const (
	DeployKernel = "vmlinuz"
	DeployInitrd = "initrd.gz"
)

func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK}
	attrs := []any{}
	defer func() {
		lvl := slog.LevelInfo
		if lw.status >= 400 {
			lvl = slog.LevelWarn
		}
		h.log.Log(r.Context(), lvl, "http transfer", append([]any{"client", clientaddr.From(r), "method", r.Method,
			"path", r.URL.Path, "status", lw.status, "bytes", lw.n, "duration", h.now().Sub(start)}, attrs...)...)
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		lw.Header().Set("Allow", "GET, HEAD")
		httpError(lw, http.StatusMethodNotAllowed, "the boot tree is read-only: use GET or HEAD")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/boot/")
	if !ok {
		httpError(lw, http.StatusNotFound, "not under /boot/: mount this handler at /boot/")
		return
	}
	switch {
	case rest == "auto.ipxe":
		h.serveAuto(lw, r)
	case strings.HasPrefix(rest, "ipxe/"):
		h.serveBinary(lw, r, strings.TrimPrefix(rest, "ipxe/"))
	case strings.HasPrefix(rest, "machine/") && strings.HasSuffix(rest, ".ipxe"):
		attrs = h.serveMachine(lw, r, strings.TrimSuffix(strings.TrimPrefix(rest, "machine/"), ".ipxe"))
	case rest == "deploy/"+DeployISO:
		h.serveDeployISO(lw, r)
	case strings.HasPrefix(rest, "media-token/"):
		attrs = h.serveMediaToken(lw, r, strings.TrimPrefix(rest, "media-token/"))
	case rest == "deploy/"+DeployKernel || rest == "deploy/"+DeployInitrd:
		h.serveDeployFile(lw, r, strings.TrimPrefix(rest, "deploy/"))
	case strings.HasPrefix(rest, "artifacts/"):
		h.serveArtifact(lw, r, strings.TrimPrefix(rest, "artifacts/"))
	default:
		httpError(lw, http.StatusNotFound, "no such boot file: see /boot/auto.ipxe, /boot/ipxe/<binary>, /boot/machine/<mac>.ipxe, /boot/deploy/, /boot/media-token/<mac>, /boot/artifacts/")
	}
}

// base is the URL machines use to reach Slate: configured, or the Host this request came to.
func (h *HTTP) base(r *http.Request) (string, error) {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL, nil
	}
	b := "http://" + r.Host
	if r.Host == "" || !safeScriptValue(b) {
		return "", fmt.Errorf("cannot build Slate's URL from Host %q: set public_url in the configuration", r.Host)
	}
	return b, nil
}

func (h *HTTP) serveAuto(w http.ResponseWriter, r *http.Request) {
	base, err := h.base(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := render(h.scripts.auto, scriptData{Base: base})
	if err != nil {
		h.log.Error("render generic iPXE script", "err", err)
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeScript(w, b)
}

func (h *HTTP) serveBinary(w http.ResponseWriter, r *http.Request, name string) {
	b, known, err := h.bins.get(name)
	if !known {
		httpError(w, http.StatusNotFound, fmt.Sprintf("%s is not an iPXE binary Slate serves", quoteName(name)))
		return
	}
	if err != nil {
		httpError(w, http.StatusNotFound, err.Error())
		return
	}
	ct := "application/octet-stream"
	if strings.HasSuffix(b.name, ".efi") {
		ct = "application/efi"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("ETag", b.etag)
	http.ServeContent(w, r, b.name, time.Time{}, b.reader())
}

func (h *HTTP) serveMachine(w http.ResponseWriter, r *http.Request, macText string) []any {
	hw, err := net.ParseMAC(macText)
	if err != nil || len(hw) != 6 {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("%s is not a MAC address (want e.g. 52:54:00:12:34:56)", quoteName(macText)))
		return nil
	}
	mac := hw.String()
	attrs := []any{"mac", mac}
	base, err := h.base(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return attrs
	}
	ctx := r.Context()
	plan, err := h.planner.BootPlan(ctx, mac)
	switch {
	case errors.Is(err, ErrUnknownMachine):
		plan = Plan{State: "unknown", Action: ActionNone,
			Message: "Slate does not know the machine with MAC " + mac + ": enrol it, or turn discovery on"}
	case err != nil:
		h.log.Error("boot plan failed", "mac", mac, "err", err)
		httpError(w, http.StatusServiceUnavailable, "Slate could not decide what this machine boots; it will ask again")
		return attrs
	}
	attrs = append(attrs, "machine", plan.MachineID, "state", plan.State, "action", string(plan.Action))
	if plan.Task != "" {
		attrs = append(attrs, "task", plan.Task)
	}
	fw := normFirmware(r.URL.Query().Get("platform"))
	if fw == "" {
		fw = normFirmware(plan.Firmware)
	}
	d := scriptData{Base: base, MAC: mac, MachineID: plan.MachineID, State: plan.State, Action: plan.Action,
		Task: plan.Task, Firmware: fw, KernelArgs: h.cfg.KernelArgs, Message: consoleText(plan.Message)}
	if d.MachineID == "" {
		d.MachineID = "unknown"
	}
	tmpl := h.scripts.machine
	switch plan.Action {
	case ActionLocalDisk, ActionPowerOff, ActionNone:
	case ActionDeploy:
		if plan.MachineID == "" {
			h.log.Error("boot plan says deploy but names no machine", "mac", mac)
			httpError(w, http.StatusInternalServerError, "boot plan names no machine")
			return attrs
		}
		if msg := h.deployEnvMissing(); msg != "" {
			h.log.Error("deploy environment missing", "mac", mac, "machine", plan.MachineID, "fix", msg)
			tmpl, d.Message = h.scripts.noDeployEnv, consoleText(msg)
			break
		}
		if r.Method == http.MethodHead {
			// A HEAD boots nothing: answer without spending a token.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			return attrs
		}
		src, err := sourceAddr(r)
		if err != nil {
			h.log.Warn("script fetch with an unreadable source address; no token", "mac", mac, "machine", plan.MachineID, "remote", r.RemoteAddr)
			httpError(w, http.StatusBadRequest, "Slate cannot tell which address this request came from")
			return attrs
		}
		tok, err := h.tokens.IssueBootToken(ctx, plan.MachineID, mac, src, h.cfg.AgentTokenTTL)
		switch {
		case errors.Is(err, ErrNoBootExpected):
			h.log.Warn("deploy script fetched while no boot is expected: no agent token", "mac", mac, "machine", plan.MachineID, "remote", src.String())
			attrs = append(attrs, "token", "none: no boot expected")
			tmpl, d.Message = h.scripts.noToken, consoleText("Slate does not expect machine "+plan.MachineID+" to boot now, so it gets no agent token. "+
				"Power it on from Slate (its BMC), or announce the boot on its page (I will power this machine on) or with: slate machine expect-boot "+plan.MachineID+
				". This machine asks again in a minute.")
		case errors.Is(err, ErrSourceNotLeased):
			h.log.Warn("deploy script fetched from an address Slate did not lease to the MAC: no agent token", "mac", mac, "machine", plan.MachineID,
				"remote", src.String(), "err", err)
			attrs = append(attrs, "token", "none: source not leased")
			tmpl, d.Message = h.scripts.noToken, consoleText("Slate gives no agent token: this request came from "+src.String()+
				", not the address Slate leased to "+mac+". Let the machine take its address from Slate's DHCP, then boot again.")
		case err != nil:
			h.log.Error("issue agent token", "mac", mac, "machine", plan.MachineID, "err", err)
			httpError(w, http.StatusServiceUnavailable, "Slate could not issue this machine's agent token; it will ask again")
			return attrs
		}
		d.Token = tok
	default:
		h.log.Error("boot plan has an unknown action; nothing is booted", "mac", mac, "machine", plan.MachineID, "action", string(plan.Action))
		d.Action = ActionNone
		d.Message = consoleText(fmt.Sprintf("Slate has no boot action %q for this machine", plan.Action))
	}
	b, err := render(tmpl, d)
	if err != nil {
		h.log.Error("render machine iPXE script", "mac", mac, "machine", plan.MachineID, "err", err)
		httpError(w, http.StatusInternalServerError, "Slate could not write this machine's boot script: see its log")
		return attrs
	}
	writeScript(w, b)
	return attrs
}

// sourceAddr is the address a request came from (the TCP peer: boot clients talk to Slate
// directly, and a header could be forged).
func sourceAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// deployEnvMissing says what to do when the deploy environment is not on disk ("" when fine).
func (h *HTTP) deployEnvMissing() string {
	if h.cfg.DataDir == "" && h.cfg.DeployEnv == "" {
		return "Slate has no data_dir configured, so no deploy environment: set data_dir and run make deploy-env"
	}
	for _, n := range []string{DeployKernel, DeployInitrd} {
		st, err := os.Stat(filepath.Join(h.cfg.DeployEnvDir(), n))
		if err != nil || !st.Mode().IsRegular() {
			return fmt.Sprintf("the deploy environment is missing (%s not found in %s): run make deploy-env DEPLOYENV_INSTALL=%s on the Slate host", n, h.cfg.DeployEnvDir(), h.cfg.DeployEnvDir())
		}
	}
	return ""
}

func (h *HTTP) serveDeployFile(w http.ResponseWriter, r *http.Request, name string) {
	if msg := h.deployEnvMissing(); msg != "" {
		httpError(w, http.StatusNotFound, msg)
		return
	}
	h.serveFromDir(w, r, h.cfg.DeployEnvDir(), name)
}

func (h *HTTP) serveArtifact(w http.ResponseWriter, r *http.Request, name string) {
	clean, err := cleanName(name)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if h.cfg.DataDir == "" {
		httpError(w, http.StatusNotFound, "Slate has no data_dir configured, so no artifacts")
		return
	}
	h.serveFromDir(w, r, h.cfg.ArtifactsDir(), clean)
}

// serveFromDir streams dir/name. os.OpenInRoot refuses names (and symlinks) leading out of
// dir; http.ServeContent gives Range and conditional requests, and copying an *os.File to
// net/http's ResponseWriter goes through sendfile: nothing is read into memory.
func (h *HTTP) serveFromDir(w http.ResponseWriter, r *http.Request, dir, name string) {
	f, err := os.OpenInRoot(dir, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("%s not found", quoteName(name)))
		} else {
			h.log.Warn("open boot file", "dir", dir, "file", quoteName(name), "err", err)
			httpError(w, http.StatusNotFound, fmt.Sprintf("%s cannot be served", quoteName(name)))
		}
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, fmt.Sprintf("%s is not a file", quoteName(name)))
		return
	}
	if lw, ok := w.(*logWriter); ok && !lw.canSendfile() && h.sendfileWarned.CompareAndSwap(false, true) {
		h.log.Warn("the ResponseWriter hides io.ReaderFrom: downloads are copied through user space instead of sendfile; mount the /boot/ handler on a plain net/http mux")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano()))
	http.ServeContent(w, r, name, st.ModTime(), f)
}

func writeScript(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// Each fetch may carry a fresh per-boot token: never cache.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Write(b)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "Slate: "+msg, code)
}

// logWriter records the status and byte count for the transfer log line, and keeps the
// underlying writer's io.ReaderFrom (and so sendfile) reachable.
type logWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (l *logWriter) WriteHeader(code int) {
	if !l.wrote {
		l.status, l.wrote = code, true
	}
	l.ResponseWriter.WriteHeader(code)
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.wrote = true
	n, err := l.ResponseWriter.Write(b)
	l.n += int64(n)
	return n, err
}

func (l *logWriter) canSendfile() bool {
	_, ok := l.ResponseWriter.(io.ReaderFrom)
	return ok
}

// ReadFrom hands the copy to the underlying writer's ReadFrom: for net/http and an *os.File
// source that is sendfile(2).
func (l *logWriter) ReadFrom(src io.Reader) (int64, error) {
	l.wrote = true
	var n int64
	var err error
	if rf, ok := l.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{l.ResponseWriter}, src)
	}
	l.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (l *logWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }
