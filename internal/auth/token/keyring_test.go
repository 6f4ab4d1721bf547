package token_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/auth/token"
)

func TestEnsureKeyRingIsIdempotent(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "etc", "wcp360", "keys")
	r1, created, err := token.EnsureKeyRing(dir, t0)
	if err != nil || !created {
		t.Fatalf("first EnsureKeyRing: created %v, %v", created, err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key directory mode = %v, %v", fi.Mode(), err)
	}
	keys := r1.Keys()
	if len(keys) != 1 || !strings.HasPrefix(keys[0].ID, "20260301T120000Z-") {
		t.Fatalf("keys = %+v", keys)
	}
	fi, err = os.Stat(filepath.Join(dir, keys[0].ID+".pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v", fi.Mode(), err)
	}
	// A crash mid-write leaves a temporary dot-file: ignored.
	if err := os.WriteFile(filepath.Join(dir, "."+keys[0].ID+".pem.tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	r2, created, err := token.EnsureKeyRing(dir, t0.Add(time.Hour))
	if err != nil || created {
		t.Fatalf("second EnsureKeyRing: created %v, %v", created, err)
	}
	if got := r2.Keys(); len(got) != 1 || got[0].ID != keys[0].ID || !got[0].Public.Equal(keys[0].Public) {
		t.Fatalf("second EnsureKeyRing changed the keys: %+v", got)
	}
}

func TestLoadKeyRingRefusals(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		spoil   func(t *testing.T, dir, file string)
		mention string // in the error: the file or directory
	}{
		"key file mode 0644":  {func(t *testing.T, _, file string) { chmod(t, file, 0o644) }, ".pem"},
		"key file mode 0640":  {func(t *testing.T, _, file string) { chmod(t, file, 0o640) }, ".pem"},
		"directory mode 0755": {func(t *testing.T, dir, _ string) { chmod(t, dir, 0o755) }, "keys"},
		"key file owned by nobody": {func(t *testing.T, _, file string) {
			if err := os.Chown(file, 65534, 65534); err != nil {
				t.Skipf("cannot chown (not root?): %v", err)
			}
		}, ".pem"},
		"unparsable": {func(t *testing.T, _, file string) {
			write(t, file, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
		}, ".pem"},
		"not PEM": {func(t *testing.T, _, file string) { write(t, file, []byte("hello")) }, ".pem"},
		"not PKCS#8": {func(t *testing.T, _, file string) {
			write(t, file, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}))
		}, ".pem"},
		"an ECDSA key": {func(t *testing.T, _, file string) {
			write(t, file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
		}, ".pem"},
		"two keys in one file": {func(t *testing.T, _, file string) {
			data, _ := os.ReadFile(file)
			write(t, file, append(data, data...))
		}, ".pem"},
		"a name that is not a kid": {func(t *testing.T, dir, file string) {
			if err := os.Rename(file, filepath.Join(dir, "signing.pem")); err != nil {
				t.Fatal(err)
			}
		}, "signing.pem"},
		"a symbolic link": {func(t *testing.T, dir, file string) {
			target := filepath.Join(filepath.Dir(dir), "elsewhere.pem")
			if err := os.Rename(file, target); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, file); err != nil {
				t.Fatal(err)
			}
		}, ".pem"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, k := keyDir(t, t0)
			file := filepath.Join(dir, k.id+".pem")
			c.spoil(t, dir, file)
			_, err := token.LoadKeyRing(dir)
			if !errors.Is(err, token.ErrBadKeyFile) || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("LoadKeyRing = %v, want ErrBadKeyFile naming %q", err, c.mention)
			}
			if _, _, err := token.EnsureKeyRing(dir, t0); !errors.Is(err, token.ErrBadKeyFile) {
				t.Fatalf("EnsureKeyRing = %v, want it to refuse as well (not to add a key beside a bad one)", err)
			}
		})
	}

	empty := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := token.LoadKeyRing(empty); !errors.Is(err, token.ErrNoKeys) {
		t.Fatalf("LoadKeyRing of an empty directory = %v, want ErrNoKeys", err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
