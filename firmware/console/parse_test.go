package console

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want []string
		err  string // substring; "" = ok
	}{
		{"", nil, ""},
		{"   \t ", nil, ""},
		{"cameras list", []string{"cameras", "list"}, ""},
		{"  cameras   add  lobby\trtsp://x/y ", []string{"cameras", "add", "lobby", "rtsp://x/y"}, ""},
		{`cameras add "front door" 'a b'`, []string{"cameras", "add", "front door", "a b"}, ""},
		{`x "a\"b\\c"`, []string{"x", `a"b\c`}, ""},
		{`x 'it''s'`, []string{"x", "its"}, ""},
		{`x 'a\b'`, []string{"x", `a\b`}, ""},
		{`x a\ b`, []string{"x", "a b"}, ""},
		{`x ""`, []string{"x", ""}, ""},
		{`x pre"mid"post`, []string{"x", "premidpost"}, ""},
		{"x héllo", []string{"x", "héllo"}, ""},
		{`x "open`, nil, "unterminated \" quote"},
		{`x 'open`, nil, "unterminated ' quote"},
		{`x \`, nil, "backslash at the end"},
		{"x \x01", nil, "control character U+0001"},
		{"x \x1b[A", nil, "control character U+001B"},
		{"x \x7f", nil, "control character U+007F"},
		{"x \xff\xfe", nil, "not valid UTF-8"},
		{strings.Repeat("a", 10000), nil, "longer than 1024 bytes"},
	}
	for _, tt := range tests {
		got, err := ParseLine(tt.line, 1024)
		if tt.err != "" {
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseLine(%q) = %q, %v; want error %q", tt.line, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLine(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	spec := map[string]flagKind{"json": boolFlag, "user": valueFlag}
	tests := []struct {
		args  []string
		pos   []string
		flags map[string]string
		err   string
	}{
		{[]string{"a", "--json", "b"}, []string{"a", "b"}, map[string]string{"json": "true"}, ""},
		{[]string{"--user", "bob", "a"}, []string{"a"}, map[string]string{"user": "bob"}, ""},
		{[]string{"--user=x=y"}, nil, map[string]string{"user": "x=y"}, ""},
		{[]string{"--", "--json"}, []string{"--json"}, map[string]string{}, ""},
		{[]string{"-", "--"}, []string{"-"}, map[string]string{}, ""},
		{[]string{"--nope"}, nil, nil, "unknown flag --nope"},
		{[]string{"--user"}, nil, nil, "needs a value"},
		{[]string{"--json=1"}, nil, nil, "takes no value"},
		{[]string{"--json", "--json"}, nil, nil, "twice"},
	}
	for _, tt := range tests {
		got, err := parseFlags(tt.args, spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseFlags(%q) err = %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got.pos, tt.pos) || !reflect.DeepEqual(got.flags, tt.flags) {
			t.Errorf("parseFlags(%q) = %+v, %v", tt.args, got, err)
		}
	}
}

// FuzzParseLine: no panics; accepted lines give words without control
// characters, and quoting the words gives a line that parses back to them.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"cameras add lobby rtsp://192.0.2.5/s --user admin", `x "a\"b" 'c d'`, "x \x01", "\xff", `"`, "help cameras"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := ParseLine(line, 1024)
		if err != nil {
			if !errors.Is(err, ErrSyntax) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		var quoted []string
		for _, w := range words {
			if !utf8.ValidString(w) || strings.ContainsAny(w, "\x00\r\n\x1b") {
				t.Fatalf("word %q", w)
			}
			quoted = append(quoted, Quote(w))
		}
		again, err := ParseLine(strings.Join(quoted, " "), 1<<20)
		if err != nil || !reflect.DeepEqual(again, words) {
			t.Fatalf("requote %q -> %q, %v", words, again, err)
		}
	})
}
