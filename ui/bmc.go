package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
	"slate/redfish"
)

// bmcView is the "Edit BMC" step that needs a confirmation: the BMC presents a certificate
// other than the pinned one, and pinning it needs the operator to say they checked it.
type bmcView struct {
	layoutData
	M       inventory.Machine
	Probe   lifecycle.BMCProbe
	Form    map[string]string
	Vendors []string
	// NewPassword: a new password was given in the first step; it is typed again here rather
	// than carried in the page.
	NewPassword bool
}

// bmcPost changes a machine's BMC from the machine page: Slate probes the BMC with the new
// settings first; a certificate other than the pinned one is shown beside it (old and new
// fingerprints) and pinned only once the operator confirms the new fingerprint.
func (u *UI) bmcPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	m, err := u.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return u.errorPage(c, s, http.StatusNotFound, "No such machine.")
	}
	back := "/machines/" + url.PathEscape(m.ID)
	form := map[string]string{}
	for _, k := range []string{"address", "username", "vendor_profile", "tls_fingerprint", "confirm"} {
		form[k] = strings.TrimSpace(c.FormValue(k))
	}
	ch := lifecycle.BMCChange{Address: form["address"], Username: form["username"], Password: c.FormValue("password"),
		VendorProfile: form["vendor_profile"]}
	p, err := u.d.Lifecycle.ProbeBMC(ctx, u.d.Secrets, m.ID, ch)
	if err != nil {
		return u.errorPage(c, s, bmcStatus(err), "BMC not changed: "+errText(err))
	}
	if p.Changed {
		confirmed := form["confirm"] != "" && form["tls_fingerprint"] != "" &&
			redfish.NormalizeFingerprint(form["tls_fingerprint"]) == p.Presented
		if !confirmed {
			// The certificate presented now is shown; the page confirmed (if any) was for another.
			ld := u.layout(c, s, "Re-pin the BMC certificate of "+m.Name, "machines")
			status := http.StatusOK
			if form["tls_fingerprint"] != "" && redfish.NormalizeFingerprint(form["tls_fingerprint"]) != p.Presented {
				status = http.StatusConflict
				ld.Flash = &flash{Kind: "error", Text: "Not re-pinned: the BMC now presents " + p.Presented + ", not the certificate you confirmed (" +
					form["tls_fingerprint"] + "). Check it on the BMC itself."}
			} else if c.FormValue("step") == "confirm" {
				status = http.StatusUnprocessableEntity
				ld.Flash = &flash{Kind: "error", Text: "Not re-pinned: tick the confirmation that you checked the new fingerprint on the BMC.", Field: "confirm"}
			}
			return u.render(c, status, "bmc", bmcView{layoutData: ld, M: m, Probe: p, Form: form, Vendors: u.d.Vendors, NewPassword: ch.Password != ""})
		}
		ch.TLSFingerprint = p.Presented
	} else if unchanged(m.BMC, ch) {
		return c.Redirect(http.StatusSeeOther, withFlash(back, "bmc-unchanged"))
	}
	if _, err := u.d.Lifecycle.SetBMC(ctx, u.d.Secrets, s.user.Username, m.ID, ch); err != nil {
		return u.errorPage(c, s, bmcStatus(err), "BMC not changed: "+errText(err))
	}
	code := "bmc-changed"
	if p.Changed {
		code = "bmc-repinned"
	}
	if m.State == lifecycle.Failed {
		code += "-retry"
	}
	return c.Redirect(http.StatusSeeOther, withFlash(back, code))
}

// bmcStatus is the status of a refused BMC change: the operator's input (422), a certificate
// other than the confirmed one (409), the BMC (502), or the store.
func bmcStatus(err error) int {
	switch {
	case errors.Is(err, lifecycle.ErrFingerprintNotConfirmed):
		return http.StatusConflict
	case errors.Is(err, lifecycle.ErrBMCCredentials), errors.Is(err, inventory.ErrInvalid):
		return http.StatusUnprocessableEntity
	case errors.Is(err, lifecycle.ErrBMC):
		return http.StatusBadGateway
	}
	return statusFor(err, http.StatusConflict)
}

// powerWarning is what the machine page says about a power-on through the BMC that failed
// (the newest bmc.boot-once event), while the machine still waits in enrolled: in plain
// words first, Slate's detail behind it.
type powerWarning struct {
	Plain, Detail string
}

func powerOnWarning(m inventory.Machine, events []inventory.AuditEvent) *powerWarning {
	if m.State != lifecycle.Enrolled {
		return nil
	}
	for _, e := range events { // newest first
		if e.Action != "bmc.boot-once" {
			continue
		}
		if e.Outcome != "failed" {
			return nil
		}
		detail, _ := e.Details["error"].(string)
		return &powerWarning{Plain: plainBMCFailure(detail), Detail: detail}
	}
	return nil
}

// plainBMCFailure words a BMC failure for the technician: what happened and what to do.
func plainBMCFailure(detail string) string {
	d := strings.ToLower(detail)
	const then = " Then power it on (announce it first with the network-boot button below)."
	switch {
	case strings.Contains(d, "different certificate") || strings.Contains(d, "fingerprint changed"):
		return "Slate did not power this machine on: its BMC presents a different TLS certificate than the one pinned. " +
			"If the certificate was replaced on purpose (firmware update, reset), check the new fingerprint on the BMC and re-pin it with \"Check / re-pin certificate\" below." + then
	case strings.Contains(d, "refused the credentials") || strings.Contains(d, "http 401") || strings.Contains(d, "http 403"):
		return "Slate did not power this machine on: its BMC refused the user name or password. Correct them under Edit BMC below." + then
	case strings.Contains(d, "connection refused") || strings.Contains(d, "timeout") || strings.Contains(d, "no route") ||
		strings.Contains(d, "no such host") || strings.Contains(d, "unreachable"):
		return "Slate did not power this machine on: it could not reach the BMC. Check the BMC's network and address (Edit BMC below)." + then
	}
	return "Slate did not power this machine on: its BMC refused or failed the one-time network boot. See the detail, fix the cause at the BMC." + then
}

// unchanged says whether a change repeats the stored settings (the re-pin button, or the
// edit form saved as it was): nothing to store, nothing to audit.
func unchanged(cur *inventory.BMCInfo, ch lifecycle.BMCChange) bool {
	if cur == nil || ch.Password != "" {
		return false
	}
	same := func(v, stored string) bool { return v == "" || v == stored }
	return same(ch.Address, cur.Address) && same(ch.Username, cur.Username) &&
		(same(ch.VendorProfile, cur.VendorProfile) || ch.VendorProfile == "auto")
}
