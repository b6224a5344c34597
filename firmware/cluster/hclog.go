package cluster

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// raftLogger adapts hashicorp/raft's hclog output to the node's slog logger.
// raft's chatty INFO lines go to slog Debug; its WARN/ERROR stay.
func raftLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclog.Info,
		Output:      hclogWriter{l},
		DisableTime: true,
	})
}

type hclogWriter struct{ l *slog.Logger }

func (w hclogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	for prefix, lv := range map[string]slog.Level{"[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			level, line = lv, strings.TrimSpace(rest)
		}
	}
	if rest, ok := strings.CutPrefix(line, "[INFO]"); ok {
		line = strings.TrimSpace(rest)
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = hclogWriter{}
