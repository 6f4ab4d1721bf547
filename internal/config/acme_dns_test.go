package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The acme.dns section from the file and from the environment: a mapping
// of settings, a list of resolvers, booleans and durations.
func TestLoadACMEDNS(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  []string
		want ACMEDNS
	}{
		{
			name: "exec from the file",
			file: "acme:\n  dns:\n    provider: exec\n    env: {EXEC_PATH: /usr/local/bin/dns-hook, HOOK_TOKEN: \"0123\", EXEC_TIMEOUT: 30}\n" +
				"    resolvers: [\"127.0.0.1:8053\"]\n    checkAuthoritative: false\n    sequenceInterval: 100ms\n",
			want: ACMEDNS{Provider: "exec", Env: map[string]string{"EXEC_PATH": "/usr/local/bin/dns-hook", "HOOK_TOKEN": "0123", "EXEC_TIMEOUT": "30"},
				Resolvers: []string{"127.0.0.1:8053"}, SequenceInterval: 100 * time.Millisecond},
		},
		{
			name: "cloudflare from the environment",
			env: testEnv("WCP_ACME_DNS_PROVIDER=cloudflare", "WCP_ACME_DNS_ENV={CLOUDFLARE_DNS_API_TOKEN: s3cret}",
				"WCP_ACME_DNS_RESOLVERS=1.1.1.1:53, [2606:4700:4700::1111]:53", "WCP_ACME_DNS_FOR_ALL=true",
				"WCP_ACME_DNS_PROPAGATION_TIMEOUT=3m", "WCP_ACME_DNS_ENV_FILE=/etc/wcp360/cloudflare.env"),
			want: ACMEDNS{Provider: "cloudflare", Env: map[string]string{"CLOUDFLARE_DNS_API_TOKEN": "s3cret"}, EnvFile: "/etc/wcp360/cloudflare.env",
				Resolvers: []string{"1.1.1.1:53", "[2606:4700:4700::1111]:53"}, CheckAuthoritative: true, ForAll: true, PropagationTimeout: 3 * time.Minute},
		},
		{
			name: "an empty mapping and list are none",
			file: "acme: {dns: {provider: rfc2136, env: {}, envFile: /etc/wcp360/dns.env, resolvers: []}}\n",
			want: ACMEDNS{Provider: "rfc2136", EnvFile: "/etc/wcp360/dns.env", CheckAuthoritative: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Path: filepath.Join(t.TempDir(), "absent.yaml"), Environ: tt.env}
			if tt.env == nil {
				opts.Environ = testEnv()
			}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			c, err := Load(opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.ACME.DNS); diff != "" {
				t.Errorf("acme.dns (-want +got):\n%s", diff)
			}
			// Everything else stays at its default, and a reload sees no change.
			if _, refused := c.ReloadChanges(c); len(refused) != 0 {
				t.Errorf("ReloadChanges of itself: %v", refused)
			}
		})
	}
}

// Mistakes in acme.dns are errors naming the key, never a setting's value.
func TestLoadACMEDNSErrors(t *testing.T) {
	const (
		unknown = "unknown key"
		wrong   = "wrong type"
		invalid = "invalid value"
		secret  = "s3cret"
	)
	tests := []struct {
		name    string
		file    string
		env     []string
		want    []reported
		message string
	}{
		{
			name:    "unknown provider",
			file:    "acme:\n  dns:\n    provider: cloudflair\n",
			want:    []reported{{"acme.dns.provider", invalid, "file:3"}},
			message: `"cloudflair" is not a DNS provider WCP360 configures: one of cloudflare, digitalocean, exec, hetzner, httpreq, pdns, rfc2136, route53 (did you mean "cloudflare"?)`,
		},
		{
			name:    "a setting the provider does not know",
			file:    "acme:\n  dns:\n    provider: cloudflare\n    env:\n      CLOUDFLARE_API_TOKEN: s3cret\n",
			want:    []reported{{"acme.dns.env", invalid, "file:4"}},
			message: "CLOUDFLARE_API_TOKEN is not a setting of the cloudflare provider",
		},
		{
			name:    "a setting's name that is no variable's",
			env:     testEnv("WCP_ACME_DNS_PROVIDER=exec", "WCP_ACME_DNS_ENV={EXEC_PATH: /bin/hook, my-token: s3cret}"),
			want:    []reported{{"acme.dns.env", invalid, "env WCP_ACME_DNS_ENV"}},
			message: `"my-token": not a setting's name`,
		},
		{
			name: "settings without a provider",
			file: "acme:\n  dns:\n    env: {CLOUDFLARE_DNS_API_TOKEN: s3cret}\n    envFile: /etc/wcp360/dns.env\n    forAll: true\n",
			want: []reported{{"acme.dns.env", invalid, "file:3"}, {"acme.dns.envFile", invalid, "file:4"}, {"acme.dns.forAll", invalid, "file:5"}},
		},
		{
			name:    "resolver without a port",
			file:    "acme: {dns: {provider: exec, env: {EXEC_PATH: /bin/hook}, resolvers: [10.0.0.53]}}\n",
			want:    []reported{{"acme.dns.resolvers", invalid, "file:1"}},
			message: `"10.0.0.53" is not host:port`,
		},
		{
			name: "resolver with a bad port, from the environment",
			env:  testEnv("WCP_ACME_DNS_RESOLVERS=10.0.0.53:53,10.0.0.54:65536"),
			want: []reported{{"acme.dns.resolvers", invalid, "env WCP_ACME_DNS_RESOLVERS"}},
		},
		{
			name:    "resolvers as one string",
			file:    "acme:\n  dns:\n    resolvers: 10.0.0.53:53\n",
			want:    []reported{{"acme.dns.resolvers", wrong, "file:3"}},
			message: "want a list of strings",
		},
		{
			name:    "env as a string, not shown",
			file:    "acme:\n  dns:\n    provider: exec\n    env: s3cret\n",
			want:    []reported{{"acme.dns.env", wrong, "file:4"}},
			message: "want a mapping of names to strings, got a single value",
		},
		{
			name:    "a setting that is a list, not shown",
			file:    "acme:\n  dns:\n    provider: exec\n    env: {EXEC_PATH: [s3cret]}\n",
			want:    []reported{{"acme.dns.env", wrong, "file:4"}},
			message: "EXEC_PATH: want a string, got a list",
		},
		{
			name:    "env from the environment that is no mapping, not shown",
			env:     testEnv("WCP_ACME_DNS_ENV=TOKEN=s3cret"),
			want:    []reported{{"acme.dns.env", wrong, "env WCP_ACME_DNS_ENV"}},
			message: "want a mapping of names to strings",
		},
		{
			name: "booleans and durations",
			file: "acme:\n  dns:\n    forAll: yes please\n    checkAuthoritative: 1\n    pollingInterval: 1ms\n    propagationTimeout: 2h\n",
			env:  testEnv("WCP_ACME_DNS_SEQUENCE_INTERVAL=-1s"),
			want: []reported{{"acme.dns.forAll", wrong, "file:3"}, {"acme.dns.checkAuthoritative", wrong, "file:4"},
				{"acme.dns.propagationTimeout", invalid, "file:6"}, {"acme.dns.pollingInterval", invalid, "file:5"},
				{"acme.dns.sequenceInterval", invalid, "env WCP_ACME_DNS_SEQUENCE_INTERVAL"}},
		},
		{
			name:    "unknown key in acme.dns",
			file:    "acme:\n  dns:\n    provder: exec\n",
			want:    []reported{{"acme.dns.provder", unknown, "file:3"}},
			message: `did you mean "provider"?`,
		},
		{
			name: "a setting given twice",
			file: "acme:\n  dns:\n    provider: exec\n    env: {EXEC_PATH: /bin/a, EXEC_PATH: s3cret}\n",
			want: []reported{{"acme.dns.env", invalid, "file:4"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Path: filepath.Join(t.TempDir(), "absent.yaml"), Environ: tt.env}
			if tt.env == nil {
				opts.Environ = testEnv()
			}
			if tt.file != "" {
				opts.Path = writeConfig(t, tt.file)
			}
			_, err := Load(opts)
			if err == nil {
				t.Fatal("Load() succeeded, want an error")
			}
			if diff := cmp.Diff(tt.want, problemsOf(t, err, opts.Path)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nerror:\n%v", diff, err)
			}
			if tt.message != "" && !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}

// `wcpd config print` shows the names of acme.dns.env, never the values,
// and the file it prints loads back.
func TestYAMLRedactsDNSSettings(t *testing.T) {
	c := testDefault()
	c.ACME.DNS = ACMEDNS{Provider: "cloudflare", Env: map[string]string{"CLOUDFLARE_DNS_API_TOKEN": "s3cret-token", "CLOUDFLARE_TTL": "120"},
		Resolvers: []string{"1.1.1.1:53"}, CheckAuthoritative: true}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "CLOUDFLARE_DNS_API_TOKEN: xxxxx") ||
		!strings.Contains(string(out), "CLOUDFLARE_TTL: xxxxx") {
		t.Errorf("YAML() of acme.dns:\n%s", out)
	}
	back, err := Load(LoadOptions{Path: writeConfig(t, string(out)), Required: true, Environ: []string{}})
	if err != nil {
		t.Fatalf("loading the printed config: %v\n%s", err, out)
	}
	c.ACME.DNS.Env = map[string]string{"CLOUDFLARE_DNS_API_TOKEN": redacted, "CLOUDFLARE_TTL": redacted}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("print/load round trip (-want +got):\n%s", diff)
	}
}
