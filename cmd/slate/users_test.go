package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUserCommands runs `slate user …` in-process against an in-process Slate on loopback.
func TestUserCommands(t *testing.T) {
	ctx := context.Background()
	_, srv, _ := testSlate(t)
	cfgHome := t.TempDir()
	slate := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(stdin),
			getenv: func(k string) string {
				return map[string]string{"XDG_CONFIG_HOME": cfgHome, "SLATE_SERVER": srv.URL}[k]
			}, environ: func() []string { return nil }}
		err := dispatch(ctx, env, commands(), args, "slate")
		return out.String() + errOut.String(), err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := slate(stdin, args...)
		if err != nil {
			t.Fatalf("slate %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	refused := func(want, stdin string, args ...string) {
		t.Helper()
		out, err := slate(stdin, args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("slate %s: got %v (%s), want an error saying %q", strings.Join(args, " "), err, out, want)
		}
	}
	must("first-pass-01\n", "login")
	refused("at least 12", "short-pw\n", "user", "add", "ops", "--role", "operator")
	must("tea-desk-lamp-42\n", "user", "add", "ops", "--role", "operator")
	must("", "user", "disable", "ops")
	if out := must("", "user", "list"); !strings.Contains(out, "disabled") || !strings.Contains(out, "LAST LOGIN") {
		t.Fatalf("list does not show the state:\n%s", out)
	}
	must("", "user", "enable", "ops")
	refused("your own", "", "user", "disable", "admin")
	refused("your own", "", "user", "delete", "admin", "--confirm", "admin")
	refused("--confirm", "", "user", "delete", "ops")
	// Own password: wrong current one refused, then changed; the cached token survives.
	refused("current password is wrong", "not-the-password\nnew-admin-pass-77\n", "user", "passwd")
	must("first-pass-01\nnew-tea-kettle-77\n", "user", "passwd")
	must("", "user", "list")
	refused("common", "password1234\n", "user", "passwd", "ops")
	must("blue-desk-lamp-43\n", "user", "passwd", "ops")
	if out := must("", "user", "revoke-tokens", "ops"); !strings.Contains(out, "Revoked 0") {
		t.Fatalf("revoke-tokens: %s", out)
	}
	must("", "user", "revoke-tokens")
	must("", "user", "delete", "ops", "--confirm", "ops")
	refused(`no user "ops"`, "", "user", "disable", "ops")
}
