package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/pebble"
)

// BenchmarkApplyToHTTPS measures the time from the API apply of a new
// domain in tls mode acme to nginx answering HTTPS for it with the
// certificate the CA issued (a handshake verified against the root of
// pebble, the local ACME CA): the self-signed placeholder and the site
// first, then the order, HTTP-01 validated by pebble through that nginx
// site, the certificate written and nginx reloaded. Twenty domains one
// after another, then a burst of 100 applied at once (8 clients); p50 and
// p99 of each. pebble validates at once (PEBBLE_VA_NOSLEEP=1) and sends no
// Retry-After, so lego waits its default 5 s (±50 %) before it looks at
// the challenge again: that wait is most of each figure.
func BenchmarkApplyToHTTPS(b *testing.B) {
	const sequential, burst = 20, 100
	for i := range b.N {
		b.StopTimer()
		p := pebble.Start(b, pebble.Options{})
		seqNames := make([]string, sequential)
		for j := range seqNames {
			seqNames[j] = fmt.Sprintf("s%02d.r%d.https.bench", j, i)
		}
		burstNames := make([]string, burst)
		for j := range burstNames {
			burstNames[j] = fmt.Sprintf("b%03d.r%d.https.bench", j, i)
		}
		addHosts(b, append(slices.Clone(seqNames), burstNames...))
		bundle := filepath.Join(b.TempDir(), "pebble-https-ca.pem")
		if err := os.WriteFile(bundle, p.CAPEM, 0o600); err != nil {
			b.Fatal(err)
		}
		w := startWcpdWith(b, 4, "acme:\n  directory: "+pebble.DirectoryURL+"\n  email: bench@https.bench\n  caBundle: "+bundle+"\n")
		tn := fmt.Sprintf("https%d", i)
		if err := w.put("tenants", tn, map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant",
			"metadata": map[string]any{"name": tn}, "spec": map[string]any{}}); err != nil {
			b.Fatal(err)
		}
		w.waitAllReady(b, "tenants", i+1)
		roots := p.Roots(b)
		domain := func(name string) item {
			return item{"domains", name, map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Domain",
				"metadata": map[string]any{"name": name}, "spec": map[string]any{"tenant": tn,
					"php": map[string]any{"enabled": false}, "tls": map[string]any{"mode": "acme"}}}}
		}

		// One after another: apply → HTTPS with the CA's certificate, split
		// into apply → the site serves (with the placeholder) → the CA's
		// certificate serves (the order).
		var seq, seqSite, seqOrder []time.Duration
		b.StartTimer()
		for _, n := range seqNames {
			start := time.Now()
			d := domain(n)
			if err := w.put(d.plural, d.name, d.obj); err != nil {
				b.Fatal(err)
			}
			site, issued, err := waitHTTPS(n, roots, 20*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			seq = append(seq, issued.Sub(start))
			seqSite = append(seqSite, site.Sub(start))
			seqOrder = append(seqOrder, issued.Sub(site))
		}
		b.StopTimer()

		// A burst: every domain applied at once, each watched from the
		// start of the burst.
		counters := []string{"wcp360_nginx_reloads_total", "wcp360_nginx_batches_total"}
		before := w.metrics(b, counters...)
		items := make([]item, burst)
		for j, n := range burstNames {
			items[j] = domain(n)
		}
		lat := make([]time.Duration, burst)
		var wg sync.WaitGroup
		b.StartTimer()
		start := time.Now()
		for j, n := range burstNames {
			wg.Go(func() {
				_, issued, err := waitHTTPS(n, roots, 200*time.Millisecond)
				if err != nil {
					b.Error(err)
				}
				lat[j] = issued.Sub(start)
			})
		}
		w.applyAll(b, items, 8)
		applied := time.Since(start)
		wg.Wait()
		all := time.Since(start)
		b.StopTimer()
		after := w.metrics(b, counters...)
		for _, l := range [][]time.Duration{seq, seqSite, seqOrder, lat} {
			slices.Sort(l)
		}
		b.ReportMetric(seq[len(seq)/2].Seconds(), "seq-p50-s")
		b.ReportMetric(seq[len(seq)*99/100].Seconds(), "seq-p99-s")
		b.ReportMetric(seqSite[len(seqSite)/2].Seconds(), "seq-site-p50-s")
		b.ReportMetric(seqOrder[len(seqOrder)/2].Seconds(), "seq-order-p50-s")
		b.ReportMetric(seqOrder[0].Seconds(), "seq-order-min-s")
		b.ReportMetric(seqOrder[len(seqOrder)-1].Seconds(), "seq-order-max-s")
		b.ReportMetric(applied.Seconds(), "burst-apply-s")
		b.ReportMetric(lat[len(lat)/2].Seconds(), "burst-p50-s")
		b.ReportMetric(lat[len(lat)*99/100].Seconds(), "burst-p99-s")
		b.ReportMetric(all.Seconds(), "burst-all-https-s")
		b.ReportMetric(after[0]-before[0], "burst-nginx-reloads")
		b.ReportMetric(after[1]-before[1], "burst-nginx-batches")
		b.StartTimer()
	}
}

// waitHTTPS polls nginx every interval (for up to 3 minutes) until the
// handshake for name verifies against roots (the CA's certificate
// serves), and returns when name's own site first answered HTTPS (with
// its self-signed placeholder; zero if never seen) and when the CA's
// certificate did.
func waitHTTPS(name string, roots *x509.CertPool, interval time.Duration) (site, issued time.Time, err error) {
	//nolint:gosec // verified below, against pebble's root
	cfg := &tls.Config{ServerName: name, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(interval) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var conn net.Conn
		conn, err = (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", "127.0.0.1:443")
		cancel()
		if err != nil {
			continue
		}
		now := time.Now()
		chain := conn.(*tls.Conn).ConnectionState().PeerCertificates //nolint:forcetypeassert // a tls.Dialer's
		_ = conn.Close()
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err = chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter}); err == nil {
			if site.IsZero() {
				site = now
			}
			return site, now, nil
		}
		if site.IsZero() && chain[0].VerifyHostname(name) == nil {
			site = now // the placeholder: the site is served, the order is on
		}
	}
	return site, time.Time{}, fmt.Errorf("%s: no HTTPS with the CA's certificate within 3 minutes: %w", name, err)
}

// addHosts maps names to 127.0.0.1 in the sandbox's /etc/hosts, for pebble
// to validate HTTP-01 through this host's nginx.
func addHosts(tb testing.TB, names []string) {
	tb.Helper()
	if !sandbox.Inside() {
		tb.Fatal("addHosts outside a sandbox")
	}
	var lines strings.Builder
	for _, n := range names {
		lines.WriteString("127.0.0.1 " + n + "\n")
	}
	f, err := os.OpenFile("/etc/hosts", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := f.WriteString(lines.String()); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}
