package wipe

import (
	"fmt"
	"strings"
	"unicode"
)

// Person is who performs the sanitization, as NIST SP 800-88 Appendix G asks for it: given at
// the wipe's confirmation (defaults from wipe.certificate_file), stored in the wipe task's
// params with the authorization, audited, and printed on every certificate of that wipe.
type Person struct {
	Name         string `json:"name"`
	Title        string `json:"title"`
	Organization string `json:"organization"`
	Location     string `json:"location"`
	Phone        string `json:"phone"`
}

// PersonFieldMax bounds each field: a certificate line, not a document.
const PersonFieldMax = 200

// Trimmed returns the person with surrounding space removed from every field.
func (p Person) Trimmed() Person {
	return Person{Name: strings.TrimSpace(p.Name), Title: strings.TrimSpace(p.Title), Organization: strings.TrimSpace(p.Organization),
		Location: strings.TrimSpace(p.Location), Phone: strings.TrimSpace(p.Phone)}
}

// WithDefaults fills each empty field from d (the configured defaults).
func (p Person) WithDefaults(d Person) Person {
	pick := func(v, def string) string {
		if strings.TrimSpace(v) == "" {
			return def
		}
		return v
	}
	return Person{Name: pick(p.Name, d.Name), Title: pick(p.Title, d.Title), Organization: pick(p.Organization, d.Organization),
		Location: pick(p.Location, d.Location), Phone: pick(p.Phone, d.Phone)}
}

// IsZero is true when no field is set (wipe tasks confirmed before the fields were asked for).
func (p Person) IsZero() bool { return p.Trimmed() == Person{} }

// PersonError names the fields of a Person that are missing or malformed, by their JSON path
// ("person.title"), so a form can put the message beside the field.
type PersonError struct {
	Missing []string // required and empty
	Invalid []string // "person.phone: …"
}

func (e *PersonError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "the certificate needs "+strings.Join(e.Missing, ", ")+" (NIST SP 800-88 Appendix G: who performed the sanitization)")
	}
	parts = append(parts, e.Invalid...)
	return strings.Join(parts, "; ")
}

// Fields lists every field the error concerns, missing ones first.
func (e *PersonError) Fields() []string {
	out := append([]string{}, e.Missing...)
	for _, s := range e.Invalid {
		f, _, _ := strings.Cut(s, ":")
		out = append(out, f)
	}
	return out
}

// Check validates a person for a certificate: name, title, organization and location are
// required (Appendix G's "person performing sanitization"); the phone is optional but, when
// given, looks like a phone number. Nothing may hold control characters (they would forge
// lines on the PDF) or exceed PersonFieldMax.
func (p Person) Check() error {
	p = p.Trimmed()
	e := &PersonError{}
	for _, f := range []struct {
		name, v  string
		required bool
	}{{"person.name", p.Name, true}, {"person.title", p.Title, true}, {"person.organization", p.Organization, true},
		{"person.location", p.Location, true}, {"person.phone", p.Phone, false}} {
		switch {
		case f.v == "" && f.required:
			e.Missing = append(e.Missing, f.name)
		case len(f.v) > PersonFieldMax:
			e.Invalid = append(e.Invalid, fmt.Sprintf("%s: longer than %d characters", f.name, PersonFieldMax))
		case strings.IndexFunc(f.v, unicode.IsControl) >= 0:
			e.Invalid = append(e.Invalid, f.name+": contains control characters (line breaks, tabs): use one line")
		}
	}
	if p.Phone != "" && !validPhone(p.Phone) {
		e.Invalid = append(e.Invalid, "person.phone: not a phone number (digits, spaces, + - / ( ) and an optional extension)")
	}
	if len(e.Missing) == 0 && len(e.Invalid) == 0 {
		return nil
	}
	return e
}

func validPhone(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(" +-/().x", r):
		default:
			return false
		}
	}
	return digits >= 3
}
