package acme

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// WriteFiles lands cert's key in keyPath and chain in certPath, each
// atomically, root 0600, key first (so nginx never reads the new chain
// with the old key for longer than between two renames). Missing parent
// directories are made 0700.
func WriteFiles(certPath, keyPath string, cert *Certificate) error {
	for _, f := range []struct {
		path string
		data []byte
	}{{keyPath, cert.KeyPEM}, {certPath, cert.ChainPEM}} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return fmt.Errorf("acme: %w", err)
		}
		if err := atomicfile.Write(f.path, f.data, 0o600, 0, 0); err != nil {
			return fmt.Errorf("acme: %w", err)
		}
	}
	return nil
}
