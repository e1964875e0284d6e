// Package redfishtest is a Redfish service for tests: it serves a DMTF mockup tree and gives
// PATCH and POST the semantics a real BMC has (merge PATCH validated against
// @Redfish.AllowableValues, ETag/If-Match, sessions, resets that change PowerState and apply
// pending BIOS settings, tasks for firmware updates), plus vendor quirk modes and fault injection.
//
// It is a peer for the client in package redfish, not the lab's virtual BMC (that one drives
// QEMU and lives in lab/).
package redfishtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Vendor selects which BMC family the server imitates, ids and quirks included.
type Vendor string

const (
	Generic    Vendor = "generic"    // the mockup as DMTF published it
	Dell       Vendor = "dell"       // iDRAC: System.Embedded.1, iDRAC.Embedded.1, tasks vanish into jobs, On when on is 409
	HPE        Vendor = "hpe"        // iLO: ids "1", Boot PATCH accepts only Target+Enabled, iLO 4 rejects Inserted
	Supermicro Vendor = "supermicro" // ids "1", Boot PATCH without BootSourceOverrideMode resets it to Legacy, InsertMedia rejects Inserted/WriteProtected
	Lenovo     Vendor = "lenovo"     // XCC: ids "1", virtual media only by PATCH
)

// Options shape one server.
type Options struct {
	// Mockup is the mockup folder (e.g. MockupDir(t)+"/public-rackmount1").
	Mockup   string
	Vendor   Vendor
	Username string // default "admin"
	Password string // default "password"
	// NoSessionService removes SessionService: clients must use Basic auth.
	NoSessionService bool
	// MultipartPush advertises MultipartHttpPushUri on UpdateService.
	MultipartPush bool
	// UefiHTTP adds UefiHttp to the allowed boot targets and the HttpBootUri property.
	UefiHTTP bool
	// IgnoreGraceful makes GracefulShutdown a no-op, as with an OS that ignores ACPI.
	IgnoreGraceful bool
	// TaskPolls is how many GETs a task answers Running before it completes (default 2).
	TaskPolls int
	// TaskMonitor answers a task-starting POST with 202, no body, and Location naming a task
	// monitor (DSP0266) that answers 202 with the Task while it runs and 200 when it ended.
	TaskMonitor bool
	// BiosAllowable restricts BIOS attribute values, as an attribute registry would.
	BiosAllowable map[string][]any
	// BiosNoSettingsObject removes @Redfish.Settings from Bios: PATCH goes to Bios itself.
	BiosNoSettingsObject bool
	// BiosRefuse are attributes the firmware refuses at POST: staged, never applied, reported
	// in @Redfish.Settings Messages as SettingsFailed.
	BiosRefuse []string
	// PlainHTTP serves without TLS.
	PlainHTTP bool
	// TLSCert overrides the server certificate (to test a changed fingerprint).
	TLSCert *tls.Certificate
	// NoManagers removes every resource under /redfish/v1/Managers while the service root still
	// links the collection, as a Supermicro X12 capture does: GET /redfish/v1/Managers is 404.
	NoManagers bool
	// BootEcho is how a one-time override reads back: "" as set (Once, consumed by the next
	// boot); EchoContinuous reports and keeps it Continuous (sushy-tools, several BMCs) so every
	// later boot takes it until it is set Disabled; EchoCleared takes it but reports Disabled/None
	// at once (BMCs that clear the override as soon as the firmware picked it up).
	BootEcho string
	// PowerState, when set, is every system's power state at load time (e.g. "On" for a running
	// machine; the mockups mostly say On already).
	PowerState string
}

// BootEcho values.
const (
	EchoContinuous = "Continuous"
	EchoCleared    = "Cleared"
)

// FaultKind is what an injected fault does.
type FaultKind int

const (
	FaultStatus        FaultKind = iota // reply Status with a Redfish error body
	FaultMalformed                      // reply 200 with truncated JSON
	FaultHang                           // never reply (until the client gives up or the server closes)
	FaultOtherResource                  // reply 200 with a different resource's document
	FaultETagMismatch                   // reply 412 as if If-Match did not match
)

// Fault is injected into matching requests; Times 0 means every matching request.
type Fault struct {
	Method string // "" = any
	Path   string // prefix of the URL path; "" = any
	Kind   FaultKind
	Status int
	Times  int
	// Before runs before the fault is answered (e.g. another client changing state).
	Before func()
}

// Request is one request the server saw, for assertions.
type Request struct {
	Method, Path  string
	Header        http.Header
	Body          []byte
	ContentLength int64
	Chunked       bool
}

type task struct {
	id, uri   string
	polls     int
	state     string // Running, Completed, Exception
	message   string
	component string
	version   string
	jobURI    string // Dell: the job the task turns into
}

// Server is a running test Redfish service.
type Server struct {
	URL  string
	Addr string // host:port

	opts     Options
	ts       *httptest.Server
	systemID string
	mgrID    string
	sysURI   string
	mgrURI   string

	mu        sync.Mutex
	replaced  *tls.Certificate  // the certificate presented since ReplaceCertificate (nil: the first)
	hidden    map[string]string // system URI → override target taken but not shown (EchoCleared)
	res       map[string]map[string]any
	defaults  map[string]any // BIOS attributes at load time, for ResetBios
	pendingBD bool
	sessions  map[string]string // token -> session URI
	nextID    int
	tasks     map[string]*task
	faults    []*Fault
	reqs      []Request
	boots     []string
	images    *http.Client
}

// MockupDir locates ../shared/redfish-mockups beside the repository (CI keeps shared/ beside
// the clone) and fails the test clearly when it is absent.
func MockupDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("redfishtest: getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("redfishtest: no go.mod above the test's directory; cannot locate ../shared/redfish-mockups")
		}
		dir = parent
	}
	m := filepath.Join(dir, "..", "shared", "redfish-mockups")
	if _, err := os.Stat(filepath.Join(m, "public-rackmount1", "index.json")); err != nil {
		// a git worktree sits one level deeper (wt/<name>) than the clone it was made from
		if alt := filepath.Join(dir, "..", "..", "shared", "redfish-mockups"); fileExists(filepath.Join(alt, "public-rackmount1", "index.json")) {
			return alt
		}
		t.Fatalf("redfishtest: DMTF mockups not found at %s (expected shared/ beside the repository clone, as CI lays it out): %v", m, err)
	}
	return m
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Rackmount is the public-rackmount1 mockup folder.
func Rackmount(t testing.TB) string { return filepath.Join(MockupDir(t), "public-rackmount1") }

// Telemetry is the public-telemetry mockup folder.
func Telemetry(t testing.TB) string { return filepath.Join(MockupDir(t), "public-telemetry") }

// New loads the mockup, applies the vendor's shape and starts the server on loopback; it is
// closed when the test ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := start(opts)
	if err != nil {
		t.Fatalf("redfishtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func start(opts Options) (*Server, error) {
	if opts.Username == "" {
		opts.Username = "admin"
	}
	if opts.Password == "" {
		opts.Password = "password"
	}
	if opts.TaskPolls == 0 {
		opts.TaskPolls = 2
	}
	if opts.Vendor == "" {
		opts.Vendor = Generic
	}
	s := &Server{opts: opts, res: map[string]map[string]any{}, hidden: map[string]string{}, sessions: map[string]string{}, tasks: map[string]*task{}, nextID: 1000,
		images: &http.Client{Timeout: 10 * time.Second}}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.shape()
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if opts.PlainHTTP {
		s.ts.Start()
	} else {
		s.ts.TLS = &tls.Config{}
		if opts.TLSCert != nil {
			s.ts.TLS.Certificates = []tls.Certificate{*opts.TLSCert}
		}
		// consulted on every handshake, so ReplaceCertificate takes effect at the next connection
		s.ts.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.replaced == nil {
				return nil, nil
			}
			return &tls.Config{Certificates: []tls.Certificate{*s.replaced}}, nil
		}
		s.ts.StartTLS()
	}
	s.URL = s.ts.URL
	s.Addr = s.ts.Listener.Addr().String()
	return s, nil
}

// Close stops the server; hanging requests are released.
func (s *Server) Close() {
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// ReplaceCertificate makes the BMC present another certificate from the next connection on,
// as a BMC does after a firmware update or a reset to defaults; open connections are closed.
func (s *Server) ReplaceCertificate(c *tls.Certificate) {
	s.mu.Lock()
	s.replaced = c
	s.mu.Unlock()
	s.ts.CloseClientConnections()
}

// Certificate is the server's leaf certificate in DER form (nil for plain HTTP).
func (s *Server) Certificate() []byte {
	s.mu.Lock()
	r := s.replaced
	s.mu.Unlock()
	if r != nil {
		return r.Certificate[0]
	}
	if s.ts.TLS == nil || len(s.ts.TLS.Certificates) == 0 {
		return nil
	}
	return s.ts.TLS.Certificates[0].Certificate[0]
}

// Fingerprint is the SHA-256 of the leaf certificate, the way package redfish pins it.
func (s *Server) Fingerprint() string {
	sum := sha256.Sum256(s.Certificate())
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SystemURI and ManagerURI are the paths of the one system and manager.
func (s *Server) SystemURI() string  { return s.sysURI }
func (s *Server) ManagerURI() string { return s.mgrURI }

func key(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return strings.TrimRight(p, "/")
}

func (s *Server) load() error {
	root := s.opts.Mockup
	if _, err := os.Stat(filepath.Join(root, "index.json")); err != nil {
		return fmt.Errorf("mockup %s: %w", root, err)
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "index.json" {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		uri := "/redfish/v1"
		if rel != "." {
			uri += "/" + filepath.ToSlash(rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("mockup %s: %w", p, err)
		}
		s.res[key(uri)] = doc
		return nil
	})
}

// rename moves every resource under from to to and rewrites links, as a vendor's own ids.
func (s *Server) rename(from, to string) {
	if from == to {
		return
	}
	next := map[string]map[string]any{}
	for k, doc := range s.res {
		b, _ := json.Marshal(doc)
		b = bytes.ReplaceAll(b, []byte(`"`+from+`"`), []byte(`"`+to+`"`))
		b = bytes.ReplaceAll(b, []byte(`"`+from+`/`), []byte(`"`+to+`/`))
		var d map[string]any
		_ = json.Unmarshal(b, &d)
		nk := k
		if k == from || strings.HasPrefix(k, from+"/") {
			nk = to + strings.TrimPrefix(k, from)
		}
		next[nk] = d
	}
	s.res = next
}

func firstMember(doc map[string]any) string {
	m, _ := doc["Members"].([]any)
	if len(m) == 0 {
		return ""
	}
	o, _ := m[0].(map[string]any)
	id, _ := o["@odata.id"].(string)
	return key(id)
}

// shape turns the DMTF mockup into the chosen vendor's tree.
func (s *Server) shape() {
	s.sysURI = firstMember(s.res["/redfish/v1/Systems"])
	s.mgrURI = firstMember(s.res["/redfish/v1/Managers"])
	sysID, mgrID := path.Base(s.sysURI), path.Base(s.mgrURI)
	vendorName := ""
	switch s.opts.Vendor {
	case Dell:
		sysID, mgrID, vendorName = "System.Embedded.1", "iDRAC.Embedded.1", "Dell"
	case HPE:
		sysID, mgrID, vendorName = "1", "1", "HPE"
	case Supermicro:
		sysID, mgrID, vendorName = "1", "1", "Supermicro"
	case Lenovo:
		sysID, mgrID, vendorName = "1", "1", "Lenovo"
	}
	newSys, newMgr := "/redfish/v1/Systems/"+sysID, "/redfish/v1/Managers/"+mgrID
	s.rename(s.sysURI, newSys)
	s.rename(s.mgrURI, newMgr)
	s.sysURI, s.mgrURI, s.systemID, s.mgrID = newSys, newMgr, sysID, mgrID
	s.res[newSys]["Id"] = sysID
	s.res[newMgr]["Id"] = mgrID
	if vendorName != "" {
		s.res["/redfish/v1"]["Vendor"] = vendorName
	}
	sys := s.res[newSys]
	boot, _ := sys["Boot"].(map[string]any)
	if boot != nil {
		// a BMC reports the mode allowed values too; the mockup leaves them out
		boot["BootSourceOverrideMode@Redfish.AllowableValues"] = []any{"Legacy", "UEFI"}
		boot["BootSourceOverrideEnabled@Redfish.AllowableValues"] = []any{"Disabled", "Once", "Continuous"}
		if s.opts.UefiHTTP {
			allowed, _ := boot["BootSourceOverrideTarget@Redfish.AllowableValues"].([]any)
			if !contains(allowed, "UefiHttp") {
				boot["BootSourceOverrideTarget@Redfish.AllowableValues"] = append(allowed, "UefiHttp")
			}
			boot["HttpBootUri"] = nil
		}
	}
	if s.opts.NoSessionService {
		for k := range s.res {
			if strings.HasPrefix(k, "/redfish/v1/SessionService") {
				delete(s.res, k)
			}
		}
		delete(s.res["/redfish/v1"], "SessionService")
		delete(s.res["/redfish/v1"], "Links")
	}
	if us := s.res["/redfish/v1/UpdateService"]; us != nil && s.opts.MultipartPush {
		us["MultipartHttpPushUri"] = "/redfish/v1/UpdateService/update-multipart"
	}
	if bios := s.res[newSys+"/Bios"]; bios != nil {
		if attrs, ok := bios["Attributes"].(map[string]any); ok {
			s.defaults = clone(attrs).(map[string]any)
		}
		if st, ok := bios["@Redfish.Settings"].(map[string]any); ok && s.opts.Vendor == Dell {
			// iDRAC lists when staged settings may apply
			st["SupportedApplyTimes"] = []any{"Immediate", "OnReset", "AtMaintenanceWindowStart", "InMaintenanceWindowOnReset"}
		}
		if s.opts.BiosNoSettingsObject {
			delete(bios, "@Redfish.Settings")
			delete(s.res, newSys+"/Bios/Settings")
		}
	}
	if s.opts.PowerState != "" {
		for k, doc := range s.res {
			if isSystem(k, doc) {
				doc["PowerState"] = s.opts.PowerState
			}
		}
	}
	if s.opts.NoManagers {
		defer func() {
			for k := range s.res {
				if strings.HasPrefix(k, "/redfish/v1/Managers") {
					delete(s.res, k)
				}
			}
		}()
	}
	// Vendors whose virtual media hangs off the manager get a CD there, shaped like
	// public-telemetry's Managers/1/VirtualMedia/CD1.
	if s.opts.Vendor != Generic && s.res[newMgr+"/VirtualMedia"] == nil {
		coll := newMgr + "/VirtualMedia"
		cd := coll + "/CD1"
		s.res[coll] = map[string]any{"@odata.type": "#VirtualMediaCollection.VirtualMediaCollection", "@odata.id": coll, "Name": "Virtual Media",
			"Members": []any{map[string]any{"@odata.id": cd}}, "Members@odata.count": 1}
		doc := map[string]any{"@odata.type": "#VirtualMedia.v1_6_5.VirtualMedia", "@odata.id": cd, "Id": "CD1", "Name": "Virtual CD",
			"MediaTypes": []any{"CD", "DVD"}, "Image": nil, "ImageName": "", "Inserted": false, "WriteProtected": true, "ConnectedVia": "NotConnected"}
		if s.opts.Vendor != Lenovo {
			doc["Actions"] = map[string]any{
				"#VirtualMedia.InsertMedia": map[string]any{"target": cd + "/Actions/VirtualMedia.InsertMedia"},
				"#VirtualMedia.EjectMedia":  map[string]any{"target": cd + "/Actions/VirtualMedia.EjectMedia"},
			}
		}
		s.res[cd] = doc
		s.res[newMgr]["VirtualMedia"] = map[string]any{"@odata.id": coll}
	}
}

// isSystem says whether the resource at k is a ComputerSystem.
func isSystem(k string, doc map[string]any) bool {
	t, _ := doc["@odata.type"].(string)
	return strings.HasPrefix(k, "/redfish/v1/Systems/") && strings.Contains(t, "ComputerSystem.") && !strings.Contains(t, "Collection")
}

func clone(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func contains(list []any, v any) bool {
	for _, x := range list {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

func etagOf(doc map[string]any) string {
	b, _ := json.Marshal(doc)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// redfishError writes a Redfish error body, as DSP0266 describes.
func redfishError(w http.ResponseWriter, status int, id, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": "Base.1.8.GeneralError", "message": "A general error has occurred. See ExtendedInfo for more information.",
		"@Message.ExtendedInfo": []any{map[string]any{"MessageId": "Base.1.8." + id, "Message": msg, "Severity": "Critical"}},
	}})
}

func writeJSON(w http.ResponseWriter, status int, doc any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(doc)
}

// Inject adds a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Requests is what the server has seen so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Boots is the boot target consumed by each power-on (the override, or "" for the normal order).
func (s *Server) Boots() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.boots...)
}

// Get returns a copy of a resource's current document.
func (s *Server) Get(uri string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, _ := clone(s.res[key(uri)]).(map[string]any)
	return d
}

// Set replaces fields of a resource (test setup, no validation).
func (s *Server) Set(uri string, fields map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc := s.res[key(uri)]
	for k, v := range fields {
		doc[k] = v
	}
}

// ExpireSessions forgets every session token, as a BMC does after its session timeout.
func (s *Server) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, uri := range s.sessions {
		delete(s.res, uri)
		delete(s.sessions, tok)
	}
}

// Sessions is the number of live sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) fault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
				}
			}
			return f
		}
	}
	return nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		redfishError(w, http.StatusBadRequest, "GeneralError", "reading the body: "+err.Error())
		return
	}
	chunked := len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked"
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, ContentLength: r.ContentLength, Chunked: chunked})
	s.mu.Unlock()

	if f := s.fault(r); f != nil {
		if f.Before != nil {
			f.Before()
		}
		switch f.Kind {
		case FaultStatus:
			if f.Status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "0")
			}
			redfishError(w, f.Status, "GeneralError", fmt.Sprintf("injected %d", f.Status))
		case FaultMalformed:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"@odata.id": "` + r.URL.Path + `", "PowerState": "O`))
		case FaultHang:
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		case FaultOtherResource:
			writeJSON(w, http.StatusOK, s.Get("/redfish/v1/Managers/"+s.mgrID))
		case FaultETagMismatch:
			redfishError(w, http.StatusPreconditionFailed, "PreconditionFailed", "the ETag supplied did not match the ETag required to change this resource")
		}
		return
	}

	p := key(r.URL.Path)
	if p == "/redfish" && r.Method == http.MethodGet {
		writeJSON(w, 200, map[string]any{"v1": "/redfish/v1/"})
		return
	}
	if !(r.Method == http.MethodGet && p == "/redfish/v1") && !(r.Method == http.MethodPost && p == "/redfish/v1/SessionService/Sessions") && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Redfish"`)
		redfishError(w, http.StatusUnauthorized, "InsufficientPrivilege", "there are insufficient privileges for the account or credentials associated with the current session to perform the requested operation")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.get(w, p)
	case http.MethodPatch:
		s.patch(w, r, p, body)
	case http.MethodPost:
		s.post(w, r, p, body)
	case http.MethodDelete:
		s.delete(w, p)
	default:
		redfishError(w, http.StatusMethodNotAllowed, "OperationNotAllowed", r.Method+" is not allowed")
	}
}

func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		_, ok := s.sessions[tok]
		return ok
	}
	if u, p, ok := r.BasicAuth(); ok {
		return u == s.opts.Username && p == s.opts.Password
	}
	return false
}

func (s *Server) get(w http.ResponseWriter, p string) {
	s.mu.Lock()
	if id, ok := strings.CutPrefix(p, "/redfish/v1/TaskService/TaskMonitors/"); ok {
		t := s.tasks["/redfish/v1/TaskService/Tasks/"+id]
		if t == nil {
			s.mu.Unlock()
			redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "no task monitor "+p)
			return
		}
		doc, _ := s.pollTask(t)
		s.mu.Unlock()
		status := http.StatusOK
		if t.state == "Running" {
			status = http.StatusAccepted
		}
		writeJSON(w, status, doc)
		return
	}
	if t := s.taskByURI(p); t != nil {
		doc, gone := s.pollTask(t)
		s.mu.Unlock()
		if gone {
			redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "the task is gone: follow the job")
			return
		}
		writeJSON(w, http.StatusOK, doc)
		return
	}
	doc, ok := s.res[p]
	if !ok {
		s.mu.Unlock()
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "the resource at "+p+" was not found")
		return
	}
	tag := etagOf(doc)
	out := clone(doc)
	s.mu.Unlock()
	w.Header().Set("ETag", tag)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) delete(w http.ResponseWriter, p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.HasPrefix(p, "/redfish/v1/SessionService/Sessions/") {
		for tok, uri := range s.sessions {
			if uri == p {
				delete(s.sessions, tok)
				delete(s.res, p)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "no session at "+p)
		return
	}
	redfishError(w, http.StatusMethodNotAllowed, "OperationNotAllowed", "DELETE is not allowed on "+p)
}

// readOnly are properties no PATCH may set, whatever the resource.
var readOnly = map[string]bool{"Id": true, "Name": true, "PowerState": true, "Status": true, "Actions": true, "Links": true,
	"UUID": true, "SerialNumber": true, "Model": true, "Manufacturer": true, "Members": true}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, p string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	doc, ok := s.res[p]
	if !ok {
		redfishError(w, http.StatusNotFound, "ResourceMissingAtURI", "the resource at "+p+" was not found")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != etagOf(doc) {
		redfishError(w, http.StatusPreconditionFailed, "PreconditionFailed", "the ETag supplied did not match the ETag required to change this resource")
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "the request body submitted was malformed JSON and could not be parsed by the receiving service")
		return
	}
	isBios := p == s.sysURI+"/Bios"
	isSettings := p == s.sysURI+"/Bios/Settings"
	if isBios && doc["@Redfish.Settings"] != nil {
		redfishError(w, http.StatusMethodNotAllowed, "OperationNotAllowed", "Bios is read-only; PATCH its @Redfish.Settings object "+p+"/Settings")
		return
	}
	if p == s.sysURI {
		if code, msg := s.bootQuirk(req); code != 0 {
			redfishError(w, code, "PropertyNotWritable", msg)
			return
		}
	}
	if isBios || isSettings {
		if id, msg := s.validateBios(req); id != "" {
			redfishError(w, http.StatusBadRequest, id, msg)
			return
		}
	} else if id, msg := validate(doc, req, ""); id != "" {
		redfishError(w, http.StatusBadRequest, id, msg)
		return
	}
	if p == s.sysURI && s.opts.Vendor == Supermicro {
		if b, ok := req["Boot"].(map[string]any); ok {
			if _, has := b["BootSourceOverrideMode"]; !has {
				// the quirk: an override without the mode drops the system back to Legacy
				b["BootSourceOverrideMode"] = "Legacy"
			}
		}
	}
	delete(req, "@Redfish.SettingsApplyTime")
	merge(doc, req)
	if b, ok := doc["Boot"].(map[string]any); ok && isSystem(p, doc) {
		if rb, ok := req["Boot"].(map[string]any); ok && rb["BootSourceOverrideEnabled"] == "Once" {
			switch s.opts.BootEcho {
			case EchoContinuous:
				b["BootSourceOverrideEnabled"] = "Continuous"
			case EchoCleared:
				s.hidden[p], _ = b["BootSourceOverrideTarget"].(string)
				b["BootSourceOverrideEnabled"], b["BootSourceOverrideTarget"] = "Disabled", "None"
			}
		}
	}
	w.Header().Set("ETag", etagOf(doc))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) bootQuirk(req map[string]any) (int, string) {
	b, ok := req["Boot"].(map[string]any)
	if !ok || s.opts.Vendor != HPE {
		return 0, ""
	}
	for k := range b {
		if k != "BootSourceOverrideTarget" && k != "BootSourceOverrideEnabled" {
			return http.StatusBadRequest, "iLO: Boot property " + k + " is not writable with a boot override"
		}
	}
	return 0, ""
}

func (s *Server) validateBios(req map[string]any) (string, string) {
	for k := range req {
		if k != "Attributes" && k != "@Redfish.SettingsApplyTime" {
			return "PropertyUnknown", "the property " + k + " is not in the list of valid properties for the resource"
		}
	}
	attrs, ok := req["Attributes"].(map[string]any)
	if !ok {
		return "PropertyValueTypeError", "Attributes must be an object"
	}
	cur, _ := s.res[s.sysURI+"/Bios"]["Attributes"].(map[string]any)
	for k, v := range attrs {
		old, known := cur[k]
		if !known {
			return "PropertyUnknown", "the attribute " + k + " is not in the attribute registry"
		}
		if reflect.TypeOf(old) != reflect.TypeOf(v) {
			return "PropertyValueTypeError", fmt.Sprintf("the value %v for attribute %s is of a different type than the attribute can accept", v, k)
		}
		if allowed, ok := s.opts.BiosAllowable[k]; ok && !contains(allowed, v) {
			return "PropertyValueNotInList", fmt.Sprintf("the value %v for attribute %s is not in the list of acceptable values", v, k)
		}
	}
	return "", ""
}

// validate checks a PATCH body against a resource: known, writable properties, allowed values.
func validate(doc, req map[string]any, prefix string) (string, string) {
	for k, v := range req {
		if strings.Contains(k, "@") {
			return "PropertyNotWritable", "annotation " + prefix + k + " cannot be written"
		}
		cur, known := doc[k]
		if !known {
			return "PropertyUnknown", "the property " + prefix + k + " is not in the list of valid properties for the resource"
		}
		if readOnly[k] {
			return "PropertyNotWritable", "the property " + prefix + k + " is a read only property and cannot be assigned a value"
		}
		if sub, ok := v.(map[string]any); ok {
			cm, ok := cur.(map[string]any)
			if !ok {
				return "PropertyValueTypeError", "the property " + prefix + k + " is not an object"
			}
			if id, msg := validate(cm, sub, prefix+k+"/"); id != "" {
				return id, msg
			}
			continue
		}
		if allowed, ok := doc[k+"@Redfish.AllowableValues"].([]any); ok && !contains(allowed, v) {
			return "PropertyValueNotInList", fmt.Sprintf("the value %v for the property %s%s is not in the list of acceptable values", v, prefix, k)
		}
	}
	return "", ""
}

func merge(doc, req map[string]any) {
	for k, v := range req {
		if sub, ok := v.(map[string]any); ok {
			if cm, ok := doc[k].(map[string]any); ok {
				merge(cm, sub)
				continue
			}
		}
		doc[k] = v
	}
}

func (s *Server) actionTarget(doc map[string]any, name string) string {
	acts, _ := doc["Actions"].(map[string]any)
	a, _ := acts[name].(map[string]any)
	t, _ := a["target"].(string)
	return key(t)
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, p string, body []byte) {
	if p == "/redfish/v1/SessionService/Sessions" && s.res[p] != nil {
		s.login(w, body)
		return
	}
	s.mu.Lock()
	us := s.res["/redfish/v1/UpdateService"]
	mp, _ := us["MultipartHttpPushUri"].(string)
	s.mu.Unlock()
	if mp != "" && p == key(mp) {
		s.multipart(w, r, body)
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil || req == nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "the request body submitted was malformed JSON and could not be parsed by the receiving service")
		return
	}
	s.mu.Lock()
	sysURI := s.sysURI
	for k, doc := range s.res {
		if isSystem(k, doc) && p == s.actionTarget(doc, "#ComputerSystem.Reset") {
			sysURI = k
		}
	}
	sys := s.res[sysURI]
	switch {
	case p == s.actionTarget(sys, "#ComputerSystem.Reset"):
		if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != etagOf(sys) {
			s.mu.Unlock()
			redfishError(w, http.StatusPreconditionFailed, "PreconditionFailed", "the ETag supplied did not match")
			return
		}
		code, id, msg := s.reset(sysURI, sys, req)
		s.mu.Unlock()
		if code != 0 {
			redfishError(w, code, id, msg)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	case p == s.actionTarget(s.res[s.sysURI+"/Bios"], "#Bios.ResetBios"):
		s.pendingBD = true
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case p == s.actionTarget(us, "#UpdateService.SimpleUpdate"):
		s.mu.Unlock()
		uri, _ := req["ImageURI"].(string)
		if uri == "" {
			redfishError(w, http.StatusBadRequest, "ActionParameterMissing", "the action SimpleUpdate requires the parameter ImageURI to be present in the request body")
			return
		}
		s.startTask(w, func() ([]byte, error) { return s.fetchImage(uri) })
		return
	}
	for uri, doc := range s.res {
		if p == s.actionTarget(doc, "#VirtualMedia.InsertMedia") {
			code, id, msg := s.insertMedia(doc, req)
			s.mu.Unlock()
			if code != 0 {
				redfishError(w, code, id, msg)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if p == s.actionTarget(doc, "#VirtualMedia.EjectMedia") {
			doc["Inserted"], doc["Image"], doc["ImageName"], doc["ConnectedVia"] = false, nil, "", "NotConnected"
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		_ = uri
	}
	s.mu.Unlock()
	redfishError(w, http.StatusNotFound, "ActionNotSupported", "no action at "+p)
}

func (s *Server) login(w http.ResponseWriter, body []byte) {
	var req struct{ UserName, Password string }
	if err := json.Unmarshal(body, &req); err != nil {
		redfishError(w, http.StatusBadRequest, "MalformedJSON", "the request body submitted was malformed JSON")
		return
	}
	if req.UserName != s.opts.Username || req.Password != s.opts.Password {
		redfishError(w, http.StatusUnauthorized, "NoValidSession", "invalid user name or password")
		return
	}
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprintf("S%d", s.nextID)
	uri := "/redfish/v1/SessionService/Sessions/" + id
	var raw [16]byte
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d-%d", id, time.Now().UnixNano(), s.nextID)))
	copy(raw[:], sum[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	s.sessions[tok] = uri
	doc := map[string]any{"@odata.type": "#Session.v1_3_0.Session", "@odata.id": uri, "Id": id, "Name": "User Session", "UserName": req.UserName}
	s.res[uri] = doc
	s.mu.Unlock()
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", uri)
	writeJSON(w, http.StatusCreated, doc)
}

// reset is ComputerSystem.Reset: validates the type, changes PowerState, boots.
func (s *Server) reset(sysURI string, sys, req map[string]any) (int, string, string) {
	rt, _ := req["ResetType"].(string)
	acts, _ := sys["Actions"].(map[string]any)
	a, _ := acts["#ComputerSystem.Reset"].(map[string]any)
	if allowed, ok := a["ResetType@Redfish.AllowableValues"].([]any); ok && !contains(allowed, rt) {
		return http.StatusBadRequest, "ActionParameterValueNotInList", fmt.Sprintf("the value %q for the parameter ResetType is not in the list of acceptable values", rt)
	}
	on := sys["PowerState"] == "On"
	switch rt {
	case "On", "ForceOn":
		if on {
			if s.opts.Vendor == Dell {
				return http.StatusConflict, "ResourceInUse", "server is already powered ON"
			}
			return 0, "", ""
		}
		s.boot(sysURI, sys)
	case "ForceOff":
		sys["PowerState"] = "Off"
	case "GracefulShutdown":
		if !s.opts.IgnoreGraceful {
			sys["PowerState"] = "Off"
		}
	case "PushPowerButton":
		if on {
			sys["PowerState"] = "Off"
		} else {
			s.boot(sysURI, sys)
		}
	case "ForceRestart", "GracefulRestart", "PowerCycle":
		s.boot(sysURI, sys)
	case "Nmi":
	default:
		return http.StatusBadRequest, "ActionParameterValueNotInList", fmt.Sprintf("unknown ResetType %q", rt)
	}
	return 0, "", ""
}

// boot is a power-on: the one-time override is consumed and pending BIOS settings take.
func (s *Server) boot(sysURI string, sys map[string]any) {
	sys["PowerState"] = "On"
	target := ""
	if b, ok := sys["Boot"].(map[string]any); ok && b["BootSourceOverrideEnabled"] != "Disabled" {
		target, _ = b["BootSourceOverrideTarget"].(string)
		if b["BootSourceOverrideEnabled"] == "Once" {
			b["BootSourceOverrideEnabled"] = "Disabled"
			b["BootSourceOverrideTarget"] = "None"
		}
	}
	if t, ok := s.hidden[sysURI]; ok {
		target = t
		delete(s.hidden, sysURI)
	}
	s.boots = append(s.boots, target)
	if sysURI != s.sysURI {
		return // BIOS settings are modelled for the first system only
	}
	bios := s.res[s.sysURI+"/Bios"]
	if bios == nil {
		return
	}
	cur, _ := bios["Attributes"].(map[string]any)
	if s.pendingBD {
		for k, v := range s.defaults {
			cur[k] = v
		}
		s.pendingBD = false
	}
	if set := s.res[s.sysURI+"/Bios/Settings"]; set != nil {
		var failed []any
		if pend, ok := set["Attributes"].(map[string]any); ok {
			for k, v := range pend {
				if slices.Contains(s.opts.BiosRefuse, k) {
					if !reflect.DeepEqual(cur[k], v) {
						failed = append(failed, "/Attributes/"+k)
					}
					continue
				}
				cur[k] = v
			}
		}
		if st, ok := bios["@Redfish.Settings"].(map[string]any); ok {
			st["Messages"] = []any{map[string]any{"MessageId": "Base.1.8.Success"}}
			if len(failed) > 0 {
				st["Messages"] = []any{map[string]any{"MessageId": "Base.1.8.SettingsFailed", "RelatedProperties": failed}}
			}
		}
	}
}

func (s *Server) insertMedia(doc, req map[string]any) (int, string, string) {
	_, hasInserted := req["Inserted"]
	_, hasWP := req["WriteProtected"]
	switch {
	case s.opts.Vendor == HPE && hasInserted:
		return http.StatusBadRequest, "ActionParameterNotSupported", "iLO 4: the parameter Inserted is not supported by InsertMedia"
	case s.opts.Vendor == Supermicro && (hasInserted || hasWP):
		return http.StatusBadRequest, "ActionParameterNotSupported", "the parameters Inserted and WriteProtected are not supported by InsertMedia"
	}
	img, _ := req["Image"].(string)
	if img == "" {
		return http.StatusBadRequest, "ActionParameterMissing", "the action InsertMedia requires the parameter Image to be present in the request body"
	}
	if doc["Inserted"] == true {
		return http.StatusConflict, "ResourceInUse", "media is already inserted: eject it first"
	}
	doc["Image"], doc["Inserted"], doc["ImageName"], doc["ConnectedVia"] = img, true, path.Base(img), "URI"
	if wp, ok := req["WriteProtected"].(bool); ok {
		doc["WriteProtected"] = wp
	}
	return 0, "", ""
}

// Firmware images the server accepts are text: "SLATEFW component=<Id> version=<v>\n" then anything.
func parseImage(b []byte) (component, version string, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 3 || f[0] != "SLATEFW" {
		return "", "", errors.New("not a firmware image this BMC accepts")
	}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "component":
			component = v
		case "version":
			version = v
		}
	}
	if component == "" || version == "" {
		return "", "", errors.New("firmware image header lacks component or version")
	}
	return component, version, nil
}

func (s *Server) fetchImage(uri string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.images.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("fetching %s: HTTP %d", uri, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

func (s *Server) multipart(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.ContentLength < 0 {
		redfishError(w, http.StatusLengthRequired, "GeneralError", "Content-Length is required; chunked uploads are not accepted")
		return
	}
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		redfishError(w, http.StatusBadRequest, "GeneralError", "multipart/form-data with a boundary is required")
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var image []byte
	sawParams := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			redfishError(w, http.StatusBadRequest, "GeneralError", "bad multipart body: "+err.Error())
			return
		}
		b, _ := io.ReadAll(part)
		switch part.FormName() {
		case "UpdateParameters":
			var up map[string]any
			if json.Unmarshal(b, &up) != nil {
				redfishError(w, http.StatusBadRequest, "MalformedJSON", "UpdateParameters is not JSON")
				return
			}
			sawParams = true
		case "UpdateFile":
			image = b
		}
	}
	if !sawParams || image == nil {
		redfishError(w, http.StatusBadRequest, "ActionParameterMissing", "UpdateParameters and UpdateFile are required")
		return
	}
	s.startTask(w, func() ([]byte, error) { return image, nil })
}

func (s *Server) startTask(w http.ResponseWriter, get func() ([]byte, error)) {
	s.mu.Lock()
	s.nextID++
	id := fmt.Sprintf("%d", s.nextID)
	if s.opts.Vendor == Dell {
		id = "JID_" + id
	}
	t := &task{id: id, uri: "/redfish/v1/TaskService/Tasks/" + id, state: "Running"}
	if s.opts.Vendor == Dell {
		t.jobURI = s.mgrURI + "/Jobs/" + id
	}
	s.tasks[t.uri] = t
	s.mu.Unlock()
	// The BMC fetches (or has) the image; the task completes only after enough polls.
	img, err := get()
	s.mu.Lock()
	if err != nil {
		t.state, t.message = "Exception", "image transfer failed: "+err.Error()
	} else if c, v, err := parseImage(img); err != nil {
		t.state, t.message = "Exception", err.Error()
	} else if s.res["/redfish/v1/UpdateService/FirmwareInventory/"+c] == nil {
		t.state, t.message = "Exception", "no component "+c+" on this system"
	} else {
		t.component, t.version = c, v
	}
	doc := s.taskDoc(t)
	s.mu.Unlock()
	if s.opts.TaskMonitor {
		w.Header().Set("Location", "/redfish/v1/TaskService/TaskMonitors/"+t.id)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Location", t.uri)
	writeJSON(w, http.StatusAccepted, doc)
}

func (s *Server) taskByURI(p string) *task {
	if t := s.tasks[p]; t != nil {
		return t
	}
	for _, t := range s.tasks {
		if t.jobURI == p {
			return t
		}
	}
	return nil
}

func (s *Server) taskDoc(t *task) map[string]any {
	msgs := []any{}
	if t.message != "" {
		msgs = append(msgs, map[string]any{"MessageId": "Update.1.0.ApplyFailed", "Message": t.message, "Severity": "Critical"})
	}
	status := "OK"
	if t.state == "Exception" {
		status = "Critical"
	}
	return map[string]any{"@odata.type": "#Task.v1_7_4.Task", "@odata.id": t.uri, "Id": t.id, "Name": "Firmware update",
		"TaskState": t.state, "TaskStatus": status, "Messages": msgs, "PercentComplete": map[bool]int{true: 100, false: 50}[t.state != "Running"]}
}

// pollTask advances a task one step; for Dell the task vanishes after the first poll and only
// the job remains, as iDRAC does once its job queue takes over.
func (s *Server) pollTask(t *task) (map[string]any, bool) {
	asJob := t.jobURI != "" && t.polls >= 1
	t.polls++
	if t.state == "Running" && t.polls > s.opts.TaskPolls {
		t.state = "Completed"
		if fw := s.res["/redfish/v1/UpdateService/FirmwareInventory/"+t.component]; fw != nil {
			fw["Version"] = t.version
			if t.component == "BMC" {
				s.res[s.mgrURI]["FirmwareVersion"] = t.version
			}
		}
	}
	if t.jobURI == "" {
		return s.taskDoc(t), false
	}
	if s.tasks[t.uri] == t && asJob {
		// the Redfish task is gone; keep the job reachable by its own URI
		delete(s.tasks, t.uri)
		s.tasks[t.jobURI] = t
		return nil, true
	}
	if s.tasks[t.jobURI] == t {
		state := map[string]string{"Running": "Running", "Completed": "Completed", "Exception": "Failed"}[t.state]
		return map[string]any{"@odata.type": "#DellJob.v1_5_0.DellJob", "@odata.id": t.jobURI, "Id": t.id, "JobState": state,
			"Message": t.message, "PercentComplete": map[bool]int{true: 100, false: 50}[t.state != "Running"]}, false
	}
	return s.taskDoc(t), false
}

// Paths lists every resource path, sorted (for debugging tests).
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.res))
	for k := range s.res {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// NewCert makes a fresh self-signed certificate for 127.0.0.1, so a test can give a server a
// certificate other than httptest's built-in one (which every server shares).
func NewCert(t testing.TB) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("redfishtest: key: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "bmc.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("redfishtest: certificate: %v", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
