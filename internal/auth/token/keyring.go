package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// DefaultKeyDir is where wcpd keeps its signing keys.
const DefaultKeyDir = "/etc/wcp360/keys"

// Errors of the key ring.
var (
	// ErrBadKeyFile: a key file or the key directory that must not be used
	// (mode, owner, type, name or content). The message names the path.
	ErrBadKeyFile = errors.New("unusable signing key")
	// ErrNoKeys: the directory holds no key (first boot has not run).
	ErrNoKeys = errors.New("no signing key")
)

// kidLayout is the time part of a key id: a key's id says when it was made,
// which orders the keys and tells when each was retired.
const kidLayout = "20060102T150405Z"

const maxKeyFile = 16 << 10

// KeyInfo describes one key of the ring.
type KeyInfo struct {
	ID        string
	CreatedAt time.Time
	// RetiredAt is when the next key replaced it (zero for the signing key).
	RetiredAt time.Time
	Public    ed25519.PublicKey
}

type ringKey struct {
	id      string
	created time.Time
	priv    ed25519.PrivateKey
}

// KeyRing is the set of Ed25519 keys in a directory: one PKCS#8 PEM file
// "<kid>.pem" per key, mode 0600, owned by the effective user (root), in a
// directory of mode 0700 owned by the same user. The newest key signs; the
// older ones only verify, until Rotate prunes them. It is safe for
// concurrent use; Rotate and EnsureKeyRing also lock the directory (flock)
// against other processes.
type KeyRing struct {
	dir  string
	mu   sync.RWMutex
	keys []ringKey // oldest first
}

// LoadKeyRing reads every key in dir. It refuses, naming the path, a
// directory or key file that others may read or write or that another user
// owns, a "*.pem" file that is not a regular file, whose name is not a key
// id or that does not hold exactly one PKCS#8 Ed25519 private key; all wrap
// ErrBadKeyFile. A directory with no key is ErrNoKeys. Other files (and the
// dot-files atomic writes leave behind after a crash) are ignored.
func LoadKeyRing(dir string) (*KeyRing, error) {
	keys, err := readKeys(dir)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("token: %s: %w (run first boot: wcp init)", dir, ErrNoKeys)
	}
	return &KeyRing{dir: dir, keys: keys}, nil
}

// EnsureKeyRing makes dir (mode 0700, parents 0755) and its first key if
// there is none, then loads the ring. It is idempotent: after a crash at any
// point, running it again finishes the job, and an existing ring is only
// loaded. created reports whether it made a key.
func EnsureKeyRing(dir string, now time.Time) (r *KeyRing, created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil { //nolint:gosec // /etc/wcp360 is readable; the key directory itself is 0700
		return nil, false, fmt.Errorf("token: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("token: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	keys, err := readKeys(dir)
	if err != nil {
		return nil, false, err
	}
	if len(keys) == 0 {
		k, err := writeNewKey(dir, now)
		if err != nil {
			return nil, false, err
		}
		keys, created = []ringKey{k}, true
	}
	return &KeyRing{dir: dir, keys: keys}, created, nil
}

// Dir is the directory of the ring.
func (r *KeyRing) Dir() string { return r.dir }

// Keys describes the keys, oldest first; the last one signs.
func (r *KeyRing) Keys() []KeyInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]KeyInfo, len(r.keys))
	for i, k := range r.keys {
		out[i] = KeyInfo{ID: k.id, CreatedAt: k.created, Public: k.priv.Public().(ed25519.PublicKey)}
		if i+1 < len(r.keys) {
			out[i].RetiredAt = r.keys[i+1].created
		}
	}
	return out
}

// Rotate makes a new signing key and prunes the keys retired more than
// retain before now: retain must be at least the longest lifetime of a token
// a key signs (Service.RotateKeys passes the access token lifetime plus the
// leeway), so every token still valid stays verifiable. The signing key is
// never pruned. It returns the new key's id and the ids it pruned.
func (r *KeyRing) Rotate(now time.Time, retain time.Duration) (kid string, pruned []string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	unlock, err := lockDir(r.dir)
	if err != nil {
		return "", nil, err
	}
	defer unlock()
	// Start from the directory: another process may have rotated.
	keys, err := readKeys(r.dir)
	if err != nil {
		return "", nil, err
	}
	if n := len(keys); n > 0 && !now.Truncate(time.Second).After(keys[n-1].created) {
		now = keys[n-1].created.Add(time.Second) // ids must order the keys
	}
	k, err := writeNewKey(r.dir, now)
	if err != nil {
		return "", nil, err
	}
	keys = append(keys, k)
	keep := 0
	for keep < len(keys)-1 && now.Sub(keys[keep+1].created) > retain {
		keep++
	}
	for _, old := range keys[:keep] {
		if err := os.Remove(filepath.Join(r.dir, old.id+".pem")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.keys = keys
			return k.id, pruned, fmt.Errorf("token: prune key: %w", err)
		}
		pruned = append(pruned, old.id)
	}
	r.keys = keys[keep:]
	if len(pruned) > 0 {
		if err := atomicfile.SyncDir(r.dir); err != nil {
			return k.id, pruned, fmt.Errorf("token: %w", err)
		}
	}
	return k.id, pruned, nil
}

// Reload reads the directory again (after another process rotated).
func (r *KeyRing) Reload() error {
	keys, err := readKeys(r.dir)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("token: %s: %w", r.dir, ErrNoKeys)
	}
	r.mu.Lock()
	r.keys = keys
	r.mu.Unlock()
	return nil
}

// signer returns the newest key.
func (r *KeyRing) signer() ringKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[len(r.keys)-1]
}

// public returns the public key of kid.
func (r *KeyRing) public(kid string) (ed25519.PublicKey, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, k := range r.keys {
		if k.id == kid {
			return k.priv.Public().(ed25519.PublicKey), true
		}
	}
	return nil, false
}

// ---------------------------------------------------------------- files

func badKey(path, format string, args ...any) error {
	return fmt.Errorf("token: %s: %w: %s", path, ErrBadKeyFile, fmt.Sprintf(format, args...))
}

// checkOwnerMode refuses what others may read or write, or another user owns.
func checkOwnerMode(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		want := "0600"
		if fi.IsDir() {
			want = "0700"
		}
		return badKey(path, "mode %04o lets group or others in; want %s", perm, want)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return badKey(path, "no owner information")
	}
	if euid := os.Geteuid(); int64(st.Uid) != int64(euid) {
		return badKey(path, "owned by uid %d, want uid %d (the user wcpd runs as)", st.Uid, euid)
	}
	return nil
}

// readKeys loads every "<kid>.pem" of dir, oldest first.
func readKeys(dir string) ([]ringKey, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("token: key directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, badKey(dir, "not a directory")
	}
	if err := checkOwnerMode(dir, fi); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("token: key directory: %w", err)
	}
	var keys []ringKey
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".pem") {
			continue
		}
		k, err := readKey(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ringKey) int { return strings.Compare(a.id, b.id) })
	return keys, nil
}

func readKey(path string) (ringKey, error) {
	kid := strings.TrimSuffix(filepath.Base(path), ".pem")
	created, ok := parseKID(kid)
	if !ok {
		return ringKey{}, badKey(path, "the name is not a key id (%s-<8 hex digits>.pem)", kidLayout)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return ringKey{}, badKey(path, "a symbolic link; want a regular file")
		}
		return ringKey{}, fmt.Errorf("token: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return ringKey{}, fmt.Errorf("token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return ringKey{}, badKey(path, "not a regular file")
	}
	if err := checkOwnerMode(path, fi); err != nil {
		return ringKey{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return ringKey{}, fmt.Errorf("token: %w", err)
	}
	if len(data) > maxKeyFile {
		return ringKey{}, badKey(path, "larger than %d bytes", maxKeyFile)
	}
	block, rest := pem.Decode(data)
	switch {
	case block == nil:
		return ringKey{}, badKey(path, "no PEM block")
	case block.Type != "PRIVATE KEY":
		return ringKey{}, badKey(path, "PEM block %q, want \"PRIVATE KEY\" (PKCS#8)", block.Type)
	case len(strings.TrimSpace(string(rest))) != 0:
		return ringKey{}, badKey(path, "data after the key")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return ringKey{}, badKey(path, "%v", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return ringKey{}, badKey(path, "a %T, want an Ed25519 key", key)
	}
	return ringKey{id: kid, created: created, priv: priv}, nil
}

// parseKID reads the creation time of a key id "<kidLayout>-<8 hex>".
func parseKID(kid string) (time.Time, bool) {
	stamp, suffix, ok := strings.Cut(kid, "-")
	if !ok || len(suffix) != 8 || len(stamp) != len(kidLayout) {
		return time.Time{}, false
	}
	if _, err := hex.DecodeString(suffix); err != nil || strings.ToLower(suffix) != suffix {
		return time.Time{}, false
	}
	t, err := time.Parse(kidLayout, stamp)
	return t, err == nil
}

// writeNewKey makes a key created at now and writes it atomically.
func writeNewKey(dir string, now time.Time) (ringKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return ringKey{}, fmt.Errorf("token: generate key: %w", err)
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return ringKey{}, fmt.Errorf("token: random: %w", err)
	}
	created := now.UTC().Truncate(time.Second)
	k := ringKey{id: created.Format(kidLayout) + "-" + hex.EncodeToString(suffix[:]), created: created, priv: priv}
	if err := WriteKeyFile(filepath.Join(dir, k.id+".pem"), priv); err != nil {
		return ringKey{}, err
	}
	return k, nil
}

// WriteKeyFile writes priv to path as PKCS#8 PEM, mode 0600, atomically.
// The name must be "<kid>.pem" for LoadKeyRing to take it; KeyID makes one.
func WriteKeyFile(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600, -1, -1); err != nil {
		return fmt.Errorf("token: write key: %w", err)
	}
	return nil
}

// KeyID is the id of a key made at created with the random suffix (8 hex digits).
func KeyID(created time.Time, suffix string) string {
	return created.UTC().Format(kidLayout) + "-" + suffix
}

// lockDir holds an exclusive flock on dir until the returned func is called.
func lockDir(dir string) (func(), error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("token: lock key directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil { //nolint:gosec // a file descriptor fits an int
		_ = f.Close()
		return nil, fmt.Errorf("token: lock key directory: %w", err)
	}
	return func() { _ = f.Close() }, nil // closing releases the lock
}
