package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// The noisy neighbour's scenario: B's latency is measured for noisyWindow
// per phase, after noisyRampUp of A's load.
const (
	noisyWindow   = 12 * time.Second
	noisyRampUp   = 2 * time.Second
	noisyBClients = 2
	noisyA        = "a"
	noisyB        = "b"
)

// The pages. B's does about 2 ms of CPU (150 SHA-256 over 4 KiB); A's
// burner about 1 s (9 million MD5s: a fixed amount of work, so that a
// throttled A completes fewer); its hog allocates and touches 400 MiB; its
// I/O flood writes, fsyncs and removes a 64 MiB file in the tenant's tmp
// directory (in its home). Each answers "ok ..." when it got to the end.
const (
	noisyBPage = `<?php $s = str_repeat("x", 4096);
for ($i = 0; $i < 150; $i++) { $s = hash("sha256", $s) . substr($s, 64); }
echo "ok ", strlen($s);`
	noisyBurnPage = `<?php $h = "";
for ($i = 0; $i < 9000000; $i++) { $h = md5($h); }
echo "ok ", $h;`
	noisyHogPage = `<?php $s = str_repeat("x", 400 << 20); usleep(200000); echo "ok ", strlen($s);`
	noisyIOPage  = `<?php $p = sys_get_temp_dir() . "/flood-" . getmypid();
$f = fopen($p, "wb"); $c = str_repeat("y", 1 << 20);
for ($i = 0; $i < 64; $i++) { fwrite($f, $c); }
fflush($f); fsync($f); fclose($f); unlink($p); echo "ok 64";`
	noisyPIDPage = `<?php echo "ok ", getmypid();`
)

// noisySpec is A's spec, with limits in the last phase. A runs 6
// requests at once; max_execution_time is CPU time, large enough for a
// throttled burner; memory_limit lets the hog reach 400 MiB.
func noisySpec(limited bool) map[string]any {
	spec := map[string]any{"php": map[string]any{"maxChildren": 8, "memoryLimit": "1Gi", "maxExecutionTime": 300}}
	if limited {
		spec["limits"] = map[string]any{"cpu": "50%", "memoryMax": "256Mi", "pids": 64, "io": map[string]any{"writeBPS": "20Mi"}}
	}
	return spec
}

// BenchmarkNoisyNeighbour measures what a noisy tenant A does to the PHP
// latency of a quiet tenant B on the same host, and what A's limits change:
// B alone, then B while A (unlimited) burns CPU, allocates memory and
// writes files through its own PHP pages, then the same with A limited
// (cpu 50%, memoryMax 256Mi, pids 64, io writeBPS 20Mi, applied through
// the API; what the host does not enforce is logged, with why). It
// reports B's latency percentiles, errors and CPU per phase, B's p50 and
// p99 against the baseline, A's achieved work (requests completed, OOM
// kills, CPU seconds and throttled periods of its cgroup), and the CPU the
// sandbox and the rest of the machine used in the window: other work on
// the machine skews the figures. Nothing passes or fails on time.
func BenchmarkNoisyNeighbour(b *testing.B) {
	n := newNoisy(b)
	var base *noisyResult
	b.Run("baseline", func(b *testing.B) {
		for _, p := range n.placement {
			b.Log(p)
		}
		var r noisyResult
		for b.Loop() {
			r = n.phase(b, false)
		}
		r.report(b, nil)
		base = &r
	})
	b.Run("A-unlimited", func(b *testing.B) {
		var r noisyResult
		for b.Loop() {
			r = n.phase(b, true)
		}
		r.report(b, base)
	})
	b.Run("A-limited", func(b *testing.B) {
		n.limitA(b)
		var r noisyResult
		for b.Loop() {
			r = n.phase(b, true)
		}
		r.report(b, base)
	})
	b.Run("A-limited-10ms", func(b *testing.B) {
		n.cpuPeriod(b, "10ms", 10000)
		var r noisyResult
		for b.Loop() {
			r = n.phase(b, true)
		}
		r.report(b, base)
	})
}

type noisy struct {
	w *wcpd
	// a and b are the tenants' domains.
	a, b string
	// aClient has room for A's slow requests; bClient is B's.
	aClient, bClient *http.Client
	// placement says where each tenant's PHP runs (logged with the
	// baseline: a parent benchmark's log is only shown when it fails).
	placement []string
}

func newNoisy(b *testing.B) *noisy {
	b.Helper()
	n := &noisy{w: startWcpd(b, 4), a: noisyA + ".test", b: noisyB + ".test",
		aClient: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		bClient: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	b.Cleanup(n.aClient.CloseIdleConnections)
	b.Cleanup(n.bClient.CloseIdleConnections)
	tenants := map[string]map[string]any{noisyA: noisySpec(false), noisyB: {}}
	for _, tn := range []string{noisyA, noisyB} {
		if err := n.w.put("tenants", tn, noisyTenant(tn, tenants[tn])); err != nil {
			b.Fatal(err)
		}
		dn := tn + ".test"
		if err := n.w.put("domains", dn, map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Domain",
			"metadata": map[string]any{"name": dn}, "spec": map[string]any{"tenant": tn}}); err != nil {
			b.Fatal(err)
		}
	}
	n.w.waitAllReady(b, "tenants", 2)
	n.w.waitAllReady(b, "domains", 2)
	pages := map[string]map[string]string{
		noisyA: {"burn.php": noisyBurnPage, "mem.php": noisyHogPage, "io.php": noisyIOPage, "pid.php": noisyPIDPage},
		noisyB: {"index.php": noisyBPage, "pid.php": noisyPIDPage},
	}
	for _, tn := range []string{noisyA, noisyB} {
		st, stalled := n.waitTenant(b, tn)
		if stalled != nil || st.Account == nil {
			b.Fatalf("tenant %s: Stalled %+v, account %+v", tn, stalled, st.Account)
		}
		pub := filepath.Join("/srv/www", tn, "domains", tn+".test", "public")
		for name, src := range pages[tn] {
			p := filepath.Join(pub, name)
			if err := os.WriteFile(p, []byte(src), 0o640); err != nil {
				b.Fatal(err)
			}
			if err := os.Chown(p, st.Account.UID, st.Account.GID); err != nil {
				b.Fatal(err)
			}
		}
		waitSite(b, tn+".test")
		// The first request starts the tenant's PHP master; say where its
		// workers run.
		body, err := n.fetch(n.bClient, tn+".test", "/pid.php")
		if err != nil {
			b.Fatal(err)
		}
		n.placement = append(n.placement, fmt.Sprintf("tenant %s: PHP worker %s is in %s", tn, body, noisyCgroups(strings.TrimSpace(body))))
	}
	for range 20 {
		if _, err := n.fetch(n.bClient, n.b, "/"); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

func noisyTenant(name string, spec map[string]any) map[string]any {
	return map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant",
		"metadata": map[string]any{"name": name}, "spec": spec}
}

// limitA applies A's limits through the API and waits until they are
// applied, then logs what this host enforces of them and why not the rest.
func (n *noisy) limitA(b *testing.B) {
	b.Helper()
	if err := n.w.put("tenants", noisyA, noisyTenant(noisyA, noisySpec(true))); err != nil {
		b.Fatal(err)
	}
	st, stalled := n.waitTenant(b, noisyA)
	if stalled != nil {
		b.Fatalf("tenant %s with limits: Stalled %s: %s", noisyA, stalled.Reason, stalled.Message)
	}
	if rs := st.Resources; rs != nil {
		b.Logf("tenant %s limits: driver %q, enforced %v", noisyA, rs.Driver, rs.Enforced)
		for _, l := range slices.Sorted(maps.Keys(rs.NotEnforced)) {
			b.Logf("tenant %s: %s not enforced: %s", noisyA, l, rs.NotEnforced[l])
		}
	}
}

// cpuPeriod restarts wcpd with isolation.cpuPeriod set to period, and
// waits until wcpd has corrected A's cgroup to it (periodUS, in
// microseconds): its resync at start finds the old period as drift.
func (n *noisy) cpuPeriod(b *testing.B, period string, periodUS int) {
	b.Helper()
	n.w.restart(b, "isolation:\n  cpuPeriod: "+period+"\n")
	want := strconv.Itoa(periodUS)
	var have string
	for range 600 {
		body, err := n.fetch(n.bClient, n.a, "/pid.php")
		if err == nil {
			if have = noisyCPUPeriod(strings.TrimSpace(body)); have == want {
				b.Logf("tenant %s: CFS period %s µs", noisyA, have)
				n.aClient.CloseIdleConnections()
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("tenant %s: CFS period %q after a minute, want %s\n%s", noisyA, have, want, n.w.logBytes())
}

// noisyCPUPeriod is the CFS period, in microseconds, of pid's cpu cgroup:
// cpu.cfs_period_us on cgroup v1, the second field of cpu.max on
// cgroup2; "" when it cannot be read.
func noisyCPUPeriod(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return ""
	}
	for l := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(l), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[1] == "cpu" || f[1] == "cpu,cpuacct":
			if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", f[2], "cpu.cfs_period_us")); err == nil {
				return strings.TrimSpace(string(v))
			}
		case f[0] == "0" && f[1] == "":
			if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", f[2], "cpu.max")); err == nil {
				if q := strings.Fields(string(v)); len(q) == 2 {
					return q[1]
				}
			}
		}
	}
	return ""
}

// waitTenant polls the tenant until its current generation is Ready, or
// Stalled (returned).
func (n *noisy) waitTenant(tb testing.TB, name string) (v1alpha1.Status, *v1alpha1.Condition) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	var last []byte
	for time.Now().Before(deadline) {
		resp, err := n.w.client.Get("http://wcpd/api/v1/tenants/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		last, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		var obj struct {
			Metadata v1alpha1.ObjectMeta `json:"metadata"`
			Status   v1alpha1.Status     `json:"status"`
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(last, &obj); err != nil {
				tb.Fatal(err)
			}
		}
		// A stalled generation is not observed: its Stalled condition is.
		gen := obj.Metadata.Generation
		for _, c := range obj.Status.Conditions {
			switch {
			case gen == 0 || c.Status != v1alpha1.ConditionTrue:
			case c.Type == v1alpha1.ConditionReady && obj.Status.ObservedGeneration == gen:
				return obj.Status, nil
			case c.Type == v1alpha1.ConditionStalled && c.ObservedGeneration == gen:
				return obj.Status, &c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("tenant %s neither Ready nor Stalled within a minute; last: %s", name, last)
	return v1alpha1.Status{}, nil
}

// noisyCgroups is the memory, cpu and pids cgroups of pid, from
// /proc/<pid>/cgroup.
func noisyCgroups(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return err.Error()
	}
	var out []string
	for l := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(l), ":", 3)
		if len(f) == 3 && slices.Contains([]string{"memory", "cpu", "cpu,cpuacct", "pids"}, f[1]) {
			out = append(out, f[1]+":"+f[2])
		}
	}
	return strings.Join(out, " ")
}

var errNoisyPage = errors.New("the page did not finish")

// fetch gets host's path from nginx and checks the page got to its end.
func (n *noisy) fetch(c *http.Client, host, path string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1"+path, nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(string(body), "ok ")
	if resp.StatusCode != http.StatusOK || !ok {
		return "", fmt.Errorf("%w: %s%s: %d %.80q", errNoisyPage, host, path, resp.StatusCode, body)
	}
	return rest, nil
}

// noisyLoad is one kind of A's requests and what they achieved.
type noisyLoad struct {
	page         string
	clients      int
	done, failed atomic.Int64
}

// noisyResult is one phase's figures.
type noisyResult struct {
	loaded  bool
	lat     []time.Duration // B's successful requests, sorted
	bErrors int
	// A's requests completed and failed in B's window, by page.
	aDone, aFailed map[string]int64
	// Deltas of A's and B's cgroups over B's window.
	aCPU, aOOM, aThrottled, bCPU float64
	// CPU seconds the whole host and this sandbox used in B's window: the
	// difference is other work on the machine, which skews the figures.
	hostCPU, sandboxCPU float64
}

// hostBusy is the CPU time, in seconds, all of the host's CPUs have spent
// busy since boot (/proc/stat is not namespaced); -1 when unreadable.
func hostBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// sandboxCPU is the CPU time, in seconds, of the cgroup at the root of
// the sandbox's cgroup namespace: everything in the sandbox; -1 when
// unreadable.
func sandboxCPU() float64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil { // v1: ns
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil {
			return v / 1e9
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu.stat"); err == nil { // cgroup2: usage_usec
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "usage_usec "); ok {
				if us, err := strconv.ParseFloat(v, 64); err == nil {
					return us / 1e6
				}
			}
		}
	}
	return -1
}

var noisyUsage = []string{ //nolint:gochecknoglobals // read only
	`wcp360_tenant_cpu_seconds_total{tenant="` + noisyA + `"}`,
	`wcp360_tenant_oom_kills_total{tenant="` + noisyA + `"}`,
	`wcp360_tenant_cpu_throttled_periods_total{tenant="` + noisyA + `"}`,
	`wcp360_tenant_cpu_seconds_total{tenant="` + noisyB + `"}`,
}

// phase measures B for noisyWindow, with A's load running when loaded.
func (n *noisy) phase(tb testing.TB, loaded bool) noisyResult {
	tb.Helper()
	loads := []*noisyLoad{{page: "/burn.php", clients: 4}, {page: "/mem.php", clients: 1}, {page: "/io.php", clients: 1}}
	var stop atomic.Bool
	var wg sync.WaitGroup
	if loaded {
		for _, l := range loads {
			for range l.clients {
				wg.Go(func() {
					for !stop.Load() {
						_, err := n.fetch(n.aClient, n.a, l.page)
						switch {
						case stop.Load(): // finished after B's window: not counted
						case err != nil:
							l.failed.Add(1)
							time.Sleep(10 * time.Millisecond)
						default:
							l.done.Add(1)
						}
					}
				})
			}
		}
		time.Sleep(noisyRampUp)
	}
	r := noisyResult{loaded: loaded, aDone: map[string]int64{}, aFailed: map[string]int64{}}
	for _, l := range loads {
		r.aDone[l.page], r.aFailed[l.page] = -l.done.Load(), -l.failed.Load()
	}
	before := n.w.metrics(tb, noisyUsage...)
	hostBefore, boxBefore := hostBusy(), sandboxCPU()
	var firstErr error
	r.lat, r.bErrors, firstErr = n.measureB()
	if firstErr != nil {
		tb.Logf("%d of B's requests failed, the first: %v", r.bErrors, firstErr)
	}
	r.hostCPU, r.sandboxCPU = -1, -1
	if hostAfter, boxAfter := hostBusy(), sandboxCPU(); min(hostBefore, boxBefore, hostAfter, boxAfter) >= 0 {
		r.hostCPU, r.sandboxCPU = hostAfter-hostBefore, boxAfter-boxBefore
	}
	after := n.w.metrics(tb, noisyUsage...)
	for _, l := range loads {
		r.aDone[l.page] += l.done.Load()
		r.aFailed[l.page] += l.failed.Load()
	}
	// A's requests in flight finish (PHP would run them anyway) before
	// the next phase.
	stop.Store(true)
	wg.Wait()
	r.aCPU, r.aOOM, r.aThrottled, r.bCPU = after[0]-before[0], after[1]-before[1], after[2]-before[2], after[3]-before[3]
	return r
}

// measureB runs noisyBClients sequential clients of B's page for
// noisyWindow: the latencies of the requests that succeeded, sorted, the
// number that failed and the first failure.
func (n *noisy) measureB() ([]time.Duration, int, error) {
	deadline := time.Now().Add(noisyWindow)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var first error
	var wg sync.WaitGroup
	for range noisyBClients {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			var firstBad error
			for time.Now().Before(deadline) {
				start := time.Now()
				if _, err := n.fetch(n.bClient, n.b, "/"); err != nil {
					bad++
					if firstBad == nil {
						firstBad = err
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			errs += bad
			if first == nil {
				first = firstBad
			}
		})
	}
	wg.Wait()
	slices.Sort(lat)
	return lat, errs, first
}

// pct is the p-th percentile of r's latencies in milliseconds.
func (r *noisyResult) pct(p int) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := min(len(r.lat)*p/100, len(r.lat)-1)
	return float64(r.lat[i].Microseconds()) / 1000
}

func (r *noisyResult) report(b *testing.B, base *noisyResult) {
	b.ReportMetric(r.pct(50), "B-p50-ms")
	b.ReportMetric(r.pct(90), "B-p90-ms")
	b.ReportMetric(r.pct(99), "B-p99-ms")
	b.ReportMetric(r.pct(100), "B-max-ms")
	b.ReportMetric(float64(len(r.lat)), "B-requests")
	b.ReportMetric(float64(r.bErrors), "B-errors")
	b.ReportMetric(r.bCPU, "B-cpu-s")
	if base != nil && base.pct(99) > 0 {
		b.ReportMetric(r.pct(99)/base.pct(99), "B-p99/baseline")
		b.ReportMetric(r.pct(50)/base.pct(50), "B-p50/baseline")
	}
	if r.hostCPU >= 0 && r.sandboxCPU >= 0 {
		b.ReportMetric(r.sandboxCPU, "sandbox-cpu-s")
		b.ReportMetric(max(r.hostCPU-r.sandboxCPU, 0), "others-cpu-s")
	}
	if !r.loaded {
		return
	}
	for _, k := range []struct{ page, name string }{{"/burn.php", "burns"}, {"/mem.php", "hogs"}, {"/io.php", "io-64MiB"}} {
		b.ReportMetric(float64(r.aDone[k.page]), "A-"+k.name)
		b.ReportMetric(float64(r.aFailed[k.page]), "A-"+k.name+"-failed")
	}
	b.ReportMetric(r.aOOM, "A-oom-kills")
	b.ReportMetric(r.aCPU, "A-cpu-s")
	b.ReportMetric(r.aThrottled, "A-throttled-periods")
}
