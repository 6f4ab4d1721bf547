package acme

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/google/go-cmp/cmp"
)

// Every provider of the list is made from its settings alone, without
// the process environment; missing or misspelt settings are errors that
// name the setting and never show a value.
func TestDNSProviders(t *testing.T) {
	const secret = "s3cret-value"
	tests := []struct {
		provider string
		env      map[string]string
		wantErr  string // "" for none
	}{
		{"rfc2136", map[string]string{"RFC2136_NAMESERVER": "127.0.0.1:53", "RFC2136_TSIG_KEY": "wcp.", "RFC2136_TSIG_SECRET": "c2VjcmV0",
			"RFC2136_TSIG_ALGORITHM": "hmac-sha256.", "RFC2136_ZONES": "example.com,example.net", "RFC2136_TTL": "60"}, ""},
		{"rfc2136", map[string]string{"RFC2136_NAMESERVER": "ns1.example.com"}, ""},
		{"rfc2136", map[string]string{"RFC2136_TSIG_KEY": "k."}, "RFC2136_NAMESERVER is required"},
		{"rfc2136", map[string]string{"RFC2136_NAMESERVER": "ns1", "RFC2136_TSIG_KEY": "k."}, "go together"},
		{"rfc2136", map[string]string{"RFC2136_NAMESERVER": "ns1", "RFC2136_TTL": secret}, "RFC2136_TTL: want a whole number"},
		{"rfc2136", map[string]string{"RFC2136_NAMESERVER": "ns1", "RFC2136_NAMESRVER": "x"}, "RFC2136_NAMESRVER is not a setting of the rfc2136 provider"},
		{"exec", map[string]string{"EXEC_PATH": "/usr/local/bin/dns-hook", "EXEC_MODE": "RAW", "MY_DNS_TOKEN": secret}, ""},
		{"exec", map[string]string{"EXEC_PATH": "dns-hook"}, "EXEC_PATH: want an absolute path"},
		{"exec", map[string]string{"EXEC_PATH": "/bin/hook", "EXEC_PAHT": "/x"}, "EXEC_PAHT is not a setting of the exec provider"},
		{"exec", map[string]string{}, "EXEC_PATH is required"},
		{"httpreq", map[string]string{"HTTPREQ_ENDPOINT": "https://dns.example.com/acme", "HTTPREQ_USERNAME": "u", "HTTPREQ_PASSWORD": secret}, ""},
		{"httpreq", map[string]string{"HTTPREQ_ENDPOINT": "ftp://" + secret + "@x/"}, "HTTPREQ_ENDPOINT: want an http or https URL"},
		{"cloudflare", map[string]string{"CLOUDFLARE_DNS_API_TOKEN": secret}, ""},
		{"cloudflare", map[string]string{"CLOUDFLARE_EMAIL": "a@example.com", "CLOUDFLARE_API_KEY": secret}, ""},
		{"cloudflare", map[string]string{"CLOUDFLARE_EMAIL": "a@example.com"}, "CLOUDFLARE_DNS_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY) is required"},
		{"cloudflare", map[string]string{"CLOUDFLARE_API_TOKEN": secret}, "CLOUDFLARE_API_TOKEN is not a setting of the cloudflare provider"},
		{"route53", map[string]string{"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "eu-west-1", "AWS_HOSTED_ZONE_ID": "Z1"}, ""},
		{"route53", map[string]string{"AWS_ACCESS_KEY_ID": "AKIA", "AWS_REGION": "eu-west-1"}, "go together"},
		{"pdns", map[string]string{"PDNS_API_URL": "http://127.0.0.1:8081", "PDNS_API_KEY": secret, "PDNS_API_VERSION": "1"}, ""},
		{"pdns", map[string]string{"PDNS_API_URL": "http://127.0.0.1:8081"}, "PDNS_API_KEY is required"},
		{"hetzner", map[string]string{"HETZNER_API_TOKEN": secret}, ""},
		{"digitalocean", map[string]string{"DO_AUTH_TOKEN": secret}, ""},
		{"cloudflair", map[string]string{}, `"cloudflair" is not a DNS provider WCP360 configures (one of cloudflare, digitalocean, exec, hetzner, httpreq, pdns, rfc2136, route53)`},
	}
	for _, tt := range tests {
		t.Run(tt.provider+" "+strings.Join(slices.Sorted(mapKeys(tt.env)), ","), func(t *testing.T) {
			p, err := newDNSProvider(&DNS{Provider: tt.provider, Env: tt.env})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("newDNSProvider: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("newDNSProvider: %v, want an error with %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), secret):
				t.Fatalf("the error shows a value: %v", err)
			case err == nil && p == nil:
				t.Fatal("no provider")
			}
		})
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// The configured timings override the provider's; a provider that
// publishes one record at a time stays sequential, with the configured
// pause.
func TestDNSProviderTimings(t *testing.T) {
	p, err := newDNSProvider(&DNS{Provider: "exec", Env: map[string]string{"EXEC_PATH": "/bin/true"},
		PropagationTimeout: 3 * time.Minute, SequenceInterval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	timeout, interval := p.(challenge.ProviderTimeout).Timeout()
	if timeout != 3*time.Minute || interval != 2*time.Second {
		t.Errorf("Timeout() = %s, %s; want 3m (configured), 2s (lego's default)", timeout, interval)
	}
	seq, ok := p.(interface{ Sequential() time.Duration })
	if !ok || seq.Sequential() != 5*time.Second {
		t.Errorf("exec is not sequential with the configured 5 s: %T", p)
	}
	p, err = newDNSProvider(&DNS{Provider: "cloudflare", Env: map[string]string{"CLOUDFLARE_DNS_API_TOKEN": "x"}, PollingInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(interface{ Sequential() time.Duration }); ok {
		t.Error("cloudflare made sequential")
	}
	if timeout, interval := p.(challenge.ProviderTimeout).Timeout(); timeout != 2*time.Minute || interval != time.Second {
		t.Errorf("Timeout() = %s, %s; want 2m (cloudflare's), 1s (configured)", timeout, interval)
	}
}

func TestNewChecksDNS(t *testing.T) {
	base := Options{DirectoryURL: "https://ca.example/dir", StateDir: t.TempDir(), ChallengeDir: t.TempDir()}
	for _, rs := range [][]string{{"127.0.0.1"}, {":53"}, {"127.0.0.1:0"}, {"[::1]:99999"}} {
		o := base
		o.DNS = &DNS{Provider: "exec", Env: map[string]string{"EXEC_PATH": "/bin/true"}, Resolvers: rs}
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), "resolver") {
			t.Errorf("New with resolvers %q: %v, want an error naming the resolver", rs, err)
		}
	}
	o := base
	o.DNS = &DNS{Provider: "exec", Env: map[string]string{"EXEC_PATH": "/bin/true"}}
	c, err := New(o)
	if err != nil || !c.DNS01() {
		t.Errorf("New with exec: %v, DNS01 %v", err, err == nil && c.DNS01())
	}
	if c, err := New(base); err != nil || c.DNS01() {
		t.Errorf("New without DNS: %v, DNS01 true", err)
	}
}

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		wantErr  string
	}{
		{"empty", "", map[string]string{}, ""},
		{"settings, comments, quotes and export", "# Cloudflare\nCLOUDFLARE_DNS_API_TOKEN=abc=def\n\n  export CLOUDFLARE_TTL = 120\r\nA='x y'\nB=\"#not a comment\"\nC=\n",
			map[string]string{"CLOUDFLARE_DNS_API_TOKEN": "abc=def", "CLOUDFLARE_TTL": "120", "A": "x y", "B": "#not a comment", "C": ""}, ""},
		{"no equals sign", "A=1\nTOKEN s3cret\n", nil, "line 2: want KEY=value"},
		{"bad key", "MY-TOKEN=s3cret\n", nil, `line 1: "MY-TOKEN" is not a setting's name`},
		{"twice", "A=1\nA=s3cret\n", nil, "line 2: A is set twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnvFile([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("ParseEnvFile: %v, want an error with %q and no value", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseEnvFile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadEnvFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dns.env")
	if err := os.WriteFile(p, []byte("CLOUDFLARE_DNS_API_TOKEN=s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := LoadEnvFile(p)
	if err != nil || env["CLOUDFLARE_DNS_API_TOKEN"] != "s3cret" {
		t.Fatalf("LoadEnvFile: %v, %v", env, err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEnvFile(p); err == nil || !strings.Contains(err.Error(), "mode 0640") {
		t.Errorf("LoadEnvFile of a group-readable file: %v", err)
	}
	if _, err := LoadEnvFile(dir); err == nil {
		t.Error("LoadEnvFile of a directory succeeded")
	}
	if _, err := LoadEnvFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadEnvFile of a missing file: %v", err)
	}
}

// FuzzParseEnvFile: ParseEnvFile never panics; what it accepts has valid
// keys and one-line values, and written back out it parses the same.
func FuzzParseEnvFile(f *testing.F) {
	f.Add([]byte("# c\nA=1\nexport B='x y'\nC=\"q\"\n"))
	f.Add([]byte("A==\r\n\n=x\n"))
	f.Add([]byte("'A'=1\nexport=2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvFile(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, k := range slices.Sorted(mapKeys(env)) {
			v := env[k]
			if !ValidEnvKey(k) || strings.ContainsAny(v, "\n") {
				t.Fatalf("accepted key %q value %q", k, v)
			}
			b.WriteString(k + "='" + v + "'\n")
		}
		back, err := ParseEnvFile([]byte(b.String()))
		if err != nil {
			t.Fatalf("reparse of %q: %v", b.String(), err)
		}
		if diff := cmp.Diff(env, back); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", data, diff)
		}
	})
}
