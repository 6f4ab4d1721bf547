package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// Lister lists the domains of a tenant, to know which PHP versions it still uses.
type Lister interface {
	Store
	List(ctx context.Context, kind v1alpha1.Kind, opts store.ListOptions) ([]store.Resource, error)
}

// PHP is the part that runs the tenant's PHP-FPM master for the domain's
// PHP version: one master per tenant and version, shared by the tenant's
// domains of that version, removed when the last of them goes.
type PHP struct {
	Store Lister
	FPM   *phpfpm.Manager
}

// Name names the part in events.
func (p *PHP) Name() string { return "php" }

// ConditionType is the part's condition.
func (p *PHP) ConditionType() string { return "PHP" }

// Pool is the PHP-FPM pool a domain needs (tenant settings, domain version).
func Pool(d Desired) (phpfpm.Pool, error) {
	tp := d.TenantSpec.PHP
	pool := phpfpm.Pool{Tenant: d.Tenant, UID: d.UID, GID: d.GID, Home: d.Home, Version: d.PHPVersion,
		PM: tp.ProcessManager, MaxChildren: tp.MaxChildren, MaxExecutionTime: tp.MaxExecutionTime, INI: tp.INI}
	var err error
	if tp.MemoryLimit != "" {
		if pool.MemoryLimit, err = tp.MemoryLimit.Bytes(); err != nil {
			return pool, reconcile.Terminal(fmt.Errorf("tenant spec.php.memoryLimit: %w", err))
		}
	}
	if tp.UploadMaxSize != "" {
		if pool.UploadMaxSize, err = tp.UploadMaxSize.Bytes(); err != nil {
			return pool, reconcile.Terminal(fmt.Errorf("tenant spec.php.uploadMaxSize: %w", err))
		}
	}
	return pool, nil
}

// Observe reports how the domain's master differs from its pool.
func (p *PHP) Observe(ctx context.Context, row store.Resource) ([]host.Difference, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil || !d.PHP {
		return nil, err
	}
	pool, err := Pool(d)
	if err != nil {
		return nil, err
	}
	ds, err := p.FPM.Observe(ctx, pool)
	return ds, versionError(err)
}

// Apply starts or reloads the master, then stops masters of versions no
// domain of the tenant uses any more (a version switch).
func (p *PHP) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (string, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return "", err
	}
	if d.PHP {
		pool, err := Pool(d)
		if err != nil {
			return "", err
		}
		if err := p.FPM.Apply(ctx, pool); err != nil {
			var ce *phpfpm.ConfigError
			if errors.As(err, &ce) {
				return ce.Snapshot, reconcile.Terminal(err)
			}
			return "", versionError(err)
		}
	}
	return "", p.collect(ctx, d.Tenant, "")
}

// Remove stops the master when no other domain of the tenant uses its version.
func (p *PHP) Remove(ctx context.Context, row store.Resource) error {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return err
	}
	return p.collect(ctx, d.Tenant, row.Name)
}

// Version is the PHP version a domain runs ("" resolved to the newest installed).
func (p *PHP) Version(d Desired) string {
	if d.PHPVersion != "" {
		return d.PHPVersion
	}
	vs := p.FPM.Versions()
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// collect removes the tenant's masters whose version no domain (but
// except, which is going) uses.
func (p *PHP) collect(ctx context.Context, tenant, except string) error {
	rows, err := p.Store.List(ctx, v1alpha1.KindDomain, store.ListOptions{Tenant: tenant})
	if err != nil {
		return err
	}
	var used []string
	for _, r := range rows {
		if r.Name == except || r.DeletionRequestedAt != nil {
			continue
		}
		d, err := Resolve(ctx, p.Store, r)
		if err != nil {
			return err
		}
		if d.PHP {
			used = append(used, p.Version(d))
		}
	}
	for _, v := range p.FPM.Versions() {
		if slices.Contains(used, v) {
			continue
		}
		if err := p.FPM.Remove(ctx, tenant, v); err != nil {
			return err
		}
	}
	return nil
}

// versionError makes a missing PHP version a terminal, clearly worded error.
func versionError(err error) error {
	if errors.Is(err, phpfpm.ErrVersionMissing) {
		return reconcile.Terminal(err)
	}
	return err
}
