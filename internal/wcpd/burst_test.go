package wcpd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/nginx"
	"github.com/wcp360/wcp360/internal/metrics"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/apitest"
)

// 200 domains applied at once are all served after a few nginx reloads,
// and wcpd says how many on GET /metrics.
//
// The bound on reloads that cannot flake: a batch of site changes runs
// nginx.DefaultWindow after its first change joins it, and a change joins
// the next batch only once the one before has started, so batches start
// at least a window apart: n batches (one reload each) need their changes
// to arrive over at least (n-1) windows, and they all arrive between the
// first PUT and the last domain's Ready. On a machine quick enough to
// apply the 200 within a second that is at most 10; slower, the bound
// grows with the time the applies took.
func TestBurstOf200DomainsFewReloads(t *testing.T) {
	if sandbox.Run(t) {
		return
	}
	const tenants, domainsPerTenant, clients = 20, 10, 16
	d := startDaemon(t)
	tn := func(i int) string { return fmt.Sprintf("burst%02d", i) }
	for i := range tenants {
		if code, body := d.do("PUT", "/api/v1/tenants/"+tn(i), tenant(tn(i))); code != http.StatusCreated {
			t.Fatalf("apply tenant %s: %d %s", tn(i), code, body)
		}
	}
	for i := range tenants {
		d.waitReady("tenants", tn(i))
	}
	var names []string
	for i := range tenants {
		for j := range domainsPerTenant {
			names = append(names, fmt.Sprintf("d%d.%s.test", j, tn(i)))
		}
	}
	before := d.metric("wcp360_nginx_reloads_total")

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) {
					return
				}
				dn := names[i]
				m := domainManifest(dn, tn(i/domainsPerTenant), map[string]any{"php": map[string]any{"enabled": false}})
				if err := d.put("/api/v1/domains/"+dn, m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d.waitAllReady("domains", len(names))
	span := time.Since(start)

	// Ready means serving: every site answers now, without a retry, on a
	// new connection (an old one could be to an nginx worker of before).
	web := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, dn := range names {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = dn
		resp, err := web.Do(req)
		if err != nil {
			t.Fatalf("GET http://%s/: %v", dn, err)
		}
		_ = resp.Body.Close()
		// The default server's answers carry none of the headers every site sends.
		if resp.Header.Get("X-Content-Type-Options") == "" {
			t.Errorf("%s is Ready but not served by its site: %d %v", dn, resp.StatusCode, resp.Header)
		}
	}

	reloads := d.metric("wcp360_nginx_reloads_total") - before
	limit := max(10, 1+int(span/nginx.DefaultWindow))
	t.Logf("%d domains applied and Ready in %s with %d nginx reloads (bound %d)", len(names), span.Round(time.Millisecond), reloads, limit)
	if reloads < 1 || reloads > limit {
		t.Errorf("%d nginx reloads for a burst of %d domains over %s; want 1..%d", reloads, len(names), span.Round(time.Millisecond), limit)
	}
}

// put applies obj at path; unlike do, it may be called from any goroutine.
func (d *daemonUnderTest) put(path string, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, "http://wcpd"+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var p bytes.Buffer
		_, _ = p.ReadFrom(resp.Body)
		return fmt.Errorf("PUT %s: %d %s", path, resp.StatusCode, p.String())
	}
	return nil
}

// waitAllReady polls the list of plural until want of them are Ready for
// their generation.
func (d *daemonUnderTest) waitAllReady(plural string, want int) {
	d.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	ready := 0
	for time.Now().Before(deadline) {
		code, b := d.do("GET", "/api/v1/"+plural, nil)
		if code != http.StatusOK {
			d.t.Fatalf("list %s: %d %s", plural, code, b)
		}
		var err error
		if ready, err = apitest.CountReady(b); err != nil {
			d.t.Fatal(err)
		}
		if ready >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatalf("%d of %d %s Ready after 2 minutes\nlogs:\n%s", ready, want, plural, d.logs)
}

// metric reads one sample without labels from GET /metrics.
func (d *daemonUnderTest) metric(name string) int {
	d.t.Helper()
	code, b := d.do("GET", "/metrics", nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET /metrics: %d %s", code, b)
	}
	v, ok, err := metrics.Value(b, name)
	if err != nil || !ok {
		d.t.Fatalf("GET /metrics: %s: %v\n%s", name, err, b)
	}
	return int(v)
}
