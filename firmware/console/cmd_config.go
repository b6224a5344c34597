package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nvrfw/nvr/firmware/config"
)

func configCommand() *command {
	return &command{name: "config", summary: "export or import the whole site configuration as text", subs: []*command{
		{name: "export", summary: "print the export file (capture it with your terminal's logging)", role: config.RoleAdmin, run: runConfigExport,
			help: "  The file holds camera passwords in clear text and users' password hashes."},
		{name: "import", summary: "paste an export file to replace the whole configuration", role: config.RoleAdmin, run: runConfigImport,
			help: "  Paste the whole file; reading ends at its last line (sha256 ...). Everything is checked before anything\n" +
				"  changes. Users, cameras and settings are replaced; restart nvrd to apply it all."},
	}}
}

// Markers around an export on the terminal, so a capture is easy to cut.
const (
	exportBegin = "-----BEGIN NVR CONFIGURATION-----"
	exportEnd   = "-----END NVR CONFIGURATION-----"
)

func runConfigExport(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	var b bytes.Buffer
	if err := s.c.opts.Config.Export(&b); err != nil {
		return err
	}
	s.c.log.Warn("configuration exported on the console", "user", s.user.Name)
	s.c.printf("%s\n%s%s\n", exportBegin, b.String(), exportEnd)
	return nil
}

func runConfigImport(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	s.c.printf("Paste the export file now (Ctrl-C cancels); it ends at its \"sha256\" line.\n")
	var b strings.Builder
	lines := 0
	for {
		line, err := s.c.ed.readLine(ctx, "", readOpts{silent: true, idle: s.c.opts.IdleTimeout})
		switch {
		case errors.Is(err, errInterrupted), errors.Is(err, errLineTooLong), errors.Is(err, errLogout):
			return errCancelled
		case err != nil:
			return err
		}
		if b.Len() == 0 && (strings.TrimSpace(line) == exportBegin || strings.TrimSpace(line) == "") {
			continue // the capture's marker or blank lines before the file
		}
		b.WriteString(line)
		b.WriteByte('\n')
		lines++
		if strings.HasPrefix(line, "sha256 ") {
			break
		}
		if b.Len() > config.MaxExportSize {
			return fmt.Errorf("import: more than %d bytes without the sha256 line: nothing changed", config.MaxExportSize)
		}
	}
	ch, err := s.c.opts.Config.Import(s.actor, "console paste", strings.NewReader(b.String()))
	if err != nil {
		return fmt.Errorf("%w: nothing changed", err)
	}
	s.c.printf("read %d lines; %s\nrestart nvrd (reboot) to apply everything\n", lines, ch.What)
	return nil
}
