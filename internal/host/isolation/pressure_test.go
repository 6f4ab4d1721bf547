package isolation

import (
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/cgroup"
)

// Without CAP_SYS_RESOURCE the kernel takes only windows of whole 2 s; the
// trigger keeps its share of time.
func TestUnprivilegedTrigger(t *testing.T) {
	for _, c := range []struct{ in, want cgroup.Trigger }{
		{cgroup.Trigger{Stall: 100 * time.Millisecond, Window: time.Second}, cgroup.Trigger{Stall: 200 * time.Millisecond, Window: 2 * time.Second}},
		{cgroup.Trigger{Stall: 300 * time.Millisecond, Window: 3 * time.Second}, cgroup.Trigger{Stall: 400 * time.Millisecond, Window: 4 * time.Second}},
		{cgroup.Trigger{Full: true, Stall: 5 * time.Second, Window: 10 * time.Second}, cgroup.Trigger{Full: true, Stall: 5 * time.Second, Window: 10 * time.Second}},
		{cgroup.Trigger{Stall: 500 * time.Millisecond, Window: 500 * time.Millisecond}, cgroup.Trigger{Stall: 2 * time.Second, Window: 2 * time.Second}},
	} {
		got := unprivileged(c.in)
		if got != c.want {
			t.Errorf("unprivileged(%s) = %s, want %s", c.in, got, c.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("unprivileged(%s) = %s: %v", c.in, got, err)
		}
	}
}
