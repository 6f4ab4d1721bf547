// Package pgtest gives each test a fresh database on a real PostgreSQL: the
// server named by WCP_TEST_DATABASE_URL, or an ephemeral cluster this package
// starts with initdb/pg_ctl (as the postgres user, private socket directory,
// no TCP) the first time a test asks, and stops when the test binary exits.
//
// A package that uses it runs its tests through Main:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// EnvURL names a server to use instead of an ephemeral cluster. Its user must
// be allowed to create databases.
const EnvURL = "WCP_TEST_DATABASE_URL"

// Cluster is a PostgreSQL server that hands out databases.
type Cluster struct {
	// AdminURL connects to a maintenance database with CREATEDB rights.
	AdminURL string
	// Dir is the ephemeral cluster's directory (data, socket, log); empty for an external server.
	Dir  string
	bin  string
	cred *syscall.Credential
}

type harness struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// h is the harness of this test binary. It is set up by the first New and
// torn down by Main; tests never change it.
var h harness //nolint:gochecknoglobals // one cluster per test binary

// Main runs the tests and stops the ephemeral cluster, if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if h.cluster != nil {
		if err := h.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// Shared returns the cluster of this test binary, starting it if needed.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	h.once.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			h.cluster = &Cluster{AdminURL: u}
			return
		}
		h.cluster, h.err = Start(context.Background())
	})
	if h.err != nil {
		tb.Fatalf("pgtest: no PostgreSQL for the test (install it with hack/install-deps.sh, or set %s): %v", EnvURL, h.err)
	}
	return h.cluster
}

// New creates a fresh, empty database for tb and returns its URL. The
// database is dropped when tb ends.
func New(tb testing.TB) string {
	tb.Helper()
	c := Shared(tb)
	u, drop, err := c.CreateDatabase(context.Background())
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Logf("pgtest: drop: %v", err)
		}
	})
	return u
}

// CreateDatabase makes a new database and returns its URL and a function that drops it.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, func() error, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	name := "wcptest_" + hex.EncodeToString(b)
	if err := c.exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(c.AdminURL)
	if err != nil {
		return "", nil, fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	u.Path = "/" + name
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return c.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

func (c *Cluster) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.AdminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background()) //nolint:errcheck // best effort
	_, err = conn.Exec(ctx, sql)
	return err
}

// FindBinDir returns the directory holding initdb and pg_ctl: the newest
// /usr/lib/postgresql/*/bin, else the one in PATH.
func FindBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	p, err := cmdrun.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("PostgreSQL server binaries (initdb, pg_ctl): %w", err)
	}
	p, _ = filepath.EvalSymlinks(p)
	return filepath.Dir(p), nil
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts an ephemeral cluster listening only on a unix
// socket in its own directory. It runs the server as the postgres user when
// the caller is root, as PostgreSQL refuses to run as root.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wcp-pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // ids from passwd
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := c.initAndStart(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c.AdminURL = (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres",
		RawQuery: url.Values{"host": {dir}, "port": {"5432"}, "sslmode": {"disable"}}.Encode()}).String()
	return c, nil
}

func (c *Cluster) initAndStart(ctx context.Context) error {
	data := filepath.Join(c.Dir, "data")
	if _, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: filepath.Join(c.bin, "initdb"), Credential: c.cred,
		Args: []string{"-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"}}); err != nil {
		return err
	}
	opts := fmt.Sprintf("-k %s -p 5432 -c listen_addresses='' -c fsync=off -c synchronous_commit=off "+
		"-c full_page_writes=off -c max_connections=300 -c shared_buffers=64MB", c.Dir)
	_, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: filepath.Join(c.bin, "pg_ctl"), Credential: c.cred,
		Args: []string{"-D", data, "-l", filepath.Join(c.Dir, "log"), "-o", opts, "-w", "-t", "60", "start"}})
	return err
}

// Stop stops an ephemeral cluster and removes its directory.
func (c *Cluster) Stop() error {
	if c.Dir == "" {
		return nil
	}
	_, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: filepath.Join(c.bin, "pg_ctl"), Credential: c.cred,
		Args: []string{"-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop"}})
	if rmErr := os.RemoveAll(c.Dir); err == nil {
		err = rmErr
	}
	return err
}
