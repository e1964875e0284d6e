package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"slate/inventory"
)

// `slate machine list` sorts, pages and hides retired machines unless --all; a bad sort key
// fails with the API's message naming the parameter.
func TestMachineListSortPageAll(t *testing.T) {
	ctx := context.Background()
	a, srv, token := testSlate(t)
	if err := a.Store.Update(ctx, func(tx *inventory.Tx) error {
		for i := range 6 {
			st := "ready"
			if i == 0 {
				st = "retired"
			}
			if _, err := tx.CreateMachine(ctx, inventory.NewMachine{Name: fmt.Sprintf("press-%d", i), State: st,
				Labels: map[string]string{"ip": fmt.Sprintf("10.9.0.%d", 50-i)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env := &cliEnv{stdout: &out, stderr: &errOut, stdin: strings.NewReader(""), environ: func() []string { return nil },
			getenv: func(k string) string {
				return map[string]string{"SLATE_SERVER": srv.URL, "SLATE_TOKEN": token, "HOME": t.TempDir()}[k]
			}}
		err := dispatch(ctx, env, commands(), args, "slate")
		return out.String() + errOut.String(), err
	}
	out, err := run("machine", "list")
	if err != nil || strings.Contains(out, "press-0") || !strings.Contains(out, "5 of 5 machines (retired hidden") || !strings.Contains(out, "10.9.0.49") {
		t.Fatalf("machine list: %v\n%s", err, out)
	}
	out, err = run("machine", "list", "--all", "--sort", "ip", "--limit", "2", "--offset", "2")
	// By IP ascending: press-5 (.45), press-4 (.46) | press-3 (.47), press-2 (.48).
	if err != nil || !strings.Contains(out, "2 of 6 machines\n") || !strings.Contains(out, "press-3") || !strings.Contains(out, "press-2") || strings.Contains(out, "press-4") {
		t.Fatalf("machine list --all --sort ip page 2: %v\n%s", err, out)
	}
	out, err = run("machine", "list", "--sort", "name", "--desc", "--limit", "1")
	if err != nil || !strings.Contains(out, "press-5") || strings.Contains(out, "press-4") {
		t.Fatalf("machine list --desc: %v\n%s", err, out)
	}
	if _, err := run("machine", "list", "--sort", "serial"); err == nil || !strings.Contains(err.Error(), "sort must be one of") {
		t.Fatalf("bad sort: %v", err)
	}
}
