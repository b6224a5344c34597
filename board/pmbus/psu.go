package pmbus

import (
	"errors"
	"fmt"

	"github.com/nvrfw/nvr/board/smbus"
)

// Identity is a PSU's manufacturer strings.
type Identity struct {
	Manufacturer string // MFR_ID
	Model        string // MFR_MODEL
	Serial       string // MFR_SERIAL
}

// Reading is one readout of a PSU.
type Reading struct {
	// Present is false when the PSU did not acknowledge its address; the
	// other fields are then zero.
	Present bool
	// StatusWord is the raw STATUS_WORD.
	StatusWord uint16
	// Conditions are the status bits set, by name.
	Conditions []Condition
	// Telemetry, in volts, amperes, watts and degrees Celsius. A value that
	// could not be read is 0 and named in Missing.
	VIn, VOut, IOut, POut, Temperature float64
	Missing                            []string
	Identity                           Identity
	// Problems says why a register could not be read or decoded (a
	// malformed reply, an unsupported VOUT_MODE); the PSU may still be
	// healthy.
	Problems []string
}

// Faults returns the names of the conditions of Fault severity.
func (r Reading) Faults() []string { return r.names(Fault) }

// Warnings returns the names of the conditions of Warning severity.
func (r Reading) Warnings() []string { return r.names(Warning) }

func (r Reading) names(s Severity) []string {
	var out []string
	for _, c := range r.Conditions {
		if c.Severity == s {
			out = append(out, c.Name)
		}
	}
	return out
}

// PSU reads one PMBus power supply. It caches VOUT_MODE and the identity
// strings while the PSU stays present.
type PSU struct {
	bus      SMBus
	voutExp  int
	haveExp  bool
	identity *Identity
}

// NewPSU returns a PSU read through bus.
func NewPSU(bus SMBus) *PSU { return &PSU{bus: bus} }

// Read reads the PSU's status, telemetry and (once) identity. It returns
// Present false, and no error, when nothing acknowledges the address; an
// error only when STATUS_WORD cannot be read for another reason.
func (p *PSU) Read() (Reading, error) {
	w, err := p.bus.ReadWordData(CmdStatusWord)
	if errors.Is(err, smbus.ErrNoDevice) {
		p.forget()
		return Reading{}, nil
	}
	if err != nil {
		return Reading{}, fmt.Errorf("pmbus: read STATUS_WORD: %w", err)
	}
	r := Reading{Present: true, StatusWord: w}
	absent := false
	problem := func(what string, err error) {
		if errors.Is(err, smbus.ErrNoDevice) {
			absent = true
		}
		r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", what, err))
	}
	r.Conditions = DecodeStatus(w, func(cmd byte) (byte, bool) {
		b, err := p.bus.ReadByteData(cmd)
		if err != nil {
			problem(fmt.Sprintf("status register %#02x", cmd), err)
			return 0, false
		}
		return b, true
	})
	linear11 := func(name string, cmd byte, dst *float64) {
		v, err := p.bus.ReadWordData(cmd)
		if err != nil {
			problem(name, err)
			r.Missing = append(r.Missing, name)
			return
		}
		*dst = Linear11(v)
	}
	linear11("VIN", CmdReadVin, &r.VIn)
	p.readVout(&r, problem)
	linear11("IOUT", CmdReadIout, &r.IOut)
	linear11("POUT", CmdReadPout, &r.POut)
	linear11("TEMPERATURE", CmdReadTemperature1, &r.Temperature)
	if p.identity == nil && !absent {
		p.readIdentity(problem)
	}
	if absent {
		p.forget()
		return Reading{}, nil
	}
	if p.identity != nil {
		r.Identity = *p.identity
	}
	return r, nil
}

func (p *PSU) readVout(r *Reading, problem func(string, error)) {
	if !p.haveExp {
		mode, err := p.bus.ReadByteData(CmdVoutMode)
		if err == nil {
			p.voutExp, err = ParseVoutMode(mode)
		}
		if err != nil {
			problem("VOUT_MODE", err)
			r.Missing = append(r.Missing, "VOUT")
			return
		}
		p.haveExp = true
	}
	raw, err := p.bus.ReadWordData(CmdReadVout)
	var v float64
	if err == nil {
		v, err = Linear16(raw, p.voutExp)
	}
	if err != nil {
		problem("VOUT", err)
		r.Missing = append(r.Missing, "VOUT")
		return
	}
	r.VOut = v
}

func (p *PSU) readIdentity(problem func(string, error)) {
	var id Identity
	ok := true
	for _, f := range []struct {
		name string
		cmd  byte
		dst  *string
	}{
		{"MFR_ID", CmdMfrID, &id.Manufacturer},
		{"MFR_MODEL", CmdMfrModel, &id.Model},
		{"MFR_SERIAL", CmdMfrSerial, &id.Serial},
	} {
		b, err := p.bus.ReadBlockData(f.cmd)
		if err != nil {
			problem(f.name, err)
			ok = false
			continue
		}
		*f.dst = ASCII(b)
	}
	if ok {
		p.identity = &id
	}
}

// forget drops what was cached about a PSU that went away: the next one in
// the slot may be another model.
func (p *PSU) forget() {
	p.haveExp, p.identity = false, nil
}
