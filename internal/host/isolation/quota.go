package isolation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/quota"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// ConditionDiskQuota is the Quota part's condition.
const ConditionDiskQuota = "DiskQuota"

// ReasonQuotaUnsupported means the spec asks for disk limits the file
// system holding the homes cannot enforce.
const ReasonQuotaUnsupported = "QuotaUnsupported"

// Quota keeps a project quota on each tenant's home: the project id is
// the tenant's uid, set with PROJINHERIT on the home and what is in it;
// the limits are the spec's limits.disk. Where the file system has no
// project quota it changes nothing, and says so (QuotaUnsupported when
// the spec asks for disk limits).
type Quota struct {
	// WWWRoot holds the homes (/srv/www).
	WWWRoot string
	// Mountinfo is /proc/self/mountinfo but for tests.
	Mountinfo string
	Clock     func() time.Time

	mu    sync.Mutex
	usage map[string]quota.Usage // last read, by tenant, for /metrics
	// info is the last Detect, reused for detectTTL: a reconcile asks two
	// or three times, a burst of a thousand tenants thousands of times, and
	// mounts change seldom.
	info   quota.Info
	infoAt time.Time
}

// detectTTL bounds how long a mount change goes unseen.
const detectTTL = 5 * time.Second

// Name names the step in conditions and events.
func (q *Quota) Name() string { return "diskquota" }

// ConditionType is the condition the step owns.
func (q *Quota) ConditionType() string { return ConditionDiskQuota }

// Usage is each tenant's disk use as last read.
func (q *Quota) Usage() map[string]quota.Usage {
	q.mu.Lock()
	defer q.mu.Unlock()
	return maps.Clone(q.usage)
}

type quotaWant struct {
	home  string
	id    uint32
	limit quota.Limit
	asked bool // the spec sets a disk limit
}

// want reads the spec; the project id is the uid owning the home, which
// the account part made just before.
func (q *Quota) want(row store.Resource) (quotaWant, error) {
	var spec v1alpha1.TenantSpec
	if err := json.Unmarshal(row.Spec, &spec); err != nil {
		return quotaWant{}, reconcile.Terminal(fmt.Errorf("stored spec: %w", err))
	}
	b, err := spec.Limits.Disk.Bytes.Bytes()
	if err != nil || b < 0 {
		return quotaWant{}, reconcile.Terminal(fmt.Errorf("spec.limits.disk.bytes %q: %w", spec.Limits.Disk.Bytes, err))
	}
	if spec.Limits.Disk.Inodes < 0 {
		return quotaWant{}, reconcile.Terminal(fmt.Errorf("spec.limits.disk.inodes %d is negative", spec.Limits.Disk.Inodes))
	}
	w := quotaWant{home: filepath.Join(q.WWWRoot, row.Name),
		limit: quota.Limit{Bytes: uint64(b), Inodes: uint64(spec.Limits.Disk.Inodes)}}
	w.asked = w.limit != quota.Limit{}
	fi, err := os.Lstat(w.home)
	if errors.Is(err, fs.ErrNotExist) {
		return w, nil // id 0: the account part makes the home first
	} else if err != nil {
		return w, fmt.Errorf("home of %s: %w", row.Name, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() {
		return w, fmt.Errorf("home of %s: %s is not a directory", row.Name, w.home)
	}
	w.id = st.Uid
	return w, nil
}

func (q *Quota) detect() (quota.Info, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if now := q.Clock(); !q.infoAt.IsZero() && now.Sub(q.infoAt) < detectTTL && !now.Before(q.infoAt) {
		return q.info, nil
	}
	mi := q.Mountinfo
	if mi == "" {
		mi = "/proc/self/mountinfo"
	}
	info, err := quota.Detect(mi, q.WWWRoot)
	if err != nil {
		return info, err
	}
	q.info, q.infoAt = info, q.Clock()
	return info, nil
}

// Observe compares the home's project and its limits with the spec; on a
// file system without project quota there is nothing to compare (the
// status says so).
func (q *Quota) Observe(_ context.Context, row store.Resource) ([]host.Difference, error) {
	w, err := q.want(row)
	if err != nil {
		return nil, err
	}
	info, err := q.detect()
	if err != nil {
		return nil, err
	}
	if !info.Project {
		return nil, nil
	}
	if w.id == 0 {
		// Observed before the account part made the home (or gave it to
		// the tenant).
		return []host.Difference{{Field: quota.FieldProject, Want: "the tenant's uid", Have: "no home of the tenant's yet"}}, nil
	}
	return quota.Observe(info, w.home, w.id, w.limit)
}

// Apply sets the project on the home and the limits. Both are the
// kernel's, one call each: applying again converges what a failure left.
func (q *Quota) Apply(_ context.Context, row store.Resource, _ []host.Difference) (string, error) {
	w, err := q.want(row)
	if err != nil {
		return "", err
	}
	info, err := q.detect()
	if err != nil {
		return "", err
	}
	if !info.Project {
		return "", nil
	}
	if w.id == 0 {
		return "", fmt.Errorf("home of %s: %s is missing or owned by root", row.Name, w.home)
	}
	_, _, err = quota.Ensure(info, w.home, w.id, w.limit)
	return "", err
}

// Remove clears the project's limits (the account part archives or
// deletes the home, which frees its blocks).
func (q *Quota) Remove(_ context.Context, row store.Resource) error {
	q.mu.Lock()
	delete(q.usage, row.Name)
	q.mu.Unlock()
	var st v1alpha1.Status
	if len(row.Status) > 0 {
		if err := json.Unmarshal(row.Status, &st); err != nil {
			return fmt.Errorf("stored status: %w", err)
		}
	}
	if st.Account == nil {
		return nil // never had an account, so never a project
	}
	info, err := q.detect()
	if err != nil || !info.Project {
		return err
	}
	return quota.SetLimit(info, uint32(st.Account.UID), quota.Limit{}) //nolint:gosec // uids are within the tenant range
}

// ReportStatus writes status.resources.disk, and marks DiskQuota False
// (QuotaUnsupported) when the spec asks for disk limits the file system
// cannot enforce.
func (q *Quota) ReportStatus(_ context.Context, row store.Resource, st *v1alpha1.Status) error {
	w, err := q.want(row)
	if err != nil {
		return err
	}
	info, err := q.detect()
	if err != nil {
		return err
	}
	d := &v1alpha1.DiskStatus{Quota: info.Project, Reason: info.Reason, FileSystem: info.FSType + " " + info.MountPoint}
	if info.Accounting && w.id != 0 {
		u, err := quota.Get(info, w.id)
		if err != nil && !errors.Is(err, quota.ErrUnsupported) {
			return err
		}
		if err == nil {
			d.Project, d.UsedBytes, d.UsedInodes = w.id, u.Bytes, u.Inodes
			if info.Project {
				// Limits stored on a file system that does not enforce
				// them (ext4 mounted without prjquota) are not shown.
				d.LimitBytes, d.LimitInodes = u.Limit.Bytes, u.Limit.Inodes
			}
			q.mu.Lock()
			if q.usage == nil {
				q.usage = map[string]quota.Usage{}
			}
			q.usage[row.Name] = u
			q.mu.Unlock()
		}
	}
	if st.Resources == nil {
		st.Resources = &v1alpha1.ResourcesStatus{ObservedAt: q.Clock().UTC()}
	}
	st.Resources.Disk = d
	if w.asked && !info.Project {
		st.Conditions = conditions.Set(st.Conditions, v1alpha1.Condition{Type: ConditionDiskQuota,
			Status: v1alpha1.ConditionFalse, Reason: ReasonQuotaUnsupported, ObservedGeneration: row.Generation,
			Message: "spec.limits.disk is not enforced: " + info.Reason}, q.Clock().UTC())
	}
	return nil
}
