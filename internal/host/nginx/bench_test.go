package nginx

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Scale benchmarks (issue item 6): N PHP sites in /etc/nginx, with this
// package's site template ("lean") and with a conventional one
// (testdata/classic-site.conf.tmpl, "classic"). The "-sharederrlog"
// variants send every site's errors to one file (Options.SharedErrorLog),
// and the classic one also opens its access logs lazily like ours: they
// compare the templates without the cost of the log files, which is the
// same for both and which this host's limit of 20,000 descriptors cannot
// afford at 10,000 sites. Figures, not pass/fail. They
// write to /etc/nginx and /srv/www: run them in a sandbox,
//
//	bin/wcp-sandbox -- go test -run '^$' -bench . -benchtime 1x -timeout 60m ./internal/host/nginx/
//
// Reported: nginx -t seconds; reload seconds until the new workers serve
// (SIGHUP to in effect, as Apply waits); the master's VmRSS before and
// after that reload; an Apply of one more site at that scale, until it
// serves.
func BenchmarkSites(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, design := range []string{"lean", "lean-sharederrlog", "classic", "classic-sharederrlog"} {
			b.Run(fmt.Sprintf("%s/%d", design, n), func(b *testing.B) {
				for b.Loop() {
					benchSites(b, design, n)
				}
			})
		}
	}
}

// BenchmarkApplyAtOnce applies N new PHP sites concurrently (as a burst of
// Domain reconciles does) and reports the time until every Apply returned
// (each returns once its site serves), and the reloads it took.
func BenchmarkApplyAtOnce(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				m := benchReset(b, false)
				sites := benchSiteList(b, n)
				before := m.Stats()
				b.StartTimer()
				start := time.Now()
				for i, err := range applyAll(m, sites) {
					if err != nil {
						b.Fatalf("%s: %v", sites[i].Domain, err)
					}
				}
				took := time.Since(start)
				st := m.Stats()
				b.ReportMetric(took.Seconds(), "s")
				b.ReportMetric(float64(st.Reloads-before.Reloads), "reloads")
				b.ReportMetric(float64(st.Tests-before.Tests), "nginx-t")
				b.Logf("batches: %v", st.BatchSizes[len(before.BatchSizes):])
			}
		})
	}
}

func benchSites(b *testing.B, design string, n int) {
	b.StopTimer()
	shared := strings.HasSuffix(design, "-sharederrlog")
	m := benchReset(b, shared)
	caps, err := m.Capabilities(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	classic := template.Must(template.New("classic-site.conf.tmpl").Funcs(template.FuncMap{"join": strings.Join}).
		ParseFiles("testdata/classic-site.conf.tmpl"))
	var bytes int
	for _, s := range benchSiteList(b, n) {
		var data []byte
		switch design {
		case "lean", "lean-sharederrlog":
			data, err = m.Render(s, caps)
		default:
			var sb strings.Builder
			suffix := ""
			if shared {
				suffix = "$wcp360_log"
			}
			err = classic.Execute(&sb, map[string]any{
				"Names": s.ServerNames, "Root": s.DocumentRoot, "PHPSocket": s.PHPSocket,
				"AccessLog": m.accessLog(s), "AccessLogSuffix": suffix, "ErrorLog": m.errorLog(s),
			})
			data = []byte(sb.String())
		}
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(data)
		if err := os.WriteFile(m.SitePath(s.Domain), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer()

	start := time.Now()
	msg, err := m.test(context.Background())
	if err != nil {
		b.Logf("%s, %d sites: nginx -t fails after %.2fs: %s", design, n, time.Since(start).Seconds(), msg)
		b.ReportMetric(1, "failed")
		return
	}
	b.ReportMetric(time.Since(start).Seconds(), "nginx-t-s")
	pid, err := m.masterPID()
	if err != nil || pid == 0 {
		b.Fatalf("no master: %v", err)
	}
	// The first reload loads the n sites into a master that had none; the
	// second is the steady state (one site changed among n): its time, and
	// the master's memory with two configurations' worth of allocations.
	if err := m.reload(context.Background()); err != nil {
		b.Logf("%s, %d sites: the first reload fails: %v", design, n, err)
		b.ReportMetric(1, "failed")
		return
	}
	b.ReportMetric(vmRSS(b, pid), "rss-MB")
	start = time.Now()
	if err := m.reload(context.Background()); err != nil {
		b.Logf("%s, %d sites: the second reload fails: %v", design, n, err)
		b.ReportMetric(1, "failed")
		return
	}
	b.ReportMetric(time.Since(start).Seconds(), "reload-s")
	b.ReportMetric(vmRSS(b, pid), "rss-2nd-reload-MB")
	b.ReportMetric(float64(bytes)/float64(n), "B/site-file")

	if strings.HasPrefix(design, "lean") {
		one := benchSiteList(b, n+1)[n]
		start = time.Now()
		if err := m.Apply(context.Background(), one); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "apply-one-s")
	}
}

// benchReset stops nginx, empties the sites and starts the base afresh.
func benchReset(b *testing.B, sharedErrorLog bool) *Manager {
	b.Helper()
	opts := Options{Window: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	if sharedErrorLog {
		opts.SharedErrorLog = "/var/log/nginx/wcp360-sites.error.log"
	}
	m := newManager(b, opts)
	if pid, err := m.masterPID(); err == nil && pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if _, ok := readProc(pid); !ok {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("nginx did not stop")
			}
		}
	}
	for _, d := range []string{m.sitesDir(), "/srv/www/bench"} {
		if err := os.RemoveAll(d); err != nil {
			b.Fatal(err)
		}
	}
	if err := m.EnsureRunning(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m
}

// benchSiteList lays out n tenants' log directories and document roots and
// returns a PHP site for each (the PHP sockets need not exist for nginx).
func benchSiteList(b *testing.B, n int) []Site {
	b.Helper()
	sites := make([]Site, n)
	for i := range sites {
		t := fmt.Sprintf("t%05d", i)
		d := fmt.Sprintf("site%05d.bench.test", i)
		home := filepath.Join("/srv/www/bench", t)
		s := Site{Domain: d, Tenant: t, ServerNames: []string{d, "www." + d},
			DocumentRoot: filepath.Join(home, "domains", d, "public"), LogDir: filepath.Join(home, "logs"),
			PHPSocket: "/run/wcp360/php/" + t + ".sock"}
		for _, dir := range []string{s.LogDir, s.DocumentRoot} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(s.DocumentRoot, "index.html"), []byte(d), 0o644); err != nil {
			b.Fatal(err)
		}
		sites[i] = s
	}
	return sites
}

// vmRSS is a process's resident set in MB.
func vmRSS(b *testing.B, pid int) float64 {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
