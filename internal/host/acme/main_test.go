package acme

import (
	"os"
	"testing"

	"github.com/wcp360/wcp360/internal/sandbox"
)

// The pebble tests start nginx and write /var/lib/wcp360: each runs in a
// sandbox of its own.
func TestMain(m *testing.M) { os.Exit(sandbox.Main(m)) }
