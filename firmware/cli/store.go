package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nvrfw/nvr/ringstore"
)

// storeCommand is "nvrd store": offline tools for the ring store volume.
func storeCommand() *Command {
	return &Command{
		Name:    "store",
		Summary: "format, inspect, check and rebuild the recording volume",
		Usage: `Offline tools for the ring store: the recording volume (DIR/VOLUME and the
preallocated slot files DIR/slots/*.slot) and its index (default
DIR/index.db, usually on the boot SSD). Run them while nvrd is not recording
on the volume.`,
		Sub: []*Command{storeFormat(), storeStats(), storeFsck(), storeRebuild()},
	}
}

// parseSize parses a byte count such as 4096, 512M, 20G, 1.5T or 64MiB
// (binary units: K = 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional K, M, G or T suffix", s)
	}
	return int64(v * float64(mult)), nil
}

// humanBytes renders n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// progressPrinter reports done/total on w: in place on a terminal, else
// one line per 10 %.
func progressPrinter(w io.Writer, what string) func(done, total int64) {
	term := stdoutIsTerminal(w)
	last := -1
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := int(done * 100 / total)
		switch {
		case term && pct != last:
			fmt.Fprintf(w, "\r%s: %3d%% (%s of %s)", what, pct, humanBytes(done), humanBytes(total))
			if done >= total {
				fmt.Fprintln(w)
			}
		case !term && (pct/10 != last/10 || last < 0):
			fmt.Fprintf(w, "%s: %d%% (%s of %s)\n", what, pct, humanBytes(done), humanBytes(total))
		default:
			return
		}
		last = pct
	}
}

func storeFormat() *Command {
	return &Command{
		Name:    "format",
		Summary: "lay out a new volume: preallocated slot files and an empty index",
		Usage: `Creates DIR/VOLUME, SIZE bytes of preallocated slot files under DIR/slots and
the index. The store never grows or deletes a file afterwards. Refuses a
directory that already holds a volume. Sizes take K, M, G, T (binary) suffixes.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			data := fs.String("data", "", "volume directory (required)")
			size := fs.String("size", "", "total bytes of slot files, e.g. 512M, 20G (required)")
			slot := fs.String("slot-size", "", "bytes per slot (default: size/64 clamped to [4M, 1G])")
			index := fs.String("index", "", "index file (default DIR/index.db)")
			return func(ctx context.Context, env Env, args []string) error {
				if *data == "" || *size == "" || len(args) > 0 {
					return usageErrorf("format needs --data DIR and --size SIZE, and no arguments")
				}
				n, err := parseSize(*size)
				if err != nil {
					return usageErrorf("--size: %v", err)
				}
				var ss int64
				if *slot != "" {
					if ss, err = parseSize(*slot); err != nil {
						return usageErrorf("--slot-size: %v", err)
					}
				}
				v, err := ringstore.Format(ctx, *data, ringstore.FormatOptions{
					Size: n, SlotSize: ss, IndexPath: *index,
					Progress: progressPrinter(env.Stderr, "format"),
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "formatted volume %s: %d slots of %s (%s)\n", v.ID, v.Slots, humanBytes(v.SlotSize), humanBytes(int64(v.Slots)*v.SlotSize))
				return nil
			}
		},
	}
}

// statsJSON is the --json form of store stats.
type statsJSON struct {
	Volume           ringstore.VolumeInfo `json:"volume"`
	Healthy          bool                 `json:"healthy"`
	Capacity         int64                `json:"capacity_bytes"`
	Used             int64                `json:"used_bytes"`
	Slots            int                  `json:"slots"`
	FreeSlots        int                  `json:"free_slots"`
	SuspectSlots     []int                `json:"suspect_slots"`
	WriteRate        float64              `json:"write_rate_bytes_per_second"`
	CommitLatency    float64              `json:"commit_latency_seconds"`
	CommitLatencyP99 float64              `json:"commit_latency_p99_seconds"`
	Streams          []streamJSON         `json:"streams"`
}

type streamJSON struct {
	Name      string    `json:"name"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Retention float64   `json:"retention_seconds"`
	Bytes     int64     `json:"bytes"`
}

func storeStats() *Command {
	return &Command{
		Name:    "stats",
		Summary: "show capacity, retention per stream, write rate, commit latency",
		Usage: `Reads the volume and its index without changing them and prints the capacity,
the retention actually held per stream, and the write rate and commit
latencies the store last recorded. Exits 1 when the volume is unhealthy
(suspect slots) or the index does not belong to the volume.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			data := fs.String("data", "", "volume directory (required)")
			index := fs.String("index", "", "index file (default DIR/index.db)")
			asJSON := fs.Bool("json", false, "print JSON")
			return func(ctx context.Context, env Env, args []string) error {
				if *data == "" || len(args) > 0 {
					return usageErrorf("stats needs --data DIR and no arguments")
				}
				v, st, err := ringstore.Inspect(ctx, *data, ringstore.Options{IndexPath: *index})
				if err != nil {
					return err
				}
				healthy := len(st.SuspectSlots) == 0
				if *asJSON {
					out := statsJSON{Volume: v, Healthy: healthy, Capacity: st.Capacity, Used: st.Used, Slots: st.Slots,
						FreeSlots: st.FreeSlots, SuspectSlots: st.SuspectSlots, WriteRate: st.WriteRate,
						CommitLatency: st.CommitLatency.Seconds(), CommitLatencyP99: st.CommitLatencyP99.Seconds(), Streams: []streamJSON{}}
					for _, s := range st.Streams {
						out.Streams = append(out.Streams, streamJSON{Name: s.Name, First: s.First, Last: s.Last, Retention: s.Last.Sub(s.First).Seconds(), Bytes: s.Bytes})
					}
					enc := json.NewEncoder(env.Stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(out); err != nil {
						return err
					}
				} else {
					printStats(env.Stdout, v, st)
				}
				if !healthy {
					return &ExitError{Code: 1, Err: fmt.Errorf("volume unhealthy: suspect slots %v (run nvrd store fsck)", st.SuspectSlots)}
				}
				return nil
			}
		},
	}
}

func printStats(w io.Writer, v ringstore.VolumeInfo, st ringstore.Stats) {
	fmt.Fprintf(w, "volume      %s (format %d, created %s)\n", v.ID, v.FormatVersion, v.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "capacity    %s in %d slots of %s; used %s; %d slots free\n", humanBytes(st.Capacity), st.Slots, humanBytes(st.SlotSize), humanBytes(st.Used), st.FreeSlots)
	if len(st.SuspectSlots) == 0 {
		fmt.Fprintln(w, "suspect     none")
	} else {
		fmt.Fprintf(w, "suspect     slots %v\n", st.SuspectSlots)
	}
	fmt.Fprintf(w, "write rate  %s/s\n", humanBytes(int64(st.WriteRate)))
	fmt.Fprintf(w, "commit      last %v, p99 %v\n", st.CommitLatency.Round(time.Microsecond), st.CommitLatencyP99.Round(time.Microsecond))
	fmt.Fprintf(w, "streams     %d\n", len(st.Streams))
	for _, s := range st.Streams {
		fmt.Fprintf(w, "  %-20s %s .. %s  retention %-12v %s\n", s.Name, s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339), s.Last.Sub(s.First).Round(time.Second), humanBytes(s.Bytes))
	}
}

func storeFsck() *Command {
	return &Command{
		Name:    "fsck",
		Summary: "verify every record's checksum and the index against the data",
		Usage: `Opens the store (recovering the head slot like nvrd does), reads every indexed
record and checks its CRC, generation and place, and checks that every valid
record is indexed. Lists the problems and exits 1 when there are any.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			data := fs.String("data", "", "volume directory (required)")
			index := fs.String("index", "", "index file (default DIR/index.db)")
			return func(ctx context.Context, env Env, args []string) error {
				if *data == "" || len(args) > 0 {
					return usageErrorf("fsck needs --data DIR and no arguments")
				}
				s, err := ringstore.Open(ctx, *data, ringstore.Options{IndexPath: *index})
				if err != nil {
					return fmt.Errorf("open store %s (fsck needs the store to itself: stop nvrd first): %w", *data, err)
				}
				rep, err := s.Check(ctx, progressPrinter(env.Stderr, "fsck"))
				if cerr := s.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "checked %d slots, %d records, %s\n", rep.Slots, rep.Records, humanBytes(rep.Bytes))
				for _, p := range rep.Problems {
					fmt.Fprintf(env.Stdout, "problem: %s\n", p)
				}
				if !rep.Healthy() {
					return &ExitError{Code: 1, Err: fmt.Errorf("%d problems found", len(rep.Problems))}
				}
				fmt.Fprintln(env.Stdout, "no problems found")
				return nil
			}
		},
	}
}

func storeRebuild() *Command {
	return &Command{
		Name:    "rebuild",
		Summary: "rebuild the index from the slot files alone",
		Usage: `Scans every slot file and writes a new index (beside the old one, then
renamed over it). Use it when the index is lost, damaged, or belongs to
another volume.`,
		Flags: func(fs *flag.FlagSet) func(context.Context, Env, []string) error {
			data := fs.String("data", "", "volume directory (required)")
			index := fs.String("index", "", "index file (default DIR/index.db)")
			return func(ctx context.Context, env Env, args []string) error {
				if *data == "" || len(args) > 0 {
					return usageErrorf("rebuild needs --data DIR and no arguments")
				}
				start := time.Now()
				if err := ringstore.Rebuild(ctx, *data, ringstore.Options{IndexPath: *index}); err != nil {
					if errors.Is(err, ringstore.ErrNotFormatted) {
						return &ExitError{Code: 1, Err: err}
					}
					return err
				}
				fmt.Fprintf(env.Stdout, "index rebuilt in %v\n", time.Since(start).Round(time.Millisecond))
				return nil
			}
		},
	}
}
