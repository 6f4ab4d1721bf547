package cgroup

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in   string
		want CPUMax
		ok   bool
	}{
		{"max 100000\n", CPUMax{-1, 100000}, true},
		{"150000 100000\n", CPUMax{150000, 100000}, true},
		{"1000 1000", CPUMax{1000, 1000}, true},
		{"max 1000000", CPUMax{-1, 1000000}, true},
		{"999 100000", CPUMax{}, false},   // quota under 1 ms
		{"1000 999", CPUMax{}, false},     // period under 1 ms
		{"1000 1000001", CPUMax{}, false}, // period over 1 s
		{"-1 100000", CPUMax{}, false},    // the kernel prints max
		{"+1000 100000", CPUMax{}, false}, // no signs
		{"0x3e8 100000", CPUMax{}, false}, // no bases
		{"max", CPUMax{}, false},          // period missing
		{"max 100000 1", CPUMax{}, false}, // a third field
		{"max\n100000", CPUMax{}, false},  // two lines
		{"", CPUMax{}, false},             // empty
		{"max max", CPUMax{}, false},      // period max
		{"99999999999999999999 100000", CPUMax{}, false},
	}
	for _, tt := range tests {
		got, err := ParseCPUMax(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseCPUMax(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrParse) {
			t.Errorf("ParseCPUMax(%q): %v does not wrap ErrParse", tt.in, err)
		}
		if err == nil {
			if again, err := ParseCPUMax(got.String()); err != nil || again != got {
				t.Errorf("ParseCPUMax(%q.String()) = %v, %v", got, again, err)
			}
		}
	}
}

func TestCPUMaxFor(t *testing.T) {
	for pct, want := range map[int]string{0: "max 100000", 1: "1000 100000", 50: "50000 100000", 150: "150000 100000", 102400: "102400000 100000"} {
		if got := CPUMaxFor(pct).String(); got != want {
			t.Errorf("CPUMaxFor(%d) = %q, want %q", pct, got, want)
		}
		if err := CPUMaxFor(pct).validate(); err != nil {
			t.Errorf("CPUMaxFor(%d): %v", pct, err)
		}
	}
}

func TestParseIOMax(t *testing.T) {
	m := func(r, w, ri, wi uint64) IOMax { return IOMax{r, w, ri, wi} }
	tests := []struct {
		name string
		in   string
		want map[Device]IOMax
	}{
		{"empty", "", map[Device]IOMax{}},
		{"one", "8:0 rbps=2097152 wbps=max riops=max wiops=120\n", map[Device]IOMax{{8, 0}: m(2097152, Unlimited, Unlimited, 120)}},
		{"two, any key order", "8:0 wiops=5 riops=4 wbps=3 rbps=2\n254:16 rbps=max wbps=max riops=max wiops=max\n",
			map[Device]IOMax{{8, 0}: m(2, 3, 4, 5), {254, 16}: NoIOLimit()}},
		{"key missing", "8:0 rbps=1 wbps=max riops=max\n", nil},
		{"key twice", "8:0 rbps=1 rbps=2 wbps=max riops=max wiops=max\n", nil},
		{"unknown key", "8:0 rbps=1 wbps=max riops=max wiops=max idle=1\n", nil},
		{"device twice", "8:0 rbps=1 wbps=max riops=max wiops=max\n8:0 rbps=1 wbps=max riops=max wiops=max\n", nil},
		{"bad device", "8 rbps=1 wbps=max riops=max wiops=max\n", nil},
		{"max device", "max:0 rbps=1 wbps=max riops=max wiops=max\n", nil},
		{"device over 32 bits", "4294967296:0 rbps=1 wbps=max riops=max wiops=max\n", nil},
		{"negative", "8:0 rbps=-1 wbps=max riops=max wiops=max\n", nil},
		{"no value", "8:0 rbps wbps=max riops=max wiops=max\n", nil},
		{"over 64 bits", "8:0 rbps=18446744073709551616 wbps=max riops=max wiops=max\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIOMax(tt.in)
			if tt.want == nil {
				if !errors.Is(err, ErrParse) {
					t.Errorf("ParseIOMax(%q) = %v, %v; want ErrParse", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParseIOMax(%q) (-want +got):\n%s", tt.in, d)
			}
		})
	}
}

func TestParsePSI(t *testing.T) {
	full := PSILine{0, 0, 0, 0}
	tests := []struct {
		name string
		in   string
		want *PSI
	}{
		{"host cpu", "some avg10=0.23 avg60=7.72 avg300=21.70 total=2682702666\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
			&PSI{Some: PSILine{0.23, 7.72, 21.70, 2682702666 * time.Microsecond}, Full: &full}},
		{"some only (cpu before 5.13)", "some avg10=100.00 avg60=0.00 avg300=0.00 total=1\n", &PSI{Some: PSILine{100, 0, 0, time.Microsecond}}},
		{"a later key", "some avg10=1.00 avg60=0.00 avg300=0.00 total=1 avg900=3.00\n", &PSI{Some: PSILine{1, 0, 0, time.Microsecond}}},
		{"no some", "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"empty", "", nil},
		{"some twice", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"unknown line", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nhalf avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"key missing", "some avg10=0.00 avg60=0.00 total=0\n", nil},
		{"key twice", "some avg10=0.00 avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"over 100", "some avg10=100.01 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"negative", "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"NaN", "some avg10=NaN avg60=0.00 avg300=0.00 total=0\n", nil},
		{"exponent", "some avg10=1e1 avg60=0.00 avg300=0.00 total=0\n", nil},
		{"total too big", "some avg10=0.00 avg60=0.00 avg300=0.00 total=9223372036854776\n", nil},
		{"total negative", "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n", nil},
		{"not key=value", "some avg10 avg60=0.00 avg300=0.00 total=0\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePSI(tt.in)
			if tt.want == nil {
				if !errors.Is(err, ErrParse) {
					t.Errorf("ParsePSI(%q) = %v, %v; want ErrParse", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(*tt.want, got); d != "" {
				t.Errorf("ParsePSI(%q) (-want +got):\n%s", tt.in, d)
			}
		})
	}
}

func TestParseFlatKeyed(t *testing.T) {
	got, err := parseFlatKeyed("low 0\nhigh 205\nmax 0\noom_kill 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]uint64{"low": 0, "high": 205, "max": 0, "oom_kill": 1}, got); d != "" {
		t.Error(d)
	}
	for _, bad := range []string{"a\n", "a 1 2\n", "a -1\n", "a 1\na 2\n"} {
		if _, err := parseFlatKeyed(bad); !errors.Is(err, ErrParse) {
			t.Errorf("parseFlatKeyed(%q): %v, want ErrParse", bad, err)
		}
	}
}
