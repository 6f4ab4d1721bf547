// Package bench measures wcpd end to end: a real wcpd binary, a real
// PostgreSQL, resources applied through the REST API on the unix socket.
// Figures are reported with b.ReportMetric; nothing here passes or fails on time.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/internal/cmdrun"
	"github.com/wcp360/wcp360/internal/metrics"
	"github.com/wcp360/wcp360/internal/sandbox"
	"github.com/wcp360/wcp360/internal/testutil/apitest"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// wcpd turns tenants into Linux users and homes: the benchmarks only run
// inside a sandbox (make bench runs them under bin/wcp-sandbox), never on
// the host itself.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" && !sandbox.Inside() {
		fmt.Fprintln(os.Stderr, "test/bench creates thousands of Linux users: run it with `make bench` (inside wcp-sandbox), not on the host")
		os.Exit(1)
	}
	os.Exit(pgtest.Main(m))
}

type wcpd struct {
	proc *cmdrun.Process
	// bin and cfg are the binary and its configuration file, for restart.
	bin, cfg string
	socket   string
	client   *http.Client
	logs     *bytes.Buffer
	out      *lockedWriter // writes to logs
}

func buildWcpd(tb testing.TB) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "wcpd")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	goBin, err := cmdrun.LookPath("go", "/usr/local/go/bin")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := cmdrun.Run(context.Background(), cmdrun.Cmd{Path: goBin, Dir: root,
		Args: []string{"build", "-o", out, "./cmd/wcpd"},
		Env:  []string{"HOME=" + os.Getenv("HOME"), "GOPATH=" + os.Getenv("GOPATH"), "GOCACHE=" + os.Getenv("GOCACHE"), "GOFLAGS=" + os.Getenv("GOFLAGS")},
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

// noACME is the acme section without a CA: acme domains serve the
// self-signed placeholder.
const noACME = "acme:\n  directory: \"\"\n"

func startWcpd(tb testing.TB, workers int) *wcpd {
	tb.Helper()
	return startWcpdWith(tb, workers, noACME)
}

// startWcpdWith starts wcpd with the given acme section.
func startWcpdWith(tb testing.TB, workers int, acme string) *wcpd {
	tb.Helper()
	bin := buildWcpd(tb)
	dir := tb.TempDir()
	// The state dir holds the ACME challenges nginx (www-data) serves, as
	// /var/lib/wcp360 does: traversable by all.
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil { //nolint:gosec // as /var/lib/wcp360
			tb.Fatal(err)
		}
	}
	socket := filepath.Join(dir, "wcpd.sock")
	cfg := filepath.Join(dir, "wcpd.yaml")
	body := fmt.Sprintf("node: bench\ndatabase:\n  url: %q\n  maxConns: 20\napi:\n  socket: %s\npaths:\n  runDir: %s\n  stateDir: %s\n"+
		"controllers:\n  workers: %d\n  rateLimit: 10000\n  rateBurst: 10000\nlog:\n  level: %s\n%s",
		// runDir is the sandbox's /run: nginx (www-data) must reach the PHP
		// sockets in it, which it cannot through a 0700 temporary directory.
		pgtest.New(tb), socket, "/run/wcp360", dir, workers, logLevel(), acme)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	w := &wcpd{bin: bin, cfg: cfg, socket: socket, logs: &bytes.Buffer{}}
	w.out = &lockedWriter{w: w.logs}
	w.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	tb.Cleanup(func() { w.stop() })
	w.launch(tb)
	// First boot, as `wcp init` does: root on the socket.
	resp, err := w.client.Post("http://wcpd/api/v1/bootstrap", "application/json", strings.NewReader("{}"))
	if err != nil {
		tb.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		tb.Fatalf("first boot: %s\n%s", resp.Status, w.logs)
	}
	return w
}

// launch starts wcpd and waits until it is healthy.
func (w *wcpd) launch(tb testing.TB) {
	tb.Helper()
	p, err := cmdrun.Start(context.Background(), cmdrun.Cmd{Path: w.bin, Args: []string{"serve", "--config", w.cfg}}, w.out)
	if err != nil {
		tb.Fatal(err)
	}
	w.proc = p
	for i := 0; ; i++ {
		resp, err := w.client.Get("http://wcpd/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if i > 600 {
			tb.Fatalf("wcpd not healthy: %v\n%s", err, w.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop stops wcpd (SIGTERM, SIGKILL after a minute) and reports whether
// it exited within that minute.
func (w *wcpd) stop() bool {
	if w.proc == nil {
		return true
	}
	_ = w.proc.Signal(syscall.SIGTERM)
	select {
	case <-w.proc.Done():
		return true
	case <-time.After(60 * time.Second):
		_ = w.proc.Signal(syscall.SIGKILL)
		<-w.proc.Done()
		return false
	}
}

// restart stops wcpd and starts it again, same database and state, with
// extra appended to its configuration file (top-level sections the file
// does not have yet, e.g. "isolation:\n  cpuPeriod: 10ms\n"). The PHP
// masters keep running; wcpd adopts them and resyncs every resource.
func (w *wcpd) restart(tb testing.TB, extra string) {
	tb.Helper()
	if !w.stop() {
		tb.Fatalf("wcpd did not stop within a minute\n%s", w.logs)
	}
	w.client.CloseIdleConnections()
	f, err := os.OpenFile(w.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	_, err = f.WriteString(extra)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatal(err)
	}
	w.launch(tb)
}

// profileDir is $WCP_BENCH_PROFILE: a directory (outside the sandbox's
// tmpfs, e.g. under the working tree) that receives, for the benchmarks
// that profile, a CPU profile and an execution trace of wcpd taken during
// the measured burst, and wcpd's log at level debug.
func profileDir() string { return os.Getenv("WCP_BENCH_PROFILE") }

func logLevel() string {
	if profileDir() != "" {
		return "debug"
	}
	return "warn"
}

// profile starts a CPU profile and an execution trace of wcpd of the given
// length when $WCP_BENCH_PROFILE is set; the returned func waits for them
// and writes them there with wcpd's log so far.
func (w *wcpd) profile(tb testing.TB, name string, seconds int) (wait func()) {
	tb.Helper()
	dir := profileDir()
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, p := range []string{"profile", "trace"} {
		wg.Go(func() {
			c := &http.Client{Transport: w.client.Transport}
			resp, err := c.Get(fmt.Sprintf("http://wcpd/debug/pprof/%s?seconds=%d", p, seconds))
			if err != nil {
				tb.Error(err)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, name+"."+p), b, 0o644)
			}
			if err != nil {
				tb.Error(err)
			}
		})
	}
	return func() {
		wg.Wait()
		if err := os.WriteFile(filepath.Join(dir, name+".log"), w.logBytes(), 0o644); err != nil {
			tb.Error(err)
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logBytes is a copy of wcpd's log so far.
func (w *wcpd) logBytes() []byte {
	w.out.mu.Lock()
	defer w.out.mu.Unlock()
	return bytes.Clone(w.logs.Bytes())
}

func (w *wcpd) put(plural, name string, obj any) error {
	b, _ := json.Marshal(obj)
	req, _ := http.NewRequest(http.MethodPut, "http://wcpd/api/v1/"+plural+"/"+name, bytes.NewReader(b))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("PUT %s/%s: %d %s", plural, name, resp.StatusCode, body)
	}
	return nil
}

type item struct {
	plural, name string
	obj          any
}

func manifests(prefix string, tenants, domainsPerTenant int) (ts, ds []item) {
	for i := range tenants {
		tn := fmt.Sprintf("%s%05d", prefix, i)
		ts = append(ts, item{"tenants", tn, map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant",
			"metadata": map[string]any{"name": tn, "labels": map[string]any{"plan": "bench"}},
			"spec":     map[string]any{"limits": map[string]any{"memoryMax": "1Gi", "cpu": "100%"}}}})
		for j := range domainsPerTenant {
			dn := fmt.Sprintf("d%d.%s.example", j, tn)
			ds = append(ds, item{"domains", dn, map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Domain",
				"metadata": map[string]any{"name": dn}, "spec": map[string]any{"tenant": tn, "aliases": []string{"www." + dn},
					// Static sites: a PHP-FPM master per tenant (6.5 MB each) is
					// measured by internal/host/phpfpm's benchmarks, and would
					// need 32 GB for the 5,000 tenants of the RSS benchmark.
					"php": map[string]any{"enabled": false}}}})
		}
	}
	return ts, ds
}

// applyAll PUTs items with `parallel` concurrent clients.
func (w *wcpd) applyAll(tb testing.TB, items []item, parallel int) {
	tb.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for range parallel {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				if err := w.put(items[i].plural, items[i].name, items[i].obj); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// metrics reads samples without labels from GET /metrics.
func (w *wcpd) metrics(tb testing.TB, names ...string) []float64 {
	tb.Helper()
	resp, err := w.client.Get("http://wcpd/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, body)
	}
	out := make([]float64, len(names))
	for i, n := range names {
		v, ok, err := metrics.Value(body, n)
		if err != nil || !ok {
			tb.Fatalf("GET /metrics: %s: %v", n, err)
		}
		out[i] = v
	}
	return out
}

// waitAllReady polls the list endpoint until every resource of plural is Ready.
func (w *wcpd) waitAllReady(tb testing.TB, plural string, want int) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := w.client.Get("http://wcpd/api/v1/" + plural)
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			tb.Fatal(err)
		}
		ready, err := apitest.CountReady(body)
		if err != nil {
			tb.Fatal(err)
		}
		if ready >= want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	tb.Fatalf("%s not all Ready in time\n%s", plural, w.logs)
}

// BenchmarkApply1000Tenants1000Domains applies 1,000 tenants and 1,000 domains
// through the API (8 concurrent clients) and waits until all are Ready
// (Ready means serving; every page is then checked, untimed), and reports
// the nginx reloads and account file writes the burst took, from wcpd's
// GET /metrics.
func BenchmarkApply1000Tenants1000Domains(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		w := startWcpd(b, 4)
		ts, ds := manifests("a", 1000, 1)
		counters := []string{"wcp360_nginx_reloads_total", "wcp360_nginx_tests_total", "wcp360_account_batches_total"}
		before := w.metrics(b, counters...)
		b.StartTimer()
		start := time.Now()
		profiled := w.profile(b, "apply1000", 30)
		w.applyAll(b, ts, 8)
		w.applyAll(b, ds, 8)
		applied := time.Since(start)
		w.waitAllReady(b, "tenants", len(ts))
		w.waitAllReady(b, "domains", len(ds))
		converged := time.Since(start)
		b.StopTimer()
		after := w.metrics(b, counters...)
		for _, d := range ds {
			waitSite(b, d.name) // Ready means serving: every page answers
		}
		profiled()
		b.StartTimer()
		b.ReportMetric(applied.Seconds(), "apply-s")
		b.ReportMetric(float64(len(ts)+len(ds))/applied.Seconds(), "applied-resources/s")
		b.ReportMetric(converged.Seconds(), "all-ready-s")
		b.ReportMetric(after[0]-before[0], "nginx-reloads")
		b.ReportMetric(after[1]-before[1], "nginx-t")
		b.ReportMetric(after[2]-before[2], "account-writes")
		// Applying the same 2,000 manifests again changes nothing.
		again := time.Now()
		w.applyAll(b, ts, 8)
		w.applyAll(b, ds, 8)
		b.ReportMetric(float64(len(ts)+len(ds))/time.Since(again).Seconds(), "unchanged-applies/s")
	}
}

// BenchmarkRSS10000Resources reports wcpd's resident memory with 10,000
// resources (5,000 tenants, 5,000 domains) stored and reconciled.
func BenchmarkRSS10000Resources(b *testing.B) {
	for b.Loop() {
		w := startWcpd(b, 4)
		idle := rss(b, w.proc.Pid())
		ts, ds := manifests("r", 5000, 1)
		w.applyAll(b, ts, 8)
		w.applyAll(b, ds, 8)
		w.waitAllReady(b, "tenants", len(ts))
		w.waitAllReady(b, "domains", len(ds))
		runtime.GC()
		b.ReportMetric(idle/1024, "idle-RSS-MiB")
		b.ReportMetric(rss(b, w.proc.Pid())/1024, "RSS-MiB")
		b.ReportMetric(hwm(b, w.proc.Pid())/1024, "peak-RSS-MiB")
	}
}

func rss(tb testing.TB, pid int) float64 { return procStatusKiB(tb, pid, "VmRSS:") }
func hwm(tb testing.TB, pid int) float64 { return procStatusKiB(tb, pid, "VmHWM:") }

func procStatusKiB(tb testing.TB, pid int, field string) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	tb.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}
