package console

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrSyntax marks a command line that cannot be split into words.
var ErrSyntax = errors.New("syntax error")

// ParseLine splits a command line into words, shell-like but simpler:
// words are separated by spaces or tabs; 'single quotes' keep everything
// literally; "double quotes" keep everything but \" and \\; outside quotes a
// backslash escapes the next character. A line that is not valid UTF-8,
// holds a control character, is longer than maxLen bytes or has an open
// quote is refused with an error wrapping ErrSyntax that fits on one line.
func ParseLine(line string, maxLen int) ([]string, error) {
	if len(line) > maxLen {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrSyntax, maxLen)
	}
	if !utf8.ValidString(line) {
		return nil, fmt.Errorf("%w: line is not valid UTF-8", ErrSyntax)
	}
	for i, r := range line {
		if (r < 0x20 && r != '\t') || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return nil, fmt.Errorf("%w: control character %U at byte %d", ErrSyntax, r, i)
		}
	}
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote rune // 0, '\'' or '"'
		esc   bool
	)
	for _, r := range line {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				esc = true
			default:
				cur.WriteRune(r)
			}
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '\\':
			esc, in = true, true
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("%w: unterminated %c quote", ErrSyntax, quote)
	case esc:
		return nil, fmt.Errorf("%w: backslash at the end of the line", ErrSyntax)
	case in:
		words = append(words, cur.String())
	}
	return words, nil
}

// Quote returns w as one word ParseLine reads back unchanged.
func Quote(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t'\"\\") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// flagKind says whether a command flag takes a value.
type flagKind int

const (
	boolFlag  flagKind = iota // --name
	valueFlag                 // --name VALUE or --name=VALUE
)

// parsedArgs is a command's arguments split into positionals and flags.
type parsedArgs struct {
	pos   []string
	flags map[string]string // bool flags map to "true"
}

func (p parsedArgs) has(name string) bool { _, ok := p.flags[name]; return ok }

func (p parsedArgs) get(name string) (string, bool) { v, ok := p.flags[name]; return v, ok }

// parseFlags accepts flags anywhere among the arguments; "--" ends them.
func parseFlags(args []string, spec map[string]flagKind) (parsedArgs, error) {
	out := parsedArgs{flags: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out.pos = append(out.pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "--") || len(a) == 2 {
			out.pos = append(out.pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		kind, ok := spec[name]
		if !ok {
			return parsedArgs{}, fmt.Errorf("unknown flag --%s", name)
		}
		if _, dup := out.flags[name]; dup {
			return parsedArgs{}, fmt.Errorf("flag --%s given twice", name)
		}
		switch {
		case kind == boolFlag && hasVal:
			return parsedArgs{}, fmt.Errorf("flag --%s takes no value", name)
		case kind == boolFlag:
			val = "true"
		case !hasVal:
			if i+1 >= len(args) {
				return parsedArgs{}, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		out.flags[name] = val
	}
	return out, nil
}
