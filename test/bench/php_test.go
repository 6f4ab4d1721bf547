package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkApply1000PHPTenants applies 1,000 tenants with one PHP domain
// each at once (PHP on demand, wcpd's default) and measures the time until
// every domain is Ready (its PHP config tested, its socket held, nginx
// serving it), then the time until every tenant's PHP page has answered
// once: each first request starts the tenant's PHP-FPM master.
func BenchmarkApply1000PHPTenants(b *testing.B) {
	const n = 1000
	for b.Loop() {
		b.StopTimer()
		w := startWcpd(b, 4)
		ts, ds := manifests("h", n, 1)
		for _, d := range ds {
			d.obj.(map[string]any)["spec"].(map[string]any)["php"] = map[string]any{"enabled": true} //nolint:forcetypeassert // built above
		}
		counters := []string{"wcp360_nginx_reloads_total", "wcp360_php_config_tests_total", "wcp360_php_tested_pools_total",
			"wcp360_php_master_starts_total", "wcp360_account_batches_total"}
		before := w.metrics(b, counters...)
		b.StartTimer()
		start := time.Now()
		w.applyAll(b, ts, 8)
		w.applyAll(b, ds, 8)
		w.waitAllReady(b, "tenants", len(ts))
		w.waitAllReady(b, "domains", len(ds))
		ready := time.Since(start)
		b.StopTimer()
		mid := w.metrics(b, counters...)
		for i, d := range ds {
			tn := fmt.Sprintf("h%05d", i)
			p := filepath.Join("/srv/www", tn, "domains", d.name, "public", "index.php")
			if err := os.WriteFile(p, []byte(`<?php echo "php ", posix_geteuid();`), 0o644); err != nil { //nolint:gosec // a page nginx and PHP read
				b.Fatal(err)
			}
		}
		b.StartTimer()
		// Every page once, 8 clients: 1,000 masters start on demand.
		first := time.Now()
		lat := make([]time.Duration, len(ds))
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(ds) {
						return
					}
					t0 := time.Now()
					phpPage(b, ds[i].name)
					lat[i] = time.Since(t0)
				}
			})
		}
		wg.Wait()
		pages := time.Since(first)
		b.StopTimer()
		after := w.metrics(b, counters...)
		slices.Sort(lat)
		b.ReportMetric(ready.Seconds(), "all-ready-s")
		b.ReportMetric(pages.Seconds(), "all-php-pages-s")
		b.ReportMetric((ready + pages).Seconds(), "apply-to-every-php-page-s")
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "first-request-p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "first-request-p99-ms")
		b.ReportMetric(mid[0]-before[0], "nginx-reloads")
		b.ReportMetric(mid[1]-before[1], "php-fpm-t-runs")
		b.ReportMetric(mid[2]-before[2], "php-pools-tested")
		b.ReportMetric(mid[3]-before[3], "php-masters-before-requests")
		b.ReportMetric(after[3]-mid[3], "php-masters-started-by-requests")
		b.ReportMetric(mid[4]-before[4], "account-writes")
		b.StartTimer()
	}
}

// phpPage gets host's index.php and checks PHP answered.
func phpPage(tb testing.TB, host string) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Error(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) < 5 || string(body[:4]) != "php " {
		tb.Errorf("%s: %d %q, want PHP's answer", host, resp.StatusCode, body)
		return
	}
	if _, err := strconv.Atoi(string(body[4:])); err != nil {
		tb.Errorf("%s: %q", host, body)
	}
}
