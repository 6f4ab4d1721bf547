package quota

import (
	"strconv"

	"github.com/wcp360/wcp360/internal/host"
)

// The fields of the differences Observe reports.
const (
	FieldProject    = "quota.project"
	FieldInherit    = "quota.project.inherit"
	FieldBytes      = "quota.bytes"
	FieldInodes     = "quota.inodes"
	FieldSoftBytes  = "quota.soft.bytes"
	FieldSoftInodes = "quota.soft.inodes"
)

// Observe compares the project of home, and the limits of project id on
// info's file system, with want (want.Bytes as SetLimit rounds it): a home
// without the project id or PROJINHERIT (new, or changed by chattr -p), a
// limit changed or a soft limit set by hand, are differences. It reads the
// home only, never walks it: once the home has PROJINHERIT the kernel gives
// its id to whatever is made in it, and refuses with EXDEV a rename or
// hard link into it from another project (mv falls back to a copy), so a
// tree set once stays set.
func Observe(info Info, home string, id uint32, want Limit) ([]host.Difference, error) {
	if !info.Project {
		return nil, info.unsupported()
	}
	var diffs []host.Difference
	have, inherit, err := ProjectOf(home)
	if err != nil {
		return nil, err
	}
	if have != id {
		diffs = append(diffs, host.Difference{Field: FieldProject, Want: strconv.FormatUint(uint64(id), 10), Have: strconv.FormatUint(uint64(have), 10)})
	}
	if !inherit {
		diffs = append(diffs, host.Difference{Field: FieldInherit, Want: "true", Have: "false"})
	}
	u, err := Get(info, id)
	if err != nil {
		return nil, err
	}
	return append(diffs, limitDiffs(u, Limit{Bytes: info.roundBytes(want.Bytes), Inodes: want.Inodes})...), nil
}

// limitDiffs compares the limits in u with want (rounded as the file
// system keeps it), and wants no soft limits.
func limitDiffs(u Usage, want Limit) []host.Difference {
	var diffs []host.Difference
	for _, c := range []struct {
		field      string
		want, have uint64
	}{
		{FieldBytes, want.Bytes, u.Limit.Bytes},
		{FieldInodes, want.Inodes, u.Limit.Inodes},
		{FieldSoftBytes, 0, u.Soft.Bytes},
		{FieldSoftInodes, 0, u.Soft.Inodes},
	} {
		if c.want != c.have {
			diffs = append(diffs, host.Difference{Field: c.field, Want: limitString(c.want), Have: limitString(c.have)})
		}
	}
	return diffs
}

// Ensure makes what Observe compares true: it sets the project on home
// and what is in it (SetProject) when the home lacks it, and the limits
// when they differ. It returns the differences it corrected, and what
// SetProject changed; running it again changes nothing.
func Ensure(info Info, home string, id uint32, want Limit) ([]host.Difference, Changes, error) {
	diffs, err := Observe(info, home, id, want)
	if err != nil {
		return nil, Changes{}, err
	}
	var ch Changes
	var project, limits bool
	for _, d := range diffs {
		switch d.Field {
		case FieldProject, FieldInherit:
			project = true
		default:
			limits = true
		}
	}
	if project {
		if ch, err = SetProject(home, id); err != nil {
			return nil, ch, err
		}
	}
	if limits {
		if err := SetLimit(info, id, want); err != nil {
			return nil, ch, err
		}
	}
	return diffs, ch, nil
}
