package wcpd

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
)

// unroutable is an address (TEST-NET-1) no route leads to in the sandbox:
// pebble's HTTP-01 validation of a name mapped to it fails at once.
const unroutable = "192.0.2.1"

// Orders the CA cannot validate fail visibly and do not take away what
// serves (pebble validating for real, PEBBLE_VA_ALWAYS_VALID unset):
//
//   - a new domain whose challenge pebble cannot reach keeps its
//     self-signed placeholder, its status has the CA's problem, and each
//     next order waits for the backoff (acme.retryBase 2 s here, doubling:
//     2 s, 4 s, 8 s, ...; status.tls counts the failures and says when the
//     next order may go), however often the domain is reconciled
//     meanwhile (every 10 s resync);
//   - a domain whose name stops leading to this host after its first
//     certificate keeps serving that certificate while the renewal fails;
//     pebble's certificates live 30 s, so the certificate is within 7 days
//     of its expiry when the renewal fails, and the domain is Stalled
//     (CertificateExpiring); once it has expired, the placeholder serves
//     again and the domain is no longer Stalled (it waits for the CA).
func TestDomainACMEFailureKeepsServingAndBacksOff(t *testing.T) {
	const expiring, unreachable = "expiring.acme.test", "unreachable.acme.test"
	if sandbox.RunWith(t, sandbox.Options{Hosts: map[string]string{expiring: "127.0.0.1", unreachable: unroutable}}) {
		return
	}
	p := pebble.Start(t, pebble.Options{Validity: 30 * time.Second})
	d := startDaemonWithPebbleRetry(t, p, retryBase, retryMax)
	if code, body := d.do("PUT", "/api/v1/tenants/fail", tenant("fail")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	apply := func(name string) {
		t.Helper()
		if code, body := d.do("PUT", "/api/v1/domains/"+name, domainManifest(name, "fail", map[string]any{
			"php": map[string]any{"enabled": false}, "tls": map[string]any{"mode": "acme"}})); code != http.StatusCreated {
			t.Fatalf("apply domain %s: %d %s", name, code, body)
		}
	}
	apply(expiring)
	st := d.waitReady("domains", expiring)
	if st.TLS == nil || !st.TLS.Trusted || st.TLS.NotAfter == nil {
		t.Fatalf("TLS status after the first order: %+v", st.TLS)
	}
	issued, notAfter := time.Now(), *st.TLS.NotAfter
	verified := &tls.Config{ServerName: expiring, RootCAs: p.Roots(t), MinVersion: tls.VersionTLS12}
	first := handshake(t, expiring, verified).PeerCertificates[0].SerialNumber.Text(16)
	// The name now leads nowhere: the renewal's challenge cannot be reached.
	mapHost(t, expiring, unroutable)
	apply(unreachable)

	var (
		attempts                      []time.Time // unreachable's failed orders
		stalled, placeholderBack      bool
		unreachableErr, stallMessage  string
		stalledAfter, placeholderTime time.Duration
	)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) &&
		(len(attempts) < wantOrders || !stalled || !placeholderBack); time.Sleep(200 * time.Millisecond) {
		u := d.domainStatus(unreachable)
		if ts := u.TLS; ts != nil && ts.LastErrorTime != nil && (len(attempts) == 0 || !ts.LastErrorTime.Equal(attempts[len(attempts)-1])) {
			attempts = append(attempts, *ts.LastErrorTime)
			// The backoff doubles with each failed order, and the status
			// says when the next may go (2 s, 4 s, 8 s, ...).
			n, want := len(attempts), backoff(len(attempts))
			if ts.Failures != n || ts.NextRetry == nil || ts.NextRetry.Sub(ts.LastErrorTime.Add(want)).Abs() > time.Millisecond {
				t.Errorf("after failed order %d: failures %d, next retry %v; want %d, %s after %s", n, ts.Failures, ts.NextRetry, n, want, ts.LastErrorTime)
			} else {
				t.Logf("unreachable.acme.test: failed order %d at %s, the next no sooner than %s", n,
					ts.LastErrorTime.Format(time.TimeOnly), ts.NextRetry.Format(time.TimeOnly))
			}
			if len(attempts) == 1 {
				unreachableErr = ts.LastError
				if !strings.Contains(ts.LastError, "acme: obtain "+unreachable+": connection: ") || ts.Trusted {
					t.Errorf("TLS status of the failed order: %+v", ts)
				}
				if c := condition(u, "TLS"); c == nil || c.Status != v1alpha1.ConditionFalse || !strings.Contains(c.Message, ts.LastError) {
					t.Errorf("TLS condition of the failed order: %+v", c)
				}
				expectPlaceholder(t, unreachable)
			}
		}

		e := d.domainStatus(expiring)
		c := condition(e, v1alpha1.ConditionStalled)
		switch {
		case !stalled && c != nil && c.Status == v1alpha1.ConditionTrue:
			stalled, stallMessage, stalledAfter = true, c.Message, time.Since(issued).Round(100*time.Millisecond)
			if c.Reason != "CertificateExpiring" || !strings.Contains(c.Message, "acme: obtain "+expiring+": connection: ") {
				t.Errorf("Stalled condition %+v", c)
			}
			if ts := e.TLS; ts == nil || !ts.Trusted || !strings.Contains(ts.LastError, "connection: ") || ts.NotAfter == nil || !ts.NotAfter.Equal(notAfter) {
				t.Errorf("TLS status of the failed renewal: %+v", ts)
			}
			// The CA's certificate keeps serving, verified, and HTTP still
			// redirects to it.
			if got := handshake(t, expiring, verified).PeerCertificates[0].SerialNumber.Text(16); got != first {
				t.Errorf("serves serial %s while the renewal fails, want the CA's certificate %s", got, first)
			}
			if code, _ := getNoRedirect(t, expiring, "/"); code != http.StatusMovedPermanently {
				t.Errorf("HTTP answers %d while the CA's certificate serves, want 301", code)
			}
		case stalled && !placeholderBack && time.Now().After(notAfter) && c == nil && e.TLS != nil && !e.TLS.Trusted:
			placeholderBack, placeholderTime = true, time.Since(notAfter).Round(100*time.Millisecond)
			expectPlaceholder(t, expiring)
		case stalled && !placeholderBack && time.Now().After(notAfter) && e.TLS != nil && e.TLS.Trusted &&
			e.TLS.NotAfter != nil && e.TLS.NotAfter.After(notAfter):
			// pebble now and then finalizes a new order on the valid
			// authorization of an earlier one (despite
			// PEBBLE_AUTHZREUSE=0), so a renewal can succeed although the
			// name leads nowhere. Then the new certificate must serve.
			placeholderBack, placeholderTime = true, time.Since(notAfter).Round(100*time.Millisecond)
			// Looked at unverified until nginx has reloaded (the expired
			// one would not verify), then verified.
			unverified := &tls.Config{ServerName: expiring, InsecureSkipVerify: true} //nolint:gosec // compared by hand below
			got := handshake(t, expiring, unverified).PeerCertificates[0]
			for wait := time.Now().Add(5 * time.Second); !got.NotAfter.Equal(*e.TLS.NotAfter) && time.Now().Before(wait); {
				time.Sleep(100 * time.Millisecond)
				got = handshake(t, expiring, unverified).PeerCertificates[0]
			}
			if !got.NotAfter.Equal(*e.TLS.NotAfter) {
				t.Errorf("%s: status has a new certificate (until %s), nginx serves one until %s", expiring, e.TLS.NotAfter, got.NotAfter)
			} else {
				handshake(t, expiring, verified)
			}
			t.Logf("%s: the CA issued a new certificate on an earlier authorization after the first expired; it serves", expiring)
		}
	}
	t.Logf("unreachable.acme.test's order failed with: %s", unreachableErr)
	t.Logf("expiring.acme.test: Stalled %s after its first certificate (valid 30 s): %s", stalledAfter, stallMessage)
	t.Logf("expiring.acme.test: the placeholder serves again %s after the certificate expired", placeholderTime)
	switch {
	case len(attempts) < wantOrders:
		t.Errorf("%d failed orders of %s seen in 60 s, want %d (2 s, 4 s, 8 s apart)", len(attempts), unreachable, wantOrders)
	case !stalled:
		t.Errorf("%s never Stalled; status: %+v", expiring, d.domainStatus(expiring))
	case !placeholderBack:
		t.Errorf("%s: no placeholder after its certificate expired; status: %+v", expiring, d.domainStatus(expiring))
	}
	// Each order waited at least its backoff after the one before, and the
	// gaps grow with it.
	for i := 1; i < len(attempts); i++ {
		gap, want := attempts[i].Sub(attempts[i-1]), backoff(i)
		t.Logf("unreachable.acme.test: order %d at %s, %s after order %d (backoff %s)", i+1,
			attempts[i].Format(time.TimeOnly), gap.Round(10*time.Millisecond), i, want)
		if gap < want {
			t.Errorf("order %d came %s after order %d, before its backoff of %s", i+1, gap, i, want)
		}
		if prev := attempts[i-1]; i >= 2 && want > backoff(i-1) && gap <= prev.Sub(attempts[i-2]) {
			t.Errorf("order %d came %s after order %d, no later than the gap before (%s)", i+1, gap, i, prev.Sub(attempts[i-2]))
		}
	}
	if len(attempts) >= 2 {
		// The domain was reconciled meanwhile (resyncs), and each time
		// waited instead of ordering.
		var evs []api.EventItem
		d.getJSON("/api/v1/domains/"+unreachable+"/events", &evs)
		waited := 0
		for _, e := range evs {
			if e.Reason == "StepFailed" && strings.Contains(e.Message, "acme apply: waiting ") && strings.Contains(e.Message, "(next order at ") &&
				e.FirstSeen.After(attempts[0]) && e.LastSeen.Before(attempts[len(attempts)-1]) {
				waited += e.Count
			}
		}
		t.Logf("unreachable.acme.test: %d reconciles between its orders waited for the backoff", waited)
		if waited == 0 {
			t.Errorf("no reconcile between the orders waited; events: %+v", evs)
		}
	}
}

// The failure test's backoff (acme.retryBase, acme.retryMax), and how many
// orders of the unreachable domain it watches: three gaps, 2 s, 4 s, 8 s.
const (
	retryBase  = 2 * time.Second
	retryMax   = 30 * time.Second
	wantOrders = 4
)

// backoff is the wait after n failed orders in a row.
func backoff(n int) time.Duration { return min(retryBase<<(n-1), retryMax) }

// startDaemonWithPebbleRetry is startDaemonWithPebble with the failed
// orders' backoff set.
func startDaemonWithPebbleRetry(t *testing.T, p *pebble.Pebble, base, maxWait time.Duration) *daemonUnderTest {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "pebble-https-ca.pem")
	if err := os.WriteFile(bundle, p.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "acme:\n  directory: \"\"\n",
			fmt.Sprintf("acme:\n  directory: %s\n  email: admin@acme.test\n  caBundle: %s\n  retryBase: %s\n  retryMax: %s\n",
				pebble.DirectoryURL, bundle, base, maxWait), 1)
	})
}

// expectPlaceholder checks nginx serves name's self-signed placeholder.
func expectPlaceholder(t *testing.T, name string) {
	t.Helper()
	//nolint:gosec // the placeholder is self-signed
	leaf := handshake(t, name, &tls.Config{ServerName: name, InsecureSkipVerify: true}).PeerCertificates[0]
	if leaf.Issuer.String() != leaf.Subject.String() || !slices.Contains(leaf.DNSNames, name) {
		t.Errorf("%s serves %v issued by %s, want its self-signed placeholder", name, leaf.DNSNames, leaf.Issuer)
	}
}

// mapHost points name at ip in the sandbox's /etc/hosts.
func mapHost(t *testing.T, name, ip string) {
	t.Helper()
	b, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { f := strings.Fields(l); return len(f) > 1 && slices.Contains(f[1:], name) })
	lines = append(lines, ip+" "+name)
	tmp := filepath.Join("/etc", ".hosts.wcp360-test")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil { //nolint:gosec // world-readable like the host's
		t.Fatal(err)
	}
	if err := os.Rename(tmp, "/etc/hosts"); err != nil {
		t.Fatal(err)
	}
}
