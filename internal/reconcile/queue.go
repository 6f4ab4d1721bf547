package reconcile

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Defaults of QueueOptions (and of the controller Options of the same names).
const (
	DefaultBackoffBase = 5 * time.Millisecond
	DefaultBackoffMax  = 5 * time.Minute
	DefaultRateLimit   = 10.0
	DefaultRateBurst   = 100
)

// QueueOptions configures a Queue. Zero values take the defaults above.
type QueueOptions struct {
	// BackoffBase and BackoffMax bound the per-key exponential backoff of AddRateLimited.
	BackoffBase, BackoffMax time.Duration
	// RateLimit (keys per second; negative for none) and RateBurst are the
	// global token bucket every AddRateLimited also waits for.
	RateLimit float64
	RateBurst int
	// Clock defaults to RealClock.
	Clock Clock
}

func (o QueueOptions) withDefaults() QueueOptions {
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = max(DefaultBackoffMax, o.BackoffBase)
	}
	if o.RateLimit == 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.RateBurst <= 0 {
		o.RateBurst = DefaultRateBurst
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	return o
}

// Queue is a workqueue of string keys, in the manner of client-go's:
//
//   - a key added while it is queued is queued once (dedupe);
//   - a key handed out by Get is not handed out again until Done; if it is
//     added meanwhile it is marked dirty and queued again by Done;
//   - AddAfter and AddRateLimited queue a key later; of several pending
//     delays for one key the earliest wins, and all of them are dropped when
//     Get hands the key out, as the run that starts supersedes them;
//   - ShutDown stops intake: Add is ignored and Get returns shutdown at once,
//     even if keys are still queued (they are found again by the next list).
//
// It is safe for concurrent use.
type Queue struct {
	clock   Clock
	limiter *rateLimiter

	mu           sync.Mutex
	cond         *sync.Cond
	queue        []string
	dirty        map[string]struct{}
	processing   map[string]struct{}
	waiting      waitHeap
	waitIndex    map[string]*waitItem
	shuttingDown bool
	drained      chan struct{} // closed when processing empties after shutdown
	armed        time.Time     // when the delay loop's timer is due (tests sync on it)

	wake     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}
}

// NewQueue returns a running Queue. ShutDown releases its goroutine.
func NewQueue(opts QueueOptions) *Queue {
	opts = opts.withDefaults()
	q := &Queue{
		clock:      opts.Clock,
		limiter:    newRateLimiter(opts.Clock, opts.BackoffBase, opts.BackoffMax, opts.RateLimit, opts.RateBurst),
		dirty:      make(map[string]struct{}),
		processing: make(map[string]struct{}),
		waitIndex:  make(map[string]*waitItem),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		loopDone:   make(chan struct{}),
	}
	q.cond = sync.NewCond(&q.mu)
	go q.delayLoop()
	return q
}

// Add queues key now.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if q.shuttingDown {
		return
	}
	if _, ok := q.dirty[key]; ok {
		return
	}
	q.dirty[key] = struct{}{}
	if _, ok := q.processing[key]; ok {
		return
	}
	q.queue = append(q.queue, key)
	q.cond.Signal()
}

// AddAfter queues key once d has passed; d <= 0 is Add.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shuttingDown {
		return
	}
	readyAt := q.clock.Now().Add(d)
	if it, ok := q.waitIndex[key]; ok {
		if readyAt.Before(it.readyAt) {
			it.readyAt = readyAt
			heap.Fix(&q.waiting, it.index)
			q.poke()
		}
		return
	}
	it := &waitItem{key: key, readyAt: readyAt}
	heap.Push(&q.waiting, it)
	q.waitIndex[key] = it
	q.poke()
}

// AddRateLimited queues key after its backoff (which it grows) and the
// global rate limit allow, and returns that delay.
func (q *Queue) AddRateLimited(key string) time.Duration {
	d := q.limiter.When(key)
	q.AddAfter(key, d)
	return d
}

// Forget resets the backoff of key (after a success).
func (q *Queue) Forget(key string) { q.limiter.Forget(key) }

// NumRequeues returns how many times key was rate-limited since its last Forget.
func (q *Queue) NumRequeues(key string) int { return q.limiter.NumRequeues(key) }

// SetRateLimit changes the global token bucket (qps < 0: none; burst <= 0: default).
func (q *Queue) SetRateLimit(qps float64, burst int) {
	o := QueueOptions{RateLimit: qps, RateBurst: burst}.withDefaults()
	q.limiter.SetRate(o.RateLimit, o.RateBurst)
}

// Get blocks until a key is ready and hands it out; the caller must call
// Done(key) when finished. shutdown is true once the queue is shutting down.
func (q *Queue) Get() (key string, shutdown bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shuttingDown {
		q.cond.Wait()
	}
	if q.shuttingDown {
		return "", true
	}
	key = q.queue[0]
	q.queue[0] = ""
	q.queue = q.queue[1:]
	q.processing[key] = struct{}{}
	delete(q.dirty, key)
	q.removeWaitingLocked(key)
	return key, false
}

// Done marks key as finished; if it was added while being processed it is queued again.
func (q *Queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if _, ok := q.dirty[key]; ok && !q.shuttingDown {
		q.queue = append(q.queue, key)
		q.cond.Signal()
	}
	if q.shuttingDown && len(q.processing) == 0 && q.drained != nil {
		close(q.drained)
		q.drained = nil
	}
}

// Len returns the number of keys ready to be handed out.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// ShutDown stops intake and makes every Get return shutdown. Keys being
// processed may still call Done.
func (q *Queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shuttingDown {
		return
	}
	q.shuttingDown = true
	q.queue, q.dirty = nil, map[string]struct{}{}
	q.waiting, q.waitIndex = nil, map[string]*waitItem{}
	q.cond.Broadcast()
	close(q.stop)
}

// ShutDownWithDrain shuts the queue down and waits until every key handed
// out has been marked Done, or ctx ends (then it returns ctx.Err()).
func (q *Queue) ShutDownWithDrain(ctx context.Context) error {
	q.ShutDown()
	q.mu.Lock()
	if len(q.processing) == 0 {
		q.mu.Unlock()
		return nil
	}
	if q.drained == nil {
		q.drained = make(chan struct{})
	}
	drained := q.drained
	q.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ShuttingDown reports whether ShutDown was called.
func (q *Queue) ShuttingDown() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.shuttingDown
}

// poke wakes the delay loop to look at the earliest pending key again.
func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) removeWaitingLocked(key string) {
	if it, ok := q.waitIndex[key]; ok {
		heap.Remove(&q.waiting, it.index)
		delete(q.waitIndex, key)
	}
}

// delayLoop moves delayed keys into the queue when they are due.
func (q *Queue) delayLoop() {
	defer close(q.loopDone)
	for {
		next, at, ok := q.promoteDue()
		var timer Timer
		var fire <-chan time.Time
		if ok {
			timer = q.clock.NewTimer(next)
			fire = timer.C()
			q.setArmed(at)
		}
		select {
		case <-q.stop:
		case <-q.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		select {
		case <-q.stop:
			return
		default:
		}
	}
}

// promoteDue queues every due key and returns the wait until the next one
// and when that is.
func (q *Queue) promoteDue() (time.Duration, time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for len(q.waiting) > 0 {
		it := q.waiting[0]
		if it.readyAt.After(now) {
			return it.readyAt.Sub(now), it.readyAt, true
		}
		heap.Pop(&q.waiting)
		delete(q.waitIndex, it.key)
		q.addLocked(it.key)
	}
	return 0, time.Time{}, false
}

func (q *Queue) setArmed(at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = at
}

// armedFor returns when the delay loop's current timer is due (for tests:
// a fake clock must not be advanced before the timer exists).
func (q *Queue) armedFor() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.armed
}

// waitingFor returns when key is due, if it is waiting (for tests).
func (q *Queue) waitingFor(key string) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it, ok := q.waitIndex[key]; ok {
		return it.readyAt, true
	}
	return time.Time{}, false
}

type waitItem struct {
	key     string
	readyAt time.Time
	index   int
}

// waitHeap orders delayed keys by readyAt.
type waitHeap []*waitItem

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].readyAt.Before(h[j].readyAt) }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *waitHeap) Push(x any) {
	it := x.(*waitItem) //nolint:forcetypeassert // only *waitItem is pushed
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *waitHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
