package notifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// wait is how long a test waits for something that should happen promptly.
const wait = 20 * time.Second

type note struct{ channel, payload string }

// harness runs one Notifier against a fresh database and records its callbacks.
type harness struct {
	t        *testing.T
	url      string
	appName  string
	n        *Notifier
	notes    chan note
	connects chan struct{}
	done     chan error
}

func startHarness(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, url: pgtest.New(t), appName: "wcp-test-" + randHex(t),
		notes: make(chan note, 1000), connects: make(chan struct{}, 100), done: make(chan error, 1)}
	opts := Options{
		ConnString:      h.url,
		Channels:        []string{"wcp_resources"},
		OnNotification:  func(ch, p string) { h.notes <- note{ch, p} },
		OnConnect:       func() { h.connects <- struct{}{} },
		BackoffBase:     10 * time.Millisecond,
		BackoffMax:      200 * time.Millisecond,
		Logger:          testLogger(t),
		ApplicationName: h.appName,
	}
	if tweak != nil {
		tweak(&opts)
	}
	n, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.n = n
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("Run did not return after cancel")
		}
		if n.Connected() {
			t.Error("Connected() after Run returned")
		}
	})
	return h
}

func (h *harness) waitConnect() {
	h.t.Helper()
	select {
	case <-h.connects:
	case <-time.After(wait):
		h.t.Fatal("no OnConnect")
	}
}

func (h *harness) waitNote() note {
	h.t.Helper()
	select {
	case n := <-h.notes:
		return n
	case <-time.After(wait):
		h.t.Fatal("no notification")
		return note{}
	}
}

// notify sends pg_notify from another connection, committed on return.
func (h *harness) notify(channel, payload string) {
	h.t.Helper()
	h.exec("SELECT pg_notify($1, $2)", channel, payload)
}

func (h *harness) exec(sql string, args ...any) int64 {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.url)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

// terminate kills the listener's backend, found by its application_name.
func (h *harness) terminate() {
	h.t.Helper()
	n := h.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, h.appName)
	if n != 1 {
		h.t.Fatalf("terminated %d backends, want 1", n)
	}
}

func TestNotify(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.Channels = []string{"wcp_resources", "Odd-Channel"} })
	h.waitConnect()
	if !h.n.Connected() {
		t.Fatal("not Connected() after OnConnect")
	}
	tests := []struct {
		name    string
		channel string
		payload string
	}{
		{"resource key", "wcp_resources", "Tenant/a"},
		{"empty payload", "wcp_resources", ""},
		{"non-ascii payload", "wcp_resources", "Domain/é"},
		{"second channel needing quotes", "Odd-Channel", "Database/db1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.notify(tt.channel, tt.payload)
			if got := h.waitNote(); got != (note{tt.channel, tt.payload}) {
				t.Errorf("got %+v, want {%s %s}", got, tt.channel, tt.payload)
			}
		})
	}
	h.notify("not_listened", "x")
	h.notify("wcp_resources", "sentinel")
	if got := h.waitNote(); got.payload != "sentinel" {
		t.Errorf("got %+v, want only the sentinel", got)
	}
}

func TestNotifyInTransactionArrivesAfterCommit(t *testing.T) {
	h := startHarness(t, nil)
	h.waitConnect()
	h.exec(`DO $$ BEGIN PERFORM pg_notify('wcp_resources', 'Tenant/a'); PERFORM pg_notify('wcp_resources', 'Tenant/b'); END $$`)
	for _, want := range []string{"Tenant/a", "Tenant/b"} {
		if got := h.waitNote(); got.payload != want {
			t.Errorf("got %q, want %q", got.payload, want)
		}
	}
}

func TestReconnect(t *testing.T) {
	h := startHarness(t, nil)
	h.waitConnect()
	for i := range 3 {
		h.terminate()
		h.waitConnect()
		if !h.n.Connected() {
			t.Fatalf("round %d: not Connected() after OnConnect", i)
		}
		h.notify("wcp_resources", "Tenant/after-reconnect")
		if got := h.waitNote(); got.payload != "Tenant/after-reconnect" {
			t.Fatalf("round %d: got %+v", i, got)
		}
	}
	if got := h.n.Stats().Connects; got != 4 {
		t.Errorf("Connects = %d, want 4", got)
	}
}

func TestHealthPingKeepsConnection(t *testing.T) {
	h := startHarness(t, func(o *Options) { o.HealthInterval = 20 * time.Millisecond })
	h.waitConnect()
	// Several health intervals pass while the test waits for the server to
	// report the listener idle after a ping; the notification must still arrive.
	deadline := time.Now().Add(wait)
	for h.exec(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query = '-- ping'`, h.appName) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("listener never pinged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.notify("wcp_resources", "Tenant/x")
	if got := h.waitNote(); got.payload != "Tenant/x" {
		t.Errorf("got %+v", got)
	}
	if got := h.n.Stats().Connects; got != 1 {
		t.Errorf("Connects = %d, want 1 (a ping timeout must not reconnect)", got)
	}
}

func TestOverflowResyncs(t *testing.T) {
	gate := make(chan struct{})
	var first atomic.Bool
	var h *harness
	h = startHarness(t, func(o *Options) {
		o.BufferSize = 1
		o.OnNotification = func(ch, p string) {
			if first.CompareAndSwap(false, true) {
				<-gate // a slow consumer
			}
			h.notes <- note{ch, p}
		}
	})
	h.waitConnect()
	h.exec(`SELECT pg_notify('wcp_resources', 'Tenant/' || i) FROM generate_series(1, 50) i`)
	deadline := time.Now().Add(wait)
	for h.n.Stats().Dropped == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing dropped: %+v", h.n.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	h.waitConnect() // the resync that replaces what was dropped
	st := h.n.Stats()
	if st.Connects != 1 || st.Dropped == 0 {
		t.Errorf("Stats = %+v, want 1 connect and some dropped", st)
	}
}

func TestRetriesUntilCancelled(t *testing.T) {
	n, err := New(Options{
		ConnString:  "host=/nonexistent-wcp-socket-dir port=5432 user=x dbname=x sslmode=disable",
		Channels:    []string{"c"},
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after ctx ends", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	if n.Connected() || n.Stats().Connects != 0 {
		t.Errorf("Connected=%v Stats=%+v", n.Connected(), n.Stats())
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no channels", Options{ConnString: "postgres://localhost/x"}},
		{"bad conn string", Options{ConnString: "postgres://%zz", Channels: []string{"c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	n, err := New(Options{ConnString: "postgres://localhost/x", Channels: []string{"c"},
		BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second},
		{1000, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := n.backoff(tt.attempt); d < tt.ceil/2 || d > tt.ceil {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", tt.attempt, d, tt.ceil/2, tt.ceil)
			}
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func randHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
