package mkimage

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultPrograms are the dynamically linked programs the image takes from
// Options.UserlandRoot: mdadm, which assembles (and at first boot creates)
// the RAID1 recording array.
func DefaultPrograms() []string { return []string{"sbin/mdadm"} }

// libDirs are where the dynamic loader of a Debian amd64 root looks.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"}

// programFiles resolves programs (paths inside root) and every shared
// library they need, recursively, with the dynamic loader. It returns
// mkuimage file specs ("host:archive"), sorted: each archive path is the
// path the program or the loader asks for, and the host file is the real
// file behind it in root (symbolic links are followed inside root).
func programFiles(root string, programs []string) ([]string, error) {
	files := map[string]string{} // archive path -> host file
	var queue []string           // archive paths of ELF files to scan
	add := func(archive string) error {
		if _, ok := files[archive]; ok {
			return nil
		}
		host, err := resolveIn(root, archive)
		if err != nil {
			return err
		}
		files[archive] = host
		queue = append(queue, archive)
		return nil
	}
	for _, p := range programs {
		if err := add(strings.TrimPrefix(path.Clean(p), "/")); err != nil {
			return nil, fmt.Errorf("mkimage: program %s: %w", p, err)
		}
	}
	for len(queue) > 0 {
		archive := queue[0]
		queue = queue[1:]
		needed, interp, err := elfNeeds(files[archive])
		if err != nil {
			return nil, fmt.Errorf("mkimage: %s: %w", archive, err)
		}
		if interp != "" {
			if err := add(strings.TrimPrefix(interp, "/")); err != nil {
				return nil, fmt.Errorf("mkimage: %s: interpreter: %w", archive, err)
			}
		}
		for _, lib := range needed {
			found := ""
			for _, d := range libDirs {
				if _, err := resolveIn(root, path.Join(d, lib)); err == nil {
					found = path.Join(d, lib)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("mkimage: %s needs %s, not found under %s (%s)", archive, lib, root, strings.Join(libDirs, ", "))
			}
			if err := add(found); err != nil {
				return nil, err
			}
		}
	}
	specs := make([]string, 0, len(files))
	for archive, host := range files {
		specs = append(specs, host+":"+archive)
	}
	sort.Strings(specs)
	return specs, nil
}

// elfNeeds returns an ELF file's DT_NEEDED libraries and its interpreter
// (PT_INTERP; "" for a shared library or a static program).
func elfNeeds(file string) (needed []string, interp string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	needed, err = f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, "", fmt.Errorf("read DT_NEEDED: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, "", fmt.Errorf("read PT_INTERP: %w", err)
		}
		interp = strings.TrimRight(string(b), "\x00")
	}
	return needed, interp, nil
}

// resolveIn returns the regular file that rel (a path inside root) names,
// following symbolic links as if root were "/".
func resolveIn(root, rel string) (string, error) {
	cur := path.Clean("/" + rel)
	for hops := 0; hops < 40; hops++ {
		host := filepath.Join(root, filepath.FromSlash(cur))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return "", fmt.Errorf("%s is not a regular file", host)
			}
			return host, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(cur), target)
		}
		cur = path.Clean(target)
	}
	return "", fmt.Errorf("%s: too many symbolic links", rel)
}
