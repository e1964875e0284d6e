package ui

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// Decommissioner confirms wipes and verifies certificates (the reconciler and the certifier).
type Decommissioner interface {
	ConfirmWipe(ctx context.Context, actor, machine, planDigest, typedName string, person wipe.Person) (inventory.Task, error)
	PublicKey() ed25519.PublicKey
	// DefaultPerson is the configured person (wipe.certificate_file) the form is prefilled with.
	DefaultPerson() wipe.Person
}

type planView struct {
	Plan     wipe.Plan
	Digest   string
	Runnable bool
	// Discrepancies are how the probed drives differ from inspection: the technician must
	// see them before confirming (a pre-approved policy does not confirm such a plan).
	Discrepancies []string
	// Person is who performs the sanitization, asked for beside the confirmation: what was
	// posted (a refused confirmation keeps it), else the configured defaults.
	Person wipe.Person
}

func (u *UI) planFor(ctx context.Context, m inventory.Machine, posted url.Values, user string) *planView {
	if m.State != lifecycle.Decommissioning {
		return nil
	}
	p, _, ok, err := lifecycle.WipePlan(ctx, u.d.Store, m.ID)
	if err != nil || !ok {
		return nil
	}
	pv := &planView{Plan: p, Digest: p.Digest(), Runnable: p.Runnable(), Discrepancies: p.AllDiscrepancies()}
	if _, ok := posted["person_name"]; ok {
		pv.Person = personFromForm(posted)
	} else if u.d.Decommission != nil {
		pv.Person = u.d.Decommission.DefaultPerson()
		if pv.Person.Name == "" {
			pv.Person.Name = user
		}
	}
	return pv
}

func personFromForm(f url.Values) wipe.Person {
	return wipe.Person{Name: f.Get("person_name"), Title: f.Get("person_title"), Organization: f.Get("person_organization"),
		Location: f.Get("person_location"), Phone: f.Get("person_phone")}.Trimmed()
}

// personField is the form field a refused person concerns (the first named).
func personField(p wipe.Person) string {
	var pe *wipe.PersonError
	if err := p.Check(); errors.As(err, &pe) && len(pe.Fields()) > 0 {
		return "person_" + strings.TrimPrefix(pe.Fields()[0], "person.")
	}
	return ""
}

// decommissionPost starts a decommission: the technician types the machine's name.
func (u *UI) decommissionPost(c echo.Context, s session) error {
	ctx := c.Request().Context()
	m, err := u.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return u.errorPage(c, s, http.StatusNotFound, "No such machine.")
	}
	back := "/machines/" + url.PathEscape(m.ID)
	if strings.TrimSpace(c.FormValue("confirm_name")) != m.Name {
		// Refused as the API refuses it (422), in red beside the name field: not a banner
		// that reads like success.
		return u.machineView(c, s, http.StatusUnprocessableEntity, &flash{Kind: "error",
			Text: "Not decommissioned: type the machine's name exactly (" + m.Name + ").", Field: "confirm_name"})
	}
	reason := strings.TrimSpace(c.FormValue("reason"))
	if reason == "" {
		reason = "decommissioned from the web UI"
	}
	if _, err := u.d.Lifecycle.Transition(ctx, m.ID, lifecycle.Decommissioning, s.user.Username, reason); err != nil {
		return u.machineView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: "Not decommissioned: " + errText(err), Field: "confirm_name"})
	}
	return c.Redirect(http.StatusSeeOther, withFlash(back, "decommission-started"))
}

// wipeConfirmPost is the audited confirmation of the plan shown on the page.
func (u *UI) wipeConfirmPost(c echo.Context, s session) error {
	if u.d.Decommission == nil {
		return u.errorPage(c, s, http.StatusServiceUnavailable, "Decommissioning is not configured.")
	}
	id := c.Param("id")
	// The form is prefilled from the configuration; what the technician leaves in it is what
	// the certificates print, so a field cleared on purpose is refused, not refilled.
	digest, typed := c.FormValue("plan_digest"), c.FormValue("confirm_name") // parses the form
	person := personFromForm(c.Request().PostForm)
	t, err := u.d.Decommission.ConfirmWipe(c.Request().Context(), s.user.Username, id, digest, typed, person)
	if err != nil {
		// A refusal answers with the page, in red beside the field it concerns: not a
		// redirect to a success banner.
		field := "wipe_confirm_name"
		if f := personField(person); f != "" && strings.Contains(errText(err), "person.") {
			field = f
		}
		refused := http.StatusConflict
		if errors.Is(err, inventory.ErrInvalid) {
			refused = http.StatusUnprocessableEntity // what was typed, not the machine's state
		}
		return u.machineView(c, s, statusFor(err, refused), &flash{Kind: "error", Text: "Wipe not started: " + errText(err), Field: field})
	}
	u.d.Logger.Info("ui: wipe confirmed", "machine", id, "task", t.ID, "by", s.user.Username)
	return c.Redirect(http.StatusSeeOther, withFlash("/machines/"+url.PathEscape(id), "wipe-confirmed"))
}

func (u *UI) certificates(c echo.Context, s session) error {
	certs, err := u.d.Store.ListCertificates(c.Request().Context(), c.QueryParam("machine"))
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, ct := range certs {
		if _, ok := names[ct.MachineID]; !ok {
			if m, err := u.d.Store.GetMachine(c.Request().Context(), ct.MachineID); err == nil {
				names[ct.MachineID] = m.Name
			}
		}
	}
	var keyID, fingerprint string
	if u.d.Decommission != nil {
		pub := u.d.Decommission.PublicKey()
		keyID, fingerprint = wipecert.KeyID(pub), wipecert.Fingerprint(pub)
	}
	return u.render(c, http.StatusOK, "certificates", struct {
		layoutData
		Certs []inventory.Certificate
		Names map[string]string
		// KeyID and Fingerprint identify the signing key whose PEM the page offers.
		KeyID, Fingerprint string
		Machine            string
	}{u.layout(c, s, "Certificates", "certificates"), certs, names, keyID, fingerprint, c.QueryParam("machine")})
}

// batchReport is the auditor's PDF of the selected certificates (machine, dates, checkboxes).
func (u *UI) batchReport(c echo.Context, s session) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	sel, err := wipecert.ParseSelection(q.Get("machine"), q.Get("from"), q.Get("to"), q["id"])
	if err != nil {
		return u.errorPage(c, s, http.StatusBadRequest, "No report made: "+err.Error())
	}
	if u.d.Decommission == nil {
		return u.errorPage(c, s, http.StatusServiceUnavailable, "No signing key configured.")
	}
	machineID := ""
	if sel.Machine != "" {
		m, err := u.d.Store.GetMachine(ctx, sel.Machine)
		if err != nil {
			return u.errorPage(c, s, http.StatusNotFound, "No report made: no machine "+sel.Machine+".")
		}
		machineID = m.ID
	}
	certs, err := u.d.Store.ListCertificates(ctx, machineID)
	if err != nil {
		return err
	}
	items := []wipecert.BatchItem{}
	for _, ct := range certs {
		if sel.Includes(ct.ID, ct.CreatedAt) {
			items = append(items, wipecert.BatchItem{ID: ct.ID, File: ct.File})
		}
	}
	if len(items) > wipecert.MaxBatch {
		return u.errorPage(c, s, http.StatusRequestEntityTooLarge, fmt.Sprintf("No report made: %d certificates match, one report holds at most %d. Narrow the date range or pick a machine.", len(items), wipecert.MaxBatch))
	}
	pdf, err := wipecert.BatchPDF(items, u.d.Decommission.PublicKey(), sel, time.Now())
	if err != nil {
		return u.errorPage(c, s, http.StatusConflict, "No report made: "+err.Error())
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="slate-certificates-report.pdf"`)
	return c.Blob(http.StatusOK, "application/pdf", pdf)
}

// certificateFile serves a certificate as its signed JSON file or, verified, as PDF.
func (u *UI) certificateFile(c echo.Context, s session) error {
	name := c.Param("file")
	switch name {
	case "report.pdf":
		return u.batchReport(c, s)
	case "public-key.pem":
		if u.d.Decommission == nil {
			return u.errorPage(c, s, http.StatusServiceUnavailable, "No signing key configured.")
		}
		c.Response().Header().Set("Content-Disposition", `attachment; filename="slate-public-key.pem"`)
		return c.Blob(http.StatusOK, "application/x-pem-file", wipecert.PublicKeyPEM(u.d.Decommission.PublicKey()))
	}
	id, ext, _ := strings.Cut(name, ".")
	cert, err := u.d.Store.GetCertificate(c.Request().Context(), id)
	if err != nil {
		return u.errorPage(c, s, http.StatusNotFound, "No such certificate.")
	}
	switch ext {
	case "json":
		c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.json"`, cert.ID))
		return c.Blob(http.StatusOK, "application/json", cert.File)
	case "pdf":
		if u.d.Decommission == nil {
			return u.errorPage(c, s, http.StatusServiceUnavailable, "No signing key configured.")
		}
		pdf, err := wipecert.CertificatePDF(cert.File, u.d.Decommission.PublicKey())
		if err != nil {
			return u.errorPage(c, s, http.StatusConflict, "This certificate does not verify: "+err.Error())
		}
		return c.Blob(http.StatusOK, "application/pdf", pdf)
	}
	return u.errorPage(c, s, http.StatusNotFound, "Ask for .json or .pdf.")
}

func (u *UI) reportFile(c echo.Context, s session) error {
	reps, err := u.d.Store.ListReports(c.Request().Context(), c.Param("id"))
	if err != nil || len(reps) == 0 || u.d.Decommission == nil {
		return u.errorPage(c, s, http.StatusNotFound, "No decommission report for this machine.")
	}
	pdf, err := wipecert.ReportPDF(reps[0].File, u.d.Decommission.PublicKey())
	if err != nil {
		return u.errorPage(c, s, http.StatusConflict, "The report does not verify: "+err.Error())
	}
	return c.Blob(http.StatusOK, "application/pdf", pdf)
}
