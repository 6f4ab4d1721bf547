package nginx

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/wcp360/wcp360/internal/host/atomicfile"
	"github.com/wcp360/wcp360/internal/host/selfsigned"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// EnsureRunning installs what every site needs and makes sure a master
// runs: our include line in nginx.conf, wcp360.conf, the default server and
// its self-signed certificate, the sites and custom include directories;
// the distribution's default site link is removed (see
// Options.DistroDefaultSite). When something changed it is snapshotted,
// tested with nginx -t (and restored if that fails) and reloaded; when no
// master runs one is started. It returns once the configuration serves.
// Running it again changes nothing and reloads nothing.
func (m *Manager) EnsureRunning(ctx context.Context) error {
	caps, err := m.Capabilities(ctx)
	if err != nil {
		return err
	}
	m.files.Lock()
	defer m.files.Unlock()
	// 0755: nginx's workers (not root) read the ACME challenges; the
	// others hold configuration that is not secret (keys are 0600).
	for _, d := range []string{m.opts.Dir, m.sitesDir(), m.opts.CustomDir, m.opts.ACMEDir} {
		if err := os.MkdirAll(d, 0o755); err != nil { //nolint:gosec // see above
			return fmt.Errorf("nginx base: %w", err)
		}
	}

	mainData, err := os.ReadFile(m.opts.MainConf)
	if err != nil {
		return fmt.Errorf("nginx base: %w", err)
	}
	newMain, mainChanged, err := withInclude(mainData, m.httpConf())
	if err != nil {
		return fmt.Errorf("nginx base: %s: %w", m.opts.MainConf, err)
	}
	mc, err := readMainConf(newMain, m.httpConf())
	if err != nil {
		return fmt.Errorf("nginx base: %s: %w", m.opts.MainConf, err)
	}
	httpConf, err := m.renderHTTP(!mc.hashSizes)
	if err != nil {
		return err
	}
	defaultConf, err := m.renderDefault(caps)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := m.defaultCertificate()
	if err != nil {
		return err
	}

	type file struct {
		path string
		data []byte // nil: remove
		mode fs.FileMode
	}
	files := []file{
		{m.httpConf(), httpConf, 0o644},
		{m.defaultConf(), defaultConf, 0o644},
	}
	if mainChanged {
		files = append(files, file{m.opts.MainConf, newMain, 0})
	}
	if certPEM != nil {
		files = append(files, file{m.defaultKey(), keyPEM, 0o600}, file{m.defaultCert(), certPEM, 0o600})
	}
	if p := m.opts.DistroDefaultSite; p != "-" {
		if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			files = append(files, file{path: p})
		}
	}
	var changed []file
	var paths []string
	for _, f := range files {
		have, ok, err := readIfExists(f.path)
		if err != nil && f.data != nil {
			return fmt.Errorf("nginx base: %w", err)
		}
		if f.data == nil || !ok || !bytes.Equal(have, f.data) {
			changed = append(changed, f)
			paths = append(paths, f.path)
		}
	}
	pid, err := m.masterPID()
	if err != nil {
		return fmt.Errorf("nginx base: %w", err)
	}
	if len(changed) == 0 {
		if pid != 0 {
			return nil
		}
		if msg, err := m.test(ctx); err != nil {
			return fmt.Errorf("nginx -t: %s: %w", msg, err)
		}
		return m.start(ctx)
	}

	snap, err := m.opts.Snapshots.Take(ctx, SnapshotKindBase, "base", "install the WCP360 nginx base", paths)
	if err != nil {
		return fmt.Errorf("nginx base: %w", err)
	}
	fail := func(err error) error {
		return errors.Join(err, snap.Restore(context.WithoutCancel(ctx)), snap.Discard())
	}
	for _, f := range changed {
		switch {
		case f.data == nil:
			err = os.Remove(f.path)
			m.opts.Logger.Info("nginx: disabled the distribution's default site (it claims default_server)", "path", f.path)
		case f.mode == 0: // nginx.conf: keep its mode and owner
			err = writeKeepingMode(f.path, f.data)
		default:
			err = atomicfile.Write(f.path, f.data, f.mode, -1, -1)
		}
		if err != nil {
			return fail(fmt.Errorf("nginx base: %w", err))
		}
	}
	if msg, err := m.test(ctx); err != nil {
		return fail(fmt.Errorf("nginx -t after installing the WCP360 base (undone): %s: %w", msg, err))
	}
	if pid != 0 {
		err = m.reload(ctx)
	} else {
		err = m.start(ctx)
	}
	if err != nil {
		return fail(err)
	}
	return snap.Commit()
}

// writeKeepingMode replaces path atomically, keeping its mode and owner.
func writeKeepingMode(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	uid, gid := -1, -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(sys.Uid), int(sys.Gid)
	}
	return atomicfile.Write(path, data, st.Mode().Perm(), uid, gid)
}

// defaultCertificate returns a new certificate and key for the default
// server, or nil when the ones on disk are good (they parse, match and are
// valid for another 30 days).
func (m *Manager) defaultCertificate() (certPEM, keyPEM []byte, err error) {
	now := m.opts.Clock()
	if c, err := tls.LoadX509KeyPair(m.defaultCert(), m.defaultKey()); err == nil && c.Leaf != nil &&
		now.Add(30*24*time.Hour).Before(c.Leaf.NotAfter) {
		return nil, nil, nil
	}
	return selfsigned.New(now, 10*365*24*time.Hour, "WCP360 default server")
}
