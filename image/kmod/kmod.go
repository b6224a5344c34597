package kmod

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ErrUnknownModule reports a requested module that is neither in the tree
// nor built into the kernel.
var ErrUnknownModule = errors.New("kmod: unknown module")

// ErrMalformed reports a modules.dep or .modinfo that cannot be parsed.
var ErrMalformed = errors.New("kmod: malformed module metadata")

// Dep maps a module's path relative to the modules directory
// ("kernel/drivers/md/raid1.ko") to the relative paths of the modules it
// depends on directly.
type Dep map[string][]string

// Name returns the canonical module name of a module path: the base name
// without .ko (and a compression suffix), with '-' as '_'.
func Name(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		b = strings.TrimSuffix(b, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(b, ".ko"), "-", "_")
}

// ParseDep reads a modules.dep file.
func ParseDep(r io.Reader) (Dep, error) {
	d := Dep{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		mod = strings.TrimSpace(mod)
		if !ok || !validPath(mod) {
			return nil, fmt.Errorf("%w: modules.dep line %d: %q", ErrMalformed, n, line)
		}
		if _, dup := d[mod]; dup {
			return nil, fmt.Errorf("%w: modules.dep line %d: %s listed twice", ErrMalformed, n, mod)
		}
		list := []string{}
		for _, dep := range strings.Fields(deps) {
			if !validPath(dep) {
				return nil, fmt.Errorf("%w: modules.dep line %d: bad dependency %q", ErrMalformed, n, dep)
			}
			list = append(list, dep)
		}
		d[mod] = list
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return d, nil
}

func validPath(p string) bool {
	return strings.Contains(p, ".ko") && !strings.HasPrefix(p, "/") && !strings.Contains(p, "..") && path.Clean(p) == p
}

// Marshal writes d as a modules.dep, lines sorted by module path.
func (d Dep) Marshal() []byte {
	mods := make([]string, 0, len(d))
	for m := range d {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	var b bytes.Buffer
	for _, m := range mods {
		b.WriteString(m + ":")
		for _, dep := range d[m] {
			b.WriteString(" " + dep)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseModinfo decodes an ELF .modinfo section: NUL-separated key=value
// strings. It returns the module's name and its direct dependencies' names.
func ParseModinfo(sec []byte) (name string, depends []string, err error) {
	for _, f := range bytes.Split(sec, []byte{0}) {
		k, v, ok := bytes.Cut(f, []byte("="))
		if !ok {
			if len(bytes.TrimSpace(f)) != 0 {
				return "", nil, fmt.Errorf("%w: .modinfo field %q", ErrMalformed, f)
			}
			continue
		}
		switch string(k) {
		case "name":
			name = string(v)
		case "depends":
			for _, dep := range strings.Split(string(v), ",") {
				if dep = strings.TrimSpace(dep); dep != "" {
					depends = append(depends, strings.ReplaceAll(dep, "-", "_"))
				}
			}
		}
	}
	if name == "" {
		return "", nil, fmt.Errorf("%w: .modinfo has no name", ErrMalformed)
	}
	return strings.ReplaceAll(name, "-", "_"), depends, nil
}

// readModinfo reads the .modinfo section of an uncompressed .ko file.
func readModinfo(file string) (string, []string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, fmt.Errorf("kmod: %s: %w", file, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return "", nil, fmt.Errorf("%w: %s has no .modinfo", ErrMalformed, file)
	}
	b, err := sec.Data()
	if err != nil {
		return "", nil, fmt.Errorf("kmod: %s .modinfo: %w", file, err)
	}
	name, deps, err := ParseModinfo(b)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", file, err)
	}
	return name, deps, nil
}

// Generate builds the Dep of every uncompressed module under modDir/kernel
// from their .modinfo sections (what depmod derives for modules.dep).
func Generate(modDir string) (Dep, error) {
	paths := map[string]string{} // name -> rel path
	direct := map[string][]string{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".ko") {
			return err
		}
		rel, err := filepath.Rel(modDir, p)
		if err != nil {
			return err
		}
		name, deps, err := readModinfo(p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		paths[name] = rel
		direct[rel] = deps
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kmod: scan %s: %w", modDir, err)
	}
	d := Dep{}
	for rel, deps := range direct {
		list := []string{}
		for _, n := range deps {
			p, ok := paths[n]
			if !ok {
				return nil, fmt.Errorf("%w: %s depends on %s, not in the tree", ErrUnknownModule, rel, n)
			}
			list = append(list, p)
		}
		sort.Strings(list)
		d[rel] = list
	}
	return d, nil
}

// ReadBuiltin reads modules.builtin and returns the built-in module names.
func ReadBuiltin(modDir string) (map[string]bool, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.builtin"))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kmod: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out[Name(l)] = true
		}
	}
	return out, sc.Err()
}

// Resolve returns the module paths needed to load names, dependencies
// before their dependents, in a deterministic order. Names built into the
// kernel (builtin) are skipped; a name in neither is ErrUnknownModule.
func (d Dep) Resolve(names []string, builtin map[string]bool) ([]string, error) {
	byName := map[string]string{}
	for p := range d {
		byName[Name(p)] = p
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		switch state[p] {
		case 1:
			return fmt.Errorf("%w: dependency cycle %s -> %s", ErrMalformed, strings.Join(chain, " -> "), p)
		case 2:
			return nil
		}
		state[p] = 1
		deps, ok := d[p]
		if !ok {
			return fmt.Errorf("%w: %s (needed by %s) is not in modules.dep", ErrUnknownModule, p, strings.Join(chain, " -> "))
		}
		for _, dep := range deps {
			if err := visit(dep, append(chain, p)); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		n = strings.ReplaceAll(n, "-", "_")
		p, ok := byName[n]
		if !ok {
			if builtin[n] {
				continue
			}
			return nil, fmt.Errorf("%w: %s", ErrUnknownModule, n)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Subset returns the Dep restricted to paths (which must be closed under
// dependencies, as Resolve's result is).
func (d Dep) Subset(paths []string) Dep {
	s := Dep{}
	for _, p := range paths {
		s[p] = d[p]
	}
	return s
}
