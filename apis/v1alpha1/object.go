package v1alpha1

// Object is what the store, the API and the CLI handle without knowing the kind.
type Object interface {
	GetTypeMeta() TypeMeta
	GetKind() Kind
	GetMeta() *ObjectMeta
	GetStatus() *Status
	// TenantName is the owning tenant: the tenant itself for a Tenant.
	TenantName() string
	// Default fills in defaults in place; it is idempotent.
	Default()
	// Validate checks the spec and metadata; call Default first.
	Validate() ErrorList
	// SpecValue returns the spec (a value of the kind's spec type).
	SpecValue() any
}

// GetTypeMeta returns apiVersion and kind.
func (t *Tenant) GetTypeMeta() TypeMeta { return TypeMeta{APIVersion: APIVersion, Kind: KindTenant} }

// GetKind returns KindTenant.
func (t *Tenant) GetKind() Kind { return KindTenant }

// GetMeta returns the metadata.
func (t *Tenant) GetMeta() *ObjectMeta { return &t.Metadata }

// GetStatus returns the status.
func (t *Tenant) GetStatus() *Status { return &t.Status }

// TenantName is the tenant's own name.
func (t *Tenant) TenantName() string { return t.Metadata.Name }

// SpecValue returns the spec.
func (t *Tenant) SpecValue() any { return t.Spec }

// GetTypeMeta returns apiVersion and kind.
func (d *Domain) GetTypeMeta() TypeMeta { return TypeMeta{APIVersion: APIVersion, Kind: KindDomain} }

// GetKind returns KindDomain.
func (d *Domain) GetKind() Kind { return KindDomain }

// GetMeta returns the metadata.
func (d *Domain) GetMeta() *ObjectMeta { return &d.Metadata }

// GetStatus returns the status.
func (d *Domain) GetStatus() *Status { return &d.Status }

// TenantName is the owning tenant.
func (d *Domain) TenantName() string { return d.Spec.Tenant }

// SpecValue returns the spec.
func (d *Domain) SpecValue() any { return d.Spec }

// GetTypeMeta returns apiVersion and kind.
func (d *Database) GetTypeMeta() TypeMeta {
	return TypeMeta{APIVersion: APIVersion, Kind: KindDatabase}
}

// GetKind returns KindDatabase.
func (d *Database) GetKind() Kind { return KindDatabase }

// GetMeta returns the metadata.
func (d *Database) GetMeta() *ObjectMeta { return &d.Metadata }

// GetStatus returns the status.
func (d *Database) GetStatus() *Status { return &d.Status }

// TenantName is the owning tenant.
func (d *Database) TenantName() string { return d.Spec.Tenant }

// SpecValue returns the spec.
func (d *Database) SpecValue() any { return d.Spec }

// Hostnames returns every hostname the domain serves (server name first).
// The store keeps them in a unique column so one hostname is served once.
func (d *Domain) Hostnames() []string {
	out := make([]string, 0, 1+len(d.Spec.Aliases))
	if d.Spec.ServerName != "" {
		out = append(out, d.Spec.ServerName)
	}
	return append(out, d.Spec.Aliases...)
}
