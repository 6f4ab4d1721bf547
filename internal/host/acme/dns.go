package acme

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/hetzner"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/pdns"
	"github.com/go-acme/lego/v5/providers/dns/route53"

	"github.com/wcp360/wcp360/internal/cmdrun"
)

// DNS configures DNS-01: the provider that publishes the TXT records and
// how long to wait for them.
type DNS struct {
	// Provider is one of DNSProviders.
	Provider string
	// Env is the provider's settings and credentials, under the names of
	// lego's documentation (CLOUDFLARE_DNS_API_TOKEN, RFC2136_NAMESERVER,
	// ...): never read from, nor written to, the process environment.
	Env map[string]string
	// Resolvers are the DNS servers (host:port) lego asks to find a name's
	// zone and to see a TXT record published; none: /etc/resolv.conf's.
	Resolvers []string
	// CheckAuthoritative also waits until every authoritative server of
	// the zone answers the TXT record (lego's default); off where they
	// cannot be reached from this host.
	CheckAuthoritative bool
	// PropagationTimeout bounds that wait; PollingInterval is the time
	// between two looks; SequenceInterval is the pause between two names
	// of a provider that publishes one record at a time (rfc2136, exec).
	// 0: the provider's default (lego's: 60 s to 2 min, 2-5 s, 60 s).
	PropagationTimeout, PollingInterval, SequenceInterval time.Duration
	// ForAll proves every name over DNS-01; otherwise only the names that
	// need it (wildcards, or a domain that asks for dns-01) do, and the
	// others use HTTP-01.
	ForAll bool
}

// dnsProvider is one entry of the curated list: the settings it knows
// (a trailing "*" is a prefix) and how to make it from them.
type dnsProvider struct {
	keys []string
	make func(env dnsEnv) (challenge.Provider, error)
}

// dnsProviders is the list of DNS providers WCP360 configures. Each is
// built from its lego Config, never through lego's NewDNSProvider, which
// reads the process environment.
func dnsProviders() map[string]dnsProvider {
	return map[string]dnsProvider{
		"rfc2136": {
			keys: []string{"RFC2136_NAMESERVER", "RFC2136_TSIG_KEY", "RFC2136_TSIG_SECRET", "RFC2136_TSIG_ALGORITHM",
				"RFC2136_TSIG_FILE", "RFC2136_ZONES", "RFC2136_TTL", "RFC2136_DNS_TIMEOUT"},
			make: newRFC2136,
		},
		"exec": {
			// Any other setting goes to the program's environment.
			keys: []string{"EXEC_PATH", "EXEC_MODE", "EXEC_TIMEOUT", "*"},
			make: newExec,
		},
		"httpreq": {
			keys: []string{"HTTPREQ_ENDPOINT", "HTTPREQ_MODE", "HTTPREQ_USERNAME", "HTTPREQ_PASSWORD"},
			make: newHTTPReq,
		},
		"cloudflare": {
			keys: []string{"CLOUDFLARE_DNS_API_TOKEN", "CLOUDFLARE_ZONE_API_TOKEN", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY",
				"CLOUDFLARE_BASE_URL", "CLOUDFLARE_TTL"},
			make: newCloudflare,
		},
		"route53": {
			keys: []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_HOSTED_ZONE_ID",
				"AWS_ASSUME_ROLE_ARN", "AWS_EXTERNAL_ID", "AWS_PRIVATE_ZONE", "AWS_MAX_RETRIES", "AWS_TTL"},
			make: newRoute53,
		},
		"pdns": {
			keys: []string{"PDNS_API_URL", "PDNS_API_KEY", "PDNS_SERVER_NAME", "PDNS_API_VERSION", "PDNS_TTL"},
			make: newPDNS,
		},
		"hetzner": {
			keys: []string{"HETZNER_API_TOKEN", "HETZNER_TTL"},
			make: newHetzner,
		},
		"digitalocean": {
			keys: []string{"DO_AUTH_TOKEN", "DO_API_URL", "DO_TTL"},
			make: newDigitalOcean,
		},
	}
}

// DNSProviders names the DNS providers acme.dns.provider may be, sorted.
func DNSProviders() []string {
	m := dnsProviders()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CheckDNSSettings reports a setting that provider does not know (a typo
// that would otherwise be ignored), or an unknown provider. Messages name
// keys only, never values.
func CheckDNSSettings(provider string, keys []string) error {
	p, ok := dnsProviders()[provider]
	if !ok {
		return fmt.Errorf("%q is not a DNS provider WCP360 configures (one of %s)", provider, strings.Join(DNSProviders(), ", "))
	}
	for _, k := range keys {
		if !p.knows(k) {
			return fmt.Errorf("%s is not a setting of the %s provider (it knows %s)", k, provider, strings.Join(p.named(), ", "))
		}
	}
	return nil
}

func (p dnsProvider) knows(key string) bool {
	if slices.Contains(p.keys, key) {
		return true
	}
	// exec: anything but a misspelt EXEC_ setting.
	return slices.Contains(p.keys, "*") && !strings.HasPrefix(key, "EXEC_")
}

func (p dnsProvider) named() []string {
	return slices.DeleteFunc(slices.Clone(p.keys), func(k string) bool { return k == "*" })
}

// newDNSProvider makes the provider of o, wrapped to use o's timings.
func newDNSProvider(o *DNS) (challenge.Provider, error) {
	keys := make([]string, 0, len(o.Env))
	for k := range o.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := CheckDNSSettings(o.Provider, keys); err != nil {
		return nil, fmt.Errorf("acme: DNS provider: %w", err)
	}
	inner, err := dnsProviders()[o.Provider].make(dnsEnv(o.Env))
	if err != nil {
		return nil, fmt.Errorf("acme: DNS provider %s: %w", o.Provider, err)
	}
	p := timedProvider{Provider: inner, timeout: o.PropagationTimeout, interval: o.PollingInterval}
	if s, ok := inner.(interface{ Sequential() time.Duration }); ok {
		seq := o.SequenceInterval
		if seq == 0 {
			seq = s.Sequential()
		}
		return sequentialProvider{timedProvider: p, seq: seq}, nil
	}
	return p, nil
}

// timedProvider is a provider with the configured propagation timings.
type timedProvider struct {
	challenge.Provider
	timeout, interval time.Duration
}

// Timeout is the configured timeout and interval, else the provider's.
func (p timedProvider) Timeout() (timeout, interval time.Duration) {
	timeout, interval = dns01.DefaultPropagationTimeout, dns01.DefaultPollingInterval
	if t, ok := p.Provider.(challenge.ProviderTimeout); ok {
		timeout, interval = t.Timeout()
	}
	if p.timeout > 0 {
		timeout = p.timeout
	}
	if p.interval > 0 {
		interval = p.interval
	}
	return timeout, interval
}

// sequentialProvider publishes one name's record at a time (lego solves
// its names one after the other, seq apart).
type sequentialProvider struct {
	timedProvider
	seq time.Duration
}

// Sequential is the pause between two names.
func (p sequentialProvider) Sequential() time.Duration { return p.seq }

// dnsEnv is a provider's settings.
type dnsEnv map[string]string

func (e dnsEnv) required(keys ...string) error {
	var missing []string
	for _, k := range keys {
		if e[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s is required", strings.Join(missing, ", "))
	}
	return nil
}

// int sets *v from key when it is set.
func (e dnsEnv) int(key string, v *int) error {
	s, ok := e[key]
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("%s: want a whole number", key)
	}
	*v = n
	return nil
}

// seconds sets *v from key (whole seconds, as lego reads them).
func (e dnsEnv) seconds(key string, v *time.Duration) error {
	n := 0
	if err := e.int(key, &n); err != nil {
		return fmt.Errorf("%s: want whole seconds", key)
	}
	if _, ok := e[key]; ok {
		*v = time.Duration(n) * time.Second
	}
	return nil
}

func (e dnsEnv) bool(key string, v *bool) error {
	s, ok := e[key]
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%s: want true or false", key)
	}
	*v = b
	return nil
}

// url parses key, never echoing it (it may carry credentials).
func (e dnsEnv) url(key string) (*url.URL, error) {
	u, err := url.Parse(e[key])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: want an http or https URL", key)
	}
	return u, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func newRFC2136(e dnsEnv) (challenge.Provider, error) {
	if err := e.required("RFC2136_NAMESERVER"); err != nil {
		return nil, err
	}
	cfg := dnsupdate.NewDefaultConfig()
	cfg.Nameserver = e["RFC2136_NAMESERVER"]
	cfg.TSIGKey, cfg.TSIGSecret, cfg.TSIGFile = e["RFC2136_TSIG_KEY"], e["RFC2136_TSIG_SECRET"], e["RFC2136_TSIG_FILE"]
	if a := e["RFC2136_TSIG_ALGORITHM"]; a != "" {
		cfg.TSIGAlgorithm = a
	}
	if z := e["RFC2136_ZONES"]; z != "" {
		cfg.Zones = strings.Split(z, ",")
	}
	if err := firstErr(e.int("RFC2136_TTL", &cfg.TTL), e.seconds("RFC2136_DNS_TIMEOUT", &cfg.DNSTimeout)); err != nil {
		return nil, err
	}
	if (cfg.TSIGKey == "") != (cfg.TSIGSecret == "") {
		return nil, errors.New("RFC2136_TSIG_KEY and RFC2136_TSIG_SECRET go together")
	}
	return dnsupdate.NewDNSProviderConfig(cfg)
}

func newHTTPReq(e dnsEnv) (challenge.Provider, error) {
	if err := e.required("HTTPREQ_ENDPOINT"); err != nil {
		return nil, err
	}
	u, err := e.url("HTTPREQ_ENDPOINT")
	if err != nil {
		return nil, err
	}
	if m := e["HTTPREQ_MODE"]; m != "" && m != "RAW" {
		return nil, errors.New(`HTTPREQ_MODE: want "RAW" or nothing`)
	}
	cfg := httpreq.NewDefaultConfig()
	cfg.Endpoint, cfg.Mode, cfg.Username, cfg.Password = u, e["HTTPREQ_MODE"], e["HTTPREQ_USERNAME"], e["HTTPREQ_PASSWORD"]
	return httpreq.NewDNSProviderConfig(cfg)
}

func newCloudflare(e dnsEnv) (challenge.Provider, error) {
	cfg := cloudflare.NewDefaultConfig()
	cfg.AuthToken, cfg.ZoneToken = e["CLOUDFLARE_DNS_API_TOKEN"], e["CLOUDFLARE_ZONE_API_TOKEN"]
	cfg.AuthEmail, cfg.AuthKey = e["CLOUDFLARE_EMAIL"], e["CLOUDFLARE_API_KEY"]
	switch {
	case cfg.AuthToken != "" && cfg.AuthKey != "":
		return nil, errors.New("set CLOUDFLARE_DNS_API_TOKEN or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY, not both")
	case cfg.AuthToken == "" && (cfg.AuthEmail == "" || cfg.AuthKey == ""):
		return nil, errors.New("CLOUDFLARE_DNS_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY) is required")
	}
	if e["CLOUDFLARE_BASE_URL"] != "" {
		u, err := e.url("CLOUDFLARE_BASE_URL")
		if err != nil {
			return nil, err
		}
		cfg.BaseURL = u.String()
	}
	if err := e.int("CLOUDFLARE_TTL", &cfg.TTL); err != nil {
		return nil, err
	}
	return cloudflare.NewDNSProviderConfig(cfg)
}

func newRoute53(e dnsEnv) (challenge.Provider, error) {
	cfg := route53.NewDefaultConfig()
	cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken = e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"], e["AWS_SESSION_TOKEN"]
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together (neither: the instance's role)")
	}
	cfg.Region, cfg.HostedZoneID = e["AWS_REGION"], e["AWS_HOSTED_ZONE_ID"]
	cfg.AssumeRoleArn, cfg.ExternalID = e["AWS_ASSUME_ROLE_ARN"], e["AWS_EXTERNAL_ID"]
	if err := firstErr(e.bool("AWS_PRIVATE_ZONE", &cfg.PrivateZone), e.int("AWS_MAX_RETRIES", &cfg.MaxRetries),
		e.int("AWS_TTL", &cfg.TTL)); err != nil {
		return nil, err
	}
	return route53.NewDNSProviderConfig(cfg)
}

func newPDNS(e dnsEnv) (challenge.Provider, error) {
	if err := e.required("PDNS_API_URL", "PDNS_API_KEY"); err != nil {
		return nil, err
	}
	u, err := e.url("PDNS_API_URL")
	if err != nil {
		return nil, err
	}
	cfg := pdns.NewDefaultConfig()
	cfg.Host, cfg.APIKey = u, e["PDNS_API_KEY"]
	if s := e["PDNS_SERVER_NAME"]; s != "" {
		cfg.ServerName = s
	}
	if err := firstErr(e.int("PDNS_API_VERSION", &cfg.APIVersion), e.int("PDNS_TTL", &cfg.TTL)); err != nil {
		return nil, err
	}
	return pdns.NewDNSProviderConfig(cfg)
}

func newHetzner(e dnsEnv) (challenge.Provider, error) {
	if err := e.required("HETZNER_API_TOKEN"); err != nil {
		return nil, err
	}
	cfg := hetzner.NewDefaultConfig()
	cfg.APIToken = e["HETZNER_API_TOKEN"]
	if err := e.int("HETZNER_TTL", &cfg.TTL); err != nil {
		return nil, err
	}
	return hetzner.NewDNSProviderConfig(cfg)
}

func newDigitalOcean(e dnsEnv) (challenge.Provider, error) {
	if err := e.required("DO_AUTH_TOKEN"); err != nil {
		return nil, err
	}
	cfg := digitalocean.NewDefaultConfig()
	cfg.AuthToken = e["DO_AUTH_TOKEN"]
	if e["DO_API_URL"] != "" {
		u, err := e.url("DO_API_URL")
		if err != nil {
			return nil, err
		}
		cfg.BaseURL = u.String()
	}
	if err := e.int("DO_TTL", &cfg.TTL); err != nil {
		return nil, err
	}
	return digitalocean.NewDNSProviderConfig(cfg)
}

// execProvider is lego's exec protocol run through cmdrun: the program
// EXEC_PATH gets "present <fqdn> <value>" and "cleanup <fqdn> <value>"
// (EXEC_MODE=RAW: "present -- <domain> <token> <keyAuth>"), with the
// provider's settings as its environment, and a failure carries its
// output. Like lego's, it publishes one name at a time.
type execProvider struct {
	path, mode string
	env        []string
	timeout    time.Duration
}

func newExec(e dnsEnv) (challenge.Provider, error) {
	if err := e.required("EXEC_PATH"); err != nil {
		return nil, err
	}
	p := &execProvider{path: e["EXEC_PATH"], mode: e["EXEC_MODE"], timeout: cmdrun.DefaultTimeout}
	if !filepath.IsAbs(p.path) {
		return nil, errors.New("EXEC_PATH: want an absolute path")
	}
	if p.mode != "" && p.mode != "RAW" {
		return nil, errors.New(`EXEC_MODE: want "RAW" or nothing`)
	}
	if err := e.seconds("EXEC_TIMEOUT", &p.timeout); err != nil {
		return nil, err
	}
	for k, v := range e {
		p.env = append(p.env, k+"="+v)
	}
	slices.Sort(p.env)
	return p, nil
}

// Present publishes the record.
func (p *execProvider) Present(ctx context.Context, domain, token, keyAuth string) error {
	return p.run(ctx, "present", domain, token, keyAuth)
}

// CleanUp removes it.
func (p *execProvider) CleanUp(ctx context.Context, domain, token, keyAuth string) error {
	return p.run(ctx, "cleanup", domain, token, keyAuth)
}

// Sequential is lego's exec default; DNS.SequenceInterval overrides it.
func (p *execProvider) Sequential() time.Duration { return dns01.DefaultPropagationTimeout }

func (p *execProvider) run(ctx context.Context, op, domain, token, keyAuth string) error {
	args := []string{op, "--", domain, token, keyAuth}
	if p.mode != "RAW" {
		info := dns01.GetChallengeInfo(ctx, domain, keyAuth)
		args = []string{op, info.EffectiveFQDN, info.Value}
	}
	if _, err := cmdrun.Run(ctx, cmdrun.Cmd{Path: p.path, Args: args, Env: p.env, Timeout: p.timeout}); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// checkResolvers checks host:port addresses.
func checkResolvers(rs []string) error {
	for _, r := range rs {
		host, port, err := net.SplitHostPort(r)
		if err != nil || host == "" {
			return fmt.Errorf("resolver %q is not host:port", r)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("resolver %q: port is not 1..65535", r)
		}
	}
	return nil
}
