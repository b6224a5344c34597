package console

import (
	"context"
	"errors"
	"fmt"

	"github.com/nvrfw/nvr/firmware/config"
)

// FirmwareInstaller is what "firmware install" needs from the system. It is
// optional: the console type-asserts its System to it, and without it the
// command says that this system cannot install firmware.
type FirmwareInstaller interface {
	// InstallFirmware fetches the bundle named by req.Source (a file on the
	// appliance, or an http(s) URL), verifies it (signature by a trusted key,
	// board, version policy, every part's size and SHA-256), writes it into
	// the slot that is not running and arms that slot for one trial boot.
	// It calls progress, from the calling goroutine, as it advances.
	// A refused bundle writes nothing and returns an error whose message
	// says why on one line.
	InstallFirmware(ctx context.Context, req FirmwareInstall, progress func(FirmwareProgress)) (FirmwareInstalled, error)
}

// FirmwareInstall is one "firmware install" request.
type FirmwareInstall struct {
	// Source is a path on the appliance or an http(s) URL.
	Source string
	// AllowDowngrade accepts a bundle older than the running firmware.
	AllowDowngrade bool
}

// Steps of FirmwareProgress.
const (
	StepDownload = "downloading"
	StepVerify   = "verifying"
	StepWrite    = "writing"
)

// FirmwareProgress is how far an install has come.
type FirmwareProgress struct {
	// Step is StepDownload, StepVerify or StepWrite.
	Step string
	// Slot is the slot being written (StepWrite only).
	Slot string
	// Done and Total count the step's bytes; Total is 0 when unknown (a
	// download without a length).
	Done, Total int64
}

// FirmwareInstalled describes a finished install.
type FirmwareInstalled struct {
	// Version is the installed firmware's version.
	Version string
	// Slot is the slot it was written to, armed for one trial boot.
	Slot string
	// Fallback is the running slot, which the appliance comes back on if
	// the trial does not confirm.
	Fallback string
}

// firmwareCommand is the "firmware" group.
func firmwareCommand() *command {
	return &command{name: "firmware", summary: "firmware slots: status, install", subs: []*command{
		{name: "status", args: "[--json]", summary: "running and standby firmware", role: config.RoleViewer, json: true, run: runFirmwareStatus},
		{name: "install", args: "[--allow-downgrade] SOURCE", summary: "install a signed firmware bundle for one trial boot",
			help: "SOURCE is a bundle file on the appliance (e.g. on a mounted update disk) or an http(s) URL.\n" +
				"The bundle is verified (trusted signature, this board, not older than the running firmware\n" +
				"unless --allow-downgrade, every part intact) and written into the slot that is not running.\n" +
				"Reboot to try it: it runs as a trial and is kept once recording is healthy; a trial that\n" +
				"does not confirm (a crash, a watchdog reset, a power cut) boots the current firmware again.",
			role: config.RoleAdmin, flags: map[string]flagKind{"allow-downgrade": boolFlag}, run: runFirmwareInstall},
	}}
}

func runFirmwareStatus(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	fw, err := s.c.opts.System.Firmware(ctx)
	if err != nil {
		return fmt.Errorf("firmware status: %w", err)
	}
	if a.has("json") {
		return s.printJSON(fw)
	}
	trial := ""
	if fw.Trial {
		trial = " (trial boot: not yet confirmed)"
	}
	s.c.printf("running: %s (build %s) in slot %s%s\nstandby: %s\n", sanitize(fw.Version), sanitize(fw.BuildID), sanitize(fw.Slot), trial, sanitize(fw.Standby))
	return nil
}

// errNoInstaller: the system cannot install firmware (e.g. the demo).
var errNoInstaller = errors.New("firmware install is not available on this system (no A/B boot slots)")

func runFirmwareInstall(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("one SOURCE expected")
	}
	inst, ok := s.c.opts.System.(FirmwareInstaller)
	if !ok {
		return errNoInstaller
	}
	pr := &progressPrinter{s: s}
	res, err := inst.InstallFirmware(ctx, FirmwareInstall{Source: a.pos[0], AllowDowngrade: a.has("allow-downgrade")}, pr.report)
	if err != nil {
		return fmt.Errorf("firmware install: %w", err)
	}
	s.c.printf("firmware %s installed in slot %s, armed for one trial boot: reboot to try it.\n", sanitize(res.Version), sanitize(res.Slot))
	s.c.printf("It is kept once recording is healthy; otherwise the appliance comes back on slot %s.\n", sanitize(res.Fallback))
	return nil
}

// progressPrinter prints one line per step and then one per 10 % done, so
// a 115200-baud console is not flooded.
type progressPrinter struct {
	s         *session
	step      string
	lastTenth int // last tenth printed for step; -1 none
	lastBytes int64
}

func (p *progressPrinter) report(fp FirmwareProgress) {
	step := fp.Step
	if fp.Slot != "" {
		step += " slot " + fp.Slot
	}
	if step != p.step {
		p.step, p.lastTenth, p.lastBytes = step, -1, 0
	}
	if fp.Total <= 0 {
		// Unknown length: a line every 4 MiB.
		if fp.Done-p.lastBytes >= 4<<20 || p.lastTenth < 0 {
			p.s.c.printf("%s: %.1f MiB\n", sanitize(step), float64(fp.Done)/(1<<20))
			p.lastBytes, p.lastTenth = fp.Done, 0
		}
		return
	}
	tenth := int(min(fp.Done, fp.Total) * 10 / fp.Total)
	if tenth <= p.lastTenth {
		return
	}
	p.lastTenth = tenth
	p.s.c.printf("%s: %d%%\n", sanitize(step), tenth*10)
}
