package nginx

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/sandbox"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Tests that run nginx change /etc/nginx: each runs in a sandbox of its
// own. The benchmarks generate thousands of sites into /etc/nginx: they
// only run inside a sandbox (bin/wcp-sandbox -- go test -bench ...).
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" && !sandbox.Inside() {
		fmt.Fprintln(os.Stderr, "internal/host/nginx benchmarks write thousands of sites into /etc/nginx: "+
			"run them inside a sandbox: bin/wcp-sandbox -- go test -run '^$' -bench . ./internal/host/nginx/")
		os.Exit(1)
	}
	os.Exit(sandbox.Main(m))
}

// testCaps is a Debian 12 nginx.
var testCaps = Caps{Version: "1.22.1", SSL: true, HTTP2: true, IPv6: true, PidPath: "/run/nginx.pid", ConfPath: "/etc/nginx/nginx.conf"}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newManager returns a Manager with the default paths (for the sandbox).
func newManager(tb testing.TB, opts Options) *Manager {
	tb.Helper()
	if opts.Snapshots == nil {
		snaps, err := snapshot.New(snapshot.Options{Dir: tb.TempDir()})
		if err != nil {
			tb.Fatal(err)
		}
		opts.Snapshots = snaps
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	m, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// startNginx is EnsureRunning, and a stop of the master at cleanup.
func startNginx(tb testing.TB, m *Manager) {
	tb.Helper()
	if err := m.EnsureRunning(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if pid, err := m.masterPID(); err == nil && pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	})
}

// tenantSite lays out a tenant's home the way internal/host/tenant does
// (root-owned home and logs) with a document root holding files, and
// returns a Site for it.
func tenantSite(tb testing.TB, tenant, domain string, files map[string]string) Site {
	tb.Helper()
	home := filepath.Join("/srv/www", tenant)
	root := filepath.Join(home, "domains", domain, "public")
	for _, d := range []string{home, filepath.Join(home, "logs"), root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return Site{Domain: domain, Tenant: tenant, ServerNames: []string{domain},
		DocumentRoot: root, LogDir: filepath.Join(home, "logs")}
}

var client = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test certificates
		ForceAttemptHTTP2: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

type response struct {
	code   int
	body   string
	header http.Header
	proto  string
}

// get fetches scheme://127.0.0.1/path with the Host header (and SNI) host.
func get(tb testing.TB, scheme, host, path string) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, scheme+"://127.0.0.1"+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Host = host
	c := client
	if scheme == "https" {
		tr := client.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, ServerName: host} //nolint:gosec // test certificates
		c = &http.Client{Transport: tr, CheckRedirect: client.CheckRedirect, Timeout: client.Timeout}
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("GET %s://%s%s: %v", scheme, host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{code: resp.StatusCode, body: string(b), header: resp.Header, proto: resp.Proto}
}

// phpFPM starts a php-fpm 8.2 master with one pool listening on the
// returned socket (internal/host/phpfpm is built elsewhere; this is the
// smallest pool that serves).
func phpFPM(tb testing.TB) string {
	tb.Helper()
	bin, err := cmdrun.LookPath("php-fpm8.2", "/usr/sbin")
	if err != nil {
		tb.Skip(err)
	}
	dir := "/run/wcp360-test-php"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(dir, "php.sock")
	conf := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(conf, []byte(`[global]
pid = `+dir+`/php-fpm.pid
error_log = `+dir+`/php-fpm.log
daemonize = no
[test]
user = www-data
group = www-data
listen = `+sock+`
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = static
pm.max_children = 2
`), 0o644); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: bin, Args: []string{"-y", conf, "-F"}}, nil)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		_ = p.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(dir + "/php-fpm.log")
			tb.Fatalf("php-fpm did not listen on %s: %s", sock, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// applyAll applies the sites concurrently and returns their errors.
func applyAll(m *Manager, sites []Site) []error {
	errs := make([]error, len(sites))
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Go(func() { errs[i] = m.Apply(context.Background(), s) })
	}
	wg.Wait()
	return errs
}
