package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish"
)

type stateCount struct {
	State string
	N     int
}

type taskView struct {
	inventory.Task
	Percent int
	Logs    []inventory.TaskLogLine
}

type journeyStep struct{ State, Class, Label string }

// journey renders the happy path with the machine's position on it. A step before the
// current one is "done" only when the machine was in that state (its audit events say so:
// enrolled straight away, it never was discovered; without a BIOS profile it never was
// configuring); one it never was in is "skipped". ev is the machine's audit history, newest
// first; when it may be cut short (limit reached) the earliest steps are not judged.
func journey(m inventory.Machine, ev []inventory.AuditEvent, complete bool) []journeyStep {
	path := []string{lifecycle.Discovered, lifecycle.Enrolled, lifecycle.Inspecting, lifecycle.Ready, lifecycle.Configuring,
		lifecycle.Provisioning, lifecycle.Deployed}
	cur := m.State
	if cur == lifecycle.Failed {
		cur = m.FailedFrom
	}
	switch cur {
	case lifecycle.Decommissioning, lifecycle.Sanitized, lifecycle.Retired:
		path = []string{lifecycle.Deployed, lifecycle.Decommissioning, lifecycle.Sanitized, lifecycle.Retired}
	case lifecycle.Updating, lifecycle.RollingBack:
		path = append(path, cur)
	case lifecycle.Adopted:
		// it runs as it is: its way under management is inspection or an install
		path = []string{lifecycle.Adopted, lifecycle.Inspecting, lifecycle.Ready, lifecycle.Provisioning, lifecycle.Deployed}
	}
	visited := map[string]bool{}
	for _, e := range ev {
		if e.Outcome != "ok" {
			continue
		}
		switch e.Action {
		case "machine.discover":
			visited[lifecycle.Discovered] = true
		case "machine.enroll":
			visited[lifecycle.Enrolled] = true
		case "machine.transition", "machine.retry":
			for _, k := range []string{"from", "to"} {
				if st, ok := e.Details[k].(string); ok {
					visited[st] = true
				}
			}
		}
	}
	idx := -1
	for i, st := range path {
		if st == cur {
			idx = i
		}
	}
	out := make([]journeyStep, len(path))
	for i, st := range path {
		cls, label := "", st
		switch {
		case i < idx && (visited[st] || !complete):
			cls, label = "done", st+" (done)"
		case i < idx:
			cls, label = "skipped", st+" (skipped)"
		case i == idx:
			cls, label = "current", st+" (now)"
		}
		out[i] = journeyStep{st, cls, label}
	}
	return out
}

func (u *UI) machine(c echo.Context, s session) error {
	return u.machineView(c, s, http.StatusOK, nil)
}

// machineView renders the machine page; fl, when set, replaces the banner from the URL: a
// refused form answers with its page, the refusal in red beside the field it is about.
func (u *UI) machineView(c echo.Context, s session, status int, fl *flash) error {
	ctx := c.Request().Context()
	m, err := u.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return u.errorPage(c, s, http.StatusNotFound, fmt.Sprintf("No machine %q.", c.Param("id")))
	}
	const historyLimit = 200
	ev, err := u.d.Store.ListAudit(ctx, inventory.AuditFilter{Subject: m.ID, Limit: historyLimit})
	if err != nil {
		return err
	}
	var facts *factsView
	factsProblem := ""
	if u.d.Facts != nil {
		raw, err := u.d.Facts(ctx, m.ID)
		if err != nil {
			u.d.Logger.Warn("ui: read facts", "machine", m.ID, "err", err)
			factsProblem = "Hardware facts could not be read (see Slate's log); reload the page to try again."
		} else if facts, err = summarizeFacts(raw); err != nil {
			u.d.Logger.Warn("ui: facts document unreadable", "machine", m.ID, "err", err)
			factsProblem = "The stored hardware facts are not readable: inspect the machine again."
		}
	}
	tasks, err := u.d.Store.ListTasks(ctx, m.ID, 20)
	if err != nil {
		return err
	}
	var views []taskView
	for i, t := range tasks {
		v := taskView{Task: t, Percent: int(t.Progress * 100)}
		if i < 3 && !t.CreatedAt.IsZero() {
			if logs, err := u.d.Store.TaskLogs(ctx, t.ID, 0, 1000); err == nil {
				if len(logs) > 12 {
					logs = logs[len(logs)-12:]
				}
				v.Logs = logs
			}
		}
		views = append(views, v)
	}
	why := ""
	if u.d.Why != nil {
		why = u.d.Why(m.ID)
	}
	var next []string
	if m.State == lifecycle.Failed {
		next = []string{"retry", lifecycle.Enrolled}
	} else {
		next = lifecycle.Table()[m.State]
		sort.SliceStable(next, func(i, j int) bool { return next[j] == lifecycle.Failed })
	}
	// Decommissioning has its own form with a typed confirmation; sanitized is reached only
	// by a verified wipe.
	canDecom := false
	for i := 0; i < len(next); i++ {
		if next[i] == lifecycle.Sanitized {
			next = append(next[:i], next[i+1:]...)
			i--
			continue
		}
		if next[i] == lifecycle.Decommissioning {
			next = append(next[:i], next[i+1:]...)
			canDecom = true
			i--
		}
	}
	if m.State == lifecycle.Failed {
		canDecom = true
	}
	approved, _ := u.d.Store.ListReleases(ctx, lifecycle.ReleaseApproved)
	certs, _ := u.d.Store.ListCertificates(ctx, m.ID)
	reports, _ := u.d.Store.ListReports(ctx, m.ID)
	var bootExpected *inventory.BootExpectation
	if e, ok, err := u.d.Store.BootExpected(ctx, m.ID); err != nil {
		u.d.Logger.Warn("ui: read the boot expectation", "machine", m.ID, "err", err)
	} else if ok {
		bootExpected = &e
	}
	bootWindow := 0
	if u.d.Lifecycle != nil {
		bootWindow = int(u.d.Lifecycle.BootWindow().Minutes())
	}
	// What the virtual CD holds is read from the BMC only when asked (?media=1): a page view
	// must not open a BMC session each time.
	var media *lifecycle.MediaResult
	mediaErr := ""
	if c.QueryParam("media") == "1" && m.BMC != nil && u.d.Lifecycle != nil {
		if r, err := u.d.Lifecycle.MediaStatus(ctx, u.d.Secrets, u.d.Store, m.ID); err != nil {
			mediaErr = errText(err)
		} else {
			media = &r
		}
	}
	ld := u.layout(c, s, m.Name, "machines")
	if fl != nil {
		ld.Flash = fl
	}
	return u.render(c, status, "machine", struct {
		layoutData
		M       inventory.Machine
		Journey []journeyStep
		Events  []inventory.AuditEvent
		Facts   *factsView
		// FactsProblem says why facts exist but cannot be shown ("" when none).
		FactsProblem string
		Next         []string
		Tasks        []taskView
		Why          string
		CanDecom     bool
		Plan         *planView
		Certs        []inventory.Certificate
		Reports      []inventory.Report
		Approved     []inventory.Release
		// BootExpected is the live expectation of a network boot (nil: none); BootWindow is
		// how many minutes the "I will power it on" button expects one for.
		BootExpected *inventory.BootExpectation
		BootWindow   int
		// PowerWarning: the newest power-on through the BMC failed and the machine waits.
		PowerWarning *powerWarning
		Vendors      []string
		// Media is what the virtual CD holds (read on ?media=1), MediaErr why it could not be read.
		Media    *lifecycle.MediaResult
		MediaErr string
	}{ld, m, journey(m, ev, len(ev) < historyLimit), ev, facts, factsProblem, next, views, why, canDecom, u.planFor(ctx, m, c.Request().PostForm, s.user.Username), certs, reports, approved,
		bootExpected, bootWindow, powerOnWarning(m, ev), u.d.Vendors, media, mediaErr})
}

// mediaPost inserts the deploy ISO (and with boot=1 boots the machine once from it) or
// ejects the virtual CD, through the machine's BMC. A running machine is restarted only with
// the force box ticked: the refusal says so.
func (u *UI) mediaPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	m, err := u.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return u.errorPage(c, s, http.StatusNotFound, fmt.Sprintf("No machine %q.", c.Param("id")))
	}
	code := "media-ejected"
	switch c.Param("verb") {
	case "insert":
		req := lifecycle.MediaRequest{Image: lifecycle.DeployImage, Boot: c.FormValue("boot") == "1", Force: c.FormValue("force") == "1"}
		r, err := u.d.Lifecycle.InsertMedia(ctx, u.d.Secrets, u.d.Store, s.user.Username, m.ID, req)
		if err != nil {
			if r.Inserted {
				return u.errorPage(c, s, mediaStatusCode(err), "The deploy ISO is inserted, but the machine was not booted from it: "+errText(err))
			}
			return u.errorPage(c, s, mediaStatusCode(err), "Nothing inserted: "+errText(err))
		}
		code = "media-inserted"
		if r.Booted {
			code = "media-booted"
		}
	case "eject":
		if _, err := u.d.Lifecycle.EjectMedia(ctx, u.d.Secrets, u.d.Store, s.user.Username, m.ID); err != nil {
			return u.errorPage(c, s, mediaStatusCode(err), "Not ejected: "+errText(err))
		}
	default:
		return u.errorPage(c, s, http.StatusNotFound, "No such virtual media action: insert or eject.")
	}
	u.d.Logger.Info("ui: virtual media", "machine", m.ID, "action", c.Param("verb"), "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/machines/"+url.PathEscape(m.ID)+"?media=1", code))
}

// expectBootPost is a technician announcing a boot by hand: only an expected network boot
// gets an agent token.
func (u *UI) expectBootPost(c echo.Context, s session) error {
	id := c.Param("id")
	e, err := u.d.Lifecycle.ExpectBoot(c.Request().Context(), s.user.Username, id)
	if err != nil {
		return u.errorPage(c, s, statusFor(err, http.StatusConflict), "No boot expected: "+errText(err))
	}
	u.d.Logger.Info("ui: network boot expected", "machine", id, "until", e.ExpiresAt, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/machines/"+url.PathEscape(id), "boot-expected"))
}

func (u *UI) enrollForm(c echo.Context, s session, status int, form map[string]string, fl *flash) error {
	return u.enrollFormSystems(c, s, status, form, fl, nil)
}

// enrollFormSystems is the enroll form with the computer systems behind the BMC to choose
// from, when the BMC has several and the request did not single one out.
func (u *UI) enrollFormSystems(c echo.Context, s session, status int, form map[string]string, fl *flash, systems []redfish.SystemInfo) error {
	ld := u.layout(c, s, "Enroll", "enroll")
	ld.Flash = fl
	return u.render(c, status, "enroll", struct {
		layoutData
		Form    map[string]string
		Vendors []string
		Systems []redfish.SystemInfo
	}{ld, form, u.d.Vendors, systems})
}

func (u *UI) enrollPage(c echo.Context, s session) error {
	return u.enrollForm(c, s, http.StatusOK, map[string]string{"bmc_vendor": "auto"}, nil)
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == ';' })
}

func (u *UI) enrollPost(c echo.Context, s session) error {
	form := map[string]string{}
	for _, k := range []string{"name", "serial", "macs", "site", "segment", "labels", "bmc_address", "bmc_username", "bmc_vendor", "power_on", "force",
		"system_id", "all_systems", "adopt"} {
		form[k] = strings.TrimSpace(c.FormValue(k))
	}
	req := lifecycle.EnrollRequest{Name: form["name"], Serial: form["serial"], MACs: splitList(form["macs"]), Site: form["site"],
		Segment: form["segment"], BMCAddress: form["bmc_address"], BMCUsername: form["bmc_username"],
		BMCPassword: c.FormValue("bmc_password"), BMCVendor: form["bmc_vendor"], PowerOn: form["power_on"] != "", Force: form["force"] != "",
		SystemID: form["system_id"], Adopt: form["adopt"] != ""}
	if form["system_id"] == "all" {
		// the system choice's "every system" option
		req.SystemID, form["all_systems"] = "", "1"
	}
	req.AllSystems = form["all_systems"] != ""
	if l := splitList(form["labels"]); len(l) > 0 {
		req.Labels = map[string]string{}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			req.Labels[k] = v
		}
	}
	if req.AllSystems {
		_, err := u.d.Lifecycle.EnrollAll(c.Request().Context(), u.d.Secrets, s.user.Username, req)
		var pe *lifecycle.PowerOnsError
		if errors.As(err, &pe) {
			u.d.Logger.Warn("ui: systems enrolled, but some power-ons failed", "bmc", req.BMCAddress, "err", err)
			return c.Redirect(http.StatusSeeOther, withFlash("/machines", "systems-enrolled-power-on-failed"))
		}
		if err != nil {
			return u.enrollForm(c, s, statusFor(err, http.StatusUnprocessableEntity), form, &flash{Kind: "error", Text: "Not enrolled (none of the systems): " + errText(err)})
		}
		return c.Redirect(http.StatusSeeOther, withFlash("/machines", "systems-enrolled"))
	}
	m, err := u.d.Lifecycle.Enroll(c.Request().Context(), u.d.Secrets, s.user.Username, req)
	var sce *lifecycle.SystemChoiceError
	if errors.As(err, &sce) {
		return u.enrollFormSystems(c, s, http.StatusUnprocessableEntity, form, &flash{Kind: "error", Field: "system_id",
			Text: fmt.Sprintf("Not enrolled: the BMC has several computer systems (%s). Choose one below (or every system), type the BMC password again and enroll.", sce.Reason)}, sce.Systems)
	}
	var pe *lifecycle.PowerOnError
	if errors.As(err, &pe) {
		// Enrolled (committed); only the power-on failed: the machine page shows it.
		u.d.Logger.Warn("ui: enrolled, but power-on failed", "machine", m.ID, "err", err)
		code := "enrolled-power-on-failed"
		if errors.Is(err, lifecycle.ErrMachineRunning) {
			code = "enrolled-left-running"
		}
		return c.Redirect(http.StatusSeeOther, withFlash("/machines/"+url.PathEscape(m.ID), code))
	}
	if err != nil {
		fl := &flash{Kind: "error", Text: "Not enrolled: " + errText(err)}
		switch {
		case errors.Is(err, lifecycle.ErrBMCCredentials):
			fl.Field = "bmc_password"
		case errors.Is(err, lifecycle.ErrBMC):
			fl.Field = "bmc_address"
		}
		return u.enrollForm(c, s, statusFor(err, http.StatusUnprocessableEntity), form, fl)
	}
	if m.State == lifecycle.Adopted {
		return c.Redirect(http.StatusSeeOther, withFlash("/machines/"+url.PathEscape(m.ID), "machine-adopted"))
	}
	return c.Redirect(http.StatusSeeOther, withFlash("/machines/"+url.PathEscape(m.ID), "machine-enrolled"))
}

func (u *UI) transitionPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	id, to, reason := c.Param("id"), c.FormValue("to"), strings.TrimSpace(c.FormValue("reason"))
	back := "/machines/" + url.PathEscape(id)
	if reason == "" {
		return c.Redirect(http.StatusSeeOther, withFlash(back, "reason-required"))
	}
	var err error
	switch to {
	case "retry":
		_, err = u.d.Lifecycle.Retry(ctx, id, s.user.Username, reason)
	case lifecycle.Failed:
		_, err = u.d.Lifecycle.Fail(ctx, id, s.user.Username, reason, "")
	default:
		_, err = u.d.Lifecycle.Transition(ctx, id, to, s.user.Username, reason)
	}
	if err != nil {
		return u.machineView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: "Not moved: " + errText(err), Field: "to"})
	}
	return c.Redirect(http.StatusSeeOther, withFlash(back, "machine-moved"))
}

func (u *UI) audit(c echo.Context, s session) error {
	ctx := c.Request().Context()
	f := inventory.AuditFilter{Actor: c.QueryParam("actor"), Action: c.QueryParam("action"), Subject: c.QueryParam("subject"), Limit: 100}
	if b, err := strconv.ParseInt(c.QueryParam("before"), 10, 64); err == nil {
		f.Before = b
	}
	ev, err := u.d.Store.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	rep, err := u.d.Store.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	older := ""
	if len(ev) == f.Limit {
		q := c.Request().URL.Query()
		q.Set("before", strconv.FormatInt(ev[len(ev)-1].Seq, 10))
		older = "/audit?" + q.Encode()
	}
	return u.render(c, http.StatusOK, "audit", struct {
		layoutData
		Events   []inventory.AuditEvent
		Report   inventory.AuditReport
		Filter   inventory.AuditFilter
		OlderURL string
	}{u.layout(c, s, "Audit log", "audit"), ev, rep, f, older})
}

func (u *UI) usersView(c echo.Context, s session, status int, fl *flash) error {
	us, err := u.d.Store.ListUsers(c.Request().Context())
	if err != nil {
		return err
	}
	ld := u.layout(c, s, "Users", "users")
	if fl != nil {
		ld.Flash = fl
	}
	return u.render(c, status, "users", struct {
		layoutData
		Users       []inventory.User
		Self        string
		MinPassword int
	}{ld, us, s.user.Username, minPasswordLength})
}

func (u *UI) users(c echo.Context, s session) error { return u.usersView(c, s, http.StatusOK, nil) }

func (u *UI) usersPost(c echo.Context, s session) error {
	nu, err := u.d.Store.AddUser(c.Request().Context(), s.user.Username, c.FormValue("username"), c.FormValue("password"),
		c.FormValue("role"), strings.TrimSpace(c.FormValue("full_name")))
	if err != nil {
		return u.usersView(c, s, statusFor(err, http.StatusUnprocessableEntity), &flash{Kind: "error", Text: "Not added: " + errText(err)})
	}
	u.d.Logger.Info("ui: user added", "user", nu.Username, "role", nu.Role, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/users", "user-added"))
}

func (u *UI) unlockUser(c echo.Context, s session) error {
	name := c.Param("username")
	if err := u.d.Store.UnlockUser(c.Request().Context(), s.user.Username, name); err != nil {
		return u.usersView(c, s, statusFor(err, http.StatusUnprocessableEntity), &flash{Kind: "error", Text: "Not unlocked: " + errText(err)})
	}
	u.d.Guard.Unlocked(name)
	u.d.Logger.Info("ui: user unlocked", "user", name, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/users", "user-unlocked"))
}

// events streams machine changes as server-sent events.
func (u *UI) events(c echo.Context, s session) error {
	if u.d.Hub == nil {
		return echo.NewHTTPError(http.StatusNotFound, "live updates are off")
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	w.Flush()
	ch, cancel := u.d.Hub.Subscribe()
	defer cancel()
	tick := time.NewTicker(25 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-c.Request().Context().Done():
			return nil
		case id := <-ch:
			fmt.Fprintf(w, "event: machine\ndata: %s\n\n", id)
			w.Flush()
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
		}
	}
}

// identityPost corrects a machine's serial and system UUID (how a technician resolves an
// identity mismatch); only the values that changed are written, so an inspected value
// resubmitted unchanged does not become the operator's.
func (u *UI) identityPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	m, err := u.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return u.errorPage(c, s, http.StatusNotFound, "No such machine.")
	}
	back := "/machines/" + url.PathEscape(m.ID)
	var p inventory.MachinePatch
	if v := strings.TrimSpace(c.FormValue("serial")); v != m.Serial {
		p.Serial = &v
	}
	if v := strings.TrimSpace(c.FormValue("system_uuid")); v != m.SystemUUID {
		p.SystemUUID = &v
	}
	if p.Serial == nil && p.SystemUUID == nil {
		return c.Redirect(http.StatusSeeOther, withFlash(back, "identity-unchanged"))
	}
	if _, err := u.d.Lifecycle.Update(ctx, s.user.Username, m.ID, p); err != nil {
		return u.machineView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: "Identity not changed: " + errText(err), Field: "identity"})
	}
	return c.Redirect(http.StatusSeeOther, withFlash(back, "identity-corrected"))
}

// releaseSetPost sets the release a machine should run; the reconciler installs it.
func (u *UI) releaseSetPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	back := "/machines/" + url.PathEscape(id)
	rel, err := u.d.Store.GetRelease(ctx, c.FormValue("release"))
	if err != nil || rel.State != lifecycle.ReleaseApproved {
		return c.Redirect(http.StatusSeeOther, withFlash(back, "release-not-approved"))
	}
	ref := rel.Name + "@" + rel.Version
	if _, err := u.d.Lifecycle.Update(ctx, s.user.Username, id, inventory.MachinePatch{DesiredRelease: &ref}); err != nil {
		return u.machineView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: "Not set: " + errText(err), Field: "release"})
	}
	return c.Redirect(http.StatusSeeOther, withFlash(back, "release-set"))
}

// mediaStatusCode: a refusal Slate made (running machine, no BMC, no public_url) is 409; a BMC
// that failed is 502; a full disk keeps its own code.
func mediaStatusCode(err error) int {
	switch {
	case errors.Is(err, lifecycle.ErrBMC):
		return statusFor(err, http.StatusBadGateway)
	case errors.Is(err, lifecycle.ErrMachineRunning), errors.Is(err, lifecycle.ErrNoPublicURL), errors.Is(err, inventory.ErrConflict), errors.Is(err, inventory.ErrInvalid):
		return http.StatusConflict
	}
	return statusFor(err, http.StatusBadGateway)
}
