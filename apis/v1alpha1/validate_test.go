package v1alpha1

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

type validateCase struct {
	name string
	obj  Object
	want []string // "path Type"; none means valid
}

func runValidateCases(t *testing.T, cases []validateCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkValidate(t, tc.obj, tc.want...) })
	}
}

func tenantWith(f func(*Tenant)) *Tenant       { t := validTenant(); f(t); return t }
func domainWith(f func(*Domain)) *Domain       { d := validDomain(); f(d); return d }
func databaseWith(f func(*Database)) *Database { d := validDatabase(); f(d); return d }

func tenantNamed(n string) *Tenant { return tenantWith(func(t *Tenant) { t.Metadata.Name = n }) }

func TestValidateTenantMeta(t *testing.T) {
	const name = "metadata.name Invalid"
	manyLabels := map[string]string{}
	for i := range 65 {
		manyLabels[fmt.Sprintf("l%d", i)] = "v"
	}
	runValidateCases(t, []validateCase{
		{"valid", validTenant(), nil},
		{"one letter", tenantNamed("a"), nil},
		{"32 characters", tenantNamed("a" + strings.Repeat("b", 31)), nil},
		{"with dash and digits", tenantNamed("shop-2"), nil},
		{"empty", tenantNamed(""), []string{"metadata.name Required"}},
		{"upper case", tenantNamed("Shop"), []string{name}},
		{"leading dash", tenantNamed("-shop"), []string{name}},
		{"trailing dash", tenantNamed("shop-"), []string{name}},
		{"leading digit", tenantNamed("1shop"), []string{name}},
		{"33 characters", tenantNamed("a" + strings.Repeat("b", 32)), []string{name}},
		{"underscore", tenantNamed("a_b"), []string{name}},
		{"dot", tenantNamed("a.b"), []string{name}},
		{"root", tenantNamed("root"), []string{name}},
		{"www-data", tenantNamed("www-data"), []string{name}},
		{"mysql", tenantNamed("mysql"), []string{name}},
		{"wcp360", tenantNamed("wcp360"), []string{name}},
		{"systemd prefix", tenantNamed("systemd-anything"), []string{name}},
		{"underscore prefix", tenantNamed("_apt"), []string{name}},
		{"label key", tenantWith(func(t *Tenant) { t.Metadata.Labels = map[string]string{"bad key": "x"} }),
			[]string{"metadata.labels[bad key] Invalid"}},
		{"label prefix", tenantWith(func(t *Tenant) { t.Metadata.Labels = map[string]string{"Example.COM/x": "x"} }),
			[]string{"metadata.labels[Example.COM/x] Invalid"}},
		{"label value", tenantWith(func(t *Tenant) { t.Metadata.Labels = map[string]string{"k": "a b"} }),
			[]string{"metadata.labels[k] Invalid"}},
		{"label value too long", tenantWith(func(t *Tenant) { t.Metadata.Labels = map[string]string{"k": strings.Repeat("a", 64)} }),
			[]string{"metadata.labels[k] Invalid"}},
		{"good labels", tenantWith(func(t *Tenant) {
			t.Metadata.Labels = map[string]string{"wcp360.io/plan": "Gold_1.x", "empty": ""}
		}), nil},
		{"too many labels", tenantWith(func(t *Tenant) { t.Metadata.Labels = manyLabels }), []string{"metadata.labels TooLong"}},
		{"annotations at the cap", tenantWith(func(t *Tenant) {
			t.Metadata.Annotations = map[string]string{"n": strings.Repeat("x", MaxAnnotationBytes-1)}
		}), nil},
		{"annotations over the cap", tenantWith(func(t *Tenant) {
			t.Metadata.Annotations = map[string]string{"n": strings.Repeat("x", MaxAnnotationBytes)}
		}), []string{"metadata.annotations TooLong"}},
		{"annotation with NUL", tenantWith(func(t *Tenant) { t.Metadata.Annotations = map[string]string{"n": "a\x00b"} }),
			[]string{"metadata.annotations[n] Invalid"}},
		{"negative resourceVersion", tenantWith(func(t *Tenant) { t.Metadata.ResourceVersion = -1 }),
			[]string{"metadata.resourceVersion Invalid"}},
	})
}

func TestValidateTypeMeta(t *testing.T) {
	tn := validTenant()
	tn.Default()
	tn.APIVersion = "wcp360.io/v2"
	tn.Kind = KindDomain
	got := errorKeys(tn.Validate())
	if strings.Join(got, ",") != "apiVersion NotSupported,kind NotSupported" {
		t.Fatalf("got %v", got)
	}
}

func TestValidateTenantSpec(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"not defaulted is fine", validTenant(), nil},
		{"display name control", tenantWith(func(t *Tenant) { t.Spec.DisplayName = "a\nb" }), []string{"spec.displayName Invalid"}},
		{"display name long", tenantWith(func(t *Tenant) { t.Spec.DisplayName = strings.Repeat("x", 257) }), []string{"spec.displayName TooLong"}},
		{"display name unicode", tenantWith(func(t *Tenant) { t.Spec.DisplayName = "Müller & Söhne – 東京" }), nil},
		{"node", tenantWith(func(t *Tenant) { t.Spec.Node = "web1" }), nil},
		{"bad node", tenantWith(func(t *Tenant) { t.Spec.Node = "Web_1" }), []string{"spec.node Invalid"}},
		{"uid 1000", tenantWith(func(t *Tenant) { t.Spec.UID = 1000 }), nil},
		{"uid max", tenantWith(func(t *Tenant) { t.Spec.UID = math.MaxInt32 - 1 }), nil},
		{"uid 999", tenantWith(func(t *Tenant) { t.Spec.UID = 999 }), []string{"spec.uid OutOfRange"}},
		{"uid nobody", tenantWith(func(t *Tenant) { t.Spec.UID = 65534 }), []string{"spec.uid Invalid"}},
		{"uid 2^31-1", tenantWith(func(t *Tenant) { t.Spec.UID = math.MaxInt32 }), []string{"spec.uid OutOfRange"}},
		{"uid negative", tenantWith(func(t *Tenant) { t.Spec.UID = -1 }), []string{"spec.uid OutOfRange"}},
		{"drift policy", tenantWith(func(t *Tenant) { t.Spec.DriftPolicy = "fix" }), []string{"spec.driftPolicy NotSupported"}},
		{"home deletion policy", tenantWith(func(t *Tenant) { t.Spec.HomeDeletionPolicy = "burn" }), []string{"spec.homeDeletionPolicy NotSupported"}},
	})
}

func TestValidateAuthorizedKeys(t *testing.T) {
	keys := func(k ...string) *Tenant { return tenantWith(func(t *Tenant) { t.Spec.Access.AuthorizedKeys = k }) }
	const k0 = "spec.access.authorizedKeys[0] Invalid"
	ed := strings.Fields(testKeyEd25519)
	many := make([]string, 101)
	for i := range many {
		many[i] = testKeyEd25519
	}
	runValidateCases(t, []validateCase{
		{"no comment", keys(ed[0] + " " + ed[1]), nil},
		{"comment with spaces", keys(testKeyEd25519 + " and more words"), nil},
		{"options", keys(`command="/bin/sh" ` + testKeyEd25519), []string{k0}},
		{"restrict option", keys("restrict," + testKeyEd25519), []string{k0}},
		{"two lines", keys(testKeyEd25519 + "\n" + testKeyECDSA), []string{k0}},
		{"carriage return", keys(testKeyEd25519 + "\r"), []string{k0}},
		{"dss", keys("ssh-dss " + ed[1]), []string{k0}},
		{"bad base64", keys("ssh-ed25519 AAAA!!!!"), []string{k0}},
		{"type mismatch", keys("ssh-rsa " + ed[1]), []string{k0}},
		{"only a type", keys("ssh-ed25519"), []string{k0}},
		{"leading space", keys(" " + testKeyEd25519), []string{k0}},
		{"empty", keys(""), []string{k0}},
		{"too long", keys(testKeyEd25519 + " " + strings.Repeat("x", MaxAuthorizedKeySize)), []string{k0}},
		{"duplicate with another comment", keys(testKeyEd25519, ed[0]+" "+ed[1]+" other"),
			[]string{"spec.access.authorizedKeys[1] Duplicate"}},
		{"too many", keys(many...), append([]string{"spec.access.authorizedKeys TooLong"}, dupKeys(100)...)},
	})
}

func dupKeys(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("spec.access.authorizedKeys[%d] Duplicate", i+1)
	}
	return out
}

func TestValidateLimits(t *testing.T) {
	lim := func(f func(*TenantLimits)) *Tenant { return tenantWith(func(t *Tenant) { f(&t.Spec.Limits) }) }
	runValidateCases(t, []validateCase{
		{"none", lim(func(l *TenantLimits) { *l = TenantLimits{} }), nil},
		{"smallest", lim(func(l *TenantLimits) {
			*l = TenantLimits{MemoryHigh: "16Mi", MemoryMax: "16Mi", CPU: "1%", Pids: 16,
				Disk: DiskLimits{Bytes: "1Mi", Inodes: 100}}
		}), nil},
		{"largest", lim(func(l *TenantLimits) {
			*l = TenantLimits{MemoryHigh: "1Ti", MemoryMax: "1Ti", CPU: "102400%", Pids: 4194304,
				IO:   IOLimits{ReadBPS: "100Gi", WriteBPS: "100Gi", ReadIOPS: 10_000_000, WriteIOPS: 10_000_000},
				Disk: DiskLimits{Bytes: "1Pi", Inodes: 1 << 32}}
		}), nil},
		{"zero io and disk", lim(func(l *TenantLimits) {
			l.IO = IOLimits{ReadBPS: "0", WriteBPS: "0"}
			l.Disk = DiskLimits{Bytes: "0"}
		}), nil},
		{"memory too small", lim(func(l *TenantLimits) { l.MemoryMax = "8Mi" }), []string{"spec.limits.memoryMax OutOfRange"}},
		{"memory too large", lim(func(l *TenantLimits) { l.MemoryMax = "2Ti" }), []string{"spec.limits.memoryMax OutOfRange"}},
		{"memory junk", lim(func(l *TenantLimits) { l.MemoryHigh = "lots" }), []string{"spec.limits.memoryHigh Invalid"}},
		{"high above max", lim(func(l *TenantLimits) { l.MemoryHigh, l.MemoryMax = "3Gi", "2Gi" }), []string{"spec.limits.memoryHigh Invalid"}},
		{"cpu without percent", lim(func(l *TenantLimits) { l.CPU = "150" }), []string{"spec.limits.cpu Invalid"}},
		{"cpu zero", lim(func(l *TenantLimits) { l.CPU = "0%" }), []string{"spec.limits.cpu Invalid"}},
		{"cpu too high", lim(func(l *TenantLimits) { l.CPU = "102401%" }), []string{"spec.limits.cpu Invalid"}},
		{"pids too few", lim(func(l *TenantLimits) { l.Pids = 8 }), []string{"spec.limits.pids OutOfRange"}},
		{"pids too many", lim(func(l *TenantLimits) { l.Pids = 4194305 }), []string{"spec.limits.pids OutOfRange"}},
		{"io bps below the throttle", lim(func(l *TenantLimits) { l.IO.ReadBPS = "1" }), []string{"spec.limits.io.readBPS OutOfRange"}},
		{"io bps 0 is no limit", lim(func(l *TenantLimits) { l.IO.WriteBPS = "0" }), nil},
		{"io iops below the throttle", lim(func(l *TenantLimits) { l.IO.WriteIOPS = 1 }), []string{"spec.limits.io.writeIOPS OutOfRange"}},
		{"read bps", lim(func(l *TenantLimits) { l.IO.ReadBPS = "101Gi" }), []string{"spec.limits.io.readBPS OutOfRange"}},
		{"write bps junk", lim(func(l *TenantLimits) { l.IO.WriteBPS = "-1" }), []string{"spec.limits.io.writeBPS Invalid"}},
		{"read iops", lim(func(l *TenantLimits) { l.IO.ReadIOPS = -1 }), []string{"spec.limits.io.readIOPS OutOfRange"}},
		{"write iops", lim(func(l *TenantLimits) { l.IO.WriteIOPS = 10_000_001 }), []string{"spec.limits.io.writeIOPS OutOfRange"}},
		{"disk too small", lim(func(l *TenantLimits) { l.Disk.Bytes = "512Ki" }), []string{"spec.limits.disk.bytes OutOfRange"}},
		{"disk too large", lim(func(l *TenantLimits) { l.Disk.Bytes = "2Pi" }), []string{"spec.limits.disk.bytes OutOfRange"}},
		{"inodes too few", lim(func(l *TenantLimits) { l.Disk.Inodes = 99 }), []string{"spec.limits.disk.inodes OutOfRange"}},
		{"inodes too many", lim(func(l *TenantLimits) { l.Disk.Inodes = 1<<32 + 1 }), []string{"spec.limits.disk.inodes OutOfRange"}},
	})
}

func TestValidateTenantPHP(t *testing.T) {
	php := func(f func(*TenantPHP)) *Tenant { return tenantWith(func(t *Tenant) { f(&t.Spec.PHP) }) }
	ini := func(k, v string) *Tenant {
		return php(func(p *TenantPHP) { p.INI = map[string]string{k: v} })
	}
	const tz = "spec.php.ini[date.timezone] Invalid"
	runValidateCases(t, []validateCase{
		{"host default version", php(func(p *TenantPHP) { p.Version = "" }), nil},
		{"two-digit minor", php(func(p *TenantPHP) { p.Version = "8.10" }), nil},
		{"php 5", php(func(p *TenantPHP) { p.Version = "5.6" }), nil},
		{"major only", php(func(p *TenantPHP) { p.Version = "8" }), []string{"spec.php.version Invalid"}},
		{"patch", php(func(p *TenantPHP) { p.Version = "8.3.1" }), []string{"spec.php.version Invalid"}},
		{"php 10", php(func(p *TenantPHP) { p.Version = "10.1" }), []string{"spec.php.version Invalid"}},
		{"php 4", php(func(p *TenantPHP) { p.Version = "4.4" }), []string{"spec.php.version Invalid"}},
		{"injection", php(func(p *TenantPHP) { p.Version = "8.3;rm" }), []string{"spec.php.version Invalid"}},
		{"every pm", php(func(p *TenantPHP) { p.ProcessManager = "static" }), nil},
		{"pm", php(func(p *TenantPHP) { p.ProcessManager = "adaptive" }), []string{"spec.php.processManager NotSupported"}},
		{"children 1000", php(func(p *TenantPHP) { p.MaxChildren = 1000 }), nil},
		{"children 1001", php(func(p *TenantPHP) { p.MaxChildren = 1001 }), []string{"spec.php.maxChildren OutOfRange"}},
		{"children negative", php(func(p *TenantPHP) { p.MaxChildren = -1 }), []string{"spec.php.maxChildren OutOfRange"}},
		{"memory limits", php(func(p *TenantPHP) { p.MemoryLimit, p.UploadMaxSize = "16Gi", "16Gi" }), nil},
		{"memory small", php(func(p *TenantPHP) { p.MemoryLimit = "8Mi" }), []string{"spec.php.memoryLimit OutOfRange"}},
		{"memory big", php(func(p *TenantPHP) { p.MemoryLimit = "17Gi" }), []string{"spec.php.memoryLimit OutOfRange"}},
		{"upload big", php(func(p *TenantPHP) { p.UploadMaxSize = "17Gi" }), []string{"spec.php.uploadMaxSize OutOfRange"}},
		{"execution time", php(func(p *TenantPHP) { p.MaxExecutionTime = 86400 }), nil},
		{"execution time long", php(func(p *TenantPHP) { p.MaxExecutionTime = 86401 }), []string{"spec.php.maxExecutionTime OutOfRange"}},
		{"execution time negative", php(func(p *TenantPHP) { p.MaxExecutionTime = -1 }), []string{"spec.php.maxExecutionTime OutOfRange"}},
		{"ini error_reporting", ini("error_reporting", "E_ALL & ~E_DEPRECATED & ~E_STRICT"), nil},
		{"ini empty value", ini("default_charset", ""), nil},
		{"ini key not allowed", ini("open_basedir", "/"), []string{"spec.php.ini[open_basedir] Invalid"}},
		{"ini auto_prepend_file", ini("auto_prepend_file", "/tmp/x.php"), []string{"spec.php.ini[auto_prepend_file] Invalid"}},
		{"ini disable_functions", ini("disable_functions", ""), []string{"spec.php.ini[disable_functions] Invalid"}},
		{"ini newline", ini("date.timezone", "UTC\nopen_basedir=/"), []string{tz}},
		{"ini semicolon", ini("date.timezone", "UTC;x"), []string{tz}},
		{"ini quote", ini("date.timezone", `UTC"`), []string{tz}},
		{"ini backslash", ini("date.timezone", `UTC\`), []string{tz}},
		{"ini section", ini("date.timezone", "[PATH=/]"), []string{tz}},
		{"ini equals", ini("date.timezone", "a=b"), []string{tz}},
		{"ini dollar", ini("date.timezone", "${HOME}"), []string{tz}},
		{"ini outer space", ini("date.timezone", " UTC"), []string{tz}},
		{"ini too long", ini("date.timezone", strings.Repeat("a", 257)), []string{"spec.php.ini[date.timezone] TooLong"}},
		{"post_max_size alone", ini("post_max_size", "64M"), nil},
		{"post_max_size with uploadMaxSize", tenantWith(func(t *Tenant) {
			t.Spec.PHP.UploadMaxSize = "64Mi"
			t.Spec.PHP.INI = map[string]string{"post_max_size": "64M"}
		}), []string{"spec.php.ini[post_max_size] Forbidden"}},
	})
}

func TestValidateDomainNames(t *testing.T) {
	named := func(n string) *Domain {
		return domainWith(func(d *Domain) { d.Metadata.Name = n; d.Spec.Aliases = nil })
	}
	runValidateCases(t, []validateCase{
		{"valid", validDomain(), nil},
		{"upper case name", named("Example.com"), []string{"metadata.name Invalid", "spec.serverName Invalid"}},
		{"empty label", named("a..b.com"), []string{"metadata.name Invalid", "spec.serverName Invalid"}},
		{"too long", named(strings.Repeat("a.", 127) + "com"), []string{"metadata.name Invalid", "spec.serverName Invalid"}},
		{"single label name, server name set", domainWith(func(d *Domain) {
			d.Metadata.Name = "shop"
			d.Spec.ServerName = "shop.example.com"
		}), nil},
		{"no tenant", domainWith(func(d *Domain) { d.Spec.Tenant = "" }), []string{"spec.tenant Required"}},
		{"system tenant", domainWith(func(d *Domain) { d.Spec.Tenant = "root" }), []string{"spec.tenant Invalid"}},
		{"bad tenant", domainWith(func(d *Domain) { d.Spec.Tenant = "a_b" }), []string{"spec.tenant Invalid"}},
	})
}

func TestValidateHostnames(t *testing.T) {
	server := func(h string) *Domain {
		return domainWith(func(d *Domain) { d.Spec.ServerName = h; d.Spec.DocumentRoot = "public"; d.Spec.Aliases = nil })
	}
	const sn = "spec.serverName Invalid"
	runValidateCases(t, []validateCase{
		{"punycode", server("xn--mnchen-3ya.de"), nil},
		{"digits", server("123.example.com"), nil},
		{"63-char label", server(strings.Repeat("a", 63) + ".com"), nil},
		{"semicolon brace", server("a.com;}"), []string{sn}},
		{"nginx variable", server("$host"), []string{sn}},
		{"space", server("a .com"), []string{sn}},
		{"double quote", server(`a".com`), []string{sn}},
		{"single quote", server("a'.com"), []string{sn}},
		{"newline", server("a.com\nreturn"), []string{sn}},
		{"tab", server("a.com\t"), []string{sn}},
		{"NUL", server("a.com\x00"), []string{sn}},
		{"backslash", server(`a\.com`), []string{sn}},
		{"slash", server("a.com/x"), []string{sn}},
		{"braces", server("a{b}.com"), []string{sn}},
		{"colon port", server("a.com:80"), []string{sn}},
		{"upper case", server("EXAMPLE.com"), []string{sn}},
		{"unicode", server("münchen.de"), []string{sn}},
		{"single label", server("localhost"), []string{sn}},
		{"ip address", server("10.0.0.1"), []string{sn}},
		{"leading dash", server("-a.com"), []string{sn}},
		{"trailing dash", server("a-.com"), []string{sn}},
		{"64-char label", server(strings.Repeat("a", 64) + ".com"), []string{sn}},
		{"254 characters", server(strings.Repeat("abc.", 62) + "abcdef"), []string{sn}},
		{"trailing dot", server("example.com."), []string{sn}},
		{"underscore", server("a_b.example.com"), []string{sn}},
		{"wildcard with http-01", server("*.example.com"), []string{sn}},
		{"wildcard with dns-01", domainWith(func(d *Domain) {
			d.Spec.ServerName, d.Spec.TLS.Challenge = "*.example.com", ChallengeDNS01
		}), nil},
		{"wildcard with selfsigned", domainWith(func(d *Domain) {
			d.Spec.ServerName, d.Spec.TLS.Mode = "*.example.com", TLSSelfSigned
		}), nil},
		{"wildcard in the middle", domainWith(func(d *Domain) {
			d.Spec.ServerName, d.Spec.TLS.Mode = "a.*.example.com", TLSNone
		}), []string{sn}},
		{"wildcard alone", domainWith(func(d *Domain) { d.Spec.ServerName, d.Spec.TLS.Mode = "*", TLSNone }), []string{sn}},
		{"wildcard of a TLD", domainWith(func(d *Domain) { d.Spec.ServerName, d.Spec.TLS.Mode = "*.com", TLSNone }), []string{sn}},
		{"double wildcard", domainWith(func(d *Domain) { d.Spec.ServerName, d.Spec.TLS.Mode = "*.*.example.com", TLSNone }), []string{sn}},
		{"partial wildcard", domainWith(func(d *Domain) { d.Spec.ServerName, d.Spec.TLS.Mode = "a*.example.com", TLSNone }), []string{sn}},
		{"alias wildcard with http-01", domainWith(func(d *Domain) { d.Spec.Aliases = []string{"*.example.com"} }),
			[]string{"spec.aliases[0] Invalid"}},
		{"alias injection", domainWith(func(d *Domain) { d.Spec.Aliases = []string{"ok.example.com", "a.com; return 301 http://evil"} }),
			[]string{"spec.aliases[1] Invalid"}},
		{"alias equals server name", domainWith(func(d *Domain) { d.Spec.Aliases = []string{"shop.example.com"} }),
			[]string{"spec.aliases[0] Duplicate"}},
		{"alias twice", domainWith(func(d *Domain) { d.Spec.Aliases = []string{"a.example.com", "b.example.com", "a.example.com"} }),
			[]string{"spec.aliases[2] Duplicate"}},
		{"too many aliases", domainWith(func(d *Domain) {
			d.Spec.Aliases = nil
			for i := range 101 {
				d.Spec.Aliases = append(d.Spec.Aliases, fmt.Sprintf("a%d.example.com", i))
			}
		}), []string{"spec.aliases TooLong"}},
		{"www redirect with wildcard", domainWith(func(d *Domain) {
			d.Spec.ServerName, d.Spec.TLS.Mode, d.Spec.WWWRedirect = "*.example.com", TLSNone, WWWToApex
		}), []string{"spec.wwwRedirect Invalid"}},
		{"www redirect", domainWith(func(d *Domain) { d.Spec.WWWRedirect = "always" }), []string{"spec.wwwRedirect NotSupported"}},
		{"www redirect toWWW", domainWith(func(d *Domain) { d.Spec.WWWRedirect = WWWFromApex }), nil},
	})
}

func TestValidateDocumentRoot(t *testing.T) {
	root := func(r string) *Domain { return domainWith(func(d *Domain) { d.Spec.DocumentRoot = r }) }
	const dr = "spec.documentRoot Invalid"
	runValidateCases(t, []validateCase{
		{"plain", root("public"), nil},
		{"nested", root("sites/a-b/c_d.e/public"), nil},
		{"255", root(strings.Repeat("a", 255)), nil},
		{"256", root(strings.Repeat("a", 256)), []string{"spec.documentRoot TooLong"}},
		{"absolute", root("/etc"), []string{dr}},
		{"parent", root("../../etc"), []string{dr}},
		{"parent inside", root("a/../../etc"), []string{dr}},
		{"dot", root("."), []string{dr}},
		{"dot slash", root("./a"), []string{dr}},
		{"double slash", root("a//b"), []string{dr}},
		{"trailing slash", root("a/"), []string{dr}},
		{"hidden", root(".ssh"), []string{dr}},
		{"hidden inside", root("a/.git"), []string{dr}},
		{"tilde", root("~/x"), []string{dr}},
		{"space", root("a b"), []string{dr}},
		{"semicolon", root("a;b"), []string{dr}},
		{"variable", root("$document_root"), []string{dr}},
		{"backslash", root(`a\b`), []string{dr}},
		{"newline", root("a\nb"), []string{dr}},
		{"unicode", root("ä"), []string{dr}},
	})
}

func TestValidateRedirects(t *testing.T) {
	redir := func(rs ...Redirect) *Domain { return domainWith(func(d *Domain) { d.Spec.Redirects = rs }) }
	r := func(from, to string, code int) Redirect { return Redirect{From: from, To: to, Code: code} }
	const from, to = "spec.redirects[0].from Invalid", "spec.redirects[0].to Invalid"
	many := make([]Redirect, 101)
	for i := range many {
		many[i] = r(fmt.Sprintf("/p%d", i), "/", 0)
	}
	runValidateCases(t, []validateCase{
		{"codes", redir(r("/a", "/b", 301), r("/c", "/d", 302), r("/e", "/f", 307), r("/g", "/h", 308)), nil},
		{"url", redir(r("/a%20b/(x)", "https://www.example.com:8443/x?y=1&z=2#f", 0)), nil},
		{"ip url", redir(r("/a", "http://192.0.2.1/", 0)), nil},
		{"code", redir(r("/a", "/b", 303)), []string{"spec.redirects[0].code NotSupported"}},
		{"relative from", redir(r("a", "/b", 0)), []string{from}},
		{"empty from", redir(r("", "/b", 0)), []string{"spec.redirects[0].from Required"}},
		{"from with space", redir(r("/a b", "/b", 0)), []string{from}},
		{"from with semicolon", redir(r("/a;return", "/b", 0)), []string{from}},
		{"from with brace", redir(r("/a{", "/b", 0)), []string{from}},
		{"from with query", redir(r("/a?x=1", "/b", 0)), []string{from}},
		{"from with bad escape", redir(r("/a%zz", "/b", 0)), []string{from}},
		{"from with truncated escape", redir(r("/a%2", "/b", 0)), []string{from}},
		{"from with quote", redir(r(`/a"`, "/b", 0)), []string{from}},
		{"from with dollar", redir(r("/$uri", "/b", 0)), []string{from}},
		{"empty to", redir(r("/a", "", 0)), []string{"spec.redirects[0].to Required"}},
		{"to ftp", redir(r("/a", "ftp://example.com/", 0)), []string{to}},
		{"to javascript", redir(r("/a", "javascript:alert(1)", 0)), []string{to}},
		{"to scheme relative", redir(r("/a", "//evil.example/", 0)), []string{to}},
		{"to relative", redir(r("/a", "b/c", 0)), []string{to}},
		{"to with user", redir(r("/a", "https://user:pw@example.com/", 0)), []string{to}},
		{"to with variable", redir(r("/a", "https://example.com$request_uri", 0)), []string{to}},
		{"to with quote", redir(r("/a", `https://example.com/";`, 0)), []string{to}},
		{"to with brace", redir(r("/a", "https://example.com/}", 0)), []string{to}},
		{"to with newline", redir(r("/a", "/b\r\nSet-Cookie: x", 0)), []string{to}},
		{"to with space", redir(r("/a", "/b c", 0)), []string{to}},
		{"to with bad host", redir(r("/a", "https://exa_mple.com/", 0)), []string{to}},
		{"to without host", redir(r("/a", "https:///x", 0)), []string{to}},
		{"duplicate from", redir(r("/a", "/b", 0), r("/a", "/c", 0)), []string{"spec.redirects[1].from Duplicate"}},
		{"too many", redir(many...), []string{"spec.redirects TooLong"}},
	})
}

func TestValidateTLS(t *testing.T) {
	crt, key, other := readTestdata(t, "shop.crt"), readTestdata(t, "shop.key"), readTestdata(t, "other.key")
	tlsWith := func(tl DomainTLS) *Domain { return domainWith(func(d *Domain) { d.Spec.TLS = tl }) }
	provided := func(c, k string) *Domain {
		return tlsWith(DomainTLS{Mode: TLSProvided, Provided: &ProvidedCertificate{CertificatePEM: c, PrivateKeyPEM: k}})
	}
	const cp, kp = "spec.tls.provided.certificatePEM", "spec.tls.provided.privateKeyPEM"
	runValidateCases(t, []validateCase{
		{"acme dns-01", tlsWith(DomainTLS{Mode: TLSACME, Challenge: ChallengeDNS01}), nil},
		{"none", tlsWith(DomainTLS{Mode: TLSNone}), nil},
		{"selfsigned", tlsWith(DomainTLS{Mode: TLSSelfSigned}), nil},
		{"provided", provided(crt, key), nil},
		{"provided chain", provided(crt+crt, key), nil},
		{"mode", tlsWith(DomainTLS{Mode: "letsencrypt"}), []string{"spec.tls.mode NotSupported"}},
		{"challenge", tlsWith(DomainTLS{Challenge: "tls-alpn-01"}), []string{"spec.tls.challenge NotSupported"}},
		{"challenge without acme", tlsWith(DomainTLS{Mode: TLSNone, Challenge: ChallengeHTTP01}), []string{"spec.tls.challenge Forbidden"}},
		{"provided without mode", tlsWith(DomainTLS{Provided: &ProvidedCertificate{CertificatePEM: crt, PrivateKeyPEM: key}}),
			[]string{"spec.tls.provided Forbidden"}},
		{"mode without provided", tlsWith(DomainTLS{Mode: TLSProvided}), []string{"spec.tls.provided Required"}},
		{"empty PEMs", provided("", ""), []string{cp + " Required", kp + " Required"}},
		{"not PEM", provided("hello", key), []string{cp + " Invalid"}},
		{"key as certificate", provided(key, key), []string{cp + " Invalid"}},
		{"certificate as key", provided(crt, crt), []string{kp + " Invalid"}},
		{"junk after certificate", provided(crt+"junk", key), []string{cp + " Invalid"}},
		{"two keys", provided(crt, key+key), []string{kp + " Invalid"}},
		{"mismatched key", provided(crt, other), []string{kp + " Invalid"}},
		{"broken certificate", provided("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key), []string{cp + " Invalid"}},
		{"encrypted key", provided(crt, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), []string{kp + " Invalid"}},
		{"huge certificate", provided(strings.Repeat("x", MaxCertificatePEM+1), key), []string{cp + " TooLong"}},
	})
	d := provided(crt, other)
	d.Default()
	for _, e := range d.Validate() {
		if e.Value != nil || strings.Contains(e.Error(), "PRIVATE") {
			t.Errorf("an error repeats the private key: %v", e)
		}
	}
}

func TestValidateDomainPHP(t *testing.T) {
	runValidateCases(t, []validateCase{
		{"off", domainWith(func(d *Domain) { f := false; d.Spec.PHP.Enabled = &f }), nil},
		{"version", domainWith(func(d *Domain) { d.Spec.PHP.Version = "7.4" }), nil},
		{"bad version", domainWith(func(d *Domain) { d.Spec.PHP.Version = "latest" }), []string{"spec.php.version Invalid"}},
	})
}

func TestValidateDatabase(t *testing.T) {
	db := func(f func(*DatabaseSpec)) *Database { return databaseWith(func(d *Database) { f(&d.Spec) }) }
	runValidateCases(t, []validateCase{
		{"valid", validDatabase(), nil},
		{"postgresql", db(func(s *DatabaseSpec) { s.Engine, s.Charset = EnginePostgreSQL, "utf8" }), nil},
		{"explicit", db(func(s *DatabaseSpec) {
			s.DatabaseName, s.User, s.MaxConnections, s.Charset, s.Collation = "shop", "shop_rw", 10000, "utf8mb4", "utf8mb4_unicode_ci"
		}), nil},
		{"name with underscore", databaseWith(func(d *Database) { d.Metadata.Name = "shop_db" }), []string{"metadata.name Invalid"}},
		{"upper case name", databaseWith(func(d *Database) { d.Metadata.Name = "Shop" }), []string{"metadata.name Invalid", "spec.databaseName Invalid", "spec.user Invalid"}},
		{"no tenant", db(func(s *DatabaseSpec) { s.Tenant = "" }), []string{"spec.tenant Required"}},
		{"system tenant", db(func(s *DatabaseSpec) { s.Tenant = "mysql" }), []string{"spec.tenant Invalid"}},
		{"engine", db(func(s *DatabaseSpec) { s.Engine = "oracle" }), []string{"spec.engine NotSupported"}},
		{"name digit", db(func(s *DatabaseSpec) { s.DatabaseName = "1db" }), []string{"spec.databaseName Invalid", "spec.user Invalid"}},
		{"name dash", db(func(s *DatabaseSpec) { s.DatabaseName, s.User = "a-b", "ab" }), []string{"spec.databaseName Invalid"}},
		{"name injection", db(func(s *DatabaseSpec) { s.DatabaseName, s.User = "a`; DROP", "ab" }), []string{"spec.databaseName Invalid"}},
		{"name 64", db(func(s *DatabaseSpec) { s.DatabaseName, s.User = "a"+strings.Repeat("b", 63), "ab" }), []string{"spec.databaseName TooLong"}},
		{"reserved name", db(func(s *DatabaseSpec) { s.DatabaseName, s.User = "mysql", "ab" }), []string{"spec.databaseName Forbidden"}},
		{"user 33", db(func(s *DatabaseSpec) { s.User = "a" + strings.Repeat("b", 32) }), []string{"spec.user TooLong"}},
		{"reserved user", db(func(s *DatabaseSpec) { s.User = "root" }), []string{"spec.user Forbidden"}},
		{"long default user", &Database{Metadata: ObjectMeta{Name: "a-rather-long-database-name-1"},
			Spec: DatabaseSpec{Tenant: "shop"}}, []string{"spec.user TooLong"}},
		{"connections", db(func(s *DatabaseSpec) { s.MaxConnections = 10001 }), []string{"spec.maxConnections OutOfRange"}},
		{"negative connections", db(func(s *DatabaseSpec) { s.MaxConnections = -1 }), []string{"spec.maxConnections OutOfRange"}},
		{"charset", db(func(s *DatabaseSpec) { s.Charset = "utf-8" }), []string{"spec.charset Invalid"}},
		{"collation", db(func(s *DatabaseSpec) { s.Collation = "Latin1" }), []string{"spec.collation Invalid"}},
		{"collation on postgresql", db(func(s *DatabaseSpec) { s.Engine, s.Collation = EnginePostgreSQL, "c" }), []string{"spec.collation Forbidden"}},
	})
}
