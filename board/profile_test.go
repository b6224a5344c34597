package board

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const sampleProfile = `# sample
model test-1u   # trailing comment

psu PSU1 bus=0 addr=0x58
psu PSU2 bus=1 addr=89
psu PSU3 adapter=SMBus_I801 addr=0x58
bay B0 present=gpiochip0:3 fault-led=leds:0 locate-led=leds:LOC0 led-active=low
bay B1 present=gpiochip0:4 present-active=high
raid md1
raid md0 role=recording
watchdog /dev/watchdog0 timeout=45s
`

func TestParseProfile(t *testing.T) {
	p, err := ParseProfile("sample.board", []byte(sampleProfile))
	if err != nil {
		t.Fatal(err)
	}
	want := &Profile{
		Model: "test-1u",
		PSUs:  []PSUSpec{{Name: "PSU1", Addr: 0x58}, {Name: "PSU2", Bus: 1, Addr: 89}, {Name: "PSU3", Adapter: "SMBus_I801", Addr: 0x58}},
		Bays: []BaySpec{
			{Name: "B0", Present: GPIOLine{"gpiochip0", "3"}, FaultLED: GPIOLine{"leds", "0"}, LocateLED: GPIOLine{"leds", "LOC0"}, LEDActiveLow: true},
			{Name: "B1", Present: GPIOLine{"gpiochip0", "4"}, PresentActiveHigh: true},
		},
		Arrays:   []ArraySpec{{"md1", false}, {"md0", true}},
		Watchdog: &WatchdogSpec{Path: "/dev/watchdog0", Timeout: 45 * time.Second},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got  %+v\nwant %+v", p, want)
	}
	if a, ok := p.RecordingArray(); !ok || a.Name != "md0" {
		t.Errorf("RecordingArray = %v, %v", a, ok)
	}
	if off, ok := p.Bays[0].Present.Offset(); !ok || off != 3 {
		t.Errorf("Offset = %d, %v", off, ok)
	}
	if _, ok := p.Bays[0].LocateLED.Offset(); ok {
		t.Error("line name LOC0 parsed as an offset")
	}
	again, err := ParseProfile("formatted", p.Format())
	if err != nil {
		t.Fatalf("reparse of Format: %v\n%s", err, p.Format())
	}
	if !reflect.DeepEqual(again, p) {
		t.Fatalf("Format round trip differs:\n%s", p.Format())
	}
}

func TestParseProfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"empty", "", 0, "no model directive"},
		{"only comments", "# nothing\n\n", 0, "no model directive"},
		{"psu before model", "psu P bus=0 addr=0x58\nmodel m\n", 1, "before the model"},
		{"two models", "model a\nmodel b\n", 2, "second model"},
		{"model two names", "model a b\n", 1, "exactly one name"},
		{"bad model name", "model a/b\n", 1, "not allowed"},
		{"unknown directive", "model m\nfan F1\n", 2, `unknown directive "fan"`},
		{"missing name", "model m\npsu\n", 2, "needs a name"},
		{"missing addr", "model m\npsu P bus=0\n", 2, "missing addr="},
		{"missing bus", "model m\npsu P addr=0x58\n", 2, "missing bus=N or adapter=NAME"},
		{"bus and adapter", "model m\npsu P bus=0 adapter=x addr=0x58\n", 2, "exclusive"},
		{"bad adapter", "model m\npsu P adapter=a:b addr=0x58\n", 2, `adapter="a:b"`},
		{"same adapter address", "model m\npsu P adapter=x addr=0x58\npsu Q adapter=x addr=0x58\n", 3, "adapter x address 0x58 already used by P"},
		{"addr out of range", "model m\npsu P bus=0 addr=0x80\n", 2, `addr="0x80"`},
		{"addr not a number", "model m\npsu P bus=0 addr=x\n", 2, `addr="x"`},
		{"unknown option", "model m\npsu P bus=0 addr=0x58 pec=1\n", 2, `unknown option "pec"`},
		{"repeated option", "model m\npsu P bus=0 bus=1 addr=0x58\n", 2, "bus given twice"},
		{"not key=value", "model m\npsu P bus\n", 2, `"bus" is not key=value`},
		{"empty value", "model m\npsu P bus= addr=0x58\n", 2, "not key=value"},
		{"duplicate psu", "model m\npsu P bus=0 addr=0x58\npsu P bus=0 addr=0x59\n", 3, "already declared at line 2"},
		{"same address", "model m\npsu P bus=0 addr=0x58\npsu Q bus=0 addr=88\n", 3, "bus 0 address 0x58 already used by P"},
		{"bay without presence", "model m\nbay B fault-led=c:1\n", 2, "missing present="},
		{"bay bad gpio", "model m\nbay B present=gpiochip0\n", 2, "want CHIP:LINE"},
		{"bay empty line", "model m\nbay B present=gpiochip0:\n", 2, "name \"\""},
		{"bay bad active", "model m\nbay B present=c:1 present-active=maybe\n", 2, "want one of low, high"},
		{"bay shared line", "model m\nbay A present=c:1\nbay B present=c:2 fault-led=c:1\n", 3, "already used by bay A"},
		{"raid not md", "model m\nraid sda\n", 2, "not an md device"},
		{"raid bad role", "model m\nraid md0 role=boot\n", 2, "role="},
		{"two recording", "model m\nraid md0 role=recording\nraid md1 role=recording\n", 3, "first is at line 2"},
		{"watchdog not dev", "model m\nwatchdog watchdog0\n", 2, "not a /dev path"},
		{"watchdog bad timeout", "model m\nwatchdog /dev/watchdog timeout=1.5s\n", 2, "whole seconds"},
		{"two watchdogs", "model m\nwatchdog /dev/watchdog\nwatchdog /dev/watchdog1\n", 3, "second watchdog"},
		{"huge line", "model m\n" + strings.Repeat("x", MaxProfileSize-10), 2, ""},
		{"too big", strings.Repeat("#", MaxProfileSize+1), 0, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProfile("t.board", []byte(tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *ParseError", err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
				t.Fatalf("err = %v; want line %d containing %q", err, tc.line, tc.msg)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), "board profile t.board:") {
				t.Errorf("error %q does not name file:line", err)
			}
		})
	}
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte(sampleProfile))
	f.Add([]byte("model m\nbay B present=a:b:c locate-led=x:1\n"))
	f.Add([]byte("model m\npsu P bus=0x1 addr=0x58 # c\nwatchdog /dev/w timeout=1h\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		out := p.Format()
		q, err := ParseProfile("formatted", out)
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, out)
		}
		if !bytes.Equal(q.Format(), out) || !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip differs:\n%s\n---\n%s", out, q.Format())
		}
	})
}
