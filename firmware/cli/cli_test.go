package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "1.2.3", BuildID: "abc"})
	return code, out.String(), errb.String()
}

func TestHelpAndDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"root help", []string{"--help"}, 0, "commands:"},
		{"no command", nil, 2, "commands:"},
		{"unknown", []string{"frobnicate"}, 2, ""},
		{"version", []string{"version"}, 0, "nvrd 1.2.3 (build abc)"},
		{"--version", []string{"--version"}, 0, "nvrd 1.2.3"},
		{"version help", []string{"version", "--help"}, 0, "usage: nvrd version"},
		{"version extra arg", []string{"version", "x"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.contains) {
				t.Fatalf("stdout %q does not contain %q", out, tt.contains)
			}
		})
	}
}
