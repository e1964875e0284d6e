package ui_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"slate/inventory"
)

// TestLeasesPage: the page is linked in the nav, lists the stored leases with their filters,
// escapes a hostile hostname (a client's option 12 can say anything: `<script>` must arrive as
// text, never as markup), and a bad filter is a 400 naming the field.
func TestLeasesPage(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	hostile := `<script>alert("pwned")</script>`
	if err := s.a.Store.CommitLeases(ctx, []inventory.LeaseChange{
		{Lease: inventory.Lease{MAC: "52:54:00:00:10:01", IP: netip.MustParseAddr("10.9.0.10"), Iface: "eth1", Hostname: hostile, State: "bound", ExpiresAt: time.Now().Add(time.Hour)}},
		{Lease: inventory.Lease{MAC: "52:54:00:00:10:02", IP: netip.MustParseAddr("10.9.0.11"), Iface: "eth1", Hostname: "press-02", State: "released", ExpiresAt: time.Now()}},
	}); err != nil {
		t.Fatal(err)
	}
	aud := formClient(t, s, "aud", "readonly-pw-01") // every role reads leases
	r, err := aud.Get(s.srv.URL + "/leases")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(r)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("leases page: %d\n%s", r.StatusCode, page)
	}
	for _, want := range []string{`href="/leases" class="active"`, "10.9.0.10", "52:54:00:00:10:02", "press-02",
		`&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;`, "answers DHCP on no interface"} {
		if !strings.Contains(page, want) {
			t.Fatalf("leases page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Fatal("the hostile hostname reached the page as markup")
	}
	r, _ = aud.Get(s.srv.URL + "/leases?state=released")
	if page := readAll(r); !strings.Contains(page, "10.9.0.11") || strings.Contains(page, "10.9.0.10") {
		t.Fatalf("state filter: released lease missing or bound one shown")
	}
	// A bad filter: 400, the field named, the value not repeated (a link cannot put words on
	// Slate's page), the field marked.
	r, _ = aud.Get(s.srv.URL + "/leases?mac=" + "Call%20555-0100%20for%20help")
	page = readAll(r)
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(page, "The mac filter is not valid") || strings.Contains(between(page, `class="flash error"`, "</div>"), "555-0100") ||
		!strings.Contains(page, `name="mac" value="Call 555-0100 for help" aria-invalid="true"`) {
		t.Fatalf("bad MAC filter: %d\n%s", r.StatusCode, between(page, "<main>", "</form>"))
	}
}
