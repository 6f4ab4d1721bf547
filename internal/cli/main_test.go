package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// The tests of clienttest.StartAuth set passwords and create users for the
// real PAM: each runs in a sandbox of its own (sandbox.Run).
func TestMain(m *testing.M) { os.Exit(sandbox.MainFunc(func() int { return pgtest.Main(m) })) }

// result is what one wcp run printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

// invocation is one wcp run.
type invocation struct {
	socket string // WCP_SOCKET
	stdin  string
	now    func() time.Time
	// env is the rest of the environment (HOME, XDG_CONFIG_HOME).
	env map[string]string
	// password answers the password prompts (Env.ReadPassword).
	password func(prompt string) (string, error)
}

// wcp runs the command line with args and returns what it printed.
func (inv invocation) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{
		Stdin:  strings.NewReader(inv.stdin),
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string {
			if k == EnvSocket {
				return inv.socket
			}
			return inv.env[k]
		},
		Now:          inv.now,
		PollMin:      20 * time.Millisecond,
		PollMax:      100 * time.Millisecond,
		ReadPassword: inv.password,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := RunEnv(ctx, args, env)
	t.Logf("wcp %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// socketPath is a unix socket path short enough for sun_path (108 bytes),
// removed with the test.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wcp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "wcpd.sock")
}

// serveUnix serves h on a fresh unix socket and returns its path.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	path := socketPath(t)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return path
}

// countingSocket is a listening socket that counts the requests it gets and
// answers each with 500, for tests that assert wcp sent nothing.
func countingSocket(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	path := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		http.Error(w, "this test expects no request", http.StatusInternalServerError)
	}))
	return path, &n
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func storeAll() store.ListOptions { return store.ListOptions{} }
