package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/registration"

	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// account is account.json.
type account struct {
	Directory  string    `json:"directory"`
	Email      string    `json:"email,omitempty"`
	URL        string    `json:"url"`
	Registered time.Time `json:"registered"`
}

// accountStore is one directory's account under the state directory.
type accountStore struct {
	stateDir, dir, directory string
}

func newAccountStore(stateDir, directory string) accountStore {
	sum := sha256.Sum256([]byte(directory))
	return accountStore{stateDir: stateDir, directory: directory,
		dir: filepath.Join(stateDir, "accounts", hex.EncodeToString(sum[:8]))}
}

func (s accountStore) keyPath() string  { return filepath.Join(s.dir, "account.key") }
func (s accountStore) jsonPath() string { return filepath.Join(s.dir, "account.json") }

// mkdir makes the account directory 0700 (and, when missing, the state
// directory 0755: nginx traverses it to the challenge directory).
func (s accountStore) mkdir() error {
	if err := os.MkdirAll(s.stateDir, 0o755); err != nil { //nolint:gosec // see above
		return fmt.Errorf("acme: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	// MkdirAll keeps an existing directory's mode: make sure.
	if err := os.Chmod(s.dir, 0o700); err != nil { //nolint:gosec // a directory: 0700 is owner-only
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

// key loads the account key, making and saving one the first time.
func (s accountStore) key() (crypto.Signer, error) {
	data, err := os.ReadFile(s.keyPath())
	if err == nil {
		return parseKey(data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	if err := s.mkdir(); err != nil {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(s.keyPath(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600, -1, -1); err != nil {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	return k, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("acme: account key: no PKCS #8 PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("acme: account key: %T cannot sign", k)
	}
	return signer, nil
}

// load reads account.json; the zero account when there is none (or it is
// another directory's).
func (s accountStore) load() (account, error) {
	data, err := os.ReadFile(s.jsonPath())
	if errors.Is(err, fs.ErrNotExist) {
		return account{}, nil
	}
	if err != nil {
		return account{}, fmt.Errorf("acme: %w", err)
	}
	var a account
	if err := json.Unmarshal(data, &a); err != nil {
		return account{}, fmt.Errorf("acme: %s: %w", s.jsonPath(), err)
	}
	if a.Directory != s.directory {
		return account{}, nil
	}
	return a, nil
}

func (s accountStore) save(a account) error {
	if err := s.mkdir(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.jsonPath(), append(data, '\n'), 0o600, -1, -1)
}

func (s accountStore) forget() error {
	if err := os.Remove(s.jsonPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

// user is lego's view of the account.
type user struct {
	email string
	key   crypto.Signer
	reg   *acme.ExtendedAccount
}

func (u *user) GetEmail() string                       { return u.email }
func (u *user) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *user) GetPrivateKey() crypto.Signer           { return u.key }

// WCP360 registers accounts on behalf of the admin who configured the CA,
// which is their agreement to its terms.
func registerPlain() registration.RegisterOptions {
	return registration.RegisterOptions{TermsOfServiceAgreed: true}
}

func registerEAB(e *EAB) registration.RegisterEABOptions {
	return registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: e.KeyID, HmacEncoded: e.HMACKey}
}
