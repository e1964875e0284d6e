// Package kmod loads kernel modules the way udev+modprobe would, without either: it reads
// every device's modalias from sysfs, matches it against modules.alias, resolves
// modules.dep, and calls finit_module. The deploy environment has no udev and no kmod tools.
package kmod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Alias is one "alias <pattern> <module>" line.
type Alias struct {
	Pattern string
	Module  string
}

// Normalize gives a module's canonical name (the kernel treats - and _ alike).
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// ParseAliases reads modules.alias. Lines that are not aliases are skipped; a malformed alias
// line is an error naming it.
func ParseAliases(r io.Reader) ([]Alias, error) {
	var out []Alias
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] != "alias" {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("modules.alias line %d: want `alias <pattern> <module>`, got %q", n, line)
		}
		if _, err := path.Match(f[1], ""); err != nil {
			return nil, fmt.Errorf("modules.alias line %d: bad pattern %q: %w", n, f[1], err)
		}
		out = append(out, Alias{Pattern: f[1], Module: Normalize(f[2])})
	}
	return out, sc.Err()
}

// ParseDeps reads modules.dep ("path.ko: dep.ko dep2.ko") into module name → (path, deps).
func ParseDeps(r io.Reader) (map[string]Module, error) {
	out := map[string]Module{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, deps, ok := strings.Cut(line, ":")
		p = strings.TrimSpace(p)
		if !ok || !strings.HasSuffix(p, ".ko") {
			return nil, fmt.Errorf("modules.dep line %d: want `path.ko: deps…`, got %q", n, line)
		}
		m := Module{Name: ModuleName(p), Path: p}
		for _, d := range strings.Fields(deps) {
			m.Deps = append(m.Deps, ModuleName(d))
		}
		out[m.Name] = m
	}
	return out, sc.Err()
}

// ModuleName is the module name of a .ko path.
func ModuleName(p string) string {
	return Normalize(strings.TrimSuffix(path.Base(p), ".ko"))
}

// Module is one loadable module with its direct and indirect dependencies (modules.dep lists
// them all, deepest last).
type Module struct {
	Name string
	Path string // relative to the modules directory
	Deps []string
}

// Index answers "which modules serve this modalias".
type Index struct {
	aliases []Alias
	deps    map[string]Module
}

// LoadIndex reads modules.alias and modules.dep from dir (/lib/modules/<release>).
func LoadIndex(dir string) (*Index, error) {
	af, err := os.Open(filepath.Join(dir, "modules.alias"))
	if err != nil {
		return nil, fmt.Errorf("module index: %w (the deploy environment build writes it)", err)
	}
	defer af.Close()
	aliases, err := ParseAliases(af)
	if err != nil {
		return nil, err
	}
	df, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("module index: %w", err)
	}
	defer df.Close()
	deps, err := ParseDeps(df)
	if err != nil {
		return nil, err
	}
	return &Index{aliases: aliases, deps: deps}, nil
}

// Match returns the modules whose alias pattern matches modalias, sorted.
func (ix *Index) Match(modalias string) []string {
	var out []string
	for _, a := range ix.aliases {
		if ok, _ := path.Match(a.Pattern, modalias); ok && !slices.Contains(out, a.Module) {
			out = append(out, a.Module)
		}
	}
	slices.Sort(out)
	return out
}

// Order returns name's dependencies then name, in load order (deepest first).
func (ix *Index) Order(name string) ([]Module, error) {
	name = Normalize(name)
	m, ok := ix.deps[name]
	if !ok {
		return nil, fmt.Errorf("module %s is not in this deploy environment", name)
	}
	var out []Module
	// modules.dep lists deps with the deepest last; load them reversed.
	for i := len(m.Deps) - 1; i >= 0; i-- {
		d, ok := ix.deps[m.Deps[i]]
		if !ok {
			return nil, fmt.Errorf("module %s needs %s, which is missing", name, m.Deps[i])
		}
		out = append(out, d)
	}
	return append(out, m), nil
}

// Loader loads modules for the devices present.
type Loader struct {
	Dir   string // /lib/modules/<release>
	Sys   string // /sys
	Index *Index
	Log   *slog.Logger
	// Load loads one module file (default finit_module); tests record instead.
	Load func(path string) error
	// Settle is the pause between passes (0: none).
	Settle time.Duration

	mu     sync.Mutex
	loaded map[string]*modState
}

// finitModule loads a module file; EEXIST (already loaded or built in) is success.
func finitModule(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// LoadModule loads name and its dependencies. It is safe for concurrent use: loads of
// independent drivers run in parallel (probing a controller can take seconds), and a module
// shared by two chains is loaded once, the second caller waiting for the first.
func (l *Loader) LoadModule(name string) error {
	load := l.Load
	if load == nil {
		load = finitModule
	}
	order, err := l.Index.Order(name)
	if err != nil {
		return err
	}
	for _, m := range order {
		st := l.state(m.Name)
		st.once.Do(func() {
			st.err = load(filepath.Join(l.Dir, m.Path))
			if st.err == nil && l.Log != nil {
				l.Log.Debug("module loaded", "module", m.Name)
			}
		})
		if st.err != nil {
			return fmt.Errorf("load module %s (for %s): %w", m.Name, name, st.err)
		}
	}
	return nil
}

type modState struct {
	once sync.Once
	err  error
}

func (l *Loader) state(name string) *modState {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded == nil {
		l.loaded = map[string]*modState{}
	}
	st, ok := l.loaded[name]
	if !ok {
		st = &modState{}
		l.loaded[name] = st
	}
	return st
}

func (l *Loader) tried(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.loaded[name]
	return ok
}

// Modaliases lists the modalias of every device on every bus (sys/bus/*/devices/*): every
// device a driver can bind to sits on a bus, and reading those links is far cheaper than
// walking all of sys/devices (which matters under emulation, where each pass costs seconds).
func Modaliases(sys string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(sys, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a device vanishing meanwhile is normal
		}
		if s := strings.TrimSpace(string(b)); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// LoadForDevices loads the modules of every device present, again and again while loading
// makes new devices appear (a PCI virtio bridge, then its virtio-net device; a SATA controller,
// then its disks). It returns the modules loaded and the errors met (each also logged); one
// broken module must not keep the others from loading.
func (l *Loader) LoadForDevices(ctx context.Context, maxPasses int) (loaded []string, errs []error) {
	if maxPasses <= 0 {
		maxPasses = 5
	}
	seen := map[string]bool{}
	var mu sync.Mutex
	for pass := 0; pass < maxPasses && ctx.Err() == nil; pass++ {
		aliases, err := Modaliases(l.Sys)
		if err != nil {
			errs = append(errs, err)
		}
		var todo []string
		for _, a := range aliases {
			if seen[a] {
				continue
			}
			seen[a] = true
			for _, mod := range l.Index.Match(a) {
				if !l.tried(mod) && !slices.Contains(todo, mod) {
					todo = append(todo, mod)
				}
			}
		}
		if len(todo) == 0 {
			break
		}
		t := time.Now()
		var wg sync.WaitGroup
		for _, mod := range todo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := l.LoadModule(mod)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					if l.Log != nil {
						l.Log.Warn("module not loaded", "module", mod, "err", err)
					}
					return
				}
				loaded = append(loaded, mod)
			}()
		}
		wg.Wait()
		if l.Log != nil {
			l.Log.Info("module pass", "pass", pass+1, "modaliases", len(aliases), "modules", todo, "took", time.Since(t).Round(time.Millisecond))
		}
		// Probing is partly asynchronous (SCSI scans, virtio enumeration): wait until no new
		// device shows up for a moment before the next pass looks.
		l.settle(ctx, len(aliases))
	}
	slices.Sort(loaded)
	return loaded, errs
}

// settle waits (at most Settle) until the number of modaliases stops changing.
func (l *Loader) settle(ctx context.Context, before int) {
	if l.Settle <= 0 {
		return
	}
	deadline := time.Now().Add(l.Settle)
	stable := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(l.Settle / 5)
		as, _ := Modaliases(l.Sys)
		if len(as) == before {
			stable++
			if stable >= 2 {
				return
			}
		} else {
			before, stable = len(as), 0
		}
	}
}
