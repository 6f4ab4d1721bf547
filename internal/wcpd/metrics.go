package wcpd

import (
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wcp360/wcp360/internal/host/nginx"
	"github.com/wcp360/wcp360/internal/host/phpfpm"
	tenanthost "github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/metrics"
	"github.com/wcp360/wcp360/internal/reconcile"
)

// Reconcile results, the result label of wcp360_reconciles_total.
const (
	resultSuccess = "success" // converged (or nothing to do)
	resultWaiting = "waiting" // waits for something else (a tenant not Ready yet)
	resultError   = "error"   // failed; retried with backoff
	resultStalled = "stalled" // failed in a way only a human can fix; not retried
)

// reconcileBuckets are the upper bounds (seconds) of the reconcile
// duration histogram: from a no-op resync to a reload of many sites.
var reconcileBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30} //nolint:gochecknoglobals // constant

// daemonMetrics is what GET /metrics reports: counters the host drivers
// keep, and the outcome and duration of every reconcile.
type daemonMetrics struct {
	mu          sync.Mutex
	nginx       *nginx.Manager
	php         *phpfpm.Manager
	accounts    *tenanthost.Step
	controllers []*reconcile.Controller
	reconciles  map[string]*controllerMetrics // by controller name
	names       []string                      // controller names, in order
}

type controllerMetrics struct {
	results  map[string]uint64
	duration *metrics.Histogram
}

func newDaemonMetrics() *daemonMetrics {
	return &daemonMetrics{reconciles: map[string]*controllerMetrics{}}
}

// setHost names the host drivers whose counters are reported.
func (m *daemonMetrics) setHost(web *nginx.Manager, php *phpfpm.Manager, accounts *tenanthost.Step) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nginx, m.php, m.accounts = web, php, accounts
}

// addController adds a controller whose queue length is reported.
func (m *daemonMetrics) addController(c *reconcile.Controller) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.controllers = append(m.controllers, c)
}

// onResult is the reconcile.Options.OnResult of the controller name.
func (m *daemonMetrics) onResult(name string) func(reconcile.Request, reconcile.Result, error, time.Duration) {
	m.mu.Lock()
	c := m.reconciles[name]
	if c == nil {
		c = &controllerMetrics{results: map[string]uint64{}, duration: metrics.NewHistogram(reconcileBuckets...)}
		m.reconciles[name] = c
		m.names = append(m.names, name)
	}
	m.mu.Unlock()
	return func(_ reconcile.Request, _ reconcile.Result, err error, took time.Duration) {
		result := resultSuccess
		var waiting *reconcile.WaitingError
		switch {
		case err == nil:
		case reconcile.IsTerminal(err):
			result = resultStalled
		case errors.As(err, &waiting):
			result = resultWaiting
		default:
			result = resultError
		}
		c.duration.Observe(took.Seconds())
		m.mu.Lock()
		c.results[result]++
		m.mu.Unlock()
	}
}

// write writes every metric in the Prometheus text format.
func (m *daemonMetrics) write(out io.Writer) error {
	w := metrics.NewWriter(out)
	m.mu.Lock()
	web, php, accounts, ctrls, names := m.nginx, m.php, m.accounts, slices.Clone(m.controllers), slices.Clone(m.names)
	results := map[string]map[string]uint64{}
	durations := map[string]*metrics.Histogram{}
	for n, c := range m.reconciles {
		results[n] = maps.Clone(c.results)
		durations[n] = c.duration
	}
	m.mu.Unlock()

	if web != nil {
		st := web.Stats()
		for _, f := range []struct {
			name, help string
			v          int
		}{
			{"wcp360_nginx_tests_total", "nginx -t runs (one per batch of site changes, more when a batch fails).", st.Tests},
			{"wcp360_nginx_reloads_total", "nginx reloads signalled and confirmed in effect (new workers serving, old ones closed).", st.Reloads},
			{"wcp360_nginx_starts_total", "nginx masters started.", st.Starts},
			{"wcp360_nginx_site_writes_total", "Site files written, removed or restored.", st.Writes},
			{"wcp360_nginx_batches_total", "Batches of site changes (each one nginx -t and one reload).", len(st.BatchSizes)},
		} {
			w.Header(f.name, metrics.TypeCounter, f.help)
			w.Sample(f.name, float64(f.v))
		}
	}
	if php != nil {
		st := php.Stats()
		for _, f := range []struct {
			name, typ, help string
			v               int
		}{
			{"wcp360_php_masters_running", metrics.TypeGauge, "PHP-FPM masters running (with web.phpIdleStop, only busy tenants have one).", st.Running},
			{"wcp360_php_master_starts_total", metrics.TypeCounter, "PHP-FPM masters started (by an apply, a restart or a request).", st.Starts},
			{"wcp360_php_idle_stops_total", metrics.TypeCounter, "PHP-FPM masters stopped after web.phpIdleStop without work.", st.IdleStops},
			{"wcp360_php_config_tests_total", metrics.TypeCounter, "php-fpm -t runs (applies at the same time share one).", st.Tests},
			{"wcp360_php_tested_pools_total", metrics.TypeCounter, "Pools those php-fpm -t runs tested.", st.TestedPools},
		} {
			w.Header(f.name, f.typ, f.help)
			w.Sample(f.name, float64(f.v))
		}
	}
	if accounts != nil {
		st := accounts.Stats()
		w.Header("wcp360_account_batches_total", metrics.TypeCounter,
			"Batches of tenant account changes (each one write of the passwd, shadow, group and gshadow files).")
		w.Sample("wcp360_account_batches_total", float64(st.Batches))
		w.Header("wcp360_account_applies_total", metrics.TypeCounter, "Tenant account applies carried by those batches.")
		w.Sample("wcp360_account_applies_total", float64(st.Applies))
	}
	w.Header("wcp360_reconciles_total", metrics.TypeCounter,
		"Reconciles per controller and result (success, waiting, error, stalled).")
	for _, n := range names {
		for _, r := range []string{resultSuccess, resultWaiting, resultError, resultStalled} {
			w.Sample("wcp360_reconciles_total", float64(results[n][r]), "controller", n, "result", r)
		}
	}
	w.Header("wcp360_reconcile_duration_seconds", metrics.TypeHistogram, "Duration of reconciles per controller.")
	for _, n := range names {
		durations[n].Write(w, "wcp360_reconcile_duration_seconds", "controller", n)
	}
	w.Header("wcp360_reconcile_queue_length", metrics.TypeGauge, "Resources queued for a worker, per controller.")
	for _, c := range ctrls {
		w.Sample("wcp360_reconcile_queue_length", float64(c.QueueLen()), "controller", c.Name())
	}
	return w.Flush()
}
