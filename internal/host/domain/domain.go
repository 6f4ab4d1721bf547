// Package domain converges a Domain onto the host in parts, each a
// controllers.Step with a condition of its own: the document root inside
// the tenant's home (DocumentRoot), the certificate files nginx needs
// (TLS), the tenant's PHP-FPM master for the domain's PHP version (PHP) and
// the nginx site (Vhost). Each part reads the domain's spec together with
// its tenant's: the tenant's account (uid, home) comes from the tenant's
// status, written by the tenant controller, which a Domain waits for.
package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// Store is what the parts read: the domain's tenant.
type Store interface {
	Get(ctx context.Context, kind v1alpha1.Kind, name string) (store.Resource, error)
}

// Desired is a domain as the host should serve it.
type Desired struct {
	Domain string
	Spec   v1alpha1.DomainSpec
	Tenant string
	// TenantSpec is the owner's spec (PHP defaults, drift policy).
	TenantSpec v1alpha1.TenantSpec
	UID, GID   int
	Home       string // /srv/www/<tenant>
	// DocumentRoot is relative to Home, cleaned ("domains/<name>/public").
	DocumentRoot string
	// ServerNames is the primary name, then the aliases.
	ServerNames []string
	// PHPVersion is the domain's, else the tenant's ("" = newest installed);
	// PHP false serves static files only.
	PHP        bool
	PHPVersion string
}

// Resolve reads what a Domain row needs from its spec and its tenant.
func Resolve(ctx context.Context, st Store, row store.Resource) (Desired, error) {
	var d Desired
	if err := json.Unmarshal(row.Spec, &d.Spec); err != nil {
		return d, reconcile.Terminal(fmt.Errorf("stored spec: %w", err))
	}
	d.Domain, d.Tenant = row.Name, d.Spec.Tenant
	t, err := st.Get(ctx, v1alpha1.KindTenant, d.Tenant)
	if err != nil {
		return d, fmt.Errorf("tenant %s: %w", d.Tenant, err)
	}
	if err := json.Unmarshal(t.Spec, &d.TenantSpec); err != nil {
		return d, reconcile.Terminal(fmt.Errorf("tenant %s: stored spec: %w", d.Tenant, err))
	}
	var ts v1alpha1.Status
	if len(t.Status) > 0 {
		if err := json.Unmarshal(t.Status, &ts); err != nil {
			return d, fmt.Errorf("tenant %s: stored status: %w", d.Tenant, err)
		}
	}
	if ts.Account == nil {
		return d, reconcile.Waiting(fmt.Errorf("tenant %s has no Linux account yet", d.Tenant), 2*time.Second)
	}
	d.UID, d.GID, d.Home = ts.Account.UID, ts.Account.GID, ts.Account.Home
	name := d.Spec.ServerName
	if name == "" {
		name = row.Name
	}
	d.ServerNames = append([]string{name}, d.Spec.Aliases...)
	root := d.Spec.DocumentRoot
	if root == "" {
		root = v1alpha1.DefaultDocumentRoot(name)
	}
	root = path.Clean(root)
	if path.IsAbs(root) || root == "." || root == ".." || strings.HasPrefix(root, "../") {
		return d, reconcile.Terminal(fmt.Errorf("spec.documentRoot %q leaves the tenant's home", d.Spec.DocumentRoot))
	}
	d.DocumentRoot = root
	d.PHP = d.Spec.PHP.Enabled == nil || *d.Spec.PHP.Enabled
	d.PHPVersion = d.Spec.PHP.Version
	if d.PHPVersion == "" {
		d.PHPVersion = d.TenantSpec.PHP.Version
	}
	return d, nil
}

// DocumentRootPath is the absolute document root.
func (d Desired) DocumentRootPath() string { return filepath.Join(d.Home, d.DocumentRoot) }

// LogDir is where nginx writes the domain's logs.
func (d Desired) LogDir() string { return filepath.Join(d.Home, "logs") }
