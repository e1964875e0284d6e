package cert

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
)

// pdfDoc wraps fpdf with the few layouts a certificate needs; core fonts only (no files), and
// text translated to cp1252 so drive strings with odd characters cannot break the document.
type pdfDoc struct {
	f  *fpdf.Fpdf
	tr func(string) string
}

func newPDF(title string, created time.Time) *pdfDoc {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetTitle(title, true)
	f.SetCreator("Slate", true)
	// Fixed dates make the PDF reproducible from the signed JSON.
	f.SetCreationDate(created)
	f.SetModificationDate(created)
	f.SetCatalogSort(true)
	f.SetMargins(15, 15, 15)
	f.SetAutoPageBreak(true, 15)
	f.AddPage()
	return &pdfDoc{f: f, tr: f.UnicodeTranslatorFromDescriptor("")}
}

func (p *pdfDoc) title(s string) {
	p.f.SetFont("Helvetica", "B", 15)
	p.f.CellFormat(0, 9, p.tr(s), "", 1, "L", false, 0, "")
	p.f.Ln(1)
}

func (p *pdfDoc) section(s string) {
	p.f.Ln(2)
	p.f.SetFont("Helvetica", "B", 11)
	p.f.SetFillColor(225, 230, 238)
	p.f.CellFormat(0, 7, p.tr(s), "", 1, "L", true, 0, "")
}

func (p *pdfDoc) row(k, v string) {
	p.f.SetFont("Helvetica", "B", 9)
	p.f.CellFormat(58, 4.8, p.tr(k), "", 0, "L", false, 0, "")
	p.f.SetFont("Helvetica", "", 9)
	if v == "" {
		v = "-"
	}
	p.f.MultiCell(0, 4.8, p.tr(v), "", "L", false)
}

func (p *pdfDoc) text(size float64, s string) {
	p.f.SetFont("Helvetica", "", size)
	p.f.MultiCell(0, 4.5, p.tr(s), "", "L", false)
}

func (p *pdfDoc) out(w io.Writer) error {
	if err := p.f.Error(); err != nil {
		return fmt.Errorf("render pdf: %w", err)
	}
	return p.f.Output(w)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// RenderCertificatePDF renders a verified certificate as a PDF; the signature block shows the
// key id and signature value so the paper copy can be matched with the signed file.
func RenderCertificatePDF(w io.Writer, c Certificate, sig SignatureBlock) error {
	p := newPDF("Certificate of Sanitization "+c.ID, c.IssuedAt)
	p.certificate(c, sig)
	return p.out(w)
}

// certificate writes one certificate from the current position (a page of its own in a batch).
func (p *pdfDoc) certificate(c Certificate, sig SignatureBlock) {
	p.title("Certificate of Sanitization")
	p.text(9, "NIST SP 800-88 Appendix G. Certificate "+c.ID+", issued "+ts(c.IssuedAt)+".")
	p.section("Person performing sanitization")
	p.row("Name", c.Person.Name)
	p.row("Title", c.Person.Title)
	p.row("Organization", c.Person.Organization)
	p.row("Location", c.Person.Location)
	p.row("Phone", c.Person.Phone)
	p.section("Media information")
	m := c.Media
	p.row("Make / Manufacturer", m.Make)
	p.row("Model", m.Model)
	p.row("Serial number", m.SerialNumber)
	p.row("Property number", m.PropertyNumber)
	p.row("Media type", m.MediaType)
	p.row("Interface / capacity", fmt.Sprintf("%s, %d bytes (%s)", m.Interface, m.CapacityBytes, m.DevicePath))
	p.row("Firmware", m.Firmware)
	p.row("Source", m.Source)
	p.row("Classification", m.Classification)
	p.row("Data backed up", m.DataBackedUp)
	p.row("Backup location", m.BackupLocation)
	p.section("Sanitization details")
	s := c.Sanitization
	p.row("Method type", string(s.MethodType))
	p.row("Method used", s.MethodUsed)
	p.row("Method details", s.MethodDetails)
	p.row("Tool used (and version)", s.Tool)
	p.row("Verification method", s.VerificationMethod)
	p.row("Verification", fmt.Sprintf("%s. Passed: %v. %s", s.Verification.Method, s.Verification.Passed, s.Verification.Details))
	p.row("Post-sanitization classification", s.PostSanitizationClassification)
	p.row("Notes", s.Notes)
	p.section("Machine and run")
	p.row("Machine", machineLine(c.Machine))
	p.row("Task / plan", c.Run.TaskID+" / plan "+c.Run.PlanDigest)
	p.row("Start / end", ts(c.Run.Start)+" / "+ts(c.Run.End))
	p.row("Throughput", fmt.Sprintf("%.1f MB/s over %d bytes", c.Run.BytesPerSecond/1e6, c.Media.CapacityBytes))
	p.row("Errors", strings.Join(c.Run.Errors, "; "))
	p.row("Unsupported methods tried", strings.Join(c.Run.Attempts, "; "))
	p.section("Media destination")
	p.row("Destination", c.Destination.Type)
	p.row("Details", c.Destination.Details)
	p.section("Signature")
	p.row("Name (confirmed the plan)", c.Signature.Name)
	p.row("Date", ts(c.Signature.Date))
	p.row("Signed by", sig.Algorithm+" key "+sig.KeyID)
	p.row("Signature", sig.Value)
	p.section("Validation")
	p.row("Name", c.Validation.Name)
	p.row("Title", c.Validation.Title)
	p.row("Organization", c.Validation.Organization)
	p.row("Location", c.Validation.Location)
	p.row("Phone", c.Validation.Phone)
	p.row("Date", ts(c.Validation.Date))
	p.f.Ln(3)
	p.text(8, "Verify offline: slate cert verify <certificate.json> --public-key <appliance-public-key.pem>")
}

// RenderReportPDF renders the machine-level decommission report.
func RenderReportPDF(w io.Writer, r Report, sig SignatureBlock) error {
	p := newPDF("Decommission report "+r.ID, r.GeneratedAt)
	p.title("Decommission Report")
	p.row("Report", r.ID)
	p.row("Machine", machineLine(r.Machine))
	p.row("Task / plan", r.TaskID+" / "+r.PlanDigest)
	p.row("Confirmed by", r.ConfirmedBy)
	p.row("Generated", ts(r.GeneratedAt))
	p.row("Complete", fmt.Sprintf("%v (every drive sanitized and certified)", r.Complete))
	p.section("Drives")
	for _, d := range r.Drives {
		p.row(d.Device, fmt.Sprintf("%s, serial %s, %d bytes: %s, %s %s, verified %v, certificate %s (sha256 %s) %s",
			d.Model, d.Serial, d.SizeBytes, d.Status, d.Level, d.Method, d.Verified, d.CertificateID, d.CertificateSHA256, strings.Join(d.Errors, "; ")))
	}
	p.section("Signature")
	p.row("Signed by", sig.Algorithm+" key "+sig.KeyID)
	p.row("Signature", sig.Value)
	return p.out(w)
}

func machineLine(m MachineIdentity) string {
	parts := []string{m.ID}
	for _, kv := range [][2]string{{"name", m.Name}, {"serial", m.Serial}, {"make", m.Manufacturer}, {"model", m.Model}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return strings.Join(parts, ", ")
}

// CertificatePDF verifies a signed certificate file with the appliance's public key and
// renders it; an altered file is refused, never rendered.
func CertificatePDF(file []byte, pub ed25519.PublicKey) ([]byte, error) {
	c, err := VerifyCertificate(file, pub)
	if err != nil {
		return nil, err
	}
	env, _ := ParseEnvelope(file)
	var buf bytes.Buffer
	if err := RenderCertificatePDF(&buf, c, env.Signature); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReportPDF verifies a signed decommission report and renders it.
func ReportPDF(file []byte, pub ed25519.PublicKey) ([]byte, error) {
	r, err := VerifyReport(file, pub)
	if err != nil {
		return nil, err
	}
	env, _ := ParseEnvelope(file)
	var buf bytes.Buffer
	if err := RenderReportPDF(&buf, r, env.Signature); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
