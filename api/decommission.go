package api

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"slate/inventory"
	"slate/lifecycle"
	"slate/wipe"
	wipecert "slate/wipe/cert"
)

// Decommissioner confirms wipes and holds the certificate key (the reconciler and the
// appliance's certifier).
type Decommissioner interface {
	ConfirmWipe(ctx context.Context, actor, machine, planDigest, typedName string, person wipe.Person) (inventory.Task, error)
	PublicKey() ed25519.PublicKey
	// DefaultPerson is the configured person (wipe.certificate_file) that fills the fields a
	// confirmation leaves empty.
	DefaultPerson() wipe.Person
}

var certReaders = []string{inventory.RoleAdmin, inventory.RoleOperator, inventory.RoleAuditor}

func (s *Server) decommissionRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/machines/:id/wipe-plan", Summary: "The wipe plan proposed for a machine in decommissioning (drives, method, verification, blocked drives)", Roles: all, handler: s.wipePlan},
		{Method: "POST", Path: "/machines/:id/wipe/confirm", Summary: "Confirm a wipe plan (by digest, typing the machine's name): starts the erasure", Roles: writers, Body: confirmRequest{}, handler: s.confirmWipe},
		{Method: "GET", Path: "/machines/:id/certificates", Summary: "Certificates of sanitization and decommission reports of a machine", Roles: certReaders, handler: s.machineCertificates},
		{Method: "GET", Path: "/machines/:id/report.pdf", Summary: "The machine's newest decommission report as PDF", Roles: certReaders, handler: s.reportPDF},
		{Method: "GET", Path: "/certificates", Summary: "All certificates of sanitization, newest first", Roles: certReaders, handler: s.listCertificates},
		{Method: "GET", Path: "/certificates/export", Summary: "Every certificate and report as signed files in one tar archive, with the public key", Roles: certReaders, handler: s.exportCertificates},
		{Method: "GET", Path: "/certificates/report.pdf", Summary: "Certificates selected by machine, date range (from, to: 2026-12-07 or RFC 3339; to inclusive) or id (repeat or comma-separated) as one PDF for the auditor: a summary table, then each verified certificate with its signature data", Roles: certReaders, handler: s.batchReportPDF},
		{Method: "GET", Path: "/certificates/public-key", Summary: "The appliance's Ed25519 public key (PEM) to verify certificates offline", Roles: certReaders, handler: s.publicKey},
		{Method: "GET", Path: "/certificates/:id", Summary: "One certificate as its signed file (verify with slate cert verify)", Roles: certReaders, handler: s.getCertificate},
		{Method: "GET", Path: "/certificates/:id/pdf", Summary: "One certificate rendered as PDF (after checking its signature)", Roles: certReaders, handler: s.certificatePDF},
	}
}

type confirmRequest struct {
	PlanDigest  string `json:"plan_digest"`
	MachineName string `json:"machine_name"`
	// Person performs the sanitization and is named on every certificate (NIST SP 800-88
	// Appendix G): name, title, organization and location are required, phone optional;
	// fields left out are taken from wipe.certificate_file.
	Person wipe.Person `json:"person"`
}

func (s *Server) wipePlan(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	plan, task, ok, err := lifecycle.WipePlan(ctx, s.d.Store, m.ID)
	if err != nil {
		return err
	}
	if !ok {
		return problem(http.StatusNotFound, "machine %s has no wipe plan yet (state %s): a plan is made when it is decommissioned and its drives are probed", m.Name, m.State)
	}
	// discrepancies: how the probed drives differ from inspection; a technician must look
	// before confirming, and a pre-approved policy does not confirm such a plan.
	return c.JSON(http.StatusOK, map[string]any{"plan": plan, "digest": plan.Digest(), "task": task.ID, "runnable": plan.Runnable(),
		"discrepancies": plan.AllDiscrepancies(), "auto_confirmable": plan.Runnable() && len(plan.AllDiscrepancies()) == 0})
}

func (s *Server) confirmWipe(c echo.Context) error {
	var req confirmRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	if s.d.Decommission == nil {
		return problem(http.StatusServiceUnavailable, "decommissioning is not configured")
	}
	person := req.Person.WithDefaults(s.d.Decommission.DefaultPerson())
	t, err := s.d.Decommission.ConfirmWipe(c.Request().Context(), actor(c), c.Param("id"), req.PlanDigest, req.MachineName, person)
	if err != nil {
		return err
	}
	if s.d.TaskQueued != nil {
		s.d.TaskQueued(t.MachineID)
	}
	return c.JSON(http.StatusCreated, t)
}

func (s *Server) machineCertificates(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	certs, err := s.d.Store.ListCertificates(ctx, m.ID)
	if err != nil {
		return err
	}
	reps, err := s.d.Store.ListReports(ctx, m.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"certificates": certs, "reports": reps})
}

func (s *Server) listCertificates(c echo.Context) error {
	certs, err := s.d.Store.ListCertificates(c.Request().Context(), c.QueryParam("machine"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": certs})
}

func (s *Server) getCertificate(c echo.Context) error {
	cert, err := s.d.Store.GetCertificate(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.json"`, cert.ID))
	return c.Blob(http.StatusOK, "application/json", cert.File)
}

func (s *Server) publicKey(c echo.Context) error {
	if s.d.Decommission == nil {
		return problem(http.StatusServiceUnavailable, "no signing key configured")
	}
	pub := s.d.Decommission.PublicKey()
	// The fingerprint travels with the key so a client can show what to compare.
	c.Response().Header().Set("X-Key-Fingerprint", "SHA256:"+wipecert.Fingerprint(pub))
	c.Response().Header().Set("X-Key-Id", wipecert.KeyID(pub))
	c.Response().Header().Set("Content-Disposition", `attachment; filename="slate-public-key.pem"`)
	return c.Blob(http.StatusOK, "application/x-pem-file", wipecert.PublicKeyPEM(pub))
}

// batchReportPDF is the auditor's report: the selected certificates, each verified, in one PDF.
func (s *Server) batchReportPDF(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	sel, err := wipecert.ParseSelection(q.Get("machine"), q.Get("from"), q.Get("to"), q["id"])
	if err != nil {
		return problem(http.StatusBadRequest, "%s", err.Error())
	}
	if s.d.Decommission == nil {
		return problem(http.StatusServiceUnavailable, "no signing key configured")
	}
	machineID := ""
	if sel.Machine != "" {
		m, err := s.d.Store.GetMachine(ctx, sel.Machine)
		if err != nil {
			return err
		}
		machineID = m.ID
	}
	certs, err := s.d.Store.ListCertificates(ctx, machineID)
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
		return problem(http.StatusRequestEntityTooLarge, "%d certificates match; one report holds at most %d: narrow the date range or pick a machine", len(items), wipecert.MaxBatch)
	}
	pdf, err := wipecert.BatchPDF(items, s.d.Decommission.PublicKey(), sel, time.Now())
	if err != nil {
		return fmt.Errorf("certificates report: %w", err)
	}
	c.Response().Header().Set("Content-Disposition", `attachment; filename="slate-certificates-report.pdf"`)
	return c.Blob(http.StatusOK, "application/pdf", pdf)
}

func (s *Server) certificatePDF(c echo.Context) error {
	cert, err := s.d.Store.GetCertificate(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	if s.d.Decommission == nil {
		return problem(http.StatusServiceUnavailable, "no signing key configured")
	}
	pdf, err := wipecert.CertificatePDF(cert.File, s.d.Decommission.PublicKey())
	if err != nil {
		return fmt.Errorf("certificate %s does not verify: %w", cert.ID, err)
	}
	c.Response().Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s.pdf"`, cert.ID))
	return c.Blob(http.StatusOK, "application/pdf", pdf)
}

func (s *Server) reportPDF(c echo.Context) error {
	ctx := c.Request().Context()
	m, err := s.d.Store.GetMachine(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	reps, err := s.d.Store.ListReports(ctx, m.ID)
	if err != nil {
		return err
	}
	if len(reps) == 0 {
		return problem(http.StatusNotFound, "machine %s has no decommission report", m.Name)
	}
	if s.d.Decommission == nil {
		return problem(http.StatusServiceUnavailable, "no signing key configured")
	}
	pdf, err := wipecert.ReportPDF(reps[0].File, s.d.Decommission.PublicKey())
	if err != nil {
		return fmt.Errorf("report %s does not verify: %w", reps[0].ID, err)
	}
	return c.Blob(http.StatusOK, "application/pdf", pdf)
}

func (s *Server) exportCertificates(c echo.Context) error {
	ctx := c.Request().Context()
	certs, err := s.d.Store.ListCertificates(ctx, c.QueryParam("machine"))
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="slate-certificates.tar"`)
	w.WriteHeader(http.StatusOK)
	tw := tar.NewWriter(w)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if s.d.Decommission != nil {
		if err := add("public-key.pem", wipecert.PublicKeyPEM(s.d.Decommission.PublicKey())); err != nil {
			return err
		}
	}
	machines := map[string]bool{}
	for _, cert := range certs {
		if err := add("certificates/"+cert.ID+".json", cert.File); err != nil {
			return err
		}
		machines[cert.MachineID] = true
	}
	for id := range machines {
		reps, err := s.d.Store.ListReports(ctx, id)
		if err != nil {
			return err
		}
		for _, r := range reps {
			if err := add("reports/"+strings.TrimSpace(r.ID)+".json", r.File); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
