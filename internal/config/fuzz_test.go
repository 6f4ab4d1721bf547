package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzLoad feeds arbitrary file contents to Load. Load must not panic; a
// configuration it accepts must be valid, and printing it and loading the
// print must give it back (apart from a redacted database password).
func FuzzLoad(f *testing.F) {
	f.Add([]byte(fullFile))
	f.Add([]byte("log: {level: debug}\n"))
	f.Add([]byte("api: {socketMode: 0o640}\nuids: {min: 1000, max: 1000}\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Add([]byte("- [1, 2]\n"))
	f.Add([]byte("acme: {dns: {provider: exec, env: {EXEC_PATH: /bin/hook, X: 1}, resolvers: [\"127.0.0.1:53\"], forAll: true}}\n"))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "wcpd.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		env := []string{"WCP_NODE=fuzz"}
		c, err := Load(LoadOptions{Path: path, Required: true, Environ: env})
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted an invalid config: %v\ninput:\n%s", err, data)
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML(): %v", err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := Load(LoadOptions{Path: path, Required: true, Environ: env})
		if err != nil {
			t.Fatalf("loading the printed config: %v\nprinted:\n%s", err, out)
		}
		c.Database.URL = RedactURL(c.Database.URL)
		back.Database.URL = RedactURL(back.Database.URL)
		if c.ACME.EABHMACKey != "" {
			c.ACME.EABHMACKey = redacted
		}
		for k := range c.ACME.DNS.Env {
			c.ACME.DNS.Env[k] = redacted
		}
		if diff := cmp.Diff(c, back); diff != "" {
			t.Fatalf("print/load round trip (-want +got):\n%s", diff)
		}
	})
}
