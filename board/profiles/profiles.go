// Package profiles holds the board profiles built into nvrd, one file per
// hardware model (NAME.board, in the format board.ParseProfile documents).
// It only reads an embedded file system and is safe for concurrent use.
package profiles

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.board
var files embed.FS

// Names lists the built-in profiles' names (file names without .board),
// sorted.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".board"))
	}
	sort.Strings(names)
	return names
}

// Lookup returns the text of the built-in profile name.
func Lookup(name string) ([]byte, error) {
	b, err := files.ReadFile(name + ".board")
	if err != nil {
		return nil, fmt.Errorf("board profile %q is not built in (have %s): %w", name, strings.Join(Names(), ", "), fs.ErrNotExist)
	}
	return b, nil
}
