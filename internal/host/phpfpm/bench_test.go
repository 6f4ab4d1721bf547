package phpfpm_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/host/phpfpm"
	"github.com/wcp360/wcp360/internal/sandbox"
)

// Figures for issue 4 (density of idle tenants), reported with
// b.ReportMetric; nothing here passes or fails on time or size. They create
// users and start masters, so they run only inside a sandbox:
//
//	bin/wcp-sandbox -- go test -run '^$' -bench . -benchtime 1x ./internal/host/phpfpm/
func requireSandbox(b *testing.B) {
	b.Helper()
	if !sandbox.Inside() {
		b.Skip("creates users and starts php-fpm: run under bin/wcp-sandbox")
	}
}

// BenchmarkColdStart: a tenant's first request when no master runs: Apply
// starts the master (config already written and tested), then the first
// FastCGI request forks an ondemand worker. warm-ms is a second request.
func BenchmarkColdStart(b *testing.B) {
	requireSandbox(b)
	p := newTenant(b, "cold", 20200)
	prev := newManager(b, nil)
	mustApply(b, prev, p)
	var apply, first, warm time.Duration
	for b.Loop() {
		stopMaster(b, prev, readPid(p))
		m := newManager(b, nil)
		prev = m
		t0 := time.Now()
		mustApply(b, m, p)
		t1 := time.Now()
		probe(b, m, p)
		t2 := time.Now()
		probe(b, m, p)
		t3 := time.Now()
		apply += t1.Sub(t0)
		first += t2.Sub(t1)
		warm += t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(ms(apply)/n, "start-ms")
	b.ReportMetric(ms(first)/n, "first-request-ms")
	b.ReportMetric(ms(apply+first)/n, "cold-total-ms")
	b.ReportMetric(ms(warm)/n, "warm-request-ms")
}

// BenchmarkApplyChange: a config change: snapshot, write, php-fpm -t,
// graceful reload confirmed.
func BenchmarkApplyChange(b *testing.B) {
	requireSandbox(b)
	m := newManager(b, nil)
	p := newTenant(b, "change", 20100)
	mustApply(b, m, p)
	i := 0
	for b.Loop() {
		i++
		p.MaxChildren = 5 + i%2
		mustApply(b, m, p)
	}
}

// BenchmarkIdleMasters: memory of many tenants' masters, idle (no worker:
// pm = ondemand) and after one request each (one idle worker each).
func BenchmarkIdleMasters(b *testing.B) {
	requireSandbox(b)
	n := 100
	if s := os.Getenv("WCP_BENCH_MASTERS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	m := newManager(b, nil)
	round := 0
	for b.Loop() {
		var apply time.Duration
		var pools []phpfpm.Pool
		for i := range n {
			p := newTenant(b, fmt.Sprintf("r%dt%d", round, i), 21000+round*n+i)
			t0 := time.Now()
			mustApply(b, m, p)
			apply += time.Since(t0)
			pools = append(pools, p)
		}
		round++
		idle := memOf(b, tree(b, m, pools))
		first, _ := master(b, m, pools[0])
		one := memOf(b, []int{first})
		for _, p := range pools {
			probe(b, m, p)
		}
		busy := memOf(b, tree(b, m, pools))
		b.ReportMetric(ms(apply)/float64(n), "apply-ms/tenant")
		b.ReportMetric(float64(idle.procs)/float64(n), "procs/tenant-idle")
		b.ReportMetric(idle.pss/float64(n), "pss-kB/tenant-idle")
		b.ReportMetric(idle.uss/float64(n), "uss-kB/tenant-idle")
		b.ReportMetric(one.pss, "pss-kB/first-master")
		b.ReportMetric(one.rss, "rss-kB/first-master")
		b.ReportMetric(float64(busy.procs)/float64(n), "procs/tenant-after-request")
		b.ReportMetric(busy.pss/float64(n), "pss-kB/tenant-after-request")
		b.ReportMetric(busy.uss/float64(n), "uss-kB/tenant-after-request")
	}
}

// BenchmarkOnDemand: 1,000 tenants (WCP_BENCH_TENANTS) with PHP on demand
// (Options.IdleStop): the processes and memory they cost idle, the latency
// of each tenant's first request (its master starts for it, the request
// waits in the socket's backlog), a warm request, and the memory once every
// tenant has had one request.
func BenchmarkOnDemand(b *testing.B) {
	requireSandbox(b)
	n := 1000
	if s := os.Getenv("WCP_BENCH_TENANTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	m := newManager(b, func(o *phpfpm.Options) { o.IdleStop = time.Hour; o.Logger = nil })
	round := 0
	for b.Loop() {
		var apply time.Duration
		var pools []phpfpm.Pool
		for i := range n {
			p := newTenant(b, fmt.Sprintf("d%dt%d", round, i), 30000+round*n+i)
			t0 := time.Now()
			mustApply(b, m, p)
			apply += time.Since(t0)
			pools = append(pools, p)
		}
		round++
		idle := memOf(b, phpProcs())
		var cold, warm []time.Duration
		for _, p := range pools {
			t0 := time.Now()
			probe(b, m, p)
			t1 := time.Now()
			probe(b, m, p)
			cold, warm = append(cold, t1.Sub(t0)), append(warm, time.Since(t1))
		}
		busy := memOf(b, tree(b, m, pools))
		b.ReportMetric(ms(apply)/float64(n), "apply-ms/tenant")
		b.ReportMetric(float64(idle.procs), "php-procs-idle")
		b.ReportMetric(idle.pss, "pss-kB-idle")
		b.ReportMetric(ms(pct(cold, 50)), "first-request-p50-ms")
		b.ReportMetric(ms(pct(cold, 99)), "first-request-p99-ms")
		b.ReportMetric(ms(pct(warm, 50)), "warm-request-p50-ms")
		b.ReportMetric(float64(busy.procs)/float64(n), "procs/tenant-after-request")
		b.ReportMetric(busy.pss/1024, "pss-MB-after-request")
		b.ReportMetric(busy.pss/float64(n), "pss-kB/tenant-after-request")
	}
	b.ReportMetric(float64(m.Stats().Starts)/float64(b.N), "starts")
}

// pct is the p-th percentile of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// phpProcs lists every php-fpm process on the host.
func phpProcs() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && strings.Contains(filepath.Base(exe), "php-fpm") {
			out = append(out, pid)
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func readPid(p phpfpm.Pool) int {
	bs, err := os.ReadFile(filepath.Join(runDir, p.Tenant+"-"+p.Version+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(bs)))
	if !alive(pid) {
		return 0
	}
	return pid
}

// stopMaster stops a master behind the Manager's back, as if it had never
// been started: SIGQUIT, wait.
func stopMaster(b *testing.B, m *phpfpm.Manager, pid int) {
	b.Helper()
	_ = m.Close()
	if pid == 0 {
		return
	}
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the master to stop", 20*time.Second, func() bool { return !alive(pid) })
}

// tree lists the masters of pools and their workers.
func tree(b *testing.B, m *phpfpm.Manager, pools []phpfpm.Pool) []int {
	b.Helper()
	var out []int
	for _, p := range pools {
		pid, _ := master(b, m, p)
		out = append(out, pid)
		out = append(out, children(pid)...)
	}
	return out
}

type mem struct {
	procs         int
	pss, uss, rss float64 // kB
}

// memOf sums /proc/<pid>/smaps_rollup over pids.
func memOf(b *testing.B, pids []int) mem {
	b.Helper()
	var m mem
	for _, pid := range pids {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
		if err != nil {
			continue
		}
		m.procs++
		s := bufio.NewScanner(f)
		for s.Scan() {
			k, v, ok := strings.Cut(s.Text(), ":")
			if !ok {
				continue
			}
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				continue
			}
			switch k {
			case "Pss":
				m.pss += kb
			case "Rss":
				m.rss += kb
			case "Private_Clean", "Private_Dirty":
				m.uss += kb
			}
		}
		_ = f.Close()
	}
	return m
}
