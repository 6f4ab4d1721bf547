package wcpd

import (
	"errors"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/wcp360/wcp360/internal/host/cgroup"
	"github.com/wcp360/wcp360/internal/host/isolation"
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
	limits      *isolation.Cgroups
	quota       *isolation.Quota
	pressure    *isolation.Pressure
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

// setIsolation names the steps whose tenants' usage and pressure are
// reported.
func (m *daemonMetrics) setIsolation(limits *isolation.Cgroups, quota *isolation.Quota, pressure *isolation.Pressure) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limits, m.quota, m.pressure = limits, quota, pressure
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
	limits, quota, pressure := m.limits, m.quota, m.pressure
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
	writeIsolation(w, limits, quota, pressure)
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

// writeIsolation writes the host's pressure, and each tenant's usage and
// pressure as its cgroup counts them now.
func writeIsolation(w *metrics.Writer, limits *isolation.Cgroups, quota *isolation.Quota, pressure *isolation.Pressure) {
	if hp, err := cgroup.HostPressure("/proc"); err == nil {
		w.Header("wcp360_host_pressure_avg10", metrics.TypeGauge, "Share of the last 10 s (percent) some or all tasks of the host stalled on the resource (PSI).")
		eachPSI(hp, func(res, kind string, l cgroup.PSILine) {
			w.Sample("wcp360_host_pressure_avg10", l.Avg10, "resource", res, "kind", kind)
		})
		w.Header("wcp360_host_pressure_stall_seconds_total", metrics.TypeCounter, "Time some or all tasks of the host stalled on the resource (PSI total).")
		eachPSI(hp, func(res, kind string, l cgroup.PSILine) {
			w.Sample("wcp360_host_pressure_stall_seconds_total", l.Total.Seconds(), "resource", res, "kind", kind)
		})
	}
	if pressure != nil {
		st := pressure.Stalls()
		w.Header("wcp360_pressure_stall_events_total", metrics.TypeCounter, "PressureStall events recorded on tenants, per resource.")
		for _, r := range []cgroup.Resource{cgroup.CPU, cgroup.Memory, cgroup.IO} {
			w.Sample("wcp360_pressure_stall_events_total", float64(st[r]), "resource", string(r))
		}
		hs := pressure.HostStalls()
		w.Header("wcp360_host_pressure_stalls_total", metrics.TypeCounter, "Times the host's PSI trigger fired (logged as \"the host stalls\"), per resource.")
		for _, r := range []cgroup.Resource{cgroup.CPU, cgroup.Memory, cgroup.IO} {
			w.Sample("wcp360_host_pressure_stalls_total", float64(hs[r]), "resource", string(r))
		}
	}
	if limits == nil {
		return
	}
	type reading struct {
		tenant string
		u      cgroup.Usage
		p      *cgroup.Pressure
	}
	var rs []reading
	for _, t := range limits.Tenants() {
		u, err := limits.Driver.Usage(t)
		if err != nil {
			continue
		}
		r := reading{tenant: t, u: u}
		if p, err := limits.Driver.Pressure(t); err == nil {
			r.p = &p
		}
		rs = append(rs, r)
	}
	for _, g := range []struct {
		name, typ, help string
		v               func(cgroup.Usage) float64
	}{
		{"wcp360_tenant_memory_bytes", metrics.TypeGauge, "Memory the tenant's cgroup uses.", func(u cgroup.Usage) float64 { return float64(u.MemoryCurrent) }},
		{"wcp360_tenant_cpu_seconds_total", metrics.TypeCounter, "CPU time the tenant's cgroup used.", func(u cgroup.Usage) float64 { return u.CPU.Seconds() }},
		{"wcp360_tenant_pids", metrics.TypeGauge, "Tasks in the tenant's cgroup.", func(u cgroup.Usage) float64 { return float64(u.Pids) }},
		{"wcp360_tenant_oom_kills_total", metrics.TypeCounter, "Processes of the tenant killed at its memoryMax.", func(u cgroup.Usage) float64 { return float64(u.OOMKills) }},
		{"wcp360_tenant_cpu_throttled_periods_total", metrics.TypeCounter, "CPU periods in which the tenant's cpu limit throttled it.", func(u cgroup.Usage) float64 { return float64(u.Throttled) }},
	} {
		w.Header(g.name, g.typ, g.help)
		for _, r := range rs {
			w.Sample(g.name, g.v(r.u), "tenant", r.tenant)
		}
	}
	w.Header("wcp360_tenant_pressure_avg10", metrics.TypeGauge, "Share of the last 10 s (percent) some or all of the tenant's tasks stalled on the resource (PSI).")
	for _, r := range rs {
		if r.p != nil {
			eachPSI(*r.p, func(res, kind string, l cgroup.PSILine) {
				w.Sample("wcp360_tenant_pressure_avg10", l.Avg10, "tenant", r.tenant, "resource", res, "kind", kind)
			})
		}
	}
	w.Header("wcp360_tenant_pressure_stall_seconds_total", metrics.TypeCounter, "Time some or all of the tenant's tasks stalled on the resource (PSI total).")
	for _, r := range rs {
		if r.p != nil {
			eachPSI(*r.p, func(res, kind string, l cgroup.PSILine) {
				w.Sample("wcp360_tenant_pressure_stall_seconds_total", l.Total.Seconds(), "tenant", r.tenant, "resource", res, "kind", kind)
			})
		}
	}
	if quota != nil {
		du := quota.Usage()
		w.Header("wcp360_tenant_disk_used_bytes", metrics.TypeGauge, "Bytes the tenant's project quota counts on its home.")
		for _, t := range slices.Sorted(maps.Keys(du)) {
			w.Sample("wcp360_tenant_disk_used_bytes", float64(du[t].Bytes), "tenant", t)
		}
		w.Header("wcp360_tenant_disk_used_inodes", metrics.TypeGauge, "Inodes the tenant's project quota counts on its home.")
		for _, t := range slices.Sorted(maps.Keys(du)) {
			w.Sample("wcp360_tenant_disk_used_inodes", float64(du[t].Inodes), "tenant", t)
		}
	}
}

// eachPSI calls f for every line of p: some of cpu, memory, io, and full
// where the kernel keeps it.
func eachPSI(p cgroup.Pressure, f func(resource, kind string, l cgroup.PSILine)) {
	for _, r := range []struct {
		name string
		psi  cgroup.PSI
	}{{"cpu", p.CPU}, {"memory", p.Memory}, {"io", p.IO}} {
		f(r.name, "some", r.psi.Some)
		if r.psi.Full != nil {
			f(r.name, "full", *r.psi.Full)
		}
	}
}
