package wcpd

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// Someone other than root on the local socket is refused, even when the
// socket's mode lets them connect: wcpd asks the kernel who connected
// (SO_PEERCRED), not the client.
func TestNonRootPeerOnTheSocketIsRefused(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	d := startDaemon(t)
	if err := os.Chmod(d.socket, 0o666); err != nil { // as if an admin had loosened it
		t.Fatal(err)
	}
	out, err := cmdrun.Run(context.Background(), cmdrun.Cmd{
		Path: "/usr/bin/curl", Args: []string{"-sS", "--unix-socket", d.socket, "-w", "\n%{http_code}", "http://wcpd/api/v1/tenants"},
		Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("curl as nobody: %v", err)
	}
	got := strings.TrimSpace(string(out))
	if !strings.HasSuffix(got, "\n403") || !strings.Contains(got, "serves root only") || !strings.Contains(got, "uid 65534") {
		t.Errorf("nobody on the socket got %q, want 403 naming uid 65534", got)
	}
	// Root still gets through.
	if code, b := d.do("GET", "/api/v1/tenants", nil); code != 200 {
		t.Errorf("root: %d %s", code, b)
	}
}
