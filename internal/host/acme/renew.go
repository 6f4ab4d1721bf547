package acme

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/go-acme/lego/v5/acme/api"
)

// Window is a renewal window the CA suggests (ARI, RFC 9773).
type Window struct {
	Start, End time.Time
	// ExplanationURL says why, when the CA moved the window (a revocation).
	ExplanationURL string
	// RetryAfter is when to ask the CA again.
	RetryAfter time.Duration
}

// ErrNoARI means the CA offers no renewal information.
var ErrNoARI = errors.New("acme: the CA offers no renewal information (ARI)")

// RenewalInfo asks the CA when to renew leaf. It returns ErrNoARI when the
// CA has no renewalInfo endpoint.
func (c *Client) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (*Window, error) {
	lc, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	info, err := lc.auto.Certificate.GetRenewalInfo(ctx, leaf)
	if errors.Is(err, api.ErrNoARI) {
		return nil, ErrNoARI
	}
	if err != nil {
		return nil, wrap("renewal info", leaf.DNSNames, err)
	}
	return &Window{Start: info.SuggestedWindow.Start, End: info.SuggestedWindow.End,
		ExplanationURL: info.ExplanationURL, RetryAfter: info.RetryAfter}, nil
}

// RenewAt is when to renew a certificate valid from notBefore to notAfter:
// at two thirds of its lifetime, brought forward by jitter (in [0, 1], clamped) times
// a tenth of the lifetime, so that certificates issued together do not all
// renew at once; or at a point of the CA's window (ari, may be nil) chosen
// by the same jitter, when that comes first. A window whose end is not
// after its start is ignored (RFC 9773 section 4.2). The time is never
// after notAfter.
func RenewAt(notBefore, notAfter time.Time, ari *Window, jitter float64) time.Time {
	jitter = min(max(jitter, 0), 1)
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return notBefore
	}
	at := notBefore.Add(life*2/3 - time.Duration(jitter*float64(life/10)))
	if ari != nil && ari.End.After(ari.Start) {
		if w := ari.Start.Add(time.Duration(jitter * float64(ari.End.Sub(ari.Start)))); w.Before(at) {
			at = w
		}
	}
	if at.After(notAfter) {
		at = notAfter
	}
	return at
}
