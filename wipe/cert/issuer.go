package cert

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"slate/wipe"
)

// Issuer signs certificates of sanitization with the appliance's key; the key never leaves
// the appliance. It knows no store: the appliance writes what Issue returns, with its audit
// events, in the transaction that moves the machine.
type Issuer struct {
	key   ed25519.PrivateKey
	meta  CertMeta
	tool  string
	newID func() string
	now   func() time.Time
}

// IssuerConfig is where the issuer's key and Appendix G fields come from.
type IssuerConfig struct {
	// KeyDir holds the Ed25519 signing key (created on first use, mode 0600).
	KeyDir string
	// MetaFile is a JSON CertMeta with the fields no drive can tell (person, organisation,
	// destination, classification, …); empty: internal reuse, backup unknown.
	MetaFile string
	// Tool names the software on every certificate ("Slate v1.2").
	Tool string
	// NewID and Now are injected by tests; nil: random "c-…" ids and the wall clock.
	NewID func() string
	Now   func() time.Time
}

// NewIssuer loads (or creates) the signing key and reads the certificate metadata file.
func NewIssuer(cfg IssuerConfig) (*Issuer, error) {
	key, err := LoadOrCreateSigningKey(cfg.KeyDir, nil)
	if err != nil {
		return nil, fmt.Errorf("wipe.key_dir %s: %w", cfg.KeyDir, err)
	}
	is := &Issuer{key: key, tool: cfg.Tool, newID: cfg.NewID, now: cfg.Now}
	if is.newID == nil {
		is.newID = randomID
	}
	if is.now == nil {
		is.now = time.Now
	}
	is.meta.Destination = Destination{Type: "Internal Reuse"}
	is.meta.DataBackedUp = "Unknown"
	if cfg.MetaFile != "" {
		b, err := os.ReadFile(cfg.MetaFile)
		if err != nil {
			return nil, fmt.Errorf("wipe.certificate_file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&is.meta); err != nil {
			return nil, fmt.Errorf("wipe.certificate_file %s: %w", cfg.MetaFile, err)
		}
	}
	return is, nil
}

// DefaultPerson is the person of wipe.certificate_file: what the confirmation form is
// prefilled with and what a confirmation that gives none takes.
func (is *Issuer) DefaultPerson() Person { return is.meta.Person }

// PublicKey is what auditors verify certificates with (`slate cert verify`).
func (is *Issuer) PublicKey() ed25519.PublicKey { return is.key.Public().(ed25519.PublicKey) }

func randomID() string {
	b := make([]byte, 10)
	// crypto/rand.Read does not fail on Linux (Go ≥ 1.24 aborts the program instead).
	_, _ = rand.Read(b)
	return "c-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Outcome is what one finished wipe task earns.
type Outcome struct {
	// PlanDigest is the confirmed plan's (a certified result carries the same).
	PlanDigest string
	// Drives is how many drives the agent reported on.
	Drives int
	// Problems, when not empty, are why the agent's result was refused as suspicious (a lie or
	// a fault): nothing was issued and Refusal says so for the machine's failure reason.
	Problems []string
	Refusal  string

	Certificates []SignedCertificate
	ReportID     string
	Report       []byte // the signed decommission report
	// Complete is Slate's reckoning over the plan, not the agent's "sanitized" flag: every
	// planned drive has a sanitized result.
	Complete bool
	Summary  string
}

// Issue checks a wipe task's result against the plan the technician confirmed, then signs one
// certificate per sanitized drive and the machine's report. params and result are the task's
// stored JSON (wipe.TaskParams, wipe.TaskResult); person is who the technician named at the
// confirmation (zero for wipes confirmed before it was asked for: the configured person).
func (is *Issuer) Issue(taskID string, params, result []byte, machine MachineIdentity, person Person) (Outcome, error) {
	var tr wipe.TaskResult
	if err := json.Unmarshal(result, &tr); err != nil {
		return Outcome{}, fmt.Errorf("wipe task %s: result is not a wipe result: %w", taskID, err)
	}
	var p wipe.TaskParams
	if err := json.Unmarshal(params, &p); err != nil {
		return Outcome{}, fmt.Errorf("wipe task %s: params: %w", taskID, err)
	}
	// The agent's word is checked against the plan Slate confirmed before anything is signed:
	// a result for other drives, other techniques or impossible timings is a lie or a fault,
	// and no certificate comes of it.
	problems, missing := wipe.CheckResult(p.Plan, tr)
	if len(problems) > 0 {
		return Outcome{PlanDigest: p.Authorization.PlanDigest, Drives: len(tr.Results), Problems: problems,
			Refusal: "the wipe result was refused as suspicious, no certificate issued: " + strings.Join(problems, "; ")}, nil
	}
	meta := is.meta
	meta.Machine = machine
	if !person.IsZero() {
		// The whole block as confirmed, not merged with the configuration: the certificate
		// names the person who answered for this wipe.
		meta.Person = person.Trimmed()
	}
	if meta.Person.Name == "" {
		meta.Person.Name = p.Authorization.ConfirmedBy
	}
	certs, report, err := Certify(tr, p.Authorization, meta, is.tool, is.key, is.newID, is.now().UTC())
	if err != nil {
		return Outcome{}, err
	}
	bad := missing
	for _, r := range tr.Results {
		if r.Status != wipe.StatusSanitized {
			bad = append(bad, fmt.Sprintf("%s (%s): %s %s", r.Drive.Path, r.Drive.Serial, r.Status, strings.Join(r.Errors, "; ")))
		}
	}
	out := Outcome{PlanDigest: p.Authorization.PlanDigest, Drives: len(tr.Results), Certificates: certs, ReportID: is.newID(), Report: report, Complete: len(bad) == 0 && len(tr.Results) > 0,
		Summary: fmt.Sprintf("%d of %d drives certified", len(certs), len(tr.Results))}
	if len(bad) > 0 {
		out.Summary += "; not sanitized: " + strings.Join(bad, ", ")
	}
	return out, nil
}
