package appliance

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nvrfw/nvr/firmware/bundle"
	"github.com/nvrfw/nvr/firmware/console"
	"github.com/nvrfw/nvr/firmware/events"
	"github.com/nvrfw/nvr/firmware/slots"
	"github.com/nvrfw/nvr/recorder"
)

// Firmware is the A/B firmware of the running appliance.
type Firmware struct {
	// Slots manages the boot directory's A/B slots.
	Slots *slots.Manager
	// Booted is the running slot (slots.BootedSlot of /proc/cmdline).
	Booted slots.Slot
	// ConfirmAfter is how long recording must be continuously healthy
	// before a trial boot is confirmed; 0 means 60s.
	ConfirmAfter time.Duration
	// TrustedKeys is the PEM file of the public keys that bundles installed
	// from the console must be signed with; "" means DefaultTrustedKeys.
	TrustedKeys string
	// Board is the board model a bundle must list; "" means the board
	// profile's model (Options.Board).
	Board string
	// TempDir receives bundles downloaded from an http(s) URL; "" means
	// os.TempDir().
	TempDir string
	// HTTPClient fetches http(s) bundles; nil means a client that gives up
	// after 10 minutes.
	HTTPClient *http.Client
}

// DefaultTrustedKeys is where the firmware image keeps the public keys of
// its build's signing key (image/mkimage.TrustedKeysFile).
const DefaultTrustedKeys = "/etc/nvr/firmware.pub"

// MaxBundleSize is the largest bundle the console downloads.
const MaxBundleSize = 1 << 30

// confirmComponent confirms a trial boot once the appliance has been healthy
// for ConfirmAfter: the store commits, every camera that should record is
// recording, and the watchdog (when there is one) is being petted. Until
// then a reset (the watchdog's, or a power cut) boots the previous slot.
func (a *App) confirmComponent() Component {
	fw := a.opts.Firmware
	after := fw.ConfirmAfter
	if after <= 0 {
		after = time.Minute
	}
	return Component{Name: "firmware-confirm", Run: func(ctx context.Context) error {
		st, err := fw.Slots.Status(fw.Booted)
		if err != nil {
			return fmt.Errorf("read the firmware slots: %w", err)
		}
		// The bootloader clears the trial flag before it boots the trial
		// slot (so a failed trial falls back by itself): a trial boot is a
		// boot of a slot that is not the default.
		if st.Default == fw.Booted {
			<-ctx.Done() // running the confirmed slot: nothing to confirm
			return nil
		}
		a.hub.Publish(events.Event{Kind: "firmware.trial", Severity: events.Warning, Source: "firmware",
			Message: fmt.Sprintf("running slot %s on trial; confirmed after %s of healthy recording", fw.Booted, after),
			Alarm:   "firmware.trial"})
		var healthySince time.Time
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			now := a.opts.Now()
			if why := a.notConfirmable(); why != "" {
				healthySince = time.Time{}
				continue
			}
			if healthySince.IsZero() {
				healthySince = now
			}
			if now.Sub(healthySince) < after {
				continue
			}
			if _, err := fw.Slots.Confirm(fw.Booted); err != nil {
				return fmt.Errorf("confirm slot %s: %w", fw.Booted, err)
			}
			a.hub.Publish(events.Event{Kind: "firmware.confirmed", Source: "firmware", ClearAlarm: "firmware.trial",
				Message: fmt.Sprintf("slot %s confirmed after %s of healthy recording", fw.Booted, after)})
			a.log.Info("trial boot confirmed", "slot", fw.Booted)
			<-ctx.Done()
			return nil
		}
	}}
}

// notConfirmable says why a trial boot cannot be confirmed now ("" when it can).
func (a *App) notConfirmable() string {
	h := a.Health()
	if !h.OK {
		return "unhealthy"
	}
	rec, err := a.current()
	if err != nil {
		return err.Error()
	}
	want, err := a.desiredCameras()
	if err != nil {
		return err.Error()
	}
	for _, c := range want {
		if st, ok := rec.recorder.Status(c.Name); !ok || st.State != recorder.StateRecording {
			return "camera " + c.Name + " not recording"
		}
	}
	if a.guard != nil && !a.guard.Status().Petting {
		return "watchdog not petted"
	}
	return ""
}

// firmwareStatus is the console's view of the slots.
func (a *App) firmwareStatus(context.Context) (console.FirmwareStatus, error) {
	out := console.FirmwareStatus{Version: a.opts.Version, BuildID: a.opts.BuildID, Slot: "-"}
	fw := a.opts.Firmware
	if fw == nil {
		return out, nil
	}
	st, err := fw.Slots.Status(fw.Booted)
	if err != nil {
		return out, err
	}
	out.Slot = string(st.Booted)
	out.Trial = st.Default != st.Booted
	other := st.Booted.Other()
	if v := st.Versions[other]; v != "" {
		out.Standby = fmt.Sprintf("slot %s: %s", other, v)
	}
	return out, nil
}

var _ console.FirmwareInstaller = (*system)(nil)

// InstallFirmware implements console.FirmwareInstaller.
func (s *system) InstallFirmware(ctx context.Context, req console.FirmwareInstall, progress func(console.FirmwareProgress)) (console.FirmwareInstalled, error) {
	return s.a.installFirmware(ctx, req, progress)
}

// errNoSlots: nvrd runs without A/B slots (no --slots-dir).
var errNoSlots = errors.New("no A/B firmware slots on this system (nvrd run --slots-dir)")

// installFirmware fetches, verifies and installs a bundle into the slot
// that is not running, armed for one trial boot.
func (a *App) installFirmware(ctx context.Context, req console.FirmwareInstall, progress func(console.FirmwareProgress)) (console.FirmwareInstalled, error) {
	fw := a.opts.Firmware
	if fw == nil {
		return console.FirmwareInstalled{}, errNoSlots
	}
	keys, err := fw.trustedKeys()
	if err != nil {
		return console.FirmwareInstalled{}, err
	}
	board := fw.Board
	if board == "" && a.opts.Board != nil {
		board = a.opts.Board.Model
	}
	if board == "" {
		return console.FirmwareInstalled{}, errors.New("no board model to check the bundle against (nvrd run --board)")
	}
	f, size, cleanup, err := fw.fetch(ctx, req.Source, progress)
	if err != nil {
		return console.FirmwareInstalled{}, err
	}
	defer cleanup()
	cur := a.opts.Version
	if _, err := bundle.ParseVersion(cur); err != nil {
		a.log.Warn("running version is not semver-like: firmware version checks skipped", "version", cur)
		cur = ""
	}
	verify := &countingReaderAt{r: f, size: size, step: console.StepVerify, progress: progress}
	b, err := bundle.Open(verify, size, bundle.Options{Keys: keys, Board: board, CurrentVersion: cur, AllowDowngrade: req.AllowDowngrade})
	if err != nil {
		return console.FirmwareInstalled{}, fmt.Errorf("refused: %w", err)
	}
	verify.quiet.Store(true) // the install reads the parts again: that is writing's progress
	var total, base int64
	for _, p := range b.Manifest.Parts {
		total += p.Size
	}
	last := ""
	target, err := fw.Slots.Install(ctx, b, fw.Booted, func(p slots.Progress) {
		if p.Step != last {
			if last == bundle.PartKernel || last == bundle.PartInitramfs {
				if part, ok := b.Manifest.Part(last); ok {
					base += part.Size
				}
			}
			last = p.Step
		}
		done := base
		if p.Step == bundle.PartKernel || p.Step == bundle.PartInitramfs {
			done += p.Done
		}
		progress(console.FirmwareProgress{Step: console.StepWrite, Slot: string(p.Slot), Done: min(done, total), Total: total})
	})
	if err != nil {
		return console.FirmwareInstalled{}, fmt.Errorf("install into the standby slot: %w", err)
	}
	a.log.Info("firmware installed for a trial boot", "version", b.Manifest.Version, "slot", target, "source", req.Source)
	a.hub.Publish(events.Event{Kind: "firmware.installed", Source: "firmware",
		Message: fmt.Sprintf("firmware %s installed in slot %s for one trial boot", b.Manifest.Version, target)})
	return console.FirmwareInstalled{Version: b.Manifest.Version, Slot: string(target), Fallback: string(fw.Booted)}, nil
}

// trustedKeys reads the public keys bundles must be signed with.
func (fw *Firmware) trustedKeys() ([]ed25519.PublicKey, error) {
	path := fw.TrustedKeys
	if path == "" {
		path = DefaultTrustedKeys
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trusted firmware keys: %w", err)
	}
	keys, err := bundle.ParsePublicKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("trusted firmware keys %s: %w", path, err)
	}
	return keys, nil
}

// fetch opens the bundle at source: a local file, or an http(s) URL
// downloaded into TempDir (removed by cleanup).
func (fw *Firmware) fetch(ctx context.Context, source string, progress func(console.FirmwareProgress)) (io.ReaderAt, int64, func(), error) {
	if !strings.HasPrefix(source, "http://") && !strings.HasPrefix(source, "https://") {
		f, err := os.Open(source)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("open bundle: %w", err)
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, nil, fmt.Errorf("bundle %s is not a regular file", source)
		}
		return f, st.Size(), func() { f.Close() }, nil
	}
	u, err := url.Parse(source)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("bundle URL: %w", err)
	}
	hc := fw.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Minute}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("bundle URL: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("download bundle: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, nil, fmt.Errorf("download bundle: %s", resp.Status)
	}
	if resp.ContentLength > MaxBundleSize {
		return nil, 0, nil, fmt.Errorf("download bundle: %d bytes is over the %d-byte limit", resp.ContentLength, int64(MaxBundleSize))
	}
	f, err := os.CreateTemp(fw.TempDir, "bundle-*.nvrfw")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("download bundle: %w", err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	total := max(resp.ContentLength, 0)
	var done int64
	progress(console.FirmwareProgress{Step: console.StepDownload, Total: total})
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if done+int64(n) > MaxBundleSize {
				cleanup()
				return nil, 0, nil, fmt.Errorf("download bundle: over the %d-byte limit", int64(MaxBundleSize))
			}
			if _, err := f.Write(buf[:n]); err != nil {
				cleanup()
				return nil, 0, nil, fmt.Errorf("download bundle: %w", err)
			}
			done += int64(n)
			progress(console.FirmwareProgress{Step: console.StepDownload, Done: done, Total: total})
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			cleanup()
			return nil, 0, nil, fmt.Errorf("download bundle: %w", rerr)
		}
	}
	// A short body is left for verification to refuse as truncated.
	return f, done, cleanup, nil
}

// countingReaderAt reports the bytes read through it as progress of step
// until quiet is set.
type countingReaderAt struct {
	r        io.ReaderAt
	size     int64
	read     atomic.Int64
	quiet    atomic.Bool
	step     string
	progress func(console.FirmwareProgress)
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	done := c.read.Add(int64(n))
	if !c.quiet.Load() {
		c.progress(console.FirmwareProgress{Step: c.step, Done: min(done, c.size), Total: c.size})
	}
	return n, err
}
