package acme

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"
)

// envKeyRE is a setting's name, as an environment variable's.
var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvKey reports whether k can name a DNS provider's setting.
func ValidEnvKey(k string) bool { return envKeyRE.MatchString(k) }

// ParseEnvFile reads the settings of a DNS provider from a file of
// KEY=value lines: blank lines and lines starting with # are skipped, an
// "export " before the key is allowed, and a value wholly in single or
// double quotes loses them (nothing inside is interpreted). A key given
// twice, a line without "=" or a key that cannot be an environment
// variable's name is an error naming the line, never its value.
func ParseEnvFile(data []byte) (map[string]string, error) {
	env := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=value", n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ValidEnvKey(k) {
			return nil, fmt.Errorf("line %d: %q is not a setting's name (A-Z, 0-9, _)", n, k)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if _, dup := env[k]; dup {
			return nil, fmt.Errorf("line %d: %s is set twice", n, k)
		}
		env[k] = v
	}
	return env, nil
}

// maxEnvFile bounds an env file.
const maxEnvFile = 1 << 20

// LoadEnvFile reads ParseEnvFile's format from path, which holds secrets:
// it must be a regular file of the user running wcpd that nobody else can
// read or write (0600 or 0400).
func LoadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path) //nolint:gosec // the administrator's configured file
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is mode %04o: it holds secrets, make it 0600", path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s belongs to uid %d, not to wcpd's (%d)", path, st.Uid, os.Geteuid())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxEnvFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxEnvFile)
	}
	env, err := ParseEnvFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}
