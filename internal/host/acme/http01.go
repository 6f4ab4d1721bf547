package acme

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// tokenRE is a base64url token (RFC 8555 section 8.3): never a path.
var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// webroot is the HTTP-01 provider that puts key authorizations where
// nginx serves /.well-known/acme-challenge/ from.
type webroot struct{ dir string }

func (w *webroot) path(token string) (string, error) {
	if !tokenRE.MatchString(token) {
		return "", fmt.Errorf("acme: challenge token %q is not base64url", token)
	}
	return filepath.Join(w.dir, token), nil
}

// Present writes the key authorization, readable by nginx's workers.
func (w *webroot) Present(_ context.Context, _, token, keyAuth string) error {
	p, err := w.path(token)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil { //nolint:gosec // nginx's workers read the challenges
		return fmt.Errorf("acme: challenge directory: %w", err)
	}
	if err := atomicfile.Write(p, []byte(keyAuth), 0o644, -1, -1); err != nil {
		return fmt.Errorf("acme: challenge file: %w", err)
	}
	return nil
}

// CleanUp removes the key authorization.
func (w *webroot) CleanUp(_ context.Context, _, token, _ string) error {
	p, err := w.path(token)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("acme: challenge file: %w", err)
	}
	return nil
}
