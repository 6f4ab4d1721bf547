package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// arrival is one reconcile seen by a managed controller.
type arrival struct {
	name string
	at   time.Time
}

// managed is a started Manager on a fresh database, with one recording
// controller per kind.
type managed struct {
	tb       testing.TB
	m        *Manager
	url      string
	appName  string
	arrivals map[v1alpha1.Kind]chan arrival
	lists    map[v1alpha1.Kind]*atomic.Int64
	conn     *pgx.Conn
	cancel   context.CancelFunc
	done     chan error
}

// kindSpec says what a managed controller's Lister returns.
type kindSpec struct {
	kind   v1alpha1.Kind
	lister func(ctx context.Context) ([]string, error)
}

func startManaged(tb testing.TB, mo ManagerOptions, kinds ...kindSpec) *managed {
	tb.Helper()
	h := &managed{tb: tb, url: pgtest.New(tb), appName: "wcp-test-" + randHex(tb),
		arrivals: map[v1alpha1.Kind]chan arrival{}, lists: map[v1alpha1.Kind]*atomic.Int64{}, done: make(chan error, 1)}
	mo.ConnString, mo.ApplicationName = h.url, h.appName
	mo.ListenerBackoffBase, mo.ListenerBackoffMax = 10*time.Millisecond, 100*time.Millisecond
	if mo.Logger == nil {
		mo.Logger = testLogger(tb)
	}
	h.m = NewManager(mo)
	for _, k := range kinds {
		h.addController(k, mo)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.m.Start(ctx) }()
	h.conn = connect(tb, h.url)
	tb.Cleanup(h.stop)
	return h
}

func (h *managed) addController(k kindSpec, mo ManagerOptions) {
	ch := make(chan arrival, 100000)
	n := new(atomic.Int64)
	h.arrivals[k.kind], h.lists[k.kind] = ch, n
	var lister func(context.Context) ([]string, error)
	if k.lister != nil {
		lister = func(ctx context.Context) ([]string, error) { n.Add(1); return k.lister(ctx) }
	}
	c, err := New(Options{Kind: k.kind, Workers: 4, Logger: mo.Logger, Lister: lister,
		Reconciler: ReconcilerFunc(func(_ context.Context, req Request) (Result, error) {
			ch <- arrival{req.Name, time.Now()}
			return Result{}, nil
		})})
	if err != nil {
		h.tb.Fatal(err)
	}
	if err := h.m.Add(c); err != nil {
		h.tb.Fatal(err)
	}
}

func (h *managed) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.tb.Errorf("Manager.Start: %v", err)
		}
	case <-time.After(wait):
		h.tb.Error("Manager.Start did not return")
	}
	if h.m.Ready() {
		h.tb.Error("Ready() after Start returned")
	}
	_ = h.conn.Close(context.Background())
}

func (h *managed) waitReady() {
	h.tb.Helper()
	deadline := time.Now().Add(wait)
	for !h.m.Ready() {
		if time.Now().After(deadline) {
			h.tb.Fatal("manager never Ready")
		}
		time.Sleep(time.Millisecond)
	}
	if err := h.m.Healthy(); err != nil {
		h.tb.Fatal(err)
	}
}

func (h *managed) notify(payload string) {
	h.tb.Helper()
	if _, err := h.conn.Exec(context.Background(), "SELECT pg_notify($1, $2)", DefaultChannel, payload); err != nil {
		h.tb.Fatal(err)
	}
}

// next waits for the next reconcile of kind.
func (h *managed) next(kind v1alpha1.Kind) arrival {
	h.tb.Helper()
	select {
	case a := <-h.arrivals[kind]:
		return a
	case <-time.After(wait):
		h.tb.Fatalf("no %s reconcile", kind)
		return arrival{}
	}
}

// nextNames waits for n reconciles of kind and returns their names, sorted.
func (h *managed) nextNames(kind v1alpha1.Kind, n int) []string {
	h.tb.Helper()
	var names []string
	for range n {
		names = append(names, h.next(kind).name)
	}
	slices.Sort(names)
	return names
}

func (h *managed) terminateListener() {
	h.tb.Helper()
	tag, err := h.conn.Exec(context.Background(),
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, h.appName)
	if err != nil || tag.RowsAffected() != 1 {
		h.tb.Fatalf("terminate listener: %v, %d rows", err, tag.RowsAffected())
	}
}

func TestManagerRoutesNotifications(t *testing.T) {
	h := startManaged(t, ManagerOptions{}, kindSpec{kind: v1alpha1.KindTenant}, kindSpec{kind: v1alpha1.KindDomain})
	h.waitReady()
	tests := []struct {
		payload string
		kind    v1alpha1.Kind
		name    string
	}{
		{"Tenant/acme", v1alpha1.KindTenant, "acme"},
		{"Domain/www-acme", v1alpha1.KindDomain, "www-acme"},
		{"Tenant/other", v1alpha1.KindTenant, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			h.notify(tt.payload)
			if a := h.next(tt.kind); a.name != tt.name {
				t.Errorf("%s reconciled %q, want %q", tt.kind, a.name, tt.name)
			}
		})
	}
	for _, ignored := range []string{"Database/db1", "garbage", "Tenant/", "/x", "Tenant/a/b"} {
		h.notify(ignored)
	}
	h.notify("Domain/sentinel")
	h.notify("Tenant/sentinel")
	if a := h.next(v1alpha1.KindDomain); a.name != "sentinel" {
		t.Errorf("Domain reconciled %q before the sentinel", a.name)
	}
	if a := h.next(v1alpha1.KindTenant); a.name != "sentinel" {
		t.Errorf("Tenant reconciled %q before the sentinel", a.name)
	}
}

func TestManagerRelistsOnConnectAndReconnect(t *testing.T) {
	tenants := func(context.Context) ([]string, error) { return []string{"t1", "t2"}, nil }
	domains := func(context.Context) ([]string, error) { return []string{"d1"}, nil }
	h := startManaged(t, ManagerOptions{},
		kindSpec{kind: v1alpha1.KindTenant, lister: tenants}, kindSpec{kind: v1alpha1.KindDomain, lister: domains})
	for round := range 3 {
		if got := h.nextNames(v1alpha1.KindTenant, 2); !slices.Equal(got, []string{"t1", "t2"}) {
			t.Fatalf("round %d: Tenant reconciled %v", round, got)
		}
		if got := h.nextNames(v1alpha1.KindDomain, 1); !slices.Equal(got, []string{"d1"}) {
			t.Fatalf("round %d: Domain reconciled %v", round, got)
		}
		h.waitReady()
		if round < 2 {
			h.terminateListener()
		}
	}
	if n := h.lists[v1alpha1.KindTenant].Load(); n != 3 {
		t.Errorf("Tenant listed %d times, want 3 (connect + 2 reconnects)", n)
	}
}

func TestManagerRelistRetriesAfterListError(t *testing.T) {
	var calls atomic.Int64
	flaky := func(context.Context) ([]string, error) {
		if calls.Add(1) <= 2 {
			return nil, errors.New("database busy")
		}
		return []string{"t1"}, nil
	}
	h := startManaged(t, ManagerOptions{}, kindSpec{kind: v1alpha1.KindTenant, lister: flaky})
	if a := h.next(v1alpha1.KindTenant); a.name != "t1" {
		t.Errorf("reconciled %q", a.name)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("listed %d times, want 3", n)
	}
}

func TestManagerPeriodicResync(t *testing.T) {
	lister := func(context.Context) ([]string, error) { return []string{"t1"}, nil }
	h := startManaged(t, ManagerOptions{ResyncInterval: 20 * time.Millisecond}, kindSpec{kind: v1alpha1.KindTenant, lister: lister})
	for range 4 { // one from the connect, the rest from the resync
		if a := h.next(v1alpha1.KindTenant); a.name != "t1" {
			t.Fatalf("reconciled %q", a.name)
		}
	}
	h.m.SetResync(time.Hour)
	h.m.SetRateLimit(100, 10)
}

func TestManagerAddErrors(t *testing.T) {
	m := NewManager(ManagerOptions{ConnString: "postgres://localhost/x"})
	mk := func(k v1alpha1.Kind) *Controller {
		c, err := New(Options{Kind: k, Reconciler: ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil })})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := m.Add(mk(v1alpha1.KindTenant)); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(mk(v1alpha1.KindTenant)); err == nil {
		t.Error("a second Tenant controller was accepted")
	}
	if m.Ready() || !errors.Is(m.Healthy(), ErrNotConnected) {
		t.Error("Ready before Start")
	}
}

func TestManagerBadConnString(t *testing.T) {
	m := NewManager(ManagerOptions{ConnString: "postgres://%zz"})
	if err := m.Start(context.Background()); err == nil {
		t.Error("Start succeeded with a bad connection string")
	}
}

// TestNotifyToReconcileLatency reports (does not assert) how long a committed
// NOTIFY takes to become a Reconcile call.
func TestNotifyToReconcileLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency figures")
	}
	h := startManaged(t, ManagerOptions{Logger: discardLogger()}, kindSpec{kind: v1alpha1.KindTenant})
	h.waitReady()
	const n = 200
	h.measure(20) // warm up the fresh backends and caches
	lat := h.measure(n)
	t.Logf("NOTIFY->Reconcile over %d sequential notifications: p50=%s p99=%s max=%s", n,
		percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))

	// A burst: all sent, then all awaited; dedupe may merge nothing here as names differ.
	t0 := time.Now()
	for i := range n {
		h.notify(fmt.Sprintf("Tenant/burst-%d", i))
	}
	sent := time.Since(t0)
	h.nextNames(v1alpha1.KindTenant, n)
	t.Logf("burst of %d: sent in %s, all reconciled after %s", n, sent, time.Since(t0))
}

// measure sends n notifications one at a time and returns each one's
// NOTIFY-to-Reconcile latency, sorted.
func (h *managed) measure(n int) []time.Duration {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprint("lat-", i)
		t0 := time.Now()
		h.notify("Tenant/" + name)
		a := h.next(v1alpha1.KindTenant)
		if a.name != name {
			h.tb.Fatalf("reconciled %q, want %q", a.name, name)
		}
		lat = append(lat, a.at.Sub(t0))
	}
	slices.Sort(lat)
	return lat
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchmarkNotifyToReconcile reports the latency from a committed NOTIFY to
// the start of its Reconcile, over 1,000 samples per iteration (so that
// -benchtime 1x still yields meaningful percentiles).
func BenchmarkNotifyToReconcile(b *testing.B) {
	h := startManaged(b, ManagerOptions{Logger: discardLogger()}, kindSpec{kind: v1alpha1.KindTenant})
	h.waitReady()
	h.measure(50) // warm up the connections
	var lat []time.Duration
	for b.Loop() {
		lat = append(lat, h.measure(1000)...)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, 50).Microseconds()), "p50-us")
	b.ReportMetric(float64(percentile(lat, 99).Microseconds()), "p99-us")
}

func connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	return conn
}

func randHex(tb testing.TB) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}
