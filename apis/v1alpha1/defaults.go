package v1alpha1

import "strings"

// Default values filled in by Default.
const (
	DefaultProcessManager = "ondemand"
	DefaultMaxChildren    = 5
	DefaultRedirectCode   = 301
	DefaultACMEChallenge  = ChallengeHTTP01
)

// ACME challenge types.
const (
	ChallengeHTTP01 = "http-01"
	ChallengeDNS01  = "dns-01"
)

// Default fills in apiVersion, kind and the spec defaults: driftPolicy
// correct, homeDeletionPolicy archive, php.processManager ondemand,
// php.maxChildren 5. php.version stays empty, meaning the host's default.
func (t *Tenant) Default() {
	t.TypeMeta = t.GetTypeMeta()
	s := &t.Spec
	setDefault(&s.DriftPolicy, DriftCorrect)
	setDefault(&s.HomeDeletionPolicy, HomeArchive)
	setDefault(&s.PHP.ProcessManager, DefaultProcessManager)
	if s.PHP.MaxChildren == 0 {
		s.PHP.MaxChildren = DefaultMaxChildren
	}
}

// Default fills in apiVersion, kind and the spec defaults: serverName is
// metadata.name, documentRoot "domains/<serverName>/public" (left empty
// while serverName is not a valid hostname, which Validate reports), HTTP/2, the
// HTTPS redirect and PHP on, wwwRedirect none, TLS by ACME http-01 and
// redirects with code 301.
func (d *Domain) Default() {
	d.TypeMeta = d.GetTypeMeta()
	s := &d.Spec
	setDefault(&s.ServerName, d.Metadata.Name)
	if s.DocumentRoot == "" && checkHostname(s.ServerName, true) == "" {
		s.DocumentRoot = DefaultDocumentRoot(s.ServerName)
	}
	setDefaultTrue(&s.HTTP2)
	setDefaultTrue(&s.HTTPSRedirect)
	setDefaultTrue(&s.PHP.Enabled)
	setDefault(&s.WWWRedirect, WWWNone)
	setDefault(&s.TLS.Mode, TLSACME)
	if s.TLS.Mode == TLSACME {
		setDefault(&s.TLS.Challenge, DefaultACMEChallenge)
	}
	for i := range s.Redirects {
		if s.Redirects[i].Code == 0 {
			s.Redirects[i].Code = DefaultRedirectCode
		}
	}
}

// DefaultDocumentRoot is the document root of a domain that names none,
// relative to the tenant's home. A wildcard's "*" becomes "_wildcard".
func DefaultDocumentRoot(serverName string) string {
	if rest, ok := strings.CutPrefix(serverName, "*."); ok {
		serverName = "_wildcard." + rest
	}
	return "domains/" + serverName + "/public"
}

// Default fills in apiVersion, kind and the spec defaults: engine mariadb,
// databaseName <tenant>_<name with '-' as '_'>, user the database name.
func (d *Database) Default() {
	d.TypeMeta = d.GetTypeMeta()
	s := &d.Spec
	setDefault(&s.Engine, EngineMariaDB)
	if s.DatabaseName == "" && s.Tenant != "" && d.Metadata.Name != "" {
		s.DatabaseName = DefaultDatabaseName(s.Tenant, d.Metadata.Name)
	}
	setDefault(&s.User, s.DatabaseName)
}

// DefaultDatabaseName is the database name of a Database that names none.
func DefaultDatabaseName(tenant, name string) string {
	return strings.ReplaceAll(tenant+"_"+name, "-", "_")
}

func setDefault[T ~string](p *T, v T) {
	if *p == "" {
		*p = v
	}
}

func setDefaultTrue(p **bool) {
	if *p == nil {
		t := true
		*p = &t
	}
}
