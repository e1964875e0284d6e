package importrules

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"slate/agent/agentproto"
)

// notKinds are the string literals outside agentproto that spell a task kind's name but are not
// a task kind, keyed by file (from the module root) and literal, with why. Anything else that
// equals a kind is a second declaration of the contract: use the agentproto constant.
var notKinds = map[string]string{
	`api/agentapi/agentapi.go "wait"`:    "the long-poll query parameter of GET /agent/v1/tasks/next (?wait=25s)",
	`pxe/scripts.go "poweroff"`:          "a boot script action (the machine is told why and powers off)",
	`lifecycle/boot.go "poweroff"`:       "a boot decision (BootPowerOff), not a task",
	`cmd/slate/cli.go "wipe-plan"`:       "the CLI subcommand `slate machine wipe-plan`",
	`cmd/slate-agent/main.go "inspect"`:  "the agent's one-shot subcommand `slate-agent inspect`",
	`cmd/slate-agent/main.go "reboot"`:   "argv[0] of /sbin/reboot",
	`cmd/slate-agent/main.go "poweroff"`: "argv[0] of /sbin/poweroff",
}

// kindLiterals parses one Go file and returns every string literal that equals a task kind
// and is not listed in allowed, as "file:line: literal". seen collects the allowed entries
// that matched, so stale ones can be reported.
func kindLiterals(name string, src []byte, kinds map[string]bool, allowed map[string]string, seen map[string]bool) ([]string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || !kinds[s] {
			return true
		}
		key := name + " " + strconv.Quote(s)
		if _, ok := allowed[key]; ok {
			seen[key] = true
			return true
		}
		out = append(out, fmt.Sprintf("%s:%d: %s", name, fset.Position(lit.Pos()).Line, lit.Value))
		return true
	})
	return out, nil
}

func kindSet() map[string]bool {
	kinds := map[string]bool{}
	for _, k := range agentproto.Kinds() {
		kinds[string(k)] = true
	}
	return kinds
}

// TestNoTaskKindLiteralsOutsideAgentproto: a task kind is declared once, in agentproto, and
// everything else uses its constant, so the compiler catches a misspelt or retired kind. It
// scans every non-test Go file of the module except agentproto's.
func TestNoTaskKindLiteralsOutsideAgentproto(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .IgnoredGoFiles}} {{.}}{{end}}`, "slate/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list slate/...: %v\n%s", err, stderr.String())
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	kinds, seen := kindSet(), map[string]bool{}
	files := 0
	var found []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] == "slate/agent/agentproto" {
			continue
		}
		for _, name := range f[2:] {
			path := filepath.Join(f[1], name)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				t.Fatal(err)
			}
			lits, err := kindLiterals(filepath.ToSlash(rel), src, kinds, notKinds, seen)
			if err != nil {
				t.Fatal(err)
			}
			files++
			found = append(found, lits...)
		}
	}
	if files < 100 {
		t.Fatalf("scanned only %d files: go list did not list the module", files)
	}
	t.Logf("scanned %d non-test Go files for %d task kinds", files, len(kinds))
	for _, l := range found {
		t.Errorf("%s is a task kind spelt as a literal: use the agentproto.Kind… constant (or, if it is not a task kind, add it to notKinds with why)", l)
	}
	var stale []string
	for k := range notKinds {
		if !seen[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	for _, k := range stale {
		t.Errorf("notKinds lists %s, which no longer occurs: remove it", k)
	}
}

// The scan catches what it exists for: the kinds as they were declared before the contract
// moved to agentproto (a lifecycle constant, api's list of manual kinds, the agent API's
// install check) are each reported; a listed non-kind use is not, but the same literal in
// another file is.
func TestKindLiteralScanCatchesTheOldDeclarations(t *testing.T) {
	old := map[string]string{
		"lifecycle/decommission.go": "package lifecycle\n\nconst (\n\tTaskWipePlan = \"wipe-plan\"\n\tTaskWipe = \"wipe\"\n)\n",
		"api/tasks.go":              "package api\n\nvar manualTaskKinds = map[string]bool{\"inspect\": true, \"reboot\": true, \"poweroff\": true, \"wait\": true}\n",
		"api/agentapi/agentapi.go": "package agentapi\n\nfunc leavesSystem(kind string) bool { return kind == \"install-image\" || kind == `install-bootc` }\n" +
			"func wait(q map[string]string) string { return q[\"wait\"] }\n",
		"pxe/scripts.go":   "package pxe\n\nconst ActionPowerOff = \"poweroff\"\n",
		"pxe/elsewhere.go": "package pxe\n\nconst X = \"poweroff\"\n",
		"ui/clean.go":      "package ui\n\nconst kind = agentproto.KindWipe\nconst msg = \"wipe plan of %s\"\n",
	}
	want := map[string]int{"lifecycle/decommission.go": 2, "api/tasks.go": 4, "api/agentapi/agentapi.go": 2,
		"pxe/scripts.go": 0, "pxe/elsewhere.go": 1, "ui/clean.go": 0}
	kinds := kindSet()
	for name, src := range old {
		got, err := kindLiterals(name, []byte(src), kinds, notKinds, map[string]bool{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want[name] {
			t.Errorf("%s: found %v, want %d", name, got, want[name])
		}
	}
}
