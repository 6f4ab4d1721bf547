// Package notifier keeps one dedicated PostgreSQL connection LISTENing on a
// few channels, in the manner of River's internal/notifier: it reconnects
// with exponential backoff and jitter until its context ends, re-LISTENs,
// and then tells its caller to re-list everything, because a notification
// sent while it was away is lost. Notifications are hints; the caller's
// periodic resync is the guarantee.
//
// The connection's read loop never waits for the consumer: notifications go
// through a bounded buffer, and when it overflows the lost ones are replaced
// by one "resync" call (OnConnect), so the fact that something changed is
// never lost.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Defaults of Options.
const (
	DefaultApplicationName = "wcp360-listener"
	DefaultBackoffBase     = 250 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultBufferSize      = 4096
	DefaultHealthInterval  = 30 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
)

// Options configures a Notifier.
type Options struct {
	// ConnString is a PostgreSQL URL or keyword/value string (required). It
	// must reach the server directly: a LISTEN does not survive a
	// transaction-pooling proxy.
	ConnString string
	// Channels to LISTEN on (at least one).
	Channels []string
	// OnNotification receives each notification. It is called from one
	// goroutine, never concurrently, and should be quick.
	OnNotification func(channel, payload string)
	// OnConnect is called (from the same goroutine) whenever notifications may
	// have been missed: after every (re)connect once LISTEN is in place, and
	// after the buffer overflowed. The caller re-lists everything.
	OnConnect func()
	// BackoffBase and BackoffMax bound the reconnect backoff (default 250ms..30s).
	BackoffBase, BackoffMax time.Duration
	// Logger defaults to one that discards.
	Logger *slog.Logger
	// ApplicationName is set on the connection unless ConnString sets one
	// (default wcp360-listener); it finds the listener in pg_stat_activity.
	ApplicationName string
	// BufferSize bounds the notifications waiting for OnNotification (default 4096).
	BufferSize int
	// HealthInterval is how long the connection may be silent before it is
	// pinged, to find a dead peer (default 30s).
	HealthInterval time.Duration
	// ConnectTimeout bounds one connect + LISTEN (default 10s).
	ConnectTimeout time.Duration
}

// Stats counts what a Notifier did since it was made.
type Stats struct {
	Connects      int64 // successful connect + LISTEN
	Notifications int64 // received from the server
	Dropped       int64 // dropped because the buffer was full (each followed by a resync)
}

// Notifier is one LISTEN connection. Run it once; Connected and Stats are
// safe for concurrent use.
type Notifier struct {
	opts   Options
	config *pgx.ConnConfig
	log    *slog.Logger

	events chan *pgconn.Notification
	wake   chan struct{}
	resync atomic.Bool

	running   atomic.Bool
	connected atomic.Bool
	connects  atomic.Int64
	received  atomic.Int64
	dropped   atomic.Int64
}

// New checks opts and parses the connection string.
func New(opts Options) (*Notifier, error) {
	if len(opts.Channels) == 0 {
		return nil, errors.New("notifier: no channels")
	}
	opts = opts.withDefaults()
	config, err := pgx.ParseConfig(opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("notifier: %w", err)
	}
	if _, ok := config.RuntimeParams["application_name"]; !ok {
		config.RuntimeParams["application_name"] = opts.ApplicationName
	}
	return &Notifier{
		opts:   opts,
		config: config,
		log:    opts.Logger.With("component", "notifier"),
		events: make(chan *pgconn.Notification, opts.BufferSize),
		wake:   make(chan struct{}, 1),
	}, nil
}

func (o Options) withDefaults() Options {
	if o.OnNotification == nil {
		o.OnNotification = func(string, string) {}
	}
	if o.OnConnect == nil {
		o.OnConnect = func() {}
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffBase)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ApplicationName == "" {
		o.ApplicationName = DefaultApplicationName
	}
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	return o
}

// Connected reports whether the connection is up and LISTENing.
func (n *Notifier) Connected() bool { return n.connected.Load() }

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	return Stats{Connects: n.connects.Load(), Notifications: n.received.Load(), Dropped: n.dropped.Load()}
}

// Run connects, LISTENs and delivers notifications, reconnecting with
// backoff, until ctx ends; then it closes the connection, waits for the
// callback in progress and returns nil. It returns an error only if called
// twice at once.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return errors.New("notifier: already running")
	}
	defer n.running.Store(false)
	dctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); n.dispatch(dctx) }()
	defer func() { stop(); <-done }()

	for attempt := 0; ; attempt++ {
		listened, err := n.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			attempt = 0
		}
		delay := n.backoff(attempt)
		n.log.Warn("listener disconnected; reconnecting", "err", err, "retryIn", delay, "attempt", attempt+1)
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// session runs one connection: connect, LISTEN, read until it fails.
// listened says whether it got as far as LISTEN.
func (n *Notifier) session(ctx context.Context) (listened bool, err error) {
	conn, err := n.connect(ctx)
	if err != nil {
		return false, err
	}
	defer n.close(conn)
	n.connected.Store(true)
	n.connects.Add(1)
	n.log.Info("listening", "channels", n.opts.Channels, "pid", conn.PgConn().PID())
	n.requestResync()
	return true, n.readLoop(ctx, conn)
}

func (n *Notifier) connect(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, n.config.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	for _, ch := range n.opts.Channels {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			closeQuietly(conn)
			return nil, fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	return conn, nil
}

func (n *Notifier) close(conn *pgx.Conn) {
	n.connected.Store(false)
	closeQuietly(conn)
}

func closeQuietly(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = conn.Close(ctx) // the connection is being thrown away
}

// readLoop hands notifications to the buffer until the connection fails or
// ctx ends. A silent connection is pinged every HealthInterval.
func (n *Notifier) readLoop(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, n.opts.HealthInterval)
		notif, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			n.deliver(notif)
		case ctx.Err() != nil:
			return ctx.Err()
		case !pgconn.Timeout(err) || conn.IsClosed():
			return fmt.Errorf("wait for notification: %w", err)
		default:
			if err := n.ping(ctx, conn); err != nil {
				return err
			}
		}
	}
}

func (n *Notifier) ping(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.ConnectTimeout)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// deliver queues a notification without blocking; if the buffer is full the
// notification is dropped and a resync requested instead.
func (n *Notifier) deliver(notif *pgconn.Notification) {
	n.received.Add(1)
	select {
	case n.events <- notif:
	default:
		if n.dropped.Add(1) == 1 || !n.resync.Load() {
			n.log.Warn("notification buffer full; dropping and resyncing", "size", n.opts.BufferSize)
		}
		n.requestResync()
	}
}

func (n *Notifier) requestResync() {
	n.resync.Store(true)
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// dispatch calls the callbacks from one goroutine until ctx ends.
func (n *Notifier) dispatch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case notif := <-n.events:
			n.opts.OnNotification(notif.Channel, notif.Payload)
		case <-n.wake:
		}
		if n.resync.Swap(false) {
			n.opts.OnConnect()
		}
	}
}

// backoff returns the delay before reconnect attempt+1: exponential, capped,
// with "equal jitter" (half fixed, half random) so many nodes do not
// reconnect in step.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.opts.BackoffBase
	for i := 0; i < attempt && d < n.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, n.opts.BackoffMax)
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // jitter, not a secret
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
