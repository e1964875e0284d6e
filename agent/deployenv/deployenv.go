// Package deployenv builds the deploy environment's initramfs from an unpacked Debian kernel
// package: the static slate-agent as /init, the kernel modules asked for with everything they
// depend on, and the module index (modules.alias, modules.dep) the agent loads drivers from.
//
// The archive is reproducible: entries sorted by path, every mtime SOURCE_DATE_EPOCH, owner
// 0:0, inode numbers in order, gzip without name or time. Same inputs, same sha256.
package deployenv

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"slate/agent/kmod"
)

// Modinfo is what a module declares about itself in its .modinfo section.
type Modinfo struct {
	Name    string
	Depends []string
	Aliases []string
	SoftPre []string // softdep pre: modules that should be loaded first (e.g. crc implementations)
}

// ParseModinfo decodes a .modinfo section (NUL-separated key=value pairs).
func ParseModinfo(b []byte) (Modinfo, error) {
	var m Modinfo
	for _, kv := range bytes.Split(b, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			m.Name = kmod.Normalize(v)
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					m.Depends = append(m.Depends, kmod.Normalize(d))
				}
			}
		case "alias":
			if strings.ContainsAny(v, " \t\n") {
				return m, fmt.Errorf("alias %q contains white space", v)
			}
			m.Aliases = append(m.Aliases, v)
		case "softdep":
			// "pre: a b post: c"
			pre := false
			for _, f := range strings.Fields(v) {
				switch f {
				case "pre:":
					pre = true
				case "post:":
					pre = false
				default:
					if pre {
						m.SoftPre = append(m.SoftPre, kmod.Normalize(f))
					}
				}
			}
		}
	}
	return m, nil
}

// ReadModinfo reads the .modinfo section of a .ko file.
func ReadModinfo(p string) (Modinfo, error) {
	f, err := elf.Open(p)
	if err != nil {
		return Modinfo{}, fmt.Errorf("module %s: %w", p, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return Modinfo{}, fmt.Errorf("module %s has no .modinfo section", p)
	}
	b, err := s.Data()
	if err != nil {
		return Modinfo{}, fmt.Errorf("module %s: %w", p, err)
	}
	m, err := ParseModinfo(b)
	if err != nil {
		return m, fmt.Errorf("module %s: %w", p, err)
	}
	if m.Name == "" {
		m.Name = kmod.ModuleName(p)
	}
	return m, nil
}

// Options describe one build.
type Options struct {
	ModulesDir string   // <unpacked kernel package>/lib/modules/<release>
	Release    string   // kernel release, e.g. 6.1.0-56-amd64
	Agent      string   // the static slate-agent binary
	Modules    []string // modules wanted (their dependencies are added)
	Epoch      int64    // mtime of every entry (SOURCE_DATE_EPOCH)
}

// Result says what went in.
type Result struct {
	Modules      []string // every module included, in load order
	Uncompressed int64
}

type entry struct {
	name  string
	mode  uint32 // with type bits
	data  []byte
	rdevM uint32
	rdevm uint32
}

// Resolve returns the modules to include, dependencies first, and the load order of each.
func Resolve(modulesDir string, want []string) (order []string, info map[string]Modinfo, paths map[string]string, err error) {
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modulesDir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[kmod.ModuleName(l)] = true
		}
	}
	paths = map[string]string{}
	err = filepath.WalkDir(filepath.Join(modulesDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(modulesDir, p)
			paths[kmod.ModuleName(p)] = filepath.ToSlash(rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list modules in %s: %w", modulesDir, err)
	}
	info = map[string]Modinfo{}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name, from string, soft bool) error
	visit = func(name, from string, soft bool) error {
		name = kmod.Normalize(name)
		if builtin[name] || state[name] == 2 {
			return nil
		}
		if state[name] == 1 {
			return nil // dependency cycle through softdeps: order as found
		}
		p, ok := paths[name]
		if !ok {
			if soft {
				return nil
			}
			if from == "" {
				return fmt.Errorf("module %s is neither in %s nor built in", name, modulesDir)
			}
			return fmt.Errorf("module %s (needed by %s) is missing from %s", name, from, modulesDir)
		}
		state[name] = 1
		mi, err := ReadModinfo(filepath.Join(modulesDir, p))
		if err != nil {
			return err
		}
		info[name] = mi
		for _, d := range mi.SoftPre {
			if err := visit(d, name, true); err != nil {
				return err
			}
		}
		for _, d := range mi.Depends {
			if err := visit(d, name, false); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, w := range want {
		if err := visit(w, "", false); err != nil {
			return nil, nil, nil, err
		}
	}
	return order, info, paths, nil
}

// Build writes the gzip-compressed initramfs to w.
func Build(w io.Writer, o Options) (Result, error) {
	order, info, paths, err := Resolve(o.ModulesDir, o.Modules)
	if err != nil {
		return Result{}, err
	}
	agentBin, err := os.ReadFile(o.Agent)
	if err != nil {
		return Result{}, fmt.Errorf("agent binary: %w (build it with CGO_ENABLED=0)", err)
	}
	if f, err := elf.NewFile(bytes.NewReader(agentBin)); err != nil {
		return Result{}, fmt.Errorf("agent binary %s is not an ELF file: %w", o.Agent, err)
	} else if f.Section(".interp") != nil {
		return Result{}, fmt.Errorf("agent binary %s is dynamically linked: build it with CGO_ENABLED=0", o.Agent)
	}
	modRoot := "lib/modules/" + o.Release
	es := []entry{
		{name: "dev", mode: 0o40755}, {name: "dev/console", mode: 0o20600, rdevM: 5, rdevm: 1},
		{name: "dev/null", mode: 0o20666, rdevM: 1, rdevm: 3},
		{name: "etc", mode: 0o40755}, {name: "proc", mode: 0o40755}, {name: "sys", mode: 0o40755},
		{name: "run", mode: 0o40755}, {name: "tmp", mode: 0o41777}, {name: "root", mode: 0o40700},
		{name: "init", mode: 0o100755, data: agentBin},
		{name: "etc/resolv.conf", mode: 0o100644, data: []byte{}},
	}
	dirs := map[string]bool{}
	addDirs := func(p string) {
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			es = append(es, entry{name: d, mode: 0o40755})
		}
	}
	var alias, dep strings.Builder
	alias.WriteString("# Aliases of the modules in this deploy environment (written by slate's deployenv builder).\n")
	// Transitive deps per module, deepest last (the modules.dep convention).
	var closure func(name string, seen map[string]bool, out *[]string)
	closure = func(name string, seen map[string]bool, out *[]string) {
		mi := info[name]
		for _, d := range append(slices.Clone(mi.SoftPre), mi.Depends...) {
			if _, ok := info[d]; !ok || seen[d] {
				continue
			}
			seen[d] = true
			*out = append(*out, d)
			closure(d, seen, out)
		}
	}
	for _, name := range order {
		p := paths[name]
		b, err := os.ReadFile(filepath.Join(o.ModulesDir, p))
		if err != nil {
			return Result{}, err
		}
		full := modRoot + "/" + p
		addDirs(full)
		es = append(es, entry{name: full, mode: 0o100644, data: b})
		for _, a := range info[name].Aliases {
			fmt.Fprintf(&alias, "alias %s %s\n", a, name)
		}
	}
	// modules.dep lists, for each module, every dependency with the deepest last.
	names := slices.Clone(order)
	slices.Sort(names)
	for _, name := range names {
		var deps []string
		closure(name, map[string]bool{name: true}, &deps)
		// Sort the closure so that a module comes after everything that needs it.
		pos := map[string]int{}
		for i, n := range order {
			pos[n] = i
		}
		slices.SortFunc(deps, func(a, b string) int { return pos[b] - pos[a] })
		fmt.Fprintf(&dep, "%s:", paths[name])
		for _, d := range deps {
			fmt.Fprintf(&dep, " %s", paths[d])
		}
		dep.WriteString("\n")
	}
	addDirs(modRoot + "/modules.alias")
	es = append(es, entry{name: modRoot + "/modules.alias", mode: 0o100644, data: []byte(alias.String())},
		entry{name: modRoot + "/modules.dep", mode: 0o100644, data: []byte(dep.String())})
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return Result{}, err
	}
	cw := &countWriter{w: gz}
	if err := writeCPIO(cw, es, o.Epoch); err != nil {
		return Result{}, err
	}
	if err := gz.Close(); err != nil {
		return Result{}, err
	}
	return Result{Modules: order, Uncompressed: cw.n}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeCPIO writes entries in the "newc" format the kernel unpacks.
func writeCPIO(w io.Writer, es []entry, mtime int64) error {
	pad := func(n int) []byte { return make([]byte, (4-n%4)%4) }
	write := func(ino int, e entry) error {
		nlink := 1
		if e.mode&0o170000 == 0o40000 {
			nlink = 2
		}
		name := e.name + "\x00"
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, nlink, mtime, len(e.data), 0, 0, e.rdevM, e.rdevm, len(name), 0)
		for _, b := range [][]byte{[]byte(hdr), []byte(name), pad(len(hdr) + len(name)), e.data, pad(len(e.data))} {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	for i, e := range es {
		if err := write(i+1, e); err != nil {
			return err
		}
	}
	return write(0, entry{name: "TRAILER!!!"})
}

// Installed describes a built deploy environment in a directory (Slate's data dir/deployenv).
type Installed struct {
	Dir         string `json:"dir"`
	Kernel      string `json:"kernel"` // the Debian package it came from
	KernelBytes int64  `json:"kernel_bytes"`
	InitrdBytes int64  `json:"initrd_bytes"`
	SHA256SUMS  string `json:"sha256sums"`
}

// ErrMissing says the deploy environment has not been built into a directory; its message
// tells the operator how to build it.
type ErrMissing struct{ Dir, File string }

func (e *ErrMissing) Error() string {
	return fmt.Sprintf("deploy environment missing: %s/%s does not exist; build it with "+
		"`make deploy-env DEPLOYENV_INSTALL=%s` (or copy assets/deployenv/{vmlinuz,initrd.gz} there)", e.Dir, e.File, e.Dir)
}

// Check reports what deploy environment dir holds (vmlinuz and initrd.gz), or *ErrMissing.
func Check(dir string) (Installed, error) {
	in := Installed{Dir: dir}
	for _, f := range []struct {
		name string
		size *int64
	}{{"vmlinuz", &in.KernelBytes}, {"initrd.gz", &in.InitrdBytes}} {
		st, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil || st.Size() == 0 {
			return in, &ErrMissing{Dir: dir, File: f.name}
		}
		*f.size = st.Size()
	}
	if b, err := os.ReadFile(filepath.Join(dir, "KERNEL")); err == nil {
		in.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS")); err == nil {
		in.SHA256SUMS = string(b)
	}
	return in, nil
}
