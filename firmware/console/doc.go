// Package console is the appliance's operator console: a line-oriented
// login and command shell that works on a dumb 115200 8N1 serial terminal.
// It owns the terminal protocol (raw mode, echo, line editing), login with
// the growing delay after failures, idle logout, the command tokenizer and
// the commands. It changes the configuration through a ConfigStore
// (*config.Store) and reaches the running system through the System
// interface, which the lead implements when wiring "nvrd run".
//
// # Terminal
//
// The console echoes what is typed itself and writes CRLF line ends, so it
// needs nothing of the terminal but bytes: when Terminal is a tty, Run puts
// it in raw mode for its duration. Keys: printable text, Backspace or DEL,
// Ctrl-U (erase the line), Ctrl-W (erase a word), Ctrl-C (cancel the line or
// the prompt), Ctrl-D (log out, on an empty line), Enter (CR, LF or CRLF).
// Up and down arrows recall history when the terminal sends ANSI escapes;
// other escape sequences are ignored. Passwords are read with echo off.
// Control characters are shown as ^X and refused when the line is run;
// lines are limited to Options.MaxLine bytes.
//
// # Login
//
// When no user exists, Run creates config.FirstAdmin with a random password,
// prints it once and asks for a new one at its first login. A failed login
// waits Options.LoginDelay, doubling with each failure in a row up to
// Options.MaxLoginDelay, then drops what was typed meanwhile. A session ends
// with logout, Ctrl-D, or Options.IdleTimeout without input.
//
// # Commands
//
// "help" lists them. Every command that shows state accepts --json. A wrong
// or garbled line (unknown command, bad quoting, control characters, invalid
// UTF-8, an over-long line, a bad flag) prints exactly one "error: ..." line
// and changes nothing. Changes go through one config mutation each, audited
// as "console:USER"; roles gate commands (viewer reads, operator manages
// cameras and retention, admin everything else).
//
// # Concurrency
//
// A Console serves one terminal from the goroutine that calls Run, plus one
// reader goroutine that Run starts and joins before returning. Run must not
// be called concurrently with itself. System methods are called from Run's
// goroutine with the session's context.
package console
