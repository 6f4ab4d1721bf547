package pam

import (
	"os"
	"testing"

	"github.com/wcp360/wcp360/internal/sandbox"
)

// The tests that use the real PAM create users and write /etc/pam.d: each
// runs in a sandbox of its own (sandbox.Run), and Main proves the host's
// /etc/passwd and /etc/shadow unchanged afterwards.
func TestMain(m *testing.M) { os.Exit(sandbox.Main(m)) }
