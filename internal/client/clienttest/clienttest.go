// Package clienttest runs a real wcpd API for tests of the client and the
// command line: the api package's handler over a real PostgreSQL store (a
// fresh database from pgtest), served on a unix socket and over TCP.
//
// A package that uses it runs its tests through pgtest.Main; one that uses
// StartAuth (the real PAM, which needs users and passwords) through
// sandbox.MainFunc(func() int { return pgtest.Main(m) }), each such test
// in a sandbox of its own (sandbox.Run).
package clienttest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/api"
	"github.com/wcp360/wcp360/internal/store"
	"github.com/wcp360/wcp360/internal/testutil/pgtest"
)

// Node is the node name of the test daemon.
const Node = "test-node"

// Daemon is a running API over a real store.
type Daemon struct {
	// Socket is the unix socket path the API is served on.
	Socket string
	// URL is the same API over TCP on the loopback ("http://127.0.0.1:port").
	URL string
	// Store is the daemon's store, for writes only a controller makes.
	Store *store.Store

	mu       sync.Mutex
	enqueued []Key
	kick     chan struct{} // an enqueue wakes the stand-in controller
}

// Key names one resource.
type Key struct {
	Kind v1alpha1.Kind
	Name string
}

// Options configure a test daemon.
type Options struct {
	// Observer answers GET .../drift; nil answers 501, as a daemon that does
	// not observe the host.
	Observer api.Observer
	// NoControllers answers POST .../reconcile with 501, as a daemon without
	// controllers. Otherwise a reconcile request is recorded (Enqueued) and
	// wakes the stand-in controller of RunController at once.
	NoControllers bool
	// Metrics answers GET /metrics; nil answers 501.
	Metrics func(w io.Writer) error
}

// Start runs a daemon for tb; everything is stopped and dropped when tb ends.
func Start(tb testing.TB) *Daemon {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options.
func StartWith(tb testing.TB, opts Options) *Daemon {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, pgtest.New(tb), store.Options{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(st.Close)
	if err := st.MigrateUp(ctx); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	d := &Daemon{Store: st, Socket: socketPath(tb), kick: make(chan struct{}, 1)}
	ao := api.Options{Store: st, Logger: testLogger(tb), Node: Node, Version: "test", Observer: opts.Observer, Metrics: opts.Metrics}
	if !opts.NoControllers {
		ao.Enqueue = d.enqueue
	}
	h := api.NewServer(ao).Handler()
	serveUnix(tb, d.Socket, h)
	tcp := httptest.NewServer(h)
	tb.Cleanup(tcp.Close)
	d.URL = tcp.URL
	return d
}

// serveUnix serves h on the unix socket path until tb ends, recording each
// connection's peer (root there is an admin) as wcpd does.
func serveUnix(tb testing.TB, path string, h http.Handler) {
	tb.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Config.ConnContext = api.ConnContext
	srv.Start()
	tb.Cleanup(srv.Close)
}

// enqueue records a reconcile request and wakes the stand-in controller.
func (d *Daemon) enqueue(kind v1alpha1.Kind, name string) {
	d.mu.Lock()
	d.enqueued = append(d.enqueued, Key{Kind: kind, Name: name})
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default: // a pass is due already
	}
}

// Enqueued lists the reconcile requests the API made, oldest first.
func (d *Daemon) Enqueued() []Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.enqueued)
}

// socketPath is a path short enough for a unix socket (108 bytes), which
// t.TempDir() with a long test name may not be.
func socketPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "wcpd")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "wcpd.sock")
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

// SetStatus writes the status of a resource as a controller that finished
// its current generation would: through store.UpdateStatus, for the row's
// current uid.
func (d *Daemon) SetStatus(ctx context.Context, kind v1alpha1.Kind, name string, conds ...v1alpha1.Condition) error {
	r, err := d.Store.Get(ctx, kind, name)
	if err != nil {
		return err
	}
	return d.writeStatus(ctx, r, conds, r.Generation)
}

// writeStatus writes conds about r's generation, with observed as the
// generation whose work is finished.
func (d *Daemon) writeStatus(ctx context.Context, r store.Resource, conds []v1alpha1.Condition, observed int64) error {
	st := v1alpha1.Status{ObservedGeneration: observed, Conditions: conds}
	for i := range st.Conditions {
		st.Conditions[i].ObservedGeneration = r.Generation
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	_, err = d.Store.UpdateStatus(ctx, store.StatusUpdate{
		Kind: r.Kind, Name: r.Name, UID: r.UID, Status: data, ObservedGeneration: observed,
	})
	return err
}

// Condition is a condition at now.
func Condition(typ string, status v1alpha1.ConditionStatus, reason, message string) v1alpha1.Condition {
	return v1alpha1.Condition{Type: typ, Status: status, Reason: reason, Message: message, LastTransitionTime: time.Now().UTC()}
}
