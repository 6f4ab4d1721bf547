package pebble

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

// Where pebble-challtestsrv listens: its mock DNS server (every A query
// answers 127.0.0.1, TXT records are what the management API set) and
// its management API.
const (
	ChallTestSrvBin = "/usr/bin/pebble-challtestsrv"
	DNSAddr         = "127.0.0.1:8053"
	ChallTestSrvURL = "http://127.0.0.1:8055"
)

// ChallTestSrv is a running pebble-challtestsrv serving DNS only.
type ChallTestSrv struct {
	// DNSAddr is its DNS server (UDP and TCP).
	DNSAddr string
	// URL is its management API.
	URL string
}

// StartChallTestSrv starts pebble-challtestsrv with its DNS server on
// DNSAddr and its management API on ChallTestSrvURL, and none of its
// challenge servers; t.Cleanup stops it. Give DNSAddr to pebble
// (Options.DNSServer) and to the ACME client's resolvers.
func StartChallTestSrv(t testing.TB) *ChallTestSrv {
	t.Helper()
	if _, err := os.Stat(ChallTestSrvBin); err != nil {
		sandbox.Unavailable(t, "pebble-challtestsrv is not installed (apt-get install pebble; hack/install-deps.sh)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	proc, err := cmdrun.Start(ctx, cmdrun.Cmd{Path: ChallTestSrvBin, Args: []string{
		"-dns01", DNSAddr, "-management", "127.0.0.1:8055", "-http01", "", "-https01", "", "-tlsalpn01", "",
		// Names are 127.0.0.1 only, where the tests' nginx listens.
		"-defaultIPv6", "",
	}}, out)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = proc.Wait()
		if t.Failed() {
			t.Logf("pebble-challtestsrv's output:\n%s", out.String())
		}
	})
	s := &ChallTestSrv{DNSAddr: DNSAddr, URL: ChallTestSrvURL}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", DNSAddr)
		if err == nil {
			_ = c.Close()
			if resp, err := http.Post(s.URL+"/clear-txt", "application/json", bytes.NewReader([]byte(`{"host":"ready.test."}`))); err == nil {
				_ = resp.Body.Close()
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble-challtestsrv did not answer: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetTXT publishes a TXT record (host is a fully qualified name).
func (s *ChallTestSrv) SetTXT(t testing.TB, host, value string) {
	t.Helper()
	s.post(t, "/set-txt", map[string]string{"host": host, "value": value})
}

// ClearTXT removes host's TXT records.
func (s *ChallTestSrv) ClearTXT(t testing.TB, host string) {
	t.Helper()
	s.post(t, "/clear-txt", map[string]string{"host": host})
}

func (s *ChallTestSrv) post(t testing.TB, path string, body any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble-challtestsrv %s: %s", path, resp.Status)
	}
}

// hookScript is an exec DNS hook (lego's exec protocol: "present|cleanup
// <fqdn> <value>") that publishes through the management API at
// $CHALLTESTSRV_URL, and appends each call to $HOOK_LOG when set.
const hookScript = `#!/bin/sh
set -eu
case "$1" in
present) path=set-txt; body="{\"host\":\"$2\",\"value\":\"$3\"}" ;;
cleanup) path=clear-txt; body="{\"host\":\"$2\"}" ;;
*) echo "unknown operation $1" >&2; exit 2 ;;
esac
if [ -n "${HOOK_LOG:-}" ]; then echo "$1 $2" >>"$HOOK_LOG"; fi
curl -fsS -X POST -d "$body" "$CHALLTESTSRV_URL/$path"
`

// ExecHook writes the hook script to a temporary directory and returns
// its path: give it as EXEC_PATH, with CHALLTESTSRV_URL (s.URL) and
// optionally HOOK_LOG in the provider's settings.
func (s *ChallTestSrv) ExecHook(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // a directory of programs
		t.Fatal(err)
	}
	p := filepath.Join(dir, "dns-hook.sh")
	if err := os.WriteFile(p, []byte(hookScript), 0o755); err != nil { //nolint:gosec // a program
		t.Fatal(err)
	}
	return p
}
