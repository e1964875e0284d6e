package vbmc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

const (
	root        = "/redfish/v1"
	sysPath     = root + "/Systems/1"
	biosPath    = sysPath + "/Bios"
	settingPath = biosPath + "/Settings"
	mgrPath     = root + "/Managers/1"
	cdPath      = mgrPath + "/VirtualMedia/CD1"
	chassisPath = root + "/Chassis/1"
	sessPath    = root + "/SessionService/Sessions"
	updPath     = root + "/UpdateService"
	pushPath    = updPath + "/upload"
	taskPath    = root + "/TaskService/Tasks"
	monitorPath = root + "/TaskService/TaskMonitors"
	msgPrefix   = "Base.1.8."
)

// maxBody bounds JSON request bodies: Redfish bodies are small.
const maxBody = 1 << 20

// maxSessions is the size of the session table.
const maxSessions = 64

// apiError is a Redfish error reply.
type apiError struct {
	status int
	id     string // message id within the Base registry
	msg    string
	args   []string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, id, format string, a ...any) *apiError {
	return &apiError{status: status, id: id, msg: fmt.Sprintf(format, a...)}
}

func odata(id string) map[string]any { return map[string]any{"@odata.id": id} }

// ServeHTTP serves the Redfish tree.
func (b *BMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Clients differ on trailing slashes (/redfish/v1/ is the canonical root): accept both.
	path := strings.TrimSuffix(r.URL.Path, "/")
	w.Header().Set("OData-Version", "4.0")
	if err := b.route(w, r, path); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = &apiError{status: http.StatusInternalServerError, id: "InternalError", msg: err.Error()}
		}
		if ae.status >= 500 {
			b.log.Error("vbmc: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			b.log.Info("vbmc: request refused", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", ae.msg)
		}
		writeError(w, ae)
	}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="slate-lab-bmc"`)
	}
	args := e.args
	if args == nil {
		args = []string{}
	}
	body := map[string]any{"error": map[string]any{
		"code":    msgPrefix + e.id,
		"message": e.msg,
		"@Message.ExtendedInfo": []any{map[string]any{
			"@odata.type": "#Message.v1_1_1.Message",
			"MessageId":   msgPrefix + e.id,
			"Message":     e.msg,
			"MessageArgs": args,
			"Severity":    "Critical",
			"Resolution":  "Correct the request and resubmit it.",
		}},
	}}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// etagOf is a strong ETag over the resource's JSON (without its own @odata.etag).
func etagOf(res map[string]any) string {
	delete(res, "@odata.etag")
	b, _ := json.Marshal(res)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// publicPaths answer without credentials, as on real BMCs: the service root (clients read it
// to find the session service) and session creation.
func public(r *http.Request, path string) bool {
	if r.Method == http.MethodGet && (path == "/redfish" || path == root || path == root+"/odata" || path == root+"/$metadata") {
		return true
	}
	return r.Method == http.MethodPost && path == sessPath
}

func (b *BMC) authenticate(r *http.Request) error {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		b.mu.Lock()
		_, ok := b.sessions[tok]
		b.mu.Unlock()
		if ok {
			return nil
		}
		return errf(http.StatusUnauthorized, "NoValidSession", "the X-Auth-Token is not a valid session: create one with POST %s", sessPath)
	}
	if u, p, ok := r.BasicAuth(); ok {
		if b.checkPassword(u, p) {
			return nil
		}
		return errf(http.StatusUnauthorized, "InsufficientPrivilege", "wrong user name or password")
	}
	return errf(http.StatusUnauthorized, "NoValidSession", "authentication required: Basic auth or an X-Auth-Token from %s", sessPath)
}

func (b *BMC) checkPassword(u, p string) bool {
	uok := subtle.ConstantTimeCompare([]byte(u), []byte(b.cfg.User)) == 1
	pok := subtle.ConstantTimeCompare([]byte(p), []byte(b.cfg.Password)) == 1
	return uok && pok
}

func (b *BMC) route(w http.ResponseWriter, r *http.Request, path string) error {
	if !public(r, path) {
		if err := b.authenticate(r); err != nil {
			return err
		}
	}
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if strings.HasPrefix(path, monitorPath+"/") {
			return b.getMonitor(w, strings.TrimPrefix(path, monitorPath+"/"))
		}
		res, ok := b.resource(ctx, path)
		if !ok {
			return errf(http.StatusNotFound, "ResourceMissingAtURI", "the resource at %s does not exist", path)
		}
		tag := etagOf(res)
		res["@odata.etag"] = tag
		w.Header().Set("ETag", tag)
		writeJSON(w, http.StatusOK, res)
		return nil
	case http.MethodPatch:
		if err := b.checkIfMatch(ctx, r, path); err != nil {
			return err
		}
		var body map[string]any
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		switch path {
		case sysPath:
			err := b.patchSystem(body)
			if err != nil {
				return err
			}
		case settingPath:
			if err := b.patchBios(body); err != nil {
				return err
			}
		case biosPath:
			return errf(http.StatusMethodNotAllowed, "ActionNotSupported", "the current BIOS settings are read-only: PATCH %s, they apply at the next reset", settingPath)
		default:
			return b.notAllowed(ctx, path, r.Method)
		}
		res, _ := b.resource(ctx, path)
		tag := etagOf(res)
		res["@odata.etag"] = tag
		w.Header().Set("ETag", tag)
		writeJSON(w, http.StatusOK, res)
		return nil
	case http.MethodPost:
		switch path {
		case sessPath:
			return b.createSession(w, r)
		case pushPath:
			return b.multipartPush(w, r)
		}
		if err := b.checkIfMatch(ctx, r, path); err != nil {
			return err
		}
		return b.action(w, r, path)
	case http.MethodDelete:
		if strings.HasPrefix(path, sessPath+"/") {
			id := strings.TrimPrefix(path, sessPath+"/")
			b.mu.Lock()
			defer b.mu.Unlock()
			for tok, s := range b.sessions {
				if s.ID == id {
					delete(b.sessions, tok)
					w.WriteHeader(http.StatusNoContent)
					return nil
				}
			}
			return errf(http.StatusNotFound, "ResourceMissingAtURI", "session %s does not exist", id)
		}
		return b.notAllowed(ctx, path, r.Method)
	}
	return b.notAllowed(ctx, path, r.Method)
}

func (b *BMC) notAllowed(ctx context.Context, path, method string) error {
	if _, ok := b.resource(ctx, path); !ok && !strings.Contains(path, "/Actions/") {
		return errf(http.StatusNotFound, "ResourceMissingAtURI", "the resource at %s does not exist", path)
	}
	return errf(http.StatusMethodNotAllowed, "OperationNotAllowed", "%s is not allowed on %s", method, path)
}

// checkIfMatch honours If-Match. A tag matches the target's current ETag or its parent's:
// clients send the tag of the resource they last read, which for an action is the resource
// owning it and for a settings object (gofish) the resource carrying @Redfish.Settings.
func (b *BMC) checkIfMatch(ctx context.Context, r *http.Request, path string) error {
	im := r.Header.Get("If-Match")
	if im == "" || im == "*" {
		return nil
	}
	var candidates []string
	for _, p := range []string{path, parentOf(path)} {
		if res, ok := b.resource(ctx, p); ok {
			candidates = append(candidates, etagOf(res))
		}
	}
	for _, tag := range strings.Split(im, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		for _, c := range candidates {
			if tag == c || `"`+tag+`"` == c {
				return nil
			}
		}
	}
	return errf(http.StatusPreconditionFailed, "PreconditionFailed", "If-Match %s does not match the current ETag of %s: read the resource again and retry", im, path)
}

func parentOf(path string) string {
	if i := strings.Index(path, "/Actions/"); i >= 0 {
		return path[:i]
	}
	if i := strings.LastIndex(path, "/"); i > 0 {
		return path[:i]
	}
	return path
}

func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return errf(http.StatusBadRequest, "MalformedJSON", "cannot read the request body: %v", err)
	}
	if len(data) > maxBody {
		return errf(http.StatusRequestEntityTooLarge, "GeneralError", "the request body is larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errf(http.StatusBadRequest, "MalformedJSON", "the request body is not valid JSON: %v", err)
	}
	return nil
}

func str(body map[string]any, key string) (string, bool, error) {
	v, ok := body[key]
	if !ok {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		e := errf(http.StatusBadRequest, "PropertyValueTypeError", "the value %v for %s is not a string", v, key)
		e.args = []string{fmt.Sprint(v), key}
		return "", true, e
	}
	return s, true, nil
}

func notInList(key, val string, allowed []string) *apiError {
	e := errf(http.StatusBadRequest, "PropertyValueNotInList", "the value %q for %s is not one of %s", val, key, strings.Join(allowed, ", "))
	e.args = []string{val, key}
	return e
}

func (b *BMC) patchSystem(body map[string]any) error {
	for k := range body {
		if k != "Boot" && !strings.HasPrefix(k, "@") {
			e := errf(http.StatusBadRequest, "PropertyNotWritable", "the property %s cannot be changed here (writable: Boot)", k)
			e.args = []string{k}
			return e
		}
	}
	raw, ok := body["Boot"]
	if !ok {
		return nil
	}
	boot, ok := raw.(map[string]any)
	if !ok {
		return errf(http.StatusBadRequest, "PropertyValueTypeError", "Boot must be an object")
	}
	var enabled, target, mode string
	var haveEnabled, haveTarget, haveMode bool
	for k := range boot {
		var err error
		switch k {
		case "BootSourceOverrideEnabled":
			enabled, haveEnabled, err = str(boot, k)
			if err == nil && !contains(overrideModes(), enabled) {
				err = notInList(k, enabled, overrideModes())
			}
		case "BootSourceOverrideTarget":
			target, haveTarget, err = str(boot, k)
			if err == nil && !contains(bootTargets(), target) {
				err = notInList(k, target, bootTargets())
			}
		case "BootSourceOverrideMode":
			mode, haveMode, err = str(boot, k)
			if err == nil && mode != "UEFI" && mode != "Legacy" {
				err = notInList(k, mode, []string{"UEFI", "Legacy"})
			}
		default:
			e := errf(http.StatusBadRequest, "PropertyUnknown", "Boot.%s is not a writable boot property", k)
			e.args = []string{k}
			err = e
		}
		if err != nil {
			return err
		}
	}
	return b.update(func(s *State) {
		if haveTarget {
			s.BootTarget = target
			// Like most BMCs: naming a target without saying for how long means once.
			if !haveEnabled && s.BootEnabled == OverrideDisabled && target != TargetNone {
				s.BootEnabled = OverrideOnce
			}
		}
		if haveEnabled {
			s.BootEnabled = enabled
		}
		if s.BootEnabled == OverrideDisabled && haveEnabled {
			s.BootTarget = TargetNone
		}
		if haveMode {
			want := map[string]string{"UEFI": "Uefi", "Legacy": "LegacyBios"}[mode]
			if s.Bios["BootMode"] != want || s.BiosPending["BootMode"] != "" {
				if s.BiosPending == nil {
					s.BiosPending = map[string]string{}
				}
				s.BiosPending["BootMode"] = want
			}
		}
	})
}

func (b *BMC) patchBios(body map[string]any) error {
	raw, ok := body["Attributes"]
	if !ok {
		return errf(http.StatusBadRequest, "PropertyMissing", "the body needs Attributes: {\"Attributes\": {\"BootMode\": \"Uefi\"}}")
	}
	attrs, ok := raw.(map[string]any)
	if !ok {
		return errf(http.StatusBadRequest, "PropertyValueTypeError", "Attributes must be an object")
	}
	known := biosAttributes()
	changes := map[string]string{}
	for k := range attrs {
		allowed, ok := known[k]
		if !ok {
			e := errf(http.StatusBadRequest, "PropertyUnknown", "BIOS attribute %s does not exist (known: %s)", k, strings.Join(sortedKeys(known), ", "))
			e.args = []string{k}
			return e
		}
		v, _, err := str(attrs, k)
		if err != nil {
			return err
		}
		if !contains(allowed, v) {
			return notInList(k, v, allowed)
		}
		changes[k] = v
	}
	return b.update(func(s *State) {
		if s.BiosPending == nil {
			s.BiosPending = map[string]string{}
		}
		for k, v := range changes {
			s.BiosPending[k] = v
		}
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (b *BMC) createSession(w http.ResponseWriter, r *http.Request) error {
	var body map[string]any
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	user, _, err := str(body, "UserName")
	if err != nil {
		return err
	}
	pass, _, err := str(body, "Password")
	if err != nil {
		return err
	}
	if user == "" || pass == "" {
		return errf(http.StatusBadRequest, "PropertyMissing", "UserName and Password are required")
	}
	if !b.checkPassword(user, pass) {
		return errf(http.StatusUnauthorized, "InsufficientPrivilege", "wrong user name or password")
	}
	tok, err := b.randomToken()
	if err != nil {
		return err
	}
	b.mu.Lock()
	s := &session{ID: b.newID(), User: user, Token: tok, Created: b.cfg.Now(), seq: b.nextID}
	b.sessions[tok] = s
	// Clients that never log out (bmclib logs in per operation) must not grow the map without
	// bound: like a real BMC, the oldest session goes when the table is full.
	if len(b.sessions) > maxSessions {
		var oldest *session
		for _, x := range b.sessions {
			if oldest == nil || x.seq < oldest.seq {
				oldest = x
			}
		}
		delete(b.sessions, oldest.Token)
	}
	b.mu.Unlock()
	loc := sessPath + "/" + s.ID
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, sessionResource(s))
	return nil
}

func sessionResource(s *session) map[string]any {
	return map[string]any{
		"@odata.id":   sessPath + "/" + s.ID,
		"@odata.type": "#Session.v1_5_0.Session",
		"Id":          s.ID, "Name": "User Session", "UserName": s.User,
		"CreatedTime": s.Created.UTC().Format(time.RFC3339),
	}
}

func (b *BMC) action(w http.ResponseWriter, r *http.Request, path string) error {
	ctx := r.Context()
	var body map[string]any
	switch path {
	case sysPath + "/Actions/ComputerSystem.Reset":
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		kind, ok, err := str(body, "ResetType")
		if err != nil {
			return err
		}
		if !ok {
			e := errf(http.StatusBadRequest, "ActionParameterMissing", "ComputerSystem.Reset needs ResetType (one of %s)", strings.Join(resetTypes(), ", "))
			e.args = []string{"ComputerSystem.Reset", "ResetType"}
			return e
		}
		if !contains(resetTypes(), kind) {
			e := errf(http.StatusBadRequest, "ActionParameterValueNotInList", "ResetType %q is not one of %s", kind, strings.Join(resetTypes(), ", "))
			e.args = []string{kind, "ResetType", "ComputerSystem.Reset"}
			return e
		}
		if err := b.reset(ctx, kind); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case biosPath + "/Actions/Bios.ResetBios":
		def := b.cfg.Default.Bios
		if err := b.update(func(s *State) { s.BiosPending = cloneMap(def) }); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	case cdPath + "/Actions/VirtualMedia.InsertMedia":
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		return b.insertMedia(w, ctx, body)
	case cdPath + "/Actions/VirtualMedia.EjectMedia":
		return b.ejectMedia(w, ctx)
	case updPath + "/Actions/UpdateService.SimpleUpdate":
		if err := decodeBody(r, &body); err != nil {
			return err
		}
		return b.simpleUpdate(w, body)
	case mgrPath + "/Actions/Manager.Reset":
		w.WriteHeader(http.StatusNoContent) // the BMC "reboots" instantly; sessions survive.
		return nil
	}
	return b.notAllowed(ctx, path, r.Method)
}

func checkImageURI(key, uri string) (*url.URL, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e := errf(http.StatusBadRequest, "ActionParameterValueFormatError", "%s %q must be an http:// or https:// URL", key, uri)
		e.args = []string{uri, key}
		return nil, e
	}
	return u, nil
}

func (b *BMC) insertMedia(w http.ResponseWriter, ctx context.Context, body map[string]any) error {
	img, ok, err := str(body, "Image")
	if err != nil {
		return err
	}
	if !ok || img == "" {
		e := errf(http.StatusBadRequest, "ActionParameterMissing", "VirtualMedia.InsertMedia needs Image (an http:// URL of an ISO)")
		e.args = []string{"VirtualMedia.InsertMedia", "Image"}
		return e
	}
	if _, err := checkImageURI("Image", img); err != nil {
		return err
	}
	if v, ok := body["Inserted"]; ok {
		if bv, isBool := v.(bool); !isBool || !bv {
			return errf(http.StatusBadRequest, "ActionParameterValueError", "Inserted must be true for InsertMedia")
		}
	}
	if st := b.State(); st.Media.Inserted {
		return errf(http.StatusConflict, "ResourceInUse", "a medium (%s) is already inserted: eject it first", st.Media.Image)
	}
	path, err := b.fetchMedia(ctx, img)
	if err != nil {
		return errf(http.StatusBadRequest, "ActionParameterValueError", "cannot fetch Image: %v", err)
	}
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.powered(ctx) {
		if err := b.cfg.Machine.ChangeMedium(ctx, path); err != nil {
			return fmt.Errorf("insert medium into %s: %w", b.cfg.Name, err)
		}
	}
	if err := b.update(func(s *State) { s.Media = Media{Image: img, Path: path, Inserted: true, WriteProtected: true} }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *BMC) ejectMedia(w http.ResponseWriter, ctx context.Context) error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	st := b.State()
	if st.Media.Inserted && b.powered(ctx) {
		if err := b.cfg.Machine.ChangeMedium(ctx, ""); err != nil {
			return fmt.Errorf("eject medium from %s: %w", b.cfg.Name, err)
		}
	}
	if err := b.update(func(s *State) { s.Media = Media{} }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (b *BMC) simpleUpdate(w http.ResponseWriter, body map[string]any) error {
	uri, ok, err := str(body, "ImageURI")
	if err != nil {
		return err
	}
	if !ok || uri == "" {
		e := errf(http.StatusBadRequest, "ActionParameterMissing", "UpdateService.SimpleUpdate needs ImageURI")
		e.args = []string{"UpdateService.SimpleUpdate", "ImageURI"}
		return e
	}
	if p, ok, err := str(body, "TransferProtocol"); err != nil {
		return err
	} else if ok && p != "HTTP" && p != "HTTPS" {
		return notInList("TransferProtocol", p, []string{"HTTP", "HTTPS"})
	}
	if _, err := checkImageURI("ImageURI", uri); err != nil {
		return err
	}
	t := b.newTask("Firmware update from " + uri)
	go func() {
		// The request's context ends with the 202; the transfer goes on like on a real BMC.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		err := func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
			if err != nil {
				return err
			}
			resp, err := b.cfg.HTTPClient.Do(req)
			if err != nil {
				return fmt.Errorf("fetch %s: %w", uri, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("fetch %s: HTTP %s", uri, resp.Status)
			}
			_, err = b.stageFirmware(uri, resp.Body)
			return err
		}()
		if err != nil {
			b.log.Warn("vbmc: firmware update failed", "task", t.ID, "err", err)
		}
		b.finishTask(t, err, "The firmware image was staged; it is applied at the next reset.")
	}()
	b.acceptedTask(w, t)
	return nil
}

// multipartPush takes an image as multipart/form-data (parts UpdateParameters and UpdateFile).
func (b *BMC) multipartPush(w http.ResponseWriter, r *http.Request) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return errf(http.StatusUnsupportedMediaType, "GeneralError", "MultipartHttpPushUri takes multipart/form-data with parts UpdateParameters and UpdateFile")
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var staged *Firmware
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return errf(http.StatusBadRequest, "GeneralError", "malformed multipart body: %v", err)
		}
		switch part.FormName() {
		case "UpdateParameters":
			var p map[string]any
			data, err := io.ReadAll(io.LimitReader(part, maxBody))
			if err == nil {
				err = json.Unmarshal(data, &p)
			}
			if err != nil {
				return errf(http.StatusBadRequest, "MalformedJSON", "UpdateParameters is not valid JSON: %v", err)
			}
		case "UpdateFile":
			name := part.FileName()
			if name == "" {
				name = "upload"
			}
			staged, err = b.stageFirmware(name, part)
			if err != nil {
				return errf(http.StatusBadRequest, "GeneralError", "%v", err)
			}
		}
		part.Close()
	}
	if staged == nil {
		return errf(http.StatusBadRequest, "ActionParameterMissing", "the multipart body has no UpdateFile part")
	}
	t := b.newTask("Firmware update " + staged.Source)
	b.finishTask(t, nil, "The firmware image was staged; it is applied at the next reset (version "+staged.Version+").")
	b.acceptedTask(w, t)
	return nil
}

func (b *BMC) acceptedTask(w http.ResponseWriter, t *task) {
	w.Header().Set("Location", monitorPath+"/"+t.ID)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, b.taskResource(t))
}

func (b *BMC) getMonitor(w http.ResponseWriter, id string) error {
	b.mu.Lock()
	t, ok := b.tasks[id]
	b.mu.Unlock()
	if !ok {
		return errf(http.StatusNotFound, "ResourceMissingAtURI", "task monitor %s does not exist", id)
	}
	res := b.taskResource(t)
	if res["TaskState"] == "Running" {
		w.Header().Set("Location", monitorPath+"/"+id)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusAccepted, res)
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (b *BMC) taskResource(t *task) map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs := []any{}
	for _, m := range t.Messages {
		msgs = append(msgs, map[string]any{"MessageId": "Update.1.0.AwaitToActivate", "Message": m})
	}
	res := map[string]any{
		"@odata.id":       taskPath + "/" + t.ID,
		"@odata.type":     "#Task.v1_7_0.Task",
		"Id":              t.ID,
		"Name":            t.Name,
		"TaskState":       t.State,
		"TaskStatus":      t.Status,
		"PercentComplete": t.Percent,
		"StartTime":       t.Start.UTC().Format(time.RFC3339),
		"TaskMonitor":     monitorPath + "/" + t.ID,
		"Messages":        msgs,
	}
	if !t.End.IsZero() {
		res["EndTime"] = t.End.UTC().Format(time.RFC3339)
	}
	return res
}
