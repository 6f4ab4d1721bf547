package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/client"
	"github.com/wcp360/wcp360/internal/host/atomicfile"
)

// credentialsFile is where wcp login keeps the session, under the user's
// configuration directory.
const credentialsFile = "wcp360/credentials.json" //nolint:gosec // G101: a file name, not a credential

// credentials is what wcp login stores: the HTTPS API, the CA file its
// certificate is checked against ("": the system's roots) and the tokens.
type credentials struct {
	Server string     `json:"server"`
	CA     string     `json:"ca,omitempty"`
	Tokens api.Tokens `json:"tokens"`
}

// errNoConfigDir: neither XDG_CONFIG_HOME nor HOME is set.
var errNoConfigDir = errors.New("no configuration directory: set HOME or XDG_CONFIG_HOME")

// credentialsPath is $XDG_CONFIG_HOME/wcp360/credentials.json, or
// ~/.config/wcp360/credentials.json (an XDG_CONFIG_HOME that is not an
// absolute path is ignored, as the XDG specification says).
func (a *app) credentialsPath() (string, error) {
	if dir := a.env.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, credentialsFile), nil
	}
	if home := a.env.Getenv("HOME"); filepath.IsAbs(home) {
		return filepath.Join(home, ".config", credentialsFile), nil
	}
	return "", errNoConfigDir
}

// loadCredentials reads the stored login: nil without one. It refuses a
// file that others may read or write, or that belongs to someone else: a
// refresh token is as good as a password for days.
func (a *app) loadCredentials() (*credentials, string, error) {
	path, err := a.credentialsPath()
	if err != nil {
		return nil, "", err
	}
	c, err := readCredentials(path, true)
	return c, path, err
}

// readCredentials reads a credentials file (nil, nil when there is none),
// checking that it is private when private is set.
func readCredentials(path string, private bool) (*credentials, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if private {
		if err := checkPrivate(path, fi); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	var c credentials
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("credentials %s: %w (run wcp login again)", path, err)
	}
	if c.Server == "" || c.Tokens.RefreshToken == "" {
		return nil, fmt.Errorf("credentials %s: no server or no refresh token in it (run wcp login again)", path)
	}
	return &c, nil
}

// checkPrivate refuses a credentials file that is not a regular file of
// the user's, mode 0600 or narrower.
func checkPrivate(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("credentials %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("credentials %s are open to other users (mode %04o): refusing to use them; "+
			"run chmod 600 %s if nobody else could have read them, else wcp logout and wcp login again", path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("credentials %s belong to uid %d, not to you (uid %d): refusing to use them", path, st.Uid, os.Getuid())
	}
	return nil
}

// saveCredentials writes c to path atomically, mode 0600, in a directory
// of mode 0700.
func saveCredentials(path string, c *credentials) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil { //nolint:gosec // G302: a directory needs its x bit
			return fmt.Errorf("credentials: %w", err)
		}
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o600, -1, -1); err != nil {
		return fmt.Errorf("credentials %s: %w", path, err)
	}
	return nil
}

// sessionClient is a client for the stored login, which saves the tokens
// of every refresh.
func sessionClient(path string, c *credentials) (*client.Client, error) {
	return client.NewWith(c.Server, client.Options{
		CAFile:       c.CA,
		Token:        c.Tokens.AccessToken,
		RefreshToken: c.Tokens.RefreshToken,
		OnRefresh: func(t api.Tokens) error {
			next := *c
			next.Tokens = t
			if err := saveCredentials(path, &next); err != nil {
				return err
			}
			*c = next
			return nil
		},
	})
}
