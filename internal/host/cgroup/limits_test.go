package cgroup

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

func TestFromSpec(t *testing.T) {
	disk := Device{254, 0}
	tests := []struct {
		name string
		spec v1alpha1.TenantLimits
		dev  Device
		want Limits
		err  bool
	}{
		{"none", v1alpha1.TenantLimits{}, Device{}, Limits{}, false},
		{"all", v1alpha1.TenantLimits{MemoryHigh: "512Mi", MemoryMax: "1G", CPU: "150%", Pids: 200,
			IO: v1alpha1.IOLimits{WriteBPS: "10Mi", ReadIOPS: 500}, Disk: v1alpha1.DiskLimits{Bytes: "10Gi"}}, disk,
			Limits{MemoryHigh: 512 << 20, MemoryMax: 1e9, CPUPercent: 150, Pids: 200,
				IO: map[Device]IOMax{disk: {ReadBPS: Unlimited, WriteBPS: 10 << 20, ReadIOPS: 500, WriteIOPS: Unlimited}}}, false},
		{"io without a device", v1alpha1.TenantLimits{IO: v1alpha1.IOLimits{ReadBPS: "1Mi"}}, Device{}, Limits{}, true},
		{"a device without io", v1alpha1.TenantLimits{Pids: 20}, disk, Limits{Pids: 20}, false},
		{"bad quantity", v1alpha1.TenantLimits{MemoryMax: "1x"}, Device{}, Limits{}, true},
		{"bad cpu", v1alpha1.TenantLimits{CPU: "1.5"}, Device{}, Limits{}, true},
		{"1 byte/s, which the kernel refuses", v1alpha1.TenantLimits{IO: v1alpha1.IOLimits{ReadBPS: "1"}}, disk, Limits{}, true},
		{"pids past PID_MAX_LIMIT", v1alpha1.TenantLimits{Pids: 1 << 23}, Device{}, Limits{}, true},
		{"negative iops", v1alpha1.TenantLimits{IO: v1alpha1.IOLimits{WriteIOPS: -1}}, disk, Limits{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromSpec(tt.spec, tt.dev)
			if tt.err {
				if !errors.Is(err, ErrInvalidLimits) {
					t.Errorf("FromSpec = %+v, %v; want ErrInvalidLimits", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("FromSpec (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, l := range []Limits{
		{MemoryHigh: -1},
		{CPUPercent: -1},
		{CPUPercent: v1alpha1.MaxCPUPercent + 1},
		{Pids: -1},
		{IO: map[Device]IOMax{{}: NoIOLimit()}},
		{IO: map[Device]IOMax{{8, 0}: {0, Unlimited, Unlimited, Unlimited}}},
		{IO: map[Device]IOMax{{8, 0}: {Unlimited, Unlimited, 1 << 32, Unlimited}}},
		{CPUPeriod: 999 * time.Microsecond},
		{CPUPeriod: time.Second + time.Microsecond},
		{CPUPeriod: 10*time.Millisecond + 1},
		// 9% of 10 ms is 900 µs: under the kernel's 1 ms quota.
		{CPUPercent: 9, CPUPeriod: 10 * time.Millisecond},
	} {
		if err := l.Validate(); !errors.Is(err, ErrInvalidLimits) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidLimits", l, err)
		}
	}
}

func TestSettings(t *testing.T) {
	l := Limits{MemoryHigh: 50_000_000, CPUPercent: 150, IO: map[Device]IOMax{{254, 16}: NoIOLimit(), {8, 0}: {2, Unlimited, Unlimited, 3}}}
	want := []setting{
		{field: "memory.high", file: "memory.high", want: "49999872"}, // whole 4 KiB pages
		{field: "memory.max", file: "memory.max", want: "max"},
		{field: "cpu.max", file: "cpu.max", want: "150000 100000"},
		{field: "pids.max", file: "pids.max", want: "max"},
		{field: "io.max 8:0", file: "io.max", want: "rbps=2 wbps=max riops=max wiops=3", line: "8:0 rbps=2 wbps=max riops=max wiops=3"},
		{field: "io.max 254:16", file: "io.max", want: "none", line: "254:16 rbps=max wbps=max riops=max wiops=max"},
	}
	if d := cmp.Diff(want, l.settings(4096), cmp.AllowUnexported(setting{})); d != "" {
		t.Errorf("settings (-want +got):\n%s", d)
	}
	// A period of 10 ms: the quota is 150% of it.
	l.CPUPeriod = 10 * time.Millisecond
	if got := l.settings(4096)[2]; got.field != "cpu.max" || got.want != "15000 10000" {
		t.Errorf("cpu.max with a 10 ms period: %+v", got)
	}
}

func TestCPUMax(t *testing.T) {
	for _, c := range []struct {
		l    Limits
		want string
	}{
		{Limits{}, "max 100000"},
		{Limits{CPUPercent: 150}, "150000 100000"},
		{Limits{CPUPercent: 150, CPUPeriod: 100 * time.Millisecond}, "150000 100000"},
		{Limits{CPUPercent: 50, CPUPeriod: 10 * time.Millisecond}, "5000 10000"},
		{Limits{CPUPercent: 10, CPUPeriod: 10 * time.Millisecond}, "1000 10000"},
		{Limits{CPUPercent: 1, CPUPeriod: time.Second}, "10000 1000000"},
		{Limits{CPUPercent: 33, CPUPeriod: 1500 * time.Microsecond}, "495 1500"}, // refused by Validate
		// No limit: the default period, as systemd writes it.
		{Limits{CPUPeriod: 10 * time.Millisecond}, "max 100000"},
	} {
		if got := c.l.CPUMax().String(); got != c.want {
			t.Errorf("%+v: cpu.max %q, want %q", c.l, got, c.want)
		}
	}
	if CPUMaxFor(150) != (Limits{CPUPercent: 150}).CPUMax() {
		t.Error("CPUMaxFor is not the default period's")
	}
	for _, ok := range []Limits{
		{CPUPercent: 10, CPUPeriod: 10 * time.Millisecond},
		{CPUPercent: 100, CPUPeriod: time.Millisecond},
		{CPUPercent: v1alpha1.MaxCPUPercent, CPUPeriod: time.Second},
		{CPUPeriod: time.Millisecond}, // no cpu limit: any percent would do
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", ok, err)
		}
	}
	for p, want := range map[time.Duration]int{0: 1, 100 * time.Millisecond: 1, time.Second: 1, 10 * time.Millisecond: 10, 3 * time.Millisecond: 34, time.Millisecond: 100} {
		if got := MinCPUPercent(p); got != want {
			t.Errorf("MinCPUPercent(%s) = %d, want %d", p, got, want)
		}
	}
}

func TestTrigger(t *testing.T) {
	ok := Trigger{Stall: 150 * time.Millisecond, Window: time.Second}
	if err := ok.Validate(); err != nil || ok.String() != "some 150000 1000000" {
		t.Errorf("%v: %q, %v", ok, ok, err)
	}
	if s := (Trigger{Full: true, Stall: time.Millisecond, Window: MinTriggerWindow}).String(); s != "full 1000 500000" {
		t.Errorf("full trigger %q", s)
	}
	for _, bad := range []Trigger{
		{Stall: time.Millisecond, Window: 499 * time.Millisecond},
		{Stall: time.Millisecond, Window: 11 * time.Second},
		{Stall: 0, Window: time.Second},
		{Stall: 2 * time.Second, Window: time.Second},
		{Stall: time.Nanosecond, Window: time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
