package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/testutil/syncbuf"
)

type outcome struct {
	req Request
	res Result
	err error
}

// running is a started controller and what it reports.
type running struct {
	c        *Controller
	outcomes chan outcome
	cancel   context.CancelFunc
	done     chan error
}

// start starts a controller for opts; the test's cleanup stops it.
func start(t *testing.T, opts Options) *running {
	t.Helper()
	r := &running{outcomes: make(chan outcome, 10000), done: make(chan error, 1)}
	if opts.Kind == "" {
		opts.Kind = v1alpha1.KindTenant
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	hook := opts.OnResult
	opts.OnResult = func(req Request, res Result, err error, took time.Duration) {
		if hook != nil {
			hook(req, res, err, took)
		}
		r.outcomes <- outcome{req, res, err}
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() { r.done <- c.Start(ctx) }()
	t.Cleanup(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Error("Start did not return")
		}
	})
	return r
}

func (r *running) next(t *testing.T) outcome {
	t.Helper()
	select {
	case o := <-r.outcomes:
		return o
	case <-time.After(wait):
		t.Fatal("no reconcile")
		return outcome{}
	}
}

func TestNewValidation(t *testing.T) {
	rec := ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil })
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"ok", Options{Kind: v1alpha1.KindTenant, Reconciler: rec}, true},
		{"no kind", Options{Reconciler: rec}, false},
		{"no reconciler", Options{Kind: v1alpha1.KindTenant}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v", err)
			}
			if c != nil && (c.Name() != "Tenant" || c.Kind() != v1alpha1.KindTenant) {
				t.Errorf("Name, Kind = %q, %q", c.Name(), c.Kind())
			}
		})
	}
}

func TestStartTwice(t *testing.T) {
	r := start(t, Options{Reconciler: ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil })})
	r.c.Enqueue("a")
	r.next(t) // the first Start is running
	if err := r.c.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

// TestNoConcurrentReconcileOfOneKey hammers few keys with many adds and
// workers: no key may be reconciled twice at once, and every key's last add
// must be followed by a reconcile that saw it.
func TestNoConcurrentReconcileOfOneKey(t *testing.T) {
	const keys, adders, addsPerAdder = 5, 4, 500
	var (
		mu       sync.Mutex
		inFlight = map[string]int{}
		overlaps atomic.Int64
		added    [keys]atomic.Int64 // adds per key, bumped before Add
		seen     [keys]atomic.Int64 // the adds count a reconcile of the key saw at its start
		runs     atomic.Int64
	)
	progress := make(chan struct{}, 1)
	rec := ReconcilerFunc(func(_ context.Context, req Request) (Result, error) {
		i, err := strconv.Atoi(strings.TrimPrefix(req.Name, "k"))
		if err != nil {
			return Result{}, Terminal(err)
		}
		mu.Lock()
		inFlight[req.Name]++
		if inFlight[req.Name] > 1 {
			overlaps.Add(1)
		}
		mu.Unlock()
		seen[i].Store(added[i].Load())
		time.Sleep(50 * time.Microsecond) // widen the window for an overlap
		mu.Lock()
		inFlight[req.Name]--
		mu.Unlock()
		runs.Add(1)
		select {
		case progress <- struct{}{}:
		default:
		}
		return Result{}, nil
	})
	r := start(t, Options{Reconciler: rec, Workers: 8})
	var wg sync.WaitGroup
	for a := range adders {
		wg.Go(func() {
			for j := range addsPerAdder {
				i := (a + j) % keys
				added[i].Add(1)
				r.c.Enqueue(fmt.Sprint("k", i))
			}
		})
	}
	wg.Wait()
	deadline := time.After(wait)
	for !allSeen(added[:], seen[:]) {
		select {
		case <-progress:
		case <-deadline:
			t.Fatal("a key's last add was never reconciled")
		}
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d overlapping reconciles of one key", n)
	}
	t.Logf("%d adds, %d reconciles", adders*addsPerAdder, runs.Load())
}

func allSeen(added, seen []atomic.Int64) bool {
	for i := range added {
		if seen[i].Load() != added[i].Load() {
			return false
		}
	}
	return true
}

// TestOutcomes checks what each kind of return does next, on a fake clock.
func TestOutcomes(t *testing.T) {
	const base = 10 * time.Millisecond
	errBoom := errors.New("boom")
	tests := []struct {
		name        string
		res         Result
		err         error
		panics      bool
		wantDelay   time.Duration // 0: not requeued
		wantBackoff int           // NumRequeues after the run
	}{
		{name: "success", wantDelay: 0},
		{name: "requeue after", res: Result{RequeueAfter: time.Minute}, wantDelay: time.Minute},
		{name: "generic error backs off", err: errBoom, wantDelay: base, wantBackoff: 1},
		{name: "result ignored with an error", res: Result{RequeueAfter: time.Hour}, err: errBoom, wantDelay: base, wantBackoff: 1},
		{name: "terminal is not retried", err: Terminal(errBoom), wantDelay: 0},
		{name: "wrapped terminal", err: fmt.Errorf("step: %w", Terminal(errBoom)), wantDelay: 0},
		{name: "waiting retries after its delay", err: Waiting(errBoom, 30*time.Second), wantDelay: 30 * time.Second},
		{name: "wrapped waiting", err: fmt.Errorf("tenant: %w", Waiting(errBoom, time.Second)), wantDelay: time.Second},
		{name: "waiting without delay backs off", err: Waiting(errBoom, 0), wantDelay: base, wantBackoff: 1},
		{name: "panic backs off", panics: true, wantDelay: base, wantBackoff: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			var calls atomic.Int64
			rec := ReconcilerFunc(func(context.Context, Request) (Result, error) {
				if calls.Add(1) > 1 {
					return Result{}, nil
				}
				if tt.panics {
					panic("kaboom")
				}
				return tt.res, tt.err
			})
			r := start(t, Options{Reconciler: rec, BackoffBase: base, Clock: clock})
			r.c.Enqueue("a")
			o := r.next(t)
			checkFirstOutcome(t, o, tt.err, tt.panics)
			at, waiting := r.c.queue.waitingFor("a")
			if got := at.Sub(clock.Now()); waiting != (tt.wantDelay > 0) || (waiting && got != tt.wantDelay) {
				t.Fatalf("pending = %v after %s; want %s", waiting, got, tt.wantDelay)
			}
			if got := r.c.queue.NumRequeues("a"); got != tt.wantBackoff {
				t.Errorf("NumRequeues = %d, want %d", got, tt.wantBackoff)
			}
			if tt.wantDelay == 0 {
				r.c.Enqueue("a") // only a new enqueue runs it again
			} else {
				waitArmed(t, r.c.queue, at)
				clock.Advance(tt.wantDelay)
			}
			if o := r.next(t); o.err != nil {
				t.Errorf("second run: %v", o.err)
			}
			if got := r.c.queue.NumRequeues("a"); got != 0 {
				t.Errorf("NumRequeues after success = %d", got)
			}
		})
	}
}

func checkFirstOutcome(t *testing.T, o outcome, wantErr error, panics bool) {
	t.Helper()
	if o.req != (Request{Kind: v1alpha1.KindTenant, Name: "a"}) {
		t.Errorf("req = %+v", o.req)
	}
	if !panics {
		if !errors.Is(o.err, wantErr) {
			t.Errorf("err = %v, want %v", o.err, wantErr)
		}
		return
	}
	var p *PanicError
	if !errors.As(o.err, &p) || p.Value != "kaboom" || !bytes.Contains(p.Stack, []byte("TestOutcomes")) {
		t.Errorf("err = %#v, want a PanicError with a stack", o.err)
	}
}

func TestBackoffGrowsAndResets(t *testing.T) {
	const base, fails = 10 * time.Millisecond, 5
	clock := newFakeClock()
	var calls atomic.Int64
	rec := ReconcilerFunc(func(context.Context, Request) (Result, error) {
		if calls.Add(1) <= fails {
			return Result{}, errors.New("not yet")
		}
		return Result{}, nil
	})
	r := start(t, Options{Reconciler: rec, BackoffBase: base, BackoffMax: 80 * time.Millisecond, RateLimit: -1, Clock: clock})
	r.c.Enqueue("a")
	want := []time.Duration{10, 20, 40, 80, 80}
	for i, w := range want {
		if o := r.next(t); o.err == nil {
			t.Fatalf("run %d succeeded", i+1)
		}
		at, ok := r.c.queue.waitingFor("a")
		if got := at.Sub(clock.Now()); !ok || got != w*time.Millisecond {
			t.Fatalf("after failure %d: retry in %s (pending %v), want %s", i+1, got, ok, w*time.Millisecond)
		}
		waitArmed(t, r.c.queue, at)
		clock.Advance(w * time.Millisecond)
	}
	if o := r.next(t); o.err != nil {
		t.Fatal(o.err)
	}
	if n := r.c.queue.NumRequeues("a"); n != 0 {
		t.Errorf("NumRequeues after success = %d", n)
	}
}

func TestReconcileLoggerAndID(t *testing.T) {
	var buf syncbuf.Buffer
	ids := make(chan string, 2)
	rec := ReconcilerFunc(func(ctx context.Context, _ Request) (Result, error) {
		LoggerFrom(ctx).Info("hello")
		ids <- IDFrom(ctx)
		return Result{}, nil
	})
	r := start(t, Options{Reconciler: rec, Kind: v1alpha1.KindDomain,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	r.c.Enqueue("x")
	r.next(t)
	r.c.Enqueue("x")
	r.next(t)
	id1, id2 := <-ids, <-ids
	if id1 == "" || id1 == id2 {
		t.Errorf("reconcile ids %q, %q: want distinct and non-empty", id1, id2)
	}
	line := buf.String()
	for _, want := range []string{"msg=hello", "kind=Domain", "name=x", "reconcileID=" + id1, "controller=Domain"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
	if LoggerFrom(context.Background()) == nil || IDFrom(context.Background()) != "" {
		t.Error("defaults outside a reconcile")
	}
}

func TestGracefulDrain(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	var ctxErr atomic.Value
	rec := ReconcilerFunc(func(ctx context.Context, _ Request) (Result, error) {
		close(started)
		<-release
		finished.Store(true)
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		return Result{}, nil
	})
	r := start(t, Options{Reconciler: rec, ShutdownTimeout: wait})
	r.c.Enqueue("a")
	<-started
	r.c.Enqueue("b") // queued behind the in-flight one: dropped by the drain
	r.cancel()
	for !r.c.queue.ShuttingDown() {
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Start returned with a reconcile in flight: %v", err)
	default:
	}
	close(release)
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err != nil {
			t.Errorf("Start = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Start did not return after the reconcile finished")
	}
	if !finished.Load() || ctxErr.Load() != "<nil>" {
		t.Errorf("finished=%v ctx.Err=%v: the in-flight reconcile must finish with a live context", finished.Load(), ctxErr.Load())
	}
	if o := r.next(t); o.req.Name != "a" {
		t.Errorf("ran %q", o.req.Name)
	}
	select {
	case o := <-r.outcomes:
		t.Errorf("a queued key was started during the drain: %+v", o)
	default:
	}
}

func TestAbandonAfterShutdownTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	started, hang, cancelled := make(chan struct{}), make(chan struct{}), make(chan struct{})
	rec := ReconcilerFunc(func(ctx context.Context, _ Request) (Result, error) {
		context.AfterFunc(ctx, func() { close(cancelled) })
		close(started)
		<-hang // ignores its context
		return Result{}, ctx.Err()
	})
	r := start(t, Options{Reconciler: rec, ShutdownTimeout: timeout})
	t.Cleanup(func() {
		close(hang)
		r.next(t) // the abandoned reconcile ends (and logs) before the test does
	})
	r.c.Enqueue("a")
	<-started
	t0 := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		took := time.Since(t0)
		t.Logf("Start returned after %s (timeout %s)", took, timeout)
		if !errors.Is(err, ErrShutdownTimeout) {
			t.Errorf("Start = %v, want ErrShutdownTimeout", err)
		}
		if took < timeout {
			t.Errorf("returned after %s, before the timeout", took)
		}
	case <-time.After(timeout + 5*time.Second):
		t.Fatal("Start did not return within the shutdown timeout")
	}
	select {
	case <-cancelled:
	case <-time.After(wait):
		t.Error("the abandoned reconcile's context was not cancelled")
	}
}

func TestEnqueueAllAndResync(t *testing.T) {
	lists := make(chan struct{}, 100)
	lister := func(context.Context) ([]string, error) {
		lists <- struct{}{}
		return []string{"a", "b", "c"}, nil
	}
	rec := ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil })
	r := start(t, Options{Reconciler: rec, Lister: lister, Workers: 3})
	if err := r.c.EnqueueAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 3 {
		got[r.next(t).req.Name] = true
	}
	if len(got) != 3 {
		t.Errorf("reconciled %v", got)
	}
	<-lists
	r.c.SetResync(10 * time.Millisecond)
	if r.c.ResyncInterval() != 10*time.Millisecond {
		t.Error("SetResync not applied")
	}
	for i := range 3 {
		select {
		case <-lists:
		case <-time.After(wait):
			t.Fatalf("periodic resync %d did not list", i+1)
		}
	}
}

func TestEnqueueAllError(t *testing.T) {
	errDB := errors.New("db down")
	tests := []struct {
		name    string
		lister  func(context.Context) ([]string, error)
		wantErr error
	}{
		{"no lister", nil, nil},
		{"lister fails", func(context.Context) ([]string, error) { return nil, errDB }, errDB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{Kind: v1alpha1.KindTenant, Lister: tt.lister,
				Reconciler: ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil })})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.EnqueueAll(context.Background()); !errors.Is(err, tt.wantErr) {
				t.Errorf("EnqueueAll = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkController(b *testing.B) {
	rec := ReconcilerFunc(func(context.Context, Request) (Result, error) { return Result{}, nil })
	done := make(chan struct{}, 1024)
	c, err := New(Options{Kind: v1alpha1.KindTenant, Reconciler: rec, Workers: 4,
		OnResult: func(Request, Result, error, time.Duration) { done <- struct{}{} }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Start(ctx) //nolint:errcheck // stopped by cancel
	for i := 0; b.Loop(); i++ {
		c.Enqueue(benchKeys[i%len(benchKeys)])
		<-done
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
