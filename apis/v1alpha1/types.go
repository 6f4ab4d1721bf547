// Package v1alpha1 holds the WCP360 resource types (Tenant, Domain, Database),
// their defaults and Validate(): the one gate that the CLI, the REST API and
// GitOps all pass manifests through.
package v1alpha1

import "time"

// APIVersion is the apiVersion every manifest of this package carries.
const (
	Group      = "wcp360.io"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
)

// Kind names a resource type.
type Kind string

// The kinds WCP360 knows.
const (
	KindTenant   Kind = "Tenant"
	KindDomain   Kind = "Domain"
	KindDatabase Kind = "Database"
)

// Kinds lists every kind in dependency order: a Tenant before what belongs to it.
var Kinds = []Kind{KindTenant, KindDomain, KindDatabase}

// TypeMeta is apiVersion + kind.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       Kind   `json:"kind"`
}

// ObjectMeta is what every resource has besides its spec. Only name, labels
// and annotations are written by users; the rest is set by the store.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`

	UID               string     `json:"uid,omitempty"`
	Generation        int64      `json:"generation,omitempty"`
	ResourceVersion   int64      `json:"resourceVersion,omitempty"`
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
	UpdateTimestamp   *time.Time `json:"updateTimestamp,omitempty"`
	DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
}

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition types shared by every kind (kstatus).
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	// ConditionDrifted is True while the host differs from a converged spec
	// and driftPolicy is report; False (DriftCorrected, InSync) afterwards.
	ConditionDrifted = "Drifted"
)

// Condition is one observation about a resource, kstatus-style.
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
	LastTransitionTime time.Time       `json:"lastTransitionTime"`
	ObservedGeneration int64           `json:"observedGeneration,omitempty"`
}

// DriftEntry is one difference found between the host and a converged spec.
type DriftEntry struct {
	Field      string    `json:"field"`
	Want       string    `json:"want"`
	Have       string    `json:"have"`
	ObservedAt time.Time `json:"observedAt"`
	Corrected  bool      `json:"corrected"`
}

// Status is written only by controllers. It is rebuilt from what was observed.
type Status struct {
	ObservedGeneration int64        `json:"observedGeneration,omitempty"`
	Conditions         []Condition  `json:"conditions,omitempty"`
	Drift              []DriftEntry `json:"drift,omitempty"`
	LastSnapshot       string       `json:"lastSnapshot,omitempty"`
	// Account is a Tenant's Linux account as last converged.
	Account *AccountStatus `json:"account,omitempty"`
	// Resources are a Tenant's limits on the host: enforcement, usage,
	// pressure, disk.
	Resources *ResourcesStatus `json:"resources,omitempty"`
	// TLS is the certificate a Domain serves.
	TLS *TLSStatus `json:"tls,omitempty"`
}

// TLSStatus is the certificate a domain's HTTPS serves, as found on the
// host, and how its ACME issuance goes.
type TLSStatus struct {
	// Mode is the spec's: acme, selfsigned, provided.
	Mode TLSMode `json:"mode"`
	// Trusted: a certificate browsers accept (issued by the CA, or
	// provided); false for the self-signed placeholder.
	Trusted bool `json:"trusted"`
	// Issuer is the certificate's issuer (its distinguished name).
	Issuer string `json:"issuer,omitempty"`
	// Names are the DNS names it covers.
	Names []string `json:"names,omitempty"`
	// NotBefore and NotAfter bound its validity.
	NotBefore *time.Time `json:"notBefore,omitempty"`
	NotAfter  *time.Time `json:"notAfter,omitempty"`
	// RenewAt is when WCP360 orders the next one (acme only): two thirds
	// of the lifetime with jitter, or sooner when the CA's renewal
	// information says so. Absent while the placeholder serves: the first
	// order is due at once.
	RenewAt *time.Time `json:"renewAt,omitempty"`
	// LastError is the last failed order, with the CA's problem; cleared
	// by the next certificate issued.
	LastError string `json:"lastError,omitempty"`
	// LastErrorTime is when it failed.
	LastErrorTime *time.Time `json:"lastErrorTime,omitempty"`
	// Failures counts the orders failed in a row (the retry backoff
	// doubles with each); cleared with LastError.
	Failures int `json:"failures,omitempty"`
	// NextRetry is when the next order may be sent after a failure: the
	// backoff is kept here, so a restarted wcpd still waits.
	NextRetry *time.Time `json:"nextRetry,omitempty"`
}

// AccountStatus is the Linux user and group WCP360 created for a tenant.
type AccountStatus struct {
	User  string `json:"user"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
}

// DriftPolicy says what a resync does with a difference on a converged resource.
type DriftPolicy string

// Drift policies.
const (
	DriftCorrect DriftPolicy = "correct" // record it and put the host back
	DriftReport  DriftPolicy = "report"  // record it, leave the host alone
	DriftIgnore  DriftPolicy = "ignore"  // do not look
)

// ---------------------------------------------------------------- Tenant

// Tenant is one isolated Linux user with a home under /srv/www/<name>.
type Tenant struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     TenantSpec `json:"spec"`
	Status   Status     `json:"status,omitzero"`
}

// HomeDeletionPolicy says what happens to a tenant's home when the tenant goes.
type HomeDeletionPolicy string

// Home deletion policies.
const (
	HomeArchive HomeDeletionPolicy = "archive" // tar it under the state dir, then remove
	HomeDelete  HomeDeletionPolicy = "delete"
	HomeRetain  HomeDeletionPolicy = "retain" // leave the files, owned by the old uid
)

// TenantSpec is the desired state of a tenant.
type TenantSpec struct {
	// DisplayName is free text shown in listings.
	DisplayName string `json:"displayName,omitempty"`
	// Node is the wcpd node the tenant lives on; empty means the node that applies it.
	Node string `json:"node,omitempty"`
	// Suspended stops serving the tenant's sites and PHP without deleting anything.
	Suspended bool `json:"suspended,omitempty"`
	// UID pins the Linux uid (and gid); zero allocates one from the configured range.
	UID int64 `json:"uid,omitempty"`
	// Access is shell/SFTP access for the tenant's user.
	Access TenantAccess `json:"access,omitzero"`
	// Limits are the cgroup and disk quota limits.
	Limits TenantLimits `json:"limits,omitzero"`
	// PHP holds the defaults for the tenant's PHP-FPM master.
	PHP TenantPHP `json:"php,omitzero"`
	// DriftPolicy: correct (default), report or ignore.
	DriftPolicy DriftPolicy `json:"driftPolicy,omitempty"`
	// HomeDeletionPolicy: archive (default), delete or retain.
	HomeDeletionPolicy HomeDeletionPolicy `json:"homeDeletionPolicy,omitempty"`
}

// TenantAccess is how the tenant's user may log in.
type TenantAccess struct {
	SFTP           bool     `json:"sftp,omitempty"`
	SSH            bool     `json:"ssh,omitempty"`
	AuthorizedKeys []string `json:"authorizedKeys,omitempty"`
}

// TenantLimits are enforced by the kernel (cgroup v2, project quota).
type TenantLimits struct {
	// MemoryHigh and MemoryMax are byte quantities ("512Mi", "2G").
	MemoryHigh Quantity `json:"memoryHigh,omitempty"`
	MemoryMax  Quantity `json:"memoryMax,omitempty"`
	// CPU is a share of one CPU as a percentage ("150%" = one and a half CPUs).
	CPU string `json:"cpu,omitempty"`
	// Pids is pids.max; zero means no limit.
	Pids int64 `json:"pids,omitempty"`
	// IO limits apply to the block device that holds the tenant's home.
	IO IOLimits `json:"io,omitzero"`
	// Disk is the project quota on the tenant's home.
	Disk DiskLimits `json:"disk,omitzero"`
}

// IOLimits are io.max values; zero means unlimited.
type IOLimits struct {
	ReadBPS   Quantity `json:"readBPS,omitempty"`
	WriteBPS  Quantity `json:"writeBPS,omitempty"`
	ReadIOPS  int64    `json:"readIOPS,omitempty"`
	WriteIOPS int64    `json:"writeIOPS,omitempty"`
}

// DiskLimits are project quota limits; zero means unlimited.
type DiskLimits struct {
	Bytes  Quantity `json:"bytes,omitempty"`
	Inodes int64    `json:"inodes,omitempty"`
}

// TenantPHP configures the tenant's PHP-FPM master and pool.
type TenantPHP struct {
	// Version is the default PHP version of the tenant's domains ("8.2").
	Version string `json:"version,omitempty"`
	// ProcessManager is ondemand (default), dynamic or static.
	ProcessManager string `json:"processManager,omitempty"`
	// MaxChildren is pm.max_children.
	MaxChildren int `json:"maxChildren,omitempty"`
	// MemoryLimit is PHP's memory_limit per request.
	MemoryLimit Quantity `json:"memoryLimit,omitempty"`
	// MaxExecutionTime is in seconds.
	MaxExecutionTime int `json:"maxExecutionTime,omitempty"`
	// UploadMaxSize sets upload_max_filesize and post_max_size.
	UploadMaxSize Quantity `json:"uploadMaxSize,omitempty"`
	// INI holds further php.ini settings from an allow-listed set of keys.
	INI map[string]string `json:"ini,omitempty"`
}

// ---------------------------------------------------------------- Domain

// Domain is a site served by nginx for one tenant.
type Domain struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     DomainSpec `json:"spec"`
	Status   Status     `json:"status,omitzero"`
}

// WWWRedirect is how the www. and the apex name relate.
type WWWRedirect string

// www redirects.
const (
	WWWNone     WWWRedirect = "none"   // serve only what is listed
	WWWToApex   WWWRedirect = "toApex" // www.<name> redirects to <name>
	WWWFromApex WWWRedirect = "toWWW"  // <name> redirects to www.<name>
)

// DomainSpec is the desired state of a domain.
type DomainSpec struct {
	// Tenant owns the domain; it must exist.
	Tenant string `json:"tenant"`
	// ServerName is the primary hostname; defaults to metadata.name.
	ServerName string `json:"serverName,omitempty"`
	// Aliases are further hostnames served by the same site.
	Aliases []string `json:"aliases,omitempty"`
	// DocumentRoot is relative to the tenant's home; default "domains/<serverName>/public".
	DocumentRoot string `json:"documentRoot,omitempty"`
	// PHP says whether and which PHP serves the site.
	PHP DomainPHP `json:"php,omitzero"`
	// HTTP2 is on unless set false; HTTP3 needs an nginx with QUIC.
	HTTP2 *bool `json:"http2,omitempty"`
	HTTP3 bool  `json:"http3,omitempty"`
	// WWWRedirect: none (default), toApex, toWWW.
	WWWRedirect WWWRedirect `json:"wwwRedirect,omitempty"`
	// HTTPSRedirect sends HTTP to HTTPS once a trusted certificate exists; default true.
	HTTPSRedirect *bool `json:"httpsRedirect,omitempty"`
	// Redirects are path redirects.
	Redirects []Redirect `json:"redirects,omitempty"`
	// TLS is how the site gets its certificate.
	TLS DomainTLS `json:"tls,omitzero"`
}

// DomainPHP selects PHP for a domain.
type DomainPHP struct {
	// Enabled defaults to true.
	Enabled *bool `json:"enabled,omitempty"`
	// Version defaults to the tenant's.
	Version string `json:"version,omitempty"`
}

// Redirect sends requests for a path prefix elsewhere.
type Redirect struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Code is 301 (default), 302, 307 or 308.
	Code int `json:"code,omitempty"`
}

// TLSMode is how a domain gets its certificate.
type TLSMode string

// TLS modes.
const (
	TLSACME       TLSMode = "acme"
	TLSSelfSigned TLSMode = "selfsigned"
	TLSNone       TLSMode = "none"
	TLSProvided   TLSMode = "provided"
)

// DomainTLS configures the certificate.
type DomainTLS struct {
	// Mode: acme (default), selfsigned, none, provided.
	Mode TLSMode `json:"mode,omitempty"`
	// Challenge for acme: http-01 (default) or dns-01 (needed for wildcards).
	Challenge string `json:"challenge,omitempty"`
	// Provided holds a PEM certificate chain and key for mode provided.
	Provided *ProvidedCertificate `json:"provided,omitempty"`
}

// ProvidedCertificate is a certificate brought by the user.
type ProvidedCertificate struct {
	CertificatePEM string `json:"certificatePEM"`
	PrivateKeyPEM  string `json:"privateKeyPEM"`
}

// ---------------------------------------------------------------- Database

// Database is a MariaDB or PostgreSQL database owned by a tenant.
type Database struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta   `json:"metadata"`
	Spec     DatabaseSpec `json:"spec"`
	Status   Status       `json:"status,omitzero"`
}

// Engine is the database server.
type Engine string

// Database engines.
const (
	EngineMariaDB    Engine = "mariadb"
	EnginePostgreSQL Engine = "postgresql"
)

// DatabaseSpec is the desired state of a database.
type DatabaseSpec struct {
	// Tenant owns the database; it must exist.
	Tenant string `json:"tenant"`
	// Engine: mariadb (default) or postgresql.
	Engine Engine `json:"engine,omitempty"`
	// DatabaseName defaults to <tenant>_<metadata.name with - as _>.
	DatabaseName string `json:"databaseName,omitempty"`
	// User defaults to DatabaseName.
	User string `json:"user,omitempty"`
	// MaxConnections caps the user's connections; zero uses the server default.
	MaxConnections int `json:"maxConnections,omitempty"`
	// Charset and Collation (MariaDB), or Encoding via Charset (PostgreSQL).
	Charset   string `json:"charset,omitempty"`
	Collation string `json:"collation,omitempty"`
}
