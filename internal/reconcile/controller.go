package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
)

// DefaultShutdownTimeout is how long Start lets in-flight reconciles finish.
const DefaultShutdownTimeout = 30 * time.Second

// ErrShutdownTimeout is returned (wrapped) by Start when in-flight reconciles
// did not finish within the shutdown timeout and were abandoned.
var ErrShutdownTimeout = errors.New("shutdown timeout: in-flight reconciles abandoned")

// Options configures a Controller.
type Options struct {
	// Name names the controller in logs; it defaults to the kind.
	Name string
	// Kind is the kind the controller reconciles (required).
	Kind v1alpha1.Kind
	// Reconciler does the work (required).
	Reconciler Reconciler
	// Workers is the number of concurrent reconciles (of distinct keys); default 1.
	Workers int
	// BackoffBase and BackoffMax bound the per-key retry backoff (default 5ms..5m).
	BackoffBase, BackoffMax time.Duration
	// RateLimit (retries per second, negative for none; default 10) and
	// RateBurst (default 100) are the global token bucket over all retries.
	RateLimit float64
	RateBurst int
	// Logger defaults to one that discards.
	Logger *slog.Logger
	// Lister returns the names of all resources of the kind (for EnqueueAll).
	Lister func(ctx context.Context) ([]string, error)
	// ResyncInterval, if > 0 and Lister is set, runs EnqueueAll periodically.
	ResyncInterval time.Duration
	// ShutdownTimeout bounds the drain in Start (default 30s).
	ShutdownTimeout time.Duration
	// OnResult, if set, is called after every reconcile (metrics, benchmarks).
	// It runs on the worker and must be quick.
	OnResult func(req Request, res Result, err error, took time.Duration)
	// Clock defaults to RealClock.
	Clock Clock
}

// Controller runs a Reconciler for the keys of one kind from a Queue. It is
// safe for concurrent use; Start may be called once.
type Controller struct {
	opts  Options
	log   *slog.Logger
	queue *Queue

	mu      sync.Mutex
	resync  time.Duration
	started bool
	changed chan struct{} // resync interval changed

	inFlight atomic.Int64
}

// New validates opts, applies defaults and returns a controller ready to Start.
func New(opts Options) (*Controller, error) {
	if opts.Kind == "" {
		return nil, errors.New("reconcile: Options.Kind is required")
	}
	if opts.Reconciler == nil {
		return nil, errors.New("reconcile: Options.Reconciler is required")
	}
	opts = opts.withDefaults()
	return &Controller{
		opts: opts,
		log:  opts.Logger.With("controller", opts.Name, "kind", string(opts.Kind)),
		queue: NewQueue(QueueOptions{BackoffBase: opts.BackoffBase, BackoffMax: opts.BackoffMax,
			RateLimit: opts.RateLimit, RateBurst: opts.RateBurst, Clock: opts.Clock}),
		resync:  opts.ResyncInterval,
		changed: make(chan struct{}, 1),
	}, nil
}

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = string(o.Kind)
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	return o
}

// Name returns the controller's name.
func (c *Controller) Name() string { return c.opts.Name }

// Kind returns the kind the controller reconciles.
func (c *Controller) Kind() v1alpha1.Kind { return c.opts.Kind }

// Enqueue asks for a reconcile of name. It never blocks; after shutdown it does nothing.
func (c *Controller) Enqueue(name string) { c.queue.Add(name) }

// QueueLen returns the number of keys ready and waiting for a worker.
func (c *Controller) QueueLen() int { return c.queue.Len() }

// EnqueueAll lists every resource of the kind and enqueues it: at start,
// after a listener reconnect and on the periodic resync. Without a Lister it
// does nothing.
func (c *Controller) EnqueueAll(ctx context.Context) error {
	if c.opts.Lister == nil {
		return nil
	}
	names, err := c.opts.Lister(ctx)
	if err != nil {
		return fmt.Errorf("list %s: %w", c.opts.Kind, err)
	}
	for _, n := range names {
		c.queue.Add(n)
	}
	return nil
}

// SetRateLimit changes the global retry rate limit live (qps < 0: none).
func (c *Controller) SetRateLimit(qps float64, burst int) { c.queue.SetRateLimit(qps, burst) }

// SetResync changes the periodic resync interval live; 0 turns it off. The
// next resync is one new interval from now.
func (c *Controller) SetResync(d time.Duration) {
	c.mu.Lock()
	c.resync = d
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// ResyncInterval returns the current periodic resync interval.
func (c *Controller) ResyncInterval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resync
}

// Start runs the workers and the periodic resync until ctx is cancelled, then
// drains: it stops intake, lets in-flight reconciles finish for up to
// ShutdownTimeout, then cancels their contexts and returns without waiting
// for them (ErrShutdownTimeout). Reconcile contexts are not cancelled by ctx
// itself, so a reconcile is not interrupted half-way by an ordinary shutdown.
func (c *Controller) Start(ctx context.Context) error {
	if err := c.markStarted(); err != nil {
		return err
	}
	workCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	var workers sync.WaitGroup
	workers.Go(func() { c.dispatch(workCtx, &workers) })
	var resync sync.WaitGroup
	resync.Go(func() { c.resyncLoop(ctx) })
	c.log.Info("controller started", "workers", c.opts.Workers)
	<-ctx.Done()
	c.queue.ShutDown()
	resync.Wait()
	return c.drain(&workers, abandon)
}

func (c *Controller) markStarted() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return fmt.Errorf("reconcile: controller %s already started", c.opts.Name)
	}
	c.started = true
	return nil
}

// drain waits for the workers up to ShutdownTimeout, then abandons them.
func (c *Controller) drain(workers *sync.WaitGroup, abandon context.CancelFunc) error {
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	timer := c.opts.Clock.NewTimer(c.opts.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
		c.log.Info("controller stopped")
		return nil
	case <-timer.C():
	}
	abandon()
	n := c.inFlight.Load()
	c.log.Warn("controller stopped; abandoned in-flight reconciles", "inFlight", n, "timeout", c.opts.ShutdownTimeout)
	return fmt.Errorf("controller %s: %w (%d after %s)", c.opts.Name, ErrShutdownTimeout, n, c.opts.ShutdownTimeout)
}

// dispatch hands each key to a goroutine of its own, at most Workers at
// once, and returns at shutdown. A key is taken from the queue only when a
// worker is free, so that keys wait (and are deduplicated) in the queue.
// Workers come and go with the work: controllers whose reconciles wait for
// a shared batch run a thousand at once, and cost nothing when idle.
func (c *Controller) dispatch(ctx context.Context, workers *sync.WaitGroup) {
	free := make(chan struct{}, c.opts.Workers)
	for {
		free <- struct{}{}
		name, shutdown := c.queue.Get()
		if shutdown {
			return
		}
		workers.Go(func() {
			defer func() { <-free }()
			c.process(ctx, name)
		})
	}
}

func (c *Controller) process(ctx context.Context, name string) {
	defer c.queue.Done(name)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	c.reconcileOne(ctx, name)
}

func (c *Controller) reconcileOne(ctx context.Context, name string) {
	req := Request{Kind: c.opts.Kind, Name: name}
	id := newReconcileID()
	log := c.log.With("reconcileID", id, "name", name)
	rctx := withReconcileID(WithLogger(ctx, log), id)
	start := c.opts.Clock.Now()
	res, err := c.safeReconcile(rctx, req)
	took := c.opts.Clock.Now().Sub(start)
	c.handle(ctx, log, name, res, err, took)
	if c.opts.OnResult != nil {
		c.opts.OnResult(req, res, err, took)
	}
}

// safeReconcile calls the Reconciler and turns a panic into a *PanicError.
func (c *Controller) safeReconcile(ctx context.Context, req Request) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = Result{}, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return c.opts.Reconciler.Reconcile(ctx, req)
}

// handle turns the outcome of one reconcile into what happens next.
func (c *Controller) handle(ctx context.Context, log *slog.Logger, name string, res Result, err error, took time.Duration) {
	var waiting *WaitingError
	var panicked *PanicError
	switch {
	case err == nil:
		c.queue.Forget(name)
		if res.RequeueAfter > 0 {
			c.queue.AddAfter(name, res.RequeueAfter)
		}
		log.Debug("reconciled", "took", took, "requeueAfter", res.RequeueAfter)
	case ctx.Err() != nil:
		log.Warn("reconcile interrupted by shutdown", "err", err, "took", took)
	case IsTerminal(err):
		c.queue.Forget(name)
		log.Error("reconcile stalled; not retried until the resource changes", "err", err, "took", took)
	case errors.As(err, &waiting) && waiting.After > 0:
		c.queue.Forget(name)
		c.queue.AddAfter(name, waiting.After)
		log.Info("reconcile waiting", "reason", err, "retryIn", waiting.After)
	case errors.As(err, &panicked):
		d := c.queue.AddRateLimited(name)
		log.Error("reconcile panicked", "err", err, "stack", string(panicked.Stack), "retryIn", d)
	default:
		d := c.queue.AddRateLimited(name)
		log.Error("reconcile failed", "err", err, "took", took, "retryIn", d, "failures", c.queue.NumRequeues(name))
	}
}

// resyncLoop runs EnqueueAll every resync interval until ctx ends.
func (c *Controller) resyncLoop(ctx context.Context) {
	for {
		var timer Timer
		var fire <-chan time.Time
		if d := c.ResyncInterval(); d > 0 && c.opts.Lister != nil {
			timer = c.opts.Clock.NewTimer(d)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-c.changed:
		case <-fire:
			if err := c.EnqueueAll(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("periodic resync failed", "err", err)
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func newReconcileID() string {
	return strconv.FormatUint(rand.Uint64(), 16) //nolint:gosec // an id, not a secret
}
