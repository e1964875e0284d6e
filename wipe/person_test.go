package wipe

import (
	"errors"
	"strings"
	"testing"
)

// A person for a certificate needs name, title, organization and location; each missing one
// is named by its field, a malformed phone or a line break (which would forge a line on the
// PDF) is refused, and defaults fill only what was left empty.
func TestPersonCheck(t *testing.T) {
	good := Person{Name: "Olga Weber", Title: "Line technician", Organization: "Werk 4 GmbH", Location: "Halle 2", Phone: "+49 (711) 555-0 x12"}
	if err := good.Check(); err != nil {
		t.Fatalf("good person refused: %v", err)
	}
	if err := (Person{Name: "Olga", Title: "T", Organization: "O", Location: "L"}).Check(); err != nil {
		t.Fatalf("a person without phone refused: %v", err)
	}
	for _, c := range []struct {
		p      Person
		fields string
	}{
		{Person{}, "person.name person.title person.organization person.location"},
		{Person{Name: "Olga", Title: "  ", Organization: "O", Location: "L"}, "person.title"},
		{Person{Name: "Olga", Title: "T", Organization: "O", Location: "L", Phone: "call me"}, "person.phone"},
		{Person{Name: "Olga\nSigned: the auditor", Title: "T", Organization: "O", Location: "L"}, "person.name"},
		{Person{Name: "Olga", Title: strings.Repeat("x", PersonFieldMax+1), Organization: "O", Location: "L"}, "person.title"},
	} {
		err := c.p.Check()
		var pe *PersonError
		if !errors.As(err, &pe) || strings.Join(pe.Fields(), " ") != c.fields {
			t.Fatalf("%+v: %v, want fields %q", c.p, err, c.fields)
		}
		for _, f := range strings.Fields(c.fields) {
			if !strings.Contains(err.Error(), f) {
				t.Fatalf("%+v: %q does not name %s", c.p, err, f)
			}
		}
	}
	d := Person{Name: "Default", Title: "Technician", Organization: "Werk 4", Location: "Halle 1", Phone: "0711"}
	got := Person{Name: "Olga", Location: "Halle 2"}.WithDefaults(d)
	if got != (Person{Name: "Olga", Title: "Technician", Organization: "Werk 4", Location: "Halle 2", Phone: "0711"}) {
		t.Fatalf("with defaults: %+v", got)
	}
}
