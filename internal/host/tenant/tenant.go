// Package tenant converges a Tenant's Linux account: its user and private
// group (Go-native, through internal/host/users and the shadow-utils locks)
// and its home under /srv/www with the layout described in home.go.
//
// A reconcile is observe → apply. Apply holds the passwd locks for the
// whole plan: it snapshots every file it may touch (the four account files,
// their backups and the home's layout), writes the account files, lays out
// the home, and on any failure restores the snapshot under the same locks,
// so a failed plan leaves the host as it was and nobody else's entry is
// lost. Applies that arrive together make one plan (batch.go).
//
// Ownership: WCP360 only ever changes or removes a user whose GECOS field
// carries its marker ("WCP360 tenant <name>") and the group of that user's
// gid. A user or group of the same name that is not ours is refused, never
// taken over.
package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/host/users"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// Defaults of Options.
const (
	DefaultNologin    = "/usr/sbin/nologin"
	DefaultLoginShell = "/bin/bash"
	DefaultWebUser    = "www-data"
)

// Options configure the step.
type Options struct {
	// WWWRoot holds the homes (/srv/www).
	WWWRoot string
	// Users is the account database ("/" in production).
	Users *users.DB
	// Snapshots saves what a plan touches.
	Snapshots *snapshot.Store
	// UIDMin and UIDMax bound the uids (and gids) given to tenants.
	UIDMin, UIDMax int
	// ArchiveDir receives the homes of deleted tenants whose policy is archive.
	ArchiveDir string
	// WebUser is the web server's user, made a member of every tenant's
	// group so that nginx can read the sites (and nothing else can).
	WebUser string
	// Nologin is the shell of tenants without SSH; LoginShell of those with.
	Nologin, LoginShell string
	// Clock is the time source.
	Clock func() time.Time
	// Fault, when set, is called after each stage of an apply ("account",
	// "home") and fails it with its error: how tests prove that a failure
	// part-way restores the snapshot.
	Fault  func(stage string) error
	Logger *slog.Logger
}

// Step converges tenants' accounts and homes.
type Step struct {
	opts    Options
	home    homeFS
	batches batcher
}

// New checks opts and returns the step.
func New(opts Options) (*Step, error) {
	if opts.Users == nil || opts.Snapshots == nil || opts.Clock == nil {
		return nil, errors.New("tenant: Users, Snapshots and Clock are required")
	}
	if opts.UIDMin < 1000 || opts.UIDMax < opts.UIDMin || opts.UIDMax > users.MaxID {
		return nil, fmt.Errorf("tenant: uid range %d-%d: must be within 1000-%d, min ≤ max", opts.UIDMin, opts.UIDMax, users.MaxID)
	}
	if !filepath.IsAbs(opts.WWWRoot) || !filepath.IsAbs(opts.ArchiveDir) {
		return nil, errors.New("tenant: WWWRoot and ArchiveDir must be absolute")
	}
	// Snapshots want canonical paths: resolve an admin's symlinked /srv/www once.
	if real, err := filepath.EvalSymlinks(opts.WWWRoot); err == nil {
		opts.WWWRoot = real
	}
	if opts.WebUser == "" {
		opts.WebUser = DefaultWebUser
	}
	if opts.Nologin == "" {
		opts.Nologin = DefaultNologin
	}
	if opts.LoginShell == "" {
		opts.LoginShell = DefaultLoginShell
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Step{opts: opts, home: newHomeFS(opts.WWWRoot)}, nil
}

// Name names the step in conditions and events.
func (s *Step) Name() string { return "account" }

// Marker is the GECOS field of a tenant's user: how WCP360 knows the user is its own.
func Marker(tenant string) string { return "WCP360 tenant " + tenant }

// want is the account a tenant's spec asks for (uid 0: not pinned).
type want struct {
	name  string
	uid   int
	home  string
	shell string
	keys  []string
	spec  v1alpha1.TenantSpec
}

func (s *Step) want(row store.Resource) (want, error) {
	var spec v1alpha1.TenantSpec
	if err := json.Unmarshal(row.Spec, &spec); err != nil {
		return want{}, reconcile.Terminal(fmt.Errorf("stored spec: %w", err))
	}
	w := want{name: row.Name, uid: int(spec.UID), home: filepath.Join(s.opts.WWWRoot, row.Name),
		shell: s.opts.Nologin, keys: spec.Access.AuthorizedKeys, spec: spec}
	if spec.Access.SSH {
		w.shell = s.opts.LoginShell
	}
	if w.uid != 0 && (w.uid < s.opts.UIDMin || w.uid > s.opts.UIDMax) {
		return w, reconcile.Terminal(fmt.Errorf("spec.uid %d is outside the tenant uid range %d-%d of this host (uids in wcpd.yaml)",
			w.uid, s.opts.UIDMin, s.opts.UIDMax))
	}
	return w, nil
}

// account is what the host has for a tenant.
type account struct {
	user      users.User
	userOK    bool
	group     users.Group
	groupOK   bool
	webUserOK bool
}

// look reads the tenant's user and group and checks they are ours.
func (s *Step) look(tx *users.Tx, w want, st v1alpha1.Status) (account, error) {
	var a account
	u, err := tx.User(w.name)
	switch {
	case errors.Is(err, users.ErrNotFound):
	case err != nil:
		return a, err
	case !u.HasMarker(Marker(w.name)):
		return a, reconcile.Terminal(fmt.Errorf("user %s (uid %d) exists and was not created by WCP360 (GECOS %q): refusing to take it over; pick another tenant name",
			w.name, u.UID, u.Comment))
	default:
		a.user, a.userOK = u, true
	}
	g, err := tx.Group(w.name)
	switch {
	case errors.Is(err, users.ErrNotFound):
	case err != nil:
		return a, err
	default:
		ours := (a.userOK && g.GID == a.user.GID) || (st.Account != nil && st.Account.GID == g.GID)
		if !ours {
			return a, reconcile.Terminal(fmt.Errorf("group %s (gid %d) exists and was not created by WCP360: refusing to take it over", w.name, g.GID))
		}
		a.group, a.groupOK = g, true
	}
	if _, err := tx.User(s.opts.WebUser); err == nil {
		a.webUserOK = true
	}
	return a, nil
}

// Observe lists how the host differs from the tenant's spec.
func (s *Step) Observe(ctx context.Context, row store.Resource) ([]host.Difference, error) {
	w, err := s.want(row)
	if err != nil {
		return nil, err
	}
	st, err := decodeStatus(row)
	if err != nil {
		return nil, err
	}
	var a account
	if err := s.opts.Users.View(ctx, func(tx *users.Tx) error {
		a, err = s.look(tx, w, st)
		return err
	}); err != nil {
		return nil, err
	}
	ds := s.accountDiffs(w, a)
	if !a.userOK || !a.groupOK {
		return ds, nil // the home's owner is not known yet; apply lays it out
	}
	hds, err := s.home.observeHome(w.name, a.user.UID, a.group.GID, w.keys)
	if err != nil {
		return nil, reconcile.Terminal(err)
	}
	return append(ds, hds...), nil
}

func (s *Step) accountDiffs(w want, a account) []host.Difference {
	var ds []host.Difference
	if !a.userOK {
		ds = append(ds, host.Difference{Field: "user", Want: "present", Have: "absent"})
	} else {
		u := a.user
		if w.uid != 0 && u.UID != w.uid {
			ds = append(ds, host.Difference{Field: "user.uid", Want: strconv.Itoa(w.uid), Have: strconv.Itoa(u.UID)})
		}
		if a.groupOK && u.GID != a.group.GID {
			ds = append(ds, host.Difference{Field: "user.gid", Want: strconv.Itoa(a.group.GID), Have: strconv.Itoa(u.GID)})
		}
		if u.Home != w.home {
			ds = append(ds, host.Difference{Field: "user.home", Want: w.home, Have: u.Home})
		}
		if u.Shell != w.shell {
			ds = append(ds, host.Difference{Field: "shell", Want: w.shell, Have: u.Shell})
		}
		if u.Comment != Marker(w.name) {
			ds = append(ds, host.Difference{Field: "user.gecos", Want: Marker(w.name), Have: u.Comment})
		}
		if u.Shadow == nil {
			ds = append(ds, host.Difference{Field: "user.shadow", Want: "present", Have: "absent"})
		}
	}
	if !a.groupOK {
		ds = append(ds, host.Difference{Field: "group", Want: "present", Have: "absent"})
		return ds
	}
	if a.userOK && w.uid != 0 && a.group.GID != w.uid {
		ds = append(ds, host.Difference{Field: "group.gid", Want: strconv.Itoa(w.uid), Have: strconv.Itoa(a.group.GID)})
	}
	wantMembers := []string{}
	if a.webUserOK {
		wantMembers = append(wantMembers, s.opts.WebUser)
	}
	have := slices.Clone(a.group.Members)
	slices.Sort(have)
	if !slices.Equal(have, wantMembers) {
		ds = append(ds, host.Difference{Field: "group.members", Want: listOrNone(wantMembers), Have: listOrNone(have)})
	}
	return ds
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(none)"
	}
	return strings.Join(l, ",")
}

// etcFiles are the account files and the backups a commit writes.
func (s *Step) etcFiles() []string {
	var out []string
	for _, f := range []string{"passwd", "shadow", "group", "gshadow"} {
		out = append(out, s.opts.Users.Path(f), s.opts.Users.Path(f+"-"))
	}
	return out
}

func (s *Step) homePaths(tenant string, keys []string) []string {
	var out []string
	for _, e := range layout(keys) {
		out = append(out, filepath.Join(s.opts.WWWRoot, tenant, e.rel))
	}
	if len(keys) > 0 {
		return out
	}
	// Without keys the layout only says authorized_keys must be absent; its
	// directory is recorded too, so a restore can put a removed file back.
	return append(out, filepath.Join(s.opts.WWWRoot, tenant, ".ssh"))
}

// Apply converges the account and the home, restoring the snapshot on
// failure. Applies that arrive while another is writing are done together
// in the next batch (see batch.go).
func (s *Step) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (snapID string, err error) {
	w, err := s.want(row)
	if err != nil {
		return "", err
	}
	st, err := decodeStatus(row)
	if err != nil {
		return "", err
	}
	if err := s.home.ensureWWWRoot(); err != nil {
		return "", err
	}
	c := &change{w: w, st: st, generation: row.Generation}
	s.batches.do(ctx, c, s.applyBatch)
	return c.snap, c.err
}

func (s *Step) fault(stage string) error {
	if s.opts.Fault == nil {
		return nil
	}
	return s.opts.Fault(stage)
}

// pickID chooses the tenant's uid (= gid): the one it has, the pinned one,
// or the next free one in the range.
func (s *Step) pickID(tx *users.Tx, w want, a account) (int, error) {
	switch {
	case w.uid != 0:
		if err := idFree(tx, w.uid, w.name); err != nil {
			return 0, err
		}
		return w.uid, nil
	case a.userOK:
		return a.user.UID, nil
	case a.groupOK:
		return a.group.GID, nil
	}
	id, err := tx.NextFreeID(s.opts.UIDMin, s.opts.UIDMax)
	if errors.Is(err, users.ErrRangeFull) {
		return 0, reconcile.Terminal(fmt.Errorf("no free uid left in the tenant range %d-%d (uids in wcpd.yaml): %w", s.opts.UIDMin, s.opts.UIDMax, err))
	}
	return id, err
}

// idFree checks that id is free as a uid and a gid, or already the tenant's.
func idFree(tx *users.Tx, id int, name string) error {
	if u, err := tx.UserByUID(id); err == nil && u.Name != name {
		return reconcile.Terminal(fmt.Errorf("spec.uid %d is taken by user %s", id, u.Name))
	}
	if g, err := tx.GroupByGID(id); err == nil && g.Name != name {
		return reconcile.Terminal(fmt.Errorf("spec.uid %d is taken by group %s (the tenant's group gets the same id)", id, g.Name))
	}
	return nil
}

// editAccount makes the user and group in tx match w with uid = gid = id.
func (s *Step) editAccount(tx *users.Tx, w want, a account, id int) error {
	members := []string{}
	if a.webUserOK {
		members = append(members, s.opts.WebUser)
	}
	if !a.groupOK {
		if err := tx.AddGroup(users.Group{Name: w.name, GID: id, Password: "x", Members: members}); err != nil {
			return fmt.Errorf("add group %s: %w", w.name, err)
		}
	} else {
		g := a.group
		g.GID, g.Members = id, members
		if g.Shadow != nil {
			g.Shadow.Members = members
		}
		if err := tx.UpdateGroup(g); err != nil {
			return fmt.Errorf("update group %s: %w", w.name, err)
		}
	}
	u := users.User{Name: w.name, Password: "x", UID: id, GID: id, Comment: Marker(w.name), Home: w.home, Shell: w.shell}
	if !a.userOK {
		sh := tx.NewShadow(false)
		u.Shadow = &sh
		if err := tx.AddUser(u); err != nil {
			return fmt.Errorf("add user %s: %w", w.name, err)
		}
		return nil
	}
	u.Shadow = a.user.Shadow
	if u.Shadow == nil {
		sh := tx.NewShadow(false)
		u.Shadow = &sh
	}
	if err := tx.UpdateUser(u); err != nil {
		return fmt.Errorf("update user %s: %w", w.name, err)
	}
	return nil
}

// Remove deletes what WCP360 created for the tenant: its processes, its
// home as the spec's homeDeletionPolicy says, its user and group.
func (s *Step) Remove(ctx context.Context, row store.Resource) error {
	w, err := s.want(row)
	if err != nil && !reconcile.IsTerminal(err) {
		return err
	}
	st, err := decodeStatus(row)
	if err != nil {
		return err
	}
	// Stop the tenant and deal with its home first, without the passwd
	// locks: archiving a large home takes long, and useradd and everyone
	// else must not wait for it.
	var a account
	err = s.opts.Users.View(ctx, func(tx *users.Tx) error {
		a, err = s.look(tx, w, st)
		return err
	})
	foreign := reconcile.IsTerminal(err)
	if err != nil && !foreign {
		return err
	}
	if a.userOK && !foreign {
		if err := killUser(a.user.UID, 5*time.Second); err != nil {
			return err
		}
	}
	if err := s.removeHome(w); err != nil {
		return err
	}
	tx, err := s.opts.Users.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Abort() }()
	a, err = s.look(tx, w, st)
	if reconcile.IsTerminal(err) {
		// Someone else's user or group of that name: not ours to remove.
		s.opts.Logger.Warn("tenant account is not WCP360's; leaving it", "tenant", w.name, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if !a.userOK && !a.groupOK {
		return nil
	}
	snap, err := s.opts.Snapshots.Take(ctx, string(v1alpha1.KindTenant), w.name, "deletion", s.etcFiles())
	if err != nil {
		return fmt.Errorf("snapshot before removing the account: %w", err)
	}
	if a.userOK {
		err = tx.DeleteUser(w.name)
	}
	if err == nil && a.groupOK {
		err = tx.DeleteGroup(w.name)
	}
	if err != nil {
		return errors.Join(err, snap.Discard())
	}
	unlock, err := tx.WriteHoldingLocks()
	if err != nil {
		err = errors.Join(err, snap.Restore(context.WithoutCancel(ctx)))
		return errors.Join(err, unlock())
	}
	if err := unlock(); err != nil {
		return err
	}
	return snap.Commit()
}

// removeHome archives, deletes or keeps the home, as the policy says.
func (s *Step) removeHome(w want) error {
	home := filepath.Join(s.opts.WWWRoot, w.name)
	fi, err := os.Lstat(home)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("home %s is not a directory (%s): not removing it", home, fi.Mode().Type())
	}
	switch w.spec.HomeDeletionPolicy {
	case v1alpha1.HomeRetain:
		s.opts.Logger.Info("home retained by policy", "tenant", w.name, "home", home)
		return nil
	case v1alpha1.HomeDelete:
	default: // archive
		dst := archiveName(s.opts.ArchiveDir, w.name, s.opts.Clock())
		if err := archiveHome(home, dst); err != nil {
			return err
		}
		s.opts.Logger.Info("home archived", "tenant", w.name, "archive", dst)
	}
	return os.RemoveAll(home)
}

// ReportStatus records the account in the tenant's status.
func (s *Step) ReportStatus(ctx context.Context, row store.Resource, st *v1alpha1.Status) error {
	w, err := s.want(row)
	if err != nil {
		return err
	}
	return s.opts.Users.View(ctx, func(tx *users.Tx) error {
		u, err := tx.User(w.name)
		if err != nil {
			return err
		}
		st.Account = &v1alpha1.AccountStatus{User: u.Name, UID: u.UID, GID: u.GID, Home: u.Home, Shell: u.Shell}
		return nil
	})
}

func decodeStatus(row store.Resource) (v1alpha1.Status, error) {
	var st v1alpha1.Status
	if len(row.Status) == 0 || string(row.Status) == "null" {
		return st, nil
	}
	if err := json.Unmarshal(row.Status, &st); err != nil {
		return st, fmt.Errorf("stored status: %w", err)
	}
	return st, nil
}
