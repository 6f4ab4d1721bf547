package quota

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wcp360/wcp360/internal/host"
)

func TestLimitDiffs(t *testing.T) {
	for _, c := range []struct {
		name string
		have Usage
		want Limit
		diff []host.Difference
	}{
		{"same", Usage{Bytes: 5, Limit: Limit{Bytes: 8192, Inodes: 10}}, Limit{Bytes: 8192, Inodes: 10}, nil},
		{"none wanted, none set", Usage{Bytes: 5}, Limit{}, nil},
		{"changed by hand", Usage{Limit: Limit{Bytes: 4096, Inodes: 10}}, Limit{Bytes: 8192, Inodes: 10},
			[]host.Difference{{Field: FieldBytes, Want: "8192", Have: "4096"}}},
		{"removed by hand", Usage{}, Limit{Bytes: 8192, Inodes: 10},
			[]host.Difference{{Field: FieldBytes, Want: "8192", Have: "none"}, {Field: FieldInodes, Want: "10", Have: "none"}}},
		{"soft limits", Usage{Limit: Limit{Inodes: 10}, Soft: Limit{Bytes: 1024, Inodes: 3}}, Limit{Inodes: 10},
			[]host.Difference{{Field: FieldSoftBytes, Want: "none", Have: "1024"}, {Field: FieldSoftInodes, Want: "none", Have: "3"}}},
	} {
		if d := cmp.Diff(c.diff, limitDiffs(c.have, c.want)); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}
}

func TestObserveUnsupported(t *testing.T) {
	if _, err := Observe(Info{Reason: "tmpfs at /srv/www has no project quota"}, t.TempDir(), 20001, Limit{}); err == nil {
		t.Error("Observe without project quota: no error")
	}
	if _, _, err := Ensure(Info{Reason: "tmpfs at /srv/www has no project quota"}, t.TempDir(), 20001, Limit{}); err == nil {
		t.Error("Ensure without project quota: no error")
	}
}
