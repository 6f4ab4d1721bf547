package cgroup

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The seed corpus is in testdata/fuzz/<Fuzz...>.

// FuzzParsePSI: ParsePSI never panics; what it accepts is in range and
// reads back the same from its String.
func FuzzParsePSI(f *testing.F) {
	f.Add("some avg10=0.23 avg60=7.72 avg300=21.70 total=2682702666\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePSI(s)
		if err != nil {
			return
		}
		lines := []PSILine{p.Some}
		if p.Full != nil {
			lines = append(lines, *p.Full)
		}
		for _, l := range lines {
			for _, a := range []float64{l.Avg10, l.Avg60, l.Avg300} {
				if math.IsNaN(a) || a < 0 || a > 100 {
					t.Fatalf("ParsePSI(%q): average %v", s, a)
				}
			}
			if l.Total < 0 {
				t.Fatalf("ParsePSI(%q): total %v", s, l.Total)
			}
		}
		again, err := ParsePSI(p.String())
		if err != nil {
			t.Fatalf("ParsePSI(%q) = %+v, whose String %q does not parse: %v", s, p, p.String(), err)
		}
		// String rounds the averages to two decimals, as the kernel does.
		if d := cmp.Diff(p.String(), again.String()); d != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, d)
		}
	})
}

// FuzzParseCPUMax: what ParseCPUMax accepts is valid and round-trips.
func FuzzParseCPUMax(f *testing.F) {
	f.Add("max 100000\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCPUMax(s)
		if err != nil {
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("ParseCPUMax(%q) = %v, invalid: %v", s, c, err)
		}
		if again, err := ParseCPUMax(c.String()); err != nil || again != c {
			t.Fatalf("ParseCPUMax(%q) = %v; of its String: %v, %v", s, c, again, err)
		}
	})
}

// FuzzParseIOMax: what ParseIOMax accepts round-trips line by line.
func FuzzParseIOMax(f *testing.F) {
	f.Add("8:0 rbps=2097152 wbps=max riops=max wiops=120\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseIOMax(s)
		if err != nil {
			return
		}
		var text string
		for _, d := range sortedDevices(m) {
			text += d.String() + " " + m[d].String() + "\n"
		}
		again, err := ParseIOMax(text)
		if err != nil {
			t.Fatalf("ParseIOMax(%q) = %v; its text %q: %v", s, m, text, err)
		}
		if d := cmp.Diff(m, again); d != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, d)
		}
	})
}
