package domain

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/nginx"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// Vhost is the part that serves the domain: its nginx site, with PHP to the
// tenant's master and the certificate of the TLS part. Apply returns once
// nginx answers with the new configuration (Ready means serving).
type Vhost struct {
	Store Store
	Nginx *nginx.Manager
	TLS   *TLS
	PHP   *PHP
	Clock func() time.Time
}

// Name names the part in events.
func (p *Vhost) Name() string { return "vhost" }

// ConditionType is the part's condition.
func (p *Vhost) ConditionType() string { return "Vhost" }

// Site is the nginx site of a domain.
func (p *Vhost) Site(d Desired) nginx.Site {
	s := nginx.Site{
		Domain: d.Domain, Tenant: d.Tenant, ServerNames: d.ServerNames,
		DocumentRoot: d.DocumentRootPath(), LogDir: d.LogDir(), HTTP3: d.Spec.HTTP3,
	}
	switch d.Spec.WWWRedirect {
	case v1alpha1.WWWToApex, v1alpha1.WWWFromApex:
		s.WWWRedirect = string(d.Spec.WWWRedirect)
	case v1alpha1.WWWNone:
	}
	for _, r := range d.Spec.Redirects {
		code := r.Code
		if code == 0 {
			code = 301
		}
		s.Redirects = append(s.Redirects, nginx.Redirect{From: r.From, To: r.To, Code: code})
	}
	if d.PHP {
		s.PHPSocket = p.PHP.FPM.Socket(d.Tenant, p.PHP.Version(d))
	}
	if f := p.TLS.FilesFor(d); f != nil {
		httpsRedirect := d.Spec.HTTPSRedirect == nil || *d.Spec.HTTPSRedirect
		s.TLS = &nginx.TLS{CertFile: f.CertFile, KeyFile: f.KeyFile, Trusted: f.Trusted && httpsRedirect, Fingerprint: f.Fingerprint}
	}
	return s
}

// Observe compares the site file with the rendered site. The site names
// the certificate in place (its fingerprint): when the TLS part, which
// comes first, is about to write another, the site changes after it, so
// the part has work too, and its Apply then renders the new fingerprint
// and nginx reloads to serve the new certificate.
func (p *Vhost) Observe(ctx context.Context, row store.Resource) ([]host.Difference, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return nil, err
	}
	ds, err := p.Nginx.Observe(ctx, p.Site(d))
	if err != nil || len(ds) > 0 {
		return ds, err
	}
	tds, err := p.TLS.Observe(ctx, row)
	if err != nil || len(tds) == 0 {
		return nil, err
	}
	return []host.Difference{{Field: "served certificate", Want: "the certificate the TLS part writes",
		Have: "the one in place", Due: allDue(tds)}}, nil
}

// allDue reports whether every difference is work that fell due.
func allDue(ds []host.Difference) bool {
	for _, d := range ds {
		if !d.Due {
			return false
		}
	}
	return true
}

// Apply writes the site and waits until nginx serves it. A site nginx -t
// refuses (a broken admin include) is terminal: the domain is Stalled with
// nginx's message, and the previous configuration keeps serving.
func (p *Vhost) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (string, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return "", err
	}
	return "", nginxError(p.Nginx.Apply(ctx, p.Site(d)))
}

// nginxError sorts the engine's errors into what the controller does next:
// Stalled for what only a spec or an admin can fix, a short wait for a home
// not laid out yet, a retry with backoff for the rest.
func nginxError(err error) error {
	var ce *nginx.ConfigError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce), errors.Is(err, nginx.ErrInvalidSite), errors.Is(err, nginx.ErrUnsafeLogDir):
		return reconcile.Terminal(err)
	case errors.Is(err, nginx.ErrNoLogDir):
		return reconcile.Waiting(err, 2*time.Second)
	}
	return err
}

// Remove removes the site and reloads nginx.
func (p *Vhost) Remove(ctx context.Context, row store.Resource) error {
	return nginxError(p.Nginx.Remove(ctx, row.Name))
}

// ReportStatus says whether HTTP/3 is served as asked.
func (p *Vhost) ReportStatus(ctx context.Context, row store.Resource, st *v1alpha1.Status) error {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return err
	}
	if !d.Spec.HTTP3 {
		st.Conditions = conditions.Remove(st.Conditions, "HTTP3")
		return nil
	}
	caps, err := p.Nginx.Capabilities(ctx)
	if err != nil {
		return err
	}
	c := v1alpha1.Condition{Type: "HTTP3", Status: v1alpha1.ConditionTrue, Reason: "Served",
		Message: "HTTP/3 (QUIC) on UDP 443, advertised with Alt-Svc", ObservedGeneration: row.Generation}
	switch {
	case !caps.HTTP3:
		c.Status, c.Reason = v1alpha1.ConditionFalse, "Unsupported"
		c.Message = strings.Join(caps.Unsupported(p.Site(d)), "; ")
	case p.TLS.FilesFor(d) == nil:
		c.Status, c.Reason = v1alpha1.ConditionFalse, "NoTLS"
		c.Message = "HTTP/3 needs TLS; spec.tls.mode is none"
	}
	st.Conditions = conditions.Set(st.Conditions, c, p.Clock())
	return nil
}
