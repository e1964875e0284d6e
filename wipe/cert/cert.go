// Package cert issues, signs, verifies and renders NIST SP 800-88 Appendix G certificates of
// sanitization and the machine's decommission report. Only the appliance signs: the agent
// that wipes a machine never holds the key and never links this package (nor the PDF library).
package cert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"slate/wipe"
)

// CertificateSchema names the certificate format; a verifier refuses any other.
const CertificateSchema = "slate.sanitization-certificate/v1"

// Person is a block of NIST SP 800-88 Appendix G: who sanitized. It is wipe.Person (given at
// the wipe's confirmation); the JSON is the same as before it was asked for there, so older
// certificates verify unchanged.
type Person = wipe.Person

// Media is Appendix G's media information, plus what the probe read from the drive.
type Media struct {
	Make           string         `json:"make"`
	Model          string         `json:"model"`
	SerialNumber   string         `json:"serial_number"`
	PropertyNumber string         `json:"property_number"`
	MediaType      string         `json:"media_type"`
	Source         string         `json:"source"`
	Classification string         `json:"classification"`
	DataBackedUp   string         `json:"data_backed_up"` // Yes, No, Unknown
	BackupLocation string         `json:"backup_location"`
	Firmware       string         `json:"firmware"`
	Interface      wipe.Transport `json:"interface"`
	CapacityBytes  uint64         `json:"capacity_bytes"`
	DevicePath     string         `json:"device_path"`
}

// Sanitization is Appendix G's sanitization details.
type Sanitization struct {
	MethodType                     wipe.Level        `json:"method_type"` // Clear or Purge
	MethodUsed                     string            `json:"method_used"` // Overwrite, Block Erase, Crypto Erase, …
	Method                         wipe.Method       `json:"method"`
	MethodDetails                  string            `json:"method_details"`
	Tool                           string            `json:"tool"`
	VerificationMethod             string            `json:"verification_method"` // Full, Quick Sampling, Crypto before/after
	Verification                   wipe.Verification `json:"verification"`
	PostSanitizationClassification string            `json:"post_sanitization_classification"`
	Notes                          string            `json:"notes"`
}

// Destination is Appendix G's media destination.
type Destination struct {
	Type    string `json:"type"` // Internal Reuse, External Reuse, Recycling Facility, Manufacturer, Other
	Details string `json:"details"`
}

// Signoff is Appendix G's "signature and date" (and validation's): the appliance signs the
// certificate cryptographically; the person named is the one who confirmed the plan.
type Signoff struct {
	Name string    `json:"name"`
	Date time.Time `json:"date"`
}

// MachineIdentity identifies the machine the drive was in.
type MachineIdentity struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Serial       string `json:"serial"`
	Manufacturer string `json:"manufacturer"`
	Model        string `json:"model"`
}

// Run is how the wipe ran.
type Run struct {
	TaskID         string    `json:"task_id"`
	PlanDigest     string    `json:"plan_digest"`
	ConfirmedBy    string    `json:"confirmed_by"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	BytesWritten   uint64    `json:"bytes_written"`
	BytesPerSecond float64   `json:"bytes_per_second"`
	Errors         []string  `json:"errors"`
	Attempts       []string  `json:"attempts"`
}

// Validation is Appendix G's validation block (a second person, optional until filled).
type Validation struct {
	Name         string    `json:"name"`
	Title        string    `json:"title"`
	Organization string    `json:"organization"`
	Location     string    `json:"location"`
	Phone        string    `json:"phone"`
	Date         time.Time `json:"date"`
}

// Certificate is one drive's certificate of sanitization (NIST SP 800-88 Appendix G).
type Certificate struct {
	Schema       string          `json:"schema"`
	ID           string          `json:"id"`
	IssuedAt     time.Time       `json:"issued_at"`
	Person       Person          `json:"person"`
	Media        Media           `json:"media"`
	Sanitization Sanitization    `json:"sanitization"`
	Destination  Destination     `json:"destination"`
	Signature    Signoff         `json:"signature"`
	Validation   Validation      `json:"validation"`
	Machine      MachineIdentity `json:"machine"`
	Run          Run             `json:"run"`
}

// CertMeta is what Slate's configuration and the decommission request add to a result: the
// fields of Appendix G that no drive can tell.
type CertMeta struct {
	Person          Person            `json:"person"`
	Validation      Validation        `json:"validation"`
	Destination     Destination       `json:"destination"`
	Machine         MachineIdentity   `json:"machine"`
	PropertyNumbers map[string]string `json:"property_numbers"` // by drive serial
	Source          string            `json:"source"`
	Classification  string            `json:"classification"`
	DataBackedUp    string            `json:"data_backed_up"`
	BackupLocation  string            `json:"backup_location"`
	PostClass       string            `json:"post_sanitization_classification"`
	Notes           string            `json:"notes"`
}

var methodUsed = map[wipe.Method]string{
	wipe.MethodNVMeSanitizeCrypto: "Crypto Erase", wipe.MethodNVMeFormatCrypto: "Crypto Erase", wipe.MethodATASanitizeCrypto: "Crypto Erase",
	wipe.MethodSCSISanitizeCrypto: "Crypto Erase", wipe.MethodTCGCryptoErase: "Crypto Erase",
	wipe.MethodNVMeSanitizeBlock: "Block Erase", wipe.MethodATASanitizeBlock: "Block Erase", wipe.MethodSCSISanitizeBlock: "Block Erase",
	wipe.MethodNVMeFormatUserData:  "Block Erase (Format NVM user data erase)",
	wipe.MethodATASecurityEnhanced: "Secure Erase (enhanced)", wipe.MethodATASecurityErase: "Secure Erase",
	wipe.MethodNVMeSanitizeOverwrite: "Overwrite", wipe.MethodATASanitizeOverwrite: "Overwrite", wipe.MethodSCSISanitizeOverwrite: "Overwrite",
	wipe.MethodOverwrite: "Overwrite",
}

// IssueCertificate builds the certificate for one drive's result. It refuses anything but a
// completed, verified run: an interrupted or failed wipe never gets a certificate.
func IssueCertificate(id string, res wipe.Result, auth wipe.Authorization, meta CertMeta, tool string, issuedAt time.Time) (Certificate, error) {
	if err := wipe.Certifiable(res); err != nil {
		return Certificate{}, err
	}
	if id == "" {
		return Certificate{}, errors.New("certificate id is empty")
	}
	d := res.Drive
	make_ := d.Vendor
	if f := strings.Fields(d.Model); (make_ == "" || make_ == "ATA") && len(f) > 0 {
		make_ = f[0] // ATA and NVMe put the maker first in the model string
	}
	if d.Model == "" {
		d.Model = "not reported by the drive"
	}
	if d.Serial == "" {
		// Keep the certificate tied to something physical even for drives without a serial
		// (virtio disks without one configured).
		d.Serial = fmt.Sprintf("not reported by the drive (%s, %d bytes)", d.Path, d.SizeBytes)
	}
	vm := "Full"
	if res.Verification.Subsections > 0 {
		vm = "Quick (NIST sampling)"
	}
	if res.Method.Crypto() {
		vm = "Cryptographic erase: sampled blocks compared before and after"
	}
	c := Certificate{
		Schema:   CertificateSchema,
		ID:       id,
		IssuedAt: issuedAt.UTC(),
		Person:   meta.Person,
		Media: Media{Make: make_, Model: d.Model, SerialNumber: d.Serial, PropertyNumber: meta.PropertyNumbers[d.Serial],
			MediaType: mediaTypeName(d), Source: meta.Source, Classification: meta.Classification, DataBackedUp: meta.DataBackedUp,
			BackupLocation: meta.BackupLocation, Firmware: d.Firmware, Interface: d.Transport, CapacityBytes: d.SizeBytes, DevicePath: d.Path},
		Sanitization: Sanitization{MethodType: res.Level, MethodUsed: methodUsed[res.Method], Method: res.Method,
			MethodDetails: res.MethodDetails, Tool: tool, VerificationMethod: vm, Verification: res.Verification,
			PostSanitizationClassification: meta.PostClass, Notes: meta.Notes},
		Destination: meta.Destination,
		Signature:   Signoff{Name: auth.ConfirmedBy, Date: res.End.UTC()},
		Validation:  meta.Validation,
		Machine:     meta.Machine,
		Run: Run{TaskID: auth.TaskID, PlanDigest: auth.PlanDigest, ConfirmedBy: auth.ConfirmedBy, Start: res.Start.UTC(), End: res.End.UTC(),
			BytesWritten: res.BytesWritten, BytesPerSecond: res.BytesPerSecond, Errors: nonNil(res.Errors), Attempts: nonNil(res.Attempts)},
	}
	if c.Machine.ID == "" {
		c.Machine.ID = auth.MachineID
	}
	return c, c.check()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func mediaTypeName(d wipe.DriveInfo) string {
	switch d.Media {
	case wipe.MediaHDD:
		return "Magnetic (hard disk drive)"
	case wipe.MediaSSD:
		return "Flash memory (solid state drive)"
	case wipe.MediaNVMe:
		return "Flash memory (NVMe solid state drive)"
	case wipe.MediaRemovable:
		return "Removable media"
	default:
		return "Virtual disk"
	}
}

// check is the content validation a verifier runs on top of the signature.
func (c Certificate) check() error {
	var missing []string
	req := func(name, v string) {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	req("id", c.ID)
	req("media.model", c.Media.Model)
	req("media.serial_number", c.Media.SerialNumber)
	req("media.media_type", c.Media.MediaType)
	req("sanitization.method_used", c.Sanitization.MethodUsed)
	req("sanitization.tool", c.Sanitization.Tool)
	req("sanitization.verification_method", c.Sanitization.VerificationMethod)
	req("signature.name", c.Signature.Name)
	req("machine.id", c.Machine.ID)
	req("run.task_id", c.Run.TaskID)
	req("run.plan_digest", c.Run.PlanDigest)
	if len(missing) > 0 {
		return fmt.Errorf("certificate %s lacks %s", c.ID, strings.Join(missing, ", "))
	}
	if c.Schema != CertificateSchema {
		return fmt.Errorf("certificate %s: schema %q, want %q", c.ID, c.Schema, CertificateSchema)
	}
	if c.Sanitization.MethodType != wipe.LevelClear && c.Sanitization.MethodType != wipe.LevelPurge {
		return fmt.Errorf("certificate %s: method type %q is neither Clear nor Purge", c.ID, c.Sanitization.MethodType)
	}
	if lvl, ok := c.Sanitization.Method.Level(); !ok || lvl != c.Sanitization.MethodType {
		return fmt.Errorf("certificate %s: method %q does not reach %s", c.ID, c.Sanitization.Method, c.Sanitization.MethodType)
	}
	if !c.Sanitization.Verification.Passed || c.Sanitization.Verification.Mismatches != 0 || c.Sanitization.Verification.BytesRead == 0 {
		return fmt.Errorf("certificate %s: verification did not pass", c.ID)
	}
	if c.Run.End.Before(c.Run.Start) || c.Run.Start.IsZero() {
		return fmt.Errorf("certificate %s: run ends before it starts", c.ID)
	}
	return nil
}

// Envelope is a signed document on disk: the document and an Ed25519 signature over its
// canonical JSON (object keys sorted, no insignificant space, numbers as written).
type Envelope struct {
	Document  json.RawMessage `json:"document"`
	Signature SignatureBlock  `json:"signature"`
}

// SignatureBlock names the algorithm and key.
type SignatureBlock struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	Value     string `json:"value"`
}

// Canonical re-encodes JSON with sorted keys and no extra space, so any verifier that
// re-serializes the document gets the same bytes.
func Canonical(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	if dec.More() {
		return nil, errors.New("canonical json: trailing data after the document")
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return bytes.TrimRight(out.Bytes(), "\n"), nil
}

// KeyID is the first 16 hex digits of the SHA-256 of the public key.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// Sign signs any document (a Certificate, a Report) and returns the envelope as indented JSON.
func Sign(doc any, priv ed25519.PrivateKey) ([]byte, error) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	canon, err := Canonical(raw)
	if err != nil {
		return nil, err
	}
	env := Envelope{Document: canon, Signature: SignatureBlock{Algorithm: "Ed25519",
		KeyID: KeyID(priv.Public().(ed25519.PublicKey)), Value: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, canon))}}
	return json.MarshalIndent(env, "", "  ")
}

// VerifyEnvelope checks an envelope's signature and returns the canonical document.
func VerifyEnvelope(file []byte, pub ed25519.PublicKey) ([]byte, error) {
	var env Envelope
	if err := json.Unmarshal(file, &env); err != nil {
		return nil, fmt.Errorf("not a signed Slate document: %w", err)
	}
	if env.Signature.Algorithm != "Ed25519" {
		return nil, fmt.Errorf("signature algorithm %q, want Ed25519", env.Signature.Algorithm)
	}
	if env.Signature.KeyID != KeyID(pub) {
		return nil, fmt.Errorf("signed by key %s, but the public key given is %s: use the key of the appliance that issued it", env.Signature.KeyID, KeyID(pub))
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signature.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errors.New("signature value is not a base64 Ed25519 signature")
	}
	canon, err := Canonical(env.Document)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, canon, sig) {
		return nil, errors.New("SIGNATURE INVALID: the document was altered after signing or was signed by another key")
	}
	return canon, nil
}

// VerifyCertificate checks a certificate file offline: signature, then content.
func VerifyCertificate(file []byte, pub ed25519.PublicKey) (Certificate, error) {
	canon, err := VerifyEnvelope(file, pub)
	if err != nil {
		return Certificate{}, err
	}
	var c Certificate
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Certificate{}, fmt.Errorf("certificate content: %w", err)
	}
	if err := c.check(); err != nil {
		return c, err
	}
	return c, nil
}

// Report is the machine-level decommission report listing every drive.
type Report struct {
	Schema      string          `json:"schema"`
	ID          string          `json:"id"`
	Machine     MachineIdentity `json:"machine"`
	TaskID      string          `json:"task_id"`
	PlanDigest  string          `json:"plan_digest"`
	ConfirmedBy string          `json:"confirmed_by"`
	GeneratedAt time.Time       `json:"generated_at"`
	// Complete is true only when every drive was sanitized and has a certificate.
	Complete bool          `json:"complete"`
	Drives   []ReportDrive `json:"drives"`
}

// ReportDrive is one line of the report.
type ReportDrive struct {
	Device        string      `json:"device"`
	Model         string      `json:"model"`
	Serial        string      `json:"serial"`
	SizeBytes     uint64      `json:"size_bytes"`
	Status        string      `json:"status"`
	Level         wipe.Level  `json:"level"`
	Method        wipe.Method `json:"method"`
	Verified      bool        `json:"verified"`
	CertificateID string      `json:"certificate_id"`
	// CertificateSHA256 binds the report to the exact signed certificate file.
	CertificateSHA256 string   `json:"certificate_sha256"`
	Errors            []string `json:"errors"`
}

// ReportSchema names the report format.
const ReportSchema = "slate.decommission-report/v1"

// MakeReport lists every drive's result; certs maps a drive path to its signed certificate
// file (absent for drives that failed).
func MakeReport(id string, machine MachineIdentity, auth wipe.Authorization, results []wipe.Result, certIDs map[string]string, certs map[string][]byte, now time.Time) Report {
	r := Report{Schema: ReportSchema, ID: id, Machine: machine, TaskID: auth.TaskID, PlanDigest: auth.PlanDigest,
		ConfirmedBy: auth.ConfirmedBy, GeneratedAt: now.UTC(), Complete: len(results) > 0}
	if r.Machine.ID == "" {
		r.Machine.ID = auth.MachineID
	}
	for _, res := range results {
		rd := ReportDrive{Device: res.Drive.Path, Model: res.Drive.Model, Serial: res.Drive.Serial, SizeBytes: res.Drive.SizeBytes,
			Status: res.Status, Level: res.Level, Method: res.Method, Verified: res.Verification.Passed, Errors: nonNil(res.Errors)}
		if f, ok := certs[res.Drive.Path]; ok {
			s := sha256.Sum256(f)
			rd.CertificateID, rd.CertificateSHA256 = certIDs[res.Drive.Path], hex.EncodeToString(s[:])
		}
		if res.Status != wipe.StatusSanitized || rd.CertificateID == "" {
			r.Complete = false
		}
		r.Drives = append(r.Drives, rd)
	}
	return r
}

// VerifyReport checks a report file's signature and returns it.
func VerifyReport(file []byte, pub ed25519.PublicKey) (Report, error) {
	canon, err := VerifyEnvelope(file, pub)
	if err != nil {
		return Report{}, err
	}
	var r Report
	if err := json.Unmarshal(canon, &r); err != nil {
		return Report{}, fmt.Errorf("report content: %w", err)
	}
	if r.Schema != ReportSchema {
		return r, fmt.Errorf("report schema %q, want %q", r.Schema, ReportSchema)
	}
	return r, nil
}

// SigningKeyFile is the appliance's certificate signing key inside its key directory.
const SigningKeyFile = "sanitization-signing.key"

// LoadOrCreateSigningKey loads the Ed25519 key from dir, creating it (mode 0600, dir 0700)
// on first use.
func LoadOrCreateSigningKey(dir string, rnd io.Reader) (ed25519.PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	path := filepath.Join(dir, SigningKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return parsePrivateKey(b, path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory %s: %w", dir, err)
	}
	_, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create signing key %s: %w", path, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, fmt.Errorf("write signing key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write signing key %s: %w", path, err)
	}
	return priv, nil
}

func parsePrivateKey(b []byte, path string) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s is not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not Ed25519", path)
	}
	return priv, nil
}

// PublicKeyPEM encodes the public key for `slate cert verify --public-key`.
func PublicKeyPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub) // an Ed25519 key always encodes
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKey reads a PEM PUBLIC KEY (or a bare base64 32-byte key).
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("public key is not Ed25519")
		}
		return pub, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("public key: neither PEM nor base64 of 32 bytes")
	}
	return ed25519.PublicKey(raw), nil
}

// ParseEnvelope reads a signed file's envelope without verifying it (to show its signature
// block on a PDF after VerifyEnvelope succeeded).
func ParseEnvelope(file []byte) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(file, &env); err != nil {
		return env, fmt.Errorf("not a signed Slate document: %w", err)
	}
	return env, nil
}

// SignedCertificate is one issued certificate, ready to store.
type SignedCertificate struct {
	ID          string `json:"id"`
	MachineID   string `json:"machine_id"`
	DriveSerial string `json:"drive_serial"`
	DrivePath   string `json:"drive_path"`
	File        []byte `json:"file"` // the signed envelope, as served for download and verify
	KeyID       string `json:"key_id"`
	Signature   string `json:"signature"`
}

// Certify issues and signs a certificate for each sanitized drive, and the machine's
// decommission report listing every drive. Drives that were not sanitized get none and appear
// in the report with their errors.
func Certify(tr wipe.TaskResult, auth wipe.Authorization, meta CertMeta, tool string, key ed25519.PrivateKey, newID func() string, now time.Time) ([]SignedCertificate, []byte, error) {
	if tr.PlanDigest != auth.PlanDigest || tr.MachineID != auth.MachineID {
		return nil, nil, fmt.Errorf("wipe result for machine %s plan %s does not match the authorization (%s, %s)", tr.MachineID, tr.PlanDigest, auth.MachineID, auth.PlanDigest)
	}
	var out []SignedCertificate
	ids := map[string]string{}
	files := map[string][]byte{}
	for _, r := range tr.Results {
		if r.Status != wipe.StatusSanitized {
			continue
		}
		c, err := IssueCertificate(newID(), r, auth, meta, tool, now)
		if err != nil {
			return nil, nil, err
		}
		f, err := Sign(c, key)
		if err != nil {
			return nil, nil, err
		}
		env, _ := ParseEnvelope(f)
		out = append(out, SignedCertificate{ID: c.ID, MachineID: c.Machine.ID, DriveSerial: c.Media.SerialNumber, DrivePath: r.Drive.Path,
			File: f, KeyID: env.Signature.KeyID, Signature: env.Signature.Value})
		ids[r.Drive.Path], files[r.Drive.Path] = c.ID, f
	}
	machine := meta.Machine
	rep := MakeReport(newID(), machine, auth, tr.Results, ids, files, now)
	rf, err := Sign(rep, key)
	if err != nil {
		return nil, nil, err
	}
	return out, rf, nil
}
