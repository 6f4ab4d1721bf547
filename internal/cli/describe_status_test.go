package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// The resources section puts the spec, the use and the enforcement of
// each limit side by side, and says why a limit is not enforced.
func TestWriteResources(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a := &app{env: Env{Now: func() time.Time { return now }}}
	spec := v1alpha1.TenantLimits{MemoryHigh: "384Mi", MemoryMax: "512Mi", CPU: "150%", Pids: 128,
		IO: v1alpha1.IOLimits{WriteBPS: "10Mi"}, Disk: v1alpha1.DiskLimits{Bytes: "10Gi", Inodes: 100000}}
	rs := &v1alpha1.ResourcesStatus{
		Driver: "cgroup v1 (memory, cpu, blkio, pids)", Enforced: []string{"memoryMax", "cpu", "pids", "io"},
		NotEnforced: map[string]string{"memoryHigh": "cgroup v1 has no memory.high"},
		Usage: &v1alpha1.ResourceUsage{MemoryBytes: 123 << 20, MemoryPeakBytes: 200 << 20, CPUSeconds: 12.34, Pids: 7,
			OOMKills: 1, Periods: 100, ThrottledPeriods: 5},
		Pressure:   &v1alpha1.PressureStatus{CPU: v1alpha1.PSIStatus{Some: v1alpha1.PSILine{Avg10: 1.5, Avg60: 0.5, Avg300: 0.25}}},
		Disk:       &v1alpha1.DiskStatus{Reason: "tmpfs at /srv/www has no project quota"},
		ObservedAt: now.Add(-12 * time.Second),
	}
	var b bytes.Buffer
	if err := a.writeResources(&b, spec, rs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range strings.Lines(b.String()) {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	want := []string{
		"Resources (read 12s ago, enforced by cgroup v1 (memory, cpu, blkio, pids)):",
		"LIMIT SPEC USED ENFORCED",
		"memoryHigh 384Mi 0 throttled NO: cgroup v1 has no memory.high",
		"memoryMax 512Mi 123.0Mi (peak 200.0Mi), 1 OOM kills yes",
		"cpu 150% 12.3s, throttled 5 of 100 periods yes",
		"pids 128 7 yes",
		"io write 10Mi/s - yes",
		"disk 10Gi - NO: tmpfs at /srv/www has no project quota",
		"inodes 100000 - NO: tmpfs at /srv/www has no project quota",
		"Pressure (share of time stalled, avg10 avg60 avg300):",
		"RESOURCE SOME FULL",
		"cpu 1.50% 0.50% 0.25% -",
		"memory 0.00% 0.00% 0.00% -",
		"io 0.00% 0.00% 0.00% -",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
}
