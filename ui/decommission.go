package ui

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// Decommissioner confirms wipes and verifies certificates (the reconciler and the certifier).
type Decommissioner interface {
	ConfirmWipe(ctx context.Context, actor, machine, planDigest, typedName string) (inventory.Task, error)
	PublicKey() ed25519.PublicKey
}

type planView struct {
	Plan     wipe.Plan
	Digest   string
	Runnable bool
	// Discrepancies are how the probed drives differ from inspection: the technician must
	// see them before confirming (a pre-approved policy does not confirm such a plan).
	Discrepancies []string
}

func (u *UI) planFor(ctx context.Context, m inventory.Machine) *planView {
	if m.State != lifecycle.Decommissioning {
		return nil
	}
	p, _, ok, err := lifecycle.WipePlan(ctx, u.d.Store, m.ID)
	if err != nil || !ok {
		return nil
	}
	return &planView{Plan: p, Digest: p.Digest(), Runnable: p.Runnable(), Discrepancies: p.AllDiscrepancies()}
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
	t, err := u.d.Decommission.ConfirmWipe(c.Request().Context(), s.user.Username, id, c.FormValue("plan_digest"), c.FormValue("confirm_name"))
	if err != nil {
		// A refusal answers with the page, in red beside the confirmation: not a redirect to
		// a success banner.
		return u.machineView(c, s, statusFor(err, http.StatusConflict), &flash{Kind: "error", Text: "Wipe not started: " + errText(err), Field: "wipe_confirm_name"})
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
	return u.render(c, http.StatusOK, "certificates", struct {
		layoutData
		Certs []inventory.Certificate
		Names map[string]string
	}{u.layout(c, s, "Certificates", "certificates"), certs, names})
}

// certificateFile serves a certificate as its signed JSON file or, verified, as PDF.
func (u *UI) certificateFile(c echo.Context, s session) error {
	name := c.Param("file")
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
