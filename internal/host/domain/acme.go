package domain

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/controllers"
	"github.com/wcp360/wcp360/internal/conditions"
	"github.com/wcp360/wcp360/internal/host"
	"github.com/wcp360/wcp360/internal/host/acme"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
)

// Issuer is what the ACME part needs from an ACME client
// (internal/host/acme's Client).
type Issuer interface {
	Obtain(ctx context.Context, names []string) (*acme.Certificate, error)
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*acme.Window, error)
}

// DNSIssuer is an Issuer that may prove control over DNS-01 too
// (internal/host/acme's Client: when acme.dns configures a provider).
type DNSIssuer interface {
	Issuer
	// DNS01 reports whether a DNS provider is configured.
	DNS01() bool
	// ObtainWith orders with the given challenge.
	ObtainWith(ctx context.Context, names []string, ch acme.Challenge) (*acme.Certificate, error)
}

// ACME is the part that has the CA issue and renew a domain's certificate
// in mode acme, over HTTP-01 through the site the Vhost part serves (it
// comes after it), or over DNS-01 through the configured DNS provider for
// wildcard names and domains with spec.tls.challenge dns-01 (without a
// provider those keep the placeholder, ChallengeUnsupported). Until the
// first certificate lands the TLS part's self-signed placeholder serves; the CA's chain and key then land in the
// TLS part's files, atomically, 0600, and the site is applied again (its
// file names the certificate, so nginx reloads, in the batch of the
// moment; HTTP then redirects to HTTPS). The certificate is renewed at
// acme.RenewAt (two thirds of its lifetime with jitter, sooner when the
// CA's renewal information says so): the controller requeues the domain
// then (controllers.Scheduler). A failed order keeps what serves, puts the
// CA's problem in the TLS condition and status, and waits (RetryBase
// doubling to RetryMax, or the CA's Retry-After) before the next; that
// backoff is kept in status.tls (failures, nextRetry), so a restarted wcpd
// still waits.
// Issued, Renewed and Failed are events of their own
// (controllers.EventNamer). It shares the TLS condition with the TLS part.
type ACME struct {
	Store Store
	TLS   *TLS
	Vhost *Vhost
	// Client orders certificates; nil: ACME is off (acme.directory is
	// empty) and acme domains keep the placeholder.
	Client Issuer
	Clock  func() time.Time
	// RetryBase is the wait after a first failed order, doubled after
	// each further one up to RetryMax (acme.retryBase, acme.retryMax);
	// zero: 1 min and 1 h.
	RetryBase, RetryMax time.Duration

	mu       sync.Mutex
	failures map[string]failure  // by domain; count 0: none
	ari      map[string]ariEntry // by certificate fingerprint
}

// failure is a domain's last failed order.
type failure struct {
	err   error
	at    time.Time
	count int
	next  time.Time // no order before
}

type ariEntry struct {
	w     *acme.Window
	until time.Time
}

// Backoff between failed orders (when ACME's RetryBase and RetryMax are
// zero), and how long before expiry a failing renewal stalls the domain.
const (
	acmeBackoffBase = time.Minute
	acmeBackoffMax  = time.Hour
	expiryStall     = 7 * 24 * time.Hour
)

// Name names the part in events.
func (p *ACME) Name() string { return "acme" }

// ConditionType is the part's condition: the TLS part's.
func (p *ACME) ConditionType() string { return "TLS" }

// Event reasons of the part.
const (
	ReasonIssued  = "Issued"
	ReasonRenewed = "Renewed"
	ReasonFailed  = "Failed"
)

// active reports whether the part orders certificates for d.
func (p *ACME) active(d Desired) bool {
	return p.Client != nil && d.Spec.TLS.Mode == v1alpha1.TLSACME && (!needsDNS01(d) || p.dns01() != nil)
}

// needsDNS01 reports whether d's certificate must be ordered over DNS-01:
// it asks for it, or a name is a wildcard.
func needsDNS01(d Desired) bool {
	return d.Spec.TLS.Challenge == v1alpha1.ChallengeDNS01 || slices.ContainsFunc(d.ServerNames, acme.IsWildcard)
}

// dns01 is the client when it can prove control over DNS-01, else nil.
func (p *ACME) dns01() DNSIssuer {
	if c, ok := p.Client.(DNSIssuer); ok && c.DNS01() {
		return c
	}
	return nil
}

// Observe reports the order that is due: a first certificate, one for
// changed names, or a renewal. Each is Due work, not drift.
func (p *ACME) Observe(ctx context.Context, row store.Resource) ([]host.Difference, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil || !p.active(d) {
		return nil, err
	}
	var leaf *x509.Certificate
	renewAt := time.Time{}
	if c, err := p.TLS.current(d.Domain); err == nil && c.issued() {
		leaf = c.leaf
		renewAt = p.renewAt(ctx, c)
	}
	if diff := due(p.Clock(), leaf, d.ServerNames, renewAt); diff != nil {
		return []host.Difference{*diff}, nil
	}
	return nil, nil
}

// due is the pure decision: what order, if any, is due at now for the
// names, given the CA's certificate in place (nil: the placeholder serves).
func due(now time.Time, leaf *x509.Certificate, names []string, renewAt time.Time) *host.Difference {
	switch {
	case leaf == nil:
		return &host.Difference{Field: "certificate", Want: "issued by the ACME CA", Have: "the self-signed placeholder", Due: true}
	case !coversAll(leaf, names):
		return &host.Difference{Field: "certificate names", Want: strings.Join(names, ", "), Have: strings.Join(leaf.DNSNames, ", "), Due: true}
	case !now.Before(renewAt):
		return &host.Difference{Field: "certificate renewal", Want: "renewed from " + renewAt.UTC().Format(time.RFC3339),
			Have: "valid until " + leaf.NotAfter.UTC().Format(time.RFC3339), Due: true}
	}
	return nil
}

// Apply orders the certificate, lands it and has nginx serve it.
func (p *ACME) Apply(ctx context.Context, row store.Resource, _ []host.Difference) (string, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil || !p.active(d) {
		return "", err
	}
	now := p.Clock()
	if f, ok := p.failure(d.Domain, row); ok && now.Before(f.next) {
		return "", reconcile.Waiting(&retryLater{err: f.err, next: f.next}, f.next.Sub(now))
	}
	var cert *acme.Certificate
	if d.Spec.TLS.Challenge == v1alpha1.ChallengeDNS01 {
		cert, err = p.dns01().ObtainWith(ctx, d.ServerNames, acme.ChallengeDNS01)
	} else {
		cert, err = p.Client.Obtain(ctx, d.ServerNames) // DNS-01 for wildcards
	}
	if err != nil {
		return "", reconcile.Waiting(err, p.failed(d.Domain, err, now))
	}
	if err := acme.WriteFiles(p.TLS.certPath(d.Domain), p.TLS.keyPath(d.Domain), cert); err != nil {
		return "", err
	}
	p.mu.Lock()
	p.failures[d.Domain] = failure{} // none, whatever the status said
	p.mu.Unlock()
	return "", nginxError(p.Vhost.Nginx.Apply(ctx, p.Vhost.Site(d)))
}

// failure is the domain's last failed order: remembered, or after a
// restart read back from the status row had when the order failed.
func (p *ACME) failure(domain string, row store.Resource) (failure, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, known := p.failures[domain]
	if !known {
		// The first look since wcpd started: the status remembers.
		f, _ = storedFailure(row)
		if p.failures == nil {
			p.failures = map[string]failure{}
		}
		p.failures[domain] = f
	}
	return f, f.count > 0
}

// storedFailure is the backoff status.tls keeps (a wcpd before this one
// failed the order).
func storedFailure(row store.Resource) (failure, bool) {
	var st v1alpha1.Status
	if len(row.Status) == 0 || json.Unmarshal(row.Status, &st) != nil {
		return failure{}, false
	}
	ts := st.TLS
	if ts == nil || ts.NextRetry == nil || ts.LastError == "" || ts.Failures < 1 {
		return failure{}, false
	}
	f := failure{err: errors.New(ts.LastError), count: ts.Failures, next: *ts.NextRetry}
	if ts.LastErrorTime != nil {
		f.at = *ts.LastErrorTime
	}
	return f, true
}

// retryLater is an order not sent: the last one failed with err, the
// next may go at next.
type retryLater struct {
	err  error
	next time.Time
}

func (e *retryLater) Error() string {
	return fmt.Sprintf("%v (next order at %s)", e.err, e.next.UTC().Format(time.RFC3339))
}

func (e *retryLater) Unwrap() error { return e.err }

// failed records a failed order and returns how long to wait before the
// next: the CA's Retry-After, else retryWait.
func (p *ACME) failed(domain string, err error, now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures == nil {
		p.failures = map[string]failure{}
	}
	f := p.failures[domain]
	f.count++
	wait := retryWait(p.RetryBase, p.RetryMax, f.count)
	var ae *acme.Error
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		wait = ae.RetryAfter
	}
	f.err, f.at, f.next = err, now, now.Add(wait)
	p.failures[domain] = f
	return wait
}

// retryWait is the backoff after n (≥ 1) failed orders in a row: base
// doubled n-1 times, at most maxWait; zero base or maxWait is the
// package's default. The shift stops at 20 doublings, which no base up to
// an hour overflows.
func retryWait(base, maxWait time.Duration, n int) time.Duration {
	if base <= 0 {
		base = acmeBackoffBase
	}
	if maxWait <= 0 {
		maxWait = acmeBackoffMax
	}
	return min(base<<min(max(n-1, 0), 20), maxWait)
}

// Remove forgets the domain (the TLS part removes the files).
func (p *ACME) Remove(_ context.Context, row store.Resource) error {
	p.mu.Lock()
	delete(p.failures, row.Name)
	p.mu.Unlock()
	return nil
}

// AppliedEvent is Issued (a first certificate, or one for new names) or
// Renewed, with the certificate's issuer, names and expiry.
func (p *ACME) AppliedEvent(_ context.Context, row store.Resource, diffs []host.Difference) (controllers.StepEvent, bool) {
	c, err := p.TLS.current(row.Name)
	if err != nil || !c.issued() {
		return controllers.StepEvent{}, false
	}
	reason := ReasonIssued
	if slices.ContainsFunc(diffs, func(d host.Difference) bool { return d.Field == "certificate renewal" }) {
		reason = ReasonRenewed
	}
	return controllers.StepEvent{Reason: reason, Message: fmt.Sprintf("%s by %s for %s, valid until %s", strings.ToLower(reason),
		c.leaf.Issuer.String(), strings.Join(c.leaf.DNSNames, ", "), c.leaf.NotAfter.UTC().Format(time.RFC3339))}, true
}

// FailedEvent is Failed for an order the CA refused or could not take,
// with its problem; a wait for the backoff, or a failure of the host, is
// the controller's StepFailed.
func (p *ACME) FailedEvent(err error) (controllers.StepEvent, bool) {
	var rl *retryLater
	var ae *acme.Error
	if errors.As(err, &rl) || !errors.As(err, &ae) {
		return controllers.StepEvent{}, false
	}
	msg := "the order failed: " + ae.Error()
	var we *reconcile.WaitingError
	if errors.As(err, &we) {
		msg += fmt.Sprintf("; next order in %s", we.After.Round(time.Second))
	}
	return controllers.StepEvent{Reason: ReasonFailed, Message: msg}, true
}

// NextRun is when the certificate in place is to be renewed (the
// controller requeues the domain then).
func (p *ACME) NextRun(ctx context.Context, row store.Resource) (time.Time, error) {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil || !p.active(d) {
		return time.Time{}, err
	}
	c, err := p.TLS.current(d.Domain)
	if err != nil || !c.issued() {
		return p.Clock(), nil //nolint:nilerr // no certificate of the CA: an order is due now
	}
	return p.renewAt(ctx, c), nil
}

// renewAt is the renewal time of the CA's certificate c: jitter from its
// serial (stable across restarts), and the CA's window when it has one
// (asked at most once per its Retry-After, 6 h by default).
func (p *ACME) renewAt(ctx context.Context, c onDisk) time.Time {
	h := fnv.New32a()
	h.Write(c.leaf.SerialNumber.Bytes())
	jitter := float64(h.Sum32()) / float64(^uint32(0))
	return acme.RenewAt(c.leaf.NotBefore, c.leaf.NotAfter, p.window(ctx, c), jitter)
}

func (p *ACME) window(ctx context.Context, c onDisk) *acme.Window {
	now := p.Clock()
	p.mu.Lock()
	e, ok := p.ari[c.fingerprint]
	p.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.w
	}
	w, err := p.Client.RenewalInfo(ctx, c.leaf)
	e = ariEntry{w: w, until: now.Add(6 * time.Hour)}
	switch {
	case errors.Is(err, acme.ErrNoARI):
		e = ariEntry{until: now.Add(24 * time.Hour)}
	case err != nil:
		e = ariEntry{until: now.Add(time.Hour)}
	case w.RetryAfter > 0:
		e.until = now.Add(w.RetryAfter)
	}
	p.mu.Lock()
	if p.ari == nil {
		p.ari = map[string]ariEntry{}
	}
	p.ari[c.fingerprint] = e
	p.mu.Unlock()
	return e.w
}

// ReportStatus describes the certificate in place and rewrites the TLS
// condition the controller set to say what serves.
func (p *ACME) ReportStatus(ctx context.Context, row store.Resource, st *v1alpha1.Status) error {
	d, err := Resolve(ctx, p.Store, row)
	if err != nil {
		return err
	}
	st.TLS = p.status(ctx, d)
	if st.TLS == nil {
		return nil
	}
	c := v1alpha1.Condition{Type: "TLS", Status: v1alpha1.ConditionTrue, ObservedGeneration: row.Generation}
	switch {
	case d.Spec.TLS.Mode != v1alpha1.TLSACME:
		c.Reason, c.Message = "Converged", fmt.Sprintf("serving the %s certificate", d.Spec.TLS.Mode)
	case p.Client == nil:
		// Converged as far as this host's configuration goes.
		c.Reason = "ACMEDisabled"
		c.Message = "acme.directory is empty (ACME is off): serving the self-signed placeholder"
	case needsDNS01(d) && p.dns01() == nil:
		c.Status, c.Reason = v1alpha1.ConditionFalse, "ChallengeUnsupported"
		c.Message = "the certificate needs DNS-01 (a wildcard name, or spec.tls.challenge dns-01) and no DNS provider is configured: " +
			"configure acme.dns in wcpd's configuration; serving the self-signed placeholder"
	case st.TLS.Trusted:
		c.Reason = "Issued"
		c.Message = fmt.Sprintf("issued by %s for %s, valid until %s; renewal from %s", st.TLS.Issuer,
			strings.Join(st.TLS.Names, ", "), st.TLS.NotAfter.Format(time.RFC3339), st.TLS.RenewAt.Format(time.RFC3339))
	default:
		c.Status, c.Reason, c.Message = v1alpha1.ConditionFalse, "Pending", "serving the self-signed placeholder until the CA issues the certificate"
	}
	st.Conditions = conditions.Set(st.Conditions, c, p.Clock())
	return nil
}

// ReportFailure adds the failed order to the status; a CA's certificate
// that expires within 7 days while orders fail stalls the domain.
func (p *ACME) ReportFailure(ctx context.Context, row store.Resource, st *v1alpha1.Status, err error) {
	d, rerr := Resolve(ctx, p.Store, row)
	if rerr != nil {
		return
	}
	st.TLS = p.status(ctx, d)
	if st.TLS == nil {
		return
	}
	now := p.Clock().UTC()
	var rl *retryLater
	var we *reconcile.WaitingError
	switch {
	case errors.As(err, &rl):
		err = rl.err
	case errors.As(err, &we):
		err = we.Err
	}
	st.TLS.LastError, st.TLS.LastErrorTime = err.Error(), &now
	if f, ok := p.failure(d.Domain, row); ok {
		at, next := f.at.UTC(), f.next.UTC()
		st.TLS.LastErrorTime, st.TLS.Failures, st.TLS.NextRetry = &at, f.count, &next
	}
	if st.TLS.Trusted && st.TLS.NotAfter != nil && st.TLS.NotAfter.Sub(now) < expiryStall {
		st.Conditions = conditions.MarkStalled(st.Conditions, row.Generation, "CertificateExpiring",
			fmt.Sprintf("the certificate expires at %s and its renewal fails: %v", st.TLS.NotAfter.Format(time.RFC3339), err), now)
	}
}

// status describes the certificate in place (nil for mode none).
func (p *ACME) status(ctx context.Context, d Desired) *v1alpha1.TLSStatus {
	if d.Spec.TLS.Mode == v1alpha1.TLSNone {
		return nil
	}
	ts := &v1alpha1.TLSStatus{Mode: d.Spec.TLS.Mode}
	c, err := p.TLS.current(d.Domain)
	if err != nil {
		return ts
	}
	nb, na := c.leaf.NotBefore.UTC(), c.leaf.NotAfter.UTC()
	ts.Issuer, ts.Names, ts.NotBefore, ts.NotAfter = c.leaf.Issuer.String(), c.leaf.DNSNames, &nb, &na
	ts.Trusted = d.Spec.TLS.Mode == v1alpha1.TLSProvided || d.Spec.TLS.Mode == v1alpha1.TLSACME && c.issued()
	if p.active(d) && c.issued() {
		at := p.renewAt(ctx, c).UTC()
		ts.RenewAt = &at
	}
	return ts
}
