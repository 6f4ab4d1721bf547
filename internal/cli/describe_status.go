package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host/cgroup"
)

// writeKindStatus writes what a kind's status holds beyond conditions: a
// Tenant's resources (limits, what enforces them, usage, pressure, disk),
// a Domain's certificate.
func (a *app) writeKindStatus(w io.Writer, obj v1alpha1.Object) error {
	switch o := obj.(type) {
	case *v1alpha1.Tenant:
		return a.writeResources(w, o.Spec.Limits, o.Status.Resources)
	case *v1alpha1.Domain:
		return a.writeTLS(w, o.Status.TLS)
	}
	return nil
}

// writeResources writes one row per limit: what the spec asks, what the
// tenant uses, and whether this host enforces it (and why not).
func (a *app) writeResources(w io.Writer, spec v1alpha1.TenantLimits, rs *v1alpha1.ResourcesStatus) error {
	if rs == nil {
		fmt.Fprintln(w, "Resources:\n  <not observed yet>")
		return nil
	}
	fmt.Fprintf(w, "Resources (read %s ago, enforced by %s):\n", a.age(&rs.ObservedAt), rs.Driver)
	enforced := func(name string) string {
		if slices.Contains(rs.Enforced, name) {
			return "yes"
		}
		if why := rs.NotEnforced[name]; why != "" {
			return "NO: " + oneLine(why)
		}
		return "NO"
	}
	u := rs.Usage
	used := func(f func(*v1alpha1.ResourceUsage) string) string {
		if u == nil {
			return "-"
		}
		return f(u)
	}
	tw := newTable(w)
	row(tw, "  LIMIT", "SPEC", "USED", "ENFORCED")
	mem := used(func(u *v1alpha1.ResourceUsage) string {
		s := humanBytes(u.MemoryBytes)
		if u.MemoryPeakBytes > 0 {
			s += " (peak " + humanBytes(u.MemoryPeakBytes) + ")"
		}
		return s
	})
	row(tw, "  memoryHigh", orDash(string(spec.MemoryHigh)), used(func(u *v1alpha1.ResourceUsage) string {
		return strconv.FormatUint(u.MemoryHighEvents, 10) + " throttled"
	}), enforced(cgroup.LimitMemoryHigh))
	row(tw, "  memoryMax", orDash(string(spec.MemoryMax)), mem+used(func(u *v1alpha1.ResourceUsage) string {
		return fmt.Sprintf(", %d OOM kills", u.OOMKills)
	}), enforced(cgroup.LimitMemoryMax))
	row(tw, "  cpu", orDash(spec.CPU), used(func(u *v1alpha1.ResourceUsage) string {
		s := fmt.Sprintf("%.1fs", u.CPUSeconds)
		if u.Periods > 0 {
			s += fmt.Sprintf(", throttled %d of %d periods", u.ThrottledPeriods, u.Periods)
		}
		return s
	}), enforced(cgroup.LimitCPU))
	pids := "-"
	if spec.Pids > 0 {
		pids = strconv.FormatInt(spec.Pids, 10)
	}
	row(tw, "  pids", pids, used(func(u *v1alpha1.ResourceUsage) string { return strconv.FormatInt(u.Pids, 10) }), enforced(cgroup.LimitPids))
	row(tw, "  io", orDash(ioSpec(spec.IO)), "-", enforced(cgroup.LimitIO))
	writeDiskRows(tw, spec.Disk, rs.Disk)
	if err := tw.Flush(); err != nil {
		return err
	}
	if p := rs.Pressure; p != nil {
		fmt.Fprintln(w, "Pressure (share of time stalled, avg10 avg60 avg300):")
		tw := newTable(w)
		row(tw, "  RESOURCE", "SOME", "FULL")
		for _, r := range []struct {
			name string
			psi  v1alpha1.PSIStatus
		}{{"cpu", p.CPU}, {"memory", p.Memory}, {"io", p.IO}} {
			full := "-"
			if r.psi.Full != nil {
				full = psiText(*r.psi.Full)
			}
			row(tw, "  "+r.name, psiText(r.psi.Some), full)
		}
		return tw.Flush()
	}
	return nil
}

func writeDiskRows(tw io.Writer, spec v1alpha1.DiskLimits, d *v1alpha1.DiskStatus) {
	inodes := "-"
	if spec.Inodes > 0 {
		inodes = strconv.FormatInt(spec.Inodes, 10)
	}
	switch {
	case d == nil:
		row(tw, "  disk", orDash(string(spec.Bytes)), "-", "NO: not observed")
		row(tw, "  inodes", inodes, "-", "NO: not observed")
	case !d.Quota:
		row(tw, "  disk", orDash(string(spec.Bytes)), "-", "NO: "+oneLine(d.Reason))
		row(tw, "  inodes", inodes, "-", "NO: "+oneLine(d.Reason))
	default:
		on := "yes (project " + strconv.FormatUint(uint64(d.Project), 10) + " on " + d.FileSystem + ")"
		row(tw, "  disk", orDash(string(spec.Bytes)), humanBytes(int64(d.UsedBytes)), on) //nolint:gosec // a disk's bytes fit
		row(tw, "  inodes", inodes, strconv.FormatUint(d.UsedInodes, 10), on)
	}
}

func ioSpec(io v1alpha1.IOLimits) string {
	var parts []string
	if io.ReadBPS != "" {
		parts = append(parts, "read "+string(io.ReadBPS)+"/s")
	}
	if io.WriteBPS != "" {
		parts = append(parts, "write "+string(io.WriteBPS)+"/s")
	}
	if io.ReadIOPS > 0 {
		parts = append(parts, "read "+strconv.FormatInt(io.ReadIOPS, 10)+" IOPS")
	}
	if io.WriteIOPS > 0 {
		parts = append(parts, "write "+strconv.FormatInt(io.WriteIOPS, 10)+" IOPS")
	}
	return strings.Join(parts, ", ")
}

func psiText(l v1alpha1.PSILine) string {
	return fmt.Sprintf("%.2f%% %.2f%% %.2f%%", l.Avg10, l.Avg60, l.Avg300)
}

// humanBytes is 1.5Gi, 12.0Mi, 512B.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + "B"
	}
	f := float64(n)
	for _, s := range []string{"Ki", "Mi", "Gi", "Ti"} {
		f /= unit
		if f < unit || s == "Ti" {
			return fmt.Sprintf("%.1f%s", f, s)
		}
	}
	return ""
}

// writeTLS writes the certificate a domain serves and how its renewal
// goes.
func (a *app) writeTLS(w io.Writer, t *v1alpha1.TLSStatus) error {
	fmt.Fprintln(w, "TLS:")
	if t == nil {
		fmt.Fprintln(w, "  <not observed yet>")
		return nil
	}
	tw := newTable(w)
	row(tw, "  Mode:", string(t.Mode))
	row(tw, "  Trusted:", strconv.FormatBool(t.Trusted))
	row(tw, "  Issuer:", orNone(t.Issuer))
	row(tw, "  Names:", orNone(strings.Join(t.Names, ", ")))
	row(tw, "  Not After:", a.timestamp(t.NotAfter))
	row(tw, "  Renew At:", a.when(t.RenewAt))
	if t.LastError != "" {
		row(tw, "  Last Error:", oneLine(t.LastError)+" ("+a.timestamp(t.LastErrorTime)+")")
		row(tw, "  Failures:", strconv.Itoa(t.Failures)+" in a row, next order "+a.when(t.NextRetry))
	}
	return tw.Flush()
}

// when is "2025-01-02T15:04:05Z (in 3h)" for a time to come, else as
// timestamp.
func (a *app) when(t *time.Time) string {
	if t == nil || t.IsZero() || !t.After(a.env.Now()) {
		return a.timestamp(t)
	}
	return t.UTC().Format(time.RFC3339) + " (in " + humanAge(t.Sub(a.env.Now())) + ")"
}
