package config

import (
	"io/fs"
	"reflect"
	"strings"
	"time"
)

// kind is how a key's value is written and decoded.
type kind int

const (
	kindString    kind = iota // a YAML string
	kindInt                   // a YAML integer
	kindDuration              // a Go duration string
	kindMode                  // octal permission bits
	kindBool                  // a YAML boolean
	kindStrings               // a YAML list of strings
	kindStringMap             // a YAML mapping of names to strings
)

// field describes one configuration key. The schema is the single list of
// keys: decoding, environment names, printing and reload policy derive from it.
type field struct {
	key        string // dotted camelCase path, e.g. "controllers.workers"
	kind       kind
	reloadable bool                // may change without a restart
	ptr        func(c *Config) any // *string, *int, *time.Duration, *fs.FileMode, *bool, *[]string or *map[string]string
}

// schema returns every key in print order. It is a function, not a package
// variable, so that nothing can modify it.
func schema() []field {
	return []field{
		{"node", kindString, false, func(c *Config) any { return &c.Node }},

		{"database.url", kindString, false, func(c *Config) any { return &c.Database.URL }},
		{"database.maxConns", kindInt, false, func(c *Config) any { return &c.Database.MaxConns }},
		{"database.connectTimeout", kindDuration, false, func(c *Config) any { return &c.Database.ConnectTimeout }},

		{"paths.binDir", kindString, false, func(c *Config) any { return &c.Paths.BinDir }},
		{"paths.configDir", kindString, false, func(c *Config) any { return &c.Paths.ConfigDir }},
		{"paths.stateDir", kindString, false, func(c *Config) any { return &c.Paths.StateDir }},
		{"paths.runDir", kindString, false, func(c *Config) any { return &c.Paths.RunDir }},
		{"paths.wwwRoot", kindString, false, func(c *Config) any { return &c.Paths.WWWRoot }},

		{"api.socket", kindString, false, func(c *Config) any { return &c.API.Socket }},
		{"api.socketMode", kindMode, false, func(c *Config) any { return &c.API.SocketMode }},
		{"api.shutdownTimeout", kindDuration, false, func(c *Config) any { return &c.API.ShutdownTimeout }},
		{"api.listen", kindString, false, func(c *Config) any { return &c.API.Listen }},
		{"api.tlsCert", kindString, false, func(c *Config) any { return &c.API.TLSCert }},
		{"api.tlsKey", kindString, false, func(c *Config) any { return &c.API.TLSKey }},

		{"log.level", kindString, true, func(c *Config) any { return &c.Log.Level }},
		{"log.format", kindString, false, func(c *Config) any { return &c.Log.Format }},

		{"controllers.workers", kindInt, false, func(c *Config) any { return &c.Controllers.Workers }},
		{"controllers.resyncInterval", kindDuration, true, func(c *Config) any { return &c.Controllers.ResyncInterval }},
		{"controllers.shutdownTimeout", kindDuration, false, func(c *Config) any { return &c.Controllers.ShutdownTimeout }},
		{"controllers.backoffBase", kindDuration, false, func(c *Config) any { return &c.Controllers.BackoffBase }},
		{"controllers.backoffMax", kindDuration, false, func(c *Config) any { return &c.Controllers.BackoffMax }},
		{"controllers.rateLimit", kindInt, true, func(c *Config) any { return &c.Controllers.RateLimit }},
		{"controllers.rateBurst", kindInt, true, func(c *Config) any { return &c.Controllers.RateBurst }},

		{"web.nginx", kindString, false, func(c *Config) any { return &c.Web.Nginx }},
		{"web.nginxConfig", kindString, false, func(c *Config) any { return &c.Web.NginxConfig }},
		{"web.nginxDir", kindString, false, func(c *Config) any { return &c.Web.NginxDir }},
		{"web.phpBinDir", kindString, false, func(c *Config) any { return &c.Web.PHPBinDir }},
		{"web.webUser", kindString, false, func(c *Config) any { return &c.Web.WebUser }},
		{"web.phpIdleStop", kindDuration, false, func(c *Config) any { return &c.Web.PHPIdleStop }},

		{"uids.min", kindInt, false, func(c *Config) any { return &c.UIDs.Min }},
		{"uids.max", kindInt, false, func(c *Config) any { return &c.UIDs.Max }},

		{"auth.adminGroup", kindString, false, func(c *Config) any { return &c.Auth.AdminGroup }},

		{"isolation.cgroups", kindString, false, func(c *Config) any { return &c.Isolation.Cgroups }},
		{"isolation.subtree", kindString, false, func(c *Config) any { return &c.Isolation.Subtree }},
		{"isolation.pressureStall", kindDuration, false, func(c *Config) any { return &c.Isolation.PressureStall }},
		{"isolation.pressureWindow", kindDuration, false, func(c *Config) any { return &c.Isolation.PressureWindow }},
		{"isolation.cpuPeriod", kindDuration, false, func(c *Config) any { return &c.Isolation.CPUPeriod }},

		{"acme.directory", kindString, false, func(c *Config) any { return &c.ACME.Directory }},
		{"acme.email", kindString, false, func(c *Config) any { return &c.ACME.Email }},
		{"acme.caBundle", kindString, false, func(c *Config) any { return &c.ACME.CABundle }},
		{"acme.eabKid", kindString, false, func(c *Config) any { return &c.ACME.EABKid }},
		{"acme.eabHmacKey", kindString, false, func(c *Config) any { return &c.ACME.EABHMACKey }},
		{"acme.retryBase", kindDuration, false, func(c *Config) any { return &c.ACME.RetryBase }},
		{"acme.retryMax", kindDuration, false, func(c *Config) any { return &c.ACME.RetryMax }},
		{"acme.dns.provider", kindString, false, func(c *Config) any { return &c.ACME.DNS.Provider }},
		{"acme.dns.env", kindStringMap, false, func(c *Config) any { return &c.ACME.DNS.Env }},
		{"acme.dns.envFile", kindString, false, func(c *Config) any { return &c.ACME.DNS.EnvFile }},
		{"acme.dns.resolvers", kindStrings, false, func(c *Config) any { return &c.ACME.DNS.Resolvers }},
		{"acme.dns.checkAuthoritative", kindBool, false, func(c *Config) any { return &c.ACME.DNS.CheckAuthoritative }},
		{"acme.dns.propagationTimeout", kindDuration, false, func(c *Config) any { return &c.ACME.DNS.PropagationTimeout }},
		{"acme.dns.pollingInterval", kindDuration, false, func(c *Config) any { return &c.ACME.DNS.PollingInterval }},
		{"acme.dns.sequenceInterval", kindDuration, false, func(c *Config) any { return &c.ACME.DNS.SequenceInterval }},
		{"acme.dns.forAll", kindBool, false, func(c *Config) any { return &c.ACME.DNS.ForAll }},
	}
}

// get returns the value of f in c.
func (f field) get(c *Config) any {
	return reflect.ValueOf(f.ptr(c)).Elem().Interface()
}

// set stores v, which must have the field's Go type, into c.
func (f field) set(c *Config, v any) bool {
	switch p := f.ptr(c).(type) {
	case *string:
		s, ok := v.(string)
		*p = s
		return ok
	case *int:
		i, ok := v.(int)
		*p = i
		return ok
	case *time.Duration:
		d, ok := v.(time.Duration)
		*p = d
		return ok
	case *fs.FileMode:
		m, ok := v.(fs.FileMode)
		*p = m
		return ok
	case *bool:
		b, ok := v.(bool)
		*p = b
		return ok
	case *[]string:
		l, ok := v.([]string)
		*p = l
		return ok || v == nil
	case *map[string]string:
		m, ok := v.(map[string]string)
		*p = m
		return ok || v == nil
	}
	return false
}

// equal reports whether f has the same value in a and b (nil and empty
// lists and mappings are the same).
func (f field) equal(a, b *Config) bool {
	va, vb := reflect.ValueOf(f.ptr(a)).Elem(), reflect.ValueOf(f.ptr(b)).Elem()
	if k := va.Kind(); (k == reflect.Slice || k == reflect.Map) && va.Len() == 0 && vb.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(va.Interface(), vb.Interface())
}

// envAliases are extra, shorter names for a few keys.
func envAliases() map[string]string {
	return map[string]string{
		"WCP_RESYNC_INTERVAL": "controllers.resyncInterval",
	}
}

// isForeignEnv reports whether a WCP_* variable belongs to another tool and is
// therefore not configuration.
func isForeignEnv(name string) bool {
	switch name {
	case "WCP_CONFIG", "WCP_SOCKET", "WCP_TOKEN", "WCP_SANDBOX", "WCP_REQUIRE_SANDBOX", "WCP_DEMO_HOST":
		return true
	}
	return strings.HasPrefix(name, "WCP_TEST_") || strings.HasPrefix(name, "WCP_SANDBOX_")
}

// EnvVar returns the environment variable for a dotted camelCase key, e.g.
// "paths.stateDir" → "WCP_PATHS_STATE_DIR". It does not check that the key
// exists.
func EnvVar(key string) string {
	var b strings.Builder
	b.WriteString("WCP_")
	for i, r := range key {
		switch {
		case r == '.':
			b.WriteByte('_')
		case r >= 'A' && r <= 'Z':
			if i > 0 && key[i-1] != '.' {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Keys returns every configuration key (dotted camelCase) in print order.
func Keys() []string {
	fields := schema()
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}
