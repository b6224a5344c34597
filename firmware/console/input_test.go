package console

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// scriptTerm plays typed bytes then reports EOF, and records the echo.
type scriptTerm struct {
	in *strings.Reader
	memTerm
}

func (s *scriptTerm) Read(b []byte) (int, error) { return s.in.Read(b) }

func TestLineEditor(t *testing.T) {
	tests := []struct {
		name  string
		typed string
		opts  readOpts
		want  []string // lines, or "!err" for an error
		echo  string   // expected echo (without the prompt), when set
	}{
		{"plain", "hello\r", readOpts{echo: true}, []string{"hello"}, "hello\r\n"},
		{"crlf is one enter", "a\r\nb\n", readOpts{echo: true}, []string{"a", "b"}, ""},
		{"lf alone", "a\nb\r", readOpts{echo: true}, []string{"a", "b"}, ""},
		{"backspace and del", "abc\x08\x7fd\r", readOpts{echo: true}, []string{"ad"}, "abc\b \b\b \bd\r\n"},
		{"backspace on empty", "\x7f\x7fa\r", readOpts{echo: true}, []string{"a"}, "a\r\n"},
		{"backspace utf8", "né\x7f\r", readOpts{echo: true}, []string{"n"}, ""},
		{"ctrl-u", "abc\x15x\r", readOpts{echo: true}, []string{"x"}, ""},
		{"ctrl-w", "one two  \x17three\r", readOpts{echo: true}, []string{"one three"}, ""},
		{"tab is space", "a\tb\r", readOpts{echo: true}, []string{"a b"}, ""},
		{"control shown", "a\x01\r", readOpts{echo: true}, []string{"a\x01"}, "a^A\r\n"},
		{"control erased", "a\x01\x7f\r", readOpts{echo: true}, []string{"a"}, "a^A\b\b  \b\b\r\n"},
		{"ctrl-c", "abc\x03", readOpts{echo: true}, []string{"!interrupted"}, "abc^C\r\n"},
		{"ctrl-d empty", "\x04", readOpts{echo: true}, []string{"!logout"}, ""},
		{"ctrl-d ignored mid-line", "ab\x04c\r", readOpts{echo: true}, []string{"abc"}, ""},
		{"no echo", "secret\x7fT\r", readOpts{}, []string{"secreT"}, "\r\n"},
		{"arrows ignored without history", "a\x1b[Ab\r", readOpts{echo: true}, []string{"ab"}, ""},
		{"other escapes dropped", "a\x1b[1;5Cb\x1bOPc\x1b[3~\r", readOpts{echo: true}, []string{"abc"}, ""},
		{"lone escape", "a\x1bxb\r", readOpts{echo: true}, []string{"axb"}, ""},
		{"history", "one\rtwo\r\x1b[A\x1b[A\r\x1b[A\x1b[B\x1b[B\r", readOpts{echo: true, history: true}, []string{"one", "two", "one", ""}, ""},
		{"history skips passwords", "x --password p\ry\r\x1b[A\x1b[A\r", readOpts{echo: true, history: true}, []string{"x --password p", "y", "y"}, ""},
		{"history with SS3 arrows", "one\r\x1bOA\r", readOpts{echo: true, history: true}, []string{"one", "one"}, ""},
		{"too long", strings.Repeat("x", 40) + "\rok\r", readOpts{echo: true}, []string{"!line too long", "ok"}, ""},
		{"too long then erased", strings.Repeat("x", 40) + "\x15ok\r", readOpts{echo: true}, []string{"ok"}, ""},
		{"eof", "abc", readOpts{echo: true}, []string{"!terminal closed"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			term := &scriptTerm{in: strings.NewReader(tt.typed)}
			c, err := New(Options{Terminal: term, Config: nopConfig{}, System: newFakeSystem(), MaxLine: 32})
			if err != nil {
				t.Fatal(err)
			}
			c.in = startInput(term)
			defer func() { close(c.in.stop); <-c.in.done }()
			for _, want := range tt.want {
				got, err := c.ed.readLine(context.Background(), "", tt.opts)
				if err != nil {
					got = "!" + err.Error()
				}
				if got != want {
					t.Fatalf("line = %q, want %q", got, want)
				}
			}
			if echo := term.memTerm.out.String(); tt.echo != "" && echo != tt.echo {
				t.Errorf("echo = %q, want %q", echo, tt.echo)
			}
		})
	}
}

func TestLineEditorIdle(t *testing.T) {
	clk := &manualClock{fire: make(chan time.Time)}
	term := &blockingTerm{}
	c, err := New(Options{Terminal: term, Config: nopConfig{}, System: newFakeSystem(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	in := &input{ch: make(chan []byte), stop: make(chan struct{}), done: make(chan struct{})}
	c.in = in
	done := make(chan error, 1)
	go func() {
		_, err := c.ed.readLine(context.Background(), "> ", readOpts{echo: true, idle: time.Minute})
		done <- err
	}()
	in.ch <- []byte("ab")
	clk.fire <- time.Time{}
	if err := <-done; !errors.Is(err, errIdle) {
		t.Fatalf("err = %v, want idle", err)
	}
	if clk.asked() != 2 || clk.last != time.Minute {
		t.Errorf("idle timer armed %d times (last %v), want 2 (start, after input)", clk.asked(), clk.last)
	}
}

type manualClock struct {
	fire chan time.Time
	n    int
	last time.Duration
}

func (m *manualClock) Now() time.Time { return time.Time{} }
func (m *manualClock) After(d time.Duration) <-chan time.Time {
	m.n++
	m.last = d
	return m.fire
}
func (m *manualClock) asked() int { return m.n }

type blockingTerm struct{ memTerm }

// nopConfig satisfies ConfigStore for editor tests that never touch it.
type nopConfig struct{ ConfigStore }
