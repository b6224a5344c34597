package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcomes of reading a line other than a line.
var (
	errInterrupted = errors.New("interrupted")      // Ctrl-C
	errLogout      = errors.New("logout")           // Ctrl-D on an empty line
	errIdle        = errors.New("idle timeout")     // nothing typed for the idle timeout
	errInputClosed = errors.New("terminal closed")  // the terminal's input ended
	errLineTooLong = errors.New("line too long")    // more than MaxLine bytes
	errNoInput     = errors.New("no input pending") // internal: need more bytes
)

// input pumps the terminal's bytes into ch from its own goroutine; ch is
// closed when reading stops (err then says why).
type input struct {
	ch   chan []byte
	stop chan struct{}
	done chan struct{}
	err  error
}

func startInput(r io.Reader) *input {
	in := &input{ch: make(chan []byte), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		defer close(in.ch)
		buf := make([]byte, 512)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case in.ch <- bytes.Clone(buf[:n]):
				case <-in.stop:
					return
				}
			}
			if err != nil {
				in.err = err
				return
			}
		}
	}()
	return in
}

// lineEditor is the state of line input kept across lines: unread bytes,
// the escape-sequence decoder and the history.
type lineEditor struct {
	c       *Console
	pending []byte
	skipLF  bool // the last line ended with CR: a following LF is part of it
	history []string
}

// readOpts says how to read one line.
type readOpts struct {
	echo    bool          // false for passwords
	silent  bool          // not even a new line after Enter (pasted text)
	history bool          // up/down recall, and the line is remembered
	idle    time.Duration // 0: none
}

const maxHistory = 100

// editState is one line being edited.
type editState struct {
	line     []byte
	overflow bool
	esc      int // 0 none, 1 after ESC, 2 inside a CSI/SS3 sequence
	hist     int // index into history while recalling
}

// readLine writes prompt and reads one edited line. It returns errInterrupted
// (Ctrl-C), errLogout (Ctrl-D on an empty line), errIdle, errInputClosed,
// errLineTooLong or ctx's error instead of a line.
func (e *lineEditor) readLine(ctx context.Context, prompt string, o readOpts) (string, error) {
	e.c.writeString(prompt)
	st := &editState{hist: len(e.history)}
	var idle <-chan time.Time
	if o.idle > 0 {
		idle = e.c.opts.Clock.After(o.idle)
	}
	for {
		for len(e.pending) == 0 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-idle:
				e.c.writeString("\r\n")
				return "", errIdle
			case b, ok := <-e.c.in.ch:
				if !ok {
					return "", errInputClosed
				}
				e.pending = b
				if o.idle > 0 {
					idle = e.c.opts.Clock.After(o.idle)
				}
			}
		}
		b := e.pending[0]
		e.pending = e.pending[1:]
		line, err := e.key(st, b, o)
		if errors.Is(err, errNoInput) {
			continue
		}
		if err == nil && o.history && line != "" {
			e.remember(line)
		}
		return line, err
	}
}

func (e *lineEditor) remember(line string) {
	if strings.Contains(line, "--password") {
		return // never recall a secret onto the screen
	}
	if n := len(e.history); n > 0 && e.history[n-1] == line {
		return
	}
	e.history = append(e.history, line)
	if len(e.history) > maxHistory {
		e.history = e.history[1:]
	}
}

// key handles one input byte; errNoInput means the line goes on.
func (e *lineEditor) key(st *editState, b byte, o readOpts) (string, error) {
	skipLF := e.skipLF
	e.skipLF = false
	switch st.esc {
	case 1:
		if b == '[' || b == 'O' {
			st.esc = 2
			return "", errNoInput
		}
		st.esc = 0 // a lone ESC: ignore it, handle b normally
	case 2:
		switch {
		case b >= 0x20 && b <= 0x3f: // parameters and intermediates
			return "", errNoInput
		case b >= 0x40 && b <= 0x7e:
			st.esc = 0
			if o.history && (b == 'A' || b == 'B') {
				e.recall(st, b == 'A', o)
			}
			return "", errNoInput
		}
		st.esc = 0 // malformed sequence: drop it, handle b normally
	}
	switch b {
	case 0x1b:
		st.esc = 1
	case '\n':
		if skipLF {
			return "", errNoInput
		}
		return e.submit(st, o)
	case '\r':
		e.skipLF = true
		return e.submit(st, o)
	case 0x7f, 0x08: // DEL, backspace
		e.erase(st, o, 1)
	case 0x15: // Ctrl-U
		e.erase(st, o, len(st.line))
	case 0x17: // Ctrl-W: the word before the cursor
		n := 0
		for n < len(st.line) && st.line[len(st.line)-1-n] == ' ' {
			n++
		}
		for n < len(st.line) && st.line[len(st.line)-1-n] != ' ' {
			n++
		}
		e.eraseBytes(st, o, n)
	case 0x03: // Ctrl-C
		e.c.writeString("^C\r\n")
		return "", errInterrupted
	case 0x04: // Ctrl-D
		if len(st.line) == 0 && !st.overflow {
			e.c.writeString("\r\n")
			return "", errLogout
		}
	case '\t':
		e.insert(st, o, ' ')
	default:
		e.insert(st, o, b)
	}
	return "", errNoInput
}

func (e *lineEditor) submit(st *editState, o readOpts) (string, error) {
	if !o.silent {
		e.c.writeString("\r\n")
	}
	if st.overflow {
		return "", errLineTooLong
	}
	return string(st.line), nil
}

func (e *lineEditor) insert(st *editState, o readOpts, b byte) {
	if len(st.line) >= e.c.opts.MaxLine {
		if !st.overflow && o.echo {
			e.c.writeString("\a")
		}
		st.overflow = true
		return
	}
	st.line = append(st.line, b)
	if !o.echo {
		return
	}
	if b < 0x20 {
		e.c.writeString("^" + string(rune(b+0x40)))
		return
	}
	e.c.write([]byte{b})
}

// erase removes n runes from the end of the line.
func (e *lineEditor) erase(st *editState, o readOpts, n int) {
	for ; n > 0 && len(st.line) > 0; n-- {
		_, size := utf8.DecodeLastRune(st.line)
		e.eraseBytes(st, o, size)
	}
}

// eraseBytes removes the last n bytes (whole runes) from the line and the
// screen.
func (e *lineEditor) eraseBytes(st *editState, o readOpts, n int) {
	for n > 0 && len(st.line) > 0 {
		r, size := utf8.DecodeLastRune(st.line)
		if size > n && r != utf8.RuneError {
			size = n
		}
		last := st.line[len(st.line)-1]
		st.line = st.line[:len(st.line)-size]
		n -= size
		if !o.echo {
			continue
		}
		if size == 1 && last < 0x20 {
			e.c.writeString("\b\b  \b\b")
		} else {
			e.c.writeString("\b \b")
		}
	}
	if len(st.line) < e.c.opts.MaxLine {
		st.overflow = false
	}
}

// recall replaces the line with the previous (up) or next (down) history
// entry.
func (e *lineEditor) recall(st *editState, up bool, o readOpts) {
	switch {
	case up && st.hist > 0:
		st.hist--
	case !up && st.hist < len(e.history):
		st.hist++
	default:
		e.c.writeString("\a")
		return
	}
	e.erase(st, o, len(st.line))
	if st.hist < len(e.history) {
		for _, b := range []byte(e.history[st.hist]) {
			e.insert(st, o, b)
		}
	}
}
