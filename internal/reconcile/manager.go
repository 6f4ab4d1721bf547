package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wcp360/wcp360/apis/v1alpha1"
	"github.com/wcp360/wcp360/internal/notifier"
)

// DefaultChannel is the NOTIFY channel the store announces changes on
// (store.NotifyChannel; the payload is "Kind/name").
const DefaultChannel = "wcp_resources"

// ErrNotConnected is returned by Manager.Healthy while the listener is down.
var ErrNotConnected = errors.New("listener not connected")

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	// Logger defaults to one that discards.
	Logger *slog.Logger
	// ConnString reaches PostgreSQL for the dedicated LISTEN connection (required).
	ConnString string
	// Channel to LISTEN on; default DefaultChannel.
	Channel string
	// ApplicationName of the LISTEN connection (see notifier.Options).
	ApplicationName string
	// ResyncInterval is given to every added controller that has none.
	ResyncInterval time.Duration
	// ListenerBackoffBase and ListenerBackoffMax bound the reconnect backoff
	// of the listener, and the retry of a failed re-list.
	ListenerBackoffBase, ListenerBackoffMax time.Duration
	// NotificationBuffer bounds the notifications waiting to be routed.
	NotificationBuffer int
}

// Manager runs several controllers and the listener that wakes them: each
// NOTIFY "Kind/name" enqueues name on the controller of Kind; after every
// (re)connect of the listener every controller re-lists everything.
type Manager struct {
	opts ManagerOptions
	log  *slog.Logger

	mu          sync.Mutex
	controllers []*Controller
	byKind      map[v1alpha1.Kind]*Controller
	started     bool

	listener atomic.Pointer[notifier.Notifier]
	relist   chan struct{}
}

// NewManager returns a Manager with no controllers.
func NewManager(opts ManagerOptions) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.ListenerBackoffBase <= 0 {
		opts.ListenerBackoffBase = notifier.DefaultBackoffBase
	}
	if opts.ListenerBackoffMax < opts.ListenerBackoffBase {
		opts.ListenerBackoffMax = max(notifier.DefaultBackoffMax, opts.ListenerBackoffBase)
	}
	return &Manager{
		opts:   opts,
		log:    opts.Logger.With("component", "manager"),
		byKind: make(map[v1alpha1.Kind]*Controller),
		relist: make(chan struct{}, 1),
	}
}

// Add registers c before Start. Controllers re-list in the order added, so
// add a Tenant controller before those of what belongs to tenants.
func (m *Manager) Add(c *Controller) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return errors.New("reconcile: Manager.Add after Start")
	}
	if _, dup := m.byKind[c.Kind()]; dup {
		return fmt.Errorf("reconcile: a controller for %s was already added", c.Kind())
	}
	if c.ResyncInterval() == 0 && m.opts.ResyncInterval > 0 {
		c.SetResync(m.opts.ResyncInterval)
	}
	m.controllers = append(m.controllers, c)
	m.byKind[c.Kind()] = c
	return nil
}

// Ready reports whether the listener is connected (for /healthz).
func (m *Manager) Ready() bool {
	n := m.listener.Load()
	return n != nil && n.Connected()
}

// Healthy returns nil when Ready, else an error that says why.
func (m *Manager) Healthy() error {
	if !m.Ready() {
		return ErrNotConnected
	}
	return nil
}

// SetResync changes the periodic resync interval of every controller.
func (m *Manager) SetResync(d time.Duration) {
	for _, c := range m.snapshot() {
		c.SetResync(d)
	}
}

// SetRateLimit changes the retry rate limit of every controller.
func (m *Manager) SetRateLimit(qps float64, burst int) {
	for _, c := range m.snapshot() {
		c.SetRateLimit(qps, burst)
	}
}

func (m *Manager) snapshot() []*Controller {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*Controller(nil), m.controllers...)
}

// Start runs the listener and every controller until ctx is cancelled, then
// waits for each controller's drain (bounded by its ShutdownTimeout). If the
// listener or a controller fails to start, everything is stopped and the
// error returned.
func (m *Manager) Start(ctx context.Context) error {
	n, err := m.begin()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(m.controllers)+1)
	var wg sync.WaitGroup
	for i, c := range m.controllers {
		wg.Go(func() { errs[i] = stopOnError(cancel, c.Start(ctx)) })
	}
	wg.Go(func() { errs[len(errs)-1] = stopOnError(cancel, n.Run(ctx)) })
	wg.Go(func() { m.relistLoop(ctx) })
	m.log.Info("manager started", "controllers", len(m.controllers), "channel", m.opts.Channel)
	wg.Wait()
	m.log.Info("manager stopped")
	return errors.Join(errs...)
}

// begin freezes the controller list and builds the listener.
func (m *Manager) begin() (*notifier.Notifier, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return nil, errors.New("reconcile: Manager already started")
	}
	n, err := notifier.New(notifier.Options{
		ConnString:      m.opts.ConnString,
		Channels:        []string{m.opts.Channel},
		OnNotification:  m.route,
		OnConnect:       m.requestRelist,
		BackoffBase:     m.opts.ListenerBackoffBase,
		BackoffMax:      m.opts.ListenerBackoffMax,
		Logger:          m.opts.Logger,
		ApplicationName: m.opts.ApplicationName,
		BufferSize:      m.opts.NotificationBuffer,
	})
	if err != nil {
		return nil, err
	}
	m.started = true
	m.listener.Store(n)
	return n, nil
}

func stopOnError(cancel context.CancelFunc, err error) error {
	if err != nil {
		cancel()
	}
	return err
}

// route enqueues the resource a notification names on its kind's controller.
func (m *Manager) route(_, payload string) {
	req, err := ParseKey(payload)
	if err != nil {
		m.log.Warn("ignoring notification", "err", err)
		return
	}
	c, ok := m.byKind[req.Kind]
	if !ok {
		m.log.Debug("ignoring notification for a kind with no controller", "key", payload)
		return
	}
	c.Enqueue(req.Name)
}

// requestRelist asks relistLoop to re-list; it never blocks the listener.
func (m *Manager) requestRelist() {
	select {
	case m.relist <- struct{}{}:
	default:
	}
}

// relistLoop runs EnqueueAll on every controller when asked, retrying with
// backoff until a full pass succeeds or it is asked again.
func (m *Manager) relistLoop(ctx context.Context) {
	delay := m.opts.ListenerBackoffBase
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.relist:
		case <-retry:
		}
		if err := m.enqueueAll(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("re-list failed", "err", err, "retryIn", delay)
			retry = time.After(delay)
			delay = min(2*delay, m.opts.ListenerBackoffMax)
			continue
		}
		retry, delay = nil, m.opts.ListenerBackoffBase
	}
}

func (m *Manager) enqueueAll(ctx context.Context) error {
	var errs []error
	for _, c := range m.controllers {
		errs = append(errs, c.EnqueueAll(ctx))
	}
	return errors.Join(errs...)
}
