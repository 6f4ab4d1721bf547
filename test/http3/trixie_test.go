// Package http3test proves HTTP/3 end to end on an nginx that has it:
// Debian 12's nginx 1.22 has no HTTP/3, so the test runs inside a Debian 13
// (trixie) root filesystem with nginx 1.26 and PHP-FPM 8.4.
//
// TestHTTP3 runs twice. On the host (`go test ./...`), it builds the rootfs
// with hack/trixie-rootfs.sh (once; it is cached in
// /var/cache/wcp360/rootfs), builds this package's tests again as a
// statically linked binary, and runs that binary's TestHTTP3 in a sandbox
// whose root is a private overlay of the rootfs, with the host's test
// PostgreSQL reachable through its unix socket. There, in Debian 13, the
// test body converges the tenant and domain of testdata/site.yaml and
// fetches the PHP page over HTTP/2 and HTTP/3.
package http3test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) })) }

// envInTrixie marks the run inside the Debian 13 sandbox.
const envInTrixie = "WCP_TEST_IN_TRIXIE"

// runInTrixie runs the calling test in the Debian 13 rootfs and returns
// true on the host, where the caller then returns. Inside the rootfs it
// returns false and the test body runs.
func runInTrixie(t *testing.T, hosts map[string]string) bool {
	t.Helper()
	if sandbox.Inside() {
		if os.Getenv(envInTrixie) != "1" {
			sandbox.Unavailable(t, t.Name()+" runs in a Debian 13 sandbox that it makes itself, which it cannot do inside another sandbox")
		}
		return false
	}
	if os.Geteuid() != 0 {
		sandbox.Unavailable(t, "the HTTP/3 test needs root: it builds a Debian 13 rootfs and runs in a sandbox")
	}
	start := time.Now()
	root := trixieRootFS(t)
	t.Logf("Debian 13 rootfs %s ready in %s", root, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	bin := staticTestBinary(t)
	t.Logf("static test binary built in %s", time.Since(start).Round(time.Millisecond))

	db := pgtest.Shared(t)
	socketDir, err := unixSocketDir(db.AdminURL)
	if err != nil {
		t.Fatalf("PostgreSQL for the test inside the rootfs: %v", err)
	}
	opts := sandbox.Options{
		RootFS: root,
		Binds: []sandbox.Bind{
			{Source: filepath.Dir(bin), Target: filepath.Dir(bin), ReadOnly: true},
			{Source: socketDir, Target: socketDir},
		},
		Hosts: hosts,
		Env:   []string{envInTrixie + "=1", pgtest.EnvURL + "=" + db.AdminURL},
	}
	sandbox.RunBinary(t, opts, bin)
	return true
}

// trixieRootFS returns the cached Debian 13 rootfs, building it first if
// needed (40-60 s and 190 MB; the Debian mirror must be reachable).
func trixieRootFS(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "hack", "trixie-rootfs.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, k := range []string{"WCP_ROOTFS_CACHE", "WCP_DEBIAN_MIRROR", "http_proxy", "https_proxy"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	out, err := cmdrun.Run(t.Context(), cmdrun.Cmd{Path: script, Env: env, Timeout: 20 * time.Minute})
	if err != nil {
		sandbox.Unavailable(t, "no Debian 13 rootfs for the HTTP/3 test: "+err.Error())
	}
	// The path is the last line; the lines before it say what was built.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 1 {
		t.Logf("%s", strings.Join(lines[:len(lines)-1], "\n"))
	}
	root := lines[len(lines)-1]
	if !filepath.IsAbs(root) {
		t.Fatalf("%s printed %q, want the rootfs's path", script, root)
	}
	return root
}

// staticTestBinary builds this package's tests as a statically linked
// binary (no cgo, so no race detector): it runs in the rootfs, whose C
// library is not the host's.
func staticTestBinary(t *testing.T) string {
	t.Helper()
	// `go test` puts its own toolchain first in PATH.
	goBin, err := cmdrun.LookPath("go", "/usr/local/go/bin")
	if err != nil {
		t.Fatalf("the Go toolchain, to build the test binary for the rootfs: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "http3.test")
	_, err = cmdrun.Run(t.Context(), cmdrun.Cmd{Path: goBin, Args: []string{"test", "-c", "-o", bin, "."},
		Env: append(os.Environ(), "CGO_ENABLED=0"), Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatalf("build the static test binary: %v", err)
	}
	return bin
}

// unixSocketDir is the directory of the unix socket a PostgreSQL URL
// connects through (its host parameter): the sandbox has no network but lo.
func unixSocketDir(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	dir := u.Query().Get("host")
	if dir == "" {
		dir = u.Hostname()
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s connects over TCP, and the sandbox has no network but lo: "+
			"set %s to a server on a unix socket (host=/dir), or leave it unset", u.Redacted(), pgtest.EnvURL)
	}
	return dir, nil
}
