package cert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// BatchItem is one stored certificate for an auditor's report: its signed file.
type BatchItem struct {
	ID   string
	File []byte
}

// BatchSelection says which certificates a report covers, printed on its first page so the
// auditor knows what was asked for (and what was not).
type BatchSelection struct {
	Machine  string
	From, To time.Time // zero: open
	IDs      []string
}

func (s BatchSelection) String() string {
	var parts []string
	if s.Machine != "" {
		parts = append(parts, "machine "+s.Machine)
	}
	if !s.From.IsZero() {
		parts = append(parts, "issued from "+ts(s.From))
	}
	if !s.To.IsZero() {
		parts = append(parts, "issued before "+ts(s.To))
	}
	if len(s.IDs) > 0 {
		parts = append(parts, "certificates "+strings.Join(s.IDs, ", "))
	}
	if len(parts) == 0 {
		return "every certificate"
	}
	return strings.Join(parts, "; ")
}

// Fingerprint is the SHA-256 of the public key's DER encoding, in colon-separated hex: what an
// auditor compares with the PEM file they were given (KeyID is its first 16 digits, unspaced).
func Fingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	h := hex.EncodeToString(s[:])
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// BatchPDF verifies every certificate with the appliance's public key and renders one PDF for
// the auditor: a summary table (one row per certificate), then each certificate on its own
// pages with its signature data. One certificate that does not verify refuses the whole
// report: a report must not put an altered certificate beside good ones.
func BatchPDF(items []BatchItem, pub ed25519.PublicKey, sel BatchSelection, generated time.Time) ([]byte, error) {
	type verified struct {
		c   Certificate
		sig SignatureBlock
		sum string
	}
	vs := make([]verified, 0, len(items))
	for _, it := range items {
		c, err := VerifyCertificate(it.File, pub)
		if err != nil {
			return nil, fmt.Errorf("certificate %s does not verify, no report made: %w", it.ID, err)
		}
		env, err := ParseEnvelope(it.File)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(it.File)
		vs = append(vs, verified{c: c, sig: env.Signature, sum: hex.EncodeToString(h[:])})
	}
	p := newPDF("Sanitization certificates report", generated.UTC())
	p.title("Sanitization Certificates Report")
	p.row("Generated", ts(generated))
	p.row("Selection", sel.String())
	p.row("Certificates", strconv.Itoa(len(vs)))
	p.row("Signing key", "Ed25519 key "+KeyID(pub))
	p.row("Key fingerprint (SHA-256)", Fingerprint(pub))
	p.row("Public key (PEM)", strings.TrimSpace(string(PublicKeyPEM(pub))))
	p.text(8, "Every certificate below was verified against this key when the report was made. Verify each signed file offline: "+
		"slate cert verify <certificate.json> --public-key <appliance-public-key.pem>")
	p.section("Summary")
	cols := []struct {
		h string
		w float64
	}{{"#", 8}, {"Certificate", 30}, {"Machine", 28}, {"Drive serial", 32}, {"Method", 25}, {"Performed by", 30}, {"Completed (UTC)", 27}}
	// fit shortens a cell to its column (marked with ~): the full values are on each
	// certificate's own page.
	fit := func(s string, w float64) string {
		s = p.tr(s)
		for p.f.GetStringWidth(s) > w-1.5 && len(s) > 1 {
			s = s[:len(s)-2] + "~"
		}
		return s
	}
	p.f.SetFont("Helvetica", "B", 7.5)
	for _, c := range cols {
		p.f.CellFormat(c.w, 5, fit(c.h, c.w), "1", 0, "L", false, 0, "")
	}
	p.f.Ln(-1)
	p.f.SetFont("Helvetica", "", 7.5)
	for i, v := range vs {
		name := v.c.Machine.Name
		if name == "" {
			name = v.c.Machine.ID
		}
		cells := []string{strconv.Itoa(i + 1), v.c.ID, name, v.c.Media.SerialNumber,
			string(v.c.Sanitization.MethodType) + ": " + v.c.Sanitization.MethodUsed, v.c.Person.Name, v.c.Run.End.UTC().Format("2006-01-02 15:04")}
		for j, c := range cols {
			p.f.CellFormat(c.w, 5, fit(cells[j], c.w), "1", 0, "L", false, 0, "")
		}
		p.f.Ln(-1)
	}
	if len(vs) == 0 {
		p.text(9, "No certificate matches this selection.")
	}
	for _, v := range vs {
		p.f.AddPage()
		p.certificate(v.c, v.sig)
		p.row("Signed file SHA-256", v.sum)
	}
	var buf bytes.Buffer
	if err := p.out(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseSelection reads a report's selection as the API, the UI and the CLI give it: from and to
// as dates (2026-12-07, to inclusive: the whole day) or RFC 3339 times, ids comma-separated or
// repeated. Errors name the parameter.
func ParseSelection(machine, from, to string, ids []string) (BatchSelection, error) {
	sel := BatchSelection{Machine: strings.TrimSpace(machine)}
	parse := func(name, v string, end bool) (time.Time, error) {
		v = strings.TrimSpace(v)
		if v == "" {
			return time.Time{}, nil
		}
		if t, err := time.Parse("2006-01-02", v); err == nil {
			if end {
				t = t.AddDate(0, 0, 1) // "to 2026-12-07" includes that day
			}
			return t, nil
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t.UTC(), nil
		}
		return time.Time{}, fmt.Errorf("%s: %q is neither a date (2026-12-07) nor an RFC 3339 time (2026-12-07T23:58:00Z)", name, v)
	}
	var err error
	if sel.From, err = parse("from", from, false); err != nil {
		return sel, err
	}
	if sel.To, err = parse("to", to, true); err != nil {
		return sel, err
	}
	if !sel.From.IsZero() && !sel.To.IsZero() && !sel.From.Before(sel.To) {
		return sel, fmt.Errorf("to: the range ends (%s) before it starts (%s)", ts(sel.To), ts(sel.From))
	}
	for _, v := range ids {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				sel.IDs = append(sel.IDs, id)
			}
		}
	}
	return sel, nil
}

// Includes says whether a certificate issued at t with this id falls in the selection (the
// machine is filtered by the store).
func (s BatchSelection) Includes(id string, t time.Time) bool {
	if !s.From.IsZero() && t.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && !t.Before(s.To) {
		return false
	}
	if len(s.IDs) == 0 {
		return true
	}
	for _, x := range s.IDs {
		if x == id {
			return true
		}
	}
	return false
}

// MaxBatch bounds one report: each certificate is verified and rendered in memory. Larger
// selections are refused with a hint to narrow the date range.
const MaxBatch = 2000
