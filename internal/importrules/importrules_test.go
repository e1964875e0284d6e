package importrules

import (
	"bytes"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// rule forbids the packages Pkg links (its transitive dependencies) from matching any of
// Forbidden (an import path, or a path prefix ending in "/"). Allowed, when set, lists the only
// slate/ packages Pkg may link: a new agent-side package is added there knowingly.
type rule struct {
	Pkg       string
	Why       string
	Forbidden []string
	Allowed   []string
}

// serverOnly is what the deploy environment's PID 1 must never carry: the registry server and
// what it drags in (Redis, OpenTelemetry, gRPC), the PDF library, the HTTP framework, SQLite,
// and Slate's server packages.
var serverOnly = []string{
	"github.com/distribution/", "github.com/redis/", "go.opentelemetry.io/", "google.golang.org/grpc",
	"github.com/go-pdf/fpdf", "github.com/labstack/echo", "modernc.org/sqlite",
	"slate/inventory", "slate/lifecycle", "slate/api", "slate/ui", "slate/lab", "slate/appliance",
	"slate/image/registry", "slate/wipe/cert", "slate/dhcp", "slate/pxe", "slate/redfish", "slate/authguard",
}

func rules() []rule {
	return []rule{
		{Pkg: "slate/cmd/slate-agent", Why: "the agent is PID 1 of the deploy environment: every package is initrd size and boot time",
			Forbidden: serverOnly,
			Allowed:   []string{"slate/cmd/slate-agent", "slate/agent", "slate/image/disk", "slate/image/gpt", "slate/wipe"}},
		{Pkg: "slate/cmd/slate", Why: "the production appliance does not carry the QEMU lab (slate lab execs slate-lab)",
			Forbidden: []string{"slate/lab"}},
		{Pkg: "slate/inventory", Why: "the system of record imports no other Slate package",
			Forbidden: []string{"slate/"}},
		{Pkg: "slate/wipe", Why: "wipe runs on the agent: no store, no state machine, no signing, no PDF",
			Forbidden: []string{"slate/inventory", "slate/lifecycle", "slate/wipe/cert", "github.com/go-pdf/fpdf"}},
		{Pkg: "slate/wipe/cert", Why: "certificates are built from wipe results, not from the store",
			Forbidden: []string{"slate/inventory", "slate/lifecycle"}},
		{Pkg: "slate/redfish", Why: "BMC control knows no store and no state machine",
			Forbidden: []string{"slate/inventory", "slate/lifecycle"}},
		{Pkg: "slate/dhcp", Why: "dhcp owns its lease types and LeaseStore; appliance adapts the inventory to them",
			Forbidden: []string{"slate/inventory", "slate/lifecycle"}},
		{Pkg: "slate/pxe", Why: "pxe renders a Plan it is given; appliance asks lifecycle for it",
			Forbidden: []string{"slate/inventory", "slate/lifecycle"}},
		{Pkg: "slate/image/disk", Why: "the agent's image writer links no registry server",
			Forbidden: []string{"slate/inventory", "slate/lifecycle", "slate/image/registry", "github.com/distribution/"}},
		{Pkg: "slate/agent/...", Why: "the agent packages know no store and no state machine",
			Forbidden: serverOnly},
	}
}

func matches(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if pkg == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(pkg, p)) || strings.HasPrefix(pkg, p+"/") {
			return true
		}
	}
	return false
}

// violations checks each rule against deps (package → its transitive dependencies). A rule's
// Pkg ending in "/..." applies to every package under it.
func violations(deps map[string][]string, rs []rule) []string {
	var out []string
	for _, r := range rs {
		var pkgs []string
		if base, ok := strings.CutSuffix(r.Pkg, "/..."); ok {
			for p := range deps {
				if p == base || strings.HasPrefix(p, base+"/") {
					pkgs = append(pkgs, p)
				}
			}
		} else if _, ok := deps[r.Pkg]; ok {
			pkgs = []string{r.Pkg}
		} else {
			out = append(out, fmt.Sprintf("%s: no such package (fix the rule in internal/importrules)", r.Pkg))
		}
		sort.Strings(pkgs)
		for _, p := range pkgs {
			for _, d := range deps[p] {
				bad := matches(d, r.Forbidden)
				if !bad && len(r.Allowed) > 0 && strings.HasPrefix(d, "slate/") && !matches(d, r.Allowed) {
					bad = true
				}
				if bad {
					out = append(out, fmt.Sprintf("%s links %s: %s", p, d, r.Why))
				}
			}
		}
	}
	return out
}

// goList returns every Slate package with its transitive dependencies.
func goList(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "slate/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list slate/...: %v\n%s", err, stderr.String())
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	return deps
}

// The real tree obeys every rule. On failure: move the code that needs the forbidden package
// into a package the binary does not link (docs/architecture.md), do not relax the rule.
func TestImportRules(t *testing.T) {
	deps := goList(t)
	for _, v := range violations(deps, rules()) {
		t.Error(v)
	}
	agent := len(deps["slate/cmd/slate-agent"])
	t.Logf("slate-agent links %d packages", agent)
}

// The checker catches what it exists for: the agent as it was before the split (image and
// wipe mixing agent and server code) fails; the split agent passes.
func TestImportRulesCatchAServerPackageInTheAgent(t *testing.T) {
	split := map[string][]string{
		"slate/cmd/slate-agent": {"slate/agent", "slate/image/disk", "slate/image/gpt", "slate/wipe", "github.com/jsimonetti/rtnetlink"},
		"slate/cmd/slate":       {"slate/appliance", "slate/image/registry", "slate/wipe/cert"},
		"slate/inventory":       {"modernc.org/sqlite"},
		"slate/wipe":            {"golang.org/x/sys/unix"},
		"slate/wipe/cert":       {"slate/wipe", "github.com/go-pdf/fpdf"},
		"slate/redfish":         {"net/http"},
		"slate/dhcp":            {"github.com/insomniacslk/dhcp/dhcpv4"},
		"slate/pxe":             {"slate/assets"},
		"slate/image/disk":      {"slate/image/gpt"},
		"slate/agent":           {"slate/wipe"},
	}
	if v := violations(split, rules()); len(v) > 0 {
		t.Fatalf("the split tree is refused: %v", v)
	}
	for name, bad := range map[string]map[string][]string{
		"registry in the agent": {"slate/cmd/slate-agent": {"slate/image", "github.com/distribution/distribution/v3/registry/handlers"}},
		"redis in the agent":    {"slate/cmd/slate-agent": {"github.com/redis/go-redis/v9"}},
		"otel in the agent":     {"slate/cmd/slate-agent": {"go.opentelemetry.io/otel/sdk/trace"}},
		"grpc in the agent":     {"slate/cmd/slate-agent": {"google.golang.org/grpc"}},
		"PDF in the agent":      {"slate/cmd/slate-agent": {"github.com/go-pdf/fpdf"}},
		"store in the agent":    {"slate/cmd/slate-agent": {"slate/inventory", "modernc.org/sqlite"}},
		"new slate package":     {"slate/cmd/slate-agent": {"slate/internal/somethingnew"}},
		"lab in the appliance":  {"slate/cmd/slate": {"slate/lab", "slate/lab/vbmc"}},
		"inventory imports":     {"slate/inventory": {"slate/wipe"}},
		"wipe signs":            {"slate/wipe": {"slate/wipe/cert"}},
		"agent package":         {"slate/agent/inspect": {"slate/lifecycle"}},
		"store in dhcp":         {"slate/dhcp": {"slate/inventory", "modernc.org/sqlite"}},
		"lifecycle in pxe":      {"slate/pxe": {"slate/lifecycle"}},
		"store in pxe":          {"slate/pxe": {"slate/inventory"}},
	} {
		deps := map[string][]string{}
		for k, v := range split {
			deps[k] = v
		}
		for k, v := range bad {
			deps[k] = append(append([]string(nil), deps[k]...), v...)
		}
		if v := violations(deps, rules()); len(v) == 0 {
			t.Errorf("%s: not caught", name)
		}
	}
}

// misplacedMains lists main packages outside the two homes of commands: cmd/<name> for the
// binaries Slate ships, internal/cmd/<name> for benchmarks' servers and drivers, build tools
// and the init-side halves of VM tests.
func misplacedMains(names map[string]string) []string {
	var out []string
	for path, name := range names {
		if name != "main" {
			continue
		}
		rest, ok := strings.CutPrefix(path, "slate/cmd/")
		if !ok {
			rest, ok = strings.CutPrefix(path, "slate/internal/cmd/")
		}
		if !ok || rest == "" || strings.Contains(rest, "/") {
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}

func TestMainPackagesLiveInCmd(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.Name}} {{.ImportPath}}`, "slate/...")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list slate/...: %v\n%s", err, stderr.String())
	}
	names := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, path, _ := strings.Cut(line, " ")
		names[path] = name
	}
	if names["slate/cmd/slate-agent"] != "main" || names["slate/internal/cmd/wipebench"] != "main" {
		t.Fatalf("go list did not list the commands: %v", names)
	}
	for _, p := range misplacedMains(names) {
		t.Errorf("%s is a main package outside cmd/<name> (shipped binaries) and internal/cmd/<name> (bench and build tools): move it", p)
	}
	// The bad case beside the good: tools where they used to live are caught.
	old := map[string]string{"slate/cmd/slate": "main", "slate/internal/cmd/dhcpbench": "main", "slate/dhcp": "dhcp",
		"slate/dhcp/cmd/dhcpbench": "main", "slate/pxe/internal/benchserve": "main", "slate/internal/cmd/x/y": "main"}
	if got := misplacedMains(old); strings.Join(got, " ") != "slate/dhcp/cmd/dhcpbench slate/internal/cmd/x/y slate/pxe/internal/benchserve" {
		t.Fatalf("misplaced mains in the old layout: %v", got)
	}
}
