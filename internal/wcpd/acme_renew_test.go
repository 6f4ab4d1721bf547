package wcpd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
)

// A certificate of pebble's that lives 45 s is renewed at two thirds of
// its lifetime without anyone asking: the status's notAfter moves, nginx
// serves the new certificate (another serial) after a reload of the same
// master, and clients sending HTTPS requests all along, each on a new
// connection or on one kept alive, see none fail.
func TestDomainACMERenewal(t *testing.T) {
	const name = "renew.acme.test"
	if sandbox.RunWith(t, sandbox.Options{Hosts: map[string]string{name: "127.0.0.1"}}) {
		return
	}
	p := pebble.Start(t, pebble.Options{Validity: 45 * time.Second})
	d := startDaemonWithPebble(t, p)
	if code, body := d.do("PUT", "/api/v1/tenants/renew", tenant("renew")); code != http.StatusCreated {
		t.Fatalf("apply tenant: %d %s", code, body)
	}
	if code, body := d.do("PUT", "/api/v1/domains/"+name, domainManifest(name, "renew", map[string]any{
		"php": map[string]any{"enabled": false}, "tls": map[string]any{"mode": "acme"}})); code != http.StatusCreated {
		t.Fatalf("apply domain: %d %s", code, body)
	}
	st := d.waitReady("domains", name)
	if st.TLS == nil || !st.TLS.Trusted || st.TLS.NotAfter == nil || st.TLS.RenewAt == nil {
		t.Fatalf("TLS status after the first order: %+v", st.TLS)
	}
	issued := time.Now()
	d.writePage("renew", name, "renewed?\n")

	master := nginxMaster(t)
	counters := []string{"wcp360_nginx_reloads_total", "wcp360_nginx_starts_total"}
	before := d.metrics(counters...)
	h := startHammer(t, name, "renewed?\n", &tls.Config{ServerName: name, RootCAs: p.Roots(t), MinVersion: tls.VersionTLS12})

	// Each certificate in the status, as it changes: at least one renewal,
	// two when the test's time allows (the first falls due some 26-30 s
	// after the first order, the second some 30 s later).
	type cert struct {
		notAfter, renewAt time.Time
		serial            string
		seen              time.Duration
	}
	served := func() *x509.Certificate {
		return handshake(t, name, &tls.Config{ServerName: name, RootCAs: p.Roots(t), MinVersion: tls.VersionTLS12}).PeerCertificates[0]
	}
	leaf := served()
	certs := []cert{{notAfter: *st.TLS.NotAfter, renewAt: *st.TLS.RenewAt, serial: leaf.SerialNumber.Text(16)}}
	for deadline := issued.Add(75 * time.Second); len(certs) < 3 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ts := d.domainStatus(name).TLS
		if ts == nil || ts.NotAfter == nil || ts.NotAfter.Equal(certs[len(certs)-1].notAfter) {
			continue
		}
		// Status is written after nginx serves the new certificate.
		leaf := served()
		c := cert{notAfter: *ts.NotAfter, serial: leaf.SerialNumber.Text(16), seen: time.Since(issued).Round(time.Second)}
		if ts.RenewAt != nil {
			c.renewAt = *ts.RenewAt
		}
		prev := certs[len(certs)-1]
		switch {
		case !leaf.NotAfter.Equal(c.notAfter):
			t.Errorf("status says notAfter %s, nginx serves a certificate valid until %s", c.notAfter, leaf.NotAfter)
		case c.serial == prev.serial:
			t.Errorf("notAfter moved to %s, but nginx serves the same serial %s", c.notAfter, c.serial)
		case !c.notAfter.After(prev.notAfter):
			t.Errorf("notAfter went from %s to %s", prev.notAfter, c.notAfter)
		case time.Now().Before(prev.renewAt):
			t.Errorf("renewed before its renewal time %s", prev.renewAt)
		}
		if !ts.Trusted || ts.LastError != "" {
			t.Errorf("TLS status after a renewal: %+v", ts)
		}
		certs = append(certs, c)
		t.Logf("renewed %s after the first order: serial %s, valid until %s, served %s after the renewal fell due",
			c.seen, c.serial, c.notAfter.Format(time.TimeOnly), time.Since(prev.renewAt).Round(100*time.Millisecond))
	}
	res := h.stop()
	after := d.metrics(counters...)
	t.Logf("%d renewals in %s; HTTPS requests: %d on new connections, %d on kept-alive ones, %d failed", len(certs)-1,
		time.Since(issued).Round(time.Second), res.fresh, res.kept, res.failed)
	t.Logf("serials as they changed, on new connections: %v; on kept-alive ones: %v", res.serials[0], res.serials[1])
	if len(certs) < 2 {
		t.Fatalf("no renewal within 75 s of the first order; status: %+v\nlogs:\n%s", d.domainStatus(name).TLS, d.logs)
	}
	if res.failed > 0 {
		t.Errorf("%d of %d HTTPS requests failed; first errors: %v", res.failed, res.fresh+res.kept+res.failed, res.errs)
	}
	for _, c := range certs {
		if !res.sawSerial(c.serial) && c.serial != certs[len(certs)-1].serial {
			t.Errorf("the clients never saw serial %s", c.serial)
		}
	}
	if res.fresh == 0 || res.kept == 0 {
		t.Errorf("clients made %d and %d requests", res.fresh, res.kept)
	}
	if got := nginxMaster(t); got != master {
		t.Errorf("nginx master %d → %d: restarted, not reloaded", master, got)
	}
	if after[1] != before[1] || after[0] < before[0]+float64(len(certs)-1) {
		t.Errorf("nginx starts %v → %v, reloads %v → %v; want no start and a reload per renewal", before[1], after[1], before[0], after[0])
	}
}

// startDaemonWithPebble starts a daemon whose acme section points at p.
func startDaemonWithPebble(t *testing.T, p *pebble.Pebble) *daemonUnderTest {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "pebble-https-ca.pem")
	if err := os.WriteFile(bundle, p.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return startDaemonWith(t, func(cfg string) string {
		return strings.Replace(cfg, "acme:\n  directory: \"\"\n",
			"acme:\n  directory: "+pebble.DirectoryURL+"\n  email: admin@acme.test\n  caBundle: "+bundle+"\n", 1)
	})
}

// domainStatus is a domain's stored status.
func (d *daemonUnderTest) domainStatus(name string) v1alpha1.Status {
	d.t.Helper()
	code, b := d.do("GET", "/api/v1/domains/"+name, nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET domain %s: %d %s", name, code, b)
	}
	var obj struct {
		Status v1alpha1.Status `json:"status"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		d.t.Fatal(err)
	}
	return obj.Status
}

// metrics reads samples without labels from GET /metrics.
func (d *daemonUnderTest) metrics(names ...string) []float64 {
	d.t.Helper()
	out := make([]float64, len(names))
	for i, n := range names {
		out[i] = float64(d.metric(n))
	}
	return out
}

// writePage writes the domain's index.html as its tenant would.
func (d *daemonUnderTest) writePage(tenant, domain, body string) {
	d.t.Helper()
	acct := d.waitReady("tenants", tenant).Account
	writeAs(d.t, filepath.Join("/srv/www", tenant, "domains", domain, "public", "index.html"), body, acct.UID, acct.GID)
}

// hammer sends HTTPS requests to the sandbox's nginx in a loop, from two
// clients: one opens a new connection (a new handshake) for each request,
// the other keeps its connection alive across reloads.
type hammer struct {
	stopped chan struct{}
	wg      sync.WaitGroup
	fresh   atomic.Int64
	kept    atomic.Int64
	failed  atomic.Int64
	mu      sync.Mutex
	errs    []string
	serials [2][]string // as they changed, on new connections [0] and kept ones [1]
}

type hammerResult struct {
	fresh, kept, failed int64
	errs                []string
	serials             [2][]string
}

func (r hammerResult) sawSerial(s string) bool {
	return slices.Contains(r.serials[0], s) || slices.Contains(r.serials[1], s)
}

func startHammer(t *testing.T, name, want string, cfg *tls.Config) *hammer {
	t.Helper()
	h := &hammer{stopped: make(chan struct{})}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:443")
	}
	for _, keepAlive := range []bool{false, true} {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: dial, TLSClientConfig: cfg.Clone(), DisableKeepAlives: !keepAlive}}
		count := &h.fresh
		if keepAlive {
			count = &h.kept
		}
		h.wg.Go(func() {
			defer c.CloseIdleConnections()
			for {
				select {
				case <-h.stopped:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if err := h.get(c, keepAlive, "https://"+name+"/", want); err != nil {
					h.failed.Add(1)
					h.mu.Lock()
					if len(h.errs) < 5 {
						h.errs = append(h.errs, fmt.Sprintf("%s: %v", time.Now().Format(time.TimeOnly), err))
					}
					h.mu.Unlock()
					continue
				}
				count.Add(1)
			}
		})
	}
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *hammer) get(c *http.Client, keepAlive bool, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(b) != want {
		return fmt.Errorf("%s: %q", resp.Status, b)
	}
	serial := resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
	i := 0
	if keepAlive {
		i = 1
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ss := h.serials[i]; len(ss) == 0 || ss[len(ss)-1] != serial {
		h.serials[i] = append(ss, serial)
	}
	return nil
}

// stop ends the requests and returns what they saw.
func (h *hammer) stop() hammerResult {
	select {
	case <-h.stopped:
	default:
		close(h.stopped)
	}
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return hammerResult{fresh: h.fresh.Load(), kept: h.kept.Load(), failed: h.failed.Load(),
		errs: slices.Clone(h.errs), serials: [2][]string{slices.Clone(h.serials[0]), slices.Clone(h.serials[1])}}
}
