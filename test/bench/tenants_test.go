package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/controllers"
	"github.com/wcp360/wcp360/internal/host/snapshot"
	"github.com/wcp360/wcp360/internal/host/tenant"
	"github.com/wcp360/wcp360/internal/host/users"
	"github.com/wcp360/wcp360/internal/reconcile"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// BenchmarkConverge1000Tenants applies 1,000 tenants to a wcpd on a host
// with none of them and measures until all are Ready: 1,000 Linux users,
// groups and homes created.
func BenchmarkConverge1000Tenants(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		w := startWcpd(b, 4)
		ts, _ := manifests(fmt.Sprintf("c%d", i), 1000, 0)
		b.StartTimer()
		start := time.Now()
		w.applyAll(b, ts, 8)
		w.waitAllReady(b, "tenants", len(ts))
		took := time.Since(start)
		b.ReportMetric(took.Seconds(), "converge-s")
		b.ReportMetric(float64(len(ts))/took.Seconds(), "tenants/s")
	}
}

// BenchmarkNoopResync1000Tenants reconciles 1,000 converged tenants again,
// as a periodic resync does, and reports its cost and what it wrote
// (nothing, when the host matches).
func BenchmarkNoopResync1000Tenants(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, pgtest.New(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.MigrateUp(ctx); err != nil {
		b.Fatal(err)
	}
	snaps, err := snapshot.New(snapshot.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	step, err := tenant.New(tenant.Options{WWWRoot: "/srv/www", Users: &users.DB{Root: "/", Now: time.Now},
		Snapshots: snaps, UIDMin: 40000, UIDMax: 49999, ArchiveDir: b.TempDir(), Clock: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	var rec reconcile.Reconciler
	for _, c := range controllers.New(controllers.Options{Store: st, Node: "bench",
		Steps: map[v1alpha1.Kind][]controllers.Step{v1alpha1.KindTenant: {step}}}) {
		if c.Kind == v1alpha1.KindTenant {
			rec = c.Reconciler
		}
	}
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("n%05d", i)
		if _, err := st.Apply(ctx, store.ApplyRequest{Kind: v1alpha1.KindTenant, Name: names[i], Node: "bench",
			Spec: json.RawMessage(`{}`)}); err != nil {
			b.Fatal(err)
		}
	}
	pass := func() {
		for _, n := range names {
			if _, err := rec.Reconcile(ctx, reconcile.Request{Kind: v1alpha1.KindTenant, Name: n}); err != nil {
				b.Fatal(err)
			}
		}
	}
	pass() // converge them (not measured)
	before, rvBefore := hostStamps(b), resourceVersions(b, st)
	var took time.Duration
	passes := 0
	for b.Loop() {
		start := time.Now()
		pass()
		took += time.Since(start)
		passes++
	}
	after, rvAfter := hostStamps(b), resourceVersions(b, st)
	written := 0
	for p, s := range after {
		if before[p] != s {
			written++
		}
	}
	written += len(before) - len(after) // removed files count too
	b.ReportMetric(float64(took.Milliseconds())/float64(passes), "ms/resync")
	b.ReportMetric(float64(took.Microseconds())/float64(passes*len(names)), "µs/tenant")
	b.ReportMetric(float64(written), "files-written")
	b.ReportMetric(float64(rvAfter-rvBefore), "status-writes")
}

type stamp struct {
	ino          uint64
	mtime, ctime int64
}

// hostStamps records every file and directory a tenant reconcile may
// write: the account files and all of /srv/www.
func hostStamps(tb testing.TB) map[string]stamp {
	tb.Helper()
	out := map[string]stamp{}
	add := func(p string, fi fs.FileInfo) {
		st := fi.Sys().(*syscall.Stat_t)
		out[p] = stamp{st.Ino, st.Mtim.Nano(), st.Ctim.Nano()}
	}
	for _, f := range []string{"passwd", "shadow", "group", "gshadow"} {
		fi, err := os.Stat(filepath.Join("/etc", f))
		if err != nil {
			tb.Fatal(err)
		}
		add("/etc/"+f, fi)
	}
	err := filepath.Walk("/srv/www", func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		add(p, fi)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func resourceVersions(tb testing.TB, st *store.Store) int64 {
	tb.Helper()
	rows, err := st.List(context.Background(), v1alpha1.KindTenant, store.ListOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var sum int64
	for _, r := range rows {
		sum += r.ResourceVersion
	}
	return sum
}

// BenchmarkApplyToPage measures, 50 times, the time from the API apply of a
// new tenant and its domain to nginx answering for the domain with the
// tenant's site (not the default server): Linux user, home, document root,
// certificate, PHP-FPM master, nginx site, reload confirmed.
func BenchmarkApplyToPage(b *testing.B) {
	const runs = 50
	for i := range b.N {
		b.StopTimer()
		w := startWcpd(b, 4)
		var lat []time.Duration
		for r := range runs {
			tn := fmt.Sprintf("p%d%03d", i, r)
			dn := tn + ".example"
			ten := map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Tenant",
				"metadata": map[string]any{"name": tn}, "spec": map[string]any{}}
			dom := map[string]any{"apiVersion": "wcp360.io/v1alpha1", "kind": "Domain",
				"metadata": map[string]any{"name": dn}, "spec": map[string]any{"tenant": tn}}
			b.StartTimer()
			start := time.Now()
			if err := w.put("tenants", tn, ten); err != nil {
				b.Fatal(err)
			}
			if err := w.put("domains", dn, dom); err != nil {
				b.Fatal(err)
			}
			waitSite(b, dn)
			lat = append(lat, time.Since(start))
			b.StopTimer()
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	}
}

// waitSite polls nginx until host is answered by its own site: the default
// server's answers carry none of the security headers every site sends.
func waitSite(tb testing.TB, host string) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.Header.Get("X-Content-Type-Options") != "" {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	tb.Fatalf("%s not served within a minute", host)
}
