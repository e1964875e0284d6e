package ui

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		// Good: Slate's own pages, with their queries.
		{"/machines", "/machines"},
		{"/machines?state=ready", "/machines?state=ready"},
		{"/machines/m-abc123", "/machines/m-abc123"},
		{"/audit?actor=tom&before=10", "/audit?actor=tom&before=10"},
		{"/users", "/users"},
		{"/account", "/account"},
		{"/releases", "/releases"},
		// Hostile: the reported one, then every way a browser may read another host.
		{"/\t/other-host", "/machines"},
		{"/\t/other-host/machines", "/machines"},
		{"/\n/evil", "/machines"},
		{"/\r\n/evil", "/machines"},
		{"//evil", "/machines"},
		{"///evil", "/machines"},
		{`/\evil`, "/machines"},
		{`\/evil`, "/machines"},
		{`/machines/\/evil`, "/machines"},
		{"/%2F%2Fevil", "/machines"},
		{"/%2f/evil", "/machines"},
		{"/%5Cevil", "/machines"},
		{"/%09/evil", "/machines"},
		{"/machines/%2e%2e//evil", "/machines"},
		{"/machines/../../evil", "/machines"},
		{"https://evil.example/machines", "/machines"},
		{"http:/machines", "/machines"},
		{"javascript:alert(1)", "/machines"},
		{"data:text/html,hi", "/machines"},
		{"evil.example/machines", "/machines"},
		{"/machines@evil.example", "/machines"},
		{"/ /evil", "/machines"},
		{"/\u00a0/evil", "/machines"},
		{"/\u2028/evil", "/machines"},
		{"/\x00/evil", "/machines"},
		{"/api/v1/users", "/machines"},
		{"/login", "/machines"},
		{"/logout", "/machines"},
		{"/machinesevil", "/machines"},
		{"", "/machines"},
		{"/machines?" + strings.Repeat("a", 5000), "/machines"},
	} {
		if got := safeNext(tc.next); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
}

func TestFlashFromQuery(t *testing.T) {
	q := func(s string) url.Values { v, _ := url.ParseQuery(s); return v }
	if f := flashFromQuery(q("ok=Your+password+expired%3A+call+555-0100")); f != nil {
		t.Fatalf("free text shown: %+v", f)
	}
	if f := flashFromQuery(q("ok=<b>x</b>")); f != nil {
		t.Fatalf("unknown code shown: %+v", f)
	}
	if f := flashFromQuery(q("ok=machine-enrolled")); f == nil || f.Kind != "ok" {
		t.Fatalf("known success: %+v", f)
	}
	// A refusal is red whichever parameter carries it.
	for _, s := range []string{"ok=reason-required", "err=reason-required"} {
		if f := flashFromQuery(q(s)); f == nil || f.Kind != "error" || f.Field != "reason" {
			t.Fatalf("%s: %+v", s, f)
		}
	}
	if got := withFlash("/machines/m-1", "reason-required"); got != "/machines/m-1?err=reason-required" {
		t.Fatalf("withFlash: %s", got)
	}
	if got := withFlash("/users", "user-added"); got != "/users?ok=user-added" {
		t.Fatalf("withFlash: %s", got)
	}
}

// TestFlashCodesInSourceAreInTheTable: a code used in a redirect but missing from the table
// would silently show nothing.
func TestFlashCodesInSourceAreInTheTable(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	re := regexp.MustCompile(`withFlash\([^,]+,\s*"([^"]+)"\)`)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			n++
			if _, ok := flashFor(m[1]); !ok {
				t.Errorf("%s: flash code %q is not in flashFor's table", f, m[1])
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d withFlash calls: the pattern no longer matches the source", n)
	}
}
